"""Ingest benchmark: `forensics ingest` of a synth world's Kong log against DuckDB's floor.

    .venv/bin/python benchmarks/ingest.py                 # 1,000,000 lines over one day
    .venv/bin/python benchmarks/ingest.py --lines 200000
    .venv/bin/python benchmarks/ingest.py --week          # acceptance scenario, PASS/FAIL

Steps, each a fresh process timed from outside (wall clock, peak RSS):
  floor          CREATE TABLE t AS SELECT * FROM read_json('<file>', maximum_depth=2) into a
                 fresh DuckDB file
  ingest         forensics --db <fresh> ingest -q <file>
  ingest+asn     forensics --db <fresh> ingest -q --asn-db <iptoasn.tsv> <file>
  re-ingest      the same file again into the ingest+asn case (must be skipped)

The log is a `forensics synth` world's Kong records with full payloads (workload.py), cached in
benchmarks/out/ (gitignored) by its parameters; the case databases go to --workdir (default: a
temporary directory, removed unless --keep).
Exit status 1 when a correctness check fails; timing targets are reported, never fatal.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from workload import Workload, generate

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GNU_TIME = Path("/usr/bin/time")
TARGET_RATIO = 1.5  # ingest vs floor at 1M lines
TARGET_RSS_MIB = 2048
WEEK_RATIO = 2.0
WEEK_LINES = 185_000

FLOOR_SCRIPT = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("SET enable_progress_bar = false")
path = sys.argv[2].replace("'", "''")
t = time.perf_counter()
# two levels parsed, the rest kept as JSON text: the schema is detected from a sample, and with
# every level a header seen first after the sample (synth's `x-api-key`) stops the read
con.execute(f"CREATE TABLE t AS SELECT * FROM read_json('{path}', maximum_depth=2)")
n = con.execute("SELECT count(*) FROM t").fetchone()[0]
con.close()
print(n, time.perf_counter() - t)
"""

# Peak RSS of a child when GNU time is missing: run it and read the children's rusage.
RUSAGE_WRAPPER = """
import resource, subprocess, sys
rc = subprocess.run(sys.argv[2:]).returncode
with open(sys.argv[1], "w") as f:
    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(rc)
"""


@dataclass
class Run:
    step: str
    seconds: float
    rss_mib: float
    stdout: str
    stderr: str
    returncode: int
    cpu_seconds: float = 0.0  # user + system, from GNU time (0 without it)


