"""Never a silent all-clear: reports and `--fail-on` say when the evidence was not analysed.

Each case goes through the CLI on a synthetic world: before any `detect`, after it, with a log
cut short, for an empty or future period, for a two-week world whose LiteLLM proxy is quiet at
weekends, and with a previous period that has no data.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from forensics.case import db
from forensics.cli import cli
from forensics.detect.load import default_dirs, load_detectors
from forensics.report.weekly import weekly_report
from forensics.synth import SynthConfig, synthesize

pytestmark = pytest.mark.slow

MONDAY = dt.datetime(2026, 11, 16, tzinfo=dt.UTC)  # synth's default first day
BANNER = re.compile(r'<div class="banner" role="alert" id="not-analysed">(.*?)</div>', re.S)


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def banner(html: str) -> str | None:
    found = BANNER.search(html)
    return found.group(1) if found else None


def ingest_world(root: Path, days: int, seed: int, tenants: int = 30) -> tuple[Path, Path]:
    """(world folder, case) with the world written but not ingested."""
    synthesize(root / "w", SynthConfig(days=days, tenants=tenants, seed=seed))
    return root / "w", root / "case.duckdb"


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A seven-day world (Mon 16 to Sun 22 Nov 2026), ingested, never detected."""
    world, case = ingest_world(tmp_path_factory.mktemp("week"), 7, 4)
    result = run("--db", case, "ingest", world / "logs")
    assert result.exit_code == 0, result.output
    return world, case


def test_weekly_before_detect_is_not_analysed_and_after_detect_it_is(week, tmp_path):
    _, original = week
    case = tmp_path / "case.duckdb"
    shutil.copy(original, case)
    out = tmp_path / "weekly.html"
    before = run("--db", case, "report", "weekly", "--week", "2026-W47", "-o", out,
                 "--fail-on", "low")  # fmt: skip
    assert before.exit_code == 5, before.output
    shown = banner(out.read_text(encoding="utf-8"))
    assert shown is not None and "detection has not run over this period" in shown
    assert "Not analysed: this report is no all-clear." in shown
    assert "warning: detection has not run over this period" in before.stderr
    html = out.read_text(encoding="utf-8")
    assert "No finding this week." not in html and "No incident this week." not in html
    # findings and incidents under --fail-on say the same
    for command in ("findings", "incidents"):
        asked = run("--db", case, command, "--fail-on", "critical")
        assert asked.exit_code == 5, (command, asked.output)
        assert "detection has not run" in asked.stderr

    after = run("--db", case, "report", "weekly", "--week", "2026-W47", "--detect", "-o", out,
                "--fail-on", "critical")  # fmt: skip
    html = out.read_text(encoding="utf-8")
    assert banner(html) is None, banner(html)
    assert after.exit_code in (0, 3) and "warning:" not in after.stderr
    assert "Every detector of the pack ran over the whole period" in html
    # --detect ran the pack over the week and the one before it: the findings now answer
    assert run("--db", case, "findings", "--fail-on", "critical").exit_code in (0, 3)


def test_a_run_that_predates_new_evidence_or_skips_detectors_is_named(week, tmp_path):
    world, original = week
    case = tmp_path / "case.duckdb"
    shutil.copy(original, case)
    assert run("--db", case, "detect", "--detector", "credential.*").exit_code == 0
    out = tmp_path / "weekly.md"
    partial = run("--db", case, "report", "weekly", "--week", "2026-W47", "--format", "md",
                  "-o", out, "--fail-on", "critical")  # fmt: skip
    assert partial.exit_code == 5
    assert re.search(r"\d+ detectors of the pack did not run over this period: abuse\.",
                     partial.stderr)  # fmt: skip
    assert run("--db", case, "detect").exit_code == 0
    late = tmp_path / "late.jsonl"  # one more day of the gateway log, ingested after detect
    lines = (world / "logs" / "kong.jsonl").read_text(encoding="utf-8").splitlines()[:50]
    late.write_text("\n".join(json.dumps({**json.loads(x), "request": {**json.loads(x)["request"],
                    "id": f"late-{i}"}}) for i, x in enumerate(lines)) + "\n",
                    encoding="utf-8")  # fmt: skip
    assert run("--db", case, "ingest", "--format", "kong", late).exit_code == 0
    stale = run("--db", case, "report", "weekly", "--week", "2026-W47", "--format", "md",
                "-o", out, "--fail-on", "critical")  # fmt: skip
    assert stale.exit_code == 5, stale.output
    assert "detection predates evidence of this period: 1 file ingested after the run" in (
        stale.stderr
    )
    pack = len(load_detectors(default_dirs([]))[0])
    assert re.search(rf"\(late\.jsonl #\d+\) that {pack} detectors last ran in", stale.stderr)
    assert "> **Not analysed: this report is no all-clear.**" in out.read_text(encoding="utf-8")


