"""The acceptance checks of "One source of truth", on a synthetic week through the real CLI:
one cost per incident wherever it is printed, no finding costing more than its principal spent,
a re-run superseding the earlier run's findings, reports reading the run's own detector text,
and an inline case that expects suppression passing through the same runner as `detect`."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from forensics.case import db
from forensics.case.principals import TYPES, present_types
from forensics.cli import cli
from forensics.detect.inline_tests import run_case
from forensics.detect.load import default_dirs, load_detectors
from forensics.detect.model import DetectorTest
from forensics.report import render
from forensics.resources import shipped_dir
from tests.conftest import copy_case

pytestmark = pytest.mark.slow


def forensics(case: Path, *args: str) -> Result:
    result = CliRunner().invoke(cli, ["--db", str(case), *args])
    assert result.exit_code == 0, (args, result.output)
    return result


def usd(value: float | None) -> str:
    """As the reports print a cost (– when unknown: no priced request)."""
    return render._usd(value)


@pytest.fixture
def detected(synth_week: tuple[Path, Path], tmp_path: Path) -> Path:
    case = copy_case(synth_week[1], tmp_path)
    forensics(case, "detect")
    return case


def test_every_incident_costs_the_same_everywhere(detected: Path, tmp_path: Path) -> None:
    incidents = json.loads(forensics(detected, "incidents", "--format", "json").stdout)
    assert len(incidents) >= 5
    weekly = tmp_path / "weekly.md"
    forensics(detected, "report", "weekly", "--format", "md", "-o", str(weekly))
    pages = tmp_path / "pages"
    pages.mkdir()
    con = db.connect(detected, read_only=True)
    try:
        (start,) = con.execute("SELECT min(ts) FROM requests").fetchone()
    finally:
        con.close()
    week_lines = {
        line.split("|")[-2].strip(): line
        for line in weekly.read_text().replace("\\", "").splitlines()
        if line.startswith("|") and re.search(r"\| [0-9a-f]{32} \|$", line)
    }
    checked = 0
    for incident in incidents:
        cost = usd(incident["est_cost_usd"])
        page = pages / f"{incident['incident_id']}.md"
        forensics(detected, "report", "incident", incident["incident_id"], "--format", "md",
                  "-o", str(page))  # fmt: skip
        text = page.read_text().replace("\\", "")  # Markdown escapes $ as \$
        verdict = text.split("## Verdict", 1)[1].split("##", 1)[0]
        lines = verdict.splitlines()
        table_row = lines[lines.index("|---:|---:|---:|---:|---:|---:|---:|") + 1]
        assert table_row.split("|")[1].strip() == cost, incident["incident_id"]
        provider = incident["provider_cost_usd"]
        assert table_row.split("|")[2].strip() == usd(provider)
        line = week_lines.get(incident["incident_id"])
        if line is not None:  # incidents of the report's week (the latest one)
            assert f"| {cost} |" in line, (incident["incident_id"], line)
            checked += 1
    assert checked >= 3, f"the weekly report listed {checked} incidents; {start}"


def test_no_finding_costs_more_than_its_principal_spent(detected: Path) -> None:
    con = db.connect(detected, read_only=True)
    try:
        over = con.execute(
            """
            WITH total AS (
                SELECT principal_type, principal_id, sum(est_cost_usd) AS spent
                FROM request_principals GROUP BY ALL
            )
            SELECT f.detector_id, f.principal_type, f.principal_id, f.est_cost_usd, t.spent
            FROM findings f LEFT JOIN total t USING (principal_type, principal_id)
            WHERE f.est_cost_usd > coalesce(t.spent, 0) + 1e-9
            """
        ).fetchall()
        assert over == []
        # every finding but a provider key's has its principal's requests in its window: the
        # detectors and request_principals name principals alike
        alone = con.execute(
            "SELECT f.detector_id, f.principal_type, f.principal_id FROM findings f"
            " WHERE f.principal_type <> 'provider_key' AND NOT EXISTS (SELECT 1"
            " FROM request_principals p WHERE p.principal_type = f.principal_type"
            " AND p.principal_id = f.principal_id"
            " AND p.ts BETWEEN f.window_start AND f.window_end)"
        ).fetchall()
        assert alone == []
        # a finding without a cost is one whose requests carry no price (health checks)
        unpriced = con.execute(
            "SELECT count(*) FROM findings f WHERE f.est_cost_usd IS NULL"
            " AND f.principal_type <> 'provider_key' AND EXISTS (SELECT 1"
            " FROM request_principals p WHERE p.principal_type = f.principal_type"
            " AND p.principal_id = f.principal_id AND p.est_cost_usd IS NOT NULL"
            " AND p.ts BETWEEN f.window_start AND f.window_end)"
        ).fetchone()
        assert unpriced == (0,)
        provider = con.execute(
            "SELECT count(*), count(provider_cost_usd) FROM findings"
            " WHERE principal_type = 'provider_key'"
        ).fetchone()
        assert provider[0] >= 1 and provider[0] == provider[1]
    finally:
        con.close()


def assert_same_costs(rows: list[tuple[str, float | None, float | None]]) -> None:
    """Each (id, stored cost, recomputed cost): both unknown, or equal but for float sums."""
    for ident, stored, plain in rows:
        assert (stored is None) == (plain is None), ident
        assert stored is None or stored == pytest.approx(plain, rel=1e-9), ident


def test_stored_costs_are_the_principals_requests_in_the_window(detected: Path) -> None:
    """Each stored finding and incident cost is what request_principals gives for it, recomputed
    here with the plain join: the runner's joins read only the branches of the findings' types
    (principals.present_types) and must not lose or add a request by it."""
    con = db.connect(detected, read_only=True)
    try:
        types = [
            r[0] for r in con.execute("SELECT DISTINCT principal_type FROM findings").fetchall()
        ]
        assert {"credential", "tenant"} <= set(types), types
        assert present_types(con, "findings") == ", ".join(f"'{t}'" for t in TYPES if t in types)
        con.execute("CREATE TEMP TABLE nothing (principal_type VARCHAR)")
        assert present_types(con, "nothing") == "NULL"  # IN (NULL): no request at all
        findings = con.execute(
            """
            SELECT f.finding_id, f.est_cost_usd, (
                SELECT sum(p.est_cost_usd) FROM request_principals p
                WHERE p.principal_type = f.principal_type AND p.principal_id = f.principal_id
                  AND p.ts BETWEEN f.window_start AND f.window_end)
            FROM findings f
            """
        ).fetchall()
        assert len(findings) >= 10
        assert_same_costs(findings)
        incidents = con.execute(
            """
            WITH members AS (
                SELECT i.incident_id, i.first_seen, i.last_seen, f.principal_type,
                       f.principal_id
                FROM incidents i, unnest(i.finding_ids) AS u(finding_id)
                JOIN findings f USING (finding_id)
            ),
            requests AS (
                SELECT DISTINCT m.incident_id, p.request_row, p.est_cost_usd
                FROM members m JOIN request_principals p
                  ON p.principal_type = m.principal_type AND p.principal_id = m.principal_id
                 AND p.ts BETWEEN m.first_seen AND m.last_seen
            )
            SELECT i.incident_id, i.est_cost_usd, (SELECT sum(r.est_cost_usd) FROM requests r
                                                    WHERE r.incident_id = i.incident_id)
            FROM incidents i
            """
        ).fetchall()
        assert len(incidents) >= 5
        assert_same_costs(incidents)
    finally:
        con.close()


def test_a_stricter_rerun_supersedes_the_first_run(detected: Path, tmp_path: Path) -> None:
    detector = "automation.machine_cadence"
    first = json.loads(forensics(detected, "findings", "--detector", detector, "--format",
                                 "json").stdout)  # fmt: skip
    assert len(first) >= 2
    runs_before = json.loads(forensics(detected, "runs", "--format", "json").stdout)
    forensics(detected, "detect", "--detector", detector,
              "--param", f"{detector}.min_active_hours=1000",
              "--param", f"{detector}.max_dispersion=0.2")  # fmt: skip
    second = json.loads(forensics(detected, "findings", "--detector", detector, "--format",
                                  "json").stdout)  # fmt: skip
    runs = json.loads(forensics(detected, "runs", "--format", "json").stdout)
    assert len(runs) == len(runs_before) + 1
    newest = runs[0]
    assert newest["detectors"] == [detector]
    params = newest["params"]
    params = json.loads(params) if isinstance(params, str) else params
    assert params[detector]["min_active_hours"] == 1000
    assert len(second) < len(first)
    assert {f["run_id"] for f in second} <= {newest["run_id"]}
    old = json.loads(forensics(detected, "findings", "--run", first[0]["run_id"], "--detector",
                               detector, "--format", "json").stdout)  # fmt: skip
    assert len(old) == len(first)
    assert {f["superseded_by"] for f in old} == {newest["run_id"]}
    weekly = tmp_path / "weekly.md"
    forensics(detected, "report", "weekly", "--format", "md", "-o", str(weekly))
    rows = [line for line in weekly.read_text().splitlines() if line.startswith(f"| {detector} |")]
    in_week = rows[0].split("|")[2].strip() if rows else "0"
    assert int(in_week.replace(",", "")) <= len(second)
    incidents = json.loads(forensics(detected, "incidents", "--format", "json").stdout)
    current = {f["finding_id"] for f in json.loads(
        forensics(detected, "findings", "--format", "json").stdout)}  # fmt: skip
    assert all(set(i["finding_ids"]) <= current for i in incidents)


def test_reports_show_the_runs_own_detector_text(
    synth_week: tuple[Path, Path], tmp_path: Path
) -> None:
    rules = tmp_path / "rules" / "mine"
    rules.mkdir(parents=True)
    shipped = shipped_dir("queries") / "credential"
    for suffix in (".sql", ".yml"):
        text = (shipped / f"use_after_revocation{suffix}").read_text()
        text = text.replace("credential.use_after_revocation", "mine.revoked_use")
        if suffix == ".yml":
            text = text.replace("title: ", "title: Run-time title - ", 1)
        (rules / f"revoked_use{suffix}").write_text(text)
    case = copy_case(synth_week[1], tmp_path)
    forensics(case, "detect", "--rules", str(tmp_path / "rules"), "--detector", "mine.*")
    [incident] = json.loads(forensics(case, "incidents", "--detector", "mine.*", "--format",
                                      "json").stdout)[:1]  # fmt: skip
    sql_then = (rules / "revoked_use.sql").read_text()
    shutil.rmtree(tmp_path / "rules")  # the detector's files are gone after the run
    page = tmp_path / "incident.html"
    forensics(case, "report", "incident", incident["incident_id"], "-o", str(page))
    html = page.read_text()
    assert "Run-time title - " in html
    assert "mine.revoked_use" in html
    first_sql_line = next(line for line in sql_then.splitlines() if line.strip())
    from html import escape

    assert escape(first_sql_line, quote=True) in html


def test_an_inline_case_expecting_suppression_passes_through_the_runner(tmp_path: Path) -> None:
    detectors, problems = load_detectors(default_dirs([]))
    assert problems == []
    detector = next(d for d in detectors if d.id == "credential.use_after_revocation")
    fires = next(c for c in detector.tests if c.expect == "fire")
    allowed = dataclasses.replace(
        fires,
        name="allowlisted tenant",
        expect="suppressed",
        allowlist=({"kind": "tenant", "value": _tenant_of(fires), "reason": "incident drill"},),
    )
    result = run_case(detector, allowed, tmp_path)
    assert result.passed, result.detail
    assert result.detail.startswith("suppressed: ")
    # the same case without the allowlist row fires, so `suppressed` is not passing vacuously
    plain = dataclasses.replace(allowed, allowlist=())
    assert not run_case(detector, plain, tmp_path).passed
    assert run_case(detector, dataclasses.replace(plain, expect="fire"), tmp_path).passed


def _tenant_of(case: DetectorTest) -> str:
    for event in case.events:
        if isinstance(event, dict):
            consumer = event.get("consumer") or {}
            if isinstance(consumer, dict) and consumer.get("username"):
                return str(consumer["username"])
    raise AssertionError(f"no tenant in {case.name}")
