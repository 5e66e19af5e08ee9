"""The hostile corpus for secrets: keys planted in every field of every format are never stored.

Every key shape the scrubber knows is planted, raw, URL-encoded (separators as %2D, %5F, ...)
and JSON-escaped (separators as \\u002d, ...), into every field of a documented example of
every ingest format (JSON leaves, JSON inside JSON strings, text-line fields, CSV cells, TSV
cells, a JSON key, the file's name). The files are ingested through the CLI with
--keep-prompts; then every row of every table and view of the case, and the command's stdout
and stderr, are searched (case-insensitively) for a distinctive piece of each planted key.
The test prints "planted secrets x fields tried, found stored".
"""

from __future__ import annotations

import base64
import copy
import json
import random
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from forensics.case import db
from forensics.case.fingerprints import KEY_SHAPES
from forensics.cli import cli
from forensics.ingest import canonical
from tests.ingest.test_cloudflare import record as cloudflare_record
from tests.ingest.test_envoy import AI_GW_TYPED, DEFAULT_LINE
from tests.ingest.test_jsonl import DOCUMENTED as JSONL_RECORD
from tests.ingest.test_jsonl import EXAMPLE as JSONL_MAPPING
from tests.ingest.test_kong import kong_record
from tests.ingest.test_litellm import row as litellm_row
from tests.ingest.test_litellm_daily import row as litellm_daily_row
from tests.ingest.test_provider_usage import an_cost, an_result, oa_cost, oa_result
from tests.keys import KEYS

_rng = random.Random(20261205)
ALNUM = string.ascii_letters + string.digits


def _r(n: int, alphabet: str = ALNUM) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def _b64url(obj: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


# Every shape of fingerprints.KEY_SHAPES, at least once (tests/keys.py has most of them).
PLANTED: dict[str, str] = {
    **KEYS,
    "openai-svcacct": "sk-svcacct-" + _r(40, ALNUM + "-_"),
    "replicate": "r8_" + _r(37),
    "gitlab": "glpat-" + _r(20),
    "slack": "xoxb-" + _r(12, string.digits) + "-" + _r(24),
    "digitalocean": "dop_v1_" + _r(64, "0123456789abcdef"),
    "npm": "npm_" + _r(36),
    "sendgrid": "SG." + _r(22, ALNUM + "-_") + "." + _r(43, ALNUM + "-_"),
    "huggingface-org": "api_org_" + _r(34, string.ascii_letters),
}
# (the 12 characters searched for are letters and digits in every key)
PLANTED = {
    name: key[:-16] + re.sub(r"[^A-Za-z0-9]", "x", key[-16:-4]) + key[-4:]
    for name, key in PLANTED.items()
}
# A token whose claims and header carry keys: what the JWT columns would otherwise store.
PLANTED["jwt-carrying-keys"] = (
    _b64url({"alg": "RS256", "kid": PLANTED["gitlab"], "typ": "JWT"})
    + "."
    + _b64url(
        {
            "iss": PLANTED["aws"],
            "jti": PLANTED["github"],
            "client_id": PLANTED["google"],
            "scope": "read " + PLANTED["slack"],
            "sub": PLANTED["npm"],
            "iat": 1767225000,
            "exp": 1767228600,
        }
    )
    + "."
    + _r(43)
)
SHAPES_KNOWN = set(KEY_SHAPES)
ENCODINGS = ("raw", "url", "json")
_SEP_URL = {"-": "%2D", "_": "%5F", ".": "%2E"}
_SEP_JSON = {"-": "\\u002d", "_": "\\u005f", ".": "\\u002e"}


def _window(key: str) -> tuple[int, int]:
    """Where 12 distinctive characters of a key are: the 12 before its last four (which a
    fingerprint shows), past every vendor prefix."""
    assert len(key) >= 20 and key[-16:-4].isalnum(), key
    return len(key) - 16, len(key) - 4


def _like(c: str) -> str:
    """A random character of the same class (valid wherever `c` is in every key shape)."""
    if c.isdigit():
        return _rng.choice("234567")
    if c in "abcdef":
        return _rng.choice("abcdef")
    if c.islower():
        return _rng.choice(string.ascii_lowercase)
    return _rng.choice(string.ascii_uppercase)


def variant(key: str) -> tuple[str, str]:
    """A fresh key of the same shape (its window redrawn) and the window, to search for."""
    a, b = _window(key)
    while True:
        window = "".join(_like(c) for c in key[a:b])
        if window not in SEEN:
            SEEN.add(window)
            return key[:a] + window + key[b:], window


SEEN: set[str] = set()
# The keys inside the carrier token's claims: found stored, they count for every carrier.
CARRIED_NEEDLES = [
    PLANTED[name][slice(*_window(PLANTED[name]))]
    for name in ("gitlab", "aws", "github", "google", "slack", "npm")
]


def encode(key: str, how: str) -> str:
    """The key as planted: raw, URL-encoded or JSON-escaped separators."""
    table = {"raw": {}, "url": _SEP_URL, "json": _SEP_JSON}[how]
    return "".join(table.get(c, c) for c in key)


@dataclass
class Planting:
    fmt: str
    where: str
    shape: str
    how: str
    needle: str


@dataclass
class Corpus:
    """What was planted where: one entry per (secret, field) tried, each key unique."""

    tried: list[Planting] = field(default_factory=list)
    _next: int = 0

    def pick(self, fmt: str, where: str, how: str, shape: str | None = None) -> str:
        names = list(PLANTED)
        name = shape or names[self._next % len(names)]
        self._next += 1
        key, needle = variant(PLANTED[name])
        self.tried.append(Planting(fmt, where, name, how, needle))
        return encode(key, how)


# --- JSON formats: every leaf (strings, numbers, booleans), JSON inside strings, one key ---


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, (*path, i))
    elif isinstance(node, str) and node[:1] in "{[" and _is_json(node):
        inner = json.loads(node)
        for sub in _leaves(inner):
            yield (*path, ("json", sub))
    else:
        yield path


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _set(node: Any, path: tuple[Any, ...], value: str) -> Any:
    """A copy of `node` with the leaf at `path` replaced (JSON strings are re-serialised)."""
    if not path:
        return value
    head, *rest = path
    if isinstance(head, tuple) and head[0] == "json":
        return json.dumps(_set(json.loads(node), head[1], value))
    out = copy.copy(node)
    out[head] = _set(node[head], tuple(rest), value)
    return out


