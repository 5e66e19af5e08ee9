"""Account farms and API tools on home connections: the scenarios `abuse.account_farm` and
`credential.dev_tool_use` must find, each with the legitimate look-alikes it must not punish.

`account_farm` draws one of two shapes, each from many addresses of a few networks:

* signup: one script opening the sign-up form and sending it within a second or two, some
  then creating an API key (mass free-trial sign-up), from a few small hosting networks;
* stuffing: one script sending one to four logins per address, nearly all refused
  (credential stuffing through residential proxies, some on IPv6).

Farms replay stale browser strings or script agents, as the bots of public web logs do; the
label names the network with most farm addresses (the ASN, or the /64 of an IPv6 address), the
principal the detector names. Its look-alikes, not labelled: a launch-day wave of sign-ups on
current browsers from home and mobile connections, each new user going on to use the product
(some leave at once), and an office whose people log in through one NAT address and then work.

`dev_tool_use` is a production key (servers on a cloud) that a developer also sends from
Postman, Insomnia, curl or HTTPie at home, a few times on one day. Its look-alikes, in one
tenant: curl smoke tests from a CI runner on a cloud, and a developer's per-user JWT in Postman
at home.

Requests that are not model calls are `Call`s with a path, a method and a status and no
credential (a session cookie or a password is no gateway credential).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from forensics.synth.scenarios import HOUR, World
from forensics.synth.traffic import Call, make_call
from forensics.synth.world import MODELS, Network, make_jwt

FARM_AGENTS = (
    "Mozilla/5.0 (Windows NT 6.1; rv:32.0) Gecko/20100101 Firefox/32.0",
    "Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/39.0.2171.95 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/109.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " HeadlessChrome/120.0.6099.71 Safari/537.36",
)
STUFFING_AGENTS = ("python-requests/2.28.1", "aiohttp/3.8.4", *FARM_AGENTS[2:])
TOOL_AGENTS = (
    "PostmanRuntime/7.39.0",
    "PostmanRuntime/7.42.0",
    "insomnia/2023.5.8",
    "curl/8.7.1",
    "HTTPie/3.2.2",
)
SIGNUP_PATHS = ("/signup", "/register", "/v1/signup", "/join_form", "/accounts/register")
LOGIN_PATHS = ("/login", "/oauth/token", "/v1/auth/login", "/users/sign_in")
KEY_PATH = "/v1/organization/api_keys"
PRODUCT_PATHS = ("/dashboard", "/playground", "/usage", "/billing", "/settings/profile")
_FARM_COUNTRIES = ("NL", "RO", "US", "DE", "LT", "SC", "HK", "RU")
_PROXY_COUNTRIES = ("BR", "IN", "VN", "ID", "TR", "MX", "NG", "UA", "PH", "TH", "AR", "PL")
_MODEL = MODELS["gpt-4o-mini"]  # a Call names a model even when it is not a model call


def _request(ts: float, ip: str, agent: str, path: str, method: str, status: int) -> Call:
    """A request that is not a model call, without a gateway credential."""
    outcome = {401: "unauthorized", 403: "unauthorized", 429: "rate_limited"}.get(status, "ok")
    call = Call(ts, None, ip, _MODEL, agent, path=path, method=method, status=status)
    call.outcome = outcome
    call.latency_ms = 40 + int(ts * 1000) % 160
    return call


def _ipv6(w: World) -> str:
    """A global IPv6 address in a /64 of its own (no ASN: the world's ASN table is IPv4)."""
    rng = w.rng
    groups = [f"2a0{rng.randrange(1, 10)}", *(f"{rng.getrandbits(16):x}" for _ in range(3))]
    return ":".join(groups) + f"::{rng.randrange(1, 0xFFFF):x}"


def _network_key(ip: str, net: Network | None) -> tuple[str, str]:
    """(principal type, id) of the network the detector names for an address."""
    if net is not None:
        return "asn", str(net.asn)
    return "cidr", ":".join(ip.split(":")[:4]).lower() + "::/64"


def _addresses(
    w: World, nets: list[Network], count: int, v6_share: float
) -> list[tuple[str, str, str]]:
    """`count` distinct addresses as (ip, network type, network id), the first network the
    busiest, a share of them IPv6."""
    rng = w.rng
    weights = [rng.uniform(2.5, 4.0)] + [rng.uniform(0.5, 1.5) for _ in nets[1:]]
    seen: set[str] = set()
    out: list[tuple[str, str, str]] = []
    while len(out) < count:
        if rng.random() < v6_share:
            ip, net = _ipv6(w), None
        else:
            net = rng.choices(nets, weights)[0]
            ip = net.address(rng)
        if ip in seen:
            continue
        seen.add(ip)
        out.append((ip, *_network_key(ip, net)))
    return out


def _signup_run(w: World, ip: str, agent: str, t: float, path: str, key_step: bool) -> float:
    """One scripted sign-up from `ip`: GET the form, POST it a second or two later, maybe
    create a key. The time it ended."""
    rng = w.rng
    w.calls.append(_request(t, ip, agent, path, "GET", 200))
    if rng.random() < 0.08:
        return t  # the run stopped after the form
    t += rng.uniform(0.3, 2.5)
    status = rng.choices((201, 429, 400), (0.85, 0.1, 0.05))[0]
    w.calls.append(_request(t, ip, agent, path, "POST", status))
    if key_step and status == 201:
        t += rng.uniform(1, 5)
        w.calls.append(_request(t, ip, agent, KEY_PATH, "POST", 201))
    return t


def _stuffing_run(w: World, ip: str, agent: str, t: float, path: str) -> float:
    """One to four logins from `ip` a few seconds apart, nearly all refused."""
    rng = w.rng
    for _ in range(rng.randint(1, 4)):
        status = rng.choices((401, 200, 429), (0.93, 0.02, 0.05))[0]
        w.calls.append(_request(t, ip, agent, path, "POST", status))
        t += rng.uniform(1, 20)
    return t


def account_farm(w: World) -> None:
    """Many addresses of a few networks driving sign-up or login as one script (labelled); a
    launch-day wave and an office logging in behind one NAT (not labelled)."""
    rng = w.rng
    variant = rng.choice(("signup", "stuffing"))
    count = rng.randint(20, 24) if rng.random() < 0.3 else rng.randint(25, 160)
    plan = w.nets.plan
    if variant == "signup":
        countries = rng.sample(_FARM_COUNTRIES, rng.randint(1, 3))
        nets = [plan.small("vps", c) for c in countries]
        addresses = _addresses(w, nets, count, v6_share=0.0)
        agent, path = rng.choice(FARM_AGENTS), rng.choice(SIGNUP_PATHS)
        key_step = rng.random() < 0.6
        sequence = "GET signup > POST signup" + (" > POST key_create" if key_step else "")
    else:
        countries = rng.sample(_PROXY_COUNTRIES, rng.randint(4, 10))
        nets = [plan.small("isp", c) for c in countries]
        addresses = _addresses(w, nets, count, v6_share=rng.uniform(0.0, 0.25))
        agent, path = rng.choice(STUFFING_AGENTS), rng.choice(LOGIN_PATHS)
        key_step = False
        sequence = "POST login"
    day = rng.randrange(w.days)
    span = rng.uniform(0.5, 12) * HOUR
    t0 = w.at(day, rng.uniform(0, 23.5 - span / HOUR))
    first, last = w.at(day + 1), w.at(day)
    for i, (ip, _, _) in enumerate(addresses):
        t = t0 + span * i / count + rng.uniform(0, span / count)
        first = min(first, t)
        for _ in range(1 if rng.random() < 0.9 else 2):  # a few addresses come back once
            if variant == "signup":
                end = _signup_run(w, ip, agent, t, path, key_step)
            else:
                end = _stuffing_run(w, ip, agent, t, path)
            last = max(last, end)
            t = min(end + rng.uniform(60, 900), w.at(day, 23.9))
    tally = Counter((kind, ident) for _, kind, ident in addresses)
    (kind, ident), _ = min(tally.items(), key=lambda item: (-item[1], item[0][1]))
    w.label(
        "account_farm",
        "abuse.account_farm",
        kind,
        ident,
        None,
        first,
        last,
        f"{variant}: {count} addresses on {len(tally)} networks, one client, {sequence}",
    )
    _launch_wave(w)
    _office_logins(w)


def _current_browsers() -> tuple[list[str], list[float]]:
    """User agents of current browsers and their weights: one common string holds about a
    fifth of the people, the rest spread over versions and systems."""
    agents: list[str] = []
    weights: list[float] = []
    for system, share in (
        ("Windows NT 10.0; Win64; x64", 0.5),
        ("Macintosh; Intel Mac OS X 10_15_7", 0.3),
        ("X11; Linux x86_64", 0.08),
    ):
        for version, vshare in ((131, 0.5), (130, 0.3), (129, 0.12), (128, 0.08)):
            agents.append(
                f"Mozilla/5.0 ({system}) AppleWebKit/537.36 (KHTML, like Gecko)"
                f" Chrome/{version}.0.0.0 Safari/537.36"
            )
            weights.append(0.6 * share * vshare)
            agents.append(
                f"Mozilla/5.0 ({system}; rv:{version + 2}.0) Gecko/20100101 Firefox/{version + 2}.0"
            )
            weights.append(0.1 * share * vshare)
    for ios, share in (("18_1", 0.1), ("18_0", 0.05), ("17_6", 0.03)):
        agents.append(
            f"Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) AppleWebKit/605.1.15"
            f" (KHTML, like Gecko) Version/{ios.replace('_', '.')} Mobile/15E148 Safari/604.1"
        )
        weights.append(share)
    for version, share in ((131, 0.08), (130, 0.04)):
        agents.append(
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko)"
            f" Chrome/{version}.0.0.0 Mobile Safari/537.36"
        )
        weights.append(share)
    return agents, weights


