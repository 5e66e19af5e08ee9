"""A case that keeps its rows in a lake, with bounded memory: 10M and 50M requests.

    .venv/bin/python benchmarks/lake.py                                  # 10M
    .venv/bin/python benchmarks/lake.py --rows 10000000 --rows 50000000 --memory-limit 4GB
    .venv/bin/python benchmarks/lake.py --ingest                         # the ingest rates

Each step is a fresh process whose case connections open with `--memory-limit` (default 4GB),
timed from inside, its peak RSS read from the kernel:

  build   the detection benchmark's case of that size (benchmarks/detect.py: a synth week
          copied until `requests` has the rows) moved into a new lake case: every other table
          copied, requests and usage written as the lake's files by `forensics.lake.store.write`
          (the step every ingest ends with) and committed; rows/s, Parquet bytes
  scan    one wide scan of the lake's requests (detect.py's WIDE_SCAN)
  pack    the whole pack (run_detectors)
  prune   requests of one day, counted: row groups read of all (EXPLAIN ANALYZE)

`--ingest` measures the whole ingest path into a lake against the same into a case keeping
its rows: the synth week's logs (Kong with AI Proxy payloads, LiteLLM, an access log, usage
pages) and the real Apache log x100 (1M lines, benchmarks/access.py makes it).

`--ingest-copies N` ingests the real Apache log repeated N times (N x 10,000 lines, one file:
5000 makes 50M lines, 12 GB) into a new lake case with `--memory-limit`, then measures scan,
pack and pruning on it as above: the whole path at that size, from a log file.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from detect import WIDE_SCAN, _scaled_case, _world_case, run_script  # noqa: E402

BUILD = r"""
import json, resource, sys, time
from pathlib import Path
from forensics.case import db
from forensics.case.schema import TABLES
from forensics.lake import store
from forensics.lake.snapshot import PARTITIONED
from forensics.sqltext import sql_str
source, case, lake, limit = sys.argv[1:5]
db.limit_resources(limit or None)
db.use_lake(Path(lake), case=Path(case))
con = db.connect(case)
con.execute(f"ATTACH {sql_str(source)} AS src (READ_ONLY)")
t = time.perf_counter()
con.execute("BEGIN")
con.execute("UPDATE meta SET value = (SELECT value FROM src.meta WHERE key = 'fingerprint_salt')"
            " WHERE key = 'fingerprint_salt'")
for table in TABLES:
    if table.name not in (*PARTITIONED, "meta", "lake_files"):
        con.execute(f"DELETE FROM {table.name}")
        con.execute(f"INSERT INTO {table.name} SELECT * FROM src.{table.name}")
for table in PARTITIONED:
    store.write(con, table, f"SELECT * FROM src.{table}")
store.refresh_views(con)
store.commit(con)
seconds = time.perf_counter() - t
rows = con.execute("SELECT count(*) FROM requests").fetchall()[0][0]
con.close()
size = sum(p.stat().st_size for p in Path(lake).rglob("*.parquet"))
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "rows": rows, "bytes": size, "rss": rss}))
"""

MEASURE = r"""
import json, re, resource, sys, time
from forensics.case import db
from forensics.detect.load import default_dirs, load_detectors
from forensics.detect.runner import run_detectors
case, limit, scan_sql = sys.argv[1:4]
db.limit_resources(limit or None)
con = db.connect(case)
for table in ("finding_requests", "incidents", "findings", "run_detectors", "runs"):
    con.execute(f"DELETE FROM {table}")
t = time.perf_counter(); con.execute(scan_sql).fetchall(); scan = time.perf_counter() - t
[(day,)] = con.execute("SELECT min(ts) + INTERVAL 3 DAY FROM requests").fetchall()
plan = "\n".join(str(r[1]) for r in con.execute(
    "EXPLAIN ANALYZE SELECT count(*) FROM requests WHERE ts >= $d AND ts < $d + INTERVAL 1 DAY",
    {"d": day}).fetchall())
read, total = map(int, re.search(r"Row Groups Scanned: (\d+) / (\d+)", plan).groups())
detectors, _ = load_detectors(default_dirs([]))
t = time.perf_counter(); result = run_detectors(con, detectors); pack = time.perf_counter() - t
con.close()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"scan": scan, "pack": pack, "rss": rss, "groups_read": read,
                  "groups": total, "findings": sum(result.findings.values()),
                  "errors": result.errors}))
"""


def _gib(n: object) -> float:
    return int(str(n)) / 2**30


def lake_case(workdir: Path, rows: int, memory_limit: str) -> tuple[Path, dict[str, object]]:
    """The lake case of `rows` requests, built afresh from the detection benchmark's case."""
    table_case = _scaled_case(workdir, _world_case(workdir, sys.executable), rows)
    case, lake = workdir / f"lake-{rows}.duckdb", workdir / f"lake-{rows}"
    case.unlink(missing_ok=True)
    shutil.rmtree(lake, ignore_errors=True)
    built = run_script(sys.executable, BUILD, str(table_case), str(case), str(lake), memory_limit)
    return case, built


