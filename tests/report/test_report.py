"""`forensics report incident`: rendered from a synthetic world with hostile strings planted in
its logs, checked against the case, and opened in headless Chromium with the network off."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from forensics.case import db
from forensics.cli import cli
from forensics.synth import SynthConfig, synthesize

# A resource the browser would fetch: an attribute pointing outside, a stylesheet import or url(),
# a linked file. URLs that are data from the logs (an issuer, an origin) are text, not resources.
EXTERNAL = re.compile(
    r"""(?:src|href|action|xlink:href|poster|data)\s*=\s*["']?\s*(?:https?:)?//|@import|url\(|<link\b""",
    re.IGNORECASE,
)

HOSTILE_UA = '<script>document.title="pwned-ua"</script><img src=x onerror="alert(1)">'
HOSTILE_ORIGIN = "javascript:alert('origin')\"><b>bold</b>\u202egnp.exe"
HOSTILE_TENANT = "tenant-<i>evil</i>\"' onmouseover=alert(2)"
HOSTILE_SESSION = "<svg onload=alert(3)>"
HOSTILE_ID = "<a href=javascript:alert(4)>x</a>"
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"


def forensics(*args: str | Path) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A one-day world whose scraper sends a hostile user agent and origin; (case, credential)."""
    root = tmp_path_factory.mktemp("report")
    synthesize(root / "w", SynthConfig(days=1, tenants=4, seed=3))
    labels = list(csv.DictReader((root / "w" / "labels.csv").open(encoding="utf-8")))
    scraper = next(lb for lb in labels if lb["scenario"] == "scraping")["principal_id"]
    kong = root / "w" / "logs" / "kong.jsonl"
    lines = []
    for line in kong.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("authenticated_entity", {}).get("id") == scraper:
            headers = record["request"]["headers"]
            headers["user-agent"] = HOSTILE_UA
            headers["origin"] = HOSTILE_ORIGIN
            headers["x-session-id"] = HOSTILE_SESSION
            record["consumer"]["username"] = HOSTILE_TENANT
            record["request"]["id"] = HOSTILE_ID + record["request"]["id"][:8]
        lines.append(json.dumps(record))
    kong.write_text("\n".join(lines) + "\n", encoding="utf-8")
    case = root / "case.duckdb"
    forensics("--db", case, "ingest", "--asn-db", root / "w" / "ip2asn-v4.tsv", root / "w" / "logs")
    forensics("--db", case, "detect")
    return case, scraper


@pytest.fixture(scope="module")
def page(world: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    case, scraper = world
    out = tmp_path_factory.mktemp("html") / "incident.html"
    assert forensics(
        "--db", case, "report", "incident", "--credential", scraper, "-o", out
    ).strip() == str(out)
    return out, out.read_text(encoding="utf-8")


def test_sections_and_numbers_match_the_case(world, page):
    case, scraper = world
    _, html = page
    for section in ("verdict", "actions", "timeline", "shape", "networks", "findings", "custody"):
        assert f'<section id="{section}">' in html
    con = db.connect(case, read_only=True)
    try:
        incident = con.execute(
            "SELECT i.incident_id, i.principal_id, i.first_seen, i.last_seen FROM incidents i,"
            " findings f WHERE f.principal_id = $c AND list_contains(i.finding_ids, f.finding_id)"
            " ORDER BY i.last_seen DESC LIMIT 1",
            {"c": scraper},
        ).fetchall()[0]
        requests = con.execute(
            "SELECT count(*) FROM requests WHERE tenant_id = $t AND ts BETWEEN $a AND $b",
            {"t": incident[1], "a": incident[2], "b": incident[3]},
        ).fetchall()[0][0]
        sources = con.execute("SELECT sha256 FROM sources").fetchall()
        detectors = [
            r[0]
            for r in con.execute(
                "SELECT detector_id FROM findings f, incidents i WHERE i.incident_id = $i"
                " AND list_contains(i.finding_ids, f.finding_id)",
                {"i": incident[0]},
            ).fetchall()
        ]
    finally:
        con.close()
    assert incident[0] in html
    assert f'<div class="v">{requests:,}</div><div class="k">requests</div>' in html
    assert "scraping.near_duplicate_prompts" in detectors
    for detector in detectors:
        assert detector in html
    for (sha,) in sources:  # chain of custody lists every source file's hash
        assert sha in html
    assert "Rate-limit or suspend" in html  # the action tied to the scraping finding
    assert "WITH scales AS" in html  # the SQL to reproduce the scraping finding


def test_self_contained_and_hostile_strings_are_text(page):
    _, html = page
    assert not EXTERNAL.search(html)  # no CDN script, font, image or stylesheet
    assert "http://www.w3.org" not in html  # not even the SVG namespace
    assert "<script" not in html.lower()
    assert HOSTILE_UA not in html and "<img src=x" not in html
    assert "&lt;script&gt;document.title=&#34;pwned-ua&#34;&lt;/script&gt;" in html
    assert "javascript:alert(&#39;origin&#39;)&#34;&gt;&lt;b&gt;bold&lt;/b&gt;" in html
    assert "<b>bold</b>" not in html
    for raw in ("<i>evil</i>", "<svg onload", "<a href=javascript"):  # tenant, session, request id
        assert raw not in html
    assert "tenant-&lt;i&gt;evil&lt;/i&gt;&#34;&#39; onmouseover=alert(2)" in html
    assert "&lt;a href=javascript:alert(4)&gt;x&lt;/a&gt;" in html
    assert "\u202e" not in html and "&lt;U+202E&gt;gnp.exe" in html  # the override is shown
    assert html.count("<svg") >= 1


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("FORENSICS_REQUIRE_BROWSER"):
            pytest.fail("FORENSICS_REQUIRE_BROWSER is set but no chromium is installed")
        pytest.skip("no chromium here (.ci/run installs Debian's chromium for this test)")
    return found


def test_renders_in_headless_chromium_offline_and_nothing_executes(page, tmp_path):
    chromium = _chromium()
    path, _ = page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "incident.png"
    base = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--proxy-server=127.0.0.1:9",  # nothing is reachable: any fetch would fail
        "--proxy-bypass-list=<-loopback>",
        "--window-size=1200,2600",
    ]
    dom = subprocess.run(
        [*base, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    subprocess.run([*base, f"--screenshot={shot}", path.as_uri()], capture_output=True, timeout=120)
    assert "<title>Incident " in dom and "pwned" not in dom.split("</title>")[0]
    assert "<b>bold</b>" not in dom and "<i>evil</i>" not in dom  # origin and tenant stayed text
    assert "javascript:alert(4)" not in re.sub(r"&lt;a href=javascript:alert\(4\)", "", dom)
    charts = re.findall(r"<svg[^>]*>.*?</svg>", dom, flags=re.S)
    assert charts and ("<path" in charts[0] or "<rect" in charts[0])  # drawn, not empty
    assert shot.exists() and shot.stat().st_size > 10_000


def test_choosing_an_incident(world, tmp_path):
    case, _ = world
    result = CliRunner().invoke(
        cli, ["--db", str(case), "report", "incident", "-o", str(tmp_path / "x.html")]
    )
    assert result.exit_code == 2
    assert "give one of INCIDENT_ID, --tenant, --credential or --principal" in result.output
    result = CliRunner().invoke(
        cli,
        [
            "--db",
            str(case),
            "report",
            "incident",
            "--principal",
            "asn",
            "-o",
            str(tmp_path / "x.html"),
        ],
    )
    assert result.exit_code == 2 and "give TYPE:ID" in result.output
    result = CliRunner().invoke(
        cli,
        [
            "--db",
            str(case),
            "report",
            "incident",
            "--tenant",
            "nobody",
            "-o",
            str(tmp_path / "x.html"),
        ],
    )
    assert result.exit_code == 1 and "no such incident in the case" in result.output


def test_weekly_report_counts_match_the_case_and_fail_on_exits_3(world, tmp_path):
    case, _ = world
    out = tmp_path / "weekly.html"
    args = ["--db", str(case), "report", "weekly", "--since", "2026-11-16", "--until", "2026-11-17"]
    result = CliRunner().invoke(cli, [*args, "-o", str(out), "--fail-on", "high"])
    assert result.exit_code == 3 and "a finding at high" in result.output
    html = out.read_text(encoding="utf-8")
    for section in ("summary", "incidents", "exposure", "detectors", "trends", "coverage"):
        assert f'<section id="{section}">' in html
    assert not EXTERNAL.search(html) and "<svg" in html
    con = db.connect(case, read_only=True)
    try:
        requests = con.execute("SELECT count(*) FROM requests").fetchall()[0][0]
        incidents = [r[0] for r in con.execute("SELECT incident_id FROM incidents").fetchall()]
    finally:
        con.close()
    assert f'<div class="v">{requests:,}</div>' in html
    assert all(i in html for i in incidents)  # a one-day case: every incident is this week's
    # nothing before it: no incident can be called new, no card compares with zeros
    assert html.count(">no earlier data</td>") == len(incidents) and ">new</td>" not in html
    assert "(previous: no data)" in html and "(previous: 0)" not in html
    result = CliRunner().invoke(cli, [*args, "-o", str(out), "--fail-on", "critical"])
    assert result.exit_code == 0


def test_weekly_report_shows_hours_a_steady_log_went_silent(tmp_path):
    synthesize(tmp_path / "w", SynthConfig(days=1, tenants=2, seed=5))
    kong = tmp_path / "w" / "logs" / "kong.jsonl"
    start = 1794787200000  # 2026-11-16T00:00:00Z in ms
    kept = [
        line
        for line in kong.read_text(encoding="utf-8").splitlines()
        if not 10 <= (json.loads(line)["started_at"] - start) // 3_600_000 < 13
        and (json.loads(line)["started_at"] - start) // 3_600_000 < 21  # stops; nginx goes on
    ]
    kong.write_text("\n".join(kept) + "\n", encoding="utf-8")
    case = tmp_path / "case.duckdb"
    forensics("--db", case, "ingest", kong, tmp_path / "w" / "logs" / "access.log")
    out = tmp_path / "weekly.html"
    result = CliRunner().invoke(
        cli, ["--db", str(case), "report", "weekly", "--week", "2026-W47", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    coverage = html[html.index('<section id="coverage">') :]
    spans = re.findall(r"<li>(kong: no records [^<]+)</li>", coverage)
    assert spans == [
        "kong: no records from Mon 16 Nov 2026 10:00 UTC until Mon 16 Nov 2026 13:00 UTC (3 h)",
        "kong: no records from Mon 16 Nov 2026 21:00 UTC to the end of the case (3 h)",
    ]
    assert "combined: no records" not in coverage
    # the one-day case in a seven-day week says so, at the top and on stderr
    banner = html[
        html.index('id="not-analysed"') : html.index("</div>", html.index("not-analysed"))
    ]
    assert "the case covers 1 day of this period of 7 days" in banner
    assert "the case covers 1 day of this period of 7 days" in result.stderr
    assert "detection has not run over this period" in banner  # and detect never ran


def test_weekly_report_options(world, tmp_path):
    case, _ = world
    out = str(tmp_path / "w.html")
    bad = CliRunner().invoke(
        cli, ["--db", str(case), "report", "weekly", "--week", "47", "-o", out]
    )
    assert bad.exit_code == 2 and "not an ISO week (2 characters shaped 99)" in bad.output
    assert "2026-W47" in bad.output  # the hint
    planted = "sk-proj-" + "a1B2" * 10
    leaked = CliRunner().invoke(
        cli, ["--db", str(case), "report", "weekly", "--week", planted, "-o", out]
    )
    assert leaked.exit_code == 2 and planted not in leaked.output
    both = CliRunner().invoke(
        cli,
        [
            "--db",
            str(case),
            "report",
            "weekly",
            "--week",
            "2026-W47",
            "--since",
            "2026-11-16",
            "-o",
            out,
        ],
    )
    assert both.exit_code == 2 and "not both" in both.output
    latest = CliRunner().invoke(cli, ["--db", str(case), "report", "weekly", "-o", out])
    assert latest.exit_code == 0
    assert "Weekly abuse report 2026-W47" in Path(out).read_text(encoding="utf-8")


def test_demo_writes_a_bundle_with_a_page_per_incident(tmp_path):
    synthesize(tmp_path / "world", SynthConfig(days=1, tenants=2, seed=7))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["demo", "-o", str(out), "--data", str(tmp_path / "world")])
    assert result.exit_code == 0, result.output
    con = db.connect(out / "demo.duckdb", read_only=True)
    try:
        incidents = con.execute("SELECT count(*) FROM incidents").fetchall()[0][0]
    finally:
        con.close()
    assert (out / "index.html").is_file() and (out / "weekly.html").is_file()
    pages = sorted((out / "incidents").glob("*.html"))
    assert len(pages) == incidents and incidents > 5
    assert len(list((out / "evidence").glob("*.zip"))) == incidents
    weekly = (out / "weekly.html").read_text(encoding="utf-8")
    assert "the case covers 1 day of this period of 7 days" in weekly  # a one-day sample
    for page in [out / "index.html", out / "weekly.html", *pages]:
        assert str(page) in result.stdout
        assert not EXTERNAL.search(page.read_text(encoding="utf-8"))
    assert "(all)" in result.stdout  # the findings were scored against the world's labels


def test_markdown_reports_keep_log_strings_as_text(world, tmp_path):
    case, scraper = world
    out = tmp_path / "incident.md"
    forensics(
        "--db", case, "report", "incident", "--credential", scraper, "--format", "md", "-o", out
    )
    md = out.read_text(encoding="utf-8")
    assert md.startswith("# Incident: tenant ")
    for heading in ("## Verdict", "## Recommended actions", "## Findings", "## Chain of custody"):
        assert heading in md
    assert not re.search(r"(?<!\\)[<>\[\]]", md)  # every angle and square bracket escaped
    assert r"\<script\>document.title=" in md and r"\<b\>bold\</b\>" in md
    table_rows = [line for line in md.splitlines() if line.startswith("| ")]
    widths = {line.count(" | ") - line.count(r"\|") for line in table_rows}
    assert all(w >= 1 for w in widths)  # no escaped pipe opened a cell of its own
    weekly = tmp_path / "weekly.md"
    forensics("--db", case, "report", "weekly", "--format", "md", "-o", weekly)
    text = weekly.read_text(encoding="utf-8")
    assert text.startswith("# Weekly abuse report 2026-W47") and "## Incidents" in text


def test_a_provider_key_incident_shows_the_providers_usage(world, tmp_path):
    case, _ = world
    con = db.connect(case, read_only=True)
    try:
        key, tokens = con.execute(
            "SELECT i.principal_id, (SELECT sum(input_tokens) FROM usage u"
            " WHERE u.api_key_id = i.principal_id) FROM incidents i"
            " WHERE i.principal_type = 'provider_key'"
        ).fetchall()[0]
    finally:
        con.close()
    out = tmp_path / "key.html"
    forensics("--db", case, "report", "incident", "--principal", f"provider_key:{key}", "-o", out)
    html = out.read_text(encoding="utf-8")
    assert '<section id="usage">' in html
    assert f'<div class="v">{tokens:,}</div><div class="k">input tokens</div>' in html


def test_weekly_report_mid_day_period_ongoing_incidents_and_no_false_gaps(world, tmp_path):
    case, _ = world
    out = tmp_path / "half.html"
    forensics(
        "--db", case, "report", "weekly", "--since", "2026-11-16T12:30:00Z",
        "--until", "2026-11-17", "-o", out,
    )  # fmt: skip
    html = out.read_text(encoding="utf-8")
    assert ">ongoing</td>" in html  # began before the period: not new, not recurring
    assert ">recurring</td>" not in html  # no other incident before it in this one-day case
    # no fake gap from a period that starts mid-hour
    assert "Every log format kept to its own rhythm through the whole period" in html


def test_an_incident_window_that_ends_before_it_starts_is_refused(world, tmp_path):
    case, scraper = world
    result = CliRunner().invoke(
        cli,
        ["--db", str(case), "report", "incident", "--credential", scraper, "--since",
         "2027-01-01", "-o", str(tmp_path / "x.html")],
    )  # fmt: skip
    assert result.exit_code == 2 and "after it ends" in result.output


def test_a_single_instant_incident_is_reported(world, tmp_path):
    """One request after a revocation is an incident whose window is one instant."""
    case, scraper = world
    copy = tmp_path / "instant.duckdb"
    shutil.copy(case, copy)
    con = db.connect(copy)
    try:
        [(incident_id, first_seen, pid)] = con.execute(
            "SELECT incident_id, first_seen, principal_id FROM incidents"
            " ORDER BY first_seen LIMIT 1"
        ).fetchall()
        con.execute("UPDATE incidents SET last_seen = first_seen WHERE incident_id = $i",
                    {"i": incident_id})  # fmt: skip
    finally:
        con.close()
    for fmt in ("html", "md"):
        out = tmp_path / f"instant.{fmt}"
        forensics("--db", copy, "report", "incident", incident_id, "--format", fmt, "-o", out)
        assert out.stat().st_size > 0
    html = (tmp_path / "instant.html").read_text(encoding="utf-8")
    assert first_seen.strftime("%Y-%m-%d %H:%M") in html
