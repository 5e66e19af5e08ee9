"""A case that keeps its `requests` and `usage` in a lake: Parquet files beside the case file.

`forensics --lake DIR` (given when the case is created; the case records DIR in `meta`) makes
`requests` and `usage` views over Parquet files in DIR, in the layout of docs/lake.md. The case
database keeps everything else, and the list of the lake's files (`lake_files`): the views read
exactly the files listed, nothing found by a glob.

How a change reaches the lake, inside the caller's transaction (ingest, removal, repricing,
`compact`):

* New rows are written as new files under `DIR/_staging/<batch>/`, partitioned by day, and
  listed; the views are re-created over the new listing, so the rest of the transaction reads
  them (an ingest's checks and digests, a removal's findings).
* Rows are never changed in place: a file that loses or changes rows is replaced by new files
  and dropped from the listing.
* `commit` renames the staged files into place (`DIR/requests/date=.../part-<uuid>.parquet`),
  lists them there, COMMITs, and only then deletes the files no longer listed. `rollback`
  ROLLBACKs and deletes what the transaction wrote.

The COMMIT of the listing is the one step that makes a change visible, so a process killed at
any point leaves the case as it was before the transaction or as after it, never between: the
files it wrote or renamed are not listed, and the next read-write open of the case deletes
every file in the lake that the case does not list (`collect`). DuckDB lets one process at a
time open a case read-write, and a copy of the case file older than the lake's last change
may not be opened for writing (lake/owner.py), so no newer writer's files are ever taken for
debris. The files are flushed to disk before the COMMIT; a failure after it (deleting the
files it unlisted) is a warning, since the change has been made.

Ingest writes into a TEMP table of the table's name (`appending`), which DuckDB resolves before
the stored view: the loaders' INSERTs are the same for both kinds of case. Statements that
UPDATE rows (repricing, placing requests again) run on a TEMP copy of the whole table the same
way (`rewriting`), which is then written out as the table's new files: a lake pays a rewrite of
the table for them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from forensics.case.schema import table as schema_table
from forensics.errors import CaseError
from forensics.lake import owner
from forensics.lake.snapshot import PARTITIONED, copy_partitioned
from forensics.sqltext import sql_ident, sql_str

STAGING = "_staging"


def lake_dir(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The lake of the case behind `con`, or None when the case keeps its rows itself."""
    found = con.execute("SELECT value FROM meta WHERE key = 'lake_dir'").fetchall()
    return Path(found[0][0]) if found else None


