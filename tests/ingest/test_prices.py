"""Model prices: the shipped table, user prices files, est_cost_usd and the request_costs view."""

from __future__ import annotations

import csv
import datetime as dt
import json

import pytest

from forensics.ingest.base import Options
from forensics.ingest.pipeline import ingest_file
from forensics.resources import data_file
from tests.conftest import load, quarantine_reasons, rows
from tests.ingest.test_kong import kong_record
from tests.keys import KEYS

# The documented Kong example: 1210 prompt tokens of which 1024 cached, 388 completion tokens.
PROMPT, CACHED, COMPLETION = 1210, 1024, 388


def at(day: str) -> int:
    """Epoch milliseconds of noon UTC on `day` (Kong's started_at)."""
    return int(dt.datetime.fromisoformat(f"{day}T12:00:00+00:00").timestamp() * 1000)


def kong(
    day: str = "2026-01-01",
    model: str = "gpt-4o",
    response_model: str | None = "gpt-4o-2024-08-06",
    provider: str | None = "openai",
    tokens: bool = True,
) -> dict[str, object]:
    return kong_record(
        **{
            "started_at": at(day),
            "ai.proxy.meta.provider_name": provider,
            "ai.proxy.meta.request_model": model,
            "ai.proxy.meta.response_model": response_model,
            "ai.proxy.payload": None,  # the bodies would name the example's models
            "ai.proxy.usage": None if not tokens else kong_record()["ai"]["proxy"]["usage"],  # type: ignore[index]
        }
    )


