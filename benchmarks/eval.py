"""The detector pack against many synthetic worlds: recall, false positives and every miss.

For each seed and mode (default worlds, and `--hard` worlds with stealthier variants), this
writes a world with `forensics synth`, ingests it, runs `forensics detect` and scores the run
with `forensics evaluate --format json`, each as its own process, two worlds at a time. It then
prints one table per mode (per detector: labels, found, recall, false positives at medium or
above) and the misses with their reason (the scenario's own note says what was drawn), and with
`--write` puts them into benchmarks/README.md between the `eval` markers.

    make eval                                         # seeds 1-20, both modes, --write
    .venv/bin/python benchmarks/eval.py --seeds 3     # quicker: seeds 1-3

Exit status 1 when a default world misses a label or any world has a false positive at medium
or above, or when the hard worlds' recall is below 90 %: the acceptance of "Detection v2".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "benchmarks" / "README.md"
BEGIN, END = "<!-- eval:begin -->", "<!-- eval:end -->"
HARD_RECALL = 0.9


@dataclass
class Tally:
    labels: int = 0
    found: int = 0
    false: int = 0


@dataclass
class ModeResult:
    mode: str
    seeds: int = 0
    detectors: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    misses: list[str] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)

    @property
    def labels(self) -> int:
        return sum(t.labels for t in self.detectors.values())

    @property
    def found(self) -> int:
        return sum(t.found for t in self.detectors.values())


def forensics(*args: str | Path | int) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "forensics", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, 1):  # evaluate exits 1 on its own thresholds only
        raise RuntimeError(f"forensics {' '.join(map(str, args))}: {done.stderr.strip()}")
    return done.stdout


def one_world(work: Path, seed: int, *, hard: bool, days: int, tenants: int) -> dict[str, object]:
    name = f"{'hard' if hard else 'default'}-{seed}"
    world, case = work / name, work / f"{name}.duckdb"
    forensics("synth", "-o", world, "--days", days, "--tenants", tenants, "--seed", seed,
              *(["--hard"] if hard else []))  # fmt: skip
    forensics("--db", case, "ingest", "-q", "--asn-db", world / "ip2asn-v4.tsv", world / "logs")
    forensics("--db", case, "detect")
    doc: dict[str, object] = json.loads(
        forensics("--db", case, "evaluate", world / "labels.csv", "--format", "json")
    )
    doc["seed"] = seed
    case.unlink()
    return doc


def tally(mode: str, docs: list[dict[str, object]]) -> ModeResult:
    result = ModeResult(mode, seeds=len(docs))
    for doc in sorted(docs, key=lambda d: int(str(d["seed"]))):
        for d in doc["detectors"]:  # type: ignore[attr-defined]
            if d["detector_id"] == "(all)":
                continue
            t = result.detectors[d["detector_id"]]
            t.labels += d["labels"]
            t.found += d["found"]
            t.false += d["false_findings"]
        for m in doc["missed"]:  # type: ignore[attr-defined]
            result.misses.append(
                f"seed {doc['seed']}: `{m['detector_id']}` missed {m['principal_type']}"
                f" {m['principal_id']} ({m['scenario']}): {m['note']}"
            )
        for f in doc["false_positives"]:  # type: ignore[attr-defined]
            result.false_positives.append(
                f"seed {doc['seed']}: `{f['detector_id']}` {f['severity']} on"
                f" {f['principal_type']} {f['principal_id']}"
            )
    return result


def markdown(results: list[ModeResult], seconds: float, days: int, tenants: int) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores in {seconds / 60:.0f}"
        f" min: worlds of {days} days and {tenants} ordinary tenants, seeds"
        f" 1-{results[0].seeds}, by `make eval` (benchmarks/eval.py).",
        "",
    ]
    for r in results:
        recall = r.found / r.labels if r.labels else 0.0
        lines += [
            f"**{r.mode} worlds**: {r.found} of {r.labels} labels found ({recall:.1%}),"
            f" {len(r.false_positives)} false positives at medium or above.",
            "",
            "| detector | labels | found | recall | false positives |",
            "|---|---:|---:|---:|---:|",
        ]
        for det, t in sorted(r.detectors.items()):
            share = f"{t.found / t.labels:.0%}" if t.labels else "-"
            lines.append(f"| `{det}` | {t.labels} | {t.found} | {share} | {t.false} |")
        lines.append("")
        if r.misses:
            lines += ["Misses, each with the scenario's note as its reason:", ""]
            lines += [f"- {m}" for m in r.misses]
            lines.append("")
        if r.false_positives:
            lines += ["False positives:", ""] + [f"- {f}" for f in r.false_positives] + [""]
    return "\n".join(lines)


def write_readme(text: str) -> None:
    readme = README.read_text(encoding="utf-8")
    if BEGIN not in readme:
        readme += f"\n## Detection quality (`eval.py`)\n\n{BEGIN}\n{END}\n"
    head, rest = readme.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    README.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds 1..N (default 20)")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2, help="worlds built at once")
    parser.add_argument("--write", action="store_true", help="update benchmarks/README.md")
    args = parser.parse_args()
    started = time.monotonic()
    results = []
    with tempfile.TemporaryDirectory(prefix="forensics-eval-") as tmp:
        for hard in (False, True):
            with ThreadPoolExecutor(args.jobs) as pool:
                build = partial(
                    one_world, Path(tmp), hard=hard, days=args.days, tenants=args.tenants
                )
                docs = list(pool.map(build, range(1, args.seeds + 1)))
            results.append(tally("hard" if hard else "default", docs))
            print(f"{results[-1].mode}: {results[-1].found}/{results[-1].labels}", flush=True)
    text = markdown(results, time.monotonic() - started, args.days, args.tenants)
    print(text)
    if args.write:
        write_readme(text)
    default, hard_r = results
    ok = (
        default.found == default.labels
        and not default.false_positives
        and not hard_r.false_positives
        and hard_r.found >= HARD_RECALL * hard_r.labels
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
