"""What an incident report shows, read from the case with set-based SQL.

`incident_report(con, ...)` picks the incident (by id, or the latest one on a tenant, credential
or any principal), and returns plain data for the template: header, verdict, recommended
actions, hourly timeline, request shape against the principal's own baseline before the
incident, networks and geography, each finding with its evidence and the SQL to reproduce it,
and the chain of custody. Every value comes from the case as stored: strings from logs are
passed on as they are and escaped by the template.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import duckdb

from forensics._version import __version__
from forensics.case import principals
from forensics.case.rows import Row, id_prefix, query_rows
from forensics.case.triage import about_incident
from forensics.errors import ForensicsError, UsageError
from forensics.quota.verdict import incident_effect
from forensics.report.actions import action_for

# The principal's requests: the case's one definition (forensics/sql/request_principals.sql),
# read as `r` by every query below.
PRINCIPAL = "principal_requests($ptype, $pid) r"


@dataclass
class IncidentReport:
    """Everything the incident template shows."""

    header: Row
    verdict: Row
    actions: list[Row] = field(default_factory=list)
    quota: Row | None = None
    hourly: list[Row] = field(default_factory=list)
    windows: list[Row] = field(default_factory=list)
    revocations: list[Row] = field(default_factory=list)
    shape: list[Row] = field(default_factory=list)
    prefixes: list[Row] = field(default_factory=list)
    networks: list[Row] = field(default_factory=list)
    countries: list[Row] = field(default_factory=list)
    agents: list[Row] = field(default_factory=list)
    travel: list[Row] = field(default_factory=list)
    findings: list[Row] = field(default_factory=list)
    sources: list[Row] = field(default_factory=list)
    runs: list[Row] = field(default_factory=list)
    usage: list[Row] = field(default_factory=list)  # provider usage of a provider_key principal
    # decisions on it and its findings, oldest first
    triage: list[Row] = field(default_factory=list)
    # "incident", or "principal": a principal's page (forensics/report/principal.py)
    subject: str = "incident"
    incidents: list[Row] = field(default_factory=list)  # a principal's incidents, newest first
    # in a bundle (forensics/report/bundle.py): hrefs of the index, the weekly page, and of
    # pages by incident id ("incidents") or by TYPE:ID ("principals")
    links: dict[str, Any] = field(default_factory=dict)


def pick_incidents(
    con: duckdb.DuckDBPyConnection,
    incident_id: str | None = None,
    *,
    tenant: str | None = None,
    credential: str | None = None,
    principal: str | None = None,
) -> list[Row]:
    """The incidents asked for, newest first: one by id (or unique id prefix), else every one
    of the tenant, with a finding on the credential, or of the principal (TYPE:ID)."""
    given = [v for v in (incident_id, tenant, credential, principal) if v]
    if len(given) != 1:
        raise UsageError("give one of INCIDENT_ID, --tenant, --credential or --principal")
    if incident_id:
        prefix = id_prefix(incident_id, "an incident id", "`forensics incidents` lists them")
        where, params = "starts_with(incident_id, $v)", {"v": prefix}
    elif tenant:
        where, params = "principal_type = 'tenant' AND principal_id = $v", {"v": tenant}
    elif credential:
        where = (
            "EXISTS (SELECT 1 FROM findings f WHERE f.principal_type = 'credential'"
            " AND f.principal_id = $v AND list_contains(incidents.finding_ids, f.finding_id))"
        )
        params = {"v": credential}
    else:
        kind, ident = principals.parse(str(principal))
        where, params = "principal_type = $t AND principal_id = $v", {"t": kind, "v": ident}
    found = query_rows(
        con, f"SELECT * FROM incidents WHERE {where} ORDER BY last_seen DESC, incident_id", params
    )
    if not found:
        raise ForensicsError(
            "no such incident in the case", hint="`forensics incidents` lists them"
        )
    if incident_id and len(found) > 1:
        listed = ", ".join(str(i["incident_id"]) for i in found[:5])
        raise UsageError(
            f"{incident_id} is ambiguous: {len(found)} incidents start with it ({listed})",
            hint="give more of the id",
        )
    return found


def case_id(con: duckdb.DuckDBPyConnection) -> str:
    """A stable id of the case that reveals nothing of its fingerprint salt."""
    salt = con.execute("SELECT value FROM meta WHERE key = 'fingerprint_salt'").fetchall()
    return hashlib.sha256(("case|" + (salt[0][0] if salt else "")).encode()).hexdigest()[:12]


def incident_report(
    con: duckdb.DuckDBPyConnection,
    incident: Row,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> IncidentReport:
    """Gather the data of one incident (see the module docstring)."""
    ptype, pid = str(incident["principal_type"]), str(incident["principal_id"])
    start = since or incident["first_seen"]
    end = until or incident["last_seen"]
    if start > end:  # a single instant (start == end) is a window: one request can be abuse
        raise UsageError(f"the window shown would start at {start} after it ends at {end}")
    p: dict[str, Any] = {"ptype": ptype, "pid": pid, "start": start, "end": end}
    ids = list(incident["finding_ids"] or [])
    p["ids"] = ids
    primary = incident.get("primary_detector")
    p["primary"] = primary
    header = {
        "incident_id": incident["incident_id"],
        "principal_type": ptype,
        "principal_id": pid,
        "tenant_id": incident["tenant_id"],
        "window_start": start,
        "window_end": end,
        "severity": incident["severity"],
        "score": incident["score"],
        # the primary diagnosis (incidents.sql): the finding no other one explains; the rest
        # of the incident's detectors support it
        "primary_detector": primary,
        "supporting": [d for d in incident.get("detectors") or [] if d != primary],
        "generated_at": dt.datetime.now(dt.UTC),
        "tool_version": __version__,
        "case_id": case_id(con),
    }
    totals = query_rows(
        con,
        f"""
        SELECT count(*) AS requests,
               coalesce(sum(r.input_tokens), 0) AS input_tokens,
               coalesce(sum(r.output_tokens), 0) AS output_tokens,
               min(r.ts) AS first_seen, max(r.ts) AS last_seen,
               count(DISTINCT r.credential_id) AS credentials,
               count(DISTINCT r.client_ip) AS client_ips
        FROM {PRINCIPAL} WHERE r.ts BETWEEN $start AND $end
        """,
        p,
    )[0]
    findings = query_rows(
        con,
        # the detector as its run ran it (run_detectors), never today's queries/ on disk
        "SELECT f.*, d.title, d.description, d.runbook, d.sql, d.params AS bound,"
        " t.triage_status, t.triage_reason"
        " FROM findings f LEFT JOIN run_detectors d USING (run_id, detector_id)"
        " LEFT JOIN finding_triage t USING (finding_id)"
        " WHERE list_contains($ids, f.finding_id)"
        # the primary diagnosis first, so its action leads the recommendations
        " ORDER BY f.detector_id IS NOT DISTINCT FROM $primary DESC, f.severity DESC,"
        " f.score DESC, f.window_start",
        p,
    )
    by_severity = query_rows(
        con,
        "SELECT severity, count(*) AS n FROM findings WHERE list_contains($ids, finding_id)"
        " GROUP BY severity ORDER BY severity DESC",
        p,
    )
    verdict = {
        **totals,
        "findings": len(findings),
        "by_severity": by_severity,
        # the incident's cost, computed once at detect time (forensics/sql/incidents.sql)
        "est_cost_usd": incident["est_cost_usd"],
        "provider_cost_usd": incident["provider_cost_usd"],
    }
    decided = query_rows(
        con,
        "SELECT triage_status, triage_reason, triage_by, triage_at FROM incident_triage"
        " WHERE incident_id = $incident",
        {"incident": incident.get("incident_id")},
    )
    header.update(decided[0] if decided else {"triage_status": "open", "triage_reason": None})
    report = IncidentReport(header=header, verdict=verdict, triage=about_incident(con, incident))
    _add_findings(con, report, findings)
    # what a quota policy would have done to these requests (forensics/quota/verdict.py)
    report.quota = incident_effect(con, ids, start, end, header.get("tenant_id"))
    report.hourly = query_rows(
        con,
        f"""
        SELECT time_bucket(INTERVAL 1 HOUR, r.ts) AS hour,
               coalesce(r.endpoint, 'unknown') AS endpoint,
               count(*) AS requests,
               coalesce(sum(r.input_tokens), 0) + coalesce(sum(r.output_tokens), 0) AS tokens
        FROM {PRINCIPAL}
        WHERE r.ts BETWEEN $start - INTERVAL 2 DAY AND $end + INTERVAL 1 DAY
        GROUP BY ALL ORDER BY hour, endpoint
        """,
        p,
    )
    report.windows = [
        {
            "detector_id": f["detector_id"],
            "start": f["window_start"],
            "end": f["window_end"],
            "severity": f["severity"],
        }
        for f in findings
    ]
    report.revocations = query_rows(
        con,
        "SELECT v.credential_id, v.revoked_at FROM revocations v"
        f" WHERE v.credential_id IN (SELECT r.credential_id FROM {PRINCIPAL})",
        p,
    )
    report.shape = _shape(con, p)
    report.prefixes = query_rows(
        con,
        f"""
        SELECT format('0x{{:016x}}', r.prompt_prefix_fp) AS prefix_fp, count(*) AS requests,
               round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS share_pct,
               round(avg(r.prompt_chars)) AS avg_chars
        FROM {PRINCIPAL}
        WHERE r.ts BETWEEN $start AND $end AND r.prompt_prefix_fp IS NOT NULL
        GROUP BY r.prompt_prefix_fp ORDER BY requests DESC, prefix_fp LIMIT 10
        """,
        p,
    )
    report.networks = query_rows(
        con,
        f"""
        SELECT r.asn, any_value(r.as_org) AS as_org, any_value(r.asn_category) AS category,
               list(DISTINCT r.country ORDER BY r.country) FILTER (WHERE r.country IS NOT NULL)
                   AS countries,
               count(DISTINCT r.client_ip) AS client_ips, count(*) AS requests
        FROM {PRINCIPAL} WHERE r.ts BETWEEN $start AND $end
        GROUP BY r.asn ORDER BY requests DESC LIMIT 15
        """,
        p,
    )
    report.countries = query_rows(
        con,
        f"""
        SELECT coalesce(r.country, '?') AS country, count(*) AS requests,
               count(DISTINCT r.client_ip) AS client_ips
        FROM {PRINCIPAL} WHERE r.ts BETWEEN $start AND $end
        GROUP BY ALL ORDER BY requests DESC LIMIT 15
        """,
        p,
    )
    report.agents = query_rows(
        con,
        f"""
        SELECT r.user_agent, r.origin, count(*) AS requests,
               count(DISTINCT r.client_ip) AS client_ips
        FROM {PRINCIPAL} WHERE r.ts BETWEEN $start AND $end
        GROUP BY ALL ORDER BY requests DESC LIMIT 10
        """,
        p,
    )
    if ptype == "provider_key":
        # a key used outside the gateway has no requests: its story is the provider's usage
        report.usage = query_rows(
            con,
            """
            SELECT u.bucket_start, u.bucket_width, u.provider, u.project_id, u.model,
                   u.requests, u.input_tokens, u.output_tokens, u.cost
            FROM usage u
            WHERE u.api_key_id = $pid AND u.bucket_end > $start AND u.bucket_start <= $end
            ORDER BY u.bucket_start, u.model
            """,
            p,
        )
        verdict["input_tokens"] = sum(int(u["input_tokens"] or 0) for u in report.usage)
        verdict["output_tokens"] = sum(int(u["output_tokens"] or 0) for u in report.usage)
        verdict["requests"] = sum(int(u["requests"] or 0) for u in report.usage)
    report.sources = query_rows(
        con,
        "SELECT source_id, path, sha256, format, rows_read, rows_loaded, rows_quarantined,"
        " ingested_at FROM sources ORDER BY source_id",
        p,
    )
    report.runs = query_rows(
        con,
        "SELECT run_id, started_at, tool_version, status FROM runs WHERE run_id IN"
        " (SELECT run_id FROM findings WHERE list_contains($ids, finding_id))"
        " ORDER BY started_at",
        p,
    )
    return report


def _shape(con: duckdb.DuckDBPyConnection, p: dict[str, Any]) -> list[Row]:
    """Request shape in the incident window against the principal's traffic before it."""
    return query_rows(
        con,
        f"""
        WITH s AS (
            SELECT CASE WHEN r.ts < $start THEN 'baseline' ELSE 'incident' END AS period, r.*
            FROM {PRINCIPAL} WHERE r.ts <= $end
        )
        SELECT period,
               count(*) AS requests,
               round(100.0 * count(*) FILTER (WHERE stream) / count(*), 1) AS stream_pct,
               round(avg(coalesce(tool_calls, 0)), 2) AS tools_per_request,
               round(sum(output_tokens) / nullif(sum(input_tokens), 0), 2) AS output_input,
               round(quantile_cont(prompt_chars, 0.5)) AS prompt_chars_p50,
               round(quantile_cont(prompt_chars, 0.95)) AS prompt_chars_p95,
               list(DISTINCT endpoint ORDER BY endpoint) FILTER (WHERE endpoint IS NOT NULL)
                   AS endpoints,
               histogram(coalesce(model_family, 'unknown')) AS models,
               round(100.0 * count(*) FILTER (WHERE error_type IS NOT NULL) / count(*), 1)
                   AS error_pct,
               histogram(error_type) FILTER (WHERE error_type IS NOT NULL) AS errors
        FROM s GROUP BY period ORDER BY period
        """,
        p,
    )


