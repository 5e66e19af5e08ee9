"""A Spark session configured for the detector pack.

Settings that change what a query means, not only how fast it runs:

  spark.sql.session.timeZone UTC        days and hours are UTC, as the case's are
  spark.sql.ansi.enabled false          a division by zero or a bad cast is NULL, as in DuckDB
  spark.sql.legacy.sizeOfNull false     size(NULL) is NULL (DuckDB's array_length), not -1

  spark.sql.runSQLOnFiles false         SQL cannot name a file to read (the runner also binds
                                        each SELECT in the sandboxed case before Spark sees it)

and, for a terminal: no progress bars and no log lines (a failed query is reported once, by the
run, naming its detector). Without `master` the session runs in this process's JVM on two
cores (`local[2]`); `--spark-master URL` joins a cluster, whose executors must then be able to
read the Parquet the run points them at.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from forensics.errors import UsageError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEFAULT_MASTER = "local[2]"
INSTALL_HINT = "pip install 'forensics[spark]' (pyspark 4, with Java 17 or later on the PATH)"
SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "false",
    "spark.sql.legacy.sizeOfNull": "false",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.sql.runSQLOnFiles": "false",  # no `FROM parquet.`/path``: a detector reads the case
}
LOCAL_SETTINGS = {
    "spark.sql.shuffle.partitions": "8",  # the default 200 is for clusters
}


def _local_memory() -> str:
    """In local mode the driver is the executor too: a third of the RAM, 2 to 16 GiB (Spark's
    own 1 GiB ran out of heap on the pack at 10M requests)."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "2g"
    return f"{max(2, min(16, ram // 3 // 2**30))}g"


@contextmanager
def _stderr_closed() -> Iterator[None]:
    """File descriptor 2 on /dev/null meanwhile: a JVM started now writes its start-up notes
    and log lines there for the rest of its life."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def spark_session(
    master: str | None = None, *, conf: dict[str, str] | None = None, quiet: bool = True
) -> SparkSession:
    """The session (a new one, or the one this process already has). `conf`: Spark settings
    that beat ours (`--spark-conf KEY=VALUE`); `quiet`: the JVM's output goes nowhere
    (`forensics --debug` keeps it)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as e:
        raise UsageError(
            "the Spark engine needs pyspark, which is not installed", hint=INSTALL_HINT
        ) from e
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        raise UsageError("the Spark engine needs Java, and none is on the PATH", hint=INSTALL_HINT)
    master = master or DEFAULT_MASTER
    builder = SparkSession.builder.master(master).appName("forensics detect")
    logging_off = Path(__file__).with_name("log4j2.properties").as_uri()
    local = {**LOCAL_SETTINGS, "spark.driver.memory": _local_memory()}
    settings = {
        **SETTINGS,
        **(local if master.startswith("local") else {}),
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={logging_off}",
        **(conf or {}),
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    with _stderr_closed() if quiet else nullcontext():
        session = builder.getOrCreate()
    session.sparkContext.setLogLevel("OFF")
    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        # pyspark logs every failed query with its Java stack; the run reports it once
        logging.getLogger(name).disabled = quiet
    for key, value in {**SETTINGS, **(conf or {})}.items():  # a session already running too
        if key.startswith("spark.sql.") and "partitionColumn" not in key:
            session.conf.set(key, value)
    return session
