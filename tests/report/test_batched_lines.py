"""Requests that share a log line are still separate requests. Kong's http-log ships batches
as one JSON array per line, so several requests carry one source_id and line_no; an incident's
cost, the weekly report's exposure and the evidence bundle each count such requests one by one
(request_principals' request_row), for an incident of one principal and of several."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from pathlib import Path

import duckdb
import pytest

from forensics.case import db
from forensics.detect.incidents import build_incidents
from tests.conftest import forensics_on, load
from tests.ingest.test_kong import kong_record

START = 1767225600000  # 2026-01-01 00:00 UTC, in epoch milliseconds


def batch(credential: str, count: int, first_ms: int) -> str:
    """One array line of `count` identical-cost records of `credential`, a second apart."""
    records = []
    for n in range(count):
        rec = kong_record()
        rec["started_at"] = first_ms + 1000 * n
        rec["request"]["id"] = f"{credential}-{n}"  # type: ignore[index]
        rec["authenticated_entity"]["id"] = credential  # type: ignore[index]
        records.append(rec)
    return json.dumps(records)


def finding(con: duckdb.DuckDBPyConnection, finding_id: str, credential_fp: str) -> None:
    """A current finding on one credential of acme-prod, over the whole first hour."""
    con.execute(
        "INSERT INTO findings (finding_id, detector_id, detector_version, run_id, severity,"
        " score, principal_type, principal_id, tenant_id, window_start, window_end, summary,"
        " evidence, suppressed) VALUES ($id, 'test.batched', 'v', 'r', 'high', 80,"
        " 'credential', $fp, 'acme-prod', TIMESTAMPTZ '2026-01-01 00:00:00+00',"
        " TIMESTAMPTZ '2026-01-01 01:00:00+00', 'batched', '{}', false)",
        {"id": finding_id, "fp": credential_fp},
    )


@pytest.fixture
def batched(tmp_path: Path) -> tuple[Path, list[str]]:
    """A case of two credentials of one tenant, each with one line of three requests."""
    path = tmp_path / "case.duckdb"
    con = db.connect(path)
    try:
        text = batch("cred-one", 3, START) + "\n"
        text += batch("cred-two", 3, START + 60_000) + "\n"
        load(con, tmp_path, text, fmt="kong", name="http-log.jsonl")
        fps = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT credential_id FROM requests ORDER BY 1"
            ).fetchall()
        ]
        assert len(fps) == 2
        shared = con.execute(
            "SELECT count(*), count(DISTINCT (source_id, line_no)),"
            " count(DISTINCT est_cost_usd) FROM requests"
        ).fetchall()[0]
        assert shared == (6, 2, 1)  # six requests on two lines, all of one cost
    finally:
        con.close()
    return path, fps


def incident_costs(path: Path) -> list[tuple[int, float]]:
    con = db.connect(path)
    try:
        con.execute("BEGIN")
        build_incidents(con)
        con.execute("COMMIT")
        return [
            (len(r[0]), float(r[1]))
            for r in con.execute("SELECT finding_ids, est_cost_usd FROM incidents").fetchall()
        ]
    finally:
        con.close()


def request_cost(path: Path) -> float:
    con = db.connect(path, read_only=True)
    try:
        return float(con.execute("SELECT any_value(est_cost_usd) FROM requests").fetchall()[0][0])
    finally:
        con.close()


def add_findings(path: Path, fps: list[str]) -> None:
    con = db.connect(path)
    try:
        for n, fp in enumerate(fps):
            finding(con, f"f{n}", fp)
    finally:
        con.close()


def test_an_incident_of_one_principal_counts_each_request_of_a_batched_line(
    batched: tuple[Path, list[str]],
) -> None:
    path, fps = batched
    add_findings(path, fps[:1])
    one = request_cost(path)
    assert incident_costs(path) == [(1, pytest.approx(3 * one))]


def test_an_incident_of_several_principals_counts_each_request_once(
    batched: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, fps = batched
    add_findings(path, fps)  # both keys of acme-prod: one tenant incident of two principals
    one = request_cost(path)
    assert incident_costs(path) == [(2, pytest.approx(6 * one))]
    # the evidence bundle holds all six requests, the weekly report exposes all six
    code, _, err = forensics_on(
        path, "report", "bundle", "--week", "2026-W01", "-o", str(tmp_path / "b"), "--zip"
    )
    assert code == 0, err
    [archive] = (tmp_path / "b").rglob("*.zip")
    with zipfile.ZipFile(archive) as z:
        name = next(n for n in z.namelist() if n.endswith("requests.csv"))
        listed = list(csv.DictReader(io.StringIO(z.read(name).decode("utf-8"))))
    assert sorted(r["request_id"] for r in listed) == sorted(
        f"cred-{w}-{n}" for w in ("one", "two") for n in range(3)
    )
    assert "request_row" not in listed[0]
    weekly = tmp_path / "weekly.md"
    code, _, err = forensics_on(
        path, "report", "weekly", "--week", "2026-W01", "--format", "md", "-o", str(weekly)
    )
    assert code == 0, err
    text = weekly.read_text(encoding="utf-8")  # Markdown: $ and ( are escaped
    exposed = re.search(r"Cost exposure (\S+) of gateway traffic \\\(of (\S+) for all", text)
    assert exposed, text
    assert exposed[1] == exposed[2] == f"\\${6 * one:.2f}"
