"""A copy of a lake case's file shares its lake: the copy that changed the lake last may write
it; an older copy may only read it (writing would delete the newer copy's files as debris)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from forensics.case import db
from forensics.lake import owner, store
from tests.conftest import forensics_on, query_case


def _files(lake: Path) -> set[str]:
    return {str(p.relative_to(lake)) for p in lake.rglob("*.parquet")}


def _small_lake_case(tmp_path: Path, rows: int = 40) -> tuple[Path, Path, Path]:
    """A lake case with one combined log of `rows` requests: (case, lake, the log)."""
    log = tmp_path / "access.log"
    log.write_text(
        "".join(
            f"198.51.100.{i % 200 + 1} - - [0{1 + i % 3}/Mar/2026:10:{i % 60:02d}:00 +0000]"
            f' "GET /v1/models/{i} HTTP/1.1" 404 12 "-" "curl/8.{i}"\n'
            for i in range(rows)
        ),
        encoding="utf-8",
    )
    case, lake = tmp_path / "case.duckdb", tmp_path / "lake"
    code, _, err = forensics_on(case, "--lake", str(lake), "ingest", "-q", str(log))
    assert code == 0, err
    db.use_lake(None)
    return case, lake, log


def _another_log(tmp_path: Path, name: str, day: int = 4) -> Path:
    log = tmp_path / name
    log.write_text(
        f'203.0.113.9 - - [{day:02d}/Mar/2026:11:00:00 +0000] "POST /v1/chat/completions'
        ' HTTP/1.1" 200 90 "-" "python-requests/2.31"\n',
        encoding="utf-8",
    )
    return log


def test_an_older_copy_of_the_case_file_reads_the_lake_but_may_not_write_it(
    tmp_path: Path,
) -> None:
    case, lake, _ = _small_lake_case(tmp_path)
    backup = tmp_path / "backup.duckdb"
    shutil.copyfile(case, backup)
    # the same change number: either copy may write; opening the backup deletes nothing
    before = _files(lake)
    db.connect(backup).close()
    assert _files(lake) == before
    # the original changes the lake: the backup is now older than the lake
    code, _, err = forensics_on(case, "ingest", "-q", str(_another_log(tmp_path, "b.log")))
    assert code == 0, err
    after = _files(lake)
    assert after > before
    code, _, err = forensics_on(backup, "ingest", "-q", str(_another_log(tmp_path, "c.log")))
    assert code != 0 and "this file is an older copy of the case" in err
    assert "Traceback" not in err
    assert _files(lake) == after  # nothing of the newer copy's was collected
    # reading the backup is allowed: it reads the files it lists, all still there
    assert query_case(backup, "SELECT count(*) AS n FROM requests")[0]["n"] == 40
    code, _, err = forensics_on(backup, "verify")
    assert code == 0, err
    assert query_case(case, "SELECT count(*) AS n FROM requests")[0]["n"] == 41


def test_a_marker_behind_its_case_is_brought_up_to_date(tmp_path: Path) -> None:
    """A writer killed after its COMMIT, before it rewrote the marker: the case is ahead of the
    marker, which is not a copy's mark; the next read-write open rewrites the marker."""
    case, lake, _ = _small_lake_case(tmp_path)
    found = owner.read(lake)
    assert found is not None
    ident, number = found
    assert number >= 1
    owner.write(lake, ident, number - 1)
    db.connect(case, read_only=True).close()  # a reader does not write the marker
    assert owner.read(lake) == (ident, number - 1)
    db.connect(case).close()
    assert owner.read(lake) == (ident, number)


def test_lake_names_only_the_case_given_with_it(tmp_path: Path) -> None:
    """`--lake` is for the --db case: any other case the process makes (a detector test's
    scratch case) keeps its own rows."""
    lake = tmp_path / "lake"
    db.use_lake(lake, case=tmp_path / "mine.duckdb")
    try:
        other = db.connect(tmp_path / "scratch.duckdb")
        assert store.lake_dir(other) is None
        other.close()
        assert not lake.exists()
        mine = db.connect(tmp_path / "mine.duckdb")
        assert store.lake_dir(mine) == lake.resolve()
        mine.close()
    finally:
        db.use_lake(None)
    code, out, err = forensics_on(
        tmp_path / "mine.duckdb", "--lake", str(lake), "detectors", "test"
    )
    assert code == 0, err + out
    assert sorted(p.name for p in lake.iterdir()) == [owner.MARKER]


def test_a_failure_after_the_commit_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleting the files a committed change replaced fails: the change stands (exit 0), a
    warning says so, and the next read-write open deletes them."""
    case, lake, _ = _small_lake_case(tmp_path)
    code, _, err = forensics_on(case, "ingest", "-q", str(_another_log(tmp_path, "b.log", 1)))
    assert code == 0, err  # a second file for 1 March: something to compact

    def refuse(con: object) -> list[Path]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(store, "collect", refuse)
    code, out, err = forensics_on(case, "compact")
    assert code == 0, err
    assert "warning: lake: files no longer listed not all deleted" in err
    listed = {str(r["path"]) for r in query_case(case, "SELECT path FROM lake_files")}
    assert _files(lake) > listed  # the replaced files are still on disk
    monkeypatch.undo()
    db.connect(case).close()
    assert _files(lake) == listed