def _path_name(path: tuple[Any, ...]) -> str:
    parts = []
    for p in path:
        parts.append("{json " + _path_name(p[1]) + "}" if isinstance(p, tuple) else str(p))
    return ".".join(parts)


def json_mutations(
    corpus: Corpus, fmt: str, base: dict[str, Any], wrap: Callable[[Any], Any] = lambda r: r
) -> list[str]:
    """One JSON line per (leaf, encoding) with a planted key, and one with a key as a name."""
    lines = []
    for path in list(_leaves(base)):
        for how in ENCODINGS:
            planted = corpus.pick(fmt, _path_name(path), how)
            marker = f"@@PLANT{len(lines)}@@"
            # half of the plantings stand alone, half sit inside text like a query string
            value = marker if len(lines) % 2 else f"/v1/x?trace=1&q={marker}&z=1"
            text = json.dumps(wrap(_set(base, path, value)))
            lines.append(text.replace(marker, planted))
    for how in ENCODINGS:
        planted = corpus.pick(fmt, "(a JSON key)", how)
        rec = dict(base)
        rec["@@KEY@@"] = "x"
        lines.append(json.dumps(wrap(rec)).replace("@@KEY@@", planted))
    return lines


# --- text, CSV and TSV formats: every field of a template ---------------------------------


def template_mutations(
    corpus: Corpus, fmt: str, template: str, fields: dict[str, str], escape: Callable[[str], str]
) -> list[str]:
    lines = []
    for name in fields:
        for how in ENCODINGS:
            planted = corpus.pick(fmt, name, how)
            values = dict(fields)
            values[name] = planted if len(lines) % 2 else f"a{planted}"
            lines.append(template.format(**{k: escape(v) for k, v in values.items()}))
    return lines


def csv_cell(v: str) -> str:
    return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\n') else v


def csv_mutations(corpus: Corpus, fmt: str, header: list[str], good: list[str]) -> str:
    fields = dict(zip(header, good, strict=True))
    template = ",".join("{" + h + "}" for h in header)
    rows = template_mutations(corpus, fmt, template, fields, csv_cell)
    return ",".join(header) + "\n" + "\n".join(rows) + "\n"


