"""Reading findings and incidents back out of a case, filtered, in a fixed column contract.

Every filter value is bound as a DuckDB named parameter; the SQL text is assembled only from
fixed fragments of this module. DuckDB refuses named parameters the query does not mention, so
a condition (and its parameter) is added only when its filter is given.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import duckdb

from forensics.case.severity import Severity

# The output contract of `forensics findings` (every format but ocsf).
FINDING_COLUMNS = (
    "finding_id",
    "detector_id",
    "severity",
    "score",
    "principal_type",
    "principal_id",
    "tenant_id",
    "window_start",
    "window_end",
    "summary",
    "evidence",
    "est_cost_usd",
    "provider_cost_usd",
    "suppressed",
    "suppressed_by",
    "run_id",
    "superseded_by",
    "triage_status",
)

INCIDENT_COLUMNS = (
    "incident_id",
    "principal_type",
    "principal_id",
    "tenant_id",
    "first_seen",
    "last_seen",
    "score",
    "severity",
    "detectors",
    "finding_ids",
    "est_cost_usd",
    "provider_cost_usd",
    "triage_status",
)


# `forensics runs`: one row per run, newest first. `params` holds each detector's bound values.
RUNS_QUERY = """
SELECT r.run_id, r.started_at, r.finished_at, r.status,
       r.since, r.until, r.tenant,
       (SELECT list(d.detector_id ORDER BY d.detector_id) FROM run_detectors d
        WHERE d.run_id = r.run_id) AS detectors,
       (SELECT count(*) FROM findings f WHERE f.run_id = r.run_id) AS findings,
       (SELECT count(*) FROM findings f
        WHERE f.run_id = r.run_id AND f.superseded_by IS NULL) AS current,
       json_extract(r.params, '$.detectors') AS params,
       r.errors
