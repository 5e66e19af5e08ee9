"""Reconnaissance scenarios and their look-alikes: endpoint enumeration and key testing.

`RECON_SCENARIOS` is registered next to `scenarios.SCENARIOS` by `forensics.synth.build`, and
`recon_lookalikes` runs after `scenarios.lookalikes`. This module imports from `scenarios.py`,
never the other way round.

Raw keys in these logs have the shapes of real ones (OpenAI project, service-account and legacy
keys, Anthropic keys, as the gitleaks rules describe them), drawn from the world's generator;
the gateway logs them in the Authorization (or x-api-key) header of refused requests, so the
case holds only their fingerprints.
"""

from __future__ import annotations

import ipaddress
import random
import string
from collections.abc import Callable

from forensics.synth.cast import SCRIPT_AGENTS
from forensics.synth.scenarios import World
from forensics.synth.traffic import Call, make_call
from forensics.synth.world import MODELS, Credential, Model, Tenant

_B62 = string.ascii_letters + string.digits

# Paths scanners ask for first (recon.endpoint_enumeration's sensitive paths), and the gateway's
# answer: most are not there; the model list of a real route wants a key.
_SENSITIVE = (
    ("/.env", 404), ("/.env.production", 404), ("/.git/config", 404), ("/.aws/credentials", 404),
    ("/config.json", 404), ("/admin", 404), ("/admin/login", 404), ("/wp-admin/", 404),
    ("/wp-login.php", 404), ("/actuator/env", 404), ("/actuator/health", 404),
    ("/swagger.json", 404), ("/swagger-ui/index.html", 404), ("/openapi.json", 404),
    ("/v3/api-docs", 404), ("/docs", 404), ("/redoc", 404), ("/graphql", 404),
    ("/v1/models", 404), ("/openai/v1/models", 401), ("/api/tags", 404),
    ("/server-status", 404), ("/phpinfo.php", 404), ("/.DS_Store", 404),
    ("/v1/dashboard/billing/subscription", 404),
)  # fmt: skip
# Guesses at API routes (not there on this gateway), and real routes that want a key.
_GUESSES = (
    "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/images/generations",
    "/v1/audio/transcriptions", "/v1/responses", "/v1/assistants", "/v1/files", "/v1/batches",
    "/v1/fine_tuning/jobs", "/v1/moderations", "/v1/messages", "/api/generate", "/api/chat",
    "/api/v1/chat/completions", "/v2/chat", "/llm/v1/chat", "/anthropic/v1/complete",
    "/v1beta/models", "/v1/threads", "/v1/vector_stores", "/v1/uploads", "/v1/realtime",
    "/v1/organization/api_keys", "/api/v1/generate", "/chat/completions", "/completions",
    "/health", "/metrics", "/api", "/v1", "/openai/v1/responses", "/openai/v1/files",
    "/openai/v1/images/generations", "/gemini/v1beta/models", "/azure/openai/deployments",
)  # fmt: skip
_ROUTES = ("/openai/v1/chat/completions", "/anthropic/v1/messages", "/openai/v1/embeddings")
_SCANNER_AGENTS = (
    "Mozilla/5.0 zgrab/0.x",
    "Go-http-client/1.1",
    "python-requests/2.31.0",
    "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.0.0 Safari/537.36",
)
# Model names a walker tries that this gateway does not route.
_UNROUTED_MODELS = (
    "gpt-5", "gpt-5-pro", "gpt-4-32k", "gpt-4-turbo-preview", "o3-pro", "o1-pro", "o4-mini",
    "gpt-4.5-preview", "chatgpt-4o-latest", "gpt-image-1", "dall-e-3", "whisper-1",
    "claude-3-opus-20240229", "claude-opus-4-1", "claude-3-7-sonnet-latest", "claude-2.1",
    "gemini-2.5-pro", "gemini-1.5-flash", "llama-3.1-405b", "mixtral-8x22b", "deepseek-r1",
    "qwen-max", "grok-2", "command-r-plus", "text-davinci-003", "codex-mini-latest",
)  # fmt: skip
# Hosting prefixes that IPv6 checkers and scanners come from (a /32 of each).
_V6_HOSTING = ("2a01:4f8", "2a03:b0c0", "2604:a880", "2001:19f0", "2a05:d014", "2600:1f18")


