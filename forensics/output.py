"""Writing query results: a readable table, CSV, JSON, JSON lines or Parquet."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any, TextIO

import duckdb

from forensics.errors import UsageError, duckdb_error

FORMATS = ("table", "csv", "json", "jsonl", "parquet")
MAX_CELL = 60


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = json.dumps(_plain(value)) if isinstance(value, dict | list) else str(_plain(value))
    text = text.replace("\n", "\\n").replace("\t", " ")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def write_table(names: list[str], rows: list[tuple[Any, ...]], out: TextIO) -> None:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    out.write("  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for r in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


_COPY_FORMATS = {
    "csv": "FORMAT CSV, HEADER",
    "json": "FORMAT JSON, ARRAY true",
    "jsonl": "FORMAT JSON",
    "parquet": "FORMAT PARQUET",
}


def write_result(
    con: duckdb.DuckDBPyConnection,
    query: str,
    fmt: str,
    out: TextIO,
    path: Path | None = None,
    params: dict[str, Any] | None = None,
) -> int:
    """Run `query` and write its rows; returns the row count.

    Every format but `table` is written by DuckDB's COPY, streaming, at DuckDB's speed: to the
    file asked for, or to a temporary file that is then copied to `out`.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "table":
        result = con.execute(query, params)
        names = [d[0] for d in result.description or []]
        rows = result.fetchall()
        write_table(names, rows, out)
        return len(rows)
    if fmt == "parquet" and path is None:
        raise UsageError("parquet output needs a file", hint="add -o FILE.parquet")
    with tempfile.TemporaryDirectory() as tmp:
        target = path if path is not None else Path(tmp) / f"out.{fmt}"
        copied = con.execute(
            f"COPY ({_subquery(query)}\n) TO '{_quote(target)}' ({_COPY_FORMATS[fmt]})",
            params,
        ).fetchall()
        if path is None:
            with target.open(encoding="utf-8", newline="") as f:
                shutil.copyfileobj(f, out)
    return int(copied[0][0]) if copied else 0


def print_result(
    con: duckdb.DuckDBPyConnection,
    query: str,
    fmt: str,
    path: Path | None = None,
    params: dict[str, Any] | None = None,
    noun: str = "rows",
) -> int:
    """`write_result` to stdout (or `path`) for a command: a DuckDB error becomes one
    `QueryError` with DuckDB's hints, and a file written is said on stderr."""
    try:
        n = write_result(con, query, fmt, sys.stdout, path, params)
    except duckdb.Error as e:
        raise duckdb_error(e) from e
    if path is not None:
        print(f"{n} {noun} written to {path}", file=sys.stderr)
    return n


def _subquery(query: str) -> str:
    """`query` without its trailing semicolons and comments, to be wrapped in `(...)`.

    A `;` would end the COPY early and a `-- comment` would swallow the closing parenthesis
    (the caller also puts a newline before it); DuckDB's tokenizer tells both apart from the
    same characters inside strings, identifiers and earlier comments.
    """
    end = len(query)
    for start, kind in reversed(duckdb.tokenize(query)):
        if kind != duckdb.token_type.comment and query[start] != ";":
            break
        end = start
    return query[:end]


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")
