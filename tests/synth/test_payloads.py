"""Kong records with full payloads (`kong_record(..., full_payloads=True)`, used by benchmarks/).

Full records must be the short ones with longer bodies: same request, response, consumer and
usage, the user's message still last, and a conversation as long as the call's input tokens.
"""

from __future__ import annotations

import json
import random

import pytest

from forensics.case import db
from forensics.ingest.pipeline import ingest_file
from forensics.synth import SynthConfig, build
from forensics.synth.gateway_logs import KongEntities, kong_calls, kong_record, write_kong
from forensics.synth.payloads import TOOLS
from forensics.synth.traffic import Call


@pytest.fixture(scope="module")
def calls() -> list[Call]:
    return kong_calls(build(SynthConfig(days=1, tenants=4, seed=2)).calls)


def without_bodies(record: dict) -> dict:
    record = json.loads(json.dumps(record))
    record["request"].pop("size")
    record.get("ai", {}).get("proxy", {}).pop("payload", None)
    return record


def test_full_and_short_records_differ_only_in_the_bodies(calls):
    entities = KongEntities.make(random.Random(0))
    for call in calls:
        short = kong_record(random.Random(1), call, entities)
        full = kong_record(random.Random(1), call, entities, full_payloads=True)
        assert without_bodies(full) == without_bodies(short)
        assert ("ai" in full) == ("ai" in short)


def test_the_conversation_is_as_long_as_the_input_tokens_and_ends_with_the_prompt(calls):
    entities = KongEntities.make(random.Random(0))
    rng = random.Random(3)
    chats = [
        c for c in calls if c.path is None and c.outcome == "ok" and c.model.endpoint == "chat"
    ]
    with_tools = 0
    for call in chats:
        record = kong_record(rng, call, entities, full_payloads=True)
        sent = record["ai"]["proxy"]["payload"]["request"]
        body = json.loads(sent)
        assert body["messages"][-1] == {"role": "user", "content": call.prompt}
        chars = sum(len(m["content"]) for m in body["messages"])
        assert 0 <= chars - 4 * call.input_tokens <= 100, (chars, call.input_tokens)
        assert record["request"]["size"] == 400 + len(sent.encode())
        if "tools" in body:
            assert body["tools"] == list(TOOLS)
            with_tools += 1
        answer = json.loads(record["ai"]["proxy"]["payload"]["response"])
        for tool_call in answer["choices"][0]["message"].get("tool_calls") or []:
            assert json.loads(tool_call["function"]["arguments"])
    assert 0 < with_tools < len(chats)


def test_a_kong_log_with_full_payloads_loads_whole(tmp_path, calls):
    log = tmp_path / "kong.jsonl"
    lines = write_kong(log, random.Random(2), calls, full_payloads=True)
    con = db.connect(tmp_path / "case.duckdb")
    try:
        result = ingest_file(con, log)
        tokens = con.execute(
            "SELECT count(*) FILTER (WHERE input_tokens IS NULL) FROM requests"
            " WHERE status = 200 AND endpoint = 'chat'"
        ).fetchall()[0][0]
    finally:
        con.close()
    assert (result.status, result.format) == ("loaded", "kong"), result.message
    assert (result.rows_loaded, result.rows_quarantined) == (lines, 0)
    assert result.reconciles
    assert tokens == 0
