"""The Python API, for notebooks: `forensics.open_case(path)` and the `Case` it returns.

A Case holds a read-only connection opened by `case.query.open_for_query`, sandboxed like that
of `forensics sql` (no file, network, extension or setting: see `case.db.sandbox`, which holds
for every connection to the same case file in this Python process), and every method runs one
statement through `case.query.run` (one read-only statement; DuckDB's errors as QueryError) and
returns a polars DataFrame. It defines nothing of its own: the requests of a
principal are the case's `principal_requests(type, id)` macro, findings and incidents are the
queries of `forensics findings` and `forensics incidents` (same columns, same order, current
findings only: none a later run superseded), so a notebook sees what the CLI and the reports
see. Times are read by `forensics.times`: datetimes, dates or ISO 8601 text, UTC without an
offset.

    with forensics.open_case("case.duckdb") as case:
        case.requests("tenant:acme-prod", since="2026-01-01", until="2026-01-02")
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import TracebackType
from typing import Any

import polars as pl

from forensics.case import query
from forensics.detect.model import PRINCIPAL_TYPES
from forensics.errors import UsageError
from forensics.findings import export
from forensics.times import coerce_time

Time = dt.date | str | None  # a datetime is a date too
REQUEST_PRINCIPALS = tuple(t for t in PRINCIPAL_TYPES if t != "provider_key")  # no gateway rows

REQUESTS_SQL = """
SELECT * FROM principal_requests($ptype, $pid)
WHERE ($since IS NULL OR ts >= $since) AND ($until IS NULL OR ts <= $until)
ORDER BY ts, source_id, line_no
"""


def open_case(path: str | Path) -> Case:
    """Open the case at `path` read-only (CaseError when there is none)."""
    return Case(path)


class Case:
    """A case opened read-only; each method returns a polars DataFrame."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._con = query.open_for_query(self.path)

    def sql(self, text: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        """Rows of one read-only statement, with `$name` parameters from `params`.

        Same rules as `forensics sql`: one SELECT (or FROM, WITH, VALUES, DESCRIBE, SHOW,
        SUMMARIZE, EXPLAIN SELECT); anything else raises UsageError before it runs.
        """
        return query.run(self._con, text, params)

    def requests(
        self, principal: str | tuple[str, str], since: Time = None, until: Time = None
    ) -> pl.DataFrame:
        """The requests of a principal, "TYPE:ID" or (type, id), between the times (both
        included), oldest first; every column of `requests`.

        Types: tenant, credential, user, ip (requests without a credential), asn, cidr
        ("203.0.113.0/24"). Only the type ends at the first colon: "credential:key:3f9a".
        """
        ptype, pid = _principal(principal)
        start, end = _window(since, until)
        params = {"ptype": ptype, "pid": pid, "since": start, "until": end}
        return query.run(self._con, REQUESTS_SQL, params)

    def findings(
        self,
        detector: str | None = None,
        tenant: str | None = None,
        since: Time = None,
        until: Time = None,
        include_suppressed: bool = False,
    ) -> pl.DataFrame:
        """Findings as `forensics findings` lists them: `detector` is an id or a glob
        ("credential.*"); a finding's window must overlap since..until."""
        start, end = _window(since, until)
        filters = export.Filters(
            detectors=(detector,) if detector else (),
            tenant=tenant,
            since=start,
            until=end,
            include_suppressed=include_suppressed,
        )
        sql, params = export.findings_query(filters)
        return query.run(self._con, sql, params or None)

    def incidents(
        self, tenant: str | None = None, since: Time = None, until: Time = None
    ) -> pl.DataFrame:
        """Incidents as `forensics incidents` lists them, overlapping since..until."""
        start, end = _window(since, until)
        filters = export.Filters(tenant=tenant, since=start, until=end)
        sql, params = export.incidents_query(filters)
        return query.run(self._con, sql, params or None)

    def close(self) -> None:
        """Close the connection; the Case cannot be used afterwards."""
        self._con.close()

    def __enter__(self) -> Case:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Case({str(self.path)!r})"


def _principal(principal: str | tuple[str, str]) -> tuple[str, str]:
    if isinstance(principal, str):
        ptype, sep, pid = principal.partition(":")
        if not sep:  # the text itself is not repeated: it may be a key pasted by mistake
            raise UsageError("a principal is TYPE:ID", hint="e.g. tenant:acme or ip:192.0.2.7")
    else:
        ptype, pid = principal
    if ptype not in REQUEST_PRINCIPALS:
        raise UsageError(
            f"no requests for principal type {ptype!r}",
            hint=f"use {', '.join(REQUEST_PRINCIPALS)} (a provider key's use is in `usage`)",
        )
    return ptype, str(pid)


def _window(since: Time, until: Time) -> tuple[dt.datetime | None, dt.datetime | None]:
    start, end = _time(since, "since"), _time(until, "until")
    if start is not None and end is not None and start > end:
        raise UsageError(f"since {start.isoformat()} is after until {end.isoformat()}")
    return start, end


def _time(value: Time, name: str) -> dt.datetime | None:
    return None if value is None else coerce_time(value, name)
