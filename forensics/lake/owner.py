"""Which case file a lake belongs to, and whether that file is the newest copy of the case.

A lake's marker file (`DIR/_forensics_lake`) holds two lines: the id the lake shares with its
case (`meta.lake_id`, random, made when the case is created) and the lake's change number.
The case counts the changes to its lake's listing in `meta.lake_change`, increased in the
transaction that changes the listing; the marker is rewritten once that transaction has
committed. A transaction that leaves the lake alone (an ingest of a revocation list, every
detect) changes neither.

A copy of the case file (a backup, a colleague's copy) shares its lake with the original.
While neither changes the lake, both read it alike. Once one of them changes it, the marker
runs ahead of the other: that one may still be read, but not opened for writing, since its
open would delete as debris the files the newer copy added (`store.collect`). A process
killed after its COMMIT and before the marker was rewritten leaves the marker behind the
case: the next read-write open brings it up to date.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb

from forensics.errors import CaseError

MARKER = "_forensics_lake"


def _meta(con: duckdb.DuckDBPyConnection, key: str, default: str) -> str:
    found = con.execute("SELECT value FROM meta WHERE key = $k", {"k": key}).fetchall()
    return str(found[0][0]) if found else default


def lake_id(con: duckdb.DuckDBPyConnection) -> str:
    return _meta(con, "lake_id", "")


def change(con: duckdb.DuckDBPyConnection) -> int:
    """How many lake changes the case behind `con` has committed."""
    return int(_meta(con, "lake_change", "0"))


def count_change(con: duckdb.DuckDBPyConnection) -> None:
    """Inside a transaction changing the lake's listing: the case's change number, one up."""
    number = change(con) + 1
    con.execute("DELETE FROM meta WHERE key = 'lake_change'")
    con.execute("INSERT INTO meta VALUES ('lake_change', $n)", {"n": str(number)})


def read(root: Path) -> tuple[str, int] | None:
    """The marker's (lake id, change number); None when there is no marker."""
    try:
        lines = (root / MARKER).read_text(encoding="utf-8").split()
    except FileNotFoundError:
        return None
    if not lines:
        return ("", 0)
    number = lines[1] if len(lines) > 1 else "0"
    return (lines[0], int(number) if number.isdigit() else 0)


def write(root: Path, owner: str, number: int) -> None:
    """Replace the marker in one rename, flushed to disk."""
    fresh = root / f"{MARKER}.new"
    with fresh.open("w", encoding="utf-8") as f:
        f.write(f"{owner}\n{number}\n")
        f.flush()
        os.fsync(f.fileno())
    fresh.replace(root / MARKER)
    sync_dir(root)


def advance(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    """After a COMMIT: the marker says the case's change number (rewritten only if not)."""
    number, found = change(con), read(root)
    if found is None or found[1] != number:
        write(root, lake_id(con), number)


def quietly(step: Callable[[], object], what: str) -> None:
    """Do `step`, a cleanup after a COMMIT, where a failure must not read as a failure of the
    committed change: an OSError is a warning saying `what` was not done; the next read-write
    open of the case does it (`check` writes the marker, `store.collect` deletes debris)."""
    try:
        step()
    except OSError as e:
        print(
            f"warning: lake: {what} ({e.strerror}); the next read-write open of the case does it",
            file=sys.stderr,
        )


def sync_dir(folder: Path) -> None:
    """Flush a directory's entries (a rename or a new file in it) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check(con: duckdb.DuckDBPyConnection, root: Path, read_only: bool, *, empty: bool) -> None:
    """The lake at `root` is this case's, and for a read-write open, this case file is the
    newest copy of the case: a CaseError if not. `empty`: the case lists no lake file (a lake
    gets its marker at its case's first read-write open)."""
    owner, mine = lake_id(con), change(con)
    found = read(root)
    if found is None and empty:
        if read_only:
            return
        root.mkdir(parents=True, exist_ok=True)
        write(root, owner, mine)
        return
    if found is None or found[0] != owner:
        raise CaseError(
            f"{root}: this case's lake is missing or belongs to another case",
            hint="restore the lake directory beside the case, or open the case it belongs to",
        )
    if read_only:
        return
    if found[1] > mine:
        raise CaseError(
            f"{root}: the lake has changed since this case file last changed it (lake at change"
            f" {found[1]}, this file at {mine}): this file is an older copy of the case",
            hint="open the copy of the case that changed the lake last; this one can still be"
            " read (sql, reports, verify), but writing it would discard the newer copy's files",
        )
    if found[1] < mine:  # killed between its COMMIT and the marker's update
        write(root, owner, mine)
