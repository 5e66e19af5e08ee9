"""Detection benchmark: the whole pack against one wide scan of `requests`, at 1M and 10M rows.

    .venv/bin/python benchmarks/detect.py                    # 1M and 10M requests
    .venv/bin/python benchmarks/detect.py --rows 1000000     # one size
    .venv/bin/python benchmarks/detect.py --repeat 2         # best of two per step

The requests are a synthetic world (`forensics synth`, seed 1: a week, 50 ordinary tenants and
every scenario and look-alike) ingested once, then copied in SQL until the table has the wanted
number of rows: copy k renames every principal (tenant, credential, user, session, request id)
and moves every client network to a block of its own (see `_moved_networks`), so that the copies
are distinct principals with the world's shapes, not the same principal with k times the
traffic, and no two copies share an address or a network. The key inventory and revocations are
copied with the same renaming; provider usage and the other reference tables are kept as
ingested.

Each size runs in a fresh process (peak RSS from getrusage, which includes DuckDB's memory):

  wide scan   count(DISTINCT hash(...)) over every column the pack reads
  pack        forensics.runner.run_detectors with every shipped detector (findings stored)

and prints seconds, the pack / scan ratio (target: within 15x), per-detector seconds and peak
RSS (target: under 4 GiB at 10M). Cases are built in --workdir (default: benchmarks/out/,
gitignored) and reused when present.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGET_RATIO = 15.0
TARGET_RSS_GIB = 4.0

# Every requests column any shipped detector reads (keep in step with queries/).
WIDE_SCAN = """
SELECT count(DISTINCT hash(ts, request_id, tenant_id, user_id, credential_id, credential_type,
                           key_fingerprint, token_iat, token_exp, issuer, key_id, client_ip,
                           client_net, client_kind, asn, as_org, asn_category, country, lat, lon,
                           user_agent, origin, referer, method, path, endpoint, provider, model,
                           model_family, stream, prompt_chars, prompt_prefix_fp, input_tokens,
                           output_tokens, tool_calls, session_id, status, error_type, latency_ms,
                           est_cost_usd))
FROM requests
"""


def _world_case(workdir: Path, python: str) -> Path:
    """The seed-1 week ingested once (the copy source)."""
    case = workdir / "detect-world.duckdb"
    if case.exists():
        return case
    world = workdir / "detect-world"
    forensics = [python, "-m", "forensics"]
    subprocess.run([*forensics, "synth", "-o", str(world), "--seed", "1"], check=True)
    subprocess.run(
        [*forensics, "--db", str(case), "ingest", "-q", "--asn-db",
         str(world / "ip2asn-v4.tsv"), str(world / "logs")],
        check=True,
    )  # fmt: skip
    return case


# Copy k's IPv4 block: block number n = k * 1024 + the /24's rank in the world (public blocks)
# or k * 64 + its rank (private ones), written as 11-99.x.y.0/24 or 10.x.y.0/24: every copy's
# networks are distinct from every other copy's and from the world's. ASN, category and place
# stay as enriched. An IPv6 /64 gets copy k in its fourth group.
_V4_MOVE = (
    "WHEN net_rank IS NOT NULL THEN"
    " CASE WHEN net_private THEN '10.' || ((k * 64 + net_rank) // 256) || '.'"
    " || ((k * 64 + net_rank) % 256)"
    " ELSE (11 + (k * 1024 + net_rank) // 65536) || '.' || ((k * 1024 + net_rank) // 256 % 256)"
    " || '.' || ((k * 1024 + net_rank) % 256) END"
)
_V6_MOVE = (
    "WHEN {column} LIKE '%:%' THEN regexp_replace({column},"
    " '^([0-9a-f]+:[0-9a-f]+:[0-9a-f]+:)[0-9a-f]+', '\\1' || printf('%x', k))"
    " ELSE {column}"
)
_PRIVATE = r"regexp_full_match(client_net, '(10\..*|192\.168\..*|172\.(1[6-9]|2[0-9]|3[01])\..*)')"


def _moved_networks(con: duckdb.DuckDBPyConnection, copies: int) -> None:
    """The world's requests as TEMP table `world`, each with its IPv4 /24's rank among the
    world's public (or private) blocks: the numbers copy k's block is made of (`_V4_MOVE`)."""
    con.execute(
        "CREATE TEMP TABLE world AS SELECT r.*, n.net_rank, n.net_private FROM requests r"
        " LEFT JOIN (SELECT client_net, private AS net_private,"
        " row_number() OVER (PARTITION BY private ORDER BY client_net) - 1 AS net_rank"
        f" FROM (SELECT DISTINCT client_net, {_PRIVATE} AS private FROM requests"
        " WHERE regexp_full_match(client_net, '[0-9.]+/24'))) n USING (client_net)"
    )
    [(public, private)] = con.execute(
        "SELECT max(net_rank) FILTER (WHERE NOT net_private),"
        " max(net_rank) FILTER (WHERE net_private) FROM world"
    ).fetchall()
    fits = (public or 0) < 1024 and (private or 0) < 64 and copies * 64 <= 65536
    if not fits:
        raise SystemExit(f"{copies} copies of {public} + {private} networks do not fit the blocks")


def _scaled_case(workdir: Path, source: Path, rows: int) -> Path:
    """A copy of the world case whose requests table has `rows` rows (see the docstring)."""
    import duckdb

    case = workdir / f"detect-{rows}.duckdb"
    if case.exists():
        return case
    tmp = case.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    tmp.write_bytes(source.read_bytes())
    con = duckdb.connect(str(tmp))
    base = int(con.execute("SELECT count(*) FROM requests").fetchall()[0][0])
    copies = -(-rows // base)
    columns = [r[0] for r in con.execute("DESCRIBE requests").fetchall()]
    _moved_networks(con, copies)
    con.execute("DELETE FROM requests")
    shifted = {
        "tenant_id": "CASE WHEN k = 0 THEN tenant_id ELSE tenant_id || '~' || k END",
        "credential_id": "CASE WHEN k = 0 THEN credential_id ELSE credential_id || '~' || k END",
        "user_id": "CASE WHEN k = 0 THEN user_id ELSE user_id || '~' || k END",
        "session_id": "CASE WHEN k = 0 THEN session_id ELSE session_id || '~' || k END",
        "request_id": "CASE WHEN k = 0 THEN request_id ELSE request_id || '~' || k END",
        "client_ip": f"CASE WHEN k = 0 OR client_net IS NULL THEN client_ip {_V4_MOVE}"
        " || regexp_extract(client_ip, '\\.[0-9]+$')"
        f" {_V6_MOVE.format(column='client_ip')} END",
        "client_net": f"CASE WHEN k = 0 OR client_net IS NULL THEN client_net {_V4_MOVE} || '.0/24'"
        f" {_V6_MOVE.format(column='client_net')} END",
    }
    select = ", ".join(shifted.get(c, c) for c in columns)
    step = 20
    for first in range(0, copies, step):
        last = min(copies, first + step)
        con.execute(f"INSERT INTO requests SELECT {select} FROM world, range({first}, {last}) t(k)")
    # the copies' keys are in the key inventory and revoked as the world's are, under their
    # copied ids and owners (else every copied key would be an "unknown" finding)
    for table, renamed in (
        ("key_inventory", ("credential_id", "owner_tenant")),
        ("revocations", ("credential_id",)),
    ):
        cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
        picked = ", ".join(f"{c} || '~' || k" if c in renamed else c for c in cols)
        con.execute(f"INSERT INTO {table} SELECT {picked} FROM {table}, range(1, {copies}) t(k)")
    extra = int(con.execute("SELECT count(*) FROM requests").fetchall()[0][0]) - rows
    if extra > 0:
        con.execute(
            "DELETE FROM requests WHERE rowid IN"
            f" (SELECT rowid FROM requests ORDER BY rowid DESC LIMIT {extra})"
        )
    con.execute("CHECKPOINT")
    con.close()
    tmp.rename(case)
    return case


MEASURE = r"""
import json, resource, sys, time
import duckdb
from forensics.case import db
from forensics.detect.load import default_dirs, load_detectors
from forensics.detect.runner import run_detectors

