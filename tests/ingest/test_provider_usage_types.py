"""Every usage type's count lands in a column: requests, or other_units named by other_unit_name.

One page per usage type, as the API returns it, composed from the field lists of the vendors'
API references (OpenAI: GET /v1/organization/usage/<type> and /v1/organization/costs, whose
result objects are organization.usage.<type>.result and organization.costs.result; Anthropic:
the Admin API messages usage report and cost report). Each page goes through the real ingest
path (format detection included) into a DuckDB case; the row must carry the count in its
column, and `extra` must not hold it again.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from forensics.ingest.base import Options
from tests.conftest import load, quarantine_reasons, rows

START = 1767225600  # 2026-01-01T00:00:00Z
DAY = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def openai_page(result: dict[str, Any], width: int = 86400) -> dict[str, Any]:
    return {
        "object": "page",
        "data": [
            {
                "object": "bucket",
                "start_time": START,
                "end_time": START + width,
                "results": [result],
            }
        ],
        "has_more": False,
        "next_page": None,
    }


def anthropic_page(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": [
            {
                "starting_at": "2026-01-01T00:00:00Z",
                "ending_at": "2026-01-02T00:00:00Z",
                "results": [result],
            }
        ],
        "has_more": False,
        "next_page": None,
    }


# (id, page, detected format, expected columns, expected extra, count fields that are mapped)
CASES: list[tuple[str, dict[str, Any], str, dict[str, Any], dict[str, Any] | None, list[str]]] = [
    (
        "completions",
        openai_page(
            {
                "object": "organization.usage.completions.result",
                "input_tokens": 5200,
                "output_tokens": 910,
                "num_model_requests": 14,
                "project_id": "proj_Ledger7",
                "user_id": None,
                "api_key_id": "key_Ab12Cd34",
                "model": "gpt-4.1-mini-2025-04-14",
                "batch": False,
                "input_cached_tokens": 1024,
                "input_audio_tokens": 0,
                "output_audio_tokens": 0,
                "service_tier": None,
            }
        ),
        "openai-usage",
        {
            "operation": "completions",
            "model": "gpt-4.1-mini-2025-04-14",
            "requests": 14,
            "input_tokens": 5200,
            "cached_input_tokens": 1024,
            "output_tokens": 910,
            "other_units": None,
            "other_unit_name": None,
        },
        {"input_audio_tokens": 0, "output_audio_tokens": 0},  # no column for audio tokens
        ["num_model_requests", "input_tokens", "output_tokens", "input_cached_tokens"],
    ),
    (
        "embeddings",
        openai_page(
            {
                "object": "organization.usage.embeddings.result",
                "input_tokens": 16384,
                "num_model_requests": 32,
                "project_id": None,
                "user_id": None,
                "api_key_id": None,
                "model": "text-embedding-3-small",
            }
        ),
        "openai-usage",
        {
            "operation": "embeddings",
            "model": "text-embedding-3-small",
            "requests": 32,
            "input_tokens": 16384,
            "output_tokens": None,
            "other_units": None,
            "other_unit_name": None,
        },
        None,
        ["num_model_requests", "input_tokens"],
    ),
    (
        "moderations",
        openai_page(
            {
                "object": "organization.usage.moderations.result",
                "input_tokens": 640,
                "num_model_requests": 9,
                "project_id": None,
                "user_id": None,
                "api_key_id": None,
                "model": "omni-moderation-2024-09-26",
            }
        ),
        "openai-usage",
        {
            "operation": "moderations",
            "model": "omni-moderation-2024-09-26",
            "requests": 9,
            "input_tokens": 640,
            "other_units": None,
            "other_unit_name": None,
        },
        None,
        ["num_model_requests", "input_tokens"],
    ),
    (
        "images",
        openai_page(
            {
                "object": "organization.usage.images.result",
                "images": 6,
                "num_model_requests": 3,
                "source": "image.generation",
                "size": "1024x1536",
                "project_id": None,
                "user_id": None,
                "api_key_id": None,
                "model": "gpt-image-1",
            }
        ),
        "openai-usage",
        {
            "operation": "images",
            "model": "gpt-image-1",
            "requests": 3,
            "other_units": 6.0,
            "other_unit_name": "images",
        },
        {"source": "image.generation", "size": "1024x1536"},  # grouping keys, not counts
        ["num_model_requests", "images"],
    ),
    (
        "audio_speeches",
        openai_page(
            {
                "object": "organization.usage.audio_speeches.result",
                "characters": 2750,
                "num_model_requests": 5,
                "project_id": None,
                "user_id": None,
                "api_key_id": None,
                "model": "tts-1-hd",
            }
        ),
        "openai-usage",
        {
            "operation": "audio_speeches",
            "model": "tts-1-hd",
            "requests": 5,
            "other_units": 2750.0,
            "other_unit_name": "characters",
        },
        None,
        ["num_model_requests", "characters"],
    ),
    (
        "audio_transcriptions",
        openai_page(
            {
                "object": "organization.usage.audio_transcriptions.result",
                "seconds": 312,
                "num_model_requests": 4,
                "project_id": None,
                "user_id": None,
                "api_key_id": None,
                "model": "whisper-1",
            }
        ),
        "openai-usage",
        {
            "operation": "audio_transcriptions",
            "model": "whisper-1",
            "requests": 4,
            "other_units": 312.0,
            "other_unit_name": "seconds",
        },
        None,
        ["num_model_requests", "seconds"],
    ),
    (
        "vector_stores",
        openai_page(
            {
                "object": "organization.usage.vector_stores.result",
                "usage_bytes": 1048576,
                "project_id": "proj_Ledger7",
            }
        ),
        "openai-usage",
        {
            "operation": "vector_stores",
            "model": None,
            "requests": None,
            "other_units": 1048576.0,
            "other_unit_name": "bytes",
        },
        None,
        ["usage_bytes"],
    ),
    (
        "code_interpreter_sessions",
        openai_page(
            {
                "object": "organization.usage.code_interpreter_sessions.result",
                "num_sessions": 3,
                "project_id": "proj_Ledger7",
            }
        ),
        "openai-usage",
        {
            "operation": "code_interpreter_sessions",
            "model": None,
            "requests": None,
            "other_units": 3.0,
            "other_unit_name": "sessions",
        },
        None,
        ["num_sessions"],
    ),
    (
        "code_interpreter_sessions-older-name",  # older references call the count `sessions`
        openai_page(
            {
                "object": "organization.usage.code_interpreter_sessions.result",
                "sessions": 2,
                "project_id": None,
            }
        ),
        "openai-usage",
        {
            "operation": "code_interpreter_sessions",
            "requests": None,
            "other_units": 2.0,
            "other_unit_name": "sessions",
        },
        None,
        ["sessions"],
    ),
    (
        "file_searches",  # only the calls: they are the requests, and the unit
        openai_page(
            {
                "object": "organization.usage.file_searches.result",
                "num_requests": 21,
                "project_id": None,
                "user_id": None,
                "api_key_id": "key_Ab12Cd34",
                "vector_store_id": "vs_7QkR2mZp",
            }
        ),
        "openai-usage",
        {
            "operation": "file_searches",
            "model": None,
            "api_key_id": "key_Ab12Cd34",
            "requests": 21,
            "other_units": 21.0,
            "other_unit_name": "file_searches",
        },
        {"vector_store_id": "vs_7QkR2mZp"},  # a grouping key, not a count
        ["num_requests"],
    ),
    (
        "web_searches",  # model requests, and the web search calls they made
        openai_page(
            {
                "object": "organization.usage.web_searches.result",
                "num_model_requests": 8,
                "num_requests": 13,
                "project_id": None,
                "user_id": None,
                "api_key_id": None,
                "model": "gpt-4o-2024-08-06",
                "context_level": "medium",
            },
            width=3600,
        ),
        "openai-usage",
        {
            "operation": "web_searches",
            "model": "gpt-4o-2024-08-06",
            "model_family": "gpt-4o",
            "bucket_width": "1h",
            "requests": 8,
            "other_units": 13.0,
            "other_unit_name": "web_searches",
        },
        {"context_level": "medium"},
        ["num_model_requests", "num_requests"],
    ),
    (
        "costs",
        openai_page(
            {
                "object": "organization.costs.result",
                "amount": {"value": 0.42, "currency": "usd"},
                "line_item": "web search tool calls",
                "project_id": "proj_Ledger7",
                "quantity": 13.0,
            }
        ),
        "openai-costs",
        {
            "operation": None,
            "requests": None,
            "other_units": 13.0,
            "other_unit_name": "quantity",
            "cost": 0.42,
            "currency": "USD",
            "line_item": "web search tool calls",
        },
        None,
        ["quantity", "amount"],
    ),
    (
        "anthropic-messages",
        anthropic_page(
            {
                "uncached_input_tokens": 4000,
                "cache_creation": {
                    "ephemeral_1h_input_tokens": 0,
                    "ephemeral_5m_input_tokens": 700,
                },
                "cache_read_input_tokens": 1200,
                "output_tokens": 350,
                "server_tool_use": {"web_search_requests": 5},
                "api_key_id": "apikey_01Qm8Hx2Vt",
                "workspace_id": None,
                "model": "claude-sonnet-4-20250514",
                "service_tier": "standard",
                "context_window": None,
            }
        ),
        "anthropic-usage",
        {
            "operation": "messages",
            "model": "claude-sonnet-4-20250514",
            "requests": None,  # the report counts no requests
            "input_tokens": 4000 + 1200 + 700,
            "output_tokens": 350,
            "other_units": 5.0,
            "other_unit_name": "web_searches",  # named like OpenAI's
        },
        # the per-TTL split of the cache writes (summed into cache_creation_input_tokens)
        {"cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 700}},
        ["uncached_input_tokens", "cache_read_input_tokens", "output_tokens", "server_tool_use"],
    ),
    (
        "anthropic-messages-more-server-tools",  # a tool count the report does not document
        anthropic_page(
            {
                "uncached_input_tokens": 10,
                "cache_read_input_tokens": 0,
                "output_tokens": 20,
                "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 4},
                "model": "claude-sonnet-4-20250514",
            }
        ),
        "anthropic-usage",
        {"requests": None, "other_units": 2.0, "other_unit_name": "web_searches"},
        {"server_tool_use": {"web_fetch_requests": 4}},  # kept, without the web searches
        ["uncached_input_tokens", "cache_read_input_tokens", "output_tokens"],
    ),
    (
        "anthropic-cost",  # amounts only: no counts in the cost report
        anthropic_page(
            {
                "currency": "USD",
                "amount": "5.00",
                "workspace_id": None,
                "description": "Web search",
                "cost_type": "web_search",
                "context_window": None,
                "model": None,
                "service_tier": None,
                "token_type": None,
            }
        ),
        "anthropic-cost",
        {
            "operation": "web_search",
            "requests": None,
            "other_units": None,
            "other_unit_name": None,
            "cost": 0.05,
            "currency": "USD",
            "line_item": "Web search",
        },
        None,
        ["amount", "currency", "cost_type", "description"],
    ),
]


@pytest.mark.parametrize(
    ("page", "fmt", "expected", "extra", "mapped"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_usage_type_count_lands_in_a_column(
    case: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    page: dict[str, Any],
    fmt: str,
    expected: dict[str, Any],
    extra: dict[str, Any] | None,
    mapped: list[str],
) -> None:
    result = load(case, tmp_path, json.dumps(page, indent=2) + "\n", name="page.json")
    assert (result.format, result.rows_read, result.rows_loaded) == (fmt, 1, 1)
    (row,) = rows(case, "SELECT * FROM usage")
    assert {k: row[k] for k in expected} == expected
    assert row["bucket_start"] == DAY
    got = None if row["extra"] is None else json.loads(str(row["extra"]))
    assert got == extra
    assert not set(mapped) & set(got or {})


def test_forensics_usage_counts_file_and_web_search_requests(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """The summary `forensics usage` prints: file searches no longer show 0 requests."""
    from forensics.cli.usage import parse_by, usage_query

    by_type = {c[0]: c[1] for c in CASES}
    pages = [by_type["file_searches"], by_type["web_searches"], by_type["vector_stores"]]
    load(case, tmp_path, "".join(json.dumps(p) + "\n" for p in pages), name="usage.jsonl")
    query, params = usage_query(parse_by(("source",)))
    (summary,) = rows(case, query, params or None)
    assert (summary["rows"], summary["requests"]) == (3, 21 + 8)


@pytest.mark.parametrize(
    ("result", "operation", "unit"),
    [
        pytest.param({"num_requests": 21}, "file_searches", "file_searches", id="file"),
        pytest.param(
            {"num_model_requests": 8, "num_requests": 13}, "web_searches", "web_searches", id="web"
        ),
        pytest.param({"sessions": 2}, "code_interpreter_sessions", "sessions", id="sessions"),
    ],
)
def test_usage_type_from_its_counts_when_object_is_missing(
    case: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    result: dict[str, Any],
    operation: str,
    unit: str,
) -> None:
    """Results saved without `object` (a tool that flattened the page) still say what they
    count."""
    page = openai_page({**result, "project_id": None})
    load(case, tmp_path, json.dumps(page) + "\n", fmt="openai-usage")
    (row,) = rows(case, "SELECT operation, other_unit_name, extra FROM usage")
    assert row == {"operation": operation, "other_unit_name": unit, "extra": None}


def test_search_count_that_is_not_a_number_is_quarantined(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    page = openai_page(
        {"object": "organization.usage.file_searches.result", "num_requests": "twenty"}
    )
    result = load(
        case,
        tmp_path,
        json.dumps(page) + "\n",
        fmt="openai-usage",
        options=Options(max_quarantine_share=1),
    )
    assert (result.rows_loaded, result.rows_quarantined) == (0, 1)
    assert quarantine_reasons(case) == [
        (1, "bucket 1 result 1: num_requests is not a number: 6 characters shaped aaaaaa")
    ]
