"""Quota replay: its speed against one wide scan, and the suggested policy on labelled worlds.

    .venv/bin/python benchmarks/quota.py --speed               # 1M and 10M requests
    .venv/bin/python benchmarks/quota.py --speed --rows 1000000
    .venv/bin/python benchmarks/quota.py --accept --seeds 5    # seeds 1-5
    make bench-quota                                           # both, --write

Speed: the cases of the detection benchmark (benchmarks/detect.py builds them in
benchmarks/out/: a synth week copied until `requests` has the wanted rows), each size in fresh
processes, the median of --repeat runs:

  wide scan  count(DISTINCT hash(...)) over every requests column a replay reads
  replay     forensics.quota.replay.replay of POLICY below: three rules, two token buckets per
             credential (requests, output tokens) and one per tenant (cost)

Acceptance: for each seed, a default world (`forensics synth`, 7 days, 50 ordinary tenants) is
ingested and detected, `forensics quota suggest` fits a policy, and `forensics quota replay
--view scenarios --labels` scores it: the share of each abuse scenario's cost blocked (target
>= 90 % for scraping, resale, cost amplification and window-edge gaming) and of the unlabelled
requests refused (target < 0.5 %), beside the fixed-window twin. Each step is its own process.
`--write` puts the tables into benchmarks/README.md between the `quota` markers.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
README = HERE / "README.md"
BEGIN, END = "<!-- quota:begin -->", "<!-- quota:end -->"
TARGET_RATIO = 5.0
ABUSE = ("scraping", "endpoint_shift", "concurrency", "model_escalation", "tool_fanout",
         "window_edge")  # fmt: skip

POLICY = """
[[rule]]
id = "requests"
key = "credential"
limit = "requests"
bucket = { rate = 60, per = "minute", burst = 120 }

[[rule]]
id = "output-tokens"
key = "credential"
limit = "output_tokens"
bucket = { rate = 20000, per = "minute", burst = 200000 }

[[rule]]
id = "tenant-cost"
key = "tenant"
limit = "cost_usd"
bucket = { rate = 5, per = "hour", burst = 20 }
"""

WIDE_SCAN = """
SELECT count(DISTINCT hash(ts, tenant_id, credential_id, endpoint, model, stream, input_tokens,
                           output_tokens, est_cost_usd, tool_calls))
FROM requests
"""

MEASURE = r"""
import json, resource, sys, time
from pathlib import Path
from forensics.case import db
from forensics.quota.policy import load_policy
from forensics.quota.replay import replay
con = db.connect(sys.argv[1], read_only=True)
policy = load_policy(Path(sys.argv[2]))
t = time.perf_counter(); con.execute(sys.argv[3]).fetchall(); scan = time.perf_counter() - t
t = time.perf_counter(); refused = replay(con, policy); seconds = time.perf_counter() - t
rows = con.execute("SELECT count(*) FROM requests").fetchall()[0][0]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"rows": rows, "scan": scan, "replay": seconds, "refused": refused, "rss": rss}))
"""


def speed(rows: list[int], repeat: int) -> list[str]:
    lines = ["| requests | wide scan | replay | ratio (target <= 5x) | refused | peak RSS |",
             "|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.toml"
        policy.write_text(POLICY, encoding="utf-8")
        for n in rows:
            case = HERE / "out" / f"detect-{n}.duckdb"
            if not case.exists():
                subprocess.run([sys.executable, str(HERE / "detect.py"), "--rows", str(n)],
                               check=True, cwd=ROOT)  # fmt: skip
            runs = []
            for _ in range(repeat):
                out = subprocess.run(
                    [sys.executable, "-c", MEASURE, str(case), str(policy), WIDE_SCAN],
                    check=True, capture_output=True, text=True, cwd=ROOT,
                )  # fmt: skip
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            scan = statistics.median(r["scan"] for r in runs)
            took = statistics.median(r["replay"] for r in runs)
            rss = max(r["rss"] for r in runs) / 2**30
            lines.append(
                f"| {runs[0]['rows']:,} | {scan:.2f} s | {took:.2f} s | {took / scan:.1f}x"
                f" | {runs[0]['refused']:,} | {rss:.2f} GiB |"
            )
            print(lines[-1], flush=True)
    return lines


def forensics(*args: str | Path | int) -> str:
    done = subprocess.run([sys.executable, "-m", "forensics", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"forensics {' '.join(map(str, args))}: {done.stderr.strip()}")
    return done.stdout


def accept(seeds: int, work: Path) -> tuple[list[str], bool]:
    head = ["seed", *ABUSE, "unlabelled refused"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    passed = True
    for seed in range(1, seeds + 1):
        world, case = work / f"world-{seed}", work / f"world-{seed}.duckdb"
        if not case.exists():
            forensics("synth", "-o", world, "--seed", seed)
            forensics("--db", case, "ingest", "-q", "--asn-db", world / "ip2asn-v4.tsv",
                      world / "logs")  # fmt: skip
            forensics("--db", case, "detect")
        policy = work / f"policy-{seed}.toml"
        forensics("--db", case, "quota", "suggest", "-o", policy)
        out = forensics("--db", case, "quota", "replay", policy, "--view", "scenarios",
                        "--labels", world / "labels.csv", "--format", "csv")  # fmt: skip
        rows = {r["scenario"]: r for r in csv.DictReader(io.StringIO(out))}
        cells = [str(seed)]
        for scenario in ABUSE:
            row = rows.get(scenario)
            if row is None:
                cells.append("–")
                continue
            blocked = float(row["cost_blocked_pct"] or 0)
            passed &= blocked >= 90
            cells.append(f"{blocked:.1f} % ({float(row['window_cost_blocked_pct'] or 0):.1f} %)")
        legit = rows["(no label)"]
        passed &= float(legit["refused_pct"]) < 0.5
        cells.append(
            f"{float(legit['refused_pct']):.3f} % ({float(legit['window_refused_pct']):.3f} %)"
        )
        lines.append("| " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines, passed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--speed", action="store_true")
    p.add_argument("--rows", type=int, action="append")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--accept", action="store_true")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--workdir", type=Path, default=HERE / "out" / "quota")
    p.add_argument("--write", action="store_true", help="put the tables into benchmarks/README.md")
    a = p.parse_args()
    started = time.time()
    text: list[str] = []
    ok = True
    if a.speed:
        sizes = a.rows or [1_000_000, 10_000_000]
        text += [f"Replay of the three-rule policy in quota.py (median of {a.repeat}):", "",
                 *speed(sizes, a.repeat), ""]  # fmt: skip
    if a.accept:
        a.workdir.mkdir(parents=True, exist_ok=True)
        lines, ok = accept(a.seeds, a.workdir)
        text += ["The suggested policy on default worlds (7 days, 50 ordinary tenants): cost"
                 " blocked per scenario and unlabelled requests refused, the fixed-window twin in"
                 " brackets:", "", *lines, ""]  # fmt: skip
    if a.write and text:
        stamp = time.strftime("%Y-%m-%d")
        block = [BEGIN, f"Measured {stamp} on 2 cores in {(time.time() - started) / 60:.0f} min"
                 " by `make bench-quota`.", "", *text, END]  # fmt: skip
        readme = README.read_text(encoding="utf-8")
        if BEGIN in readme:
            head, rest = readme.split(BEGIN, 1)
            readme = head + "\n".join(block) + rest.split(END, 1)[1]
        else:
            readme += "\n## Quota replay (`quota.py`)\n\n" + "\n".join(block) + "\n"
        README.write_text(readme, encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
