"""Ingest: one transaction per file, every record accounted for.

For each file: hash it when a file of its size is in the case (same bytes -> skipped), pick the
format from a bounded prefix, then in one transaction insert the `sources` row, stream the file
through DuckDB chunk by chunk while hashing the bytes read and their decompressed content, and
before committing run the checks of `checks.py` (read = loaded + quarantined, the file did not
change while it was read, no more than `max_quarantine_share` of its records quarantined) and
check that its content is not already in the case (a .gz copy of a loaded log is rolled back
and skipped). With `Options.replace` (--force) the earlier sources with the same content or
the same path are removed instead, in the same transaction (`case.removal`); without it, a
path ingested before with other content (a file changed in place) loads as a new source, with
a warning. A crash mid-file leaves nothing of it. A file that fails for any reason is one line
naming it; `ingest_paths` goes on with the next.
"""

from __future__ import annotations

import csv
import errno
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from forensics._version import __version__
from forensics.case.fingerprints import redact
from forensics.case.verify import record_digests
from forensics.errors import ForensicsError, InputError, describe_duckdb_error
from forensics.ingest import canonical, decompress, enrichment, reader
from forensics.ingest.base import DEFAULT_TENANT_CLAIMS, Adapter, Counts, Options, quarantine_rows
from forensics.ingest.checks import check_quarantine_share, check_reconciles, check_unchanged
from forensics.ingest.earlier import earlier_sources, replace_sources
from forensics.ingest.formats import FORMATS, detect_format
from forensics.ingest.lines import prepared_chunks
from forensics.ingest.staged import canonical_chunks
from forensics.lake import store as lake

# (bytes of the file consumed, records done) since the last call
Progress = Callable[[int, int], None]


class Timings(dict[str, float]):
    """Seconds spent per ingest step, summed over chunks (for benchmarks/profile_ingest.py);
    steps on other threads (staged.py) add up too."""

    _lock = threading.Lock()

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
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
    geo_disagreements: int = 0  # requests put at a country centroid (enrichment.py)
    rows_skipped: int = 0  # records of a file skipped as already ingested
    message: str | None = None
    warnings: list[str] = field(default_factory=list)
    replaced: list[int] = field(default_factory=list)  # sources it replaced (--force)
    error: BaseException | None = field(default=None, repr=False)  # a failure's exception

    @property
    def reconciles(self) -> bool:
        return self.rows_read == self.rows_loaded + self.rows_quarantined


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
    document: bool = False,
    dense_secrets: bool = True,
) -> tuple[Counts, list[str], decompress.ReadEnd]:
    """Stream a request log through staging, canonical columns, enrichment and the insert.

    `document`: the file is a JSON document (reader.sniff), read record by record.
    `dense_secrets`: most records need the scrubber (canonical.dense_secrets). Chunks are read on
    one thread and made canonical on another (staged.py); here they are inserted. `canon` and
    `ipgeo` are Arrow tables that the SQL names: DuckDB reads them from this function's local
    variables (replacement scans look in the calling frame, so the queries must be issued here,
    not from a helper).
    """
    canonical_sql = canonical.canonical_sql(adapter.staging(options).sql())
    enrich = _has_ip_ranges(con)
    params = {
        "source_id": source_id,
        "format": adapter.name,
        "keep_prompts": options.keep_prompts,
        "tenant_claims": list(options.tenant_claims),
        "dense": dense_secrets,
    }
    counts = Counts()
    warnings: list[str] = []
    end = decompress.ReadEnd()
    last_offset = 0
    ipgeo = con.sql(enrichment.NO_IP_LOOKUP).to_arrow_table()  # grows with the file's addresses
    timings = timings if timings is not None else Timings()
    chunks = prepared_chunks(path, end, document)
    staged = canonical_chunks(con, chunks, canonical_sql, params, timings.step)
    # closed on the way out, even by an exception: both threads stop before the rollback
    with closing(staged):
        for prepared, canon in staged:
            chunk = prepared.chunk
            counts.blank += prepared.blank
            quarantine_rows(con, source_id, chunk.bad_lines)
            with timings.step("quarantine insert"):
                con.execute(
                    "INSERT INTO quarantine SELECT $sid, line_no, _error, _raw"
                    " FROM canon WHERE _error IS NOT NULL AND NOT _rescrub",
                    {"sid": source_id},
                )
            if enrich:
                with timings.step("IP lookup"):
                    fresh = con.sql(enrichment.IP_LOOKUP).to_arrow_table()
                    ipgeo = pa.concat_tables([ipgeo, fresh]) if fresh.num_rows else ipgeo
            with timings.step("requests insert"):
                con.execute(canonical.INSERT_REQUESTS)
            counted = pc.invert(canon.column("_rescrub"))  # each record once
            rows = pc.sum(counted).as_py() or 0
            good = pc.sum(pc.and_(counted, pc.is_null(canon.column("_error")))).as_py() or 0
            counts.loaded += good
            counts.quarantined += rows - good + len(chunk.bad_lines)
            if progress is not None:
                progress(chunk.raw_offset - last_offset, rows + len(chunk.bad_lines))
            last_offset = chunk.raw_offset
    if end.problem:
        quarantine_rows(con, source_id, [(end.next_line, end.problem, "")])
        counts.quarantined += 1
        warnings.append(f"{path}:{end.next_line}: {end.problem}")
    counts.read = counts.loaded + counts.quarantined
    if enrich:  # a database's city refused (enrichment.py)
        [(counts.geo_disagreements,)] = con.execute(
            "SELECT count(*) FROM requests WHERE source_id = $s AND geo_source = 'centroid'",
            {"s": source_id},
        ).fetchall()
    return counts, warnings, end


