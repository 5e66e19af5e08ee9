"""The providers' own usage exports of a synthetic world (FORMATS.md describes both).

* OpenAI Usage API pages, completions and embeddings: 1h buckets grouped by project, key and
  model;
* an Anthropic messages usage report: 1h buckets by workspace, key and model.

Both are the sums of the calls that reached the provider, plus any usage the gateway never saw
(`Extra`, drawn by the unexplained-usage scenario).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from forensics.synth.files import dumps
from forensics.synth.traffic import Call
from forensics.synth.world import utc


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
        yield dumps(page)


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
        yield dumps(page)
