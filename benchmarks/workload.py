"""The benchmarks' input: the Kong log of a `forensics synth` world, with full payloads.

    python benchmarks/workload.py --lines 10000 -o /tmp/kong.jsonl --iptoasn /tmp/ip2asn.tsv

There is no second generator here. The world is `forensics.synth.build` (seeded tenants,
credentials, scenarios and look-alikes, ordinary traffic), the records are synth's own Kong
writer (`forensics.synth.gateway_logs.write_kong`) with `full_payloads=True`, and the iptoasn
table is the one synth writes for the same world. What this module adds is the size: the world
gets as many ordinary tenants as it takes to have at least `lines` Kong calls, then a seeded
sample of exactly `lines` of them (kept in time order) is written.

`generate` caches both files in benchmarks/out/ (gitignored) under a name that holds the
parameters and a digest of the synth sources, so a change to synth writes a new file.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import forensics.synth
from forensics.synth import SynthConfig, build
from forensics.synth.files import iptoasn_lines, write_lines
from forensics.synth.gateway_logs import kong_calls, write_kong
from forensics.synth.scenarios import World
from forensics.synth.traffic import Call

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
_PROBE_TENANTS = 100


@dataclass(frozen=True)
class Workload:
    """`lines` Kong records over `days` whole UTC days from synth's default start."""

    lines: int
    days: int = 1
    seed: int = 1

    def stem(self) -> str:
        return f"kong-synth-{self.lines}l-{self.days}d-s{self.seed}-{_sources_digest()}"


def _sources_digest() -> str:
    """A digest of everything that decides the files: the synth package and this module."""
    digest = hashlib.sha256()
    for path in sorted(Path(forensics.synth.__file__).parent.glob("*.py")) + [Path(__file__)]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:10]


def _kong_count(days: int, tenants: int, seed: int) -> int:
    return len(kong_calls(build(SynthConfig(days=days, tenants=tenants, seed=seed)).calls))


def kong_world(w: Workload) -> tuple[World, list[Call]]:
    """A synth world with at least `w.lines` Kong calls, and exactly `w.lines` of them.

    The tenant count comes from two small probes (the scenarios' calls, and the calls of
    `_PROBE_TENANTS` ordinary tenants), with 10 % to spare; a short world is rebuilt larger.
    """
    base = _kong_count(w.days, 0, w.seed)
    per_tenant = (_kong_count(w.days, _PROBE_TENANTS, w.seed) - base) / _PROBE_TENANTS
    tenants = max(0, math.ceil((w.lines - base) / per_tenant * 1.1))
    while True:
        world = build(SynthConfig(days=w.days, tenants=tenants, seed=w.seed))
        calls = kong_calls(world.calls)
        if len(calls) >= w.lines:
            break
        tenants = math.ceil(tenants * 1.25) + 10
    keep = sorted(random.Random(w.seed).sample(range(len(calls)), w.lines))
    return world, [calls[i] for i in keep]


def write(w: Workload, log: Path, iptoasn: Path | None = None) -> int:
    """Write the workload's Kong log (and its iptoasn table); the number of lines."""
    world, calls = kong_world(w)
    written = write_kong(log, random.Random(w.seed), calls, full_payloads=True)
    if iptoasn is not None:
        write_lines(iptoasn, iptoasn_lines(world.nets.plan.networks))
    return written


def generate(w: Workload) -> tuple[Path, Path]:
    """The log and its iptoasn TSV in benchmarks/out/, written once per parameter set."""
    OUT.mkdir(parents=True, exist_ok=True)
    log, tsv = OUT / f"{w.stem()}.jsonl", OUT / f"{w.stem()}.ip2asn.tsv"
    if not (log.exists() and tsv.exists()):
        print(f"generating {log.name} ({w.lines:,} lines) ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        parts = log.with_suffix(".partial"), tsv.with_suffix(".partial")
        n = write(w, *parts)
        parts[0].rename(log)
        parts[1].rename(tsv)
        print(
            f"  {n:,} lines, {log.stat().st_size / 1e6:,.0f} MB"
            f" in {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )
    return log, tsv


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=10_000)
    p.add_argument("--days", type=int, default=1, help="whole UTC days from 2026-11-16")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("-o", "--output", type=Path, required=True, help=".jsonl, .jsonl.gz or .zst")
    p.add_argument("--iptoasn", type=Path, help="also write the world's iptoasn TSV here")
    a = p.parse_args(argv)
    n = write(Workload(a.lines, a.days, a.seed), a.output, a.iptoasn)
    print(f"{a.output}: {n:,} lines, {a.output.stat().st_size / 1e6:,.1f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
