"""Reading evidence files: finding them, hashing them, decompressing, cutting into line chunks.

The reader never parses records. It hands DuckDB big slabs of text (whole lines, with the number
of the first line) and DuckDB splits and parses them as a set. Python only touches single lines
when a slab is not valid UTF-8, to put exactly the offending lines in quarantine.
"""

from __future__ import annotations

import glob
import hashlib
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from forensics.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# Bytes of decompressed text per chunk; FORENSICS_CHUNK_BYTES tunes it (memory vs overhead).
CHUNK_BYTES = int(os.environ.get("FORENSICS_CHUNK_BYTES", 128 * 1024 * 1024))
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
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            found.append(path)
        else:
            matches = sorted(Path(m) for m in glob.glob(pattern, recursive=True))  # noqa: PTH207
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


RAW_BLOCK = 1024 * 1024


class _Decompressor:
    """gzip or zstd, member after member (concatenated members/frames are read on)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.in_member = False  # input fed to a member that has not ended yet
        self._new()

    def _new(self) -> None:
        if self.kind == "gzip":
            self.obj: Any = zlib.decompressobj(wbits=31)
        else:
            self.obj = zstandard.ZstdDecompressor().decompressobj()

    def feed(self, data: bytes) -> bytes:
        out = []
        while data:
            self.in_member = True
            out.append(self.obj.decompress(data))
            if not self.obj.eof:
                break
            data = self.obj.unused_data
            self.in_member = False
            self._new()
        return b"".join(out)


def iter_blocks(path: Path, end: ReadEnd) -> Iterator[tuple[bytes, int]]:
    """Decompressed blocks of the file, each with the raw bytes consumed so far.

    A damaged or cut-off compressed stream ends the blocks early: everything decompressed
    before the damage is yielded, and `end.problem` says what happened.
    """
    kind = compression_of(path)
    with path.open("rb") as raw:
        if kind is None:
            for block in iter(lambda: raw.read(RAW_BLOCK), b""):
                end.hasher.update(block)
                yield block, raw.tell()
            return
        dec = _Decompressor(kind)
        for block in iter(lambda: raw.read(RAW_BLOCK), b""):
            end.hasher.update(block)
            try:
                out = dec.feed(block)
            except (zlib.error, zstandard.ZstdError) as e:
                end.problem = f"{kind} stream is damaged ({e})"
                for rest in iter(lambda: raw.read(RAW_BLOCK), b""):
                    end.hasher.update(rest)
                return
            if out:
                yield out, raw.tell()
        if dec.in_member:
            end.problem = f"{kind} stream is truncated: the file ends inside a compressed block"


@dataclass
class Chunk:
    """Whole lines of a file as raw bytes, each ending in a newline (but perhaps the file's
    last); the first is line `first_line`."""

    data: bytes | bytearray
    first_line: int
    line_count: int
    raw_offset: int = 0  # bytes of the file on disk consumed so far
    line_numbers: list[int] | None = None  # explicit numbers when lines are not consecutive
    bad_lines: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, raw)

    def decoded(self) -> str:
        """The text (without a final newline), lines that are not UTF-8 replaced by BAD_LINE
        and listed in bad_lines."""
        data = self.data[:-1] if self.data.endswith(b"\n") else self.data
        text, self.bad_lines = _decode(data, self.first_line, self.line_numbers)
        return text


@dataclass
class ReadEnd:
    """How the stream ended: cleanly, or with a one-line reason (truncated gzip, ...)."""

    problem: str | None = None
    next_line: int = 1
    # SHA-256 of the raw file, computed on the way (the whole file, even past damage).
    hasher: Any = field(default_factory=hashlib.sha256)

    @property
    def sha256(self) -> str:
        return str(self.hasher.hexdigest())


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
    last newline moves to a new buffer and the filled one is handed over whole (no copy).
    """
    line_no = 1
    buf = bytearray()
    offset = 0
    for block, offset in iter_blocks(path, end):
        buf += block
        if len(buf) < chunk_bytes:
            continue
        cut = buf.rfind(b"\n")
        if cut < 0:
            continue  # a line longer than a chunk: read on
        rest = buf[cut + 1 :]
        del buf[cut + 1 :]
        count = buf.count(b"\n")
        yield Chunk(buf, line_no, count, offset)
        line_no += count
        buf = rest
    if buf.endswith(b"\n"):
        del buf[-1:]
    if buf:
        count = buf.count(b"\n") + 1
        yield Chunk(buf, line_no, count, offset)
        line_no += count
    end.next_line = line_no


def head_lines(path: Path, max_lines: int = 20, max_bytes: int = 256 * 1024) -> list[str]:
    """The first non-blank lines of the decompressed file, for format detection."""
    parts: list[bytes] = []
    got = 0
    for block, _ in iter_blocks(path, ReadEnd()):
        parts.append(block)
        got += len(block)
        if got >= max_bytes:
            break
    data = b"".join(parts)[:max_bytes]
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    if len(data) == max_bytes and len(lines) > 1:
        lines = lines[:-1]  # last one may be cut
    return [ln.rstrip("\r") for ln in lines if ln.strip()][:max_lines]


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
