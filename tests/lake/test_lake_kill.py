"""kill -9 at many points of an ingest into a lake (its renames and COMMIT included): the case
and the lake agree, every count reconciles, and running the ingest again loads each file whole.

Reuses the points and invariants of tests/test_kill_points.py, plus the lake's own: every file
the case lists is on disk, and after the next read-write open every Parquet file on disk is
one the case lists.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from forensics.case import db
from tests.test_kill_points import FRACTIONS, _ingest_invariants, _killed, _run, world  # noqa: F401

pytestmark = pytest.mark.slow


def _lake_invariants(case: Path, lake: Path) -> None:
    con = db.connect(case, read_only=True)
    try:
        listed = {str(r[0]) for r in con.execute("SELECT path FROM lake_files").fetchall()}
    finally:
        con.close()
    assert all((lake / p).is_file() for p in listed)
    db.connect(case).close()  # a writer's open clears what a killed one left
    assert {str(p.relative_to(lake)) for p in lake.rglob("*.parquet")} == listed
    assert not (lake / "_staging").exists()


def test_kill_9_during_a_lake_ingest(world: Path, tmp_path: Path) -> None:  # noqa: F811
    logs = world / "logs"
    clean_case, clean_lake = tmp_path / "clean.duckdb", tmp_path / "clean-lake"
    whole = _run("--db", clean_case, "--lake", clean_lake, "ingest", "-q", logs)
    clean = _ingest_invariants(clean_case)
    kills, cases = 0, []
    for n, fraction in enumerate(FRACTIONS):
        case, lake = tmp_path / f"case{n}.duckdb", tmp_path / f"lake{n}"
        kills += _killed(whole * fraction, "--db", case, "--lake", lake, "ingest", "-q", logs)
        if case.exists():
            _ingest_invariants(case)
            _lake_invariants(case, lake)
            cases.append((case, lake))
    assert kills >= len(FRACTIONS) // 2, "the command finished before most kill points"
    assert cases, "no kill point left a case to resume"
    for case, lake in cases:  # running it again finishes the job, wherever it was killed
        _run("--db", case, "ingest", "-q", logs)
        again = _ingest_invariants(case)
        assert sorted(n for _, n in again) == sorted(n for _, n in clean)
        _lake_invariants(case, lake)
