"""The writes of one state change as a single PostgreSQL statement.

A confirmation writes a compare-and-set UPDATE, its event row and its outbox call; sent one by
one that is a round trip each, and on a busy server round trips are most of a confirmation's
time. PostgreSQL runs them as one statement (data-modifying ``WITH`` queries), atomic by itself:
the rows are inserted only when the UPDATE matched. Every value goes through its field's
``get_db_prep_save``, so it is stored exactly as the ORM would store it. Other databases keep
the ORM's statements (``services._write_feedback_change``).
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper


def supported(connection: BaseDatabaseWrapper) -> bool:
    return connection.vendor == "postgresql"


#: Statement text per shape (see ``_statement``). The text depends only on the vendor's
#: quoting, the models and the names of the fields written, so a process builds each shape
#: once (a handful: confirm or fail, with or without a call, superseding or not) and every
#: later change only prepares its parameters; building it each time was a fifth of the
#: Python of a confirmation. Values are never part of the text.
_statements: dict[tuple[Any, ...], str] = {}


def _insert_fields(model: type[models.Model]) -> list[models.Field]:
    """The columns an INSERT of ``model`` writes: every concrete field but the primary key."""
    return [field for field in model._meta.concrete_fields if not field.primary_key]


def _insert_per_row(model: type[models.Model], source: str, connection: BaseDatabaseWrapper) -> str:
    """``INSERT`` of one ``model`` row per row of the ``WITH`` query ``source``; its parameters
    are ``_row_params``."""
    quote = connection.ops.quote_name
    fields = _insert_fields(model)
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    table = quote(model._meta.db_table)
    return f"INSERT INTO {table} ({columns}) SELECT {placeholders} FROM {source}"  # noqa: S608


def _plain(value: Any) -> Any:
    """``value``, a ``str`` subclass (a ``TextChoices`` member: the states, kinds, sources) as
    the plain ``str`` it stands for: the same text is stored, but psycopg finds its adapter for
    a subclass by walking the class's MRO on every new cursor, about 16 us per value (five
    per confirmation), against one dictionary look-up for ``str``."""
    return str.__str__(value) if isinstance(value, str) and type(value) is not str else value


def _row_params(obj: models.Model, connection: BaseDatabaseWrapper) -> list[Any]:
    """``obj``'s values for ``_insert_per_row``, each stored exactly as the ORM would."""
    return [
        _plain(field.get_db_prep_save(field.pre_save(obj, True), connection))
        for field in _insert_fields(type(obj))
    ]


def _statement(
    connection: BaseDatabaseWrapper,
    model: type[models.Model],
    guard: tuple[str, ...],
    updates: tuple[str, ...],
    rows: tuple[type[models.Model], ...],
    returning: type[models.Model] | None,
    also: str | None,
) -> str:
    """The statement of ``change_with_rows`` for this shape, built on first use."""
    key = (connection.vendor, model, guard, updates, rows, returning, also)
    statement = _statements.get(key)
    if statement is not None:
        return statement
    quote = connection.ops.quote_name
    pk_column = quote(model._meta.pk.column)
    sets = ", ".join(f"{quote(model._meta.get_field(name).column)} = %s" for name in updates)
    conditions = [f"{pk_column} = %s"]
    conditions += [f"{quote(model._meta.get_field(name).column)} = %s" for name in guard]
    queries = [
        f"changed AS (UPDATE {quote(model._meta.db_table)} SET {sets}"  # noqa: S608
        f" WHERE {' AND '.join(conditions)} RETURNING {pk_column})"
    ]
    for index, row_model in enumerate(rows):
        queries.append(f"row_{index} AS ({_insert_per_row(row_model, 'changed', connection)})")
    if also is not None:
        queries.append(f"also_ AS ({also} AND EXISTS (SELECT 1 FROM changed))")  # noqa: S608
    result = "NULL"
    if returning is not None:
        sql = _insert_per_row(returning, "changed", connection)
        returning_pk = quote(returning._meta.pk.column)
        queries.append(f"returned AS ({sql} RETURNING {returning_pk})")
        result = f"(SELECT {returning_pk} FROM returned)"  # noqa: S608 - names only
    statement = f"WITH {', '.join(queries)} SELECT (SELECT count(*) FROM changed), {result}"  # noqa: S608
    _statements[key] = statement
    return statement


def change_with_rows(
    connection: BaseDatabaseWrapper,
    instance: models.Model,
    guard: dict[str, Any],
    updates: dict[str, Any],
    rows: list[models.Model],
    returning: models.Model | None = None,
    also: tuple[str, list[Any]] | None = None,
) -> bool:
    """``UPDATE`` ``instance``'s row with ``updates`` where it still matches ``guard`` (field
    name -> value), and only then INSERT each of ``rows`` and ``returning``, in one statement.

    ``returning`` gets its new primary key. ``also`` is one more UPDATE (SQL ending in its
    WHERE clause, and its parameters), run only when the UPDATE matched: e.g. superseding the
    calls ``returning`` replaces, which it does not see (each part of the statement sees the
    tables as they were). True when the UPDATE matched.
    """
    model = type(instance)
    meta = model._meta
    statement = _statement(
        connection,
        model,
        tuple(guard),
        tuple(updates),
        tuple(type(row) for row in rows),
        type(returning) if returning is not None else None,
        also[0] if also is not None else None,
    )
    # The parameters in the statement's order: SET, the primary key and the guard, each row,
    # ``also``, ``returning``.
    params = [
        _plain(meta.get_field(name).get_db_prep_save(value, connection))
        for name, value in updates.items()
    ]
    params.append(meta.pk.get_db_prep_value(instance.pk, connection))
    params += [
        _plain(meta.get_field(name).get_db_prep_value(value, connection))
        for name, value in guard.items()
    ]
    for row in rows:
        params += _row_params(row, connection)
    if also is not None:
        params += also[1]
    if returning is not None:
        params += _row_params(returning, connection)
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        matched, new_pk = cursor.fetchone()
    if returning is not None and matched:
        returning.pk = new_pk
        returning._state.adding = False
        returning._state.db = connection.alias
    if matched:
        for row in rows:
            row._state.adding = False
            row._state.db = connection.alias
    return bool(matched)
