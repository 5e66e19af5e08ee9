"""Normalisation shared by every adapter, as SQL macros evaluated inside DuckDB.

endpoint from the path, model family from the model name, error type from status and error
payload, the prompt prefix fingerprint, prompt text out of request bodies, tool calls and finish
reason out of response bodies, and IP addresses as numbers for range joins.
"""

from __future__ import annotations

import duckdb

from forensics.sqltext import sql_str

# Request bodies of the chat-like APIs, read once into a struct (OpenAI chat / completions /
# embeddings / responses, Anthropic messages, Gemini generateContent).
# Content fields are read as VARCHAR: a JSON string arrives unescaped (the common case, no
# second parse), a list of parts arrives as its JSON text and is parsed by content_text.
REQUEST_BODY = (
    '{"model":"VARCHAR","stream":"BOOLEAN","user":"VARCHAR","metadata":{"user_id":"VARCHAR"},'
    '"messages":[{"role":"VARCHAR","content":"VARCHAR"}],"system":"VARCHAR","input":"VARCHAR",'
    '"prompt":"VARCHAR","contents":[{"role":"VARCHAR","parts":[{"text":"VARCHAR"}]}]}'
)
RESPONSE_BODY = (
    '{"model":"VARCHAR","choices":[{"finish_reason":"VARCHAR","message":{"tool_calls":["JSON"]}}],'
    '"stop_reason":"VARCHAR","content":[{"type":"VARCHAR"}],"output":[{"type":"VARCHAR"}],'
    '"candidates":[{"finishReason":"VARCHAR","content":{"parts":[{"functionCall":"JSON"}]}}],'
    '"error":{"code":"VARCHAR","type":"VARCHAR"},"status":"VARCHAR"}'
)

# Earliest and latest instant a log record may carry before we call its unit wrong.
PLAUSIBLE_FROM = "1995-01-01"
PLAUSIBLE_TO = "2100-01-01"

# A DNS host name: RFC 1123 labels, at most 253 characters, at least one letter (so not an
# IPv4 address). One definition for the SQL macro and for the access-log sniffers.
HOST_NAME_RE = r"(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?"
HOST_NAME_MAX = 253

# Who sends a request: the HTTP stacks of mobile and desktop apps, browsers, and declared
# crawlers (which are neither). One definition for the requests.client_kind column.
APP_AGENT_RE = (
    r"(okhttp/|CFNetwork/|Dalvik/|Dart/|ReactNative|React-Native|Expo/|Alamofire/|Ktor-client"
    r"|Electron/)"
)
BROWSER_AGENT_RE = r"(Mozilla/|Chrome/|Safari/)"
CRAWLER_AGENT_RE = r"(?i)(bot[/;]|crawler|spider|\+https?://)"

# AI endpoints by the paths that name them (lower case), first match wins.
_ENDPOINTS = {
    "chat": "/chat/completions/?($|[?])|(^|/)chat/?($|[?])|/v1/messages/?($|[?])"
    "|:(stream)?generatecontent($|[?])|/converse(-stream)?($|[?])",
    "responses": "/responses/?($|[?])",
    "completions": "/completions/?($|[?])|/v1/complete/?($|[?])",
    "embeddings": "/embeddings?/?($|[?])|:(batch)?embedcontents?($|[?])",
    "images": "/images/",
    "audio": "/audio/|/realtime",
    "moderation": "/moderations/?($|[?])",
}
_ENDPOINT_CASES = "\n            ".join(
    f"WHEN regexp_matches(lower(p), {sql_str(pattern)}) THEN {sql_str(name)}"
    for name, pattern in _ENDPOINTS.items()
)

