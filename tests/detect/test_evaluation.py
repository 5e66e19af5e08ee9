"""Detectors evaluated side by side: the same findings as one at a time, times read in UTC on
every connection, and a run stopped midway leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from forensics.case import db
from forensics.cli import cli
from forensics.detect import evaluation, features
from forensics.detect.evaluation import CROWDED, Evaluation
from forensics.detect.load import default_dirs, load_detectors
from forensics.detect.runner import run_detectors
from forensics.synth import SynthConfig, synthesize

REPO = Path(__file__).resolve().parents[2]

# what a finding says, without the run it belongs to
FINDING = (
    "detector_id, severity, score, principal_type, principal_id, tenant_id, window_start,"
    " window_end, summary, CAST(evidence AS VARCHAR), round(est_cost_usd, 9), suppressed"
)
INCIDENT = (
    "principal_type, principal_id, tenant_id, first_seen, last_seen, score, severity, detectors,"
    " primary_detector, len(finding_ids), round(est_cost_usd, 9)"
)


@pytest.fixture(scope="module")
def world_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("parallel")
    synthesize(root / "w", SynthConfig(days=2, tenants=6, seed=11))
    case = root / "case.duckdb"
    out = CliRunner().invoke(cli, ["--db", str(case), "ingest", "-q", str(root / "w" / "logs")])
    assert out.exit_code == 0, out.output
    return case


def _run(case: Path, workers: int) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    detectors, problems = load_detectors(default_dirs([]))
    assert problems == []
    con = db.connect(case)
    try:
        result = run_detectors(con, detectors, workers=workers)
        assert result.errors == {}
        assert sorted(result.seconds) == sorted(d.id for d in detectors)
        findings = con.execute(
            f"SELECT {FINDING} FROM findings WHERE run_id = $run ORDER BY ALL",
            {"run": result.run_id},
        ).fetchall()
        incidents = con.execute(f"SELECT {INCIDENT} FROM incidents ORDER BY ALL").fetchall()
        scratch = con.execute(
            "SELECT count(*) FROM duckdb_databases() WHERE database_name LIKE 'forensics_run_%'"
        ).fetchall()
        assert scratch == [(0,)]
        return findings, incidents
    finally:
        con.close()


def test_two_workers_find_exactly_what_one_finds(world_case: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one.duckdb", tmp_path / "two.duckdb"
    shutil.copy(world_case, one)
    shutil.copy(world_case, two)
    findings_one, incidents_one = _run(one, workers=1)
    findings_two, incidents_two = _run(two, workers=2)
    assert len(findings_one) > 10 and len(incidents_one) > 3
    assert findings_two == findings_one
    assert incidents_two == incidents_one


def test_a_stopped_run_stores_nothing_and_leaves_no_scratch(world_case: Path, tmp_path: Path):
    case = tmp_path / "stopped.duckdb"
    shutil.copy(world_case, case)
    detectors, _ = load_detectors(default_dirs([]))
    seen: list[str] = []

    def ctrl_c(detector_id: str, seconds: float, rows: int, error: str | None) -> None:
        seen.append(detector_id)
        if len(seen) == 3:
            raise KeyboardInterrupt

    con = db.connect(case)
    con.execute(f"SET threads = {THREADS}")
    try:
        with pytest.raises(KeyboardInterrupt):
            run_detectors(con, detectors, progress=ctrl_c, workers=2)
        assert len(seen) == 3
        left = con.execute(
            "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM findings),"
            " (SELECT count(*) FROM duckdb_databases() WHERE database_name LIKE 'forensics_run_%'),"
            " (SELECT count(*) FROM duckdb_views() WHERE temporary"
            "  AND view_name IN ('principal_hours', '_run_new'))"
        ).fetchall()
        assert left == [(0, 0, 0, 0)]
        # the threads the workers shared are given back, and the configuration is locked
        assert _settings(con) == [(THREADS, True)]
        # the connection still works, and a later run on it finds what a fresh one does
        result = run_detectors(con, detectors, workers=2)
        assert result.errors == {} and sum(result.findings.values()) > 10
    finally:
        con.close()


THREADS = 4  # set on the case, whatever the machine's cores: two workers get two each


def _settings(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    return con.execute(
        "SELECT current_setting('threads'), current_setting('lock_configuration')"
    ).fetchall()


def test_workers_share_the_threads_and_give_them_back(
    world_case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers run their detectors on half the threads each; the one with nothing left to
    start gives its half to the other; after the run the threads are as they were, and the
    configuration is locked."""
    case = tmp_path / "threads.duckdb"
    shutil.copy(world_case, case)
    detectors, _ = load_detectors(default_dirs([]))
    seen: list[tuple[str, int, bool]] = []
    lock = threading.Lock()
    evaluate = evaluation.evaluate

    def watched(con: duckdb.DuckDBPyConnection, *args: Any) -> int:
        [(threads, locked)] = _settings(con)
        with lock:
            seen.append((args[1].id, int(threads), bool(locked)))
        return evaluate(con, *args)

    monkeypatch.setattr(evaluation, "evaluate", watched)
    con = db.connect(case)
    con.execute(f"SET threads = {THREADS}")
    try:
        result = run_detectors(con, detectors, workers=2)
        assert result.errors == {}
        assert _settings(con) == [(THREADS, True)]
    finally:
        con.close()
    assert sorted(d for d, _, _ in seen) == sorted(d.id for d in detectors)
    assert not any(locked for _, _, locked in seen)  # locked only once they have run
    # each detector started on a half; only the last to start can start on more, once the
    # other worker has nothing left to start
    assert {threads for _, threads, _ in seen[:-1]} == {THREADS // 2}
    assert seen[-1][1] in (THREADS // 2, THREADS)


def test_one_worker_keeps_every_thread(world_case: Path, tmp_path: Path) -> None:
    case = tmp_path / "one.duckdb"
    shutil.copy(world_case, case)
    detectors, _ = load_detectors(default_dirs([]))
    con = db.connect(case)
    con.execute(f"SET threads = {THREADS}")
    try:
        run_detectors(con, detectors[:3], workers=1)
        assert _settings(con) == [(THREADS, True)]
    finally:
        con.close()


def test_every_connection_of_a_run_reads_times_in_utc(tmp_path: Path) -> None:
    """The process's zone is not the case's: a second connection must not fall back to it."""
    script = (
        "import sys; from forensics.case import db\n"
        "con = db.connect(sys.argv[1]); db.sandbox(con); other = db.session(con)\n"
        "q = \"SELECT current_setting('TimeZone'), CAST(TIMESTAMPTZ '2026-01-05 23:30:00+00'"
        ' AS DATE)"\n'
        "print(con.execute(q).fetchall(), other.execute(q).fetchall())\n"
    )
    env = {**os.environ, "TZ": "Pacific/Auckland"}
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "tz.duckdb")],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=True,
    )
    want = "[('UTC', datetime.date(2026, 1, 5))]"
    assert out.stdout.strip() == f"{want} {want}"


