"""Where does `forensics ingest` spend its time? Statement by statement, in one process.

    .venv/bin/python benchmarks/profile_ingest.py --lines 50000 [--asn-db] [--explain]

Runs `ingest_file` on a generated Kong file (cached in benchmarks/out/ like ingest.py) with the
case connection wrapped so that every `execute` is timed, then prints the statements grouped by
their first words, and the time spent outside SQL (hashing, reading, Python). With --explain it
also runs EXPLAIN ANALYZE of the per-chunk statement on the first chunk and prints the operator
timings, and times the adapter's staging SELECT alone against the whole canonical statement.
Reads forensics' own SQL; changes nothing in it.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kong_gen
from ingest import generate

from forensics import db
from forensics.ingest import pipeline, reader
from forensics.ingest.base import Options
from forensics.ingest.formats import FORMATS


def label(sql: str) -> str:
    text = re.sub(r"\s+", " ", sql).strip()
    match = re.match(
        r"(CREATE OR REPLACE TEMP TABLE \w+|INSERT INTO \w+|UPDATE \w+|DELETE FROM \w+|"
        r"SELECT nextval|SELECT EXISTS|BEGIN|COMMIT|ROLLBACK|SELECT)",
        text,
        re.IGNORECASE,
    )
    return match.group(1) if match else text[:40]


class TimedConnection:
    """Delegates to a DuckDB connection, timing execute / executemany / register."""

    def __init__(self, con: Any) -> None:
        self._con = con
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()

    def _timed(self, name: str, fn: Any, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.seconds[name] += time.perf_counter() - started
            self.calls[name] += 1

    def execute(self, sql: str, *args: Any) -> Any:
        self._timed(label(sql), self._con.execute, sql, *args)
        return self

    def executemany(self, sql: str, *args: Any) -> Any:
        self._timed(label(sql) + " (many)", self._con.executemany, sql, *args)
        return self

    def register(self, *args: Any) -> Any:
        return self._timed("register", self._con.register, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def explain(con: Any, log: Path) -> None:
    """Operator timings of the per-chunk statement, on the file's first chunk."""
    adapter = FORMATS["kong"]
    options = Options()
    end = reader.ReadEnd()
    chunk = next(reader.read_chunks(log, end))
    prepared = pipeline.prepare(chunk)
    con.register("chunk_lines", prepared.table)
    from forensics.ingest import canonical

    staging = adapter.staging(options).sql()
    full = canonical.canonical_sql(staging)
    params = {"source_id": 1, "format": "kong", "keep_prompts": False}
    con.execute("SET enable_progress_bar = false")
    rows = con.execute("SELECT count(*) FROM chunk_lines").fetchall()[0][0]
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as f:
        f.write(chunk.data)
        f.flush()
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
            ("staging + canonical (the per-chunk statement)", full),
        )
        for name, sql in variants:
            best = float("inf")
            for _ in range(3):  # best of three: the machine may be shared
                started = time.perf_counter()
                con.execute(sql, params if "$source_id" in sql else None)
                best = min(best, time.perf_counter() - started)
            print(f"  {best:7.2f} s  {name}")
    print(f"  (first chunk: {rows:,} lines, {len(chunk.data) / 1e6:.0f} MB; best of 3)")
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
    p.add_argument("--days", type=float, default=1.0)
    p.add_argument("--asn-db", action="store_true", help="load the iptoasn TSV first")
    p.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the chunk statement")
    a = p.parse_args()
    config = kong_gen.KongConfig(
        lines=a.lines, start=datetime(2026, 11, 16, tzinfo=UTC), duration=timedelta(days=a.days)
    )
    log, tsv = generate(config)
    with tempfile.TemporaryDirectory() as tmp:
        con = db.connect(Path(tmp) / "case.duckdb")
        if a.asn_db:
            pipeline.ingest_file(con, tsv)
        timed = TimedConnection(con)
        started = time.perf_counter()
        result = pipeline.ingest_file(timed, log)
        total = time.perf_counter() - started
        hashing = time.perf_counter()
        reader.sha256_file(log)
        hashing = time.perf_counter() - hashing
        print(
            f"{log.name}: {result.status}, {result.rows_loaded:,} loaded,"
            f" {result.rows_quarantined:,} quarantined, {total:.2f} s wall"
            f" ({log.stat().st_size / 1e6:,.0f} MB)"
        )
        print()
        print(f"  {'seconds':>8}  {'share':>6}  {'calls':>5}  statement")
        in_sql = 0.0
        for name, secs in sorted(timed.seconds.items(), key=lambda kv: -kv[1]):
            in_sql += secs
            print(f"  {secs:8.2f}  {secs / total:6.1%}  {timed.calls[name]:5}  {name}")
        print(
            f"  {total - in_sql:8.2f}  {(total - in_sql) / total:6.1%}         outside SQL"
            f" (of which sha256 of the file ~{hashing:.2f} s; the rest: waiting for the"
            " reader thread, Python)"
        )
        if a.explain:
            print()
            print("first chunk, statement by statement:")
            explain(con, log)
        con.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
