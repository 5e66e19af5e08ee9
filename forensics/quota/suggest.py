"""A policy fitted to each tenant's legitimate history (`forensics quota suggest`).

Legitimate: the period's requests with a credential and a tenant, less every request of a
current finding about volume or cost (VOLUME_FAMILIES: its principal's requests inside its
window, as the verdict counts them). Findings about who holds a key or where it is used
(credential, network, probing, recon, usage) leave the traffic in: its volume is the
customer's usual, and leaving it out would take a tenant's whole history with it. Each
rule keys its limits by credential and gets, per tenant with at least MIN_PERIODS active
periods of history (10 minutes, 5 hours, 3 days), a limit of its own (a bucket; for tool calls
a window whose limit is the rate, see RULES):

  rate   the tenant's `percentile` of one credential's demand per active period (a minute, an
         hour, a day: the rule's), times `headroom`
  burst  the `percentile` of the bucket depth the tenant's own legitimate traffic needs at that
         rate, times `headroom` (never below one period's rate). The depth a request needs is
         E_i + c_i (or E_i for a charge known only afterwards), E_i the deficit before it, by the
         same closed form the replay uses (replay.py): so at most about 100 - percentile
         percent of the legitimate requests find the bucket short.

Tenants with less history get the default: the median tenant's rate and burst. Both steps are
one SQL statement per rule over `requests`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import Any

import duckdb

from forensics.errors import UsageError
from forensics.quota.flagged import FLAGGED
from forensics.quota.policy import METRICS, PERIODS, UPFRONT, Limit, Policy, Rule
from forensics.quota.replay import bucket_deficit, bucket_s, first_epoch

# active periods of history a tenant needs for a bucket of its own, by the rule's period
MIN_PERIODS = {"minute": 10, "hour": 5, "day": 3}
# (rule id, metric, period, kind): requests and tokens in short bursts; requests by the hour,
# where a steady reseller shows while each minute looks ordinary; tool calls by the day, where
# an agent loop's hours stand out against a key that seldom calls tools. A refused request is
# charged (replay.py), so a bucket in debt refuses the same key until its rate pays the debt
# back: tool calls, which a legitimate key makes few of, get a fixed window instead, which
# forgets the debt when the day ends.
RULES = (
    ("requests-per-minute", "requests", "minute", "bucket"),
    ("tokens-per-minute", "tokens", "minute", "bucket"),
    ("requests-per-hour", "requests", "hour", "bucket"),
    ("tool-calls-per-day", "tool_calls", "day", "window"),
)

# detector families whose findings say the traffic itself is abnormal in volume or cost
VOLUME_FAMILIES = ("scraping", "resale", "cost", "ratelimit", "automation", "abuse")

_FLAGGED = FLAGGED.format(condition="list_contains($families, split_part(f.detector_id, '.', 1))")


def _fit_sql(metric: str, seconds: int) -> str:
    upfront = "charge" if metric in UPFRONT else "0"
    return f"""
WITH legit AS (
    SELECT r.request_row, r.tenant_id, r.credential_id AS k, epoch(r.ts) - $t0 AS t,
           floor(epoch(r.ts) / {seconds}) AS p, CAST({METRICS[metric]} AS DOUBLE) AS charge
    FROM request_rows r
    WHERE r.credential_id IS NOT NULL AND r.tenant_id IS NOT NULL AND r.ts IS NOT NULL
      AND ($since IS NULL OR r.ts >= $since) AND ($until IS NULL OR r.ts <= $until)
      AND r.request_row NOT IN (SELECT request_row FROM flagged_requests)
),
periods AS (
    SELECT tenant_id, k, p, sum(charge) AS demand
    FROM legit GROUP BY ALL
),
rates AS (
    SELECT tenant_id, count(*) AS periods,
           $headroom * quantile_cont(demand, $q) AS rate
    FROM periods GROUP BY tenant_id
),
depth AS (
    SELECT tenant_id, {bucket_deficit("tenant_id, k")} + {upfront} AS need
    FROM (
        SELECT l.*, {bucket_s("l.tenant_id, k", "r.rate", str(seconds))} AS s
        FROM legit l JOIN rates r USING (tenant_id)
    )
)
SELECT tenant_id, any_value(r.periods) AS periods, count(*) AS requests,
       any_value(r.rate) AS rate,
       greatest(any_value(r.rate), $headroom * quantile_cont(need, $q)) AS burst
