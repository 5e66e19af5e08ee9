"""`forensics findings` / `forensics incidents`: the column contract, filters, OCSF, --fail-on."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner, Result

from forensics.case import db
from forensics.cli.findings import findings, incidents
from forensics.detect.coverage import shipped_pack
from forensics.errors import ExitCode, UsageError
from forensics.findings.export import FINDING_COLUMNS, INCIDENT_COLUMNS
from forensics.findings.ocsf import REQUIRED_2004, to_ocsf, validate

EVIL = "x'; drop table findings; --"

FINDINGS_SQL = """
INSERT INTO findings (finding_id, detector_id, detector_version, run_id, severity, score,
                      principal_type, principal_id, tenant_id, window_start, window_end, summary,
                      evidence, est_cost_usd, suppressed, suppressed_by) VALUES
  ('f1', 'credential.use_after_revocation', 'v1', 'r1', 'high', 81.5, 'credential', 'cred-1',
   'acme', '2026-01-01 08:00:00+00', '2026-01-01 09:00:00+00',
   'Credential used 40 minutes after revocation', '{"uses": 12, "asns": [64500, 64501]}',
   1.25, false, NULL),
  ('f2', 'network.asn_spread', 'v1', 'r1', 'critical', 97, 'ip', '203.0.113.7',
   'acme', '2026-01-01 08:00:00+00', '2026-01-01 10:00:00+00',
   'One address behind 14 credentials', '{"credentials": 14}', NULL, false, NULL),
  ('f3', 'cost.spike', 'v1', 'r1', 'low', 30, 'tenant', 'beta',
   'beta', '2026-01-02 00:00:00+00', '2026-01-02 06:00:00+00',
   'Spend 5x the baseline', '{"ratio": 5.0}', 310.0, false, NULL),
  ('f4', 'credential.shared', 'v1', 'r1', 'high', 75, 'credential', 'cred-2',
   'beta', '2026-01-01 12:00:00+00', '2026-01-01 13:00:00+00',
   'Credential used from 9 countries', '{"countries": 9}', NULL, true,
   'ip 198.51.100.1: office egress'),
  ('f5', 'credential.shared', 'v1', NULL, 'info', 5, 'credential', 'cred-3',
   'x''; drop table findings; --', '2026-01-03 00:00:00+00', '2026-01-03 01:00:00+00',
   'Odd tenant name', '{}', NULL, false, NULL)
"""

INCIDENTS_SQL = """
INSERT INTO incidents (incident_id, principal_type, principal_id, tenant_id, first_seen,
                       last_seen, score, severity, detectors, finding_ids, est_cost_usd) VALUES
  ('i1', 'tenant', 'acme', 'acme', '2026-01-01 08:00:00+00', '2026-01-01 10:00:00+00', 97,
   'critical', ['credential.use_after_revocation', 'network.asn_spread'], ['f1', 'f2'], 1.25),
  ('i2', 'tenant', 'beta', 'beta', '2026-01-02 00:00:00+00', '2026-01-02 06:00:00+00', 30,
   'low', ['cost.spike'], ['f3'], 310.0)
