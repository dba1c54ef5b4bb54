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


def _assignments(
    model: type[models.Model], values: dict[str, Any], connection: BaseDatabaseWrapper
) -> tuple[str, list[Any]]:
    """``col = %s, ...`` and its parameters for ``values`` (field name -> value)."""
    quote = connection.ops.quote_name
    parts, params = [], []
    for name, value in values.items():
        field = model._meta.get_field(name)
        parts.append(f"{quote(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    return ", ".join(parts), params


def _insert_per_row(
    obj: models.Model, source: str, connection: BaseDatabaseWrapper
) -> tuple[str, list[Any]]:
    """``INSERT`` of ``obj``'s values once per row of the ``WITH`` query ``source``."""
    quote = connection.ops.quote_name
    fields = [field for field in obj._meta.concrete_fields if not field.primary_key]
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    params = [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]
    table = quote(obj._meta.db_table)
    return (
        f"INSERT INTO {table} ({columns}) SELECT {placeholders} FROM {source}",  # noqa: S608
        params,
    )


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
    quote = connection.ops.quote_name
    pk_column = quote(model._meta.pk.column)
    sets, params = _assignments(model, updates, connection)
    conditions = [f"{pk_column} = %s"]
    params.append(model._meta.pk.get_db_prep_value(instance.pk, connection))
    for name, value in guard.items():
        field = model._meta.get_field(name)
        conditions.append(f"{quote(field.column)} = %s")
        params.append(field.get_db_prep_value(value, connection))
    queries = [
        f"changed AS (UPDATE {quote(model._meta.db_table)} SET {sets}"  # noqa: S608
        f" WHERE {' AND '.join(conditions)} RETURNING {pk_column})"
    ]
    for index, row in enumerate(rows):
        sql, row_params = _insert_per_row(row, "changed", connection)
        queries.append(f"row_{index} AS ({sql})")
        params += row_params
    if also is not None:
        sql, extra = also
        queries.append(f"also_ AS ({sql} AND EXISTS (SELECT 1 FROM changed))")  # noqa: S608
        params += extra
    result = "NULL"
    if returning is not None:
        sql, row_params = _insert_per_row(returning, "changed", connection)
        returning_pk = quote(returning._meta.pk.column)
        queries.append(f"returned AS ({sql} RETURNING {returning_pk})")
        params += row_params
        result = f"(SELECT {returning_pk} FROM returned)"  # noqa: S608 - names only
    statement = f"WITH {', '.join(queries)} SELECT (SELECT count(*) FROM changed), {result}"  # noqa: S608
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