FROM depth JOIN rates r USING (tenant_id)
GROUP BY tenant_id
ORDER BY tenant_id"""


@dataclass(frozen=True)
class Fitted:
    """One rule's fit: the default limit and each tenant's own."""

    rule_id: str
    metric: str
    per: str
    default: Limit
    tenants: dict[str, Limit]


@dataclass(frozen=True)
class Suggestion:
    policy: Policy
    fits: tuple[Fitted, ...]
    legitimate_requests: int
    tenants: int
    percentile: float
    headroom: float
    since: dt.datetime | None
    until: dt.datetime | None
    run_id: str  # the latest detection run: whose findings were left out
    run_at: dt.datetime
    failed: list[str]  # its detectors that failed: abuse they would flag may be in the fit


def _round_up(value: float) -> float:
    """Up to two significant digits (120, 4500, 0.37): limits people can read."""
    if value <= 0:
        return 0.0
    scale = 10.0 ** (math.floor(math.log10(value)) - 1)
    return math.ceil(round(value / scale, 9)) * scale


def suggest(
    con: duckdb.DuckDBPyConnection,
    *,
    percentile: float = 99.5,
    headroom: float = 1.5,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Suggestion:
    """Fit every rule of RULES (see the module docstring). A case no detector has run on is
    an error: the fit would learn the abuse in it as the tenants' usual traffic."""
    runs = con.execute(
        "SELECT run_id, started_at, status, errors FROM runs ORDER BY started_at DESC LIMIT 1"
    ).fetchall()
    if not runs:
        raise UsageError(
            "the case has no detection run: a policy fitted now would take abuse for usage",
            hint="run `forensics detect` first",
        )
    run_id, run_at, status, errors = runs[0]
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE flagged_requests AS {_FLAGGED}",
        {"families": list(VOLUME_FAMILIES)},
    )
    params: dict[str, Any] = {
        "since": since, "until": until, "q": percentile / 100, "headroom": headroom,
        "t0": first_epoch(con, since, until),
    }  # fmt: skip
    fits: list[Fitted] = []
    legit = 0
    tenants: set[str] = set()
    for rule_id, metric, per, kind in RULES:
        rows = con.execute(_fit_sql(metric, PERIODS[per]), params).fetchall()
        legit = max(legit, sum(int(r[2]) for r in rows))
        fitted = {
            str(t): (_round_up(rate), _round_up(burst))
            for t, periods, _, rate, burst in rows
            if periods >= MIN_PERIODS[per] and rate > 0
        }
        tenants.update(fitted)
        rates = sorted(r for r, _ in fitted.values()) or [1.0]
        bursts = sorted(b for _, b in fitted.values()) or [1.0]
        median = (
            rates[len(rates) // 2],
            max(bursts[len(bursts) // 2], 1.0 if metric in UPFRONT else 0.0),
        )
        own = {t: _limit(kind, per, r, b) for t, (r, b) in fitted.items()}
        fits.append(Fitted(rule_id, metric, per, _limit(kind, per, *median), own))
    if legit == 0:
        raise UsageError(
            "no legitimate request with a credential and a tenant in the period: nothing to fit"
            " a policy to",
            hint="widen --since/--until, or ingest the gateway's logs",
        )
    rules = tuple(
        Rule(f.rule_id, n + 1, "credential", f.metric, f.default, overrides=f.tenants)
        for n, f in enumerate(fits)
    )
    failed = sorted(json.loads(errors or "{}")) if status != "ok" else []
    return Suggestion(
        Policy("(suggested)", rules), tuple(fits), legit, len(tenants), percentile, headroom,
        since, until, str(run_id), run_at, failed,
    )  # fmt: skip


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's (tenant ids come from the logs)."""
    return json.dumps(value, ensure_ascii=False)


def _limit(kind: str, per: str, rate: float, burst: float) -> Limit:
    """A bucket of `rate` per `per` up to `burst`, or a window of `rate` per `per`."""
    if kind == "window":
        return Limit("window", PERIODS[per], amount=rate)
    return Limit("bucket", PERIODS[per], rate=rate, burst=burst)


def _limit_line(limit: Limit, per: str) -> str:
    if limit.kind == "window":
        return f'window = {{ limit = {limit.amount:g}, per = "{per}" }}'
    return f'bucket = {{ rate = {limit.rate:g}, per = "{per}", burst = {limit.burst:g} }}'


def policy_text(s: Suggestion) -> str:
    """The suggested policy as a TOML file, its derivation in comments."""
    span = (
        f"{s.since.isoformat() if s.since else 'the first request'} to"
        f" {s.until.isoformat() if s.until else 'the last'}"
    )
    p, h = f"{s.percentile:g}", f"{s.headroom:g}"
    lines = [
        "# Suggested by `forensics quota suggest`: fitted to the legitimate requests of the case",
        f"# ({s.legitimate_requests} requests of {s.tenants} tenants, {span}), the requests of",
        "# current findings about volume or cost left out (findings as of detection run",
        f"# {s.run_id[:12]}, {s.run_at:%Y-%m-%d %H:%M} UTC).",
        f"# Per tenant: rate (a window's limit) = the {p}th percentile of one credential's",
        f"# demand per active period x {h}; burst = the {p}th percentile of the bucket depth its",
        f"# own traffic needs at that rate x {h}. Tenants with under 10 active minutes (5 hours,",
        "# 3 days) get the rule's default: the median tenant's. Review before shipping.",
        *(
            [
                f"# That run's failed detectors: {', '.join(s.failed)}; what they would flag is in"
                " the fit."
            ]
            if s.failed
            else []
        ),
        "",
        "[defaults]",
        'key = "credential"',
    ]
    for f in s.fits:
        lines += [
            "",
            "[[rule]]",
            f'id = "{f.rule_id}"',
            f'limit = "{f.metric}"',
            _limit_line(f.default, f.per),
        ]
        for tenant, limit in sorted(f.tenants.items()):
            lines += ["", f"[rule.tenant.{_toml_string(tenant)}]", _limit_line(limit, f.per)]
    return "\n".join(lines) + "\n"


def providers(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The providers the case's gateway traffic went to (lower case), for gateway configs."""
    rows = con.execute(
        "SELECT DISTINCT lower(provider) FROM requests WHERE provider IS NOT NULL ORDER BY 1"
    ).fetchall()
    return [str(r[0]) for r in rows]
