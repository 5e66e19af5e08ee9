"""Writing a synthetic world in the formats forensics reads (see FORMATS.md for each).

* Kong file-log JSON lines with the AI Proxy block (`ai.proxy.meta/usage/payload`);
* LiteLLM `LiteLLM_SpendLogs` rows as JSON lines;
* an nginx combined access log of the gateway host's health checks and web pages;
* OpenAI Usage API pages (completions and embeddings, 1h buckets grouped by project, key and
  model) and an Anthropic messages usage report (1h buckets by workspace, key and model): the
  sums of the calls that reached the provider, plus any usage the gateway never saw;
* an iptoasn.com ip2asn-v4 TSV of every network, revocations and retired-keys CSVs.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from forensics.synth.traffic import Call, words
from forensics.synth.world import Network, ip_text, uid, utc

_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
GATEWAY_HOST = "ai-gw.example.net"

_UPSTREAM = {
    "openai": ("openai", "api.openai.com"),
    "azure": ("azure-openai", "contoso-ai.openai.azure.com"),
    "anthropic": ("anthropic", "api.anthropic.com"),
}


def _upstream_uri(call: Call) -> str:
    m = call.model
    if m.endpoint == "embeddings":
        return "/v1/embeddings"
    if m.provider == "anthropic":
        return "/v1/messages"
    if m.provider == "azure":
        return "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    return "/v1/chat/completions"


def _request_body(call: Call) -> dict[str, object]:
    if call.model.endpoint == "embeddings":
        return {"model": call.model.name, "input": call.prompt}
    messages = []
    if call.system:
        messages.append({"role": "system", "content": call.system})
    messages.append({"role": "user", "content": call.prompt})
    body: dict[str, object] = {"model": call.model.name, "messages": messages}
    if call.stream:
        body["stream"] = True
    if call.user:
        body["user"] = call.user
    return body


def _error_body(call: Call) -> dict[str, object]:
    if call.outcome == "content_filter":
        return {
            "error": {
                "code": "content_filter",
                "message": "The response was filtered due to the prompt triggering the content"
                " management policy.",
                "param": "prompt",
                "status": 400,
            }
        }
    if call.outcome == "upstream_429":
        return {
            "error": {
                "code": "rate_limit_exceeded",
                "type": "tokens",
                "message": f"Rate limit reached for {call.model.name} on tokens per min.",
            }
        }
    if call.outcome == "invalid":
        return {
            "error": {
                "code": "invalid_request_error",
                "type": "invalid_request_error",
                "message": "Invalid 'messages[1].content': expected a string.",
            }
        }
    return {"error": {"type": "server_error", "message": "The server had an error."}}


def _response_body(rng: random.Random, call: Call) -> dict[str, object]:
    if call.outcome != "ok":
        return _error_body(call)
    if call.model.endpoint == "embeddings":
        return {
            "object": "list",
            "model": call.model.snapshot,
            "data": [{"object": "embedding", "index": 0, "embedding": "<omitted>"}],
            "usage": {"prompt_tokens": call.input_tokens, "total_tokens": call.input_tokens},
        }
    message: dict[str, object] = {"role": "assistant"}
    if call.tool_calls:
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": f"call_{rng.getrandbits(64):016x}",
                "type": "function",
                "function": {"name": rng.choice(("search_kb", "lookup_order", "run_sql"))},
            }
            for _ in range(call.tool_calls)
        ]
    else:
        message["content"] = words(rng, 3, 12).capitalize() + "."
    return {
        "id": f"chatcmpl-{rng.getrandbits(96):024x}",
        "object": "chat.completion",
        "model": call.model.snapshot,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if call.tool_calls else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": call.input_tokens,
            "completion_tokens": call.output_tokens,
            "total_tokens": call.input_tokens + call.output_tokens,
        },
    }


@dataclass
class _Entities:
    """Kong route and service entities, one per upstream, made once per world."""

    routes: dict[str, dict[str, str]]
    services: dict[str, dict[str, str]]

    @classmethod
    def make(cls, rng: random.Random) -> _Entities:
        routes, services = {}, {}
        for provider, (name, host) in _UPSTREAM.items():
            services[provider] = {"id": uid(rng), "name": name, "host": host}
            routes[provider] = {"id": uid(rng), "name": f"{name}-route"}
        return cls(routes, services)


def kong_record(rng: random.Random, call: Call, entities: _Entities) -> dict[str, object]:
    """One Kong file-log record (kong.log.serialize() with the AI Proxy block)."""
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
    status = {
        "ok": 200,
        "rate_limited": 429,
        "unauthorized": 401,
        "upstream_429": 429,
        "invalid": 400,
        "content_filter": 400,
        "server": 500,
    }[call.outcome]
    provider = call.model.provider
    kong_ms = rng.randint(0, 3)
    path = call.model.path
    record: dict[str, object] = {
        "request": {
            "id": request_id,
            "method": "POST",
            "uri": path,
            "url": f"https://{GATEWAY_HOST}:443{path}",
            "size": 400 + len(call.prompt) + len(call.system),
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
        record["upstream_uri"] = _upstream_uri(call)
        record["upstream_status"] = str(status)
    if cred is not None and call.outcome != "unauthorized":
        record["consumer"] = {"id": cred.tenant.consumer_id, "username": cred.tenant.name}
        record["authenticated_entity"] = {"id": cred.id, "consumer_id": cred.tenant.consumer_id}
    if not gateway_refused:
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
                "payload": {
                    "request": _DUMPS(_request_body(call)),
                    "response": _DUMPS(_response_body(rng, call)),
                },
            }
        }
    return record


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


def write_lines(path: Path, lines: Iterable[str]) -> int:
    """Write newline-terminated lines; a `.gz` or `.zst` path is compressed. Returns the count."""
    count = 0
    with _open_binary(path) as f:
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            count += 1
            if len(batch) == 2000:
                f.write(("\n".join(batch) + "\n").encode())
                batch = []
        if batch:
            f.write(("\n".join(batch) + "\n").encode())
    return count


def _open_binary(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return cast(BinaryIO, gzip.GzipFile(path, "wb", compresslevel=9, mtime=0))
    if path.suffix == ".zst":
        import zstandard

        raw = path.open("wb")
        return cast(BinaryIO, zstandard.ZstdCompressor(level=12).stream_writer(raw, closefd=True))
    return path.open("wb")


def write_kong(path: Path, rng: random.Random, calls: list[Call]) -> int:
    entities = _Entities.make(rng)
    return write_lines(path, (_DUMPS(kong_record(rng, c, entities)) for c in calls))


def write_litellm(path: Path, rng: random.Random, calls: list[Call]) -> int:
    return write_lines(path, (_DUMPS(litellm_row(rng, c)) for c in calls))


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


# --- provider usage -------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """A provider API key: the id the provider reports, the project it belongs to."""

    id: str
    project: str


Extra = tuple[float, str, Key, int, int, int]  # ts, model snapshot, key, requests, in, out


def _hour(ts: float) -> int:
    return int(ts // 3600) * 3600


def usage_sums(
    calls: Iterable[Call], provider: str, keys: dict[str, Key], extra: Iterable[Extra] = ()
) -> dict[tuple[int, str, Key, str], list[int]]:
    """(hour, model snapshot, key, endpoint) -> [requests, input, cached, output] of `provider`.

    `keys` maps a tenant name to the provider key the gateway uses for it (key "*" for all).
    """
    sums: dict[tuple[int, str, Key, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for c in calls:
        if c.model.provider != provider or not c.reached_provider or c.cred is None:
            continue
        key = keys.get(c.cred.tenant.name) or keys["*"]
        s = sums[(_hour(c.ts), c.model.snapshot, key, c.model.endpoint)]
        s[0] += 1
        s[1] += c.input_tokens
        s[2] += c.cached_tokens
        s[3] += c.output_tokens
    for ts, snapshot, key, requests, tokens_in, tokens_out in extra:
        s = sums[(_hour(ts), snapshot, key, "embeddings" if "embedding" in snapshot else "chat")]
        s[0] += requests
        s[1] += tokens_in
        s[3] += tokens_out
    return sums


def openai_pages(
    sums: dict[tuple[int, str, Key, str], list[int]], endpoint: str, start: float, days: int
) -> Iterator[str]:
    """OpenAI Usage API pages (1h buckets, 24 per page) for one endpoint, as JSON lines."""
    kind = "completions" if endpoint == "chat" else "embeddings"
    by_hour: dict[int, list[dict[str, object]]] = defaultdict(list)
    for (hour, snapshot, key, ep), (requests, tokens_in, cached, tokens_out) in sorted(
        sums.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2].id)
    ):
        if ep != endpoint:
            continue
        result: dict[str, object] = {
            "object": f"organization.usage.{kind}.result",
            "input_tokens": tokens_in,
            "num_model_requests": requests,
            "project_id": key.project,
            "user_id": None,
            "api_key_id": key.id,
            "model": snapshot,
            "batch": False,
        }
        if kind == "completions":
            result.update(
                {
                    "output_tokens": tokens_out,
                    "input_cached_tokens": cached,
                    "input_audio_tokens": 0,
                    "output_audio_tokens": 0,
                    "service_tier": None,
                }
            )
        by_hour[hour].append(result)
    hours = [int(start) + 3600 * h for h in range(days * 24)]
    for page_start in range(0, len(hours), 24):
        chunk = hours[page_start : page_start + 24]
        more = page_start + 24 < len(hours)
        page = {
            "object": "page",
            "data": [
                {"object": "bucket", "start_time": h, "end_time": h + 3600, "results": by_hour[h]}
                for h in chunk
            ],
            "has_more": more,
            "next_page": f"page_{page_start // 24 + 1:04d}" if more else None,
        }
        yield _DUMPS(page)


def _rfc3339(ts: float) -> str:
    return utc(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def anthropic_pages(
    sums: dict[tuple[int, str, Key, str], list[int]], start: float, days: int
) -> Iterator[str]:
    """Anthropic messages usage report pages (1h buckets, 24 per page) as JSON lines."""
    by_hour: dict[int, list[dict[str, object]]] = defaultdict(list)
    for (hour, snapshot, key, _), (_, tokens_in, cached, tokens_out) in sorted(
        sums.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2].id)
    ):
        by_hour[hour].append(
            {
                "api_key_id": key.id,
                "workspace_id": key.project,
                "model": snapshot,
                "service_tier": "standard",
                "context_window": "0-200k",
                "uncached_input_tokens": tokens_in - cached,
                "cache_read_input_tokens": cached,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                "output_tokens": tokens_out,
                "server_tool_use": {"web_search_requests": 0},
            }
        )
    hours = [int(start) + 3600 * h for h in range(days * 24)]
    for page_start in range(0, len(hours), 24):
        chunk = hours[page_start : page_start + 24]
        more = page_start + 24 < len(hours)
        page = {
            "data": [
                {
                    "starting_at": _rfc3339(h),
                    "ending_at": _rfc3339(h + 3600),
                    "results": by_hour[h],
                }
                for h in chunk
            ],
            "has_more": more,
            "next_page": f"page_{page_start // 24 + 1:04d}" if more else None,
        }
        yield _DUMPS(page)


# --- reference files ------------------------------------------------------------------------


def iptoasn_lines(networks: list[Network]) -> Iterator[str]:
    """ip2asn-v4 TSV rows: range_start, range_end, AS_number, country_code, AS_description."""
    for net in sorted(networks, key=lambda n: n.first):
        yield f"{ip_text(net.first)}\t{ip_text(net.last)}\t{net.asn}\t{net.country}\t{net.org}"


def write_csv(path: Path, header: list[str], rows: Iterable[list[object]]) -> int:
    count = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(header)
        for row in rows:
            out.writerow(["" if v is None else _cell(v) for v in row])
            count += 1
    return count


def _cell(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)
