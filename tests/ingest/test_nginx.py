"""nginx / Apache combined and common text logs, and nginx JSON logs, through the real ingest."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from forensics.case import db
from forensics.case.fingerprints import fingerprint
from forensics.ingest import reader
from forensics.ingest.base import Options
from forensics.ingest.formats import FORMATS, detect_format
from forensics.ingest.pipeline import ingest_file
from tests.conftest import (
    check_row,
    load,
    quarantine_reasons,
    requests_by_line,
    rows,
    tables_containing,
)

# Columns an access log can never fill: they must stay NULL (no enrichment database is loaded).
NEVER = {
    "tenant_id", "token_id", "issuer", "key_id", "token_iat", "token_exp", "scopes", "client_id",
    "asn", "as_org", "asn_category", "country", "city", "lat", "lon", "geo_source", "route",
    "provider", "model", "response_model", "model_family", "stream", "prompt_chars",
    "prompt_prefix_fp", "prompt_text", "input_tokens", "output_tokens", "cached_input_tokens",
    "reasoning_tokens", "total_tokens", "tool_calls", "finish_reason", "error_code", "session_id",
    "log_cost", "est_cost_usd",
}  # fmt: skip


def ts(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def check(row: dict[str, object], expected: dict[str, object]) -> None:
    check_row(row, expected, NEVER)


# ---------------------------------------------------------------------------------------------
# combined / common text

KEY_IN_QUERY = "sk-Qm4Zt8Lp2Vx7Rb1Nc6Hd3Jf9Kg5Ws0Ya"

COMBINED = "\n".join(
    [
        # FORMATS.md 4.2, nginx `main` (trailing X-Forwarded-For)
        '203.0.113.45 - - [01/Jan/2026:09:15:02 +0100] "POST /v1/chat/completions HTTP/1.1" 200'
        ' 48211 "-" "curl/8.5.0" "198.51.100.9"',
        # basic-auth user, negative offset, Apache "-" bytes, Apache \" and nginx \x22 escapes
        '198.51.100.23 - alice [31/Dec/2025:17:20:45 -0700] "GET /v1/models?limit=5 HTTP/1.1"'
        ' 429 - "https://app.example.com/chat"'
        ' "Mozilla/5.0 (X11) \\"quoted\\" nginx \\x22hex\\x22"',
        # common: no referer, no user agent
        '192.0.2.10 - - [01/Jan/2026:08:00:00 +0000] "POST /v1/embeddings HTTP/1.0" 200 1024',
        # a TLS handshake sent to the plain-HTTP port: the request line is binary
        '192.0.2.66 - - [01/Jan/2026:08:00:01 +0000] "\\x16\\x03\\x01\\x02\\x00\\x01" 400 157'
        ' "-" "-"',
        # no request at all
        '192.0.2.66 - - [01/Jan/2026:08:00:02 +0000] "-" 408 0 "-" "-"',
        # key in the query, an XFF chain and further fields after it
        "192.0.2.77 - - [01/Jan/2026:08:00:03 +0000]"
        f' "GET /v1/chat/completions?api_key={KEY_IN_QUERY} HTTP/1.1" 401 12 "-"'
        ' "python-requests/2.31.0" "203.0.113.9, 198.51.100.1" 0.012 rt=1',
        # IPv6 peer, UTF-8 as \xHH, Apache \\ and a control byte that stays escaped
        '2001:db8::1 - bob [01/Jan/2026:08:00:04 +0000] "GET /caf%C3%A9 HTTP/2.0" 304 - "-"'
        ' "caf\\xC3\\xA9 C:\\\\dir \\x01end"',
    ]
)


def test_combined_every_column(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    result = load(case, tmp_path, COMBINED + "\n")
    assert result.format == "combined"
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (7, 7, 0)
    got = requests_by_line(case)
    base = {"format": "combined", "host": None, "latency_ms": None, "request_bytes": None}
    none = {"credential_id": None, "credential_type": None, "key_fingerprint": None}
    check(got[1], base | none | {
        "ts": ts(2026, 1, 1, 8, 15, 2), "line_no": 1, "client_ip": "203.0.113.45",
        "user_id": None, "method": "POST", "path": "/v1/chat/completions", "query": None,
        "endpoint": "chat", "status": 200, "error_type": None, "response_bytes": 48211,
        "referer": None, "user_agent": "curl/8.5.0", "xff": "198.51.100.9",
    })  # fmt: skip
    check(got[2], base | none | {
        "ts": ts(2026, 1, 1, 0, 20, 45), "line_no": 2, "client_ip": "198.51.100.23",
        "user_id": "alice", "method": "GET", "path": "/v1/models", "query": "limit=5",
        "endpoint": "other", "status": 429, "error_type": "rate_limited", "response_bytes": None,
        "referer": "https://app.example.com/chat",
        "user_agent": 'Mozilla/5.0 (X11) "quoted" nginx "hex"', "xff": None,
    })  # fmt: skip
    check(got[3], base | none | {
        "ts": ts(2026, 1, 1, 8, 0, 0), "line_no": 3, "client_ip": "192.0.2.10", "user_id": None,
        "method": "POST", "path": "/v1/embeddings", "query": None, "endpoint": "embeddings",
        "status": 200, "error_type": None, "response_bytes": 1024, "referer": None,
        "user_agent": None, "xff": None,
    })  # fmt: skip
    check(got[4], base | none | {
        "ts": ts(2026, 1, 1, 8, 0, 1), "line_no": 4, "client_ip": "192.0.2.66", "user_id": None,
        "method": None, "path": "\\x16\\x03\\x01\\x02\\x00\\x01", "query": None,
        "endpoint": "other", "status": 400, "error_type": "invalid", "response_bytes": 157,
        "referer": None, "user_agent": None, "xff": None,
    })  # fmt: skip
    check(got[5], base | none | {
        "ts": ts(2026, 1, 1, 8, 0, 2), "line_no": 5, "client_ip": "192.0.2.66", "user_id": None,
        "method": None, "path": "-", "query": None, "endpoint": "other", "status": 408,
        "error_type": "invalid", "response_bytes": 0, "referer": None, "user_agent": None,
        "xff": None,
    })  # fmt: skip
    key_fp = fingerprint(KEY_IN_QUERY, db.salt(case))
    check(got[6], base | {
        "ts": ts(2026, 1, 1, 8, 0, 3), "line_no": 6, "client_ip": "192.0.2.77", "user_id": None,
        "method": "GET", "path": "/v1/chat/completions", "query": f"api_key={key_fp}",
        "endpoint": "chat", "status": 401, "error_type": "auth", "response_bytes": 12,
        "referer": None, "user_agent": "python-requests/2.31.0",
        "xff": "203.0.113.9, 198.51.100.1", "credential_id": key_fp,
        "credential_type": "api_key", "key_fingerprint": key_fp,
    })  # fmt: skip
    check(got[7], base | none | {
        "ts": ts(2026, 1, 1, 8, 0, 4), "line_no": 7, "client_ip": "2001:db8::1",
        "user_id": "bob", "method": "GET", "path": "/caf%C3%A9", "query": None,
        "endpoint": "other", "status": 304, "error_type": None, "response_bytes": None,
        "referer": None, "user_agent": "café C:\\dir \\x01end", "xff": None,
    })  # fmt: skip
    assert tables_containing(case, KEY_IN_QUERY) == []


def test_common_is_the_same_parser(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    result = load(case, tmp_path, COMBINED, fmt="common")
    assert (result.format, result.rows_loaded, result.rows_quarantined) == ("common", 7, 0)
    got = rows(
        case,
        "SELECT line_no, ts, client_ip, method, path, status, response_bytes, user_agent"
        " FROM requests WHERE line_no IN (1, 3) ORDER BY line_no",
    )
    assert got == [
        {"line_no": 1, "ts": ts(2026, 1, 1, 8, 15, 2), "client_ip": "203.0.113.45",
         "method": "POST", "path": "/v1/chat/completions", "status": 200,
         "response_bytes": 48211, "user_agent": "curl/8.5.0"},
        {"line_no": 3, "ts": ts(2026, 1, 1, 8, 0, 0), "client_ip": "192.0.2.10",
         "method": "POST", "path": "/v1/embeddings", "status": 200, "response_bytes": 1024,
         "user_agent": None},
    ]  # fmt: skip


def test_combined_bad_lines_quarantined(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    text = "\n".join(
        [
            '192.0.2.1 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "ok/1"',
            "this is not an access log line",
            # cut inside the user agent (the shape of line 8899 of the real Apache log)
            '192.0.2.2 - - [20/May/2015:12:05:17 +0000] "GET /a.py HTTP/1.1" 200 235 "-"'
            ' "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html',
            '192.0.2.3 - - [17/Foo/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "ok/1"',
            '192.0.2.4 - - [17/May/1970:10:05:03 +0000] "GET / HTTP/1.1" 200 5 "-" "ok/1"',
            "",
            '192.0.2.5 - - [17/May/2015:10:05:04 +0000] "GET /b HTTP/1.1" 404 0',
        ]
    )
    result = load(case, tmp_path, text, fmt="combined", options=Options(max_quarantine_share=1))
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (6, 2, 4)
    assert result.lines_blank == 1
    assert quarantine_reasons(case) == [
        (2, "does not match the combined/common log format"),
        (3, "does not match the combined/common log format"),
        (
            4,
            "bad time of 26 characters shaped 99/aaa/9999:99:99:99 +9999: expected dd/Mon/yyyy:HH:MM:SS +hhmm",
        ),
        (5, "time 17/May/1970:10:05:03 +0000 is outside 1995..2100"),
    ]
    assert [r["line_no"] for r in rows(case, "SELECT line_no FROM requests ORDER BY 1")] == [1, 7]
    raw = case.execute("SELECT raw FROM quarantine WHERE line_no = 2").fetchall()[0][0]
    assert raw == "this is not an access log line"


def test_combined_crlf(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    text = (
        '192.0.2.1 - - [17/May/2015:10:05:03 +0000] "GET /x HTTP/1.1" 200 5 "-" "ua/1"'
        ' "10.0.0.1"\r\n'
        '192.0.2.2 - - [17/May/2015:10:05:04 +0000] "GET /y HTTP/1.1" 200 6\r\n'
    )
    result = load(case, tmp_path, text)
    assert (result.format, result.rows_loaded, result.rows_quarantined) == ("combined", 2, 0)
    assert rows(case, "SELECT path, user_agent, xff, response_bytes FROM requests ORDER BY 1") == [
        {"path": "/x", "user_agent": "ua/1", "xff": "10.0.0.1", "response_bytes": 5},
        {"path": "/y", "user_agent": None, "xff": None, "response_bytes": 6},
    ]


def test_combined_sniff(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text(COMBINED + "\n", encoding="utf-8")
    assert detect_format(path, reader.head_lines(path)) == "combined"
    common = tmp_path / "common.log"
    common.write_text('192.0.2.10 - - [01/Jan/2026:08:00:00 +0000] "GET / HTTP/1.0" 200 10\n')
    assert detect_format(common, reader.head_lines(common)) == "combined"
    assert not FORMATS["combined"].sniff(['{"remote_addr":"192.0.2.1","status":"200"}'])
    assert not FORMATS["combined"].sniff(
        ['[2026-01-01T08:15:02.481Z] "GET / HTTP/1.1" 200 - 0 1 2 - "-" "-" "-" "-" "-"']
    )
    assert FORMATS["common"].auto_detect is False


@pytest.mark.realdata
def test_real_apache_log(case: duckdb.DuckDBPyConnection, realdata: Path) -> None:
    path = realdata / "elastic-examples_apache_logs.log"
    assert detect_format(path, reader.head_lines(path)) == "combined"
    result = ingest_file(case, path)
    assert result.status == "loaded"
    assert result.reconciles
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (10_000, 9_999, 1)
    # Line 8899 is cut inside the user agent: '... "Mozilla/5.0 (compatible; Googlebot/2.1;
    # +http://www.google.com/bot.html' with no closing quote.
    line_8899 = path.read_text(encoding="utf-8").split("\n")[8898]
    assert line_8899.endswith("bot.html")
    assert line_8899.count('"') % 2 == 1
    assert quarantine_reasons(case) == [(8899, "does not match the combined/common log format")]
    summary = rows(
        case,
        "SELECT count(*) AS n, count(DISTINCT client_ip) AS ips, min(ts) AS first,"
        " max(ts) AS last, count(method) AS with_method, count(*) FILTER (status = 200) AS ok"
        " FROM requests",
    )[0]
    ok = sum(1 for ln in path.read_text(encoding="utf-8").splitlines() if '" 200 ' in ln)
    assert summary == {
        "n": 9_999, "ips": 1_753, "first": ts(2015, 5, 17, 10, 5, 0),
        "last": ts(2015, 5, 20, 21, 5, 59), "with_method": 9_999, "ok": ok - 1,
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# nginx JSON (escape=json)

BEARER = "sk-proj-Zx81kQp0VmL3nB7rT2yW9cD4fH6jK1sAa"
API_KEY = "k7Q2mZpX9vL4nR8tW1yBq3"

NGINX_JSON = "\n".join(
    [
        # FORMATS.md 4.2
        '{"time_iso8601":"2026-01-01T09:15:02+01:00","remote_addr":"203.0.113.45",'
        '"request_method":"POST","request_uri":"/v1/embeddings","status":"429",'
        '"body_bytes_sent":"112","request_time":"0.004","upstream_response_time":"-",'
        '"http_referer":"","http_user_agent":"Go-http-client/2.0","http_x_forwarded_for":"",'
        '"request_id":"5e9d2c1b0a3f4e6d8c7b6a5f4e3d2c1b"}',
        # $time_local and $request, numbers unquoted, keys in mixed case, the misspelt referrer
        '{"Time_Local":"01/Jan/2026:09:15:03 +0100","Remote_Addr":"198.51.100.20",'
        '"remote_user":"carol","request":"POST /v1/chat/completions?stream=true HTTP/2.0",'
        '"status":200,"body_bytes_sent":48211,"request_length":"912","request_time":"15.230",'
        '"upstream_status":"502, 200","http_referrer":"https://app.example.com/",'
        '"http_user_agent":"openai-python/1.54.0",'
        '"http_x_forwarded_for":"203.0.113.7, 198.51.100.20","http_host":"llm.example.net",'
        f'"http_origin":"https://app.example.com","HTTP_AUTHORIZATION":"Bearer {BEARER}"}}',
        # $msec, $uri + $args, $bytes_sent, x-api-key
        '{"msec":"1767255304.250","remote_addr":"192.0.2.44","request_method":"GET",'
        '"uri":"/v1/models","args":"limit=5","status":"200","bytes_sent":"530",'
        f'"http_x_api_key":"{API_KEY}","host":"api.example.com","request_id":"-"}}',
    ]
)


def test_nginx_json_every_column(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    result = load(case, tmp_path, NGINX_JSON + "\n")
    assert result.format == "nginx-json"
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3, 3, 0)
    got = requests_by_line(case)
    salt = db.salt(case)
    check(got[1], {
        "format": "nginx-json", "line_no": 1, "ts": ts(2026, 1, 1, 8, 15, 2),
        "request_id": "5e9d2c1b0a3f4e6d8c7b6a5f4e3d2c1b", "client_ip": "203.0.113.45",
        "user_id": None, "method": "POST", "path": "/v1/embeddings", "query": None,
        "endpoint": "embeddings", "status": 429, "upstream_status": None,
        "error_type": "rate_limited", "latency_ms": 4.0, "request_bytes": None,
        "response_bytes": 112, "referer": None, "user_agent": "Go-http-client/2.0",
        "xff": None, "host": None, "origin": None, "credential_id": None,
        "credential_type": None, "key_fingerprint": None,
    })  # fmt: skip
    check(got[2], {
        "format": "nginx-json", "line_no": 2, "ts": ts(2026, 1, 1, 8, 15, 3),
        "request_id": None, "client_ip": "198.51.100.20", "user_id": "carol", "method": "POST",
        "path": "/v1/chat/completions", "query": "stream=true", "endpoint": "chat",
        "status": 200, "upstream_status": 200, "error_type": None, "latency_ms": 15230.0,
        "request_bytes": 912, "response_bytes": 48211, "referer": "https://app.example.com/",
        "user_agent": "openai-python/1.54.0", "xff": "203.0.113.7, 198.51.100.20",
        "host": "llm.example.net", "origin": "https://app.example.com",
        "credential_id": fingerprint(BEARER, salt), "credential_type": "api_key",
        "key_fingerprint": fingerprint(BEARER, salt),
    })  # fmt: skip
    check(got[3], {
        "format": "nginx-json", "line_no": 3, "ts": ts(2026, 1, 1, 8, 15, 4, 250_000),
        "request_id": None, "client_ip": "192.0.2.44",
        "user_id": None, "method": "GET", "path": "/v1/models", "query": "limit=5",
        "endpoint": "other", "status": 200, "upstream_status": None, "error_type": None,
        "latency_ms": None, "request_bytes": None, "response_bytes": 530, "referer": None,
        "user_agent": None, "xff": None, "host": "api.example.com", "origin": None,
        "credential_id": fingerprint(API_KEY, salt), "credential_type": "api_key",
        "key_fingerprint": fingerprint(API_KEY, salt),
    })  # fmt: skip


def test_nginx_json_secrets_never_stored(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    text = "\n".join(
        [
            NGINX_JSON,
            # quarantined records that carry the same secrets, one of them cut inside the value
            f'{{"msec":"soon","remote_addr":"192.0.2.9","status":"200","http_x_api_key":"{API_KEY}"}}',
            f'{{"time_local":"01/Jan/2026:09:15:03 +0100","remote_addr":"192.0.2.9",'
            f'"http_authorization":"Bearer {BEARER}',
            f'{{"time_local":"01/Jan/2026:09:15:03 +0100","remote_addr":"192.0.2.9",'
            f'"http_x_api_key":"{API_KEY[:12]}',
        ]
    )
    result = load(case, tmp_path, text, fmt="nginx-json")
    assert (result.rows_loaded, result.rows_quarantined) == (3, 3)
    for secret in (BEARER, API_KEY, API_KEY[:12]):
        assert tables_containing(case, secret) == [], secret
    salt = db.salt(case)
    creds = {r[0] for r in case.execute("SELECT credential_id FROM requests").fetchall()}
    assert creds == {None, fingerprint(BEARER, salt), fingerprint(API_KEY, salt)}
    raws = [r[0] for r in case.execute("SELECT raw FROM quarantine ORDER BY line_no").fetchall()]
    assert f'"http_x_api_key":"{fingerprint(API_KEY, salt)}"' in raws[0]
    assert fingerprint(BEARER, salt) in raws[1]
    assert fingerprint(API_KEY[:12], salt) in raws[2]


def test_nginx_json_bad_lines(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    good = '{"time_iso8601":"2026-01-01T09:15:02+01:00","remote_addr":"192.0.2.1","status":"200"}'
    text = "\r\n".join(
        [
            good,
            '{"time_iso8601":"2026-01-01T09:15:02+01:00","remote_addr":"192.0.2.1",',
            '{"time_iso8601": 2026-01-01}',
            '["not", "an", "object"]',
            '{"remote_addr":"192.0.2.1","status":"200"}',
            '{"time_iso8601":"yesterday","remote_addr":"192.0.2.1","status":"200"}',
            '{"msec":"17672553.5","remote_addr":"192.0.2.1","status":"200"}',
            '{"time_iso8601":"2026-01-01T09:15:02+01:00","user":"x"}',
            good.replace("192.0.2.1", "192.0.2.2"),
        ]
    )
    result = load(
        case, tmp_path, text + "\r\n", fmt="nginx-json", options=Options(max_quarantine_share=1)
    )
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (9, 2, 7)
    expected = "ISO 8601, dd/Mon/yyyy:HH:MM:SS +hhmm or epoch"
    assert quarantine_reasons(case) == [
        (2, "invalid JSON: record is cut off"),
        (3, "invalid JSON"),
        (4, "JSON value is not an object"),
        (5, "no time field (time_iso8601, time_local, msec, @timestamp)"),
        (6, f"bad time of 9 characters shaped aaaaaaaaa: expected {expected}"),
        (7, "time 17672553.5 is outside 1995..2100"),
        (8, "not an nginx access-log record: no remote_addr, request, request_uri or status"),
    ]
    assert rows(case, "SELECT line_no, client_ip, status FROM requests ORDER BY 1") == [
        {"line_no": 1, "client_ip": "192.0.2.1", "status": 200},
        {"line_no": 9, "client_ip": "192.0.2.2", "status": 200},
    ]


def test_nginx_json_sniff(tmp_path: Path) -> None:
    path = tmp_path / "access.json"
    path.write_text(NGINX_JSON + "\n", encoding="utf-8")
    assert detect_format(path, reader.head_lines(path)) == "nginx-json"
    sniff = FORMATS["nginx-json"].sniff
    assert sniff(['{"REMOTE_ADDR":"192.0.2.1","Request":"GET / HTTP/1.1"}'])
    assert not sniff(['{"remote_addr":"192.0.2.1"}'])  # nothing of a request
    assert not sniff(['{"started_at":1767255302481,"remote_addr":"192.0.2.1","status":200}'])
    assert not sniff(['{"start_time":"2026-01-01T00:00:00Z","remote_addr":"1","status":"200"}'])
    assert not sniff(['{"ClientIP":"192.0.2.1","remote_addr":"1","RayID":"x","status":"200"}'])
    assert not sniff(['203.0.113.45 - - [01/Jan/2026:09:15:02 +0100] "GET / HTTP/1.1" 200 1'])
