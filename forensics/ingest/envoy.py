"""Envoy access logs: the default text format (and Istio's), and JSON (Istio / AI Gateway keys).

Each line is read on its own: a line starting with ``{`` is a JSON record (``json_format`` writes
every value as a string, ``typed_json_format`` numbers as numbers: both are read as text and
cast), any other line is cut by an RE2 regex that covers Envoy's default format and Istio's
(which adds response code details, connection termination details and the upstream transport
failure reason after the response flags, and six address / cluster / route fields at the end).
RESPONSE_FLAGS (Envoy's own reason for a failure or a limit: RL, UAEX, DC, UF, ...) goes to
`error_code`; a response code of 0 (the client went away first) is kept as status 0.
Both shapes are mapped into one struct of text fields, then into the staging columns.
See FORMATS.md section 2.
"""

from __future__ import annotations

import json
import re

from forensics.ingest.base import Adapter, Options, Staging, head_json
from forensics.ingest.nginx import (
    CREDENTIAL_FIELD_RE,
    JSON_LINE_ERROR,
    any_time,
    dash_null,
    redact_secrets,
    time_error,
)
from forensics.sqltext import sql_str

# [START_TIME] "METHOD PATH PROTOCOL" CODE FLAGS [DETAILS TERMINATION "TRANSPORT_FAILURE"]
# RX TX DURATION UPSTREAM_TIME "XFF" "UA" "REQUEST_ID" "AUTHORITY" "UPSTREAM_HOST"
# [CLUSTER UPSTREAM_LOCAL DOWNSTREAM_LOCAL DOWNSTREAM_REMOTE SNI ROUTE] (any other tail ignored).
# Envoy does not escape quotes inside header values: the fixed layout around them decides.
# The user agent is the only free text among the quoted fields; XFF, request id, authority and
# upstream host hold no quote (and the last three no space), which pins the user agent even
# when it contains quotes. The quick form (no quote anywhere inside a quoted field) fits nearly
# every line at 60% of the cost; the full form is tried only on the others.
TEXT_RE = (
    r'^\[([^\]]+)\] "(\S+) (.*?) (\S+)" (\d+) (\S+)'
    r'(?: (\S+) (\S+) "(.*?)")?'
    r" (\d+|-) (\d+|-) (\d+|-) (\S+)"
    r' "([^"]*)" "(.*?)" "([^" ]*)" "([^" ]*)" "([^" ]*)"'
    r"(?: (\S+) (\S+) (\S+) (\S+) (\S+) (\S+)|\s.*)?\s*$"
)
TEXT_QUICK_RE = TEXT_RE.replace('"(.*?)"', '"([^"]*)"').replace(" (.*?) ", ' ([^"]*) ')
TEXT_GROUPS = [
    "start_time",
    "method",
    "path",
    "protocol",
    "response_code",
    "response_flags",
    "response_code_details",
    "connection_termination_details",
    "upstream_transport_failure_reason",
    "bytes_received",
    "bytes_sent",
    "duration",
    "upstream_service_time",
    "x_forwarded_for",
    "user_agent",
    "request_id",
    "authority",
    "upstream_host",
    "upstream_cluster",
    "upstream_local_address",
    "downstream_local_address",
    "downstream_remote_address",
    "requested_server_name",
    "route_name",
]
_SNIFF_TEXT = re.compile(r'^\[\d{4}-\d{2}-\d{2}T[^\]]*\] "')

# Keys read from JSON records: Istio's EnvoyJSONLogFormatIstio names, the Envoy AI Gateway
# example keys (hyphenated header names, genai_* and OTel-style gen_ai.*), MCP keys, and the
# credential headers some operators log (fingerprinted, never stored).
JSON_KEYS = [
    "start_time",
    "method",
    "path",
    "x-envoy-origin-path",
    "x-envoy-original-path",
    "protocol",
    "response_code",
    "response_flags",
    "bytes_received",
    "bytes_sent",
    "duration",
    "x_forwarded_for",
    "x-forwarded-for",
    "user_agent",
    "user-agent",
    "request_id",
    "x-request-id",
    "authority",
    ":authority",
    "requested_server_name",
    "downstream_remote_address",
    "route_name",
    "genai_model_name",
    "genai_model_name_override",
    "genai_backend_name",
    "genai_tokens_input",
    "genai_tokens_output",
    "genai_tokens_total",
    "gen_ai.request.model",
    "gen_ai.request.model_override",
    "gen_ai.response.model",
    "gen_ai.provider.name",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.total_tokens",
    "mcp_method",
    "mcp_session_id",
    "authorization",
    "x-api-key",
    "x_api_key",
    "api-key",
    "apikey",
]
_JSON_RECORD = json.dumps(dict.fromkeys(JSON_KEYS, "VARCHAR"))


