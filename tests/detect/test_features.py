"""The shared `principal_hours` features: a view in the case, a scoped temp table during a run."""

from __future__ import annotations

import datetime as dt
import json

from forensics.case import db
from forensics.detect import features
from forensics.detect.load import default_dirs, load_detectors
from forensics.detect.runner import run_detectors
from tests.conftest import load, rows
from tests.ingest.test_kong import kong_record

HOUR_MS = 3_600_000
T0 = 1767225600000  # 2026-01-01T00:00:00Z


def _events() -> str:
    out = []
    for n, (tenant, cred, ip, offset_ms) in enumerate(
        [
            ("tenant-acme", "cred-a", "203.0.113.45", 0),
            ("tenant-acme", "cred-a", "203.0.113.46", 60_000),
            ("tenant-acme", "cred-a", "203.0.113.45", HOUR_MS + 5),
            ("tenant-beta", "cred-b", "198.51.100.7", 30_000),
        ]
    ):
        out.append(json.dumps(kong_record(**{
            "started_at": T0 + offset_ms,
            "request.id": f"r{n}",
            "client_ip": ip,
            "consumer.username": tenant,
            "authenticated_entity.id": cred,
        })))  # fmt: skip
    return "\n".join(out) + "\n"


def test_the_view_has_one_row_per_principal_hour_and_network(tmp_path):
    con = db.connect(tmp_path / "case.duckdb")
    load(con, tmp_path, _events(), "kong")
    got = rows(
        con,
        "SELECT principal_id, tenant_id, hour, requests, client_net FROM principal_hours"
        " ORDER BY principal_id, hour",
    )
    con.close()
    first = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert [(r["principal_id"], r["tenant_id"], r["requests"], r["client_net"]) for r in got] == [
        ("cred-a", "tenant-acme", 2, "203.0.113.0/24"),
        ("cred-a", "tenant-acme", 1, "203.0.113.0/24"),
        ("cred-b", "tenant-beta", 1, "198.51.100.0/24"),
    ]
    assert [r["hour"] for r in got] == [first, first + dt.timedelta(hours=1), first]


def test_a_run_reads_a_scoped_copy_and_leaves_the_view_in_place(tmp_path):
    con = db.connect(tmp_path / "case.duckdb")
    load(con, tmp_path, _events(), "kong")
    con.execute("ATTACH ':memory:' AS scratch")
    features.materialize(con, ["principal_hours"], {}, "scratch")
    features.materialize(con, ["principal_hours"], {"tenant": "tenant-beta"}, "scratch")  # again
    features.expose(con, ["principal_hours"], "scratch")
    scoped = rows(con, "SELECT DISTINCT tenant_id FROM principal_hours")
    assert scoped == [{"tenant_id": "tenant-beta"}]
    other = db.session(con)  # another connection of a run sees the same scoped rows
    features.expose(other, ["principal_hours"], "scratch")
    assert rows(other, "SELECT DISTINCT tenant_id FROM principal_hours") == scoped
    other.close()
    features.drop(con, ["principal_hours"])
    con.execute("DETACH scratch")
    assert rows(con, "SELECT count(*) AS n FROM principal_hours") == [{"n": 3}]
    detectors, problems = load_detectors(default_dirs([]))
    assert problems == []
    result = run_detectors(con, detectors, tenant="tenant-acme")
    assert result.errors == {}
    assert result.features_seconds > 0
    leftovers = con.execute(
        "SELECT (SELECT count(*) FROM duckdb_views() WHERE temporary AND view_name IN"
        " ('principal_hours', '_run_new')), (SELECT count(*) FROM duckdb_databases()"
        " WHERE database_name LIKE 'forensics_run_%')"
    ).fetchall()
    assert leftovers == [(0, 0)]  # dropped after the run: the stored view is back
    con.close()
