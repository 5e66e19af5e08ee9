"""Composed Kong file-log records with the AI Proxy block, for benchmarks and sample data.

Every record is invented: deterministic for a given seed (`random.Random`, no global state),
shaped like the output of Kong's `kong.log.serialize()` plus the AI Proxy analytics block as
FORMATS.md section 1 describes it:

* current layout: ``ai.proxy.{meta,usage,payload}`` with plural ``prompt_tokens`` /
  ``completion_tokens``, ``prompt_tokens_details.cached_tokens`` and ``cost``; the request and
  response bodies are JSON strings (OpenAI chat requests with a system prompt, a few turns and
  the user's message last; responses with ``choices[].finish_reason`` and sometimes
  ``message.tool_calls``);
* a small share in the 3.6-3.8 layout: the block keyed by plugin name (``ai.ai-proxy``) with
  singular ``prompt_token`` / ``completion_token`` and the request body at ``ai.payload``;
* gateway-made 401s (key-auth) and 429s (rate-limiting), provider 429s, Azure OpenAI
  ``400 content_filter`` errors and ``finish_reason: content_filter``, 5xx, streaming requests.

Client addresses come from a pool drawn from synthetic networks; `iptoasn_lines` writes a
matching iptoasn.com-style TSV that covers every address the generator can emit.

    python benchmarks/kong_gen.py --lines 10000 -o /tmp/kong.jsonl --iptoasn /tmp/ip2asn.tsv
"""

from __future__ import annotations

import argparse
import bisect
import csv
import gzip
import ipaddress
import json
import random
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

GENERATOR_VERSION = 2  # bump when the output for a given seed changes (benchmark cache key)

_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

# --- networks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Network:
    """One routed range of the synthetic address plan (inclusive bounds, IPv4 as int)."""

    start: int
    end: int
    asn: int
    country: str
    name: str
    category: str = "isp"  # hosting | isp | mobile | enterprise_egress | privacy_relay


# First octets never used for the public pool: this network, private, CGNAT, loopback,
# link-local, 172.16/12, 192.168/16 and the documentation / benchmark ranges' /8s, multicast+.
_EXCLUDED_FIRST_OCTETS = {0, 10, 100, 127, 169, 172, 192, 198, 203} | set(range(224, 256))

_COUNTRIES = (
    ("US", 30),
    ("DE", 8),
    ("GB", 6),
    ("FR", 5),
    ("NL", 5),
    ("JP", 4),
    ("CA", 4),
    ("IN", 4),
    ("BR", 3),
    ("SG", 3),
    ("AU", 3),
    ("SE", 2),
    ("IE", 2),
    ("ES", 2),
    ("IT", 2),
    ("PL", 2),
    ("KR", 2),
    ("CH", 2),
    ("FI", 1),
    ("NO", 1),
    ("DK", 1),
    ("BE", 1),
    ("AT", 1),
    ("CZ", 1),
    ("RO", 1),
    ("UA", 1),
    ("TR", 1),
    ("IL", 1),
    ("AE", 1),
    ("ZA", 1),
    ("NG", 1),
    ("KE", 1),
    ("MX", 1),
    ("AR", 1),
    ("CL", 1),
    ("CO", 1),
    ("ID", 1),
    ("VN", 1),
    ("TH", 1),
    ("PH", 1),
    ("MY", 1),
    ("HK", 1),
    ("TW", 1),
    ("NZ", 1),
    ("PT", 1),
    ("GR", 1),
    ("HU", 1),
    ("EG", 1),
)
_NAME_WORDS = (
    "North",
    "Blue",
    "Metro",
    "Atlas",
    "Vertex",
    "Harbor",
    "Summit",
    "Delta",
    "Prime",
    "Orbit",
    "Cedar",
    "Granite",
    "Nova",
    "Pioneer",
    "Quantum",
    "River",
    "Sky",
    "Union",
    "Valley",
    "Zenith",
)
_NAME_KINDS = (
    ("Broadband", "isp"),
    ("Telecom", "isp"),
    ("Fiber", "isp"),
    ("Cable", "isp"),
    ("Mobile", "mobile"),
    ("Cloud", "hosting"),
    ("Hosting", "hosting"),
    ("Datacenter", "hosting"),
    ("Networks", "isp"),
    ("Communications", "isp"),
)


def _shipped_asns() -> list[tuple[int, str, str]]:
    """(asn, category, name) of the ASN list shipped with forensics, when it is importable."""
    try:
        from forensics.resources import data_file
    except ImportError:
        return []
    path = data_file("asn_categories.csv")
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return [(int(r["asn"]), r["category"], r["name"]) for r in csv.DictReader(f)]


