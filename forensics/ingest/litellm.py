"""LiteLLM proxy spend logs: ``LiteLLM_SpendLogs`` rows, one per request. See FORMATS.md section 6.

Shapes read (they may be mixed in one file):

* JSON lines, one SpendLogs row per line;
* the ``/spend/logs`` JSON list: a JSON array of rows on one line, or a pretty-printed array
  document (the reader cuts that into one row per line);
* CSV with a header row, as ``\\copy (SELECT ...) TO ... CSV HEADER`` writes it. Columns are
  found by name in the header (any order, any subset, names matched in any case), so an export
  of selected columns works. The header is looked for in the data itself: a line whose CSV
  fields include ``request_id`` and ``startTime`` is a header, and the lines after it are read
  with its columns. The header line itself is quarantined ("CSV header line"), so that every
  line is accounted for. Limits: a record must sit on one line (Postgres writes JSON columns
  without raw newlines; a text value with a line break is quarantined as a malformed line), and
  the header must be in the same chunk as the rows (the reader's chunks are 128 MB by default,
  FORENSICS_CHUNK_BYTES): rows of a bigger CSV past the first chunk are quarantined with a
  reason that says so. Export as JSON for files that big.

Every column is read as text, so JSON values, CSV fields and numbers in strings behave alike;
JSON columns (``metadata``, ``proxy_server_request``, ``messages``, ``response``) may be nested
objects or JSON text.

Mapping (FORMATS.md 13.1, Mapping B):

* ts = ``startTime``: ISO 8601 (without an offset it is UTC, as Prisma stores it) or an epoch
  number whose unit is told by its size (s, ms, µs, ns). latency_ms = ``request_duration_ms``,
  else ``endTime`` - ``startTime``.
* credential_id = ``api_key`` when it is a 64-hex digest (LiteLLM stores the SHA-256 of the
  virtual key, not the key). Any other value is treated as a raw key and fingerprinted (it
  never lands in a column). ``metadata.user_api_key`` stands in when ``api_key`` is empty.
* tenant_id = ``team_id``, else ``organization_id``, else the key's team / org in metadata;
  user_id = ``end_user``, else ``user``; client_ip = ``requester_ip_address`` (or metadata's).
* model = ``model_group`` (what the client asked for); a call made without the router leaves
  ``model_group`` empty, and then ``model``, else ``model_id``, stands in ('' counts as
  missing). response_model = ``model`` (what was called), provider = ``custom_llm_provider``,
  route = ``call_type``.
* uri: the path of ``proxy_server_request.url`` when stored, else a path made from
  ``call_type`` (acompletion -> /v1/chat/completions, aembedding -> /v1/embeddings, ...) so
  that the endpoint column is filled; unknown call types leave it NULL.
* tokens: ``prompt_tokens``, ``completion_tokens``, ``total_tokens``; cached input tokens and
  reasoning tokens from ``metadata.additional_usage_values`` (OpenAI-style ``*_details`` or
  Anthropic-style ``cache_read_input_tokens``). log_cost = ``spend`` (USD).
* status: ``success`` -> 200. ``failure`` -> the HTTP code in
  ``metadata.error_information.error_code`` when it is one, else NULL (the row does not say).
  error_code = ``error_information.error_class`` (or its code) for failures, ``failure`` when
  LiteLLM recorded neither, so ``error_code IS NOT NULL`` finds every failed call. Rows of
  LiteLLM versions without a ``status`` column keep status NULL.
* stream is not set from ``completionStartTime`` (LiteLLM fills it for non-streaming calls
  too); it comes from the stored request body (``"stream": true``) when there is one.
* req_payload = ``proxy_server_request.body``, else ``{"messages": <messages>}`` when the
  ``messages`` column holds a list (stored only with ``store_prompts_in_spend_logs``);
  resp_payload = ``response``. user agent, host, method, origin, referer, X-Forwarded-For and
  any Authorization / api-key header come from ``proxy_server_request.headers``.

Not mapped (no canonical column): ``cache_hit``, ``cache_key``, ``request_tags``, ``model_id``
(but for the model fallback above), ``api_base``, ``metadata.user_api_key_alias``,
``mcp_namespaced_tool_name``. The paged ``/spend/logs/v2`` wrapper object and the callback
``StandardLoggingPayload`` are other shapes and are not read here.
"""

from __future__ import annotations

import csv
import json

from forensics.ingest.base import Adapter, Options, Staging, head_json
from forensics.ingest.jsonl import epoch_to_ts, iso_to_ts, json_error, redact_secrets
from forensics.sqltext import sql_str

