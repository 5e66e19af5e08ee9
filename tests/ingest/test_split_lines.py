"""Cutting a chunk into lines (lines.split_lines) against Python's own reading of the bytes."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forensics.ingest.lines import split_lines

# pieces that make the cases: newlines, carriage returns alone or doubled, NUL, multi-byte text
PIECES = [b"a", b"\n", b"\r", b"\r\n", b"\r\r\n", b"\x00", b" ", "é".encode(), "鍵".encode()]


def reference(data: bytes) -> tuple[list[str], list[int]]:
    """Lines without their newline and every carriage return at their end; each length counts
    the line's bytes less one carriage return before the newline."""
    body = data[:-1] if data.endswith(b"\n") else data
    out, lengths = [], []
    for raw in body.split(b"\n"):
        out.append(raw.decode().rstrip("\r") if b"\r" in data else raw.decode())
        lengths.append(len(raw) - (1 if raw.endswith(b"\r") else 0))
    return out, lengths


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=60), st.booleans())
def test_lines_and_lengths_as_python_reads_them(pieces: list[bytes], mutable: bool) -> None:
    data = b"".join(pieces)
    lines, lengths = split_lines(bytearray(data) if mutable else data)
    assert (lines.to_pylist(), [int(n) for n in lengths]) == reference(data)


@pytest.mark.parametrize("data", [b"ok\n\xff\n", b"ok\n\xc3", b"\xed\xa0\x80\n"])
def test_a_chunk_that_is_not_utf8_is_refused_whole(data: bytes) -> None:
    with pytest.raises(pa.ArrowInvalid):
        split_lines(data)
