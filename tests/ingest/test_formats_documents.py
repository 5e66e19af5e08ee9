"""JSON documents as vendors show them, detected and loaded through the real command.

The fixtures in fixtures/documents/ are composed from the documented formats (FORMATS.md 1 and
9; Kong's http-log page shows a record pretty-printed with `response` first and `started_at`
far below it; Anthropic's usage report is a page `{"data", "has_more", "next_page"}`, here
written with sorted keys so `starting_at` follows each bucket's results). In each the keys that
tell the format come after line 20, where detection by lines stopped: detection reads whole
records within a byte bound instead.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from forensics.cli import cli
from forensics.errors import InputError
from forensics.ingest import reader
from forensics.ingest.formats import detect_format
from tests.ingest.test_ingest_mistakes import errors, query
from tests.ingest.test_kong import kong_record

FIXTURES = Path(__file__).parent / "fixtures" / "documents"
UTC = dt.UTC


def ingest(case: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(case), "ingest", "-q", *args])


def first_line_with(path: Path, key: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if f'"{key}"' in line)


@pytest.mark.parametrize(
    ("name", "fmt", "telling"),
    [
        ("kong-http-log-batch.json", "kong", "started_at"),
        ("kong-file-log-record.json", "kong", "started_at"),
        ("anthropic-usage-sorted.json", "anthropic-usage", "starting_at"),
    ],
)
def test_the_telling_keys_come_after_line_20_and_whole_records_find_them(name, fmt, telling):
    path = FIXTURES / name
    assert first_line_with(path, telling) > 20
    lines = [line for line in path.read_text().splitlines() if line.strip()][:20]
    with pytest.raises(InputError, match="unknown format"):
        detect_format(path, lines)  # what the first 20 lines alone tell
    head = reader.sniff(path)
    assert head.document and head.complete and head.cut is None
    assert all(json.loads(record) for record in head.lines)  # compact JSON, one per record
    assert detect_format(path, head) == fmt


def test_a_pretty_printed_kong_batch_loads_each_record_with_its_line(tmp_path):
    case = tmp_path / "case.duckdb"
    out = ingest(case, str(FIXTURES / "kong-http-log-batch.json"))
    assert out.exit_code == 0, out.output
    assert query(case, "SELECT format, rows_read, rows_loaded, rows_quarantined FROM sources") == [
        ("kong", 3, 3, 0)
    ]
    got = query(
        case,
        "SELECT line_no, request_id, ts, client_ip, tenant_id, credential_id, model,"
        " response_model, input_tokens, cached_input_tokens, output_tokens, status, route"
        " FROM requests ORDER BY line_no",
    )
    assert got == [
        (
            2,
            "4f9a0c1e2b3d4e5f60718293a4b5c6d7",
            dt.datetime(2026, 1, 1, 10, 0, 0, 250000, tzinfo=UTC),
            "203.0.113.10",
            "tenant-north",
            "a11ce000-0000-4000-8000-000000000000",
            "gpt-4o",
            "gpt-4o-2024-08-06",
            812,
            512,
            95,
            200,
            "llm-chat",
        ),
        (
            102,
            "5a0b1c2d3e4f5061728394a5b6c7d8e9",
            dt.datetime(2026, 1, 1, 10, 0, 1, 750000, tzinfo=UTC),
            "198.51.100.77",
            "tenant-south",
            "a11ce000-0000-4000-8000-000000000001",
            "gpt-4o-mini",
            "gpt-4o-mini-2024-07-18",
            143,
            0,
            22,
            200,
            "llm-chat",
        ),
        (
            202,
            "6b1c2d3e4f5061728394a5b6c7d8e9f0",
            dt.datetime(2026, 1, 1, 10, 0, 3, 999000, tzinfo=UTC),
            "192.0.2.200",
            "tenant-north",
            "a11ce000-0000-4000-8000-000000000002",
            "gpt-4o",
            "gpt-4o",
            0,
            0,
            0,
            429,
            "llm-chat",
        ),
    ]
    lines = (FIXTURES / "kong-http-log-batch.json").read_text().splitlines()
    assert [lines[n - 1] for n in (2, 102, 202)] == ["  {"] * 3  # where each record starts


@pytest.mark.parametrize("given", [False, True], ids=["detected", "--format kong"])
def test_one_pretty_printed_kong_record_is_one_record(tmp_path, given):
    case = tmp_path / "case.duckdb"
    path = FIXTURES / "kong-file-log-record.json"
    out = ingest(case, *(["--format", "kong"] if given else []), str(path))
    assert out.exit_code == 0, out.output
    assert query(case, "SELECT format, rows_read, rows_loaded, rows_quarantined FROM sources") == [
        ("kong", 1, 1, 0)
    ]
    assert query(
        case,
        "SELECT line_no, request_id, ts, client_ip, tenant_id, model, input_tokens,"
        " cached_input_tokens, output_tokens, total_tokens, log_cost FROM requests",
    ) == [
        (
            1,
            "7c2d3e4f5061728394a5b6c7d8e9f0a1",
            dt.datetime(2026, 1, 1, 11, 0, 0, 125000, tzinfo=UTC),
            "203.0.113.99",
            "tenant-east",
            "gpt-4.1",
            2048,
            1024,
            300,
            2348,
            0.00812,
        )
    ]


def test_an_anthropic_usage_page_with_sorted_keys_loads_every_result(tmp_path):
    case = tmp_path / "case.duckdb"
    out = ingest(case, str(FIXTURES / "anthropic-usage-sorted.json"))
    assert out.exit_code == 0, out.output
    assert query(case, "SELECT format, rows_read, rows_loaded, rows_quarantined FROM sources") == [
        ("anthropic-usage", 3, 3, 0)
    ]
    got = query(
        case,
        "SELECT bucket_start, bucket_end, api_key_id, project_id, model, service_tier, batch,"
        " input_tokens, input_uncached_tokens, cached_input_tokens, cache_creation_input_tokens,"
        " output_tokens, other_units, extra->>'context_window'"  # other_units: web searches
        " FROM usage ORDER BY bucket_start, output_tokens",
    )
    h9, h10, h11 = (dt.datetime(2026, 1, 1, h, tzinfo=UTC) for h in (9, 10, 11))
    assert got == [
        (
            h9,
            h10,
            "apikey_01Qw3rTy5uIoPaSdFgHjKlZx",
            "wrkspc_01MnBvCxZaSdFgHjKlQwErTy",
            "claude-sonnet-4-5-20250929",
            "standard",
            False,
            41250 + 380000 + 12000,
            41250,
            380000,
            12000,
            9650,
            3.0,
            "0-200k",
        ),
        (
            h9,
            h10,
            "apikey_01Zx9cVbNmAsDfGhJkLqWeRt",
            None,
            "claude-haiku-4-5-20251001",
            "batch",
            True,
            1800000,
            1800000,
            0,
            0,
            240000,
            0.0,
            "0-200k",
        ),
        (
            h10,
            h11,
            "apikey_01Qw3rTy5uIoPaSdFgHjKlZx",
            "wrkspc_01MnBvCxZaSdFgHjKlQwErTy",
            "claude-sonnet-4-5-20250929",
            "standard",
            False,
            260000 + 1500000 + 90000,
            260000,
            1500000,
            90000,
            31000,
            0.0,
            "200k-1M",
        ),
    ]


def test_compressed_documents_are_detected_the_same(tmp_path):
    case = tmp_path / "case.duckdb"
    paths = []
    for name in ("kong-http-log-batch.json", "anthropic-usage-sorted.json"):
        path = tmp_path / (name + ".gz")
        path.write_bytes(gzip.compress((FIXTURES / name).read_bytes()))
        paths.append(str(path))
    out = ingest(case, *paths)
    assert out.exit_code == 0, out.output
    assert query(case, "SELECT format, rows_loaded FROM sources ORDER BY format") == [
        ("anthropic-usage", 3),
        ("kong", 3),
    ]


def test_jq_output_pretty_records_one_after_another_and_logpush_wrapping(tmp_path):
    """`jq .` prints each record of a JSON-lines file pretty-printed, one after another;
    Logpush's wrapped output puts "[" before the first record and "," before each next."""
    case = tmp_path / "case.duckdb"
    records = [kong_record(**{"request.id": f"r{i}"}) for i in range(3)]
    jq = tmp_path / "jq.json"
    jq.write_text("".join(json.dumps(r, indent=2) + "\n" for r in records))
    wrapped = tmp_path / "wrapped.json"
    lines = [json.dumps(kong_record(**{"request.id": f"w{i}"})) for i in range(3)]
    wrapped.write_text("[" + lines[0] + "\n" + "".join("," + x + "\n" for x in lines[1:]) + "]\n")
    out = ingest(case, str(jq), str(wrapped))
    assert out.exit_code == 0, out.output
    got = query(case, "SELECT request_id, line_no FROM requests ORDER BY request_id")
    starts = [i for i, line in enumerate(jq.read_text().splitlines(), 1) if line == "{"]
    assert got == [*zip(["r0", "r1", "r2"], starts, strict=True), ("w0", 1), ("w1", 2), ("w2", 3)]


