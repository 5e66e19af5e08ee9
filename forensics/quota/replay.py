"""Replaying the case's requests through a quota policy, in DuckDB, as set operations.

What a replay decides, per request and rule. A rule meters the requests it matches (endpoint,
model, streaming, tenants); each value of its key (a credential, a tenant, ...) has a bucket of
its own, with the tenant's override where the policy gives one. Requests are taken in time
order (ties by their row). A request is refused when any rule refuses it; `refused_by` names
the first such rule in the file.

The replay meters demand: every request in the log is charged to the buckets it matches,
refused or not, as Kong's Rate Limiting Advanced counts refused requests by default. A gateway
that does not charge a refused request (Envoy's local_ratelimit, Kong with disable_penalty)
admits more of a client that keeps sending above the rate, so for such a client the replay's
refusals are an upper bound; below the limits the two agree exactly. Charging every request
is also what makes the replay a set operation: whether a request gets through then depends on
the log alone, not on earlier decisions.

Admission. A request needs its whole charge in the bucket when the gateway knows the charge
before forwarding it (requests, input tokens); otherwise (output tokens, tokens, cost, tool
calls, known only from the response) the bucket must not be in debt, and the request is
charged afterwards, possibly into debt.

Token bucket (rate r per second, capacity B, full before the first request). Let c_j be the
charge of the j-th request of a bucket and t_j its time. The deficit E_i = B - level just
before request i (after refill) follows Lindley's recursion E_i = max(0, E_{i-1} + c_{i-1} -
r (t_i - t_{i-1})), E_1 = 0, whose closed form is

    S_i = sum_{j<i} c_j - r (t_i - t_1)          E_i = S_i - min_{k<=i} S_k

a running sum and a running minimum: two window functions per bucket, no loop. Request i is
admitted when B - E_i >= c_i (charge known up front) or B - E_i > 0 (charged afterwards).

Fixed window (amount A per window of P seconds, windows aligned to the epoch): with W_i the
charges of the earlier requests of the same bucket and window, admitted when W_i + c_i <= A
(up front) or W_i < A (afterwards). One running sum.

Requests in flight (at most A at once): each request is in flight from its start for its logged
latency; request i is refused when A or more requests of its bucket that come before it in time
order are still in flight at its start (one that ends at that instant is not). Every request
counts, refused or not, as every request is charged above. One running sum over start and end
events.

Times are seconds and charges DOUBLE; each comparison allows EPSILON (1e-6 of a request,
token or dollar) for rounding, so a level that equals the charge in exact arithmetic admits.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from forensics.quota.policy import KEYS, METRICS, UPFRONT, Policy, Rule

DECISIONS = "quota_decisions"  # TEMP table of the refused requests: request_row, refused_by
EPSILON = 1e-6  # rounding allowed in a comparison, in units of the rule's metric


def _limits_table(rule: Rule) -> tuple[str, dict[str, Any]]:
    """The rule's limits as a VALUES list (tenant NULL: the default), and its parameters."""
    rows = [(None, rule.limit), *sorted(rule.overrides.items())]
    values, params = [], {}
    for n, (tenant, limit) in enumerate(rows):
        params[f"t{n}"] = tenant
        values.append(
            f"($t{n}::VARCHAR, '{limit.kind}', {limit.seconds}::DOUBLE,"
            f" {_num(limit.rate)}, {_num(limit.burst)}, {_num(limit.amount)})"
        )
    table = "(VALUES " + ", ".join(values) + ") l(tenant, kind, seconds, rate, burst, amount)"
    return table, params


def _num(value: float) -> str:
    return f"{float(value)!r}::DOUBLE"


# Over rows with columns t (seconds), request_row and charge, per bucket `partition`:
def charged_before(partition: str) -> str:
    """The charges of the bucket's earlier requests (in time order, ties by row)."""
    return (
        f"coalesce(sum(charge) OVER (PARTITION BY {partition} ORDER BY t, request_row"
        " ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)"
    )


def bucket_s(partition: str, rate: str, seconds: str) -> str:
    """S_i of the module docstring, for a refill of `rate` per `seconds` (t from any origin:
    the deficit does not depend on it)."""
    return f"{charged_before(partition)} - {rate} * t / {seconds}"


def bucket_deficit(partition: str) -> str:
    """E_i = S_i - min_{k<=i} S_k over a column `s` holding bucket_s."""
    return (
        f"s - min(s) OVER (PARTITION BY {partition} ORDER BY t, request_row"
        " ROWS UNBOUNDED PRECEDING)"
    )


def first_epoch(
    con: duckdb.DuckDBPyConnection, since: dt.datetime | None, until: dt.datetime | None
) -> float:
    """The epoch seconds of the period's first request: times counted from it stay small,
    which keeps the refill exact."""
    first = con.execute(
        "SELECT epoch(min(ts)) FROM requests"
        " WHERE ($since IS NULL OR ts >= $since) AND ($until IS NULL OR ts <= $until)",
        {"since": since, "until": until},
    ).fetchall()[0][0]
    return float(first or 0.0)


