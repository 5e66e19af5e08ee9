"""Reading rows back out of a case: as dicts, and one id by a unique prefix of it.

A leaf module (it imports nothing of the case), so that the case's own modules, the reports and
the exports share it without an import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from forensics.errors import UsageError
from forensics.times import shape

if TYPE_CHECKING:
    import duckdb

Row = dict[str, Any]
MIN_PREFIX = 4  # characters of an id that make a prefix worth looking up


def query_rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[Row]:
    """Rows of `sql` as dicts keyed by column name. Only the parameters `sql` mentions are
    bound (DuckDB refuses the others), so callers can pass one dict to several queries."""
    cur = con.execute(sql, {k: v for k, v in params.items() if f"${k}" in sql})
    names = [d[0] for d in cur.description or ()]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def id_prefix(given: str, what: str, hint: str) -> str:
    """`given` as a prefix of a hex id (lower case): at least MIN_PREFIX hex digits, else a
    usage error that describes its shape, never the text (a pasted key stays out of it)."""
    prefix = given.strip().lower()
    if len(prefix) < MIN_PREFIX or any(c not in "0123456789abcdef" for c in prefix):
        raise UsageError(
            f"not an id ({len(given)} characters shaped {shape(given)}): give at least"
            f" {MIN_PREFIX} hex digits of {what}",
            hint=hint,
        )
    return prefix


def one_by_prefix(
    con: duckdb.DuckDBPyConnection, table: str, column: str, given: str, what: str, hint: str
) -> str:
    """The one value of `table`.`column` (a fixed name, never user text; its values hex ids)
    that starts with `given`, checked by `id_prefix`; none or several is a usage error naming
    `what`."""
    prefix = id_prefix(given, what, hint)
    found = [
        str(r[0])
        for r in con.execute(
            f"SELECT {column} FROM {table} WHERE starts_with({column}, $p) ORDER BY 1 LIMIT 6",
            {"p": prefix},
        ).fetchall()
    ]
    if not found:
        raise UsageError(f"no {what} starts with {prefix}", hint=hint)
    if len(found) > 1:
        more = " and more" if len(found) > 5 else ""
        listed = ", ".join(found[:5])
        raise UsageError(f"{prefix} is ambiguous: {listed}{more}", hint="give more of it")
    return found[0]
