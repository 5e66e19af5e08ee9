"""`forensics compact`: merge the small files of a lake's days into one file per day.

Every ingest writes its own file per day it has rows of, so a month of hourly log files leaves
hundreds of files per day, and a query opens each. `compact` rewrites each day that has more
than one file as one file, its rows ordered by time (so that a query for a few hours reads a
few row groups of it), in one transaction: the new files are listed and the old ones unlisted
in one COMMIT (forensics/lake/store.py), and the old ones deleted after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

import duckdb

from forensics.errors import UsageError
from forensics.lake import store
from forensics.lake.snapshot import PARTITIONED


@dataclass(frozen=True)
class Compacted:
    """What compacting one table did."""

    table: str
    days: int  # days rewritten
    files_before: int  # files of those days before
    files_after: int  # and after
    rows: int  # rows rewritten


def compact(con: duckdb.DuckDBPyConnection) -> list[Compacted]:
    """Merge each day's files of each lake table into one (module docstring)."""
    root = store.lake_dir(con)
    if root is None:
        raise UsageError(
            "this case keeps its rows in its database file: there is no lake to compact",
            hint="a case created with --lake DIR keeps them as Parquet files",
        )
    con.execute("BEGIN TRANSACTION")
    try:
        done = [_compact_table(con, table, column) for table, column in PARTITIONED.items()]
        store.commit(con)
    except BaseException:
        store.rollback(con)
        raise
    return done


def _compact_table(con: duckdb.DuckDBPyConnection, table: str, column: str) -> Compacted:
    days: dict[str, list[str]] = {}
    for path in store.files(con, table):
        days.setdefault(str(PurePosixPath(path).parent), []).append(path)
    crowded = [paths for paths in days.values() if len(paths) > 1]
    before = after = rows = 0
    for paths in crowded:
        [(n,)] = con.execute(f"SELECT count(*) FROM {store.scan(con, paths)}").fetchall()
        added = store.write(con, table, f"SELECT * FROM {store.scan(con, paths)} ORDER BY {column}")
        store.unlist(con, table, paths)
        before, after, rows = before + len(paths), after + added, rows + int(n)
    if crowded:
        store.refresh_views(con)
    return Compacted(table, len(crowded), before, after, rows)
