"""A case's `requests` and `usage` written in the lake's layout, for an engine that reads files.

The layout (docs/lake.md) is the one a lake keeps: a directory per table, under it one per UTC
day of the row's time (`date=YYYY-MM-DD`: `ts` for requests, `bucket_start` for usage; rows
without one under `date=NULL`), Parquet files compressed with zstd whose columns are the
table's, in the order `forensics schema` lists them. Spark, Trino, Athena or DuckDB elsewhere
read it as it is. `forensics detect --engine spark` writes one for the run when the case keeps
its rows in DuckDB, into a directory of its own that it removes afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from forensics.sqltext import sql_str

# table -> the time column whose UTC day partitions it
PARTITIONED = {"requests": "ts", "usage": "bucket_start"}
PARTITION = "date"


def write_snapshot(
    con: duckdb.DuckDBPyConnection, out: Path, memory_limit: str | None = None
) -> dict[str, int]:
    """Write every partitioned table of the case under `out` (a new or empty directory); the
    rows written per table. `con` must be allowed to write files (not yet sandboxed);
    `memory_limit` bounds DuckDB meanwhile (e.g. "25%"), else the connection's own holds."""
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise FileExistsError(f"{out}: not empty; a snapshot goes into a directory of its own")
    written: dict[str, int] = {}
    with _bounded(con, memory_limit):
        for table in PARTITIONED:
            written[table] = copy_partitioned(con, table, f"SELECT * FROM {table}", out / table)
    return written


def copy_partitioned(
    con: duckdb.DuckDBPyConnection,
    table: str,
    select: str,
    target: Path,
    params: dict[str, object] | None = None,
) -> int:
    """Write the rows of `select` (rows of `table`) as the layout's day directories and files
    under `target`; how many rows. Rows in any order (a file's order means nothing here) and
    row groups of 65,536: DuckDB then writes the day partitions within a memory limit (2 GiB
    for 10M requests; it fails at the defaults)."""
    column = PARTITIONED[table]
    with _bounded(con, None):
        [(rows,)] = con.execute(
            f"COPY (SELECT *, strftime({column} AT TIME ZONE 'UTC', '%Y-%m-%d') AS {PARTITION}"
            f" FROM ({select})) TO {sql_str(str(target))}"
            f" (FORMAT parquet, COMPRESSION zstd, PARTITION_BY ({PARTITION}),"
            " FILENAME_PATTERN 'part-{uuid}', ROW_GROUP_SIZE 65536)",
            params or {},
        ).fetchall()
    return int(rows)


@contextmanager
def _bounded(con: duckdb.DuckDBPyConnection, memory_limit: str | None) -> Iterator[None]:
    """Rows in any order, no progress bar and (if given) `memory_limit` meanwhile; the
    connection's settings are put back afterwards."""
    names = ["preserve_insertion_order", "enable_progress_bar"]
    names += ["memory_limit"] if memory_limit is not None else []
    kept = {name: _setting(con, name) for name in names}
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    if memory_limit is not None:
        con.execute(f"SET memory_limit = {sql_str(memory_limit)}")
    try:
        yield
    finally:
        for name, value in kept.items():
            con.execute(f"SET {name} = {sql_str(value)}")


def _setting(con: duckdb.DuckDBPyConnection, name: str) -> str:
    [(value,)] = con.execute("SELECT current_setting($n)", {"n": name}).fetchall()
    return str(value).lower() if isinstance(value, bool) else str(value)
