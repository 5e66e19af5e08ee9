"""nginx JSON access logs (escape=json), and the SQL pieces every access-log format shares.

The shared pieces: '-' and '' as NULL, decoding the backslash escapes of quoted fields (Apache
``\\"``, ``\\\\`` and ``\\xhh``; nginx ``\\xHH``) back to text where the bytes are printable UTF-8,
splitting a request line, CLF and epoch times. The text formats are in access_log.py. See
FORMATS.md section 4.
"""

from __future__ import annotations

import json

from forensics.ingest.base import Adapter, Options, Staging, head_json
from forensics.sqltext import sql_str

CLF_TIME = "%d/%b/%Y:%H:%M:%S %z"

# "METHOD uri PROTO"; without PROTO it is an HTTP/0.9 request line. The quick form (single
# spaces, no space in the uri) fits nearly every line and costs half as much; the full form
# is tried only on the others.
REQUEST_QUICK_RE = r"^([A-Z][A-Z0-9_-]*) (\S+)(?: HTTP/[0-9.]+)?$"
REQUEST_RE = r"^([A-Z][A-Z0-9_-]*) +(\S.*?)(?: +HTTP/[0-9.]+)?$"

# Keys of JSON values that carry a credential, for redacting quarantined raw lines (the shared
# scrub only knows the bare header names, not nginx's http_ prefixed variables). The closing
# quote is optional so that a line cut inside the value is redacted too.
CREDENTIAL_FIELD_RE = (
    r'(?i)"[^"]*(?:authorization|api[_-]?key|apikey|secret|passw|cookie|access[_-]?token'
    r'|auth[_-]?token|session[_-]?token|id[_-]?token)[^"]*"\s*:\s*"((?:[^"\\]|\\.)*)"?'
)


def dash_null(expr: str) -> str:
    """NULL for the log writers' "no value" markers: empty and a lone dash."""
    return f"nullif(nullif({expr}, ''), '-')"


def unescape(expr: str) -> str:
    """Decode the backslash escapes of a quoted CLF field (a no-op without a backslash).

    Tokens: runs of \\xHH from 0x20 up (decoded when they form printable UTF-8, else kept as
    written), \\" and \\\\ (Apache), any other escape (control bytes) kept, and plain text.
    """
    tokens = sql_str(r"(?:\\x[2-9A-Fa-f][0-9A-Fa-f])+|\\.|\\|[^\\]+")
    decoded = "try(decode(unhex(replace(t, '\\x', ''))))"
    return (
        f"CASE WHEN contains({expr}, '\\') THEN array_to_string(list_transform("
        f"regexp_extract_all({expr}, {tokens}), lambda t: CASE"
        " WHEN NOT starts_with(t, '\\') THEN t"
        " WHEN t IN ('\\\"', '\\\\') THEN substr(t, 2)"
        f" WHEN starts_with(t, '\\x') AND length(t) >= 4 THEN coalesce(CASE WHEN NOT"
        f" regexp_matches({decoded}, '[\\x00-\\x1F\\x7F]') THEN {decoded} END, t)"
        f" ELSE t END), '') ELSE {expr} END"
    )


def redact_secrets(expr: str) -> str:
    """`expr` with the values of credential-named JSON keys replaced by their fingerprints."""
    found = f"regexp_extract_all({expr}, {sql_str(CREDENTIAL_FIELD_RE)}, 1)"
    return (
        f"list_reduce(list_prepend({expr}, list_filter({found},"
        " lambda v: length(v) > 0 AND v NOT IN ('-', 'null'))),"
        " lambda acc, v: replace(acc, v, coalesce(cred_fp(auth_token(v)), v)))"
    )


def any_time(expr: str) -> str:
    """An ISO 8601 string, a CLF [dd/Mon/yyyy:HH:MM:SS +hhmm] time, or epoch seconds/ms/us/ns."""
    return (
        f"coalesce(TRY_CAST({expr} AS TIMESTAMPTZ), try_strptime({expr}, '{CLF_TIME}'),"
        f" CASE WHEN regexp_full_match({expr}, '[0-9]+(\\.[0-9]+)?') THEN epoch_ts({expr},"
        f" CASE WHEN TRY_CAST({expr} AS DOUBLE) < 1e11 THEN 's'"
        f" WHEN TRY_CAST({expr} AS DOUBLE) < 1e14 THEN 'ms'"
        f" WHEN TRY_CAST({expr} AS DOUBLE) < 1e17 THEN 'us' ELSE 'ns' END) END)"
    )


