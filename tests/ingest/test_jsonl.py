"""JSON lines through a TOML mapping: the documented example, time formats, paths, bad input,
credentials, mapping errors, and that jsonl is never auto-detected."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from forensics.case import db
from forensics.case.fingerprints import fingerprint
from forensics.errors import InputError, UsageError
from forensics.ingest import reader
from forensics.ingest.base import Options
from forensics.ingest.formats import FORMATS, detect_format
from forensics.ingest.pipeline import ingest_file
from tests.conftest import REPO, load, rows, tables_containing

EXAMPLE = REPO / "docs" / "mapping-example.toml"
BEARER = "tok-Qm7Zr2Kx9Lp4Vn8Ws3"
API_KEY = "zz-9f8e7d6c5b4a39281706"  # no known key shape

# The record described at the top of docs/mapping-example.toml.
DOCUMENTED: dict[str, Any] = {
    "time": 1767255302481,
    "id": "req-7f3a",
    "remote": {"ip": "203.0.113.9"},
    "auth": {"org": "acme", "user": "u-4411"},
    "headers": {
        "authorization": f"Bearer {BEARER}",
        "x-api-key": API_KEY,
        "user-agent": "curl/8.5.0",
        "x-forwarded-for": "203.0.113.9, 10.0.0.2",
    },
    "http": {
        "method": "POST",
        "host": "api.example.net",
        "uri": "/v1/chat/completions?trace=1",
        "status": 200,
        "bytes_in": 1480,
        "bytes_out": 48890,
    },
    "upstream": {"status": 200, "provider": "openai"},
    "ai": {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 5120, "completion_tokens": 2048}},
    "duration_s": 15.23,
}
TS = datetime(2026, 1, 1, 8, 15, 2, 481000, tzinfo=UTC)


def jsonl(*records: Any) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def mapping(tmp_path: Path, text: str, name: str = "map.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_mapped(
    con: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    text: str,
    mapping_path: Path,
    max_quarantine_share: float = 0.5,
) -> Any:
    options = Options(mapping=mapping_path, max_quarantine_share=max_quarantine_share)
    return load(con, tmp_path, text, fmt="jsonl", options=options)


def test_documented_example_fills_every_mapped_column(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    result = load_mapped(case, tmp_path, jsonl(DOCUMENTED), EXAMPLE)
    assert (result.format, result.rows_read, result.rows_loaded) == ("jsonl", 1, 1)
    [row] = rows(case, "SELECT * FROM requests")
    salt = db.salt(case)
    expected = {
        "ts": TS,
        "request_id": "req-7f3a",
        "line_no": 1,
        "format": "jsonl",
        "tenant_id": "acme",
        "user_id": "u-4411",
        "client_ip": "203.0.113.9",
        "xff": "203.0.113.9, 10.0.0.2",
        "user_agent": "curl/8.5.0",
        "host": "api.example.net",
        "method": "POST",
        "path": "/v1/chat/completions",
        "query": "trace=1",
        "endpoint": "chat",
        "status": 200,
        "upstream_status": 200,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "model_family": "gpt-4o-mini",
        "input_tokens": 5120,
        "output_tokens": 2048,
        "request_bytes": 1480,
        "response_bytes": 48890,
        "latency_ms": 15230.0,  # seconds scaled by 1000
        "key_fingerprint": fingerprint(API_KEY, salt),  # x-api-key before the bearer token
        "credential_id": fingerprint(API_KEY, salt),
        "credential_type": "api_key",
        "geo_source": None,
    }
    assert {k: row[k] for k in expected} == expected


TIME_CASES = [
    ("epoch_s", 1767255302, TS.replace(microsecond=0)),
    ("epoch_s", "1767255302.481", TS),
    ("epoch_ms", 1767255302481, TS),
    ("epoch_ms", "1767255302481.5", TS.replace(microsecond=481500)),
    ("epoch_us", 1767255302481123, TS.replace(microsecond=481123)),
    ("epoch_ns", 1767255302481123999, TS.replace(microsecond=481123)),
    ("iso8601", "2026-01-01T08:15:02.481Z", TS),
    ("iso8601", "2026-01-01T09:15:02.481+01:00", TS),
    ("iso8601", "2026-01-01 08:15:02.481", TS),  # no offset: UTC
    ("strptime:%d/%m/%Y %H:%M:%S", "01/01/2026 08:15:02", TS.replace(microsecond=0)),
    ("strptime:%d/%b/%Y:%H:%M:%S %z", "01/Jan/2026:03:15:02 -0500", TS.replace(microsecond=0)),
]


@pytest.mark.parametrize(("fmt", "value", "ts"), TIME_CASES)
def test_time_formats(tmp_path: Path, fmt: str, value: object, ts: datetime) -> None:
    # A session time zone other than UTC must not move any of them.
    con = db.connect(tmp_path / "tz.duckdb")
    con.execute("SET TimeZone = 'America/New_York'")
    path = mapping(
        tmp_path, f'[timestamp]\nfield = "at"\nformat = "{fmt}"\n[columns]\nhost = "h"\n'
    )
    load_mapped(con, tmp_path, jsonl({"at": value, "h": "x"}), path)
    got = con.execute("SELECT ts FROM requests").fetchall()
    con.close()
    assert got == [(ts,)]


def test_paths_quoting_indices_and_fallbacks(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    path = mapping(
        tmp_path,
        """
