"""The cast of a synthetic world: networks, models, tenants and their credentials.

Everything is drawn from one `random.Random`, so a seed gives the same world every time. The
address plan is invented (addresses are assigned to networks by this module and described by the
iptoasn file the world writes), but the networks are the kinds an investigator meets: public
clouds, big residential ISPs, mobile carriers, enterprise egress (Zscaler), a privacy relay, and
small VPS or proxy networks. Real AS numbers are used for the big names so that the categories
forensics ships (asn_categories.csv) apply to them; small networks get private-use AS numbers
(4200000000-4294967294), which no category list names.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
import uuid
from dataclasses import dataclass, field

# --- networks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Network:
    """One routed IPv4 block: `first` .. `first + size - 1` (ints), one AS, one country."""

    first: int
    size: int
    asn: int
    country: str
    org: str
    kind: str  # cloud | isp | mobile | egress | relay | vps | office

    @property
    def last(self) -> int:
        return self.first + self.size - 1

    def address(self, rng: random.Random) -> str:
        return ip_text(self.first + rng.randrange(1, self.size - 1))

    def slash24(self, rng: random.Random) -> list[str]:
        """A few addresses of one /24 of the block (a tenant's own servers)."""
        base = self.first + 256 * rng.randrange(self.size // 256)
        return [ip_text(base + rng.randrange(2, 254)) for _ in range(rng.randint(1, 3))]


def ip_text(n: int) -> str:
    return f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


# (asn, org, kind, countries): one /16 per country. Real AS numbers for the big names so the
# shipped category list applies (hosting, isp, mobile, enterprise_egress, privacy_relay).
_BIG_NETWORKS: tuple[tuple[int, str, str, tuple[str, ...]], ...] = (
    (16509, "AMAZON-02", "cloud", ("US", "IE", "DE", "JP", "SG")),
    (14618, "AMAZON-AES", "cloud", ("US",)),
    (8075, "MICROSOFT-CORP-MSN-AS-BLOCK", "cloud", ("US", "NL", "IE")),
    (396982, "GOOGLE-CLOUD-PLATFORM", "cloud", ("US", "BE", "NL")),
    (24940, "HETZNER-AS", "cloud", ("DE", "FI")),
    (7922, "COMCAST-7922", "isp", ("US",)),
    (3320, "DTAG Deutsche Telekom AG", "isp", ("DE",)),
    (2856, "BT-UK-AS British Telecommunications PLC", "isp", ("GB",)),
    (3215, "Orange S.A.", "isp", ("FR",)),
    (4713, "OCN NTT Communications Corporation", "isp", ("JP",)),
    (7545, "TPG-INTERNET-AP", "isp", ("AU",)),
    (28573, "Claro NXT Telecomunicacoes Ltda", "isp", ("BR",)),
    (24560, "BHARTI-IN Bharti Airtel Ltd.", "isp", ("IN",)),
    (21928, "T-MOBILE-AS21928", "mobile", ("US",)),
    (22616, "ZSCALER-SJC1", "egress", ("US", "GB", "DE", "SG")),
    (36183, "AKAMAI-AS (iCloud Private Relay)", "relay", ("US", "GB", "FR", "JP")),
)

# Countries of residential proxy exits (a leaked key replayed through them).
_PROXY_COUNTRIES = ("BR", "IN", "VN", "ID", "TR", "MX", "NG", "UA", "RO", "PH", "TH", "AR", "ZA")
_ISP_WORDS = ("Net", "Telecom", "Fibra", "Broadband", "Online", "Link", "Cable", "Wave")
_VPS_WORDS = ("Host", "VPS", "Servers", "Cloud", "Datacenter", "Compute")
_PRIVATE_ASN = 4_200_000_000


class AddressPlan:
    """Hands out /16 blocks (one per network) and remembers every network for iptoasn."""

    # First octets of public unicast space only (no 0/8, 10/8, 100.64/10's /8, 127/8, 169/8,
    # 172/8, 192/8, 198/8, 203/8, multicast and above).
    _FIRST = tuple(o for o in range(11, 223) if o not in {100, 127, 169, 172, 192, 198, 203})

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[int] = set()
        self.networks: list[Network] = []
        self._private = _PRIVATE_ASN + rng.randrange(10_000)

    def _block(self, prefix: int) -> int:
        while True:
            base = (self._rng.choice(self._FIRST) << 24) | (self._rng.randrange(256) << 16)
            if base not in self._used:
                self._used.add(base)
                return base if prefix == 16 else base + (self._rng.randrange(256) << 8)

    def add(self, asn: int, org: str, kind: str, country: str, prefix: int = 16) -> Network:
        net = Network(self._block(prefix), 1 << (32 - prefix), asn, country, org, kind)
        self.networks.append(net)
        return net

    def small(self, kind: str, country: str) -> Network:
        """A small network under a private-use AS number (uncategorised)."""
        self._private += 1 + self._rng.randrange(50)
        words = _VPS_WORDS if kind == "vps" else _ISP_WORDS
        name = f"{self._rng.choice(('Nova', 'Atlas', 'Blue', 'Orbit', 'Prime', 'Delta'))}"
        org = f"{name.upper()}-{country} {name} {self._rng.choice(words)}"
        return self.add(self._private, org, kind, country, prefix=20)


@dataclass
class Networks:
    """The world's networks, by what they are used for."""

    plan: AddressPlan
    clouds: list[Network]
    isps: dict[str, Network]  # country -> the big ISP there
    mobile: Network
    egress: list[Network]
    relay: list[Network]
    proxies: list[Network]  # residential networks abroad (proxy exits)
    vps: list[Network]  # small hosting networks

    @classmethod
    def build(cls, rng: random.Random) -> Networks:
        plan = AddressPlan(rng)
        clouds, egress, relay = [], [], []
        isps: dict[str, Network] = {}
        mobile: Network | None = None
        for asn, org, kind, countries in _BIG_NETWORKS:
            for country in countries:
                net = plan.add(asn, org, kind, country)
                if kind == "cloud":
                    clouds.append(net)
                elif kind == "isp":
                    isps[country] = net
                elif kind == "mobile":
                    mobile = net
                elif kind == "egress":
                    egress.append(net)
                else:
                    relay.append(net)
        if mobile is None:
            raise ValueError("the network plan has no mobile carrier")
        proxies = [plan.small("isp", c) for c in _PROXY_COUNTRIES for _ in range(2)]
        vps = [plan.small("vps", c) for c in ("NL", "RO", "US", "DE", "LT", "SC")]
        return cls(plan, clouds, isps, mobile, egress, relay, proxies, vps)


# --- models ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """A model the gateway routes to; prices in USD per million tokens."""

    provider: str  # openai | azure | anthropic
    name: str  # what the client asks for
    snapshot: str  # what the provider answers with
    endpoint: str  # chat | embeddings
    price_in: float
    price_out: float

    @property
    def path(self) -> str:
        return (
            "/openai/v1/embeddings" if self.endpoint == "embeddings" else _CHAT_PATHS[self.provider]
        )


_CHAT_PATHS = {
    "openai": "/openai/v1/chat/completions",
    "azure": "/azure/v1/chat/completions",
    "anthropic": "/anthropic/v1/messages",
}

MODELS = {
    m.name: m
    for m in (
        Model("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "chat", 0.15, 0.6),
        Model("openai", "gpt-4o", "gpt-4o-2024-08-06", "chat", 2.5, 10.0),
        Model("openai", "gpt-4.1", "gpt-4.1-2025-04-14", "chat", 2.0, 8.0),
        Model("openai", "o1", "o1-2024-12-17", "chat", 15.0, 60.0),
        Model("azure", "gpt-4o-azure", "gpt-4o-2024-11-20", "chat", 2.5, 10.0),
        Model("anthropic", "claude-3-5-haiku", "claude-3-5-haiku-20241022", "chat", 0.8, 4.0),
        Model("anthropic", "claude-sonnet-4", "claude-sonnet-4-20250514", "chat", 3.0, 15.0),
        Model("anthropic", "claude-opus-4", "claude-opus-4-20250514", "chat", 15.0, 75.0),
        Model("openai", "text-embedding-3-small", "text-embedding-3-small", "embeddings", 0.02, 0),
        Model("openai", "text-embedding-3-large", "text-embedding-3-large", "embeddings", 0.13, 0),
    )
}
CHEAP_CHAT = ("gpt-4o-mini", "claude-3-5-haiku", "gpt-4.1", "gpt-4o", "claude-sonnet-4")
EXPENSIVE = ("o1", "claude-opus-4")


# --- tenants and credentials ----------------------------------------------------------------

# Where a tenant's people are: UTC offset of their working day, home country.
_ZONES = (
    (-5, "US"),
    (-8, "US"),
    (0, "GB"),
    (1, "DE"),
    (1, "FR"),
    (9, "JP"),
    (10, "AU"),
    (-3, "BR"),
    (5, "IN"),
)
_NAMES = (
    "acme globex initech umbrella hooli stark wayne wonka tyrell cyberdyne soylent aperture "
    "gringotts oscorp vandelay piedpiper monarch nakatomi duff virtucon gekko kramerica "
    "bluth dunder prestige oceanic rekall sirius tessier zorg abstergo blackmesa cogswell "
    "spacely sterling wernham yoyodyne lacuna momcorp planetexpress ingen encom dharma "
    "massive genco bigkahuna krusty octan poseidon primatech"
).split()


@dataclass
class Credential:
    """One gateway credential (Kong key-auth / JWT credential, LiteLLM virtual key)."""

    id: str  # Kong authenticated_entity.id or LiteLLM key hash: what the case stores
    tenant: Tenant
    kind: str  # server | office | developer | mobile | relay
    ips: list[str]
    networks: list[Network]
    user_agent: str
    models: list[str]
    model_weights: list[float]
    daily: float  # mean requests per active day
    stream_share: float = 0.3
    tool_share: float = 0.0  # share of chat responses that call tools
    tools_per_call: tuple[int, int] = (1, 2)
    output_scale: float = 1.0
    error_shares: dict[str, float] = field(default_factory=dict)
    auth: str = "key"  # key | jwt
    jwt_issuer: str = ""
    jwt_kid: str = ""
    jwt_lifetime: int = 900  # seconds
    weekdays_only: bool = False
    hours: tuple[int, int] | None = None  # active UTC hours [start, end) instead of diurnal
    gateway: str = "kong"  # kong | litellm
    users: list[str] = field(default_factory=list)
    system_prompt: str = ""
    origin: str | None = None


@dataclass
class Tenant:
    name: str  # consumer username: the tenant_id in the case
    consumer_id: str
    utc_offset: int
    country: str
    project: str  # the provider project / workspace its traffic is billed to
    credentials: list[Credential] = field(default_factory=list)
    role: str = "background"  # background | lookalike | abuse


def uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def tenant_names(rng: random.Random, count: int) -> list[str]:
    names = list(_NAMES)
    rng.shuffle(names)
    out = []
    for i in range(count):
        base = names[i % len(names)]
        out.append(f"tenant-{base}" + ("" if i < len(names) else f"-{i // len(names) + 1}"))
    return out


def zone(rng: random.Random) -> tuple[int, str]:
    return rng.choice(_ZONES)


# --- JWTs -----------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(
    rng: random.Random,
    issuer: str,
    kid: str,
    subject: str,
    iat: int,
    exp: int | None,
    extra: dict[str, object] | None = None,
) -> str:
    """An RS256-shaped JWT whose signature is random bytes (no key signs synthetic tokens)."""
    header = {"alg": "RS256", "typ": "JWT", "kid": kid}
    claims: dict[str, object] = {
        "iss": issuer,
        "sub": subject,
        "aud": "ai-gateway",
        "iat": iat,
        "jti": uid(rng),
        "scope": "chat embeddings",
    }
    if exp is not None:
        claims["exp"] = exp
    claims.update(extra or {})
    parts = (
        _b64(json.dumps(header, separators=(",", ":")).encode()),
        _b64(json.dumps(claims, separators=(",", ":")).encode()),
        _b64(rng.getrandbits(2048).to_bytes(256, "big")),
    )
    return ".".join(parts)


def utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)
