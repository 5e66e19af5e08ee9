"""The detector runner on a real case file: findings, replacement, errors, binding,
allowlist suppression, severity bounds, incidents; and the `detect` command around it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from forensics._version import __version__
from forensics.case import db
from forensics.case.schema import FINDINGS
from forensics.cli.detect import detect
from forensics.detect.model import Detector, Param, Severity
from forensics.detect.runner import run_detectors
from tests.conftest import rows

T0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)

# one finding per credential and hour with at least $min_requests requests
PER_CREDENTIAL_HOUR = """
SELECT 'credential' AS principal_type,
       credential_id AS principal_id,
       any_value(tenant_id) AS tenant_id,
       time_bucket(INTERVAL 1 hour, ts) AS window_start,
       time_bucket(INTERVAL 1 hour, ts) + INTERVAL 1 hour AS window_end,
       count(*) * 10.0 AS score,
       credential_id || ' made ' || count(*) || ' requests' AS summary,
       {'requests': count(*)} AS evidence,
       list(request_id ORDER BY request_id) AS sample_request_ids
FROM requests
WHERE ($tenant IS NULL OR tenant_id = $tenant)
  AND ($since IS NULL OR ts >= $since)
GROUP BY credential_id, time_bucket(INTERVAL 1 hour, ts)
HAVING count(*) >= $min_requests
"""

PER_IP = """
SELECT 'ip' AS principal_type, client_ip AS principal_id, NULL AS tenant_id,
       min(ts) AS window_start, max(ts) AS window_end, 50 AS score,
       'requests from ' || client_ip AS summary, json_object('n', count(*)) AS evidence,
       list(request_id) AS sample_request_ids
FROM requests GROUP BY client_ip
"""

PER_ASN = """
SELECT 'asn' AS principal_type, 'AS' || asn AS principal_id, NULL AS tenant_id,
       min(ts) AS window_start, max(ts) AS window_end, 50 AS score,
       'requests from AS' || asn AS summary, '{"n": 1}' AS evidence,
       list(request_id) AS sample_request_ids
