"""Kong Gateway logging plugins (file-log, http-log, tcp-log, ...) with the AI Proxy block.

One JSON object per line, or a JSON array per line (http-log with batching). The AI block is
read in both layouts: current ``ai.proxy.{meta,usage,payload}`` with plural token names, and the
3.6-3.8 layout keyed by plugin name with singular ``prompt_token`` / ``completion_token`` and the
payload at ``ai.payload``. See FORMATS.md section 1.
"""

from __future__ import annotations

import json

from forensics.ingest.base import Adapter, Options, Staging, head_json, json_records

_HEADERS = {
    h: "VARCHAR"
    for h in (
        "host",
        "user-agent",
        "origin",
        "referer",
        "x-forwarded-for",
        "authorization",
        "proxy-authorization",
        "apikey",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "x-session-id",
    )
}
_AI_BLOCK = {
    "meta": {
        "provider_name": "VARCHAR",
        "request_model": "VARCHAR",
        "response_model": "VARCHAR",
        "request_mode": "VARCHAR",
        "llm_latency": "DOUBLE",
    },
    "usage": {
        "prompt_tokens": "BIGINT",
        "prompt_token": "BIGINT",
        "completion_tokens": "BIGINT",
        "completion_token": "BIGINT",
        "input_tokens": "BIGINT",
        "output_tokens": "BIGINT",
        "total_tokens": "BIGINT",
        "cost": "DOUBLE",
        "prompt_tokens_details": {"cached_tokens": "BIGINT"},
        "completion_tokens_details": {"reasoning_tokens": "BIGINT"},
    },
    "payload": {"request": "VARCHAR", "response": "VARCHAR"},
}
RECORD = {
    "started_at": "VARCHAR",
    "client_ip": "VARCHAR",
    "request": {
        "id": "VARCHAR",
        "method": "VARCHAR",
        "uri": "VARCHAR",
        "url": "VARCHAR",
        "size": "BIGINT",
        "querystring": "JSON",
        "headers": _HEADERS,
    },
    "response": {"status": "INTEGER", "size": "BIGINT"},
    "upstream_status": "VARCHAR",
    "upstream_uri": "VARCHAR",
    "latencies": {"request": "DOUBLE"},
    "consumer": {"id": "VARCHAR", "username": "VARCHAR", "custom_id": "VARCHAR"},
    "authenticated_entity": {"id": "VARCHAR"},
    "route": {"name": "VARCHAR"},
    "workspace": "VARCHAR",
    "workspace_name": "VARCHAR",
    "ai": {"proxy": _AI_BLOCK, "payload": {"request": "VARCHAR", "response": "VARCHAR"}},
}
_ONE = json.dumps(RECORD)
_LEGACY = json.dumps(_AI_BLOCK)

# Records, one per line or many per array line; r is NULL when the line is not JSON.
_SOURCE = f"""
SELECT line_no, line, r, epoch_ts(r.started_at, 'ms') AS ts_,
       coalesce(r.ai.proxy, CASE WHEN r.ai.proxy IS NULL AND contains(line, '"ai"') THEN
           try(json_transform(list_filter(json_extract(line, '$.ai.*'),
               lambda b: json_exists(b, '$.usage') OR json_exists(b, '$.meta'))[1], '{_LEGACY}'))
           END) AS ai
FROM ({json_records(_ONE)})
"""

_ERROR = """
CASE WHEN NOT regexp_matches(line, '^\\s*[\\[{]') THEN
       CASE WHEN json_valid(line) THEN 'JSON value is not a Kong log record object'
            ELSE 'not JSON: not a Kong log record' END
     WHEN r IS NULL THEN
       CASE WHEN json_valid(line) THEN 'JSON value is not a Kong log record object'
            WHEN NOT regexp_matches(rtrim(line), '[}\\]]$') THEN 'invalid JSON: record is cut off'
            ELSE 'invalid JSON' END
     WHEN r.started_at IS NULL THEN 'no started_at: not a Kong log record'
     WHEN ts_ IS NULL THEN 'started_at is not a number: ' || value_shape(r.started_at)
     WHEN NOT plausible_ts(ts_) THEN 'started_at ' || left(r.started_at, 40)
          || ' is not epoch milliseconds (it would be ' || strftime(ts_, '%Y-%m-%d') || ')'
END
"""


class Kong(Adapter):
    name = "kong"
    description = "Kong file-log / http-log JSON (lines or batched arrays), AI Proxy block"

    def sniff(self, head: list[str]) -> bool:
        for value in head_json(head):
            if (
                isinstance(value, dict)
                and "started_at" in value
                and ("request" in value or "client_ip" in value)
            ):
                return True
        # A pretty-printed array whose first record does not parse: Kong's keys in its lines.
        text = "\n".join(head)
        return (
            head[0].strip() == "["
            and '"started_at"' in text
            and ('"client_ip"' in text or '"request"' in text)
        )

    def staging(self, options: Options) -> Staging:
        h = "r.request.headers"
        return Staging(
            source=_SOURCE,
            error=_ERROR,
            columns={
                "ts": "ts_",
                "request_id": "r.request.id",
                "tenant_id": "coalesce(r.consumer.username, r.consumer.custom_id,"
                " r.workspace_name, r.workspace)",
                "credential_id": "r.authenticated_entity.id",
                "auth_header": f'coalesce({h}.authorization, {h}."proxy-authorization")',
                "api_key": f'coalesce({h}.apikey, {h}."x-api-key", {h}."api-key",'
                f" {h}.\"x-goog-api-key\", json_extract_string(r.request.querystring, '$.apikey'),"
                " json_extract_string(r.request.querystring, '$.api_key'),"
                " json_extract_string(r.request.querystring, '$.key'))",
                "client_ip": "r.client_ip",
                "xff": f'{h}."x-forwarded-for"',
                "user_agent": f'{h}."user-agent"',
                "origin": f"{h}.origin",
                "referer": f"{h}.referer",
                "host": f"coalesce({h}.host,"
                " regexp_extract(r.request.url, '^[a-z]+://([^/:]+)', 1))",
                "method": "r.request.method",
                "uri": "r.request.uri",
                "upstream_uri": "r.upstream_uri",
                "route": "r.route.name",
                "provider": "ai.meta.provider_name",
                "model": "ai.meta.request_model",
                "response_model": "ai.meta.response_model",
                "stream": "CASE ai.meta.request_mode WHEN 'stream' THEN true"
                " WHEN 'oneshot' THEN false END",
                "req_payload": "coalesce(ai.payload.request, r.ai.payload.request)",
                "resp_payload": "coalesce(ai.payload.response, r.ai.payload.response)",
                "input_tokens": "coalesce(ai.usage.prompt_tokens, ai.usage.prompt_token,"
                " ai.usage.input_tokens)",
                "output_tokens": "coalesce(ai.usage.completion_tokens, ai.usage.completion_token,"
                " ai.usage.output_tokens)",
                "cached_input_tokens": "ai.usage.prompt_tokens_details.cached_tokens",
                "reasoning_tokens": "ai.usage.completion_tokens_details.reasoning_tokens",
                "total_tokens": "ai.usage.total_tokens",
                "session_id": f'{h}."x-session-id"',
                "status": "r.response.status",
                "upstream_status": "r.upstream_status",
                "latency_ms": "r.latencies.request",
                "request_bytes": "r.request.size",
                "response_bytes": "r.response.size",
                "log_cost": "ai.usage.cost",
            },
        )
