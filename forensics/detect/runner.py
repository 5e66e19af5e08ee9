"""Running detectors on a case: findings, their sample requests, suppression, incidents.

A run has two phases.

1. Evaluate (forensics/detect/evaluation.py): each detector's SELECT runs on its own, outside
   any transaction, with its parameters bound, into the run's table `_run_new` (normalised to
   the findings columns by forensics/sql/normalise_findings.sql), two detectors at a time on
   two connections. DuckDB aborts a whole transaction on the first error, so this is what lets
   one broken detector fail alone: its error is recorded and the others still run. Nothing in
   the case changes here.
2. Write: one transaction inserts the `runs` row and one `run_detectors` row per detector (the
   version's title, description, runbook, severity rules, parameters and SQL as they ran, which
   reports and exports read instead of queries/ on disk), stores the findings with their costs
   and suppression (forensics/sql/store_findings.sql), marks the earlier findings of every
   detector that ran over the same scope superseded by this run, rebuilds `incidents` and closes
   the run. A crash leaves the whole run or none of it.

The connection is sandboxed first (`case.db.sandbox`: no file, network or extension for the
rest of its life) and each SELECT is refused before it runs if it calls what a detector may not
(`forensics.detect.guard`: files, environment, sequences, side effects). Its configuration is
locked (no setting either) once the detectors have run: until then the evaluation sets the
threads they share, and a detector, one SELECT, cannot set anything. A detector still running
after `timeout` seconds is interrupted (`interrupt()` of its connection, from a timer thread)
and recorded as failed; the run goes on with the next one.

Every run's findings are its own (the finding id hashes the run too); superseded findings stay
queryable with their run and are not counted by `findings`, `incidents` or the reports.
All work on findings is set-based SQL; Python loops only over detectors.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb

from forensics import sql
from forensics._version import __version__
from forensics.case.db import sandbox
from forensics.case.principals import present_types
from forensics.detect import features
from forensics.detect.evaluation import NEW, WORKERS, Evaluation, EvaluatorFactory
from forensics.detect.incidents import DEFAULT_GAP, build_incidents
from forensics.detect.model import Detector
from forensics.detect.params import bind
from forensics.errors import UsageError

MAX_REQUESTS_PER_FINDING = 50
DEFAULT_TIMEOUT = 300.0  # seconds a detector may run (`forensics detect --timeout`)

ProgressCallback = Callable[[str, float, int, str | None], None]
"""Called after each detector: (detector id, seconds, findings, error message or None)."""


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
    superseded: int = 0  # earlier findings this run superseded


@dataclass(frozen=True)
class Scope:
    """What a run reads: requests from `since` to `until` (None: unbounded), of one tenant."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    tenant: str | None = None

    def params(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "tenant": self.tenant}


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
    timeout: float | None = DEFAULT_TIMEOUT,
    workers: int = WORKERS,
    evaluator: EvaluatorFactory | None = None,
) -> RunResult:
    """Run `detectors` and store what they find as one run (see the module docstring).

    `overrides` maps detector id -> parameter -> value and beats the YAML defaults; `since`,
    `until` and `tenant` are the standard filters, bound to the detectors that use them.
    `timeout` is the seconds each detector may run (None: no limit); `workers` how many run at
    once. `evaluator` evaluates them on another engine (forensics/spark/), which the run's
    params name; by default DuckDB does. `con` is sandboxed for good: open another
    connection for anything that reads or writes files afterwards.
    """
    if timeout is not None and timeout <= 0:
        raise UsageError(f"a detector's time limit must be positive, not {timeout:g} seconds")
    ids = [d.id for d in detectors]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise UsageError(f"detector given more than once: {', '.join(repeated)}")
    overrides = overrides or {}
    scope = Scope(since, until, tenant)
    result = RunResult(run_id=uuid.uuid4().hex)
    started = dt.datetime.now(dt.UTC)
    bound: dict[str, dict[str, Any]] = {}
    # locked below, once the detectors have run: the evaluation sets the threads they share
    sandbox(con, lock=False)
    shared = features.used_by(t for d in detectors for t in d.tables)

    def params(detector: Detector) -> dict[str, Any]:
        bound[detector.id] = bind(detector, overrides.get(detector.id), **scope.params())
        return bound[detector.id]

    def on_duckdb(
        con: duckdb.DuckDBPyConnection, run_id: str, shared: list[str], scope: dict[str, Any]
    ) -> Evaluation:
        return Evaluation(con, run_id, shared, scope, workers)

    make = evaluator or on_duckdb
    try:
        with make(con, result.run_id, shared, scope.params()) as evaluation:
            result.features_seconds = evaluation.features_seconds
            for outcome in evaluation.run(detectors, params, timeout):
                result.seconds[outcome.detector_id] = outcome.seconds
                if outcome.error is not None:
                    result.errors[outcome.detector_id] = outcome.error
                if progress is not None:
                    progress(outcome.detector_id, outcome.seconds, outcome.rows, outcome.error)
            sandbox(con)
            result.status = "errors" if result.errors else "ok"
            _write(con, result, started, detectors, bound, scope, incident_gap, evaluation.engine)
    finally:
        sandbox(con)  # locked even when the run stops midway
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
    return result


