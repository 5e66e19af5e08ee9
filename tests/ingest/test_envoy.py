"""Envoy access logs (default and Istio text, Istio and AI Gateway JSON) through the real ingest."""

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
from tests.conftest import (
    check_row,
    load,
    quarantine_reasons,
    requests_by_line,
    rows,
)

# Columns an Envoy access log never fills: they must stay NULL (no enrichment database loaded).
NEVER = {
    "tenant_id", "user_id", "token_id", "issuer", "key_id", "token_iat", "token_exp", "scopes",
    "client_id", "asn", "as_org", "asn_category", "country", "city", "lat", "lon", "geo_source",
    "referer", "origin", "stream", "prompt_chars", "prompt_prefix_fp", "prompt_text",
    "cached_input_tokens", "reasoning_tokens", "finish_reason", "upstream_status", "log_cost",
}  # fmt: skip

DEFAULT_LINE = (  # FORMATS.md 2.4
    '[2026-01-01T08:15:02.481Z] "POST /v1/chat/completions HTTP/1.1" 200 - 912 48211 15230 15198'
    ' "198.51.100.77" "openai-python/1.54.0" "3f2c1e0a-8b7d-4c6e-9a5f-112233445566"'
    ' "llm.example.net" "192.0.2.10:443"'
)
ISTIO_LINE = (  # Istio's text format: rate limited locally, client address at the end
    '[2026-01-01T08:16:10.002Z] "POST /v1/embeddings HTTP/2" 429 RL local_rate_limited - "-"'
    ' 530 88 3 - "203.0.113.50,10.0.0.1" "curl/8.5.0" "a1b2c3d4-0000-4000-8000-000000000001"'
    ' "llm.example.net" "-" outbound|443||api.openai.com - 10.0.0.5:8080 198.51.100.61:40112'
    " llm.example.net llm-route"
)
GONE_LINE = (  # client went away before the response: code 0, flag DC
    '[2026-01-01T08:16:11.500Z] "POST /v1/chat/completions?x=1 HTTP/1.1" 0 DC 1024 0 30012 -'
    ' "198.51.100.77, 10.0.0.2" "openai-python/1.54.0" "-" "llm.example.net" "192.0.2.10:443"'
)


