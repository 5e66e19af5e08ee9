"""LiteLLM daily spend tables (FORMATS.md 6.1, 13.2): rows composed from the documented columns."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from forensics.case import db
from forensics.ingest import formats
from forensics.ingest.base import Options
from forensics.ingest.litellm_daily import LiteLLMDaily
from forensics.ingest.pipeline import ingest_file
from tests.conftest import load, rows, tables_containing

if "litellm-daily" not in formats.FORMATS:
    formats.register(LiteLLMDaily())

HASH = "3c9e51d07a2b84f6e1d0c9b8a7f6e5d4c3b2a1908f7e6d5c4b3a291807f6e5d4"
RAW_KEY = "sk-Zq8pW3nR7tY2uV5xA9bC4dE6fG1hJ0kL"
DAY = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def row(entity: str, value: str, **over: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "id": "0b6f-uuid",
        entity: value,
        "date": "2026-01-01",
        "api_key": HASH,
        "model": "gpt-4o-mini-2024-07-18",
        "model_group": "gpt-4o-mini",
        "custom_llm_provider": "OpenAI",
        "mcp_namespaced_tool_name": None,
        "endpoint": "/chat/completions",
        "prompt_tokens": 5120,
        "completion_tokens": 2048,
        "cache_read_input_tokens": 4096,
        "cache_creation_input_tokens": 12,
        "spend": 0.01163,
        "api_requests": 7,
        "successful_requests": 6,
        "failed_requests": 1,
        "created_at": "2026-01-01T08:15:02",
        "updated_at": "2026-01-01T23:59:02",
    }
    r.update(over)
    return r


def jsonl(*rs: dict[str, Any]) -> str:
    return "\n".join(json.dumps(r) for r in rs) + "\n"


def csv_text(*rs: dict[str, Any]) -> str:
    header = list(rs[0])
    out = [",".join(header)]
    for r in rs:
        out.append(",".join("" if r.get(k) is None else str(r[k]) for k in header))
    return "\n".join(out) + "\n"


def usage(con: Any) -> list[dict[str, object]]:
    return rows(con, "SELECT * FROM usage ORDER BY line_no")


SHAPES = [
    ("user_id", "u-4411", "user", None, "u-4411"),
    ("team_id", "team-acme", "team", "team-acme", None),
    ("organization_id", "org-1", "organization", "org-1", None),
    ("end_user_id", "cust-9", "end_user", None, "cust-9"),
    ("agent_id", "agent-7", "agent", "agent-7", None),
    ("tag", "prod", "tag", "prod", None),
]


@pytest.mark.parametrize(("entity", "value", "kind", "project", "user"), SHAPES)
@pytest.mark.parametrize("shape", ["jsonl", "csv"])
def test_every_mapped_column(
    tmp_path: Path, entity: str, value: str, kind: str, project: str, user: str, shape: str
) -> None:
    con = db.connect(tmp_path / "c.duckdb")
    text = jsonl(row(entity, value)) if shape == "jsonl" else csv_text(row(entity, value))
    name = "daily.jsonl" if shape == "jsonl" else "daily.csv"
    result = load(con, tmp_path, text, name=name)
    assert result.format == "litellm-daily"
    (u,) = usage(con)
    assert u["source_format"] == "litellm_daily"
    assert u["line_no"] == (1 if shape == "jsonl" else 2)
    assert u["provider"] == "openai"
    assert u["bucket_start"] == DAY
    assert u["bucket_end"] == DAY + dt.timedelta(days=1)
    assert u["bucket_width"] == "1d"
    assert u["project_id"] == project
    assert u["user_id"] == user
    assert u["api_key_id"] == HASH
    assert u["model"] == "gpt-4o-mini-2024-07-18"
    assert u["model_family"] == "gpt-4o-mini"
    assert u["operation"] == "/chat/completions"
    assert u["requests"] == 7
    assert u["input_tokens"] == 5120
    assert u["cached_input_tokens"] == 4096
    assert u["cache_creation_input_tokens"] == 12
    assert u["output_tokens"] == 2048
    assert u["cost"] == pytest.approx(0.01163)
    assert u["currency"] == "USD"
    extra = json.loads(str(u["extra"]))
    assert extra["entity_kind"] == kind
    assert extra["model_group"] == "gpt-4o-mini"
    assert int(extra["successful_requests"]) == 6
    assert int(extra["failed_requests"]) == 1
    assert "id" not in extra and entity not in extra and "api_key" not in extra
    assert u["dedupe_key"]
    con.close()


def test_json_array_unknown_column_and_provider_prefix(tmp_path: Path) -> None:
    con = db.connect(tmp_path / "c.duckdb")
    r = row("team_id", "t1", custom_llm_provider=None, model="anthropic/claude-sonnet-4")
    r["new_column"] = "x"
    load(con, tmp_path, json.dumps([r], indent=1), name="daily.json")
    (u,) = usage(con)
    assert u["provider"] == "anthropic"
    assert json.loads(str(u["extra"]))["new_column"] == "x"
    con.close()


def test_raw_key_fingerprinted_and_never_stored(tmp_path: Path) -> None:
    con = db.connect(tmp_path / "c.duckdb")
    good = row("user_id", "u1", api_key=RAW_KEY)
    broken = row("user_id", "u2", api_key=RAW_KEY, prompt_tokens="lots")
    load(con, tmp_path, jsonl(good, broken), name="daily.jsonl")
    (u,) = usage(con)
    fp = con.execute("SELECT cred_fp(?)", [RAW_KEY]).fetchone()
    assert fp is not None and u["api_key_id"] == fp[0]
    assert str(u["api_key_id"]).startswith("cred:")
    assert tables_containing(con, RAW_KEY) == []
    assert tables_containing(con, RAW_KEY[3:20]) == []
    con.close()


@pytest.mark.parametrize("second", ["daily.jsonl", "again.csv"])
def test_same_export_twice_not_double_counted(tmp_path: Path, second: str) -> None:
    con = db.connect(tmp_path / "c.duckdb")
    rs = [row("team_id", "t1"), row("team_id", "t1", model="gpt-4o", spend=1.5)]
    load(con, tmp_path, jsonl(*rs), name="first.jsonl")
    # The next day's export overlaps: the same two rows again plus a new one.
    rs2 = [*rs, row("team_id", "t1", date="2026-01-02")]
    text = jsonl(*rs2) if second.endswith("jsonl") else csv_text(*rs2)
    result = load(con, tmp_path, text, name=second)
    assert result.lines_blank == 2 and result.rows_loaded == 1
    assert any("already in the case" in w and "not counted twice" in w for w in result.warnings)
    total = con.execute("SELECT count(*), sum(cost) FROM usage").fetchone()
    assert total is not None and total[0] == 3
    assert total[1] == pytest.approx(1.5 + 2 * 0.01163)
    con.close()


def test_same_row_from_two_tables_kept_apart(tmp_path: Path) -> None:
    con = db.connect(tmp_path / "c.duckdb")
    load(con, tmp_path, jsonl(row("team_id", "x"), row("tag", "x")), name="daily.jsonl")
    assert len(usage(con)) == 2
    con.close()


def test_bad_rows_quarantined_with_line_and_reason(tmp_path: Path) -> None:
    con = db.connect(tmp_path / "c.duckdb")
    text = (
        jsonl(row("team_id", "t1"))
        + jsonl(row("team_id", "t2", spend="free"))
        + "{not json\n"
        + jsonl(row("team_id", "t3", date="yesterday"))
    )
    result = load(con, tmp_path, text, name="daily.jsonl", options=Options(max_quarantine_share=1))
    assert result.rows_loaded == 1 and result.rows_quarantined == 3
    q = rows(con, "SELECT line_no, error AS reason FROM quarantine ORDER BY line_no")
    assert [r["line_no"] for r in q] == [2, 3, 4]
    assert "spend is not a number" in str(q[0]["reason"])
    assert "not JSON" in str(q[1]["reason"])
    assert "date is not a usable time" in str(q[2]["reason"])
    con.close()


def test_csv_bad_row_quarantined(tmp_path: Path) -> None:
    con = db.connect(tmp_path / "c.duckdb")
    text = csv_text(row("team_id", "t1"), row("team_id", "t2")) + "a,b\n"
    result = load(con, tmp_path, text, name="daily.csv")
    assert result.rows_loaded == 2 and result.rows_quarantined == 1
    (q,) = rows(con, "SELECT line_no, error AS reason FROM quarantine")
    assert q["line_no"] == 4 and "fields" in str(q["reason"])
    con.close()


def test_usage_vs_gateway_reporter_litellm(tmp_path: Path) -> None:
    con = db.connect(tmp_path / "c.duckdb")
    load(con, tmp_path, jsonl(row("team_id", "t1")), name="daily.jsonl")
    (v,) = rows(con, "SELECT * FROM usage_vs_gateway")
    assert v["reporter"] == "litellm"
    assert v["provider"] == "openai"
    assert v["bucket_width"] == "1d"
    assert v["provider_tokens"] == 5120 + 2048
    con.close()


def test_sniff(tmp_path: Path) -> None:
    fmt = LiteLLMDaily()
    assert fmt.sniff([json.dumps(row("team_id", "t"))])
    assert fmt.sniff(["date,api_key,spend,api_requests"])
    assert not fmt.sniff([json.dumps({"request_id": "x", "spend": 1, "startTime": "t"})])
    path = tmp_path / "d.csv"
    path.write_text(csv_text(row("tag", "t")), encoding="utf-8")
    con = db.connect(tmp_path / "c.duckdb")
    assert ingest_file(con, path).format == "litellm-daily"
    con.close()


@pytest.mark.parametrize(
    ("changes", "model"),
    [
        pytest.param({}, "gpt-4o-mini-2024-07-18", id="model-wins"),
        pytest.param({"model": ""}, "gpt-4o-mini", id="empty-model"),
        pytest.param({"model": None}, "gpt-4o-mini", id="null-model"),
        pytest.param({"model": "", "model_group": ""}, None, id="both-empty"),
    ],
)
@pytest.mark.parametrize("shape", ["jsonl", "csv"])
def test_model_falls_back_to_model_group(
    tmp_path: Path, shape: str, changes: dict[str, Any], model: str | None
) -> None:
    """model = `model` (the deployment's), else `model_group` ('' and NULL are missing);
    model_group stays in extra either way."""
    con = db.connect(tmp_path / "c.duckdb")
    r = row("team_id", "t1", **changes)
    text = jsonl(r) if shape == "jsonl" else csv_text(r)
    load(con, tmp_path, text, name=f"daily.{shape}")
    (u,) = usage(con)
    assert u["model"] == model
    assert u["model_family"] == (None if model is None else "gpt-4o-mini")
    extra = json.loads(str(u["extra"]))
    assert (extra.get("model_group") or None) == (r["model_group"] or None)
    con.close()
