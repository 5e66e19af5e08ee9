"""Making tenants and credentials of the kinds a gateway serves (used by synth/scenarios.py)."""

from __future__ import annotations

import hashlib
import random

from forensics.synth.world import (
    CHEAP_CHAT,
    Credential,
    Network,
    Networks,
    Tenant,
    tenant_names,
    uid,
    zone,
)

SERVER_AGENTS = (
    "OpenAI/Python 1.58.1",
    "AsyncOpenAI/Python 1.58.1",
    "OpenAI/JS 4.73.1",
    "langchain-openai/0.2.14",
    "python-httpx/0.27.2",
    "Go-http-client/2.0",
)
DEVELOPER_AGENTS = ("OpenAI/Python 1.54.4", "curl/8.5.0", "OpenAI/JS 4.70.0")
BROWSER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like"
    " Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
)
SCRIPT_AGENTS = ("python-requests/2.32.3", "aiohttp/3.9.5", "curl/8.5.0", "Go-http-client/1.1")

_SYSTEM_PROMPTS = (
    "You are the support assistant of {org}. Answer briefly and cite the help-centre article.",
    "You are a coding assistant at {org}. Reply with working code and one line of explanation.",
    "You write SQL for {org}'s analysts. Return one query and state your assumptions.",
    "Classify {org} tickets as billing, technical, account or other. Reply in JSON.",
    "Draft replies to {org} sales leads in under 120 words with one clear next step.",
)
_CLOUD_NEAR = {"US": "US", "GB": "IE", "FR": "IE", "DE": "DE", "JP": "JP", "AU": "SG"}


class Casting:
    """Hands out tenants and credentials; remembers them for the writers and the labels."""

    def __init__(self, rng: random.Random, nets: Networks, names: int) -> None:
        self.rng = rng
        self.nets = nets
        self._names = tenant_names(rng, names)
        self.tenants: list[Tenant] = []

    def tenant(self, role: str = "background", country: str | None = None) -> Tenant:
        offset, home = zone(self.rng)
        if country is not None:
            home = country
            offset = {"US": -5, "GB": 0, "DE": 1, "JP": 9, "AU": 10, "BR": -3}.get(country, 0)
        name = self._names[len(self.tenants)]
        t = Tenant(
            name=name,
            consumer_id=uid(self.rng),
            utc_offset=offset,
            country=home,
            project=f"proj_{self.rng.getrandbits(40):010x}",
            role=role,
        )
        self.tenants.append(t)
        return t

    def cloud(self, country: str) -> Network:
        want = _CLOUD_NEAR.get(country, "US")
        nets = [n for n in self.nets.clouds if n.country == want] or self.nets.clouds
        return self.rng.choice(nets)

    def isp(self, country: str) -> Network:
        return self.nets.isps.get(country) or self.nets.isps["US"]

    def credential(
        self,
        tenant: Tenant,
        kind: str = "server",
        *,
        daily: float | None = None,
        models: list[str] | None = None,
        gateway: str = "kong",
        **habits: object,
    ) -> Credential:
        """A credential of `tenant` used from the places its `kind` implies.

        server: one /24 of a cloud region near the tenant; developer: the home ISP; office:
        enterprise egress exits in several countries; mobile: many carrier addresses; relay:
        privacy-relay exits.
        """
        rng = self.rng
        if kind == "server":
            net = self.cloud(tenant.country)
            networks, ips = [net], net.slash24(rng)
        elif kind == "developer":
            net = self.isp(tenant.country)
            networks, ips = [net], [net.address(rng) for _ in range(rng.randint(1, 2))]
        elif kind == "office":
            networks = rng.sample(self.nets.egress, 3)
            ips = [n.address(rng) for n in networks for _ in range(2)]
        elif kind == "mobile":
            networks = [self.nets.mobile]
            ips = [self.nets.mobile.address(rng) for _ in range(60)]
        elif kind == "relay":
            networks = list(self.nets.relay)
            ips = [n.address(rng) for n in networks for _ in range(3)]
        else:
            raise ValueError(f"unknown credential kind {kind!r}")
        if models is None:
            chosen = rng.sample(CHEAP_CHAT, rng.randint(1, 2))
            if rng.random() < 0.25:
                chosen.append("text-embedding-3-small")
            models = chosen
        weights = [1.0] + [rng.uniform(0.3, 0.8) for _ in models[1:]]
        agent = {
            "server": rng.choice(SERVER_AGENTS),
            "developer": rng.choice(DEVELOPER_AGENTS),
            "office": rng.choice(SERVER_AGENTS),
            "mobile": "AcmeField/3.4.1 (Android 14; okhttp/4.12.0)",
            "relay": rng.choice(DEVELOPER_AGENTS),
        }[kind]
        if gateway == "litellm":
            ident = hashlib.sha256(f"sk-litellm-{rng.getrandbits(128):x}".encode()).hexdigest()
        else:
            ident = uid(rng)
        org = tenant.name.removeprefix("tenant-").title()
        cred = Credential(
            id=ident,
            tenant=tenant,
            kind=kind,
            ips=ips,
            networks=networks,
            user_agent=agent,
            models=models,
            model_weights=weights,
            daily=daily if daily is not None else rng.lognormvariate(4.1, 0.6),
            stream_share=rng.choice((0.0, 0.2, 0.5)),
            tool_share=rng.choice((0.0, 0.0, 0.1)),
            error_shares={
                "rate_limited": 0.006,
                "upstream_429": 0.003,
                "invalid": 0.003,
                "server": 0.002,
            },
            gateway=gateway,
            users=[f"user-{rng.getrandbits(32):08x}" for _ in range(rng.randint(1, 30))],
            system_prompt=rng.choice(_SYSTEM_PROMPTS).format(org=org),
        )
        for name, value in habits.items():
            if not hasattr(cred, name):
                raise AttributeError(f"a credential has no habit {name!r}")
            setattr(cred, name, value)
        tenant.credentials.append(cred)
        return cred
