"""The key inventory of a synthetic world, and the scenario `credential.stale_or_unknown_key`
must find in it.

`key_rows` lists every API key of the world (Kong key-auth credentials and LiteLLM
virtual keys; JWT credentials are not in a key inventory) with its owner, creation time and
expiry: most keys made weeks before the world starts, a few older than the 90-day rotation
policy (stale: a low finding, never a false positive at medium), some with an expiry far ahead.
A key named in `World.key_inventory` gets the row given there instead, or none.

The scenario draws one of three shapes, each with a label on the key:

* unknown: a key that key management never issued (an admin's test key, a key added to the
  gateway by hand) replayed by a script from a small hosting network;
* expired: a deployment that keeps using its key after the expiry the inventory records, and
  the gateway keeps accepting it;
* wrong_tenant: a key the inventory gives to one tenant, used through another tenant's
  consumer (a key handed over or resold).

And the look-alikes it must not punish: a tenant onboarded during the world (its key made just
before its first request) and a key rotated on schedule (the old one retired at 80 to 89 days
old, the new one made an hour before the switch).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator

from forensics.synth.cast import SCRIPT_AGENTS
from forensics.synth.scenarios import DAY, HOUR, World
from forensics.synth.traffic import background, make_call
from forensics.synth.world import MODELS, Credential

DETECTOR = "credential.stale_or_unknown_key"
KEYS_HEADER = ["credential_id", "owner_tenant", "created_at", "expires_at", "scopes", "label"]
STALE_SHARE = 0.05  # ordinary keys older than the rotation policy


def stale_or_unknown_key(w: World) -> None:
    """One key the inventory contradicts (unknown, expired or another tenant's), labelled; a
    tenant onboarded during the world and a key rotated on schedule, not labelled."""
    rng = w.rng
    variant = rng.choice(("unknown", "expired", "wrong_tenant"))
    tenant = w.cast.tenant("abuse")
    cred = w.cast.credential(tenant, "server", daily=rng.uniform(30, 90))
    day = rng.randrange(w.days)
    if variant == "unknown":
        w.key_inventory[cred.id] = None
        ip = rng.choice(w.nets.vps).address(rng)
        t0 = w.at(day, rng.uniform(0, 16))
        span = rng.uniform(1, 6) * HOUR
        times = sorted(t0 + rng.uniform(0, span) for _ in range(rng.randint(20, 150)))
        for ts in times:
            call = make_call(rng, cred, ts, ip=ip, outcome="ok")
            call.user_agent = rng.choice(SCRIPT_AGENTS)
            w.calls.append(call)
        note = f"a key the inventory does not list: {len(times)} requests from a VPS"
    elif variant == "expired":
        expires = w.at(day, rng.uniform(0, 14))
        created = expires - rng.uniform(30, 85) * DAY
        w.key_inventory[cred.id] = (tenant.name, created, expires)
        w.calls += [c for c in background(rng, cred, w.start, w.days) if c.ts < expires]
        after = expires + rng.uniform(0.5, 2) * HOUR
        times = sorted(after + rng.uniform(0, 4 * HOUR) for _ in range(rng.randint(10, 80)))
        w.calls += [make_call(rng, cred, ts, outcome="ok") for ts in times]
        note = f"{len(times)} requests accepted after the key expired"
    else:
        owner = w.cast.tenant("abuse")
        own = w.cast.credential(owner, "server", daily=rng.uniform(30, 90))
        w.usual(own)
        created = w.start - rng.uniform(5, 60) * DAY
        w.key_inventory[own.id] = (owner.name, created, None)
        w.key_inventory[cred.id] = (owner.name, created + rng.uniform(0, 3) * DAY, None)
        t0 = w.at(day, rng.uniform(0, 18))
        times = sorted(t0 + rng.uniform(0, 5 * HOUR) for _ in range(rng.randint(20, 120)))
        w.calls += [make_call(rng, cred, ts, outcome="ok") for ts in times]
        note = f"a key of {owner.name} in the inventory, used by {tenant.name}"
    w.label_credential("stale_or_unknown_key", DETECTOR, cred, times[0], times[-1], note)
    _onboarded(w)
    _rotated(w)


def _onboarded(w: World) -> None:
    """A tenant whose key is made during the world, an hour or less before its first use."""
    rng = w.rng
    tenant = w.cast.tenant("lookalike")
    cred = w.cast.credential(tenant, "server", daily=rng.uniform(40, 120))
    created = w.at(rng.randrange(w.days), rng.uniform(0, 12))
    w.key_inventory[cred.id] = (tenant.name, created, created + 365 * DAY)
    w.calls += [c for c in background(rng, cred, w.start, w.days) if c.ts > created + HOUR]


def _rotated(w: World) -> None:
    """A key retired at 80 to 89 days old, its successor made an hour before the switch."""
    rng = w.rng
    tenant = w.cast.tenant("lookalike")
    old = w.cast.credential(tenant, "server", daily=rng.uniform(40, 120))
    new = w.cast.credential(tenant, "server", daily=old.daily, models=old.models)
    new.ips = old.ips
    switch = w.at(rng.randrange(w.days), rng.uniform(6, 18))
    w.key_inventory[old.id] = (
        tenant.name,
        switch - rng.uniform(80, 89.5) * DAY,
        switch + rng.uniform(1, 24) * HOUR,
    )
    made = switch - rng.uniform(0.5, 2) * HOUR
    w.key_inventory[new.id] = (tenant.name, made, made + 90 * DAY)
    w.calls += [c for c in background(rng, old, w.start, w.days) if c.ts < switch]
    w.calls += [c for c in background(rng, new, w.start, w.days) if c.ts >= switch]


def key_rows(w: World, rng: random.Random) -> Iterator[list[object]]:
    """The rows of the world's key inventory CSV (`KEYS_HEADER`), by tenant and key."""
    end = w.at(w.days)
    for tenant in w.cast.tenants:
        for cred in tenant.credentials:
            if cred.auth != "key":
                continue
            if cred.id in w.key_inventory:
                given = w.key_inventory[cred.id]
                if given is None:
                    continue
                owner, created, expires = given
            else:
                owner = tenant.name
                stale = rng.random() < STALE_SHARE
                age = rng.uniform(100, 400) if stale else rng.uniform(3, 80)
                created = w.start - age * DAY
                expires = created + 365 * DAY if not stale and rng.random() < 0.5 else None
                if expires is not None and expires <= end + 30 * DAY:
                    expires = None
            yield [
                cred.id,
                owner,
                _time(created),
                None if expires is None else _time(expires),
                _scopes(cred),
                f"{tenant.name} {cred.kind} key",
            ]


def _scopes(cred: Credential) -> str:
    endpoints = {MODELS[m].endpoint for m in cred.models}
    return " ".join(sorted(endpoints))


def _time(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


# scenario -> (function, fewest days of data it needs), as scenarios.SCENARIOS
INVENTORY_SCENARIOS: dict[str, tuple[Callable[[World], None], int]] = {
    "stale_or_unknown_key": (stale_or_unknown_key, 1),
}
