"""What a user reads when the Spark engine is misused or Spark fails (no Spark needed)."""

from __future__ import annotations

from click.testing import CliRunner

from forensics.cli import cli
from forensics.spark.evaluation import GONE, _spark_error


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_spark_options_need_the_spark_engine(tmp_path):
    res = run("--db", str(tmp_path / "c.duckdb"), "detect", "--spark-conf", "spark.x=1")
    assert res.exit_code == 2
    assert res.stderr.startswith("Error: --spark-master, --spark-conf and --spark-data need")


def test_a_spark_setting_must_be_a_spark_key_and_value(tmp_path):
    case = str(tmp_path / "c.duckdb")
    for bad, shape in (
        ("heap=8g", "7 characters"),
        ("sk-live-abc", "11 characters without ="),
    ):
        res = run("--db", case, "detect", "--engine", "spark", "--spark-conf", bad)
        assert res.exit_code == 2, res.output
        assert f"spark.* key (got {shape})" in res.stderr
        assert bad not in res.stderr  # described, never repeated
    assert not (tmp_path / "c.duckdb").exists()  # refused before the case or Spark is opened


def test_spark_failures_read_as_one_line():
    assert _spark_error(ConnectionRefusedError(111, "Connection refused")) == GONE
    java = Exception(
        "An error occurred while calling o120.getResult.\n"
        ": java.lang.OutOfMemoryError: Java heap space\n\tat org.apache.spark.Foo(Foo.scala:1)"
    )
    message = _spark_error(java)
    assert message.startswith("java.lang.OutOfMemoryError: Java heap space (its JVM exited")
    assert "spark.driver.memory" in message
    analysis = Exception(
        "[UNRESOLVED_ROUTINE] Cannot resolve routine `x`. SQLSTATE: 42883\n== SQL =="
    )
    assert (
        _spark_error(analysis) == "[UNRESOLVED_ROUTINE] Cannot resolve routine `x`. SQLSTATE: 42883"
    )