def build(tmp_path: Path, corpus: Corpus) -> list[tuple[list[str], Path]]:
    """Write the corpus; (CLI arguments before the file, file) per file."""
    files: list[tuple[list[str], Path]] = []

    def write(name: str, text: str, *args: str) -> None:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        files.append((list(args), path))

    # Kong: the request headers get an Authorization and an API key to replace as well.
    kong = kong_record()
    kong["request"]["headers"]["authorization"] = "Bearer " + _r(30)  # type: ignore[index]
    kong["request"]["headers"]["apikey"] = _r(24)  # type: ignore[index]
    kong["request"]["querystring"] = {"api_key": _r(20), "debug": "1"}  # type: ignore[index]
    write("kong.jsonl", "\n".join(json_mutations(corpus, "kong", kong)) + "\n", "--format", "kong")
    envoy_json = json.loads(AI_GW_TYPED)
    envoy_json["authorization"] = "Bearer " + _r(30)
    write(
        "envoy.jsonl",
        "\n".join(json_mutations(corpus, "envoy-json", envoy_json)) + "\n",
        "--format",
        "envoy",
    )
    envoy_fields = {
        "ts": "2026-01-01T08:15:02.481Z",
        "method": "POST",
        "uri": "/v1/chat/completions",
        "status": "200",
        "flags": "-",
        "rx": "912",
        "tx": "48211",
        "dur": "15230",
        "ust": "15198",
        "xff": "198.51.100.77",
        "ua": "openai-python/1.54.0",
        "rid": "3f2c1e0a-8b7d-4c6e-9a5f-112233445566",
        "auth": "llm.example.net",
        "up": "192.0.2.10:443",
    }
    envoy_template = (
        '[{ts}] "{method} {uri} HTTP/1.1" {status} {flags} {rx} {tx} {dur} {ust}'
        ' "{xff}" "{ua}" "{rid}" "{auth}" "{up}"'
    )
    assert envoy_template.format(**envoy_fields) == DEFAULT_LINE
    write(
        "envoy.log",
        "\n".join(template_mutations(corpus, "envoy-text", envoy_template, envoy_fields, str))
        + "\n",
        "--format",
        "envoy",
    )
    cloudflare = cloudflare_record(
        RequestHeaders={"x-tenant-id": "acme", "authorization": "Bearer " + _r(30)}
    )
    write(
        "cloudflare.jsonl",
        "\n".join(json_mutations(corpus, "cloudflare", cloudflare)) + "\n",
        "--format",
        "cloudflare",
    )
    combined_fields = {
        "ip": "203.0.113.45",
        "user": "alice",
        "time": "01/Jan/2026:09:15:02 +0100",
        "method": "POST",
        "uri": "/v1/chat/completions?api_key=abc",
        "status": "200",
        "bytes": "48211",
        "referer": "https://app.example.com/",
        "ua": "curl/8.5.0",
        "xff": "198.51.100.9",
    }
    combined_template = (
        '{ip} - {user} [{time}] "{method} {uri} HTTP/1.1" {status} {bytes} "{referer}" "{ua}"'
        ' "{xff}"'
    )
    write(
        "access.log",
        "\n".join(template_mutations(corpus, "combined", combined_template, combined_fields, str))
        + "\n",
        "--format",
        "combined",
    )
    nginx_json = {
        "time_iso8601": "2026-01-01T09:15:02+01:00",
        "remote_addr": "203.0.113.45",
        "remote_user": "carol",
        "request": "POST /v1/chat/completions?stream=true HTTP/2.0",
        "status": "200",
        "body_bytes_sent": "112",
        "request_time": "0.004",
        "http_referer": "https://app.example.com/",
        "http_user_agent": "Go-http-client/2.0",
        "http_x_forwarded_for": "203.0.113.7, 198.51.100.20",
        "http_host": "llm.example.net",
        "http_authorization": "Bearer " + _r(30),
        "http_x_api_key": _r(22),
        "request_id": "5e9d2c1b0a3f4e6d8c7b6a5f4e3d2c1b",
    }
    write(
        "nginx.jsonl",
        "\n".join(json_mutations(corpus, "nginx-json", nginx_json)) + "\n",
        "--format",
        "nginx-json",
    )
    write(
        "gateway.jsonl",
        "\n".join(json_mutations(corpus, "jsonl", JSONL_RECORD)) + "\n",
        "--format",
        "jsonl",
        "--mapping",
        str(JSONL_MAPPING),
    )
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Summarise ticket 881"}],
        "metadata": {"user_id": "u-1"},
    }
    litellm = litellm_row(
        proxy_server_request={
            "url": "http://litellm.example.net:4000/chat/completions?trace=1",
            "method": "POST",
            "headers": {
                "host": "litellm.example.net:4000",
                "user-agent": "OpenAI/Python 1.54.0",
                "authorization": "Bearer " + _r(30),
                "x-forwarded-for": "198.51.100.7, 10.0.0.2",
            },
            "body": body,
        },
        response=json.dumps({"model": "gpt-4o-mini", "choices": [{"finish_reason": "stop"}]}),
    )
    write(
        "spendlogs.jsonl",
        "\n".join(json_mutations(corpus, "litellm", litellm)) + "\n",
        "--format",
        "litellm",
    )

    def page(fmt: str, result: dict[str, Any], bucket: dict[str, Any]) -> list[str]:
        return json_mutations(
            corpus,
            fmt,
            {"bucket": bucket, "result": result},
            lambda m: {
                "object": "page",
                "data": [{**m["bucket"], "results": [m["result"]]}],
                "has_more": False,
                "next_page": None,
            },
        )

    oa_bucket = {"object": "bucket", "start_time": 1767225600, "end_time": 1767229200}
    an_bucket = {"starting_at": "2026-01-01T00:00:00Z", "ending_at": "2026-01-02T00:00:00Z"}
    for fmt, result, bucket in (
        ("openai-usage", oa_result(user_id="user_1", service_tier="default"), oa_bucket),
        ("openai-costs", oa_cost(api_key_id="key_1", organization_id="org_1"), oa_bucket),
        ("anthropic-usage", an_result(account_id="acct_1"), an_bucket),
        ("anthropic-cost", an_cost(), an_bucket),
    ):
        write(f"{fmt}.jsonl", "\n".join(page(fmt, result, bucket)) + "\n", "--format", fmt)
    daily = {k: v for k, v in litellm_daily_row("team_id", "team-acme").items() if v is not None}
    write(
        "daily.jsonl",
        "\n".join(json_mutations(corpus, "litellm-daily", daily)) + "\n",
        "--format",
        "litellm-daily",
    )
    write(
        "daily.csv",
        csv_mutations(corpus, "litellm-daily-csv", list(daily), [str(v) for v in daily.values()]),
        "--format",
        "litellm-daily",
    )
    for fmt, header, good in (
        ("revocations", ["credential_id", "revoked_at"], ["cred-1", "2026-01-01T00:00:00Z"]),
        (
            "allowlist",
            ["kind", "value", "detectors", "reason", "expires"],
            ["tenant", "acme", "auth.*", "known partner", "2027-01-01"],
        ),
        (
            "retired-keys",
            ["issuer", "key_id", "retired_at", "reason"],
            ["https://auth.example.net/", "key-2026-10", "2026-01-01", "rotation"],
        ),
        ("known-keys", ["provider", "api_key_id", "label"], ["openai", "key_9xY", "gateway"]),
        (
            "key-inventory",
            ["credential_id", "owner_tenant", "created_at", "expires_at", "scopes", "label"],
            ["cred-1", "tenant-acme", "2026-01-01", "2027-01-01", "chat", "prod"],
        ),
        (
            "prices",
            [
                "provider",
                "model_pattern",
                "input_per_mtok",
                "cached_input_per_mtok",
                "output_per_mtok",
                "effective_from",
            ],
            ["openai", "gpt-9%", "1.0", "0.5", "2.0", "2026-01-01"],
        ),
        ("asn-categories", ["asn", "category", "name"], ["64500", "hosting", "Example Cloud"]),
    ):
        write(f"{fmt}.csv", csv_mutations(corpus, fmt, header, good), "--format", fmt)
    tsv_fields = {
        "start": "198.51.100.0",
        "end": "198.51.100.255",
        "asn": "64500",
        "country": "NL",
        "org": "EXAMPLE-NET",
    }
    write(
        "ip2asn.tsv",
        "\n".join(
            template_mutations(
                corpus, "iptoasn", "{start}\t{end}\t{asn}\t{country}\t{org}", tsv_fields, str
            )
        )
        + "\n",
        "--format",
        "iptoasn",
    )
    # file names: the sources' paths and the summary
    for how in ENCODINGS:
        shape = "aws" if how != "json" else "github"
        planted = corpus.pick("(file name)", "path", how, shape).replace("\\", "_")
        record = kong_record(**{"request.id": f"file-{how}"})
        write(f"kong-{planted}.jsonl", json.dumps(record) + "\n", "--format", "kong")
    return files


