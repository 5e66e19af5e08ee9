"""Writing query results: a readable table, CSV, JSON, JSON lines or Parquet."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import re
import shutil
import sys
import tempfile
import unicodedata
import uuid
from pathlib import Path
from typing import Any, TextIO

import duckdb

from forensics.errors import UsageError, duckdb_error
from forensics.sqltext import sql_ident
from forensics.times import display_zone

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


# Characters a terminal acts on instead of showing (C0 and C1 controls: ANSI escapes, carriage
# return, backspace) or that reorder or hide text (bidi overrides, zero-width characters).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def terminal_safe(text: str) -> str:
    """`text` with every control or invisible formatting character shown as `<U+XXXX>`
    (a newline as `\\n`), so that a log string cannot drive the terminal it is printed on."""
    text = text.replace("\n", "\\n").replace("\t", " ")
    return _UNPRINTABLE.sub(lambda m: f"<U+{ord(m.group()):04X}>", text)


def _cell(value: Any, max_cell: int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):  # to the second, in the style of DuckDB's CSV and JSON
        if not value.tzinfo:
            return value.strftime("%Y-%m-%d %H:%M:%S")
        shown = value.astimezone(display_zone())
        offset = shown.strftime("%z")  # +0100 -> +01, +0530 -> +05:30
        offset = offset[:3] if offset.endswith("00") else f"{offset[:3]}:{offset[3:]}"
        stamp: str = shown.strftime("%Y-%m-%d %H:%M:%S")
        return stamp + offset
    if isinstance(value, float):
        value = round(value, 2) if abs(value) >= 1 else float(f"{value:.3g}")
    text = json.dumps(_plain(value)) if isinstance(value, dict | list) else str(_plain(value))
    text = terminal_safe(text)
    return text if max_cell is None or len(text) <= max_cell else text[: max_cell - 1] + "…"


def select_columns(query: str, given: str, available: tuple[str, ...] | list[str]) -> str:
    """`query` keeping only the comma-separated columns `given` (`--columns`), in that order;
    a name the command does not have is a usage error listing the ones it has."""
    wanted = [c.strip() for c in given.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in available]
    if unknown or not wanted:
        raise UsageError(
            f"--columns: no column {', '.join(repr(c) for c in unknown) or 'given'}",
            hint="choose from " + ", ".join(available),
        )
    return f"SELECT {', '.join(wanted)} FROM ({query})"


def usd_cell(column: str) -> str:
    """SQL for a dollar amount in a terminal table: cents, and `<0.01` for less than a cent
    but more than nothing (csv and json keep the exact number)."""
    return (
        f"CASE WHEN {column} IS NULL THEN NULL WHEN {column} > 0 AND {column} < 0.005"
        f" THEN '<0.01' ELSE printf('%.2f', {column}) END"
    )


MIN_WIDTH = 24  # a text column is cut down to no less than this before columns are left out


def _whole(name: str) -> bool:
    """Columns never cut: ids and principals are copied from a table into the next command,
    and a time cut short is a different time."""
    return name in ("id", "type", "ts") or name.endswith(
        ("_id", "_type", "_at", "_seen", "_start", "_end")
    )


def table_width(out: TextIO) -> int | None:
    """The width a table on `out` must fit: $COLUMNS when set, else the terminal's when `out`
    is one; None (no limit) when the table goes to a pipe or a file."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if out.isatty():
            return shutil.get_terminal_size().columns
    except (AttributeError, ValueError, OSError):
        pass
    return None


