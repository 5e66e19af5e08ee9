"""Canonical rows of each chunk, computed one chunk ahead on a second connection.

Three things work at once on a request log: a reader thread reads, decompresses and cuts the
next chunk into lines (lines.py), this module's thread turns the chunk before it into canonical
rows (canonical.py's SELECT, on a connection of its own), and the caller inserts the rows of the
chunk before that inside the file's transaction. The SELECT reads nothing of the case but its
macros (the connection is a `case.db.session`), so it needs no part of that transaction; only
the inserts do, and they stay on the caller's connection.

Files whose secrets are sparse (canonical.dense_secrets) get their rows that need the scrubber
scrubbed here too, in a second pass of the same SELECT over those rows packed together; the
first pass's rows stay in the table marked `_rescrub`, for the caller's statements to skip.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from forensics.case.db import session
from forensics.ingest.lines import BATCH_ROWS, Prepared

Step = Callable[[str], AbstractContextManager[None]]
"""A timer of named steps (pipeline.Timings.step)."""


def canonical_chunks(
    con: duckdb.DuckDBPyConnection,
    chunks: Iterator[Prepared],
    canonical_sql: str,
    params: dict[str, Any],
    step: Step,
) -> Iterator[tuple[Prepared, pa.Table]]:
    """Each prepared chunk with its canonical rows, computed while the caller works on the last
    one. An exception of the worker is raised here; leaving early stops the worker."""
    work = session(con)
    slots: queue.Queue[tuple[Prepared, pa.Table] | BaseException | None] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: tuple[Prepared, pa.Table] | BaseException | None) -> None:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            for prepared in chunks:
                if stop.is_set():
                    return
                put((prepared, _canonical(work, prepared.table, canonical_sql, params, step)))
            put(None)
        except BaseException as e:  # handed to the consumer, raised there
            put(e)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()  # the reader thread stops with it

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        if worker.is_alive():
            work.interrupt()
        worker.join()
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
        marked = pc.filter(canon.column("line_no"), rescrub)
        chunk_lines = chunk_lines.filter(pc.is_in(chunk_lines.column("line_no"), marked))
        chunk_lines = chunk_lines.combine_chunks()  # packed: a few vectors, not one per batch
        scrubbed = work.sql(canonical_sql, params={**params, "dense": True})
        return pa.concat_tables([canon, scrubbed.to_arrow_table(BATCH_ROWS)])
