"""Ingest: one transaction per file, every record accounted for.

For each file: hash it (same content already in the case -> skipped), pick the format, then in
one transaction insert the `sources` row, stream the file through DuckDB chunk by chunk, and
check that read = loaded + quarantined before committing. A crash mid-file leaves nothing of it.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from forensics._version import __version__
from forensics.case.fingerprints import redact
from forensics.errors import ForensicsError, InputError, describe_duckdb_error
from forensics.ingest import canonical, reader
from forensics.ingest.base import Adapter, Counts, Format, Options, quarantine_rows
from forensics.ingest.formats import FORMATS, detect_format

# (bytes of the file consumed, records done) since the last call
Progress = Callable[[int, int], None]
# Rows per Arrow batch handed to DuckDB: small enough that both cores get work in a chunk.
BATCH_ROWS = 2048


class Timings(dict[str, float]):
    """Seconds spent per ingest step, summed over chunks (for benchmarks/profile_ingest.py)."""

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - started


@dataclass
class FileResult:
    path: str
    format: str | None = None
    status: str = "loaded"  # loaded | skipped | failed
    source_id: int | None = None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    lines_blank: int = 0
    rows_skipped: int = 0  # records of a file skipped as already ingested
    message: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def reconciles(self) -> bool:
        return self.rows_read == self.rows_loaded + self.rows_quarantined


def _chunks_in_background(path: Path, end: reader.ReadEnd, document: bool) -> Iterator[Prepared]:
    """Read, decompress and cut the next chunk while DuckDB parses this one."""
    slots: queue.Queue[Prepared | BaseException | None] = queue.Queue(maxsize=1)
    stop = threading.Event()  # set when the consumer is done, even by an exception

    def put(item: Prepared | BaseException | None) -> None:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            source = (
                reader.read_json_document(path, end) if document else reader.read_chunks(path, end)
            )
            for chunk in source:
                if stop.is_set():
                    return
                put(prepare(chunk))
            put(None)
        except BaseException as e:  # handed to the consumer, raised there
            put(e)

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
        worker.join()


def split_lines(data: bytes | bytearray) -> tuple[pa.Array, np.ndarray]:
    """The lines of `data` as an Arrow array without their "\n" / "\r\n", and their lengths.

    numpy finds the newlines; the array first spans the bytes as they are (each line with its
    newline, no copy), then one Arrow kernel drops the last character of every line. Arrow's
    cast checks UTF-8 (it raises pa.ArrowInvalid when a line is not).
    """
    if not data.endswith(b"\n"):
        data = bytes(data) + b"\n"
    b = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(b == 10)
    offsets = np.empty(len(ends) + 1, dtype=np.int64)
    offsets[0] = 0
    offsets[1:] = ends + 1
    has_cr = (ends > offsets[:-1]) & (b[np.maximum(ends - 1, 0)] == 13)
    lengths = ends - offsets[:-1] - has_cr
    raw = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(ends), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    lines = pc.utf8_slice_codeunits(raw.cast(pa.large_string()), 0, -1)
    if has_cr.any():
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
    invalid UTF-8 is decoded line by line in Python, to quarantine exactly those lines.
    """
    if chunk.line_numbers is not None and not chunk.line_numbers:
        lines, lengths = pa.array([], pa.large_string()), np.zeros(0, dtype=np.int64)
    else:
        try:
            lines, lengths = split_lines(chunk.data)
        except pa.ArrowInvalid:
            lines, lengths = split_lines(chunk.decoded().encode())
    blank = int(np.count_nonzero(lengths == 0))
    chunk.data = b""  # the lines are a copy now: let the raw buffer go
    if chunk.line_numbers is not None:
        numbers = pa.array(chunk.line_numbers, pa.int64())
    else:
        numbers = pa.array(np.arange(chunk.first_line, chunk.first_line + len(lines)))
    table = pa.table({"line_no": numbers, "line": lines})
    if blank or chunk.bad_lines:  # rare: copying the chunk to drop lines is fine then
        keep = pa.array(lengths > 0)
        if chunk.bad_lines:
            keep = pc.and_(keep, pc.invert(pc.starts_with(lines, reader.BAD_LINE)))
        table = table.filter(keep)
    return Prepared(chunk, pa.Table.from_batches(table.to_batches(max_chunksize=BATCH_ROWS)), blank)