def _columns(text: str) -> int:
    """Terminal columns `text` takes: East Asian wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _fit(names: list[str], widths: list[int], limit: int) -> tuple[list[int], list[int]]:
    """(columns kept, their widths) so that a table whose columns are `widths` wide fits
    `limit` characters: the widest text columns are cut first (ids never, the others down to
    MIN_WIDTH), then the last columns are left out, the columns being in order of importance."""
    widths = list(widths)
    kept = list(range(len(names)))

    def total() -> int:
        return sum(widths[i] for i in kept) + 2 * (len(kept) - 1)

    while total() > limit:
        cuttable = [
            i
            for i in kept
            if not _whole(names[i]) and widths[i] > max(MIN_WIDTH, _columns(names[i]))
        ]
        if cuttable:
            widest = max(cuttable, key=lambda i: widths[i])
            floor = max(MIN_WIDTH, _columns(names[widest]))
            widths[widest] = max(floor, widths[widest] - (total() - limit))
        elif len(kept) > 1:
            kept.pop()
        else:
            widths[kept[0]] = max(1, limit)
            break
    return kept, [widths[i] for i in kept]


def _cut(text: str, width: int) -> str:
    """`text` in at most `width` columns (cut with `…`), padded to `width`."""
    if _columns(text) > width:
        out, used = "", 0
        for c in text:
            w = _columns(c)
            if used + w > width - 1:
                break
            out, used = out + c, used + w
        text = out + "…"
    return text + " " * (width - _columns(text))


def write_table(
    names: list[str],
    rows: list[tuple[Any, ...]],
    out: TextIO,
    width: int | None = None,
    cut_cells: bool = True,
) -> None:
    """An aligned text table; it fits `width` characters (default: `table_width(out)`; 0: no
    limit), the columns left out to fit named on stderr; cells longer than MAX_CELL are cut
    unless `cut_cells` is False."""
    cells = [[_cell(v, MAX_CELL if cut_cells else None) for v in row] for row in rows]
    names = [terminal_safe(n) for n in names]
    limit = width if width is not None else table_width(out)
    widths = [max([_columns(n)] + [_columns(r[i]) for r in cells]) for i, n in enumerate(names)]
    kept = list(range(len(names)))
    if limit:
        kept, widths = _fit(names, widths, limit)
    columns = list(zip(kept, widths, strict=True))
    out.write("  ".join(_cut(names[i], w) for i, w in columns).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for r in cells:
        out.write("  ".join(_cut(r[i], w) for i, w in columns).rstrip() + "\n")
    left = [names[i] for i in range(len(names)) if i not in kept]
    if left:
        print(
            f"({len(left)} column{'s' if len(left) > 1 else ''} left out to fit {limit}"
            f" characters: {', '.join(left)}; --format csv or json has them all)",
            file=sys.stderr,
        )


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
    *,
    raw_csv: bool = False,
) -> int:
    """Run `query` and write its rows; returns the row count.

    Every format but `table` is written by DuckDB's COPY, streaming, at DuckDB's speed: to the
    file asked for, or to a temporary file that is then copied to `out`. CSV text cells that a
    spreadsheet would run as a formula are neutralised unless `raw_csv` (`csv_safe`).
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
    if fmt == "csv" and not raw_csv:
        query = csv_safe(con, query, params)
    with tempfile.TemporaryDirectory() as tmp:
        target = path if path is not None else Path(tmp) / f"out.{fmt}"
        copied = _copy(con, query, target, fmt, params)
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
    *,
    raw_csv: bool = False,
) -> int:
    """`write_result` to stdout (or `path`) for a command: a DuckDB error becomes one
    `QueryError` with DuckDB's hints, and a file written is said on stderr."""
    try:
        n = write_result(con, query, fmt, sys.stdout, path, params, raw_csv=raw_csv)
    except duckdb.Error as e:
        raise duckdb_error(e) from e
    if path is not None:
        print(f"{n} {noun} written to {path}", file=sys.stderr)
    return n


# OWASP's rule for CSV injection: a cell starting with one of these is a formula to Excel,
# LibreOffice and Google Sheets; a leading single quote makes it text.
_FORMULA_START = r"^[=+\-@\t\r]"


def csv_safe(
    con: duckdb.DuckDBPyConnection, query: str, params: dict[str, Any] | None = None
) -> str:
    """`query` with every text column's formula-like cells prefixed by `'` (numbers, times and
    other types are left alone: a negative number is not a formula)."""
    columns = con.execute(f"DESCRIBE ({_subquery(query)}\n)", params).fetchall()
    if not any(str(c[1]) == "VARCHAR" for c in columns):
        return query
    cells = []
    for position, (name, kind, *_) in enumerate(columns, start=1):
        quoted = sql_ident(str(name))
        cell = f"#{position}"  # by position: a query may repeat a column name
        if str(kind) == "VARCHAR":
            cell = (
                f"CASE WHEN regexp_matches({cell}, '{_FORMULA_START}')"
                f" THEN chr(39) || {cell} ELSE {cell} END"
            )
        cells.append(f"{cell} AS {quoted}")
    return f"SELECT {', '.join(cells)} FROM ({_subquery(query)}\n) AS _result"


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


def _copy(
    con: duckdb.DuckDBPyConnection,
    query: str,
    target: Path,
    fmt: str,
    params: dict[str, Any] | None,
) -> list[tuple[Any, ...]]:
    """COPY the rows of `query` to `target`; the result of the COPY (its row count).

    A sandboxed connection (`case.db.sandbox`: external access off) cannot write a file, and
    must not be given a way to. Its rows then stream as Arrow batches into a private in-memory
    connection that runs only this COPY: the query runs where it cannot reach the machine, the
    file is written where no query text runs, and the bytes are those of a direct COPY (the
    sandbox keeps JSON columns typed through Arrow).
    """
    options = _COPY_FORMATS[fmt]
    from forensics.case.db import external_access

    if external_access(con):
        return con.execute(
            f"COPY ({_subquery(query)}\n) TO '{_quote(target)}' ({options})", params
        ).fetchall()
    [(zone,)] = con.execute("SELECT current_setting('TimeZone')").fetchall()
    rows = con.sql(_subquery(query), params=params).to_arrow_reader()
    writer = duckdb.connect()
    try:
        writer.execute(f"SET TimeZone = '{str(zone).replace(chr(39), chr(39) * 2)}'")
        writer.register("_rows", rows)
        return writer.execute(f"COPY _rows TO '{_quote(target)}' ({options})").fetchall()
    finally:
        writer.close()


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")
