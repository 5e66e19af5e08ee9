"""Chunks of lines as the Arrow tables DuckDB scans, prepared on a background thread.

While DuckDB parses one chunk, a reader thread reads, decompresses and cuts the next one into
lines (numpy finds the newlines, Arrow slices them without copying), so both cores work. Lines
that are blank, not UTF-8 or over the record limit are left out here and accounted for by the
caller (blank count, quarantine).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from forensics.ingest import decompress, reader

# Rows per Arrow batch handed to DuckDB: small enough that both cores get work in a chunk.
BATCH_ROWS = 2048
T = TypeVar("T")


def prepared_chunks(
    path: Path, end: decompress.ReadEnd, document: bool
) -> Generator[Prepared, None, None]:
    """Read, decompress and cut the next chunk while DuckDB parses this one."""

    def produce() -> Generator[Prepared, None, None]:
        source = reader.read_json_document(path, end) if document else reader.read_chunks(path, end)
        for chunk in source:
            yield prepare(chunk)

    return ahead(produce())


_DONE = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def ahead(
    produce: Generator[T, None, None], interrupt: Callable[[], None] | None = None
) -> Generator[T, None, None]:
    """`produce`'s items, each made on a thread of its own while the caller works on the one
    before (one item waits at most). An exception of `produce` is raised here, in the caller.
    When the caller stops early or fails, `interrupt` (if any) cuts short the item in progress,
    and `produce` is closed on its own thread, so its `finally` runs there."""
    slots: queue.Queue[object] = queue.Queue(maxsize=1)
    stop = threading.Event()  # set when the consumer is done, even by an exception

    def put(item: object) -> None:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def run() -> None:
        try:
            for item in produce:
                if stop.is_set():
                    return
                put(item)
            put(_DONE)
        except BaseException as e:  # handed to the consumer, raised there
            put(_Failed(e))
        finally:
            produce.close()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                break
            if isinstance(item, _Failed):
                raise item.error
            yield cast(T, item)
    finally:
        stop.set()
        if interrupt is not None and worker.is_alive():
            interrupt()
        worker.join()


def split_lines(data: bytes | bytearray) -> tuple[pa.Array, np.ndarray]:
    """The lines of `data` as an Arrow array without their "\n" / "\r\n", and their lengths.

    One Arrow kernel splits the text at its newlines (memchr speed, a single copy of the
    bytes), after one cast of the whole buffer has checked that it is UTF-8 (it raises
    pa.ArrowInvalid when a line is not). A chunk without a carriage return skips the second
    kernel that drops them.
    """
    if not data.endswith(b"\n"):
        data = bytes(data) + b"\n"
    span = pa.py_buffer(np.array([0, len(data)], dtype=np.int64))
    whole = pa.LargeBinaryArray.from_buffers(pa.large_binary(), 1, [None, span, pa.py_buffer(data)])
    parts = pc.split_pattern(whole.cast(pa.large_string()), "\n").flatten()
    lines = parts.slice(0, len(parts) - 1)  # what follows the last newline: nothing
    lengths = pc.binary_length(lines).to_numpy()
    if data.find(b"\r") >= 0:
        has_cr = pc.ends_with(lines, "\r").to_numpy(zero_copy_only=False)
        lengths = lengths - has_cr
        lines = pc.utf8_rtrim(lines, characters="\r")
    return lines, lengths


@dataclass
class Prepared:
    """A chunk as DuckDB will scan it: non-blank lines in small Arrow record batches."""

    chunk: reader.Chunk
    table: pa.Table
    blank: int


def prepare(chunk: reader.Chunk) -> Prepared:
    """Cut the chunk into lines (on the reader thread, while DuckDB works on the last one).

    DuckDB scans the record batches in parallel without copying them. Only a chunk holding
    invalid UTF-8 is decoded line by line in Python, to quarantine exactly those lines; lines
    over the record limit are found from the line lengths numpy already has.
    """
    if chunk.line_numbers is not None and not chunk.line_numbers:
        lines, lengths = pa.array([], pa.large_string()), np.zeros(0, dtype=np.int64)
    else:
        try:
            lines, lengths = split_lines(chunk.data)
        except pa.ArrowInvalid:
            lines, lengths = split_lines(chunk.decoded().encode())
    consecutive = chunk.line_numbers is None
    long_lines: list[int] = (
        np.flatnonzero(lengths > chunk.max_record_bytes).tolist() if consecutive else []
    )
    for i in long_lines:  # rare: a record longer than the limit within one chunk
        text = lines[i].as_py()[: reader.RAW_KEPT].encode()
        number = chunk.first_line + i
        chunk.bad_lines.append(reader.too_long(number, text, chunk.max_record_bytes))
    blank = int(np.count_nonzero(lengths == 0))
    chunk.data = b""  # the lines are a copy now: let the raw buffer go
    if chunk.line_numbers is not None:
        numbers = pa.array(chunk.line_numbers, pa.int64())
    else:
        numbers = pa.array(np.arange(chunk.first_line, chunk.first_line + len(lines)))
    table = pa.table({"line_no": numbers, "line": lines})
    if blank or chunk.bad_lines:  # rare: copying the chunk to drop lines is fine then
        keep = lengths > 0
        if consecutive and chunk.bad_lines:  # by position: a record may start with NUL too
            bad = np.array([line for line, _, _ in chunk.bad_lines], dtype=np.int64)
            bad -= chunk.first_line
            keep[bad[(bad >= 0) & (bad < len(keep))]] = False
        table = table.filter(pa.array(keep))
    batches = table.to_batches(max_chunksize=BATCH_ROWS)
    return Prepared(chunk, pa.Table.from_batches(batches, schema=table.schema), blank)