def test_a_session_has_the_case_macros(tmp_path: Path) -> None:
    con = db.connect(tmp_path / "m.duckdb")
    other = db.session(con)
    try:
        query = "SELECT count(*) FROM principal_requests('tenant', 'nobody')"
        assert other.execute(query).fetchall() == [(0,)]
        assert other.execute("SELECT cred_fp('sk-test-123') LIKE 'cred:%'").fetchall() == [(True,)]
    finally:
        other.close()
        con.close()


def test_features_that_crowd_the_memory_limit_leave_one_detector_at_a_time(
    world_case: Path, tmp_path: Path
) -> None:
    case = tmp_path / "crowded.duckdb"
    shutil.copy(world_case, case)
    scope = {"since": None, "until": None, "tenant": None}
    con = db.connect(case)
    try:
        with Evaluation(con, "a" * 32, ["principal_hours"], scope, workers=2) as roomy:
            [(features_bytes,)] = con.execute(
                "SELECT sum(memory_usage_bytes) FROM duckdb_memory() WHERE tag = 'IN_MEMORY_TABLE'"
            ).fetchall()
            assert roomy.workers == 2  # DuckDB's default limit: most of the machine's memory
        assert features_bytes > 0
        # the share counts every in-memory table: a TEMP table of some 100 MB under a 256 MB
        # limit crowds it (a limit near the features' own few MB leaves no room to compute them)
        con.execute("SET memory_limit = '256MB'")
        assert features.share_of_memory(con) < CROWDED
        con.execute(
            "CREATE TEMP TABLE ballast AS SELECT i, repeat('x', 100) AS s FROM range(1000000) t(i)"
        )
        assert features.share_of_memory(con) > CROWDED
        with Evaluation(con, "b" * 32, ["principal_hours"], scope, workers=2) as crowded:
            assert crowded.workers == 1
    finally:
        con.close()