def _use_product(w: World, ip: str, agent: str, t: float, count: int) -> None:
    """`count` requests of a signed-in person (pages, the playground) over the next hour."""
    rng = w.rng
    for _ in range(count):
        t += rng.uniform(5, 600)
        method = rng.choice(("GET", "GET", "POST"))
        w.calls.append(_request(t, ip, agent, rng.choice(PRODUCT_PATHS), method, 200))


def _launch_wave(w: World) -> None:
    """Launch day: many people from home and mobile connections sign up on current browsers;
    most go on to use the product, some leave at once."""
    rng = w.rng
    agents, weights = _current_browsers()
    homes = [*w.nets.isps.values(), w.nets.mobile]
    day = rng.randrange(w.days)
    path = rng.choice(SIGNUP_PATHS)
    for _ in range(rng.randint(60, 220)):
        ip = _ipv6(w) if rng.random() < 0.15 else rng.choice(homes).address(rng)
        agent = rng.choices(agents, weights)[0]
        t = w.at(day, rng.uniform(0, 22))
        w.calls.append(_request(t, ip, agent, path, "GET", 200))
        t += rng.uniform(12, 180)  # people type: ten seconds and more
        w.calls.append(_request(t, ip, agent, path, "POST", rng.choice((201, 201, 201, 400))))
        if rng.random() < 0.18:
            continue  # signed up and left
        roles = 2
        if rng.random() < 0.5:
            t += rng.uniform(30, 900)
            w.calls.append(_request(t, ip, agent, KEY_PATH, "POST", 201))
            roles += 1
        _use_product(w, ip, agent, t, rng.randint(roles + 1, 15))


