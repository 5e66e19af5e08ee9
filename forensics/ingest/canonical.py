"""From staging columns to canonical `requests` rows: the steps every format shares.

Credentials become fingerprints (and JWT claims), strings are scrubbed of anything that looks
like a key, request and response bodies give prompt shape and tool calls, paths give the
endpoint, and client addresses are joined to the enrichment ranges. All of it is a few SQL
statements per chunk: the canonical SELECT (run by `staged.py`, twice over the lines of a sparse
file that carry a secret), then the quarantine and requests inserts (run by `pipeline.py`).
"""

from __future__ import annotations

import duckdb

from forensics.case import costs
from forensics.case.fingerprints import ANY_SECRET
from forensics.case.macros import REQUEST_BODY, RESPONSE_BODY
from forensics.ingest.enrichment import placed

ANY_SECRET_SQL = ANY_SECRET.replace("'", "''")


def canonical_sql(staging: str) -> str:
    """One SELECT from raw lines to canonical rows (plus _error / _raw for quarantine, and
    _rescrub: see `dense_secrets`).

    It reads `chunk_lines`, and the statements below read its result as `canon` and the IP
    lookup as `ipgeo`: all three are Arrow tables held in the caller's variables, which DuckDB
    finds by name (replacement scans). Staging and canonicalisation run as one pipeline over
    the chunk's Arrow batches, so DuckDB spreads every step over all cores; and inside the
    file's one transaction nothing of a finished chunk stays in DuckDB's memory (temp tables
    and registered views would be kept until the commit).
    """
    return _CANONICAL.replace("{staging}", staging)


DENSE_SHARE = 0.2  # share of the first records that need scrubbing, from which a file is dense


def dense_secrets(con: duckdb.DuckDBPyConnection, head: list[str]) -> bool:
    """Whether a file's records mostly carry something the scrubber must look at (gateway logs
    with Authorization headers, say), judged from its first records: the canonical SELECT's
    $dense.

    Scrubbing runs the scrubber's patterns inside a lambda, and DuckDB compiles a lambda's
    regular expressions again for every vector of rows it runs on (several milliseconds for the
    key shapes). When most rows need scrubbing that is paid once per 2,048 rows: $dense, every
    row that needs it is scrubbed in the one SELECT. When few do (an access log with the odd
    `?token=` in a URL), it would be paid for every vector holding one of them; then the SELECT
    marks those rows `_rescrub` instead, and `staged.py` runs their lines again through the same
    SELECT with $dense, packed into a few vectors. Either way the same scrubber sees the same
    strings. Formats whose lines cannot be read apart from their chunk (Adapter.lines_stand_alone)
    are always dense.
    """
    if not head:
        return True
    [(share,)] = con.execute(
        "SELECT avg(CAST(regexp_matches(r, $p) AS INTEGER)) FROM unnest($lines) t(r)",
        {"p": ANY_SECRET, "lines": head},
    ).fetchall()
    return float(share or 0.0) >= DENSE_SHARE


# Every string that comes from the log, by the column it becomes. They are scrubbed together:
# a list that one lambda maps (one copy of the scrubber in the statement, not thirty; see
# `dense_secrets` for what a lambda costs).
_TEXTS: dict[str, str] = {
    "xff": "xff",
    "user_agent": "user_agent",
    "origin": "origin",
    "referer": "referer",
    "path": "split_part(uri, '?', 1)",
    "query": "nullif(substr(uri, length(split_part(uri, '?', 1)) + 2), '')",
    "prompt_text": "CASE WHEN $keep_prompts THEN _last_user END",
    "tenant_id": "tenant_id",
    "user_id": "coalesce(user_id, _rq.user, _rq.metadata.user_id, basic_user(auth_header),"
    " json_extract_string(_claims, '$.sub'))",
    "request_id": "request_id",
    "host": "host",
    "route": "route",
    "session_id": "session_id",
    "model": "coalesce(model, _rq.model)",
    "response_model": "coalesce(response_model, _rs.model)",
    "credential_id": "credential_id",
    "error_code": "coalesce(error_code, _rs.error.code, _rs.error.type)",
    "finish_reason": "coalesce(finish_reason, finish_reason_of(_rs))",
    "provider": "provider",
    "as_org": "as_org",
    "city": "city",
    "method": "method",
    "country": "nullif(trim(country), '')",
    "token_id": "json_extract_string(_claims, '$.jti')",
    "issuer": "json_extract_string(_claims, '$.iss')",
    # the first of the tenant claims ($tenant_claims: --tenant-claim, else tenant_id, tid, ...)
    # (only where there are claims: a lambda that reads a column of the row costs for every
    # vector it runs on)
    "token_tenant": "CASE WHEN _claims IS NOT NULL THEN list_filter(list_transform($tenant_claims,"
    " lambda c: json_extract_string(_claims, '$.\"' || replace(c, '\"', '') || '\"')),"
    " lambda v: v IS NOT NULL)[1] END",
    "key_id": "json_extract_string(_jh, '$.kid')",
    "client_id": "coalesce(json_extract_string(_claims, '$.client_id'),"
    " json_extract_string(_claims, '$.azp'), json_extract_string(_claims, '$.cid'))",
    "client_host": "_host_name",
    "client_addr_raw": "CASE WHEN _ip IS NULL AND _host_name IS NULL"
    " THEN coalesce(_addr, _hop) END",
    # scrubbed before it is cut, so that no key is cut into a piece the patterns miss
    "_raw": "left(_raw, 8000)",
    "_error": "_error",
}
_TEXT_LIST = ",\n           ".join(_TEXTS.values())
_CLEAN = {name: f"_clean[{i}]" for i, name in enumerate(_TEXTS, start=1)}

