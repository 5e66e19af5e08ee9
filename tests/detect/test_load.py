"""Loading and checking detectors: every problem at once, each at its path and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from forensics.cli.detectors import detectors as detectors_group
from forensics.detect.check import check_sql, scratch_case
from forensics.detect.load import load_detectors
from forensics.detect.model import Param, Problem, Severity
from forensics.errors import UsageError
from forensics.ingest.formats import FORMATS

GOOD_SQL = """\
-- testfam.many_requests: a tenant sending more than $min_requests requests.
SELECT
    'tenant' AS principal_type,
    tenant_id AS principal_id,
    tenant_id,
    min(ts) AS window_start,
    max(ts) AS window_end,
    50.0 AS score,
    format('{} requests', count(*)) AS summary,
    struct_pack(n := count(*)) AS evidence,
    list(request_id)[1:20] AS sample_request_ids
FROM requests
WHERE ($since IS NULL OR ts >= $since)
  AND ($tenant IS NULL OR tenant_id = $tenant)
GROUP BY tenant_id
HAVING count(*) > $min_requests
"""

GOOD_YML = """\
id: testfam.many_requests
title: Many requests from one tenant
description: >
  A tenant that sends more requests than the threshold.
severity: medium
severity_bounds: [low, high]
principal_type: tenant
tables: [requests]
attack: ["TA0040:T1496"]
params:
  min_requests: {default: 2, type: integer, description: requests before it fires}
references: ["https://example.org/rate-limits"]
status: experimental
runbook: |
  Look at the tenant's keys.
tests:
  - name: three requests
    expect: fire
    format: kong
    events:
      - {started_at: 1767225600123}
  - name: none
    rows: 0
    events: []
    params: {min_requests: 10}