def forensics_cmd() -> list[str]:
    """The forensics console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "forensics"
    if script.exists():
        return [str(script)]
    found = shutil.which("forensics")
    if found:
        return [found]
    return [sys.executable, "-c", "from forensics.cli import cli; cli()"]


def timed(step: str, cmd: list[str], workdir: Path) -> Run:
    """Run `cmd`, returning wall seconds and peak RSS of the process tree's largest member."""
    report = workdir / f".rss-{os.getpid()}-{time.monotonic_ns()}"
    if GNU_TIME.exists():
        wrapped = [str(GNU_TIME), "-v", "-o", str(report), *cmd]
    else:
        wrapped = [sys.executable, "-c", RUSAGE_WRAPPER, str(report), *cmd]
    started = time.perf_counter()
    proc = subprocess.run(wrapped, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    rss_kib = cpu = 0.0
    if report.exists():
        text = report.read_text()
        report.unlink()
        match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
        if match:
            rss_kib = float(match.group(1))
        elif text.strip().isdigit():
            rss_kib = float(text.strip())
        for field in ("User", "System"):
            used = re.search(rf"{field} time \(seconds\): ([0-9.]+)", text)
            cpu += float(used.group(1)) if used else 0.0
    return Run(step, seconds, rss_kib / 1024, proc.stdout, proc.stderr, proc.returncode, cpu)


def sql(db: Path, query: str) -> list[dict[str, object]]:
    proc = subprocess.run(
        [*forensics_cmd(), "--db", str(db), "sql", "--format", "json", query],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"forensics sql failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def tree_state() -> str:
    """Commit and whether forensics/ has uncommitted changes (what was measured)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "forensics"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in forensics/" if dirty else "")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    acceptance: bool = True  # False: reported, but does not decide the exit status


def loaded_whole(db: Path, log: Path, lines: int) -> Check:
    rows = sql(
        db,
        "SELECT rows_read, rows_loaded, rows_quarantined,"
        " (SELECT count(*) FROM requests) AS requests FROM sources"
        " WHERE format = 'kong' AND path = '" + str(log.resolve()).replace("'", "''") + "'",
    )
    if len(rows) != 1:
        return Check("loads whole", False, f"{len(rows)} kong sources rows for {log.name}")
    r = rows[0]
    ok = r["rows_read"] == r["rows_loaded"] == r["requests"] == lines and r["rows_quarantined"] == 0
    return Check(
        "loads whole",
        ok,
        f"{lines:,} lines: read {r['rows_read']:,} = loaded {r['rows_loaded']:,}"
        f" + quarantined {r['rows_quarantined']:,}; requests table {r['requests']:,}",
    )


def enriched(db: Path) -> Check:
    """Every IPv4 row has asn and country (synth's iptoasn file is IPv4 only; its worlds send
    some traffic over IPv6, counted apart)."""
    r = sql(
        db,
        "SELECT count(*) FILTER (WHERE NOT contains(client_ip, ':')) AS n,"
        " count(*) FILTER (WHERE contains(client_ip, ':')) AS v6,"
        " count(*) FILTER (WHERE asn IS NULL AND NOT contains(client_ip, ':')) AS no_asn,"
        " count(*) FILTER (WHERE country IS NULL AND NOT contains(client_ip, ':')) AS no_country,"
        " count(DISTINCT client_ip) AS ips, count(DISTINCT asn) AS asns,"
        " count(DISTINCT country) AS countries FROM requests",
    )[0]
    ok = r["n"] > 0 and r["no_asn"] == 0 and r["no_country"] == 0
    return Check(
        "every IPv4 row has asn and country",
        ok,
        f"{r['n']:,} IPv4 rows, {r['no_asn']:,} without asn, {r['no_country']:,} without"
        f" country; {r['v6']:,} IPv6 rows ({r['ips']:,} IPs in {r['asns']:,} ASes,"
        f" {r['countries']} countries)",
    )


def tokens_filled(db: Path) -> Check:
    """Extra: every successful chat record the AI Proxy logged carries its token counts."""
    r = sql(
        db,
        "SELECT count(*) AS n, count(*) FILTER (WHERE input_tokens IS NULL"
        " OR output_tokens IS NULL) AS missing FROM requests"
        " WHERE status = 200 AND endpoint = 'chat'",
    )[0]
    return Check(
        "tokens on every 2xx chat record",
        r["missing"] == 0,
        f"{r['missing']:,} of {r['n']:,} without input/output tokens",
        acceptance=False,
    )


def skipped(run: Run, db: Path, lines: int) -> Check:
    match = re.search(r"(\d+) loaded, (\d+) skipped, (\d+) failed", run.stdout)
    counts = sql(
        db,
        "SELECT (SELECT count(*) FROM requests) AS requests,"
        " (SELECT count(*) FROM sources WHERE kind = 'requests') AS sources",
    )[0]
    ok = (
        run.returncode == 0
        and match is not None
        and match.groups() == ("0", "1", "0")
        and counts["requests"] == lines
        and counts["sources"] == 1
    )
    said = match.group(0) if match else (run.stdout.strip().splitlines() or ["no output"])[-1]
    return Check(
        "second ingest is a no-op",
        ok,
        f"{said}; requests still {counts['requests']:,}, request sources {counts['sources']}",
    )


def median_run(runs: list[Run]) -> Run:
    """The run with the median wall time (the middle one of an odd number), with the largest
    peak RSS of them all."""
    middle = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
    return replace(middle, rss_mib=max(r.rss_mib for r in runs))


def fmt_row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def print_table(runs: list[Run], lines: int, size: int, floor: float) -> None:
    header = ["step", "lines", "MB", "seconds", "lines/s", "MB/s", "peak RSS MiB", "x floor"]
    rows = [header]
    mb = size / 1e6
    for r in runs:
        rows.append(
            [
                r.step,
                f"{lines:,}",
                f"{mb:,.1f}",
                f"{r.seconds:,.2f}",
                f"{lines / r.seconds:,.0f}",
                f"{mb / r.seconds:,.1f}",
                f"{r.rss_mib:,.0f}",
                f"{r.seconds / floor:.2f}",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for i, row in enumerate(rows):
        print(fmt_row(row, widths))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="forensics ingest benchmark (see benchmarks/README.md)")
    p.add_argument("--lines", type=int, default=1_000_000, help="lines to generate (1,000,000)")
    p.add_argument("--days", type=int, default=1, help="time span of the log, whole days (1)")
    p.add_argument(
        "--week",
        action="store_true",
        help=f"acceptance scenario: {WEEK_LINES:,} lines over 7 days, PASS/FAIL",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the synth world (1)")
    p.add_argument(
        "--repeat", type=int, default=1, help="run each timed step N times; the median counts"
    )
    p.add_argument("--workdir", type=Path, help="where the case databases go (default: temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the case databases in --workdir")
    a = p.parse_args(argv)
    lines = WEEK_LINES if a.week else a.lines
    days = 7 if a.week else a.days
    log, tsv = generate(Workload(lines, days, a.seed))
    size = log.stat().st_size
    workdir = a.workdir or Path(tempfile.mkdtemp(prefix="forensics-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    dbs = {name: workdir / f"{name}.duckdb" for name in ("floor", "ingest", "enriched")}
    for db in dbs.values():
        for stale in (db, db.with_name(db.name + ".wal")):
            stale.unlink(missing_ok=True)
    import duckdb

    print(
        f"forensics ingest benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, DuckDB {duckdb.__version__}"
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"tree: {tree_state()}; load average before the run: {load}")
    print(
        f"file: {log} ({lines:,} lines over {days} day{'s' if days != 1 else ''},"
        f" {size / 1e6:,.1f} MB,"
        f" {size / lines:,.0f} B/line); iptoasn: {tsv.name}"
    )
    print()
    fx = forensics_cmd()
    runs: list[Run] = []
    failures: list[str] = []
    try:
        # Each step into a fresh database; with --repeat the steps take turns and the median run
        # of each counts, with the largest peak RSS of its runs.
        fresh = [
            (
                "floor read_json",
                "floor",
                [sys.executable, "-c", FLOOR_SCRIPT, str(dbs["floor"]), str(log)],
            ),
            ("ingest", "ingest", [*fx, "--db", str(dbs["ingest"]), "ingest", "-q", str(log)]),
            (
                "ingest --asn-db",
                "enriched",
                [*fx, "--db", str(dbs["enriched"]), "ingest", "-q", "--asn-db", str(tsv), str(log)],
            ),
        ]
        taken: dict[str, list[Run]] = {name: [] for name, _, _ in fresh}
        for _ in range(max(1, a.repeat)):
            for name, db_key, cmd in fresh:
                for stale in (dbs[db_key], dbs[db_key].with_name(dbs[db_key].name + ".wal")):
                    stale.unlink(missing_ok=True)
                taken[name].append(timed(name, cmd, workdir))
            if taken["floor read_json"][-1].returncode != 0:
                print(taken["floor read_json"][-1].stderr, file=sys.stderr)
                return 1
        results = {name: median_run(runs) for name, runs in taken.items()}
        results["re-ingest (skip)"] = timed(
            "re-ingest (skip)",
            [*fx, "--db", str(dbs["enriched"]), "ingest", "-q", str(log)],
            workdir,
        )
        floor = results["floor read_json"]
        floor_rows = int(floor.stdout.strip().splitlines()[-1].split()[0])
        runs.extend(results.values())
        every = [*(r for each in taken.values() for r in each), results["re-ingest (skip)"]]
        for run in every:
            if run.returncode != 0:
                failures.append(f"{run.step}: exit {run.returncode}: {run.stderr.strip()[-400:]}")
        print_table(runs, lines, size, floor.seconds)
        if a.repeat > 1:
            print()
            for name, each in taken.items():
                print(f"{name}: runs of {', '.join(f'{r.seconds:.2f}' for r in each)} s")
        print()
        checks = [
            Check(
                "floor reads every line",
                floor_rows == lines,
                f"read_json: {floor_rows:,} rows",
                acceptance=False,
            )
        ]
        # Checked even after a failed command: what did make it into the case?
        if dbs["ingest"].exists():
            checks.append(loaded_whole(dbs["ingest"], log, lines))
            checks.append(tokens_filled(dbs["ingest"]))
        if dbs["enriched"].exists():
            check = loaded_whole(dbs["enriched"], log, lines)
            check.name += " (--asn-db)"
            checks.append(check)
            checks.append(enriched(dbs["enriched"]))
            checks.append(skipped(results["re-ingest (skip)"], dbs["enriched"], lines))
        for f in failures:
            checks.append(Check("command succeeds", False, f))
        for c in checks:
            tag = "PASS" if c.ok else ("FAIL" if c.acceptance else "WARN")
            print(f"{tag}  {c.name}: {c.detail}")
        plain, enrich = results["ingest"], results["ingest --asn-db"]
        limit = WEEK_RATIO if a.week else TARGET_RATIO
        for run in (plain, enrich):
            ratio = run.seconds / floor.seconds
            verdict = "PASS" if run.returncode == 0 and ratio <= limit else "FAIL"
            print(
                f"{verdict}  time: {run.step} {run.seconds:.1f} s = {ratio:.2f}x floor"
                f" {floor.seconds:.1f} s (target <= {limit:g}x; timing, not fatal)"
            )
        peak = max(plain.rss_mib, enrich.rss_mib)
        print(
            f"{'PASS' if peak < TARGET_RSS_MIB else 'FAIL'}  memory: peak RSS {peak:,.0f} MiB"
            f" (target < {TARGET_RSS_MIB:,} MiB; not fatal)"
        )
        bad = [c for c in checks if c.acceptance and not c.ok]
        if a.week:
            print()
            print("week acceptance (185k-line Kong week, AI Proxy payloads, iptoasn enrichment):")
            week = [
                ("loads whole", all(c.ok for c in checks if c.name.startswith("loads whole"))),
                (
                    "every IPv4 row has asn and country",
                    any(c.ok for c in checks if c.name == "every IPv4 row has asn and country"),
                ),
                (
                    "second ingest is a no-op",
                    any(c.ok for c in checks if c.name == "second ingest is a no-op"),
                ),
                (
                    f"ingest <= {WEEK_RATIO:g}x read_json floor",
                    enrich.returncode == 0 and enrich.seconds <= WEEK_RATIO * floor.seconds,
                ),
            ]
            for name, ok in week:
                print(f"  {'PASS' if ok else 'FAIL'}  {name}")
        return 1 if bad else 0
    finally:
        if not a.keep and a.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not a.keep:
            for db in dbs.values():
                db.unlink(missing_ok=True)
                db.with_name(db.name + ".wal").unlink(missing_ok=True)
        else:
            print(f"\ncase databases kept in {workdir}")


if __name__ == "__main__":
    sys.exit(main())
