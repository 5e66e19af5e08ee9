"""Reading evidence files: finding them, hashing them, decompressing, cutting into line chunks.

The reader never parses records. It hands DuckDB big slabs of text (whole lines, with the number
of the first line) and DuckDB splits and parses them as a set. Python only touches single lines
when a slab is not valid UTF-8, to put exactly the offending lines in quarantine.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import zstandard

from forensics.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK_BYTES = 32 * 1024 * 1024
# A line sent to DuckDB in place of one that is not valid UTF-8 (it is quarantined from Python).
BAD_LINE = "\x00"


def expand_paths(patterns: list[str]) -> list[Path]:
    """Files, directories (recursively, hidden files skipped) and globs, in a stable order."""
    found: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            found.append(path)
        else:
            matches = sorted(Path(m) for m in glob.glob(pattern, recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                raise InputError(pattern, "no such file, directory or glob match")
            found.extend(files)
    unique: dict[Path, None] = {}
    for p in found:
        unique.setdefault(p.resolve(), None)
    return list(unique)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def compression_of(path: Path) -> str | None:
    with path.open("rb") as f:
        head = f.read(4)
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head == ZSTD_MAGIC:
        return "zstd"
    return None


def open_decompressed(path: Path) -> tuple[BinaryIO, BinaryIO]:
    """(decompressed stream, raw file) — the raw file tells how far into the file we are."""
    raw = path.open("rb")
    kind = compression_of(path)
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw  # type: ignore[return-value]
    if kind == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return io.BufferedReader(reader, 1024 * 1024), raw  # type: ignore[arg-type]
    return raw, raw


@dataclass
class Chunk:
    """Whole lines of a file as raw bytes joined by newlines; the first is `first_line`."""

    data: bytes
    first_line: int
    line_count: int
    raw_offset: int = 0  # bytes of the file on disk consumed so far
    line_numbers: list[int] | None = None  # explicit numbers when lines are not consecutive
    bad_lines: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, raw)

    def decoded(self) -> str:
        """The text, with lines that are not UTF-8 replaced by BAD_LINE and put in bad_lines."""
        text, self.bad_lines = _decode(self.data, self.first_line, self.line_numbers)
        return text


@dataclass
class ReadEnd:
    """How the stream ended: cleanly, or with a one-line reason (truncated gzip, ...)."""

    problem: str | None = None
    next_line: int = 1


def _decode(
    data: bytes, first_line: int, numbers: list[int] | None = None
) -> tuple[str, list[tuple[int, str, str]]]:
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    lines = data.split(b"\n")
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
    """Yield the file as chunks of whole lines; record in `end` how the stream ended."""
    stream, raw = open_decompressed(path)
    line_no = 1
    carry = b""
    try:
        while True:
            try:
                block = stream.read(chunk_bytes)
            except (EOFError, OSError, zlib.error, zstandard.ZstdError) as e:
                end.problem = f"compressed stream is damaged or truncated ({e})"
                block = b""
            if not block:
                break
            data = carry + block
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data  # a line longer than a chunk: keep reading until it ends
                continue
            body, carry = data[:cut], data[cut + 1 :]
            count = body.count(b"\n") + 1
            yield Chunk(body, line_no, count, raw.tell())
            line_no += count
        if carry:
            if carry.endswith(b"\r"):
                carry = carry[:-1]
            yield Chunk(carry, line_no, 1, raw.tell())
            line_no += 1
    finally:
        stream.close()
        raw.close()
    end.next_line = line_no


def head_lines(path: Path, max_lines: int = 20, max_bytes: int = 256 * 1024) -> list[str]:
    """The first non-blank lines of the decompressed file, for format detection."""
    stream, raw = open_decompressed(path)
    try:
        try:
            data = stream.read(max_bytes)
        except (EOFError, OSError, zlib.error, zstandard.ZstdError):
            data = b""
    finally:
        stream.close()
        raw.close()
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    if len(data) == max_bytes and len(lines) > 1:
        lines = lines[:-1]  # last one may be cut
    return [ln.rstrip("\r") for ln in lines if ln.strip()][:max_lines]


def is_json_document(head: list[str]) -> bool:
    """A file that is one (pretty-printed) JSON array rather than one record per line."""
    if not head or not head[0].lstrip().startswith("["):
        return False
    first = head[0].strip()
    return not (first.endswith("]") and len(first) > 1)


def read_json_document(path: Path, end: ReadEnd) -> Iterator[Chunk]:
    """Cut a JSON array document into one compact element per line, keeping source line numbers.

    Batched http-log bodies are small arrays; a broken one (cut in half) still yields every
    element before the break, and the break itself is reported with its line.
    """
    import json

    stream, raw = open_decompressed(path)
    try:
        try:
            data = stream.read()
        except (EOFError, OSError, zlib.error, zstandard.ZstdError) as e:
            end.problem = f"compressed stream is damaged or truncated ({e})"
            data = b""
    finally:
        stream.close()
        raw.close()
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
            bad.append((line, f"JSON array element does not parse: {e.msg}", text[pos : pos + 2000]))
            break
        elements.append(json.dumps(element, separators=(",", ":"), ensure_ascii=False))
        numbers.append(line)
        pos = after
    end.next_line = text.count("\n") + 2
    body = "\n".join(elements).encode()
    yield Chunk(body, 1, len(elements), len(data), line_numbers=numbers, bad_lines=bad)