# SpendLogs columns read (every one as text).
FIELDS = (
    "request_id",
    "call_type",
    "api_key",
    "spend",
    "total_tokens",
    "prompt_tokens",
    "completion_tokens",
    "startTime",
    "endTime",
    "request_duration_ms",
    "completionStartTime",
    "model",
    "model_group",
    "model_id",
    "custom_llm_provider",
    "user",
    "metadata",
    "team_id",
    "organization_id",
    "end_user",
    "requester_ip_address",
    "messages",
    "response",
    "session_id",
    "status",
    "proxy_server_request",
)
_ONE = json.dumps(dict.fromkeys(FIELDS, "VARCHAR"))
_MANY = json.dumps([dict.fromkeys(FIELDS, "VARCHAR")])

_V = "VARCHAR"
METADATA = json.dumps(
    {
        "user_api_key": _V,
        "user_api_key_hash": _V,
        "user_api_key_team_id": _V,
        "user_api_key_org_id": _V,
        "requester_ip_address": _V,
        "status": _V,
        "additional_usage_values": {
            "prompt_tokens_details": {"cached_tokens": _V},
            "cache_read_input_tokens": _V,
            "completion_tokens_details": {"reasoning_tokens": _V},
        },
        "error_information": {"error_code": _V, "error_class": _V},
    }
)
_HEADER_NAMES = (
    "user-agent",
    "host",
    "origin",
    "referer",
    "x-forwarded-for",
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
)
PROXY_REQUEST = json.dumps(
    {"url": _V, "method": _V, "headers": dict.fromkeys(_HEADER_NAMES, _V), "body": _V}
)

# LiteLLM call types (sync name; the async one has an "a" in front) -> the OpenAI-style path.
CALL_PATHS = {
    "completion": "/v1/chat/completions",
    "text_completion": "/v1/completions",
    "embedding": "/v1/embeddings",
    "image_generation": "/v1/images/generations",
    "image_edit": "/v1/images/edits",
    "image_variation": "/v1/images/variations",
    "transcription": "/v1/audio/transcriptions",
    "speech": "/v1/audio/speech",
    "moderation": "/v1/moderations",
    "responses": "/v1/responses",
    "anthropic_messages": "/v1/messages",
    "rerank": "/v1/rerank",
    "_realtime": "/v1/realtime",
}

# One CSV field after a comma (the line gets a comma in front): quoted with "" for a quote
# inside, or unquoted without quotes or commas. A line is well formed when its fields add up
# to the whole line; otherwise a quote was left open (a record split over lines) or stray.
CSV_FIELD_RE = ',("[^"]*(?:""[^"]*)*"|[^,"]*)'
_UNQUOTE = (
    "CASE WHEN starts_with(f, '\"') THEN replace(substr(f, 2, length(f) - 2), '\"\"', '\"')"
    " ELSE f END"
)


def _csv_raw(line: str) -> str:
    return f"regexp_extract_all(',' || {line}, {sql_str(CSV_FIELD_RE)}, 1)"


def _field(name: str) -> str:
    return f"nullif(trim(r.\"{name}\"), '')"


# Header lines of the chunk, in order, each with the position of every known column.
_POSITIONS = ", ".join(f"'{f}': list_position(names, {sql_str(f.lower())})" for f in FIELDS)
_HEADERS = f"""
SELECT coalesce(list({{'line_no': line_no, 'n': len(names), 'pos': {{{_POSITIONS}}}}}
                     ORDER BY line_no), []) AS hdrs
FROM (SELECT line_no, list_transform({_csv_raw("line")},
                 lambda f: lower(trim(replace({_UNQUOTE}, chr(65279), '')))) AS names
      FROM chunk_lines
      WHERE NOT regexp_matches(line, '^\\s*[\\[{{]') AND regexp_matches(line, '(?i)request_id'))
WHERE list_contains(names, 'request_id') AND list_contains(names, 'starttime')
"""

_CSV_RECORD = "{" + ", ".join(f"'{f}': f_[hdr.pos.\"{f}\"]" for f in FIELDS) + "}"


def _time(v: str) -> str:
    """A startTime/endTime value: an epoch number (unit by size) or ISO 8601 (UTC if bare)."""
    number = "'-?[0-9]+(\\.[0-9]+)?([eE][+-]?[0-9]+)?'"
    size = f"abs(TRY_CAST({v} AS DOUBLE))"
    return (
        f"CASE WHEN {v} IS NULL THEN NULL WHEN regexp_full_match({v}, {number}) THEN"
        f" CASE WHEN {size} < 1e11 THEN {epoch_to_ts(v, 's')}"
        f" WHEN {size} < 1e14 THEN {epoch_to_ts(v, 'ms')}"
        f" WHEN {size} < 1e17 THEN {epoch_to_ts(v, 'us')}"
        f" ELSE {epoch_to_ts(v, 'ns')} END"
        f" ELSE {iso_to_ts(v)} END"
    )