def rule_sql(rule: Rule, number: int) -> tuple[str, dict[str, Any]]:
    """The SELECT of the requests one rule refuses: request_row, rule_no."""
    limits, params = _limits_table(rule)
    params = {f"r{number}_{k}": v for k, v in params.items()}
    limits = limits.replace("$t", f"$r{number}_t")
    where = [
        "r.ts IS NOT NULL",
        f"r.{KEYS[rule.key]} IS NOT NULL",
        "$since_ IS NULL OR r.ts >= $since_",
        "$until_ IS NULL OR r.ts <= $until_",
    ]
    if rule.endpoint is not None:
        where.append(f"r.endpoint GLOB $r{number}_endpoint")
        params[f"r{number}_endpoint"] = rule.endpoint
    if rule.model is not None:
        where.append(f"r.model GLOB $r{number}_model")
        params[f"r{number}_model"] = rule.model
    if rule.stream is not None:
        where.append(f"coalesce(r.stream, false) = {str(rule.stream).lower()}")
    if rule.tenants:
        where.append(f"list_contains($r{number}_tenants, r.tenant_id)")
        params[f"r{number}_tenants"] = list(rule.tenants)
    upfront = rule.metric in UPFRONT
    kinds = {rule.limit.kind} | {o.kind for o in rule.overrides.values()}
    bucket = f"burst - deficit >= charge - {EPSILON}" if upfront else f"burst - deficit > {EPSILON}"
    window = (
        f"in_window + charge <= amount + {EPSILON}"
        if upfront
        else f"in_window < amount - {EPSILON}"
    )
    # only the windows a kind of limit needs: a rule of buckets alone sorts twice
    sums = []
    if "bucket" in kinds:
        sums.append(f"{bucket_s('k, lim', 'rate', 'seconds')} AS s")
    if "window" in kinds:
        sums.append(f"{charged_before('k, lim, epoch_window')} AS in_window")
    deficit = bucket_deficit("k, lim") if "bucket" in kinds else "NULL::DOUBLE"
    admitted = (
        bucket if kinds == {"bucket"}
        else window if kinds == {"window"}
        else f"CASE WHEN kind = 'bucket' THEN {bucket} ELSE {window} END"
    )  # fmt: skip
    base = f"""
        SELECT r.request_row, r.{KEYS[rule.key]} AS k,
               coalesce(o.tenant, '') AS lim, epoch(r.ts) - $t0_ AS t,
               CAST({METRICS[rule.metric]} AS DOUBLE) AS charge,
               greatest(coalesce(r.latency_ms, 0), 0) / 1000.0 AS duration,
               coalesce(o.kind, d.kind) AS kind,
               coalesce(o.seconds, d.seconds) AS seconds,
               coalesce(o.rate, d.rate) AS rate,
               coalesce(o.burst, d.burst) AS burst,
               coalesce(o.amount, d.amount) AS amount,
               -- fixed windows are aligned to the epoch, not to the period's first request
               floor(epoch(r.ts) / nullif(coalesce(o.seconds, d.seconds), 0)) AS epoch_window
        FROM request_rows r
        CROSS JOIN (SELECT * FROM {limits} WHERE tenant IS NULL) d
        LEFT JOIN (SELECT * FROM {limits} WHERE tenant IS NOT NULL) o ON o.tenant = r.tenant_id
        WHERE {" AND ".join(f"({w})" for w in where)}"""
    if kinds == {"concurrent"}:
        return _in_flight_sql(base, number), params
    sql = f"""
    SELECT request_row, {number} AS rule_no
    FROM (
        SELECT *, {deficit} AS deficit
        FROM (SELECT *, {", ".join(sums)} FROM ({base}))
    )
    WHERE NOT ({admitted})"""
    return sql, params


def _in_flight_sql(base: str, number: int) -> str:
    """A cap on requests in flight: each request is an event at its start (+1) and one at its
    end (-1, when it lasted at all), ends first at the same instant; the running sum before a
    start is how many were in flight then, and the request is refused at the cap or above."""
    return f"""
    SELECT request_row, {number} AS rule_no
    FROM (
        SELECT request_row, starts, amount,
               coalesce(sum(delta) OVER (PARTITION BY k, lim ORDER BY instant, starts, request_row
                                         ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                   AS in_flight
        FROM (
            SELECT request_row, k, lim, t AS instant, true AS starts,
                   CASE WHEN duration > 0 THEN 1 ELSE 0 END AS delta, amount
            FROM ({base})
            UNION ALL
            SELECT request_row, k, lim, t + duration, false, -1, amount
            FROM ({base}) WHERE duration > 0
        )
    )
    WHERE starts AND in_flight >= amount - {EPSILON}"""


def replay(
    con: duckdb.DuckDBPyConnection,
    policy: Policy,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    into: str = DECISIONS,
) -> int:
    """Decide every request of the period (see the module docstring): the refused ones go
    into the TEMP table `into` (request_row, refused_by), a request not in it is admitted;
    returns how many were refused."""
    selects: list[str] = []
    params: dict[str, Any] = {"since_": since, "until_": until}
    params["t0_"] = first_epoch(con, since, until)
    for number, rule in enumerate(policy.rules):
        sql, p = rule_sql(rule, number)
        selects.append(sql)
        params.update(p)
    params["rule_ids_"] = [r.id for r in policy.rules]
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {into} AS"
        " SELECT request_row, $rule_ids_[min(rule_no) + 1] AS refused_by"
        f" FROM ({' UNION ALL '.join(selects)}) GROUP BY request_row",
        params,
    )
    refused = con.execute(f"SELECT count(refused_by) FROM {into}").fetchall()
    return int(refused[0][0])
