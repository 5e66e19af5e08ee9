"""The Python API: a read-only case whose answers are polars DataFrames, and a fast import."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

import forensics
from forensics.api import Case
from forensics.case import db
from forensics.errors import CaseError, QueryError, UsageError
from tests.conftest import load
from tests.ingest.test_kong import kong_record

UTC = dt.UTC
T0 = 1767225600123  # 2026-01-01T00:00:00.123Z, kong's started_at in ms

# (request id, hour after T0, tenant, credential)
REQUESTS = [
    ("r0", 0, "tenant-acme", "key:3f9a"),
    ("r1", 1, "tenant-globex", "cred-globex"),
    ("r2", 2, "tenant-acme", "cred-acme"),
    ("r3", 3, "tenant-acme", "key:3f9a"),
    ("r4", 5, "tenant-acme", "cred-acme"),
]


def at(hour: int) -> dt.datetime:
    return dt.datetime(2026, 1, 1, hour, 0, 0, 123000, tzinfo=UTC)


def ids(frame: pl.DataFrame, column: str = "request_id") -> list[str]:
    return [str(v) for v in frame.get_column(column)]


def finding(fid: str, detector: str, hour: int, **over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "finding_id": fid,
        "detector_id": detector,
        "run_id": "run-2",
        "severity": "high",
        "score": 80.0,
        "principal_type": "tenant",
        "principal_id": "tenant-acme",
        "tenant_id": "tenant-acme",
        "window_start": at(hour),
        "window_end": at(hour + 1),
        "summary": fid,
        "suppressed": False,
    }
    return row | over


FINDINGS = [
    finding("f-early", "credential.network_spread", 0),
    finding("f-late", "cost.concurrency", 4, severity="medium"),
    finding("f-globex", "credential.impossible_travel", 1, tenant_id="tenant-globex"),
    finding("f-allowed", "credential.network_spread", 2, suppressed=True, suppressed_by="a"),
    finding("f-old", "credential.network_spread", 0, run_id="run-1", superseded_by="run-2"),
]


@pytest.fixture
def case_path(tmp_path: Path) -> Path:
    """A case with five Kong requests of two tenants, findings and one incident."""
    path = tmp_path / "case.duckdb"
    con = db.connect(path)
    lines = [
        json.dumps(
            kong_record(
                **{
                    "started_at": T0 + hour * 3_600_000,
                    "request.id": rid,
                    "consumer.username": tenant,
                    "authenticated_entity.id": credential,
                }
            )
        )
        for rid, hour, tenant, credential in REQUESTS
    ]
    load(con, tmp_path, "\n".join(lines) + "\n", name="kong.jsonl")
    for row in FINDINGS:
        names = ", ".join(row)
        values = ", ".join(f"${n}" for n in row)
        con.execute(f"INSERT INTO findings ({names}) VALUES ({values})", row)
    con.execute(
        "INSERT INTO incidents (incident_id, principal_type, principal_id, tenant_id, first_seen,"
        " last_seen, score, severity, detectors, finding_ids) VALUES ('i-acme', 'tenant',"
        " 'tenant-acme', 'tenant-acme', $a, $b, 80, 'high', ['cost.concurrency'], ['f-late'])",
        {"a": at(4), "b": at(5)},
    )
    con.close()
    return path


@pytest.fixture
def case(case_path: Path) -> Iterator[Case]:
    with forensics.open_case(case_path) as opened:
        yield opened


def test_sql_returns_a_polars_frame_of_the_rows(case):
    frame = case.sql(
        "SELECT tenant_id, count(*) AS n FROM requests WHERE ts >= $since"
        " GROUP BY ALL ORDER BY tenant_id -- per tenant\n;",
        {"since": at(1)},
    )
    assert isinstance(frame, pl.DataFrame)
    assert frame.to_dicts() == [
        {"tenant_id": "tenant-acme", "n": 3},
        {"tenant_id": "tenant-globex", "n": 1},
    ]
    assert case.sql("DESCRIBE requests").height > 50


def test_requests_of_a_principal_in_a_window_oldest_first(case):
    every = case.requests("tenant:tenant-acme")
    assert isinstance(every, pl.DataFrame)
    assert ids(every) == ["r0", "r2", "r3", "r4"]
    assert set(every.get_column("tenant_id")) == {"tenant-acme"}
    assert every.columns == case.sql("SELECT * FROM requests LIMIT 0").columns
    window = case.requests("tenant:tenant-acme", since="2026-01-01T02:00:00.123Z", until=at(3))
    assert ids(window) == ["r2", "r3"]  # both ends included
    naive = dt.datetime(2026, 1, 1, 4)  # noqa: DTZ001 - no offset on purpose: read as UTC
    assert ids(case.requests(("tenant", "tenant-acme"), since=naive)) == ["r4"]
    assert ids(case.requests("credential:key:3f9a")) == ["r0", "r3"]  # the type ends at ":"
    assert ids(case.requests("tenant:nobody")) == []
    assert ids(case.requests("tenant:tenant-acme", until=dt.date(2025, 12, 31))) == []


def test_principal_and_window_mistakes_are_usage_errors(case):
    with pytest.raises(UsageError, match=r"^a principal is TYPE:ID$"):
        case.requests("sk-live-1234567890")
    with pytest.raises(UsageError, match=r"^no requests for principal type 'provider_key'$"):
        case.requests("provider_key:key_1")
    with pytest.raises(UsageError, match=r"^since 2026-01-02T00:00:00\+00:00 is after until"):
        case.requests("tenant:tenant-acme", since="2026-01-02", until="2026-01-01")
    with pytest.raises(UsageError, match=r"^until: not an ISO 8601 date or time"):
        case.findings(until="yesterday")


def test_findings_are_the_current_unsuppressed_ones_as_the_cli_lists_them(case):
    frame = case.findings()
    assert isinstance(frame, pl.DataFrame)
    assert ids(frame, "finding_id") == ["f-early", "f-globex", "f-late"]  # no f-old, f-allowed
    with_suppressed = case.findings(include_suppressed=True)
    assert ids(with_suppressed, "finding_id") == ["f-early", "f-globex", "f-allowed", "f-late"]
    assert ids(case.findings(detector="credential.*"), "finding_id") == ["f-early", "f-globex"]
    assert ids(case.findings(tenant="tenant-acme", since=at(3)), "finding_id") == ["f-late"]
    assert ids(case.findings(until="2026-01-01T00:30:00Z"), "finding_id") == ["f-early"]


def test_incidents(case):
    frame = case.incidents()
    assert isinstance(frame, pl.DataFrame)
    assert frame.select("incident_id", "finding_ids").to_dicts() == [
        {"incident_id": "i-acme", "finding_ids": ["f-late"]}
    ]
    assert case.incidents(tenant="tenant-globex").height == 0
    assert case.incidents(until=at(3)).height == 0


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("DELETE FROM requests", "DELETE refused: ad hoc SQL on a case is read-only"),
        ("CREATE TABLE x AS SELECT 1", "CREATE refused: ad hoc SQL on a case is read-only"),
        ("CREATE TEMP TABLE x AS SELECT 1", "CREATE refused: ad hoc SQL on a case is read-only"),
        ("SET threads = 1", "SET refused: ad hoc SQL on a case is read-only"),
        ("COPY requests TO 'x.csv'", "COPY refused: ad hoc SQL on a case is read-only"),
        (
            "EXPLAIN ANALYZE DELETE FROM requests",
            "EXPLAIN DELETE refused: ad hoc SQL on a case is read-only",
        ),
        ("SELECT 1; SELECT 2", "the query has 2 statements; one is run at a time"),
        ("-- nothing\n;", "the query has no SQL statement (only comments or semicolons)"),
        ("  ", "the query is empty"),
    ],
)
def test_sql_refuses_writes_and_more_than_one_statement(case, case_path, statement, message):
    with pytest.raises(UsageError) as refused:
        case.sql(statement)
    assert str(refused.value) == message
    assert case.sql("SELECT count(*) AS n FROM requests").item() == 5
    assert "x" not in case.sql("SHOW TABLES").get_column("name").to_list()


def test_duckdb_errors_are_query_errors_and_a_missing_case_a_case_error(case, tmp_path):
    with pytest.raises(QueryError, match=r'^Binder Error: Referenced column "nope" not found'):
        case.sql("SELECT nope FROM requests")
    with pytest.raises(CaseError, match="no case database here"):
        forensics.open_case(tmp_path / "none.duckdb")
    assert not (tmp_path / "none.duckdb").exists()


def test_the_case_is_closed_after_the_with_block(case_path):
    with forensics.open_case(case_path) as case:
        assert case.sql("SELECT 42 AS x").item() == 42
    with pytest.raises(QueryError, match="closed"):
        case.sql("SELECT 1")
    db.connect(case_path).close()  # no read-only connection left holding the file


def test_import_forensics_loads_neither_duckdb_nor_polars():
    code = (
        "import sys, forensics; assert callable(forensics.open_case);"
        " print(sorted(m for m in ('duckdb', 'polars') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n"