FROM requests GROUP BY asn
"""


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = db.connect(tmp_path / "c.duckdb")
    yield connection
    connection.close()


def make(
    tmp_path: Path,
    detector_id: str,
    sql: str,
    *,
    severity: str = "high",
    bounds: tuple[str, str] | None = None,
    principal_type: str = "credential",
    params: tuple[Param, ...] = (),
    explains: tuple[str, ...] = (),
) -> Detector:
    """A detector as two real files under tmp_path/rules, constructed without the loader."""
    family, name = detector_id.split(".")
    folder = tmp_path / "rules" / family
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.sql").write_text(sql, encoding="utf-8")
    (folder / f"{name}.yml").write_text(f"id: {detector_id}\n", encoding="utf-8")
    return Detector(
        id=detector_id,
        title=detector_id,
        description="test detector",
        severity=Severity.parse(severity),
        principal_type=principal_type,
        sql=sql,
        sql_path=folder / f"{name}.sql",
        yml_path=folder / f"{name}.yml",
        severity_bounds=(Severity.parse(bounds[0]), Severity.parse(bounds[1])) if bounds else None,
        params=params,
        explains=explains,
    )


def burst(tmp_path: Path, detector_id: str = "credential.burst", **kw: Any) -> Detector:
    return make(
        tmp_path,
        detector_id,
        PER_CREDENTIAL_HOUR,
        params=(Param("min_requests", 2, "integer", "requests per hour"),),
        **kw,
    )


def add_requests(con: duckdb.DuckDBPyConnection, *records: dict[str, Any]) -> None:
    """Plain INSERTs into `requests`: ts, request_id and whatever else a record names."""
    for r in records:
        names = ", ".join(r)
        marks = ", ".join(f"${k}" for k in r)
        con.execute(f"INSERT INTO requests ({names}) VALUES ({marks})", r)


def add_allow(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    value: str,
    *,
    line: int,
    reason: str = "known good",
    detectors: list[str] | None = None,
    expires: dt.datetime | None = None,
) -> None:
    con.execute(
        "INSERT INTO allowlist (kind, value, detectors, reason, expires, source_id, line_no)"
        " VALUES ($kind, $value, $detectors, $reason, $expires, 7, $line)",
        {
            "kind": kind,
            "value": value,
            "detectors": detectors or [],
            "reason": reason,
            "expires": expires,
            "line": line,
        },
    )


def standard_data(con: duckdb.DuckDBPyConnection) -> None:
    """key-a: 3 requests at 00:xx (fires); key-b: 1 request (quiet); key-c: 2 at 05:xx."""
    add_requests(
        con,
        *[
            {
                "ts": T0 + dt.timedelta(minutes=m),
                "request_id": f"ra{m}",
                "tenant_id": "acme",
                "credential_id": "key-a",
                "client_ip": "203.0.113.45",
                "asn": 64500,
                "user_agent": "python-requests/2.32",
            }
            for m in (1, 2, 3)
        ],
        {
            "ts": T0 + dt.timedelta(minutes=5),
            "request_id": "rb1",
            "tenant_id": "acme",
            "credential_id": "key-b",
            "client_ip": "198.51.100.7",
            "asn": 64501,
            "user_agent": "curl/8.5",
        },
        *[
            {
                "ts": T0 + dt.timedelta(hours=5, minutes=m),
                "request_id": f"rc{m}",
                "tenant_id": "globex",
                "credential_id": "key-c",
                "client_ip": "2001:db8::7",
                "asn": 64502,
                "user_agent": "LoadTester/1.0",
            }
            for m in (1, 2)
        ],
    )


def findings(con: duckdb.DuckDBPyConnection, where: str = "true") -> list[dict[str, Any]]:
    return rows(con, f"SELECT * FROM findings WHERE {where} ORDER BY detector_id, principal_id")


def test_findings_hold_the_contract_fields(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    standard_data(con)
    detector = burst(tmp_path)
    result = run_detectors(con, [detector])
    assert result.status == "ok"
    assert result.errors == {}
    assert result.findings == {"credential.burst": 2}

    found = findings(con)
    assert list(found[0]) == FINDINGS.column_names
    a, c = found
    assert len(a["finding_id"]) == 32
    assert int(a["finding_id"], 16) >= 0
    assert {k: v for k, v in a.items() if k != "finding_id"} == {
        "detector_id": "credential.burst",
        "detector_version": detector.version,
        "run_id": result.run_id,
        "severity": "high",
        "score": 30.0,
        "principal_type": "credential",
        "principal_id": "key-a",
        "tenant_id": "acme",
        "window_start": T0,
        "window_end": T0 + dt.timedelta(hours=1),
        "summary": "key-a made 3 requests",
        "evidence": '{"requests":3}',
        "est_cost_usd": None,  # its requests carry no price
        "provider_cost_usd": None,
        "suppressed": False,
        "suppressed_by": None,
        "superseded_by": None,
        "stale_by_source": None,
    }
    assert c["principal_id"] == "key-c"
    assert c["tenant_id"] == "globex"
    pairs = con.execute(
        "SELECT f.principal_id, list(fr.request_id ORDER BY fr.request_id) FROM finding_requests fr"
        " JOIN findings f USING (finding_id) GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert pairs == [("key-a", ["ra1", "ra2", "ra3"]), ("key-c", ["rc1", "rc2"])]

    (run,) = rows(con, "SELECT * FROM runs")
    assert run["run_id"] == result.run_id
    assert run["status"] == "ok"
    assert run["tool_version"] == __version__
    assert run["finished_at"] >= run["started_at"]
    assert json.loads(run["detectors"]) == {"credential.burst": detector.version}
    assert json.loads(run["params"])["detectors"] == {
        "credential.burst": {"min_requests": 2, "since": None, "tenant": None}
    }
    assert json.loads(run["sources"]) == []
    assert json.loads(run["errors"]) == {}


def test_the_finding_id_is_the_documented_hash(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    import hashlib

    standard_data(con)
    run = run_detectors(con, [burst(tmp_path)])
    (fid,) = con.execute("SELECT finding_id FROM findings WHERE principal_id = 'key-a'").fetchone()
    text = (
        f"{run.run_id}|credential.burst|credential|key-a"
        "|2026-01-05T00:00:00.000000Z|2026-01-05T01:00:00.000000Z"
    )
    assert fid == hashlib.sha256(text.encode()).hexdigest()[:32]


def test_a_rerun_supersedes_the_earlier_findings_and_keeps_them(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    standard_data(con)
    detector = burst(tmp_path)
    first = run_detectors(con, [detector])
    second = run_detectors(con, [detector])
    assert first.run_id != second.run_id
    assert second.superseded == 2
    # each run keeps its own findings; only the second run's are current
    assert con.execute(
        "SELECT run_id, count(*), list(DISTINCT superseded_by) FROM findings GROUP BY run_id"
        " ORDER BY run_id = $second",
        {"second": second.run_id},
    ).fetchall() == [(first.run_id, 2, [second.run_id]), (second.run_id, 2, [None])]
    assert con.execute("SELECT count(*) FROM finding_requests").fetchone() == (10,)
    assert con.execute("SELECT count(*) FROM runs").fetchone() == (2,)
    assert con.execute("SELECT count(*) FROM incidents").fetchone() == (2,)
    assert con.execute(
        "SELECT count(*) FROM incidents i, unnest(i.finding_ids) AS u(f)"
        " JOIN findings ON finding_id = u.f WHERE superseded_by IS NOT NULL"
    ).fetchone() == (0,)


def test_a_detector_naming_two_columns_alike_is_told_so(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """The normalising INSERT matches a detector's columns by name: two columns of one name
    fail that detector with a message about its own SELECT."""
    standard_data(con)
    good = burst(tmp_path)
    twice = make(
        tmp_path,
        "broken.twice",
        good.sql.replace("SELECT", "SELECT 'x' AS tenant_id, 'y' AS summary,", 1),
        params=good.params,
    )
    result = run_detectors(con, [twice, good])
    assert result.errors == {
        "broken.twice": f"{twice.sql_path}: the SELECT names more than one column summary,"
        " tenant_id: give each column a name of its own"
    }
    assert result.findings == {"credential.burst": 2}


def test_a_broken_detector_fails_alone_and_names_its_file(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    standard_data(con)
    syntax = make(tmp_path, "broken.syntax", "SELEC principal_id FROM requests")
    lacking = make(tmp_path, "broken.lacking", "SELECT credential_id AS principal_id FROM requests")
    writing = make(tmp_path, "broken.writing", "SELECT 1; DROP TABLE requests")
    good = burst(tmp_path)
    seen: list[tuple[str, int, str | None]] = []
    result = run_detectors(
        con,
        [syntax, lacking, good, writing],
        progress=lambda d, s, n, e: seen.append((d, n, e)),
    )
    assert result.status == "errors"
    assert set(result.errors) == {"broken.syntax", "broken.lacking", "broken.writing"}
    assert result.errors["broken.syntax"].startswith(
        f"{syntax.sql_path}: Parser Error: syntax error"
    )
    assert "\n" not in result.errors["broken.syntax"]
    assert result.errors["broken.lacking"] == (
        f"{lacking.sql_path}: the SELECT lacks contract columns: principal_type, tenant_id,"
        " window_start, window_end, score, summary, evidence, sample_request_ids"
    )
    assert result.errors["broken.writing"] == (
        f"{writing.sql_path}: must be exactly one SELECT statement, found SELECT, DROP"
    )
    assert result.findings == {"credential.burst": 2}
    # progress reports each detector once, as it completes (two run at a time)
    assert sorted((d, n, e is None) for d, n, e in seen) == [
        ("broken.lacking", 0, False),
        ("broken.syntax", 0, False),
        ("broken.writing", 0, False),
        ("credential.burst", 2, True),
    ]
    assert con.execute("SELECT count(*) FROM requests").fetchone() == (6,)
    assert con.execute("SELECT count(*) FROM findings").fetchone() == (2,)
    run = rows(con, "SELECT status, errors FROM runs")[0]
    assert run["status"] == "errors"
    assert json.loads(run["errors"]) == result.errors


def test_parameters_are_bound_not_pasted(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    standard_data(con)
    evil = "x'; drop table requests; --"
    result = run_detectors(con, [burst(tmp_path)], tenant=evil)
    assert result.status == "ok"
    assert result.findings == {"credential.burst": 0}
    assert con.execute("SELECT count(*) FROM requests").fetchone() == (6,)
    params = json.loads(con.execute("SELECT params FROM runs").fetchone()[0])
    assert params["filters"]["tenant"] == evil

    result = run_detectors(con, [burst(tmp_path)], tenant="acme")
    assert result.findings == {"credential.burst": 1}


def test_filters_and_overrides_reach_the_sql(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    standard_data(con)
    since = T0 + dt.timedelta(hours=1)
    result = run_detectors(con, [burst(tmp_path)], since=since)
    assert result.findings == {"credential.burst": 1}
    params = json.loads(con.execute("SELECT params FROM runs").fetchone()[0])
    assert params["filters"]["since"] == "2026-01-05T01:00:00+00:00"
    assert params["detectors"]["credential.burst"]["since"] == "2026-01-05T01:00:00+00:00"

    result = run_detectors(
        con, [burst(tmp_path)], overrides={"credential.burst": {"min_requests": 1}}
    )
    assert result.findings == {"credential.burst": 3}


def test_suppression_is_auditable_and_expired_entries_do_not_apply(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    standard_data(con)
    add_allow(con, "credential", "key-a", line=3, reason="the nightly load test")
    add_allow(con, "credential", "key-c", line=4, expires=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    add_allow(con, "credential", "key-c", line=5, detectors=["scraping.*"])
    add_allow(
        con, "credential", "key-c", line=6, detectors=["nothing.*", "credential.b*"], reason="ok"
    )
    result = run_detectors(con, [burst(tmp_path), burst(tmp_path, "other.burst")])
    assert result.findings == {"credential.burst": 2, "other.burst": 2}
    assert result.suppressed == {"credential.burst": 2, "other.burst": 1}
    state = {
        (f["detector_id"], f["principal_id"]): (f["suppressed"], f["suppressed_by"])
        for f in findings(con)
    }
    assert state == {
        ("credential.burst", "key-a"): (
            True,
            "allowlist 7:3 credential=key-a: the nightly load test",
        ),
        ("credential.burst", "key-c"): (True, "allowlist 7:6 credential=key-c: ok"),
        ("other.burst", "key-a"): (True, "allowlist 7:3 credential=key-a: the nightly load test"),
        ("other.burst", "key-c"): (False, None),
    }
    # suppressed findings raise no incident
    assert con.execute("SELECT list(principal_id) FROM incidents").fetchone() == (["globex"],)


def test_allowlist_kinds_cidr_asn_tenant_ip_user_agent(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    standard_data(con)
    by_ip = make(tmp_path, "network.by_ip", PER_IP, principal_type="ip")
    by_asn = make(tmp_path, "network.by_asn", PER_ASN, principal_type="asn")
    add_allow(con, "cidr", "203.0.113.0/24", line=2, detectors=["network.*"])
    add_allow(con, "cidr", "2001:db8::/32", line=3, detectors=["network.by_ip"])
    add_allow(con, "cidr", "198.51.0.0/24", line=4)  # 198.51.100.7 is outside
    add_allow(con, "asn", "64501", line=5)
    add_allow(con, "tenant", "globex", line=6, detectors=["credential.*"])
    add_allow(con, "ip", "198.51.100.7", line=7, detectors=["credential.*"])  # not an ip finding
    add_allow(con, "user_agent", "python-requests", line=8, detectors=["other.*"])
    run_detectors(con, [by_ip, by_asn, burst(tmp_path), burst(tmp_path, "other.burst")])
    state = {(f["detector_id"], f["principal_id"]): f["suppressed_by"] for f in findings(con)}
    assert state == {
        ("credential.burst", "key-a"): None,
        ("credential.burst", "key-c"): "allowlist 7:6 tenant=globex: known good",
        ("network.by_asn", "AS64500"): None,
        ("network.by_asn", "AS64501"): "allowlist 7:5 asn=64501: known good",
        ("network.by_asn", "AS64502"): None,
        ("network.by_ip", "198.51.100.7"): None,
        ("network.by_ip", "2001:db8::7"): "allowlist 7:3 cidr=2001:db8::/32: known good",
        ("network.by_ip", "203.0.113.45"): "allowlist 7:2 cidr=203.0.113.0/24: known good",
        ("other.burst", "key-a"): "allowlist 7:8 user_agent=python-requests: known good",
        ("other.burst", "key-c"): None,
    }
    assert con.execute("SELECT count(*) FROM allowlist").fetchone() == (7,)


def test_cidr_principal_inside_a_wider_block(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    sql = """
    SELECT 'cidr' AS principal_type, net AS principal_id, NULL AS tenant_id,
           TIMESTAMPTZ '2026-01-05 00:00:00+00' AS window_start,
           TIMESTAMPTZ '2026-01-05 01:00:00+00' AS window_end, 40 AS score, net AS summary,
           {'n': 1} AS evidence, []::VARCHAR[] AS sample_request_ids
    FROM (VALUES ('10.1.2.0/24'), ('10.0.0.0/7'), ('11.0.0.0/24')) v(net)
    """
    add_allow(con, "cidr", "10.0.0.0/8", line=9)
    run_detectors(con, [make(tmp_path, "network.blocks", sql, principal_type="cidr")])
    state = {f["principal_id"]: f["suppressed"] for f in findings(con)}
    assert state == {"10.1.2.0/24": True, "10.0.0.0/7": False, "11.0.0.0/24": False}


SEVERITY_SQL = """
SELECT 'credential' AS principal_type, s AS principal_id, 't' AS tenant_id,
       TIMESTAMPTZ '2026-01-05 00:00:00+00' AS window_start,
       TIMESTAMPTZ '2026-01-05 01:00:00+00' AS window_end, 250 AS score, s AS summary,
       {'s': s} AS evidence, ['r1'] AS sample_request_ids, s AS severity, 1.5 AS est_cost_usd