def test_a_log_that_stops_two_days_early_is_named_with_its_silent_span(tmp_path):
    world, case = ingest_world(tmp_path, 7, 6)
    kong = world / "logs" / "kong.jsonl"
    saturday = int((MONDAY + dt.timedelta(days=5)).timestamp() * 1000)
    kept = [x for x in kong.read_text(encoding="utf-8").splitlines()
            if json.loads(x)["started_at"] < saturday]  # fmt: skip
    kong.write_text("\n".join(kept) + "\n", encoding="utf-8")
    assert run("--db", case, "ingest", world / "logs").exit_code == 0
    assert run("--db", case, "detect").exit_code == 0
    out = tmp_path / "weekly.html"
    result = run("--db", case, "report", "weekly", "--week", "2026-W47", "-o", out,
                 "--fail-on", "critical")  # fmt: skip
    assert result.exit_code in (0, 3), result.output  # analysed: gaps are shown, not exit 5
    shown = banner(out.read_text(encoding="utf-8"))
    assert shown is not None and "Gaps in the evidence" in shown
    assert re.search(
        r"kong: no records from Sat 21 Nov 2026 00:00 UTC to the end of the period"
        r" \(2 days\)",
        shown,
    ), shown
    assert "combined: no records" not in shown and "litellm: no records" not in shown
    assert "kong: no records from Sat 21 Nov 2026" in result.stderr


def test_an_empty_period_and_a_future_week_exit_5(week, tmp_path):
    _, original = week
    case = tmp_path / "case.duckdb"
    shutil.copy(original, case)
    assert run("--db", case, "detect").exit_code == 0
    out = tmp_path / "weekly.html"
    for args in (("--week", "2031-W02"), ("--since", "2026-10-01", "--until", "2026-10-08")):
        result = run("--db", case, "report", "weekly", *args, "-o", out, "--fail-on", "critical")
        assert result.exit_code == 5, (args, result.output)
        shown = banner(out.read_text(encoding="utf-8"))
        assert shown is not None and "no request in this period" in shown
        assert "the case holds requests from Mon 16 Nov 2026" in shown
    result = run("--db", case, "detect", "--since", "2031-01-01", "--fail-on", "low")
    assert result.exit_code == 5 and "no request in the scope" in result.stderr
    result = run("--db", case, "findings", "--since", "2031-01-01", "--fail-on", "low")
    assert result.exit_code == 5 and "no request in the span asked about" in result.stderr


def test_detect_on_an_empty_case_warns_and_fails_on_request(tmp_path):
    case = tmp_path / "case.duckdb"
    con = db.connect(case)  # a new, empty case
    con.close()
    plain = run("--db", case, "detect")
    assert plain.exit_code == 0 and "warning: the case has no requests" in plain.stderr
    strict = run("--db", case, "detect", "--fail-on", "high")
    assert strict.exit_code == 5, strict.output