def ts(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def check(row: dict[str, object], expected: dict[str, object]) -> None:
    check_row(row, expected, NEVER)


NO_AI = {
    "provider": None, "model": None, "response_model": None, "model_family": None,
    "input_tokens": None, "output_tokens": None, "total_tokens": None, "tool_calls": None,
    "session_id": None, "credential_id": None, "credential_type": None, "key_fingerprint": None,
}  # fmt: skip


def test_text_every_column(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    result = load(case, tmp_path, "\n".join([DEFAULT_LINE, ISTIO_LINE, GONE_LINE]) + "\n")
    assert result.format == "envoy"
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3, 3, 0)
    got = requests_by_line(case)
    check(got[1], NO_AI | {
        "format": "envoy", "line_no": 1, "ts": ts(2026, 1, 1, 8, 15, 2, 481_000),
        "request_id": "3f2c1e0a-8b7d-4c6e-9a5f-112233445566", "client_ip": "198.51.100.77",
        "xff": "198.51.100.77", "user_agent": "openai-python/1.54.0", "host": "llm.example.net",
        "method": "POST", "path": "/v1/chat/completions", "query": None, "route": None,
        "endpoint": "chat", "status": 200, "error_code": None, "error_type": None,
        "latency_ms": 15230.0, "request_bytes": 912, "response_bytes": 48211,
    })  # fmt: skip
    check(got[2], NO_AI | {
        "format": "envoy", "line_no": 2, "ts": ts(2026, 1, 1, 8, 16, 10, 2_000),
        "request_id": "a1b2c3d4-0000-4000-8000-000000000001", "client_ip": "198.51.100.61",
        "xff": "203.0.113.50,10.0.0.1", "user_agent": "curl/8.5.0", "host": "llm.example.net",
        "method": "POST", "path": "/v1/embeddings", "query": None, "route": "llm-route",
        "endpoint": "embeddings", "status": 429, "error_code": "RL",
        "error_type": "rate_limited", "latency_ms": 3.0, "request_bytes": 530,
        "response_bytes": 88,
    })  # fmt: skip
    check(got[3], NO_AI | {
        "format": "envoy", "line_no": 3, "ts": ts(2026, 1, 1, 8, 16, 11, 500_000),
        "request_id": None, "client_ip": "198.51.100.77", "xff": "198.51.100.77, 10.0.0.2",
        "user_agent": "openai-python/1.54.0", "host": "llm.example.net", "method": "POST",
        "path": "/v1/chat/completions", "query": "x=1", "route": None, "endpoint": "chat",
        "status": 0, "error_code": "DC", "error_type": None, "latency_ms": 30012.0,
        "request_bytes": 1024, "response_bytes": 0,
    })  # fmt: skip


AI_GW_TYPED = (  # FORMATS.md 2.4: typed JSON, the project's genai_* keys
    '{"start_time":"2026-01-01T08:15:02.481Z","method":"POST",'
    '"x-envoy-origin-path":"/v1/chat/completions","protocol":"HTTP/1.1","response_code":200,'
    '"response_flags":"-","response_code_details":"via_upstream","bytes_received":912,'
    '"bytes_sent":48211,"duration":15230,"x-envoy-upstream-service-time":"15198",'
    '"x-forwarded-for":"198.51.100.77","user-agent":"openai-python/1.54.0",'
    '"x-request-id":"3f2c1e0a-8b7d-4c6e-9a5f-112233445566",":authority":"llm.example.net",'
    '"upstream_host":"192.0.2.10:443","upstream_cluster":"httproute/default/llm/rule/0",'
    '"downstream_remote_address":"198.51.100.78:52114",'
    '"route_name":"httproute/default/llm/rule/0/match/0/*","genai_model_name":"gpt-4o-mini",'
    '"genai_model_name_override":null,"genai_backend_name":"default/openai/route/llm/rule/0/ref/0",'
    '"genai_tokens_input":5120,"genai_tokens_output":2048,"genai_tokens_total":7168}'
)
AI_GW_OTEL = (  # json_format (all strings), the OTel-style gen_ai.* keys, no socket address
    '{"gen_ai.request.model":"claude-3-5-sonnet",'
    '"gen_ai.request.model_override":"anthropic.claude-3-5-sonnet-20241022-v2:0",'
    '"gen_ai.provider.name":"default/envoy-ai-gateway-basic-aws/route/basic/rule/1/ref/0",'
    '"gen_ai.usage.total_tokens":"1300","gen_ai.usage.input_tokens":"1000",'
    '"gen_ai.usage.output_tokens":"300","start_time":"2026-01-01T08:20:00.000Z",'
    '"method":"POST","x-envoy-origin-path":"/anthropic/v1/messages","protocol":"HTTP/2",'
    '"response_code":"200","response_flags":"-","bytes_received":"2048","bytes_sent":"4096",'
    '"duration":"2210","x-forwarded-for":"203.0.113.80, 10.1.0.1","user-agent":"-",'
    '"x-request-id":"-",":authority":"ai.example.org","upstream_host":"-",'
    '"downstream_remote_address":"-","route_name":"-"}'
)
ISTIO_JSON = (  # Istio's EnvoyJSONLogFormatIstio with json_format (numbers as strings)
    '{"start_time":"2026-01-01T08:17:00.000Z","route_name":"default","method":"GET",'
    '"path":"/v1/models?limit=5","protocol":"HTTP/1.1","response_code":"503",'
    '"response_flags":"UF,URX","response_code_details":"upstream_reset_before_response_started",'
    '"connection_termination_details":"-","upstream_transport_failure_reason":"-",'
    '"bytes_received":"0","bytes_sent":"91","duration":"42","upstream_service_time":"-",'
    '"x_forwarded_for":"-","user_agent":"Go-http-client/1.1",'
    '"request_id":"0b8e7d6c-5a4b-4c3d-9e2f-1a0b9c8d7e6f","authority":"api.example.com",'
    '"upstream_host":"10.44.1.27:443","upstream_cluster":"outbound|443||api.example.com",'
    '"upstream_local_address":"10.44.1.23:37652","downstream_local_address":"10.0.45.184:8000",'
    '"downstream_remote_address":"[2001:db8::7]:46520","requested_server_name":"-"}'
)
MCP_JSON = (  # the AI Gateway's MCP example keys
    '{"bytes_received":165,"bytes_sent":10255,"downstream_remote_address":"192.0.2.30:58124",'
    '"duration":653,"genai_backend_name":null,"genai_model_name":null,"mcp_backend":"context7",'
    '"mcp_method":"tools/call","mcp_request_id":"3","mcp_session_id":"sess-77",'
    '"method":"POST","response_code":200,"start_time":"2026-01-01T08:21:11.430Z",'
    '"upstream_host":"192.0.2.99:443","user-agent":"Go-http-client/1.1",'
    '"x-envoy-origin-path":"/mcp","x-request-id":"cf2c0454-6290-498e-af6c-e32a611b5da1"}'
)


def test_json_every_column(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    result = load(case, tmp_path, "\n".join([AI_GW_TYPED, AI_GW_OTEL, ISTIO_JSON, MCP_JSON]))
    assert result.format == "envoy"
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (4, 4, 0)
    got = requests_by_line(case)
    none = {"credential_id": None, "credential_type": None, "key_fingerprint": None}
    check(got[1], none | {
        "format": "envoy", "line_no": 1, "ts": ts(2026, 1, 1, 8, 15, 2, 481_000),
        "request_id": "3f2c1e0a-8b7d-4c6e-9a5f-112233445566", "client_ip": "198.51.100.78",
        "xff": "198.51.100.77", "user_agent": "openai-python/1.54.0", "host": "llm.example.net",
        "method": "POST", "path": "/v1/chat/completions", "query": None,
        "route": "httproute/default/llm/rule/0/match/0/*", "endpoint": "chat",
        "provider": "openai", "model": "gpt-4o-mini", "response_model": None,
        "model_family": "gpt-4o-mini", "input_tokens": 5120, "output_tokens": 2048,
        "total_tokens": 7168, "tool_calls": None, "session_id": None, "status": 200,
        "error_code": None, "error_type": None, "latency_ms": 15230.0, "request_bytes": 912,
        "response_bytes": 48211, "est_cost_usd": pytest.approx(0.0019968),  # gpt-4o-mini prices
    })  # fmt: skip
    check(got[2], none | {
        "format": "envoy", "line_no": 2, "ts": ts(2026, 1, 1, 8, 20, 0), "request_id": None,
        "client_ip": "203.0.113.80", "xff": "203.0.113.80, 10.1.0.1", "user_agent": None,
        "host": "ai.example.org", "method": "POST", "path": "/anthropic/v1/messages",
        "query": None, "route": None, "endpoint": "chat", "provider": "bedrock",
        "model": "claude-3-5-sonnet",
        "response_model": "anthropic.claude-3-5-sonnet-20241022-v2:0",
        "model_family": "claude-3-5-sonnet", "input_tokens": 1000, "output_tokens": 300,
        "total_tokens": 1300, "tool_calls": None, "session_id": None, "status": 200,
        "error_code": None, "error_type": None, "latency_ms": 2210.0, "request_bytes": 2048,
        "response_bytes": 4096, "est_cost_usd": pytest.approx(0.0075),  # claude-3-5-sonnet
    })  # fmt: skip
    check(got[3], NO_AI | {
        "format": "envoy", "line_no": 3, "ts": ts(2026, 1, 1, 8, 17, 0),
        "request_id": "0b8e7d6c-5a4b-4c3d-9e2f-1a0b9c8d7e6f", "client_ip": "2001:db8::7",
        "xff": None, "user_agent": "Go-http-client/1.1", "host": "api.example.com",
        "method": "GET", "path": "/v1/models", "query": "limit=5", "route": "default",
        "endpoint": "other", "status": 503, "error_code": "UF,URX", "error_type": "server",
        "latency_ms": 42.0, "request_bytes": 0, "response_bytes": 91,
    })  # fmt: skip
    check(got[4], NO_AI | {
        "format": "envoy", "line_no": 4, "ts": ts(2026, 1, 1, 8, 21, 11, 430_000),
        "request_id": "cf2c0454-6290-498e-af6c-e32a611b5da1", "client_ip": "192.0.2.30",
        "xff": None, "user_agent": "Go-http-client/1.1", "host": None, "method": "POST",
        "path": "/mcp", "query": None, "route": None, "endpoint": "other", "tool_calls": 1,
        "session_id": "sess-77", "status": 200, "error_code": None, "error_type": None,
        "latency_ms": 653.0, "request_bytes": 165, "response_bytes": 10255,
    })  # fmt: skip


def test_json_logged_key_is_fingerprinted(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    key = "gw-Tq93LmZx0Pv7Nc2Rb8Kd"
    good = AI_GW_TYPED.replace('"method":"POST"', f'"method":"POST","x-api-key":"{key}"')
    bad = f'{{"start_time":"later","x-api-key":"{key}"}}'
    result = load(case, tmp_path, good + "\n" + bad + "\n")
    assert (result.rows_loaded, result.rows_quarantined) == (1, 1)
    fp = fingerprint(key, db.salt(case))
    assert rows(case, "SELECT credential_id, credential_type FROM requests") == [
        {"credential_id": fp, "credential_type": "api_key"}
    ]
    for table in ("requests", "quarantine", "sources"):
        n = case.execute(
            f"SELECT count(*) FROM {table} WHERE contains(CAST({table} AS VARCHAR), $k)", {"k": key}
        ).fetchall()[0][0]
        assert n == 0, table
    assert fp in case.execute("SELECT raw FROM quarantine").fetchall()[0][0]


def test_json_bad_lines_and_crlf(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    text = "\r\n".join(
        [
            ISTIO_JSON,
            '{"start_time":"2026-01-01T08:17:00.000Z","method":"GET","path":"/x"',
            '{"method":"GET","path":"/x","response_code":"200"}',
            '{"start_time":"not a time","response_code":"200"}',
            '{"start_time":"1995-01-01T00:00:00Z" "response_code":"200"}',
            "[1, 2, 3]",
            "plain garbage",
            '[2026-01-01T08:15:02.481Z] "GET / HTTP/1.1" 200 - 1 2',
            DEFAULT_LINE,
            # Envoy does not escape a quote inside a header value
            DEFAULT_LINE.replace("openai-python/1.54.0", 'say "hi" "there"'),
        ]
    )
    result = load(
        case, tmp_path, text + "\r\n", fmt="envoy", options=Options(max_quarantine_share=1)
    )
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (10, 3, 7)
    text_error = "does not match the Envoy default or Istio text access-log format"
    assert quarantine_reasons(case) == [
        (2, "invalid JSON: record is cut off"),
        (3, "no start_time: not an Envoy access-log record"),
        (
            4,
            "bad time of 10 characters shaped aaa a aaaa: expected ISO 8601 like 2026-01-01T08:15:02.481Z or epoch",
        ),
        (5, "invalid JSON"),
        (6, "JSON value is not an object"),
        (7, text_error),
        (8, text_error),
    ]
    got = rows(case, "SELECT line_no, request_id, host, user_agent FROM requests ORDER BY 1")
    assert got == [
        {"line_no": 1, "request_id": "0b8e7d6c-5a4b-4c3d-9e2f-1a0b9c8d7e6f",
         "host": "api.example.com", "user_agent": "Go-http-client/1.1"},
        {"line_no": 9, "request_id": "3f2c1e0a-8b7d-4c6e-9a5f-112233445566",
         "host": "llm.example.net", "user_agent": "openai-python/1.54.0"},
        {"line_no": 10, "request_id": "3f2c1e0a-8b7d-4c6e-9a5f-112233445566",
         "host": "llm.example.net", "user_agent": 'say "hi" "there"'},
    ]  # fmt: skip


def test_mixed_json_and_text_lines(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """Each line is read in its own shape (a log whose format was switched mid-file)."""
    result = load(case, tmp_path, "\n".join([MCP_JSON, ISTIO_LINE, GONE_LINE, AI_GW_TYPED]))
    assert (result.format, result.rows_loaded, result.rows_quarantined) == ("envoy", 4, 0)
    got = rows(
        case,
        "SELECT line_no, ts, client_ip, route, status, error_code, latency_ms, model"
        " FROM requests ORDER BY line_no",
    )
    assert got == [
        {"line_no": 1, "ts": ts(2026, 1, 1, 8, 21, 11, 430_000), "client_ip": "192.0.2.30",
         "route": None, "status": 200, "error_code": None, "latency_ms": 653.0, "model": None},
        {"line_no": 2, "ts": ts(2026, 1, 1, 8, 16, 10, 2_000), "client_ip": "198.51.100.61",
         "route": "llm-route", "status": 429, "error_code": "RL", "latency_ms": 3.0,
         "model": None},
        {"line_no": 3, "ts": ts(2026, 1, 1, 8, 16, 11, 500_000), "client_ip": "198.51.100.77",
         "route": None, "status": 0, "error_code": "DC", "latency_ms": 30012.0, "model": None},
        {"line_no": 4, "ts": ts(2026, 1, 1, 8, 15, 2, 481_000), "client_ip": "198.51.100.78",
         "route": "httproute/default/llm/rule/0/match/0/*", "status": 200, "error_code": None,
         "latency_ms": 15230.0, "model": "gpt-4o-mini"},
    ]  # fmt: skip


def test_text_crlf(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    result = load(case, tmp_path, f"{ISTIO_LINE}\r\n{DEFAULT_LINE}\r\n", fmt="envoy")
    assert (result.rows_loaded, result.rows_quarantined) == (2, 0)
    assert rows(case, "SELECT line_no, route, host FROM requests ORDER BY 1") == [
        {"line_no": 1, "route": "llm-route", "host": "llm.example.net"},
        {"line_no": 2, "route": None, "host": "llm.example.net"},
    ]


def test_provider_from_backend_name(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    backends = {
        "default/openai/route/llm/rule/0/ref/0": "openai",
        "default/azure-openai-east/route/llm/rule/0/ref/0": "azure",
        "default/envoy-ai-gateway-basic-aws/route/basic/rule/1/ref/0": "bedrock",
        "default/gcp-vertex/route/llm/rule/2/ref/0": "vertex",
        "default/tars/route/aigw-run/rule/0/ref/0": None,  # Tetrate's router: not a provider
        "anthropic-direct": "anthropic",
        "ns/laws-of-llm/route/r/rule/0/ref/0": None,  # "aws" only as a whole word
    }
    lines = [AI_GW_TYPED.replace("default/openai/route/llm/rule/0/ref/0", b) for b in backends]
    load(case, tmp_path, "\n".join(lines), fmt="envoy")
    got = [r[0] for r in case.execute("SELECT provider FROM requests ORDER BY line_no").fetchall()]
    assert got == list(backends.values())


def test_sniff(tmp_path: Path) -> None:
    for name, text in {
        "text.log": DEFAULT_LINE,
        "ai.json": AI_GW_TYPED,
        "mcp.json": MCP_JSON,
    }.items():
        path = tmp_path / name
        path.write_text(text + "\n", encoding="utf-8")
        assert detect_format(path, reader.head_lines(path)) == "envoy", name
    sniff = FORMATS["envoy"].sniff
    assert sniff([ISTIO_LINE])
    assert sniff([ISTIO_JSON])
    assert not sniff(['{"start_time":"2026-01-01T08:17:00.000Z","method":"GET"}'])
    assert not sniff(['{"started_at":1767255302481,"client_ip":"192.0.2.1","request":{}}'])
    assert not sniff(['203.0.113.45 - - [01/Jan/2026:09:15:02 +0100] "GET / HTTP/1.1" 200 1'])
    assert not sniff(['{"remote_addr":"192.0.2.1","status":"200","request":"GET / HTTP/1.1"}'])