con = db.connect(sys.argv[1])
# a case no run has touched: the earlier measurements' runs are gone from this copy
for table in ("finding_requests", "incidents", "findings", "run_detectors", "runs"):
    con.execute(f"DELETE FROM {table}")
con.execute("CHECKPOINT")
rows = con.execute("SELECT count(*) FROM requests").fetchall()[0][0]
wide = sys.argv[2]
t = time.perf_counter()
con.execute(wide).fetchall()
scan = time.perf_counter() - t
detectors, problems = load_detectors(default_dirs([]))
assert not problems, problems
t = time.perf_counter()
result = run_detectors(con, detectors)
pack = time.perf_counter() - t
con.close()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"rows": rows, "scan": scan, "pack": pack, "rss": rss,
                  "seconds": result.seconds, "findings": sum(result.findings.values()),
                  "errors": result.errors}))
"""


def measure(case: Path, python: str) -> dict[str, object]:
    """One run on a fresh copy of `case` (each run stores its findings; the next must not pay
    for them)."""
    copy = case.with_suffix(".run.duckdb")
    shutil.copyfile(case, copy)
    return run_script(python, MEASURE, str(copy), WIDE_SCAN)


def run_script(python: str, script: str, *args: str) -> dict[str, object]:
    """Run `script` in a fresh process of `python`: the JSON object on its last line."""
    out = subprocess.run(
        [python, "-c", script, *args], check=True, capture_output=True, text=True, cwd=REPO
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, action="append", help="requests (repeatable)")
    p.add_argument("--repeat", type=int, default=1, help="runs per size; the fastest counts")
    p.add_argument("--workdir", type=Path, default=HERE / "out")
    a = p.parse_args(argv)
    sizes = a.rows or [1_000_000, 10_000_000]
    a.workdir.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    source = _world_case(a.workdir, python)
    print(f"# {platform.node()} {platform.machine()}, Python {platform.python_version()}")
    failed = False
    for rows in sizes:
        t = time.perf_counter()
        case = _scaled_case(a.workdir, source, rows)
        print(f"\n## {rows:,} requests (case ready in {time.perf_counter() - t:.0f} s)")
        runs = [measure(case, python) for _ in range(max(1, a.repeat))]
        best = min(runs, key=lambda r: float(r["pack"]))  # type: ignore[arg-type]
        scan = min(float(r["scan"]) for r in runs)  # type: ignore[arg-type]
        pack = float(best["pack"])  # type: ignore[arg-type]
        rss = max(int(r["rss"]) for r in runs) / 2**30  # type: ignore[call-overload]
        ratio = pack / scan
        print(f"wide scan  {scan:8.2f} s")
        print(f"pack       {pack:8.2f} s   {ratio:5.1f}x the scan (target <= {TARGET_RATIO:g}x)")
        print(f"peak RSS   {rss:8.2f} GiB (target < {TARGET_RSS_GIB:g} GiB)")
        print(f"findings   {best['findings']}")
        seconds: dict[str, float] = best["seconds"]  # type: ignore[assignment]
        for name, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
            print(f"  {name:34} {s:7.2f} s")
        if best["errors"]:
            print(f"ERRORS: {best['errors']}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