def _has_ip_ranges(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute("SELECT EXISTS (SELECT 1 FROM ip_ranges)").fetchall()[0][0])


def load_requests(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    adapter: Adapter,
    options: Options,
    source_id: int,
    progress: Progress | None,
    timings: Timings | None = None,
) -> tuple[Counts, list[str], str]:
    """Stream a request log through staging, canonical columns, enrichment and the insert.

    `chunk_lines`, `canon` and `ipgeo` are Arrow tables that the SQL names: DuckDB reads them
    from this function's local variables (replacement scans look in the calling frame, so the
    queries must be issued here, not from a helper).
    """
    canonical_sql = canonical.canonical_sql(adapter.staging(options).sql())
    enrich = _has_ip_ranges(con)
    params = {"source_id": source_id, "format": adapter.name, "keep_prompts": options.keep_prompts}
    counts = Counts()
    warnings: list[str] = []
    end = reader.ReadEnd()
    document = reader.is_json_document(reader.head_lines(path, 2))
    last_offset = 0
    ipgeo = con.sql(canonical.NO_IP_LOOKUP).to_arrow_table()  # grows with the file's addresses
    timings = timings if timings is not None else Timings()
    chunks = _chunks_in_background(path, end, document)
    while True:
        with timings.step("waiting for the reader thread"):
            prepared = next(chunks, None)
        if prepared is None:
            break
        chunk = prepared.chunk
        counts.blank += prepared.blank
        quarantine_rows(con, source_id, chunk.bad_lines)
        chunk_lines = prepared.table  # noqa: F841 - read by the SQL below
        with timings.step("staging + canonical columns"):
            canon = con.sql(canonical_sql, params=params).to_arrow_table(batch_size=BATCH_ROWS)
        with timings.step("quarantine insert"):
            con.execute(
                "INSERT INTO quarantine SELECT $sid, line_no, _error, _raw"
                " FROM canon WHERE _error IS NOT NULL",
                {"sid": source_id},
            )
        if enrich:
            with timings.step("IP lookup"):
                fresh = con.sql(canonical.IP_LOOKUP).to_arrow_table()
                ipgeo = pa.concat_tables([ipgeo, fresh]) if fresh.num_rows else ipgeo
        with timings.step("requests insert"):
            con.execute(canonical.INSERT_REQUESTS)
        bad = canon.num_rows - canon.column("_error").null_count
        good = canon.num_rows - bad
        counts.loaded += good
        counts.quarantined += bad + len(chunk.bad_lines)
        if progress is not None:
            progress(chunk.raw_offset - last_offset, good + bad + len(chunk.bad_lines))
        last_offset = chunk.raw_offset
    if end.problem:
        quarantine_rows(con, source_id, [(end.next_line, end.problem, "")])
        counts.quarantined += 1
        warnings.append(f"{path}:{end.next_line}: {end.problem}")
    counts.read = counts.loaded + counts.quarantined
    return counts, warnings, end.sha256