def split_request(expr: str, quick: str) -> str:
    """A struct {method, uri} of a request line; method '' when it is not METHOD URI [PROTO].

    `quick` names a column holding `quick_request(expr)`, computed one query level below.
    """
    return (
        f"CASE WHEN {quick}.method <> '' THEN {quick}"
        f" ELSE regexp_extract({expr}, {sql_str(REQUEST_RE)}, ['method', 'uri']) END"
    )


def quick_request(expr: str) -> str:
    return f"regexp_extract({expr}, {sql_str(REQUEST_QUICK_RE)}, ['method', 'uri'])"


def time_error(raw: str, ts: str, expected: str) -> str:
    """CASE branches for a time that does not parse or is not plausible."""
    return (
        f"WHEN {ts} IS NULL THEN 'bad time of ' || value_shape({raw})"
        f" || ': expected {expected}'"
        f" WHEN NOT plausible_ts({ts}) THEN 'time ' || left({raw}, 60)"
        " || ' is outside 1995..2100'"
    )


# Why a line that should hold one JSON object does not parse.
JSON_LINE_ERROR = (
    "CASE WHEN json_valid(line) THEN 'JSON value is not an object'"
    " WHEN NOT regexp_matches(rtrim(line), '[}\\]]$') THEN 'invalid JSON: record is cut off'"
    " ELSE 'invalid JSON' END"
)

# nginx variable names users copy into their JSON keys (matched in lower case). Keys with no
# canonical column ($upstream_response_time, $ssl_protocol, ...) are not read.
NGINX_KEYS = [
    "time_iso8601",
    "time_local",
    "msec",
    "@timestamp",
    "timestamp",
    "time",
    "remote_addr",
    "remote_user",
    "request",
    "request_method",
    "request_uri",
    "uri",
    "args",
    "query_string",
    "status",
    "upstream_status",
    "body_bytes_sent",
    "bytes_sent",
    "request_length",
    "request_time",
    "http_referer",
    "http_referrer",
    "http_user_agent",
    "http_x_forwarded_for",
    "http_authorization",
    "http_proxy_authorization",
    "http_x_api_key",
    "http_api_key",
    "http_apikey",
    "http_x_goog_api_key",
    "request_id",
    "host",
    "http_host",
    "server_name",
    "http_origin",
]
_NGINX_RECORD = json.dumps(dict.fromkeys(NGINX_KEYS, "VARCHAR"))
_TIME_KEYS = ["msec", "time_iso8601", "time_local", "@timestamp", "timestamp", "time"]
# A key with a capital letter somewhere (then the keys are lowered before reading).
_UPPER_KEY = r'"[^"\\]*[A-Z][^"\\]*"\s*:'
# The line with its keys in lower case: each key text is replaced where it stands as a key
# (followed by a colon). Values cannot hold that text: their quotes are escaped.
_LOWERED = (
    "list_reduce(list_prepend(line, list_filter(json_keys(line), lambda k: k <> lower(k))),"
    " lambda acc, k: replace(replace(acc, '\"' || k || '\":', '\"' || lower(k) || '\":'),"
    " '\"' || k || '\" :', '\"' || lower(k) || '\" :'))"
)


def _val(key: str) -> str:
    """A JSON record's value by nginx variable name, NULL when absent, empty or '-'."""
    return dash_null(f'r."{key}"')


def _nginx_fields() -> str:
    uri = (
        f"coalesce({_val('request_uri')}, {_val('uri')} || coalesce('?' ||"
        f" coalesce({_val('args')}, {_val('query_string')}), ''))"
    )
    fields = {
        "time_raw": "coalesce(" + ", ".join(_val(k) for k in _TIME_KEYS) + ")",
        "ts_": "coalesce(" + ", ".join(any_time(_val(k)) for k in _TIME_KEYS) + ")",
        "request": _val("request"),
        "method": _val("request_method"),
        "uri": uri,
    }
    return ",\n         ".join(f"{expr} AS {name}" for name, expr in fields.items())


