"""Keys of every provider shape, planted everywhere a log can carry them, never reach the case."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forensics.case import db
from forensics.case.fingerprints import fingerprint
from forensics.cli import cli
from forensics.ingest.base import Options
from forensics.ingest.pipeline import ingest_file
from tests.conftest import tables_containing
from tests.ingest.test_kong import kong_record
from tests.keys import KEYS


def planted(key: str) -> list[dict[str, object]]:
    """Kong records carrying `key` in every field a gateway log can hold one."""
    body = {
        "model": "gpt-4o",
        "user": f"u {key}",
        "messages": [{"role": "user", "content": f"here is my key {key} thanks"}],
    }
    return [
        kong_record(**{"request.headers.apikey": key}),
        kong_record(**{"request.headers.x-api-key": key}),
        kong_record(**{"request.headers.authorization": f"Bearer {key}"}),
        kong_record(**{"request.uri": f"/v1/chat/completions?api_key={key}&x=1"}),
        kong_record(**{"request.uri": f"/v1/models/{key}"}),
        kong_record(**{"request.headers.user-agent": f"my-app/1.0 ({key})"}),
        kong_record(**{"request.headers.origin": f"https://x.example?token={key}"}),
        kong_record(**{"request.headers.referer": f"https://x.example/#k={key}"}),
        kong_record(**{"request.headers.x-forwarded-for": f"203.0.113.9, {key}"}),
        kong_record(**{"ai.proxy.payload.request": json.dumps(body)}),
        kong_record(**{"consumer.username": f"tenant {key}"}),
    ]


@pytest.mark.parametrize("provider", sorted(KEYS))
def test_no_raw_key_in_any_table_output_or_file(tmp_path: Path, provider: str):
    key = KEYS[provider]
    records = planted(key)
    text = "".join(json.dumps(r) + "\n" for r in records)
    text += (
        f'{{"started_at": 1767225600123, "request": {{"headers": {{"apikey": "{key}"\n'  # cut off
    )
    text += f"garbage line with {key} in it\n"
    path = tmp_path / "leaky.jsonl"
    path.write_text(text)
    case_path = tmp_path / "case.duckdb"
    con = db.connect(case_path)
    result = ingest_file(con, path, options=Options(keep_prompts=True))
    assert (result.rows_loaded, result.rows_quarantined) == (len(records), 2)
    assert tables_containing(con, key) == []
    # the key is still traceable: its fingerprint is there
    fp = fingerprint(key, db.salt(con))
    assert "requests" in tables_containing(con, fp)
    con.close()
    # nor in anything the CLI prints, in any format
    runner = CliRunner()
    for args in (
        ["sql", "SELECT * FROM requests", "--format", "jsonl"],
        ["sql", "SELECT * FROM quarantine", "--format", "csv"],
        ["quarantine", "--format", "json"],
        ["sources"],
    ):
        out = runner.invoke(cli, ["--db", str(case_path), *args])
        assert out.exit_code == 0, out.output
        assert key not in out.output and key not in out.stderr
    # nor in the database file itself
    raw = case_path.read_bytes()
    assert key.encode() not in raw


def test_fingerprint_is_hmac_under_the_case_salt_so_cases_differ(tmp_path):
    key = KEYS["openai-project"]
    a = db.connect(tmp_path / "a.duckdb")
    b = db.connect(tmp_path / "b.duckdb")
    fa = a.execute("SELECT cred_fp($k)", {"k": key}).fetchall()[0][0]
    fb = b.execute("SELECT cred_fp($k)", {"k": key}).fetchall()[0][0]
    assert fa == fingerprint(key, db.salt(a)) and fb == fingerprint(key, db.salt(b))
    assert fa != fb
    assert fa.startswith("cred:") and fa.endswith(":" + key[-4:])


def test_gateway_redacted_values_are_not_fingerprints(case):
    got = case.execute(
        "SELECT cred_fp('REDACTED'), cred_fp(''), cred_fp(NULL), scrub('Bearer REDACTED')"
    ).fetchall()
    assert got == [(None, None, None, "Bearer REDACTED")]


# Pieces of the strings in a list: keys whole and cut, what the patterns stand on (a name and
# '=', a quote, a scheme word), the '&' that joins them in scrub_list's test, plain words.
LIST_PIECES = [
    KEYS["openai-project"],
    KEYS["anthropic"][:30],
    "token=",
    "api_key=",
    "&",
    "?",
    '"secret": "',
    '"',
    "Bearer ",
    "abcdefgh12",
    "read:all",
    " ",
    "ZZ",
]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.one_of(st.none(), st.lists(st.sampled_from(LIST_PIECES), max_size=5).map("".join)),
        max_size=4,
    )
)
def test_a_list_is_scrubbed_as_each_of_its_strings(
    case: duckdb.DuckDBPyConnection, strings: list[str | None]
) -> None:
    """scrub_list skips the scrubber's lambda when the joined strings hold nothing: never when
    one of them does (a value standing at the start of its string among them)."""
    [(fast, each)] = case.execute(
        "SELECT scrub_list($l), list_transform($l, lambda x: scrub(x))",
        {"l": strings},
    ).fetchall()
    assert fast == each
