"""`detectors check` names a detector that does not transpile; `export-sql` writes the pack."""

from __future__ import annotations

from pathlib import Path

import sqlglot
from click.testing import CliRunner
from sqlglot import exp

from forensics.cli import cli
from tests.detect.test_load import GOOD_SQL, invoke, write

# DuckDB runs it; no dialect has fmt's right-aligned specifier
UNPORTABLE_SQL = GOOD_SQL.replace("format('{} requests', count(*))", "format('{:>8}', count(*))")


def test_check_reports_a_detector_that_does_not_transpile(tmp_path):
    rules = tmp_path / "rules"
    write(rules, "testfam.many_requests", sql=UNPORTABLE_SQL)
    write(rules, "testfam.again")
    result = invoke(tmp_path, "check", "--rules", str(rules), "--no-shipped")
    assert result.exit_code == 1
    assert result.stdout == (
        f"{rules}/testfam/many_requests.sql:1: does not transpile to spark:"
        " format specifier {:>8} has no rewrite\n"
    )
    assert result.stderr == "1 problem in 1 detector\n"
    # a team that runs on DuckDB alone can say so
    result = invoke(tmp_path, "check", "--rules", str(rules), "--no-shipped", "--dialect", "none")
    assert (result.exit_code, result.stdout) == (0, "")


def test_the_shipped_pack_passes_check_for_spark(tmp_path):
    result = invoke(tmp_path, "check")
    assert result.exit_code == 0, result.stdout
    assert result.stderr.endswith(" detectors, no problems\n")


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_export_sql_writes_each_detector_and_the_views(tmp_path):
    out = tmp_path / "pack"
    result = run("export-sql", "--dialect", "spark", "-o", str(out))
    assert result.exit_code == 0, result.output
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.sql"))
    assert "cost/concurrency.sql" in files
    assert files[:3] == [
        "_views/principal_hours.sql",
        "_views/request_subjects.sql",
        "_views/usage_vs_gateway.sql",
    ]
    text = (out / "cost" / "concurrency.sql").read_text(encoding="utf-8")
    header = [line for line in text.splitlines() if line.startswith("-- ")][:6]
    assert header[0].startswith("-- cost.concurrency ")
    assert "-- min_concurrency = 20" in header and "-- window_hours = 1" in header
    tree = sqlglot.parse_one(text, read="spark")
    # the defaults are literals; only the scope is left to whoever schedules it
    assert {p.name for p in tree.find_all(exp.Placeholder)} == {"since", "until", "tenant"}
    assert result.stderr.endswith(
        f"{len(files) - 3} of {len(files) - 3} detectors written to {out}\n"
    )


def test_export_sql_lists_what_does_not_transpile_and_exits_1(tmp_path):
    rules = tmp_path / "rules"
    write(rules, "testfam.many_requests", sql=UNPORTABLE_SQL)
    write(rules, "testfam.again")
    out = tmp_path / "pack"
    result = run("export-sql", "--dialect", "spark", "-o", str(out), "--rules", str(rules),
                 "--no-shipped")  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "testfam.many_requests: does not transpile to spark: format specifier {:>8} has no rewrite",
        f"1 of 2 detectors written to {out}",
    ]
    assert (out / "testfam" / "again.sql").is_file()
    assert not (out / "testfam" / "many_requests.sql").exists()


def test_export_sql_to_a_dialect_without_rewrites_says_so(tmp_path):
    result = run("export-sql", "--dialect", "trino", "-o", str(tmp_path / "t"))
    assert result.exit_code == 1
    assert "does not transpile to trino" in result.stderr
    assert Path(tmp_path / "t").is_dir()