def _j(*keys: str) -> str:
    return "coalesce(" + ", ".join(dash_null(f'j."{k}"') for k in keys) + ")"


def _t(group: str) -> str:
    return dash_null(f"t.{group}")


# One struct of text fields per line, whichever shape it came in.
FIELDS: dict[str, tuple[str, str]] = {
    "start_time": (_j("start_time"), _t("start_time")),
    "method": (_j("method"), _t("method")),
    "path": (_j("path", "x-envoy-origin-path", "x-envoy-original-path"), _t("path")),
    "response_code": (_j("response_code"), _t("response_code")),
    "response_flags": (_j("response_flags"), _t("response_flags")),
    "bytes_received": (_j("bytes_received"), _t("bytes_received")),
    "bytes_sent": (_j("bytes_sent"), _t("bytes_sent")),
    "duration": (_j("duration"), _t("duration")),
    "xff": (_j("x_forwarded_for", "x-forwarded-for"), _t("x_forwarded_for")),
    "user_agent": (_j("user_agent", "user-agent"), _t("user_agent")),
    "request_id": (_j("request_id", "x-request-id"), _t("request_id")),
    "authority": (
        _j("authority", ":authority", "requested_server_name"),
        f"coalesce({_t('authority')}, {_t('requested_server_name')})",
    ),
    "downstream": (_j("downstream_remote_address"), _t("downstream_remote_address")),
    "route": (_j("route_name"), _t("route_name")),
    "model": (_j("genai_model_name", "gen_ai.request.model"), "NULL"),
    "response_model": (
        _j("genai_model_name_override", "gen_ai.request.model_override", "gen_ai.response.model"),
        "NULL",
    ),
    "backend": (_j("genai_backend_name", "gen_ai.provider.name"), "NULL"),
    "input_tokens": (_j("genai_tokens_input", "gen_ai.usage.input_tokens"), "NULL"),
    "output_tokens": (_j("genai_tokens_output", "gen_ai.usage.output_tokens"), "NULL"),
    "total_tokens": (_j("genai_tokens_total", "gen_ai.usage.total_tokens"), "NULL"),
    "mcp_method": (_j("mcp_method"), "NULL"),
    "session_id": (_j("mcp_session_id"), "NULL"),
    "auth_header": (_j("authorization"), "NULL"),
    "api_key": (_j("x-api-key", "x_api_key", "api-key", "apikey"), "NULL"),
}


def _struct(side: int) -> str:
    return "{" + ", ".join(f"'{name}': {exprs[side]}" for name, exprs in FIELDS.items()) + "}"


# The backend name of the AI Gateway is "<namespace>/<backend>/route/<route>/rule/<n>/ref/<m>";
# the backend part usually names the provider. Anything unrecognised stays NULL.
PROVIDERS = [
    ("azure", "azure"),
    ("bedrock|(^|[^a-z0-9])aws([^a-z0-9]|$)", "bedrock"),
    ("vertex|(^|[^a-z0-9])gcp([^a-z0-9]|$)", "vertex"),
    ("gemini|google", "gemini"),
    ("anthropic|claude", "anthropic"),
    ("openrouter", "openrouter"),
    ("openai", "openai"),
    ("mistral", "mistral"),
    ("cohere", "cohere"),
    ("groq", "groq"),
    ("deepseek", "deepseek"),
    ("(^|[^a-z0-9])(xai|grok)([^a-z0-9]|$)", "xai"),
    ("perplexity", "perplexity"),
    ("huggingface", "huggingface"),
]
_PROVIDER = (
    "CASE "
    + " ".join(
        f"WHEN regexp_matches(backend_, {sql_str(p)}) THEN '{name}'" for p, name in PROVIDERS
    )
    + " END"
)

