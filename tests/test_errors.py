"""DuckDB's errors keep their suggestions and caret; the CLI prints a hint over several lines."""

from __future__ import annotations

import subprocess
import sys

import click
import duckdb
from click.testing import CliRunner

from forensics.case import db
from forensics.cli import ForensicsGroup, cli
from forensics.errors import (
    ExitCode,
    ForensicsError,
    QueryError,
    describe_duckdb_error,
    duckdb_error,
)
from tests.keys import KEYS


def duckdb_failure(sql: str) -> duckdb.Error:
    con = duckdb.connect()
    con.execute("CREATE TABLE requests (request_id VARCHAR, tenant_id VARCHAR, ts TIMESTAMP)")
    try:
        con.execute(sql)
    except duckdb.Error as e:
        return e
    finally:
        con.close()
    raise AssertionError(f"DuckDB accepted {sql!r}")


class TextError(Exception):
    """An error whose text is given, for shapes DuckDB prints only for some versions."""


def test_did_you_mean_and_the_caret_are_kept():
    error = duckdb_error(duckdb_failure("SELECT * FROM reqests"))
    assert isinstance(error, QueryError) and error.exit_code == ExitCode.ERROR
    assert str(error) == "Catalog Error: Table with name reqests does not exist!"
    assert error.hint == (
        'Did you mean "requests"?\nLINE 1: SELECT * FROM reqests\n                      ^^^^^^^'
    )
    assert error.line == 1


def test_where_prefixes_the_message_and_the_line_is_duckdbs():
    error = duckdb_error(
        duckdb_failure("SELECT\n  request_id,\n  tenat_id\nFROM requests"), "queries/a/b.sql"
    )
    assert str(error) == (
        'queries/a/b.sql: Binder Error: Referenced column "tenat_id" not found in FROM clause!'
    )
    assert error.line == 3
    hint = (error.hint or "").splitlines()
    assert hint[0].startswith("Candidate bindings: ") and '"tenant_id"' in hint[0]
    assert hint[1:] == ["LINE 3:   tenat_id", "          ^^^^^^^^"]


def test_the_doubled_colon_of_candidate_bindings_is_compacted():
    error = duckdb_error(duckdb_failure("SELECT r.x FROM requests r"))
    assert (error.hint or "").startswith('Candidate bindings: "')


def test_candidate_lists_are_indented_and_capped():
    text = (
        "Binder Error: No function matches 'f(INTEGER_LITERAL)'.\n"
        "\tCandidate functions:\n"
        + "".join(f"\tf(x TYPE{i}) -> VARCHAR\n" for i in range(8))
        + "\n\nLINE 1: SELECT f(1)\n               ^^^^"
    )
    error = duckdb_error(TextError(text))
    assert error.hint == (
        "Candidate functions:\n"
        "  f(x TYPE0) -> VARCHAR\n"
        "  f(x TYPE1) -> VARCHAR\n"
        "  f(x TYPE2) -> VARCHAR\n"
        "  f(x TYPE3) -> VARCHAR\n"
        "  f(x TYPE4) -> VARCHAR\n"
        "  ... and 3 more\n"
        "LINE 1: SELECT f(1)\n"
        "               ^^^^"
    )
    assert describe_duckdb_error(TextError(text)) == (
        "Binder Error: No function matches 'f(INTEGER_LITERAL)'. Candidate functions:"
        " f(x TYPE0) -> VARCHAR; f(x TYPE1) -> VARCHAR; f(x TYPE2) -> VARCHAR;"
        " f(x TYPE3) -> VARCHAR; f(x TYPE4) -> VARCHAR; ... and 3 more"
    )


def test_describe_is_one_line_with_the_suggestions():
    error = duckdb_failure("SELECT * FROM reqests")
    assert describe_duckdb_error(error, "rules/x/y.sql") == (
        "rules/x/y.sql: Catalog Error: Table with name reqests does not exist!"
        ' Did you mean "requests"?'
    )


def test_an_error_without_notes_has_no_hint():
    error = duckdb_error(duckdb_failure("SELECT $x"))
    assert str(error).startswith("Invalid Input Error: ")
    assert (error.hint, error.line) == (None, None)
    assert describe_duckdb_error(TextError("")) == "TextError"


def test_errors_module_does_not_import_duckdb():
    code = (
        "import sys, forensics.cli, forensics.errors, forensics.times;"
        " assert 'duckdb' not in sys.modules, 'duckdb imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def failing(error: ForensicsError) -> click.Group:
    @click.group(cls=ForensicsGroup)
    def group() -> None:
        pass

    @group.command()
    def boom() -> None:
        raise error

    return group


def test_a_hint_over_several_lines_lines_up_under_the_first():
    result = CliRunner().invoke(failing(ForensicsError("bad", hint="one\n  two\nthree")), ["boom"])
    assert result.exit_code == 1
    assert result.stderr == "Error: bad\nHint: one\n        two\n      three\n"


def test_a_hint_is_redacted_like_the_message():
    key = KEYS["openai-project"]
    group = failing(ForensicsError(f"bad {key}", hint=f"near {key}"))
    result = CliRunner().invoke(group, ["boom"])
    assert key not in result.stderr
    assert result.stderr == "Error: bad [REDACTED]\nHint: near [REDACTED]\n"


def test_sql_on_a_case_shows_did_you_mean(tmp_path):
    case = tmp_path / "c.duckdb"
    db.connect(case).close()
    result = CliRunner().invoke(cli, ["--db", str(case), "sql", "SELECT * FROM reqests"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "Error: Catalog Error: Table with name reqests does not exist!\n"
        'Hint: Did you mean "requests"?\n'
        "      LINE 1: SELECT * FROM reqests\n"
        "                            ^^^^^^^\n"
    )
    assert "Traceback" not in result.output
    line, caret = result.stderr.splitlines()[2:]
    assert caret.index("^") == line.index("reqests")
    debug = CliRunner().invoke(cli, ["--db", str(case), "--debug", "sql", "SELECT * FROM reqests"])
    assert isinstance(debug.exception, QueryError)  # --debug lets it through, with its cause
    assert isinstance(debug.exception.__cause__, duckdb.CatalogException)