FROM runs r
ORDER BY r.started_at DESC, r.run_id
"""


@dataclass(frozen=True)
class Filters:
    """What to select: every field left at its default selects everything."""

    min_severity: Severity | None = None
    detectors: tuple[str, ...] = ()  # GLOB patterns on the detector id (any may match)
    tenant: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    include_suppressed: bool = False
    run: str | None = None  # one run's findings, superseded ones too (default: current findings)
    sort: str = "oldest"  # oldest | newest | severity | cost (SORTS)
    limit: int | None = None  # at most this many rows (None: all)


def _where(
    filters: Filters,
    *,
    start: str,
    end: str,
    detector_match: str,
    suppressed: bool,
    min_severity: Severity | None,
) -> tuple[str, dict[str, Any]]:
    conds: list[str] = []
    params: dict[str, Any] = {}
    if min_severity is not None:
        conds.append("severity >= CAST($min_severity AS severity)")  # the case's ordered ENUM
        params["min_severity"] = min_severity.name
    if filters.detectors:
        conds.append(detector_match)
        params["globs"] = list(filters.detectors)
    if filters.tenant is not None:
        conds.append("tenant_id = $tenant")
        params["tenant"] = filters.tenant
    if filters.since is not None:
        conds.append(f"{end} >= $since")
        params["since"] = filters.since
    if filters.until is not None:
        conds.append(f"{start} <= $until")
        params["until"] = filters.until
    if suppressed:
        conds.append("NOT coalesce(suppressed, false)")
    where = f"WHERE {' AND '.join(conds)}" if conds else ""
    return where, params


_FINDING_GLOB = "list_bool_or(list_transform($globs::VARCHAR[], lambda g: detector_id GLOB g))"
_INCIDENT_GLOB = (
    "list_bool_or(list_transform(detectors, lambda d:"
    " list_bool_or(list_transform($globs::VARCHAR[], lambda g: d GLOB g))))"
)


def _finding_where(
    filters: Filters, min_severity: Severity | None, *, unsuppressed_only: bool
) -> tuple[str, dict[str, Any]]:
    where, params = _where(
        filters,
        start="window_start",
        end="window_end",
        detector_match=_FINDING_GLOB,
        suppressed=unsuppressed_only or not filters.include_suppressed,
        min_severity=min_severity,
    )
    # a run's own findings when asked for, else the current ones (no later run superseded them)
    if filters.run is not None:
        cond, params["run"] = "run_id = $run", filters.run
    else:
        cond = "superseded_by IS NULL"
    where = f"{where} AND {cond}" if where else f"WHERE {cond}"
    return where, params


def _incident_where(filters: Filters, min_severity: Severity | None) -> tuple[str, dict[str, Any]]:
    # Incidents are built from unsuppressed findings only: there is nothing to exclude.
    return _where(
        filters,
        start="first_seen",
        end="last_seen",
        detector_match=_INCIDENT_GLOB,
        suppressed=False,
        min_severity=min_severity,
    )


# `--sort`: the ORDER BY of each list; `oldest` is the default (a timeline reads forwards)
SORTS = {
    "findings": {
        "oldest": "window_start, severity DESC NULLS LAST, finding_id",
        "newest": "window_end DESC, severity DESC NULLS LAST, finding_id",
        "severity": "severity DESC NULLS LAST, score DESC NULLS LAST, window_start, finding_id",
        "cost": "est_cost_usd DESC NULLS LAST, window_start, finding_id",
    },
    "incidents": {
        "oldest": "first_seen, severity DESC NULLS LAST, incident_id",
        "newest": "last_seen DESC, severity DESC NULLS LAST, incident_id",
        "severity": "severity DESC NULLS LAST, score DESC NULLS LAST, first_seen, incident_id",
        "cost": "est_cost_usd DESC NULLS LAST, first_seen, incident_id",
    },
}


def _tail(kind: str, filters: Filters) -> str:
    order = SORTS[kind][filters.sort]
    limit = f" LIMIT {int(filters.limit)}" if filters.limit else ""
    return f" ORDER BY {order}{limit}"


def findings_query(filters: Filters) -> tuple[str, dict[str, Any]]:
    """SELECT of the finding contract columns, filtered and ordered; with its parameters."""
    where, params = _finding_where(filters, filters.min_severity, unsuppressed_only=False)
    sql = (
        f"SELECT {', '.join(FINDING_COLUMNS)} FROM findings"
        f" LEFT JOIN finding_triage USING (finding_id) {where}" + _tail("findings", filters)
    )
    return sql, params


def findings_ocsf_query(filters: Filters) -> tuple[str, dict[str, Any]]:
    """As `findings_query`, plus `run_time`: when the run that produced the finding finished."""
    where, params = _finding_where(filters, filters.min_severity, unsuppressed_only=False)
    cols = ", ".join(f"f.{c}" for c in FINDING_COLUMNS)
    sql = (
        f"SELECT {cols}, coalesce(r.finished_at, r.started_at) AS run_time"
        " FROM (SELECT * FROM findings LEFT JOIN finding_triage USING (finding_id)"
        f" {where}) f LEFT JOIN runs r ON r.run_id = f.run_id"
        " ORDER BY f.window_start, f.severity DESC NULLS LAST,"
        " f.finding_id"
    )
    return sql, params


def incidents_query(filters: Filters) -> tuple[str, dict[str, Any]]:
    """SELECT of every incident column, filtered and ordered; with its parameters."""
    where, params = _incident_where(filters, filters.min_severity)
    sql = (
        f"SELECT {', '.join(INCIDENT_COLUMNS)} FROM incidents"
        f" LEFT JOIN incident_triage USING (incident_id) {where}" + _tail("incidents", filters)
    )
    return sql, params


def _threshold(filters: Filters, at_least: Severity) -> Severity:
    # Both the display filter and the threshold apply: the stricter one wins.
    if filters.min_severity is None:
        return at_least
    return max(filters.min_severity, at_least)


def count_findings_at_least(
    con: duckdb.DuckDBPyConnection, filters: Filters, at_least: Severity
) -> int:
    """Unsuppressed findings within `filters` whose severity reaches `at_least`."""
    where, params = _finding_where(filters, _threshold(filters, at_least), unsuppressed_only=True)
    row = con.execute(f"SELECT count(*) FROM findings {where}", params).fetchone()
    return int(row[0]) if row else 0


def count_incidents_at_least(
    con: duckdb.DuckDBPyConnection, filters: Filters, at_least: Severity
) -> int:
    """Incidents within `filters` whose severity reaches `at_least`."""
    where, params = _incident_where(filters, _threshold(filters, at_least))
    row = con.execute(f"SELECT count(*) FROM incidents {where}", params).fetchone()
    return int(row[0]) if row else 0