def raw_key(rng: random.Random) -> str:
    """A key shaped like a real one: OpenAI project, service-account or legacy, or Anthropic."""

    def text(n: int, extra: str = "") -> str:
        return "".join(rng.choice(_B62 + extra) for _ in range(n))

    kind = rng.choices(("proj", "svcacct", "legacy", "anthropic"), (5, 1, 2, 2))[0]
    if kind == "proj":
        return f"sk-proj-{text(74, '-_')}T3BlbkFJ{text(74, '-_')}"
    if kind == "svcacct":
        return f"sk-svcacct-{text(58, '-_')}T3BlbkFJ{text(58, '-_')}"
    if kind == "legacy":
        return f"sk-{text(20)}T3BlbkFJ{text(20)}"
    return f"sk-ant-api03-{text(93, '-_')}AA"


def key_headers(key: str) -> dict[str, str]:
    """The header a client sends `key` in (Anthropic keys in x-api-key)."""
    if key.startswith("sk-ant-"):
        return {"x-api-key": key}
    return {"authorization": f"Bearer {key}"}


def v6_net(rng: random.Random) -> str:
    """The first four groups of a random /64 of a hosting provider, as the case writes them."""
    return f"{rng.choice(_V6_HOSTING)}:{rng.randrange(1, 1 << 16):x}:{rng.randrange(1 << 16):x}"


def v6_address(rng: random.Random, net: str) -> str:
    """An address of the /64 `net`, written compressed."""
    base = int(ipaddress.IPv6Address(f"{net}::"))
    return str(ipaddress.IPv6Address(base | rng.randrange(1, 1 << 64)))


def _source(w: World) -> tuple[list[str], str]:
    """A checker's or scanner's addresses and their network as the case names it: a few
    addresses of one /24 of a small hosting network, or of one IPv6 /64."""
    rng = w.rng
    if rng.random() < 0.3:
        net = v6_net(rng)
        return [v6_address(rng, net) for _ in range(rng.randint(1, 5))], f"{net}::/64"
    addresses = rng.choice(w.nets.vps).slash24(rng)
    prefix = addresses[0].rsplit(".", 1)[0]
    return addresses, f"{prefix}.0/24"


def _request(
    ts: float, cred: Credential | None, ip: str, agent: str, path: str, status: int, *,
    method: str = "GET", headers: dict[str, str] | None = None,
) -> Call:  # fmt: skip
    """A request that is not a model call, answered with `status` (refused unless 2xx/3xx)."""
    model = MODELS["claude-3-5-haiku" if path.startswith("/anthropic") else "gpt-4o-mini"]
    call = Call(ts, cred, ip, model, agent, path=path, method=method, status=status)
    if status in (401, 403):
        call.outcome = "unauthorized"
    elif status >= 400:
        call.outcome = "invalid"
    call.extra_headers = dict(headers or {})
    return call


# --- scenarios ------------------------------------------------------------------------------


def endpoint_enumeration(w: World) -> None:
    """Two clients mapping the gateway: a keyless scanner walking paths, and a trial key
    walking model names the gateway does not route."""
    _path_scanner(w)
    _model_walker(w)


