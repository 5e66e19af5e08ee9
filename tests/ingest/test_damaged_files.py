"""Hostile and damaged evidence (issue 10): compressed streams exactly, limits, dedupe by
content, failures per file, byte order marks.

Every test reads real files (real gzip, real zstd) into a real case, through the CLI where the
exit code and the one-line message are part of the promise. Each asserts read = loaded +
quarantined for what loads.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import zstandard
from click.testing import CliRunner

from forensics.case import db
from forensics.cli import cli
from forensics.ingest import decompress, paths, reader
from forensics.ingest.base import Options
from forensics.ingest.decompress import Limits, sha256_file
from forensics.ingest.paths import expand_paths
from forensics.ingest.pipeline import FileResult, ingest_file, ingest_paths
from tests.conftest import quarantine_reasons, rows
from tests.ingest.test_kong import kong_record, lines
from tests.ingest.test_pipeline import kong_text

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(autouse=True)
def whole_paths_in_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The summary table cuts long cells; these tests find their rows by file name."""
    from forensics import output

    monkeypatch.setattr(output, "MAX_CELL", 10_000)


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def ingest_cli(case: Path, *args: str):
    return run("--db", str(case), "ingest", "-q", *args)


def summary_rows(stdout: str) -> dict[str, list[str]]:
    """file name -> [status, format, read, loaded, quarantined, skipped, reconciles]."""
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if parts and parts[0] in ("loaded", "skipped", "failed"):
            out[Path(parts[-1]).name] = parts[:-1]
    return out


def reconciles(result: FileResult) -> bool:
    return result.status == "loaded" and result.rows_read == (
        result.rows_loaded + result.rows_quarantined
    )


# --- 1. compressed evidence, exactly ------------------------------------------------------


def test_gzip_followed_by_junk_loads_every_record_and_quarantines_the_junk(case, tmp_path):
    # the reproduction of the issue: before, the output of the last raw block was dropped
    text = kong_text(3000).encode()
    packed = gzip.compress(text)
    path = tmp_path / "k.jsonl.gz"
    path.write_bytes(packed + b"GARBAGE" * 10)
    result = ingest_file(case, path)
    assert reconciles(result)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3001, 3000, 1)
    assert quarantine_reasons(case) == [
        (
            3001,
            f"70 bytes after the last complete gzip member are not gzip data, from byte"
            f" {len(packed):,} (ignored)",
        )
    ]
    [warning] = result.warnings
    assert warning.startswith(f"{path}:3001: 70 bytes after the last complete gzip member")


def test_the_issue_reproduction_on_a_multi_megabyte_log(case, tmp_path):
    """The same with a log several raw blocks long (the lost tail was the last block's)."""
    text = kong_text(9000).encode()
    path = tmp_path / "big.jsonl.gz"
    path.write_bytes(gzip.compress(text, compresslevel=1) + b"GARBAGE" * 10)
    assert path.stat().st_size > 2 * decompress.RAW_BLOCK or len(text) > 2 * decompress.RAW_BLOCK
    result = ingest_file(case, path)
    assert (result.rows_loaded, result.rows_quarantined) == (9000, 1)


def test_multi_member_gzip_and_multi_frame_zstd_load_whole(case, tmp_path):
    parts = [kong_text(400, start=i * 400).encode() for i in range(5)]
    gz = tmp_path / "members.jsonl.gz"
    gz.write_bytes(b"".join(gzip.compress(p) for p in parts))
    zst = tmp_path / "frames.jsonl.zst"
    zst.write_bytes(b"".join(zstandard.compress(p) for p in parts[:4]))
    a, b = ingest_paths(case, [gz, zst])
    assert (a.status, a.rows_read, a.rows_loaded, a.rows_quarantined) == ("loaded", 2000, 2000, 0)
    assert (b.status, b.rows_read, b.rows_loaded, b.rows_quarantined) == ("loaded", 1600, 1600, 0)
    assert a.warnings == b.warnings == []