FROM (VALUES ('critical'), ('Info'), ('bogus'), (NULL), ('medium')) v(s)
"""


def test_computed_severity_is_clamped_to_the_bounds(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    bounded = make(
        tmp_path, "sev.bounded", SEVERITY_SQL, severity="high", bounds=("medium", "high")
    )
    fixed = make(tmp_path, "sev.fixed", SEVERITY_SQL, severity="low")
    run_detectors(con, [bounded, fixed])
    got = {
        # the cost a detector claims is not stored: a finding costs its principal's requests
        (f["detector_id"], f["summary"]): (f["severity"], f["score"], f["est_cost_usd"])
        for f in findings(con)
    }
    assert got == {
        ("sev.bounded", "critical"): ("high", 100.0, None),
        ("sev.bounded", "Info"): ("medium", 100.0, None),
        ("sev.bounded", "bogus"): ("high", 100.0, None),
        ("sev.bounded", None): ("high", 100.0, None),
        ("sev.bounded", "medium"): ("medium", 100.0, None),
        ("sev.fixed", "critical"): ("low", 100.0, None),
        ("sev.fixed", "Info"): ("low", 100.0, None),
        ("sev.fixed", "bogus"): ("low", 100.0, None),
        ("sev.fixed", None): ("low", 100.0, None),
        ("sev.fixed", "medium"): ("low", 100.0, None),
    }


def test_incidents_group_a_tenants_credentials_close_in_time(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    def req(cred: str, at: dt.datetime, n: str) -> dict[str, Any]:
        return {"ts": at, "request_id": n, "tenant_id": "acme", "credential_id": cred}

    add_requests(
        con,
        req("k1", T0 + dt.timedelta(minutes=10), "a1"),
        req("k1", T0 + dt.timedelta(minutes=20), "a2"),
        req("k2", T0 + dt.timedelta(hours=2, minutes=10), "b1"),
        req("k2", T0 + dt.timedelta(hours=2, minutes=20), "b2"),
        req("k2", T0 + dt.timedelta(hours=2, minutes=30), "b3"),
        req("k1", T0 + dt.timedelta(hours=12, minutes=30), "c1"),
        req("k1", T0 + dt.timedelta(hours=12, minutes=40), "c2"),
    )
    run_detectors(con, [burst(tmp_path), burst(tmp_path, "other.burst", severity="critical")])
    got = rows(con, "SELECT * FROM incidents ORDER BY first_seen")
    ids = {
        (f["detector_id"], f["principal_id"], f["window_start"]): f["finding_id"]
        for f in findings(con)
    }
    assert len(got) == 2
    first, second = got
    assert {k: v for k, v in first.items() if k not in ("incident_id", "finding_ids")} == {
        "principal_type": "tenant",
        "principal_id": "acme",
        "tenant_id": "acme",
        "first_seen": T0,
        "last_seen": T0 + dt.timedelta(hours=3),
        "score": 35.0,  # max 30 + 5 for a second detector
        "severity": "critical",
        "detectors": ["credential.burst", "other.burst"],
        "primary_detector": "other.burst",  # neither explains the other: the more severe
        "est_cost_usd": None,
        "provider_cost_usd": None,
    }
    assert set(first["finding_ids"]) == {
        ids[(d, p, T0 + dt.timedelta(hours=h))]
        for d in ("credential.burst", "other.burst")
        for p, h in (("k1", 0), ("k2", 2))
    }
    assert second["first_seen"] == T0 + dt.timedelta(hours=12)
    assert second["last_seen"] == T0 + dt.timedelta(hours=13)
    assert len(second["finding_ids"]) == 2
    assert first["incident_id"] != second["incident_id"]
    assert len(first["incident_id"]) == 32

    # rebuilt, not appended, on the next run
    run_detectors(con, [burst(tmp_path)])
    assert con.execute("SELECT count(*) FROM incidents").fetchone() == (2,)


def test_the_primary_diagnosis_is_the_finding_no_other_explains(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    add_requests(
        con,
        *(
            {
                "ts": T0 + dt.timedelta(minutes=m),
                "request_id": f"r{m}",
                "tenant_id": "acme",
                "credential_id": "k1",
            }  # fmt: skip
            for m in (10, 20)
        ),
    )

    def primary(*detectors: Detector) -> str:
        run_detectors(con, list(detectors))
        [(got,)] = con.execute("SELECT primary_detector FROM incidents").fetchall()
        return str(got)

    # the explaining detector wins over a more severe one it explains
    exposed = burst(tmp_path, "client.exposed", severity="medium", explains=("travel.*",))
    travel = burst(tmp_path, "travel.jump", severity="critical")
    assert primary(exposed, travel) == "client.exposed"
    # without the relation, severity decides
    assert primary(burst(tmp_path, "client.exposed", severity="medium"), travel) == "travel.jump"
    # each explains the other: nobody is left unexplained, so severity decides again
    looped = burst(tmp_path, "travel.jump", severity="critical", explains=("client.*",))
    assert primary(exposed, looped) == "travel.jump"
    # another key of the same tenant: its exposure explains nothing of this key's travel
    add_requests(
        con,
        *(
            {
                "ts": T0 + dt.timedelta(minutes=m),
                "request_id": f"s{m}",
                "tenant_id": "acme",
                "credential_id": "k2",
            }
            for m in (10, 20)
        ),
    )
    only_k2 = make(
        tmp_path,
        "client.exposed",
        PER_CREDENTIAL_HOUR.replace("GROUP BY", "AND credential_id = 'k2' GROUP BY"),
        severity="medium",
        params=(Param("min_requests", 2, "integer", "requests per hour"),),
        explains=("travel.*",),
    )
    only_k1 = make(
        tmp_path,
        "travel.jump",
        PER_CREDENTIAL_HOUR.replace("GROUP BY", "AND credential_id = 'k1' GROUP BY"),
        severity="critical",
        params=(Param("min_requests", 2, "integer", "requests per hour"),),
    )
    assert primary(only_k2, only_k1) == "travel.jump"
    # the relation is stored with each run's detector, as that run had it
    assert sorted(
        con.execute(
            "SELECT explains FROM run_detectors WHERE detector_id = 'client.exposed'"
        ).fetchall()
    ) == [([],), (["travel.*"],), (["travel.*"],), (["travel.*"],)]


def test_a_detector_given_twice_is_refused(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    from forensics.errors import UsageError

    with pytest.raises(UsageError, match="credential.burst"):
        run_detectors(con, [burst(tmp_path), burst(tmp_path)])
    assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)


# --- the command ---------------------------------------------------------------------------


def invoke(
    monkeypatch: pytest.MonkeyPatch, case: Path, detectors: list[Detector], *args: str
) -> Any:
    import forensics.detect.load

    monkeypatch.setattr(forensics.detect.load, "load_detectors", lambda dirs: (detectors, []))
    return CliRunner().invoke(detect, list(args), obj={"db": case})


def test_detect_command_summary_progress_and_exit_code(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    standard_data(con)
    con.close()
    case = tmp_path / "c.duckdb"
    good = burst(tmp_path)
    bad = make(tmp_path, "broken.syntax", "SELEC 1")

    ok = invoke(monkeypatch, case, [good, bad], "--detector", "credential.*")
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.splitlines()[0].split() == [
        "detector",
        "findings",
        "suppressed",
        "seconds",
        "status",
    ]
    assert ok.stdout.splitlines()[2].split()[:3] == ["credential.burst", "2", "0"]
    assert ok.stdout.splitlines()[2].split()[-1] == "ok"
    assert "credential.burst" in ok.stderr and "2 findings" in ok.stderr

    config = tmp_path / "detect.yml"
    config.write_text("params:\n  credential.burst: {min_requests: 5}\n", encoding="utf-8")
    failed = invoke(
        monkeypatch,
        case,
        [good, bad],
        "--config",
        str(config),
        "--param",
        "credential.burst.min_requests=1",
    )
    assert failed.exit_code == 1
    lines = failed.stdout.splitlines()
    assert [line.split()[0] for line in lines[2:]] == ["credential.burst", "broken.syntax"]
    assert lines[2].split()[1] == "3"  # --param beats the config
    assert lines[3].split()[-1] == "error"
    assert f"ERROR {bad.sql_path}: Parser Error" in failed.stderr

    configured = invoke(monkeypatch, case, [good], "--config", str(config))
    assert configured.exit_code == 0
    assert configured.stdout.splitlines()[2].split()[1] == "0"


def test_detect_command_usage_errors(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    from forensics.errors import UsageError

    con.close()
    case = tmp_path / "c.duckdb"
    good = burst(tmp_path)
    cases = {
        ("--param", "credential.burst.nope=1"): "credential.burst has no parameter 'nope'",
        ("--param", "credential.burst.min_requests=many"): "min_requests must be of type integer",
        ("--param", "nothing.here.x=1"): "no detector 'nothing.here'",
        ("--since", "yesterday"): "--since: not an ISO 8601 date or time",
        ("--detector", "zzz.*"): "no detector matches zzz.*",
    }
    for args, message in cases.items():
        result = invoke(monkeypatch, case, [good], *args)
        assert isinstance(result.exception, UsageError), args
        assert message in str(result.exception)


def test_a_crash_while_writing_leaves_no_half_run(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    import forensics.detect.runner

    standard_data(con)
    first = run_detectors(con, [burst(tmp_path)])
    before = rows(con, "SELECT * FROM findings ORDER BY finding_id")

    def crash(*args: Any) -> int:
        con.execute("SELECT * FROM no_such_table")  # a DuckDB error inside the transaction
        return 0

    monkeypatch.setattr(forensics.detect.runner, "build_incidents", crash)
    with pytest.raises(duckdb.CatalogException):
        run_detectors(con, [burst(tmp_path)], overrides={"credential.burst": {"min_requests": 1}})
    assert con.execute("SELECT list(run_id) FROM runs").fetchone() == ([first.run_id],)
    assert rows(con, "SELECT * FROM findings ORDER BY finding_id") == before
    assert con.execute("SELECT count(*) FROM incidents").fetchone() == (2,)


def test_a_trailing_comment_and_params_named_like_the_engines_own(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    """The SELECT runs inside the engine's INSERT: a final `-- comment` must not swallow the
    closing parenthesis, and a parameter called `severity` or `version` is the detector's."""
    standard_data(con)
    sql = PER_CREDENTIAL_HOUR.replace("$min_requests", "$version + $severity") + "-- the end"
    detector = make(
        tmp_path,
        "credential.named",
        sql,
        params=(
            Param("version", 1, "integer", "part of the threshold"),
            Param("severity", 1, "integer", "the other part"),
        ),
    )
    result = run_detectors(con, [detector])
    assert result.errors == {}
    assert result.findings == {"credential.named": 2}  # key-a and key-c: 2+ requests an hour
    assert findings(con)[0]["severity"] == "high"  # the YAML's, not the parameter