def _json_default(value: Any) -> str:
    """Bound values JSON has no type for: times as ISO 8601, anything else as text."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _write(
    con: duckdb.DuckDBPyConnection,
    result: RunResult,
    started: dt.datetime,
    detectors: list[Detector],
    bound: dict[str, dict[str, Any]],
    scope: Scope,
    incident_gap: str | dt.timedelta,
    engine: str,
) -> None:
    """Phase 2: everything the run stores, in one transaction."""
    run = {"run": result.run_id}
    versions = {d.id: d.version for d in detectors}
    params = {"filters": scope.params(), "detectors": bound, "engine": engine}
    con.execute("BEGIN")
    try:
        con.execute(
            "INSERT INTO runs (run_id, started_at, tool_version, detectors, params, sources,"
            " status, since, until, tenant) SELECT $run, $started, $tool, $detectors, $params,"
            " coalesce((SELECT to_json(list({'source_id': source_id, 'sha256': sha256}"
            " ORDER BY source_id)) FROM sources), '[]'), 'running', $since, $until, $tenant",
            {
                **run,
                **scope.params(),
                "started": started,
                "tool": __version__,
                "detectors": json.dumps(versions, sort_keys=True),
                "params": json.dumps(params, sort_keys=True, default=_json_default),
            },
        )
        _store_detectors(con, result, detectors, bound)
        con.execute(
            sql.read("store_findings")
            .replace("/*suppression*/", sql.read("suppression"))
            .replace("/*types*/", present_types(con, NEW)),
            {**run, "max_samples": MAX_REQUESTS_PER_FINDING},
        )
        con.execute(
            "INSERT INTO finding_requests (finding_id, request_id)"
            " SELECT DISTINCT finding_id, request_id FROM (SELECT finding_id,"
            " unnest(sample_request_ids[1:$max_samples]) AS request_id"
            f" FROM {NEW}) WHERE request_id IS NOT NULL",
            {"max_samples": MAX_REQUESTS_PER_FINDING},
        )
        result.superseded = _supersede(con, result, detectors, scope)
        con.execute(
            "UPDATE run_detectors SET findings = n FROM (SELECT detector_id, count(*) AS n"
            " FROM findings WHERE run_id = $run GROUP BY ALL) c"
            " WHERE run_detectors.run_id = $run AND run_detectors.detector_id = c.detector_id",
            run,
        )
        build_incidents(con, incident_gap)
        con.execute(
            "UPDATE runs SET finished_at = $finished, status = $status, errors = $errors"
            " WHERE run_id = $run",
            {
                **run,
                "finished": dt.datetime.now(dt.UTC),
                "status": result.status,
                "errors": json.dumps(result.errors, sort_keys=True),
            },
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _store_detectors(
    con: duckdb.DuckDBPyConnection,
    result: RunResult,
    detectors: list[Detector],
    bound: dict[str, dict[str, Any]],
) -> None:
    """One `run_detectors` row per detector: the version as it ran, so the run describes itself."""
    if not detectors:
        return  # every selected detector had problems in its files: the run records none
    con.executemany(
        "INSERT INTO run_detectors (run_id, detector_id, version, title, description, runbook,"
        " severity, severity_bounds, principal_type, explains, params, sql, status, error,"
        " seconds, findings) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
        [
            [
                result.run_id,
                d.id,
                d.version,
                d.title,
                d.description,
                d.runbook,
                d.severity.name,
                [b.name for b in d.severity_bounds] if d.severity_bounds else None,
                d.principal_type,
                list(d.explains),
                json.dumps(bound.get(d.id, {}), sort_keys=True, default=_json_default),
                d.sql,
                "failed" if d.id in result.errors else "ok",
                result.errors.get(d.id),
                result.seconds.get(d.id),
            ]
            for d in detectors
        ],
    )


def _supersede(
    con: duckdb.DuckDBPyConnection, result: RunResult, detectors: list[Detector], scope: Scope
) -> int:
    """Mark the earlier current findings of each detector that ran (not failed) superseded
    when their window lies inside this run's scope, whatever the parameters were."""
    ran = [d.id for d in detectors if d.id not in result.errors]
    rows = con.execute(
        "UPDATE findings SET superseded_by = $run"
        " WHERE superseded_by IS NULL AND run_id <> $run AND list_contains($ran, detector_id)"
        " AND ($since IS NULL OR window_start >= $since)"
        " AND ($until IS NULL OR window_end <= $until)"
        " AND ($tenant IS NULL OR tenant_id = $tenant)",
        {"run": result.run_id, "ran": ran, **scope.params()},
    ).fetchall()
    return int(rows[0][0])
