"""Rendering reports: Jinja2 with autoescape and StrictUndefined, charts as inline SVG.

Every string in a report that came from a log is attacker-controlled, so the environment escapes
everything by default and no template marks log data safe. The only markup that is not escaped
is the SVG of the charts, which vl-convert draws from the report's own numbers and normalised
labels (endpoints, detector ids, hours); its XML namespace declarations are dropped so that the
page holds no `http` reference at all (HTML parsers put inline `<svg>` in the SVG namespace).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from forensics.report.incident import IncidentReport
from forensics.report.weekly import WeeklyReport
from forensics.resources import shipped_dir
from forensics.times import display_zone, zone_label

if TYPE_CHECKING:
    from forensics.report.bundle import BundleIndex

_XMLNS = re.compile(r'\s+xmlns(:\w+)?="[^"]*"')


def _num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{int(value):,}"


def _usd(value: Any) -> str:
    if value is None:
        return "–"
    amount = float(value)
    return f"${amount:,.2f}" if amount >= 0.01 or amount == 0 else f"${amount:,.4f}"


def _when(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, dt.datetime):
        shown = value.astimezone(display_zone())
        return f"{shown:%Y-%m-%d %H:%M:%S} {zone_label(value)}"
    return str(value)


def _duration(start: Any, end: Any) -> str:
    if not isinstance(start, dt.datetime) or not isinstance(end, dt.datetime):
        return "–"
    seconds = int((end - start).total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min")) if n]
    return " ".join(parts[:2]) or "under a minute"


def _span(start: Any, end: Any) -> str:
    """A window in few characters, to the minute, in the zone times are shown in:
    `2026-11-16 00:02–23:59 UTC` within a day, `2026-11-16 00:02 – 2026-11-17 03:14 UTC`
    across days."""
    if not isinstance(start, dt.datetime) or not isinstance(end, dt.datetime):
        return f"{_when(start)} – {_when(end)}"
    a, b = start.astimezone(display_zone()), end.astimezone(display_zone())
    if a.date() == b.date():
        return f"{a:%Y-%m-%d %H:%M}–{b:%H:%M} {zone_label(start)}"
    return f"{a:%Y-%m-%d %H:%M} – {b:%Y-%m-%d %H:%M} {zone_label(end)}"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


COMPACT_LINES = 12  # lines of a nested evidence value shown before "… N more"


def _inline(value: Any) -> str:
    """A value on one line: a mapping as `k=v, k=v`, a list as `a, b`, nested ones the same."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={_inline(v)}" for k, v in sorted(value.items()))
    if isinstance(value, list | tuple):
        return ", ".join(_inline(v) for v in value)
    return "–" if value is None else str(value)


def _compact(value: Any) -> list[str]:
    """A nested evidence value as short lines, not raw JSON: a mapping one `key: value` line
    per key, a list of scalars one line, a list of records one line each; long ones end with
    the count of lines left out."""
    if isinstance(value, dict):
        lines = [f"{k}: {_inline(v)}" for k, v in sorted(value.items())]
    elif isinstance(value, list | tuple) and all(not isinstance(v, dict | list) for v in value):
        lines = [_inline(value)]
    elif isinstance(value, list | tuple):
        lines = [_inline(v) for v in value]
    else:
        lines = [_inline(value)]
    if len(lines) > COMPACT_LINES:
        lines = [*lines[: COMPACT_LINES - 1], f"… {len(lines) - COMPACT_LINES + 1} more"]
    return lines


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|!{}()#~&$])")