def test_a_document_that_loads_none_of_its_records_fails(tmp_path):
    """0 of N loaded is more than --max-quarantine-share: the file fails, exit 1, nothing kept."""
    case = tmp_path / "case.duckdb"
    batch = tmp_path / "seconds.json"
    batch.write_text(
        json.dumps([kong_record(started_at=1767225600 + i) for i in range(3)], indent=2)
    )
    out = ingest(case, str(batch))
    assert out.exit_code == 1
    [error] = errors(out)
    assert error.startswith(
        f"Error: {batch}: 3 of 3 records quarantined as kong, more than --max-quarantine-share"
        " 0.5 of them; nothing from this file was kept: its first records look like kong"
    )
    assert "is not epoch milliseconds" in error
    page = FIXTURES / "anthropic-usage-sorted.json"
    out = ingest(case, "--format", "kong", str(page))  # the page is one record, not Kong's
    assert out.exit_code == 1
    [error] = errors(out)
    assert error.startswith(f"Error: {page}: 1 of 1 records quarantined as kong")
    assert "it looks like anthropic-usage: try --format anthropic-usage" in error
    assert query(case, "SELECT count(*) FROM sources") == [(0,)]


def test_a_record_longer_than_the_sniffing_bound_is_detected_from_its_complete_part(tmp_path):
    """Detection reads 1 MiB: a record that goes on past it is judged by its members that end
    within it; the record still loads whole."""
    case = tmp_path / "case.duckdb"
    record = kong_record()
    big = {k: record[k] for k in ("started_at", "client_ip", "request")}
    big |= {"ai": {"proxy": {"payload": {"request": "x" * (3 * 1024 * 1024)}}}}
    path = tmp_path / "big.json"
    path.write_text(json.dumps(big, indent=2))
    head = reader.sniff(path)
    assert head.content_bytes <= reader.SNIFF_BYTES and not head.complete
    assert head.document and head.cut is not None
    [partial] = head.lines
    assert set(json.loads(partial)) == {"started_at", "client_ip", "request", "ai"}
    out = ingest(case, str(path))
    assert out.exit_code == 0, out.output
    assert query(case, "SELECT rows_read, rows_loaded, client_ip FROM sources, requests") == [
        (1, 1, "203.0.113.45")
    ]


