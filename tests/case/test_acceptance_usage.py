"""Issue acceptance: a week of OpenAI usage pages next to a Kong week, reconciled by hour."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner

from forensics.case import db
from forensics.cli import cli
from tests.ingest.test_kong import kong_record

START = dt.datetime(2026, 11, 16, tzinfo=dt.UTC)
GATEWAY_KEY, LEAKED_KEY = "key_gw7Hq2", "key_lk9Zp1"


def gateway_request(at: dt.datetime, n: int, prompt: int, completion: int) -> dict[str, object]:
    return kong_record(**{
        "started_at": int(at.timestamp() * 1000),
        "request.id": f"gw-{n}",
        "ai.proxy.meta.provider_name": "openai",
        "ai.proxy.meta.request_model": "gpt-4o-mini",
        "ai.proxy.meta.response_model": "gpt-4o-mini-2024-07-18",
        "ai.proxy.usage.prompt_tokens": prompt,
        "ai.proxy.usage.completion_tokens": completion,
        "ai.proxy.usage.total_tokens": prompt + completion,
        "ai.proxy.usage.prompt_tokens_details": None,
        "ai.proxy.usage.completion_tokens_details": None,
    })  # fmt: skip


def result(key: str, inputs: int, outputs: int, requests: int) -> dict[str, object]:
    return {
        "object": "organization.usage.completions.result", "input_tokens": inputs,
        "output_tokens": outputs, "input_cached_tokens": 0, "input_audio_tokens": 0,
        "output_audio_tokens": 0, "num_model_requests": requests, "project_id": None,
        "user_id": None, "api_key_id": key, "model": "gpt-4o-mini-2024-07-18", "batch": None,
        "service_tier": None,
    }  # fmt: skip


def test_a_week_of_usage_pages_reconciles_hour_by_hour(tmp_path):
    logs = tmp_path / "evidence"
    (logs / "openai").mkdir(parents=True)
    kong, n = [], 0
    gateway_hours: dict[int, tuple[int, int]] = {}
    for day in range(7):
        buckets = []
        for hour in range(24):
            start = START + dt.timedelta(days=day, hours=hour)
            results = []
            if hour % 3 != 2:  # the gateway is busy two hours in three
                ins = outs = 0
                for k in range(3):
                    n += 1
                    p, c = 900 + 37 * k + hour, 300 + 11 * k + day
                    kong.append(gateway_request(start + dt.timedelta(minutes=5 + 17 * k), n, p, c))
                    ins, outs = ins + p, outs + c
                gateway_hours[day * 24 + hour] = (ins, outs)
                # the provider counts a little more (retries the gateway never logged): <= 2 %
                results.append(result(GATEWAY_KEY, ins + ins // 60, outs + outs // 80, 3))
            if day >= 4 and hour in (1, 2, 3):  # a key the gateway does not know, at night
                results.append(result(LEAKED_KEY, 50_000, 20_000, 40))
            ts = int(start.timestamp())
            buckets.append(
                {"object": "bucket", "start_time": ts, "end_time": ts + 3600, "results": results}
            )
        page = {
            "object": "page",
            "data": buckets,
            "has_more": day < 6,
            "next_page": f"page_{day + 1}" if day < 6 else None,
        }
        (logs / "openai" / f"usage-completions-day{day}.json").write_text(json.dumps(page))
    (logs / "kong-week.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kong))
    keys = tmp_path / "known-keys.csv"
    keys.write_text(f"provider,api_key_id,label\nopenai,{GATEWAY_KEY},kong gateway\n")
    case = tmp_path / "case.duckdb"
    runner = CliRunner()
    for args in (
        ["--format", "openai-usage", str(logs / "openai")],
        [str(logs / "kong-week.jsonl")],
        ["--format", "known-keys", str(keys)],
    ):
        out = runner.invoke(cli, ["--db", str(case), "ingest", "-q", *args])
        assert out.exit_code == 0, out.output
        assert " 0 failed" in out.stdout
    con = db.connect(case, read_only=True)
    # every page loads whole: one usage row per result, nothing quarantined
    pages = con.execute(
        "SELECT count(*), sum(rows_read), sum(rows_loaded), sum(rows_quarantined) FROM sources"
        " WHERE format = 'openai-usage'"
    ).fetchall()
    results = len(gateway_hours) + 3 * 3  # gateway-key results + the leaked key's night hours
    assert pages == [(7, results, results, 0)]
    assert con.execute("SELECT count(*) FROM requests").fetchall() == [(len(kong),)]
    rows = con.execute(
        "SELECT bucket_start, gateway_input_tokens, gateway_output_tokens, known_key_tokens,"
        " unexplained_tokens, unknown_api_key_ids FROM usage_vs_gateway"
        " WHERE provider = 'openai' AND model_family = 'gpt-4o-mini' ORDER BY bucket_start"
    ).fetchall()
    checked = 0
    for bucket_start, gw_in, gw_out, known, unexplained, unknown_keys in rows:
        hour_index = int((bucket_start - START).total_seconds() // 3600)
        if hour_index in gateway_hours:
            ins, outs = gateway_hours[hour_index]
            assert (gw_in, gw_out) == (ins, outs)
            assert abs(known - (ins + outs)) <= 0.03 * (ins + outs)
            checked += 1
        night = hour_index // 24 >= 4 and hour_index % 24 in (1, 2, 3)
        assert unexplained == (70_000 if night else 0), (bucket_start, unexplained)
        assert (unknown_keys or []) == ([LEAKED_KEY] if night else []), bucket_start
    assert checked == len(gateway_hours)
    con.close()