# Characters that change how the text around them displays without showing themselves:
# bidirectional overrides and isolates (a reversed file name or user agent), zero-width ones.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def visible(value: Any) -> Any:
    """A log string with its invisible formatting characters shown as `<U+202E>`; other values
    (numbers, the reports' own markup) unchanged."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return _INVISIBLE.sub(lambda m: f"<U+{ord(m.group()):04X}>", value)
    return value


# What GitHub's and CommonMark renderers turn into links without any markup (GFM's extended
# autolinks): a scheme's colon after letters (`https:`, `mailto:`, `xmpp:`), the dot of `www.`,
# and an e-mail address. The first two are broken by a backslash escape (it renders as the
# character itself); cmark-gfm links an address even through escapes and entities, so an
# address is shown as code, which no renderer links.
_SCHEME_COLON = re.compile(r"(?<=[A-Za-z]):")
_WWW_DOT = re.compile(r"(?i)(?<![A-Za-z0-9])(www)\.")
# the whole run of address characters around an @, so that two addresses never make two
# adjacent code spans (which a renderer would read as one)
_EMAIL = re.compile(r"[A-Za-z0-9.+_@-]*@[A-Za-z0-9.+_@-]*\.[A-Za-z0-9.+_@-]*")
# At the start of a line these make a list item, a setext heading or an ordered list.
_BLOCK_START = re.compile(r"^([-+=]|[0-9]+[.)])")


def _md_text(text: str) -> str:
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = _SCHEME_COLON.sub(r"\\:", text)
    return _WWW_DOT.sub(r"\1\\.", text)


def md_escape(value: Any) -> str:
    """Any value as Markdown text on one line: special characters backslash-escaped, nothing
    a renderer would make a link (scheme colons and `www.` escaped, addresses as code)."""
    if value is None:
        return ""
    text = " ".join(str(visible(value)).split())
    parts: list[str] = []
    done = 0
    for found in _EMAIL.finditer(text):
        parts.append(_md_text(text[done : found.start()]))
        parts.append(f"`{found.group()}`")  # only [A-Za-z0-9.+_@-]: no backtick, no pipe
        done = found.end()
    parts.append(_md_text(text[done:]))
    escaped = "".join(parts)
    return _BLOCK_START.sub(lambda m: m.group()[:-1] + "\\" + m.group()[-1], escaped)


def _environment(**options: Any) -> jinja2.Environment:
    """The report templates with the shared filters; `options` say how values are escaped."""
    env = jinja2.Environment(  # noqa: S701 - both callers pass autoescape explicitly
        loader=jinja2.FileSystemLoader(str(shipped_dir("reports"))),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        **options,
    )
    env.filters.update(num=_num, usd=_usd, when=_when, pretty=_pretty, compact=_compact)
    env.globals["span"] = _span
    env.globals["duration"] = _duration
    return env


def markdown_environment() -> jinja2.Environment:
    """Markdown templates: every `{{ }}` output goes through md_escape, so a log string cannot
    become a link, an image, emphasis, HTML or a new table cell."""
    return _environment(
        autoescape=False,  # Markdown, escaped by finalize
        finalize=md_escape,
        keep_trailing_newline=True,
    )


def environment() -> jinja2.Environment:
    """HTML templates: autoescape on; invisible characters shown before escaping."""
    return _environment(autoescape=True, finalize=visible)


def svg(chart_json: str) -> Markup:
    """A Vega-Lite spec drawn as inline SVG, without namespace URLs."""
    import vl_convert

    drawn = vl_convert.vegalite_to_svg(chart_json)
    return Markup(_XMLNS.sub("", drawn))  # noqa: S704 - drawn by vl-convert from our own numbers


def timeline_chart(report: IncidentReport) -> Markup | None:
    """Requests per hour by endpoint above tokens per hour, on one time axis (UTC): each bar
    fills its hour, the findings' windows are shaded on both charts, revocations are marked,
    an hour without traffic is a zero (the line drops to it) and the y axes have headroom."""
    if not report.hourly:
        return None
    import altair as alt

    hour = dt.timedelta(hours=1)
    first = min(r["hour"] for r in report.hourly)
    last = max(r["hour"] for r in report.hourly)
    tokens_by_hour: dict[Any, int] = {}
    requests_by_hour: dict[Any, int] = {}
    for r in report.hourly:
        tokens_by_hour[r["hour"]] = tokens_by_hour.get(r["hour"], 0) + int(r["tokens"])
        requests_by_hour[r["hour"]] = requests_by_hour.get(r["hour"], 0) + int(r["requests"])
    every_hour = [first + hour * n for n in range(int((last - first) / hour) + 1)]
    x = alt.X(
        "start:T",
        title="hour (UTC)",
        scale=alt.Scale(type="utc", domain=[_iso(first), _iso(last + hour)]),
        axis=alt.Axis(format="%d %b %H:%M", labelOverlap="greedy", tickCount=8),
    )

    def headroom(peak: int) -> alt.Scale:
        return alt.Scale(domain=[0, max(1, peak) * 1.15], nice=False)

    shaded: list[Any] = []
    if report.windows:
        windows = _data(
            [
                {"start": _iso(max(w["start"], first)), "end": _iso(min(w["end"], last + hour))}
                for w in report.windows
            ]
        )
        shaded.append(
            alt.Chart(windows).mark_rect(opacity=0.15, color="#c0392b").encode(x=x, x2="end:T")
        )
    bars = (
        alt.Chart(
            _data(
                [
                    {
                        "start": _iso(r["hour"]),
                        "end": _iso(r["hour"] + hour),
                        "endpoint": r["endpoint"],
                        "requests": int(r["requests"]),
                    }
                    for r in report.hourly
                ]
            )
        )
        .mark_bar(binSpacing=1)
        .encode(
            x=x,
            x2="end:T",
            y=alt.Y(
                "sum(requests):Q",
                title="requests per hour",
                scale=headroom(max(requests_by_hour.values())),
            ),
            color=alt.Color("endpoint:N", title="endpoint"),
        )
    )
    layers: list[Any] = [*shaded, bars]
    if report.revocations:
        revoked = _data([{"start": _iso(v["revoked_at"])} for v in report.revocations])
        layers.append(alt.Chart(revoked).mark_rule(color="#000", strokeDash=[4, 3]).encode(x=x))
    requests = alt.layer(*layers).properties(width=760, height=200)
    line = (
        alt.Chart(
            _data(
                [
                    {"start": _iso(h + hour / 2), "tokens": tokens_by_hour.get(h, 0)}
                    for h in every_hour
                ]
            )
        )
        .mark_line(point=True, color="#555")
        .encode(
            x=x,
            y=alt.Y(
                "tokens:Q", title="tokens per hour", scale=headroom(max(tokens_by_hour.values()))
            ),
        )
    )
    tokens = alt.layer(*shaded, line).properties(width=760, height=120)
    return svg(alt.vconcat(requests, tokens).resolve_scale(x="shared").to_json())


def _data(values: list[dict[str, Any]]) -> Any:
    """Inline chart data (altair's Data is untyped)."""
    import altair as alt

    return alt.Data(values=values)  # type: ignore[no-untyped-call]


def _iso(value: Any) -> str:
    return value.astimezone(dt.UTC).isoformat() if isinstance(value, dt.datetime) else str(value)


def _render(name: str, out: Path, fmt: str, **values: Any) -> None:
    """Render reports/<name>.html.j2 (with the stylesheet and charts) or <name>.md.j2."""
    if fmt == "md":
        text = markdown_environment().get_template(f"{name}.md.j2").render(r=values["r"])
    else:
        css = (shipped_dir("reports") / "report.css").read_text(encoding="utf-8")
        text = (
            environment()
            .get_template(f"{name}.html.j2")
            .render(
                css=Markup(css),  # noqa: S704 - the shipped stylesheet, not log data
                **values,
            )
        )
    if str(out) == "-":  # `-o -`: the page on stdout
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    # Beside the target, then renamed over it: a report killed half-written never exists, so
    # a scheduled job cannot mail a truncated page.
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)


