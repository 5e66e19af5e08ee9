"""A case's `requests` and `usage` written in the lake's layout, for an engine that reads files.

The layout (docs/lake.md) is the one a lake keeps: a directory per table, under it one per UTC
day of the row's time (`date=YYYY-MM-DD`: `ts` for requests, `bucket_start` for usage; rows
without one under `date=NULL`), Parquet files compressed with zstd whose columns are the
table's, in the order `forensics schema` lists them. Spark, Trino, Athena or DuckDB elsewhere
read it as it is. `forensics detect --engine spark` writes one for the run when the case keeps
its rows in DuckDB, into a directory of its own that it removes afterwards.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

# table -> the time column whose UTC day partitions it
PARTITIONED = {"requests": "ts", "usage": "bucket_start"}
PARTITION = "date"


def write_snapshot(con: duckdb.DuckDBPyConnection, out: Path) -> dict[str, int]:
    """Write every partitioned table of the case under `out` (a new or empty directory); the
    rows written per table. `con` must be allowed to write files (not yet sandboxed)."""
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise FileExistsError(f"{out}: not empty; a snapshot goes into a directory of its own")
    written: dict[str, int] = {}
    for table, column in PARTITIONED.items():
        target = str(out / table).replace("'", "''")
        [(rows,)] = con.execute(
            f"COPY (SELECT *, strftime({column} AT TIME ZONE 'UTC', '%Y-%m-%d') AS {PARTITION}"
            f" FROM {table}) TO '{target}'"
            f" (FORMAT parquet, COMPRESSION zstd, PARTITION_BY ({PARTITION}),"
            " FILENAME_PATTERN 'part-{uuid}')"
        ).fetchall()
        written[table] = int(rows)
    return written