"""

RUN_FINISHED = dt.datetime(2026, 1, 4, 12, 0, 0, 250000, tzinfo=dt.UTC)


@pytest.fixture
def case_path(tmp_path: Path) -> Path:
    path = tmp_path / "c.duckdb"
    con = db.connect(path)
    con.execute(FINDINGS_SQL)
    con.execute(INCIDENTS_SQL)
    con.execute(
        "INSERT INTO runs (run_id, started_at, finished_at, tool_version, detectors, params,"
        " sources, status, errors) VALUES ('r1', $s, $f, '0.1.0', '{}', '{}',"
        " '[{\"source_id\": 1, \"sha256\": \"00\"}]', 'ok', '{}')",
        {"s": RUN_FINISHED - dt.timedelta(minutes=1), "f": RUN_FINISHED},
    )
    # the evidence the run read: one log with requests of both tenants over the three days,
    # and every detector of the pack in the run (so --fail-on judges findings, not coverage)
    con.execute(
        "INSERT INTO sources (source_id, path, sha256, format, kind) VALUES"
        " (1, '/logs/gw.log', '00', 'combined', 'requests')"
    )
    con.execute(
        "INSERT INTO requests (ts, source_id, line_no, tenant_id)"
        " SELECT TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_hours(h), 1, h + 1,"
        " CASE WHEN h % 2 = 0 THEN 'acme' ELSE 'beta' END FROM range(72) t(h)"
    )
    con.execute(
        "INSERT INTO run_detectors (run_id, detector_id, status) SELECT 'r1', unnest($ids), 'ok'",
        {"ids": shipped_pack()},
    )
    con.close()
    return path


def run(cmd: object, path: Path, *args: str) -> Result:
    return CliRunner().invoke(cmd, list(args), obj={"db": path, "debug": False})  # type: ignore[arg-type]


def jsonl(result: Result) -> list[dict[str, object]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def ids(result: Result, key: str = "finding_id") -> list[object]:
    return [r[key] for r in jsonl(result)]


def test_jsonl_has_exactly_the_contract_fields_and_evidence_as_object(case_path: Path) -> None:
    rows = jsonl(run(findings, case_path, "--format", "jsonl"))
    assert [r["finding_id"] for r in rows] == ["f2", "f1", "f3", "f5"]  # time, then severity
    for r in rows:
        assert list(r) == list(FINDING_COLUMNS)
        assert isinstance(r["evidence"], dict)
    first = rows[1]
    assert first["evidence"] == {"uses": 12, "asns": [64500, 64501]}
    assert first["severity"] == "high"
    assert first["score"] == 81.5
    assert first["suppressed"] is False


def test_json_array_embeds_evidence_as_object(case_path: Path) -> None:
    result = run(findings, case_path, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["finding_id"] for r in rows] == ["f2", "f1", "f3", "f5"]
    assert rows[0]["evidence"] == {"credentials": 14}


def test_csv_and_table_and_parquet(case_path: Path, tmp_path: Path) -> None:
    csv = run(findings, case_path, "--format", "csv")
    assert csv.exit_code == 0, csv.output
    assert csv.stdout.splitlines()[0] == ",".join(FINDING_COLUMNS)
    table = run(findings, case_path)
    assert table.exit_code == 0, table.output
    assert "credential.use_after_revocation" in table.stdout
    no_file = run(findings, case_path, "--format", "parquet")
    assert isinstance(no_file.exception, UsageError)
    out = tmp_path / "f.parquet"
    result = run(findings, case_path, "--format", "parquet", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # stdout carries data only; the count goes to stderr
    con = duckdb.connect()
    names = [
        d[0] for d in con.execute("SELECT * FROM read_parquet($p)", {"p": str(out)}).description
    ]
    assert names == list(FINDING_COLUMNS)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--severity", "high"], ["f2", "f1"]),
        (["--severity", "HIGH", "--include-suppressed"], ["f2", "f1", "f4"]),
        (["--severity", "critical"], ["f2"]),
        (["--detector", "credential.*"], ["f1", "f5"]),
        (["--detector", "cost.*", "--detector", "network.asn_*"], ["f2", "f3"]),
        (["--detector", "nothing.*"], []),
        (["--tenant", "acme"], ["f2", "f1"]),
        (["--tenant", "beta"], ["f3"]),
        (["--tenant", "beta", "--include-suppressed"], ["f4", "f3"]),
        (["--since", "2026-01-01T09:30:00Z"], ["f2", "f3", "f5"]),
        (["--until", "2026-01-01T23:59:59+00:00"], ["f2", "f1"]),
        (["--since", "2026-01-02", "--until", "2026-01-02 03:00"], ["f3"]),
        (["--include-suppressed"], ["f2", "f1", "f4", "f3", "f5"]),
    ],
)
def test_filters(case_path: Path, args: list[str], expected: list[str]) -> None:
    assert ids(run(findings, case_path, "--format", "jsonl", *args)) == expected


def test_tenant_value_is_bound_not_pasted(case_path: Path) -> None:
    rows = jsonl(run(findings, case_path, "--format", "jsonl", "--tenant", EVIL))
    assert [r["finding_id"] for r in rows] == ["f5"]
    assert rows[0]["tenant_id"] == EVIL
    for glob in ("*' OR 1=1 --", EVIL):
        assert ids(run(findings, case_path, "--format", "jsonl", "--detector", glob)) == []
    con = db.connect(case_path, read_only=True)
    assert con.execute("SELECT count(*) FROM findings").fetchone() == (5,)
    con.close()


def test_bad_times_are_usage_errors(case_path: Path) -> None:
    bad = run(findings, case_path, "--since", "yesterday")
    assert isinstance(bad.exception, UsageError)
    assert bad.exception.exit_code == ExitCode.USAGE
    backwards = run(findings, case_path, "--since", "2026-01-02", "--until", "2026-01-01")
    assert isinstance(backwards.exception, UsageError)


def test_ocsf_objects_validate_and_map_severity_and_status(case_path: Path) -> None:
    objs = jsonl(run(findings, case_path, "--format", "ocsf", "--include-suppressed"))
    by_uid = {o["finding_info"]["uid"]: o for o in objs}  # type: ignore[index]
    assert sorted(by_uid) == ["f1", "f2", "f3", "f4", "f5"]
    for obj in objs:
        assert validate(obj) == []
        assert obj["class_uid"] == 2004
        assert obj["category_uid"] == 2
        assert obj["type_uid"] == 200401
        assert obj["activity_id"] == 1
    assert {uid: o["severity_id"] for uid, o in by_uid.items()} == {
        "f1": 4,
        "f2": 5,
        "f3": 2,
        "f4": 4,
        "f5": 1,
    }
    assert by_uid["f4"]["status_id"] == 3
    assert by_uid["f4"]["is_alert"] is False
    assert by_uid["f4"]["unmapped"]["suppressed_by"] == "ip 198.51.100.1: office egress"  # type: ignore[index]
    assert by_uid["f1"]["status_id"] == 1
    assert by_uid["f1"]["is_alert"] is True

    f1 = by_uid["f1"]
    assert f1["time"] == 1767528000250  # the run's finish, in epoch ms
    assert f1["start_time"] == 1767254400000
    assert f1["end_time"] == 1767258000000
    assert f1["risk_score"] == 82
    assert f1["finding_info"]["analytic"] == {  # type: ignore[index]
        "uid": "credential.use_after_revocation",
        "name": "credential.use_after_revocation",
        "type_id": 1,
    }
    assert f1["finding_info"]["types"] == ["credential"]  # type: ignore[index]
    assert f1["finding_info"]["title"] == "Credential used 40 minutes after revocation"  # type: ignore[index]
    assert f1["resources"] == [{"uid": "cred-1", "type": "credential", "labels": ["tenant:acme"]}]
    assert "observables" not in f1
    assert f1["unmapped"]["evidence"] == {"uses": 12, "asns": [64500, 64501]}  # type: ignore[index]
    assert f1["metadata"]["version"] == "1.5.0"  # type: ignore[index]
    assert f1["metadata"]["product"]["name"] == "forensics"  # type: ignore[index]

    f2 = by_uid["f2"]
    assert f2["observables"] == [
        {"name": "resources.uid", "type_id": 2, "type": "IP Address", "value": "203.0.113.7"}
    ]


def test_ocsf_default_excludes_suppressed_and_writes_to_file(
    case_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "f.ocsf.jsonl"
    result = run(findings, case_path, "--format", "ocsf", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    objs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [o["finding_info"]["uid"] for o in objs] == ["f2", "f1", "f3", "f5"]
    assert all(o["status_id"] == 1 for o in objs)


def test_ocsf_time_without_a_run_is_now() -> None:
    now = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    obj = to_ocsf({"finding_id": "x", "severity": "bogus", "detector_id": "a.b"}, "9.9", now=now)
    assert validate(obj) == []
    assert obj["time"] == 1769904000000
    assert obj["severity_id"] == 0


def test_validate_lists_missing_required_attributes() -> None:
    assert validate({}) == [f"missing required attribute {p}" for p in REQUIRED_2004]
    obj = to_ocsf({"finding_id": "x", "severity": "low", "detector_id": "a.b"}, "1.0")
    del obj["finding_info"]["uid"]
    obj["type_uid"] = 200402
    assert validate(obj) == [
        "missing required attribute finding_info.uid",
        "type_uid is 200402, not class_uid * 100 + activity_id",
    ]


def test_fail_on(case_path: Path) -> None:
    hit = run(findings, case_path, "--format", "jsonl", "--fail-on", "high")
    assert hit.exit_code == ExitCode.FINDINGS
    assert len(hit.stdout.splitlines()) == 4  # the data is written first
    assert run(findings, case_path, "--fail-on", "critical").exit_code == ExitCode.FINDINGS
    # tenant beta: its only high finding is suppressed, shown or not
    assert run(findings, case_path, "--tenant", "beta", "--fail-on", "high").exit_code == 0
    assert (
        run(
            findings, case_path, "--tenant", "beta", "--include-suppressed", "--fail-on", "high"
        ).exit_code
        == 0
    )
    assert run(findings, case_path, "--tenant", "beta", "--fail-on", "low").exit_code == 3
    assert run(findings, case_path, "--fail-on", "info", "--detector", "x.*").exit_code == 0


def test_incidents(case_path: Path) -> None:
    rows = jsonl(run(incidents, case_path, "--format", "jsonl"))
    assert [r["incident_id"] for r in rows] == ["i1", "i2"]
    assert all(list(r) == list(INCIDENT_COLUMNS) for r in rows)
    assert rows[0]["detectors"] == ["credential.use_after_revocation", "network.asn_spread"]
    assert ids(
        run(incidents, case_path, "--format", "jsonl", "--detector", "network.*"), "incident_id"
    ) == ["i1"]
    assert ids(
        run(incidents, case_path, "--format", "jsonl", "--severity", "high"), "incident_id"
    ) == ["i1"]
    assert ids(
        run(incidents, case_path, "--format", "jsonl", "--tenant", "beta"), "incident_id"
    ) == ["i2"]
    assert ids(
        run(incidents, case_path, "--format", "jsonl", "--since", "2026-01-01T11:00Z"),
        "incident_id",
    ) == ["i2"]
    assert (
        ids(
            run(incidents, case_path, "--format", "jsonl", "--until", "2026-01-01T07:00Z"),
            "incident_id",
        )
        == []
    )
    assert run(incidents, case_path, "--fail-on", "critical").exit_code == ExitCode.FINDINGS
    assert run(incidents, case_path, "--tenant", "beta", "--fail-on", "medium").exit_code == 0


def test_fail_on_exits_5_when_detection_did_not_cover_the_span(case_path: Path) -> None:
    con = db.connect(case_path)
    con.execute("DELETE FROM run_detectors WHERE detector_id = 'cost.concurrency'")
    con.close()
    missing = run(findings, case_path, "--tenant", "beta", "--fail-on", "high")
    assert missing.exit_code == ExitCode.NOT_ANALYSED
    assert "1 detector of the pack did not run over this period: cost.concurrency" in (
        missing.stderr
    )
    # the threshold still wins: a finding at it is exit 3 whatever the coverage
    assert run(findings, case_path, "--fail-on", "critical").exit_code == ExitCode.FINDINGS
    # a detector filter judges only the detectors it selects
    only = run(findings, case_path, "--detector", "credential.*", "--fail-on", "critical")
    assert only.exit_code == 0, only.output
    # evidence ingested after the run
    con = db.connect(case_path)
    con.execute(
        "INSERT INTO sources (source_id, path, sha256, format, kind) VALUES"
        " (2, '/logs/late.log', '01', 'combined', 'requests')"
    )
    con.execute(
        "INSERT INTO requests (ts, source_id, line_no, tenant_id)"
        " VALUES ('2026-01-02 05:00:00+00', 2, 1, 'beta')"
    )
    con.close()
    late = run(findings, case_path, "--detector", "credential.*", "--fail-on", "critical")
    assert late.exit_code == ExitCode.NOT_ANALYSED
    assert "detection predates evidence of this period: 1 file ingested after the run" in (
        late.stderr
    )
    from forensics.detect.load import default_dirs, load_detectors

    credential_detectors = [
        d for d in load_detectors(default_dirs([]))[0] if d.family == "credential"
    ]
    assert f"(late.log #2) that {len(credential_detectors)} detectors last ran in (credential." in (
        late.stderr
    )


def test_incidents_ocsf_is_a_usage_error(case_path: Path) -> None:
    result = run(incidents, case_path, "--format", "ocsf")
    assert isinstance(result.exception, UsageError)
    assert result.exception.exit_code == ExitCode.USAGE
    assert result.exception.hint is not None
    assert "findings --format ocsf" in result.exception.hint
