"""Golden file: the incident page rendered from fixed data (no chart, so no vl-convert version in
the bytes) must match tests/golden/incident.html exactly. A change of the template is a reviewed
change of that file: regenerate it with FORENSICS_UPDATE_GOLDEN=1 and read the diff."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from forensics.report.incident import IncidentReport
from forensics.report.render import render_incident

GOLDEN = Path(__file__).resolve().parent / "golden" / "incident.html"
T0 = dt.datetime(2026, 11, 16, 2, 0, tzinfo=dt.UTC)


def fixed_report() -> IncidentReport:
    finding = {
        "finding_id": "f" * 32,
        "detector_id": "scraping.near_duplicate_prompts",
        "detector_version": "d" * 64,
        "title": "Burst of short near-duplicate prompts from one principal",
        "description": "A credential sending many short prompts that share a prefix.",
        "runbook": "1. Look at the prefix clusters.",
        "severity": "medium",
        "score": 84.5,
        "principal_type": "credential",
        "principal_id": "cred-1",
        "tenant_id": "tenant-<acme>",
        "window_start": T0,
        "window_end": T0 + dt.timedelta(minutes=50),
        "summary": 'credential cred-1 sent 1,200 short prompts "within" 120 minutes',
        "evidence": {"requests": 1200, "top_cluster_share": 0.93, "sample_prefix_fps": ["0x1"]},
        "est_cost_usd": 0.4,
        "provider_cost_usd": None,
        "suppressed": False,
        "suppressed_by": None,
        "triage_status": "accepted_risk",
        "triage_reason": "load test | <i>planned</i>",
        "bound": {"min_requests": 1000, "since": None},
        "sql": "SELECT 1 -- the detector's SQL",
        "samples": [
            {"request_id": "r1", "ts": T0, "client_ip": "203.0.113.5", "country": "NL",
             "endpoint": "chat", "model": "gpt-4o-mini", "status": 200,
             "user_agent": "<script>alert(1)</script>"},
        ],
    }  # fmt: skip
    return IncidentReport(
        header={
            "incident_id": "i" * 32, "principal_type": "tenant", "principal_id": "tenant-<acme>",
            "tenant_id": "tenant-<acme>", "window_start": T0,
            "window_end": T0 + dt.timedelta(hours=1), "severity": "medium", "score": 84.5,
            "generated_at": T0 + dt.timedelta(days=12), "tool_version": "0.0.0",
            "case_id": "c" * 12, "primary_detector": "scraping.near_duplicate_prompts",
            "supporting": ["automation.<cadence>"], "triage_status": "investigating",
            "triage_reason": "asked <b>the tenant</b>", "triage_by": "alice",
            "triage_at": T0 + dt.timedelta(days=12),
        },
        verdict={
            "requests": 1234, "input_tokens": 56789, "output_tokens": 12345,
            "est_cost_usd": 1.5, "first_seen": T0, "last_seen": T0 + dt.timedelta(hours=1),
            "credentials": 1, "client_ips": 2, "findings": 1,
            "by_severity": [{"severity": "medium", "n": 1}], "provider_cost_usd": None,
        },
        actions=[{"text": "Rate-limit or suspend cred-1.", "detector_id": finding["detector_id"],
                  "finding_id": finding["finding_id"], "severity": "medium"}],
        quota={"policy": "the policy <b>p.toml</b>", "requests": 1234, "refused": 1100,
               "cost_usd": 1.5, "cost_refused_usd": 1.25, "first_refused": T0 + dt.timedelta(minutes=3),
               "rules": ["requests-per-minute"], "window_refused": 400,
               "window_cost_refused_usd": 0.5, "tenant_id": "acme <i>prod</i>",
               "limits": [{"rule_id": "requests-per-minute",
                           "text": "bucket 6/minute, burst 12 of requests per credential"}]},
        shape=[{"period": "baseline", "requests": 90, "stream_pct": 50.0, "tools_per_request": 0.1,
                "output_input": 1.2, "prompt_chars_p50": 300.0, "prompt_chars_p95": 900.0,
                "endpoints": ["chat"], "models": {"gpt-4o-mini": 90}, "error_pct": 1.1,
                "errors": {"rate_limited": 1}}],
        prefixes=[{"prefix_fp": "0x0000000000000001", "requests": 1116, "share_pct": 93.0,
                   "avg_chars": 120.0}],
        networks=[{"asn": 64500, "as_org": "EXAMPLE & SONS", "category": None,
                   "countries": ["NL"], "client_ips": 2, "requests": 1234}],
        countries=[{"country": "NL", "requests": 1234, "client_ips": 2}],
        agents=[{"user_agent": "<script>alert(1)</script>", "origin": "javascript:alert(1)",
                 "requests": 1234, "client_ips": 2}],
        findings=[finding],
        sources=[{"source_id": 1, "path": "/logs/kong.jsonl", "sha256": "a" * 64,
                  "format": "kong", "rows_read": 1234, "rows_loaded": 1234,
                  "rows_quarantined": 0, "ingested_at": T0 + dt.timedelta(days=11)}],
        runs=[{"run_id": "r" * 32, "started_at": T0 + dt.timedelta(days=11),
               "tool_version": "0.0.0", "status": "ok"}],
        triage=[{"recorded_at": T0 + dt.timedelta(days=12), "recorded_by": "alice",
                 "target_type": "incident", "target_id": "i" * 32, "detector_id": None,
                 "status": "investigating", "reason": "asked <b>the tenant</b>",
                 "allowlist_entry": None},
                {"recorded_at": T0 + dt.timedelta(days=12, hours=1), "recorded_by": "bob",
                 "target_type": "finding", "target_id": "f" * 32,
                 "detector_id": "scraping.near_duplicate_prompts", "status": "accepted_risk",
                 "reason": "load test | <i>planned</i>", "allowlist_entry": "a" * 32}],
    )  # fmt: skip


def test_incident_page_matches_the_golden_file(tmp_path):
    out = tmp_path / "incident.html"
    render_incident(fixed_report(), out)
    html = out.read_text(encoding="utf-8")
    if os.environ.get("FORENSICS_UPDATE_GOLDEN"):
        GOLDEN.write_text(html, encoding="utf-8")
    assert html == GOLDEN.read_text(encoding="utf-8")


def test_a_long_incident_shows_its_first_findings_whole_and_the_rest_as_a_table(tmp_path):
    report = fixed_report()
    base = report.findings[0]
    report.findings = [{**base, "finding_id": f"{n:02d}" + "a" * 30} for n in range(13)]
    report.quota = {**report.quota, "requests": 0, "limits": []}
    out = tmp_path / "long.html"
    render_incident(report, out)
    html = out.read_text(encoding="utf-8")
    assert html.count('<div class="finding" id="f-') == 10
    assert "The other 3 findings" in html and "<code>12aaaaaa</code>" in html
    assert "findings (13)" in html  # the table of contents counts them all
    assert "a gateway quota cannot act on them" in html
    md = tmp_path / "long.md"
    render_incident(report, md, "md")
    assert "a gateway quota cannot act on them" in md.read_text(encoding="utf-8")


def test_advice_for_a_bare_address_names_no_tenant():
    from forensics.report.actions import action_for

    keyed = action_for("automation.machine_cadence", "key-1", "credential")
    bare = action_for("automation.machine_cadence", "203.0.113.9", "ip")
    assert keyed is not None and "tenant" in keyed
    assert bare is not None and "203.0.113.9" in bare and "Confirm the automation" not in bare
    assert action_for("no.such_detector", "x", "ip") is None