MACROS = [
    # --- time ---------------------------------------------------------------------------
    f"""CREATE OR REPLACE TEMP MACRO plausible_ts(t) AS
        t >= TIMESTAMPTZ '{PLAUSIBLE_FROM}' AND t < TIMESTAMPTZ '{PLAUSIBLE_TO}'""",
    # An epoch number whose unit the format fixes (s, ms, us, ns), as TIMESTAMPTZ.
    # Integers are converted exactly (to microseconds); fractions go through DOUBLE.
    """CREATE OR REPLACE TEMP MACRO epoch_ts(v, unit) AS
        CASE WHEN regexp_full_match(CAST(v AS VARCHAR), '-?[0-9]+') THEN
             try(make_timestamp(CAST(CASE unit WHEN 's' THEN TRY_CAST(v AS HUGEINT) * 1000000
                  WHEN 'ms' THEN TRY_CAST(v AS HUGEINT) * 1000 WHEN 'us' THEN TRY_CAST(v AS HUGEINT)
                  WHEN 'ns' THEN TRY_CAST(v AS HUGEINT) // 1000 END AS BIGINT))::TIMESTAMPTZ)
        ELSE try(to_timestamp(TRY_CAST(v AS DOUBLE) / CASE unit WHEN 's' THEN 1 WHEN 'ms' THEN 1e3
            WHEN 'us' THEN 1e6 WHEN 'ns' THEN 1e9 END)) END""",
    # int-or-string time fields (Cloudflare): digits are epoch in the given unit, else ISO 8601.
    """CREATE OR REPLACE TEMP MACRO flex_ts(v, unit) AS
        CASE WHEN v IS NULL THEN NULL
             WHEN regexp_full_match(v, '[0-9]+(\\.[0-9]+)?') THEN epoch_ts(v, unit)
             ELSE TRY_CAST(v AS TIMESTAMPTZ) END""",
    # --- network ------------------------------------------------------------------------
    # IPv4 mapped into ::ffff:0:0/96, IPv6 expanded; both as one 128-bit number.
    """CREATE OR REPLACE TEMP MACRO ip4_num(ip) AS
        CASE WHEN regexp_full_match(ip, '((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])[.]){3}'
                                        || '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])')
        THEN CAST(281470681743360 + CAST(split_part(ip, '.', 1) AS UBIGINT) * 16777216
             + CAST(split_part(ip, '.', 2) AS UBIGINT) * 65536
             + CAST(split_part(ip, '.', 3) AS UBIGINT) * 256
             + CAST(split_part(ip, '.', 4) AS UBIGINT) AS UHUGEINT) END""",
    """CREATE OR REPLACE TEMP MACRO ip_num(ip) AS
        CASE WHEN ip IS NULL THEN NULL
             WHEN regexp_full_match(ip, '(?i)::ffff:[0-9]{1,3}(\\.[0-9]{1,3}){3}') THEN
                 ip4_num(substr(ip, 8))
             WHEN regexp_full_match(ip, '[0-9]{1,3}(\\.[0-9]{1,3}){3}') THEN ip4_num(ip)
             WHEN regexp_full_match(ip, '[0-9A-Fa-f:]+') AND contains(ip, ':') THEN
                 TRY_CAST('0x' || ip6_hex(
                     CASE WHEN contains(ip, '::') THEN string_split(split_part(ip, '::', 1), ':')
                          ELSE string_split(ip, ':') END,
                     CASE WHEN contains(ip, '::') THEN string_split(split_part(ip, '::', 2), ':')
                          ELSE [] END) AS UHUGEINT)
        END""",
    # The prefix length of an address or block ("203.0.113.0/24", "2001:db8::/32", one
    # address = 128) in IPv4-mapped-IPv6 bits, to compare with ip_num() numbers.
    """CREATE OR REPLACE TEMP MACRO net_bits(v) AS
        CASE WHEN NOT contains(v, '/') THEN 128
             ELSE TRY_CAST(split_part(v, '/', 2) AS INTEGER)
                  + CASE WHEN regexp_full_match(split_part(v, '/', 1),
                                                '[0-9]{1,3}(\\.[0-9]{1,3}){3}')
                         THEN 96 ELSE 0 END
        END""",
    """CREATE OR REPLACE TEMP MACRO ip6_hex(head, tail) AS
        CASE WHEN len(list_filter(head, lambda g: g <> '')) + len(list_filter(tail,
                  lambda g: g <> '')) <= 8
             THEN array_to_string(list_transform(
                 list_filter(head, lambda g: g <> '')
                 || list_transform(range(8 - len(list_filter(head, lambda g: g <> ''))
                                     - len(list_filter(tail, lambda g: g <> ''))), lambda i: '0')
                 || list_filter(tail, lambda g: g <> ''),
                 lambda g: lpad(lower(g), 4, '0')), '') END""",
    # The client's network block, one definition for every detector and principal: the /24 of
    # an IPv4 address ("203.0.113.0/24"), the /64 of an IPv6 one ("2001:db8:0:1::/64").
    # The /64 is the first four groups of the 32 hex digits, each without its leading zeros
    # but one digit, by two regular expressions: as a lambda over the group offsets, which
    # reads `h` (all of ip6_hex) from inside, it cost ~60 us an IPv6 row, 14 times as much.
    """CREATE OR REPLACE TEMP MACRO net64_of_hex(h) AS
        ltrim(regexp_replace(regexp_replace(left(h, 16), '([0-9a-f]{4})', ':\\1', 'g'),
                             ':0{1,3}([0-9a-f])', ':\\1', 'g'), ':') || '::/64'""",
    """CREATE OR REPLACE TEMP MACRO net24_of(ip) AS
        regexp_extract(ip, '^([0-9]+\\.[0-9]+\\.[0-9]+)\\.[0-9]+$', 1) || '.0/24'""",
    """CREATE OR REPLACE TEMP MACRO client_net_of(ip) AS
        CASE WHEN ip IS NULL THEN NULL
             WHEN regexp_full_match(ip, '[0-9]{1,3}(\\.[0-9]{1,3}){3}') THEN net24_of(ip)
             WHEN regexp_full_match(ip, '(?i)::ffff:[0-9]{1,3}(\\.[0-9]{1,3}){3}')
                 THEN net24_of(substr(ip, 8))
             WHEN regexp_full_match(ip, '[0-9A-Fa-f:]+') AND contains(ip, ':') THEN
                 net64_of_hex(ip6_hex(
                     CASE WHEN contains(ip, '::') THEN string_split(split_part(ip, '::', 1), ':')
                          ELSE string_split(ip, ':') END,
                     CASE WHEN contains(ip, '::') THEN string_split(split_part(ip, '::', 2), ':')
                          ELSE [] END))
        END""",
    # The first address of an X-Forwarded-For chain, or an ip:port / [v6]:port stripped.
    """CREATE OR REPLACE TEMP MACRO first_xff(x) AS
        nullif(trim(split_part(x, ',', 1)), '')""",
    # A DNS host name (HOST_NAME_RE).
    f"""CREATE OR REPLACE TEMP MACRO is_host_name(a) AS
        coalesce(length(a) <= {HOST_NAME_MAX} AND regexp_full_match(a, {sql_str(HOST_NAME_RE)})
            AND regexp_matches(a, '(?i)[a-z]'), false)""",
    # web: an Origin header or a browser user agent; app: an app's HTTP stack; NULL: a server,
    # a script or a declared crawler.
    f"""CREATE OR REPLACE TEMP MACRO client_kind_of(ua, origin) AS
        CASE WHEN regexp_matches(coalesce(ua, ''), {sql_str(CRAWLER_AGENT_RE)}) THEN NULL
             WHEN regexp_matches(coalesce(ua, ''), {sql_str(APP_AGENT_RE)}) THEN 'app'
             WHEN coalesce(origin NOT IN ('', 'null'), false)
                  OR regexp_matches(coalesce(ua, ''), {sql_str(BROWSER_AGENT_RE)}) THEN 'web'
        END""",
    # ip:port and [v6]:port lose the port; ::ffff:a.b.c.d (dual-stack sockets) is IPv4.
    """CREATE OR REPLACE TEMP MACRO strip_port(a) AS
        regexp_replace(
            CASE WHEN a IS NULL OR a IN ('', '-') THEN NULL
                 WHEN starts_with(a, '[') THEN regexp_extract(a, '^\\[([^\\]]+)\\]', 1)
                 WHEN regexp_matches(a, '^[0-9.]+:[0-9]+$') THEN split_part(a, ':', 1)
                 ELSE a END,
            '^(?i)::ffff:([0-9]{1,3}(\\.[0-9]{1,3}){3})$', '\\1')""",
    # --- records ------------------------------------------------------------------------
    # Whether a line's JSON opens with `c` ('{' an object, '[' an array of batched records),
    # white space before it allowed. Most lines start with their '{' or '[', which ltrim keeps:
    # only the others are trimmed (a copy of the line).
    """CREATE OR REPLACE TEMP MACRO json_opens(line, c) AS
        starts_with(line, c)
        OR (NOT starts_with(line, '{') AND NOT starts_with(line, '[')
            AND starts_with(ltrim(line), c))""",
    # --- request shape ------------------------------------------------------------------
    f"""CREATE OR REPLACE TEMP MACRO endpoint_of(p) AS
        CASE WHEN p IS NULL THEN NULL
            -- one pass over the path for the many that are none of these (web logs)
            WHEN NOT regexp_matches(lower(p), {sql_str("|".join(_ENDPOINTS.values()))})
                 THEN 'other'
            {_ENDPOINT_CASES}
            ELSE 'other' END""",
    # Dated and versioned snapshot names map to their family: gpt-4o-2024-08-06 -> gpt-4o,
    # claude-3-5-sonnet-20241022 -> claude-3-5-sonnet, gemini-1.5-pro-002 -> gemini-1.5-pro.
    """CREATE OR REPLACE TEMP MACRO model_family_of(m) AS
        CASE WHEN m IS NULL OR trim(m) = '' THEN NULL ELSE
        regexp_replace(regexp_replace(regexp_replace(
            regexp_replace(lower(trim(m)), '^.*/', ''),
            '^(anthropic|openai|meta|mistral|cohere|amazon|ai21)\\.', ''),
            '(-v[0-9]+(:[0-9]+)?|@[0-9]{8}|@latest)$', ''),
            '(-[0-9]{4}-[0-9]{2}-[0-9]{2}|-[0-9]{8}|-[0-9]{4}|-[0-9]{3}|-latest)$', '') END""",
    """CREATE OR REPLACE TEMP MACRO error_type_of(status, code, finish) AS
        CASE WHEN (code IS NOT NULL OR finish IS NOT NULL)  -- no pattern run on ' '
                  AND regexp_matches(lower(coalesce(code, '') || ' ' || coalesce(finish, '')),
                                     'content_filter|content_policy|safety|moderation|prohibited')
                  THEN 'content_filter'
             WHEN status = 429 THEN 'rate_limited'
             WHEN status IN (401, 403, 407) THEN 'auth'
             WHEN status BETWEEN 400 AND 499 THEN 'invalid'
             WHEN status >= 500 THEN 'server'
             END""",
    # 64-bit fingerprint of the normalised first 64 characters (lower case, white space
    # collapsed, digits as 0), stable across DuckDB versions (SHA-256 based, not hash()).
    # Normalising a prefix gives the same first 64 characters as normalising the whole text
    # whenever the prefix still yields more than 64: only the rare message that does not
    # (long runs of blanks) is normalised whole.
    # (The regex runs only where there is white space to collapse: most prompts have none.)
    """CREATE OR REPLACE TEMP MACRO collapse_ws(x) AS
        CASE WHEN contains(x, '  ') OR contains(x, chr(9)) OR contains(x, chr(10))
                  OR contains(x, chr(13)) OR contains(x, chr(12))
             THEN regexp_replace(x, '\\s+', ' ', 'g') ELSE x END""",
    """CREATE OR REPLACE TEMP MACRO prompt_norm(t) AS
        trim(collapse_ws(lower(t)))""",
    # n is prompt_norm(left(t, 256)), passed in so that it is computed once per row.
    """CREATE OR REPLACE TEMP MACRO prompt_fp_from(t, n) AS
        CASE WHEN t IS NULL THEN NULL ELSE
        ('0x' || substr(sha256(regexp_replace(left(
            CASE WHEN length(t) <= 256 OR length(n) > 64 THEN n ELSE prompt_norm(t) END, 64),
            '[1-9]', '0', 'g')), 1, 16))::UBIGINT END""",
    """CREATE OR REPLACE TEMP MACRO prompt_fp(t) AS
        prompt_fp_from(t, prompt_norm(left(t, 256)))""",
    # Text of one message content: a plain string, or a list of parts (strings or objects with
    # text) given as JSON text. A string that merely looks like a list keeps its own text.
    """CREATE OR REPLACE TEMP MACRO content_text(c) AS
        CASE WHEN c IS NULL OR NOT starts_with(c, '[') OR NOT json_valid(c) THEN c
             ELSE coalesce(nullif(array_to_string(list_filter(list_transform(
                  json_extract(c, '$[*]'), lambda e: CASE json_type(e)
                      WHEN 'VARCHAR' THEN json_extract_string(e, '$')
                      ELSE json_extract_string(e, '$.text') END),
                  lambda x: x IS NOT NULL), chr(10)), ''), c)
             END""",
    # Every piece of prompt text in a request body, in order, with who said it: chat
    # messages, Responses API input items, Gemini contents, the Anthropic system prompt and
    # plain input / prompt values (embeddings, completions).
    # (One flatten of the five lists, none of them NULL: a chain of `||` copies the growing
    # list at every step, twice the time.)
    """CREATE OR REPLACE TEMP MACRO prompt_parts(rq) AS
        CASE WHEN rq IS NULL THEN NULL ELSE flatten([
          [{'role': 'system', 'text': content_text(rq.system)}],
          coalesce(list_transform(rq.messages,
                 lambda m: {'role': m.role, 'text': content_text(m.content)}), []),
          coalesce(list_transform(rq.contents, lambda c: {'role': coalesce(c.role, 'user'),
                 'text': array_to_string(list_transform(c.parts, lambda x: x.text), chr(10))}),
                 []),
          CASE WHEN starts_with(rq.input, '[{') AND json_valid(rq.input)
                  THEN list_transform(json_extract(rq.input, '$[*]'), lambda i: {
                      'role': coalesce(json_extract_string(i, '$.role'), 'user'),
                      'text': content_text(json_extract_string(i, '$.content'))})
                  ELSE [{'role': 'user', 'text': content_text(rq.input)}] END,
          [{'role': 'user', 'text': content_text(rq.prompt)}]])
        END""",
    # The last thing the user said, and how much prompt text there is in all.
    # (Parameter names must not collide with field names used inside prompt_parts.)
    """CREATE OR REPLACE TEMP MACRO last_user_text(pp) AS
        list_filter(pp, lambda x: x.role = 'user' AND x.text IS NOT NULL)[-1].text""",
    """CREATE OR REPLACE TEMP MACRO prompt_chars_of(pp) AS
        CAST(nullif(list_sum(list_transform(pp, lambda x: coalesce(length(x.text), 0))), 0)
             AS INTEGER)""",
    """CREATE OR REPLACE TEMP MACRO tool_calls_of(rs) AS
        CASE WHEN rs IS NULL THEN NULL ELSE CAST(
            coalesce(list_sum(list_transform(rs.choices,
                lambda c: coalesce(len(c.message.tool_calls), 0))), 0)
          + coalesce(len(list_filter(rs.content,
                lambda c: c.type IN ('tool_use', 'server_tool_use'))), 0)
          + coalesce(len(list_filter(rs.output, lambda o: o.type LIKE '%_call')), 0)
          + coalesce(list_sum(list_transform(rs.candidates, lambda c: coalesce(len(list_filter(
                c.content.parts, lambda x: x.functionCall IS NOT NULL)), 0))), 0)
            AS INTEGER) END""",
    """CREATE OR REPLACE TEMP MACRO finish_reason_of(rs) AS
        coalesce(rs.choices[1].finish_reason, rs.stop_reason,
                 lower(rs.candidates[1].finishReason))""",
]


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    for statement in MACROS:
        con.execute(statement)
