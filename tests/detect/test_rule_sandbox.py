"""Detectors read only the case: a rule that reads a file, the environment or a sequence is
refused by `detectors check` and fails at run time; a runaway rule is stopped by --timeout
while the others run; a YAML alias bomb is one problem, found fast. Issue 10's reproductions,
on real case files."""

from __future__ import annotations

import dataclasses
import resource
import time
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner, Result

import forensics.detect.guard
from forensics.case import db
from forensics.cli import cli
from forensics.detect.load import load_detectors
from forensics.detect.runner import run_detectors
from forensics.detect.yamlcheck import MAX_YAML_BYTES
from tests.conftest import rows, tables_containing

SECRET = "root:x:0:0:the machine's password file"

SQL = """\
SELECT 'tenant' AS principal_type, tenant_id AS principal_id, tenant_id,
    min(ts) AS window_start, max(ts) AS window_end, 50.0 AS score,
    {summary} AS summary,
    struct_pack(n := count(*)) AS evidence, list(request_id) AS sample_request_ids
FROM requests GROUP BY tenant_id
"""

YML = """\
id: {id}
title: A detector of the sandbox tests
description: It reads what its SQL reads.
severity: medium
principal_type: tenant
tables: [requests]
{extra}tests:
  - name: one request
    expect: fire
    format: kong
    events:
      - {{started_at: 1767225600123}}
  - name: nothing
    rows: 0
    events: []
"""

RUNAWAY = "(WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT max(n) FROM r)"


def rule(root: Path, detector_id: str, summary: str, extra: str = "") -> Path:
    """Write `<root>/<family>/<name>.sql` + `.yml`; the path of the .sql."""
    family, name = detector_id.split(".")
    folder = root / family
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yml").write_text(YML.format(id=detector_id, extra=extra), "utf-8")
    sql_path = folder / f"{name}.sql"
    sql_path.write_text(SQL.format(summary=summary), encoding="utf-8")
    return sql_path


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "passwd"
    path.write_text(SECRET + "\n", encoding="utf-8")
    return path


@pytest.fixture
def case(tmp_path: Path) -> Path:
    path = tmp_path / "case.duckdb"
    con = db.connect(path)
    con.execute(
        "INSERT INTO requests (ts, request_id, tenant_id) VALUES"
        " ('2026-01-05 10:00:00+00', 'r1', 'acme'), ('2026-01-05 11:00:00+00', 'r2', 'acme')"
    )
    con.close()
    return path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def check(rules: Path) -> Result:
    return invoke("detectors", "check", "--rules", str(rules), "--no-shipped")


def detect(case: Path, rules: Path, *args: str) -> Result:
    return invoke("--db", str(case), "detect", "--rules", str(rules), "--detector", "t.*", *args)


def test_a_detector_reading_a_file_is_refused_by_check(tmp_path: Path, secret: Path) -> None:
    rules = tmp_path / "rules"
    reads = rule(rules, "t.reads_file", f"(SELECT content FROM read_text('{secret}'))")
    csv = rule(rules, "t.reads_csv", f"(SELECT count(*) FROM read_csv('{secret}'))::VARCHAR")
    named = rule(rules, "t.names_file", f"(SELECT count(*) FROM '{secret}')::VARCHAR")
    listed = rule(rules, "t.globs", "(SELECT count(*) FROM glob('/etc/*'))::VARCHAR")
    nested = rule(rules, "t.sql_in_text", "(SELECT 1 FROM query('SELECT 1'))::VARCHAR")
    result = check(rules)
    files = "reads files; a detector only reads the case (files belong in `forensics ingest`)"
    assert result.exit_code == 1
    assert result.stdout.splitlines() == sorted(
        [
            f"{listed}:3: glob(): {files}",
            f"{named}:3: FROM '{secret}': {files}",
            f"{csv}:3: read_csv(): {files}",
            f"{reads}:3: read_text(): {files}",
            f"{nested}:3: query(): not a table function a detector may call; a detector only"
            " reads the case",
        ]
    )
    assert SECRET not in result.output


