"""The statements of captured queries that read or write rows."""

from __future__ import annotations

from typing import Any

#: What a rollup read is wrapped in on PostgreSQL (``reports._serial``): a transaction (a
#: savepoint inside one) and the setting that keeps it serial. They read and write no row.
SESSION = ("BEGIN", "COMMIT", "SET LOCAL ", "SAVEPOINT ", "RELEASE SAVEPOINT ")


def statements(queries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``CaptureQueriesContext.captured_queries`` without the session statements."""
    return [query for query in queries if not query["sql"].startswith(SESSION)]