_CANONICAL = f"""
WITH s AS (
  SELECT *, auth_token(auth_header) AS _tok,
         CASE WHEN req_payload IS NOT NULL
              THEN try(json_transform(req_payload, '{REQUEST_BODY}')) END AS _rq,
         CASE WHEN resp_payload IS NOT NULL
              THEN try(json_transform(resp_payload, '{RESPONSE_BODY}')) END AS _rs
  FROM ({{staging}}) staged
), u AS (
  SELECT *, prompt_parts(_rq) AS _parts FROM s
), t AS (
  SELECT *, is_jwt(_tok) AS _is_jwt, jwt_claims(_tok) AS _claims, jwt_header(_tok) AS _jh,
         coalesce(regexp_matches(auth_header, '(?i)^\\s*basic\\s'), false) AS _basic,
         cred_fp(key_text(coalesce(api_key, _tok,
             nullif(regexp_extract(uri, '(?i)[?&](?:api[_-]?key|key)=([^&]+)', 1), '')))) AS _kfp,
         last_user_text(_parts) AS _last_user,
         strip_port(client_ip) AS _addr, first_xff(xff) AS _hop
  FROM u
), n AS (
  SELECT *, ip_num(_addr) AS _addr_num FROM t  -- parsed once for the two tests below
), t2 AS (
  -- The client address is an IP address or nothing: a host name in the address field goes to
  -- client_host, any other text (or the first X-Forwarded-For hop, which the client writes) to
  -- client_addr_raw, scrubbed.
  SELECT *, CASE WHEN _addr_num IS NOT NULL THEN _addr
                 WHEN _addr IS NULL AND ip_num(_hop) IS NOT NULL THEN _hop END AS _ip,
         CASE WHEN _addr_num IS NULL AND is_host_name(_addr) THEN _addr END AS _host_name
  FROM n
), v AS (
  SELECT *, prompt_norm(left(_last_user, 256)) AS _norm,
         [{_TEXT_LIST}] AS _texts,
         -- no lambda: DuckDB would compile endpoint_of's patterns again for every vector
         [endpoint_of(upstream_uri), endpoint_of(uri)] AS _endpoints
  FROM t2
), g AS (
  -- Every string from the log is scrubbed of credentials. One regex over all of a row's text
  -- decides whether any field needs it (see `dense_secrets` for $dense).
  SELECT *, coalesce(regexp_matches(array_to_string(_texts, chr(1)), '{ANY_SECRET_SQL}'), true)
              AS _gate
  FROM v
), w AS (
  SELECT *, CASE WHEN NOT _gate THEN _texts
                 WHEN $dense THEN list_transform(_texts, lambda f: scrub(f)) END AS _clean,
         _gate AND NOT $dense AS _rescrub
  FROM g
)
SELECT
  _rescrub, {_CLEAN["_error"]} AS _error, left({_CLEAN["_raw"]}, 2000) AS _raw,
  ts, {_CLEAN["request_id"]} AS request_id, $source_id::INTEGER AS source_id, line_no,
  $format::VARCHAR AS format,
  {_CLEAN["tenant_id"]} AS tenant_id,
  {_CLEAN["user_id"]} AS user_id,
  coalesce({_CLEAN["credential_id"]}, _kfp) AS credential_id,
  CASE WHEN _is_jwt THEN 'jwt' WHEN _basic THEN 'basic'
       WHEN coalesce(credential_id, _kfp) IS NOT NULL THEN 'api_key' END AS credential_type,
  _kfp AS key_fingerprint,
  {_CLEAN["token_id"]} AS token_id,
  {_CLEAN["issuer"]} AS issuer,
  {_CLEAN["key_id"]} AS key_id,
  {_CLEAN["token_tenant"]} AS token_tenant,
  CASE WHEN _claims IS NOT NULL THEN scrub_list(
    CASE WHEN json_type(_claims, '$.aud') = 'ARRAY' THEN json_extract_string(_claims, '$.aud[*]')
         WHEN json_extract_string(_claims, '$.aud') IS NOT NULL
             THEN [json_extract_string(_claims, '$.aud')] END) END AS token_audience,
  epoch_claim(_claims, '$.iat') AS token_iat,
  epoch_claim(_claims, '$.exp') AS token_exp,
  CASE WHEN _claims IS NOT NULL THEN scrub_list(
    CASE WHEN json_type(_claims, '$.scp') = 'ARRAY' THEN json_extract_string(_claims, '$.scp[*]')
         ELSE string_split(coalesce(json_extract_string(_claims, '$.scope'),
                                    json_extract_string(_claims, '$.scp')), ' ') END) END AS scopes,
  {_CLEAN["client_id"]} AS client_id,
  _ip AS client_ip,
  client_net_of(_ip) AS client_net,
  lower({_CLEAN["client_host"]}) AS client_host,  -- lowered after the scrub saw it as written
  {_CLEAN["client_addr_raw"]} AS client_addr_raw,
  {_CLEAN["xff"]} AS xff,
  asn, {_CLEAN["as_org"]} AS as_org, NULL::VARCHAR AS asn_category,
  upper({_CLEAN["country"]}) AS country, {_CLEAN["city"]} AS city, lat, lon,
  NULL::VARCHAR AS asn_source, NULL::VARCHAR AS geo_source,  -- set by enrichment.placed
  {_CLEAN["user_agent"]} AS user_agent,
  {_CLEAN["origin"]} AS origin,
  client_kind_of({_CLEAN["user_agent"]}, {_CLEAN["origin"]}) AS client_kind,
  {_CLEAN["referer"]} AS referer,
  {_CLEAN["host"]} AS host,
  port,
  upper({_CLEAN["method"]}) AS method,
  {_CLEAN["path"]} AS path,
  {_CLEAN["query"]} AS query,
  {_CLEAN["route"]} AS route,
  coalesce(nullif(_endpoints[1], 'other'), _endpoints[2]) AS endpoint,
  lower({_CLEAN["provider"]}) AS provider,
  {_CLEAN["model"]} AS model,
  {_CLEAN["response_model"]} AS response_model,
  model_family_of(coalesce({_CLEAN["response_model"]}, {_CLEAN["model"]})) AS model_family,
  coalesce(stream, _rq.stream) AS stream,
  prompt_chars_of(_parts) AS prompt_chars,
  prompt_fp_from(_last_user, _norm) AS prompt_prefix_fp,
  {_CLEAN["prompt_text"]} AS prompt_text,
  input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, total_tokens,
  coalesce(tool_calls, tool_calls_of(_rs)) AS tool_calls,
  {_CLEAN["finish_reason"]} AS finish_reason,
  {_CLEAN["error_code"]} AS error_code,
  {_CLEAN["session_id"]} AS session_id,
  status,
  upstream_status,
  error_type_of(status, coalesce(error_code, _rs.error.code, _rs.error.type),
                coalesce(finish_reason, finish_reason_of(_rs))) AS error_type,
  latency_ms, request_bytes, response_bytes, log_cost,
  NULL::DOUBLE AS est_cost_usd
FROM w
"""

# est_cost_usd: the price in effect at the request's time (forensics/costs.py).
INSERT_REQUESTS = f"""
INSERT INTO requests BY NAME
SELECT c.* EXCLUDE (_rescrub, _error, _raw) REPLACE ({costs.EST_COST_SQL} AS est_cost_usd)
FROM ({placed("SELECT * FROM canon WHERE _error IS NULL AND NOT _rescrub")}) c
{costs.price_join("canon")}
"""