[timestamp]
field = "$['@timestamp']"
format = "iso8601"
[columns]
tenant_id = "$.\\"it's\\""                   # a quote in a key: escaped into SQL, not injected
host = 'meta."server.name"'                   # a key with dots
method = "$.req.line[0]"                      # array index
uri = "req.line[1]"
user_id = ["who.id", "who.name", "who.email"] # first present and non-empty
status = "$.res.code"
stream = "res.streamed"
latency_ms = "res.ms"
""",
    )
    rec = {
        "@timestamp": "2026-01-01T08:15:02.481Z",
        "it's": "acme",
        "meta": {"server.name": "api.example.net"},
        "req": {"line": ["POST", "/v1/embeddings"]},
        "who": {"id": "", "email": "a@example.org"},
        "res": {"code": "429", "streamed": True, "ms": 12.5},
    }
    load_mapped(case, tmp_path, jsonl(rec, {**rec, "res": {"code": "not a number"}}), path)
    got = rows(case, "SELECT * FROM requests ORDER BY line_no")
    expected = {
        "ts": TS,
        "tenant_id": "acme",
        "host": "api.example.net",
        "method": "POST",
        "path": "/v1/embeddings",
        "endpoint": "embeddings",
        "user_id": "a@example.org",
        "status": 429,
        "error_type": "rate_limited",
        "stream": True,
        "latency_ms": 12.5,
    }
    assert {k: got[0][k] for k in expected} == expected
    # A value that does not convert leaves the column empty; the record still loads.
    assert (got[1]["status"], got[1]["stream"], got[1]["latency_ms"]) == (None, None, None)


def test_array_lines(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    line = json.dumps([{**DOCUMENTED, "id": "a"}, {**DOCUMENTED, "id": "b"}])
    result = load_mapped(case, tmp_path, jsonl(line, {**DOCUMENTED, "id": "c"}), EXAMPLE)
    assert (result.rows_read, result.rows_loaded) == (3, 3)
    got = case.execute("SELECT line_no, request_id FROM requests ORDER BY request_id").fetchall()
    assert got == [(1, "a"), (1, "b"), (2, "c")]


def test_bad_records_are_quarantined_and_the_rest_loads(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    half_array = json.dumps([DOCUMENTED, DOCUMENTED])[:250]
    text = jsonl(
        {**DOCUMENTED, "id": "good-1"},
        "this is not json",
        json.dumps(DOCUMENTED)[:120],
        half_array,
        {**DOCUMENTED, "time": 1767255302},  # seconds where the mapping says ms
        {**DOCUMENTED, "time": "yesterday"},
        {**DOCUMENTED, "time": 1e300},
        {**DOCUMENTED, "time": None},
        {k: v for k, v in DOCUMENTED.items() if k != "time"},
        '["a", 1]',
        {**DOCUMENTED, "id": "good-2"},
    )
    result = load_mapped(case, tmp_path, text, EXAMPLE, max_quarantine_share=1)
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (12, 2, 10)
    got = case.execute("SELECT line_no, error FROM quarantine ORDER BY line_no, error").fetchall()
    assert got == [
        (2, "invalid JSON"),
        (3, "invalid JSON: record is cut off"),
        (4, "invalid JSON: record is cut off"),
        (5, "timestamp time = 1767255302 is implausible as epoch_ms (it would be 1970-01-21)"),
        (
            6,
            "timestamp time of 9 characters shaped aaaaaaaaa is not a number (timestamp.format is epoch_ms)",
        ),
        (7, "timestamp time of 5 characters shaped 9a999 is out of range for epoch_ms"),
        (8, "no timestamp: time is missing or null"),
        (9, "no timestamp: time is missing or null"),
        (10, "JSON value is not an object"),
        (10, "JSON value is not an object"),
    ]
    # The raw text of the cut array is kept, its mapped credentials fingerprinted.
    salt = db.salt(case)
    redacted = half_array.replace(BEARER, fingerprint(BEARER, salt))
    redacted = redacted.replace(API_KEY, fingerprint(API_KEY, salt))
    raw = case.execute("SELECT raw FROM quarantine WHERE line_no = 4").fetchall()
    assert raw == [(redacted,)]
    loaded = case.execute("SELECT request_id FROM requests ORDER BY line_no").fetchall()
    assert loaded == [("good-1",), ("good-2",)]


def test_mapped_credentials_are_fingerprinted_never_stored(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # Field names no generic scrubber knows: only the mapping says they hold secrets.
    path = mapping(
        tmp_path,
        """
