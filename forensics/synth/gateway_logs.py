"""The gateway host's logs of a synthetic world (FORMATS.md describes each format).

* Kong file-log JSON lines with the AI Proxy block (`ai.proxy.meta/usage/payload`), payloads
  short by default or full (`payloads.py`);
* LiteLLM `LiteLLM_SpendLogs` rows as JSON lines;
* an nginx combined access log of the gateway host's health checks and web pages.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from forensics.synth.files import dumps, write_lines
from forensics.synth.payloads import request_body, response_body
from forensics.synth.traffic import Call
from forensics.synth.world import uid, utc

GATEWAY_HOST = "ai-gw.example.net"

_UPSTREAM = {
    "openai": ("openai", "api.openai.com"),
    "azure": ("azure-openai", "contoso-ai.openai.azure.com"),
    "anthropic": ("anthropic", "api.anthropic.com"),
}

# --- Kong -----------------------------------------------------------------------------------


def _upstream_uri(call: Call) -> str:
    m = call.model
    if m.endpoint == "embeddings":
        return "/v1/embeddings"
    if m.provider == "anthropic":
        return "/v1/messages"
    if m.provider == "azure":
        return "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    return "/v1/chat/completions"


@dataclass
class KongEntities:
    """Kong route and service entities, one per upstream, made once per log."""

    routes: dict[str, dict[str, str]]
    services: dict[str, dict[str, str]]

    @classmethod
    def make(cls, rng: random.Random) -> KongEntities:
        routes, services = {}, {}
        for provider, (name, host) in _UPSTREAM.items():
            services[provider] = {"id": uid(rng), "name": name, "host": host}
            routes[provider] = {"id": uid(rng), "name": f"{name}-route"}
        return cls(routes, services)


_STATUS = {
    "ok": 200,
    "rate_limited": 429,
    "unauthorized": 401,
    "upstream_429": 429,
    "invalid": 400,
    "content_filter": 400,
    "server": 500,
}


def kong_record(
    rng: random.Random, call: Call, entities: KongEntities, *, full_payloads: bool = False
) -> dict[str, object]:
    """One Kong file-log record (kong.log.serialize() with the AI Proxy block).

    `full_payloads` logs the request and response bodies in full (see `payloads.py`); the
    request's `size` is then that of its body.
    """
    cred = call.cred
    started = int(call.ts * 1000)
    request_id = f"{rng.getrandbits(128):032x}"
    headers: dict[str, str] = {
        "host": GATEWAY_HOST,
        "user-agent": call.user_agent,
        "content-type": "application/json",
        "x-forwarded-for": call.ip,
    }
    if call.origin:
        headers["origin"] = call.origin
    if call.jwt:
        headers["authorization"] = f"Bearer {call.jwt}"
    headers.update(call.extra_headers)
    gateway_refused = call.outcome in ("rate_limited", "unauthorized")
    status = call.status if call.status is not None else _STATUS[call.outcome]
    provider = call.model.provider
    kong_ms = rng.randint(0, 3)
    path = call.model.path if call.path is None else call.path
    size = 400 + len(call.prompt) + len(call.system)
    payload: dict[str, object] | None = None
    if call.path is None and (full_payloads or not gateway_refused):
        sent = dumps(request_body(rng, call, full=full_payloads))
        if full_payloads:
            size = 400 + len(sent.encode())
        if not gateway_refused:
            answered = dumps(response_body(rng, call, full=full_payloads))
            payload = {"request": sent, "response": answered}
    record: dict[str, object] = {
        "request": {
            "id": request_id,
            "method": call.method,
            "uri": path,
            "url": f"https://{GATEWAY_HOST}:443{path}",
            "size": size,
            "querystring": {},
            "headers": headers,
        },
        "response": {
            "status": status,
            "size": 300 + 4 * call.output_tokens,
            "headers": {"content-type": "application/json", "x-kong-request-id": request_id},
        },
        "latencies": {
            "kong": kong_ms,
            "proxy": -1 if gateway_refused else call.latency_ms,
            "request": call.latency_ms + kong_ms,
        },
        "client_ip": call.ip,
        "started_at": started,
        "source": "kong" if gateway_refused else "upstream",
        "route": entities.routes[provider],
        "service": entities.services[provider],
        "workspace_name": "default",
    }
    if not gateway_refused:
        record["upstream_uri"] = _upstream_uri(call) if call.path is None else call.path
        record["upstream_status"] = str(status)
    if cred is not None and call.outcome != "unauthorized":
        record["consumer"] = {"id": cred.tenant.consumer_id, "username": cred.tenant.name}
        record["authenticated_entity"] = {"id": cred.id, "consumer_id": cred.tenant.consumer_id}
    if payload is not None:
        usage: dict[str, object] = {
            "prompt_tokens": call.input_tokens,
            "completion_tokens": call.output_tokens,
            "total_tokens": call.input_tokens + call.output_tokens,
            "prompt_tokens_details": {"cached_tokens": call.cached_tokens},
            "cost": round(call.cost, 6),
        }
        record["ai"] = {
            "proxy": {
                "meta": {
                    "provider_name": provider,
                    "request_model": call.model.name,
                    "response_model": call.model.snapshot,
                    "request_mode": "stream" if call.stream else "oneshot",
                    "llm_latency": call.latency_ms,
                },
                "usage": usage,
                "payload": payload,
            }
        }
    return record


def kong_lines(
    rng: random.Random, calls: list[Call], *, full_payloads: bool = False
) -> Iterator[str]:
    """The Kong log of `calls`, one JSON line each (`full_payloads`: see `kong_record`)."""
    entities = KongEntities.make(rng)
    for call in calls:
        yield dumps(kong_record(rng, call, entities, full_payloads=full_payloads))


def write_kong(
    path: Path, rng: random.Random, calls: list[Call], *, full_payloads: bool = False
) -> int:
    """Write the Kong log of `calls` to `path` (`.gz` / `.zst` compressed); the line count."""
    return write_lines(path, kong_lines(rng, calls, full_payloads=full_payloads))


def kong_calls(calls: list[Call]) -> list[Call]:
    """The calls that went through Kong: those of Kong credentials and those without any."""
    return [c for c in calls if c.cred is None or c.cred.gateway == "kong"]


# --- LiteLLM --------------------------------------------------------------------------------


def _iso_ms(ts: float) -> str:
    return utc(ts).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def litellm_row(rng: random.Random, call: Call) -> dict[str, object]:
    """One LiteLLM_SpendLogs row (a /spend/logs JSON object)."""
    cred = call.cred
    if cred is None:
        raise ValueError("a LiteLLM spend row needs a credential")
    ok = call.outcome == "ok"
    embeddings = call.model.endpoint == "embeddings"
    row: dict[str, object] = {
        "request_id": f"chatcmpl-{uid(rng)}",
        "call_type": "aembedding" if embeddings else "acompletion",
        "api_key": cred.id,
        "spend": round(call.cost, 8),
        "total_tokens": call.input_tokens + call.output_tokens,
        "prompt_tokens": call.input_tokens,
        "completion_tokens": call.output_tokens,
        "startTime": _iso_ms(call.ts),
        "endTime": _iso_ms(call.ts + call.latency_ms / 1000),
        "request_duration_ms": call.latency_ms,
        "model": call.model.snapshot,
        "model_group": call.model.name,
        "custom_llm_provider": call.model.provider,
        "api_base": f"https://{_UPSTREAM[call.model.provider][1]}/v1",
        "user": call.user,
        "end_user": "",
        "team_id": cred.tenant.name,
        "requester_ip_address": call.ip,
        "status": "success" if ok else "failure",
        "metadata": {
            "user_api_key_team_id": cred.tenant.name,
            "user_api_key_alias": f"{cred.tenant.name}-svc",
        },
    }
    if not ok:
        code = {"rate_limited": 429, "upstream_429": 429, "invalid": 400}.get(call.outcome, 500)
        row["metadata"] = {
            **row["metadata"],  # type: ignore[dict-item]
            "error_information": {"error_code": str(code), "error_class": call.outcome},
        }
    return row


def write_litellm(path: Path, rng: random.Random, calls: list[Call]) -> int:
    """Write the LiteLLM spend rows of `calls` to `path`; the row count."""
    return write_lines(path, (dumps(litellm_row(rng, c)) for c in calls))


# --- nginx ----------------------------------------------------------------------------------

_BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/18.1 Safari/605.1.15",
)
_PAGES = ("/", "/docs/", "/docs/quickstart", "/docs/models", "/pricing", "/status")


def nginx_lines(
    rng: random.Random, start: float, days: int, visitors: list[str], checker: str
) -> Iterator[str]:
    """Health checks every 30 s from the load balancer, and people reading the docs."""
    events: list[tuple[float, str, str, int, str]] = []
    t = start + rng.uniform(0, 30)
    while t < start + days * 86400:
        events.append((t, checker, "/healthz", 200, "ELB-HealthChecker/2.0"))
        t += 30
    for _ in range(days * 300):
        events.append(
            (
                start + rng.uniform(0, days * 86400),
                rng.choice(visitors),
                rng.choice(_PAGES),
                rng.choice((200, 200, 200, 304, 404)),
                rng.choice(_BROWSERS),
            )
        )
    events.sort()
    for ts, ip, path, status, agent in events:
        stamp = utc(ts).strftime("%d/%b/%Y:%H:%M:%S +0000")
        size = 2 if path == "/healthz" else rng.randint(800, 40000)
        yield f'{ip} - - [{stamp}] "GET {path} HTTP/1.1" {status} {size} "-" "{agent}"'
