"""The pack on Spark against the pack on DuckDB, on the same requests, with bounded memory.

    .venv/bin/python benchmarks/scale.py                       # 1M requests
    .venv/bin/python benchmarks/scale.py --rows 10000000       # one size (repeatable)
    .venv/bin/python benchmarks/scale.py --memory-limit 4GB

The cases are the detection benchmark's (benchmarks/detect.py builds them in benchmarks/out/: a
synth week copied until `requests` has the wanted rows). Each step is a fresh process on a
fresh copy of the case, timed from inside:

  duckdb        `forensics --memory-limit M` semantics (every case connection opens with it):
                one wide scan of `requests` and the whole pack (run_detectors), peak RSS of
                the process (DuckDB lives in it)
  lake          the case's requests and usage written as Parquet in the lake's layout
                (forensics/lake/snapshot.py): seconds and bytes on disk
  spark         Spark local[2] (forensics/spark/session.py): JVM start, one wide scan of the
                lake's requests, the whole pack (run_detectors with the Spark evaluation, which
                writes its own snapshot first; that write is inside its time), peak RSS of the
                Python process and of the JVM (its VmHWM, read before the session stops)

and prints the table; findings of both engines are compared (same count per detector).
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

COLUMNS = WIDE_SCAN.split("hash(", 1)[1].split("))", 1)[0]

DUCKDB = r"""
import json, resource, sys, time
from forensics.case import db
from forensics.detect.load import default_dirs, load_detectors
from forensics.detect.runner import run_detectors
db.limit_resources(sys.argv[2] or None)
con = db.connect(sys.argv[1])
for table in ("finding_requests", "incidents", "findings", "run_detectors", "runs"):
    con.execute(f"DELETE FROM {table}")
con.execute("CHECKPOINT")
t = time.perf_counter(); con.execute(sys.argv[3]).fetchall(); scan = time.perf_counter() - t
detectors, _ = load_detectors(default_dirs([]))
t = time.perf_counter(); result = run_detectors(con, detectors); pack = time.perf_counter() - t
con.close()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"scan": scan, "pack": pack, "rss": rss, "findings": result.findings,
                  "errors": result.errors}))
"""

LAKE = r"""
import json, sys, time
from pathlib import Path
from forensics.case import db
from forensics.lake.snapshot import write_snapshot
con = db.connect(sys.argv[1], read_only=True)
t = time.perf_counter()
rows = write_snapshot(con, Path(sys.argv[2]))
seconds = time.perf_counter() - t
size = sum(p.stat().st_size for p in Path(sys.argv[2]).rglob("*.parquet"))
print(json.dumps({"seconds": seconds, "bytes": size, "rows": rows}))
"""

SPARK = r"""
import json, resource, sys, time
from pathlib import Path
from forensics.case import db
from forensics.detect.load import default_dirs, load_detectors
from forensics.detect.runner import run_detectors
from forensics.spark.evaluation import spark_evaluator
from forensics.spark.session import spark_session
t = time.perf_counter(); spark = spark_session(); start = time.perf_counter() - t
lake = Path(sys.argv[2])
frame = spark.read.option("basePath", str(lake / "requests")).parquet(str(lake / "requests"))
frame.createOrReplaceTempView("lake_requests")
t = time.perf_counter()
spark.sql(f"SELECT count(DISTINCT xxhash64({sys.argv[3]})) FROM lake_requests").collect()
scan = time.perf_counter() - t
con = db.connect(sys.argv[1])
for table in ("finding_requests", "incidents", "findings", "run_detectors", "runs"):
    con.execute(f"DELETE FROM {table}")
con.execute("CHECKPOINT")
detectors, _ = load_detectors(default_dirs([]))
t = time.perf_counter()
with spark_evaluator(con, detectors, data_dir=lake.parent / "spark-run") as evaluator:
    result = run_detectors(con, detectors, evaluator=evaluator, timeout=None)
