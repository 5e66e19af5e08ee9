"""Cloudflare Logpush ``http_requests`` (zone dataset), JSON lines. See FORMATS.md section 3.1.

Only the fields in the job's ``field_names`` are present, so every field is optional except
``EdgeStartTimestamp``, the request time (a record without it is quarantined). Lines may also be
the wrapped-array output option (one JSON array of records per line); a file that is one
multi-line array is cut into records by the reader.

Times: ``timestamp_format`` may be ``unixnano`` (19-digit integer), ``unix`` (10 digits) or
``rfc3339`` (string, seconds precision). The unit is decided per value from its digits (13
digits are read as milliseconds too); a number of any other length is quarantined rather than
guessed. latency_ms is EdgeEndTimestamp - EdgeStartTimestamp (so only whole seconds with
rfc3339), else OriginResponseDurationMs.

Geography comes from the record: ClientASN (0 = unknown -> NULL), ClientCountry upper-cased
(``XX``, Cloudflare's "unknown", -> NULL; ``T1`` for Tor is kept), ClientCity and the
latitude / longitude strings.

``RequestHeaders`` holds the custom request-header fields the operator configured; header names
are matched in any case. Credentials (authorization, x-api-key, apikey, api-key, x-goog-api-key,
cf-access-client-secret) are fingerprinted downstream and redacted from quarantined raw text;
cf-access-client-id (Cloudflare Access service token id) is the non-secret credential id.

Tenant: the first tenant-like header (x-tenant-id, x-org-id, openai-organization, ...). A
record without one falls back to its ZoneName prefixed ``zone:`` (``zone:example.net``). The
zone is the operator's own domain, not the API tenant, so it is kept visibly different from
header tenants: it still separates the zones of a multi-zone operator, and a query can drop it
with ``tenant_id NOT LIKE 'zone:%'``.

User: ClientMTLSAuthCertFingerprint (an authenticated client certificate), else an x-user-id
header.
"""

from __future__ import annotations

import json

from forensics.ingest.base import Adapter, Options, Staging, head_json, json_records
from forensics.ingest.jsonl import epoch_to_ts, iso_to_ts, json_error, redact_secrets
from forensics.sqltext import sql_str

FIELDS = (
    "RayID",
    "EdgeStartTimestamp",
    "EdgeEndTimestamp",
    "ClientIP",
    "ClientASN",
    "ClientCountry",
    "ClientCity",
    "ClientLatitude",
    "ClientLongitude",
    "ClientRequestMethod",
    "ClientRequestHost",
    "ClientRequestURI",
    "ClientRequestPath",
    "ClientRequestUserAgent",
    "ClientRequestReferer",
    "ClientRequestBytes",
    "ClientMTLSAuthCertFingerprint",
    "EdgeResponseStatus",
    "EdgeResponseBytes",
    "EdgeResponseBodyBytes",
    "OriginResponseStatus",
    "OriginResponseDurationMs",
    "ZoneName",
)
# Every field as text (int-or-string fields, and ints that arrive quoted), cast per column later.
RECORD: dict[str, str] = {f: "VARCHAR" for f in FIELDS} | {
    "RequestHeaders": "MAP(VARCHAR, VARCHAR)"
}
_ONE = json.dumps(RECORD)

# Header names, lower case, first present wins.
TENANT_HEADERS = (
    "x-tenant-id",
    "x-tenant",
    "tenant-id",
    "x-org-id",
    "x-organization-id",
    "x-organization",
    "openai-organization",
    "x-account-id",
    "x-customer-id",
    "x-workspace-id",
    "x-team-id",
    "x-project-id",
    "openai-project",
)
USER_HEADERS = ("x-user-id", "x-end-user-id", "x-user")
AUTH_HEADERS = ("authorization", "proxy-authorization")
KEY_HEADERS = ("x-api-key", "apikey", "api-key", "x-goog-api-key", "cf-access-client-secret")

_NUMBER = "'-?[0-9]+(\\.[0-9]*)?([eE][+-]?[0-9]+)?'"


def _field(name: str) -> str:
    return f"nullif(trim(r.{name}), '')"


def _header(*names: str) -> str:
    """The first of the named RequestHeaders present with a value (hl: lower-cased entries)."""
    found = [
        f"list_filter(hl, lambda e: e.k = {sql_str(n)} AND e.v IS NOT NULL)[1].v" for n in names
    ]
    return found[0] if len(found) == 1 else f"coalesce({', '.join(found)})"


def _edge_ts(v: str) -> str:
    """An EdgeStart/EndTimestamp value, its unit told by its digits; NULL when none fits."""
    return (
        f"CASE WHEN {v} IS NULL THEN NULL"
        f" WHEN regexp_full_match({v}, '[0-9]{{19}}') THEN {epoch_to_ts(v, 'ns')}"
        f" WHEN regexp_full_match({v}, '[0-9]{{13}}') THEN {epoch_to_ts(v, 'ms')}"
        f" WHEN regexp_full_match({v}, '[0-9]{{10}}(\\.[0-9]+)?') THEN {epoch_to_ts(v, 's')}"
        f" WHEN NOT regexp_full_match({v}, {_NUMBER}) THEN {iso_to_ts(v)} END"
    )


