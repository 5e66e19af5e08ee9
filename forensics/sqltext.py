"""Writing SQL text: the one place that quotes a value as a SQL string literal or a name as an
identifier."""

from __future__ import annotations


def sql_str(value: str) -> str:
    """A DuckDB string literal of `value` (standard strings: only the quote is doubled).

    For values that must be part of the statement text (regex patterns, JSON structures, paths
    from a mapping file); data values are always bound as parameters instead.
    """
    return "'" + value.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """A quoted SQL identifier of `name` (a column or table name that comes from data)."""
    return '"' + name.replace('"', '""') + '"'
