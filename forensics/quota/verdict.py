"""What a replayed policy would have done, read against what the detectors found.

A replay (replay.py) leaves two decision tables: the policy as written (`quota_decisions`)
and its fixed-window twin, each bucket replaced by a window of the same average rate
(`quota_window_decisions`, Policy.as_windows). The views here are SELECTs over them and the
case, for the period replayed:

  requests    each request: its principal, whether each policy refused it and by which rule
  principals  per principal (its credential, else its address, else its tenant, as detectors
              name a request's principal): requests, tokens and cost refused, and the time it
              spent throttled (from each refused request to its next request)
  detectors   per detector with current findings: its findings' requests (each request of a
              finding's principal inside the finding's window) and the share of their cost each
              policy blocks; then one row for the requests of no finding, whose refusals are
              the collateral damage
  tenants     per tenant: the cost of its flagged requests blocked, and its other requests
              refused, by each policy

Everything is one statement per view: set operations over the decision tables, no loop.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import duckdb

from forensics.quota.policy import Policy
from forensics.quota.replay import DECISIONS, replay

WINDOW_DECISIONS = "quota_window_decisions"
VIEWS = ("principals", "detectors", "tenants", "requests")


@dataclass(frozen=True)
class Replayed:
    """A policy replayed with its fixed-window twin on one connection, over one period."""

    since: dt.datetime | None
    until: dt.datetime | None
    refused: int
    refused_by_window: int

    def params(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until}


def replay_both(
    con: duckdb.DuckDBPyConnection,
    policy: Policy,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Replayed:
    """Replay `policy` and its fixed-window twin into the two decision tables."""
    refused = replay(con, policy, since=since, until=until)
    windowed = replay(con, policy.as_windows(), since=since, until=until, into=WINDOW_DECISIONS)
    return Replayed(since, until, refused, windowed)


# The period's requests with both decisions and their principal (named as
# forensics/sql/principal_hours.sql names a request's principal).
_DECIDED = f"""
decided AS (
    SELECT r.rowid AS request_row, r.ts, r.request_id, r.tenant_id,
           CASE WHEN r.credential_id IS NOT NULL THEN 'credential'
                WHEN r.client_ip IS NOT NULL THEN 'ip' ELSE 'tenant' END AS principal_type,
           coalesce(r.credential_id, r.client_ip, r.tenant_id) AS principal_id,
           coalesce(r.input_tokens, 0) + coalesce(r.output_tokens, 0) AS tokens,
           r.est_cost_usd,
           b.refused_by, w.refused_by AS window_refused_by
    FROM requests r
    LEFT JOIN {DECISIONS} b ON b.request_row = r.rowid
    LEFT JOIN {WINDOW_DECISIONS} w ON w.request_row = r.rowid
    WHERE r.ts IS NOT NULL
      AND ($since IS NULL OR r.ts >= $since) AND ($until IS NULL OR r.ts <= $until)
)"""

# Each request inside a current finding's window on the finding's principal, once per detector.
_FLAGGED = """
flagged AS (
    SELECT DISTINCT f.detector_id, q.request_row
    FROM findings f
    JOIN request_principals q
      ON q.principal_type = f.principal_type AND q.principal_id = f.principal_id
     AND q.ts BETWEEN f.window_start AND f.window_end
    WHERE NOT coalesce(f.suppressed, false) AND f.superseded_by IS NULL
      AND ($since IS NULL OR q.ts >= $since) AND ($until IS NULL OR q.ts <= $until)
)"""

# sums over `decided` rows: the same columns for both policies
_BLOCKED = """
    count(*) AS requests,
    round(sum(est_cost_usd), 6) AS cost_usd,
    count(refused_by) AS refused,
    round(coalesce(sum(est_cost_usd) FILTER (WHERE refused_by IS NOT NULL), 0), 6)
        AS cost_refused_usd,
    round(100 * coalesce(sum(est_cost_usd) FILTER (WHERE refused_by IS NOT NULL), 0)
          / nullif(sum(est_cost_usd), 0), 2) AS cost_blocked_pct,
    count(window_refused_by) AS window_refused,
    round(100 * coalesce(sum(est_cost_usd) FILTER (WHERE window_refused_by IS NOT NULL), 0)
          / nullif(sum(est_cost_usd), 0), 2) AS window_cost_blocked_pct"""

QUERIES = {
    "requests": f"""
