"""Stealthier variants of the abuse scenarios, for `forensics synth --hard`.

Each replaces the default scenario of the same name and labels the same detector, but hides
better: it spreads over more time, stays nearer the detectors' thresholds or grows slowly, the
way a careful abuser would. The pack is not expected to find every one of them; `make eval`
measures how many it does and lists the misses with the variant's note as their reason.

Every label note starts with "hard:" and says what was drawn, so a miss explains itself.
"""

from __future__ import annotations

from collections.abc import Callable

from forensics.synth.cast import BROWSER_AGENTS, SCRIPT_AGENTS
from forensics.synth.scenarios import (
    DAY,
    HARVEST_TEMPLATES,
    HOUR,
    PROBES,
    World,
    client_key_traffic,
    end_user_addresses,
    harvest,
)
from forensics.synth.traffic import make_call, words
from forensics.synth.world import MODELS


def scraping_slow(w: World) -> None:
    """Templated harvesting spread over most of a day from a few addresses (low and slow)."""
    rng = w.rng
    tenant = w.cast.tenant("abuse")
    cred = w.cast.credential(tenant, "server", models=["gpt-4o-mini"], daily=rng.uniform(20, 60))
    w.usual(cred)
    hours = rng.uniform(8, 20)
    t0 = w.at(rng.randrange(w.days), rng.uniform(0, 24 - hours))
    count = rng.randint(1500, 4000)
    templates = [HARVEST_TEMPLATES[0]]
    # a hosting network of its own: careful abusers do not share infrastructure with others
    vps = w.nets.plan.small("vps", rng.choice(("NL", "US", "DE", "RO")))
    ips = [vps.address(rng) for _ in range(rng.randint(1, 3))]
    agent = rng.choice(SCRIPT_AGENTS)
    times = sorted(t0 + rng.uniform(0, hours * HOUR) for _ in range(count))
    harvest(w, cred, times, templates, ips, agent)
    w.label_credential(
        "scraping",
        "scraping.near_duplicate_prompts",
        cred,
        times[0],
        times[-1],
        f"hard: {count} templated prompts over {hours:.1f} h from {len(ips)} address(es)",
    )


def error_mapping_slow(w: World) -> None:
    """Safety-filter probing spread over several days, a few dozen prompts a day."""
    rng = w.rng
    tenant = w.cast.tenant("abuse")
    cred = w.cast.credential(tenant, "developer", models=["gpt-4o-azure"], daily=15)
    w.usual(cred)
    days = min(w.days, rng.randint(2, 5))
    first = rng.randrange(w.days - days + 1)
    share = rng.uniform(0.4, 0.8)
    times = sorted(
        w.at(day, rng.uniform(0, 23.9))
        for day in range(first, first + days)
        for _ in range(rng.randint(40, 90))
    )
    for ts in times:
        prompt = rng.choice(PROBES).format(w=words(rng, 3, 9))
        outcome = "content_filter" if rng.random() < share else "ok"
        w.calls.append(make_call(rng, cred, ts, prompt=prompt, outcome=outcome))
    w.label_credential(
        "error_mapping",
        "probing.error_mapping",
        cred,
        times[0],
        times[-1],
        f"hard: {len(times)} probing prompts over {days} days, ~{share:.0%} blocked",
    )


def endpoint_shift_slow(w: World) -> None:
    """A chat tenant whose embeddings resale grows a little every day instead of overnight."""
    rng = w.rng
    tenant = w.cast.tenant("abuse")
    base = rng.uniform(40, 120)
    cred = w.cast.credential(tenant, "server", daily=base, models=["gpt-4o-mini", "gpt-4o"])
    start_day = rng.randint(3, max(3, w.days - 3))
    w.usual(cred)
    final = rng.uniform(6, 20)
    model = MODELS["text-embedding-3-small"]
    ip = w.nets.plan.small("vps", rng.choice(("NL", "US", "DE", "RO"))).address(rng)
    span = max(1, w.days - start_day)
    for day in range(start_day, w.days):
        ratio = 1 + (final - 1) * (day - start_day + 1) / span
        for _ in range(int(base * ratio)):
            ts = w.at(day, rng.uniform(0, 24))
            w.calls.append(make_call(rng, cred, ts, model=model, ip=ip, stream=False))
    w.label(
        "endpoint_shift",
        "resale.endpoint_shift",
        "tenant",
        tenant.name,
        tenant,
        w.at(start_day),
        w.at(w.days),
        f"hard: embeddings growing from ~{base:.0f}/day to {final:.0f}x over {span} days",
    )


def browser_exposed_small(w: World) -> None:
    """A web key whose audience is small: a handful of customers on one national ISP."""
    rng = w.rng
    tenant = w.cast.tenant("abuse")
    cred = w.cast.credential(tenant, "server", daily=rng.uniform(15, 40))
    cred.origin = f"https://shop.{tenant.name.removeprefix('tenant-')}.example"
    home = rng.choice(list(w.nets.isps.values()))
    users = end_user_addresses(w, [home], rng.randint(7, 14))
    client_key_traffic(
        w, "browser_exposed", cred, users, list(BROWSER_AGENTS),
        f"hard: browser calls from only {len(users)} customers of one ISP ({home.country})",
    )  # fmt: skip


def residential_proxy_slow(w: World) -> None:
    """A proxy-pool replay thinned out over several hours, fewer exits, some reused."""
    rng = w.rng
    tenant = w.cast.tenant("abuse")
    cred = w.cast.credential(tenant, "server", daily=rng.uniform(30, 120))
    w.usual(cred)
    start = w.at(rng.randrange(w.days), rng.uniform(0, 20))
    hours = rng.uniform(3, 10)
    pool = rng.sample(list(w.nets.isps.values()) + w.nets.proxies, rng.randint(5, 9))
    agent = rng.choice(SCRIPT_AGENTS)
    times = sorted(start + rng.uniform(0, hours * HOUR) for _ in range(rng.randint(40, 120)))
    address = ""
    for ts in times:
        if not address or rng.random() < 0.6:
            address = rng.choice(pool).address(rng)
        call = make_call(rng, cred, ts, ip=address, stream=False)
        call.user_agent = agent
        w.calls.append(call)
    w.label_credential(
        "residential_proxy",
        "credential.residential_proxy",
        cred,
        times[0],
        min(times[-1], start + DAY),
        f"hard: {len(times)} requests through {len(pool)} ISPs over {hours:.1f} h",
    )


# scenario name -> (the stealthier variant, fewest days it needs); replaces the default one
HARD_SCENARIOS: dict[str, tuple[Callable[[World], None], int]] = {
    "scraping": (scraping_slow, 1),
    "error_mapping": (error_mapping_slow, 2),
    "endpoint_shift": (endpoint_shift_slow, 6),
    "browser_exposed": (browser_exposed_small, 1),
    "residential_proxy": (residential_proxy_slow, 1),
}