@pytest.mark.parametrize("indent", [2, None], ids=["pretty", "one-line"])
def test_no_record_ending_within_the_bound_is_said_in_the_error(tmp_path, indent):
    case = tmp_path / "case.duckdb"
    path = tmp_path / "huge.json"
    path.write_text(json.dumps({"blob": "y" * (2 * 1024 * 1024), "started_at": 1}, indent=indent))
    out = ingest(case, str(path))
    assert out.exit_code == 1
    [error] = errors(out)
    assert error.startswith(
        f"Error: {path}:1: unknown format: no JSON record ends within the first 1.0 MiB read,"
        " and its start matches none of "
    )


def test_a_broken_document_keeps_the_records_before_the_break(tmp_path):
    case = tmp_path / "case.duckdb"
    records = [kong_record(**{"request.id": f"id{i}"}) for i in range(4)]
    text = json.dumps(records, indent=2)
    broken = text.replace('"id2"', '"id2" oops', 1)
    path = tmp_path / "broken.json"
    path.write_text(broken)
    out = ingest(case, "--max-quarantine-share", "1", str(path))
    assert out.exit_code == 0, out.output
    assert query(case, "SELECT rows_read, rows_loaded, rows_quarantined FROM sources") == [
        (3, 2, 1)
    ]
    [(line, error)] = query(case, "SELECT line_no, error FROM quarantine")
    assert broken.splitlines()[line - 1] == "  {"
    bad_line = next(i for i, x in enumerate(broken.splitlines(), 1) if "oops" in x)
    assert error == f"JSON array element does not parse: Expecting ',' delimiter (line {bad_line})"
