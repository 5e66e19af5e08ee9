"""A case that keeps its requests and usage in a lake (`forensics --lake DIR`) holds the same
evidence as one that keeps them itself, and every command reads and changes it the same way."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from forensics.case import db
from forensics.lake import owner, store
from tests.conftest import forensics_on, query_case

FINDING = (
    "SELECT detector_id, principal_type, principal_id, window_start, window_end,"
    " CAST(severity AS VARCHAR) AS severity, round(est_cost_usd, 9) AS cost, CAST(evidence AS VARCHAR) AS evidence FROM findings"
    " WHERE superseded_by IS NULL ORDER BY ALL"
)


def _ingest(case: Path, world: Path, *more: str, lake: Path | None = None) -> None:
    front = ["--lake", str(lake)] if lake is not None else []
    args = [*front, "ingest", "-q", "--asn-db", str(world / "ip2asn-v4.tsv"), *more]
    code, out, err = forensics_on(case, *args, str(world / "logs"))
    assert code == 0, err
    db.use_lake(None)


def _on_disk(lake: Path) -> set[str]:
    return {str(p.relative_to(lake)) for p in lake.rglob("*.parquet")}


def _listed(case: Path) -> set[str]:
    return {str(r["path"]) for r in query_case(case, "SELECT path FROM lake_files")}


def _same_salt(case: Path, lake: Path, like: Path) -> None:
    """Create the lake case with the salt of case `like`, so that both fingerprint a raw key
    the same way."""
    db.use_lake(lake, case=case)
    db.connect(case).close()
    db.use_lake(None)
    [(salt,)] = (
        duckdb.connect(str(like), read_only=True)
        .execute("SELECT value FROM meta WHERE key = 'fingerprint_salt'")
        .fetchall()
    )
    con = duckdb.connect(str(case))
    con.execute("UPDATE meta SET value = $s WHERE key = 'fingerprint_salt'", {"s": salt})
    con.close()


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Path]:
    """A synth world ingested and detected twice, once per kind of case:
    (world, case keeping its rows, case keeping them in a lake, the lake)."""
    from forensics.synth import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("twins")
    world = root / "world"
    synthesize(world, SynthConfig(days=4, tenants=6, seed=5))
    table, lake_case, lake = root / "table.duckdb", root / "lake.duckdb", root / "lake"
    _ingest(table, world)
    _same_salt(lake_case, lake, table)
    _ingest(lake_case, world, lake=lake)
    for case in (table, lake_case):
        code, _, err = forensics_on(case, "detect")
        assert code == 0, err
    return world, table, lake_case, lake


def test_lake_holds_the_rows_as_parquet_files_in_the_documented_layout(twins: tuple) -> None:
    _, table, case, lake = twins
    assert _on_disk(lake) == _listed(case) != set()
    for path in _on_disk(lake):
        assert re.fullmatch(
            r"(requests|usage)/date=\d{4}-\d\d-\d\d/part-[0-9a-f-]{36}\.parquet", path
        )
    con = duckdb.connect()
    try:
        # another DuckDB reads the directory as docs/lake.md says, and finds every row
        [(n,)] = con.execute(
            "SELECT count(*) FROM read_parquet($p, hive_partitioning = true)",
            {"p": str(lake / "requests" / "*" / "*.parquet")},
        ).fetchall()
        # the day in the path is the day of each row's time
        [(wrong,)] = con.execute(
            "SELECT count(*) FROM read_parquet($p, hive_partitioning = true)"
            " WHERE strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%d') <> date",
            {"p": str(lake / "requests" / "*" / "*.parquet")},
        ).fetchall()
    finally:
        con.close()
    assert n == query_case(table, "SELECT count(*) AS n FROM requests")[0]["n"] > 0
    assert wrong == 0
    # same columns and types, in the order of `forensics schema`
    describe = "SELECT column_name, column_type FROM (DESCRIBE {})"
    for name in ("requests", "usage", "request_principals", "request_costs"):
        assert query_case(case, describe.format(name)) == query_case(table, describe.format(name))


def test_same_evidence_and_findings_as_a_case_keeping_its_rows(twins: tuple) -> None:
    _, table, case, _ = twins
    for sql in (
        "SELECT * EXCLUDE (source_id) FROM requests ORDER BY ALL",
        "SELECT * EXCLUDE (source_id) FROM usage ORDER BY ALL",
        "SELECT source_id, table_name, rows, digest FROM source_digests ORDER BY ALL",
        FINDING,
        "SELECT CAST(severity AS VARCHAR), primary_detector, round(est_cost_usd, 9), principal_id FROM incidents"
        " ORDER BY ALL",
    ):
        assert query_case(case, sql) == query_case(table, sql), sql
    assert len(query_case(case, FINDING)) > 20


def test_verify_and_reports_work_unchanged(twins: tuple, tmp_path: Path) -> None:
    _, _, case, _ = twins
    code, _, err = forensics_on(case, "verify")
    assert code == 0 and "0 changed" in err, err
    code, _, err = forensics_on(case, "report", "weekly", "-o", str(tmp_path / "w.html"))
    assert code == 0, err
    assert "</html>" in (tmp_path / "w.html").read_text(encoding="utf-8")
    code, out, err = forensics_on(case, "sql", "SELECT count(*) AS n FROM request_subjects")
    assert code == 0 and re.search(r"\d{4,}", out), err


def test_sql_reads_the_lake_but_no_other_file(twins: tuple, tmp_path: Path) -> None:
    _, _, case, lake = twins
    other = tmp_path / "other.parquet"
    duckdb.sql(f"COPY (SELECT 1 AS x) TO '{other}'")
    [listed] = sorted(_listed(case))[:1]
    code, out, _ = forensics_on(
        case, "sql", f"SELECT count(*) FROM read_parquet('{lake / listed}')"
    )
    assert code == 0, out  # the lake is the case's own evidence
    code, _, err = forensics_on(case, "sql", f"SELECT * FROM read_parquet('{other}')")
    assert code != 0 and "x" not in _ and err
    code, _, err = forensics_on(
        case, "sql", f"COPY (SELECT 1) TO '{lake / 'requests' / 'planted.parquet'}'"
    )
    assert code != 0 and not (lake / "requests" / "planted.parquet").exists()


def test_a_time_filter_reads_only_the_row_groups_it_needs(twins: tuple) -> None:
    _, _, case, _ = twins
    con = db.connect(case, read_only=True)
    try:
        [(last,)] = con.execute("SELECT max(ts) - INTERVAL 6 HOUR FROM requests").fetchall()
        plan = "\n".join(
            str(r[1])
            for r in con.execute(
                "EXPLAIN ANALYZE SELECT count(*) FROM requests WHERE ts >= $t", {"t": last}
            ).fetchall()
        )
    finally:
        con.close()
    scanned, total = map(int, re.search(r"Row Groups Scanned: (\d+) / (\d+)", plan).groups())
    assert scanned < total


@pytest.fixture
def lake_copy(twins: tuple, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A private lake case with the twins' world ingested (nothing detected): (world, case,
    lake)."""
    world = twins[0]
    case, lake = tmp_path / "case.duckdb", tmp_path / "lake"
    _ingest(case, world, lake=lake)
    return world, case, lake