def _check_reconciles(
    con: duckdb.DuckDBPyConnection, fmt: Format, source_id: int, counts: Counts, path: Path
) -> None:
    table = fmt.table
    loaded = (
        f"(SELECT count(*) FROM {table} WHERE {fmt.source_column} = $s)"
        if fmt.source_column
        else str(counts.loaded)
    )
    stored = con.execute(
        f"SELECT {loaded}, (SELECT count(*) FROM quarantine WHERE source_id = $s)",
        {"s": source_id},
    ).fetchall()[0]
    if (stored[0], stored[1]) != (counts.loaded, counts.quarantined) or counts.read != (
        counts.loaded + counts.quarantined
    ):
        raise InputError(
            path,
            f"counts do not reconcile: read {counts.read}, stored {stored[0]} in {table}"
            f" and {stored[1]} in quarantine; nothing from this file was kept",
        )


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    fmt: str | None = None,
    options: Options | None = None,
    progress: Progress | None = None,
    timings: Timings | None = None,
) -> FileResult:
    options = options or Options()
    result = FileResult(str(path))
    size = path.stat().st_size
    # Only a file of the same size as one already in the case can have the same content: hash
    # those first. Any other file is new, and a request log is hashed while it is read.
    same_size = con.execute("SELECT 1 FROM sources WHERE bytes = $b", {"b": size}).fetchall()
    digest = reader.sha256_file(path) if same_size else None
    known = (
        con.execute(
            "SELECT source_id, format, rows_read FROM sources WHERE sha256 = $h", {"h": digest}
        ).fetchall()
        if digest
        else []
    )
    if known:
        result.status, result.source_id, result.format = "skipped", known[0][0], known[0][1]
        result.rows_skipped = known[0][2]
        result.message = f"same content already ingested as source {known[0][0]}"
        if progress is not None:
            progress(size, 0)
        return result
    head = reader.head_lines(path)
    if not head and fmt is None:
        result.status, result.message = "skipped", "empty file: no records"
        return result
    name = fmt or detect_format(path, head)
    result.format = name
    format_ = FORMATS[name]
    format_.check_options(options)
    source_options = {"keep_prompts": options.keep_prompts}
    if options.mapping is not None:
        source_options["mapping"] = str(options.mapping.resolve())  # type: ignore[assignment]
    con.execute("BEGIN TRANSACTION")
    try:
        source_id = int(con.execute("SELECT nextval('source_ids')").fetchall()[0][0])
        con.execute(
            "INSERT INTO sources VALUES ($id, $path, $sha, $bytes, $fmt, $kind, now(), $ver,"
            " 0, 0, 0, 0, $opts)",
            {
                "id": source_id,
                "path": str(path.resolve()),
                "sha": None,
                "bytes": size,
                "fmt": name,
                "kind": format_.kind,
                "ver": __version__,
                "opts": json.dumps(source_options),
            },
        )
        if isinstance(format_, Adapter):
            counts, warnings, read_digest = load_requests(
                con, path, format_, options, source_id, progress, timings
            )
            digest = digest or read_digest
        else:
            digest = digest or reader.sha256_file(path)
            counts, warnings = format_.load(con, path, source_id, options)
            if progress is not None:
                progress(size, counts.read)
        _check_reconciles(con, format_, source_id, counts, path)
        con.execute(
            "UPDATE sources SET rows_read = $r, rows_loaded = $l, rows_quarantined = $q,"
            " lines_blank = $b, sha256 = $sha, ingested_at = now() WHERE source_id = $id",
            {
                "sha": digest,
                "r": counts.read,
                "l": counts.loaded,
                "q": counts.quarantined,
                "b": counts.blank,
                "id": source_id,
            },
        )
        with timings.step("commit") if timings is not None else nullcontext():
            con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    result.source_id = source_id
    result.rows_read, result.rows_loaded = counts.read, counts.loaded
    result.rows_quarantined, result.lines_blank = counts.quarantined, counts.blank
    result.warnings = warnings
    return result


def ingest_paths(
    con: duckdb.DuckDBPyConnection,
    files: list[Path],
    *,
    fmt: str | None = None,
    options: Options | None = None,
    progress: Progress | None = None,
    on_file: Callable[[Path], None] | None = None,
) -> list[FileResult]:
    """Ingest each file on its own; a file that fails is reported and the others still load."""
    results = []
    for path in files:
        if on_file is not None:
            on_file(path)
        try:
            results.append(ingest_file(con, path, fmt=fmt, options=options, progress=progress))
        except ForensicsError as e:
            results.append(FileResult(str(path), fmt, "failed", message=redact(str(e))))
        except duckdb.Error as e:
            message = redact(describe_duckdb_error(e, str(path)))
            results.append(FileResult(str(path), fmt, "failed", message=message))
    return results