def _json_object(v: str) -> str:
    """JSON text of an object, NULL for anything else (and for LiteLLM's empty default)."""
    return f"CASE WHEN json_type(try({v}::JSON)) = 'OBJECT' AND {v} <> '{{}}' THEN {v} END"


_SHA256_HEX = "'[0-9A-Fa-f]{64}'"
# The raw key, when api_key is not a digest (fingerprinted downstream, redacted in quarantine).
_RAW_KEY = f"CASE WHEN NOT regexp_full_match(key_, {_SHA256_HEX}) THEN key_ END"
_H = "psr.headers"
_AUTH = f'coalesce({_H}.authorization, {_H}."proxy-authorization")'
_HEADER_KEY = f'coalesce({_H}."x-api-key", {_H}."api-key")'
_SECRET_KEYS = ["api_key", "user_api_key", "authorization", "proxy-authorization"]
_SECRET_KEYS += ["x-api-key", "api-key"]

_ERROR = f"""
CASE WHEN is_hdr THEN 'CSV header line (column names, not a record)'
     WHEN hdr IS NOT NULL AND NOT csv_ok THEN
          'malformed CSV line: a quote is not closed (a record split over lines?) or stray'
     WHEN hdr IS NOT NULL AND len(f_) <> hdr.n THEN
          'CSV line has ' || len(f_) || ' fields, its header has ' || hdr.n
     WHEN hdr IS NULL AND NOT regexp_matches(line, '^\\s*[\\[{{]') THEN
          CASE WHEN json_valid(line) THEN 'JSON value is not a LiteLLM SpendLogs row'
               ELSE 'not JSON, and no CSV header line (request_id,...,startTime,...) before it'
                    || ' in its chunk' END
     WHEN r IS NULL THEN {json_error("line")}
     WHEN r.request_id IS NULL AND r."startTime" IS NULL THEN
          'not a LiteLLM SpendLogs row: no request_id or startTime'
     WHEN start_ IS NULL THEN 'no startTime'
     WHEN ts_ IS NULL THEN 'startTime of ' || value_shape(start_)
          || ' is not an ISO 8601 time or an epoch number'
     WHEN NOT plausible_ts(ts_) THEN 'startTime ' || left(start_, 40)
          || ' is not a plausible time (it would be ' || strftime(ts_, '%Y-%m-%d') || ')'
END
"""

_SOURCE = f"""
SELECT line_no, r, m, psr, ts_, end_ts_, key_, err_,
       CASE WHEN err_ IS NOT NULL
            THEN {redact_secrets("line", _SECRET_KEYS, [_RAW_KEY, _AUTH, _HEADER_KEY])}
            ELSE line END AS line
FROM (SELECT *, {_ERROR} AS err_
  FROM (SELECT *, {_time("start_")} AS ts_, {_time("end_")} AS end_ts_,
               coalesce({_field("api_key")}, nullif(trim(m.user_api_key), ''),
                        nullif(trim(m.user_api_key_hash), '')) AS key_
    FROM (SELECT *, {_field("startTime")} AS start_, {_field("endTime")} AS end_,
                 try(json_transform(r.metadata, '{METADATA}')) AS m,
                 try(json_transform(r.proxy_server_request, '{PROXY_REQUEST}')) AS psr
      FROM (SELECT line_no, line, hdr, is_hdr, f_, csv_ok,
                   unnest(CASE
                     WHEN hdr IS NOT NULL THEN
                       [CASE WHEN NOT is_hdr AND csv_ok AND len(f_) = hdr.n
                             THEN {_CSV_RECORD} END]
                     WHEN json_opens(line, '[')
                       THEN coalesce(try(json_transform(line, '{_MANY}')), [NULL])
                     ELSE [try(json_transform(line, '{_ONE}'))] END) AS r
        FROM (SELECT *, list_transform(raw_, lambda f: nullif({_UNQUOTE}, '')) AS f_,
                     coalesce(list_sum(list_transform(raw_, lambda f: length(f) + 1))
                              = length(line) + 1, false) AS csv_ok
          FROM (SELECT *, CASE WHEN hdr IS NOT NULL AND NOT is_hdr
                               THEN {_csv_raw("line")} END AS raw_
            FROM (SELECT *, coalesce(hdr.line_no = line_no, false) AS is_hdr
              FROM (SELECT c.line_no, c.line,
                           list_filter(h.hdrs, lambda x: x.line_no <= c.line_no)[-1] AS hdr
                    FROM chunk_lines c CROSS JOIN ({_HEADERS}) h))))))))
"""

_CALL_PATH = (
    "CASE lower("
    + _field("call_type")
    + ") "
    + " ".join(
        f"WHEN {sql_str(name)} THEN {sql_str(path)} WHEN {sql_str('a' + name)} THEN {sql_str(path)}"
        for name, path in CALL_PATHS.items()
    )
    + " END"
)
_URL_PATH = "nullif(regexp_extract(psr.url, '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([/?].*)$', 1), '')"
_META_STATUS = f"lower(coalesce({_field('status')}, nullif(trim(m.status), '')))"
_ERROR_INFO = "m.error_information"