@pytest.mark.parametrize("kind", ["gz", "zst"])
def test_nul_padding_after_the_last_member_is_reported_not_fatal_nor_empty(case, tmp_path, kind):
    text = kong_text(3).encode()
    packed = gzip.compress(text) if kind == "gz" else zstandard.compress(text)
    path = tmp_path / f"padded.jsonl.{kind}"
    path.write_bytes(packed + b"\x00" * 4096)
    result = ingest_file(case, path)
    assert (result.status, result.format) == ("loaded", "kong")
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (4, 3, 1)
    unit = "member" if kind == "gz" else "frame"
    name = "gzip" if kind == "gz" else "zstd"
    assert quarantine_reasons(case) == [
        (
            4,
            f"4,096 bytes of NUL padding after the last {name} {unit}, from byte {len(packed):,}"
            " (ignored)",
        )
    ]


def test_a_truncated_zst_is_never_an_empty_file(tmp_path):
    text = kong_text(200).encode()
    path = tmp_path / "cut.jsonl.zst"
    path.write_bytes(zstandard.compress(text)[:40])  # not one block complete: nothing decodes
    case = tmp_path / "c.duckdb"
    out = ingest_cli(case, str(path))
    assert out.exit_code == 1
    assert "empty file" not in out.output
    [error] = [ln for ln in out.stderr.splitlines() if ln.startswith("Error:")]
    assert error == (
        f"Error: {path.resolve()}: zstd stream is truncated: the file ends at byte 40 inside the"
        " frame starting at byte 0; nothing could be decompressed before it"
    )
    # with a format the damage is one record, quarantined: more than half of the file, so it
    # fails like any mostly-quarantined file, and is recorded when that is allowed
    out = ingest_cli(case, "--format", "kong", str(path))
    assert out.exit_code == 1
    assert "1 of 1 records quarantined as kong" in out.stderr
    out = ingest_cli(case, "--format", "kong", "--max-quarantine-share", "1", str(path))
    assert out.exit_code == 0, out.output
    assert summary_rows(out.stdout)["cut.jsonl.zst"][:7] == [
        "loaded",
        "kong",
        "1",
        "0",
        "1",
        "0",
        "yes",
    ]