_NGINX_SOURCE = f"""
SELECT line_no, r, ts_, rq, request, method_, uri_, err_,
       CASE WHEN err_ IS NOT NULL AND regexp_matches(line, {sql_str(CREDENTIAL_FIELD_RE)})
            THEN {redact_secrets("line")} ELSE line END AS line
FROM (
  SELECT *,
    CASE WHEN r IS NULL THEN {JSON_LINE_ERROR}
         WHEN NOT json_opens(line, '{{') THEN 'JSON value is not an object'
         WHEN time_raw IS NULL THEN 'no time field (time_iso8601, time_local, msec, @timestamp)'
         {time_error("time_raw", "ts_", "ISO 8601, dd/Mon/yyyy:HH:MM:SS +hhmm or epoch")}
         WHEN coalesce({_val("remote_addr")}, request, uri_, {_val("status")}) IS NULL
           THEN 'not an nginx access-log record: no remote_addr, request, request_uri or status'
    END AS err_
  FROM (
    SELECT *, coalesce(method, nullif(rq.method, '')) AS method_,
           coalesce(uri, CASE WHEN rq.method <> '' THEN rq.uri ELSE request END) AS uri_
    FROM (
      SELECT *, {split_request("request", "rq0")} AS rq
      FROM (
        SELECT *, {quick_request("request")} AS rq0
        FROM (
          SELECT line_no, line, r,
             {_nginx_fields()}
          FROM (
            SELECT line_no, line,
                   try(json_transform(CASE WHEN regexp_matches(line, {sql_str(_UPPER_KEY)})
                                           THEN try({_LOWERED}) ELSE line END,
                                      '{_NGINX_RECORD}')) AS r
            FROM chunk_lines))))))
"""


class NginxJson(Adapter):
    name = "nginx-json"
    description = "nginx JSON access log written with log_format escape=json"

    def sniff(self, head: list[str]) -> bool:
        for value in head_json(head):
            if not isinstance(value, dict):
                continue
            keys = {str(k).lower() for k in value}
            foreign = {"started_at", "start_time", "edgestarttimestamp", "rayid", "clientip"}
            if keys & foreign:
                return False
            if "remote_addr" in keys and keys & {"status", "request", "request_uri"}:
                return True
        return False

    def staging(self, options: Options) -> Staging:
        v = {k: _val(k) for k in NGINX_KEYS}
        # "$upstream_status" lists every upstream tried ("502, 200"): the last one answered.
        last_status = r"'([0-9]{3})\D*$'"
        upstream_status = f"nullif(regexp_extract({v['upstream_status']}, {last_status}, 1), '')"
        return Staging(
            source=_NGINX_SOURCE,
            error="err_",
            columns={
                "ts": "ts_",
                "request_id": v["request_id"],
                "user_id": v["remote_user"],
                "auth_header": f"coalesce({v['http_authorization']},"
                f" {v['http_proxy_authorization']})",
                "api_key": f"coalesce({v['http_x_api_key']}, {v['http_api_key']},"
                f" {v['http_apikey']}, {v['http_x_goog_api_key']})",
                "client_ip": v["remote_addr"],
                "xff": v["http_x_forwarded_for"],
                "user_agent": v["http_user_agent"],
                "origin": v["http_origin"],
                "referer": f"coalesce({v['http_referer']}, {v['http_referrer']})",
                "host": f"coalesce({v['host']}, {v['http_host']}, {v['server_name']})",
                "method": "method_",
                "uri": "uri_",
                "status": v["status"],
                "upstream_status": upstream_status,
                "latency_ms": f"round(TRY_CAST({v['request_time']} AS DOUBLE) * 1000, 3)",
                "request_bytes": v["request_length"],
                "response_bytes": f"coalesce({v['body_bytes_sent']}, {v['bytes_sent']})",
            },
        )