def _sources(case: Path, fmt: str) -> list[int]:
    found = query_case(case, "SELECT source_id FROM sources WHERE format = $f", {"f": fmt})
    return [int(str(r["source_id"])) for r in found]


def test_removing_a_source_rewrites_only_its_files_and_force_loads_it_again(
    lake_copy: tuple,
) -> None:
    world, case, lake = lake_copy
    [kong] = _sources(case, "kong")
    before = query_case(case, "SELECT count(*) AS n FROM requests")[0]["n"]
    theirs = query_case(
        case, "SELECT count(*) AS n FROM requests WHERE source_id = $s", {"s": kong}
    )
    untouched = {p for p in _listed(case) if p.startswith("usage/")}
    code, _, err = forensics_on(case, "sources", "remove", str(kong), "--reason", "test")
    assert code == 0, err
    assert query_case(case, "SELECT count(*) AS n FROM requests")[0]["n"] == before - theirs[0]["n"]
    assert _on_disk(lake) == _listed(case)  # the replaced files are gone from the disk
    assert untouched <= _listed(case)  # usage was not written again
    code, _, err = forensics_on(case, "ingest", "-q", str(world / "logs" / "kong.jsonl"))
    assert code == 0, err
    assert query_case(case, "SELECT count(*) AS n FROM requests")[0]["n"] == before
    code, _, err = forensics_on(case, "ingest", "-q", "--force", str(world / "logs" / "kong.jsonl"))
    assert code == 0, err
    assert query_case(case, "SELECT count(*) AS n FROM requests")[0]["n"] == before
    assert _on_disk(lake) == _listed(case)
    code, _, err = forensics_on(case, "verify")
    assert code == 0 and "0 changed" in err, err


