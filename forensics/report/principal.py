"""A principal's page: the incident page's anatomy for any principal, with or without findings.

`principal_subject` turns `TYPE:ID` into the row `incident_report` reads: the span is the one
asked for, else the principal's traffic (a provider key's usage buckets), else its findings'
windows; its findings are the current, unsuppressed ones on it (for a tenant, also those on its
credentials, as incidents group them) overlapping the span; its cost is its requests' in the
span, from the one definition of a principal's requests. `principal_incidents` lists every
incident it is part of, so the page links its stories.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from forensics.case import principals
from forensics.case.rows import Row, query_rows
from forensics.errors import ForensicsError
from forensics.report.incident import IncidentReport, incident_report

# The principal's findings in the span: its own, and for a tenant those of its credentials.
_FINDINGS = """
SELECT * FROM findings
WHERE superseded_by IS NULL AND NOT coalesce(suppressed, false)
  AND ((principal_type = $ptype AND principal_id = $pid)
       OR ($ptype = 'tenant' AND principal_type = 'credential' AND tenant_id = $pid))
  AND ($since IS NULL OR window_end >= $since) AND ($until IS NULL OR window_start <= $until)
ORDER BY window_start, finding_id
"""

_TRAFFIC = """
SELECT min(ts) AS first_seen, max(ts) AS last_seen, count(*) AS requests,
       sum(est_cost_usd) AS cost,
       CASE WHEN count(DISTINCT tenant_id) = 1 THEN min(tenant_id) END AS tenant_id
FROM principal_requests($ptype, $pid)
WHERE ($since IS NULL OR ts >= $since) AND ($until IS NULL OR ts <= $until)
"""

_USAGE = """
SELECT min(bucket_start) AS first_seen, max(bucket_end) AS last_seen,
       coalesce(sum(requests), 0) AS requests, sum(cost) AS cost, NULL AS tenant_id
FROM usage
WHERE api_key_id = $pid
  AND ($since IS NULL OR bucket_end > $since) AND ($until IS NULL OR bucket_start <= $until)
"""


def principal_subject(
    con: duckdb.DuckDBPyConnection,
    spec: str,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Row:
    """The principal `TYPE:ID` as the incident row the incident page reads (see above)."""
    kind, ident = principals.parse(spec)
    p: dict[str, Any] = {"ptype": kind, "pid": ident, "since": since, "until": until}
    [traffic] = query_rows(con, _USAGE if kind == "provider_key" else _TRAFFIC, p)
    findings = query_rows(con, _FINDINGS, p)
    if traffic["first_seen"] is None and not findings:
        raise ForensicsError(
            f"no traffic and no finding of {kind} {ident} in the case"
            + (" in that span" if since or until else ""),
            hint="`forensics principals` lists who is in the case",
        )
    starts = [t for t in (traffic["first_seen"], *(f["window_start"] for f in findings)) if t]
    ends = [t for t in (traffic["last_seen"], *(f["window_end"] for f in findings)) if t]
    severities = [f["severity"] for f in findings]
    return {
        "incident_id": None,
        "principal_type": kind,
        "principal_id": ident,
        "tenant_id": ident if kind == "tenant" else traffic["tenant_id"],
        "first_seen": since or min(starts),
        "last_seen": until or max(ends),
        "severity": max(severities, key=_rank) if severities else None,
        "score": max((float(f["score"] or 0) for f in findings), default=None),
        "detectors": sorted({str(f["detector_id"]) for f in findings}),
        "finding_ids": [f["finding_id"] for f in findings],
        "est_cost_usd": traffic["cost"],
        "provider_cost_usd": sum(float(f["provider_cost_usd"] or 0) for f in findings)
        if any(f["provider_cost_usd"] is not None for f in findings)
        else None,
        "primary_detector": None,
    }


def _rank(severity: object) -> int:
    from forensics.case.severity import Severity

    return int(Severity.parse(str(severity)))


def principal_incidents(con: duckdb.DuckDBPyConnection, subject: Row) -> list[Row]:
    """Every incident of the principal, or holding one of its findings, newest first."""
    return query_rows(
        con,
        "SELECT i.incident_id, i.severity, i.score, i.principal_type, i.principal_id,"
        " i.first_seen, i.last_seen, i.detectors, i.primary_detector, i.est_cost_usd,"
        " t.triage_status FROM incidents i LEFT JOIN incident_triage t USING (incident_id)"
        " WHERE (i.principal_type = $ptype AND i.principal_id = $pid)"
        " OR EXISTS (SELECT 1 FROM findings f WHERE list_contains(i.finding_ids, f.finding_id)"
        " AND f.principal_type = $ptype AND f.principal_id = $pid)"
        " ORDER BY i.last_seen DESC, i.incident_id",
        {"ptype": subject["principal_type"], "pid": subject["principal_id"]},
    )


def principal_report(
    con: duckdb.DuckDBPyConnection,
    spec: str,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> IncidentReport:
    """The page of principal `TYPE:ID`: the incident page's data over `principal_subject`,
    with every incident it is part of."""
    subject = principal_subject(con, spec, since, until)
    page = incident_report(con, subject)
    page.subject = "principal"
    page.incidents = principal_incidents(con, subject)
    return page
