"""Running detectors on a case: findings, their sample requests, suppression, incidents.

A run has two phases.

1. Evaluate: each detector's SELECT runs on its own, outside any transaction, with its
   parameters bound, into the temp table `_run_new` (normalised to the findings columns). DuckDB
   aborts a whole transaction on the first error, so this is what lets one broken detector fail
   alone: its error is recorded and the others still run. Nothing in the case changes here.
2. Write: one transaction inserts the `runs` row, replaces the findings with the same ids (and
   their `finding_requests`), marks allowlisted findings suppressed, rebuilds `incidents` and
   closes the run. A crash leaves the whole run or none of it.

All work on findings is set-based SQL; Python loops only over detectors.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb

from forensics import __version__
from forensics.case.fingerprints import redact
from forensics.detect import features
from forensics.detect.incidents import DEFAULT_GAP, build_incidents
from forensics.detect.model import Detector, Severity
from forensics.detect.params import CONTRACT_COLUMNS, bind
from forensics.errors import UsageError

MAX_REQUESTS_PER_FINDING = 50
SEVERITY_NAMES = [s.name for s in sorted(Severity)]  # list index (1-based) = Severity value

ProgressCallback = Callable[[str, float, int, str | None], None]
"""Called after each detector: (detector id, seconds, findings, error message or None)."""

_NEW = "_run_new"  # every detector's findings of this run, normalised
_NEW_COLUMNS = """
    finding_id VARCHAR, detector_id VARCHAR, detector_version VARCHAR, severity VARCHAR,
    score DOUBLE, principal_type VARCHAR, principal_id VARCHAR, tenant_id VARCHAR,
    window_start TIMESTAMPTZ, window_end TIMESTAMPTZ, summary VARCHAR, evidence JSON,
    est_cost_usd DOUBLE, sample_request_ids VARCHAR[]"""
_FINDING_COLUMNS = (
    "finding_id, detector_id, detector_version, run_id, severity, score, principal_type,"
    " principal_id, tenant_id, window_start, window_end, summary, evidence, est_cost_usd,"
    " suppressed, suppressed_by"
)


@dataclass
class RunResult:
    """What a run did, per detector; `errors` holds the detectors that failed."""

    run_id: str
    status: str = "ok"  # ok | errors
    findings: dict[str, int] = field(default_factory=dict)
    suppressed: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    features_seconds: float = 0.0  # building the shared features the detectors read


class _DetectorFailure(Exception):
    """A detector that cannot run; the message already names its file."""


def run_detectors(
    con: duckdb.DuckDBPyConnection,
    detectors: list[Detector],
    *,
    overrides: dict[str, dict[str, Any]] | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    tenant: str | None = None,
    progress: ProgressCallback | None = None,
    incident_gap: str | dt.timedelta = DEFAULT_GAP,
) -> RunResult:
    """Run `detectors` and store what they find as one run (see the module docstring).

    `overrides` maps detector id -> parameter -> value and beats the YAML defaults; `since`,
    `until` and `tenant` are the standard filters, bound to the detectors that use them.
    """
    ids = [d.id for d in detectors]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise UsageError(f"detector given more than once: {', '.join(repeated)}")
    overrides = overrides or {}
    result = RunResult(run_id=uuid.uuid4().hex)
    started = dt.datetime.now(dt.UTC)
    versions: dict[str, str] = {}
    bound: dict[str, dict[str, Any]] = {}
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_NEW} ({_NEW_COLUMNS})")
    shared = features.used_by(t for d in detectors for t in d.tables)
    try:
        clock = time.monotonic()
        features.materialize(con, shared, {"since": since, "until": until, "tenant": tenant})
        result.features_seconds = time.monotonic() - clock
        for detector in detectors:
            clock = time.monotonic()
            rows, error = 0, None
            try:
                versions[detector.id] = detector.version
                params = bind(
                    detector, overrides.get(detector.id), since=since, until=until, tenant=tenant
                )
                bound[detector.id] = params
                rows = _evaluate(con, detector, versions[detector.id], params)
            except duckdb.Error as e:
                error = f"{detector.sql_path}: {_first_line(e)}"
            except OSError as e:
                error = f"{e.filename or detector.sql_path}: {e.strerror or e}"
            except _DetectorFailure as e:
                error = str(e)
            seconds = time.monotonic() - clock
            result.seconds[detector.id] = seconds
            if error is not None:
                error = redact(error)  # DuckDB may quote a value from the logs
                result.errors[detector.id] = error
            if progress is not None:
                progress(detector.id, seconds, rows, error)
        result.status = "errors" if result.errors else "ok"
        _write(con, result, started, versions, bound, since, until, tenant, incident_gap)
        for detector_id, total, hidden in con.execute(
            "SELECT detector_id, count(*), count(*) FILTER (WHERE suppressed) FROM findings"
            " WHERE run_id = $run GROUP BY detector_id",
            {"run": result.run_id},
        ).fetchall():
            result.findings[detector_id] = int(total)
            result.suppressed[detector_id] = int(hidden)
        for detector in detectors:
            if detector.id not in result.errors:
                result.findings.setdefault(detector.id, 0)
                result.suppressed.setdefault(detector.id, 0)
    finally:
        features.drop(con, shared)
        con.execute(f"DROP TABLE IF EXISTS {_NEW}")
    return result


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _evaluate(
    con: duckdb.DuckDBPyConnection, detector: Detector, version: str, params: dict[str, Any]
) -> int:
    """Run one detector and append its normalised findings to `_run_new`.

    The SELECT is bound once to learn its column types (DESCRIBE), then runs inside the one
    INSERT that normalises its rows: no intermediate table per detector.
    """
    statements = con.extract_statements(detector.sql)
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        kinds = ", ".join(s.type.name for s in statements) or "nothing"
        raise _DetectorFailure(
            f"{detector.sql_path}: must be exactly one SELECT statement, found {kinds}"
        )
    query = statements[0].query
    types = {str(r[0]): str(r[1]) for r in con.execute(f"DESCRIBE {query}", params).fetchall()}
    missing = [c for c in CONTRACT_COLUMNS if c not in types]
    if missing:
        raise _DetectorFailure(
            f"{detector.sql_path}: the SELECT lacks contract columns: {', '.join(missing)}"
        )
    names = "[" + ", ".join(f"'{name}'" for name in SEVERITY_NAMES) + "]"
    values: dict[str, Any] = {
        "_run_detector_id": detector.id,
        "_run_version": version,
        "_run_principal_type": detector.principal_type,
        "_run_severity": detector.severity.name,
    }
    if "severity" in types and detector.severity_bounds is not None:
        # a computed severity moves within the bounds; an unknown one falls back to the YAML's
        position = f"list_position({names}, lower(trim(CAST(severity AS VARCHAR))))"
        severity = (
            f"CASE WHEN {position} IS NULL THEN $_run_severity"
            f" ELSE {names}[greatest($_run_low, least($_run_high, {position}))] END"
        )
        values["_run_low"], values["_run_high"] = (int(b) for b in detector.severity_bounds)
    else:
        severity = "$_run_severity"  # without bounds the YAML severity holds
    if types["evidence"] == "JSON":
        evidence = "evidence"
    elif types["evidence"] == "VARCHAR":
        evidence = (
            "CASE WHEN json_valid(evidence) THEN CAST(evidence AS JSON) ELSE to_json(evidence) END"
        )
    else:
        evidence = "to_json(evidence)"
    cost = "CAST(est_cost_usd AS DOUBLE)" if "est_cost_usd" in types else "CAST(NULL AS DOUBLE)"
    inserted = con.execute(
        f"""
        INSERT INTO {_NEW}
        SELECT finding_id, $_run_detector_id, $_run_version, severity, score, principal_type,
               principal_id, tenant_id, window_start, window_end, summary, evidence,
               est_cost_usd, sample_request_ids
        FROM (
            SELECT *, left(sha256(concat_ws('|', $_run_detector_id, coalesce(principal_type, ''),
                       coalesce(principal_id, ''), {_iso("window_start")}, {_iso("window_end")})),
                       32) AS finding_id
            FROM (
                SELECT coalesce(CAST(principal_type AS VARCHAR), $_run_principal_type)
                           AS principal_type,
                       CAST(principal_id AS VARCHAR) AS principal_id,
                       CAST(tenant_id AS VARCHAR) AS tenant_id,
                       CAST(window_start AS TIMESTAMPTZ) AS window_start,
                       CAST(window_end AS TIMESTAMPTZ) AS window_end,
                       least(100, greatest(0, CAST(score AS DOUBLE))) AS score,
                       CAST(summary AS VARCHAR) AS summary,
                       {evidence} AS evidence,
                       {cost} AS est_cost_usd,
                       {severity} AS severity,
                       coalesce(CAST(sample_request_ids AS VARCHAR[]), []) AS sample_request_ids
                FROM (
{query}
                )
            )
        )
        -- two rows for one principal and window are one finding: keep the highest score
        QUALIFY row_number() OVER (
            PARTITION BY finding_id ORDER BY score DESC NULLS LAST, summary) = 1
        """,
        {**params, **values},
    ).fetchall()
    return int(inserted[0][0])


def _iso(column: str) -> str:
    """SQL: a TIMESTAMPTZ column as an ISO 8601 UTC string with microseconds ('' when NULL)."""
    return f"coalesce(strftime(timezone('UTC', {column}), '%Y-%m-%dT%H:%M:%S.%fZ'), '')"


def _json_default(value: Any) -> str:
    """Bound values JSON has no type for: times as ISO 8601, anything else as text."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _write(
    con: duckdb.DuckDBPyConnection,
    result: RunResult,
    started: dt.datetime,
    versions: dict[str, str],
    bound: dict[str, dict[str, Any]],
    since: dt.datetime | None,
    until: dt.datetime | None,
    tenant: str | None,
    incident_gap: str | dt.timedelta,
) -> None:
    """Phase 2: everything the run stores, in one transaction."""
    params = {"filters": {"since": since, "until": until, "tenant": tenant}, "detectors": bound}
    con.execute("BEGIN")
    try:
        con.execute(
            "INSERT INTO runs (run_id, started_at, tool_version, detectors, params, sources,"
            " status) SELECT $run, $started, $tool, $detectors, $params,"
            " coalesce((SELECT to_json(list({'source_id': source_id, 'sha256': sha256}"
            " ORDER BY source_id)) FROM sources), '[]'), 'running'",
            {
                "run": result.run_id,
                "started": started,
                "tool": __version__,
                "detectors": json.dumps(versions, sort_keys=True),
                "params": json.dumps(params, sort_keys=True, default=_json_default),
            },
        )
        con.execute(
            f"DELETE FROM finding_requests WHERE finding_id IN (SELECT finding_id FROM {_NEW})"
        )
        con.execute(f"DELETE FROM findings WHERE finding_id IN (SELECT finding_id FROM {_NEW})")
        con.execute(
            f"INSERT INTO findings ({_FINDING_COLUMNS})"
            " SELECT n.finding_id, n.detector_id, n.detector_version, $run, n.severity, n.score,"
            " n.principal_type, n.principal_id, n.tenant_id, n.window_start, n.window_end,"
            " n.summary, n.evidence, n.est_cost_usd, m.finding_id IS NOT NULL, m.suppressed_by"
            f" FROM {_NEW} n LEFT JOIN ({SUPPRESSION_SQL}) m USING (finding_id)",
            {"run": result.run_id},
        )
        con.execute(
            "INSERT INTO finding_requests (finding_id, request_id)"
            " SELECT DISTINCT finding_id, request_id FROM (SELECT finding_id,"
            f" unnest(sample_request_ids[1:{MAX_REQUESTS_PER_FINDING}]) AS request_id"
            f" FROM {_NEW}) WHERE request_id IS NOT NULL"
        )
        build_incidents(con, incident_gap)
        con.execute(
            "UPDATE runs SET finished_at = $finished, status = $status, errors = $errors"
            " WHERE run_id = $run",
            {
                "run": result.run_id,
                "finished": dt.datetime.now(dt.UTC),
                "status": result.status,
                "errors": json.dumps(result.errors, sort_keys=True),
            },
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _cidr_bits(text: str) -> str:
    """SQL: prefix length of a CIDR (or 128 for a bare address) in IPv4-mapped-IPv6 terms."""
    address = f"split_part({text}, '/', 1)"
    v4 = f"regexp_full_match({address}, '[0-9]{{1,3}}(\\.[0-9]{{1,3}}){{3}}')"
    return (
        f"CASE WHEN NOT contains({text}, '/') THEN 128"
        f" ELSE TRY_CAST(split_part({text}, '/', 2) AS INTEGER) + CASE WHEN {v4} THEN 96 ELSE 0"
        " END END"
    )


def _top_bits(number: str, bits: str) -> str:
    """SQL: the top `bits` bits of a 128-bit address number."""
    return f"({number} >> CAST(128 - {bits} AS UHUGEINT))"


_INSIDE_CIDR = (
    # finding address/prefix f_net/f_bits lies inside allowlist block a_net/a_bits
    "a_bits BETWEEN 0 AND 128 AND f_bits BETWEEN a_bits AND 128"
    f" AND (a_bits = 0 OR {_top_bits('f_net', 'a_bits')} = {_top_bits('a_net', 'a_bits')})"
)

SUPPRESSION_SQL = f"""
    WITH allow AS (
        SELECT kind, value, coalesce(detectors, []) AS detectors, source_id, line_no,
               'allowlist ' || coalesce(CAST(source_id AS VARCHAR), '?') || ':'
                   || coalesce(CAST(line_no AS VARCHAR), '?') || ' ' || kind || '=' || value
                   || ': ' || coalesce(reason, '') AS label
        FROM allowlist
        WHERE expires IS NULL OR expires > now()
    ),
    nets AS (
        SELECT *, ip_num(split_part(value, '/', 1)) AS a_net, {_cidr_bits("value")} AS a_bits
        FROM allow WHERE kind = 'cidr'
    ),
    addressed AS (
        SELECT finding_id, detector_id, ip_num(split_part(principal_id, '/', 1)) AS f_net,
               {_cidr_bits("principal_id")} AS f_bits
        FROM {_NEW} WHERE principal_type IN ('ip', 'cidr')
    ),
    agents AS (
        SELECT DISTINCT s.finding_id, s.detector_id, r.user_agent
        FROM (SELECT finding_id, detector_id,
                     unnest(sample_request_ids[1:{MAX_REQUESTS_PER_FINDING}]) AS request_id
              FROM {_NEW}) s
        JOIN requests r USING (request_id)
        WHERE r.user_agent IS NOT NULL
    ),
    hits AS (
        SELECT n.finding_id, n.detector_id, a.* FROM {_NEW} n
        JOIN allow a ON a.kind = 'tenant' AND a.value = n.tenant_id
        UNION ALL
        SELECT n.finding_id, n.detector_id, a.* FROM {_NEW} n
        JOIN allow a ON a.kind = 'tenant' AND n.principal_type = 'tenant'
            AND a.value = n.principal_id
        UNION ALL
        SELECT n.finding_id, n.detector_id, a.* FROM {_NEW} n
        JOIN allow a ON a.kind = 'credential' AND n.principal_type = 'credential'
            AND a.value = n.principal_id
        UNION ALL
        SELECT n.finding_id, n.detector_id, a.* FROM {_NEW} n
        JOIN allow a ON a.kind = 'asn' AND n.principal_type = 'asn'
            AND a.value = regexp_replace(upper(n.principal_id), '^AS', '')
        UNION ALL
        SELECT n.finding_id, n.detector_id, a.* FROM {_NEW} n
        JOIN allow a ON a.kind = 'ip' AND n.principal_type = 'ip'
            AND (ip_num(a.value) = ip_num(n.principal_id) OR a.value = lower(n.principal_id))
        UNION ALL
        SELECT f.finding_id, f.detector_id, a.* EXCLUDE (a_net, a_bits) FROM addressed f
        JOIN nets a ON {_INSIDE_CIDR}
        UNION ALL
        SELECT u.finding_id, u.detector_id, a.* FROM agents u
        JOIN allow a ON a.kind = 'user_agent' AND contains(u.user_agent, a.value)
    )
    SELECT finding_id, first(label ORDER BY source_id, line_no, kind, value) AS suppressed_by
    FROM hits
    WHERE len(detectors) = 0
       OR EXISTS (SELECT 1 FROM unnest(detectors) AS g(pattern) WHERE detector_id GLOB g.pattern)
    GROUP BY finding_id
"""
"""SQL: (finding_id, suppressed_by) for each finding of `_run_new` an allowlist row applies
to: not expired, its detector globs (none = all) match, and its kind matches the finding. The
first matching row by file and line is named, as `allowlist <source>:<line> <kind>=<value>:
<reason>`."""