def test_sequences_environment_and_side_effects_are_refused_by_check(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    calls = {
        "t.nextval": ("nextval('source_ids')::VARCHAR", "advances a sequence of the case"),
        "t.currval": ("currval('source_ids')::VARCHAR", "reads a sequence of the case"),
        "t.getenv": ("getenv('HOME')", "reads the environment"),
        "t.setting": ("current_setting('home_directory')", "reads the engine's configuration"),
        "t.setseed": ("setseed(0.5)::VARCHAR", "has side effects"),
        "t.random": ("random()::VARCHAR", "has side effects"),
    }
    expected = []
    for detector_id, (call, why) in calls.items():
        path = rule(rules, detector_id, call)
        name = call.split("(")[0]
        expected.append(f"{path}:3: {name}(): {why}; a detector only reads the case")
    result = check(rules)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == sorted(expected)


def test_a_detector_reading_a_file_fails_at_run_and_nothing_of_it_is_stored(
    tmp_path: Path, case: Path, secret: Path
) -> None:
    rules = tmp_path / "rules"
    reads = rule(rules, "t.reads_file", f"(SELECT content FROM read_text('{secret}'))")
    rule(rules, "t.fine", "'two requests'")
    result = detect(case, rules)
    assert result.exit_code == 1
    message = (
        f"{reads}:3: read_text(): reads files; a detector only reads the case"
        " (files belong in `forensics ingest`)"
    )
    assert f"ERROR {message}" in result.stderr
    assert SECRET not in result.output
    con = db.connect(case, read_only=True)
    try:
        assert rows(con, "SELECT detector_id, status, error FROM run_detectors ORDER BY 1") == [
            {"detector_id": "t.fine", "status": "ok", "error": None},
            {"detector_id": "t.reads_file", "status": "failed", "error": message},
        ]
        assert rows(con, "SELECT detector_id, summary FROM findings") == [
            {"detector_id": "t.fine", "summary": "two requests"}
        ]
        assert tables_containing(con, "root:x:0:0") == []
    finally:
        con.close()


def test_the_sandboxed_connection_refuses_what_the_guard_would_miss(
    tmp_path: Path, case: Path, secret: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: with the parse-tree guard switched off, DuckDB itself refuses."""
    rules = tmp_path / "rules"
    rule(rules, "t.reads_file", f"(SELECT content FROM read_text('{secret}'))")
    [detector], problems = load_detectors([rules])
    assert problems == []
    monkeypatch.setattr(forensics.detect.guard.Guard, "judge", lambda self, calls: [])
    con = db.connect(case)
    try:
        result = run_detectors(con, [detector])
        error = result.errors["t.reads_file"]
        assert error.startswith(f"{detector.sql_path}: Permission Error: Cannot access file")
        assert "\n" not in error
        assert tables_containing(con, "root:x:0:0") == []
        with pytest.raises(duckdb.InvalidInputException, match="configuration has been locked"):
            con.execute("SET enable_external_access = true")
    finally:
        con.close()


def test_no_detector_changes_a_setting_before_the_run_locks_them(
    tmp_path: Path, case: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run locks the configuration only once its detectors have run (it sets the threads
    they share): a detector that tries to change a setting in the meantime, by a second
    statement or by a comment meant to end the SELECT early, changes nothing, even with the
    parse-tree guard of calls switched off."""
    rules = tmp_path / "rules"
    tries = {
        "t.second_statement": SQL.format(summary="'x'") + "; SET threads = 7",
        "t.comment_to_the_end": SQL.format(summary="'x'").rstrip()
        + " -- ) q) x); SET memory_limit = '17MB'; SELECT * FROM (SELECT 1",
        "t.pragma": "PRAGMA threads = 7",
        "t.comment_then_set": SQL.format(summary="'x'") + "/* ; */ ; RESET threads",
    }
    rule(rules, "t.plain", "'x'")
    [plain], problems = load_detectors([rules])
    assert problems == []
    for detector_id, text in tries.items():
        rule(rules, detector_id, "'x'").write_text(text, encoding="utf-8")
    _, problems = load_detectors([rules])  # loading refuses them first: the runner must too
    assert sorted(p.path.stem for p in problems) == [
        "comment_then_set",
        "pragma",
        "second_statement",
    ]
    detectors = [
        dataclasses.replace(plain, id=detector_id, sql=text) for detector_id, text in tries.items()
    ]
    monkeypatch.setattr(forensics.detect.guard.Guard, "judge", lambda self, calls: [])
    con = db.connect(case)
    con.execute("SET threads = 4")
    con.execute("SET memory_limit = '1GB'")
    setting = "SELECT current_setting('threads'), current_setting('memory_limit')"
    before = con.execute(setting).fetchall()
    try:
        result = run_detectors(con, detectors, workers=2)
        assert sorted(result.errors) == ["t.comment_then_set", "t.pragma", "t.second_statement"]
        assert all("must be exactly one SELECT" in e for e in result.errors.values())
        # the comment ends at the end of its line: what follows it in the file is not SQL
        assert result.findings == {"t.comment_to_the_end": 1}
        assert con.execute(setting).fetchall() == before
        with pytest.raises(duckdb.InvalidInputException, match="configuration has been locked"):
            con.execute("SET threads = 1")
    finally:
        con.close()


def test_nextval_fails_at_run_and_the_sequence_does_not_move(tmp_path: Path, case: Path) -> None:
    def last_value() -> object:
        con = db.connect(case, read_only=True)
        try:
            return con.execute(
                "SELECT last_value FROM duckdb_sequences() WHERE sequence_name = 'source_ids'"
            ).fetchall()
        finally:
            con.close()

    before = last_value()
    rules = tmp_path / "rules"
    rule(rules, "t.nextval", "nextval('source_ids')::VARCHAR")
    result = detect(case, rules)
    assert result.exit_code == 1
    assert "nextval(): advances a sequence of the case" in result.stderr
    assert last_value() == before


def test_a_runaway_detector_is_stopped_by_the_timeout_and_the_others_run(
    tmp_path: Path, case: Path
) -> None:
    rules = tmp_path / "rules"
    runaway = rule(rules, "t.runaway", f"{RUNAWAY}::VARCHAR")
    rule(rules, "t.quick", "'two requests'")
    started = time.monotonic()
    result = detect(case, rules, "--timeout", "2")
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    assert elapsed < 20, f"the runaway detector was not stopped ({elapsed:.1f} s)"
    message = f"{runaway}: stopped after 2 s, its time limit (raise it with --timeout SECONDS)"
    assert f"ERROR {message}" in result.stderr
    table = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:]}
    assert table["t.quick"][1] == "1" and table["t.quick"][-1] == "ok"
    assert table["t.runaway"][-1] == "error"
    con = db.connect(case, read_only=True)
    try:
        stored = rows(con, "SELECT detector_id, status, error, seconds FROM run_detectors")
        by_id = {r["detector_id"]: r for r in stored}
        assert by_id["t.runaway"]["status"] == "failed"
        assert by_id["t.runaway"]["error"] == message
        assert 2 <= float(str(by_id["t.runaway"]["seconds"])) < 10
        assert by_id["t.quick"]["status"] == "ok"
        assert rows(con, "SELECT status FROM runs") == [{"status": "errors"}]
    finally:
        con.close()


