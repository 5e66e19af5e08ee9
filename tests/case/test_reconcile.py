"""Provider usage against gateway traffic (usage_vs_gateway) and the `usage` command."""

from __future__ import annotations

import json
from pathlib import Path

import click
import duckdb
import pytest
from click.testing import CliRunner

from forensics.case import db
from forensics.cli import ForensicsGroup
from forensics.cli.usage import parse_by, usage
from forensics.errors import UsageError
from tests.conftest import rows

H10 = "2026-03-01 10:00:00+00"
H11 = "2026-03-01 11:00:00+00"
H12 = "2026-03-01 12:00:00+00"
H13 = "2026-03-01 13:00:00+00"


def gateway(con, ts, model, tin, tout, provider="openai", n=1):
    """n gateway requests at ts, model family from the case's own macro (as ingest does)."""
    for i in range(n):
        con.execute(
            "INSERT INTO requests (ts, provider, model, model_family, input_tokens,"
            " output_tokens, credential_id, tenant_id, est_cost_usd)"
            " VALUES ($ts::TIMESTAMPTZ + to_seconds($i), $p, $m, model_family_of($m), $tin,"
            " $tout, 'cred-1', 'tenant-a', 0.01)",
            {"ts": ts, "i": i, "p": provider, "m": model, "tin": tin, "tout": tout},
        )


def provider_row(
    con,
    start,
    end,
    model,
    key,
    tin,
    tout,
    *,
    provider="openai",
    fmt="openai_usage",
    width="1h",
    project="proj_1",
    requests=1,
    cost=None,
):
    con.execute(
        "INSERT INTO usage (source_format, provider, bucket_start, bucket_end, bucket_width,"
        " project_id, api_key_id, model, model_family, requests, input_tokens, output_tokens,"
        " cost, currency)"
        " VALUES ($f, $p, $s, $e, $w, $proj, $k, $m, model_family_of($m), $r, $tin, $tout,"
        " $c, CASE WHEN $c IS NULL THEN NULL ELSE 'USD' END)",
        {
            "f": fmt,
            "p": provider,
            "s": start,
            "e": end,
            "w": width,
            "proj": project,
            "k": key,
            "m": model,
            "r": requests,
            "tin": tin,
            "tout": tout,
            "c": cost,
        },
    )


def view(con, where="true", params=None):
    return rows(con, f"SELECT * FROM usage_vs_gateway WHERE {where} ORDER BY bucket_start", params)


@pytest.fixture
def case_path(tmp_path: Path) -> Path:
    return tmp_path / "c.duckdb"


@pytest.fixture
def con(case_path: Path):
    c = db.connect(case_path)
    yield c
    c.close()


def test_known_key_matches_gateway_and_other_key_is_unexplained(con):
    con.execute(
        "INSERT INTO known_keys (provider, api_key_id, label) VALUES ('openai', 'key_gw', 'gateway')"
    )
    gateway(con, "2026-03-01 10:05:00+00", "gpt-4o", 1000, 200, n=10)  # 12,000 tokens
    # the provider reports the gateway's key 2 % above the gateway (dated snapshot name)
    provider_row(con, H10, H11, "gpt-4o-2024-08-06", "key_gw", 10_200, 2040, requests=10)
    # and a key the gateway never used, in the same hour and in the next
    provider_row(con, H10, H11, "gpt-4o-2024-08-06", "key_leak", 50_000, 9000, requests=40)
    provider_row(con, H11, H12, "gpt-4o-2024-11-20", "key_leak", 7000, 1000, requests=5)

    first, second = view(con)
    assert first["model_family"] == "gpt-4o"
    assert first["bucket_width"] == "1h"
    assert first["gateway_requests"] == 10
    assert first["gateway_tokens"] == 12_000
    assert first["known_key_tokens"] == 12_240
    assert abs(first["known_key_tokens"] - first["gateway_tokens"]) <= 0.03 * 12_000
    assert first["unknown_key_tokens"] == first["unexplained_tokens"] == 59_000
    assert first["provider_tokens"] == 12_240 + 59_000
    assert first["provider_requests"] == 50
    assert first["token_diff"] == 12_240 + 59_000 - 12_000
    assert first["token_ratio"] == pytest.approx((12_240 + 59_000) / 12_000)
    assert first["api_key_ids"] == ["key_gw", "key_leak"]
    assert first["unknown_api_key_ids"] == ["key_leak"]
    assert first["project_ids"] == ["proj_1"]
    assert first["known_keys_listed"] is True
    assert first["gateway_est_cost_usd"] == pytest.approx(0.10)

    # the hour with no gateway traffic: zeros on the gateway side, no ratio
    assert second["bucket_start"].isoformat() == "2026-03-01T11:00:00+00:00"
    assert second["gateway_requests"] == second["gateway_tokens"] == 0
    assert second["gateway_input_tokens"] == second["gateway_output_tokens"] == 0
    assert second["token_diff"] == 8000
    assert second["token_ratio"] is None
    assert second["unexplained_tokens"] == 8000
    assert second["known_key_tokens"] == 0