[timestamp]
field = "t"
format = "epoch_s"
[columns]
request_id = "id"
auth_header = "caller.cred"
api_key = "caller.k"
""",
    )
    good = {"t": 1767255302, "id": "r1", "caller": {"cred": f"Bearer {BEARER}", "k": API_KEY}}
    text = jsonl(
        good,
        {**good, "id": "r2", "caller": {"cred": f"Bearer {BEARER}"}},
        {**good, "t": "soon"},  # quarantined, valid JSON
        json.dumps(good)[:-3],  # quarantined, cut off
    )
    result = load_mapped(case, tmp_path, text, path)
    assert (result.rows_loaded, result.rows_quarantined) == (2, 2)
    for secret in (BEARER, API_KEY):
        # Not even the first 12 characters: a record cut inside a secret keeps none of it.
        assert tables_containing(case, secret[:12]) == []
    salt = db.salt(case)
    got = case.execute("SELECT request_id, key_fingerprint FROM requests ORDER BY 1").fetchall()
    assert got == [("r1", fingerprint(API_KEY, salt)), ("r2", fingerprint(BEARER, salt))]
    raws = [r[0] for r in case.execute("SELECT raw FROM quarantine ORDER BY line_no").fetchall()]
    for raw in raws:
        assert f"Bearer {fingerprint(BEARER, salt)}" in raw
        assert fingerprint(API_KEY, salt) in raw


def test_jsonl_is_never_auto_detected(tmp_path: Path) -> None:
    path = tmp_path / "gateway.log"
    path.write_text(jsonl(DOCUMENTED), encoding="utf-8")
    fmt = FORMATS["jsonl"]
    assert fmt.auto_detect is False
    assert fmt.sniff(reader.head_lines(path)) is False
    with pytest.raises(InputError, match="unknown format") as e:
        detect_format(path, reader.head_lines(path))
    assert "jsonl" not in str(e.value).split("match none of ")[1]


def test_missing_mapping_is_a_usage_error(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = tmp_path / "gateway.log"
    path.write_text(jsonl(DOCUMENTED), encoding="utf-8")
    with pytest.raises(UsageError) as e:
        ingest_file(case, path, fmt="jsonl")
    assert str(e.value) == "--format jsonl needs --mapping FILE"
    assert e.value.hint is not None
    assert "docs/mapping-example.toml" in e.value.hint
    assert case.execute("SELECT count(*) FROM sources").fetchall() == [(0,)]


GOOD_TS = '[timestamp]\nfield = "ts"\nformat = "epoch_ms"\n'
MAPPING_ERRORS = [
    pytest.param(
        '[columns]\nclient_ip = "ip"\n',
        '[timestamp] is missing: give the request time as field = "..." and format = "..."',
        id="no-timestamp",
    ),
    pytest.param(
        '[timestamp]\nfield = "ts"\nformat = "epoch_millis"\n[columns]\nhost = "h"\n',
        'timestamp.format = "epoch_millis" is not one of epoch_s, epoch_ms, epoch_us, epoch_ns,'
        " iso8601, strptime:<format>",
        id="unknown-time-format",
    ),
    pytest.param(
        '[timestamp]\nfield = "ts"\nformat = "strptime:%d/%m/%Y %Q"\n[columns]\nhost = "h"\n',
        'timestamp.format = "strptime:%d/%m/%Y %Q": %Q is not a strptime directive',
        id="bad-strptime",
    ),
    pytest.param(
        '[timestamp]\nfield = "ts"\n[columns]\nhost = "h"\n',
        "timestamp.format is missing: one of epoch_s, epoch_ms, epoch_us, epoch_ns, iso8601,"
        " strptime:<format>",
        id="no-time-format",
    ),
    pytest.param(
        GOOD_TS + '[columns]\nclientip = "ip"\n',
        "columns.clientip is not a staging column (did you mean client_ip?)",
        id="unknown-column-close",
    ),
    pytest.param(
        GOOD_TS + '[columns]\nts = "ts"\n',
        "columns.ts: the request time is set in [timestamp]",
        id="ts-in-columns",
    ),
    pytest.param(
        GOOD_TS + '[columns]\nclient_ip = "remote..ip"\n',
        "columns.client_ip = \"remote..ip\" is not a usable JSON path: unexpected '.' at"
        ' character 8 (write a.b.c, items[0].id, or $.headers."x.key" for keys with dots or'
        " spaces)",
        id="empty-key",
    ),
    pytest.param(
        GOOD_TS + '[columns]\napi_key = "headers.*"\n',
        "columns.api_key = \"headers.*\" is not a usable JSON path: unexpected wildcard '*' at"
        ' character 9 (write a.b.c, items[0].id, or $.headers."x.key" for keys with dots or'
        " spaces)",
        id="wildcard",
    ),
    pytest.param(
        GOOD_TS + '[columns]\nhost = "a\'); DROP TABLE requests; --"\n',
        'columns.host = "a\'); DROP TABLE requests; --" is not a usable JSON path: unexpected'
        ' "\'" at character 2 (write a.b.c, items[0].id, or $.headers."x.key" for keys with'
        " dots or spaces)",
        id="injection",
    ),
    pytest.param(
        '[timestamp]\nfield = "$"\nformat = "iso8601"\n[columns]\nhost = "h"\n',
        'timestamp.field = "$" is not a usable JSON path: it names the whole record, not a field'
        ' (write a.b.c, items[0].id, or $.headers."x.key" for keys with dots or spaces)',
        id="whole-record",
    ),
    pytest.param(
        GOOD_TS + "[columns]\nhost = 7\n",
        "columns.host must be a JSON path or a list of JSON paths",
        id="path-not-string",
    ),
    pytest.param(
        GOOD_TS,
        '[columns] is missing or empty: map columns, e.g. client_ip = "ip"',
        id="no-columns",
    ),
    pytest.param(
        GOOD_TS + '[columns]\nhost = "h"\n[colums]\nmethod = "m"\n',
        "unknown key colums at the top level (expected [timestamp], [columns], [scale])",
        id="unknown-table",
    ),
    pytest.param(
        '[timestamp]\nfield = "ts"\nformat = "iso8601"\nzone = "CET"\n[columns]\nhost = "h"\n',
        "timestamp.zone is not a known key (field, format)",
        id="unknown-timestamp-key",
    ),
    pytest.param(
        GOOD_TS + '[columns]\nhost = "h"\n[scale]\nhost = 2\n',
        "scale.host: only a numeric column mapped in [columns] scales",
        id="scale-text-column",
    ),
    pytest.param(
        GOOD_TS + '[columns]\nlatency_ms = "d"\n[scale]\nlatency_ms = 0\n',
        "scale.latency_ms must be a finite number other than 0",
        id="scale-zero",
    ),
]


@pytest.mark.parametrize(("toml", "message"), MAPPING_ERRORS)
def test_mapping_errors_name_the_file_and_key(
    case: duckdb.DuckDBPyConnection, tmp_path: Path, toml: str, message: str
) -> None:
    path = mapping(tmp_path, toml)
    data = tmp_path / "gateway.log"
    data.write_text(jsonl(DOCUMENTED), encoding="utf-8")
    with pytest.raises(InputError) as e:
        ingest_file(case, data, fmt="jsonl", options=Options(mapping=path))
    assert str(e.value) == f"{path}: {message}"
    # Raised before any record was read: nothing of the file is in the case.
    assert case.execute("SELECT count(*) FROM sources").fetchall() == [(0,)]


def test_mapping_that_is_not_toml(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = mapping(tmp_path, "[timestamp\nfield = 1\n")
    with pytest.raises(InputError) as e:
        FORMATS["jsonl"].check_options(Options(mapping=path))
    assert str(e.value).startswith(f"{path}: not valid TOML: ")
    assert "\n" not in str(e.value)


def test_unknown_column_without_a_close_match_lists_the_columns(tmp_path: Path) -> None:
    path = mapping(tmp_path, GOOD_TS + '[columns]\nfavourite_colour = "c"\n')
    with pytest.raises(InputError) as e:
        FORMATS["jsonl"].check_options(Options(mapping=path))
    assert str(e.value).startswith(
        f"{path}: columns.favourite_colour is not a staging column (known: ts, request_id,"
    )
