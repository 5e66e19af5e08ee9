"""The sources already in the case that a file being ingested repeats or replaces."""

from __future__ import annotations

from pathlib import Path

import duckdb

from forensics.case.removal import REASON_REPLACED, remove_source
from forensics.ingest.decompress import ReadEnd

# (source_id, format, rows_read, whether its content is the file's)
Earlier = tuple[int, str, int, bool]


def earlier_sources(
    con: duckdb.DuckDBPyConnection, path: Path, source_id: int, end: ReadEnd
) -> list[Earlier]:
    """Sources other than `source_id` with this file's content or path, oldest first."""
    found = con.execute(
        "SELECT source_id, format, rows_read,"
        " coalesce(sha256 = $sha OR content_sha256 = $content, false) FROM sources"
        " WHERE source_id <> $id"
        " AND (sha256 = $sha OR content_sha256 = $content OR path = scrub($path))"
        " ORDER BY source_id",
        {
            "id": source_id,
            "sha": end.sha256,
            "content": end.content_sha256,
            "path": str(path.resolve()),
        },
    ).fetchall()
    return [(int(i), str(f), int(r), bool(c)) for i, f, r, c in found]


def replace_sources(
    con: duckdb.DuckDBPyConnection, earlier: list[Earlier], source_id: int
) -> list[int]:
    """--force: remove the `earlier` sources as replaced by `source_id`, inside its
    transaction; their ids."""
    for earlier_id, *_ in earlier:
        remove_source(con, earlier_id, REASON_REPLACED, replaced_by=source_id)
    return [e[0] for e in earlier]
