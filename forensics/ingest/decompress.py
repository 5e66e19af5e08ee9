"""The raw bytes of an evidence file: hashed on the way, decompressed under limits.

Compressed files are read member after member (gzip) and frame after frame (zstd), with the
output of every call bounded, so a small bomb never expands in memory: a whole read stops with
an error past `Limits.expansion_limit`. Damage ends the stream: everything decompressed before
it is handed over, and `ReadEnd.problem` names the byte where it starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import zlib
from collections.abc import Generator, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from forensics.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BOM = b"\xef\xbb\xbf"
RAW_BLOCK = 1024 * 1024
# Decompressed bytes handed on at a time. zstd is fed ZSTD_SLICE bytes per call: a zstd block
# turns at least 4 input bytes into at most 128 KiB, so one call yields at most 32 MiB.
OUT_PIECE = 1024 * 1024
ZSTD_SLICE = 1024

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class Limits:
    """How far a file may expand and how long one record may be (`forensics ingest` options)."""

    max_expansion: float = 200.0  # decompressed bytes per byte on disk
    max_decompressed_bytes: int = 64 * GIB  # whatever the ratio
    max_record_bytes: int = 64 * MIB  # one line (record) of the decompressed file
    expansion_floor: int = 16 * MIB  # a small file may always expand this far

    def expansion_limit(self, size_on_disk: int) -> int:
        by_ratio = max(int(self.max_expansion * size_on_disk), self.expansion_floor)
        return min(by_ratio, self.max_decompressed_bytes)


_LIMITS: ContextVar[Limits] = ContextVar("forensics_ingest_limits", default=Limits())  # noqa: B039 - frozen


@contextlib.contextmanager
def limits(value: Limits) -> Iterator[None]:
    """Every ReadEnd made inside the block (by any format's loader) uses `value`."""
    token = _LIMITS.set(value)
    try:
        yield
    finally:
        _LIMITS.reset(token)


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"  # pragma: no cover - the loop returns


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'64G', '500MiB', '1024' -> bytes (powers of 1024)."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (e.g. 500M, 64G)")
    power = " kmgt".index(m.group(2).lower() or " ")
    return int(float(m.group(1)) * 1024**power)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def compression_of(path: Path) -> str | None:
    with path.open("rb") as f:
        return _kind(f.read(4))


def _kind(head: bytes) -> str | None:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head == ZSTD_MAGIC:
        return "zstd"
    return None


@dataclass
class ReadEnd:
    """How the stream ended: cleanly, or with a one-line reason (truncated gzip, ...); and
    the hashes of what was read."""

    problem: str | None = None
    next_line: int = 1
    # SHA-256 of the raw file, computed on the way (the whole file, even past damage).
    hasher: Any = field(default_factory=hashlib.sha256)
    # SHA-256 of the decompressed content (None: not compressed, the same as `hasher`).
    content_hasher: Any = None
    raw_bytes: int = 0  # bytes of the file read from disk
    size_at_open: int = 0
    limits: Limits = field(default_factory=_LIMITS.get)

    @property
    def sha256(self) -> str:
        return str(self.hasher.hexdigest())

    @property
    def content_sha256(self) -> str:
        return str((self.content_hasher or self.hasher).hexdigest())


def iter_blocks(path: Path, end: ReadEnd) -> Generator[tuple[bytes, int], None, None]:
    """Decompressed blocks of the file, each with the raw bytes read so far.

    A damaged or cut-off compressed stream ends the blocks early: everything decompressed
    before the damage is yielded, and `end.problem` says what happened and at which byte. A
    UTF-8 byte order mark at the start of the content is dropped.
    """
    with path.open("rb") as raw:
        end.size_at_open = os.fstat(raw.fileno()).st_size
        kind = _kind(raw.read(4))
        raw.seek(0)

        def blocks() -> Iterator[bytes]:
            for block in iter(lambda: raw.read(RAW_BLOCK), b""):
                end.hasher.update(block)
                end.raw_bytes += len(block)
                yield block

        if kind is None:
            source: Iterator[bytes] = blocks()
        else:
            end.content_hasher = hashlib.sha256()
            source = _decompressed(path, kind, blocks(), end)
        first = True
        for out in source:
            if first:
                first = False
                if out.startswith(BOM):
                    out = out[len(BOM) :]
            if out:
                yield out, end.raw_bytes


