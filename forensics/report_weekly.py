"""What the weekly report shows, read from the case with set-based SQL.

A week is an ISO week (Monday 00:00 UTC to the next Monday) or any --since / --until span; the
previous period is the span of the same length just before it. The report compares the two:
incidents new this week (no incident on the same principal in the previous period), recurring
ones, and resolved ones (an incident in the previous period, none now); findings by detector
and severity; cost exposure by tenant; daily requests, tokens, cost and error share; and the
coverage of the evidence: hours inside the week in which a log format that normally has traffic
every hour has none (a gap in evidence is itself worth showing; see `coverage_gaps`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import duckdb

from forensics import __version__
from forensics.errors import ForensicsError, UsageError
from forensics.report_data import Row, _case_id, _rows

_SEVERITY_ORDER = "['critical', 'high', 'medium', 'low', 'info']"


@dataclass
class WeeklyReport:
    header: Row
    totals: list[Row] = field(default_factory=list)  # this period and the previous one
    incidents: list[Row] = field(default_factory=list)
    resolved: list[Row] = field(default_factory=list)
    detectors: list[Row] = field(default_factory=list)
    tenants: list[Row] = field(default_factory=list)
    daily: list[Row] = field(default_factory=list)
    gaps: list[Row] = field(default_factory=list)
    worst: str | None = None


def week_bounds(week: str) -> tuple[dt.datetime, dt.datetime]:
    """`2026-W47` -> its Monday 00:00 UTC and the next Monday."""
    match = re.fullmatch(r"(\d{4})-?W(\d{1,2})", week.strip(), flags=re.IGNORECASE)
    if not match:
        raise UsageError(f"--week {week!r} is not an ISO week like 2026-W47")
    try:
        monday = dt.date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError as e:
        raise UsageError(f"--week {week!r}: {e}") from None
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
    con: duckdb.DuckDBPyConnection, start: dt.datetime, end: dt.datetime
) -> WeeklyReport:
    """Gather the report for [start, end) and the span of the same length before it."""
    p: dict[str, Any] = {"start": start, "end": end, "prev": start - (end - start)}
    year, week, _ = start.isocalendar()
    header = {
        "title": f"{year}-W{week:02d}" if end - start == dt.timedelta(days=7) else "",
        "start": start,
        "end": end,
        "previous_start": p["prev"],
        "generated_at": dt.datetime.now(dt.UTC),
        "tool_version": __version__,
        "case_id": _case_id(con),
    }
    report = WeeklyReport(header=header)
    report.totals = _rows(
        con,
        """
        WITH periods AS (
            SELECT 'this' AS period, $start AS a, $end AS b
            UNION ALL SELECT 'previous', $prev, $start
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
                WHERE NOT suppressed AND window_start < b AND window_end >= a) AS findings,
               (SELECT count(*) FROM incidents WHERE first_seen < b AND last_seen >= a)
                   AS incidents,
               (SELECT coalesce(sum(est_cost_usd), 0) FROM incidents
                WHERE first_seen < b AND last_seen >= a) AS exposure_usd
        FROM periods ORDER BY period DESC
        """,
        p,
    )
    report.incidents = _rows(
        con,
        f"""
        SELECT i.*,
               CASE WHEN EXISTS (SELECT 1 FROM incidents o
                                 WHERE o.principal_type = i.principal_type
                                   AND o.principal_id = i.principal_id
                                   AND o.first_seen < $start AND o.last_seen >= $prev)
                    THEN 'recurring' ELSE 'new' END AS status
        FROM incidents i
        WHERE i.first_seen < $end AND i.last_seen >= $start
        ORDER BY list_position({_SEVERITY_ORDER}, i.severity), i.score DESC, i.first_seen
        """,
        p,
    )
    report.resolved = _rows(
        con,
        """
        SELECT o.* FROM incidents o
        WHERE o.first_seen < $start AND o.last_seen >= $prev AND o.last_seen < $start
          AND NOT EXISTS (SELECT 1 FROM incidents i
                          WHERE i.principal_type = o.principal_type
                            AND i.principal_id = o.principal_id
                            AND i.first_seen < $end AND i.last_seen >= $start)
        ORDER BY o.last_seen DESC
        """,
        p,
    )
    report.detectors = _rows(
        con,
        f"""
        SELECT detector_id,
               count(*) FILTER (WHERE window_start < $end AND window_end >= $start) AS this_week,
               count(*) FILTER (WHERE window_start < $start AND window_end >= $prev) AS previous,
               {_SEVERITY_ORDER}[min(list_position({_SEVERITY_ORDER}, severity))
                   FILTER (WHERE window_start < $end AND window_end >= $start)] AS severity,
               coalesce(sum(est_cost_usd) FILTER (WHERE window_start < $end
                                                   AND window_end >= $start), 0) AS cost_usd
        FROM findings WHERE NOT suppressed
        GROUP BY detector_id HAVING this_week > 0 OR previous > 0
        ORDER BY this_week DESC, detector_id
        """,
        p,
    )
    report.tenants = _rows(
        con,
        """
        SELECT coalesce(tenant_id, '(no tenant)') AS tenant_id, count(*) AS findings,
               coalesce(sum(est_cost_usd), 0) AS exposure_usd,
               list(DISTINCT detector_id ORDER BY detector_id) AS detectors
        FROM findings
        WHERE NOT suppressed AND window_start < $end AND window_end >= $start
        GROUP BY ALL ORDER BY exposure_usd DESC, findings DESC LIMIT 20
        """,
        p,
    )
    report.daily = _rows(
        con,
        """
        SELECT time_bucket(INTERVAL 1 DAY, ts) AS day,
               CASE WHEN ts >= $start THEN 'this' ELSE 'previous' END AS period,
               count(*) AS requests,
               coalesce(sum(input_tokens), 0) + coalesce(sum(output_tokens), 0) AS tokens,
               coalesce(sum(est_cost_usd), 0) AS cost_usd,
               round(100.0 * count(*) FILTER (WHERE error_type IS NOT NULL) / count(*), 2)
                   AS error_pct
        FROM requests WHERE ts >= $prev AND ts < $end
        GROUP BY ALL ORDER BY day
        """,
        p,
    )
    report.gaps = coverage_gaps(con, p)
    worst = _rows(
        con,
        f"""
        SELECT severity FROM findings
        WHERE NOT suppressed AND window_start < $end AND window_end >= $start
        ORDER BY list_position({_SEVERITY_ORDER}, severity) LIMIT 1
        """,
        p,
    )
    report.worst = str(worst[0]["severity"]) if worst else None
    return report


def coverage_gaps(con: duckdb.DuckDBPyConnection, p: dict[str, Any]) -> list[Row]:
    """Runs of hours in the period with no requests from a log format that normally logs every
    hour: one with requests in at least 3 of 4 hours between its first and last record of the
    period (a format with a day-night rhythm, whose nights are empty, has no gaps to show)."""
    return _rows(
        con,
        """
        WITH hours AS (
            SELECT unnest(generate_series($start, $end - INTERVAL 1 HOUR, INTERVAL 1 HOUR)) AS h
        ),
        seen AS (
            SELECT s.format, time_bucket(INTERVAL 1 HOUR, r.ts) AS h, count(*) AS n
            FROM requests r JOIN sources s USING (source_id)
            WHERE r.ts >= $start AND r.ts < $end
            GROUP BY ALL
        ),
        steady AS (
            -- logs in at least 3 of 4 hours between its first and last record of the period
            SELECT format, min(h) AS first_h, max(h) AS last_h FROM seen GROUP BY format
            HAVING count(*) >= 0.75 * (epoch(max(h) - min(h)) / 3600 + 1)
               AND max(h) - min(h) >= INTERVAL 6 HOUR
        ),
        missing AS (
            SELECT st.format, hr.h
            FROM steady st JOIN hours hr ON hr.h BETWEEN st.first_h AND st.last_h
            WHERE NOT EXISTS (SELECT 1 FROM seen s WHERE s.format = st.format AND s.h = hr.h)
        ),
        runs AS (
            SELECT *, h - to_hours(row_number() OVER (PARTITION BY format ORDER BY h)) AS grp
            FROM missing
        )
        SELECT format, min(h) AS gap_start, max(h) + INTERVAL 1 HOUR AS gap_end,
               count(*) AS hours
        FROM runs GROUP BY format, grp ORDER BY gap_start, format
        """,
        p,
    )