def test_families_are_compared_not_model_names(con):
    gateway(
        con, "2026-03-01 10:30:00+00", "claude-3-5-sonnet-latest", 300, 30, provider="anthropic"
    )
    gateway(con, "2026-03-01 10:31:00+00", "claude-3-5-haiku-20241022", 5, 5, provider="anthropic")
    provider_row(
        con,
        H10,
        H11,
        "claude-3-5-sonnet-20241022",
        "apikey_1",
        300,
        30,
        provider="anthropic",
        fmt="anthropic_usage",
    )
    [sonnet] = view(con, "model_family = 'claude-3-5-sonnet'")
    assert sonnet["gateway_tokens"] == sonnet["provider_tokens"] == 330
    assert sonnet["token_diff"] == 0 and sonnet["token_ratio"] == 1.0
    # haiku traffic is not counted against the sonnet bucket: it gets its own gateway-only row
    [haiku] = view(con, "model_family = 'claude-3-5-haiku'")
    assert haiku["provider_tokens"] == 0 and haiku["gateway_tokens"] == 10
    # another provider's traffic never counts
    gateway(con, "2026-03-01 10:32:00+00", "claude-3-5-sonnet", 999, 1, provider="openai")
    [sonnet] = view(con, "model_family = 'claude-3-5-sonnet'")
    assert sonnet["gateway_tokens"] == 330


def test_gateway_hour_without_provider_rows_shows_provider_zeros(con):
    provider_row(con, H10, H11, "gpt-4o", "key_a", 100, 10)
    provider_row(con, H12, H13, "gpt-4o", "key_a", 100, 10)
    gateway(con, "2026-03-01 10:10:00+00", "gpt-4o", 100, 10)
    gateway(con, "2026-03-01 11:10:00+00", "gpt-4o", 70, 7, n=2)  # hour the provider left out
    gateway(con, "2026-03-01 12:10:00+00", "gpt-4o", 100, 10)
    gateway(con, "2026-03-02 09:00:00+00", "gpt-4o", 1, 1)  # outside the export: no row
    got = view(con)
    assert [r["bucket_start"].hour for r in got] == [10, 11, 12]
    gap = got[1]
    assert gap["bucket_end"].hour == 12 and gap["bucket_width"] == "1h"
    assert gap["token_rows"] == 0 and gap["provider_tokens"] == 0
    assert gap["provider_requests"] == 0 and gap["provider_input_tokens"] == 0
    assert gap["gateway_requests"] == 2 and gap["gateway_tokens"] == 154
    assert gap["token_diff"] == -154 and gap["token_ratio"] == 0.0
    assert gap["unexplained_tokens"] == 0
    assert gap["api_key_ids"] == [] and gap["unknown_api_key_ids"] == []
    # with no known_keys list, every key may be the gateway's: unexplained = provider excess
    assert got[0]["known_keys_listed"] is False
    assert got[0]["unattributed_tokens"] == 110 and got[0]["unexplained_tokens"] == 0


def test_without_known_keys_unexplained_is_the_excess_over_the_gateway(con):
    gateway(con, "2026-03-01 10:00:00+00", "gpt-4o-mini", 400, 100)
    provider_row(con, H10, H11, "gpt-4o-mini-2024-07-18", "key_x", 900, 600)
    provider_row(con, H10, H11, "gpt-4o-mini-2024-07-18", "key_y", 0, 0)
    [r] = view(con)
    assert r["known_keys_listed"] is False
    assert r["unknown_api_key_ids"] == []
    assert r["unattributed_tokens"] == 1500
    assert r["unexplained_tokens"] == 1000
    # a list for another provider changes nothing here
    con.execute("INSERT INTO known_keys (provider, api_key_id) VALUES ('anthropic', 'k')")
    assert view(con)[0]["unexplained_tokens"] == 1000


def test_rows_without_key_are_explained_only_by_traffic_known_keys_leave(con):
    con.execute("INSERT INTO known_keys (provider, api_key_id) VALUES ('OpenAI', 'key_gw')")
    gateway(con, "2026-03-01 10:00:00+00", "gpt-4o", 1000, 0)
    provider_row(con, H10, H11, "gpt-4o", "key_gw", 600, 0)
    provider_row(con, H10, H11, "gpt-4o", None, 700, 0)  # export not grouped by key
    [r] = view(con)
    assert r["known_key_tokens"] == 600 and r["unattributed_tokens"] == 700
    assert r["unexplained_tokens"] == 300  # 700 - (1000 - 600)
    assert r["api_key_ids"] == ["key_gw"] and r["unknown_api_key_ids"] == []


