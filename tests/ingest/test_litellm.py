"""LiteLLM_SpendLogs rows (JSON lines, the /spend/logs list, CSV exports) into canonical columns.

Rows are composed from FORMATS.md section 6 (the 6.3 example and the 6.2 columns)."""

from __future__ import annotations

import csv
import io
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
from tests.conftest import load, quarantine_reasons, rows, tables_containing
from tests.ingest.test_kong import kong_record

HASH = "3c9e51d07a2b84f6e1d0c9b8a7f6e5d4c3b2a1908f7e6d5c4b3a291807f6e5d4"
# The composed /spend/logs row of FORMATS.md 6.3, verbatim.
EXAMPLE: dict[str, Any] = {
    "request_id": "chatcmpl-7d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6",
    "call_type": "acompletion",
    "api_key": HASH,
    "spend": 0.01163,
    "total_tokens": 7168,
    "prompt_tokens": 5120,
    "completion_tokens": 2048,
    "startTime": "2026-01-01T08:15:02.481000",
    "endTime": "2026-01-01T08:15:17.711000",
    "request_duration_ms": 15230,
    "completionStartTime": "2026-01-01T08:15:02.893000",
    "model": "gpt-4o-mini-2024-07-18",
    "model_group": "gpt-4o-mini",
    "model_id": "a7c1e0b2",
    "custom_llm_provider": "openai",
    "api_base": "https://api.openai.com/v1",
    "user": "u-4411",
    "end_user": "cust-9",
    "team_id": "team-acme",
    "organization_id": None,
    "requester_ip_address": "203.0.113.45",
    "cache_hit": "False",
    "cache_key": "",
    "request_tags": ["prod"],
    "status": "success",
    "metadata": {
        "user_api_key_alias": "acme-prod-1",
        "user_api_key_team_id": "team-acme",
        "user_api_key_user_id": "u-admin",
        "additional_usage_values": {"prompt_tokens_details": {"cached_tokens": 4096}},
    },
}
START = datetime(2026, 1, 1, 8, 15, 2, 481000, tzinfo=UTC)
# A LiteLLM virtual key as a client sends it (sk- and 22 URL-safe characters).
RAW_KEY = "sk-Zq8wX2vB7nM4kL1pR6tY9u"
BEARER = "sk-proj-Zq8wX2vB7nM4kL1pR6tY9uI3oE5aS0dF"


def row(**changes: Any) -> dict[str, Any]:
    """The example row with fields changed; a value of ... drops the field."""
    out = {**EXAMPLE, **changes}
    return {k: v for k, v in out.items() if v is not ...}