def public_networks(seed: int, count: int = 2400) -> list[Network]:
    """A synthetic address plan: `count` non-overlapping prefixes (/16-/24) over ~200 /8s.

    Some ASes are the ones forensics ships categories for (so `asn_category` is exercised), the
    rest are invented. Countries are drawn once per AS. Sorted by start address.
    """
    rng = random.Random(seed * 7919 + 1)
    countries = [c for c, _ in _COUNTRIES]
    weights = [w for _, w in _COUNTRIES]
    ases: list[tuple[int, str, str, str]] = []
    shipped = _shipped_asns()
    for asn, category, name in shipped:
        ases.append((asn, name, category, rng.choices(countries, weights)[0]))
    taken = {a for a, _, _, _ in ases}
    while len(ases) < max(len(shipped), 1) + count // 3:
        asn = rng.randrange(131072, 400000)
        if asn in taken:
            continue
        taken.add(asn)
        word = rng.choice(_NAME_WORDS)
        kind, category = rng.choice(_NAME_KINDS)
        country = rng.choices(countries, weights)[0]
        handle = f"{word.upper()}-{kind.upper()[:4]}-{asn % 1000:03d}"
        ases.append((asn, f"{handle} - {word} {kind} Ltd", category, country))
    first_octets = [o for o in range(1, 224) if o not in _EXCLUDED_FIRST_OCTETS]
    used: set[int] = set()
    networks: list[Network] = []
    while len(networks) < count:
        block16 = rng.choice(first_octets) << 8 | rng.randrange(256)
        if block16 in used:
            continue
        used.add(block16)
        asn, name, category, country = rng.choice(ases)
        prefix = rng.choices((16, 17, 18, 19, 20, 21, 22, 23, 24), (2, 2, 3, 4, 6, 5, 5, 3, 3))[0]
        size = 1 << (32 - prefix)
        start = (block16 << 16) + rng.randrange(0, 1 << 16, size)
        networks.append(Network(start, start + size - 1, asn, country, name, category))
    networks.sort(key=lambda n: n.start)
    return networks


def documentation_networks() -> list[Network]:
    """The three IPv4 documentation /24s cut into /26s, under documentation ASNs 64496-64511."""
    plan = (
        ("192.0.2.0/26", 64496, "US", "EXAMPLE-BROADBAND-A", "isp"),
        ("192.0.2.64/26", 64497, "US", "EXAMPLE-CLOUD-B", "hosting"),
        ("192.0.2.128/26", 64498, "DE", "EXAMPLE-TELEKOM-C", "isp"),
        ("192.0.2.192/26", 64499, "GB", "EXAMPLE-MOBILE-D", "mobile"),
        ("198.51.100.0/26", 64500, "NL", "EXAMPLE-HOSTING-E", "hosting"),
        ("198.51.100.64/26", 64501, "FR", "EXAMPLE-FIBRE-F", "isp"),
        ("198.51.100.128/26", 64502, "SG", "EXAMPLE-DATACENTER-G", "hosting"),
        ("198.51.100.192/26", 64503, "BR", "EXAMPLE-TELECOM-H", "isp"),
        ("203.0.113.0/26", 64504, "JP", "EXAMPLE-NET-I", "isp"),
        ("203.0.113.64/26", 64505, "RO", "EXAMPLE-VPS-J", "hosting"),
        ("203.0.113.128/26", 64506, "IN", "EXAMPLE-MOBILE-K", "mobile"),
        ("203.0.113.192/26", 64507, "CA", "EXAMPLE-VPN-L", "privacy_relay"),
    )
    out = []
    for cidr, asn, country, name, category in plan:
        net = ipaddress.IPv4Network(cidr)
        out.append(
            Network(
                int(net.network_address),
                int(net.broadcast_address),
                asn,
                country,
                f"{name} - composed documentation network",
                category,
            )
        )
    return out


def iptoasn_lines(
    networks: list[Network], seed: int = 1, not_routed_share: float = 0.5
) -> list[str]:
    """iptoasn.com ip2asn-v4 TSV lines (no header) for the plan, gaps partly as AS 0.

    Columns: range_start, range_end, AS_number, country_code, AS_description. Unrouted space
    between the networks is listed as ``0  None  Not routed`` for about `not_routed_share` of
    the gaps (including the space before the first and after the last network).
    """
    rng = random.Random(seed * 31 + 7)
    ordered = sorted(networks, key=lambda n: n.start)
    lines: list[str] = []

    def ip(n: int) -> str:
        return str(ipaddress.IPv4Address(n))

    def gap(lo: int, hi: int) -> None:
        if lo <= hi and rng.random() < not_routed_share:
            lines.append(f"{ip(lo)}\t{ip(hi)}\t0\tNone\tNot routed")

    cursor = 1 << 24  # 1.0.0.0
    for net in ordered:
        gap(cursor, net.start - 1)
        lines.append(f"{ip(net.start)}\t{ip(net.end)}\t{net.asn}\t{net.country}\t{net.name}")
        cursor = net.end + 1
    gap(cursor, (223 << 24) | 0xFFFFFF)
    return lines


# --- vocabulary ----------------------------------------------------------------------------

