"""Three threads on one file (reader, canonical rows, inserts): a failure on either side stops
the others, leaves nothing of the file in the case, and no thread behind."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

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
    real = staged._first_pass
    monkeypatch.setattr(staged, "_first_pass", lambda *a: made.append(1) or real(*a))
    result = ingest_file(case, log)
    assert len(made) > 10
    assert (result.status, result.rows_read, result.rows_loaded) == ("loaded", 600, 600)
    assert case.execute("SELECT count(DISTINCT line_no) FROM requests").fetchall() == [(600,)]


def _fails(real: Callable[..., Any], on_call: int, error: BaseException) -> Callable[..., Any]:
    """`real`, except that its `on_call`-th call raises `error`."""
    calls = 0

    def wrapper(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == on_call:
            raise error
        return real(*args)

    return wrapper


@pytest.mark.parametrize(
    ("module", "name", "on_call", "error"),
    [
        # the canonical stage's thread: raised in the caller's (ingest_paths makes it one line)
        (staged, "_first_pass", 5, duckdb.ConversionException("Conversion Error: made to fail")),
        # the caller's thread, while the other two are at work
        (pipeline, "quarantine_rows", 3, OSError(28, "No space left on device")),
    ],
    ids=["making canonical rows", "inserting"],
)
def test_a_failure_on_either_side_stops_the_file_and_the_threads(
    case: duckdb.DuckDBPyConnection,
    log: Path,
    monkeypatch: pytest.MonkeyPatch,
    module: ModuleType,
    name: str,
    on_call: int,
    error: BaseException,
) -> None:
    before = _threads()
    monkeypatch.setattr(module, name, _fails(getattr(module, name), on_call, error))
    with pytest.raises(type(error), match=re.escape(str(error.args[-1]))):
        ingest_file(case, log)
    assert case.execute("SELECT count(*) FROM requests").fetchall() == [(0,)]
    assert case.execute("SELECT count(*) FROM sources").fetchall() == [(0,)]
    assert _threads() <= before
