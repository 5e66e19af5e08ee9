"""`forensics sql` and the Python API cannot write, attach, install, load or change settings,
and read files only with --allow-files: each reproduction of issue 10 on real case files."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner, Result

import forensics
from forensics.case import db, query
from forensics.cli import cli
from forensics.errors import QueryError, UsageError


@pytest.fixture
def case(tmp_path: Path) -> Path:
    """A case with two requests, and beside it another DuckDB file with three rows."""
    path = tmp_path / "case.duckdb"
    con = db.connect(path)
    con.execute(
        "INSERT INTO requests (ts, request_id, tenant_id) VALUES"
        " ('2026-01-05 10:00:00+00', 'r1', 'acme'), ('2026-01-05 11:00:00+00', 'r2', 'acme')"
    )
    con.close()
    other = duckdb.connect(str(tmp_path / "other.duckdb"))
    other.execute("CREATE TABLE t AS SELECT * FROM range(3) r(n)")
    other.close()
    return path


def sql(case: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(case), "sql", *args])


def other_rows(tmp_path: Path) -> int:
    con = duckdb.connect(str(tmp_path / "other.duckdb"), read_only=True)
    try:
        [(n,)] = con.execute("SELECT count(*) FROM t").fetchall()
    finally:
        con.close()
    return int(n)


def refused(result: Result, message: str) -> None:
    """Exit 2, nothing on stdout, one `Error:` line naming the refusal (and a hint)."""
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    first, *rest = result.stderr.splitlines()
    assert first == f"Error: {message}"
    assert all(line.startswith(("Hint:", " ")) for line in rest)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("COPY (SELECT * FROM requests) TO '{dir}/stolen.csv'", "COPY refused"),
        ("COPY requests TO '{dir}/stolen.parquet' (FORMAT PARQUET)", "COPY refused"),
        ("EXPORT DATABASE '{dir}/export'", "EXPORT refused"),
        ("ATTACH '{dir}/other.duckdb' AS other (READ_ONLY false)", "ATTACH refused"),
        ("INSTALL httpfs", "LOAD refused"),
        ("LOAD json", "LOAD refused"),
        ("SET enable_external_access = true", "SET refused"),
        ("SET lock_configuration = false", "SET refused"),
        ("RESET lock_configuration", "SET refused"),
        ("PRAGMA enable_profiling", "PRAGMA refused"),
        ("CALL pragma_version()", "CALL refused"),
        ("CREATE TABLE x AS SELECT 1", "CREATE refused"),
        ("DELETE FROM requests", "DELETE refused"),
    ],
)
def test_statements_that_write_or_change_settings_are_refused(
    tmp_path: Path, case: Path, text: str, message: str
) -> None:
    result = sql(case, text.format(dir=tmp_path))
    refused(result, f"{message}: ad hoc SQL on a case is read-only")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.duckdb", "other.duckdb"]


def test_attach_then_delete_never_runs_and_the_other_case_is_untouched(
    tmp_path: Path, case: Path
) -> None:
    text = f"ATTACH '{tmp_path}/other.duckdb' AS other (READ_ONLY false); DELETE FROM other.t"
    refused(sql(case, text), "the query has 2 statements; one is run at a time")
    refused(
        sql(case, "SELECT 1; DELETE FROM requests"),
        "the query has 2 statements; one is run at a time",
    )
    assert other_rows(tmp_path) == 3
    con = db.connect(case, read_only=True)
    assert con.execute("SELECT count(*) FROM requests").fetchall() == [(2,)]
    con.close()


def test_the_connection_itself_cannot_write_even_past_the_statement_check(
    tmp_path: Path, case: Path
) -> None:
    """Defence in depth: what `statement` refuses, the sandboxed connection refuses as well."""
    con = query.open_for_query(case)
    try:
        for text in (
            f"COPY (SELECT 1) TO '{tmp_path}/x.csv'",
            f"EXPORT DATABASE '{tmp_path}/export'",
            f"ATTACH '{tmp_path}/other.duckdb' AS other",
            "INSTALL httpfs",
            f"SELECT * FROM read_text('{tmp_path}/other.duckdb')",
        ):
            with pytest.raises(duckdb.PermissionException):
                con.execute(text)
        for text in ("SET enable_external_access = true", "SET lock_configuration = false"):
            with pytest.raises(duckdb.InvalidInputException, match="configuration has been locked"):
                con.execute(text)
    finally:
        con.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.duckdb", "other.duckdb"]


def test_reading_a_file_needs_allow_files(tmp_path: Path, case: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the content of a local file", encoding="utf-8")
    text = f"SELECT content FROM read_text('{secret}')"

    result = sql(case, text)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines()[0] == (
        f'Error: Permission Error: Cannot access file "{secret}" - file system operations are'
        " disabled by configuration"
    )
    assert "pass --allow-files" in result.stderr.splitlines()[1]
    assert "the content of a local file" not in result.output

    for reader in ("read_csv", "read_json", "read_blob"):
        denied = sql(case, f"SELECT * FROM {reader}('{secret}')")
        assert denied.exit_code == 1 and "Permission Error" in denied.stderr
    assert "Permission Error" in sql(case, f"SELECT * FROM glob('{tmp_path}/*')").stderr
    by_name = sql(case, f"SELECT * FROM '{secret}'")  # no replacement scan of a file name
    assert by_name.exit_code == 1 and by_name.stderr.startswith("Error: Catalog Error: Table")
    assert "the content of a local file" not in by_name.output

    allowed = sql(case, "--allow-files", "--format", "csv", text)
    assert allowed.exit_code == 0, allowed.output
    assert allowed.stdout == "content\nthe content of a local file\n"
    # --allow-files reads; it does not write
    refused(
        sql(case, "--allow-files", f"COPY (SELECT 1) TO '{tmp_path}/x.csv'"),
        "COPY refused: ad hoc SQL on a case is read-only",
    )
    assert not (tmp_path / "x.csv").exists()


def test_outputs_of_a_sandboxed_query_are_the_bytes_of_duckdbs_copy(
    tmp_path: Path, case: Path
) -> None:
    """-o and the text formats still work: the sandbox streams Arrow to a private writer.

    (DuckDB keeps settings per database and process: the unsandboxed connection that writes
    the reference files is closed before the command opens the case.)
    """
    text = (
        "SELECT request_id, ts, tenant_id, '{\"n\": [1, 2]}'::JSON AS evidence,"
        " [1, 2] AS l, {'a': 1} AS s FROM requests ORDER BY ts"
    )
    formats = {"json": "FORMAT JSON, ARRAY true", "jsonl": "FORMAT JSON"}
    plain = db.connect(case, read_only=True)
    for fmt, options in formats.items():
        plain.execute(f"COPY ({text}) TO '{tmp_path}/direct.{fmt}' ({options})")
    plain.close()
    for fmt in formats:
        result = sql(case, "--format", fmt, text)
        assert result.exit_code == 0, result.output
        assert result.stdout == (tmp_path / f"direct.{fmt}").read_text(encoding="utf-8")
    written = sql(case, "--format", "parquet", "-o", str(tmp_path / "out.parquet"), text)
    assert written.exit_code == 0, written.output
    assert written.stderr == f"2 rows written to {tmp_path / 'out.parquet'}\n"
    back = duckdb.connect().execute(f"SELECT request_id, evidence FROM '{tmp_path}/out.parquet'")
    assert back.fetchall() == [("r1", '{"n": [1, 2]}'), ("r2", '{"n": [1, 2]}')]
    csv = sql(
        case,
        "--format",
        "csv",
        "-o",
        str(tmp_path / "out.csv"),
        "SELECT request_id FROM requests ORDER BY 1",
    )
    assert csv.exit_code == 0
    assert (tmp_path / "out.csv").read_text(encoding="utf-8") == "request_id\nr1\nr2\n"


def test_the_python_api_is_sandboxed_too(tmp_path: Path, case: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("local", encoding="utf-8")
    with forensics.open_case(case) as opened:
        assert opened.sql("SELECT count(*) AS n FROM requests")["n"].to_list() == [2]
        with pytest.raises(QueryError, match="Permission Error"):
            opened.sql(f"SELECT * FROM read_text('{secret}')")
        with pytest.raises(UsageError, match="COPY refused"):
            opened.sql(f"COPY requests TO '{tmp_path}/x.csv'")
        with pytest.raises(UsageError, match="2 statements"):
            opened.sql(f"ATTACH '{tmp_path}/other.duckdb' AS o; DELETE FROM o.t")
    assert other_rows(tmp_path) == 3
    assert not (tmp_path / "x.csv").exists()
