"""Shared fixtures: a fresh case file per test, and the shared real data when present."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from forensics.case import db
from forensics.ingest.base import Options
from forensics.ingest.pipeline import FileResult, ingest_file

REPO = Path(__file__).resolve().parent.parent
REALDATA = REPO.parent / "shared" / "realdata"


@pytest.fixture
def case(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = db.connect(tmp_path / "case.duckdb")
    yield con
    con.close()


@pytest.fixture
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"real third-party data not found at {REALDATA} (../shared is absent here)")
    return REALDATA


def load(
    con: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    text: str,
    fmt: str | None = None,
    name: str = "input.log",
    options: Options | None = None,
) -> FileResult:
    """Write `text` to a file and ingest it; the result must reconcile."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    result = ingest_file(con, path, fmt=fmt, options=options)
    assert result.status == "loaded", result.message
    assert result.reconciles
    return result


def rows(
    con: duckdb.DuckDBPyConnection, sql: str, params: object = None
) -> list[dict[str, object]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def tables_containing(con: duckdb.DuckDBPyConnection, text: str) -> list[str]:
    """Every table (temp tables included) with `text` anywhere in a row."""
    tables = [t[0] for t in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
    return [
        t
        for t in tables
        if con.execute(
            f"SELECT count(*) FROM {t} WHERE contains(CAST({t} AS VARCHAR), $s)", {"s": text}
        ).fetchall()[0][0]
    ]


def requests_by_line(con: duckdb.DuckDBPyConnection) -> dict[int, dict[str, object]]:
    return {int(str(r["line_no"])): r for r in rows(con, "SELECT * FROM requests")}


def client_net(ip: object) -> str | None:
    """The /24 or /64 of an address, by the ipaddress module: an independent reference for the
    requests.client_net column (written the case's way: IPv6 groups without leading zeros)."""
    import ipaddress

    try:
        address = ipaddress.ip_address(str(ip)) if ip is not None else None
    except ValueError:
        return None
    if address is None:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.version == 4:
        return str(ipaddress.ip_network(f"{address}/24", strict=False))
    groups = address.exploded.split(":")[:4]
    return ":".join(g.lstrip("0") or "0" for g in groups) + "::/64"


def check_row(row: dict[str, object], expected: dict[str, object], never: set[str]) -> None:
    """Every expected column has its value; every other column is NULL, and the columns the
    format can never fill are among those. Derived columns: client_net must be client_ip's
    block; client_kind (from the user agent and Origin) is checked only when expected."""
    expected = {"client_net": client_net(row.get("client_ip")), **expected}
    assert {k: row[k] for k in expected} == expected
    rest = {
        k: v for k, v in row.items() if k not in expected and k not in ("source_id", "client_kind")
    }
    assert {k: v for k, v in rest.items() if v is not None} == {}
    assert never <= set(rest)


def quarantine_reasons(con: duckdb.DuckDBPyConnection) -> list[tuple[int, str]]:
    return [
        (int(r[0]), str(r[1]))
        for r in con.execute("SELECT line_no, error FROM quarantine ORDER BY line_no").fetchall()
    ]


@pytest.fixture(scope="session")
def synth_week(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A labelled seven-day synthetic world and a case with it ingested (nothing detected):
    (world folder, case file). Tests copy the case before they change it."""
    from forensics.cli.progress import run_ingest
    from forensics.ingest.base import Options
    from forensics.ingest.paths import expand_paths
    from forensics.synth import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("synth-week")
    world = root / "world"
    synthesize(world, SynthConfig(days=7, tenants=6, seed=7))
    path = root / "case.duckdb"
    con = db.connect(path)
    try:
        asn = sorted(world.glob("ip2asn*.tsv*"))
        results = run_ingest(
            con,
            [(asn, None), (expand_paths([str(world / "logs")]), None)],
            Options(),
            show_progress=False,
        )
        assert all(r.status in ("loaded", "skipped") for r in results), results
    finally:
        con.close()
    return world, path


def copy_case(source: Path, target_dir: Path) -> Path:
    """A private copy of a case file (its WAL is checkpointed on close, so one file)."""
    import shutil

    target = target_dir / source.name
    shutil.copyfile(source, target)
    return target


def forensics_on(case: Path, *args: str) -> tuple[int, str, str]:
    """`forensics --db CASE ARGS...` in-process: (exit code, stdout, stderr)."""
    from click.testing import CliRunner

    from forensics.cli import cli

    res = CliRunner().invoke(cli, ["--db", str(case), *args])
    return res.exit_code, res.stdout, res.stderr


def query_case(case: Path, sql: str, params: object = None) -> list[dict[str, object]]:
    """Rows of `sql` on the case file, read-only, as dicts."""
    con = db.connect(case, read_only=True)
    try:
        return rows(con, sql, params)
    finally:
        con.close()
