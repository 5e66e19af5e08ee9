"""What the weekly report shows, read from the case with set-based SQL.

A week is an ISO week (Monday 00:00 UTC to the next Monday) or any --since / --until span; the
previous period is the span of the same length just before it. The report compares the two:
incidents new this week (no incident on the same principal in the previous period), recurring
ones, and resolved ones (an incident in the previous period, none now); findings by detector
and severity; cost exposure by tenant; daily requests, tokens, cost and error share; and the
coverage of the evidence: hours inside the week in which a log format that normally has traffic
every hour has none (a gap in evidence is itself worth showing; see report/coverage.py).

The report never reads as an all-clear when the evidence says nothing: `warnings` holds what
detection left unanalysed (detect/coverage.py) and where the logs are silent; `not_analysed`
is true when no detection run covers the period or the period has no request (`--fail-on`
exits 5 then). A previous period without a request is "no data", not zeros.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import duckdb

from forensics._version import __version__
from forensics.case import triage
from forensics.case.rows import Row, query_rows
from forensics.detect.coverage import DetectionCoverage, detection_coverage
from forensics.errors import ForensicsError, UsageError
from forensics.report.coverage import EvidenceCoverage, evidence_coverage
from forensics.report.headline import change, headline
from forensics.report.incident import case_id
from forensics.times import shape


def _overlaps(start: str, end: str, a: str, b: str) -> str:
    """SQL: the window [start, end] falls in the period [a, b) (a window ending exactly at a
    belongs to the period before)."""
    return f"({start} < {b} AND ({end} > {a} OR {start} >= {a}))"


_F_THIS = _overlaps("window_start", "window_end", "$start", "$end")
_F_PREV = _overlaps("window_start", "window_end", "$prev", "$start")

# An incident's cost exposure is the cost stored on it at detect time (forensics/sql/
# incidents.sql: the union of its principals' requests in its window); its provider-side cost
# (usage the gateway never saw) is a separate figure. A period's exposure is the same union
# over all its incidents, cut to the period: each request once, so it never exceeds the cost
# of all the period's traffic.
_EXPOSURE = "SELECT *, est_cost_usd AS exposure_usd FROM incidents WHERE {where}"

# Findings the report counts: unsuppressed, and not superseded by a later run.
_CURRENT = "NOT coalesce(suppressed, false) AND superseded_by IS NULL"


# The summary cards: totals key, label, how to show it.
CARDS = (
    ("incidents", "incidents", "num"),
    ("findings", "findings", "num"),
    ("exposure_usd", "cost exposure of incidents (gateway traffic)", "usd"),
    ("provider_cost_usd", "provider-side usage the gateway never saw", "usd"),
    ("requests", "requests", "num"),
    ("tokens", "tokens", "num"),
    ("cost_usd", "estimated cost of all gateway traffic", "usd"),
    ("error_pct", "error share %", "num"),
)


@dataclass
class WeeklyReport:
    header: Row
    totals: list[Row] = field(default_factory=list)  # this period and the previous one
    incidents: list[Row] = field(default_factory=list)
    resolved: list[Row] = field(default_factory=list)
    detectors: list[Row] = field(default_factory=list)
    tenants: list[Row] = field(default_factory=list)
    daily: list[Row] = field(default_factory=list)
    evidence: EvidenceCoverage | None = None
    detection: DetectionCoverage | None = None
    warnings: list[str] = field(default_factory=list)  # the banner, most serious first
    triage: list[Row] = field(default_factory=list)  # decisions on the period's findings
    suppressed: list[Row] = field(default_factory=list)  # findings hidden, by allowlist entry
    links: dict[str, Any] = field(default_factory=dict)  # in a bundle: index and incident pages
    changes: dict[str, Row | None] = field(default_factory=dict)  # card -> arrow and percent
    headline: list[str] = field(default_factory=list)
    previous_has_data: bool = True
    previous_analysed: bool = True  # detection covered the previous period too
    worst: str | None = None

    cards: tuple[tuple[str, str, str], ...] = CARDS

    @property
    def gaps(self) -> list[Row]:
        return self.evidence.gaps if self.evidence else []

    @property
    def not_analysed(self) -> bool:
        """No detection run covers the period fully, or the period has no request."""
        return bool(
            (self.detection and not self.detection.ok) or (self.evidence and self.evidence.empty)
        )


def week_bounds(week: str, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """`2026-W47` -> its Monday 00:00 UTC and the next Monday; `last` and `this` are the ISO
    week before the current one (a Monday cron job's) and the current one."""
    if week.strip().lower() in ("last", "this"):
        today = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).date()
        monday = today - dt.timedelta(days=today.weekday())
        if week.strip().lower() == "last":
            monday -= dt.timedelta(days=7)
        start = dt.datetime.combine(monday, dt.time(), dt.UTC)
        return start, start + dt.timedelta(days=7)
    match = re.fullmatch(r"(\d{4})-?W(\d{1,2})", week.strip(), flags=re.IGNORECASE)
    if not match:
        raise UsageError(
            f"--week: not an ISO week ({len(week)} characters shaped {shape(week.strip())})",
            hint="e.g. 2026-W47",
        )
    try:
        monday = dt.date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError as e:
        raise UsageError(f"--week {match[1]}-W{match[2]}: {e}") from None
    start = dt.datetime.combine(monday, dt.time(), dt.UTC)
    return start, start + dt.timedelta(days=7)


