"""The vectorised replay (window functions in DuckDB) decides every request exactly as a plain
loop over the requests does, on random traffic and random policies (hypothesis)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from forensics.case import db
from forensics.quota.policy import KEYS, PERIODS, UPFRONT, Limit, Policy, Rule
from forensics.quota.replay import EPSILON, replay

T0 = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
COLUMNS = (
    "ts", "tenant_id", "credential_id", "client_ip", "user_id", "endpoint", "model", "stream",
    "input_tokens", "output_tokens", "est_cost_usd", "tool_calls", "latency_ms",
)  # fmt: skip


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    c = db.connect(tmp_path_factory.mktemp("quota") / "case.duckdb")
    yield c
    c.close()


request = st.fixed_dictionaries(
    {
        "offset": st.integers(0, 300),  # seconds: whole, so the loop's refill is exact too
        "tenant_id": st.sampled_from(["t1", "t2", "t3"]),
        "credential_id": st.sampled_from(["k1", "k2", "k3", None]),
        "client_ip": st.sampled_from(["198.51.100.1", "198.51.100.2"]),
        "user_id": st.sampled_from(["u1", None]),
        "endpoint": st.sampled_from(["chat", "embeddings", None]),
        "model": st.sampled_from(["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet"]),
        "stream": st.sampled_from([True, False, None]),
        "input_tokens": st.integers(0, 3000) | st.none(),
        "output_tokens": st.integers(0, 3000) | st.none(),
        "est_cost_usd": st.sampled_from([0.0, 0.25, 0.5, 1.5, 3.0]) | st.none(),
        "tool_calls": st.integers(0, 4) | st.none(),
        "latency_ms": st.sampled_from([0, 500, 1000, 30000, 120000]) | st.none(),
    }
)


# a typical charge of each metric: limits are drawn around it, so that most policies both
# admit and refuse some of the traffic
SCALE = {"requests": 1, "tool_calls": 1, "cost_usd": 1, "input_tokens": 1000,
         "output_tokens": 1000, "tokens": 2000}  # fmt: skip


@st.composite
def limits(draw: st.DrawFn, metric: str, concurrent: bool = False) -> Limit:
    if concurrent:
        return Limit("concurrent", 0, amount=float(draw(st.integers(1, 4))))
    seconds = draw(st.sampled_from([PERIODS["second"], PERIODS["minute"], PERIODS["hour"]]))
    scale = SCALE[metric]
    if draw(st.booleans()):
        return Limit(
            "bucket",
            seconds,
            rate=float(draw(st.integers(1, 30)) * scale),
            burst=float(draw(st.integers(1, 8)) * scale),
        )
    return Limit("window", seconds, amount=float(draw(st.integers(1, 12)) * scale))


@st.composite
def rules(draw: st.DrawFn, number: int) -> Rule:
    metric = draw(st.sampled_from(sorted(SCALE)))
    capped = metric == "requests" and draw(st.booleans())  # a cap on requests in flight
    overrides = draw(
        st.dictionaries(st.sampled_from(["t1", "t2"]), limits(metric, capped), max_size=2)
    )
    return Rule(
        id=f"rule-{number}",
        line=1,
        key=draw(st.sampled_from(sorted(KEYS))),
        metric=metric,
        limit=draw(limits(metric, capped)),
        endpoint=draw(st.sampled_from([None, "chat*", "emb*"])),
        model=draw(st.sampled_from([None, "gpt-4o*", "claude*"])),
        stream=draw(st.sampled_from([None, True, False])),
        tenants=tuple(draw(st.lists(st.sampled_from(["t1", "t2", "t3"]), max_size=2))),
        overrides=overrides,
    )


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    count = draw(st.integers(1, 3))
    return Policy("policy.toml", tuple(draw(rules(n)) for n in range(count)))


def charge(rule: Rule, r: dict[str, object]) -> float:
    def n(name: str) -> float:
        value = r[name]
        return 0.0 if value is None else float(value)  # type: ignore[arg-type]

    return {
        "requests": 1.0,
        "input_tokens": n("input_tokens"),
        "output_tokens": n("output_tokens"),
        "tokens": n("input_tokens") + n("output_tokens"),
        "cost_usd": n("est_cost_usd"),
        "tool_calls": n("tool_calls"),
    }[rule.metric]


def matches(rule: Rule, r: dict[str, object]) -> bool:
    import fnmatch

    def glob(pattern: str | None, value: object) -> bool:
        return pattern is None or (value is not None and fnmatch.fnmatchcase(str(value), pattern))

    return (
        r[KEYS[rule.key]] is not None
        and glob(rule.endpoint, r["endpoint"])
        and glob(rule.model, r["model"])
        and (rule.stream is None or bool(r["stream"]) == rule.stream)
        and (not rule.tenants or r["tenant_id"] in rule.tenants)
    )


def reference(policy: Policy, traffic: list[dict[str, object]]) -> list[str | None]:
    """The plain loop: each request in time order (ties: as inserted) through every rule."""
    order = sorted(range(len(traffic)), key=lambda i: (traffic[i]["offset"], i))
    refused: list[str | None] = [None] * len(traffic)
    for rule in policy.rules:
        state: dict[object, list[float]] = {}  # bucket: [level, last time]; window: [used]
        ends: dict[object, list[float]] = {}  # in flight: the end times of earlier requests
        for i in order:
            r = traffic[i]
            if not matches(rule, r):
                continue
            tenant = str(r["tenant_id"])
            limit = rule.overrides.get(tenant, rule.limit)
            lim = tenant if tenant in rule.overrides else ""
            t = float(r["offset"])  # type: ignore[arg-type]
            c = charge(rule, r)
            upfront = rule.metric in UPFRONT
            if limit.kind == "concurrent":
                started = ends.setdefault((r[KEYS[rule.key]], lim), [])
                ok = sum(1 for end in started if end > t) < limit.amount - EPSILON
                if r["latency_ms"]:
                    started.append(t + int(r["latency_ms"]) / 1000.0)  # type: ignore[call-overload]
            elif limit.kind == "bucket":
                level, last = state.get((r[KEYS[rule.key]], lim), [limit.burst, t])
                level = min(limit.burst, level + limit.rate * (t - last) / limit.seconds)
                ok = level >= c - EPSILON if upfront else level > EPSILON
                state[(r[KEYS[rule.key]], lim)] = [level - c, t]
            else:
                window = (r[KEYS[rule.key]], lim, math.floor(t / limit.seconds))
                (used,) = state.get(window, [0.0])
                ok = (
                    used + c <= limit.amount + EPSILON if upfront else used < limit.amount - EPSILON
                )
                state[window] = [used + c]
            if not ok and refused[i] is None:
                refused[i] = rule.id  # rules are tried in file order: the first one names it
    return refused


def load(con: duckdb.DuckDBPyConnection, traffic: list[dict[str, object]]) -> None:
    con.execute("DELETE FROM requests")
    rows = [
        [T0 + dt.timedelta(seconds=int(r["offset"]))]  # type: ignore[call-overload]
        + [r[c] for c in COLUMNS[1:]]
        for r in traffic
    ]
    names = ", ".join(COLUMNS)
    con.executemany(
        f"INSERT INTO requests ({names}) VALUES ({', '.join('?' for _ in COLUMNS)})", rows
    )


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(traffic=st.lists(request, min_size=1, max_size=60), policy=policies())
def test_the_vectorised_replay_decides_as_the_loop(
    con: duckdb.DuckDBPyConnection, traffic: list[dict[str, object]], policy: Policy
) -> None:
    load(con, traffic)
    replay(con, policy)
    decided = dict(
        con.execute(
            "SELECT r.rowid, d.refused_by FROM requests r"
            " LEFT JOIN quota_decisions d ON d.request_row = r.rowid ORDER BY r.rowid"
        ).fetchall()
    )
    expected = reference(policy, traffic)
    target(float(min(sum(e is None for e in expected), sum(e is not None for e in expected))))
    assert [decided[row] for row in sorted(decided)] == expected


def test_a_burst_above_the_bucket_is_refused_until_it_refills(tmp_path: Path) -> None:
    """Worked by hand: 5 requests/minute, burst 3; six requests a second apart, then one a
    minute later. The first three empty the bucket, the next three find under one request
    (each is charged all the same), and a minute refills five."""
    con = db.connect(tmp_path / "case.duckdb")
    try:
        traffic = [
            {c: None for c in COLUMNS[1:]} | {"offset": s, "tenant_id": "t1", "credential_id": "k1"}
            for s in (0, 1, 2, 3, 4, 5, 65)
        ]
        load(con, traffic)
        rule = Rule("rpm", 1, "credential", "requests", Limit("bucket", 60, rate=5, burst=3))
        assert replay(con, Policy("p.toml", (rule,))) == 3
        refused = [
            r[0]
            for r in con.execute(
                "SELECT d.refused_by FROM requests r LEFT JOIN quota_decisions d"
                " ON d.request_row = r.rowid ORDER BY r.ts"
            ).fetchall()
        ]
        assert refused == [None, None, None, "rpm", "rpm", "rpm", None]
    finally:
        con.close()


def decisions(con: duckdb.DuckDBPyConnection, policy: Policy) -> list[str | None]:
    replay(con, policy)
    return [
        r[0]
        for r in con.execute(
            "SELECT d.refused_by FROM requests r LEFT JOIN quota_decisions d"
            " ON d.request_row = r.rowid ORDER BY r.ts, r.rowid"
        ).fetchall()
    ]


def test_limits_at_their_edges(tmp_path: Path) -> None:
    """Worked by hand: a window of 4 tool calls an hour charged after the response refuses once
    the earlier calls reach 4 exactly; a request two rules refuse is named after the first."""
    con = db.connect(tmp_path / "case.duckdb")
    try:
        blank = {c: None for c in COLUMNS[1:]}
        traffic = [
            blank | {"offset": s, "tenant_id": "t1", "credential_id": "k1", "tool_calls": 2}
            for s in (0, 10, 20, 30)
        ]
        load(con, traffic)
        # windows are aligned to the epoch, not to the first request: 00:04:01 and 00:05:00
        # fall in two minutes
        load(con, [r | {"offset": s} for r, s in zip(traffic[:2], (241, 300), strict=True)])
        minute = Rule("minute", 1, "credential", "requests", Limit("window", 60, amount=1))
        assert decisions(con, Policy("p.toml", (minute,))) == [None, None]
        load(con, traffic)
        calls = Rule("calls", 1, "credential", "tool_calls", Limit("window", 3600, amount=4))
        assert decisions(con, Policy("p.toml", (calls,))) == [None, None, "calls", "calls"]
        tenant = Rule("per-tenant", 2, "tenant", "requests", Limit("window", 3600, amount=2))
        both = decisions(con, Policy("p.toml", (tenant, calls)))
        assert both == [None, None, "per-tenant", "per-tenant"]
        # a bucket charged after the response admits while it is not in debt: burst 2 tool
        # calls; four requests in one second (ties in the order logged): the first leaves it
        # at 0 exactly, so the second is refused
        load(con, [r | {"offset": 0} for r in traffic])
        slow = Rule("slow", 1, "credential", "tool_calls", Limit("bucket", 60, rate=1, burst=2))
        assert decisions(con, Policy("p.toml", (slow,))) == [None, "slow", "slow", "slow"]
        # one request in flight at most: a request that ends as the next starts is done, one
        # of no duration never occupies the slot, one of 5 s holds it
        load(con, [r | {"offset": s, "latency_ms": ms}
                   for r, (s, ms) in zip(traffic, [(0, 1000), (1, 0), (1, 5000), (2, 0)],
                                         strict=True)])  # fmt: skip
        cap = Rule("cap", 1, "credential", "requests", Limit("concurrent", 0, amount=1))
        assert decisions(con, Policy("p.toml", (cap,))) == [None, None, None, "cap"]
    finally:
        con.close()