def test_a_zstd_frame_damaged_in_the_middle_keeps_what_came_before(case, tmp_path):
    first = zstandard.compress(kong_text(500).encode())
    second = bytearray(zstandard.compress(kong_text(500, start=500).encode()))
    second[len(second) // 2 :] = b"\xff" * (len(second) - len(second) // 2)
    path = tmp_path / "damaged.jsonl.zst"
    path.write_bytes(first + bytes(second))
    result = ingest_file(case, path)
    assert reconciles(result)
    assert 500 <= result.rows_loaded < 1000
    [(line, error)] = [r for r in quarantine_reasons(case) if "zstd stream" in r[1]]
    assert line == result.rows_read
    assert error.startswith(f"zstd stream is damaged in the frame starting at byte {len(first):,}")


def test_a_truncated_gzip_names_the_byte_it_ends_at(case, tmp_path):
    data = gzip.compress(kong_text(2000).encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    result = ingest_file(case, path)
    assert reconciles(result) and 0 < result.rows_loaded < 2000
    last = quarantine_reasons(case)[-1][1]
    assert last == (
        f"gzip stream is truncated: the file ends at byte {len(data) // 2:,} inside the member"
        " starting at byte 0"
    )


def test_decompressed_bytes_are_limited_with_a_one_line_error(tmp_path):
    bomb = tmp_path / "zeros.jsonl.gz"
    bomb.write_bytes(gzip.compress(bytes(40 * 1024 * 1024)))  # 40 KiB that expand 1,000 times
    good = tmp_path / "good.jsonl"
    good.write_text(kong_text(3))
    out = ingest_cli(tmp_path / "c.duckdb", "--format", "kong", str(bomb), str(good))
    assert out.exit_code == 1
    assert "Traceback" not in out.output
    [error] = [ln for ln in out.stderr.splitlines() if ln.startswith("Error:")]
    assert error.startswith(f"Error: {bomb.resolve()}: decompresses to more than 16.0 MiB (200")
    assert error.endswith("stopped, nothing kept")
    assert summary_rows(out.stdout)["good.jsonl"][:4] == ["loaded", "kong", "3", "3"]
    # the ceiling applies whatever the ratio
    out = ingest_cli(
        tmp_path / "d.duckdb",
        "--format",
        "kong",
        "--max-expansion",
        "100000",
        "--max-decompressed-bytes",
        "20M",
        str(bomb),
    )
    assert out.exit_code == 1
    assert "decompresses to more than 20.0 MiB" in out.stderr


def test_an_endless_line_of_zeros_is_one_quarantined_record_not_a_growing_buffer(tmp_path):
    bomb = tmp_path / "zeros.jsonl.gz"
    bomb.write_bytes(
        gzip.compress(bytes(40 * 1024 * 1024)) + gzip.compress(b"\n" + kong_text(2).encode())
    )
    case = tmp_path / "c.duckdb"
    out = ingest_cli(
        case,
        "--format",
        "kong",
        "--max-expansion",
        "100000",
        "--max-record-bytes",
        "1M",
        str(bomb),
    )
    assert out.exit_code == 0, out.output
    assert summary_rows(out.stdout)["zeros.jsonl.gz"][:7] == [
        "loaded",
        "kong",
        "3",
        "2",
        "1",
        "0",
        "yes",
    ]
    con = db.connect(case)
    [(line, error, raw)] = con.execute("SELECT line_no, error, raw FROM quarantine").fetchall()
    con.close()
    assert (line, error) == (
        1,
        "record is longer than 1,048,576 bytes (--max-record-bytes): not loaded",
    )
    assert raw.startswith("\\0\\0")


def test_a_long_line_inside_a_chunk_is_quarantined_with_its_line_number(case, tmp_path):
    path = tmp_path / "k.jsonl"
    good = kong_text(3).splitlines(keepends=True)
    path.write_text(good[0] + '{"x": "' + "y" * 5000 + '"}\n' + good[1] + good[2])
    result = ingest_file(case, path, options=Options(limits=Limits(max_record_bytes=4096)))
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (4, 3, 1)
    assert quarantine_reasons(case) == [
        (2, "record is longer than 4,096 bytes (--max-record-bytes): not loaded")
    ]
    assert case.execute("SELECT list(line_no ORDER BY line_no) FROM requests").fetchall() == [
        ([1, 3, 4],)
    ]


def test_sniffing_a_zstd_bomb_reads_a_bounded_prefix(tmp_path):
    bomb = tmp_path / "bomb.jsonl.zst"
    compressor = zstandard.ZstdCompressor(level=3)
    zeros = bytes(64 * 1024 * 1024)
    with bomb.open("wb") as f, compressor.stream_writer(f, closefd=False) as w:
        for _ in range(16):  # 1 GiB in about 33 KiB
            w.write(zeros)
    head = reader.sniff(bomb)
    assert head.content_bytes <= 64 * 1024 * 1024
    assert not head.complete
    assert reader.head_lines(bomb) == [reader.head_lines(bomb)[0]]  # one NUL "line", cut


@pytest.mark.slow
def test_peak_memory_on_a_bomb_stays_bounded(tmp_path):
    """A 1 GiB zstd bomb through the real command: sniffing and --format kong stay small."""
    bomb = tmp_path / "bomb.jsonl.zst"
    compressor = zstandard.ZstdCompressor(level=3)
    zeros = bytes(64 * 1024 * 1024)
    with bomb.open("wb") as f, compressor.stream_writer(f, closefd=False) as w:
        for _ in range(16):
            w.write(zeros)
    # The peak is VmHWM, this process image's own high-water mark: ru_maxrss would also count
    # the pytest process it was forked from, which grows over the suite (Linux keeps it
    # across execve).
    code = (
        "import re, sys\n"
        "from pathlib import Path\n"
        "from forensics.cli import cli\n"
        "try:\n"
        "    cli(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "status = Path('/proc/self/status').read_text()\n"
        "print(re.search(r'VmHWM:\\s*(\\d+) kB', status).group(1), file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "--db",
            str(tmp_path / "c.duckdb"),
            "ingest",
            "-q",
            "--format",
            "kong",
            "--max-expansion",
            "100000",
            "--max-quarantine-share",
            "1",
            str(bomb),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    peak_kib = int(proc.stderr.strip().splitlines()[-1])
    assert "1 read = 0 loaded + 1 quarantined" in proc.stdout, proc.stderr
    assert peak_kib < 600 * 1024  # the whole GiB went through; a few chunks' worth stayed


# --- 4. dedupe by content -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gz", "zst"])
def test_a_compressed_copy_of_an_ingested_file_is_skipped(case, tmp_path, kind):
    text = kong_text(20).encode()
    plain = tmp_path / "k.jsonl"
    plain.write_bytes(text)
    copy = tmp_path / f"k.jsonl.{kind}"
    copy.write_bytes(gzip.compress(text) if kind == "gz" else zstandard.compress(text))
    first, second = ingest_paths(case, [plain, copy])
    assert first.status == "loaded"
    assert (second.status, second.rows_skipped) == ("skipped", 20)
    assert second.message == "same content (once decompressed) already ingested as source 1"
    assert case.execute("SELECT count(*) FROM requests").fetchall() == [(20,)]
    assert case.execute("SELECT count(*) FROM sources").fetchall() == [(1,)]
    [src] = rows(case, "SELECT sha256, content_sha256, bytes FROM sources")
    assert src == {
        "sha256": sha256_file(plain),
        "content_sha256": sha256_file(plain),
        "bytes": len(text),
    }


def test_the_plain_file_after_its_gz_copy_is_skipped_too(case, tmp_path):
    text = kong_text(5).encode()
    gz, plain = tmp_path / "k.jsonl.gz", tmp_path / "k.jsonl"
    gz.write_bytes(gzip.compress(text))
    plain.write_bytes(text)
    first, second = ingest_paths(case, [gz, plain])
    assert (first.status, second.status) == ("loaded", "skipped")
    [src] = rows(case, "SELECT sha256, content_sha256 FROM sources")
    assert src == {"sha256": sha256_file(gz), "content_sha256": sha256_file(plain)}


def test_a_file_that_grows_while_it_is_read_fails_and_keeps_nothing(case, tmp_path):
    path = tmp_path / "live.jsonl"
    path.write_text(kong_text(50))
    grown = threading.Event()

    def progress(nbytes: int, nrows: int) -> None:
        if not grown.is_set():
            grown.set()
            with path.open("a") as f:
                f.write(kong_text(5, start=50))

    [result] = ingest_paths(case, [path], progress=progress)
    assert result.status == "failed"
    size = len(kong_text(50).encode())
    assert result.message == (
        f"{path}: the file changed while it was read ({size:,} bytes when ingest began,"
        f" {size:,} read, {path.stat().st_size:,} now); nothing from it was kept"
    )
    for table in ("sources", "requests", "quarantine"):
        assert case.execute(f"SELECT count(*) FROM {table}").fetchall() == [(0,)], table
    [again] = ingest_paths(case, [path])
    assert (again.status, again.rows_loaded) == ("loaded", 55)
    [src] = rows(case, "SELECT sha256, bytes FROM sources")
    assert src == {"sha256": sha256_file(path), "bytes": path.stat().st_size}


# --- 5. every failure is per file ---------------------------------------------------------


def test_a_file_of_blank_lines_with_a_format_loads_nothing_and_fails_nothing(tmp_path):
    blank = tmp_path / "blank.log"
    blank.write_bytes(b"\n\n\r\n\n")
    case = tmp_path / "c.duckdb"
    out = ingest_cli(case, "--format", "kong", str(blank))
    assert out.exit_code == 0, out.output
    assert "Traceback" not in out.output
    assert summary_rows(out.stdout)["blank.log"][:7] == [
        "loaded",
        "kong",
        "0",
        "0",
        "0",
        "0",
        "yes",
    ]
    out = ingest_cli(tmp_path / "d.duckdb", str(blank))
    assert out.exit_code == 0
    assert f"Skipped: {blank.resolve()}: no records: 5 bytes of blank lines only" in out.stderr


def test_a_csv_cell_over_131072_characters_loads_like_any_other(tmp_path):
    csv_path = tmp_path / "revoked.csv"
    csv_path.write_text(
        'credential_id,revoked_at\n"' + "x" * 140_000 + '",2026-01-01T00:00:00Z\n'
        "abc,2026-01-02T00:00:00Z\n"
    )
    out = ingest_cli(tmp_path / "c.duckdb", str(csv_path))
    assert out.exit_code == 0, out.output
    assert summary_rows(out.stdout)["revoked.csv"][:5] == ["loaded", "revocations", "2", "2", "0"]
    # over the record limit, the row is quarantined with its line, the rest loads
    out = ingest_cli(tmp_path / "d.duckdb", "--max-record-bytes", "100K", str(csv_path))
    assert out.exit_code == 0, out.output
    assert summary_rows(out.stdout)["revoked.csv"][:5] == ["loaded", "revocations", "2", "1", "1"]


def test_a_file_that_cannot_be_opened_fails_alone(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text(kong_text(2))
    gone = tmp_path / "gone.jsonl"
    case = db.connect(tmp_path / "c.duckdb")
    try:
        results = ingest_paths(case, [gone, good])
    finally:
        case.close()
    assert [r.status for r in results] == ["failed", "loaded"]
    assert results[0].message == f"{gone}: cannot read: No such file or directory"


@pytest.mark.skipif(IS_ROOT, reason="running as root: chmod 000 does not stop root reading")
def test_an_unreadable_file_is_one_error_line_and_the_run_goes_on(tmp_path):
    secret = tmp_path / "locked.jsonl"
    secret.write_text(kong_text(2))
    secret.chmod(0)
    good = tmp_path / "good.jsonl"
    good.write_text(kong_text(2, start=5))
    try:
        out = ingest_cli(tmp_path / "c.duckdb", str(secret), str(good))
    finally:
        secret.chmod(0o644)
    assert out.exit_code == 1
    assert "Traceback" not in out.output
    assert f"Error: {secret.resolve()}: cannot read: Permission denied" in out.stderr
    assert summary_rows(out.stdout)["good.jsonl"][0] == "loaded"


def test_any_unexpected_error_is_one_line_and_debug_shows_the_traceback(tmp_path, monkeypatch):
    from forensics.ingest import pipeline

    bad, good = tmp_path / "deep.jsonl", tmp_path / "good.jsonl"
    bad.write_text(kong_text(1))
    good.write_text(kong_text(2, start=9))
    real = pipeline._ingest_file

    def deep(con, path, *args):
        if path.name == "deep.jsonl":
            raise RecursionError("maximum recursion depth exceeded")
        return real(con, path, *args)

    monkeypatch.setattr(pipeline, "_ingest_file", deep)
    out = ingest_cli(tmp_path / "c.duckdb", str(bad), str(good))
    assert out.exit_code == 1
    assert "Traceback" not in out.output
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("Error:")]
    assert errors == [
        f"Error: {bad.resolve()}: a record is nested too deeply to read (RecursionError)"
    ]
    assert summary_rows(out.stdout)["good.jsonl"][0] == "loaded"
    debug = run("--debug", "--db", str(tmp_path / "d.duckdb"), "ingest", "-q", str(bad))
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr and "RecursionError" in debug.stderr


def test_a_recursive_glob_over_a_symlink_loop_returns(tmp_path):
    root = tmp_path / "logs"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "k.jsonl").write_text(kong_text(1))
    (root / "top.jsonl").write_text(kong_text(1, start=1))
    (root / "a" / "b" / "loop").symlink_to(root, target_is_directory=True)
    (root / "a" / "self").symlink_to(root / "a", target_is_directory=True)
    done: list[list[Path]] = []

    def expand() -> None:
        done.append(expand_paths([str(root / "**" / "*.jsonl")]))
        done.append(expand_paths([str(root)]))

    worker = threading.Thread(target=expand, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "the walk did not return"
    expected = [(root / "a" / "b" / "k.jsonl").resolve(), (root / "top.jsonl").resolve()]
    assert done == [expected, expected]


def test_an_unreadable_directory_is_a_failed_entry_not_silence(tmp_path, monkeypatch):
    root = tmp_path / "logs"
    (root / "locked").mkdir(parents=True)
    (root / "locked" / "k.jsonl").write_text(kong_text(1))
    (root / "ok.jsonl").write_text(kong_text(1, start=1))
    if not IS_ROOT:
        (root / "locked").chmod(0)
    else:  # root reads anything: make the listing fail as it would for another user
        scandir = os.scandir

        def locked(path):
            if Path(path).name == "locked":
                raise PermissionError(13, "Permission denied", str(path))
            return scandir(path)

        monkeypatch.setattr(paths.os, "scandir", locked)
    try:
        out = ingest_cli(tmp_path / "c.duckdb", str(root))
    finally:
        (root / "locked").chmod(0o755)
    assert out.exit_code == 1
    assert f"Error: {root / 'locked'}: cannot read this directory: Permission denied" in (
        out.stderr
    )
    assert summary_rows(out.stdout)["ok.jsonl"][0] == "loaded"


def _tmpfs(target: Path, size: str) -> bool:
    if not IS_ROOT or shutil.which("mount") is None:
        return False
    target.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def test_a_full_disk_is_reported_as_the_disk_being_full(tmp_path):
    small = tmp_path / "small"
    if not _tmpfs(small, "3m"):
        pytest.skip("cannot mount a small tmpfs here (needs root and mount rights)")
    try:
        big = tmp_path / "big.jsonl"
        records = (
            kong_record(
                **{"request.id": f"r{i}", "request.headers.user-agent": os.urandom(150).hex()}
            )
            for i in range(20_000)
        )
        big.write_text(lines(*records))  # 6 MB that do not compress
        after = tmp_path / "after.jsonl"
        after.write_text(kong_text(2, start=90_000))
        out = ingest_cli(small / "c.duckdb", str(big), str(after))
        assert out.exit_code == 1
        assert "Traceback" not in out.output
        assert "no transaction is active" not in out.output
        errors = [ln for ln in out.stderr.splitlines() if ln.startswith("Error:")]
        assert errors and errors[0].startswith(f"Error: {big.resolve()}: the disk is full")
        assert set(summary_rows(out.stdout)) == {"big.jsonl", "after.jsonl"}
    finally:
        subprocess.run(["umount", str(small)], check=False)


# --- 6 (part). byte order marks ----------------------------------------------------------


@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from forensics.synth import SynthConfig, synthesize

    world = tmp_path_factory.mktemp("bom-world")
    synthesize(world, SynthConfig(days=1, tenants=2, seed=5))
    return world


def test_a_bom_changes_nothing_in_any_format(tmp_path, small_world):
    files = sorted(p for p in small_world.rglob("*") if p.is_file() and p.name != "labels.csv")
    plain_dir, bom_dir = tmp_path / "plain", tmp_path / "bom"
    plain_dir.mkdir()
    bom_dir.mkdir()
    for p in files:
        shutil.copyfile(p, plain_dir / p.name)
        (bom_dir / p.name).write_bytes(decompress.BOM + p.read_bytes())
    counts = {}
    for d in (plain_dir, bom_dir):
        con = db.connect(tmp_path / f"{d.name}.duckdb")
        try:
            results = ingest_paths(con, [d / p.name for p in files])
        finally:
            con.close()
        counts[d.name] = {
            Path(r.path).name: (r.status, r.format, r.rows_read, r.rows_loaded, r.rows_quarantined)
            for r in results
        }
    assert counts["bom"] == counts["plain"]
    assert len({v[1] for v in counts["plain"].values()}) >= 6
    assert all(v[0] == "loaded" for v in counts["bom"].values()), counts["bom"]


@pytest.mark.parametrize("kind", ["plain", "gz", "zst"])
def test_an_excel_saved_csv_with_a_bom_and_crlf_is_detected(case, tmp_path, kind):
    text = decompress.BOM + b"credential_id,revoked_at\r\nabc,2026-01-01T00:00:00Z\r\n"
    data = {"plain": text, "gz": gzip.compress(text), "zst": zstandard.compress(text)}[kind]
    path = tmp_path / ("revoked.csv" + ("" if kind == "plain" else f".{kind}"))
    path.write_bytes(data)
    result = ingest_file(case, path)
    assert (result.status, result.format, result.rows_loaded, result.rows_quarantined) == (
        "loaded",
        "revocations",
        1,
        0,
    )
    assert case.execute("SELECT credential_id FROM revocations").fetchall() == [("abc",)]


def test_a_case_made_before_content_sha256_gets_the_column_on_ingest(tmp_path):
    path = tmp_path / "old.duckdb"
    con = db.connect(path)
    con.execute("ALTER TABLE sources DROP COLUMN content_sha256")
    con.close()
    con = db.connect(path)
    try:
        log = tmp_path / "k.jsonl"
        log.write_text(kong_text(2))
        [result] = ingest_paths(con, [log])
        assert result.status == "loaded", result.message
        assert con.execute("SELECT content_sha256 FROM sources").fetchall() == [(sha256_file(log),)]
    finally:
        con.close()