def test_repricing_and_placing_again_write_the_requests_anew(
    lake_copy: tuple, tmp_path: Path
) -> None:
    world, case, lake = lake_copy
    prices = tmp_path / "prices.csv"
    [used] = query_case(
        case,
        "SELECT provider, model FROM requests WHERE est_cost_usd > 0 GROUP BY ALL"
        " ORDER BY count(*) DESC LIMIT 1",
    )
    prices.write_text(  # a price that applies from before the world's first day
        "provider,model_pattern,input_per_mtok,cached_input_per_mtok,output_per_mtok,"
        f"effective_from\n{used['provider']},{used['model']},1000,1000,1000,2026-01-01\n",
        encoding="utf-8",
    )
    total = "SELECT round(sum(est_cost_usd), 6) AS c FROM requests"
    before = query_case(case, total)[0]["c"]
    old_files = _listed(case)
    code, _, err = forensics_on(case, "ingest", "-q", "--format", "prices", str(prices))
    assert code == 0, err
    assert query_case(case, total)[0]["c"] != before
    assert not ({p for p in old_files if p.startswith("requests/")} & _listed(case))
    assert _on_disk(lake) == _listed(case)
    # taking the prices out brings the old costs back, through another rewrite
    [source] = _sources(case, "prices")
    code, _, err = forensics_on(case, "sources", "remove", str(source), "--reason", "test")
    assert code == 0, err
    assert query_case(case, total)[0]["c"] == before
    # the ASN database out: requests are placed again without it, as in a case keeping its rows
    [asn] = _sources(case, "iptoasn")
    placed = "SELECT count(*) AS n FROM requests WHERE asn_source = 'iptoasn'"
    assert query_case(case, placed)[0]["n"] > 0
    code, _, err = forensics_on(case, "sources", "remove", str(asn), "--reason", "test")
    assert code == 0, err
    assert query_case(case, placed)[0]["n"] == 0
    code, _, err = forensics_on(case, "verify")
    assert code == 0, err


def test_compact_merges_each_day_into_one_file_ordered_by_time(lake_copy: tuple) -> None:
    _, case, lake = lake_copy
    rows = "SELECT * FROM requests ORDER BY ALL"
    before = query_case(case, rows)
    days = {str(Path(p).parent) for p in _listed(case)}
    assert len(_listed(case)) > len(days)  # several sources wrote files for a day
    code, out, err = forensics_on(case, "compact")
    assert code == 0 and "files ->" in out, err
    assert len(_listed(case)) == len(days) and _on_disk(lake) == _listed(case)
    assert query_case(case, rows) == before
    con = duckdb.connect()
    try:
        for path in _listed(case):
            column = "ts" if path.startswith("requests/") else "bucket_start"
            [(ordered,)] = con.execute(
                f"SELECT count(*) = 0 FROM (SELECT {column} < lag({column}) OVER () AS back"
                " FROM read_parquet($p)) WHERE back",
                {"p": str(lake / path)},
            ).fetchall()
            assert ordered, path
    finally:
        con.close()
    code, out, _ = forensics_on(case, "compact")
    assert code == 0 and "nothing to compact" in out
    code, _, err = forensics_on(case, "verify")
    assert code == 0, err


