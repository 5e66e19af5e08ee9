"""Canonical rows of each chunk, computed one chunk ahead on a second connection.

Three things work at once on a request log: a reader thread reads, decompresses and cuts the
next chunk into lines (lines.py), this module's thread turns the chunk before it into canonical
rows (canonical.py's SELECT, on a connection of its own), and the caller inserts the rows of the
chunk before that inside the file's transaction. The SELECT reads nothing of the case but its
macros (the connection is a `case.db.session`), so it needs no part of that transaction; only
the inserts do, and they stay on the caller's connection.

Files whose secrets are sparse (canonical.dense_secrets) get their rows that need the scrubber
scrubbed here too, in a second pass of the same SELECT over the lines they come from, packed
together; the first pass's rows of those lines stay in the table marked `_rescrub`, for the
caller's statements to skip.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import AbstractContextManager
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from forensics.case.db import session
from forensics.ingest.lines import BATCH_ROWS, Prepared, ahead

Step = Callable[[str], AbstractContextManager[None]]
"""A timer of named steps (pipeline.Timings.step)."""


def canonical_chunks(
    con: duckdb.DuckDBPyConnection,
    chunks: Generator[Prepared, None, None],
    canonical_sql: str,
    params: dict[str, Any],
    step: Step,
) -> Generator[tuple[Prepared, pa.Table], None, None]:
    """Each prepared chunk with its canonical rows, computed while the caller works on the last
    one (lines.ahead). An exception of the worker is raised here; leaving early stops it."""
    work = session(con)

    def produce() -> Generator[tuple[Prepared, pa.Table], None, None]:
        try:
            for prepared in chunks:
                yield prepared, _canonical(work, prepared.table, canonical_sql, params, step)
        finally:
            chunks.close()  # the reader thread stops with it

    try:
        yield from ahead(produce(), interrupt=work.interrupt)
    finally:
        work.close()


def _canonical(
    work: duckdb.DuckDBPyConnection,
    chunk_lines: pa.Table,
    canonical_sql: str,
    params: dict[str, Any],
    step: Step,
) -> pa.Table:
    """The chunk's canonical rows (`chunk_lines` is read by the SQL: a replacement scan)."""
    with step("staging + canonical columns"):
        canon = work.sql(canonical_sql, params=params).to_arrow_table(batch_size=BATCH_ROWS)
    rescrub = canon.column("_rescrub")
    if not pc.any(rescrub).as_py():
        return canon
    with step("scrubbing the rows that need it"):
        # whole lines go again: a line may hold several records (a JSON array, a one-line
        # document), and each must come from one pass only
        marked = pc.filter(canon.column("line_no"), rescrub)
        again = pc.is_in(canon.column("line_no"), marked)
        canon = canon.set_column(canon.schema.get_field_index("_rescrub"), "_rescrub", again)
        chunk_lines = chunk_lines.filter(pc.is_in(chunk_lines.column("line_no"), marked))
        chunk_lines = chunk_lines.combine_chunks()  # packed: a few vectors, not one per batch
        scrubbed = work.sql(canonical_sql, params={**params, "dense": True})
        return pa.concat_tables([canon, scrubbed.to_arrow_table(BATCH_ROWS)])
