"""Cutting evidence files into line chunks for DuckDB, and sniffing their first lines.

The reader never parses records. It hands DuckDB big slabs of text (whole lines, with the number
of the first line) and DuckDB splits and parses them as a set. Python only touches single lines
when a slab is not valid UTF-8 or holds a record over the length limit, to put exactly those
lines in quarantine. A line is never accumulated past `Limits.max_record_bytes`; the bytes come
from `decompress.iter_blocks`, which bounds expansion and reports damage.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from forensics.ingest.decompress import Limits, ReadEnd, iter_blocks

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


@dataclass
class Head:
    """The first non-blank lines of a file, for format detection."""

    lines: list[str]
    complete: bool  # the whole decompressed file was read
    problem: str | None  # damage met while reading it
    content_bytes: int  # decompressed bytes read


def sniff(path: Path, max_lines: int = 20, max_bytes: int = 256 * 1024) -> Head:
    """The first non-blank lines of the decompressed file, reading at most `max_bytes` of it."""
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
    data = b"".join(parts)[:max_bytes]
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # last one may be cut
    head = [ln.rstrip("\r") for ln in lines if ln.strip()][:max_lines]
    return Head(head, complete, end.problem, got)


def head_lines(path: Path, max_lines: int = 20, max_bytes: int = 256 * 1024) -> list[str]:
    """The first non-blank lines of the decompressed file, for format detection."""
    return sniff(path, max_lines, max_bytes).lines


def hash_file(path: Path) -> ReadEnd:
    """Read the whole file once: its SHA-256, that of its decompressed content, bytes read."""
    end = ReadEnd()
    for _ in iter_blocks(path, end):
        pass
    return end


def is_json_document(head: list[str]) -> bool:
    """A file that is one (pretty-printed) JSON array rather than one record per line."""
    # Pretty-printers put the opening bracket (and maybe the first brace) on a line of its own;
    # Logpush's wrapped output puts "[" before the first record and "," before each next one.
    # A one-line array that is merely cut off is a broken record, not a document.
    if not head or not head[0].strip().startswith("["):
        return False
    if head[0].strip() in ("[", "[{"):
        return True
    return len(head) > 1 and head[1].strip().startswith((",", "]"))


def read_json_document(path: Path, end: ReadEnd) -> Iterator[Chunk]:
    """Cut a JSON array document into one compact element per line, keeping source line numbers.

    Batched http-log bodies are small arrays; a broken one (cut in half) still yields every
    element before the break, and the break itself is reported with its line.
    """
    import json

    data = b"".join(block for block, _ in iter_blocks(path, end))
    text, bad = _decode(data, 1)
    text = text.replace(BAD_LINE, " ")
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    elements: list[str] = []
    numbers: list[int] = []
    line, counted = 1, 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text):
            end.problem = end.problem or "JSON array is not closed (file cut off?)"
            break
        if text[pos] == "]":
            break
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            element, after = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            bad.append(
                (line, f"JSON array element does not parse: {e.msg}", text[pos : pos + 2000])
            )
            break
        elements.append(json.dumps(element, separators=(",", ":"), ensure_ascii=False))
        numbers.append(line)
        pos = after
    end.next_line = text.count("\n") + 2
    body = "\n".join(elements).encode()
    yield Chunk(body, 1, len(elements), len(data), line_numbers=numbers, bad_lines=bad)