_WORDS = (
    "the a of to and in for on with by from as is are was be this that it at or an which "
    "customer order invoice account payment refund shipping delivery product service support "
    "ticket issue error report data table query model result value number date time week month "
    "quarter revenue cost budget forecast summary analysis review policy contract clause term "
    "user team project release feature bug test deployment server database cache request "
    "response latency api endpoint key token limit usage plan price discount region market "
    "sales lead campaign email message meeting schedule agenda note document draft section "
    "paragraph sentence translation language french german spanish japanese english tone "
    "formal friendly concise detailed bullet list steps example code function class method "
    "variable python javascript sql json yaml config file path log line record field column "
    "please can you could would should must need want help explain describe compare list "
    "write rewrite summarise summarize translate classify extract check fix improve suggest "
    "new old current previous next first last best main important urgent simple clear short "
    "long high low total average daily monthly annual internal external public private"
).split()
_SYSTEM_PROMPTS = (
    "You are {org}'s support assistant. Answer briefly and cite the knowledge base article.",
    "You are {org}'s coding assistant. Reply with working Python code, then one line of why.",
    "You are a data analyst at {org}. Write one SQL query and state any assumption.",
    "Translate customer messages for {org}. Keep names, numbers and product codes unchanged.",
    "Classify {org} tickets as billing, technical, account or other. Reply in JSON.",
    "Draft friendly replies to {org} sales leads, under 120 words, with one next step.",
)
_USER_TEMPLATES = (
    "Summarise this ticket in {n} bullet points: {text}",
    "Translate into {lang}: {text}",
    "Write a SQL query that returns the {text}",
    "Classify this message: {text}",
    "Fix the bug in this function, it fails on empty input: {text}",
    "Draft a reply to this email: {text}",
    "Extract the invoice number, date and total from: {text}",
    "Explain the difference between {text}",
    "What is the status of order {num} and when will it ship?",
    "Rewrite this paragraph to be more concise: {text}",
)
_LANGS = ("French", "German", "Spanish", "Japanese", "Portuguese", "Italian")
_ASSISTANT_OPENERS = (
    "Sure, here is",
    "Here is",
    "Certainly. Below is",
    "Based on the details provided,",
    "Done:",
)
_TOOLS = (
    ("lookup_order", '{{"order_id":"{num}"}}'),
    ("search_kb", '{{"query":"{word} {word2}","top_k":5}}'),
    ("create_ticket", '{{"priority":"{prio}","summary":"{word} {word2}"}}'),
    ("get_weather", '{{"city":"{city}","unit":"celsius"}}'),
)
_CITIES = ("Paris", "Berlin", "Tokyo", "Austin", "Lagos", "Lima", "Oslo", "Pune", "Perth")

# User agents of the clients that call an AI gateway.
_SERVER_UAS = (
    ("OpenAI/Python 1.54.4", "python"),
    ("OpenAI/Python 1.58.1", "python"),
    ("AsyncOpenAI/Python 1.58.1", "python"),
    ("OpenAI/JS 4.73.1", "js"),
    ("python-httpx/0.27.2", None),
    ("langchain-openai/0.2.14", None),
    ("Go-http-client/2.0", None),
    ("okhttp/4.12.0", None),
)
_CLIENT_UAS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148",
    "AcmeNotes/5.2.1 (Android 14; Pixel 8)",
)
_ABUSE_UAS = ("python-requests/2.32.3", "curl/8.5.0", "aiohttp/3.9.5", "Go-http-client/1.1")


@dataclass(frozen=True)
class Model:
    provider: str
    request_model: str
    response_model: str
    price_in: float  # USD per 1M tokens
    price_out: float
    route: str  # key of _ROUTES
    reasoning: bool = False


