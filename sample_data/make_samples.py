"""Regenerate the composed sample logs in sample_data/logs/ (deterministic: same bytes each run).

    .venv/bin/python sample_data/make_samples.py

Writes logs/kong.jsonl (Kong file-log with the AI Proxy block, from benchmarks/kong_gen.py),
logs/access.log (nginx combined) and ip2asn-doc.tsv (an iptoasn TSV for the documentation
ranges). Every record is invented; see README.md.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
LOGS = HERE / "logs"
SEED = 20261128
START = datetime(2026, 11, 23, tzinfo=UTC)
DAYS = 3
KONG_LINES = 140


def load_generator() -> ModuleType:
    """benchmarks/kong_gen.py, imported by path (benchmarks/ is not a package)."""
    path = HERE.parent / "benchmarks" / "kong_gen.py"
    spec = importlib.util.spec_from_file_location("kong_gen", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["kong_gen"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def kong_lines(gen: ModuleType) -> list[str]:
    """Four tenants over three days; one tenant's key is used from dozens of hosting / VPN
    addresses from the middle of the window on. Two lines are broken on purpose."""
    config = gen.KongConfig(
        lines=KONG_LINES,
        start=START,
        duration=timedelta(days=DAYS),
        tenants=4,
        credentials=10,
        ip_pool=160,
        seed=SEED,
        networks="documentation",
        legacy_share=0.03,
        stream_share=0.2,
        unauthorized_share=0.03,
        gateway_429_share=0.04,
        upstream_429_share=0.02,
        azure_filter_share=0.3,
        server_error_share=0.01,
        client_side_share=0.0,  # every key is a server's: the leaked one stands out
        leaked_credentials=1,
        leak_from=0.5,
        leak_rate=0.45,
        leak_ips=60,
        payload_share=1.0,
        compact=True,
    )
    lines: list[str] = list(gen.KongGenerator(config).lines())
    # A record cut off half-way (the writer died mid-line) ...
    cut = len(lines) * 2 // 3
    lines[cut] = lines[cut][: len(lines[cut]) // 2]
    # ... and a line of Kong's error.log that ended up in the access log file.
    lines.insert(
        len(lines) // 3,
        "2026/11/24 03:12:45 [warn] 1290#0: *88213 a client request body is buffered to a"
        " temporary file /usr/local/kong/client_body_temp/0000000042, client: 192.0.2.50,"
        ' server: kong, request: "POST /openai/v1/chat/completions HTTP/1.1",'
        ' host: "ai-gw.example.net"',
    )
    return lines


# nginx in front of an OpenAI-compatible API, logging local time (CET, UTC+1).
_CET = timezone(timedelta(hours=1))
_SCANNER_PATHS = (
    "/.env",
    "/.git/config",
    "/wp-login.php",
    "/admin",
    "/phpmyadmin/",
    "/server-status",
    "/actuator/env",
    "/v1/../../etc/passwd",
    "/api/.env",
    "/config.json",
    "/.aws/credentials",
    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
    "/debug/default/view",
    "/v1/models?limit=1000",
    "/swagger.json",
    "/.DS_Store",
)


def access_lines(rng: random.Random, count: int = 300) -> list[str]:
    """nginx combined lines: API clients, a bursty client that hits 429s, a mobile app, a
    health check, and a scanner probing for config files."""
    clients = [
        # (address, user agent, weight, kind)
        ("198.51.100.23", "python-httpx/0.27.2", 30, "chat"),
        ("198.51.100.24", "python-httpx/0.27.2", 10, "chat"),
        ("192.0.2.77", "OpenAI/Python 1.58.1", 20, "embed"),
        ("203.0.113.9", "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", 14, "burst"),
        ("192.0.2.140", "AcmeNotes/5.2.1 (Android 14; Pixel 8)", 6, "app"),
        ("192.0.2.141", "AcmeNotes/5.2.1 (iOS 18.1; iPhone15,2)", 6, "app"),
        ("203.0.113.150", "AcmeNotes/5.2.1 (Android 13; SM-S911B)", 4, "app"),
        ("192.0.2.10", "kube-probe/1.30", 6, "health"),
    ]
    scanner = ("203.0.113.200", "Mozilla/5.0 zgrab/0.x")
    t0 = START.astimezone(_CET) + timedelta(hours=7)
    span = timedelta(days=DAYS) - timedelta(hours=8)
    events: list[tuple[datetime, str]] = []
    weights = [c[2] for c in clients]
    n_scan = len(_SCANNER_PATHS)
    burst_at = t0 + span * 0.4
    for _ in range(count - n_scan):
        ip, ua, _w, kind = rng.choices(clients, weights)[0]
        when = t0 + span * rng.random()
        if kind == "burst" and rng.random() < 0.7:
            when = burst_at + timedelta(seconds=rng.uniform(0, 240))
        status, method, path, size, referer = 200, "POST", "/v1/chat/completions", 0, "-"
        if kind == "chat":
            path = rng.choice(("/v1/chat/completions",) * 4 + ("/v1/responses",))
            size = rng.randint(600, 4200)
        elif kind == "embed":
            path, size = "/v1/embeddings", rng.randint(9000, 40000)
        elif kind == "burst":
            size = rng.randint(500, 3000)
            if burst_at <= when <= burst_at + timedelta(seconds=240) and rng.random() < 0.6:
                status, size = 429, 186
        elif kind == "app":
            size, referer = rng.randint(400, 2500), "-"
            if rng.random() < 0.1:
                method, path, size = "GET", "/v1/models", 1930
        else:
            method, path, size = "GET", "/healthz", 2
        if kind != "health" and status == 200:
            roll = rng.random()
            if roll < 0.03:
                status, size = 401, 178
            elif roll < 0.05:
                status, size = 400, 214
            elif roll < 0.06:
                status, size = 502, 157
        events.append((when, _combined(ip, when, method, path, status, size, referer, ua)))
    scan_at = t0 + span * 0.7
    for i, path in enumerate(_SCANNER_PATHS):
        when = scan_at + timedelta(seconds=i * rng.uniform(0.3, 2.5))
        method = "GET"
        status, size = (404, 153) if not path.startswith("/v1/models") else (401, 178)
        events.append(
            (when, _combined(scanner[0], when, method, path, status, size, "-", scanner[1]))
        )
    events.sort(key=lambda e: e[0])
    return [line for _, line in events]


def _combined(
    ip: str, when: datetime, method: str, path: str, status: int, size: int, referer: str, ua: str
) -> str:
    stamp = when.strftime("%d/%b/%Y:%H:%M:%S %z")
    return f'{ip} - - [{stamp}] "{method} {path} HTTP/1.1" {status} {size} "{referer}" "{ua}"'


def write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
    print(f"{path.relative_to(HERE.parent)}: {len(lines)} lines, {path.stat().st_size:,} bytes")


def main() -> int:
    gen = load_generator()
    write(LOGS / "kong.jsonl", kong_lines(gen))
    write(LOGS / "access.log", access_lines(random.Random(SEED)))  # noqa: S311 - composed data
    write(HERE / "ip2asn-doc.tsv", gen.iptoasn_lines(gen.documentation_networks(), SEED, 1.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
