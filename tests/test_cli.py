"""The CLI: exit codes, stdout for data only, stderr for diagnostics, exact error lines."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from forensics.case import db
from forensics.case.schema import SCHEMA_VERSION, TABLES
from forensics.cli import cli
from tests.ingest.test_kong import kong_record


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


def test_ingest_prints_a_reconciled_summary_and_sql_reads_it(tmp_path):
    log = tmp_path / "k.jsonl"
    log.write_text(json.dumps(kong_record()) + "\n{oops\n")
    case = str(tmp_path / "c.duckdb")
    out = run("--db", case, "ingest", "-q", str(log))
    assert out.exit_code == 0, out.output
    assert "1 loaded, 0 skipped, 0 failed: 2 read = 1 loaded + 1 quarantined" in out.stdout
    again = run("--db", case, "ingest", "-q", str(log))
    assert "0 loaded, 1 skipped, 0 failed" in again.stdout
    [row] = [ln.split() for ln in again.stdout.splitlines() if ln.startswith("skipped")]
    assert row[:7] == ["skipped", "kong", "0", "0", "0", "2", "yes"]
    assert f"Skipped: {log.resolve()}: same content already ingested as source 1" in again.stderr
    res = run(
        "--db",
        case,
        "sql",
        "SELECT tenant_id, count(*) AS n FROM requests GROUP BY 1",
        "--format",
        "json",
    )
    assert res.exit_code == 0 and json.loads(res.stdout) == [{"tenant_id": "tenant-acme", "n": 1}]
    assert res.stderr == ""
    res = run("--db", case, "sql", "--format", "csv", input="SELECT 1 AS a, 'x' AS b")
    assert res.stdout == "a,b\n1,x\n"
    q = run("--db", case, "quarantine", "--format", "jsonl")
    [row] = [json.loads(line) for line in q.stdout.splitlines()]
    assert (row["line_no"], row["error"]) == (2, "invalid JSON: record is cut off")


def test_sql_is_read_only_and_errors_are_one_line(tmp_path):
    case = tmp_path / "c.duckdb"
    db.connect(case).close()
    res = run("--db", str(case), "sql", "DELETE FROM sources")
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr == (
        "Error: DELETE refused: ad hoc SQL on a case is read-only\n"
        "Hint: use SELECT (or FROM, WITH, VALUES, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN SELECT)\n"
    )
    res = run("--db", str(case), "sql", "SELEC nonsense")
    assert res.exit_code == 1 and res.stderr.startswith("Error: Parser Error")
    assert len([ln for ln in res.stderr.splitlines() if ln.startswith("Error:")]) == 1


def test_sql_runs_exactly_one_statement_that_reads(tmp_path):
    case = tmp_path / "c.duckdb"
    db.connect(case).close()
    res = run("--db", str(case), "sql", "SELECT 1; SELECT 2")
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr == (
        "Error: the query has 2 statements; one is run at a time\n"
        "Hint: run them one by one, or join them with WITH / UNION ALL\n"
    )
    res = run("--db", str(case), "sql", input="-- nothing but a comment\n;\n")
    assert (res.exit_code, res.stderr) == (
        2,
        "Error: the query has no SQL statement (only comments or semicolons)\n",
    )
    # EXPLAIN ANALYZE runs what it explains: only a SELECT may follow it
    target = tmp_path / "out.csv"
    res = run("--db", str(case), "sql", f"EXPLAIN ANALYZE COPY sources TO '{target}'")
    assert res.exit_code == 2 and res.stderr.startswith("Error: EXPLAIN COPY refused: ")
    assert not target.exists()
    for kind in ("CREATE TABLE t AS SELECT 1", "SET threads = 1", "ATTACH ':memory:' AS m"):
        res = run("--db", str(case), "sql", kind)
        assert res.exit_code == 2 and " refused: ad hoc SQL on a case is read-only" in res.stderr
    for reads in ("DESCRIBE sources", "SHOW TABLES", "EXPLAIN SELECT 1", "FROM sources"):
        assert run("--db", str(case), "sql", reads).exit_code == 0, reads


TRAILERS = ("SELECT 1 AS x -- trailing comment", "SELECT 1 AS x;", "SELECT 1 AS x; -- done\n")
FORMAT_OUTPUT = {
    "table": "x\n-\n1\n",
    "csv": "x\n1\n",
    "json": '[\n\t{"x":1}\n]\n',
    "jsonl": '{"x":1}\n',
}


@pytest.mark.parametrize("query", TRAILERS)
@pytest.mark.parametrize("fmt", [*FORMAT_OUTPUT, "parquet"])
def test_sql_with_a_trailing_comment_or_semicolon_in_every_format(tmp_path, fmt, query):
    case = tmp_path / "c.duckdb"
    db.connect(case).close()
    if fmt == "parquet":
        out = tmp_path / "x.parquet"
        res = run("--db", str(case), "sql", query, "--format", fmt, "-o", str(out))
        assert (res.exit_code, res.stdout, res.stderr) == (0, "", f"1 rows written to {out}\n")
        import pyarrow.parquet as pq

        assert pq.read_table(out).to_pylist() == [{"x": 1}]
    else:
        res = run("--db", str(case), "sql", query, "--format", fmt)
        assert (res.exit_code, res.stdout, res.stderr) == (0, FORMAT_OUTPUT[fmt], "")
    # from stdin too, where a file's last line often ends with a comment or a semicolon
    if fmt != "parquet":
        res = run("--db", str(case), "sql", "--format", fmt, input=query)
        assert (res.exit_code, res.stdout) == (0, FORMAT_OUTPUT[fmt])


def test_parquet_needs_a_file_and_writes_one(tmp_path):
    case = tmp_path / "c.duckdb"
    db.connect(case).close()
    res = run("--db", str(case), "sql", "SELECT 42 AS x", "--format", "parquet")
    assert res.exit_code == 2
    assert res.stderr == "Error: parquet output needs a file\nHint: add -o FILE.parquet\n"
    out = tmp_path / "x.parquet"
    res = run("--db", str(case), "sql", "SELECT 42 AS x", "--format", "parquet", "-o", str(out))
    assert res.exit_code == 0 and res.stdout == ""
    assert res.stderr == f"1 rows written to {out}\n"
    import pyarrow.parquet as pq

    assert pq.read_table(out).to_pylist() == [{"x": 42}]


def test_missing_case_and_other_schema_version(tmp_path):
    res = run("--db", str(tmp_path / "none.duckdb"), "sources")
    assert res.exit_code == 1
    assert res.stderr.startswith(f"Error: {tmp_path / 'none.duckdb'}: no case database here")
    case = tmp_path / "old.duckdb"
    con = db.connect(case)
    con.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    con.close()
    res = run("--db", str(case), "sources")
    assert res.exit_code == 1
    assert res.stderr.splitlines()[0] == (
        f"Error: {case}: case schema version 0, this forensics 0.1.0 reads version {SCHEMA_VERSION}"
    )
    assert res.stderr.splitlines()[1].startswith("Hint: open it with the forensics version")


def test_verify_reports_changed_and_missing_files(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(json.dumps(kong_record()) + "\n")
    b.write_text(json.dumps(kong_record(client_ip="192.0.2.9")) + "\n")
    case = str(tmp_path / "c.duckdb")
    assert run("--db", case, "ingest", "-q", str(a), str(b)).exit_code == 0
    assert run("--db", case, "verify").exit_code == 0
    a.write_text(a.read_text() + "\n")
    b.unlink()
    res = run("--db", case, "verify")
    assert res.exit_code == 4
    assert f"MISMATCH  ok                  1  {a.resolve()}" in res.stdout
    assert f"missing   ok                  2  {b.resolve()}" in res.stdout
    assert res.stderr == (
        "files: 0 ok, 1 mismatched, 1 missing; rows: 2 sources as ingested, 0 changed\n"
    )


def test_verify_finds_rows_changed_in_the_case_when_the_files_are_gone(tmp_path):
    logs = [tmp_path / f"{n}.jsonl" for n in "abc"]
    for i, log in enumerate(logs):
        records = [kong_record(client_ip=f"192.0.2.{i * 10 + j}") for j in range(3)]
        log.write_text("".join(json.dumps(r) + "\n" for r in records) + "not json\n")
    case = tmp_path / "c.duckdb"
    assert run("--db", str(case), "ingest", "-q", *map(str, logs)).exit_code == 0
    for log in logs:
        log.unlink()
    assert run("--db", str(case), "verify").exit_code == 0  # files missing, rows as ingested
    con = db.connect(case)
    try:
        con.execute("UPDATE requests SET path = '/x' WHERE source_id = 1 AND line_no = 2")
        con.execute("DELETE FROM requests WHERE source_id = 2 AND line_no = 1")
        con.execute("UPDATE quarantine SET raw = 'x' WHERE source_id = 3")
        con.execute("UPDATE requests SET country = 'ZZ', est_cost_usd = 9")  # derived columns
    finally:
        con.close()
    res = run("--db", str(case), "verify")
    assert res.exit_code == 4
    lines = {int(ln.split()[2]): ln for ln in res.stdout.splitlines()[1:]}
    assert "CHANGED" in lines[1] and "rows edited, added or deleted in requests" in lines[1]
    assert "2 rows in the case, ingest loaded 3" in lines[2]
    assert "edited, added or deleted in quarantine" in lines[3]
    assert res.stderr.endswith("rows: 0 sources as ingested, 3 changed\n")


def test_schema_lists_every_table_and_column_with_standard_names():
    res = run("schema", "--format", "json")
    doc = json.loads(res.stdout)
    assert [t["table"] for t in doc if t["kind"] == "table"] == [t.name for t in TABLES]
    from forensics.case.schema import VIEWS

    assert [t["table"] for t in doc if t["kind"] == "view"] == [name for name, _ in VIEWS]
    req = next(t for t in doc if t["table"] == "requests")
    names = {c["name"]: c for c in req["columns"]}
    assert names["client_ip"]["standard"] == "client.address"
    assert names["input_tokens"]["standard"] == "gen_ai.usage.input_tokens"
    assert all(c["description"] for t in doc for c in t["columns"])


def test_jsonl_without_mapping_is_a_usage_error(tmp_path):
    log = tmp_path / "x.jsonl"
    log.write_text('{"a": 1}\n')
    res = run("--db", str(tmp_path / "c.duckdb"), "ingest", "--format", "jsonl", str(log))
    assert res.exit_code == 2
    assert res.stderr.startswith("Error: ")


def test_every_command_has_help_with_an_example_and_is_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name in cli.commands:
        res = run(name, "--help")
        assert res.exit_code == 0
        assert "Example:" in res.stdout, name
        # invoked as `forensics NAME` or `forensics --db FILE NAME`, as a whole word
        assert re.search(rf"\bforensics (--db \S+ )?{re.escape(name)}\b", readme), name


def test_progress_bar_env_db_and_quarantine_by_source(tmp_path, monkeypatch):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(json.dumps(kong_record()) + "\nnot json\n")
    b.write_text("{broken\n" + json.dumps(kong_record(client_ip="192.0.2.1")) + "\n")
    monkeypatch.setenv("FORENSICS_DB", str(tmp_path / "env.duckdb"))
    out = run("ingest", str(a), str(b))  # with the progress bar (on stderr)
    assert out.exit_code == 0, out.output
    assert "rows/s" in out.stderr
    assert "2 loaded, 0 skipped, 0 failed: 4 read = 2 loaded + 2 quarantined" in out.stdout
    assert (tmp_path / "env.duckdb").exists()
    q = run("quarantine", "--source", "2", "--format", "jsonl")
    got = [
        (r["source_id"], r["line_no"], r["error"]) for r in map(json.loads, q.stdout.splitlines())
    ]
    assert got == [(2, 1, "invalid JSON: record is cut off")]


def test_memory_limit_and_temp_dir_reach_every_case_connection(tmp_path):
    from forensics.case.db import limit_resources

    case = str(tmp_path / "c.duckdb")
    log = tmp_path / "a.jsonl"
    log.write_text(json.dumps(kong_record()) + "\n")
    assert run("--db", case, "ingest", str(log)).exit_code == 0
    try:
        res = run(
            "--db", case, "sql", "--format", "csv",
            "SELECT current_setting('memory_limit'), current_setting('temp_directory')",
            "--memory-limit", "1GB", "--temp-dir", str(tmp_path / "spill"),
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        assert res.stdout.splitlines()[1] == f"953.6 MiB,{tmp_path / 'spill'}"
        bad = run("--db", case, "--memory-limit", "sk-live-12parsecs", "sql", "SELECT 1")
        assert bad.exit_code == 2
        assert bad.stderr.startswith("Error: --memory-limit: not a size DuckDB reads")
        assert "12parsecs" not in bad.stderr  # described, not repeated
    finally:
        limit_resources()