def _path_scanner(w: World) -> None:
    rng = w.rng
    addresses, _ = _source(w)
    ip = addresses[0]
    agent = rng.choice(_SCANNER_AGENTS)
    if rng.random() < 0.5:  # discovery: the sensitive paths first, a few guesses
        sensitive = rng.sample(_SENSITIVE, rng.randint(3, 12))
        guesses = rng.sample(_GUESSES, rng.randint(0, 12))
    else:  # wordlist: guesses at API routes, near the threshold or far above it
        sensitive = rng.sample(_SENSITIVE, rng.randint(0, 2))
        guesses = rng.sample(_GUESSES, rng.choice((rng.randint(8, 10), rng.randint(11, 36))))
    targets = [*sensitive, *((g, 404) for g in guesses)]
    targets += [(r, 401) for r in rng.sample(_ROUTES, rng.randint(0, 2))]
    rng.shuffle(targets)
    t = w.at(rng.randrange(w.days), rng.uniform(0.2, 22.5))
    first = t
    for path, status in targets:
        for _ in range(rng.choice((1, 1, 1, 2))):  # some probes are sent twice
            w.calls.append(_request(t, None, ip, agent, path, status))
            t += rng.uniform(0.2, 20)
    missing = sum(1 for _, status in targets if status == 404)
    w.label(
        "endpoint_enumeration",
        "recon.endpoint_enumeration",
        "ip",
        ip,
        None,
        first,
        t,
        f"keyless scan of {len(targets)} paths ({missing} missing, {len(sensitive)} sensitive)",
    )


def _model_walker(w: World) -> None:
    rng = w.rng
    tenant = w.cast.tenant("abuse")
    cred = w.cast.credential(tenant, "developer", daily=0)
    addresses, _ = _source(w)
    ip = addresses[0]
    cred.user_agent = rng.choice(SCRIPT_AGENTS)
    t = w.at(rng.randrange(w.days), rng.uniform(0.2, 22))
    first = t
    for _ in range(rng.randint(1, 2)):  # the model list first
        w.calls.append(_request(t, cred, ip, cred.user_agent, "/openai/v1/models", 200))
        t += rng.uniform(1, 30)
    names = rng.sample(_UNROUTED_MODELS, rng.choice((rng.randint(8, 10), rng.randint(11, 26))))
    worked = refused = 0
    for name in names:
        provider = "anthropic" if name.startswith("claude") else "openai"
        model = Model(provider, name, name, "chat", 0.0, 0.0)
        for _ in range(rng.choice((1, 1, 2))):
            call = make_call(rng, cred, t, model=model, ip=ip, stream=False, outcome="invalid")
            call.status = 404
            w.calls.append(call)
            refused += 1
            t += rng.uniform(2, 40)
        if rng.random() < 0.2 and worked < 0.15 * refused:  # now and then a model that exists
            w.calls.append(make_call(rng, cred, t, model=MODELS["gpt-4o-mini"], ip=ip))
            worked += 1
            t += rng.uniform(2, 40)
    w.label_credential(
        "endpoint_enumeration",
        "recon.endpoint_enumeration",
        cred,
        first,
        t,
        f"trial key asked for {len(names)} unrouted models ({worked} calls that worked)",
    )


