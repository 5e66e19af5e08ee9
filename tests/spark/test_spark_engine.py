"""`detect --engine spark` beyond parity: a detector that would reach past the case never gets
to Spark, a slow one is cancelled at its time limit, Spark cannot read a file named in SQL, and
a custom rule runs and is stored like any other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from forensics.case import db
from forensics.detect.load import load_detectors
from forensics.detect.runner import run_detectors
from forensics.ingest.pipeline import ingest_file
from forensics.spark.evaluation import spark_evaluator
from tests.detect.test_load import GOOD_SQL, write
from tests.ingest.test_pipeline import kong_text

pytestmark = pytest.mark.spark

CONTRACT = (
    "'tenant' AS principal_type, 'acme' AS principal_id, 'acme' AS tenant_id,"
    " TIMESTAMPTZ '2026-01-01 00:00:00+00' AS window_start,"
    " TIMESTAMPTZ '2026-01-01 01:00:00+00' AS window_end, 50.0 AS score, 'x' AS summary,"
    " struct_pack(n := 1) AS evidence, [] AS sample_request_ids"
)


@pytest.fixture
def small(tmp_path: Path) -> Path:
    case = tmp_path / "case.duckdb"
    con = db.connect(case)
    log = tmp_path / "kong.jsonl"
    log.write_text(kong_text(30), encoding="utf-8")
    assert ingest_file(con, log).rows_loaded == 30
    con.close()
    return case


def run_on_spark(case: Path, rules: Path, tmp_path: Path, timeout: float = 60) -> Any:
    detectors, problems = load_detectors([rules])
    assert not problems
    con = db.connect(case)
    try:
        with spark_evaluator(con, detectors, data_dir=tmp_path / "data") as evaluator:
            return run_detectors(con, detectors, evaluator=evaluator, timeout=timeout)
    finally:
        con.close()


def test_a_custom_rule_runs_on_spark_and_is_stored(spark, small, tmp_path):
    rules = tmp_path / "rules"
    write(rules, "testfam.many_requests", sql=GOOD_SQL)
    result = run_on_spark(small, rules, tmp_path)
    assert (result.errors, result.findings) == ({}, {"testfam.many_requests": 1})
    con = db.connect(small, read_only=True)
    [(principal, evidence, samples)] = con.execute(
        "SELECT principal_id, evidence, (SELECT count(*) FROM finding_requests r"
        " WHERE r.finding_id = f.finding_id) FROM findings f"
    ).fetchall()
    con.close()
    assert (principal, evidence, samples) == ("tenant-acme", '{"n":30}', 20)


def test_sql_that_duckdb_cannot_bind_never_reaches_spark(spark, small, tmp_path):
    rules = tmp_path / "rules"
    # reflect() is Spark's way into Java (System.getenv here); DuckDB has no such function
    write(
        rules,
        "testfam.reflect",
        sql=f"SELECT {CONTRACT}, reflect('java.lang.System', 'getenv', 'HOME') AS leak"
        " WHERE $min_requests > 0",
    )
    # a file named as a table: Spark would read it, DuckDB has no such catalog
    write(
        rules,
        "testfam.file",
        sql=f'SELECT {CONTRACT} FROM csv."/etc/passwd" WHERE $min_requests > 0',
    )
    result = run_on_spark(small, rules, tmp_path)
    assert set(result.errors) == {"testfam.reflect", "testfam.file"}
    assert "reflect" in result.errors["testfam.reflect"]
    assert result.errors["testfam.reflect"].startswith(str(rules / "testfam" / "reflect.sql"))
    assert "Spark" not in result.errors["testfam.file"]  # refused before Spark saw it


def test_spark_cannot_read_a_file_named_in_sql(spark, tmp_path):
    target = tmp_path / "secret.csv"
    target.write_text("a\n1\n", encoding="utf-8")
    with pytest.raises(
        Exception,
        match="(?i)UNSUPPORTED_DATASOURCE_FOR_DIRECT_QUERY|runSQLOnFiles|not found|TABLE_OR_VIEW_NOT_FOUND",
    ):
        spark.sql(f"SELECT * FROM csv.`{target}`").collect()


def test_a_detector_past_its_time_limit_is_cancelled(spark, small, tmp_path):
    rules = tmp_path / "rules"
    # 30 requests joined with themselves six times: 729 million rows to sum
    tables = ", ".join(f"requests r{i}" for i in range(6))
    product = " + ".join(f"r{i}.latency_ms" for i in range(6))
    slow = (
        f"SELECT {CONTRACT} FROM (SELECT sum({product}) AS s FROM {tables}) WHERE s < $min_requests"
    )
    write(rules, "testfam.slow", sql=slow)
    write(rules, "testfam.many_requests", sql=GOOD_SQL)
    result = run_on_spark(small, rules, tmp_path, timeout=2)
    assert "stopped after 2 s, its time limit" in result.errors["testfam.slow"]
    assert result.findings["testfam.many_requests"] == 1  # the run went on
    assert result.seconds["testfam.slow"] < 30