COLUMNS = {
    "ts": "ts_",
    "request_id": _field("request_id"),
    "tenant_id": f"coalesce({_field('team_id')}, {_field('organization_id')},"
    " nullif(trim(m.user_api_key_team_id), ''), nullif(trim(m.user_api_key_org_id), ''))",
    "user_id": f"coalesce({_field('end_user')}, {_field('user')})",
    "credential_id": f"CASE WHEN regexp_full_match(key_, {_SHA256_HEX}) THEN key_ END",
    "auth_header": _AUTH,
    "api_key": f"coalesce({_RAW_KEY}, {_HEADER_KEY})",
    "client_ip": f"coalesce({_field('requester_ip_address')},"
    " nullif(trim(m.requester_ip_address), ''))",
    "xff": f'{_H}."x-forwarded-for"',
    "user_agent": f'{_H}."user-agent"',
    "origin": f"{_H}.origin",
    "referer": f"{_H}.referer",
    "host": f"coalesce({_H}.host, nullif(regexp_extract(psr.url, '^[A-Za-z]+://([^/:?#]+)', 1),"
    " ''))",
    "method": "psr.method",
    "uri": f"coalesce({_URL_PATH}, {_CALL_PATH})",
    "route": _field("call_type"),
    "provider": _field("custom_llm_provider"),
    "model": f"coalesce({_field('model_group')}, {_field('model')}, {_field('model_id')})",
    "response_model": _field("model"),
    "req_payload": f"coalesce({_json_object('psr.body')},"
    f" CASE WHEN json_type(try(r.messages::JSON)) = 'ARRAY'"
    " THEN '{\"messages\":' || r.messages || '}' END)",
    "resp_payload": _json_object("r.response"),
    "input_tokens": _field("prompt_tokens"),
    "output_tokens": _field("completion_tokens"),
    "total_tokens": _field("total_tokens"),
    "cached_input_tokens": "coalesce(m.additional_usage_values.prompt_tokens_details"
    ".cached_tokens, m.additional_usage_values.cache_read_input_tokens)",
    "reasoning_tokens": "m.additional_usage_values.completion_tokens_details.reasoning_tokens",
    "session_id": _field("session_id"),
    "status": f"CASE {_META_STATUS} WHEN 'success' THEN '200' WHEN 'failure' THEN"
    f" CASE WHEN regexp_full_match(trim({_ERROR_INFO}.error_code), '[1-5][0-9][0-9]')"
    f" THEN trim({_ERROR_INFO}.error_code) END END",
    "error_code": f"CASE WHEN {_META_STATUS} = 'failure' THEN"
    f" coalesce(nullif(trim({_ERROR_INFO}.error_class), ''),"
    f" nullif(trim({_ERROR_INFO}.error_code), ''), 'failure') END",
    "latency_ms": f"coalesce(TRY_CAST({_field('request_duration_ms')} AS DOUBLE),"
    " CASE WHEN end_ts_ >= ts_ THEN (epoch_us(end_ts_) - epoch_us(ts_)) / 1000.0 END)",
    "log_cost": _field("spend"),
}


def _is_row(value: object) -> bool:
    return (
        isinstance(value, dict)
        and "request_id" in value
        and ("spend" in value or "api_key" in value)
        and ("startTime" in value or "call_type" in value)
    )


def _csv_names(line: str) -> set[str]:
    try:
        fields = next(csv.reader([line]))
    except (csv.Error, StopIteration):
        return set()
    return {f.replace("\ufeff", "").strip().lower() for f in fields}


class LiteLLM(Adapter):
    name = "litellm"
    description = "LiteLLM_SpendLogs rows as CSV, JSON lines or the /spend/logs JSON list"
    lines_stand_alone = False  # a CSV row is read by the header line before it in its chunk

    def sniff(self, head: list[str]) -> bool:
        values = head_json(head)
        if any(_is_row(v) for v in values):
            return True
        if values:
            return False
        names = _csv_names(head[0]) if head else set()
        if {"request_id", "starttime"} <= names and names & {"spend", "api_key"}:
            return True
        # A pretty-printed /spend/logs list: the keys of the first row in the first lines.
        text = "\n".join(head)
        return (
            bool(head)
            and head[0].strip().startswith("[")
            and '"request_id"' in text
            and ('"spend"' in text or '"api_key"' in text)
            and ('"startTime"' in text or '"call_type"' in text)
        )

    def staging(self, options: Options) -> Staging:
        return Staging(source=_SOURCE, columns=COLUMNS, error="err_")