def _add_findings(
    con: duckdb.DuckDBPyConnection, report: IncidentReport, findings: list[Row]
) -> None:
    seen_actions: set[str] = set()
    for f in findings:
        evidence = json.loads(f["evidence"]) if isinstance(f["evidence"], str) else f["evidence"]
        bound = json.loads(f["bound"]) if isinstance(f["bound"], str) else (f["bound"] or {})
        samples = query_rows(
            con,
            "SELECT r.request_id, r.ts, r.client_ip, r.country, r.endpoint, r.model, r.status,"
            " r.user_agent FROM finding_requests fr JOIN requests r USING (request_id)"
            " WHERE fr.finding_id = $f ORDER BY r.ts LIMIT 10",
            {"f": f["finding_id"]},
        )
        report.findings.append(
            {
                **f,
                "title": f["title"] or f["detector_id"],
                "description": f["description"] or "",
                "runbook": f["runbook"] or "",
                "evidence": evidence,
                "bound": bound,
                "sql": f["sql"] or "",
                "samples": samples,
            }
        )
        action = action_for(str(f["detector_id"]), str(f["principal_id"]), str(f["principal_type"]))
        if action and f["detector_id"] not in seen_actions:
            seen_actions.add(str(f["detector_id"]))
            report.actions.append(
                {
                    "text": action,
                    "detector_id": f["detector_id"],
                    "finding_id": f["finding_id"],
                    "severity": f["severity"],
                }
            )
        if f["detector_id"] == "credential.impossible_travel" and isinstance(evidence, dict):
            report.travel.append(
                {
                    "credential": f["principal_id"],
                    "from": evidence.get("from_place") or {},
                    "to": evidence.get("to_place") or {},
                    "km": evidence.get("km"),
                    "hours": evidence.get("hours"),
                    "kmh": evidence.get("kmh"),
                }
            )