def test_daily_buckets_and_cost_rows(con):
    gateway(con, "2026-03-01 01:00:00+00", "gpt-4o", 100, 0)
    gateway(con, "2026-03-01 23:59:59.5+00", "gpt-4o", 100, 0)
    gateway(con, "2026-03-02 00:00:00+00", "gpt-4o", 5000, 0)  # next day: not in the bucket
    day, next_day = "2026-03-01 00:00:00+00", "2026-03-02 00:00:00+00"
    provider_row(con, day, next_day, "gpt-4o-2024-08-06", "key_a", 200, 0, width="1d")
    provider_row(
        con,
        day,
        next_day,
        "gpt-4o-2024-08-06",
        "key_a",
        None,
        None,
        width="1d",
        fmt="anthropic_cost",
        cost=1.25,
    )
    # an OpenAI cost row has no model: it is compared with all of the provider's traffic
    provider_row(
        con, day, next_day, None, "key_a", None, None, width="1d", fmt="openai_costs", cost=3.0
    )
    got = view(con, "bucket_start = $d::TIMESTAMPTZ", {"d": day})
    by_family = {r["model_family"]: r for r in got}
    gpt = by_family["gpt-4o"]
    assert gpt["bucket_width"] == "1d"
    assert gpt["token_rows"] == 1 and gpt["cost_rows"] == 1
    assert gpt["provider_tokens"] == 200 and gpt["gateway_tokens"] == 200
    assert gpt["gateway_requests"] == 2
    assert gpt["provider_cost"] == pytest.approx(1.25)
    assert gpt["provider_cost_currency"] == "USD"
    cost_only = by_family[None]
    assert cost_only["token_rows"] == 0 and cost_only["provider_tokens"] == 0
    assert cost_only["token_diff"] is None and cost_only["token_ratio"] is None
    assert cost_only["provider_cost"] == pytest.approx(3.0)
    assert cost_only["gateway_tokens"] == 200
    assert cost_only["unexplained_tokens"] == 0
    # the next day is outside the export: no gateway-only row for it
    assert view(con, "bucket_start >= $d::TIMESTAMPTZ", {"d": next_day}) == []


def test_litellm_spend_is_kept_apart_from_the_provider_report(con):
    gateway(con, "2026-03-01 10:00:00+00", "gpt-4o", 100, 0)
    day, next_day = "2026-03-01 00:00:00+00", "2026-03-02 00:00:00+00"
    provider_row(con, day, next_day, "gpt-4o", "key_a", 100, 0, width="1d")
    provider_row(con, day, next_day, "gpt-4o", "hash_1", 100, 0, width="1d", fmt="litellm_daily")
    got = {r["reporter"]: r for r in view(con)}
    assert set(got) == {"provider", "litellm"}
    assert got["provider"]["provider_tokens"] == got["litellm"]["provider_tokens"] == 100
    assert got["provider"]["gateway_tokens"] == got["litellm"]["gateway_tokens"] == 100


def test_views_in_new_existing_and_read_only_cases(case_path):
    con = db.connect(case_path)
    provider_row(con, H10, H11, "gpt-4o", "key_a", 1, 1)
    assert "usage_vs_gateway" in {
        r[0]
        for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT temporary").fetchall()
    }
    # a case opened read-write again gets the current definition back
    con.execute("CREATE OR REPLACE VIEW usage_vs_gateway AS SELECT 1 AS stale")
    con.close()
    con = db.connect(case_path, read_only=True)
    try:
        # read-only: a TEMP view, which shadows the stale stored one
        assert len(view(con)) == 1
        with pytest.raises(duckdb.Error):
            con.execute("CREATE VIEW x AS SELECT 1")
    finally:
        con.close()
    con = db.connect(case_path)
    assert "provider_tokens" in view(con)[0]
    con.close()


# --- the usage command -------------------------------------------------------------------


@click.group(cls=ForensicsGroup)
@click.option("--db", "db_path", type=click.Path(path_type=Path))
@click.pass_context
def _cli(ctx: click.Context, db_path: Path) -> None:
    ctx.obj = {"db": db_path, "debug": False}


_cli.add_command(usage)


def run(case_path: Path, *args: str):
    return CliRunner().invoke(_cli, ["--db", str(case_path), "usage", *args])