def test_two_weeks_judge_each_log_by_its_own_rhythm(tmp_path):
    """LiteLLM's quiet weekend hours are its rhythm, not gaps; six weekday hours cut out of it
    are a gap. The second week compares with a first that has data."""
    world, case = ingest_world(tmp_path, 14, 2, tenants=12)
    spend = world / "logs" / "litellm_spend.jsonl"
    cut_from = MONDAY + dt.timedelta(days=9, hours=10)  # Wed 25 Nov 10:00
    cut_to = cut_from + dt.timedelta(hours=6)

    def inside(line: str) -> bool:
        at = dt.datetime.fromisoformat(json.loads(line)["startTime"].replace("Z", "+00:00"))
        at = at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at  # LiteLLM logs UTC
        return cut_from <= at < cut_to

    whole = spend.read_text(encoding="utf-8").splitlines()
    assert any(inside(x) for x in whole)
    spend.write_text("\n".join(x for x in whole if not inside(x)) + "\n", encoding="utf-8")
    assert run("--db", case, "ingest", world / "logs").exit_code == 0
    assert run("--db", case, "detect").exit_code == 0
    con = db.connect(case, read_only=True)
    try:
        quiet = con.execute(
            "SELECT count(*) FROM (SELECT DISTINCT time_bucket(INTERVAL 1 HOUR, ts) FROM requests"
            " WHERE format = 'litellm') "
        ).fetchall()[0][0]
        first = weekly_report(con, MONDAY, MONDAY + dt.timedelta(days=7))
        second = weekly_report(con, MONDAY + dt.timedelta(days=7), MONDAY + dt.timedelta(days=14))
    finally:
        con.close()
    assert quiet < 14 * 24 - 6  # the proxy has silent hours besides the cut
    assert first.gaps == [] and first.warnings == [], first.warnings
    assert [(g["format"], g["gap_start"], g["hours"]) for g in second.gaps] == [
        ("litellm", cut_from, 6)
    ]
    assert second.warnings == [
        "litellm: no records from Wed 25 Nov 2026 10:00 UTC until Wed 25 Nov 2026 16:00 UTC (6 h)"
    ]
    # the headline and cards compare with a previous period that has data
    now, before = second.totals
    assert before["requests"] > 0 and second.previous_has_data
    arrow = second.changes["requests"]
    assert arrow is not None and arrow["arrow"] in ("▲", "▼", "=")
    assert second.headline[0].startswith(f"{len(second.incidents)} incident")
    assert "new)" in second.headline[0] and "(of $" in second.headline[0]
    # the period's exposure counts each request once: never more than all its traffic
    assert 0 < now["exposure_usd"] <= now["cost_usd"]
    shared = sum(i["exposure_usd"] or 0 for i in second.incidents)
    assert now["exposure_usd"] <= shared + 1e-9


def test_a_previous_period_detection_never_read_is_no_baseline(week, tmp_path):
    _, original = week
    case = tmp_path / "case.duckdb"
    shutil.copy(original, case)
    assert run("--db", case, "detect", "--since", "2026-11-19").exit_code == 0
    out = tmp_path / "weekly.md"
    result = run("--db", case, "report", "weekly", "--since", "2026-11-19", "--until",
                 "2026-11-22", "--format", "md", "-o", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert "detection did not fully cover the previous period" in result.stderr
    assert "| incidents |" in text and "not analysed" in text
    assert "| new |" not in text and "| recurring |" not in text  # nothing to be new against
    assert "no earlier analysis" in text


def test_a_run_that_read_a_removed_file_is_stale(week, tmp_path):
    _, original = week
    case = tmp_path / "case.duckdb"
    shutil.copy(original, case)
    assert run("--db", case, "detect").exit_code == 0
    out = tmp_path / "weekly.md"
    clean = run("--db", case, "report", "weekly", "--week", "2026-W47", "--format", "md",
                "-o", out, "--fail-on", "critical")  # fmt: skip
    assert "warning: detection" not in clean.stderr, clean.stderr
    con = db.connect(case, read_only=True)
    try:
        [(revocations,)] = con.execute(
            "SELECT source_id FROM sources WHERE format = 'revocations'"
        ).fetchall()
    finally:
        con.close()
    removed = run("--db", case, "sources", "remove", str(revocations), "--reason", "wrong list")
    assert removed.exit_code == 0, removed.output
    after = run("--db", case, "report", "weekly", "--week", "2026-W47", "--format", "md",
                "-o", out, "--fail-on", "critical")  # fmt: skip
    assert after.exit_code in (3, 5)
    assert "last ran on evidence since removed from the case" in after.stderr
