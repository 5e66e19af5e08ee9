"""Cutting evidence files into line chunks for DuckDB, and sniffing their first records.

The reader never parses records of a file with one record per line. It hands DuckDB big slabs of
text (whole lines, with the number of the first line) and DuckDB splits and parses them as a
set. Python only touches single lines when a slab is not valid UTF-8 or holds a record over the
length limit, to put exactly those lines in quarantine. A line is never accumulated past
`Limits.max_record_bytes`; the bytes come from `decompress.iter_blocks`, which bounds expansion
and reports damage. A JSON document (pretty-printed, an array) is the exception: Python cuts it
into records (`documents.py`), one compact line each, streamed chunk by chunk all the same.

Format detection (`sniff`) reads at most SNIFF_BYTES of the decompressed file and hands the
sniffers up to SNIFF_RECORDS whole records: lines, or a document's records however many lines
each spans.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from forensics.ingest import documents
from forensics.ingest.decompress import Limits, ReadEnd, human_bytes, iter_blocks

# Bytes of decompressed text per chunk; FORENSICS_CHUNK_BYTES tunes it (memory vs overhead).
CHUNK_BYTES = int(os.environ.get("FORENSICS_CHUNK_BYTES", 128 * 1024 * 1024))
# A line sent to DuckDB in place of one that is not valid UTF-8 or too long (it is quarantined
# from Python).
BAD_LINE = "\x00"
# Raw text kept of a record too long to load (the quarantine keeps 2,000 characters of it).
RAW_KEPT = 2000


@dataclass
class Chunk:
    """Whole lines of a file as raw bytes, each ending in a newline (but perhaps the file's
    last); the first is line `first_line`."""

    data: bytes | bytearray
    first_line: int
    line_count: int
    raw_offset: int = 0  # bytes of the file on disk consumed so far
    line_numbers: list[int] | None = None  # explicit numbers when lines are not consecutive
    # (line, reason, raw) of lines that are not loaded; each is BAD_LINE in `data`
    bad_lines: list[tuple[int, str, str]] = field(default_factory=list)
    max_record_bytes: int = Limits.max_record_bytes

    def decoded(self) -> str:
        """The text (without a final newline), lines that are not UTF-8 or too long replaced by
        BAD_LINE and listed in bad_lines."""
        data = self.data[:-1] if self.data.endswith(b"\n") else self.data
        if len(data) > self.max_record_bytes and self.line_numbers is None:
            data = self._drop_long_lines(data)
        text, bad = _decode(data, self.first_line, self.line_numbers)
        self.bad_lines = sorted([*self.bad_lines, *bad])
        return text

    def _drop_long_lines(self, data: bytes | bytearray) -> bytes:
        lines = bytes(data).split(b"\n")
        for i, line in enumerate(lines):
            if len(line) > self.max_record_bytes:
                self.bad_lines.append(too_long(self.first_line + i, line, self.max_record_bytes))
                lines[i] = BAD_LINE.encode()
        return b"\n".join(lines)


def too_long(line_no: int, raw: bytes | bytearray | memoryview, limit: int) -> tuple[int, str, str]:
    """The quarantine entry of a record over the length limit (its start kept as raw text)."""
    return (
        line_no,
        f"record is longer than {limit:,} bytes (--max-record-bytes): not loaded",
        bytes(raw[:RAW_KEPT]).decode("utf-8", "replace").replace("\x00", "\\0"),
    )


def _decode(
    data: bytes | bytearray, first_line: int, numbers: list[int] | None = None
) -> tuple[str, list[tuple[int, str, str]]]:
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    lines: list[bytes] = bytes(data).split(b"\n")
    bad: list[tuple[int, str, str]] = []
    out: list[str] = []
    for i, raw_line in enumerate(lines):
        try:
            out.append(raw_line.decode("utf-8"))
        except UnicodeDecodeError as e:
            number = numbers[i] if numbers is not None else first_line + i
            bad.append(
                (number, f"invalid UTF-8 at byte {e.start}", raw_line.decode("utf-8", "replace"))
            )
            out.append(BAD_LINE)
    return "\n".join(out), bad


def read_chunks(path: Path, end: ReadEnd, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Chunk]:
    """Yield the file as chunks of whole lines; record in `end` how the stream ended.

    Blocks are appended to one bytearray; when it holds a chunk's worth, the part after the
    last newline moves to a new buffer and the filled one is handed over whole (no copy). A
    line that grows past the record limit is cut off there: BAD_LINE takes its place, a
    quarantine entry its start, and its remaining bytes are dropped as they arrive.
    """
    limit = end.limits.max_record_bytes
    line_no = 1
    buf = bytearray()
    tail = 0  # where the last (unfinished) line of buf starts
    pending: list[tuple[int, str, str]] = []  # too-long lines in buf
    skipping = False  # dropping the rest of a too-long line
    offset = 0
    for block, offset in iter_blocks(path, end):
        if skipping:
            newline = block.find(b"\n")
            if newline < 0:
                continue
            block, skipping = block[newline + 1 :], False
        newline = block.rfind(b"\n")
        if newline >= 0:
            tail = len(buf) + newline + 1
        buf += block
        if len(buf) - tail > limit:
            number = line_no + buf.count(b"\n", 0, tail)
            pending.append(too_long(number, memoryview(buf)[tail:], limit))
            del buf[tail:]
            buf += BAD_LINE.encode() + b"\n"
            tail, skipping = len(buf), True
        if len(buf) < chunk_bytes:
            continue
        cut = buf.rfind(b"\n")
        if cut < 0:
            continue  # a line longer than a chunk: read on
        rest = buf[cut + 1 :]
        del buf[cut + 1 :]
        count = buf.count(b"\n")
        yield Chunk(buf, line_no, count, offset, bad_lines=pending, max_record_bytes=limit)
        line_no += count
        buf, pending, tail = rest, [], 0
    if buf.endswith(b"\n"):
        del buf[-1:]
    if buf or pending:
        count = buf.count(b"\n") + 1
        yield Chunk(buf, line_no, count, offset, bad_lines=pending, max_record_bytes=limit)
        line_no += count
    end.next_line = line_no


# Format detection reads at most this much of the decompressed file, and hands the sniffers at
# most this many records: lines, or the records of a JSON document (see `sniff`).
SNIFF_BYTES = 1024 * 1024
SNIFF_RECORDS = 20
# A first line that opens a document on its own (a pretty-printer's "[" or "{").
_OPENERS = ("[", "{", "[{")


@dataclass
class Head:
    """The first records of a file, for format detection."""

    lines: list[str]  # first non-blank lines, or a JSON document's records as compact JSON
    complete: bool  # the whole decompressed file was read
    problem: str | None  # damage met while reading it
    content_bytes: int  # decompressed bytes read
    document: bool = False  # a JSON document, not one record per line (read_json_document)
    cut: str | None = None  # why no record was seen whole: no record ends within the bytes read


def sniff(path: Path, max_lines: int = SNIFF_RECORDS, max_bytes: int = SNIFF_BYTES) -> Head:
    """The first records of the decompressed file, reading at most `max_bytes` of it.

    Records are lines, unless the file is a JSON document: it starts with "[" or "{", its first
    line is not a JSON value on its own, and that line ends within the bytes read (a longer
    one is one record per line as far as loading goes). A document's records are parsed from
    the bytes read, whatever the number of lines they span, and handed on as compact JSON (the
    first `max_lines` of them). When not one ends within the bytes read, the sniffers get the
    complete part of the first (its members and elements that end there), and `cut` says so.
    """
    parts: list[bytes] = []
    got = 0
    end = ReadEnd(limits=Limits(max_expansion=1e12, max_decompressed_bytes=2**62))
    complete = True
    with contextlib.closing(iter_blocks(path, end)) as blocks:
        for block, _ in blocks:
            parts.append(block)
            got += len(block)
            if got >= max_bytes:
                complete = False
                break
    text = b"".join(parts)[:max_bytes].decode("utf-8", "replace")
    lines = text.split("\n")
    cut = None
    if not complete and any(ln.strip() for ln in lines[:-1]):
        lines = lines[:-1]  # the last one may be cut
    elif not complete and lines[-1].strip():
        cut = f"the first record does not end within the first {human_bytes(max_bytes)} read"
    head = [ln.rstrip("\r") for ln in lines if ln.strip()][:max_lines]
    found = Head(head, complete, end.problem, got, cut=cut)
    start = text.lstrip(documents.WHITE)
    if start[:1] in ("[", "{") and not _is_json(head[0]):
        return _document_head(found, start, max_lines, min(got, max_bytes))
    return found


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except (ValueError, RecursionError):
        return False
    return True


def _document_head(head: Head, text: str, max_records: int, read: int) -> Head:
    """`head` with the records of the JSON text (from its first "[" or "{"): a document's
    when the first value goes on past the first line, else those of a first line that does
    not end within the bytes read."""
    try:
        found = documents.leading(text, head.complete, max_records)
    except RecursionError:
        return head
    first = head.lines[0].strip()
    goes_on = documents.goes_on(first)
    head.document = (
        "\n" in text.rstrip()
        and goes_on
        and (bool(found.records) or not found.broken or first in _OPENERS)
    )
    if not head.document and (head.cut is None or not goes_on):
        return head  # lines: JSON lines with a broken first one, or not JSON at all
    if found.records:
        head.lines, head.cut = found.records, None
    elif not found.broken and not head.complete:
        head.cut = f"no JSON record ends within the first {human_bytes(read)} read"
        head.lines = [found.partial] if found.partial is not None else head.lines
    return head


def head_lines(
    path: Path, max_lines: int = SNIFF_RECORDS, max_bytes: int = SNIFF_BYTES
) -> list[str]:
    """The first records of the decompressed file, as format detection sees them."""
    return sniff(path, max_lines, max_bytes).lines


def hash_file(path: Path) -> ReadEnd:
    """Read the whole file once: its SHA-256, that of its decompressed content, bytes read."""
    end = ReadEnd()
    for _ in iter_blocks(path, end):
        pass
    return end


def read_json_document(path: Path, end: ReadEnd, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Chunk]:
    """Cut a JSON document into one compact record per line, keeping the line each starts on.

    The text goes to `documents.Records` a piece of whole lines at a time (a line longer than
    the record limit is cut at a character boundary), so no more than a chunk of records and
    the record being read are held. A record that does not parse, or is longer than the limit,
    is quarantined with its line and ends the document: the rest cannot be cut into records
    (it is still read, to hash the file). An unclosed top-level array is the stream's problem.
    """
    limit = end.limits.max_record_bytes
    parser = documents.Records(max_chars=limit)
    pending = bytearray()  # bytes after the last whole line fed
    line_no = 1  # line of pending's first byte
    records: list[str] = []
    numbers: list[int] = []
    bad: list[tuple[int, str, str]] = []
    held = 0
    ends_open = False  # the last line read has no newline

    def feed(data: bytes | bytearray, first_line: int, final: bool) -> None:
        nonlocal held
        text, bad_lines = _decode(data, first_line)
        bad.extend(bad_lines)
        for item in parser.feed(text.replace(BAD_LINE, " "), final):
            if item.record is None:
                bad.append((item.line, item.reason, item.raw))
            else:
                records.append(item.record)
                numbers.append(item.line)
                held += len(item.record) + 1

    def chunk(offset: int) -> Chunk:
        nonlocal records, numbers, bad, held
        # a lone surrogate (a "\ud800" escape in the file) is written back as that escape
        body = "\n".join(records).encode("utf-8", "backslashreplace")
        out = Chunk(body, 1, len(records), offset, line_numbers=numbers, bad_lines=sorted(bad))
        records, numbers, bad, held = [], [], [], 0
        return out

    offset = 0
    for block, offset in iter_blocks(path, end):
        ends_open = not block.endswith(b"\n")
        if parser.stopped:
            line_no += block.count(b"\n")  # read on only to hash the file
            continue
        pending += block
        cut = pending.rfind(b"\n") + 1
        if not cut and len(pending) > limit:
            cut = _char_boundary(pending)
        if not cut:
            continue
        feed(pending[:cut], line_no, final=False)
        line_no += pending.count(b"\n", 0, cut)
        del pending[:cut]
        if held >= chunk_bytes:
            yield chunk(offset)
    if not parser.stopped:
        feed(pending, line_no, final=True)
        line_no += pending.count(b"\n")
        if parser.unclosed:
            end.problem = end.problem or "JSON array is not closed (file cut off?)"
    end.next_line = line_no + ends_open
    yield chunk(offset)


def _char_boundary(data: bytes | bytearray) -> int:
    """Where a UTF-8 text cut at its end may be cut without splitting a character."""
    cut = len(data)
    while cut > max(0, len(data) - 4) and data[cut - 1] & 0xC0 == 0x80:
        cut -= 1  # continuation bytes
    if cut > 0 and data[cut - 1] >= 0xC0:
        cut -= 1  # the lead byte of a character cut short
    return cut
