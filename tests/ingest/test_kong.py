"""Kong file-log / http-log records, with the AI Proxy block, into canonical columns."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from forensics.ingest.base import Options
from forensics.ingest.formats import detect_format
from forensics.ingest.reader import head_lines
from tests.conftest import load, rows
from tests.keys import JWT, KEYS

UTC = dt.UTC


def kong_record(**over: object) -> dict[str, object]:
    """The composed example of FORMATS.md section 1.3, with overrides (dotted keys)."""
    rec: dict[str, object] = {
        "started_at": 1767225600123,
        "client_ip": "203.0.113.45",
        "source": "upstream",
        "upstream_status": "200",
        "request": {
            "id": "9b1f0c2e7a4d4b0f8e3c1a2b3c4d5e6f",
            "method": "POST",
            "uri": "/llm/v1/chat",
            "url": "https://gw.example.net:443/llm/v1/chat",
            "size": 1893,
            "querystring": {},
            "headers": {
                "host": "gw.example.net",
                "user-agent": "python-httpx/0.27.0",
                "content-type": "application/json",
                "x-forwarded-for": "203.0.113.45",
                "authorization": "REDACTED",
            },
        },
        "response": {"status": 200, "size": 2410, "headers": {}},
        "latencies": {"kong": 2, "proxy": 1840, "request": 1851, "receive": 6},
        "upstream_uri": "/v1/chat/completions",
        "consumer": {
            "id": "0c6f3a52-1111-4a7e-9d2b-5f0e4a9c7b21",
            "username": "tenant-acme",
            "custom_id": "acme-prod",
        },
        "authenticated_entity": {
            "id": "5d2e8b1c-2222-4c1d-8f3a-9e7b6c5d4a31",
            "consumer_id": "0c6f3a52-1111-4a7e-9d2b-5f0e4a9c7b21",
        },
        "route": {"id": "7a1b", "name": "llm-chat", "paths": ["/llm/v1/chat"]},
        "service": {"id": "1f2e", "name": "openai-upstream", "host": "api.openai.com"},
        "workspace": "f0e1d2c3-5555-4a6b-8c7d-9e0f1a2b3c4d",
        "workspace_name": "default",
        "ai": {
            "proxy": {
                "meta": {
                    "provider_name": "openai",
                    "request_model": "gpt-4o",
                    "response_model": "gpt-4o-2024-08-06",
                    "plugin_id": "2b3c",
                    "llm_latency": 1838,
                    "request_mode": "oneshot",
                },
                "usage": {
                    "prompt_tokens": 1210,
                    "prompt_tokens_details": {"cached_tokens": 1024},
                    "completion_tokens": 388,
                    "completion_tokens_details": {"reasoning_tokens": 64},
                    "total_tokens": 1598,
                    "cost": 0.00691,
                    "time_per_token": 4.7,
                },
                "payload": {
                    "request": json.dumps(
                        {
                            "model": "gpt-4o",
                            "stream": False,
                            "user": "end-user-17",
                            "messages": [
                                {"role": "system", "content": "You are a support bot for ACME."},
                                {"role": "user", "content": "Where is order 1234?"},
                                {"role": "assistant", "content": "Let me check."},
                                {
                                    "role": "user",
                                    "content": [{"type": "text", "text": "Order  4321 please"}],
                                },
                            ],
                        }
                    ),
                    "response": json.dumps(
                        {
                            "model": "gpt-4o-2024-08-06",
                            "choices": [
                                {
                                    "finish_reason": "tool_calls",
                                    "message": {
                                        "tool_calls": [{"id": "c1"}, {"id": "c2"}, {"id": "c3"}]
                                    },
                                }
                            ],
                        }
                    ),
                },
            }
        },
    }
    for dotted, value in over.items():
        node: dict[str, object] = rec
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})  # type: ignore[assignment]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return rec


def lines(*records: object) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_every_canonical_column_of_the_documented_example(case, tmp_path):
    load(case, tmp_path, lines(kong_record()), name="kong.jsonl")
    [r] = rows(case, "SELECT * FROM requests")
    fp = case.execute("SELECT prompt_fp('Order 4321 please')").fetchall()[0][0]
    assert r == {
        "ts": dt.datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=UTC),
        "request_id": "9b1f0c2e7a4d4b0f8e3c1a2b3c4d5e6f",
        "source_id": 1,
        "line_no": 1,
        "format": "kong",
        "tenant_id": "tenant-acme",
        "user_id": "end-user-17",
        "credential_id": "5d2e8b1c-2222-4c1d-8f3a-9e7b6c5d4a31",
        "credential_type": "api_key",
        "key_fingerprint": None,
        "token_id": None,
        "issuer": None,
        "key_id": None,
        "token_iat": None,
        "token_exp": None,
        "scopes": None,
        "client_id": None,
        "token_audience": None,
        "token_tenant": None,
        "client_ip": "203.0.113.45",
        "client_net": "203.0.113.0/24",
        "client_kind": None,
        "client_host": None,
        "client_addr_raw": None,
        "xff": "203.0.113.45",
        "asn": None,
        "as_org": None,
        "asn_category": None,
        "country": None,
        "city": None,
        "lat": None,
        "lon": None,
        "asn_source": None,
        "geo_source": None,
        "user_agent": "python-httpx/0.27.0",
        "origin": None,
        "referer": None,
        "host": "gw.example.net",
        "port": None,
        "method": "POST",
        "path": "/llm/v1/chat",
        "query": None,
        "route": "llm-chat",
        "endpoint": "chat",
        "provider": "openai",
        "model": "gpt-4o",
        "response_model": "gpt-4o-2024-08-06",
        "model_family": "gpt-4o",
        "stream": False,
        "prompt_chars": len("You are a support bot for ACME.")
        + len("Where is order 1234?")
        + len("Let me check.")
        + len("Order  4321 please"),
        "prompt_prefix_fp": fp,
        "prompt_text": None,
        "input_tokens": 1210,
        "output_tokens": 388,
        "cached_input_tokens": 1024,
        "reasoning_tokens": 64,
        "total_tokens": 1598,
        "tool_calls": 3,
        "finish_reason": "tool_calls",
        "error_code": None,
        "session_id": None,
        "status": 200,
        "upstream_status": 200,
        "error_type": None,
        "latency_ms": 1851.0,
        "request_bytes": 1893,
        "response_bytes": 2410,
        "log_cost": 0.00691,
        "est_cost_usd": 0.005625,  # (186 x 2.50 + 1024 x 1.25 + 388 x 10.00) / 1e6
    }


def test_prefix_fingerprint_is_of_the_last_user_message_normalised(case, tmp_path):
    def req(system: str, user: str) -> dict[str, object]:
        body = {
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]
        }
        return kong_record(**{"ai.proxy.payload.request": json.dumps(body)})

    load(
        case,
        tmp_path,
        lines(
            req("Template A", "Summarise   ticket 991 NOW"),
            req("Template B, very different", "summarise ticket 123 now"),
            req("Template A", "Translate ticket 991"),
        ),
    )
    fps = [
        r[0]
        for r in case.execute("SELECT prompt_prefix_fp FROM requests ORDER BY line_no").fetchall()
    ]
    assert fps[0] == fps[1]  # same user prefix, other system prompt: same fingerprint
    assert fps[0] != fps[2]


def test_keep_prompts_stores_the_last_user_message_scrubbed(case, tmp_path):
    key = KEYS["anthropic"]
    body = {"messages": [{"role": "user", "content": f"my key is {key} ok?"}]}
    load(
        case,
        tmp_path,
        lines(kong_record(**{"ai.proxy.payload.request": json.dumps(body)})),
        options=Options(keep_prompts=True),
    )
    [(text,)] = case.execute("SELECT prompt_text FROM requests").fetchall()
    assert text.startswith("my key is cred:") and text.endswith(" ok?")
    assert key not in text


def test_prompt_text_is_not_stored_by_default(case, tmp_path):
    load(case, tmp_path, lines(kong_record()))
    assert case.execute("SELECT prompt_text FROM requests").fetchall() == [(None,)]


def test_older_singular_layout_keyed_by_plugin_name(case, tmp_path):
    old = kong_record(ai=None)
    old["ai"] = {
        "ai-proxy": {
            "meta": {
                "provider_name": "Anthropic",
                "request_model": "claude-3-5-sonnet-20241022",
                "response_model": "claude-3-5-sonnet-20241022",
                "request_mode": "stream",
            },
            "usage": {
                "prompt_token": 55,
                "completion_token": 21,
                "total_tokens": 76,
                "cost": 0.001,
            },
        },
        "payload": {"request": json.dumps({"messages": [{"role": "user", "content": "hi"}]})},
    }
    load(case, tmp_path, lines(old))
    [r] = rows(
        case,
        "SELECT provider, model, model_family, stream, input_tokens, output_tokens,"
        " total_tokens, log_cost, prompt_chars FROM requests",
    )
    assert r == {
        "provider": "anthropic",
        "model": "claude-3-5-sonnet-20241022",
        "model_family": "claude-3-5-sonnet",
        "stream": True,
        "input_tokens": 55,
        "output_tokens": 21,
        "total_tokens": 76,
        "log_cost": 0.001,
        "prompt_chars": 2,
    }


def test_batched_http_log_arrays_one_per_line(case, tmp_path):
    batch = [
        kong_record(**{"request.id": f"id{i}", "started_at": 1767225600000 + i}) for i in range(3)
    ]
    result = load(case, tmp_path, json.dumps(batch) + "\n" + json.dumps(kong_record()) + "\n")
    assert (result.rows_read, result.rows_loaded) == (4, 4)
    got = case.execute("SELECT line_no, request_id FROM requests ORDER BY ts").fetchall()
    assert got == [(1, "id0"), (1, "id1"), (1, "id2"), (2, "9b1f0c2e7a4d4b0f8e3c1a2b3c4d5e6f")]


def test_pretty_printed_array_document_and_one_cut_in_half(case, tmp_path):
    batch = [kong_record(**{"request.id": f"id{i}"}) for i in range(3)]
    whole = json.dumps(batch, indent=2)
    result = load(case, tmp_path, whole, name="batch.json")
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3, 3, 0)
    cut = whole[: whole.index('"id1"')]  # the second element is cut in half
    result = load(case, tmp_path, cut, name="cut.json")
    assert result.rows_loaded == 1
    assert result.rows_quarantined >= 1
    [(line, error)] = case.execute(
        "SELECT line_no, error FROM quarantine WHERE source_id = $s", {"s": result.source_id}
    ).fetchall()
    assert error.startswith("JSON array element does not parse")
    assert cut.splitlines()[line - 1].strip().startswith("{")


def test_tenant_falls_back_to_custom_id_then_workspace(case, tmp_path):
    load(
        case,
        tmp_path,
        lines(
            kong_record(**{"consumer.username": None}),
            kong_record(consumer=None),
            kong_record(consumer=None, workspace_name=None),
        ),
    )
    got = [r[0] for r in case.execute("SELECT tenant_id FROM requests ORDER BY line_no").fetchall()]
    assert got == ["acme-prod", "default", "f0e1d2c3-5555-4a6b-8c7d-9e0f1a2b3c4d"]


def test_raw_key_header_becomes_a_fingerprint_and_jwt_becomes_claims(case, tmp_path):
    key = KEYS["openai-project"]
    load(
        case,
        tmp_path,
        lines(
            kong_record(authenticated_entity=None, **{"request.headers.apikey": key}),
            kong_record(
                authenticated_entity=None, **{"request.headers.authorization": f"Bearer {JWT}"}
            ),
        ),
    )
    a, b = rows(case, "SELECT * FROM requests ORDER BY line_no")
    from forensics.case import db

    expected = __import__("forensics.case.fingerprints", fromlist=["fingerprint"]).fingerprint(
        key, db.salt(case)
    )
    assert a["credential_id"] == a["key_fingerprint"] == expected
    assert expected.startswith("cred:") and expected.endswith(key[-4:]) and len(expected) == 22
    assert a["credential_type"] == "api_key"
    assert b["credential_type"] == "jwt"
    assert b["issuer"] == "https://auth.example.net/"
    assert b["key_id"] == "key-2026-10"
    assert b["token_id"] == "tok-7f3a9c"
    assert b["token_iat"] == dt.datetime.fromtimestamp(1767225000, UTC)
    assert b["token_exp"] == dt.datetime.fromtimestamp(1767228600, UTC)
    assert b["scopes"] == ["chat.write", "embeddings.read"]
    assert b["client_id"] == "reporting-app"
    assert b["credential_id"].startswith("cred:")


def test_error_types_from_status_and_error_payload(case, tmp_path):
    def resp(status: int, body: dict[str, object] | None) -> dict[str, object]:
        return kong_record(
            **{
                "response.status": status,
                "ai.proxy.payload.response": json.dumps(body) if body else None,
            }
        )

    load(
        case,
        tmp_path,
        lines(
            resp(429, {"error": {"type": "rate_limit_error"}}),
            resp(
                400,
                {"error": {"code": "content_policy_violation", "type": "invalid_request_error"}},
            ),
            resp(200, {"choices": [{"finish_reason": "content_filter", "message": {}}]}),
            resp(401, None),
            resp(404, None),
            resp(502, None),
            resp(200, {"choices": [{"finish_reason": "stop", "message": {}}]}),
        ),
    )
    got = case.execute("SELECT error_type, error_code FROM requests ORDER BY line_no").fetchall()
    assert got == [
        ("rate_limited", "rate_limit_error"),
        ("content_filter", "content_policy_violation"),
        ("content_filter", None),
        ("auth", None),
        ("invalid", None),
        ("server", None),
        (None, None),
    ]


def test_bad_records_are_quarantined_with_line_and_reason(case, tmp_path):
    text = (
        lines(kong_record())
        + '{"started_at": 1767225600, "client_ip": "198.51.100.7"}\n'  # seconds, not ms
        + '{"started_at": 1767225600123, "client_ip": "198.51\n'  # cut off
        + "\n"
        + '"just a string"\n'
        + '{"client_ip": "198.51.100.7"}\n'
        + "2026/11/24 03:12:45 [warn] 1290#0: *88213 a client request body is buffered\n"
        + lines(kong_record())
    )
    result = load(case, tmp_path, text, options=Options(max_quarantine_share=1))
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined, result.lines_blank) == (
        7,
        2,
        5,
        1,
    )
    got = case.execute("SELECT line_no, error FROM quarantine ORDER BY line_no").fetchall()
    assert got == [
        (2, "started_at 1767225600 is not epoch milliseconds (it would be 1970-01-21)"),
        (3, "invalid JSON: record is cut off"),
        (5, "JSON value is not a Kong log record object"),
        (6, "no started_at: not a Kong log record"),
        (7, "not JSON: not a Kong log record"),
    ]


def test_auto_detection_picks_kong(tmp_path):
    path = tmp_path / "x.log"
    path.write_text(lines(kong_record()))
    assert detect_format(path, head_lines(path)) == "kong"
    path.write_text(json.dumps([kong_record()]) + "\n")
    assert detect_format(path, head_lines(path)) == "kong"


def test_endpoint_from_upstream_uri_or_path(case, tmp_path):
    load(
        case,
        tmp_path,
        lines(
            kong_record(**{"upstream_uri": "/v1/embeddings"}),
            kong_record(upstream_uri=None, **{"request.uri": "/gw/openai/v1/responses"}),
            kong_record(
                upstream_uri=None,
                **{"request.uri": "/v1beta/models/gemini-1.5-pro:generateContent"},
            ),
            kong_record(upstream_uri=None, **{"request.uri": "/anthropic/v1/messages"}),
            kong_record(
                upstream_uri=None,
                **{
                    "request.uri": "/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-06-01"
                },
            ),
            kong_record(upstream_uri=None, **{"request.uri": "/v1/images/generations"}),
            kong_record(upstream_uri=None, **{"request.uri": "/v1/audio/transcriptions"}),
            kong_record(upstream_uri=None, **{"request.uri": "/v1/moderations"}),
            kong_record(upstream_uri=None, **{"request.uri": "/v1/models"}),
        ),
    )
    got = [r[0] for r in case.execute("SELECT endpoint FROM requests ORDER BY line_no").fetchall()]
    assert got == [
        "embeddings",
        "responses",
        "chat",
        "chat",
        "chat",
        "images",
        "audio",
        "moderation",
        "other",
    ]


def test_sample_record_file_helper_is_kong(tmp_path: Path):
    assert json.loads(lines(kong_record()))["started_at"] == 1767225600123
