"""Phase 1 of a run on Spark: every detector's SELECT evaluated there, its rows stored here.

`SparkEvaluation` is the DuckDB evaluation (forensics/detect/evaluation.py) with the engine
swapped: the run's scratch database and `_run_new` are the same, the guard judges the same
SELECT, and each detector's rows go through the same normalising INSERT, so phase 2 (storing
findings, suppression, incidents) cannot tell the engines apart. What differs:

* the data: `requests` and `usage` are read from Parquet files in the lake's layout: a lake
  case's own files (forensics/lake/store.py), else a snapshot of the case written for the run
  (forensics/lake/snapshot.py); the small reference tables (key inventory, revocations,
  prices, ...) are shipped from the case as Arrow tables, and the case's views are the case's
  definitions transpiled (forensics/dialect/views.py); `principal_hours` is computed once
  and cached;
* each SELECT is judged by the guard and bound (DESCRIBE) on the sandboxed case connection
  first, so that what reaches Spark names only the case's tables and DuckDB's functions, then
  transpiled (forensics/dialect/) with its parameters bound as literals;
* detectors run one after the other (Spark spreads each over its executors), and a detector
  past its time limit has its Spark jobs cancelled.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from forensics.case.db import memory_limit
from forensics.case.fingerprints import redact
from forensics.detect import features
from forensics.detect.evaluation import (
    NEW,
    DetectorFailure,
    Evaluation,
    EvaluatorFactory,
    Outcome,
    insert_normalised,
    judged,
    time_limit_passed,
)
from forensics.detect.guard import Guard
from forensics.detect.model import Detector
from forensics.dialect import views
from forensics.dialect.transpile import SCOPE_NULL_TYPES, TranspileError, transpile
from forensics.errors import describe_duckdb_error
from forensics.lake import store as lake
from forensics.lake.snapshot import PARTITIONED, write_snapshot
from forensics.spark.session import spark_session
from forensics.sqltext import sql_ident

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

SNAPSHOT_MEMORY = "25%"  # DuckDB's share of the RAM while it writes the run's Parquet
ROWS = "_spark_rows"  # the Arrow table of one detector's rows, as the case connection sees it


GONE = (
    "Spark is gone: its JVM exited, most often out of memory (raise it with --spark-conf"
    " spark.driver.memory=8g, or executors' with spark.executor.memory)"
)


def _spark_error(e: Exception) -> str:
    """One line for a Spark failure: the Java exception's, not py4j's "An error occurred while
    calling o120.getResult"; a dead JVM (a refused or dropped gateway) said as such."""
    if isinstance(e, ConnectionError) or type(e).__name__ == "Py4JNetworkError":
        return GONE
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    for line in lines:
        if not line.startswith("An error occurred while calling"):
            line = line.removeprefix(": ")
            if "OutOfMemoryError" in line:
                return f"{line[:300]} ({GONE.split(': ', 1)[1]})"
            return line[:500]
    return type(e).__name__


class _Expired(Exception):
    """The detector's time limit passed and its Spark jobs were cancelled."""


