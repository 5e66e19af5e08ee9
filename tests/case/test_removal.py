"""Removing a source (`forensics.case.removal`): the rule for the findings that rested on it,
what reference and enrichment files give back, and the record of the removal."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

from forensics.case import db
from forensics.case.removal import remove_source, remove_sources
from forensics.detect.incidents import build_incidents
from forensics.errors import UsageError
from tests.conftest import load
from tests.ingest.test_kong import kong_record
from tests.ingest.test_prices import est, jsonl, kong

T0 = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def kong_at(when: dt.datetime, tenant: str, request_id: str) -> dict[str, object]:
    return kong_record(
        **{
            "started_at": int(when.timestamp() * 1000),
            "consumer.username": tenant,
            "request.id": request_id,
        }
    )


def add_run(con: duckdb.DuckDBPyConnection, run_id: str, sources: list[int]) -> None:
    con.execute(
        "INSERT INTO runs (run_id, started_at, sources, status) VALUES ($r, now(), $s, 'ok')",
        {"r": run_id, "s": json.dumps([{"source_id": s, "sha256": "x"} for s in sources])},
    )


def add_finding(
    con: duckdb.DuckDBPyConnection,
    finding_id: str,
    run_id: str,
    tenant: str,
    start: dt.datetime,
    end: dt.datetime,
    superseded_by: str | None = None,
) -> None:
    con.execute(
        "INSERT INTO findings (finding_id, detector_id, run_id, severity, score, principal_type,"
        " principal_id, tenant_id, window_start, window_end, summary, suppressed, superseded_by)"
        " VALUES ($f, 'test.rule', $r, 'high', 80, 'tenant', $t, $t, $s, $e, 'x', false, $sup)",
        {"f": finding_id, "r": run_id, "t": tenant, "s": start, "e": end, "sup": superseded_by},
    )
    con.execute("INSERT INTO finding_requests VALUES ($f, 'sample-' || $f)", {"f": finding_id})


def findings(con: duckdb.DuckDBPyConnection) -> dict[str, int | None]:
    """finding id -> stale_by_source, for every finding left."""
    return dict(con.execute("SELECT finding_id, stale_by_source FROM findings").fetchall())


@pytest.fixture
def two_files(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> duckdb.DuckDBPyConnection:
    """Source 1: tenant-acme and tenant-solo at T0. Source 2: tenant-acme an hour later."""
    load(
        case,
        tmp_path,
        jsonl(kong_at(T0, "tenant-acme", "a1"), kong_at(T0, "tenant-solo", "s1")),
        name="a.jsonl",
    )
    load(case, tmp_path, jsonl(kong_at(T0 + HOUR, "tenant-acme", "a2")), name="b.jsonl")
    return case


def test_a_finding_whose_evidence_was_all_in_the_source_goes_a_shared_one_turns_stale(
    two_files: duckdb.DuckDBPyConnection,
) -> None:
    con = two_files
    add_run(con, "run-both", [1, 2])
    add_run(con, "run-b", [2])
    minute = dt.timedelta(minutes=1)
    add_finding(con, "only-a", "run-both", "tenant-solo", T0 - minute, T0 + minute)
    add_finding(con, "both", "run-both", "tenant-acme", T0 - minute, T0 + HOUR + minute)
    add_finding(con, "after-a", "run-both", "tenant-acme", T0 + HOUR - minute, T0 + HOUR)
    add_finding(con, "not-read", "run-b", "tenant-solo", T0 - minute, T0 + minute)
    add_finding(con, "old", "run-both", "tenant-solo", T0 - minute, T0 + minute, "run-b")
    build_incidents(con)
    assert "only-a" in str(con.execute("SELECT finding_ids FROM incidents").fetchall())

    [removal] = remove_sources(con, [1], "wrong file", user="investigator")

    assert (removal.findings_deleted, removal.findings_stale) == (1, 1)
    # deleted: tenant-solo's only requests in its window were in source 1; stale: tenant-acme
    # keeps a request of source 2; untouched: a finding without requests of source 1 in its
    # window, one of a run that never read source 1, and one no longer current
    assert findings(con) == {"both": 1, "after-a": None, "not-read": None, "old": None}
    assert con.execute(
        "SELECT count(*) FROM finding_requests WHERE finding_id = 'only-a'"
    ).fetchall() == [(0,)]
    ids = str(con.execute("SELECT list(finding_ids) FROM incidents").fetchall())
    assert "only-a" not in ids and "both" in ids  # rebuilt from the findings left
    assert con.execute(
        "SELECT source_id, format, kind, rows_loaded, removed_by, reason, replaced_by,"
        " findings_deleted, findings_stale FROM source_removals"
    ).fetchall() == [(1, "kong", "requests", 2, "investigator", "wrong file", None, 1, 1)]
    for table in ("sources", "requests", "quarantine", "source_digests"):
        left = con.execute(f"SELECT count(*) FROM {table} WHERE source_id = 1").fetchall()
        assert left == [(0,)], table


def test_any_other_source_marks_every_finding_of_the_runs_that_read_it(
    two_files: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    con = two_files
    load(
        con,
        tmp_path,
        "credential_id,revoked_at\nabc,2026-01-01T00:00:00Z\n",
        name="revoked.csv",
    )
    add_run(con, "run-all", [1, 2, 3])
    add_run(con, "run-before", [1, 2])
    add_finding(con, "f1", "run-all", "tenant-solo", T0, T0)
    add_finding(con, "f2", "run-all", "tenant-acme", T0 + HOUR, T0 + HOUR)
    add_finding(con, "f3", "run-before", "tenant-acme", T0, T0)
    con.execute("BEGIN")
    removal = remove_source(con, 3, "wrong list", user="me")  # in the caller's transaction
    con.execute("COMMIT")
    assert (removal.findings_deleted, removal.findings_stale) == (0, 2)
    assert findings(con) == {"f1": 3, "f2": 3, "f3": None}
    assert con.execute("SELECT count(*) FROM revocations").fetchall() == [(0,)]


def test_a_removal_is_all_or_nothing_and_needs_a_reason(two_files: duckdb.DuckDBPyConnection):
    con = two_files
    with pytest.raises(UsageError, match="no source 7 in the case; nothing was removed"):
        remove_sources(con, [1, 7], "x")
    with pytest.raises(UsageError, match="a removal needs a reason"):
        remove_sources(con, [1], "  ")
    assert con.execute("SELECT count(*) FROM sources").fetchall() == [(2,)]
    assert con.execute("SELECT count(*) FROM source_removals").fetchall() == [(0,)]


def test_removed_prices_and_categories_give_the_shipped_rows_back(case, tmp_path):
    load(case, tmp_path, jsonl(kong()), name="kong.jsonl")
    priced = est(case)
    shipped_prices = case.execute("SELECT * FROM prices ORDER BY ALL").fetchall()
    shipped_asns = case.execute("SELECT * FROM asn_info ORDER BY ALL").fetchall()
    # every shipped gpt-4o row, at ten times the price
    dear = case.execute(
        "SELECT provider, model_pattern, input_per_mtok * 10,"
        " coalesce(cached_input_per_mtok, input_per_mtok) * 10, output_per_mtok * 10,"
        " effective_from FROM prices WHERE provider = 'openai' AND model_pattern LIKE 'gpt-4o%'"
    ).fetchall()
    load(
        case,
        tmp_path,
        "provider,model_pattern,input_per_mtok,cached_input_per_mtok,output_per_mtok,"
        "effective_from\n" + "".join(",".join(str(v) for v in r) + "\n" for r in dear),
        fmt="prices",
        name="prices.csv",
    )
    load(case, tmp_path, "asn,category,name\n16509,isp,relabelled\n", name="cats.csv")
    assert est(case) != priced
    remove_sources(case, [2, 3], "test prices")
    assert est(case) == priced
    assert case.execute("SELECT * FROM prices ORDER BY ALL").fetchall() == shipped_prices
    assert case.execute("SELECT * FROM asn_info ORDER BY ALL").fetchall() == shipped_asns


def test_requests_placed_by_a_removed_database_are_placed_again(case, tmp_path):
    from tests.ingest.test_enrichment_reference import IPTOASN, kong_from

    load(case, tmp_path, IPTOASN, fmt="iptoasn", name="ip2asn.tsv")
    load(case, tmp_path, kong_from("198.51.100.7"), name="k.jsonl")
    placed = "SELECT asn, asn_source, country, geo_source FROM requests"
    assert case.execute(placed).fetchall() == [(64500, "iptoasn", "DE", "iptoasn")]
    remove_sources(case, [1], "wrong database")
    assert case.execute(placed).fetchall() == [(None, None, None, None)]
    assert case.execute("SELECT count(*) FROM ip_ranges").fetchall() == [(0,)]


def test_an_older_case_gets_the_removal_table_and_the_stale_column_on_open(tmp_path):
    path = tmp_path / "old.duckdb"
    con = db.connect(path)
    con.execute("DROP TABLE source_removals")
    con.execute("ALTER TABLE findings DROP COLUMN stale_by_source")
    con.close()
    con = db.connect(path)
    try:
        assert con.execute("SELECT count(*) FROM source_removals").fetchall() == [(0,)]
        assert con.execute("SELECT count(stale_by_source) FROM findings").fetchall() == [(0,)]
    finally:
        con.close()
