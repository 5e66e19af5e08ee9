"""Cloudflare Logpush http_requests: every column it fills, the three time units, bad input,
credentials, and auto-detection. Records are composed from FORMATS.md section 3.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from forensics.case import db
from forensics.case.fingerprints import fingerprint
from forensics.ingest import reader
from forensics.ingest.base import Options
from forensics.ingest.formats import FORMATS, detect_format
from tests.conftest import load, rows, tables_containing

# The composed example of FORMATS.md 3.1 (timestamp_format=unixnano).
COMPOSED: dict[str, Any] = {
    "RayID": "8f3a2b1c4d5e6f70",
    "EdgeStartTimestamp": 1767255302481000000,
    "EdgeEndTimestamp": 1767255317712000000,
    "ClientIP": "198.51.100.77",
    "ClientSrcPort": 52114,
    "ClientASN": 64500,
    "ClientCountry": "de",
    "ClientCity": "Frankfurt am Main",
    "ClientRegionCode": "HE",
    "ClientIPClass": "noRecord",
    "ClientDeviceType": "desktop",
    "ClientRequestMethod": "POST",
    "ClientRequestHost": "api.example.net",
    "ClientRequestPath": "/v1/chat/completions",
    "ClientRequestURI": "/v1/chat/completions",
    "ClientRequestProtocol": "HTTP/2",
    "ClientRequestUserAgent": "openai-python/1.54.0",
    "ClientRequestReferer": "",
    "ClientRequestBytes": 1480,
    "ClientSSLProtocol": "TLSv1.3",
    "ClientTCPRTTMs": 21,
    "EdgeResponseStatus": 200,
    "EdgeResponseBytes": 48890,
    "EdgeTimeToFirstByteMs": 412,
    "OriginResponseStatus": 200,
    "OriginResponseDurationMs": 15190,
    "EdgeColoCode": "FRA",
    "CacheCacheStatus": "dynamic",
    "SecurityAction": "",
    "RequestHeaders": {"x-tenant-id": "acme"},
    "ZoneName": "example.net",
}
START = datetime(2026, 1, 1, 8, 15, 2, 481000, tzinfo=UTC)

BEARER = "sk-proj-Zq8wX2vB7nM4kL1pR6tY9uI3oE5aS0dF"
API_KEY = "k3y-7Hq2Lm9Pz4Rt8Wx1"  # no known key shape: only its header name gives it away
ACCESS_SECRET = "5e2b7c1d9a8f4e3b6c0d1a2f3e4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b"


def record(**changes: Any) -> dict[str, Any]:
    """The composed record with fields changed; a value of None drops the field."""
    out = {**COMPOSED, **changes}
    return {k: v for k, v in out.items() if v is not None}


def jsonl(*records: Any) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def one(case: duckdb.DuckDBPyConnection) -> dict[str, object]:
    found = rows(case, "SELECT * FROM requests")
    assert len(found) == 1
    return found[0]


def test_composed_record_fills_every_column_the_format_has(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    result = load(case, tmp_path, jsonl(COMPOSED))
    assert (result.format, result.rows_read, result.rows_loaded) == ("cloudflare", 1, 1)
    row = one(case)
    assert row["ts"] == START
    expected = {
        "request_id": "8f3a2b1c4d5e6f70",
        "source_id": result.source_id,
        "line_no": 1,
        "format": "cloudflare",
        "tenant_id": "acme",
        "client_ip": "198.51.100.77",
        "asn": 64500,
        "asn_source": "log",
        "country": "DE",
        "city": "Frankfurt am Main",
        "geo_source": "log",
        "user_agent": "openai-python/1.54.0",
        "referer": None,
        "host": "api.example.net",
        "method": "POST",
        "path": "/v1/chat/completions",
        "query": None,
        "endpoint": "chat",
        "status": 200,
        "upstream_status": 200,
        "error_type": None,
        "latency_ms": 15231.0,
        "request_bytes": 1480,
        "response_bytes": 48890,
        "credential_id": None,
        "key_fingerprint": None,
    }
    assert {k: row[k] for k in expected} == expected


def test_geo_strings_and_optional_headers(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    rec = record(
        ClientLatitude="50.11090",
        ClientLongitude="8.68213",
        ClientRequestReferer="https://app.example.org/chat",
        ClientRequestURI="/v1/chat/completions?stream=true",
        ClientRequestUserAgent=None,
        EdgeResponseBytes=None,
        EdgeResponseBodyBytes=48000,
        ClientMTLSAuthCertFingerprint="a1b2c3d4e5f6",
        RequestHeaders={
            "X-Org-Id": "globex",  # any case
            "Origin": "https://evil.example",
            "X-Forwarded-For": "198.51.100.77, 10.0.0.1",
            "user-agent": "curl/8.5.0",
            "x-session-id": "sess-42",
            "cf-access-client-id": "4f1a.access",
        },
    )
    load(case, tmp_path, jsonl(rec))
    row = one(case)
    expected = {
        "lat": 50.1109,
        "lon": 8.68213,
        "referer": "https://app.example.org/chat",
        "path": "/v1/chat/completions",
        "query": "stream=true",
        "user_agent": "curl/8.5.0",
        "response_bytes": 48000,
        "tenant_id": "globex",
        "user_id": "a1b2c3d4e5f6",
        "origin": "https://evil.example",
        "xff": "198.51.100.77, 10.0.0.1",
        "session_id": "sess-42",
        "credential_id": "4f1a.access",
    }
    assert {k: row[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("start", "end", "ts", "latency"),
    [
        pytest.param(1767255302481000000, 1767255317712000000, START, 15231.0, id="unixnano"),
        pytest.param(
            "1767255302481123456",
            None,
            START.replace(microsecond=481123),
            15190.0,
            id="unixnano-quoted-truncated-to-us",
        ),
        pytest.param(1767255302, 1767255317, START.replace(microsecond=0), 15000.0, id="unix"),
        pytest.param(
            "2026-01-01T08:15:02Z",
            "2026-01-01T08:15:17Z",
            START.replace(microsecond=0),
            15000.0,
            id="rfc3339",
        ),
        pytest.param(
            "2026-01-01T09:15:02+01:00",
            None,
            START.replace(microsecond=0),
            15190.0,
            id="rfc3339-offset",
        ),
        pytest.param(1767255302481, 1767255317712, START, 15231.0, id="milliseconds"),
    ],
)
def test_time_units(
    case: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    start: object,
    end: object,
    ts: datetime,
    latency: float,
) -> None:
    # Without EdgeEndTimestamp, latency is OriginResponseDurationMs.
    load(case, tmp_path, jsonl(record(EdgeStartTimestamp=start, EdgeEndTimestamp=end)))
    row = one(case)
    assert (row["ts"], row["latency_ms"]) == (ts, latency)


def test_times_do_not_depend_on_the_session_time_zone(tmp_path: Path) -> None:
    con = db.connect(tmp_path / "tz.duckdb")
    con.execute("SET TimeZone = 'America/New_York'")
    text = jsonl(
        record(),
        record(EdgeStartTimestamp="2026-01-01T08:15:02Z", EdgeEndTimestamp=None),
        record(EdgeStartTimestamp=1767255302, EdgeEndTimestamp=None),
    )
    load(con, tmp_path, text)
    got = con.execute("SELECT epoch_us(ts) FROM requests ORDER BY line_no").fetchall()
    con.close()
    assert [g[0] for g in got] == [1767255302481000, 1767255302000000, 1767255302000000]


def test_minimal_job_loads_with_only_a_few_fields(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    rec = {"EdgeStartTimestamp": 1767255302481000000, "ClientIP": "203.0.113.5", "RayID": "1a"}
    load(case, tmp_path, jsonl(rec))
    row = one(case)
    assert (row["ts"], row["client_ip"], row["request_id"]) == (START, "203.0.113.5", "1a")
    assert (row["tenant_id"], row["asn"], row["country"], row["geo_source"]) == (None,) * 4
    assert (row["status"], row["latency_ms"], row["path"]) == (None, None, None)


def test_unknown_values_become_null(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    rec = record(
        ClientASN=0, ClientCountry="xx", ClientCity="", OriginResponseStatus=0, RequestHeaders={}
    )
    load(case, tmp_path, jsonl(rec))
    row = one(case)
    assert (row["asn"], row["country"], row["city"], row["upstream_status"]) == (None,) * 4
    assert row["geo_source"] is None


def test_tenant_falls_back_to_the_zone_marked_as_such(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    text = jsonl(
        record(RequestHeaders={"origin": "https://a.example"}),
        record(RequestHeaders=None),
        record(RequestHeaders=None, ZoneName=None),
        record(RequestHeaders={"x-tenant-id": "", "openai-organization": "org-globex"}),
    )
    load(case, tmp_path, text)
    got = case.execute("SELECT tenant_id FROM requests ORDER BY line_no").fetchall()
    assert [g[0] for g in got] == ["zone:example.net", "zone:example.net", None, "org-globex"]


def test_wrapped_array_output(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    line = json.dumps([record(RayID="a1"), record(RayID="a2")])
    result = load(case, tmp_path, jsonl(line, record(RayID="b1")))
    assert (result.rows_read, result.rows_loaded) == (3, 3)
    got = case.execute("SELECT line_no, request_id FROM requests ORDER BY request_id").fetchall()
    assert got == [(1, "a1"), (1, "a2"), (2, "b1")]


def test_multi_line_array_document(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    # batch_prefix "[", record_delimiter ",", batch_suffix "]" with the default newline suffix.
    text = "[" + json.dumps(record(RayID="a1")) + "\n," + json.dumps(record(RayID="a2")) + "\n]\n"
    result = load(case, tmp_path, text)
    assert (result.format, result.rows_loaded) == ("cloudflare", 2)


def test_bad_records_are_quarantined_and_the_rest_loads(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    half_array = json.dumps([record(), record()])[:300]
    text = jsonl(
        record(RayID="good-1"),
        '{"RayID": "x", "EdgeStartTimestamp": 1767255302481000000, "ClientIP": "198.51',
        record(EdgeStartTimestamp=1767255302481000),  # microseconds: no Cloudflare unit
        half_array,
        record(EdgeStartTimestamp=123),
        record(EdgeStartTimestamp=9999999999),  # 10 digits, but year 2286
        record(EdgeStartTimestamp="yesterday"),
        record(EdgeStartTimestamp=None),
        "42",
        record(RayID="good-2", EdgeStartTimestamp="2026-01-01T08:15:02Z"),
    )
    result = load(case, tmp_path, text, options=Options(max_quarantine_share=1))
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (10, 2, 8)
    got = case.execute("SELECT line_no, error FROM quarantine ORDER BY line_no").fetchall()
    assert got == [
        (2, "invalid JSON: record is cut off"),
        (
            3,
            "EdgeStartTimestamp 1767255302481000 is in no known unit"
            " (unixnano has 19 digits, unix 10, milliseconds 13)",
        ),
        (4, "invalid JSON: record is cut off"),
        (
            5,
            "EdgeStartTimestamp 123 is in no known unit"
            " (unixnano has 19 digits, unix 10, milliseconds 13)",
        ),
        (6, "EdgeStartTimestamp 9999999999 is not a plausible time (it would be 2286-11-20)"),
        (7, "EdgeStartTimestamp of 9 characters shaped aaaaaaaaa is not an RFC 3339 time"),
        (
            8,
            "no EdgeStartTimestamp: not an http_requests record, or the Logpush job leaves the"
            " field out",
        ),
        (9, "JSON value is not an object"),
    ]
    raw = case.execute("SELECT raw FROM quarantine WHERE line_no = 4").fetchall()[0][0]
    assert raw == half_array
    loaded = case.execute("SELECT request_id FROM requests ORDER BY line_no").fetchall()
    assert loaded == [("good-1",), ("good-2",)]


def test_array_cut_in_half_on_the_first_line(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    half_array = json.dumps([record(), record()])[:300]
    result = load(case, tmp_path, jsonl(half_array, record(RayID="b"), record(RayID="c")))
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3, 2, 1)


def test_credentials_are_fingerprinted_never_stored(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    headers = {
        "Authorization": f"Bearer {BEARER}",
        "X-API-Key": API_KEY,
        "cf-access-client-secret": ACCESS_SECRET,
    }
    text = jsonl(
        record(RayID="bearer", RequestHeaders={"authorization": headers["Authorization"]}),
        record(RayID="key", RequestHeaders=headers),
        record(RayID="access", RequestHeaders={"cf-access-client-secret": ACCESS_SECRET}),
        record(RequestHeaders=headers, EdgeStartTimestamp=123),  # quarantined, valid JSON
        json.dumps(record(RequestHeaders=headers))[:-40],  # quarantined, cut off
    )
    result = load(case, tmp_path, text)
    assert (result.rows_loaded, result.rows_quarantined) == (3, 2)
    for secret in (BEARER, API_KEY, ACCESS_SECRET):
        # Not even the first 12 characters: a record cut inside a secret keeps none of it.
        assert tables_containing(case, secret[:12]) == []
    salt = db.salt(case)
    got = case.execute("SELECT request_id, key_fingerprint FROM requests ORDER BY line_no")
    assert got.fetchall() == [
        ("bearer", fingerprint(BEARER, salt)),
        ("key", fingerprint(API_KEY, salt)),  # x-api-key before the bearer token
        ("access", fingerprint(ACCESS_SECRET, salt)),
    ]
    raws = [r[0] for r in case.execute("SELECT raw FROM quarantine ORDER BY line_no").fetchall()]
    assert fingerprint(API_KEY, salt) in raws[0]
    assert f"Bearer {fingerprint(BEARER, salt)}" in raws[0]
    assert fingerprint(ACCESS_SECRET, salt) in raws[0]
    assert fingerprint(API_KEY, salt) in raws[1]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(jsonl(COMPOSED, record(RayID="b")), id="composed"),
        pytest.param(
            jsonl({"RayID": "1a", "ClientIP": "203.0.113.5", "EdgeEndTimestamp": 1}), id="ray+ip"
        ),
        pytest.param(jsonl([COMPOSED, COMPOSED]), id="array-line"),
        pytest.param(json.dumps([COMPOSED], indent=2) + "\n", id="pretty-document"),
    ],
)
def test_auto_detection_picks_cloudflare(tmp_path: Path, text: str) -> None:
    path = tmp_path / "logpush.log"
    path.write_text(text, encoding="utf-8")
    assert detect_format(path, reader.head_lines(path)) == "cloudflare"


def test_sniff_rejects_other_json() -> None:
    sniff = FORMATS["cloudflare"].sniff
    kong = json.dumps({"started_at": 1767255302481, "client_ip": "203.0.113.5", "request": {}})
    assert not sniff([kong])
    assert not sniff([json.dumps({"RayID": "1a"})])
    assert not sniff(['203.0.113.5 - - [01/Jan/2026:08:15:02 +0000] "GET / HTTP/1.1" 200 1'])