def test_a_transaction_killed_after_its_files_moved_in_leaves_nothing(
    lake_copy: tuple, tmp_path: Path
) -> None:
    """The narrowest point: the new files renamed into place, the listing not committed (the
    process dies between the two). The case and what it reads are as before; the next
    read-write open deletes the files."""
    world, case, lake = lake_copy
    before = query_case(case, "SELECT count(*) AS n FROM requests")[0]["n"]
    listed = _listed(case)
    con = db.connect(case)
    con.execute("BEGIN TRANSACTION")
    con.execute("INSERT INTO sources (source_id, path) VALUES (999, 'x')")
    store.write(con, "requests", "SELECT * REPLACE (999 AS source_id) FROM requests LIMIT 100")
    # commit() up to its COMMIT
    for (path,) in con.execute(
        "SELECT path FROM lake_files WHERE path LIKE '_staging/%'"
    ).fetchall():
        final = lake / "/".join(path.split("/")[2:])
        final.parent.mkdir(parents=True, exist_ok=True)
        (lake / path).rename(final)
    con.close()  # dies: DuckDB never commits what it was not told to
    assert len(_on_disk(lake)) > len(listed)  # debris on disk
    assert query_case(case, "SELECT count(*) AS n FROM requests")[0]["n"] == before
    db.connect(case).close()
    assert _on_disk(lake) == _listed(case) == listed


def test_the_lake_is_the_cases_own(lake_copy: tuple, tmp_path: Path) -> None:
    _, case, lake = lake_copy
    code, _, err = forensics_on(case, "--lake", str(tmp_path / "elsewhere"), "sources")
    assert code != 0 and "the case remembers its lake" in err
    plain = tmp_path / "plain.duckdb"
    db.use_lake(None)  # as a command without --lake would
    db.connect(plain).close()
    code, _, err = forensics_on(plain, "--lake", str(lake), "sources")
    assert code != 0 and "applies to a case being created" in err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine", encoding="utf-8")
    some = tmp_path / "revoked.csv"
    some.write_text("credential_id,revoked_at\nk1,2026-01-01T00:00:00Z\n", encoding="utf-8")
    new = tmp_path / "new.duckdb"
    code, _, err = forensics_on(new, "--lake", str(busy), "ingest", "-q", str(some))
    assert code != 0 and "not an empty directory" in err
    assert (busy / "notes.txt").read_text(encoding="utf-8") == "mine"
    (lake / owner.MARKER).unlink()
    code, _, err = forensics_on(case, "sources")
    assert code != 0 and "missing or belongs to another case" in err


@pytest.mark.parametrize("which", ["first", "last"])
def test_a_lake_file_deleted_by_hand_is_named_by_verify_and_stops_the_rest(
    lake_copy: tuple, which: str
) -> None:
    """The first file of a view's listing (which DuckDB opens to bind the view) or any other:
    verify opens the case anyway, names the file and the sources whose rows it held; every
    other command stops with one line pointing at verify, not a traceback or a wrong count."""
    _, case, lake = lake_copy
    listed = query_case(
        case,
        "SELECT path, file_no FROM lake_files WHERE table_name = 'requests' ORDER BY file_no",
    )
    victim = str(listed[0 if which == "first" else -1]["path"])
    with duckdb.connect() as con:
        query = "SELECT DISTINCT source_id FROM read_parquet($p)"
        holders = {int(s) for (s,) in con.execute(query, {"p": str(lake / victim)}).fetchall()}
    (lake / victim).unlink()
    code, out, err = forensics_on(case, "verify")
    assert code == 4 and f"lake file missing: {lake / victim}" in out
    assert "1 of the case's Parquet files missing" in err
    changed = {
        int(line.split()[2]) for line in out.splitlines() if line.split()[1:2] == ["CHANGED"]
    }
    assert changed == holders
    for args in (["sources"], ["detect"], ["sql", "SELECT count(*) FROM requests"]):
        code, out, err = forensics_on(case, *args)
        assert code != 0 and "missing from its lake" in err and "forensics verify" in err, args
        assert "Traceback" not in err