_ERROR = f"""
CASE WHEN r IS NULL THEN {json_error("line")}
     WHEN start_ IS NULL THEN
       CASE WHEN NOT regexp_matches(line, '^\\s*[\\[{{]') THEN 'JSON value is not an object'
            ELSE 'no EdgeStartTimestamp: not an http_requests record, or the Logpush job'
                 || ' leaves the field out' END
     WHEN ts_ IS NULL AND regexp_full_match(start_, {_NUMBER}) THEN
          'EdgeStartTimestamp ' || left(start_, 40) || ' is in no known unit'
          || ' (unixnano has 19 digits, unix 10, milliseconds 13)'
     WHEN ts_ IS NULL THEN 'EdgeStartTimestamp of ' || value_shape(start_)
          || ' is not an RFC 3339 time'
     WHEN NOT plausible_ts(ts_) THEN 'EdgeStartTimestamp ' || left(start_, 40)
          || ' is not a plausible time (it would be ' || strftime(ts_, '%Y-%m-%d') || ')'
END
"""

_AUTH = _header(*AUTH_HEADERS)
_KEY = _header(*KEY_HEADERS)
_RAW = redact_secrets("line", [*AUTH_HEADERS, *KEY_HEADERS], [_AUTH, _KEY])

_SOURCE = f"""
SELECT line_no, CASE WHEN err_ IS NOT NULL THEN {_RAW} ELSE line END AS line,
       r, hl, ts_, end_ts_, err_
FROM (SELECT *, {_ERROR} AS err_
  FROM (SELECT *, {_edge_ts("start_")} AS ts_, {_edge_ts("end_")} AS end_ts_
    FROM (SELECT line_no, line, r, {_field("EdgeStartTimestamp")} AS start_,
                 {_field("EdgeEndTimestamp")} AS end_,
                 list_transform(map_entries(r.RequestHeaders),
                     lambda e: {{'k': lower(trim(e.key)), 'v': nullif(trim(e.value), '')}}) AS hl
      FROM ({json_records(_ONE)}))))
"""

COLUMNS = {
    "ts": "ts_",
    "request_id": _field("RayID"),
    "tenant_id": f"coalesce({_header(*TENANT_HEADERS)}, 'zone:' || {_field('ZoneName')})",
    "user_id": f"coalesce({_field('ClientMTLSAuthCertFingerprint')}, {_header(*USER_HEADERS)})",
    "credential_id": _header("cf-access-client-id"),
    "auth_header": _AUTH,
    "api_key": _KEY,
    "client_ip": _field("ClientIP"),
    "xff": _header("x-forwarded-for"),
    "asn": f"nullif({_field('ClientASN')}, '0')",
    "country": f"nullif(upper(scrub({_field('ClientCountry')})), 'XX')",
    "city": _field("ClientCity"),
    "lat": _field("ClientLatitude"),
    "lon": _field("ClientLongitude"),
    "user_agent": f"coalesce({_field('ClientRequestUserAgent')}, {_header('user-agent')})",
    "origin": _header("origin"),
    "referer": f"coalesce({_field('ClientRequestReferer')}, {_header('referer')})",
    "host": f"coalesce({_field('ClientRequestHost')}, {_header('host')})",
    "method": _field("ClientRequestMethod"),
    "uri": f"coalesce({_field('ClientRequestURI')}, {_field('ClientRequestPath')})",
    "session_id": _header("x-session-id"),
    "status": _field("EdgeResponseStatus"),
    "upstream_status": f"nullif({_field('OriginResponseStatus')}, '0')",  # 0: origin not reached
    "latency_ms": "CASE WHEN end_ts_ >= ts_ THEN (epoch_us(end_ts_) - epoch_us(ts_)) / 1000.0"
    f" ELSE TRY_CAST({_field('OriginResponseDurationMs')} AS DOUBLE) END",
    "request_bytes": _field("ClientRequestBytes"),
    "response_bytes": f"coalesce({_field('EdgeResponseBytes')}, {_field('EdgeResponseBodyBytes')})",
}


def _looks_like_record(value: object) -> bool:
    return isinstance(value, dict) and (
        "EdgeStartTimestamp" in value or ("RayID" in value and "ClientIP" in value)
    )


class Cloudflare(Adapter):
    name = "cloudflare"
    description = "Cloudflare Logpush http_requests JSON lines"

    def sniff(self, head: list[str]) -> bool:
        values = head_json(head)
        if any(_looks_like_record(v) for v in values):
            return True
        if values:
            return False
        # No whole record in the head: a pretty-printed array, or lines cut short.
        text = "\n".join(head)
        return '"EdgeStartTimestamp"' in text or ('"RayID"' in text and '"ClientIP"' in text)

    def staging(self, options: Options) -> Staging:
        return Staging(source=_SOURCE, columns=COLUMNS, error="err_")