def render_incident(report: IncidentReport, out: Path, fmt: str = "html") -> None:
    """Write the incident report: one self-contained HTML file, or Markdown (`fmt="md"`)."""
    timeline = timeline_chart(report) if fmt == "html" else None
    _render("incident", out, fmt, r=report, timeline=timeline)


def render_index(index: BundleIndex, out: Path) -> None:
    """Write a bundle's index page (forensics/report/bundle.py)."""
    _render("bundle_index", out, "html", r=index)


TREND_MEASURES = (
    ("requests", "requests"),
    ("tokens", "tokens"),
    ("cost_usd", "estimated cost (USD)"),
    ("error_pct", "error share %"),
)


def trend_chart(report: WeeklyReport) -> Markup | None:
    """Small multiples by day of the period: requests, tokens, cost and error share, this
    period beside the previous one; a day without traffic is a zero, not a gap."""
    if not report.daily:
        return None
    import altair as alt

    days = max(int(d["day_no"]) for d in report.daily)
    found = {(d["period"], int(d["day_no"])): d for d in report.daily}
    periods = sorted({str(d["period"]) for d in report.daily}, reverse=True)  # this, previous
    values = []
    for period in periods:
        for day in range(1, days + 1):
            row = found.get((period, day))
            for key, label in TREND_MEASURES:
                values.append(
                    {
                        "day": day,
                        "period": period,
                        "measure": label,
                        "value": float(row[key] or 0) if row else 0.0,
                    }
                )
    chart = (
        alt.Chart(_data(values))
        .mark_line(point=True)
        .encode(
            x=alt.X("day:O", title="day of the period"),
            y=alt.Y("value:Q", title=None),
            color=alt.Color("period:N", title="period", sort=periods),
        )
        .properties(width=340, height=120)
        .facet(
            facet=alt.Facet("measure:N", title=None, sort=[label for _, label in TREND_MEASURES]),
            columns=2,
        )
        .resolve_scale(y="independent")
    )
    return svg(chart.to_json())


def render_weekly(report: WeeklyReport, out: Path, fmt: str = "html") -> None:
    """Write the weekly report: one self-contained HTML file, or Markdown (`fmt="md"`)."""
    trend = trend_chart(report) if fmt == "html" else None
    _render("weekly", out, fmt, r=report, trend=trend)
