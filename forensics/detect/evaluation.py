"""Phase 1 of a run: every detector's SELECT evaluated into the run's new findings.

A run attaches an in-memory database of its own (`Evaluation`): the shared features
(forensics/detect/features.py) are materialised there once, and the normalised findings of
every detector go to its table `_run_new`. Detectors then run side by side on `workers`
connections to the case (`case.db.session`), each with TEMP views of the features and of
`_run_new`, and DuckDB's threads divided among them (`_SharedCores`): one DuckDB query seldom
keeps every core busy (sorts, window partitions, small pipelines, planning), and two in flight
on all the threads each are more threads than cores. Unless the features crowd DuckDB's memory
(`CROWDED`): then one at a time, on all the threads. Each detector runs outside any
transaction, so one that fails (a DuckDB error, its time limit, a refused call) fails alone;
Ctrl-C interrupts all of them and stops the run. Nothing in the case changes here.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Protocol

import duckdb

from forensics import sql
from forensics.case.db import is_locked, session
from forensics.case.fingerprints import redact
from forensics.case.severity import NAMES as SEVERITY_NAMES
from forensics.detect import features
from forensics.detect.guard import Deadline, Guard, statement
from forensics.detect.model import Detector
from forensics.detect.params import CONTRACT_COLUMNS
from forensics.errors import describe_duckdb_error

NEW = "_run_new"  # every detector's findings of this run, normalised
NEW_COLUMNS = """
    finding_id VARCHAR, detector_id VARCHAR, detector_version VARCHAR, severity VARCHAR,
    score DOUBLE, principal_type VARCHAR, principal_id VARCHAR, tenant_id VARCHAR,
    window_start TIMESTAMPTZ, window_end TIMESTAMPTZ, summary VARCHAR, evidence JSON,
    claimed_cost_usd DOUBLE, sample_request_ids VARCHAR[]"""
WORKERS = 2  # connections evaluating detectors side by side
# ... unless the materialised features take more than this share of DuckDB's memory limit:
# then two detectors' working sets no longer fit beside them, and two at a time spill and run
# slower than one after the other (50M requests in a lake at a 4 GB limit, features 3.6 GiB:
# the pack took 176.9 s two at a time, 142.8 s one at a time; at 1M two at a time is faster)
CROWDED = 0.25


class Evaluator(Protocol):
    """Phase 1 of a run on some engine: a context manager whose `run` evaluates detectors
    into the run's `_run_new` on the case connection (`Evaluation`: DuckDB itself;
    forensics/spark/evaluation.py: Spark)."""

    engine: str  # what the run's params record
    features_seconds: float

    def __enter__(self) -> Evaluator: ...

    def __exit__(self, *exc: object) -> None: ...

    def run(
        self,
        detectors: list[Detector],
        params: Callable[[Detector], dict[str, Any]],
        timeout: float | None,
    ) -> Iterator[Outcome]: ...


EvaluatorFactory = Callable[[duckdb.DuckDBPyConnection, str, list[str], dict[str, Any]], Evaluator]
"""(case connection, run id, shared features the detectors use, scope params) -> Evaluator"""


class DetectorFailure(Exception):
    """A detector that cannot run; the message already names its file."""


@dataclass(frozen=True)
class Outcome:
    """One detector's evaluation: findings added, seconds, or why it failed."""

    detector_id: str
    seconds: float
    rows: int
    error: str | None


