"""Access-log layouts as servers write them in the wild, each written here from the server's
documented format (Apache mod_log_config, Debian's apache2.conf, nginx ngx_http_log_module):
virtual-host prefixes, extra fields, host names for addresses, and --log-format."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from forensics.case import db
from forensics.case.fingerprints import fingerprint
from forensics.errors import UsageError
from forensics.ingest import reader
from forensics.ingest.base import Options
from forensics.ingest.formats import detect_format
from forensics.ingest.log_format import compile_format
from forensics.ingest.pipeline import ingest_file
from tests.conftest import check_row, load, quarantine_reasons, requests_by_line, tables_containing
from tests.ingest.test_nginx import NEVER


def ts(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def lines(*text: str) -> str:
    return "\n".join(text) + "\n"


# Debian's apache2.conf:
#   LogFormat "%v:%p %h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\"" vhost_combined
VHOST = lines(
    'localhost:443 178.20.184.42 1j0vhgd jsmith [26/Jul/2023:00:01:26 -0700] "GET'
    ' /secure/RapidBoard.jspa HTTP/1.1" 200 5120 "-" "Mozilla/5.0 (X11; Linux x86_64)"',
    # nginx: log_format vhosts '$host $remote_addr - $remote_user [$time_local] "$request" '
    #                          '$status $body_bytes_sent "$http_referer" "$http_user_agent"';
    'lessons.example.com 192.168.0.1 - - [09/Jun/2020:12:10:39 -0700] "POST /v1/chat/completions'
    ' HTTP/1.1" 200 512 "https://lessons.example.com/app" "okhttp/4.12.0"',
    '127.0.1.1:80 127.0.0.1 - - [09/Jun/2020:12:10:40 -0700] "GET /server-status?auto HTTP/1.1"'
    ' 404 0 "-" "-"',
    # HostnameLookups On: %h prints the client's host name
    "api.example.org:443 dsl-10-2.isp.example.net - - [09/Jun/2020:12:10:41 -0700]"
    ' "GET /v1/models HTTP/1.1" 200 1024 "-" "curl/8.5.0"',
)

BASE = {"format": "vhost-combined", "request_bytes": None, "latency_ms": None, "xff": None}
NONE = {"credential_id": None, "credential_type": None, "key_fingerprint": None}


def check(row: dict[str, object], expected: dict[str, object]) -> None:
    check_row(row, expected, NEVER)


def test_vhost_combined_every_column(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    result = load(case, tmp_path, VHOST)
    assert result.format == "vhost-combined"
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (4, 4, 0)
    got = requests_by_line(case)
    check(got[1], BASE | NONE | {
        "ts": ts(2023, 7, 26, 7, 1, 26), "line_no": 1, "client_ip": "178.20.184.42",
        "user_id": "jsmith", "host": "localhost", "port": 443, "method": "GET",
        "path": "/secure/RapidBoard.jspa", "endpoint": "other", "status": 200,
        "response_bytes": 5120, "referer": None, "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
    })  # fmt: skip
    check(got[2], BASE | NONE | {
        "ts": ts(2020, 6, 9, 19, 10, 39), "line_no": 2, "client_ip": "192.168.0.1",
        "user_id": None, "host": "lessons.example.com", "port": None, "method": "POST",
        "path": "/v1/chat/completions", "endpoint": "chat", "status": 200,
        "response_bytes": 512, "referer": "https://lessons.example.com/app",
        "user_agent": "okhttp/4.12.0",
    })  # fmt: skip
    check(got[3], BASE | NONE | {
        "ts": ts(2020, 6, 9, 19, 10, 40), "line_no": 3, "client_ip": "127.0.0.1",
        "user_id": None, "host": "127.0.1.1", "port": 80, "method": "GET",
        "path": "/server-status", "query": "auto", "endpoint": "other", "status": 404,
        "error_type": "invalid", "response_bytes": 0, "referer": None, "user_agent": None,
    })  # fmt: skip
    check(got[4], BASE | NONE | {
        "ts": ts(2020, 6, 9, 19, 10, 41), "line_no": 4, "client_ip": None,
        "client_host": "dsl-10-2.isp.example.net", "user_id": None, "host": "api.example.org",
        "port": 443, "method": "GET", "path": "/v1/models", "endpoint": "other", "status": 200,
        "response_bytes": 1024, "referer": None, "user_agent": "curl/8.5.0",
    })  # fmt: skip


def test_vhost_detected_not_combined(tmp_path: Path) -> None:
    path = tmp_path / "other_vhosts_access.log"
    path.write_text(VHOST, encoding="utf-8")
    assert detect_format(path, reader.head_lines(path)) == "vhost-combined"


def test_vhost_lines_read_as_combined_are_quarantined(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """Forced to combined, no vhost line loads with the server name as the client."""
    plain = '192.0.2.9 - - [09/Jun/2020:12:10:42 -0700] "GET / HTTP/1.1" 200 5 "-" "ok/1"'
    path = tmp_path / "mixed.log"
    path.write_text(VHOST + plain + "\n", encoding="utf-8")
    result = ingest_file(case, path, fmt="combined", options=Options(max_quarantine_share=1))
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (5, 1, 4)
    reason = (
        "a virtual-host line (server name, then the client address): pass --format vhost-combined"
    )
    assert quarantine_reasons(case) == [(n, reason) for n in (1, 2, 3, 4)]
    assert case.execute("SELECT client_ip FROM requests").fetchall() == [("192.0.2.9",)]


def test_shifted_line_in_vhost_file_is_quarantined(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    text = VHOST + lines(
        # a plain combined line in a vhost file: one token short before the time
        '192.0.2.9 - - [09/Jun/2020:12:10:42 -0700] "GET / HTTP/1.1" 200 5 "-" "ok/1"',
        # a user name with a space: the fields would shift
        'www.example.com:80 192.0.2.10 - john smith [09/Jun/2020:12:10:43 -0700] "GET /'
        ' HTTP/1.1" 200 5 "-" "ok/1"',
    )
    result = load(case, tmp_path, text, options=Options(max_quarantine_share=1))
    assert (result.format, result.rows_loaded, result.rows_quarantined) == ("vhost-combined", 4, 2)
    reason = (
        "does not match the vhost_combined log format (server-name[:port] client ident user"
        ' [time] "request" status bytes ...)'
    )
    assert quarantine_reasons(case) == [(5, reason), (6, reason)]


# Apache: LogFormat "%h %l %u %t \"%r\" %>s %b %D \"%{Referer}i\" \"%{User-Agent}i\"" timed,
# then "... \"%{User-Agent}i\" X-Forwarded-For=\"%{X-Forwarded-For}i\"" and nginx key=value
# tails (request_time=$request_time request_id=$request_id).
EXTRA = lines(
    '192.0.2.1 - - [17/May/2015:10:05:03 +0000] "GET /x HTTP/1.1" 200 5 1234'
    ' "https://r.example/" "ua/1"',
    '192.0.2.2 - - [17/May/2015:10:05:04 +0000] "GET /y HTTP/1.1" 200 6 0 812 "-" "ua/2"'
    ' X-Forwarded-For="10.0.0.2, 10.0.0.1" request_time=0.250 request_id="5f0c3b"',
    '192.0.2.3 - - [17/May/2015:10:05:05 +0000] "GET /z HTTP/1.1" 200 7 "-" "ua/3"'
    ' host=api.example.com X-Forwarded-For="-"',
    # HostnameLookups On in a combined log
    'crawl-66-249-66-1.googlebot.com - - [17/May/2015:10:05:06 +0000] "GET /robots.txt'
    ' HTTP/1.1" 200 99 "-" "Googlebot/2.1"',
)


def test_extra_fields_keep_referer_agent_and_xff(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    result = load(case, tmp_path, EXTRA)
    assert (result.format, result.rows_loaded, result.rows_quarantined) == ("combined", 4, 0)
    got = requests_by_line(case)
    base = {"format": "combined", "request_bytes": None, "endpoint": "other", "status": 200}
    base |= NONE | {"user_id": None, "method": "GET", "port": None, "host": None}
    check(got[1], base | {
        "ts": ts(2015, 5, 17, 10, 5, 3), "line_no": 1, "client_ip": "192.0.2.1", "path": "/x",
        "response_bytes": 5, "referer": "https://r.example/", "user_agent": "ua/1",
        "xff": None, "latency_ms": None,
    })  # fmt: skip
    check(got[2], base | {
        "ts": ts(2015, 5, 17, 10, 5, 4), "line_no": 2, "client_ip": "192.0.2.2", "path": "/y",
        "response_bytes": 6, "referer": None, "user_agent": "ua/2",
        "xff": "10.0.0.2, 10.0.0.1", "latency_ms": 250.0, "request_id": "5f0c3b",
    })  # fmt: skip
    check(got[3], base | {
        "ts": ts(2015, 5, 17, 10, 5, 5), "line_no": 3, "client_ip": "192.0.2.3", "path": "/z",
        "response_bytes": 7, "referer": None, "user_agent": "ua/3", "xff": None,
        "latency_ms": None, "host": "api.example.com",
    })  # fmt: skip
    check(got[4], base | {
        "ts": ts(2015, 5, 17, 10, 5, 6), "line_no": 4, "client_ip": None,
        "client_host": "crawl-66-249-66-1.googlebot.com", "path": "/robots.txt",
        "response_bytes": 99, "referer": None, "user_agent": "Googlebot/2.1", "xff": None,
        "latency_ms": None,
    })  # fmt: skip


def test_unclosed_quote_in_tail_is_quarantined(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    text = lines(
        '192.0.2.1 - - [17/May/2015:10:05:03 +0000] "GET /x HTTP/1.1" 200 5 "-" "ua/1"',
        '192.0.2.2 - - [17/May/2015:10:05:04 +0000] "GET /y HTTP/1.1" 200 6 "-" "ua/2"'
        ' X-Forwarded-For="10.0.0.2, 10.0',
    )
    result = load(case, tmp_path, text, fmt="combined", options=Options(max_quarantine_share=1))
    assert quarantine_reasons(case) == [(2, "does not match the combined/common log format")]
    assert result.rows_loaded == 1


VHOST_FORMAT = '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"'


@pytest.mark.parametrize(
    "given",
    [
        VHOST_FORMAT,
        # pasted from apache2.conf, with its escapes and the nickname
        'LogFormat "%v:%p %h %l %u %t \\"%r\\" %>s %O \\"%{Referer}i\\" \\"%{User-Agent}i\\""'
        " vhost_combined",
    ],
)
def test_log_format_apache_vhost(
    case: duckdb.DuckDBPyConnection, tmp_path: Path, given: str
) -> None:
    text = VHOST.splitlines()
    body = lines(text[0], text[2], text[3], text[1])  # the line without a port last
    result = load(case, tmp_path, body, options=Options(log_format=given, max_quarantine_share=1))
    assert result.format == "log-format"
    assert (result.rows_loaded, result.rows_quarantined) == (3, 1)
    assert quarantine_reasons(case) == [(4, "does not match the --log-format layout")]
    got = requests_by_line(case)
    check(got[1], BASE | NONE | {
        "format": "log-format", "ts": ts(2023, 7, 26, 7, 1, 26), "line_no": 1,
        "client_ip": "178.20.184.42", "user_id": "jsmith", "host": "localhost", "port": 443,
        "method": "GET", "path": "/secure/RapidBoard.jspa", "endpoint": "other", "status": 200,
        "response_bytes": 5120, "referer": None, "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
    })  # fmt: skip
    assert (got[2]["client_ip"], got[2]["host"], got[2]["port"]) == ("127.0.0.1", "127.0.1.1", 80)
    assert (got[3]["client_ip"], got[3]["client_host"]) == (None, "dsl-10-2.isp.example.net")
    options = case.execute("SELECT options->>'log_format' FROM sources").fetchall()
    assert options == [(given,)]


KEY = "sk-Qm4Zt8Lp2Vx7Rb1Nc6Hd3Jf9Kg5Ws0Yb"
# nginx.conf, as the documentation's examples write it (strings concatenated by nginx)
NGINX_TIMED = (
    "log_format timed escape=default '$remote_addr - $remote_user [$time_local] '\n"
    '    \'"$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" \'\n'
    "    'rt=$request_time urt=\"$upstream_response_time\" us=$upstream_status'\n"
    "    ' $request_length $bytes_sent $request_id \"$http_authorization\" $host';"
)


def test_log_format_nginx_latency(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    text = lines(
        '203.0.113.5 - - [01/Jan/2026:10:00:00 +0100] "POST /v1/chat/completions HTTP/1.1" 200'
        ' 512 "-" "curl/8" rt=0.250 urt="0.120, 0.004 : 0.001" us=502, 200 1830 790'
        f' 7a1f9e0c "Bearer {KEY}" API.Example.com',
        # no request_time: the upstream times summed
        '203.0.113.6 - alice [01/Jan/2026:10:00:01 +0100] "GET /v1/models HTTP/1.1" 200 12'
        ' "https://x.example/" "python-requests/2.31" rt=- urt="0.010, 0.020" us=200 90 300'
        ' 7a1f9e0d "-" api.example.com',
    )
    load(case, tmp_path, text, options=Options(log_format=NGINX_TIMED))
    got = requests_by_line(case)
    key_fp = fingerprint(KEY, db.salt(case))
    common = {"format": "log-format", "xff": None, "port": None}
    check(got[1], common | {
        "ts": ts(2026, 1, 1, 9, 0, 0), "line_no": 1, "client_ip": "203.0.113.5",
        "user_id": None, "method": "POST", "path": "/v1/chat/completions", "endpoint": "chat",
        "status": 200, "upstream_status": 200, "response_bytes": 512, "request_bytes": 1830,
        "referer": None, "user_agent": "curl/8", "latency_ms": 250.0, "request_id": "7a1f9e0c",
        "credential_id": key_fp, "credential_type": "api_key", "key_fingerprint": key_fp,
        "host": "API.Example.com",  # as logged
    })  # fmt: skip
    check(got[2], common | NONE | {
        "ts": ts(2026, 1, 1, 9, 0, 1), "line_no": 2, "client_ip": "203.0.113.6",
        "user_id": "alice", "method": "GET", "path": "/v1/models", "endpoint": "other",
        "status": 200, "upstream_status": 200, "response_bytes": 12, "request_bytes": 90,
        "referer": "https://x.example/", "user_agent": "python-requests/2.31",
        "latency_ms": 30.0, "request_id": "7a1f9e0d", "host": "api.example.com",
    })  # fmt: skip
    assert tables_containing(case, KEY) == []


def test_log_format_times_and_split_request(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """An Apache strftime time, %m %U%q instead of %r, %D latency in microseconds."""
    fmt = '%{%Y-%m-%dT%H:%M:%S}t %a %m %U%q %>s %B %D "%{X-Forwarded-For}i"'
    text = lines(
        '2026-03-01T12:00:00 2001:db8::7 POST /v1/embeddings?x=1 200 2048 15300 "198.51.100.4"',
        '2026-03-01T12:00:01 192.0.2.8 GET /v1/models 401 0 800 "-"',
    )
    load(case, tmp_path, text, options=Options(log_format=fmt))
    got = requests_by_line(case)
    assert {k: got[1][k] for k in ("ts", "client_ip", "method", "path", "query", "latency_ms")} == {
        "ts": ts(2026, 3, 1, 12, 0, 0), "client_ip": "2001:db8::7", "method": "POST",
        "path": "/v1/embeddings", "query": "x=1", "latency_ms": 15.3,
    }  # fmt: skip
    assert (got[1]["xff"], got[1]["response_bytes"], got[1]["endpoint"]) == (
        "198.51.100.4",
        2048,
        "embeddings",
    )
    assert (got[2]["path"], got[2]["query"], got[2]["status"], got[2]["xff"]) == (
        "/v1/models",
        None,
        401,
        None,
    )


def test_log_format_epoch_and_iso(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    fmt = '$msec $remote_addr "$request" $status $request_time $time_iso8601'
    text = lines(
        '1767261600.123 192.0.2.1 "GET /a HTTP/1.1" 200 0.005 2026-01-01T10:00:00+00:00',
        '1767261601.500 192.0.2.2 "GET /b HTTP/1.1" 200 1.250 2026-01-01T10:00:01+00:00',
    )
    load(case, tmp_path, text, options=Options(log_format=fmt))
    got = requests_by_line(case)
    assert got[1]["ts"] == datetime(2026, 1, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert (got[2]["latency_ms"], got[2]["path"]) == (1250.0, "/b")


def test_log_format_bad_time_is_quarantined_with_shape(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    text = lines(
        '192.0.2.1 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5',
        '192.0.2.1 - - [17/Foo/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 5',
    )
    fmt = '%h %l %u %t "%r" %>s %b'
    load(case, tmp_path, text, options=Options(log_format=fmt, max_quarantine_share=1))
    assert quarantine_reasons(case) == [
        (
            2,
            "bad time of 26 characters shaped 99/aaa/9999:99:99:99 +9999:"
            " expected dd/Mon/yyyy:HH:MM:SS +hhmm",
        )
    ]


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ('%h %l %u "%r" %>s %b', "no time field"),
        ("%h %t %>s", "no request field"),
        ('%h %t "%r" %Q', "'%Q' is not an Apache LogFormat directive"),
        ('%h %t "%r" %{fast}T', "%T takes {s}, {ms} or {us}"),
        ("", "the format is empty"),
    ],
)
def test_log_format_errors(fmt: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("{", r"\{").replace("}", r"\}")):
        compile_format(fmt)


def test_log_format_regex_shape() -> None:
    compiled = compile_format(VHOST_FORMAT)
    assert compiled.dialect == "apache"
    assert compiled.groups == [
        "line_", "host", "port", "addr", "ident", "user", "time_clf", "request", "status",
        "bytes_sent", "referer", "ua",
    ]  # fmt: skip
    nginx = compile_format('$host $remote_addr - $remote_user [$time_local] "$request" $status')
    assert nginx.dialect == "nginx"
    assert nginx.groups[1:4] == ["host", "addr", "user"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("vhost_combined", VHOST_FORMAT),
        ('CustomLog ${APACHE_LOG_DIR}/access.log "%h %t \\"%r\\"" env=!dontlog', '%h %t "%r"'),
        ("log_format main '$remote_addr [$time_local] '\n  '\"$request\" $status';", None),
        ('log_format q "$remote_addr [$time_local] \\"$request\\"";', None),
    ],
)
def test_pasted_config_lines(given: str, expected: str | None) -> None:
    from forensics.ingest.log_format import unwrap

    got = unwrap(given)
    if expected is not None:
        assert got == expected
    else:
        assert got.startswith("$remote_addr [$time_local] ")
        assert '"$request"' in got


def test_escape_json_points_to_nginx_json() -> None:
    with pytest.raises(UsageError, match="escape=json writes JSON lines"):
        compile_format('log_format j escape=json \'{"a":"$remote_addr"}\';')


def test_key_in_address_or_vhost_is_never_stored(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """A host-name-shaped key in the client or server-name field is scrubbed like any string."""
    key = "AKIAIOSFODNN7EXAMPLX"
    text = lines(
        f'{key}:443 192.0.2.1 - - [09/Jun/2020:12:10:39 -0700] "GET / HTTP/1.1" 200 5 "-" "ok"',
        f'api.example.com:443 {key} - - [09/Jun/2020:12:10:40 -0700] "GET / HTTP/1.1" 200 5'
        ' "-" "ok"',
    )
    load(case, tmp_path, text, fmt="vhost-combined")
    assert tables_containing(case, key) == []
    assert tables_containing(case, key.lower()) == []