def measure(workdir: Path, rows: int, memory_limit: str) -> list[str]:
    case, built = lake_case(workdir, rows, memory_limit)
    run = run_script(sys.executable, MEASURE, str(case), memory_limit, WIDE_SCAN)
    scan, pack = float(str(run["scan"])), float(str(run["pack"]))
    seconds = float(str(built["seconds"]))
    return [
        "| step | s | rows/s or x scan | peak RSS GiB |",
        "|---|---:|---:|---:|",
        f"| build: write the lake ({int(str(built['bytes'])) / 2**30:.2f} GiB of Parquet)"
        f" | {seconds:.1f} | {int(str(built['rows'])) / seconds:,.0f} rows/s"
        f" | {_gib(built['rss']):.2f} |",
        f"| one wide scan of the lake's requests | {scan:.2f} | 1.0 | |",
        f"| the whole pack ({run['findings']:,} findings, errors: {run['errors'] or 'none'})"
        f" | {pack:.1f} | {pack / scan:.1f} x | {_gib(run['rss']):.2f} |",
        "",
        f"Pruning: requests of one day read {run['groups_read']} of {run['groups']} row groups.",
    ]


INGEST = r"""
import json, resource, sys, time
from pathlib import Path
from forensics.case import db
from forensics.cli.progress import run_ingest
from forensics.ingest.base import Options
from forensics.ingest.paths import expand_paths
case, lake, limit = sys.argv[1:4]
paths = expand_paths(sys.argv[4:])
db.limit_resources(limit or None)
db.use_lake(Path(lake) if lake else None, case=Path(case))
con = db.connect(case)
t = time.perf_counter()
results = run_ingest(con, [(paths, None)], Options(), show_progress=False)
seconds = time.perf_counter() - t
con.close()
assert all(r.status == "loaded" for r in results), [r.message for r in results]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "rows": sum(r.rows_loaded for r in results), "rss": rss}))
"""


def ingest_rates(workdir: Path, memory_limit: str) -> list[str]:
    world = workdir / "detect-world" / "logs"
    _world_case(workdir, sys.executable)
    from access import repeated_log

    apache = repeated_log(100)
    lines = ["| input | into | s | rows/s | peak RSS GiB |", "|---|---|---:|---:|---:|"]
    for name, paths in (("synth week (Kong payloads, 122k)", [world]), ("Apache x100", [apache])):
        for into in ("case file", "lake"):
            best: dict[str, object] | None = None
            for _ in range(3):
                case, lake = workdir / "ingest-bench.duckdb", workdir / "ingest-bench-lake"
                case.unlink(missing_ok=True)
                shutil.rmtree(lake, ignore_errors=True)
                where = str(lake) if into == "lake" else ""
                got = run_script(
                    sys.executable, INGEST, str(case), where, memory_limit, *map(str, paths)
                )
                if best is None or float(str(got["seconds"])) < float(str(best["seconds"])):
                    best = got
            if best is None:
                raise RuntimeError("no ingest run")
            seconds = float(str(best["seconds"]))
            lines.append(
                f"| {name} | {into} | {seconds:.2f} | {int(str(best['rows'])) / seconds:,.0f}"
                f" | {_gib(best['rss']):.2f} |"
            )
    return lines


def ingest_at_scale(workdir: Path, copies: int, memory_limit: str) -> list[str]:
    """The real Apache log x`copies` ingested into a new lake case, then detected."""
    from access import repeated_log

    log = repeated_log(copies)
    case, lake = workdir / f"apache-lake-{copies}.duckdb", workdir / f"apache-lake-{copies}"
    case.unlink(missing_ok=True)
    shutil.rmtree(lake, ignore_errors=True)
    got = run_script(sys.executable, INGEST, str(case), str(lake), memory_limit, str(log))
    run = run_script(sys.executable, MEASURE, str(case), memory_limit, WIDE_SCAN)
    seconds, rows = float(str(got["seconds"])), int(str(got["rows"]))
    scan, pack = float(str(run["scan"])), float(str(run["pack"]))
    size = sum(p.stat().st_size for p in lake.rglob("*.parquet"))
    return [
        f"{log.name}: {log.stat().st_size / 2**30:.1f} GiB, {rows:,} lines loaded;"
        f" the lake {size / 2**30:.2f} GiB of Parquet",
        "",
        "| step | s | rows/s or x scan | peak RSS GiB |",
        "|---|---:|---:|---:|",
        f"| ingest into the lake | {seconds:.1f} | {rows / seconds:,.0f} rows/s"
        f" | {_gib(got['rss']):.2f} |",
        f"| one wide scan of the lake's requests | {scan:.2f} | 1.0 | |",
        f"| the whole pack ({run['findings']:,} findings, errors: {run['errors'] or 'none'})"
        f" | {pack:.1f} | {pack / scan:.1f} x | {_gib(run['rss']):.2f} |",
        "",
        f"Pruning: requests of one day read {run['groups_read']} of {run['groups']} row groups.",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, action="append", help="requests (repeatable)")
    p.add_argument("--memory-limit", default="4GB", help="DuckDB's memory limit ('' for none)")
    p.add_argument("--ingest", action="store_true", help="measure the ingest rates instead")
    p.add_argument(
        "--ingest-copies", type=int, help="ingest the real Apache log x N into a lake, detect"
    )
    p.add_argument("--workdir", type=Path, default=HERE / "out")
    a = p.parse_args(argv)
    a.workdir.mkdir(parents=True, exist_ok=True)
    print(f"# {platform.node()} {platform.machine()}, Python {platform.python_version()},")
    print(f"# --memory-limit {a.memory_limit or 'default'}")
    if a.ingest or a.ingest_copies:
        lines = (
            ingest_at_scale(a.workdir, a.ingest_copies, a.memory_limit)
            if a.ingest_copies
            else ingest_rates(a.workdir, a.memory_limit)
        )
        for line in lines:
            print(line)
        return 0
    for rows in a.rows or [10_000_000]:
        print(f"\n## {rows:,} requests\n")
        started = time.perf_counter()
        for line in measure(a.workdir, rows, a.memory_limit):
            print(line)
        print(f"\n({(time.perf_counter() - started) / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
