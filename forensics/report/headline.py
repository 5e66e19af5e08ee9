"""The weekly report's opening: one or two sentences a reader gets in five seconds.

Built only from what the report already holds (stored incidents, their top finding, the
period's totals and its coverage), so the headline can never say more than the page: what
happened, what it cost, what to do first. A period that was not analysed, or whose evidence
has holes, never opens with good news.
"""

from __future__ import annotations

from typing import Any

from forensics.case.rows import Row
from forensics.report.actions import action_for


def headline(
    incidents: list[Row],
    top_finding: Row | None,
    now: Row,
    warnings: list[str],
    *,
    not_analysed: bool,
    compared: bool,
) -> list[str]:
    """Sentences for the top of the report (plain text; templates escape them). `warnings`
    are the banner's lines; `not_analysed` says they include a period detection did not
    cover; `compared` that the previous period has data to tell new incidents from old."""
    if not incidents:
        if not_analysed:
            return [
                f"No incident was found, but this period was not fully analysed: {warnings[0]}."
            ]
        if warnings:
            return [f"No incident in the evidence the case holds, but mind it: {warnings[0]}."]
        return [
            f"No incident in this period: {_num(now['requests'])} requests{_cost(now)} were"
            " analysed by every detector of the pack."
        ]
    top = incidents[0]
    new = sum(1 for i in incidents if i.get("status") == "new")
    count = f"{len(incidents)} incident{'s' if len(incidents) != 1 else ''}"
    count += f" ({new} new)" if compared else " (no earlier period to compare with)"
    primary = top.get("primary_detector")
    others = [d for d in top["detectors"] or [] if d != primary]
    if primary:
        why = f"diagnosed as {primary}" + (f", supported by {', '.join(others)}" if others else "")
    else:  # an incident stored before diagnoses were made
        why = ", ".join(others)
    sentences = [
        f"{count}, the worst {top['severity']}: {top['principal_type']}"
        f" {top['principal_id']} ({why})."
    ]
    cost = []
    if now.get("cost_usd"):
        cost.append(
            f"Cost exposure {_usd(now['exposure_usd'])} of gateway traffic"
            f" (of {_usd(now['cost_usd'])} for all traffic)"
        )
    if now.get("provider_cost_usd"):
        cost.append(
            f"{_usd(now['provider_cost_usd'])} of provider-side usage the gateway never saw"
        )
    if cost:
        sentences[0] += " " + "; ".join(cost) + "."
    if top_finding is not None:
        action = action_for(
            str(top_finding["detector_id"]),
            str(top_finding["principal_id"]),
            str(top_finding.get("principal_type") or ""),
        )
        if action:
            sentences.append(f"First: {action}")
    if not_analysed:  # the banner above says it too; the headline must not read as complete
        sentences.append(f"Not fully analysed: {warnings[0]}.")
    return sentences


def change(now: Any, before: Any) -> Row | None:
    """The arrow and percentage from `before` to `now` (None when either is missing or the
    earlier value is 0, where a percentage means nothing)."""
    if now is None or before is None:
        return None
    now_f, before_f = float(now), float(before)
    if before_f == 0:
        return None if now_f == 0 else {"arrow": "▲", "text": "new"}
    pct = 100.0 * (now_f - before_f) / abs(before_f)
    if abs(pct) < 0.5:
        return {"arrow": "=", "text": "0%"}
    return {"arrow": "▲" if pct > 0 else "▼", "text": f"{abs(pct):,.0f}%"}


def _cost(now: Row) -> str:
    return f" ({_usd(now['cost_usd'])} of traffic)" if now.get("cost_usd") else ""


def _num(value: Any) -> str:
    return f"{int(value or 0):,}"


def _usd(value: Any) -> str:
    return f"${float(value or 0):,.2f}"
