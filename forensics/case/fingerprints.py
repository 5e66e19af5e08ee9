"""Credentials never reach the case: fingerprints, scrubbing and JWT claims, all as SQL macros.

A raw key or bearer token is replaced by ``cred:<12 hex>:<last 4>``: the first 12 hex digits of
HMAC-SHA256 under the case's own salt, then the key's last four characters (which vendors show
in their consoles, so an investigator can match a fingerprint to a key they hold).

The key shapes below are facts taken from the gitleaks default rule set (OpenAI, Anthropic,
Google, AWS, Hugging Face, Perplexity, GitHub, GitLab, Stripe, Slack, DigitalOcean, npm,
SendGrid, JWT), widened where a provider has several generations of key. They are RE2
patterns, evaluated by DuckDB inside the insert, never row by row in Python.
"""

from __future__ import annotations

import hashlib
import hmac
import re

import duckdb

from forensics.sqltext import sql_str

# Key shapes, most specific first (RE2, leftmost alternative wins).
KEY_SHAPES: dict[str, str] = {
    "anthropic": r"sk-ant-(?:api|admin|sid|oat)[0-9]{2}-[A-Za-z0-9_-]{20,}",
    "openai": r"sk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}",
    "generic-sk": r"sk-[A-Za-z0-9]{20,}",  # legacy OpenAI, DeepSeek and other OpenAI-compatible
    "google": r"AIza[0-9A-Za-z_-]{35}",
    "aws": r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}",
    "huggingface": r"(?:hf_|api_org_)[A-Za-z]{34}",
    "perplexity": r"pplx-[A-Za-z0-9]{48}",
    "groq": r"gsk_[A-Za-z0-9]{48,}",
    "xai": r"xai-[A-Za-z0-9]{60,}",
    "replicate": r"r8_[A-Za-z0-9]{37}",
    "github": r"(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})",
    "gitlab": r"glpat-[A-Za-z0-9_-]{20}",
    "stripe": r"(?:sk|rk)_(?:test|live|prod)_[A-Za-z0-9]{10,99}",
    "slack": r"xox[baprs]-[0-9A-Za-z-]{10,}",
    "digitalocean": r"do[opr]_v1_[a-f0-9]{64}",
    "npm": r"npm_[A-Za-z0-9]{36}",
    "sendgrid": r"SG\.[A-Za-z0-9=_.-]{66}",
    "jwt": r"ey[A-Za-z0-9_-]{10,}\.ey[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*",
}
# Separators inside a key may arrive escaped: URL-encoded once or twice (`%2D`, `%252D`) or
# JSON-escaped once or twice (`\u002d`, `\\u002d` in JSON inside a JSON string).
# The key patterns accept every spelling of `-`, `_`, `.` and `=`.
_SEPARATORS = {
    "-": r"%(?:25)?2[Dd]|\\{1,3}u002[Dd]",
    "_": r"%(?:25)?5[Ff]|\\{1,3}u005[Ff]",
    ".": r"%(?:25)?2[Ee]|\\{1,3}u002[Ee]",
    "=": r"%(?:25)?3[Dd]|\\{1,3}u003[Dd]",
}


