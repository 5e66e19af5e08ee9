"""`forensics synth`: a labelled synthetic world in the formats forensics reads.

    world = synthesize(Path("world"), SynthConfig(days=7, tenants=50, seed=1))

writes::

    world/logs/kong.jsonl                    Kong file-log lines with AI Proxy payloads
    world/logs/litellm_spend.jsonl           LiteLLM spend rows of the teams on LiteLLM
    world/logs/access.log                    nginx combined log of the gateway host
    world/logs/openai_usage_completions.jsonl, openai_usage_embeddings.jsonl
                                             OpenAI Usage API pages (1h buckets)
    world/logs/anthropic_usage.jsonl         Anthropic messages usage report pages (1h)
    world/logs/revocations.csv, retired_keys.csv, key_inventory.csv
    world/ip2asn-v4.tsv                      iptoasn.com table of every address used
    world/labels.csv                         the scenarios: detector, principal, window

Load it with ``forensics ingest --asn-db world/ip2asn-v4.tsv world/logs``, run ``forensics
detect`` and score the findings with ``forensics evaluate world/labels.csv``.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from pathlib import Path

from forensics.evaluate import LABEL_COLUMNS
from forensics.synth.account_scenarios import ACCOUNT_SCENARIOS
from forensics.synth.cast import Casting
from forensics.synth.files import iptoasn_lines, write_csv, write_lines
from forensics.synth.gateway_logs import kong_calls, nginx_lines, write_kong, write_litellm
from forensics.synth.hard_scenarios import HARD_SCENARIOS
from forensics.synth.inventory_scenarios import INVENTORY_SCENARIOS, KEYS_HEADER, key_rows
from forensics.synth.provider_usage import Key, anthropic_pages, openai_pages, usage_sums
from forensics.synth.recon_scenarios import RECON_SCENARIOS, recon_lookalikes
from forensics.synth.scenarios import SCENARIOS, Label, World, lookalikes, ordinary
from forensics.synth.traffic import Call
from forensics.synth.world import Networks, ip_text

DEFAULT_START = dt.datetime(2026, 11, 16, tzinfo=dt.UTC)  # a Monday


@dataclass(frozen=True)
class SynthConfig:
    days: int = 7
    tenants: int = 50  # ordinary tenants; scenarios and look-alikes bring their own
    seed: int = 1
    start: dt.datetime = DEFAULT_START
    compress: str = ""  # "", ".gz" or ".zst": suffix added to the big logs
    hard: bool = False  # stealthier variants of some scenarios (synth/hard_scenarios.py)


@dataclass
class SynthSummary:
    """What was written: file -> records, the labels, the scenarios left out."""

    files: dict[str, int] = field(default_factory=dict)
    labels: list[Label] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    tenants: int = 0


def build(config: SynthConfig) -> World:
    """The world in memory: calls, labels and reference rows, all from `config.seed`."""
    if config.days < 1:
        raise ValueError("a world needs at least one day")
    rng = random.Random(config.seed)
    start = config.start.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    nets = Networks.build(rng)
    cast = Casting(rng, nets, names=config.tenants + 120)
    world = World(rng, start.timestamp(), config.days, nets, cast)
    scenarios = {**SCENARIOS, **INVENTORY_SCENARIOS, **ACCOUNT_SCENARIOS, **RECON_SCENARIOS}
    if config.hard:
        scenarios.update(HARD_SCENARIOS)
    for name, (make, min_days) in scenarios.items():
        if config.days < min_days:
            world.skipped.append(name)
            continue
        make(world)
    lookalikes(world)
    recon_lookalikes(world)
    ordinary(world, config.tenants)
    world.calls.sort(key=lambda c: c.ts)
    end = world.at(config.days)
    world.calls = [c for c in world.calls if world.start <= c.ts < end]
    return world


def _keys(rng: random.Random, provider: str) -> tuple[dict[str, Key], dict[str, Key]]:
    """The gateway's provider keys: one for Kong, one for LiteLLM (by tenant name, "*")."""
    prefix = "key_" if provider == "openai" else "apikey_01"
    project = "proj_" if provider == "openai" else "wrkspc_01"
    kong = Key(f"{prefix}{rng.getrandbits(48):012x}", f"{project}gateway")
    litellm = Key(f"{prefix}{rng.getrandbits(48):012x}", f"{project}internal")
    return {"*": kong}, {"*": litellm}


def synthesize(out: Path, config: SynthConfig) -> SynthSummary:
    """Build the world of `config` and write it under `out` (see the module docstring)."""
    world = build(config)
    rng = random.Random(config.seed * 7 + 3)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    summary = SynthSummary(skipped=list(world.skipped), tenants=len(world.cast.tenants))
    kong = kong_calls(world.calls)
    lite_calls = [c for c in world.calls if c.cred is not None and c.cred.gateway == "litellm"]
    files = summary.files
    z = config.compress
    files[f"logs/kong.jsonl{z}"] = write_kong(logs / f"kong.jsonl{z}", rng, kong)
    if lite_calls:
        files[f"logs/litellm_spend.jsonl{z}"] = write_litellm(
            logs / f"litellm_spend.jsonl{z}", rng, lite_calls
        )
    visitors = [n.address(rng) for n in world.nets.isps.values() for _ in range(8)]
    files[f"logs/access.log{z}"] = write_lines(
        logs / f"access.log{z}",
        nginx_lines(rng, world.start, config.days, visitors, ip_text((10 << 24) + 0x0311)),
    )
    for provider in ("openai", "anthropic"):
        kong_key, lite_key = _keys(rng, provider)
        extra = world.openai_extra if provider == "openai" else []
        sums = usage_sums(kong, provider, kong_key, extra)
        for key, value in usage_sums(lite_calls, provider, lite_key).items():
            sums[key] = value
        if provider == "openai":
            for endpoint, name in (("chat", "completions"), ("embeddings", "embeddings")):
                path = f"logs/openai_usage_{name}.jsonl"
                files[path] = write_lines(
                    out / path, openai_pages(sums, endpoint, world.start, config.days)
                )
        else:
            path = "logs/anthropic_usage.jsonl"
            files[path] = write_lines(out / path, anthropic_pages(sums, world.start, config.days))
    files["logs/revocations.csv"] = write_csv(
        logs / "revocations.csv",
        ["credential_id", "revoked_at"],
        ([cred, _time(ts)] for cred, ts in world.revocations),
    )
    if world.retired_keys:
        files["logs/retired_keys.csv"] = write_csv(
            logs / "retired_keys.csv",
            ["issuer", "key_id", "retired_at", "reason"],
            ([iss, kid, _time(ts), why] for iss, kid, ts, why in world.retired_keys),
        )
    files["logs/key_inventory.csv"] = write_csv(
        logs / "key_inventory.csv", KEYS_HEADER, key_rows(world, rng)
    )
    files["ip2asn-v4.tsv"] = write_lines(
        out / "ip2asn-v4.tsv", iptoasn_lines(world.nets.plan.networks)
    )
    summary.labels = sorted(world.labels, key=lambda lb: (lb.detector, lb.window_start))
    files["labels.csv"] = write_csv(
        out / "labels.csv",
        list(LABEL_COLUMNS),
        (
            [
                lb.scenario,
                lb.detector,
                lb.principal_type,
                lb.principal_id,
                lb.tenant_id,
                _time(lb.window_start),
                _time(lb.window_end),
                lb.note,
            ]
            for lb in summary.labels
        ),
    )
    return summary


def _time(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


__all__ = ["Call", "SynthConfig", "SynthSummary", "build", "synthesize"]