def _decompressed(path: Path, kind: str, blocks: Iterator[bytes], end: ReadEnd) -> Iterator[bytes]:
    """gzip members or zstd frames one after another, in pieces of about OUT_PIECE bytes."""
    limit = end.limits.expansion_limit(end.size_at_open)
    pending: list[bytes] = []
    held = total = 0
    for out in _members(path, kind, blocks, end):
        total += len(out)
        if total > limit:
            raise InputError(
                path,
                f"decompresses to more than {human_bytes(limit)} ({end.limits.max_expansion:g}"
                f" times its {human_bytes(end.size_at_open)} on disk, or the ceiling"
                f" {human_bytes(end.limits.max_decompressed_bytes)}): stopped, nothing kept",
                hint="raise --max-expansion / --max-decompressed-bytes if the file is genuine",
            )
        end.content_hasher.update(out)
        pending.append(out)
        held += len(out)
        if held >= OUT_PIECE:
            yield b"".join(pending)
            pending, held = [], 0
    if pending:
        yield b"".join(pending)


def _members(path: Path, kind: str, blocks: Iterator[bytes], end: ReadEnd) -> Iterator[bytes]:
    """Raw decompressed output; sets end.problem on damage, junk, padding or truncation."""
    start = 0  # file offset of the member (frame) being read
    pos = 0  # file offset of the first byte of `data`
    out_in_member = 0
    dec: Any = None
    for block in blocks:
        data = memoryview(block)
        while len(data):
            if dec is None:
                dec = _new_decompressor(kind)
                start, out_in_member = pos, 0
            piece = data if kind == "gzip" else data[:ZSTD_SLICE]
            try:
                out = dec.decompress(piece, OUT_PIECE) if kind == "gzip" else dec.decompress(piece)
            except (zlib.error, zstandard.ZstdError) as e:
                for _ in blocks:  # hash the rest of the file
                    pass
                upto = pos + len(piece)
                end.problem = _damage(path, kind, start, upto, out_in_member, end, e)
                return
            if out:
                out_in_member += len(out)
                yield out
            if dec.eof:
                used = len(piece) - len(dec.unused_data)
                dec = None
            elif kind == "gzip":
                used = len(piece) - len(dec.unconsumed_tail)
            else:
                used = len(piece)  # zstd takes in all it is given
            pos += used
            data = data[used:]
    if dec is not None:
        end.problem = (
            f"{kind} stream is truncated: the file ends at byte {pos:,} inside the"
            f" {_unit(kind)} starting at byte {start:,}"
        )


def _new_decompressor(kind: str) -> Any:
    if kind == "gzip":
        return zlib.decompressobj(wbits=31)
    return zstandard.ZstdDecompressor().decompressobj()


def _unit(kind: str) -> str:
    return "member" if kind == "gzip" else "frame"


def _damage(
    path: Path, kind: str, start: int, upto: int, out: int, end: ReadEnd, error: Exception
) -> str:
    """The reason for the quarantine row of a stream that stops decompressing."""
    tail = _tail_kind(path, start) if start > 0 and out == 0 else "member"
    if tail != "member":
        ignored = end.raw_bytes - start
        if tail == "nul":
            return (
                f"{ignored:,} bytes of NUL padding after the last {kind} {_unit(kind)},"
                f" from byte {start:,} (ignored)"
            )
        return (
            f"{ignored:,} bytes after the last complete {kind} {_unit(kind)} are not {kind}"
            f" data, from byte {start:,} (ignored)"
        )
    detail = str(error).strip() or type(error).__name__
    return (
        f"{kind} stream is damaged in the {_unit(kind)} starting at byte {start:,}, at or"
        f" before byte {upto:,} ({detail}); the {human_bytes(end.raw_bytes - start)} from"
        f" byte {start:,} on are not read"
    )


def _tail_kind(path: Path, start: int) -> str:
    """What the bytes from `start` to the end are: "nul" padding, a "member" (or frame) by
    its magic, or "junk"."""
    with path.open("rb") as f:
        f.seek(start)
        if _kind(f.read(4)) is not None:
            return "member"
        f.seek(start)
        for block in iter(lambda: f.read(RAW_BLOCK), b""):
            if block.strip(b"\x00"):
                return "junk"
    return "nul"
