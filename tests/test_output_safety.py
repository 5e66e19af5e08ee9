"""Log strings on their way out: CSV cells that a spreadsheet would run as formulas, and
control characters that a terminal would act on."""

from __future__ import annotations

import csv
import io
import json

from click.testing import CliRunner

from forensics.cli import cli
from tests.ingest.test_kong import kong_record

FORMULAS = ['=HYPERLINK("http://evil.example","x")', "@SUM(A1:A9)", "+1+2", "-3+cmd", "\tx", "\rx"]


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def _case(tmp_path):
    """A case whose quarantine holds lines that start like formulas, and one good request."""
    log = tmp_path / "k.jsonl"
    log.write_text(json.dumps(kong_record()) + "\n" + "\n".join(FORMULAS[:4]) + "\n")
    case = str(tmp_path / "c.duckdb")
    # four of its five records are quarantined on purpose: keep the file all the same
    ingest = ("ingest", "-q", "--max-quarantine-share", "1", str(log))
    assert run("--db", case, *ingest).exit_code == 0
    return case


def test_csv_cells_that_start_a_formula_become_text(tmp_path):
    case = _case(tmp_path)
    out = run("--db", case, "quarantine", "--format", "csv")
    assert out.exit_code == 0, out.output
    raws = [row["raw"] for row in csv.DictReader(io.StringIO(out.stdout))]
    assert raws == ["'" + f for f in FORMULAS[:4]]
    raw = run("--db", case, "quarantine", "--format", "csv", "--raw-csv")
    assert [row["raw"] for row in csv.DictReader(io.StringIO(raw.stdout))] == FORMULAS[:4]


def test_csv_of_sql_keeps_numbers_and_neutralises_every_text_column(tmp_path):
    case = _case(tmp_path)
    cells = ", ".join(f"$${f}$$ AS c{i}" for i, f in enumerate(FORMULAS))
    out = run("--db", case, "sql", "--format", "csv", f"SELECT -5 AS n, 'ok' AS o, {cells}")
    assert out.exit_code == 0, out.output
    [row] = list(csv.reader(io.StringIO(out.stdout)))[1:]
    assert row[:2] == ["-5", "ok"]
    assert row[2:] == ["'" + f for f in FORMULAS]
    path = tmp_path / "out.csv"
    written = run("--db", case, "sql", "--format", "csv", "-o", str(path), "SELECT '=1+1' AS a")
    assert written.exit_code == 0 and path.read_text() == "a\n'=1+1\n"


def test_findings_csv_is_neutralised_too(tmp_path):
    case = _case(tmp_path)
    out = run("--db", case, "findings", "--format", "csv")
    assert out.exit_code == 0 and out.stdout.startswith("finding_id,")


def test_the_terminal_table_shows_control_characters_instead_of_running_them(tmp_path):
    case = _case(tmp_path)
    out = run(
        "--db",
        case,
        "sql",
        "SELECT chr(27) || '[2J' || chr(27) || ']0;pwned' || chr(7) || 'x' || chr(8238) AS ua",
    )
    assert out.exit_code == 0
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout and "\u202e" not in out.stdout
    assert "<U+001B>[2J<U+001B>]0;pwned<U+0007>x<U+202E>" in out.stdout
