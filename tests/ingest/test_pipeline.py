"""Evidence integrity: hashing, re-ingest, compression, bad input, atomicity."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zstandard

from forensics.case import db
from forensics.ingest.decompress import sha256_file
from forensics.ingest.paths import expand_paths
from forensics.ingest.pipeline import ingest_file, ingest_paths
from tests.conftest import rows
from tests.ingest.test_kong import kong_record, lines

FORENSICS = [sys.executable, "-m", "forensics"]


def kong_text(n: int, start: int = 0) -> str:
    return lines(
        *(
            kong_record(**{"request.id": f"r{start + i}", "started_at": 1767225600000 + i})
            for i in range(n)
        )
    )


def test_sources_row_records_hash_size_format_counts(case, tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(kong_text(5) + "not json\n")
    result = ingest_file(case, path)
    [src] = rows(case, "SELECT * FROM sources")
    assert src["path"] == str(path.resolve())
    assert src["sha256"] == sha256_file(path)
    assert src["bytes"] == path.stat().st_size
    assert (src["format"], src["kind"], src["tool_version"]) == ("kong", "requests", "0.1.0")
    assert (src["rows_read"], src["rows_loaded"], src["rows_quarantined"]) == (6, 5, 1)
    assert result.reconciles


def test_same_content_again_is_skipped_even_under_another_name(case, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "copy.jsonl"
    a.write_text(kong_text(3))
    b.write_text(kong_text(3))
    first, second = ingest_paths(case, [a, b])
    assert first.status == "loaded" and second.status == "skipped"
    assert second.message == "same content already ingested as source 1"
    assert case.execute("SELECT count(*) FROM requests").fetchall() == [(3,)]
    assert case.execute("SELECT count(*) FROM sources").fetchall() == [(1,)]


def test_same_size_other_content_loads_and_same_content_is_skipped(case, tmp_path):
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    a.write_text(kong_text(3))
    b.write_text(kong_text(3).replace('"r0"', '"x0"'))  # same size, other bytes
    c.write_text(kong_text(3))
    assert a.stat().st_size == b.stat().st_size
    got = [r.status for r in ingest_paths(case, [a, b, c])]
    assert got == ["loaded", "loaded", "skipped"]
    hashes = case.execute("SELECT sha256 FROM sources ORDER BY source_id").fetchall()
    assert hashes == [(sha256_file(a),), (sha256_file(b),)]


@pytest.mark.parametrize("kind", ["gz", "zst"])
def test_compressed_files_read_transparently(case, tmp_path, kind):
    text = kong_text(50).encode()
    path = tmp_path / f"k.jsonl.{kind}"
    path.write_bytes(gzip.compress(text) if kind == "gz" else zstandard.compress(text))
    result = ingest_file(case, path)
    assert (result.format, result.rows_loaded) == ("kong", 50)
    [src] = rows(case, "SELECT sha256, bytes FROM sources")
    assert src == {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def test_truncated_gzip_loads_what_is_there_and_says_where_it_ends(case, tmp_path):
    data = gzip.compress(kong_text(2000).encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    result = ingest_file(case, path)
    assert result.status == "loaded" and result.reconciles
    assert 0 < result.rows_loaded < 2000
    [warning] = result.warnings
    assert warning.startswith(f"{path}:") and "truncated" in warning
    last = case.execute(
        "SELECT line_no, error FROM quarantine ORDER BY line_no DESC LIMIT 1"
    ).fetchall()[0]
    assert last[1] == (
        f"gzip stream is truncated: the file ends at byte {len(data) // 2:,} inside the member"
        " starting at byte 0"
    )
    # the hash taken while reading covers the whole file on disk
    assert case.execute("SELECT sha256 FROM sources").fetchall() == [(sha256_file(path),)]


def test_invalid_utf8_quarantines_exactly_that_line(case, tmp_path):
    path = tmp_path / "bad.jsonl"
    good = kong_text(3).encode().splitlines(keepends=True)
    path.write_bytes(good[0] + b'{"started_at": 1, "x": "\xff\xfe"}\n' + good[1] + good[2])
    result = ingest_file(case, path)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (4, 3, 1)
    assert case.execute("SELECT line_no, error FROM quarantine").fetchall() == [
        (2, "invalid UTF-8 at byte 24")
    ]
    assert case.execute("SELECT list(line_no ORDER BY line_no) FROM requests").fetchall() == [
        ([1, 3, 4],)
    ]


def test_a_50_mb_single_line_is_one_quarantined_record(case, tmp_path):
    path = tmp_path / "huge.jsonl"
    with path.open("w") as f:
        f.write(kong_text(1))
        f.write('{"started_at": 1767225600000, "junk": "' + "x" * (50 * 1024 * 1024))  # no end
        f.write("\n")
        f.write(kong_text(1, start=1))
    result = ingest_file(case, path)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3, 2, 1)
    [(line, error, raw_len)] = case.execute(
        "SELECT line_no, error, length(raw) FROM quarantine"
    ).fetchall()
    assert (line, error, raw_len) == (2, "invalid JSON: record is cut off", 2000)


def test_empty_file_is_reported_not_loaded(case, tmp_path):
    path = tmp_path / "empty.log"
    path.write_text("")
    result = ingest_file(case, path)
    assert (result.status, result.message) == ("skipped", "empty file: no records")


def test_directory_of_mixed_formats_detects_each_file(case, tmp_path):
    d = tmp_path / "logs"
    (d / "sub").mkdir(parents=True)
    (d / "kong.jsonl").write_text(kong_text(4))
    (d / "sub" / "revoked.csv").write_text("credential_id,revoked_at\nabc,2026-01-01T00:00:00Z\n")
    (d / "mystery.txt").write_text("hello world\n")
    (d / ".hidden").write_text("ignored\n")
    results = ingest_paths(case, expand_paths([str(d)]))
    by_name = {Path(r.path).name: r for r in results}
    assert set(by_name) == {"kong.jsonl", "revoked.csv", "mystery.txt"}
    assert (by_name["kong.jsonl"].format, by_name["kong.jsonl"].rows_loaded) == ("kong", 4)
    assert by_name["revoked.csv"].format == "revocations"
    assert by_name["mystery.txt"].status == "failed"
    assert by_name["mystery.txt"].message.startswith(f"{d / 'mystery.txt'}:1: unknown format")


def test_globs_expand_and_a_missing_path_is_an_error(tmp_path):
    (tmp_path / "a.jsonl").write_text("x")
    (tmp_path / "b.jsonl").write_text("x")
    assert [p.name for p in expand_paths([str(tmp_path / "*.jsonl")])] == ["a.jsonl", "b.jsonl"]
    with pytest.raises(Exception, match="no such file, directory or glob match"):
        expand_paths([str(tmp_path / "nope*.log")])


def test_a_failing_file_leaves_nothing_behind(case, tmp_path):
    path = tmp_path / "k.jsonl"
    path.write_text(kong_text(10))
    result = ingest_paths(case, [path], fmt="revocations")[0]
    assert result.status == "failed"
    assert result.message.startswith(f"{path}:1: expected a CSV header credential_id,revoked_at")
    for table in ("sources", "requests", "quarantine", "revocations"):
        assert case.execute(f"SELECT count(*) FROM {table}").fetchall() == [(0,)], table


@pytest.mark.slow
def test_kill_9_mid_ingest_leaves_none_of_the_file_and_a_rerun_loads_it_whole(tmp_path):
    big = tmp_path / "big.jsonl"
    record = json.dumps(kong_record())
    with big.open("w") as f:
        for i in range(60_000):
            f.write(record.replace('"9b1f0c2e7a4d4b0f8e3c1a2b3c4d5e6f"', f'"req{i}"') + "\n")
    small = tmp_path / "small.jsonl"
    small.write_text(kong_text(7))
    case_path = tmp_path / "case.duckdb"
    env = dict(os.environ, FORENSICS_CHUNK_BYTES=str(4 * 1024 * 1024))
    subprocess.run(
        [*FORENSICS, "--db", str(case_path), "ingest", "-q", str(small)],
        check=True,
        env=env,
        capture_output=True,
    )
    # How long a whole ingest of the big file takes here, to kill the next one half way.
    started = time.monotonic()
    subprocess.run(
        [*FORENSICS, "--db", str(tmp_path / "scratch.duckdb"), "ingest", "-q", str(big)],
        check=True,
        env=env,
        capture_output=True,
    )
    whole = time.monotonic() - started
    proc = subprocess.Popen(
        [*FORENSICS, "--db", str(case_path), "ingest", "-q", str(big)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(whole * 0.6)
    assert proc.poll() is None, "ingest finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    con = db.connect(case_path)
    assert con.execute("SELECT count(*), count(DISTINCT source_id) FROM requests").fetchall() == [
        (7, 1)
    ]
    assert con.execute("SELECT path FROM sources").fetchall() == [(str(small.resolve()),)]
    con.close()
    done = subprocess.run(
        [*FORENSICS, "--db", str(case_path), "ingest", "-q", str(big)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert (
        "1 loaded, 0 skipped, 0 failed: 60,000 read = 60,000 loaded + 0 quarantined" in done.stdout
    )
    con = db.connect(case_path)
    assert con.execute("SELECT count(*) FROM requests").fetchall() == [(60_007,)]
    con.close()