def scan_case(path: Path, wanted: list[str]) -> dict[str, list[str]]:
    """needle -> the table.column / view.column where it was found, case-insensitively, in
    every text, JSON and list column of every table and view, and in whole rows."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        relations = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE NOT internal"
                " UNION ALL SELECT view_name FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        ]
        columns = con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE NOT internal"
        ).fetchall()
        texts = sorted(
            (t, c)
            for t, c, typ in columns
            if t in relations and ("VARCHAR" in typ or "JSON" in typ or "[]" in typ)
        )
        assert len(texts) > 40
        found: dict[str, list[str]] = {}
        needles = [n.lower() for n in wanted]
        queries = [
            (f"{t}.{c}", f'SELECT lower(CAST("{c}" AS VARCHAR)) FROM "{t}"') for t, c in texts
        ]
        queries += [(t, f'SELECT lower(CAST(x AS VARCHAR)) FROM "{t}" x') for t in relations]
        for where, select in queries:
            hits = con.execute(
                f"SELECT DISTINCT n FROM ({select}) s(v) JOIN unnest($n) t(n) ON contains(v, n)",
                {"n": needles},
            ).fetchall()
            for (n,) in hits:
                found.setdefault(n, []).append(where)
        return found
    finally:
        con.close()


@pytest.fixture(scope="module", params=["dense", "sparse"])
def hostile(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[Corpus, Path, str]]:
    """The corpus ingested twice: every file as ingest judges it (its lines nearly all carry
    secrets: scrubbed inside the one canonical SELECT), and every file as if its secrets were
    sparse (the rows that carry one scrubbed in a second pass: canonical.dense_secrets)."""
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "sparse":
            patch.setattr(canonical, "dense_secrets", lambda con, head: False)
        yield _ingest_corpus(tmp_path_factory.mktemp(f"hostile-{request.param}"))


def _ingest_corpus(tmp: Path) -> tuple[Corpus, Path, str]:
    corpus = Corpus()
    files = build(tmp, corpus)
    case = tmp / "case.duckdb"
    output = []
    for args, path in files:
        result = CliRunner().invoke(
            cli,
            # planted secrets make records unreadable on purpose: keep every file however many
            ["--db", str(case), "ingest", "-q", "--keep-prompts", "--max-quarantine-share", "1"]
            + [*args, str(path)],
        )
        output.append(result.stdout)
        output.append(getattr(result, "stderr", "") or "")
        assert result.exit_code in (0, 1), (path.name, result.output, result.exception)
    return corpus, case, "\n".join(output)


def test_every_format_was_ingested(hostile: tuple[Corpus, Path, str]) -> None:
    _, case, _ = hostile
    con = db.connect(case, read_only=True)
    try:
        formats = {
            r[0] for r in con.execute("SELECT format FROM sources WHERE rows_read > 0").fetchall()
        }
        loaded = con.execute("SELECT sum(rows_loaded) FROM sources").fetchall()[0][0]
    finally:
        con.close()
    assert formats >= {
        "kong",
        "envoy",
        "cloudflare",
        "combined",
        "nginx-json",
        "jsonl",
        "litellm",
        "openai-usage",
        "openai-costs",
        "anthropic-usage",
        "anthropic-cost",
        "litellm-daily",
        "revocations",
        "allowlist",
        "retired-keys",
        "known-keys",
        "prices",
        "asn-categories",
        "iptoasn",
    }
    assert loaded > 0  # the corpus is not all quarantine


def test_every_known_key_shape_is_planted_in_every_encoding(
    hostile: tuple[Corpus, Path, str],
) -> None:
    corpus, _, _ = hostile
    planted = {(p.shape, p.how) for p in corpus.tried}
    assert {(n, h) for n in PLANTED for h in ENCODINGS} <= planted
    shapes = {
        shape
        for shape, pattern in KEY_SHAPES.items()
        for key in PLANTED.values()
        if re.fullmatch(pattern, key)
    }
    assert shapes == SHAPES_KNOWN, SHAPES_KNOWN - shapes


def test_no_planted_secret_is_stored_or_printed(hostile: tuple[Corpus, Path, str]) -> None:
    corpus, case, output = hostile
    wanted = [p.needle for p in corpus.tried] + CARRIED_NEEDLES
    found = scan_case(case, wanted)
    lowered = output.lower()
    printed = {n.lower() for n in wanted if n.lower() in lowered}
    carried = any(n.lower() in found or n.lower() in printed for n in CARRIED_NEEDLES)
    stored = [
        p
        for p in corpus.tried
        if p.needle.lower() in found
        or p.needle.lower() in printed
        or (carried and p.shape == "jwt-carrying-keys")
    ]
    print(f"\nplanted secrets x fields tried: {len(corpus.tried)}, found stored: {len(stored)}")
    report = [
        (p.fmt, p.where, p.shape, p.how, found.get(p.needle.lower(), ["stdout/stderr"]))
        for p in stored
    ]
    assert not stored, "\n".join(map(str, report))
