"""Evidence coverage of a period: what the logs in the case can and cannot speak for.

A report that finds nothing is worth something only where there was evidence to look at. For
a period [start, end) this says, in sentences a reader acts on:

- the period has no request at all (also a future or mistyped week): nothing was analysed;
- the period reaches before the case's first request or past its last one: the hours outside
  the case's span have no evidence from any log (the one-day sample in a seven-day week);
- a log format is silent for a span its own rhythm makes unlikely (forensics/sql/
  evidence_coverage.sql: a log that stops two days before the end while others go on, a
  weekday afternoon gone quiet; not the quiet weekend of a source that is always quiet then).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import duckdb

from forensics import sql
from forensics.case.rows import Row, query_rows

_HOUR = dt.timedelta(hours=1)  # less than a whole hour outside the case is no gap


@dataclass
class EvidenceCoverage:
    start: dt.datetime
    end: dt.datetime
    requests: int = 0  # requests in the period
    case_first: dt.datetime | None = None  # the case's first and last request, any format
    case_last: dt.datetime | None = None
    formats: list[Row] = field(default_factory=list)  # format, requests, first_ts, last_ts
    gaps: list[Row] = field(default_factory=list)  # silent spans, see evidence_coverage.sql

    @property
    def begins_late(self) -> bool:
        """The case's first request is a whole hour or more into the period."""
        return self.case_first is not None and self.case_first >= self.start + _HOUR

    @property
    def ends_early(self) -> bool:
        """The case's last request is a whole hour or more before the period's end."""
        return self.case_last is not None and self.case_last < self.end - _HOUR

    @property
    def empty(self) -> bool:
        """No request in the period: nothing in it was analysed."""
        return self.requests == 0

    def lines(self) -> list[str]:
        """The period-level sentences (empty period, case span), then one per silent span."""
        out: list[str] = []
        if self.case_first is None or self.case_last is None:
            return ["the case has no requests: this period cannot be judged on gateway logs"]
        if self.empty:
            out.append(
                "no request in this period: nothing in it was analysed (the case holds requests"
                f" from {_at(self.case_first)} to {_at(self.case_last)})"
            )
            return out
        begins, ends = self.begins_late, self.ends_early
        length = _hours(self.end - self.start)
        if begins and ends:
            out.append(
                f"the case covers {_hours(self.case_last - self.case_first)} of this"
                f" period of {length}, from {_at(self.case_first)} to {_at(self.case_last)}:"
                " outside that no log speaks for it"
            )
        elif begins:
            out.append(
                f"the case covers {_hours(self.end - self.case_first)} of this period of"
                f" {length}: it begins on {_at(self.case_first)}, and the first"
                f" {_hours(self.case_first - self.start)} have no evidence from any log"
            )
        elif ends:
            out.append(
                f"the case covers {_hours(self.case_last - self.start)} of this period of"
                f" {length}: it ends on {_at(self.case_last)}, and the last"
                f" {_hours(self.end - self.case_last)} have no evidence from any log"
            )
        out.extend(gap_line(g) for g in self.gaps)
        return out


def gap_line(g: Row) -> str:
    """'kong: no records from Sat 28 Nov 2026 00:00 UTC to the end of the period (2 days)'."""
    until = "the end of the case" if g["case_ends_early"] else "the end of the period"
    since = "the start of the case" if g["case_begins_late"] else "the start of the period"
    if g["from_start"] and g["to_end"]:
        clipped = g["case_ends_early"] or g["case_begins_late"]
        span = "in the whole period" + (" the case covers" if clipped else "")
    elif g["from_start"]:
        span = f"from {since} until {_at(g['gap_end'])}"
    elif g["to_end"]:
        span = f"from {_at(g['gap_start'])} to {until}"
    else:
        span = f"from {_at(g['gap_start'])} until {_at(g['gap_end'])}"
    line = f"{g['format']}: no records {span} ({_hours(g['gap_end'] - g['gap_start'])})"
    if g.get("unknown_rhythm"):
        kind = g["unknown_rhythm"]
        line += f" (judged by its other hours: the case holds no {kind} of it to learn from)"
    return line


def evidence_coverage(
    con: duckdb.DuckDBPyConnection, start: dt.datetime, end: dt.datetime
) -> EvidenceCoverage:
    p: dict[str, Any] = {"start": start, "end": end}
    coverage = EvidenceCoverage(start, end)
    first, last = con.execute("SELECT min(ts), max(ts) FROM requests").fetchall()[0]
    coverage.case_first, coverage.case_last = first, last
    coverage.formats = query_rows(
        con,
        """
        SELECT s.format, count(*) AS requests, min(r.ts) AS first_ts, max(r.ts) AS last_ts
        FROM requests r JOIN sources s USING (source_id)
        WHERE r.ts >= $start AND r.ts < $end
        GROUP BY ALL ORDER BY requests DESC, s.format
        """,
        p,
    )
    coverage.requests = sum(int(f["requests"]) for f in coverage.formats)
    if coverage.requests:
        coverage.gaps = query_rows(con, sql.read("evidence_coverage"), p)
        for g in coverage.gaps:
            g["case_ends_early"] = coverage.ends_early
            g["case_begins_late"] = coverage.begins_late
    return coverage


def _at(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%a %d %b %Y %H:%M UTC")


def _hours(span: dt.timedelta) -> str:
    """'6 h', '1 day', '2 days 4 h' (whole hours, rounded)."""
    hours = round(span.total_seconds() / 3600)
    if hours < 24:
        return f"{hours} h"
    days, rest = divmod(hours, 24)
    return f"{days} day{'s' if days != 1 else ''}" + (f" {rest} h" if rest else "")
