"""Access-log benchmark: a real Apache log repeated 100 times, against DuckDB's floor and GoAccess.

    .venv/bin/python benchmarks/access.py                 # x100 (1,000,000 lines), median of 3
    .venv/bin/python benchmarks/access.py --copies 20 --repeat 1

The log is ../shared/realdata/elastic-examples_apache_logs.log (10,000 combined lines from
Elastic's examples), written --copies times into benchmarks/out/ (gitignored). Steps, each a
fresh process timed from outside (wall clock, CPU = user + system, peak RSS, by GNU time):

  floor      DuckDB alone: read_csv of whole lines, one regexp_extract of ingest's own combined
             pattern into a struct, into a table of a fresh database file
  ingest     forensics --db <fresh> ingest -q <file>
  detect     forensics --db <case> detect            (the whole shipped pack)
  weekly     forensics --db <case> report weekly -o <html>
  goaccess   goaccess <file> --log-format=COMBINED -o <html>   (its whole run, log to report)

and prints the median of --repeat runs of each, ingest / floor, our whole path (ingest + detect +
weekly) against GoAccess's, CPU against wall, and whether the counts reconcile (every line read
is loaded or quarantined, and the case holds them). Exit status 1 when a check fails or the log
is missing; the timing targets are reported, never fatal.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from ingest import GNU_TIME, Run, forensics_cmd, median_run, sql, timed, tree_state

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
REAL_LOG = REPO.parent / "shared" / "realdata" / "elastic-examples_apache_logs.log"
TARGET_FLOOR = 2.0  # ingest within 2x the floor
TARGET_PEER = 2.0  # our whole path at least 2x faster than GoAccess's whole run

FLOOR_SCRIPT = """
import sys, duckdb
from forensics.ingest.access_log import COMBINED_GROUPS, COMBINED_RE
con = duckdb.connect(sys.argv[1])
con.execute("SET enable_progress_bar = false")
path = sys.argv[2].replace("'", "''")
pattern = COMBINED_RE.replace("'", "''")
con.execute(
    f"CREATE TABLE t AS SELECT regexp_extract(line, '{pattern}', {COMBINED_GROUPS!r}) AS m"
    f" FROM read_csv('{path}', columns={{'line': 'VARCHAR'}}, header=false, delim=chr(0),"
    " quote='', escape='', auto_detect=false)"
)
print(con.execute("SELECT count(*) FROM t").fetchone()[0])
"""


def repeated_log(copies: int) -> Path:
    """The real log written `copies` times, once (reused while it exists)."""
    out = HERE / "out" / f"apache-x{copies}.log"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        data = REAL_LOG.read_bytes()
        tmp = out.with_suffix(".tmp")
        with tmp.open("wb") as f:
            for _ in range(copies):
                f.write(data)
        tmp.rename(out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--copies", type=int, default=100, help="times the log is repeated (100)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each step; the median counts")
    a = p.parse_args(argv)
    if not REAL_LOG.exists():
        print(f"missing {REAL_LOG}: the benchmark needs ../shared/realdata", file=sys.stderr)
        return 1
    if not GNU_TIME.exists():
        print("note: without /usr/bin/time (GNU time) CPU time is not measured", file=sys.stderr)
    log = repeated_log(a.copies)
    lines = sum(1 for _ in REAL_LOG.open("rb")) * a.copies
    goaccess = shutil.which("goaccess")
    forensics = forensics_cmd()
    print(f"# {platform.node()} {platform.machine()}, Python {platform.python_version()},"
          f" {tree_state()}")  # fmt: skip
    print(f"# {log.name}: {lines:,} lines, {log.stat().st_size / 1e6:,.1f} MB")
    steps: dict[str, list[Run]] = {}
    failed = False
    with tempfile.TemporaryDirectory(prefix="forensics-access-") as tmp:
        work = Path(tmp)
        for i in range(a.repeat):
            floor_db, case = work / f"floor-{i}.duckdb", work / f"case-{i}.duckdb"
            runs = [
                timed("floor", [sys.executable, "-c", FLOOR_SCRIPT, str(floor_db), str(log)], work),
                timed("ingest", [*forensics, "--db", str(case), "ingest", "-q", str(log)], work),
                timed("detect", [*forensics, "--db", str(case), "detect"], work),
                timed(
                    "weekly",
                    [*forensics, "--db", str(case), "report", "weekly", "-o", str(work / "w.html")],
                    work,
                ),
            ]
            if goaccess:
                runs.append(
                    timed(
                        "goaccess",
                        [
                            goaccess,
                            str(log),
                            "--log-format=COMBINED",
                            "--no-progress",
                            "-o",
                            str(work / "goaccess.html"),
                        ],
                        work,
                    )  # fmt: skip
                )
            for run in runs:
                if run.returncode != 0:
                    print(f"FAIL {run.step} exited {run.returncode}: {run.stderr.strip()[-500:]}")
                    failed = True
                steps.setdefault(run.step, []).append(run)
            if i == 0:
                [counts] = sql(
                    case,
                    "SELECT sum(rows_read) AS read, sum(rows_loaded) AS loaded,"
                    " sum(rows_quarantined) AS quarantined,"
                    " (SELECT count(*) FROM requests) AS requests FROM sources",
                )
                whole = (
                    counts["read"] == lines
                    and counts["read"] == counts["loaded"] + counts["quarantined"]  # type: ignore[operator]
                    and counts["requests"] == counts["loaded"]
                )
                print(f"{'PASS' if whole else 'FAIL'} counts reconcile: {counts}")
                failed = failed or not whole
            floor_db.unlink(missing_ok=True)
            case.unlink(missing_ok=True)
    medians = {step: median_run(runs) for step, runs in steps.items()}
    print(f"\n{'step':10} {'wall s':>8} {'cpu s':>8} {'cpu/wall':>8} {'peak RSS MiB':>13}")
    for step, run in medians.items():
        ratio = run.cpu_seconds / run.seconds if run.seconds else 0.0
        print(
            f"{step:10} {run.seconds:8.2f} {run.cpu_seconds:8.2f} {ratio:8.2f} {run.rss_mib:13,.0f}"
        )
    floor, ingest = medians["floor"].seconds, medians["ingest"].seconds
    path = sum(medians[s].seconds for s in ("ingest", "detect", "weekly"))
    print(f"\ningest / floor: {ingest / floor:.2f}x (target <= {TARGET_FLOOR:g}x)")
    print(f"whole path (ingest + detect + weekly): {path:.2f} s")
    if "goaccess" in medians:
        peer = medians["goaccess"].seconds
        print(f"goaccess / whole path: {peer / path:.2f}x (target >= {TARGET_PEER:g}x)")
    else:
        print("goaccess not installed (apt-get install goaccess): no peer comparison")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