_SOURCE = f"""
SELECT line_no, js, e, ts_, backend_, err_,
       CASE WHEN err_ IS NOT NULL AND js AND regexp_matches(line, {sql_str(CREDENTIAL_FIELD_RE)})
            THEN {redact_secrets("line")} ELSE line END AS line
FROM (
  SELECT *,
    CASE WHEN js AND j IS NULL THEN {JSON_LINE_ERROR}
         WHEN NOT js AND t.start_time = '' THEN
           CASE WHEN json_opens(line, '[') AND json_valid(line)
                THEN 'JSON value is not an object'
                ELSE 'does not match the Envoy default or Istio text access-log format' END
         WHEN e.start_time IS NULL THEN 'no start_time: not an Envoy access-log record'
         {time_error("e.start_time", "ts_", "ISO 8601 like 2026-01-01T08:15:02.481Z or epoch")}
    END AS err_
  FROM (
    SELECT *, {any_time("e.start_time")} AS ts_,
           lower(scrub(coalesce(nullif(regexp_extract(e.backend, '^[^/]+/([^/]+)/route/', 1),
                                       ''), e.backend))) AS backend_
    FROM (
      SELECT line_no, line, js, j, t,
             CASE WHEN js THEN {_struct(0)} ELSE {_struct(1)} END AS e
      FROM (
        SELECT line_no, line, js, j,
               CASE WHEN NOT js AND t0.start_time = ''
                    THEN regexp_extract(line, {sql_str(TEXT_RE)}, {TEXT_GROUPS!r}) ELSE t0 END AS t
        FROM (
          SELECT line_no, line, js,
                 CASE WHEN js THEN try(json_transform(line, '{_JSON_RECORD}')) END AS j,
                 CASE WHEN NOT js
                      THEN regexp_extract(line, {sql_str(TEXT_QUICK_RE)}, {TEXT_GROUPS!r}) END AS t0
          FROM (SELECT line_no, line, json_opens(line, '{{') AS js FROM chunk_lines))))))
"""


def _count(expr: str) -> str:
    """An integer written as a number or a string (typed_json_format writes 5120 or 5120.0)."""
    return f"coalesce(TRY_CAST({expr} AS BIGINT), TRY_CAST(TRY_CAST({expr} AS DOUBLE) AS BIGINT))"


class Envoy(Adapter):
    name = "envoy"
    description = "Envoy default / Istio text access log, or JSON access log (Istio, AI Gateway)"

    def sniff(self, head: list[str]) -> bool:
        if any(_SNIFF_TEXT.match(line) for line in head[:5]):
            return True
        for value in head_json(head):
            if (
                isinstance(value, dict)
                and "start_time" in value
                and {"response_code", "upstream_host", "downstream_remote_address"} & set(value)
            ):
                return True
        return False

    def staging(self, options: Options) -> Staging:
        return Staging(
            source=_SOURCE,
            error="err_",
            columns={
                "ts": "ts_",
                "request_id": "e.request_id",
                "auth_header": "e.auth_header",
                "api_key": "e.api_key",
                "client_ip": "e.downstream",
                "xff": "e.xff",
                "user_agent": "e.user_agent",
                "host": "e.authority",
                "method": "e.method",
                "uri": "e.path",
                "route": "e.route",
                "provider": _PROVIDER,
                "model": "e.model",
                "response_model": "e.response_model",
                "input_tokens": _count("e.input_tokens"),
                "output_tokens": _count("e.output_tokens"),
                "total_tokens": _count("e.total_tokens"),
                "tool_calls": "CASE WHEN e.mcp_method = 'tools/call' THEN 1 END",
                "error_code": "e.response_flags",  # '-' (no flag) is NULL
                "session_id": "e.session_id",
                "status": _count("e.response_code"),
                "latency_ms": "TRY_CAST(e.duration AS DOUBLE)",
                "request_bytes": _count("e.bytes_received"),
                "response_bytes": _count("e.bytes_sent"),
            },
        )
