"""Structure-aware fuzzing of every adapter: whatever a file holds, every record is accounted for.

Each case starts from a valid record of one format (the same records the format's own tests
use), mutates it (a field replaced by a value of the wrong type, a huge or deeply nested value,
NUL, invalid UTF-8, a BOM, CRLF, a line cut short or duplicated), writes a few of them to a file,
optionally compressed and damaged, and ingests it with `--format` of that format. The property:
ingest either loads the file with read = loaded + quarantined, or fails it with one clear
`ForensicsError`; nothing else escapes, and the case stays usable.

`pytest -m fuzz` runs the long campaign (FORENSICS_FUZZ_EXAMPLES per format, default 2000);
the default run takes a short sample of every format.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forensics.case import db
from forensics.errors import ForensicsError
from forensics.ingest.base import Options
from forensics.ingest.pipeline import ingest_file
from tests.ingest import (
    test_access_log_variants,
    test_cloudflare,
    test_envoy,
    test_litellm,
    test_nginx,
    test_provider_usage,
)
from tests.ingest.test_kong import kong_record

LONG = int(os.environ.get("FORENSICS_FUZZ_EXAMPLES", "2000"))
SHORT = 12

# Values no field expects: wrong types, extremes, characters that break naive parsers.
HOSTILE_SCALARS: list[Any] = [
    None,
    True,
    0,
    -1,
    2**63,
    -(2**70),
    1e308,
    float("nan"),
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ufeff",
    "\r\n",
    "\u202e",
    "ðŸ",  # mojibake
    "x" * 70_000,
    "9" * 400,
    "2026-13-45T99:99:99Z",
    "-1e999",
    "[]",
    "{}",
    '"',
    "\\",
    "sk-proj-" + "A1b2" * 12,
]


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value] if depth % 2 else {"k": value}
    return value


def _hostile_values() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(HOSTILE_SCALARS),
        st.text(max_size=40),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([_nested(30), _nested(600), [1, "a", None], {"": None}]),
    )


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON record (the record itself excluded)."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((*prefix, key))
            found.extend(_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found.append((*prefix, i))
            found.extend(_paths(child, (*prefix, i)))
    return found


def _replace(record: Any, path: tuple[Any, ...], new: Any) -> Any:
    copy = json.loads(json.dumps(record))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    if new is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return copy


_DELETE = object()


@st.composite
def _mutated_json(draw: st.DrawFn, seed: Any) -> bytes:
    record = seed
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(record)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        new = draw(st.one_of(_hostile_values(), st.just(_DELETE)))
        record = _replace(record, path, new)
    text = json.dumps(record, allow_nan=True, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")


@st.composite
def _mutated_bytes(draw: st.DrawFn, line: bytes) -> bytes:
    """A text line damaged as bytes: a span replaced, cut, or hostile bytes inserted."""
    data = bytearray(line)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "cut", "replace"]))
        chunk = draw(
            st.sampled_from(
                [b"\x00", b"\xff\xfe", b"\xc3(", b'"', b"\\", b" ", b"[", b"\t", b"\r", b"-",
                 b"\xef\xbb\xbf", b"x" * 5000, b"%", b"\xe2\x80\xae"]
            )
        )  # fmt: skip
        if op == "insert":
            data[at:at] = chunk
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 40))]
        else:
            data[at : at + len(chunk)] = chunk
    return bytes(data).replace(b"\n", b" ")


def _json_lines(seed: Any) -> Callable[[], st.SearchStrategy[bytes]]:
    good = json.dumps(seed).encode()
    return lambda: st.one_of(_mutated_json(seed), st.just(good), _mutated_bytes(good))


def _text_lines(*seeds: str) -> Callable[[], st.SearchStrategy[bytes]]:
    goods = [s.encode() for s in seeds]
    return lambda: st.one_of(st.sampled_from(goods), st.sampled_from(goods).flatmap(_mutated_bytes))


def _csv_of(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _csv_rows(header: str, *seeds: str) -> tuple[bytes, Callable[[], st.SearchStrategy[bytes]]]:
    return header.encode(), _text_lines(*seeds)


_NGINX = test_nginx.COMBINED.splitlines()
_VHOST = test_access_log_variants.VHOST.splitlines()
_EXTRA = test_access_log_variants.EXTRA.splitlines()
# Formats that need an option to be read at all.
_OPTIONS = {"log-format": Options(log_format=test_access_log_variants.VHOST_FORMAT)}
_USAGE_PAGE = test_provider_usage.oa_page(
    (1767225600, 1767229200, [test_provider_usage.oa_result()])
)
_ANTHROPIC_PAGE = test_provider_usage.an_page(
    ("2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", [test_provider_usage.an_result()])
)

# format -> (header line or b"", strategy of one record line)
FORMATS: dict[str, tuple[bytes, Callable[[], st.SearchStrategy[bytes]]]] = {
    "kong": (b"", _json_lines(kong_record())),
    "cloudflare": (b"", _json_lines(test_cloudflare.record())),
    "envoy": (b"", _text_lines(test_envoy.DEFAULT_LINE, test_envoy.ISTIO_LINE)),
    "combined": (b"", _text_lines(*_NGINX, *_EXTRA)),
    "vhost-combined": (b"", _text_lines(*_VHOST)),
    "log-format": (b"", _text_lines(*_VHOST)),
    "litellm": (b"", _json_lines(test_litellm.row())),
    "openai-usage": (b"", _json_lines(_USAGE_PAGE)),
    "anthropic-usage": (b"", _json_lines(_ANTHROPIC_PAGE)),
    "revocations": _csv_rows(
        "credential_id,revoked_at",
        "cred-1,2026-01-01T00:00:00Z",
        "sk-ant-api03-" + "x" * 40 + ",2026-01-02",
    ),
    "allowlist": _csv_rows(
        "kind,value,detectors,reason,expires",
        "cidr,203.0.113.0/24,*,office,",
        "tenant,acme,cost.*,ok,2027-01-01",
    ),
    "retired-keys": _csv_rows(
        "issuer,key_id,retired_at,reason", "https://id.example,k1,2026-01-01,rotated"
    ),
    "known-keys": _csv_rows("provider,api_key_id,label", "openai,key_abc,gateway"),
    "iptoasn": _csv_rows("", "1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET"),
}


@st.composite
def _file(draw: st.DrawFn, fmt: str) -> tuple[bytes, str]:
    header, line = FORMATS[fmt]
    lines = draw(st.lists(line(), min_size=1, max_size=6))
    body = b"\n".join(([header] if header else []) + lines)
    body = draw(
        st.sampled_from(
            [body + b"\n", body, body.replace(b"\n", b"\r\n") + b"\r\n", b"\xef\xbb\xbf" + body]
        )
    )
    compression = draw(st.sampled_from(["none", "none", "gzip", "zstd"]))
    if compression == "gzip":
        body = gzip.compress(body)
    elif compression == "zstd":
        body = zstandard.ZstdCompressor().compress(body)
    damage = draw(st.sampled_from(["none", "none", "truncate", "junk", "pad"]))
    if compression != "none" and damage == "truncate":
        body = body[: max(4, len(body) * draw(st.integers(1, 9)) // 10)]
    elif compression != "none" and damage == "junk":
        body += b"GARBAGE" * 3
    elif compression != "none" and damage == "pad":
        body += b"\x00" * 64
    suffix = {"none": ".log", "gzip": ".log.gz", "zstd": ".log.zst"}[compression]
    return body, suffix


def _check(tmp_path: Path, fmt: str, body: bytes, suffix: str) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(body)
    case_path = tmp_path / "fuzz.duckdb"
    case_path.unlink(missing_ok=True)
    con = db.connect(case_path)
    try:
        try:
            result = ingest_file(con, path, fmt=fmt, options=_OPTIONS.get(fmt))
        except ForensicsError:
            return  # a clear per-file failure is an answer
        if result.status == "loaded":
            assert result.reconciles, (
                result.rows_read,
                result.rows_loaded,
                result.rows_quarantined,
            )
            stored = con.execute(
                "SELECT rows_read, rows_loaded, rows_quarantined FROM sources"
            ).fetchall()
            assert stored == [(result.rows_read, result.rows_loaded, result.rows_quarantined)]
        con.execute("SELECT count(*) FROM requests").fetchall()  # the case still answers
    except duckdb.Error as e:  # pragma: no cover - a failure of the property
        pytest.fail(f"{fmt}{suffix}: DuckDB error escaped: {e}")
    finally:
        con.close()


def _property(fmt: str, examples: int) -> Callable[..., None]:
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large],
        database=None,
    )  # fmt: skip
    @given(data=_file(fmt))
    def check(tmp_path: Path, data: tuple[bytes, str]) -> None:
        _check(tmp_path, fmt, *data)

    return check


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_record_accounted_for_short(fmt: str, tmp_path: Path) -> None:
    _property(fmt, SHORT)(tmp_path)


@pytest.mark.fuzz
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_record_accounted_for_long(fmt: str, tmp_path: Path) -> None:
    _property(fmt, LONG)(tmp_path)