def key_testing(w: World) -> None:
    """A checker working through a list of keys from one /24 (or IPv6 /64): most refused,
    a few of them, the victims', accepted."""
    rng = w.rng
    addresses, source = _source(w)
    agent = rng.choice(SCRIPT_AGENTS)
    count = rng.choice((rng.randint(10, 13), rng.randint(14, 160)))
    victims: list[Credential] = []
    for _ in range(min(rng.choice((0, 1, 1, 2, 3)), count // 5)):  # a few, most keys refused
        owner = w.cast.credential(w.cast.tenant("abuse"), "server", daily=rng.uniform(30, 120))
        w.usual(owner)
        victims.append(owner)
    attempts: list[tuple[str, Credential | None]] = [(raw_key(rng), None) for _ in range(count)]
    attempts += [(raw_key(rng), victim) for victim in victims]
    rng.shuffle(attempts)
    gap = rng.uniform(0.5, min(25.0, 2700 / len(attempts)))  # seconds between keys
    t = w.at(rng.randrange(w.days), rng.uniform(0.2, 22.5))
    first = t
    for key, cred in attempts:
        # OpenAI keys are checked by listing the models, Anthropic keys by a short message
        anthropic = key.startswith("sk-ant-")
        path = "/anthropic/v1/messages" if anthropic else "/openai/v1/models"
        method = "POST" if anthropic else "GET"
        for _ in range(rng.choice((1, 1, 2))):
            ip = rng.choice(addresses)
            if cred is None:
                call = _request(t, None, ip, agent, path, 401, method=method)
            elif anthropic:  # a key that works: the message is answered
                call = make_call(rng, cred, t, model=MODELS["claude-3-5-haiku"], ip=ip,
                                 stream=False, outcome="ok")  # fmt: skip
                call.user_agent = agent
            else:
                call = _request(t, cred, ip, agent, path, 200)
            call.extra_headers = key_headers(key)
            w.calls.append(call)
            t += rng.uniform(0.5, 1.5) * gap
    note = f"{count} keys refused from {len(addresses)} address(es), {len(victims)} accepted"
    # one label per victim's tenant, so that findings of other detectors on the victims' keys
    # count as covered (the tenant of a scenario is covered)
    tenants: list[Tenant | None] = [v.tenant for v in victims] or [None]
    for tenant in tenants:
        w.label("key_testing", "credential.key_testing", "cidr", source, tenant, first, t, note)


# scenario -> (function, fewest days of data it needs), registered by forensics.synth.build
RECON_SCENARIOS: dict[str, tuple[Callable[[World], None], int]] = {
    "endpoint_enumeration": (endpoint_enumeration, 1),
    "key_testing": (key_testing, 1),
}


# --- legitimate look-alikes -----------------------------------------------------------------


def recon_lookalikes(w: World) -> None:
    """Habits that resemble enumeration or key testing (none of them is labelled)."""
    rng, cast = w.rng, w.cast

    # A search crawler reading the gateway's public pages: many paths, nearly all there.
    ip = cast.cloud("US").address(rng)
    agent = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
    t = w.at(rng.randrange(w.days), rng.uniform(0, 20))
    for i in range(rng.randint(40, 160)):
        status = rng.choices((200, 304, 404), (80, 12, 8))[0]
        w.calls.append(_request(t, None, ip, agent, f"/docs/page-{i}", status))
        t += rng.uniform(2, 40)

    # One tenant's three habits. A deployment with a misspelled path, retried all afternoon
    # until it is rolled back.
    t_ = cast.tenant("lookalike")
    c = cast.credential(t_, "server", daily=rng.uniform(60, 200))
    w.usual(c)
    t = w.at(rng.randrange(w.days), rng.uniform(8, 16))
    for _ in range(rng.randint(40, 300)):
        path = "/openai/v1/chat/completion"
        w.calls.append(_request(t, c, rng.choice(c.ips), c.user_agent, path, 404, method="POST"))
        t += rng.uniform(5, 60)

    # A developer finding their way with curl: a few wrong paths and the model list.
    c = cast.credential(t_, "developer", daily=rng.uniform(10, 40))
    w.usual(c)
    t = w.at(rng.randrange(w.days), rng.uniform(8, 18))
    plain = [g for g in _GUESSES if not g.endswith("deployments")]  # none of them sensitive
    tries = [(p, 404) for p in rng.sample(plain, rng.randint(3, 6))]
    tries += [("/openai/v1/models", 200), ("/docs", 404)]
    for path, status in tries:
        w.calls.append(_request(t, c, c.ips[0], "curl/8.5.0", path, status))
        t += rng.uniform(20, 300)

    # A dashboard listing the models every five minutes.
    c = cast.credential(t_, "server", daily=rng.uniform(20, 80))
    w.usual(c)
    t = w.start + rng.uniform(0, 300)
    while t < w.at(w.days):
        w.calls.append(_request(t, c, c.ips[0], c.user_agent, "/openai/v1/models", 200))
        t += 300 + rng.uniform(-5, 5)

    _office_keys(w)
    _rotation_day(w)
    _revoked_key_retried(w)
    _integration_platform(w)


def _office_keys(w: World) -> None:
    """An office behind one NAT address: colleagues' keys, one of them old and refused."""
    rng, cast = w.rng, w.cast
    tenant = cast.tenant("lookalike", country="DE")
    ip = cast.isp("DE").address(rng)
    for _ in range(rng.randint(4, 9)):
        c = cast.credential(tenant, "developer", daily=rng.uniform(10, 60))
        c.ips = [ip]
        w.usual(c)
    old = raw_key(rng)
    t = w.at(rng.randrange(w.days), rng.uniform(7, 15))
    for _ in range(rng.randint(3, 20)):
        path = "/openai/v1/chat/completions"
        w.calls.append(_request(t, None, ip, "OpenAI/Python 1.54.4", path, 401, method="POST",
                                headers=key_headers(old)))  # fmt: skip
        t += rng.uniform(10, 600)


def _rotation_day(w: World) -> None:
    """A team rotating all its keys at once: each old key refused a few times, then its
    replacement works from the same machines."""
    rng, cast = w.rng, w.cast
    tenant = cast.tenant("lookalike", country="US")
    ips = cast.isp("US").slash24(rng)
    t = w.at(rng.randrange(w.days), rng.uniform(14, 16))
    for _ in range(rng.randint(10, 16)):
        new = cast.credential(tenant, "developer", daily=rng.uniform(10, 40))
        new.ips = [rng.choice(ips)]
        w.usual(new)
        old, fresh = raw_key(rng), raw_key(rng)
        path = "/openai/v1/chat/completions"
        for _ in range(rng.randint(1, 3)):
            w.calls.append(_request(t, None, new.ips[0], new.user_agent, path, 401,
                                    method="POST", headers=key_headers(old)))  # fmt: skip
            t += rng.uniform(5, 60)
        call = make_call(rng, new, t + rng.uniform(30, 300))
        call.extra_headers = key_headers(fresh)
        w.calls.append(call)


def _revoked_key_retried(w: World) -> None:
    """A forgotten server still sending its revoked key, hundreds of times."""
    rng, cast = w.rng, w.cast
    tenant = cast.tenant("lookalike")
    c = cast.credential(tenant, "server", daily=rng.uniform(30, 100))
    w.usual(c)
    key = raw_key(rng)
    t = w.at(rng.randrange(w.days), rng.uniform(0, 20))
    for _ in range(rng.randint(50, 400)):
        path = "/openai/v1/chat/completions"
        w.calls.append(_request(t, None, c.ips[0], c.user_agent, path, 401, method="POST",
                                headers=key_headers(key)))  # fmt: skip
        t += rng.expovariate(1 / 30)


def _integration_platform(w: World) -> None:
    """An integration platform on one cloud /24 relaying its customers' keys: dozens work,
    the revoked ones keep being refused."""
    rng, cast = w.rng, w.cast
    ips = cast.cloud("US").slash24(rng)
    agent = "Integrations-Relay/5.2 (+https://relay.example)"
    day = rng.randrange(w.days)
    customers: list[tuple[Credential, str]] = []
    tenant = cast.tenant("lookalike")  # the platform's customers, one gateway tenant
    for _ in range(rng.randint(20, 40)):
        customers.append((cast.credential(tenant, "server", daily=0), raw_key(rng)))
    revoked = [raw_key(rng) for _ in range(rng.randint(4, 12))]
    for hour in range(24):
        for c, key in rng.sample(customers, rng.randint(5, len(customers))):
            call = make_call(rng, c, w.at(day, hour + rng.random()), ip=rng.choice(ips))
            call.user_agent, call.extra_headers = agent, key_headers(key)
            w.calls.append(call)
        for key in rng.sample(revoked, rng.randint(0, 2)):
            ts, path = w.at(day, hour + rng.random()), "/openai/v1/chat/completions"
            w.calls.append(_request(ts, None, rng.choice(ips), agent, path, 401,
                                    method="POST", headers=key_headers(key)))  # fmt: skip


__all__ = ["RECON_SCENARIOS", "key_testing", "raw_key", "recon_lookalikes"]
