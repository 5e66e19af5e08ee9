"""What a replayed policy would have done, read against what the detectors found.

A replay (replay.py) leaves two decision tables: the policy as written (`quota_decisions`)
and its fixed-window twin, each bucket replaced by a window of the same average rate
(`quota_window_decisions`, Policy.as_windows). The views here are SELECTs over them and the
case, for the period replayed:

  requests    each request: its principal, whether each policy refused it and by which rule
  principals  per principal (its credential, else its address, else its tenant: the
              case's view request_subjects, as detectors name a request's principal):
              requests, tokens and cost refused, and the time it spent throttled (from each
              refused request to its next request)
  detectors   per detector with current findings: its findings' requests (each request of a
              finding's principal inside the finding's window) and the share of their cost each
              policy blocks; then one row for the requests of no finding, whose refusals are
              the collateral damage
  tenants     per tenant: the cost of its flagged requests blocked, and its other requests
              refused, by each policy
  scenarios   with a labels file (`forensics synth` writes one; the format of `forensics
              evaluate`): per labelled scenario, the share of its requests' cost each policy
              blocks (a label's principal's requests inside its window), then one row for the
              requests of no label, the legitimate ones, and the share of them refused

Everything is one statement per view: set operations over the decision tables, no loop.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import duckdb

from forensics import sql
from forensics.evaluate import Label, labels_table
from forensics.quota.flagged import FLAGGED
from forensics.quota.policy import Policy
from forensics.quota.replay import DECISIONS, replay

WINDOW_DECISIONS = "quota_window_decisions"
LABELS = "quota_labels"  # the scenarios view's labels (register_labels)


@dataclass(frozen=True)
class Replayed:
    """A policy replayed with its fixed-window twin on one connection, over one period."""

    since: dt.datetime | None
    until: dt.datetime | None
    refused: int
    refused_by_window: int
    requests: int  # in the period replayed

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
    requests = con.execute(
        "SELECT count(*) FROM requests WHERE ts IS NOT NULL"
        " AND ($since IS NULL OR ts >= $since) AND ($until IS NULL OR ts <= $until)",
        {"since": since, "until": until},
    ).fetchall()[0][0]
    return Replayed(since, until, refused, windowed, int(requests))


# The period's requests with both decisions and their principal (request_subjects).
_DECIDED = f"""
decided AS (
    SELECT r.request_row, r.ts, r.request_id, r.tenant_id, r.principal_type, r.principal_id,
           coalesce(r.input_tokens, 0) + coalesce(r.output_tokens, 0) AS tokens,
           r.est_cost_usd,
           b.refused_by, w.refused_by AS window_refused_by
    FROM request_subjects r
    LEFT JOIN {DECISIONS} b ON b.request_row = r.request_row
    LEFT JOIN {WINDOW_DECISIONS} w ON w.request_row = r.request_row
    WHERE r.ts IS NOT NULL
      AND ($since IS NULL OR r.ts >= $since) AND ($until IS NULL OR r.ts <= $until)
)"""

_FLAGGED = "flagged AS ({})".format(
    FLAGGED.format(
        condition="($since IS NULL OR q.ts >= $since) AND ($until IS NULL OR q.ts <= $until)"
    )
)

# sums over `decided` rows: the same columns for both policies
_BLOCKED = """
    count(*) AS requests,
    round(sum(est_cost_usd), 6) AS cost_usd,
    count(refused_by) AS refused,
    round(100 * count(refused_by) / nullif(count(*), 0), 3) AS refused_pct,
    round(coalesce(sum(est_cost_usd) FILTER (WHERE refused_by IS NOT NULL), 0), 6)
        AS cost_refused_usd,
    round(100 * coalesce(sum(est_cost_usd) FILTER (WHERE refused_by IS NOT NULL), 0)
          / nullif(sum(est_cost_usd), 0), 2) AS cost_blocked_pct,
    count(window_refused_by) AS window_refused,
    round(100 * count(window_refused_by) / nullif(count(*), 0), 3) AS window_refused_pct,
    round(100 * coalesce(sum(est_cost_usd) FILTER (WHERE window_refused_by IS NOT NULL), 0)
          / nullif(sum(est_cost_usd), 0), 2) AS window_cost_blocked_pct"""

# Each labelled scenario's requests: its principal's requests inside its window.
_LABELLED = f"""
labelled AS (
    SELECT DISTINCT l.scenario, q.request_row
    FROM {LABELS} l
    JOIN request_principals q
      ON q.principal_type = l.principal_type AND q.principal_id = l.principal_id
     AND q.ts BETWEEN l.window_start AND l.window_end
)"""


def _per_group(column: str, sets: str, name: str, rest: str) -> str:
    """_BLOCKED per `column` of the CTE `sets` (named `name`: column, request_row), then one row
    `rest` for the requests in none of them."""
    return f"""
