"""The verdict as a chart (`quota replay --chart FILE.svg`): per detector, the share of its
findings' cost each policy blocks; per tenant, the share of its requests of no finding each
policy refuses (the collateral damage), the most refused first. The policy and its
fixed-window twin side by side, from the same views `quota replay` prints."""

from __future__ import annotations

from typing import Any

import duckdb

from forensics.quota.verdict import view_sql

TENANTS_SHOWN = 15
POLICIES = ("policy", "fixed-window twin")


def _rows(
    con: duckdb.DuckDBPyConnection, view: str, params: dict[str, Any]
) -> list[dict[str, Any]]:
    cur = con.execute(view_sql(view), params)
    names = [d[0] for d in cur.description or ()]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def verdict_svg(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> str:
    """An SVG file of the two panels (see the module docstring), after a replay."""
    import altair as alt
    import vl_convert

    blocked: list[dict[str, Any]] = []
    for row in _rows(con, "detectors", params):
        if row["detector_id"] == "(no finding)" or not row["cost_usd"]:
            continue
        for name, key in zip(
            POLICIES, ("cost_blocked_pct", "window_cost_blocked_pct"), strict=True
        ):
            blocked.append({"who": row["detector_id"], "policy": name, "pct": row[key] or 0.0})
    tenants = sorted(
        (t for t in _rows(con, "tenants", params) if t["other_requests"]),
        key=lambda t: (-(t["other_refused_pct"] or 0), str(t["tenant_id"])),
    )[:TENANTS_SHOWN]
    refused: list[dict[str, Any]] = []
    for row in tenants:
        share = {
            "policy": row["other_refused_pct"] or 0.0,
            "fixed-window twin": 100 * row["window_other_refused"] / row["other_requests"],
        }
        for name in POLICIES:
            who = "(no tenant)" if row["tenant_id"] is None else str(row["tenant_id"])
            refused.append({"who": who, "policy": name, "pct": share[name]})

    def panel(values: list[dict[str, Any]], title: str) -> Any:
        return (
            alt.Chart(alt.Data(values=values))  # type: ignore[no-untyped-call]
            .mark_bar()
            .encode(
                y=alt.Y("who:N", title=None, sort=None),
                yOffset=alt.YOffset("policy:N", sort=list(POLICIES)),
                x=alt.X("pct:Q", title=title, scale=alt.Scale(domain=[0, 100])),
                color=alt.Color("policy:N", sort=list(POLICIES), title=None),
            )
            .properties(width=320)
        )

    chart = alt.hconcat(
        panel(blocked, "findings' cost blocked (%)"),
        panel(refused, "requests of no finding refused (%)"),
    )
    return str(vl_convert.vegalite_to_svg(chart.to_json()))