def jsonl(*records: dict[str, object]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def shipped(provider: str, pattern: str, effective_from: str) -> tuple[float, float, float]:
    """(input, cached, output) USD per 1M tokens of one row of the shipped prices.csv."""
    with data_file("prices.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            key = (row["provider"], row["model_pattern"], row["effective_from"])
            if key == (provider, pattern, effective_from):
                i, o = float(row["input_per_mtok"]), float(row["output_per_mtok"])
                c = float(row["cached_input_per_mtok"]) if row["cached_input_per_mtok"] else i
                return i, c, o
    raise KeyError((provider, pattern, effective_from))


def cost(price: tuple[float, float, float]) -> float:
    i, c, o = price
    return ((PROMPT - CACHED) * i + CACHED * c + COMPLETION * o) / 1e6


def est(con, order: str = "source_id, line_no") -> list[float | None]:
    return [
        r[0] for r in con.execute(f"SELECT est_cost_usd FROM requests ORDER BY {order}").fetchall()
    ]


def test_kong_request_gets_the_shipped_price_of_its_model_at_its_date(case, tmp_path):
    load(case, tmp_path, jsonl(kong_record()), name="kong.jsonl")
    price = shipped("openai", "gpt-4o-2024-08-06", "2024-10-01")
    assert price == (2.50, 1.25, 10.00)
    # (186 uncached x 2.50 + 1024 cached x 1.25 + 388 output x 10.00) / 1e6
    assert est(case) == [pytest.approx(0.005625)]
    assert est(case) == [pytest.approx(cost(price))]


def test_the_price_in_effect_at_the_request_time_is_used(case, tmp_path):
    records = [
        # the gpt-4o alias: 5.00/15.00 (no cache discount) until it moved to the 08-06 snapshot
        kong("2024-09-01", response_model="gpt-4o"),
        kong("2024-10-03", response_model="gpt-4o"),
        # the 2024-08-06 snapshot cost 2.50/10.00 from its release; cached input half from 10-01
        kong("2024-09-01"),
        # the 2024-05-13 snapshot kept its price after the alias moved on
        kong("2025-03-01", response_model="gpt-4o-2024-05-13"),
        # o3 was cut from 10.00/40.00 to 2.00/8.00 on 2025-06-10
        kong("2025-06-09", model="o3", response_model="o3-2025-04-16"),
        kong("2025-06-10", model="o3", response_model="o3-2025-04-16"),
        # before any gpt-4o price: none
        kong("2024-01-01", response_model="gpt-4o"),
        # a LIKE pattern (gpt-4-%preview)
        kong("2024-02-01", model="gpt-4-1106-preview", response_model="gpt-4-1106-preview"),
    ]
    load(case, tmp_path, jsonl(*records), name="kong.jsonl")
    assert est(case) == [
        pytest.approx(cost((5.00, 5.00, 15.00))),
        pytest.approx(cost((2.50, 1.25, 10.00))),
        pytest.approx(cost((2.50, 2.50, 10.00))),
        pytest.approx(cost((5.00, 5.00, 15.00))),
        pytest.approx(cost((10.00, 2.50, 40.00))),
        pytest.approx(cost((2.00, 0.50, 8.00))),
        None,
        pytest.approx(cost((10.00, 10.00, 30.00))),
    ]
    assert cost(shipped("openai", "gpt-4o", "2024-05-13")) == pytest.approx(est(case)[0])
    assert cost(shipped("openai", "gpt-4o", "2024-10-02")) == pytest.approx(est(case)[1])


def test_provider_matching_and_unpriced_requests(case, tmp_path):
    records = [
        kong(model="my-own-model", response_model=None),  # unknown model
        kong(tokens=False),  # no token counts
        kong(provider="azure"),  # a reseller: the maker's (openai) price
        kong(provider=None),  # no provider: by model alone
        kong(provider="cohere"),  # another provider's gpt-4o: not priced
        kong(
            provider="anthropic", model="claude-3-5-sonnet-20241022", response_model=None
        ),  # family from the requested model
    ]
    load(case, tmp_path, jsonl(*records), name="kong.jsonl")
    gpt4o = pytest.approx(cost((2.50, 1.25, 10.00)))
    assert est(case) == [None, None, gpt4o, gpt4o, None, pytest.approx(cost((3.00, 0.30, 15.00)))]


def test_user_prices_override_shipped_rows_and_reprice_the_case(case, tmp_path):
    load(
        case,
        tmp_path,
        jsonl(kong(), kong(model="acme-chat-v2", response_model=None), kong("2024-09-01")),
        name="kong.jsonl",
    )
    assert est(case) == [pytest.approx(cost((2.50, 1.25, 10.00))), None, pytest.approx(0.006905)]
    shipped_rows = case.execute("SELECT count(*) FROM prices").fetchall()[0][0]
    prices = (
        "provider,model_pattern,input_per_mtok,cached_input_per_mtok,output_per_mtok,"
        "effective_from\n"
        "OpenAI,gpt-4o-2024-08-06,3.00,1.00,12.00,2024-10-01\n"  # same key: replaces
        "openai,acme-%,1.00,,2.00,\n"  # new LIKE pattern, in effect since 1970
        "openai,gpt-4o%,100,,100,2020-01-01\n"  # a LIKE pattern loses to the exact snapshot
    )
    result = load(case, tmp_path, prices, fmt="prices", name="prices.csv")
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (3, 3, 0)
    assert case.execute("SELECT count(*) FROM prices").fetchall()[0][0] == shipped_rows + 2
    sid = result.source_id
    assert rows(
        case,
        "SELECT model_pattern, input_per_mtok, cached_input_per_mtok, output_per_mtok,"
        " effective_from, origin FROM prices WHERE origin <> 'shipped' ORDER BY model_pattern",
    ) == [
        {
            "model_pattern": "acme-%",
            "input_per_mtok": 1.0,
            "cached_input_per_mtok": None,
            "output_per_mtok": 2.0,
            "effective_from": dt.date(1970, 1, 1),
            "origin": f"source {sid}",
        },
        {
            "model_pattern": "gpt-4o%",
            "input_per_mtok": 100.0,
            "cached_input_per_mtok": None,
            "output_per_mtok": 100.0,
            "effective_from": dt.date(2020, 1, 1),
            "origin": f"source {sid}",
        },
        {
            "model_pattern": "gpt-4o-2024-08-06",
            "input_per_mtok": 3.0,
            "cached_input_per_mtok": 1.0,
            "output_per_mtok": 12.0,
            "effective_from": dt.date(2024, 10, 1),
            "origin": f"source {sid}",
        },
    ]
    # Requests already in the case are repriced; the 2024-09-01 one keeps its shipped price.
    repriced = [
        pytest.approx(cost((3.00, 1.00, 12.00))),
        pytest.approx(cost((1.00, 1.00, 2.00))),
        pytest.approx(0.006905),
    ]
    assert est(case) == repriced
    # and new requests get the user's price too
    load(case, tmp_path, jsonl(kong("2026-02-01")), name="later.jsonl")
    assert est(case) == [*repriced, pytest.approx(cost((3.00, 1.00, 12.00)))]


def test_bad_prices_rows_are_quarantined_with_line_and_reason(case, tmp_path):
    prices = (
        "provider,model_pattern,input_per_mtok,cached_input_per_mtok,output_per_mtok,"
        "effective_from\n"
        "openai,gpt-4o,-1,,10,2025-01-01\n"
        "openai,gpt-4o,abc,,10,2025-01-01\n"
        "openai,,1,,10,2025-01-01\n"
        "open ai!,gpt-4o,1,,10,2025-01-01\n"
        "openai,gpt-4o,1,x,10,2025-01-01\n"
        "openai,gpt-4o,1,,,2025-01-01\n"
        "openai,gpt-4o,1,,10,01/02/2025\n"
        "openai,gpt-4o,1\n"
        "\n"
        "openai,gpt-4o,1,0.5,10,2025-01-01\n"
        "openai,gpt-4o,2,1,20,2025-01-01\n"
    )
    path = tmp_path / "prices.csv"
    path.write_text(prices, encoding="utf-8")
    result = ingest_file(case, path, fmt="prices", options=Options(max_quarantine_share=1))
    assert result.status == "loaded" and result.reconciles
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (10, 2, 8)
    assert result.lines_blank == 1
    assert result.warnings == [
        f"{path}:12: repeats the provider, model_pattern and effective_from of an earlier line,"
        " which it replaces"
    ]
    assert quarantine_reasons(case) == [
        (2, "input_per_mtok is negative: 2 characters shaped -9"),
        (3, "input_per_mtok is not a number: 3 characters shaped aaa"),
        (4, "model_pattern is empty"),
        (
            5,
            "provider is not a provider name (like openai, anthropic): 8 characters shaped aaaa aa!",
        ),
        (6, "cached_input_per_mtok is not a number: 1 characters shaped a"),
        (7, "output_per_mtok is empty"),
        (8, "effective_from is not a date (YYYY-MM-DD): 10 characters shaped 99/99/9999"),
        (9, "expected 5 to 6 fields, found 3"),
    ]
    # the last of two rows with the same key wins
    assert rows(
        case,
        "SELECT input_per_mtok, cached_input_per_mtok, output_per_mtok FROM prices"
        " WHERE model_pattern = 'gpt-4o' AND effective_from = DATE '2025-01-01'",
    ) == [{"input_per_mtok": 2.0, "cached_input_per_mtok": 1.0, "output_per_mtok": 20.0}]


def test_request_costs_view_exposes_the_difference_to_the_logged_cost(case, tmp_path):
    load(
        case,
        tmp_path,
        jsonl(kong_record(), kong(model="my-own-model", response_model=None)),
        name="kong.jsonl",
    )
    got = rows(case, "SELECT * FROM request_costs ORDER BY ts, est_cost_usd NULLS LAST")
    assert [list(r) for r in got] == [
        [
            "request_id",
            "ts",
            "tenant_id",
            "credential_id",
            "provider",
            "model",
            "log_cost",
            "est_cost_usd",
            "cost_diff_usd",
        ]
    ] * 2
    first, unknown = got
    assert (first["provider"], first["model"], first["log_cost"]) == ("openai", "gpt-4o", 0.00691)
    assert first["tenant_id"] == "tenant-acme"
    assert first["est_cost_usd"] == pytest.approx(0.005625)
    assert first["cost_diff_usd"] == pytest.approx(0.00691 - 0.005625)
    assert (unknown["log_cost"], unknown["est_cost_usd"], unknown["cost_diff_usd"]) == (
        0.00691,
        None,
        None,
    )


def test_known_keys_load_and_raw_secrets_are_refused(case, tmp_path):
    text = (
        "provider,api_key_id,label\n"
        "OpenAI,key_abc123,gateway production\n"
        "anthropic,apikey_01XYZ\n"
        f"openai,{KEYS['openai-project']},pasted the key itself\n"
        ",key_def456,no provider\n"
        "openai,,no id\n"
    )
    result = load(
        case,
        tmp_path,
        text,
        fmt="known-keys",
        name="keys.csv",
        options=Options(max_quarantine_share=1),
    )
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (5, 2, 3)
    assert rows(case, "SELECT * FROM known_keys ORDER BY line_no") == [
        {
            "provider": "openai",
            "api_key_id": "key_abc123",
            "label": "gateway production",
            "source_id": result.source_id,
            "line_no": 2,
        },
        {
            "provider": "anthropic",
            "api_key_id": "apikey_01XYZ",
            "label": None,
            "source_id": result.source_id,
            "line_no": 3,
        },
    ]
    assert quarantine_reasons(case) == [
        (4, "api_key_id is a secret key, not the provider's key id"),
        (5, "provider is empty"),
        (6, "api_key_id is empty"),
    ]
    raw = case.execute("SELECT raw FROM quarantine WHERE line_no = 4").fetchall()[0][0]
    assert KEYS["openai-project"] not in raw
