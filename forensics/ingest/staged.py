"""Canonical rows of each chunk, computed one chunk ahead on a second connection.

Three things work at once on a request log: a reader thread reads, decompresses and cuts the
next chunk into lines (lines.py), this module's thread turns the chunk before it into canonical
rows (canonical.py's SELECT, on a connection of its own), and the caller inserts the rows of the
chunk before that inside the file's transaction. The SELECT reads nothing of the case but its
macros (the connection is a `case.db.session`), so it needs no part of that transaction; only
the inserts do, and they stay on the caller's connection.

Files whose secrets are sparse (canonical.dense_secrets) get their rows that need the scrubber
scrubbed here too, in a second pass of the same SELECT over the lines they come from, packed
together; the first pass's rows of those lines stay in the chunk's table marked `_rescrub`, for
the caller's statements to skip. The second pass waits for the lines of several chunks (up to
RESCRUB_LINES, else the end of the file) and comes as an item of its own, with no lines of the
file's to account for: each pass pays for planning the SELECT again, a fixed ~0.2 s.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Generator
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from forensics.case.db import session
from forensics.ingest.lines import BATCH_ROWS, Prepared, ahead

Step = Callable[[str], AbstractContextManager[None]]
"""A timer of named steps (pipeline.Timings.step)."""

# `_rows` takes the rows of an executed statement, which DuckDB copies once more on the way to
# Arrow, and says so. On a chunk of payload-heavy records that copy is far cheaper than planning
# the canonical SELECT twice; on a web log's 566,000-row chunk the two cost about the same.
warnings.filterwarnings(
    "ignore", "Arrow output on a DB-API result", UserWarning, r"forensics\.ingest\.staged"
)

# Lines whose rows wait for the scrubber's pass, at most (a file's sparse secrets may not stay
# sparse: this bounds the memory they hold).
RESCRUB_LINES = 100_000


def canonical_chunks(
    con: duckdb.DuckDBPyConnection,
    chunks: Generator[Prepared, None, None],
    canonical_sql: str,
    params: dict[str, Any],
    step: Step,
) -> Generator[tuple[Prepared, pa.Table], None, None]:
    """Each prepared chunk with its canonical rows, computed while the caller works on the last
    one (lines.ahead), and now and then the scrubbed rows of lines held back (a Prepared with
    no lines of the file's, no blank or bad lines, at the last chunk's offset). An exception of
    the worker is raised here; leaving early stops it."""
    work = session(con)

    def produce() -> Generator[tuple[Prepared, pa.Table], None, None]:
        held: list[pa.Table] = []
        last: Prepared | None = None
        try:
            for last in chunks:
                canon, marked = _first_pass(work, last.table, canonical_sql, params, step)
                yield last, canon
                if marked.num_rows:
                    held.append(marked)
                if sum(t.num_rows for t in held) >= RESCRUB_LINES:
                    yield _second_pass(work, last, held, canonical_sql, params, step)
                    held = []
            if held and last is not None:
                yield _second_pass(work, last, held, canonical_sql, params, step)
        finally:
            chunks.close()  # the reader thread stops with it

    try:
        yield from ahead(produce(), interrupt=work.interrupt)
    finally:
        work.close()


def _first_pass(
    work: duckdb.DuckDBPyConnection,
    chunk_lines: pa.Table,
    canonical_sql: str,
    params: dict[str, Any],
    step: Step,
) -> tuple[pa.Table, pa.Table]:
    """The chunk's canonical rows (`chunk_lines` is read by the SQL: a replacement scan), and
    the lines whose rows need the scrubber's pass."""
    with step("staging + canonical columns"):
        canon = _rows(work, chunk_lines, canonical_sql, params)
    rescrub = canon.column("_rescrub")
    if not pc.any(rescrub).as_py():
        return canon, chunk_lines.schema.empty_table()
    # whole lines go again: a line may hold several records (a JSON array, a one-line
    # document), and each must come from one pass only
    marked = pc.filter(canon.column("line_no"), rescrub)
    again = pc.is_in(canon.column("line_no"), marked)
    canon = canon.set_column(canon.schema.get_field_index("_rescrub"), "_rescrub", again)
    return canon, chunk_lines.filter(pc.is_in(chunk_lines.column("line_no"), marked))


def _second_pass(
    work: duckdb.DuckDBPyConnection,
    last: Prepared,
    held: list[pa.Table],
    canonical_sql: str,
    params: dict[str, Any],
    step: Step,
) -> tuple[Prepared, pa.Table]:
    """The held lines' rows, every string through the scrubber ($dense)."""
    with step("scrubbing the rows that need it"):
        # packed: a few vectors, not one per batch
        chunk_lines = pa.concat_tables(held).combine_chunks()
        canon = _rows(work, chunk_lines, canonical_sql, {**params, "dense": True})
    nothing = replace(last.chunk, data=b"", line_count=0, bad_lines=[])
    return Prepared(nothing, chunk_lines, 0), canon


def _rows(
    work: duckdb.DuckDBPyConnection, chunk_lines: pa.Table, sql: str, params: dict[str, Any]
) -> pa.Table:
    """The rows of `sql` over `chunk_lines` (a replacement scan: DuckDB finds the table among
    this frame's local variables). Executed, not made a relation: `work.sql` binds and
    optimises a SELECT to describe it, then again to run it, ~0.1 s each time for this one."""
    return work.execute(sql, params).to_arrow_table(BATCH_ROWS)