WITH {_DECIDED}, {sets}
SELECT {column}, {_BLOCKED}
FROM decided JOIN {name} USING (request_row)
GROUP BY {column}
UNION ALL
SELECT '{rest}', {_BLOCKED}
FROM decided WHERE request_row NOT IN (SELECT request_row FROM {name})
ORDER BY {column} = '{rest}', {column}"""


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
       round(100 * count(refused_by) / nullif(count(*), 0), 2) AS refused_pct,
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
    "detectors": _per_group("detector_id", _FLAGGED, "flagged", "(no finding)"),
    "scenarios": _per_group("scenario", _LABELLED, "labelled", "(no label)"),
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


def register_labels(con: duckdb.DuckDBPyConnection, labels: list[Label]) -> None:
    """The labels the scenarios view reads, as a TEMP table of this connection."""
    table = labels_table(labels)
    con.register("quota_labels_arrow", table)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {LABELS} AS FROM quota_labels_arrow")
    finally:
        con.unregister("quota_labels_arrow")


def view_sql(view: str) -> str:
    """The SELECT of one view (see the module docstring); bind `Replayed.params()`."""
    return QUERIES[view]


_READABLE = {"cost_usd": "estimated dollars", "input_tokens": "input tokens",
             "output_tokens": "output tokens", "tool_calls": "tool calls"}  # fmt: skip
POLICY = "quota_policy"  # TEMP: the label of the policy this connection's pages replayed
LIMITS = "quota_limits"  # TEMP: each rule's limit per tenant (tenant NULL: the default)


def prepare(con: duckdb.DuckDBPyConnection, policy: Policy | None = None) -> str | None:
    """Replay `policy`, or the policy `quota suggest` fits to the case, once per connection for
    the incident and principal pages (`incident_effect`); returns the policy's label, or None
    when there is none to replay (a case no detector has run on gets no suggestion)."""
    from forensics.errors import UsageError
    from forensics.quota.suggest import suggest

    if con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE temporary AND table_name = $t", {"t": POLICY}
    ).fetchall():
        return str(con.execute(f"SELECT label FROM {POLICY}").fetchall()[0][0])
    if policy is None:
        try:
            policy = suggest(con).policy
        except UsageError:
            return None
        label = "the policy `forensics quota suggest` fits to this case"
    else:
        label = f"the policy {policy.path}"
    replay_both(con, policy)
    rows = [
        (
            tenant,
            rule.id,
            f"{limit.describe()} of {_READABLE.get(rule.metric, rule.metric)} per {rule.key}",
        )
        for rule in policy.rules
        for tenant, limit in [(None, rule.limit), *rule.overrides.items()]
    ]
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {LIMITS} (tenant_id VARCHAR, rule_id VARCHAR, text VARCHAR)"
    )
    if rows:
        con.executemany(f"INSERT INTO {LIMITS} VALUES (?, ?, ?)", rows)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {POLICY} AS SELECT $label AS label", {"label": label}
    )
    return label


_EFFECT = f"""
WITH mine AS ({sql.read("finding_requests_between")})
SELECT count(*) AS requests,
       count(b.refused_by) AS refused,
       round(sum(m.est_cost_usd), 6) AS cost_usd,
       -- unknown when none of the requests is priced, as the cost itself
       round(CASE WHEN sum(m.est_cost_usd) IS NOT NULL THEN coalesce(sum(m.est_cost_usd)
             FILTER (WHERE b.refused_by IS NOT NULL), 0) END, 6) AS cost_refused_usd,
       min(m.ts) FILTER (WHERE b.refused_by IS NOT NULL) AS first_refused,
       list(DISTINCT b.refused_by ORDER BY b.refused_by) FILTER (WHERE b.refused_by IS NOT NULL)
           AS rules,
       count(w.refused_by) AS window_refused,
       round(CASE WHEN sum(m.est_cost_usd) IS NOT NULL THEN coalesce(sum(m.est_cost_usd)
             FILTER (WHERE w.refused_by IS NOT NULL), 0) END, 6) AS window_cost_refused_usd
FROM mine m
LEFT JOIN {DECISIONS} b USING (request_row)
LEFT JOIN {WINDOW_DECISIONS} w USING (request_row)"""


def incident_effect(
    con: duckdb.DuckDBPyConnection,
    finding_ids: list[str],
    start: dt.datetime,
    end: dt.datetime,
    tenant: str | None,
) -> dict[str, Any] | None:
    """What the policy `prepare` replayed did to the requests of these findings' principals
    between start and end, and the tenant's limits in it; None when nothing was replayed."""
    label = prepare(con)
    if label is None:
        return None
    cur = con.execute(_EFFECT, {"ids": finding_ids, "start": start, "end": end})
    names = [d[0] for d in cur.description or ()]
    effect: dict[str, Any] = dict(zip(names, cur.fetchall()[0], strict=True))
    effect["policy"] = label
    effect["tenant_id"] = tenant
    effect["limits"] = [
        {"rule_id": r[0], "text": r[1]}
        for r in con.execute(
            f"SELECT rule_id, coalesce(arg_max(text, tenant_id IS NOT NULL), any_value(text))"
            f" FROM {LIMITS} WHERE tenant_id IS NULL OR tenant_id = $t"
            " GROUP BY rule_id ORDER BY min(rowid)",
            {"t": tenant},
        ).fetchall()
    ]
    return effect
