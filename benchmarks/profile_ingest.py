"""Where does `forensics ingest` spend its time? Statement by statement, in one process.

    .venv/bin/python benchmarks/profile_ingest.py --lines 50000 [--asn-db] [--explain]

Runs `ingest_file` on the benchmark's Kong log (workload.py, cached in benchmarks/out/) and prints
the seconds of each step the pipeline times for itself (`pipeline.Timings`), and the rest
(hashing same-size files, start-up, Python). With --explain it also times, on the file's first
chunk, read_json of the same lines, the Kong record parse, the adapter's staging SELECT and the
whole per-chunk statement, and prints EXPLAIN ANALYZE of the latter.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from workload import Workload, generate

from forensics.case import db
from forensics.ingest import decompress, lines, pipeline, reader
from forensics.ingest.base import Options
from forensics.ingest.formats import FORMATS


def explain(con: Any, log: Path) -> None:
    """Operator timings of the per-chunk statement, on the file's first chunk."""
    adapter = FORMATS["kong"]
    options = Options()
    end = decompress.ReadEnd()
    chunk = next(reader.read_chunks(log, end))
    size = len(chunk.data)
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as f:
        f.write(chunk.data)
    chunk_lines = lines.prepare(chunk).table  # noqa: F841 - read by the SQL (replacement scan)
    from forensics.ingest import canonical

    staging = adapter.staging(options).sql()
    full = canonical.canonical_sql(staging)
    params = {
        "source_id": 1,
        "format": "kong",
        "keep_prompts": False,
        "tenant_claims": ["tenant_id"],
        "dense": True,
    }
    con.execute("SET enable_progress_bar = false")
    rows = con.execute("SELECT count(*) FROM chunk_lines").fetchall()[0][0]
    try:
        path = f.name.replace("'", "''")
        variants = (
            (
                "floor: read_json of the same lines",
                f"CREATE OR REPLACE TEMP TABLE p0 AS SELECT * FROM read_json('{path}')",
            ),
            (
                "json_transform of each line to the Kong record struct",
                "CREATE OR REPLACE TEMP TABLE p1 AS SELECT try(json_transform(line, '"
                + _record_struct()
                + "')) AS r FROM chunk_lines",
            ),
            ("the Kong adapter's staging SELECT", "CREATE OR REPLACE TEMP TABLE p2 AS " + staging),
            (
                "staging + canonical (the per-chunk statement)",
                "CREATE OR REPLACE TEMP TABLE p3 AS " + full,
            ),
        )
        for name, sql in variants:
            best = float("inf")
            for _ in range(3):  # best of three: the machine may be shared
                started = time.perf_counter()
                con.execute(sql, params if "$source_id" in sql else None)
                best = min(best, time.perf_counter() - started)
            print(f"  {best:7.2f} s  {name}")
    finally:
        Path(f.name).unlink()
    print(f"  (first chunk: {rows:,} lines, {size / 1e6:.0f} MB; best of 3)")
    con.execute("PRAGMA enable_profiling = 'query_tree'")
    plan = con.execute("EXPLAIN ANALYZE " + full, params).fetchall()
    print()
    print(plan[0][1])


def _record_struct() -> str:
    import json

    from forensics.ingest import kong

    return json.dumps(kong.RECORD)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=50_000)
    p.add_argument("--days", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--asn-db", action="store_true", help="load the iptoasn TSV first")
    p.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the chunk statement")
    a = p.parse_args()
    log, tsv = generate(Workload(a.lines, a.days, a.seed))
    with tempfile.TemporaryDirectory() as tmp:
        con = db.connect(Path(tmp) / "case.duckdb")
        if a.asn_db:
            pipeline.ingest_file(con, tsv)
        timings = pipeline.Timings()
        started = time.perf_counter()
        result = pipeline.ingest_file(con, log, timings=timings)
        total = time.perf_counter() - started
        print(
            f"{log.name}: {result.status}, {result.rows_loaded:,} loaded,"
            f" {result.rows_quarantined:,} quarantined, {total:.2f} s wall"
            f" ({log.stat().st_size / 1e6:,.0f} MB)"
        )
        print()
        print(f"  {'seconds':>8}  {'share':>6}  step")
        for name, secs in sorted(timings.items(), key=lambda kv: -kv[1]):
            print(f"  {secs:8.2f}  {secs / total:6.1%}  {name}")
        rest = total - sum(timings.values())
        print(f"  {rest:8.2f}  {rest / total:6.1%}  the rest (format detection, Python)")
        if a.explain:
            print()
            print("first chunk, statement by statement:")
            explain(con, log)
        con.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
