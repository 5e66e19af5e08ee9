"""Incidents: findings on one principal close in time, grouped into one story.

The principal of a finding is its tenant when it is about a credential whose tenant is known
(several keys of one customer misused together are one incident), else its own principal.
Findings on one principal form one incident while each starts no later than `gap` after the
latest end seen so far (overlapping windows always join). Only unsuppressed findings count:
an allowlisted finding is kept for audit but raises no incident.

`incidents` is derived data: it is deleted and rebuilt from all findings on every run.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from forensics.detect.model import Severity

DEFAULT_GAP = "6 hours"
EXTRA_DETECTOR_BONUS = 5  # score added per distinct detector beyond the first

_SEVERITIES = "[" + ", ".join(f"'{s.name}'" for s in sorted(Severity)) + "]"

INCIDENTS_SQL = f"""
    WITH f AS (
        SELECT *,
            CASE WHEN principal_type = 'credential' AND tenant_id IS NOT NULL THEN 'tenant'
                 ELSE principal_type END AS i_type,
            CASE WHEN principal_type = 'credential' AND tenant_id IS NOT NULL THEN tenant_id
                 ELSE principal_id END AS i_id
        FROM findings
        WHERE NOT coalesce(suppressed, false)
    ),
    reach AS (
        SELECT *, max(window_end) OVER (
            PARTITION BY i_type, i_id ORDER BY window_start, finding_id
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach_end
        FROM f
    ),
    grouped AS (
        SELECT *, sum(CASE WHEN reach_end IS NULL
                             OR window_start > reach_end + CAST($gap AS INTERVAL)
                           THEN 1 ELSE 0 END) OVER (
            PARTITION BY i_type, i_id ORDER BY window_start, finding_id
            ROWS UNBOUNDED PRECEDING) AS session
        FROM reach
    )
    SELECT
        left(sha256(concat_ws('|', coalesce(i_type, ''), coalesce(i_id, ''),
            first(finding_id ORDER BY window_start, finding_id))), 32) AS incident_id,
        i_type AS principal_type,
        i_id AS principal_id,
        CASE WHEN i_type = 'tenant' THEN i_id
             WHEN count(DISTINCT tenant_id) = 1 THEN min(tenant_id) END AS tenant_id,
        min(window_start) AS first_seen,
        max(window_end) AS last_seen,
        least(100, max(score) + {EXTRA_DETECTOR_BONUS} * (count(DISTINCT detector_id) - 1))
            AS score,
        {_SEVERITIES}[max(list_position({_SEVERITIES}, severity))] AS severity,
        list_sort(list(DISTINCT detector_id)) AS detectors,
        list(finding_id ORDER BY window_start, finding_id) AS finding_ids,
        sum(est_cost_usd) AS est_cost_usd
    FROM grouped
    GROUP BY i_type, i_id, session
"""
"""SQL: the incidents of all unsuppressed findings (see the module docstring)."""


def build_incidents(con: duckdb.DuckDBPyConnection, gap: str | dt.timedelta = DEFAULT_GAP) -> int:
    """Delete and rebuild `incidents` from `findings`; returns how many there are.

    It runs two statements and opens no transaction: call it inside the caller's transaction
    (the runner does) so readers never see the table empty.
    """
    con.execute("DELETE FROM incidents")
    rows = con.execute(
        "INSERT INTO incidents (incident_id, principal_type, principal_id, tenant_id,"
        " first_seen, last_seen, score, severity, detectors, finding_ids, est_cost_usd)"
        f" {INCIDENTS_SQL}",
        {"gap": gap},
    ).fetchall()
    return int(rows[0][0])