def _no_records(path: Path, head: reader.Head, size: int) -> FileResult:
    """A file without a record to detect a format from: skipped (empty), or failed (damaged)."""
    result = FileResult(str(path), status="skipped")
    if size == 0:
        result.message = "empty file: no records"
    elif head.problem:
        raise InputError(
            path,
            f"{head.problem}; nothing could be decompressed before it",
            hint="pass --format NAME --max-quarantine-share 1 to record the damage in the case",
        )
    elif not head.complete:
        raise InputError(
            path,
            f"no record in the first {decompress.human_bytes(head.content_bytes)}"
            " (blank lines only)",
            hint="pass --format NAME to read on",
        )
    elif head.content_bytes == 0:
        result.message = "no records: the file holds no text once decompressed"
    else:
        result.message = f"no records: {head.content_bytes:,} bytes of blank lines only"
    return result


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    fmt: str | None = None,
    options: Options | None = None,
    progress: Progress | None = None,
    timings: Timings | None = None,
) -> FileResult:
    """Load one file in one transaction (see the module docstring)."""
    options = options or Options()
    with decompress.limits(options.limits), _csv_fields(options.limits.max_record_bytes):
        return _ingest_file(con, path, fmt, options, progress, timings)


@contextmanager
def _csv_fields(limit: int) -> Iterator[None]:
    """CSV cells may be as long as a record (Python's default stops at 131,072 characters)."""
    previous = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _ingest_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    fmt: str | None,
    options: Options,
    progress: Progress | None,
    timings: Timings | None,
) -> FileResult:
    result = FileResult(str(path))
    before = path.stat()
    size = before.st_size
    # Only a file of the same size as one already in the case can have the same bytes: hash
    # those first. Any other file is hashed while it is read, and its decompressed content is
    # compared with the case's before COMMIT (a .gz copy of a loaded log is skipped then).
    same_size = con.execute("SELECT 1 FROM sources WHERE bytes = $b", {"b": size}).fetchall()
    digest = decompress.sha256_file(path) if same_size else None
    known = (
        con.execute(
            "SELECT source_id, format, rows_read FROM sources WHERE sha256 = $h", {"h": digest}
        ).fetchall()
        if digest
        else []
    )
    if known and not options.replace:
        return _skipped(result, known[0], "same content already ingested as source", progress, size)
    head = reader.sniff(path)
    if not head.lines and fmt is None:
        return _no_records(path, head, size)
    if fmt is None and options.log_format is not None:
        fmt = "log-format"  # the user described the layout: nothing to detect
    name = fmt or detect_format(path, head)
    result.format = name
    format_ = FORMATS[name]
    format_.check_options(options)
    source_options: dict[str, object] = {"keep_prompts": options.keep_prompts}
    if options.tenant_claims != DEFAULT_TENANT_CLAIMS:
        source_options["tenant_claims"] = list(options.tenant_claims)
    if options.mapping is not None:
        source_options["mapping"] = str(options.mapping.resolve())
    if options.log_format is not None and name == "log-format":
        source_options["log_format"] = options.log_format
    con.execute("BEGIN TRANSACTION")
    try:
        source_id = int(con.execute("SELECT nextval('source_ids')").fetchall()[0][0])
        con.execute(
            "INSERT INTO sources (source_id, path, sha256, bytes, format, kind, ingested_at,"
            " tool_version, rows_read, rows_loaded, rows_quarantined, lines_blank, options)"
            " VALUES ($id, scrub($path), $sha, $bytes, $fmt, $kind, now(), $ver, 0, 0, 0, 0,"
            " CAST(scrub($opts) AS JSON))",
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
        end: decompress.ReadEnd | None
        if isinstance(format_, Adapter):
            dense = not format_.lines_stand_alone or canonical.dense_secrets(con, head.lines)
            with lake.appending(con, "requests", source_id):
                counts, warnings, end = load_requests(
                    con, path, format_, options, source_id, progress, timings, head.document, dense
                )
        else:
            end = reader.hash_file(path)  # formats that read the file their own way
            if options.replace and format_.kind == "usage":
                # a usage file skips the results already in the case: out with the ones it
                # replaces first, or it would skip them all and then lose them
                replaced = earlier_sources(con, path, source_id, end)
                result.replaced += replace_sources(con, replaced, source_id)
            with _lake_table(con, format_.kind, source_id):
                counts, warnings = format_.load(con, path, source_id, options)
            if progress is not None:
                progress(size, counts.read)
        check_unchanged(path, before, end)
        check_reconciles(con, format_, source_id, counts, path)
        earlier = earlier_sources(con, path, source_id, end)
        same = [e for e in earlier if e[3]]
        if same and not options.replace:
            lake.rollback(con)
            what = "same content (once decompressed) already ingested as source"
            return _skipped(result, same[0], what, None, size)
        check_quarantine_share(
            con,
            path,
            source_id,
            counts,
            options.max_quarantine_share,
            used=name,
            given=fmt is not None,
            head=head.lines,
        )
        if options.replace:
            result.replaced += replace_sources(con, earlier, source_id)
        else:
            for earlier_id, *_ in earlier:
                warnings.append(
                    f"{path}: this path was ingested before as source {earlier_id} with other"
                    " content (changed in place?); both are in the case now, so records the two"
                    " share count twice: `forensics ingest --force` replaces the earlier one"
                )
        con.execute(
            "UPDATE sources SET rows_read = $r, rows_loaded = $l, rows_quarantined = $q,"
            " lines_blank = $b, sha256 = $sha, content_sha256 = $content, bytes = $bytes,"
            " ingested_at = now() WHERE source_id = $id",
            {
                "sha": end.sha256,
                "content": end.content_sha256,
                "bytes": end.raw_bytes,
                "r": counts.read,
                "l": counts.loaded,
                "q": counts.quarantined,
                "b": counts.blank,
                "id": source_id,
            },
        )
        with timings.step("digest") if timings is not None else nullcontext():
            record_digests(con, source_id)  # what `forensics verify` compares the case with
        with timings.step("commit") if timings is not None else nullcontext():
            lake.commit(con)
    except BaseException:
        _rollback(con)
        raise
    result.source_id = source_id
    result.rows_read, result.rows_loaded = counts.read, counts.loaded
    result.rows_quarantined, result.lines_blank = counts.quarantined, counts.blank
    result.geo_disagreements = counts.geo_disagreements
    result.warnings = warnings
    return result


def _lake_table(
    con: duckdb.DuckDBPyConnection, kind: str, source_id: int
) -> AbstractContextManager[None]:
    """Where a format of this kind writes in a case that keeps its rows in a lake: requests
    (LiteLLM's spend logs), usage (whose dedupe reads the rows already there), or no lake
    table (reference lists and enrichment databases; the latter place requests again, inside
    `enrichment.reenrich`)."""
    if kind == "requests":
        return lake.appending(con, "requests", source_id)
    if kind == "usage":
        return lake.appending(con, "usage", source_id, see_all=True)
    return nullcontext()


def _skipped(
    result: FileResult,
    known: tuple[object, ...],
    what: str,
    progress: Progress | None,
    size: int,
) -> FileResult:
    result.status, result.source_id, result.format = "skipped", int(str(known[0])), str(known[1])
    result.rows_skipped = int(str(known[2]))
    result.message = f"{what} {known[0]}"
    if progress is not None:
        progress(size, 0)
    return result


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back, keeping the original error when DuckDB already ended the transaction (a
    full disk, a fatal error): "no transaction is active" would only hide it. A lake loses the
    files the transaction wrote."""
    with suppress(duckdb.Error, OSError):
        lake.rollback(con)


def describe_failure(path: Path, error: BaseException) -> str:
    """One line naming the file for any exception an ingest of it raised."""
    if isinstance(error, ForensicsError):
        return str(error)
    text = str(error)
    if (isinstance(error, OSError) and error.errno == errno.ENOSPC) or "No space left" in text:
        where = getattr(error, "filename", None) or "the case database"
        return (
            f"{path}: the disk is full (no space left on the device holding {where});"
            " nothing from this file was kept"
        )
    if isinstance(error, duckdb.Error):
        return describe_duckdb_error(error, str(path))
    if isinstance(error, OSError):
        return f"{path}: cannot read: {error.strerror or error}"
    if isinstance(error, RecursionError):
        return f"{path}: a record is nested too deeply to read (RecursionError)"
    if isinstance(error, MemoryError):
        return f"{path}: out of memory while reading it (lower --max-record-bytes?)"
    detail = " ".join(text.split())[:300]
    return (
        f"{path}: {type(error).__name__}: {detail}" if detail else f"{path}: {type(error).__name__}"
    )


def ingest_paths(
    con: duckdb.DuckDBPyConnection,
    files: list[Path],
    *,
    fmt: str | None = None,
    options: Options | None = None,
    progress: Progress | None = None,
    on_file: Callable[[Path], None] | None = None,
) -> list[FileResult]:
    """Ingest each file on its own; a file that fails is one line naming it (the exception
    kept on the result for --debug), and the others still load."""
    results = []
    for path in files:
        if on_file is not None:
            on_file(path)
        try:
            results.append(ingest_file(con, path, fmt=fmt, options=options, progress=progress))
        except Exception as e:  # noqa: BLE001 - every failure is one file's, the run goes on
            message = redact(describe_failure(path, e))
            results.append(FileResult(str(path), fmt, "failed", message=message, error=e))
    return results
