"""Opening a case: a blank DuckDB file (a creation killed before it committed) becomes a case;
a DuckDB file of something else is refused in one line."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from forensics.case import db
from forensics.errors import CaseError


def test_a_blank_duckdb_file_becomes_a_case(tmp_path: Path) -> None:
    path = tmp_path / "killed.duckdb"
    duckdb.connect(str(path)).close()  # what a kill -9 during creation leaves
    con = db.connect(path)
    try:
        keys = {k for (k,) in con.execute("SELECT key FROM meta").fetchall()}
        assert {"schema_version", "fingerprint_salt"} <= keys
    finally:
        con.close()


def test_another_duckdb_file_is_refused_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    other = duckdb.connect(str(path))
    other.execute("CREATE TABLE mine AS SELECT 42 AS answer")
    other.close()
    with pytest.raises(CaseError, match="a DuckDB file, but not a forensics case"):
        db.connect(path)
    check = duckdb.connect(str(path), read_only=True)
    try:
        assert check.execute("SELECT * FROM mine").fetchall() == [(42,)]
        assert {
            t for (t,) in check.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        } == {"mine"}
    finally:
        check.close()


def test_a_blank_file_opened_read_only_is_not_a_case(tmp_path: Path) -> None:
    path = tmp_path / "blank.duckdb"
    duckdb.connect(str(path)).close()
    with pytest.raises(CaseError):
        db.connect(path, read_only=True)


def _made_case(tmp_path: Path) -> Path:
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "case.duckdb"
    db.connect(path).close()
    return path


def _run(path: Path, *args: str):
    from click.testing import CliRunner

    from forensics.cli import cli

    return CliRunner().invoke(cli, ["--db", str(path), *args])


def test_a_truncated_case_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = _made_case(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    for args in (["findings"], ["report", "weekly", "-o", str(tmp_path / "w.html")], ["sources"]):
        result = _run(path, *args)
        assert result.exit_code == 1, args
        assert result.output.startswith(f"Error: {path}: "), result.output
        assert "Traceback" not in result.output


def test_a_case_without_its_salt_or_a_table_is_damaged(tmp_path: Path) -> None:
    path = _made_case(tmp_path)
    raw = duckdb.connect(str(path))
    raw.execute("DELETE FROM meta WHERE key = 'fingerprint_salt'")
    raw.close()
    result = _run(path, "findings")
    assert result.exit_code == 1 and "damaged case: its fingerprint salt" in result.output
    path = _made_case(tmp_path / "b")
    raw = duckdb.connect(str(path))
    raw.execute("DROP TABLE findings CASCADE")
    raw.close()
    for read_only in (True, False):
        with pytest.raises(CaseError, match="damaged case: table findings missing"):
            db.connect(path, read_only=read_only)


def test_schema_documents_every_view_of_a_case_and_never_cuts_a_description(tmp_path):
    from click.testing import CliRunner

    from forensics.case.schema import TABLES, VIEWS
    from forensics.cli import cli

    con = db.connect(tmp_path / "c.duckdb")
    try:
        views = {
            r[0]
            for r in con.execute(
                "SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary"
            ).fetchall()
        }
    finally:
        con.close()
    assert views == {name for name, _ in VIEWS}
    res = CliRunner().invoke(cli, ["schema"], env={"COLUMNS": "80"})
    longest = max((c.description for t in TABLES for c in t.columns), key=len)
    assert longest in res.stdout and all(name in res.stdout for name, _ in VIEWS)