"""


def write(root: Path, detector_id: str, sql: str | None = GOOD_SQL, yml: str | None = None) -> Path:
    """Write `<root>/<family>/<name>.sql|.yml`; the YAML defaults to GOOD_YML with this id."""
    family, name = detector_id.split(".")
    folder = root / family
    folder.mkdir(parents=True, exist_ok=True)
    if sql is not None:
        (folder / f"{name}.sql").write_text(sql, encoding="utf-8")
    if yml is None:
        yml = GOOD_YML.replace("testfam.many_requests", detector_id)
    if yml:
        (folder / f"{name}.yml").write_text(yml, encoding="utf-8")
    return folder


def problems_of(root: Path) -> list[tuple[str, int, str]]:
    _, problems = load_detectors([root])
    return [(str(p.path.relative_to(root)), p.line, p.message) for p in problems]


def one_problem(root: Path) -> tuple[str, int, str]:
    found = problems_of(root)
    assert len(found) == 1, found
    return found[0]


def test_a_valid_detector_loads_with_all_fields(tmp_path):
    folder = write(tmp_path, "testfam.many_requests")
    detectors, problems = load_detectors([tmp_path])
    assert problems == []
    [d] = detectors
    assert d.id == "testfam.many_requests"
    assert d.family == "testfam"
    assert d.title == "Many requests from one tenant"
    assert d.description == "A tenant that sends more requests than the threshold."
    assert d.severity is Severity.medium
    assert d.severity_bounds == (Severity.low, Severity.high)
    assert d.principal_type == "tenant"
    assert d.tables == ("requests",)
    assert d.attack == ("TA0040:T1496",)
    assert d.params == (Param("min_requests", 2, "integer", "requests before it fires"),)
    assert d.references == ("https://example.org/rate-limits",)
    assert d.status == "experimental"
    assert d.runbook == "Look at the tenant's keys.\n"
    assert d.sql == GOOD_SQL
    assert (d.sql_path, d.yml_path) == (folder / "many_requests.sql", folder / "many_requests.yml")
    fire, quiet = d.tests
    assert (fire.name, fire.expect, fire.rows, fire.format, fire.line) == (
        "three requests",
        "fire",
        None,
        "kong",
        17,
    )
    assert fire.events == ({"started_at": 1767225600123},)
    assert (quiet.name, quiet.expect, quiet.rows, quiet.format) == ("none", None, 0, "kong")
    assert quiet.params == {"min_requests": 10}
    assert len(d.version) == 64


def test_a_folder_with_only_gitkeep_gives_nothing(tmp_path):
    (tmp_path / ".gitkeep").touch()
    assert load_detectors([tmp_path]) == ([], [])


def test_the_shipped_folder_loads_without_raising():
    from forensics.detect.load import default_dirs
    from forensics.resources import shipped_dir

    assert default_dirs([Path("x")]) == [shipped_dir("queries"), Path("x")]
    _, problems = load_detectors(default_dirs([]))
    assert all(isinstance(p, Problem) for p in problems)


def test_lone_halves_are_reported_at_their_own_path(tmp_path):
    write(tmp_path, "testfam.only_sql", yml="")
    write(tmp_path, "testfam.only_yml", sql=None)
    assert problems_of(tmp_path) == [
        (
            "testfam/only_sql.sql",
            1,
            "no only_sql.yml next to it: a detector is a .sql and a .yml",
        ),
        (
            "testfam/only_yml.yml",
            1,
            "no only_yml.sql next to it: a detector is a .sql and a .yml",
        ),
    ]


def test_yaml_that_does_not_parse_gives_the_line_of_the_error(tmp_path):
    write(
        tmp_path,
        "testfam.bad",
        yml="id: testfam.bad\ntitle: x\ndescription: [unclosed\nseverity: high\n",
    )
    path, line, message = one_problem(tmp_path)
    assert (path, line) == ("testfam/bad.yml", 4)  # where the unclosed [ is found out
    # libyaml's wording (PyYAML's own parser, where libyaml is missing, says "expected ... but
    # got ':'")
    assert message in (
        "invalid YAML: did not find expected ',' or ']'",
        "invalid YAML: expected ',' or ']', but got ':'",
    )


def test_id_must_match_the_path(tmp_path):
    yml = GOOD_YML.replace("id: testfam.many_requests", "id: testfam.other")
    write(tmp_path, "testfam.many_requests", yml=yml)
    assert one_problem(tmp_path) == (
        "testfam/many_requests.yml",
        1,
        "id 'testfam.other' does not match the file: expected 'testfam.many_requests'",
    )


def test_duplicate_ids_across_folders(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    write(first, "testfam.many_requests")
    write(second, "testfam.many_requests")
    detectors, problems = load_detectors([first, second])
    assert [d.yml_path for d in detectors] == [first / "testfam" / "many_requests.yml"]
    assert [str(p) for p in problems] == [
        f"{second}/testfam/many_requests.yml:1: duplicate id 'testfam.many_requests':"
        f" already defined in {first}/testfam/many_requests.yml"
    ]


def test_missing_required_fields_and_unknown_fields(tmp_path):
    yml = GOOD_YML.replace("title: Many", "titel: Many").replace("principal_type: tenant\n", "")
    write(tmp_path, "testfam.many_requests", yml=yml)
    assert problems_of(tmp_path) == [
        ("testfam/many_requests.yml", 1, "missing required field 'title'"),
        ("testfam/many_requests.yml", 1, "missing required field 'principal_type'"),
        (
            "testfam/many_requests.yml",
            2,
            "the detector: unknown field 'titel' (did you mean 'title'?)",
        ),
    ]


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        (
            "severity: medium",
            "severity: urgent",
            5,
            "severity 'urgent' is not one of info, low, medium, high, critical",
        ),
        (
            "severity_bounds: [low, high]",
            "severity_bounds: [high, low]",
            6,
            "severity_bounds [high, low] are not in order (lowest first)",
        ),
        (
            "severity_bounds: [low, high]",
            "severity_bounds: [high, critical]",
            6,
            "severity 'medium' is outside severity_bounds [high, critical]",
        ),
        (
            "severity_bounds: [low, high]",
            "severity_bounds: [low]",
            6,
            "severity_bounds must be two severities, e.g. [medium, critical]",
        ),
        (
            "principal_type: tenant",
            "principal_type: key",
            7,
            "principal_type 'key' is not one of tenant, credential, user, ip, asn, cidr,"
            " provider_key",
        ),
        (
            "{default: 2, type: integer,",
            "{default: two, type: integer,",
            11,
            "params.min_requests: default 'two' is not an integer",
        ),
        (
            "{default: 2, type: integer,",
            "{default: 2, type: int,",
            11,
            "params.min_requests: type 'int' is not one of integer, number, string, boolean,"
            " timestamp, interval",
        ),
        (
            "{default: 2, type: integer, description: requests before it fires}",
            "{default: 2, type: integer}",
            11,
            "params.min_requests: missing 'description'",
        ),
        (
            "    expect: fire\n",
            "    expect: fire\n    rows: 3\n",
            17,
            "test 'three requests': give exactly one of expect (fire | quiet | suppressed) or rows (N)",
        ),
        (
            "    format: kong",
            "    format: apache",
            19,
            "test 'three requests': format 'apache' is not an ingest format ("
            + ", ".join(sorted(FORMATS))
            + ")",
        ),
        (
            "    events: []\n",
            "    events: {}\n",
            24,
            "test 'none': events must be a list",
        ),
        (
            "    params: {min_requests: 10}",
            "    params: {min_request: 10}",
            25,
            "test 'none': params.min_request is not a parameter of this detector",
        ),
        (
            "    rows: 0",
            "    rows: 1",
            16,
            "tests need a quiet case (expect: quiet, or rows: 0)",
        ),
        (
            "    expect: fire",
            "    expect: quiet",
            16,
            "tests need a firing case (expect: fire, or rows > 0)",
        ),
    ],
)
def test_each_bad_field_is_reported_at_its_line(tmp_path, old, new, line, message):
    assert old in GOOD_YML
    yml = GOOD_YML.replace(old, new)
    write(tmp_path, "testfam.many_requests", yml=yml)
    found = problems_of(tmp_path)
    assert ("testfam/many_requests.yml", line, message) in found, found


def test_tests_key_line_for_missing_cases(tmp_path):
    yml = GOOD_YML.replace("    expect: fire", "    expect: quiet")
    write(tmp_path, "testfam.many_requests", yml=yml)
    assert one_problem(tmp_path) == (
        "testfam/many_requests.yml",
        16,
        "tests need a firing case (expect: fire, or rows > 0)",
    )


def test_every_problem_is_listed_at_once(tmp_path):
    write(tmp_path, "testfam.first", yml="id: [unclosed\n")
    write(tmp_path, "testfam.second", sql="DELETE FROM requests")
    write(tmp_path, "other.third", yml=GOOD_YML.replace("severity: medium", "severity: huge"))
    detectors, problems = load_detectors([tmp_path])
    assert detectors == []
    assert [(p.path.relative_to(tmp_path).as_posix(), p.line) for p in problems] == [
        ("other/third.yml", 1),  # id still says testfam.many_requests
        ("other/third.yml", 5),
        ("testfam/first.yml", 2),
        ("testfam/second.sql", 1),
    ]


@pytest.mark.parametrize(
    ("sql", "line", "message"),
    [
        ("INSERT INTO findings SELECT * FROM findings", 1, "expected a SELECT, found INSERT"),
        (
            "-- looks harmless\nWITH x AS (SELECT 1) DELETE FROM requests",
            2,
            "expected a SELECT, found DELETE",
        ),
        ("\n\nCOPY requests TO 'out.csv'", 3, "expected a SELECT, found COPY"),
        ("ATTACH 'other.duckdb'", 1, "expected a SELECT, found ATTACH"),
        ("PRAGMA version", 1, "expected a SELECT, found PRAGMA"),
        ("SET threads = 1", 1, "expected a SELECT, found SET"),
        ("DROP TABLE requests", 1, "expected a SELECT, found DROP"),
        ("CREATE TABLE x AS SELECT 1", 1, "expected a SELECT, found CREATE"),
    ],
)
def test_a_detector_that_writes_is_rejected(tmp_path, sql, line, message):
    write(tmp_path, "testfam.many_requests", sql=sql)
    assert ("testfam/many_requests.sql", line, f"a detector only reads: {message}") in problems_of(
        tmp_path
    )


def test_one_statement_only(tmp_path):
    write(tmp_path, "testfam.many_requests", sql=GOOD_SQL + ";\n\nSELECT 1;\n")
    assert one_problem(tmp_path) == (
        "testfam/many_requests.sql",
        19,
        "a detector is one SELECT; found 2 statements",
    )


def test_sql_that_does_not_parse(tmp_path):
    write(tmp_path, "testfam.many_requests", sql="SELECT 1\nFROM requests WHERE (\n")
    path, line, message = one_problem(tmp_path)
    assert path == "testfam/many_requests.sql"
    assert message.startswith("Parser Error: ")


def test_parameters_must_be_declared_and_used(tmp_path):
    sql = GOOD_SQL.replace("count(*) > $min_requests", "count(*) > $min_request")
    write(tmp_path, "testfam.many_requests", sql=sql)
    assert problems_of(tmp_path) == [
        (
            "testfam/many_requests.sql",
            16,
            "$min_request is not declared under params: in the .yml",
        ),
        (
            "testfam/many_requests.yml",
            11,
            "params.min_requests: declared but the SQL never uses $min_requests",
        ),
    ]


def test_binder_error_names_the_column_and_line(tmp_path):
    write(tmp_path, "testfam.many_requests", sql=GOOD_SQL.replace("min(ts)", "min(tss)"))
    detectors, problems = load_detectors([tmp_path])
    assert problems == []
    with scratch_case() as con:
        found = check_sql(detectors, con)
    assert [(p.path.name, p.line) for p in found] == [("many_requests.sql", 6)]
    assert found[0].message.startswith('Binder Error: Referenced column "tss" not found')
    assert 'Candidate bindings: "ts"' in found[0].message  # DuckDB's suggestion is kept
    assert "\n" not in found[0].message


def test_missing_contract_columns_and_unknown_tables(tmp_path):
    sql = GOOD_SQL.replace("    50.0 AS score,\n", "").replace(
        "AS sample_request_ids", "AS request_ids"
    )
    write(
        tmp_path,
        "testfam.many_requests",
        sql=sql,
        yml=GOOD_YML.replace("tables: [requests]", "tables: [requests, reqs]"),
    )
    detectors, problems = load_detectors([tmp_path])
    assert problems == []
    with scratch_case() as con:
        found = check_sql(detectors, con)
    assert sorted((p.path.name, p.line, p.message) for p in found) == [
        (
            "many_requests.sql",
            1,
            "the SELECT lacks contract columns: score, sample_request_ids",
        ),
        ("many_requests.yml", 8, "tables: no table 'reqs' in a case"),
    ]


def test_a_good_detector_binds_cleanly(tmp_path):
    write(tmp_path, "testfam.many_requests")
    detectors, _ = load_detectors([tmp_path])
    with scratch_case() as con:
        assert check_sql(detectors, con) == []


# --- the `forensics detectors` commands ----------------------------------------------------


def invoke(tmp_path: Path, *args: str):
    runner = CliRunner()
    return runner.invoke(
        detectors_group, list(args), obj={"db": tmp_path / "c.duckdb", "debug": False}
    )


def test_check_lists_every_problem_and_exits_1(tmp_path):
    rules = tmp_path / "rules"
    write(rules, "testfam.many_requests", sql=GOOD_SQL.replace("min(ts)", "min(tss)"))
    write(rules, "testfam.lonely", yml="")
    result = invoke(tmp_path, "check", "--rules", str(rules), "--no-shipped")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert (
        lines[0]
        == f"{rules}/testfam/lonely.sql:1: no lonely.yml next to it: a detector is a .sql and a .yml"
    )
    assert lines[1].startswith(
        f'{rules}/testfam/many_requests.sql:6: Binder Error: Referenced column "tss" not found'
    )
    assert len(lines) == 2
    assert result.stderr == "2 problems in 2 detectors\n"
    assert not (tmp_path / "c.duckdb").exists()


def test_check_on_a_good_folder_exits_0(tmp_path):
    rules = tmp_path / "rules"
    write(rules, "testfam.many_requests")
    write(rules, "testfam.again")
    result = invoke(tmp_path, "check", "--rules", str(rules), "--no-shipped")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "2 detectors, no problems\n")


def test_check_includes_the_shipped_folder_by_default(tmp_path):
    rules = tmp_path / "rules"
    write(rules, "testfam.many_requests")
    result = invoke(tmp_path, "check", "--rules", str(rules))
    assert result.exit_code in (0, 1)
    assert "testfam" not in result.stdout


def test_list_as_table_and_json(tmp_path):
    rules = tmp_path / "rules"
    write(rules, "testfam.many_requests")
    result = invoke(tmp_path, "list", "--rules", str(rules), "--no-shipped")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "id                     severity  principal  status        title",
        "---------------------  --------  ---------  ------------  -----------------------------",
        "testfam.many_requests  medium    tenant     experimental  Many requests from one tenant",
    ]
    assert result.stderr == ""
    result = invoke(tmp_path, "list", "--rules", str(rules), "--no-shipped", "--format", "json")
    [record] = json.loads(result.stdout)
    assert record["id"] == "testfam.many_requests"
    assert record["params"] == {"min_requests": 2}


def test_list_warns_about_left_out_detectors_on_stderr(tmp_path):
    rules = tmp_path / "rules"
    write(rules, "testfam.many_requests")
    write(rules, "testfam.lonely", yml="")
    result = invoke(tmp_path, "list", "--rules", str(rules), "--no-shipped")
    assert result.exit_code == 0
    assert "lonely" not in result.stdout
    assert result.stderr == "1 problem in 1 detector left out; see `forensics detectors check`\n"


def test_show_prints_metadata_params_runbook_then_sql(tmp_path):
    rules = tmp_path / "rules"
    write(rules, "testfam.many_requests")
    result = invoke(
        tmp_path, "show", "testfam.many_requests", "--rules", str(rules), "--no-shipped"
    )
    assert result.exit_code == 0
    out = result.stdout
    assert out.startswith("id:         testfam.many_requests\n")
    assert "severity:   medium (may move within low..high)\n" in out
    assert "min_requests  integer  2        requests before it fires" in out
    assert out.index("Parameters") < out.index("Runbook") < out.index("SQL (many_requests.sql)")
    assert out.endswith(GOOD_SQL)


def test_show_unknown_id_is_a_usage_error(tmp_path):
    rules = tmp_path / "rules"
    write(rules, "testfam.many_requests")
    result = invoke(tmp_path, "show", "testfam.many_request", "--rules", str(rules), "--no-shipped")
    assert isinstance(result.exception, UsageError)
    assert str(result.exception) == (
        "no detector 'testfam.many_request' (did you mean 'testfam.many_requests'?)"
    )


def test_every_command_has_an_example():
    for command in [detectors_group, *detectors_group.commands.values()]:
        assert "Example:" in (command.help or ""), command.name