def files(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [
        str(r[0])
        for r in con.execute(
            "SELECT path FROM lake_files WHERE table_name = $t ORDER BY file_no", {"t": table}
        ).fetchall()
    ]


def _empty_select(table: str) -> str:
    """No rows, the table's columns and types (a lake without files yet)."""
    columns = ", ".join(f"CAST(NULL AS {c.type}) AS {c.name}" for c in schema_table(table).columns)
    return f"SELECT {columns} WHERE false"


def scan(con: duckdb.DuckDBPyConnection, paths: list[str]) -> str:
    """A read_parquet() of these files of the case's lake."""
    root = lake_dir(con)
    assert root is not None  # noqa: S101 - callers are lake paths
    return _scan(root, paths)


def _scan(root: Path, paths: list[str]) -> str:
    listed = ", ".join(sql_str(str(root / p)) for p in paths)
    return f"read_parquet([{listed}], hive_partitioning = false)"


def install_request_rows(con: duckdb.DuckDBPyConnection, read_only: bool) -> None:
    """`request_rows`: `request_row`, a number telling the case's requests apart, then every
    column of `requests`; stable until the rows are next written. A table's rowid (the view
    TEMP on a read-only connection); in a lake, the file's place in the listing and the row's
    in the file (`refresh_views` keeps that view with the lake's others)."""
    if lake_dir(con) is None:
        kind = "TEMP VIEW" if read_only else "VIEW"
        con.execute(
            f"CREATE OR REPLACE {kind} request_rows AS SELECT rowid AS request_row, * FROM requests"
        )


def _request_rows_select(root: Path, paths: list[str]) -> str:
    if not paths:
        return f"SELECT NULL::BIGINT AS request_row, * FROM ({_empty_select('requests')})"
    return (
        "SELECT (file_index::BIGINT << 40) | file_row_number AS request_row, *"
        f" FROM {_scan(root, paths)}"
    )


def _stored(con: duckdb.DuckDBPyConnection, name: str) -> str:
    """The case's own view `name`, not a TEMP table standing in for it (`temp.main` is a
    `main` too)."""
    [(database,)] = con.execute("SELECT current_database()").fetchall()
    return f"{sql_ident(str(database))}.main.{name}"


def refresh_views(con: duckdb.DuckDBPyConnection, *, present_only: bool = False) -> None:
    """(Re)create the lake's views over the files listed now. `present_only`: TEMP views of
    the same names over the listed files still on disk, for a reader that reports what is
    missing (`verify`) rather than failing on it."""
    root = lake_dir(con)
    if root is None:
        return
    listing = {t: files(con, t) for t in PARTITIONED}
    if present_only:
        listing = {t: [p for p in paths if (root / p).is_file()] for t, paths in listing.items()}

    def view(name: str) -> str:
        return f"TEMP VIEW {name}" if present_only else f"VIEW {_stored(con, name)}"

    for table, paths in listing.items():
        select = f"SELECT * FROM {_scan(root, paths)}" if paths else _empty_select(table)
        con.execute(f"CREATE OR REPLACE {view(table)} AS {select}")
    select = _request_rows_select(root, listing["requests"])
    con.execute(f"CREATE OR REPLACE {view('request_rows')} AS {select}")


def create(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    """Make the case being created (inside its creating transaction) keep its rows in `root`,
    a new or empty directory."""
    root = root.resolve()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise CaseError(
            f"{root}: not an empty directory; a new case's lake needs a directory of its own",
            hint="give --lake a new directory",
        )
    root.mkdir(parents=True, exist_ok=True)
    con.execute(
        "INSERT INTO meta VALUES ('lake_dir', $d), ('lake_id', $i)",
        {"d": str(root), "i": uuid.uuid4().hex},
    )
    refresh_views(con)  # the marker file is written once this is committed (`check`)


def check(con: duckdb.DuckDBPyConnection, given: Path | None, read_only: bool) -> None:
    """The case's lake is there, is the one `--lake` names (if given) and, for a read-write
    open, has not been changed by a newer copy of the case file (lake/owner.py): a CaseError
    if not."""
    root = lake_dir(con)
    if root is None:
        if given is not None:
            raise CaseError(
                "this case keeps its rows in its database file: --lake applies to a case being"
                " created",
                hint="start a new case (--db NEW.duckdb --lake DIR) to keep its rows in a lake",
            )
        return
    if given is not None and given.resolve() != root:
        raise CaseError(
            f"this case's lake is {root}, not the --lake given",
            hint="leave --lake out: the case remembers its lake",
        )
    empty = not files(con, "requests") and not files(con, "usage")
    owner.check(con, root, read_only, empty=empty)


def allow_reads(con: duckdb.DuckDBPyConnection) -> None:
    """Let the case's connections read the lake even once sandboxed (which stops every other
    file access); call before `db.sandbox`."""
    root = lake_dir(con)
    if root is not None:
        con.execute(f"SET allowed_directories = [{sql_str(str(root) + os.sep)}]")


def write(
    con: duckdb.DuckDBPyConnection, table: str, select: str, params: dict[str, object] | None = None
) -> int:
    """Write the rows of `select` as new staged files of `table` and list them; how many
    files."""
    root = lake_dir(con)
    assert root is not None  # noqa: S101 - callers are lake paths
    batch = Path(STAGING) / uuid.uuid4().hex / table
    (root / batch).parent.mkdir(parents=True, exist_ok=True)
    copy_partitioned(con, table, select, root / batch, params)
    written = sorted(p.relative_to(root) for p in (root / batch).rglob("*.parquet"))
    if written:
        con.execute(
            "INSERT INTO lake_files SELECT $t, unnest($paths), now(),"
            " (SELECT coalesce(max(file_no), 0) FROM lake_files) + generate_subscripts($paths, 1)",
            {"t": table, "paths": [str(p) for p in written]},
        )
        owner.count_change(con)
    return len(written)


def unlist(con: duckdb.DuckDBPyConnection, table: str, paths: list[str]) -> None:
    if paths:
        owner.count_change(con)
    con.execute(
        "DELETE FROM lake_files WHERE table_name = $t AND list_contains($p, path)",
        {"t": table, "p": paths},
    )


def _shadowed(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether a TEMP table of this name stands in for the view now (appending, rewriting)."""
    [(n,)] = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name = $t", {"t": table}
    ).fetchall()
    return bool(n)


def _shadow(con: duckdb.DuckDBPyConnection, table: str, copy: bool) -> None:
    ddl = schema_table(table).ddl().replace("CREATE TABLE IF NOT EXISTS", "CREATE TEMP TABLE", 1)
    con.execute(ddl)
    if copy:
        con.execute(f"INSERT INTO temp.{table} SELECT * FROM {_stored(con, table)}")


@contextmanager
def appending(
    con: duckdb.DuckDBPyConnection, table: str, source_id: int, *, see_all: bool = False
) -> Iterator[None]:
    """Around a loader that INSERTs source `source_id`'s rows into `table`: in a lake, the rows
    go into a TEMP table of that name and are written as the source's files when the loader
    returns. `see_all`: the TEMP table starts as a copy of the table, for a loader that reads
    the rows already there (usage's dedupe); only the source's rows are written."""
    if lake_dir(con) is None or _shadowed(con, table):
        yield
        return
    _shadow(con, table, see_all)  # on an error, the caller's ROLLBACK drops it
    yield
    write(con, table, f"SELECT * FROM temp.{table} WHERE source_id = $s", {"s": source_id})
    con.execute(f"DROP TABLE temp.{table}")
    refresh_views(con)


@contextmanager
def rewriting(con: duckdb.DuckDBPyConnection, table: str) -> Iterator[None]:
    """Around statements that UPDATE or DELETE rows of `table`: in a lake, they work on a TEMP
    copy of the whole table, written out afterwards as its new files (the old ones unlisted)."""
    if lake_dir(con) is None or _shadowed(con, table):
        yield
        return
    _shadow(con, table, copy=True)  # on an error, the caller's ROLLBACK drops it
    yield
    old = files(con, table)
    write(con, table, f"SELECT * FROM temp.{table}")
    unlist(con, table, old)
    con.execute(f"DROP TABLE temp.{table}")
    refresh_views(con)


def delete_source(con: duckdb.DuckDBPyConnection, table: str, source_id: int) -> int:
    """Delete source `source_id`'s rows from `table` (any table with a source_id); how many.
    In a lake, only the files of requests or usage holding some are written again, without
    them."""
    root = lake_dir(con)
    if root is None or table not in PARTITIONED or _shadowed(con, table):
        [(n,)] = con.execute(
            f"DELETE FROM {table} WHERE source_id = $s", {"s": source_id}
        ).fetchall()
        return int(n)
    paths = files(con, table)
    if not paths:
        return 0
    found = con.execute(
        f"SELECT file_index, count(*) FROM {_scan(root, paths)} WHERE source_id = $s"
        " GROUP BY file_index",
        {"s": source_id},
    ).fetchall()
    if not found:
        return 0
    touched = [paths[int(i)] for i, _ in found]
    write(
        con, table, f"SELECT * FROM {_scan(root, touched)} WHERE source_id <> $s", {"s": source_id}
    )
    unlist(con, table, touched)
    refresh_views(con)
    return sum(int(n) for _, n in found)


def commit(con: duckdb.DuckDBPyConnection) -> None:
    """COMMIT the caller's transaction, putting its staged files into place first (flushed to
    disk, so that what the COMMIT lists is there after a power cut) and deleting the files it
    unlisted after (module docstring)."""
    root = lake_dir(con)
    if root is None:
        con.execute("COMMIT")
        return
    staged = [
        str(r[0])
        for r in con.execute(
            "SELECT path FROM lake_files WHERE starts_with(path, $s)", {"s": STAGING + "/"}
        ).fetchall()
    ]
    folders: set[Path] = set()
    for path in staged:
        final = root / _final(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        _sync_file(root / path)
        (root / path).replace(final)
        folders.update((final.parent, final.parent.parent))
    for folder in sorted(folders):
        owner.sync_dir(folder)
    if staged:
        con.execute(
            "UPDATE lake_files SET path = regexp_replace(path, $pattern, '')"
            " WHERE starts_with(path, $s)",
            {"pattern": f"^{STAGING}/[^/]+/", "s": STAGING + "/"},
        )
        refresh_views(con)
    con.execute("COMMIT")
    # committed: what follows cannot undo it, and a failure in it is a warning
    owner.quietly(lambda: owner.advance(con, root), f"{owner.MARKER} not updated")
    tidy(con)


def _sync_file(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def tidy(con: duckdb.DuckDBPyConnection) -> None:
    """`collect`, a failure a warning: what it leaves is never read."""
    owner.quietly(lambda: collect(con), "files no longer listed not all deleted")


def _final(staged: str) -> str:
    """`_staging/<batch>/requests/date=X/part-U.parquet` -> `requests/date=X/part-U.parquet`."""
    return "/".join(staged.split("/")[2:])


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """ROLLBACK the caller's transaction (an error there is ignored: DuckDB may have ended it
    already) and delete the files it wrote."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass
    if lake_dir(con) is not None:
        tidy(con)


def missing(con: duckdb.DuckDBPyConnection) -> list[Path]:
    """The files the case lists that are not in its lake (deleted or moved by hand)."""
    root = lake_dir(con)
    if root is None:
        return []
    listed = [str(r[0]) for r in con.execute("SELECT path FROM lake_files ORDER BY 1").fetchall()]
    return [root / p for p in listed if not (root / p).is_file()]


def collect(con: duckdb.DuckDBPyConnection) -> list[Path]:
    """Delete the Parquet files in the lake that the case does not list (a crashed or rolled
    back transaction's, files a committed one replaced) and the directories left empty; the
    files deleted. Only on a connection that may write the case: no other writer is then at
    work (DuckDB's lock on the case file)."""
    root = lake_dir(con)
    if root is None:
        return []
    listed = {str(r[0]) for r in con.execute("SELECT path FROM lake_files").fetchall()}
    gone = []
    for top in (*PARTITIONED, STAGING):
        base = root / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.parquet")):
            if str(path.relative_to(root)) not in listed:
                path.unlink()
                gone.append(path)
        for folder in sorted((p for p in base.rglob("*") if p.is_dir()), reverse=True):
            if not any(folder.iterdir()):
                folder.rmdir()
    staging = root / STAGING
    if staging.is_dir() and not any(staging.iterdir()):
        staging.rmdir()
    return gone