@pytest.fixture
def loaded(case_path: Path) -> Path:
    con = db.connect(case_path)
    con.execute(
        "INSERT INTO known_keys (provider, api_key_id, label) VALUES ('openai', 'key_gw', 'gateway')"
    )
    provider_row(con, H10, H11, "gpt-4o-2024-08-06", "key_gw", 100, 10, requests=2)
    provider_row(con, H11, H12, "gpt-4o-2024-08-06", "key_leak", 1000, 100, requests=5)
    provider_row(con, H10, H11, "gpt-4o-mini", "key_gw", 7, 3, project="proj_2")
    provider_row(
        con,
        "2026-03-02 00:00:00+00",
        "2026-03-03 00:00:00+00",
        "claude-3-5-sonnet-20241022",
        "apikey_9",
        50,
        5,
        provider="anthropic",
        fmt="anthropic_usage",
        width="1d",
    )
    provider_row(
        con,
        "2026-03-01 00:00:00+00",
        "2026-03-02 00:00:00+00",
        None,
        "key_gw",
        None,
        None,
        fmt="openai_costs",
        width="1d",
        cost=2.5,
    )
    con.close()
    return case_path


def test_usage_default_groups_by_provider_model_day(loaded):
    res = run(loaded, "--format", "json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert [(r["provider"], r["model"], r["day"][:10]) for r in got] == [
        ("anthropic", "claude-3-5-sonnet-20241022", "2026-03-02"),
        ("openai", "gpt-4o-2024-08-06", "2026-03-01"),
        ("openai", "gpt-4o-mini", "2026-03-01"),
        ("openai", None, "2026-03-01"),
    ]
    gpt = got[1]
    assert gpt["rows"] == 2 and gpt["requests"] == 7
    assert gpt["input_tokens"] == 1100 and gpt["output_tokens"] == 110
    assert got[3]["cost"] == 2.5 and got[3]["input_tokens"] == 0 and got[3]["currency"] == "USD"
    # the price table's estimate (gpt-4o-2024-08-06 from 2024-10-01: $2.50 in, $10 out per 1M)
    assert gpt["est_cost_usd"] == pytest.approx((1100 * 2.5 + 110 * 10.0) / 1e6)
    assert got[3]["est_cost_usd"] is None  # a cost export has no tokens to price


def test_usage_by_key_and_hour_with_time_window(loaded):
    res = run(
        loaded,
        "--by",
        "provider,key",
        "--by",
        "hour",
        "--since",
        "2026-03-01T10:00:00Z",
        "--until",
        "2026-03-01T12:00",
        "--format",
        "jsonl",
    )
    assert res.exit_code == 0, res.output
    got = [json.loads(ln) for ln in res.stdout.splitlines()]
    assert [(r["api_key_id"], r["hour"][11:13], r["input_tokens"]) for r in got] == [
        ("key_gw", "10", 107),
        ("key_leak", "11", 1000),
    ]
    assert got[0]["known_key_label"] == "gateway" and got[1]["known_key_label"] is None
    assert list(got[0])[:3] == ["provider", "api_key_id", "hour"]


def test_usage_table_and_project_grouping(loaded):
    res = run(loaded, "--by", "project")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["project_id", "rows", "requests"]
    assert [ln.split()[0] for ln in lines[2:]] == ["proj_1", "proj_2"]


def test_usage_rejects_a_hostile_time_and_unknown_grouping(loaded):
    hostile = "2026-01-01'; DROP TABLE usage; --"
    res = run(loaded, "--since", hostile)
    assert res.exit_code == 2
    assert "--since" in res.stderr and "not an ISO 8601" in res.stderr
    res = run(loaded, "--by", "provider,api_key_id; DROP TABLE usage")
    assert res.exit_code == 2 and "unknown grouping" in res.stderr
    res = run(loaded, "--since", "2026-03-02", "--until", "2026-03-01")
    assert res.exit_code == 2
    con = db.connect(loaded, read_only=True)
    assert con.execute("SELECT count(*) FROM usage").fetchone() == (5,)
    con.close()


def test_usage_parquet_needs_a_file_and_writes_one(loaded, tmp_path):
    assert run(loaded, "--format", "parquet").exit_code == 2
    out = tmp_path / "u.parquet"
    res = run(loaded, "--by", "provider", "--format", "parquet", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert "2 rows written" in res.stderr
    assert duckdb.sql(f"SELECT count(*) FROM '{out}'").fetchall() == [(2,)]


def test_usage_on_a_missing_case_is_an_error(tmp_path):
    res = run(tmp_path / "none.duckdb")
    assert res.exit_code == 1 and "no case database" in res.stderr


def test_parse_by():
    assert parse_by(()) == ["provider", "model", "day"]
    assert parse_by(("key, Model", "key", "")) == ["key", "model"]
    with pytest.raises(UsageError):
        parse_by(("tenant",))