class Evaluation:
    """The scratch database of one run and the connections that evaluate its detectors.

    Used as a context manager on a sandboxed case connection `con`: on entry the scratch
    database is attached, `_run_new` made and `shared` features materialised, and `con` sees
    them as TEMP views (phase 2 reads `_run_new` there); on exit the views, the extra
    connections and the scratch database are gone.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        run_id: str,
        shared: list[str],
        scope: dict[str, Any],
        workers: int = WORKERS,
    ) -> None:
        self.con = con
        self.scratch = f"forensics_run_{run_id[:16]}"
        self.run_id = run_id
        self.shared = shared
        self.scope = scope
        self.workers = max(1, workers)
        self.engine = "duckdb"
        self.features_seconds = 0.0
        self._sessions: list[duckdb.DuckDBPyConnection] = []
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Future[Outcome]] = []
        self._cores: _SharedCores | None = None

    def __enter__(self) -> Evaluation:
        self.con.execute(f"ATTACH ':memory:' AS {self.scratch}")
        try:
            self.con.execute(f"CREATE TABLE {self.scratch}.{NEW} ({NEW_COLUMNS})")
            clock = time.monotonic()
            features.materialize(self.con, self.shared, self.scope, self.scratch)
            self.features_seconds = time.monotonic() - clock
            if features.share_of_memory(self.con) > CROWDED:
                self.workers = 1
            self._expose(self.con)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _expose(self, con: duckdb.DuckDBPyConnection) -> None:
        features.expose(con, self.shared, self.scratch)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {NEW} AS SELECT * FROM {self.scratch}.{NEW}")

    def __exit__(self, *exc: object) -> None:
        self._stop()
        for other in self._sessions:
            other.close()
        self._sessions = []
        features.drop(self.con, self.shared)
        self.con.execute(f"DROP VIEW IF EXISTS temp.{NEW}")
        self.con.execute(f"DETACH DATABASE IF EXISTS {self.scratch}")

    def run(
        self,
        detectors: list[Detector],
        params: Callable[[Detector], dict[str, Any]],
        timeout: float | None,
    ) -> Iterator[Outcome]:
        """Evaluate `detectors` (bound by `params`), yielding each outcome as it completes."""
        guard = Guard(self.con)
        if self.workers == 1 or len(detectors) < 2:
            for detector in detectors:
                yield self._one(self.con, guard, detector, params, timeout)
            return
        while len(self._sessions) < self.workers - 1:
            other = session(self.con)
            self._sessions.append(other)
            self._expose(other)
        free: queue.SimpleQueue[tuple[duckdb.DuckDBPyConnection, Guard]] = queue.SimpleQueue()
        for con in [self.con, *self._sessions]:
            free.put((con, Guard(con, like=guard)))
        cores = _SharedCores(self.con, self.workers, len(detectors))

        def task(detector: Detector) -> Outcome:
            con, its_guard = free.get()
            cores.started()
            try:
                return self._one(con, its_guard, detector, params, timeout)
            finally:
                cores.finished(con)
                free.put((con, its_guard))

        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="detector")
        self._cores = cores.divide()
        self._futures = [self._pool.submit(task, d) for d in detectors]
        for done in as_completed(self._futures):
            yield done.result()
        cores.restore()  # every worker is idle (else `_stop` restores them once they are)

    def _stop(self) -> None:
        """Stop the detectors still queued or running (Ctrl-C, or a failure of the run) and
        wait for the workers, before their connections are closed."""
        if self._pool is None:
            return
        for future in self._futures:
            future.cancel()
        if not all(future.done() for future in self._futures):
            for con in [self.con, *self._sessions]:
                con.interrupt()
        self._pool.shutdown(wait=True)
        self._pool, self._futures = None, []
        if self._cores is not None:
            self._cores.restore()
            self._cores = None

    def _one(
        self,
        con: duckdb.DuckDBPyConnection,
        guard: Guard,
        detector: Detector,
        params: Callable[[Detector], dict[str, Any]],
        timeout: float | None,
    ) -> Outcome:
        clock = time.monotonic()
        rows, error = 0, None
        deadline = Deadline(con, timeout)
        try:
            bound = params(detector)
            with deadline:
                rows = evaluate(con, guard, detector, self.run_id, bound, f"{self.scratch}.{NEW}")
        except duckdb.InterruptException:
            if not deadline.expired:
                raise  # not the time limit (Ctrl-C): the run stops
            error = time_limit_passed(detector, timeout)
        except duckdb.Error as e:
            error = describe_duckdb_error(e, str(detector.sql_path))
        except OSError as e:
            error = f"{e.filename or detector.sql_path}: {e.strerror or e}"
        except DetectorFailure as e:
            error = str(e)
        if error is not None:
            error = redact(error)  # DuckDB may quote a value from the logs
        return Outcome(detector.id, time.monotonic() - clock, rows, error)


def time_limit_passed(detector: Detector, timeout: float | None) -> str:
    """The error of a detector stopped at its time limit (whatever the engine)."""
    return (
        f"{detector.sql_path}: stopped after {timeout or 0:g} s, its time limit"
        " (raise it with --timeout SECONDS)"
    )


def evaluate(
    con: duckdb.DuckDBPyConnection,
    guard: Guard,
    detector: Detector,
    run_id: str,
    params: dict[str, Any],
    into: str,
) -> int:
    """Run one detector and append its normalised findings to the table `into`."""
    return insert_normalised(con, detector, judged(guard, detector), run_id, params, into)


def judged(guard: Guard, detector: Detector) -> str:
    """The detector's SELECT, once the guard has judged the calls it makes (DetectorFailure
    naming the first refused one and its line)."""
    parsed = statement(detector.sql)  # loading parsed it already: this is a lookup
    if parsed.query is None:
        raise DetectorFailure(
            f"{detector.sql_path}: must be exactly one SELECT statement, found {parsed.kinds}"
        )
    refused = guard.judge(parsed.calls)  # the file's text: its line numbers
    if refused:
        line, message = refused[0]
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise DetectorFailure(f"{detector.sql_path}:{line}: {message}{more}")
    return parsed.query


def insert_normalised(
    con: duckdb.DuckDBPyConnection,
    detector: Detector,
    query: str,
    run_id: str,
    params: dict[str, Any],
    into: str,
) -> int:
    """Append the rows of `query` (bound by `params`) as `detector`'s findings to `into`.

    The SELECT runs inside the one INSERT that normalises its rows, whatever their types
    (forensics/sql/normalise_findings.sql); only when that fails to bind is the SELECT
    described, to name the contract columns it lacks.
    """
    names = "[" + ", ".join(f"'{name}'" for name in SEVERITY_NAMES) + "]"
    values: dict[str, Any] = {
        "_run_id": run_id,
        "_run_detector_id": detector.id,
        "_run_version": detector.version,
        "_run_principal_type": detector.principal_type,
        "_run_severity": detector.severity.name,
    }
    if detector.severity_bounds is not None:
        # a computed severity moves within the bounds; an unknown or absent one (NULL) falls
        # back to the YAML's
        position = f"list_position({names}, lower(trim(CAST(severity AS VARCHAR))))"
        severity = (
            f"CASE WHEN {position} IS NULL THEN $_run_severity"
            f" ELSE {names}[greatest($_run_low, least($_run_high, {position}))] END"
        )
        values["_run_low"], values["_run_high"] = (int(b) for b in detector.severity_bounds)
    else:
        severity = "$_run_severity"  # without bounds the YAML severity holds
    insert = (
        sql.read("normalise_findings")
        .replace("/*into*/ _run_new", into)
        .replace("/*severity*/", severity)
        .replace("/*query*/", query)
    )
    try:
        inserted = con.execute(insert, {**params, **values}).fetchall()
    except duckdb.BinderException:
        _check_contract(con, detector, query, params)  # says which columns it lacks, if any
        raise
    return int(inserted[0][0])


def _check_contract(
    con: duckdb.DuckDBPyConnection, detector: Detector, query: str, params: dict[str, Any]
) -> None:
    """DetectorFailure naming the contract columns the SELECT lacks, or the names it gives two
    columns (the normalising INSERT matches columns by name); neither: returns."""
    names = [str(r[0]) for r in con.execute(f"DESCRIBE {query}", params).fetchall()]
    missing = [c for c in CONTRACT_COLUMNS if c not in names]
    if missing:
        raise DetectorFailure(
            f"{detector.sql_path}: the SELECT lacks contract columns: {', '.join(missing)}"
        )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DetectorFailure(
            f"{detector.sql_path}: the SELECT names more than one column {', '.join(twice)}:"
            " give each column a name of its own"
        )


class _SharedCores:
    """DuckDB's threads divided among the workers of a run while they evaluate detectors.

    One query seldom keeps every core busy, but two in flight on all the threads each are more
    threads than cores, and they take turns (1M requests, 2 cores: the pack took 1.79 s with
    one thread per worker, 1.96 s with two each, medians of 16). So `divide` gives each worker
    its share of the threads (at least one), a worker with no detector left to start gives its
    share to those still running (a long detector last in the queue would otherwise finish on
    one core while the other idles), and `restore`, once every worker is idle, sets the threads
    back to what they were. On a connection whose configuration is locked already they stay as
    they are.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, workers: int, detectors: int) -> None:
        self.con = con
        self.workers = workers
        self.detectors = detectors
        self.threads = 0  # the setting before the run: 0 while not divided
        self.share = 0
        self._now = 0
        self._started = 0
        self._lock = threading.Lock()

    def divide(self) -> _SharedCores:
        if not is_locked(self.con):
            [(threads,)] = self.con.execute("SELECT current_setting('threads')").fetchall()
            self.threads = int(threads)
            self.share = max(1, self.threads // self.workers)
            self._now = self.share
            self.con.execute(f"SET threads = {self._now}")
        return self

    def restore(self) -> None:
        """The threads as they were before `divide` (call once no worker runs a query)."""
        with self._lock:
            if self.threads:
                self.con.execute(f"SET threads = {self.threads}")
                self.threads = 0

    def started(self) -> None:
        with self._lock:
            self._started += 1

    def finished(self, con: duckdb.DuckDBPyConnection) -> None:
        """A worker's detector ended: if none is left to start, its share goes to the others
        (set on its own connection, idle now: the setting is the database's)."""
        with self._lock:
            if not self.threads or self._started < self.detectors:
                return
            self._now = min(self.threads, self._now + self.share)
            con.execute(f"SET threads = {self._now}")
