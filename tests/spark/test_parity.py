"""Parity: the whole pack on Spark (`detect --engine spark`, local[2]) stores the same findings
as on DuckDB, on a synth world that every detector fires on, ingested into a lake that both
engines read.

Compared per finding: detector, principal, tenant, window, severity, score, cost (to 1e-9
relative) and the set of sample requests (which tests the top-N and ordering rewrites on real rows), and the keys of
its evidence; then the incidents built from them. Summaries are not compared: a time or a large
double is printed in each engine's own notation there.
"""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner, Result

from forensics.case import db
from forensics.cli import cli
from forensics.detect.guard import statement
from forensics.detect.load import default_dirs, load_detectors
from forensics.detect.params import bind
from forensics.dialect.views import needed
from forensics.spark.evaluation import SparkEvaluation, spark_evaluator

pytestmark = [pytest.mark.spark, pytest.mark.slow]

FINDINGS = """
SELECT f.detector_id, f.principal_type, f.principal_id, f.tenant_id,
       f.window_start, f.window_end, f.severity, f.score, f.est_cost_usd,
       list_sort(list_transform(json_keys(f.evidence), lambda k: k)),
       (SELECT list_sort(list(request_id)) FROM finding_requests r
        WHERE r.finding_id = f.finding_id)
FROM findings f
WHERE f.run_id = (SELECT max_by(run_id, started_at) FROM runs)
ORDER BY ALL
"""
INCIDENTS = """
SELECT principal_type, principal_id, first_seen, last_seen, severity, primary_detector,
       list_sort(detectors), est_cost_usd
FROM incidents ORDER BY ALL
"""


def forensics(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def cases(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A synth world ingested into a case that keeps its rows in a lake, twice: one case file
    for each engine's findings, both over the same Parquet files (detect only reads them)."""
    root = tmp_path_factory.mktemp("parity")
    world, duck = root / "world", root / "duck.duckdb"
    assert forensics("synth", "-o", world, "--seed", "1").exit_code == 0
    loaded = forensics(
        "--db", duck, "--lake", root / "lake",
        "ingest", "--asn-db", world / "ip2asn-v4.tsv", world / "logs",
    )  # fmt: skip
    assert loaded.exit_code == 0, loaded.output
    on_spark = root / "spark.duckdb"
    shutil.copyfile(duck, on_spark)
    return duck, on_spark


def rows(case: Path, sql: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(case), read_only=True) as con:
        return con.execute(sql).fetchall()


def same(found: list[tuple[object, ...]], expected: list[tuple[object, ...]], cost: int) -> None:
    """Equal rows, the cost column (index `cost`) to 1e-9 relative: DuckDB sums doubles in
    parallel, so two runs of one engine can differ in the last bits."""
    strip = [r[:cost] + r[cost + 1 :] for r in found]
    assert strip == [r[:cost] + r[cost + 1 :] for r in expected]
    for a, b in zip([r[cost] for r in found], [r[cost] for r in expected], strict=True):
        assert (a is None and b is None) or a == pytest.approx(b, rel=1e-9), (a, b)


def test_both_engines_store_the_same_findings(cases, tmp_path):
    duck, on_spark = cases
    assert forensics("--db", duck, "detect").exit_code == 0
    data = tmp_path / "spark-data"
    result = forensics("--db", on_spark, "detect", "--engine", "spark", "--spark-data", data)
    assert result.exit_code == 0, result.output
    assert list(data.iterdir()) == []  # the run's Parquet is gone with it

    expected, found = rows(duck, FINDINGS), rows(on_spark, FINDINGS)
    same(found, expected, cost=8)
    # every detector of the pack fired, so every one was compared on rows of its own
    pack = {d.id for d in load_detectors(default_dirs([]))[0]}
    assert {r[0] for r in found} == pack
    assert sum(1 for r in found if r[-1]) > len(pack)  # and with sample requests
    same(rows(on_spark, INCIDENTS), rows(duck, INCIDENTS), cost=7)
    assert rows(on_spark, INCIDENTS)
    # each run says which engine made it
    engines = "SELECT json_extract_string(params, '$.engine') FROM runs"
    assert (rows(duck, engines), rows(on_spark, engines)) == ([("duckdb",)], [("spark",)])


def test_the_exported_spark_sql_runs_as_written(cases, tmp_path):
    """`export-sql --dialect spark` files, views first, with the scope passed as Spark's named
    parameters, give the rows the detector gives in DuckDB."""
    duck, _ = cases
    out = tmp_path / "pack"
    assert forensics("export-sql", "--dialect", "spark", "-o", out).exit_code == 0
    [detector] = [d for d in load_detectors(default_dirs([]))[0] if d.id == "cost.concurrency"]
    scope = {"since": None, "until": None, "tenant": None}
    con = db.connect(duck)
    try:
        want = sorted(
            (str(r[0]), r[1].astimezone(dt.UTC).replace(tzinfo=None))
            for r in con.execute(
                f"SELECT principal_id, window_start FROM ({statement(detector.sql).query})",
                bind(detector),
            ).fetchall()
        )
        with spark_evaluator(con, [detector], data_dir=tmp_path / "data") as factory:
            evaluation = factory(con, uuid.uuid4().hex, ["principal_hours"], scope)
            assert isinstance(evaluation, SparkEvaluation)
            with evaluation:
                spark = evaluation.session
                built, _ = needed(set(detector.tables))
                assert built == ["request_subjects", "principal_hours"]
                for view in built:  # the exported views replace the run's own
                    text = (out / "_views" / f"{view}.sql").read_text(encoding="utf-8")
                    spark.sql(text, args=scope).createOrReplaceTempView(view)
                text = (out / "cost" / "concurrency.sql").read_text(encoding="utf-8")
                got = sorted(
                    (r["principal_id"], r["window_start"])
                    for r in spark.sql(text, args=scope).collect()
                )
    finally:
        con.close()
    assert got and got == want