_MODELS = (
    (Model("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 0.15, 0.6, "openai-chat"), 30),
    (Model("openai", "gpt-4o", "gpt-4o-2024-08-06", 2.5, 10.0, "openai-chat"), 18),
    (Model("openai", "gpt-4.1", "gpt-4.1-2025-04-14", 2.0, 8.0, "openai-chat"), 8),
    (Model("openai", "o3-mini", "o3-mini-2025-01-31", 1.1, 4.4, "openai-chat", True), 5),
    (Model("azure", "gpt-4o", "gpt-4o-2024-11-20", 2.5, 10.0, "azure-chat"), 12),
    (
        Model(
            "anthropic",
            "claude-3-5-sonnet-20241022",
            "claude-3-5-sonnet-20241022",
            3.0,
            15.0,
            "anthropic-chat",
        ),
        10,
    ),
    (
        Model(
            "anthropic",
            "claude-3-5-haiku-20241022",
            "claude-3-5-haiku-20241022",
            0.8,
            4.0,
            "anthropic-chat",
        ),
        7,
    ),
    (Model("mistral", "mistral-large-latest", "mistral-large-2411", 2.0, 6.0, "mistral-chat"), 4),
    (
        Model(
            "openai",
            "text-embedding-3-small",
            "text-embedding-3-small",
            0.02,
            0.0,
            "openai-embeddings",
        ),
        6,
    ),
)
# route name -> (gateway path, upstream service name, upstream host, upstream path)
_ROUTES = {
    "openai-chat": (
        "/openai/v1/chat/completions",
        "openai",
        "api.openai.com",
        "/v1/chat/completions",
    ),
    "azure-chat": (
        "/azure/v1/chat/completions",
        "azure-openai",
        "contoso-ai.openai.azure.com",
        "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
    ),
    "anthropic-chat": (
        "/anthropic/v1/chat/completions",
        "anthropic",
        "api.anthropic.com",
        "/v1/messages",
    ),
    "mistral-chat": (
        "/mistral/v1/chat/completions",
        "mistral",
        "api.mistral.ai",
        "/v1/chat/completions",
    ),
    "openai-embeddings": ("/openai/v1/embeddings", "openai", "api.openai.com", "/v1/embeddings"),
}
_UPSTREAM_IPS = {
    "api.openai.com": "162.159.140.245",
    "contoso-ai.openai.azure.com": "20.119.128.17",
    "api.anthropic.com": "160.79.104.10",
    "api.mistral.ai": "104.18.8.189",
}
_TENANT_NAMES = (
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "wonka",
    "tyrell",
    "cyberdyne",
    "soylent",
    "aperture",
    "gringotts",
    "oscorp",
    "vandelay",
    "pied-piper",
    "massive-dynamic",
    "duff",
    "monarch",
    "nakatomi",
)


# --- configuration -------------------------------------------------------------------------


@dataclass
class KongConfig:
    """What to generate. Shares are probabilities per record."""

    lines: int = 10_000
    start: datetime = datetime(2026, 11, 16, tzinfo=UTC)
    duration: timedelta = timedelta(days=1)
    tenants: int = 30
    credentials: int = 150
    ip_pool: int = 20_000
    seed: int = 20261128
    networks: str = "public"  # public | documentation
    network_count: int = 2400
    legacy_share: float = 0.03
    stream_share: float = 0.18
    unauthorized_share: float = 0.01
    gateway_429_share: float = 0.015
    upstream_429_share: float = 0.008
    azure_filter_share: float = 0.03  # of Azure requests: 400 content_filter
    server_error_share: float = 0.003
    client_side_share: float = 0.15  # credentials used from browsers / apps (many IPs)
    leaked_credentials: int = 1  # credentials that start being used from many IPs mid-window
    leak_from: float = 0.6  # fraction of the window when the leak starts
    leak_ips: int = 400  # distinct addresses the leaked credential is used from (at most)
    leak_rate: float = 0.12  # share of the records after leak_from that use a leaked key
    payload_share: float = 1.0  # share of tenants whose AI Proxy instance has log_payloads on
    compact: bool = False  # entities trimmed by custom_fields_by_lua: smaller lines
    host: str = "ai-gw.example.net"

    def cache_key(self) -> str:
        days = self.duration.total_seconds() / 86400
        return (
            f"kong-v{GENERATOR_VERSION}-{self.lines}l-{days:g}d-{self.tenants}t-"
            f"{self.credentials}c-{self.ip_pool}ip-s{self.seed}"
        )


@dataclass
class _Credential:
    id: str
    tenant: int
    weight: float
    client_side: bool
    ips: list[str]
    ua: tuple[str, str | None]
    models: list[Model]
    model_weights: list[float]
    users: list[str]
    leaked: bool = False
    key_auth: bool = True  # key-auth (apikey header hidden) vs bearer (authorization REDACTED)


@dataclass
class _Tenant:
    name: str
    consumer_id: str
    custom_id: str
    created_at: int
    system_prompts: list[str]
    payloads: bool = True


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ip_str(n: int) -> str:
    return f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


class KongGenerator:
    """Build the world once (tenants, credentials, address pool), then stream records."""

    def __init__(self, config: KongConfig) -> None:
        self.config = c = config
        rng = self.rng = random.Random(c.seed)
        if c.networks == "documentation":
            self.networks = documentation_networks()
        else:
            self.networks = public_networks(c.seed, c.network_count)
        self._starts = [n.start for n in self.networks]
        self.pool = self._pool(rng)
        self.workspace = _uuid(rng)
        base = int(c.start.timestamp() * 1000) - 200 * 86400 * 1000
        self.tenants = [
            _Tenant(
                name=_TENANT_NAMES[i % len(_TENANT_NAMES)]
                + ("" if i < len(_TENANT_NAMES) else f"-{i // len(_TENANT_NAMES)}"),
                consumer_id=_uuid(rng),
                custom_id=f"cust-{rng.randrange(10**6):06d}",
                created_at=(base + rng.randrange(90 * 86400 * 1000)) // 1000,
                system_prompts=[],
            )
            for i in range(max(1, c.tenants))
        ]
        for i, t in enumerate(self.tenants):
            org = t.name.replace("-", " ").title()
            picks = rng.sample(_SYSTEM_PROMPTS, 2)
            t.system_prompts = [p.format(org=org) for p in picks]
            t.payloads = i < round(c.payload_share * len(self.tenants))
        self.credentials = self._credentials(rng)
        self.cum_weights: list[float] = []
        total = 0.0
        for cred in self.credentials:
            total += cred.weight
            self.cum_weights.append(total)
        self.routes = self._routes(rng)
        self.plugin_ids = {m.provider: _uuid(rng) for m, _ in _MODELS}
        self.leak_ip_pool = self._leak_ips(rng)

    # world ----------------------------------------------------------------------------

    def _pool(self, rng: random.Random) -> list[str]:
        nets = self.networks
        sizes = [n.end - n.start + 1 for n in nets]
        want = min(self.config.ip_pool, sum(max(s - 2, 1) for s in sizes))
        cum = []
        total = 0.0
        for s in sizes:
            total += s**0.5
            cum.append(total)
        seen: set[int] = set()
        pool: list[str] = []
        while len(pool) < want:
            net = nets[bisect.bisect_left(cum, rng.random() * total)]
            size = net.end - net.start + 1
            n = net.start + (rng.randrange(1, size - 1) if size > 2 else 0)
            if n in seen:
                continue
            seen.add(n)
            pool.append(_ip_str(n))
        self.pool_networks = {ip: net for ip in pool for net in [self._network_of(ip)]}
        return pool

    def _network_of(self, ip: str) -> Network:
        i = bisect.bisect_right(self._starts, int(ipaddress.IPv4Address(ip))) - 1
        return self.networks[i]

    def _leak_ips(self, rng: random.Random) -> list[str]:
        """Addresses a leaked key is used from: hosting and VPN networks first, then anything."""
        hosting = [
            ip
            for ip in self.pool
            if self.pool_networks[ip].category in ("hosting", "privacy_relay")
        ]
        chosen = set(hosting)
        others = [ip for ip in self.pool if ip not in chosen] if len(hosting) < 50 else []
        picks = hosting + others
        rng.shuffle(picks)
        return picks[: max(1, self.config.leak_ips)]

    def _credentials(self, rng: random.Random) -> list[_Credential]:
        c = self.config
        models = [m for m, _ in _MODELS]
        weights = [w for _, w in _MODELS]
        creds = []
        for i in range(max(1, c.credentials)):
            tenant = (
                i % len(self.tenants) if i < len(self.tenants) else rng.randrange(len(self.tenants))
            )
            client_side = rng.random() < c.client_side_share
            if client_side:
                ips: list[str] = []
            else:
                home = rng.choice(self.pool)
                net = self.pool_networks[home]
                near = [
                    ip
                    for ip in rng.sample(self.pool, min(len(self.pool), 400))
                    if self.pool_networks[ip] is net and ip != home
                ]
                ips = [home] + near[: rng.randrange(0, 3)]
                if rng.random() < 0.3:
                    ips.append(rng.choice(self.pool))  # a second site
            k = rng.randrange(1, 4)
            chosen = rng.choices(models, weights, k=k)
            creds.append(
                _Credential(
                    id=_uuid(rng),
                    tenant=tenant,
                    weight=1.0 / (i + 1) ** 0.9,
                    client_side=client_side,
                    ips=ips,
                    ua=(rng.choice(_CLIENT_UAS), None) if client_side else rng.choice(_SERVER_UAS),
                    models=chosen,
                    model_weights=[rng.random() + 0.2 for _ in chosen],
                    users=[f"user-{rng.getrandbits(32):08x}" for _ in range(rng.randrange(1, 40))],
                    key_auth=rng.random() < 0.7,
                )
            )
        rng.shuffle(creds)  # heavy users are not all the first tenants
        # the leaked keys: mid-weight server-side credentials
        server = [cr for cr in creds if not cr.client_side]
        first = min(3, max(0, len(server) - c.leaked_credentials))
        for cr in sorted(server, key=lambda x: -x.weight)[first : first + c.leaked_credentials]:
            cr.leaked = True
        return creds

    def _routes(self, rng: random.Random) -> dict[str, tuple[dict[str, object], dict[str, object]]]:
        created = int(self.config.start.timestamp()) - 400 * 86400
        out = {}
        for name, (path, service_name, host, upstream_path) in _ROUTES.items():
            service_id = _uuid(rng)
            t = created + rng.randrange(86400 * 100)
            # The entities trimmed to what identifies them, as deployments that keep file-log
            # lines small do with custom_fields_by_lua (Kong logs every field by default).
            service = {
                "id": service_id,
                "name": service_name,
                "host": host,
                "port": 443,
                "protocol": "https",
                "path": upstream_path.split("?")[0].rsplit("/", 2)[0] or "/",
                "updated_at": t,
            }
            route = {
                "id": _uuid(rng),
                "name": name,
                "paths": [path],
                "protocols": ["https"],
                "service": {"id": service_id},
                "updated_at": t + 60,
            }
            out[name] = (route, service)
        return out

    # records --------------------------------------------------------------------------

    def _text(self, rng: random.Random, lo: int, hi: int) -> str:
        words = rng.choices(_WORDS, k=rng.randint(lo, hi))
        text = " ".join(words)
        return text[0].upper() + text[1:] + "."

    def _user_message(self, rng: random.Random) -> str:
        template = rng.choice(_USER_TEMPLATES)
        return template.format(
            n=rng.randint(2, 6),
            lang=rng.choice(_LANGS),
            text=self._text(rng, 4, 14),
            num=rng.randrange(10**7, 10**8),
        )

    def _chat_request(
        self,
        rng: random.Random,
        model: Model,
        tenant: _Tenant,
        stream: bool,
        user: str,
        tools: bool,
    ) -> tuple[dict[str, object], int]:
        messages: list[dict[str, object]] = [
            {"role": "system", "content": rng.choice(tenant.system_prompts)}
        ]
        for _ in range(rng.choices((0, 1, 2), (7, 2, 1))[0]):
            messages.append({"role": "user", "content": self._user_message(rng)})
            messages.append({"role": "assistant", "content": self._text(rng, 4, 16)})
        messages.append({"role": "user", "content": self._user_message(rng)})
        body: dict[str, object] = {"model": model.request_model, "messages": messages}
        if model.reasoning:
            body["reasoning_effort"] = rng.choice(("low", "medium", "high"))
            body["max_completion_tokens"] = rng.choice((2048, 4096, 8192))
        else:
            body["temperature"] = rng.choice((0, 0.2, 0.7, 1))
            body["max_tokens"] = rng.choice((256, 512, 1024, 2048))
        if tools:
            body["tools"] = [
                {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
                for name, _ in rng.sample(_TOOLS, 2)
            ]
        body["stream"] = stream
        if stream:
            body["stream_options"] = {"include_usage": True}
        body["user"] = user
        chars = sum(len(str(m["content"])) for m in messages)
        return body, chars

    def _chat_response(
        self,
        rng: random.Random,
        model: Model,
        created: int,
        prompt: int,
        completion: int,
        cached: int,
        tool_call: bool,
        finish: str,
    ) -> dict[str, object]:
        message: dict[str, object] = {"role": "assistant"}
        if tool_call:
            name, args = rng.choice(_TOOLS)
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": f"call_{rng.getrandbits(96):024x}",
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": args.format(
                            num=rng.randrange(10**7, 10**8),
                            word=rng.choice(_WORDS),
                            word2=rng.choice(_WORDS),
                            prio=rng.choice(("low", "high")),
                            city=rng.choice(_CITIES),
                        ),
                    },
                }
            ]
        else:
            message["content"] = (
                rng.choice(_ASSISTANT_OPENERS)
                + " "
                + self._text(rng, 4, max(4, min(20, completion)))
            )
            message["refusal"] = None
        usage: dict[str, object] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        }
        return {
            "id": f"chatcmpl-{rng.getrandbits(120):030x}",
            "object": "chat.completion",
            "created": created,
            "model": model.response_model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": usage,
        }

    def records(self) -> Iterator[dict[str, object]]:
        """The records, in time order."""
        c = self.config
        rng = self.rng
        start_ms = int(c.start.timestamp() * 1000)
        step = c.duration.total_seconds() * 1000 / max(1, c.lines)
        leak_at = start_ms + int(c.duration.total_seconds() * 1000 * c.leak_from)
        leaked = [cr for cr in self.credentials if cr.leaked]
        models = [m for m, _ in _MODELS]
        model_w = [w for _, w in _MODELS]
        for i in range(c.lines):
            started = start_ms + int((i + rng.random()) * step)
            yield self._record(rng, started, leak_at, leaked, models, model_w)

    def _record(
        self,
        rng: random.Random,
        started: int,
        leak_at: int,
        leaked: list[_Credential],
        models: list[Model],
        model_w: list[float],
    ) -> dict[str, object]:
        c = self.config
        roll = rng.random()
        # who is calling
        if leaked and started >= leak_at and rng.random() < c.leak_rate:
            caller = rng.choice(leaked)
        else:
            caller = self.credentials[
                bisect.bisect_left(self.cum_weights, rng.random() * self.cum_weights[-1])
            ]
        unauthorized = roll < c.unauthorized_share
        abusive = caller.leaked and started >= leak_at and rng.random() < 0.7
        ua: tuple[str, str | None] = caller.ua
        if unauthorized or abusive:
            client_ip = rng.choice(self.pool if unauthorized else self.leak_ip_pool)
            ua = (rng.choice(_ABUSE_UAS), None)
        else:
            client_ip = rng.choice(caller.ips) if caller.ips else rng.choice(self.pool)
        cred = None if unauthorized else caller  # a 401 has no consumer or credential
        tenant = self.tenants[cred.tenant] if cred is not None else None
        if cred is not None and not abusive:
            model = rng.choices(cred.models, cred.model_weights)[0]
        else:
            model = rng.choices(models, model_w)[0] if not abusive else rng.choice(models[1:3])
        route, service = self.routes[model.route]
        path = _ROUTES[model.route][0]
        embeddings = model.route.endswith("embeddings")
        stream = not embeddings and rng.random() < c.stream_share
        legacy = rng.random() < c.legacy_share
        # what happened
        cut = c.unauthorized_share
        outcome = "ok"
        for name, share in (
            ("gateway_429", c.gateway_429_share),
            ("upstream_429", c.upstream_429_share),
            ("server_error", c.server_error_share),
        ):
            if cut <= roll < cut + share:
                outcome = name
            cut += share
        if unauthorized:
            outcome = "unauthorized"
        elif outcome == "ok" and model.provider == "azure" and rng.random() < c.azure_filter_share:
            outcome = "content_filter"  # Azure OpenAI's content filter rejects the prompt
        if abusive and outcome == "ok" and rng.random() < 0.25:
            outcome = "gateway_429"
        request_id = f"{rng.getrandbits(128):032x}"
        headers: dict[str, str] = {
            "host": c.host,
            "user-agent": ua[0],
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
            "x-forwarded-for": client_ip,
        }
        if c.compact:
            del headers["accept"]
        elif ua[1] is not None:
            headers["x-stainless-lang"] = ua[1]
            headers["x-stainless-package-version"] = ua[0].split(" ")[-1]
        if cred is not None and not cred.key_auth:
            headers["authorization"] = "REDACTED"  # Kong redacts it in the log
        if unauthorized and rng.random() < 0.5:
            headers["apikey"] = f"{rng.getrandbits(128):032x}"  # a wrong key, logged as sent
        if cred is not None and rng.random() < 0.1:
            headers["x-session-id"] = f"sess-{rng.getrandbits(48):012x}"
        # bodies and usage
        user = rng.choice(cred.users) if cred is not None else "anonymous"
        tools = not embeddings and rng.random() < 0.12
        if embeddings:
            text = self._text(rng, 20, 120)
            body: dict[str, object] = {"model": model.request_model, "input": text, "user": user}
            chars = len(text)
        else:
            body, chars = self._chat_request(
                rng, model, tenant or self.tenants[0], stream, user, tools
            )
        req_json = _DUMPS(body)
        prompt = max(8, int(chars / 3.9) + rng.randint(5, 40))
        cached = (prompt // 128) * 128 if prompt >= 256 and rng.random() < 0.3 else 0
        completion = 0 if embeddings else int(rng.lognormvariate(5.0, 0.9)) + 1
        reasoning = int(completion * rng.uniform(0.5, 3.0)) if model.reasoning else 0
        finish = "stop"
        tool_call = tools and rng.random() < 0.6
        if tool_call:
            finish = "tool_calls"
        elif rng.random() < 0.04:
            finish = "length"
        elif model.provider == "azure" and rng.random() < 0.02:
            finish = "content_filter"  # the completion was filtered
        llm_latency = int(150 + completion * rng.uniform(8, 25) + reasoning * 10)
        kong_ms = rng.randint(0, 4)
        status, upstream_status, source = 200, "200", "upstream"
        resp_json: str | None = None
        ai = True
        resp_headers: dict[str, str] = {"x-kong-request-id": request_id}
        if outcome == "unauthorized":
            status, upstream_status, source, ai = 401, "", "kong", False
            resp_body = (
                '{"message":"Unauthorized"}'
                if "apikey" in headers
                else ('{"message":"No API key found in request"}')
            )
            resp_headers["www-authenticate"] = 'Key realm="kong"'
        elif outcome == "gateway_429":
            status, upstream_status, source, ai = 429, "", "kong", False
            resp_body = '{"message":"API rate limit exceeded"}'
            resp_headers.update(
                {
                    "x-ratelimit-limit-minute": "60",
                    "x-ratelimit-remaining-minute": "0",
                    "ratelimit-limit": "60",
                    "ratelimit-remaining": "0",
                    "ratelimit-reset": str(rng.randint(1, 59)),
                    "retry-after": str(rng.randint(1, 59)),
                }
            )
        elif outcome == "upstream_429":
            status, upstream_status = 429, "429"
            completion = 0
            resp_json = _DUMPS(
                {
                    "error": {
                        "message": f"Rate limit reached for {model.request_model} on tokens "
                        f"per min (TPM): Limit 30000, Used {rng.randint(28000, 30000)}, "
                        f"Requested {prompt}. Please try again in "
                        f"{rng.randint(1, 9)}.{rng.randint(0, 9)}s.",
                        "type": "tokens",
                        "param": None,
                        "code": "rate_limit_exceeded",
                    }
                }
            )
            llm_latency = rng.randint(30, 200)
        elif outcome == "content_filter":
            status, upstream_status = 400, "400"
            completion = 0
            resp_json = _DUMPS(
                {
                    "error": {
                        "message": "The response was filtered due to the prompt triggering "
                        "Azure OpenAI's content management policy. Please modify your prompt "
                        "and retry.",
                        "type": None,
                        "param": "prompt",
                        "code": "content_filter",
                        "status": 400,
                        "innererror": {
                            "code": "ResponsibleAIPolicyViolation",
                            "content_filter_result": {
                                "hate": {"filtered": False, "severity": "safe"},
                                "violence": {"filtered": True, "severity": "medium"},
                            },
                        },
                    }
                }
            )
            llm_latency = rng.randint(80, 400)
        elif outcome == "server_error":
            status = rng.choice((500, 502, 503))
            upstream_status = str(status)
            completion = 0
            resp_json = _DUMPS(
                {
                    "error": {
                        "message": "The server had an error while processing your request.",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                }
            )
            llm_latency = rng.randint(500, 30000)
        elif embeddings:
            resp_json = _DUMPS(
                {
                    "object": "list",
                    "model": model.response_model,
                    "data": [{"object": "embedding", "index": 0, "embedding": "<omitted>"}],
                    "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
                }
            )
        else:
            resp_json = _DUMPS(
                self._chat_response(
                    rng, model, started // 1000, prompt, completion, cached, tool_call, finish
                )
            )
        if resp_json is not None:
            resp_body = resp_json
        proxy_ms = llm_latency + rng.randint(1, 30) if source == "upstream" else -1
        request_ms = kong_ms + max(proxy_ms, 0) + rng.randint(0, 5)
        req_size = len(req_json) + 420 + len(ua[0])
        resp_size = len(resp_body) + 380
        resp_headers.update(
            {
                "content-type": "text/event-stream"
                if stream and status == 200
                else "application/json; charset=utf-8",
                "content-length": str(len(resp_body)),
            }
        )
        if source == "upstream":
            resp_headers.update(
                {
                    "x-kong-upstream-latency": str(proxy_ms),
                    "x-kong-proxy-latency": str(kong_ms),
                    "x-kong-llm-model": f"{model.provider}/{model.request_model}",
                }
            )
        if c.compact:
            route = {"id": route["id"], "name": route["name"]}
            service = {k: service[k] for k in ("id", "name", "host")}
            for k in ("content-length", "x-kong-upstream-latency", "x-kong-proxy-latency"):
                resp_headers.pop(k, None)
        request: dict[str, object] = {
            "id": request_id,
            "method": "POST",
            "uri": path,
            "url": f"https://{c.host}:443{path}",
            "size": req_size,
            "querystring": {},
            "headers": headers,
        }
        if not c.compact:
            request["tls"] = {"version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384"}
        rec: dict[str, object] = {
            "request": request,
            "response": {"status": status, "size": resp_size, "headers": resp_headers},
            "latencies": {
                "kong": kong_ms,
                "proxy": proxy_ms,
                "request": request_ms,
                "receive": rng.randint(0, 8) if source == "upstream" else 0,
            },
            "upstream_uri": _ROUTES[model.route][3],
            "client_ip": client_ip,
            "started_at": started,
            "source": source,
            "route": route,
            "service": service,
            "workspace": self.workspace,
            "workspace_name": "default",
        }
        if c.compact:
            del rec["workspace"]
        if upstream_status:
            rec["upstream_status"] = upstream_status
        if upstream_status and not c.compact:
            host = str(service["host"])
            rec["tries"] = [
                {
                    "balancer_start": started + kong_ms,
                    "ip": _UPSTREAM_IPS[host],
                    "port": 443,
                    "balancer_latency": 0,
                }
            ]
        if cred is not None and tenant is not None:
            rec["consumer"] = {
                "id": tenant.consumer_id,
                "username": f"tenant-{tenant.name}",
                "custom_id": tenant.custom_id,
            }
            rec["authenticated_entity"] = {"id": cred.id, "consumer_id": tenant.consumer_id}
        payloads = tenant is None or tenant.payloads
        if ai:
            meta: dict[str, object] = {
                "plugin_id": self.plugin_ids[model.provider],
                "provider_name": model.provider,
                "request_model": model.request_model,
                "response_model": model.response_model,
                "llm_latency": llm_latency,
            }
            cost = round((prompt * model.price_in + completion * model.price_out) / 1e6, 6)
            if not legacy:
                meta["request_mode"] = "stream" if stream else "oneshot"
                usage: dict[str, object] = {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                    "prompt_tokens_details": {"cached_tokens": cached},
                    "cost": cost,
                }
                if model.reasoning:
                    usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
                if completion:
                    usage["time_per_token"] = round(llm_latency / completion, 3)
                block: dict[str, object] = {"meta": meta, "usage": usage}
                if payloads:
                    block["payload"] = {"request": req_json, "response": resp_body}
                rec["ai"] = {"proxy": block}
            else:
                usage = {
                    "prompt_token": prompt,
                    "completion_token": completion,
                    "total_tokens": prompt + completion,
                    "cost": cost,
                }
                if completion:
                    usage["time_per_token"] = round(llm_latency / completion, 3)
                legacy_block: dict[str, object] = {"usage": usage, "meta": meta}
                rec["ai"] = {"ai-proxy": legacy_block}
                if payloads:
                    legacy_block["payload"] = {"response": resp_body}
                    rec["ai"] = {"payload": {"request": req_json}, "ai-proxy": legacy_block}
        return rec

    def lines(self) -> Iterator[str]:
        for rec in self.records():
            yield _DUMPS(rec)

    def iptoasn(self) -> list[str]:
        return iptoasn_lines(self.networks, self.config.seed)


# --- writing -------------------------------------------------------------------------------


def write_lines(path: Path, lines: Iterator[str], batch: int = 4000) -> tuple[int, int]:
    """Write lines (newline-terminated) in batches; `.gz` paths are gzip-compressed.

    Returns (lines written, uncompressed bytes).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    count = size = 0
    if path.suffix == ".gz":
        f = gzip.open(path, "wb", compresslevel=5)
    else:
        f = path.open("wb", buffering=8 * 1024 * 1024)
    with f:
        buf: list[str] = []
        for line in lines:
            buf.append(line)
            if len(buf) >= batch:
                data = ("\n".join(buf) + "\n").encode()
                f.write(data)
                count, size, buf = count + len(buf), size + len(data), []
        if buf:
            data = ("\n".join(buf) + "\n").encode()
            f.write(data)
            count, size = count + len(buf), size + len(data)
    return count, size


def write_kong(path: Path, config: KongConfig) -> tuple[int, int]:
    """Write `config.lines` Kong records to `path` (optionally .gz); (lines, bytes)."""
    return write_lines(path, KongGenerator(config).lines())


def write_iptoasn(path: Path, config: KongConfig) -> int:
    """Write the iptoasn TSV that covers every address `config` can emit; ranges written."""
    gen_networks = (
        documentation_networks()
        if config.networks == "documentation"
        else public_networks(config.seed, config.network_count)
    )
    lines = iptoasn_lines(gen_networks, config.seed)
    write_lines(path, iter(lines))
    return len(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=10_000)
    p.add_argument("--start", default="2026-11-16T00:00:00+00:00", help="ISO-8601 start time")
    p.add_argument("--days", type=float, default=1.0, help="duration in days")
    p.add_argument("--tenants", type=int, default=30)
    p.add_argument("--credentials", type=int, default=150)
    p.add_argument("--ip-pool", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=20261128)
    p.add_argument(
        "--documentation-ips",
        action="store_true",
        help="use only 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24",
    )
    p.add_argument("-o", "--output", type=Path, required=True, help=".jsonl or .jsonl.gz")
    p.add_argument("--iptoasn", type=Path, help="also write the matching iptoasn TSV here")
    a = p.parse_args(argv)
    config = KongConfig(
        lines=a.lines,
        start=datetime.fromisoformat(a.start).astimezone(UTC),
        duration=timedelta(days=a.days),
        tenants=a.tenants,
        credentials=a.credentials,
        ip_pool=a.ip_pool,
        seed=a.seed,
        networks="documentation" if a.documentation_ips else "public",
    )
    n, size = write_kong(a.output, config)
    print(f"{a.output}: {n:,} lines, {size / 1e6:,.1f} MB", file=sys.stderr)
    if a.iptoasn:
        ranges = write_iptoasn(a.iptoasn, config)
        print(f"{a.iptoasn}: {ranges:,} ranges", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