WITH {_DECIDED}
SELECT ts, request_id, tenant_id, principal_type, principal_id, tokens,
       round(est_cost_usd, 6) AS cost_usd, refused_by, window_refused_by
FROM decided
ORDER BY ts, request_row""",
    "principals": f"""
WITH {_DECIDED},
streaks AS (
    SELECT *, epoch(lead(ts) OVER (PARTITION BY principal_type, principal_id
                                   ORDER BY ts, request_row)) - epoch(ts) AS until_next
    FROM decided
)
SELECT principal_type, principal_id,
       CASE WHEN count(DISTINCT tenant_id) = 1 THEN min(tenant_id) END AS tenant_id,
       count(*) AS requests,
       count(refused_by) AS refused,
       round(100 * count(refused_by) / count(*), 2) AS refused_pct,
       sum(tokens) AS tokens,
       coalesce(sum(tokens) FILTER (WHERE refused_by IS NOT NULL), 0) AS tokens_refused,
       round(sum(est_cost_usd), 6) AS cost_usd,
       round(coalesce(sum(est_cost_usd) FILTER (WHERE refused_by IS NOT NULL), 0), 6)
           AS cost_refused_usd,
       round(coalesce(sum(until_next) FILTER (WHERE refused_by IS NOT NULL), 0), 3)
           AS throttled_seconds,
       min(ts) FILTER (WHERE refused_by IS NOT NULL) AS first_refused,
       mode(refused_by) AS mostly_refused_by,
       count(window_refused_by) AS window_refused
FROM streaks
GROUP BY principal_type, principal_id
ORDER BY cost_refused_usd DESC, refused DESC, requests DESC, principal_type, principal_id""",
    "detectors": f"""
WITH {_DECIDED}, {_FLAGGED}
SELECT detector_id, {_BLOCKED}
FROM decided JOIN flagged USING (request_row)
GROUP BY detector_id
UNION ALL
SELECT '(no finding)', {_BLOCKED}
FROM decided WHERE request_row NOT IN (SELECT request_row FROM flagged)
ORDER BY detector_id = '(no finding)', detector_id""",
    "tenants": f"""
WITH {_DECIDED}, {_FLAGGED},
marked AS (
    SELECT d.*, d.request_row IN (SELECT request_row FROM flagged) AS is_flagged
    FROM decided d
)
SELECT tenant_id,
       round(coalesce(sum(est_cost_usd) FILTER (WHERE is_flagged), 0), 6) AS flagged_cost_usd,
       round(100 * sum(est_cost_usd) FILTER (WHERE is_flagged AND refused_by IS NOT NULL)
             / nullif(sum(est_cost_usd) FILTER (WHERE is_flagged), 0), 2)
           AS flagged_cost_blocked_pct,
       round(100 * sum(est_cost_usd) FILTER (WHERE is_flagged AND window_refused_by IS NOT NULL)
             / nullif(sum(est_cost_usd) FILTER (WHERE is_flagged), 0), 2)
           AS window_flagged_cost_blocked_pct,
       count(*) FILTER (WHERE NOT is_flagged) AS other_requests,
       count(refused_by) FILTER (WHERE NOT is_flagged) AS other_refused,
       round(100 * count(refused_by) FILTER (WHERE NOT is_flagged)
             / nullif(count(*) FILTER (WHERE NOT is_flagged), 0), 3) AS other_refused_pct,
       count(window_refused_by) FILTER (WHERE NOT is_flagged) AS window_other_refused
FROM marked
GROUP BY tenant_id
ORDER BY flagged_cost_usd DESC, tenant_id""",
}


def view_sql(view: str) -> str:
    """The SELECT of one view (see the module docstring); bind `Replayed.params()`."""
    return QUERIES[view]