def jsonl(*records: Any) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def to_csv(records: list[dict[str, Any]], columns: list[str]) -> str:
    """CSV as Postgres writes it: JSON columns as JSON text, NULL as an empty field."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for rec in records:
        values = []
        for c in columns:
            v = rec.get(c)
            values.append(
                "" if v is None else json.dumps(v) if isinstance(v, dict | list) else str(v)
            )
        writer.writerow(values)
    return out.getvalue()


def by_request(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, object]]:
    return {str(r["request_id"]): r for r in rows(con, "SELECT * FROM requests")}


def test_documented_example_every_canonical_column(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    result = load(case, tmp_path, jsonl(EXAMPLE), name="spend.jsonl")
    assert (result.format, result.rows_read, result.rows_loaded) == ("litellm", 1, 1)
    [r] = rows(case, "SELECT * FROM requests")
    r.pop("est_cost_usd")  # the price table's estimate, not from the log
    assert r == {
        "ts": START,
        "request_id": "chatcmpl-7d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6",
        "source_id": result.source_id,
        "line_no": 1,
        "format": "litellm",
        "tenant_id": "team-acme",
        "user_id": "cust-9",  # end_user before user
        "credential_id": HASH,  # LiteLLM's digest of the virtual key, kept as the id
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
        "xff": None,
        "asn": None,
        "as_org": None,
        "asn_category": None,
        "country": None,
        "city": None,
        "lat": None,
        "lon": None,
        "asn_source": None,
        "geo_source": None,
        "user_agent": None,
        "origin": None,
        "referer": None,
        "host": None,
        "port": None,
        "method": None,
        "path": "/v1/chat/completions",  # from call_type
        "query": None,
        "route": "acompletion",
        "endpoint": "chat",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "response_model": "gpt-4o-mini-2024-07-18",
        "model_family": "gpt-4o-mini",
        "stream": None,
        "prompt_chars": None,
        "prompt_prefix_fp": None,
        "prompt_text": None,
        "input_tokens": 5120,
        "output_tokens": 2048,
        "cached_input_tokens": 4096,
        "reasoning_tokens": None,
        "total_tokens": 7168,
        "tool_calls": None,
        "finish_reason": None,
        "error_code": None,
        "session_id": None,
        "status": 200,
        "upstream_status": None,
        "error_type": None,
        "latency_ms": 15230.0,
        "request_bytes": None,
        "response_bytes": None,
        "log_cost": 0.01163,
    }


def test_spend_logs_list_on_one_line_and_pretty_printed(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    listed = [row(request_id="a"), row(request_id="b", call_type="aembedding")]
    one_line = load(case, tmp_path, json.dumps(listed) + "\n", name="list.json")
    assert (one_line.format, one_line.rows_loaded) == ("litellm", 2)
    pretty = json.dumps([row(request_id="c"), row(request_id="d")], indent=2) + "\n"
    second = pretty.splitlines().index("  {", 2) + 1
    document = load(case, tmp_path, pretty, name="pretty.json")
    assert (document.format, document.rows_loaded, document.rows_quarantined) == ("litellm", 2, 0)
    got = case.execute(
        "SELECT request_id, line_no, endpoint, ts FROM requests ORDER BY request_id"
    ).fetchall()
    assert got == [
        ("a", 1, "chat", START),
        ("b", 1, "embeddings", START),
        ("c", 2, "chat", START),  # line of the element in the document
        ("d", second, "chat", START),
    ]


def test_raw_key_in_api_key_is_fingerprinted_never_stored(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    text = jsonl(
        row(request_id="raw", api_key=RAW_KEY),
        row(request_id="meta", api_key="", metadata={"user_api_key": HASH}),
        row(request_id="bad", api_key=RAW_KEY, startTime="yesterday"),  # quarantined
    )
    result = load(case, tmp_path, text)
    assert (result.rows_loaded, result.rows_quarantined) == (2, 1)
    assert tables_containing(case, RAW_KEY[3:15]) == []
    salt = db.salt(case)
    got = by_request(case)
    assert (
        got["raw"]["credential_id"] == got["raw"]["key_fingerprint"] == fingerprint(RAW_KEY, salt)
    )
    assert got["meta"]["credential_id"] == HASH  # metadata.user_api_key when api_key is empty
    assert got["meta"]["key_fingerprint"] is None
    [raw] = [r[0] for r in case.execute("SELECT raw FROM quarantine").fetchall()]
    assert fingerprint(RAW_KEY, salt) in raw


def test_proxy_server_request_gives_path_headers_body_and_stream(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    body = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Summarise  ticket 881"},
        ],
    }
    psr = {
        "url": "http://litellm.example.net:4000/chat/completions?trace=1",
        "method": "POST",
        "headers": {
            "host": "litellm.example.net:4000",
            "user-agent": "OpenAI/Python 1.54.0",
            "authorization": f"Bearer {BEARER}",
            "x-forwarded-for": "198.51.100.7, 10.0.0.2",
        },
        "body": body,
    }
    response = {
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"finish_reason": "stop", "message": {"content": "ok"}}],
    }
    messages_only = row(
        request_id="messages",
        messages=[{"role": "user", "content": "hello there"}],
        metadata=json.dumps(EXAMPLE["metadata"]),  # metadata as JSON text
    )
    text = jsonl(
        row(request_id="psr", proxy_server_request=psr, response=response, session_id="s-1"),
        messages_only,
    )
    load(case, tmp_path, text)
    got = by_request(case)
    r = got["psr"]
    fp = case.execute("SELECT prompt_fp('Summarise ticket 881')").fetchall()[0][0]
    expected = {
        "path": "/chat/completions",
        "query": "trace=1",
        "endpoint": "chat",
        "method": "POST",
        "host": "litellm.example.net:4000",  # the Host header as logged
        "user_agent": "OpenAI/Python 1.54.0",
        "xff": "198.51.100.7, 10.0.0.2",
        "client_ip": "203.0.113.45",  # requester_ip_address, not the XFF
        "stream": True,
        "prompt_prefix_fp": fp,
        "prompt_chars": len("You are terse.") + len("Summarise  ticket 881"),
        "finish_reason": "stop",
        "tool_calls": 0,
        "session_id": "s-1",
        "credential_id": HASH,
        "key_fingerprint": fingerprint(BEARER, db.salt(case)),
    }
    assert {k: r[k] for k in expected} == expected
    assert tables_containing(case, BEARER[8:20]) == []
    m = got["messages"]
    assert m["prompt_prefix_fp"] == case.execute("SELECT prompt_fp('hello there')").fetchall()[0][0]
    assert m["cached_input_tokens"] == 4096


def test_failures_status_and_error_code(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    def failed(rid: str, info: dict[str, str] | None) -> dict[str, Any]:
        meta = {"status": "failure"} | ({"error_information": info} if info else {})
        return row(request_id=rid, status="failure", metadata=meta, spend=0, completion_tokens=0)

    text = jsonl(
        failed("limited", {"error_code": "429", "error_class": "RateLimitError"}),
        failed("auth", {"error_code": "401", "error_class": ""}),
        failed("bare", None),
        row(request_id="old", status=...),  # LiteLLM versions without a status column
        row(request_id="meta-only", status=..., metadata={"status": "success"}),
    )
    load(case, tmp_path, text)
    got = {
        rid: (r["status"], r["error_code"], r["error_type"]) for rid, r in by_request(case).items()
    }
    assert got == {
        "limited": (429, "RateLimitError", "rate_limited"),
        "auth": (401, "401", "auth"),
        "bare": (None, "failure", None),
        "old": (None, None, None),
        "meta-only": (200, None, None),
    }


def test_times_offsets_epochs_and_latency_from_end_time(tmp_path: Path) -> None:
    con = db.connect(tmp_path / "tz.duckdb")
    con.execute("SET TimeZone = 'America/New_York'")  # a bare time is UTC all the same
    text = jsonl(
        row(request_id="1", request_duration_ms=...),
        row(request_id="2", startTime="2026-01-01 08:15:02.481", request_duration_ms=None),
        row(
            request_id="3",
            startTime="2026-01-01T09:15:02.481+01:00",
            endTime=...,
            request_duration_ms=...,
        ),
        row(
            request_id="4",
            startTime=1767255302.481,
            endTime=1767255303.0,
            request_duration_ms=...,
        ),
        row(request_id="5", startTime=1767255302481, endTime=..., request_duration_ms=None),
        row(request_id="6", startTime="2026-01-01T08:15:02.481Z", request_duration_ms="900"),
    )
    load(con, tmp_path, text)
    got = con.execute("SELECT request_id, epoch_us(ts), latency_ms FROM requests").fetchall()
    con.close()
    us = 1767255302481000
    assert sorted(got) == [
        ("1", us, 15230.0),
        ("2", us, 15230.0),
        ("3", us, None),
        ("4", us, 519.0),
        ("5", us, None),
        ("6", us, 900.0),
    ]


def test_tenant_user_and_ip_fallbacks(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    meta = {"user_api_key_team_id": "team-meta", "requester_ip_address": "198.51.100.9"}
    text = jsonl(
        row(request_id="org", team_id=None, organization_id="org-1", end_user=None),
        row(
            request_id="meta",
            team_id="",
            organization_id=...,
            end_user="",
            user="",
            requester_ip_address="",
            metadata=meta,
        ),
    )
    load(case, tmp_path, text)
    got = {k: (r["tenant_id"], r["user_id"], r["client_ip"]) for k, r in by_request(case).items()}
    assert got == {
        "org": ("org-1", "u-4411", "203.0.113.45"),
        "meta": ("team-meta", None, "198.51.100.9"),
    }


@pytest.mark.parametrize(
    ("call_type", "path", "endpoint"),
    [
        ("completion", "/v1/chat/completions", "chat"),
        ("atext_completion", "/v1/completions", "completions"),
        ("aembedding", "/v1/embeddings", "embeddings"),
        ("aimage_generation", "/v1/images/generations", "images"),
        ("atranscription", "/v1/audio/transcriptions", "audio"),
        ("amoderation", "/v1/moderations", "moderation"),
        ("aresponses", "/v1/responses", "responses"),
        ("anthropic_messages", "/v1/messages", "chat"),
        ("pass_through_endpoint", None, None),
    ],
)
def test_endpoint_from_call_type(
    case: duckdb.DuckDBPyConnection, tmp_path: Path, call_type: str, path: str, endpoint: str
) -> None:
    load(case, tmp_path, jsonl(row(call_type=call_type)))
    [r] = rows(case, "SELECT path, endpoint, route FROM requests")
    assert r == {"path": path, "endpoint": endpoint, "route": call_type}


def test_bad_lines_are_quarantined_with_reason(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    text = jsonl(
        EXAMPLE,
        json.dumps(EXAMPLE)[:-30],
        '{"a": nope}',
        "plain text line",
        {"foo": 1},
        row(startTime=...),
        row(startTime="last tuesday"),
        row(startTime=12),
        "[1, 2",
        row(request_id="ok-2"),
    )
    result = load(case, tmp_path, text, fmt="litellm", options=Options(max_quarantine_share=1))
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (10, 2, 8)
    assert quarantine_reasons(case) == [
        (2, "invalid JSON: record is cut off"),
        (3, "invalid JSON"),
        (
            4,
            "not JSON, and no CSV header line (request_id,...,startTime,...) before it in its chunk",
        ),
        (5, "not a LiteLLM SpendLogs row: no request_id or startTime"),
        (6, "no startTime"),
        (
            7,
            "startTime of 12 characters shaped aaaa aaaaaaa is not an ISO 8601 time or an epoch number",
        ),
        (8, "startTime 12 is not a plausible time (it would be 1970-01-01)"),
        (9, "invalid JSON: record is cut off"),
    ]


CSV_COLUMNS = [
    "request_id",
    "call_type",
    "api_key",
    "spend",
    "total_tokens",
    "prompt_tokens",
    "completion_tokens",
    "startTime",
    "endTime",
    "request_duration_ms",
    "completionStartTime",
    "model",
    "model_id",
    "model_group",
    "custom_llm_provider",
    "api_base",
    "user",
    "metadata",
    "cache_hit",
    "cache_key",
    "request_tags",
    "team_id",
    "organization_id",
    "end_user",
    "requester_ip_address",
    "messages",
    "response",
    "session_id",
    "status",
]


def test_csv_export_with_header(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    pg = row(startTime="2026-01-01 08:15:02.481", endTime="2026-01-01 08:15:17.711")
    quoted = row(
        request_id='id,with "quotes"',
        user='a "quoted", user',
        messages=[{"role": "user", "content": 'say "hi", then stop'}],
    )
    text = to_csv([pg, quoted, row(request_id="raw", api_key=RAW_KEY)], CSV_COLUMNS)
    broken = 'cut,acompletion,"{""a"": 1\n'  # a quote left open: the record went on
    short = "x1,acompletion\n"
    result = load(case, tmp_path, text + broken + short, name="spend.csv")
    assert (result.format, result.rows_loaded, result.rows_quarantined) == ("litellm", 3, 3)
    got = by_request(case)
    r = got["chatcmpl-7d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6"]
    expected = {
        "ts": START,
        "tenant_id": "team-acme",
        "user_id": "cust-9",
        "credential_id": HASH,
        "client_ip": "203.0.113.45",
        "endpoint": "chat",
        "model": "gpt-4o-mini",
        "response_model": "gpt-4o-mini-2024-07-18",
        "input_tokens": 5120,
        "output_tokens": 2048,
        "cached_input_tokens": 4096,
        "total_tokens": 7168,
        "status": 200,
        "latency_ms": 15230.0,
        "log_cost": 0.01163,
    }
    assert {k: r[k] for k in expected} == expected
    q = got['id,with "quotes"']
    assert (
        q["prompt_prefix_fp"]
        == case.execute("SELECT prompt_fp('say \"hi\", then stop')").fetchall()[0][0]
    )
    assert got["raw"]["key_fingerprint"] == fingerprint(RAW_KEY, db.salt(case))
    assert tables_containing(case, RAW_KEY[3:15]) == []
    assert quarantine_reasons(case) == [
        (1, "CSV header line (column names, not a record)"),
        (5, "malformed CSV line: a quote is not closed (a record split over lines?) or stray"),
        (6, f"CSV line has 2 fields, its header has {len(CSV_COLUMNS)}"),
    ]


def test_csv_columns_found_by_name_in_any_order(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # A byte order mark, names in other case, only some columns, in another order.
    header = "\ufeffStartTime,spend,model,REQUEST_ID,api_key,team_id\n"
    values = [EXAMPLE[c] for c in ("startTime", "spend", "model", "request_id", "api_key")]
    text = header + ",".join(str(v) for v in values) + ",team-acme\n"
    result = load(case, tmp_path, text, name="selected.csv")
    assert (result.format, result.rows_loaded) == ("litellm", 1)
    [r] = rows(case, "SELECT ts, request_id, tenant_id, response_model, log_cost FROM requests")
    assert r == {
        "ts": START,
        "request_id": EXAMPLE["request_id"],
        "tenant_id": "team-acme",
        "response_model": "gpt-4o-mini-2024-07-18",
        "log_cost": 0.01163,
    }


def test_csv_rows_without_their_header_are_quarantined_with_reason(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    data_only = "".join(to_csv([row()], CSV_COLUMNS).splitlines(keepends=True)[1:])
    result = load(case, tmp_path, data_only, fmt="litellm", options=Options(max_quarantine_share=1))
    assert (result.rows_loaded, result.rows_quarantined) == (0, 1)
    [(_, reason)] = quarantine_reasons(case)
    assert reason.startswith("not JSON, and no CSV header line")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(jsonl(EXAMPLE, row(request_id="b")), id="json-lines"),
        pytest.param(jsonl([EXAMPLE, row(request_id="b")]), id="array-line"),
        pytest.param(json.dumps([EXAMPLE], indent=2) + "\n", id="pretty-document"),
        pytest.param(to_csv([EXAMPLE], CSV_COLUMNS), id="csv"),
        pytest.param(
            jsonl({"request_id": "r", "api_key": HASH, "call_type": "acompletion"}), id="minimal"
        ),
    ],
)
def test_auto_detection_picks_litellm(tmp_path: Path, text: str) -> None:
    path = tmp_path / "spend.log"
    path.write_text(text, encoding="utf-8")
    assert detect_format(path, reader.head_lines(path)) == "litellm"


def test_auto_detection_still_picks_kong_for_kong(tmp_path: Path) -> None:
    path = tmp_path / "kong.log"
    path.write_text(jsonl(kong_record()), encoding="utf-8")
    assert detect_format(path, reader.head_lines(path)) == "kong"
    assert not FORMATS["litellm"].sniff(reader.head_lines(path))


def test_sniff_rejects_other_files() -> None:
    sniff = FORMATS["litellm"].sniff
    assert FORMATS["litellm"].auto_detect
    assert not sniff([json.dumps({"request_id": "r", "startTime": "2026-01-01T00:00:00"})])
    assert not sniff(["request_id,ts,status", "1,2,3"])
    assert not sniff(['203.0.113.5 - - [01/Jan/2026:08:15:02 +0000] "GET / HTTP/1.1" 200 1'])
    assert not sniff(["[", '  {"RayID": "1a", "EdgeStartTimestamp": 1}', "]"])


SNAPSHOT = "gpt-4o-mini-2024-07-18"  # EXAMPLE's model; its model_group is gpt-4o-mini


@pytest.mark.parametrize(
    ("changes", "model", "response_model"),
    [
        pytest.param({}, "gpt-4o-mini", SNAPSHOT, id="model_group-wins"),
        pytest.param({"model_group": ""}, SNAPSHOT, SNAPSHOT, id="empty-group"),
        pytest.param({"model_group": None}, SNAPSHOT, SNAPSHOT, id="null-group"),
        pytest.param({"model_group": ...}, SNAPSHOT, SNAPSHOT, id="no-group-field"),
        pytest.param({"model_group": " ", "model": ""}, "a7c1e0b2", None, id="both-empty"),
        pytest.param({"model_group": None, "model": None}, "a7c1e0b2", None, id="both-null"),
        pytest.param({"model_group": "", "model": "", "model_id": ""}, None, None, id="all-empty"),
    ],
)
@pytest.mark.parametrize("shape", ["jsonl", "csv"])
def test_model_falls_back_to_model_then_model_id(
    case: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    shape: str,
    changes: dict[str, Any],
    model: str | None,
    response_model: str | None,
) -> None:
    """model = model_group, else model, else model_id ('' and NULL are missing): a call made
    without the router leaves model_group empty. response_model is always `model`."""
    record = row(**changes)
    if shape == "jsonl":
        text, name = jsonl(record), "spend.jsonl"
    else:  # NULL and '' are both an empty field in a Postgres CSV export
        text, name = to_csv([record], CSV_COLUMNS), "spend.csv"
    result = load(case, tmp_path, text, name=name)
    assert (result.format, result.rows_loaded) == ("litellm", 1)
    [r] = rows(case, "SELECT model, response_model FROM requests")
    assert (r["model"], r["response_model"]) == (model, response_model)
