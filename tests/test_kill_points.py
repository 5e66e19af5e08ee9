"""kill -9 at many points of ingest, detect and report (commit included): the case opens, every
count reconciles, nothing is half there, and running the command again finishes the job.

The points are fractions of how long the whole command takes on this machine, measured first,
dense near the end where the transaction commits.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forensics.case import db
from forensics.case.verify import ROW_TABLES
from forensics.synth import SynthConfig, synthesize

pytestmark = pytest.mark.slow

FORENSICS = [sys.executable, "-m", "forensics"]
FRACTIONS = (0.1, 0.35, 0.6, 0.8, 0.9, 0.95, 0.98, 1.0, 1.03)
ENV = dict(os.environ, FORENSICS_CHUNK_BYTES=str(2 * 1024 * 1024))


def _run(*args: str | Path) -> float:
    started = time.monotonic()
    subprocess.run(
        [*FORENSICS, *map(str, args)], check=True, env=ENV, capture_output=True, timeout=600
    )
    return time.monotonic() - started


def _killed(seconds: float, *args: str | Path) -> bool:
    """Start the command, kill -9 it after `seconds`; whether it was still running."""
    proc = subprocess.Popen(
        [*FORENSICS, *map(str, args)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def _ingest_invariants(case: Path) -> list[tuple[int, int]]:
    """Every source reconciles and its rows are all there; (source_id, rows_loaded)."""
    con = db.connect(case, read_only=True)
    try:
        sources = con.execute(
            "SELECT source_id, rows_read, rows_loaded, rows_quarantined FROM sources"
            " ORDER BY source_id"
        ).fetchall()
        for source_id, read, loaded, quarantined in sources:
            assert read == loaded + quarantined, source_id
            [(stored,)] = con.execute(
                "SELECT "
                + " + ".join(
                    f"(SELECT count(*) FROM {table} WHERE source_id = $s)"
                    for table in ROW_TABLES  # every table a file's loaded rows go to
                    if table != "quarantine"
                ),
                {"s": source_id},
            ).fetchall()
            assert stored == loaded, (source_id, stored, loaded)
            [(held,)] = con.execute(
                "SELECT count(*) FROM quarantine WHERE source_id = $s", {"s": source_id}
            ).fetchall()
            assert held == quarantined, source_id
        [(orphans,)] = con.execute(
            "SELECT count(*) FROM requests WHERE source_id NOT IN (SELECT source_id FROM sources)"
        ).fetchall()
        assert orphans == 0
        return [(s[0], s[2]) for s in sources]
    finally:
        con.close()


def _detect_invariants(case: Path) -> int:
    """Every stored run is whole; incidents point at current findings; the number of runs."""
    con = db.connect(case, read_only=True)
    try:
        runs = con.execute("SELECT run_id, status, finished_at FROM runs").fetchall()
        for run_id, status, finished in runs:
            assert status in ("ok", "errors") and finished is not None, run_id
            [(stored, counted)] = con.execute(
                "SELECT (SELECT count(*) FROM findings WHERE run_id = $r),"
                " (SELECT coalesce(sum(findings), 0) FROM run_detectors WHERE run_id = $r)",
                {"r": run_id},
            ).fetchall()
            assert stored == counted, run_id
        [(dangling,)] = con.execute(
            "SELECT count(*) FROM (SELECT unnest(finding_ids) AS f FROM incidents)"
            " WHERE f NOT IN (SELECT finding_id FROM findings WHERE superseded_by IS NULL)"
        ).fetchall()
        assert dangling == 0
        return len(runs)
    finally:
        con.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kill")
    synthesize(root / "w", SynthConfig(days=2, tenants=6, seed=11))
    return root / "w"


def test_kill_9_during_ingest(world: Path, tmp_path: Path) -> None:
    logs = world / "logs"
    whole = _run("--db", tmp_path / "clean.duckdb", "ingest", "-q", logs)
    clean = _ingest_invariants(tmp_path / "clean.duckdb")
    kills = 0
    cases = []
    for n, fraction in enumerate(FRACTIONS):
        # each kill point on a fresh case: a resumed ingest skips what is loaded and would
        # finish before the later points
        case = tmp_path / f"case{n}.duckdb"
        kills += _killed(whole * fraction, "--db", case, "ingest", "-q", logs)
        if case.exists():
            _ingest_invariants(case)
            cases.append(case)
    assert kills >= len(FRACTIONS) // 2, "the command finished before most kill points"
    for case in cases:  # running it again finishes the job, wherever it was killed
        _run("--db", case, "ingest", "-q", logs)
        again = _ingest_invariants(case)
        assert sorted(n for _, n in again) == sorted(n for _, n in clean)


def test_kill_9_during_detect_and_report(world: Path, tmp_path: Path) -> None:
    case = tmp_path / "case.duckdb"
    _run("--db", case, "ingest", "-q", world / "logs")
    scratch = tmp_path / "scratch.duckdb"
    shutil.copyfile(case, scratch)
    # the faster of two runs: on a busy machine one slow reference run puts every kill point
    # after the end
    whole = min(_run("--db", scratch, "detect") for _ in range(2))
    kills = 0
    for fraction in FRACTIONS:
        kills += _killed(whole * fraction, "--db", case, "detect")
        _detect_invariants(case)
    assert kills >= len(FRACTIONS) // 2
    before = _detect_invariants(case)
    _run("--db", case, "detect")
    assert _detect_invariants(case) == before + 1

    report = tmp_path / "weekly.html"
    whole = _run("--db", case, "report", "weekly", "-o", report)
    finished = report.read_text(encoding="utf-8")
    report.unlink()
    for fraction in FRACTIONS:
        _killed(whole * fraction, "--db", case, "report", "weekly", "-o", report)
        # a killed report never leaves a page: either none, or the whole one
        if report.exists():
            assert report.read_text(encoding="utf-8").rstrip().endswith("</html>")
        assert not list(tmp_path.glob(".weekly.html.*.partial"))
    assert finished.rstrip().endswith("</html>")