def latest_week(con: duckdb.DuckDBPyConnection) -> tuple[dt.datetime, dt.datetime]:
    """The ISO week of the latest request in the case."""
    last = con.execute("SELECT max(ts) FROM requests").fetchall()[0][0]
    if last is None:
        raise ForensicsError("the case has no requests", hint="run `forensics ingest` first")
    year, week, _ = last.astimezone(dt.UTC).isocalendar()
    return week_bounds(f"{year}-W{week}")


def weekly_report(
    con: duckdb.DuckDBPyConnection,
    start: dt.datetime,
    end: dt.datetime,
    *,
    pack: list[str] | None = None,
) -> WeeklyReport:
    """Gather the report for [start, end) and the span of the same length before it.

    `pack` is the detector ids detection is expected to have run (default: the shipped pack
    and every detector that ran over the period)."""
    p: dict[str, Any] = {"start": start, "end": end, "prev": start - (end - start)}
    year, week, _ = start.isocalendar()
    header = {
        "title": f"{year}-W{week:02d}"
        if end - start == dt.timedelta(days=7) and start.weekday() == 0 and start.hour == 0
        else f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC",
        "start": start,
        "end": end,
        "previous_start": p["prev"],
        "generated_at": dt.datetime.now(dt.UTC),
        "tool_version": __version__,
        "case_id": case_id(con),
    }
    report = WeeklyReport(header=header)
    this_inc = _EXPOSURE.format(where=_overlaps("first_seen", "last_seen", "$start", "$end"))
    prev_inc = _EXPOSURE.format(where=_overlaps("first_seen", "last_seen", "$prev", "$start"))
    report.totals = query_rows(
        con,
        f"""
        WITH periods AS (
            SELECT 'this' AS period, $start AS a, $end AS b
            UNION ALL SELECT 'previous', $prev, $start
        ),
        exposure AS (
            SELECT 'this' AS period, count(*) AS incidents,
                   sum(provider_cost_usd) AS provider_cost_usd
            FROM ({this_inc})
            UNION ALL
            SELECT 'previous', count(*), sum(provider_cost_usd)
            FROM ({prev_inc})
        ),
        exposed AS (
            -- the period's requests of any of its incidents' principals inside that
            -- incident's window, each request once (incidents may share requests)
            SELECT pe.period, sum(x.est_cost_usd) AS exposure_usd
            FROM periods pe, (
                SELECT DISTINCT q.request_row, q.ts, q.est_cost_usd
                FROM incidents i, unnest(i.finding_ids) AS u(fid)
                JOIN findings f ON f.finding_id = u.fid
                JOIN request_principals q
                  ON q.principal_type = f.principal_type AND q.principal_id = f.principal_id
                 AND q.ts BETWEEN i.first_seen AND i.last_seen
                WHERE q.ts >= $prev AND q.ts < $end
            ) x
            WHERE x.ts >= pe.a AND x.ts < pe.b
            GROUP BY pe.period
        )
        SELECT period,
               (SELECT count(*) FROM requests WHERE ts >= a AND ts < b) AS requests,
               (SELECT coalesce(sum(input_tokens), 0) + coalesce(sum(output_tokens), 0)
                FROM requests WHERE ts >= a AND ts < b) AS tokens,
               (SELECT coalesce(sum(est_cost_usd), 0) FROM requests WHERE ts >= a AND ts < b)
                   AS cost_usd,
               (SELECT round(100.0 * count(*) FILTER (WHERE error_type IS NOT NULL)
                             / nullif(count(*), 0), 2)
                FROM requests WHERE ts >= a AND ts < b) AS error_pct,
               (SELECT count(*) FROM findings
                WHERE {_CURRENT}
                  AND {_overlaps("window_start", "window_end", "a", "b")}) AS findings,
               e.incidents,
               coalesce(x.exposure_usd, 0) AS exposure_usd,
               coalesce(e.provider_cost_usd, 0) AS provider_cost_usd
        FROM periods JOIN exposure e USING (period) LEFT JOIN exposed x USING (period)
        ORDER BY period DESC
        """,
        p,
    )
    prev_overlap = _overlaps("o.first_seen", "o.last_seen", "$prev", "$start")
    report.incidents = query_rows(
        con,
        f"""
        SELECT i.*, t.triage_status, t.triage_reason,
               CASE WHEN i.first_seen < $start THEN 'ongoing'
                    WHEN EXISTS (SELECT 1 FROM incidents o
                                 WHERE o.incident_id <> i.incident_id
                                   AND o.principal_type = i.principal_type
                                   AND o.principal_id = i.principal_id
                                   AND {prev_overlap})
                    THEN 'recurring' ELSE 'new' END AS status
        FROM ({this_inc}) i LEFT JOIN incident_triage t USING (incident_id)
        ORDER BY i.severity DESC, i.score DESC, i.first_seen
        """,
        p,
    )
    report.resolved = query_rows(
        con,
        """
        SELECT o.* FROM incidents o
        WHERE o.first_seen < $start AND o.last_seen >= $prev AND o.last_seen <= $start
          AND NOT EXISTS (SELECT 1 FROM incidents i
                          WHERE i.principal_type = o.principal_type
                            AND i.principal_id = o.principal_id
                            AND i.first_seen < $end AND i.last_seen > $start)
        ORDER BY o.last_seen DESC
        """,
        p,
    )
    report.triage = triage.between(con, start, end)
    report.suppressed = query_rows(
        con,
        f"""
        SELECT suppressed_by, count(*) AS findings, list_sort(list(DISTINCT detector_id))
                   AS detectors,
               list_sort(list(DISTINCT principal_type || ' ' || principal_id))[1:5] AS principals,
               count(DISTINCT principal_type || ' ' || principal_id) AS principal_count
        FROM findings
        WHERE suppressed AND superseded_by IS NULL AND {_F_THIS}
        GROUP BY suppressed_by ORDER BY findings DESC, suppressed_by
        """,
        p,
    )
    report.detectors = query_rows(
        con,
        f"""
        SELECT detector_id,
               count(*) FILTER (WHERE {_F_THIS}) AS this_week,
               count(*) FILTER (WHERE {_F_PREV}) AS previous,
               max(severity) FILTER (WHERE {_F_THIS}) AS severity,
               coalesce(max(est_cost_usd) FILTER (WHERE {_F_THIS}), 0) AS cost_usd
        FROM findings WHERE {_CURRENT}
        GROUP BY detector_id HAVING this_week > 0 OR previous > 0
        ORDER BY this_week DESC, detector_id
        """,
        p,
    )
    report.tenants = query_rows(
        con,
        f"""
        SELECT coalesce(tenant_id, '(no tenant)') AS tenant_id, count(*) AS incidents,
               coalesce(sum(exposure_usd), 0) AS exposure_usd,
               coalesce(sum(provider_cost_usd), 0) AS provider_cost_usd,
               list_sort(list_distinct(flatten(list(detectors)))) AS detectors
        FROM ({this_inc})
        GROUP BY ALL ORDER BY exposure_usd DESC, incidents DESC LIMIT 20
        """,
        p,
    )
    report.daily = query_rows(
        con,
        """
        SELECT CASE WHEN ts >= $start THEN 'this' ELSE 'previous' END AS period,
               CAST(floor(epoch(ts - CASE WHEN ts >= $start THEN $start ELSE $prev END) / 86400)
                    AS INTEGER) + 1 AS day_no,
               min(ts) AS first_ts,
               count(*) AS requests,
               coalesce(sum(input_tokens), 0) + coalesce(sum(output_tokens), 0) AS tokens,
               coalesce(sum(est_cost_usd), 0) AS cost_usd,
               round(100.0 * count(*) FILTER (WHERE error_type IS NOT NULL) / count(*), 2)
                   AS error_pct
        FROM requests WHERE ts >= $prev AND ts < $end
        GROUP BY ALL ORDER BY period DESC, day_no
        """,
        p,
    )
    for d in report.daily:
        origin = start if d["period"] == "this" else p["prev"]
        d["day"] = origin + dt.timedelta(days=int(d["day_no"]) - 1)
    report.evidence = evidence_coverage(con, start, end)
    report.detection = detection_coverage(con, start, end, pack=pack)
    first, then = (
        (report.evidence, report.detection)
        if report.evidence.empty
        else (report.detection, report.evidence)
    )
    report.warnings = first.lines() + then.lines()
    now, before = report.totals
    report.previous_has_data = bool(before["requests"])
    if not report.previous_has_data:
        for key in before:
            if key != "period":
                before[key] = None
        for i in report.incidents:
            if i["status"] != "ongoing":
                i["status"] = "no earlier data"
    elif not detection_coverage(con, p["prev"], start, pack=pack).ok:
        # findings counted there are not a baseline: nothing is new or resolved against them
        report.previous_analysed = False
        for key in ("findings", "incidents", "exposure_usd", "provider_cost_usd"):
            before[key] = None
        for i in report.incidents:
            if i["status"] != "ongoing":
                i["status"] = "no earlier analysis"
        report.resolved = []
        report.warnings.append(
            "detection did not fully cover the previous period: its findings are no baseline,"
            " so no incident is called new, recurring or resolved"
        )
    report.changes = {k: change(now[k], before[k]) for k in now if k != "period"}
    worst = query_rows(
        con,
        f"""
        SELECT severity FROM findings
        WHERE {_CURRENT} AND severity IS NOT NULL AND {_F_THIS}
        ORDER BY severity DESC LIMIT 1
        """,
        p,
    )
    report.worst = str(worst[0]["severity"]) if worst else None
    top = query_rows(
        con,
        f"""
        SELECT detector_id, principal_id FROM findings
        WHERE {_CURRENT} AND list_contains($ids, finding_id)
        ORDER BY detector_id IS NOT DISTINCT FROM $primary DESC, severity DESC, score DESC,
                 window_start
        LIMIT 1
        """,
        {
            "ids": list(report.incidents[0]["finding_ids"]) if report.incidents else [],
            "primary": report.incidents[0].get("primary_detector") if report.incidents else None,
        },
    )
    report.headline = headline(
        report.incidents,
        top[0] if top else None,
        now,
        report.warnings,
        not_analysed=report.not_analysed,
        compared=report.previous_has_data and report.previous_analysed,
    )
    return report
