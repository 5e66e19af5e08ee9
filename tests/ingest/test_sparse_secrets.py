"""Files whose secrets are few: the rows that carry one are scrubbed in a second, packed pass
(canonical.dense_secrets), and the case holds exactly what one pass over every row would give."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import duckdb
import pytest

from forensics.case import db
from forensics.case.db import salt
from forensics.case.fingerprints import fingerprint
from forensics.ingest import canonical, decompress, reader, staged
from tests.conftest import load, rows, tables_containing
from tests.ingest.test_kong import kong_record
from tests.ingest.test_litellm import CSV_COLUMNS, to_csv
from tests.ingest.test_litellm import row as litellm_row
from tests.keys import KEYS

ANTHROPIC = KEYS["anthropic"]
OPENAI = KEYS["openai-project"]
GOOGLE = KEYS["google"]
CLEAN = (
    '{ip} - - [17/May/2015:10:{m:02d}:{s:02d} +0000] "GET /articles/{n}.html HTTP/1.1" 200 {n}'
    ' "https://www.example.org/list?page={n}" "Mozilla/5.0 (X11; Linux x86_64; rv:{n})"'
)
# Where a key turns up in a web server's log: the query string, the referer, the user agent.
CARRIERS = {
    57: '203.0.113.9 - - [17/May/2015:11:00:01 +0000] "GET /v1/models?api_key={k} HTTP/1.1"'
    ' 401 12 "-" "curl/8.5.0"',
    2101: '198.51.100.4 - - [17/May/2015:11:00:02 +0000] "GET /app HTTP/1.1" 200 5'
    ' "https://tool.example/?token={k}" "Mozilla/5.0"',
    4100: '192.0.2.77 - - [17/May/2015:11:00:03 +0000] "POST /v1/messages HTTP/1.1" 200 9'
    ' "-" "script/1.0 key={k}"',
}
KEY_OF_LINE = {57: OPENAI, 2101: ANTHROPIC, 4100: GOOGLE}
LINES = 5000  # the carriers sit in three different vectors of 2,048 rows


def access_log() -> str:
    out = []
    for n in range(1, LINES + 1):
        if n in CARRIERS:
            out.append(CARRIERS[n].format(k=KEY_OF_LINE[n]))
        else:
            ip = f"10.{n % 7}.{n % 251}.{n % 13 + 1}"
            out.append(CLEAN.format(ip=ip, m=n % 60, s=(n * 7) % 60, n=n))
    return "\n".join(out) + "\n"


def _ingest(tmp_path: Path, text: str, dense: bool | None) -> duckdb.DuckDBPyConnection:
    """The log ingested into a new case: as ingest judges it (None) or forced dense/sparse."""
    con = db.connect(tmp_path / f"case-{dense}.duckdb")
    with pytest.MonkeyPatch.context() as patch:
        if dense is not None:
            patch.setattr(canonical, "dense_secrets", lambda c, head: dense)
        result = load(con, tmp_path, text, name=f"access-{dense}.log")
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (LINES, LINES, 0)
    return con


def _comparable(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    """Every request row, fingerprints written without the case's own salt."""
    table = rows(con, "SELECT * EXCLUDE (source_id) FROM requests ORDER BY line_no")
    fp = re.compile(r"cred:[0-9a-f]{12}:")
    return [
        tuple(fp.sub("cred:*:", v) if isinstance(v, str) else v for v in r.values()) for r in table
    ]


def test_a_log_with_few_secrets_is_judged_sparse(case: duckdb.DuckDBPyConnection) -> None:
    head = access_log().splitlines()[:20]
    assert canonical.dense_secrets(case, head) is False
    carried = [CARRIERS[57].format(k=OPENAI)] * 5 + head[:15]  # a quarter of the head
    assert canonical.dense_secrets(case, carried) is True


