"""`forensics verify`: are the files the case was built from still what was ingested?"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from forensics.ingest.reader import sha256_file


@dataclass(frozen=True)
class Check:
    source_id: int
    path: str
    status: str  # ok | MISMATCH | missing


def verify_sources(con: duckdb.DuckDBPyConnection) -> list[Check]:
    checks = []
    for source_id, path, digest in con.execute(
        "SELECT source_id, path, sha256 FROM sources ORDER BY source_id"
    ).fetchall():
        p = Path(path)
        if not p.is_file():
            status = "missing"
        else:
            status = "ok" if sha256_file(p) == digest else "MISMATCH"
        checks.append(Check(source_id, path, status))
    return checks
