"""Detection benchmark: the whole pack against one wide scan of `requests`, at 1M and 10M rows.

    .venv/bin/python benchmarks/detect.py                    # 1M and 10M requests
    .venv/bin/python benchmarks/detect.py --rows 1000000     # one size
    .venv/bin/python benchmarks/detect.py --repeat 2         # best of two per step

The requests are a synthetic world (`forensics synth`, seed 1: a week, 50 ordinary tenants and
every scenario and look-alike) ingested once, then copied in SQL until the table has the wanted
number of rows: copy k shifts every principal (tenant, credential, user, session, request id and
the client address's last two octets) so that the copies are distinct principals with the world's
shapes, not the same principal with k times the traffic. The key inventory and revocations are
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
    con.execute("CREATE TEMP TABLE world AS SELECT * FROM requests")
    con.execute("DELETE FROM requests")
    columns = [r[0] for r in con.execute("DESCRIBE world").fetchall()]
    shifted = {
        "tenant_id": "CASE WHEN k = 0 THEN tenant_id ELSE tenant_id || '~' || k END",
        "credential_id": "CASE WHEN k = 0 THEN credential_id ELSE credential_id || '~' || k END",
        "user_id": "CASE WHEN k = 0 THEN user_id ELSE user_id || '~' || k END",
        "session_id": "CASE WHEN k = 0 THEN session_id ELSE session_id || '~' || k END",
        "request_id": "CASE WHEN k = 0 THEN request_id ELSE request_id || '~' || k END",
        # another /24 per copy (the third octet moves), so that copies of tenants on one cloud
        # do not pile up in the same /24; ASN and country stay as enriched
        "client_ip": "CASE WHEN k = 0 OR NOT regexp_full_match(client_ip, '[0-9.]+') THEN client_ip"
        " ELSE regexp_replace(client_ip, '\\.[0-9]+\\.[0-9]+$',"
        " '.' || CAST((k * 7) % 256 AS VARCHAR) || '.' || CAST((k * 13 + 1) % 254 + 1 AS VARCHAR))"
        " END",
        # client_net follows client_ip's move: a.b.c.0/24 becomes a.b.(k*7 % 256).0/24
        "client_net": "CASE WHEN k = 0 OR NOT regexp_full_match(client_net, '[0-9.]+/24')"
        " THEN client_net ELSE regexp_replace(client_net, '\\.[0-9]+\\.0/24$',"
        " '.' || CAST((k * 7) % 256 AS VARCHAR) || '.0/24') END",
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