def test_sparse_and_dense_store_the_same_rows_and_no_key(tmp_path: Path) -> None:
    text = access_log()
    sparse = _ingest(tmp_path, text, None)  # judged sparse: the second pass runs
    dense = _ingest(tmp_path, text, True)
    try:
        assert _comparable(sparse) == _comparable(dense)
        for key in KEY_OF_LINE.values():
            assert tables_containing(sparse, key[8:28]) == []
        by_line = {r["line_no"]: r for r in rows(sparse, "SELECT * FROM requests")}
        ours = fingerprint(OPENAI, salt(sparse))
        assert by_line[57]["query"] == f"api_key={ours}"
        assert by_line[57]["credential_id"] == ours
        assert (
            by_line[2101]["referer"]
            == f"https://tool.example/?token={fingerprint(ANTHROPIC, salt(sparse))}"
        )
        assert by_line[4100]["user_agent"] == f"script/1.0 key={fingerprint(GOOGLE, salt(sparse))}"
        assert len(by_line) == LINES  # each carrier once: its first, unscrubbed row was dropped
    finally:
        sparse.close()
        dense.close()


def _forced(tmp_path: Path, name: str, text: str, dense: bool) -> duckdb.DuckDBPyConnection:
    con = db.connect(tmp_path / f"{name}-{dense}.duckdb")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(canonical, "dense_secrets", lambda c, head: dense)
        load(con, tmp_path, text, name=f"{name}-{dense}.log")
    return con


def test_a_line_of_several_records_goes_again_whole(tmp_path: Path) -> None:
    """A Kong line holding a JSON array: one record carries a key, its neighbour does not;
    each is stored once, sparse or dense."""
    clean = [json.dumps(kong_record(**{"request.id": f"r{n}"})) for n in range(40)]
    keyed = kong_record(**{"request.id": "keyed", "request.headers.user-agent": f"x {OPENAI}"})
    pair = json.dumps([keyed, kong_record(**{"request.id": "neighbour"})])
    text = "\n".join([*clean[:20], pair, *clean[20:]]) + "\n"
    for dense in (False, True):
        con = _forced(tmp_path, "kong", text, dense)
        try:
            ids = [r[0] for r in con.execute("SELECT request_id FROM requests").fetchall()]
            [(read, loaded)] = con.execute("SELECT rows_read, rows_loaded FROM sources").fetchall()
            assert sorted(ids) == sorted([f"r{n}" for n in range(40)] + ["keyed", "neighbour"])
            assert (read, loaded) == (42, 42)
            assert tables_containing(con, OPENAI[8:28]) == []
        finally:
            con.close()


def test_a_csv_export_is_never_read_in_two_passes(tmp_path: Path) -> None:
    """A CSV row is read by its header: LiteLLM exports are dense whatever their first rows say,
    so a row carrying a key loads like the others."""
    rows_ = [litellm_row(request_id=f"req-{n}") for n in range(30)]
    rows_.append(litellm_row(request_id=f"req-{ANTHROPIC}"))
    text = to_csv(rows_, CSV_COLUMNS)
    con = db.connect(tmp_path / "litellm.duckdb")
    try:
        result = load(con, tmp_path, text, name="spend.csv")
        assert result.rows_loaded == 31
        assert tables_containing(con, ANTHROPIC[14:34]) == []
    finally:
        con.close()


@pytest.mark.parametrize(("held", "passes"), [(staged.RESCRUB_LINES, 1), (1, 3)])
def test_the_second_pass_waits_for_the_lines_of_several_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held: int, passes: int
) -> None:
    """The three carriers fall in three chunks: their lines are scrubbed in one pass at the end
    of the file, or in a pass each when fewer lines may wait; the case is the same either way."""
    monkeypatch.setattr(decompress, "RAW_BLOCK", 64 * 1024)
    chunked = functools.partial(reader.read_chunks, chunk_bytes=256 * 1024)
    monkeypatch.setattr(reader, "read_chunks", chunked)
    monkeypatch.setattr(staged, "RESCRUB_LINES", held)
    calls: list[int] = []
    real = staged._second_pass
    monkeypatch.setattr(staged, "_second_pass", lambda *a: calls.append(1) or real(*a))
    text = access_log()
    sparse = _ingest(tmp_path, text, None)
    dense = _ingest(tmp_path, text, True)
    try:
        assert len(calls) == passes
        assert sparse.execute("SELECT count(*) FROM requests").fetchall() == [(LINES,)]
        assert _comparable(sparse) == _comparable(dense)
        for key in KEY_OF_LINE.values():
            assert tables_containing(sparse, key[8:28]) == []
    finally:
        sparse.close()
        dense.close()
