"""Provider usage exports: OpenAI Usage / Costs pages, Anthropic usage / cost report pages.

Fixtures are composed from the example shapes in FORMATS.md sections 8 and 9.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forensics.case import db
from forensics.ingest.base import Options
from forensics.ingest.formats import detect_format
from forensics.ingest.pipeline import ingest_file
from forensics.ingest.reader import head_lines
from tests.conftest import load, rows

UTC = dt.UTC
H0 = 1767254400  # 2026-01-01T08:00:00Z


def oa_result(**over: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "object": "organization.usage.completions.result",
        "input_tokens": 845000,
        "input_cached_tokens": 610000,
        "output_tokens": 212000,
        "input_audio_tokens": 0,
        "output_audio_tokens": 0,
        "num_model_requests": 1730,
        "project_id": "proj_Acme01",
        "user_id": None,
        "api_key_id": "key_9xYpQ2",
        "model": "gpt-4o-mini-2024-07-18",
        "batch": False,
        "service_tier": None,
    }
    r.update(over)
    return r


def oa_page(*buckets: tuple[int, int, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "object": "page",
        "has_more": False,
        "next_page": None,
        "data": [
            {"object": "bucket", "start_time": s, "end_time": e, "results": rs}
            for s, e, rs in buckets
        ],
    }


def an_result(**over: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "api_key_id": "apikey_01AbCdEfGhJkMnPqRsTuVw",
        "workspace_id": "wrkspc_01ZyXwVuTsRqPoNmLkJhGf",
        "model": "claude-sonnet-4-20250514",
        "service_tier": "standard",
        "context_window": "0-200k",
        "uncached_input_tokens": 182000,
        "cache_read_input_tokens": 940000,
        "cache_creation": {"ephemeral_5m_input_tokens": 60000, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 71000,
        "server_tool_use": {"web_search_requests": 12},
    }
    r.update(over)
    return r


def an_page(*buckets: tuple[str, str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "has_more": False,
        "next_page": None,
        "data": [{"starting_at": s, "ending_at": e, "results": rs} for s, e, rs in buckets],
    }


def an_cost(**over: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "amount": "1234.5",
        "currency": "USD",
        "workspace_id": "wrkspc_01ZyXwVuTsRqPoNmLkJhGf",
        "description": "Claude Sonnet 4 Usage - Input Tokens",
        "cost_type": "tokens",
        "context_window": "0-200k",
        "model": "claude-sonnet-4-20250514",
        "service_tier": "standard",
        "token_type": "uncached_input_tokens",
    }
    r.update(over)
    return r


def oa_cost(**over: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "object": "organization.costs.result",
        "amount": {"value": 0.06, "currency": "usd"},
        "line_item": "gpt-4o-mini, input",
        "project_id": "proj_Acme01",
    }
    r.update(over)
    return r


def dump(*pages: Any) -> str:
    return "".join(json.dumps(p) + "\n" for p in pages)


def usage_rows(case: Any) -> list[dict[str, Any]]:
    return rows(case, "SELECT * FROM usage ORDER BY source_id, line_no, bucket_start, model")


def t(hour: int = 8, day: int = 1) -> dt.datetime:
    return dt.datetime(2026, 1, day, hour, tzinfo=UTC)


def test_openai_usage_maps_every_column(case, tmp_path):
    page = oa_page((H0, H0 + 3600, [oa_result()]))
    result = load(case, tmp_path, json.dumps(page, indent=2), name="usage.json")
    assert (result.format, result.rows_read, result.rows_loaded) == ("openai-usage", 1, 1)
    (row,) = usage_rows(case)
    extra = json.loads(row.pop("extra"))
    assert row == {
        "source_id": result.source_id,
        "line_no": 1,
        "source_format": "openai_usage",
        "provider": "openai",
        "bucket_start": t(8),
        "bucket_end": t(9),
        "bucket_width": "1h",
        "org_id": None,
        "project_id": "proj_Acme01",
        "api_key_id": "key_9xYpQ2",
        "user_id": None,
        "model": "gpt-4o-mini-2024-07-18",
        "model_family": "gpt-4o-mini",
        "operation": "completions",
        "service_tier": None,
        "batch": False,
        "requests": 1730,
        "input_tokens": 845000,
        "input_uncached_tokens": 235000,
        "cached_input_tokens": 610000,
        "cache_creation_input_tokens": None,
        "output_tokens": 212000,
        "other_units": None,
        "other_unit_name": None,
        "cost": None,
        "currency": None,
        "line_item": None,
        "dedupe_key": "openai|openai_usage|completions|2026-01-01T08:00:00Z|2026-01-01T09:00:00Z"
        "|proj_Acme01||key_9xYpQ2|gpt-4o-mini-2024-07-18|false||",
    }
    assert extra == {"input_audio_tokens": 0, "output_audio_tokens": 0}


def test_openai_usage_types_widths_and_newer_fields(case, tmp_path):
    day = 86400
    page = oa_page(
        (
            H0,
            H0 + 60,
            [
                oa_result(
                    model="gpt-4o-2024-08-06",
                    input_uncached_tokens=200000,
                    input_cache_write_tokens=30000,
                    input_cache_write_12h_tokens=5000,
                    input_quantum_tokens=7,  # a field this version does not know
                )
            ],
        ),
        (
            H0,
            H0 + day,
            [
                {"object": "organization.usage.images.result", "images": 4,
                 "num_model_requests": 2, "source": "image.generation", "size": "1024x1024",
                 "project_id": None, "model": "dall-e-3"},
                {"object": "organization.usage.images.result", "images": 1,
                 "num_model_requests": 1, "source": "image.edit", "size": "1024x1024",
                 "project_id": None, "model": "dall-e-3"},
                {"object": "organization.usage.audio_speeches.result", "characters": 1200,
                 "num_model_requests": 3},
                {"object": "organization.usage.audio_transcriptions.result", "seconds": 95,
                 "num_model_requests": 1},
                {"object": "organization.usage.vector_stores.result", "usage_bytes": 4096,
                 "project_id": "proj_Acme01"},
                {"object": "organization.usage.code_interpreter_sessions.result",
                 "num_sessions": 2, "project_id": "proj_Acme01"},
                {"object": "organization.usage.embeddings.result", "input_tokens": 300,
                 "num_model_requests": 5},
                {"object": "organization.usage.moderations.result", "input_tokens": 40,
                 "num_model_requests": 2},
            ],
        ),
    )  # fmt: skip
    result = load(case, tmp_path, dump(page), fmt="openai-usage")
    assert result.rows_loaded == 9 and result.lines_blank == 0
    got = rows(
        case,
        "SELECT operation, bucket_width, other_units, other_unit_name, requests, input_tokens,"
        " input_uncached_tokens, cache_creation_input_tokens, model_family, extra FROM usage"
        " ORDER BY bucket_width DESC, operation, other_units",
    )
    assert got[0] == {
        "operation": "completions",
        "bucket_width": "1m",
        "other_units": None,
        "other_unit_name": None,
        "requests": 1730,
        "input_tokens": 845000,
        "input_uncached_tokens": 200000,  # the field wins over input - cached
        "cache_creation_input_tokens": 35000,
        "model_family": "gpt-4o",
        "extra": json.dumps(
            {
                "input_audio_tokens": 0,
                "output_audio_tokens": 0,
                "input_cache_write_12h_tokens": 5000,
                "input_quantum_tokens": 7,
            },
            separators=(",", ":"),
        ),
    }
    units = {(r["operation"], r["other_unit_name"], r["other_units"]) for r in got[1:]}
    assert units == {
        ("audio_speeches", "characters", 1200.0),
        ("audio_transcriptions", "seconds", 95.0),
        ("code_interpreter_sessions", "sessions", 2.0),
        ("embeddings", None, None),
        ("images", "images", 1.0),  # image.edit and image.generation stay apart
        ("images", "images", 4.0),
        ("moderations", None, None),
        ("vector_stores", "bytes", 4096.0),
    }
    assert {r["bucket_width"] for r in got[1:]} == {"1d"}


def test_all_grouping_fields_null_loads(case, tmp_path):
    bare = {
        "object": "organization.usage.completions.result",
        "input_tokens": 10,
        "output_tokens": 5,
        "num_model_requests": 1,
        "project_id": None,
        "user_id": None,
        "api_key_id": None,
        "model": None,
        "batch": None,
        "service_tier": None,
    }
    load(case, tmp_path, dump(oa_page((H0, H0 + 3600, [bare]))), fmt="openai-usage")
    (row,) = usage_rows(case)
    assert (row["input_tokens"], row["output_tokens"], row["model"], row["model_family"]) == (
        10,
        5,
        None,
        None,
    )
    assert row["extra"] is None
    assert row["dedupe_key"].endswith("|2026-01-01T09:00:00Z|||||||")


def test_openai_costs_maps_every_column(case, tmp_path):
    page = oa_page(
        (
            H0,
            H0 + 86400,
            [
                oa_cost(),
                oa_cost(amount={"value": "1.5", "currency": "usd"}, line_item="gpt-4o, output"),
            ],
        )
    )
    page["data"][0]["results"][0]["quantity"] = 12.0
    result = load(case, tmp_path, dump(page))
    assert result.format == "openai-costs"
    first, second = usage_rows(case)
    extra = first.pop("extra")
    assert first == {
        "source_id": result.source_id,
        "line_no": 1,
        "source_format": "openai_costs",
        "provider": "openai",
        "bucket_start": t(8),
        "bucket_end": t(8, day=2),
        "bucket_width": "1d",
        "org_id": None,
        "project_id": "proj_Acme01",
        "api_key_id": None,
        "user_id": None,
        "model": None,
        "model_family": None,
        "operation": None,
        "service_tier": None,
        "batch": None,
        "requests": None,
        "input_tokens": None,
        "input_uncached_tokens": None,
        "cached_input_tokens": None,
        "cache_creation_input_tokens": None,
        "output_tokens": None,
        "other_units": 12.0,
        "other_unit_name": "quantity",
        "cost": 0.06,
        "currency": "USD",
        "line_item": "gpt-4o-mini, input",
        "dedupe_key": "openai|openai_costs||2026-01-01T08:00:00Z|2026-01-02T08:00:00Z"
        "|proj_Acme01||||||gpt-4o-mini, input",
    }
    assert extra is None
    assert (second["cost"], second["currency"]) == (1.5, "USD")  # amount.value as a string


def test_anthropic_usage_maps_every_column(case, tmp_path):
    page = an_page(("2026-01-01T08:00:00Z", "2026-01-01T09:00:00Z", [an_result()]))
    result = load(case, tmp_path, json.dumps(page, indent=1), name="anthropic.json")
    assert result.format == "anthropic-usage"
    (row,) = usage_rows(case)
    extra = json.loads(row.pop("extra"))
    assert row == {
        "source_id": result.source_id,
        "line_no": 1,
        "source_format": "anthropic_usage",
        "provider": "anthropic",
        "bucket_start": t(8),
        "bucket_end": t(9),
        "bucket_width": "1h",
        "org_id": None,
        "project_id": "wrkspc_01ZyXwVuTsRqPoNmLkJhGf",
        "api_key_id": "apikey_01AbCdEfGhJkMnPqRsTuVw",
        "user_id": None,
        "model": "claude-sonnet-4-20250514",
        "model_family": "claude-sonnet-4",
        "operation": "messages",
        "service_tier": "standard",
        "batch": False,
        "requests": None,
        "input_tokens": 182000 + 940000 + 60000,
        "input_uncached_tokens": 182000,
        "cached_input_tokens": 940000,
        "cache_creation_input_tokens": 60000,
        "output_tokens": 71000,
        "other_units": 12.0,
        "other_unit_name": "web_searches",
        "cost": None,
        "currency": None,
        "line_item": None,
        "dedupe_key": "anthropic|anthropic_usage|messages|2026-01-01T08:00:00Z"
        "|2026-01-01T09:00:00Z|wrkspc_01ZyXwVuTsRqPoNmLkJhGf||apikey_01AbCdEfGhJkMnPqRsTuVw"
        "|claude-sonnet-4-20250514|false|standard||context_window=0-200k",
    }
    assert extra == {
        "context_window": "0-200k",
        "cache_creation": {"ephemeral_5m_input_tokens": 60000, "ephemeral_1h_input_tokens": 0},
    }


@pytest.mark.parametrize(
    ("cache_creation", "writes"),
    [
        ({"": None}, None),  # found by the fuzz test: a DuckDB error escaped the file
        ({"": 5, 'a"b': 7, "ephemeral_5m_input_tokens": 60000}, 60012),
        ({"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": "20"}, 120),
        ({"nested": {"tokens": 3}}, None),
        (5, None),  # not an object: no cache writes read from it
    ],
)
def test_anthropic_cache_writes_under_any_key(case, tmp_path, cache_creation, writes):
    # cache_creation's keys are not for a JSON path to name: an empty one or one with a quote
    # neither stops the file nor drops its tokens
    result_ = an_result(cache_creation=cache_creation)
    page = an_page(("2026-01-01T08:00:00Z", "2026-01-01T09:00:00Z", [result_]))
    result = load(case, tmp_path, dump(page), name="anthropic.jsonl")
    assert (result.status, result.rows_loaded, result.reconciles) == ("loaded", 1, True)
    (row,) = usage_rows(case)
    assert row["cache_creation_input_tokens"] == writes
    assert row["input_tokens"] == 182000 + 940000 + (writes or 0)


def test_anthropic_cost_cents_to_dollars_and_every_column(case, tmp_path):
    page = an_page(("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", [an_cost()]))
    result = load(case, tmp_path, dump(page))
    assert result.format == "anthropic-cost"
    (row,) = usage_rows(case)
    extra = json.loads(row.pop("extra"))
    cost = row.pop("cost")
    assert cost == pytest.approx(12.345)
    assert row == {
        "source_id": result.source_id,
        "line_no": 1,
        "source_format": "anthropic_cost",
        "provider": "anthropic",
        "bucket_start": t(0),
        "bucket_end": t(0, day=2),
        "bucket_width": "1d",
        "org_id": None,
        "project_id": "wrkspc_01ZyXwVuTsRqPoNmLkJhGf",
        "api_key_id": None,
        "user_id": None,
        "model": "claude-sonnet-4-20250514",
        "model_family": "claude-sonnet-4",
        "operation": "tokens",
        "service_tier": "standard",
        "batch": None,
        "requests": None,
        "input_tokens": None,
        "input_uncached_tokens": None,
        "cached_input_tokens": None,
        "cache_creation_input_tokens": None,
        "output_tokens": None,
        "other_units": None,
        "other_unit_name": None,
        "currency": "USD",
        "line_item": "Claude Sonnet 4 Usage - Input Tokens",
        "dedupe_key": "anthropic|anthropic_cost|tokens|2026-01-01T00:00:00Z"
        "|2026-01-02T00:00:00Z|wrkspc_01ZyXwVuTsRqPoNmLkJhGf|||claude-sonnet-4-20250514||standard"
        "|Claude Sonnet 4 Usage - Input Tokens"
        "|context_window=0-200k,token_type=uncached_input_tokens",
    }
    assert extra == {"context_window": "0-200k", "token_type": "uncached_input_tokens"}


def test_same_page_twice_is_not_counted_twice(case, tmp_path):
    page = oa_page((H0, H0 + 3600, [oa_result(), oa_result(model="gpt-4o-2024-08-06")]))
    first = load(case, tmp_path, dump(page), fmt="openai-usage", name="a.jsonl")
    assert (first.rows_loaded, first.lines_blank, first.warnings) == (2, 0, [])
    # the same page again, in another file (pretty-printed, so not the same bytes)
    again = load(case, tmp_path, json.dumps(page, indent=2), fmt="openai-usage", name="b.json")
    assert (again.rows_read, again.rows_loaded, again.lines_blank) == (0, 0, 2)
    assert again.warnings == [
        f"{tmp_path / 'b.json'}: 2 usage results already in the case (overlapping export):"
        " not counted twice"
    ]
    # and twice within one file
    twice = load(case, tmp_path, dump(page, page), fmt="openai-usage", name="c.jsonl")
    assert (twice.rows_loaded, twice.lines_blank) == (0, 4)
    assert case.execute("SELECT count(*), sum(input_tokens) FROM usage").fetchall() == [
        (2, 2 * 845000)
    ]
    (blank,) = case.execute("SELECT lines_blank FROM sources WHERE path LIKE '%b.json'").fetchall()
    assert blank == (2,)


def test_overlapping_windows_count_each_bucket_once(case, tmp_path):
    def hours(first: int, last: int, tokens: int = 100) -> dict[str, Any]:
        return oa_page(
            *[
                (H0 + h * 3600, H0 + (h + 1) * 3600, [oa_result(input_tokens=tokens)])
                for h in range(first, last)
            ]
        )

    load(case, tmp_path, dump(hours(0, 6)), fmt="openai-usage", name="mon.jsonl")
    result = load(case, tmp_path, dump(hours(4, 10)), fmt="openai-usage", name="tue.jsonl")
    assert (result.rows_loaded, result.lines_blank) == (4, 2)
    assert "2 usage results already in the case (overlapping export)" in result.warnings[0]
    # a later pull of the same hours with different numbers: first copy wins, and we say so
    changed = load(case, tmp_path, dump(hours(9, 11, 999)), fmt="openai-usage", name="w.jsonl")
    assert (changed.rows_loaded, changed.lines_blank) == (1, 1)
    assert "1 of the skipped duplicates have other counts" in changed.warnings[-1]
    assert case.execute("SELECT count(*), sum(input_tokens) FROM usage").fetchall() == [
        (11, 10 * 100 + 999)
    ]


def test_finer_groupings_are_not_duplicates(case, tmp_path):
    page = an_page(
        (
            "2026-01-01T08:00:00Z",
            "2026-01-01T09:00:00Z",
            [an_result(context_window="0-200k"), an_result(context_window="200k-1M")],
        )
    )
    result = load(case, tmp_path, dump(page), fmt="anthropic-usage")
    assert (result.rows_loaded, result.lines_blank) == (2, 0)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    buckets=st.lists(
        st.lists(
            st.tuples(
                st.integers(0, 10**9),
                st.integers(0, 10**9),
                st.sampled_from(["gpt-4o-2024-08-06", "gpt-4o-mini", None]),
            ),
            max_size=4,
        ),
        max_size=6,
    ),
    width=st.sampled_from([60, 3600, 86400]),
)
def test_token_sums_match_the_export(tmp_path_factory, buckets, width):
    folder = tmp_path_factory.mktemp("prop")
    con = db.connect(folder / "case.duckdb")
    try:
        page = oa_page(
            *[
                (
                    H0 + i * width,
                    H0 + (i + 1) * width,
                    [
                        oa_result(input_tokens=i_t, input_cached_tokens=0, output_tokens=o_t,
                                  model=m, project_id=f"proj_{j}")
                        for j, (i_t, o_t, m) in enumerate(results)
                    ],
                )
                for i, results in enumerate(buckets)
            ]
        )  # fmt: skip
        path = folder / "page.json"
        path.write_text(json.dumps(page))
        result = ingest_file(con, path, fmt="openai-usage")
        n = sum(len(b) for b in buckets)
        assert (result.rows_loaded, result.rows_quarantined, result.lines_blank) == (n, 0, 0)
        expected = (
            sum(r[0] for b in buckets for r in b),
            sum(r[1] for b in buckets for r in b),
        )
        got = con.execute(
            "SELECT coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0) FROM usage"
        ).fetchall()[0]
        assert got == expected
    finally:
        con.close()


def test_bad_input_is_quarantined_with_reason(case, tmp_path):
    good = oa_page((H0, H0 + 3600, [oa_result()]))
    broken = {
        "object": "page",
        "data": [
            {"start_time": None, "end_time": H0, "results": [oa_result()]},
            {"start_time": H0, "end_time": H0 + 60, "results": [42, oa_result(output_tokens="x")]},
            "not a bucket",
            {"start_time": H0, "end_time": H0 + 60, "results": "nope"},
        ],
    }
    text = dump(good, broken) + "{this is not json\n" + json.dumps([1, 2]) + "\n"
    text += json.dumps({"object": "page"}) + "\n"
    result = load(case, tmp_path, text, fmt="openai-usage", options=Options(max_quarantine_share=1))
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (10, 1, 9)
    got = case.execute("SELECT line_no, error FROM quarantine ORDER BY line_no, error").fetchall()
    assert got == [
        (2, "bucket 1 result 1: bucket has no start_time"),
        (2, "bucket 2 result 1: result is not an object"),
        (2, "bucket 2 result 2: output_tokens is not a number: 1 characters shaped a"),
        (2, "bucket 3: bucket is not an object"),
        (2, "bucket 4: bucket has no results list"),
        (3, "not JSON: Expecting property name enclosed in double quotes"),
        (4, "page is not an object but int"),
        (4, "page is not an object but int"),
        (5, "page has no data list"),
    ]
    raw = case.execute("SELECT raw FROM quarantine WHERE error LIKE '%not a number%'").fetchall()
    assert '"output_tokens":"x"' in raw[0][0]


def test_gzip_and_array_of_pages(case, tmp_path):
    pages = [
        an_page(("2026-01-01T08:00:00Z", "2026-01-01T09:00:00Z", [an_result()])),
        an_page(("2026-01-01T09:00:00Z", "2026-01-01T10:00:00Z", [an_result(output_tokens=5)])),
    ]
    path = tmp_path / "anthropic-usage.json.gz"
    path.write_bytes(gzip.compress(json.dumps(pages, indent=2).encode()))
    assert detect_format(path, head_lines(path)) == "anthropic-usage"
    result = ingest_file(case, path)
    assert (result.status, result.rows_loaded, result.rows_quarantined) == ("loaded", 2, 0)
    assert case.execute("SELECT sum(output_tokens), min(line_no) FROM usage").fetchall() == [
        (71005, 2)
    ]


@pytest.mark.parametrize(
    ("page", "name"),
    [
        (oa_page((H0, H0 + 60, [oa_result()])), "openai-usage"),
        (oa_page((H0, H0 + 86400, [oa_cost()])), "openai-costs"),
        (
            an_page(("2026-01-01T08:00:00Z", "2026-01-01T09:00:00Z", [an_result()])),
            "anthropic-usage",
        ),
        (an_page(("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", [an_cost()])), "anthropic-cost"),
    ],
)
def test_detected(tmp_path: Path, page: dict[str, Any], name: str) -> None:
    path = tmp_path / "page.json"
    path.write_text(json.dumps(page, indent=2))
    assert detect_format(path, head_lines(path)) == name
