"""Writing a synthetic world's files: lines (optionally compressed), CSVs, the iptoasn table.

The record writers (`gateway_logs.py`, `provider_usage.py`) make the lines; this module puts
them on disk, and writes the reference files: the iptoasn.com ip2asn-v4 TSV of every network
and the revocations and retired-keys CSVs.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, cast

from forensics.synth.world import Network, ip_text

# Compact JSON, UTF-8 kept as is: the one serialiser of every JSON line a world holds.
dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def write_lines(path: Path, lines: Iterable[str]) -> int:
    """Write newline-terminated lines; a `.gz` or `.zst` path is compressed. Returns the count."""
    count = 0
    with _open_binary(path) as f:
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            count += 1
            if len(batch) == 2000:
                f.write(("\n".join(batch) + "\n").encode())
                batch = []
        if batch:
            f.write(("\n".join(batch) + "\n").encode())
    return count


def _open_binary(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return cast(BinaryIO, gzip.GzipFile(path, "wb", compresslevel=9, mtime=0))
    if path.suffix == ".zst":
        import zstandard

        raw = path.open("wb")
        return cast(BinaryIO, zstandard.ZstdCompressor(level=12).stream_writer(raw, closefd=True))
    return path.open("wb")


def iptoasn_lines(networks: list[Network]) -> Iterator[str]:
    """ip2asn-v4 TSV rows: range_start, range_end, AS_number, country_code, AS_description."""
    for net in sorted(networks, key=lambda n: n.first):
        yield f"{ip_text(net.first)}\t{ip_text(net.last)}\t{net.asn}\t{net.country}\t{net.org}"


def write_csv(path: Path, header: list[str], rows: Iterable[list[object]]) -> int:
    """Write a CSV with `header`; None is an empty cell, datetimes are UTC RFC 3339."""
    count = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(header)
        for row in rows:
            out.writerow(["" if v is None else _cell(v) for v in row])
            count += 1
    return count


def _cell(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)