class SparkEvaluation(Evaluation):
    """See the module docstring. `tables`: every table the run's detectors read."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        run_id: str,
        shared: list[str],
        scope: dict[str, Any],
        *,
        data: dict[str, list[Path]],
        tables: set[str],
        master: str | None = None,
        conf: dict[str, str] | None = None,
        quiet: bool = True,
    ) -> None:
        super().__init__(con, run_id, [], scope, workers=1)  # no feature in DuckDB
        self.engine = "spark"
        self.data = data
        self.tables = tables | set(shared)
        self.master = master
        self.conf = conf
        self.quiet = quiet
        self._spark: SparkSession | None = None
        self._views: list[str] = []
        self._cached: list[DataFrame] = []

    def __enter__(self) -> SparkEvaluation:
        super().__enter__()
        try:
            clock = time.monotonic()
            self._spark = spark_session(self.master, conf=self.conf, quiet=self.quiet)
            self._register(self._spark)
            self.features_seconds = time.monotonic() - clock
        except BaseException:
            self.__exit__()
            raise
        return self

    @property
    def session(self) -> SparkSession:
        """The Spark session, with the run's tables and views (inside the context only)."""
        if self._spark is None:
            raise RuntimeError("the Spark evaluation is not entered")
        return self._spark

    def __exit__(self, *exc: object) -> None:
        if self._spark is not None:
            try:
                for frame in self._cached:
                    frame.unpersist()
                for name in self._views:
                    self._spark.catalog.dropTempView(name)
            except Exception:  # noqa: BLE001, S110 - a JVM that died has nothing left to drop
                pass
            self._spark, self._views, self._cached = None, [], []
        super().__exit__(*exc)

    def _register(self, spark: SparkSession) -> None:
        """Every table and view the run reads, as temp views of the session."""
        built, base = views.needed(self.tables)
        for table in sorted(base):
            frame = self._table(spark, table)
            frame.createOrReplaceTempView(table)
            self._views.append(table)
        for view in built:
            frame = spark.sql(views.view_sql(view, "spark", self.scope))
            if view in features.FEATURES:  # read by most detectors: computed once
                frame = frame.cache()
                self._cached.append(frame)
            frame.createOrReplaceTempView(view)
            self._views.append(view)

    def _table(self, spark: SparkSession, table: str) -> DataFrame:
        files = self.data.get(table)
        if files:  # named one by one: Spark reads no partition column from the paths
            return spark.read.parquet(*map(str, files))
        # a reference table (or a partitioned one with no rows): shipped from the case
        arrow = self.con.sql(f"SELECT * FROM {sql_ident(table)}").to_arrow_table()
        return spark.createDataFrame(arrow)

    def run(
        self,
        detectors: list[Detector],
        params: Callable[[Detector], dict[str, Any]],
        timeout: float | None,
    ) -> Iterator[Outcome]:
        """Evaluate `detectors` one after the other, yielding each outcome."""
        guard = Guard(self.con)
        for detector in detectors:
            yield self._on_spark(guard, detector, params, timeout)

    def _on_spark(
        self,
        guard: Guard,
        detector: Detector,
        params: Callable[[Detector], dict[str, Any]],
        timeout: float | None,
    ) -> Outcome:
        clock = time.monotonic()
        rows, error = 0, None
        try:
            bound = params(detector)
            query = judged(guard, detector)
            # bound in the case first: Spark sees only SQL whose every table and function
            # DuckDB knows in this case (Spark itself would read a file named in FROM)
            self.con.execute(f"DESCRIBE {query}", bound).fetchall()
            text = transpile(query, "spark", bound, null_types=SCOPE_NULL_TYPES)
            found = self._collect(text, timeout)
            self.con.register(ROWS, found)
            try:
                into = f"{self.scratch}.{NEW}"
                query = f"SELECT * FROM {ROWS}"
                rows = insert_normalised(self.con, detector, query, self.run_id, {}, into)
            finally:
                self.con.unregister(ROWS)
        except TranspileError as e:
            error = f"{detector.sql_path}: does not transpile to Spark SQL: {e}"
        except DetectorFailure as e:
            error = str(e)
        except _Expired:
            error = time_limit_passed(detector, timeout)
        except duckdb.Error as e:
            error = describe_duckdb_error(e, str(detector.sql_path))
        except Exception as e:  # noqa: BLE001 - Spark's errors come from py4j and pyspark alike
            error = f"{detector.sql_path}: Spark: {_spark_error(e)}"
        if error is not None:
            error = redact(error)
        return Outcome(detector.id, time.monotonic() - clock, rows, error)

    def _collect(self, text: str, timeout: float | None) -> pa.Table:
        """The rows of one Spark SQL query as an Arrow table; its jobs are cancelled once
        `timeout` seconds pass (_Expired)."""
        context = self.session.sparkContext
        group = f"forensics-{uuid.uuid4().hex[:12]}"
        context.setJobGroup(group, "forensics detector", interruptOnCancel=True)
        expired = threading.Event()

        def cancel() -> None:
            expired.set()
            context.cancelJobGroup(group)

        timer = threading.Timer(timeout, cancel) if timeout is not None else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            return self.session.sql(text).toArrow()
        except Exception:
            if expired.is_set():
                raise _Expired() from None
            raise
        finally:
            if timer is not None:
                timer.cancel()
            context.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]


@contextmanager
def spark_evaluator(
    con: duckdb.DuckDBPyConnection,
    detectors: list[Detector],
    *,
    master: str | None = None,
    conf: dict[str, str] | None = None,
    data_dir: Path | None = None,
    quiet: bool = True,
) -> Iterator[EvaluatorFactory]:
    """What `run_detectors(evaluator=...)` needs to run `detectors` on Spark.

    Spark reads a lake case's own Parquet files. Any other case's requests and usage are
    written in the lake's layout into a new directory under `data_dir` (default: the system's
    temporary directory), which the Spark executors read and which is removed afterwards;
    `con` must still be allowed to write files (call this before the run sandboxes it). Spark
    is started (and pyspark's presence checked) before anything is written.
    """
    spark_session(master, conf=conf, quiet=quiet)
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
    where = Path(tempfile.mkdtemp(prefix="forensics-lake-", dir=data_dir))
    try:
        root = lake.lake_dir(con)
        if root is not None:
            data = {t: [root / p for p in lake.files(con, t)] for t in PARTITIONED}
        else:
            # DuckDB writes the Parquet beside a JVM that wants memory too: a quarter of the
            # RAM unless the user bounded DuckDB (--memory-limit)
            write_snapshot(con, where / "lake", None if memory_limit() else SNAPSHOT_MEMORY)
            data = {t: sorted((where / "lake" / t).rglob("*.parquet")) for t in PARTITIONED}
        tables = {t for d in detectors for t in d.tables}

        def factory(
            con: duckdb.DuckDBPyConnection, run_id: str, shared: list[str], scope: dict[str, Any]
        ) -> SparkEvaluation:
            return SparkEvaluation(
                con,
                run_id,
                shared,
                scope,
                data=data,
                tables=tables,
                master=master,
                conf=conf,
                quiet=quiet,
            )

        yield factory
    finally:
        shutil.rmtree(where, ignore_errors=True)