pack = time.perf_counter() - t
con.close()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
jvm = 0  # the JVM's peak RSS (VmHWM) before it stops: pyspark's launcher execs java
pid = spark.sparkContext._gateway.proc.pid
for line in Path(f"/proc/{pid}/status").read_text().splitlines():
    if line.startswith("VmHWM:"):
        jvm = int(line.split()[1]) * 1024
spark.stop()
print(json.dumps({"start": start, "scan": scan, "pack": pack, "rss": rss, "jvm_rss": jvm,
                  "findings": result.findings, "errors": result.errors}))
"""


def _child(script: str, *args: str) -> dict[str, object]:
    return run_script(sys.executable, script, *args)


def _gib(n: object) -> float:
    return int(n) / 2**30  # type: ignore[call-overload]


def measure(case: Path, workdir: Path, memory_limit: str) -> list[str]:
    lines = []
    copy = workdir / "scale-run.duckdb"
    shutil.copyfile(case, copy)
    duck = _child(DUCKDB, str(copy), memory_limit, WIDE_SCAN)
    lake = workdir / "scale-lake"
    shutil.rmtree(lake, ignore_errors=True)
    written = _child(LAKE, str(copy), str(lake / "lake"))
    shutil.copyfile(case, copy)
    on_spark = _child(SPARK, str(copy), str(lake / "lake"), COLUMNS)
    scan_d, pack_d = float(duck["scan"]), float(duck["pack"])  # type: ignore[arg-type]
    scan_s, pack_s = float(on_spark["scan"]), float(on_spark["pack"])  # type: ignore[arg-type]
    lines.append("| engine | wide scan s | pack s | x scan | peak RSS GiB | findings |")
    lines.append("|---|---:|---:|---:|---:|---:|")
    found_d: dict[str, int] = duck["findings"]  # type: ignore[assignment]
    found_s: dict[str, int] = on_spark["findings"]  # type: ignore[assignment]
    lines.append(
        f"| DuckDB (--memory-limit {memory_limit or 'default'}) | {scan_d:.2f} | {pack_d:.2f}"
        f" | {pack_d / scan_d:.1f} | {_gib(duck['rss']):.2f} | {sum(found_d.values()):,} |"
    )
    lines.append(
        f"| Spark local[2] | {scan_s:.2f} | {pack_s:.2f} | {pack_s / scan_s:.1f}"
        f" | {_gib(on_spark['rss']):.2f} + JVM {_gib(on_spark['jvm_rss']):.2f}"
        f" | {sum(found_s.values()):,} |"
    )
    lines.append("")
    lines.append(
        f"Lake snapshot: {float(written['seconds']):.1f} s, "  # type: ignore[arg-type]
        f"{int(written['bytes']) / 2**20:,.0f} MiB of Parquet; Spark session start"  # type: ignore[call-overload]
        f" {float(on_spark['start']):.1f} s (not in the pack's time)."  # type: ignore[arg-type]
    )
    same = found_d == found_s
    lines.append(f"Findings per detector equal: {'yes' if same else 'NO'}.")
    if not same:
        diff = {k: (found_d.get(k), found_s.get(k)) for k in found_d.keys() | found_s.keys()
                if found_d.get(k) != found_s.get(k)}  # fmt: skip
        lines.append(f"Differences (DuckDB, Spark): {diff}")
    for engine, result in (("DuckDB", duck), ("Spark", on_spark)):
        if result["errors"]:
            lines.append(f"{engine} errors: {result['errors']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, action="append", help="requests (repeatable)")
    p.add_argument("--memory-limit", default="4GB", help="DuckDB's memory limit ('' for none)")
    p.add_argument("--workdir", type=Path, default=HERE / "out")
    a = p.parse_args(argv)
    a.workdir.mkdir(parents=True, exist_ok=True)
    source = _world_case(a.workdir, sys.executable)
    print(f"# {platform.node()} {platform.machine()}, Python {platform.python_version()}")
    for rows in a.rows or [1_000_000]:
        case = _scaled_case(a.workdir, source, rows)
        print(f"\n## {rows:,} requests\n")
        started = time.perf_counter()
        for line in measure(case, a.workdir, a.memory_limit):
            print(line)
        print(f"\n({(time.perf_counter() - started) / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