def test_the_timeout_must_be_positive(tmp_path: Path, case: Path) -> None:
    rules = tmp_path / "rules"
    rule(rules, "t.quick", "'two requests'")
    result = detect(case, rules, "--timeout", "0")
    assert result.exit_code == 2
    assert "Invalid value for '--timeout'" in result.stderr


BOMB = """\
params:
  size:
    type: string
    description: a billion laughs
    default:
      - &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]
      - &l1 [*l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0]
      - &l2 [*l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1]
      - &l3 [*l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2]
      - &l4 [*l3, *l3, *l3, *l3, *l3, *l3, *l3, *l3, *l3, *l3]
      - &l5 [*l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4]
      - &l6 [*l5, *l5, *l5, *l5, *l5, *l5, *l5, *l5, *l5, *l5]
      - &l7 [*l6, *l6, *l6, *l6, *l6, *l6, *l6, *l6, *l6, *l6]
      - &l8 [*l7, *l7, *l7, *l7, *l7, *l7, *l7, *l7, *l7, *l7]
"""


def test_a_yaml_alias_bomb_in_a_parameter_default_fails_fast(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rule(rules, "t.bomb", "'x'", extra=BOMB)
    yml = rules / "t" / "bomb.yml"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    detectors, problems = load_detectors([rules])
    elapsed = time.monotonic() - started
    assert detectors == []
    assert [str(p) for p in problems] == [
        f"{yml}:16: YAML refused: expands to more than 100,000 values through anchors and"
        " aliases (an alias bomb?)"
    ]
    assert elapsed < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 100_000  # KiB

    result = check(rules)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [str(problems[0])]


def test_a_detect_config_alias_bomb_is_one_line(tmp_path: Path, case: Path) -> None:
    rules = tmp_path / "rules"
    rule(rules, "t.quick", "'two requests'")
    config = tmp_path / "detect.yml"
    config.write_text(BOMB.replace("params:\n  size:", "detectors:\n  x:"), encoding="utf-8")
    result = detect(case, rules, "--config", str(config))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"Error: {config}:10: YAML refused: expands to more than 100,000 values through anchors"
        " and aliases (an alias bomb?)"
    ]


def test_yaml_over_the_size_limit_or_with_a_cycle_is_refused(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rule(rules, "t.big", "'x'", extra=f"references: ['{'x' * MAX_YAML_BYTES}']\n")
    rule(rules, "t.cycle", "'x'", extra="references: &loop [*loop]\n")
    _, problems = load_detectors([rules])
    size = len((rules / "t" / "big.yml").read_bytes())
    assert [str(p) for p in problems] == [
        f"{rules}/t/big.yml:1: YAML refused: {size:,} bytes; the limit is 1,000,000",
        f"{rules}/t/cycle.yml:7: YAML refused: an alias refers to the value that contains it",
    ]