def escapable(pattern: str) -> str:
    """`pattern` with every literal or class-listed separator also matched in escaped form."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "[":  # a character class: add the escaped separators it lists as alternatives
            close = pattern.index("]", i + 1)
            body = pattern[i + 1 : close]
            # a `-` is a literal (not a range) at either end of the class
            literal = body.replace("\\", "").replace("-", "") + (
                "-" if body.startswith("-") or body.endswith("-") else ""
            )
            listed = [sep for sep in _SEPARATORS if sep in literal]
            cls = pattern[i : close + 1]
            out.append(
                "(?:" + cls + "|" + "|".join(_SEPARATORS[sep] for sep in listed) + ")"
                if listed
                else cls
            )
            i = close + 1
        elif c == "\\" and pattern[i + 1 : i + 2] == ".":
            out.append("(?:\\.|" + _SEPARATORS["."] + ")")
            i += 2
        elif c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
        elif c in "-_":
            out.append("(?:" + c + "|" + _SEPARATORS[c] + ")")
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


KEY_PATTERN = "(?:" + "|".join(escapable(p) for p in KEY_SHAPES.values()) + ")"

# Names that say a value is a secret, for query parameters and JSON fields (any name containing
# one of them: `x-goog-api-key`, `client_secret`, `refresh_token`, `X-Amz-Signature`, ...).
SECRET_NAMES = "key|token|secret|auth|passw|pwd|signature|sig|credential|cookie|session"  # noqa: S105
_SECRET_NAME = r"[A-Za-z0-9_.-]*(?:" + SECRET_NAMES + r")[A-Za-z0-9_.-]*"
# Secrets recognised by where they stand rather than by their shape (group 1 is the secret).
BEARER_PATTERN = r"(?i)(?:bearer|basic)\s+([A-Za-z0-9._~+/=:-]{8,})"
QUERY_PATTERN = r"(?i)(?:[?&;]|^)" + _SECRET_NAME + r"=((?:[^&\s\"'\\]|\\+[^\\\s\"])" + "{8,})"
# A JSON field named like a secret, plain or inside a JSON string (`\"token\": \"...\"`).
JSON_FIELD_PATTERN = (
    r"(?i)\\?\"" + _SECRET_NAME + r"\\?\"\s*:\s*\\?\""
    r"(?:(?:bearer|basic|token)\s+)?"
    # a value that is not only lower-case words (`"token_type": "uncached_input_tokens"` names a
    # kind of token, it is not one): some other character somewhere
    r"([a-z_]*(?:[^\"\\a-z_]|\\+[^\\\"])(?:[^\"\\]|\\+[^\\\"])*)"
)
ANY_SECRET = "|".join(
    f"(?i:{p[4:]})" if p.startswith("(?i)") else f"(?:{p})"
    for p in (KEY_PATTERN, BEARER_PATTERN, QUERY_PATTERN, JSON_FIELD_PATTERN)
)
JWT_PATTERN = r"^ey[A-Za-z0-9_-]+\.ey[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$"
# What `cred_fp` writes; only this exact form is left alone by `scrub`.
FINGERPRINT_PATTERN = r"cred:[0-9a-f]{12}:[^\s]{0,4}"

# Header values that a gateway already redacted: nothing to fingerprint.
REDACTED_VALUES = ("REDACTED", "[REDACTED]", "***", "<redacted>", "-")


_PY_SECRET = re.compile(
    "|".join(
        f"(?:{p[4:]})" if p.startswith("(?i)") else f"(?:{p})"
        for p in (KEY_PATTERN, BEARER_PATTERN, QUERY_PATTERN, JSON_FIELD_PATTERN)
    ),
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """For messages (errors, warnings, paths) that may quote a log: secrets become [REDACTED]."""
    return _PY_SECRET.sub("[REDACTED]", text)


def fingerprint(secret: str, salt: bytes) -> str:
    """The Python twin of the SQL macro ``cred_fp``, for tests and single values."""
    digest = hmac.new(salt, secret.encode(), hashlib.sha256).hexdigest()
    return f"cred:{digest[:12]}:{secret[-4:]}"


def _unescape_sql(v: str) -> str:
    """SQL: `v` with the escaped spellings of `_SEPARATORS` replaced by the separator."""
    for sep, spellings in _SEPARATORS.items():
        v = f"regexp_replace({v}, {sql_str(spellings)}, {sql_str(sep)}, 'g')"
    return v


def install_macros(con: duckdb.DuckDBPyConnection, salt: bytes) -> None:
    """Define the credential macros on a connection; the salt is baked into the macro text."""
    key = (
        salt.ljust(64, b"\0") if len(salt) <= 64 else hashlib.sha256(salt).digest().ljust(64, b"\0")
    )
    ipad = bytes(b ^ 0x36 for b in key).hex()
    opad = bytes(b ^ 0x5C for b in key).hex()
    redacted = ", ".join(sql_str(v) for v in REDACTED_VALUES)
    statements = [
        # HMAC-SHA256(salt, k) written out: sha256(K^opad || sha256(K^ipad || k)).
        f"""CREATE OR REPLACE TEMP MACRO cred_fp(k) AS
            CASE WHEN k IS NULL OR length(trim(k)) = 0 OR trim(k) IN ({redacted}) THEN NULL
                 ELSE 'cred:' || substr(sha256(unhex('{opad}')
                          || unhex(sha256(unhex('{ipad}') || encode(k)))), 1, 12)
                      || ':' || right(k, 4) END""",
        # A key as found in text, its escaped separators (%2D, %252D, \\u002d, ...) decoded, so
        # that an escaped key has the fingerprint of the key itself.
        f"""CREATE OR REPLACE TEMP MACRO key_text(m) AS
            CASE WHEN NOT contains(m, '%') AND NOT contains(m, '\\') THEN m
                 ELSE {_unescape_sql("m")} END""",
        # What a value looks like without what it says (as `times.shape`), for error texts:
        # letters as a, digits as 9, cut to 32 characters.
        """CREATE OR REPLACE TEMP MACRO value_shape(v) AS
            CASE WHEN v IS NULL THEN 'no value'
                 ELSE length(v) || ' characters shaped '
                      || regexp_replace(regexp_replace(left(v, 32), '\\pL', 'a', 'g'),
                                        '\\pN', '9', 'g')
                      || CASE WHEN length(v) > 32 THEN '…' ELSE '' END END""",
        # The secret inside an Authorization value: drop the scheme word.
        """CREATE OR REPLACE TEMP MACRO auth_token(v) AS
            CASE WHEN v IS NULL THEN NULL
                 ELSE nullif(trim(regexp_replace(trim(v), '(?i)^(bearer|basic|token|apikey)\\s+',
                      '')), '') END""",
        # Every secret a string carries, longest first: key shapes, bearer/basic tokens,
        # key=value query parameters and JSON fields named like credentials (fingerprints and
        # gateway-redacted values left alone).
        f"""CREATE OR REPLACE TEMP MACRO secrets_in(t) AS
            list_transform(list_sort(list_transform(list_distinct(list_filter(
                regexp_extract_all(t, {sql_str(KEY_PATTERN)})
                || regexp_extract_all(t, {sql_str(BEARER_PATTERN)}, 1)
                || regexp_extract_all(t, {sql_str(QUERY_PATTERN)}, 1)
                || regexp_extract_all(t, {sql_str(JSON_FIELD_PATTERN)}, 1),
                lambda m: NOT regexp_full_match(m, {sql_str(FINGERPRINT_PATTERN)})
                          AND m NOT IN ({redacted}))),
                -- longest first: a secret inside a longer one goes with it
                lambda m: lpad(CAST(1000000 - length(m) AS VARCHAR), 7, '0') || m)),
                lambda x: substr(x, 8))""",
        f"""CREATE OR REPLACE TEMP MACRO scrub(t) AS
            CASE WHEN t IS NULL OR NOT regexp_matches(t, {sql_str(ANY_SECRET)}) THEN t
                 ELSE list_reduce(list_prepend(t, secrets_in(t)),
                                  lambda acc, m: replace(acc, m, cred_fp(key_text(m)))) END""",
        # Each string of a list scrubbed. A lambda's regular expressions are compiled again for
        # every vector of rows it runs on (several milliseconds for these), so the lambda runs
        # only for a list whose strings, joined by '&', match: a match inside one string is a
        # match in the joined text, and the '&' before it stands for the start of the string
        # that QUERY_PATTERN's '^' needs.
        f"""CREATE OR REPLACE TEMP MACRO scrub_list(l) AS
            CASE WHEN NOT regexp_matches(array_to_string(l, '&'), {sql_str(ANY_SECRET)}) THEN l
                 ELSE list_transform(l, lambda x: scrub(x)) END""",
        f"""CREATE OR REPLACE TEMP MACRO is_jwt(t) AS
            coalesce(regexp_full_match(t, {sql_str(JWT_PATTERN)}), false)""",
        # base64url JSON segment of a JWT, decoded without verification.
        """CREATE OR REPLACE TEMP MACRO b64url_json(s) AS
            try(decode(from_base64(rpad(replace(replace(s, '-', '+'), '_', '/'),
                CAST((length(s) + 3) // 4 * 4 AS INTEGER), '=')))::JSON)""",
        """CREATE OR REPLACE TEMP MACRO jwt_claims(t) AS
            CASE WHEN is_jwt(t) THEN b64url_json(split_part(t, '.', 2)) END""",
        """CREATE OR REPLACE TEMP MACRO jwt_header(t) AS
            CASE WHEN is_jwt(t) THEN b64url_json(split_part(t, '.', 1)) END""",
        """CREATE OR REPLACE TEMP MACRO epoch_claim(j, name) AS
            try(to_timestamp(TRY_CAST(json_extract_string(j, name) AS DOUBLE)))""",
        # Basic auth carries "user:password": the user name is not a secret.
        """CREATE OR REPLACE TEMP MACRO basic_user(v) AS
            CASE WHEN regexp_matches(v, '(?i)^basic\\s+')  -- NULL: no pattern run
                 THEN nullif(split_part(try(decode(from_base64(
                      trim(regexp_replace(v, '(?i)^basic\\s+', ''))))), ':', 1), '') END""",
    ]
    for statement in statements:
        con.execute(statement)