def _office_logins(w: World) -> None:
    """An office: its people log in through one NAT address on one managed browser, some
    mistype a password, then work."""
    rng = w.rng
    agents, _ = _current_browsers()
    agent = agents[0]
    ip = rng.choice(list(w.nets.isps.values())).address(rng)
    path = rng.choice(LOGIN_PATHS)
    for day in range(w.days):
        for _ in range(rng.randint(30, 150)):
            t = w.at(day, rng.uniform(6, 10))
            w.calls.append(_request(t, ip, agent, path, "GET", 200))
            t += rng.uniform(4, 30)
            if rng.random() < 0.1:
                w.calls.append(_request(t, ip, agent, path, "POST", 401))
                t += rng.uniform(5, 40)
            w.calls.append(_request(t, ip, agent, path, "POST", 302))
            _use_product(w, ip, agent, t, rng.randint(3, 20))


def dev_tool_use(w: World) -> None:
    """A production key also sent from an API tool at home on one day (labelled); curl from a
    CI runner on a cloud and a per-user JWT in Postman at home (not labelled)."""
    rng = w.rng
    tenant = w.cast.tenant("abuse")
    cred = w.cast.credential(tenant, "server", daily=rng.uniform(40, 150))
    w.usual(cred)
    home = w.nets.mobile if rng.random() < 0.25 else w.cast.isp(tenant.country)
    ip = home.address(rng)
    agent = rng.choice(TOOL_AGENTS)
    day = rng.randrange(w.days)
    count = rng.randint(3, 5) if rng.random() < 0.4 else rng.randint(6, 40)
    t0 = w.at(day, rng.uniform(0.5, 21))
    times = sorted(t0 + rng.uniform(0, 2.5 * HOUR) for _ in range(count))
    for ts in times:
        call = make_call(rng, cred, ts, ip=ip, stream=False)
        call.user_agent = agent
        w.calls.append(call)
    w.label_credential(
        "dev_tool_use",
        "credential.dev_tool_use",
        cred,
        times[0],
        times[-1],
        f"{count} requests from {agent.split('/')[0]} on {home.org} ({home.kind})",
    )
    # Look-alikes in one tenant: smoke tests by curl from a CI runner on a cloud, and a
    # developer's own short-lived JWT in Postman at home.
    team = w.cast.tenant("lookalike")
    ci = w.cast.credential(team, "server", daily=rng.uniform(20, 60))
    w.usual(ci)
    for d in range(w.days):
        run = w.at(d, rng.uniform(1, 20))
        for k in range(rng.randint(3, 8)):
            call = make_call(rng, ci, run + 20 * k + rng.uniform(0, 5), stream=False)
            call.user_agent = "curl/8.5.0"
            w.calls.append(call)
    issuer = f"https://login.{team.name.removeprefix('tenant-')}.example/"
    dev = w.cast.credential(team, "developer", auth="jwt", jwt_issuer=issuer, jwt_kid="dev-1",
                            daily=rng.uniform(10, 30))  # fmt: skip
    for d in range(w.days):
        for _ in range(rng.randint(0, 12)):
            ts = w.at(d, rng.uniform(7, 19) - team.utc_offset)
            call = make_call(rng, dev, ts, stream=False)
            call.user_agent = rng.choice(TOOL_AGENTS[:2])
            minted = int(ts) - rng.randint(0, 300)
            call.jwt = make_jwt(rng, issuer, "dev-1", f"user-{team.name}", minted, minted + 600)
            w.calls.append(call)


# scenario -> (function, fewest days of data it needs), merged into synth's SCENARIOS
ACCOUNT_SCENARIOS: dict[str, tuple[Callable[[World], None], int]] = {
    "account_farm": (account_farm, 1),
    "dev_tool_use": (dev_tool_use, 1),
}
