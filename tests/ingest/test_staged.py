"""Three threads on one file (reader, canonical rows, inserts): a failure on either side stops
the others, leaves nothing of the file in the case, and no thread behind."""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import duckdb
import pytest

from forensics.ingest import decompress, pipeline, reader, staged
from forensics.ingest.pipeline import ingest_file

LINE = (
    '198.51.100.{n} - - [17/May/2015:10:05:{s:02d} +0000] "GET /page/{n} HTTP/1.1" 200 512'
    ' "-" "Mozilla/5.0"'
)


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A combined log read in blocks and chunks of 4 KB: about 15 chunks, each a canonical
    SELECT of its own."""
    path = tmp_path / "access.log"
    path.write_text("".join(LINE.format(n=n % 250, s=n % 60) + "\n" for n in range(600)))
    monkeypatch.setattr(decompress, "RAW_BLOCK", 4096)
    monkeypatch.setattr(
        reader, "read_chunks", functools.partial(reader.read_chunks, chunk_bytes=4096)
    )
    return path


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate()}


def test_many_chunks_load_whole(
    case: duckdb.DuckDBPyConnection, log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = []
    real = staged._canonical
    monkeypatch.setattr(staged, "_canonical", lambda *a: made.append(1) or real(*a))
    result = ingest_file(case, log)
    assert len(made) > 10
    assert (result.status, result.rows_read, result.rows_loaded) == ("loaded", 600, 600)
    assert case.execute("SELECT count(DISTINCT line_no) FROM requests").fetchall() == [(600,)]


def test_a_failure_making_canonical_rows_stops_the_file(
    case: duckdb.DuckDBPyConnection, log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _threads()
    calls = {"n": 0}
    real = staged._canonical

    def fails_on_the_fifth(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 5:
            raise duckdb.ConversionException("Conversion Error: made to fail")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(staged, "_canonical", fails_on_the_fifth)
    with pytest.raises(duckdb.ConversionException, match="made to fail"):
        ingest_file(case, log)  # raised in the caller's thread (ingest_paths makes it one line)
    assert case.execute("SELECT count(*) FROM requests").fetchall() == [(0,)]
    assert case.execute("SELECT count(*) FROM sources").fetchall() == [(0,)]
    assert _threads() <= before


def test_a_failure_inserting_stops_the_other_threads(
    case: duckdb.DuckDBPyConnection, log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _threads()
    calls = {"n": 0}
    real = pipeline.quarantine_rows

    def fails_on_the_third(*args: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "quarantine_rows", fails_on_the_third)
    with pytest.raises(OSError, match="No space left on device"):
        ingest_file(case, log)
    assert case.execute("SELECT count(*) FROM requests").fetchall() == [(0,)]
    assert _threads() <= before
