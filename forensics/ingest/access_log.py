"""Text access logs (nginx / Apache): combined and common, virtual-host prefixed, user-described.

Every variant is cut by one RE2 regex inside DuckDB (`regexp_extract` with group names gives a
struct per line) and mapped to the staging columns by the same code:

- `combined` / `common`: `addr ident user [time] "request" status bytes`, then optionally unquoted
  extra fields (Apache `%D`, `%T`) before `"referer" "user agent"`, an nginx `main` quoted
  X-Forwarded-For, and any tail of tokens; `key="value"` pairs in the tail are read for the
  X-Forwarded-For, request id, host and request time. A quoted field that is opened must be
  closed: a line cut inside the user agent does not match.
- `vhost-combined`: the same line after `server-name[:port] ` (Apache `vhost_combined`, nginx
  formats starting with `$host`). A virtual-host line in a file read as combined is quarantined,
  never loaded with the server name as the client.
- `log-format`: any layout described with `--log-format` (see log_format.py).

Quoted fields keep the writer's escapes and are decoded by `nginx.unescape`. See FORMATS.md 4.1.
"""

from __future__ import annotations

import ipaddress
import re

from forensics.case.macros import HOST_NAME_MAX, HOST_NAME_RE
from forensics.errors import UsageError
from forensics.ingest import log_format
from forensics.ingest.base import Adapter, Options, Staging
from forensics.ingest.log_format import QUOTED_VALUE, CompiledFormat
from forensics.ingest.nginx import (
    CLF_TIME,
    dash_null,
    quick_request,
    split_request,
    time_error,
    unescape,
)
from forensics.sqltext import sql_str

_QUOTED = f'"{QUOTED_VALUE}"'
# A tail token: plain text, or text holding a closed quoted string (`key="a b"`, `"x"`).
_TAIL = r'((?:\s+(?:[^"\s]*"(?:[^"\\]|\\.)*"[^"\s]*|[^"\s]+))*)\s*'
_AFTER_TIME = (
    r"\[([^\]]*)\] " + _QUOTED + r" (\d+|-) (\d+|-)"
    r"(?:((?: [^\"\s]+)*) " + _QUOTED + " " + _QUOTED + r"(?: " + _QUOTED + r")?)?" + _TAIL + "$"
)
_AFTER_GROUPS = ["time", "request", "status", "bytes", "extra", "referer", "ua", "xff", "tail"]
COMBINED_RE = r"^(\S+) (\S+) (.*?) " + _AFTER_TIME
COMBINED_GROUPS = ["addr", "ident", "user", *_AFTER_GROUPS]
# server-name[:port], then the combined line; ident and user are single tokens here.
VHOST_RE = r"^(\S+?)(?::(\d+))? (\S+) (\S+) (\S+) " + _AFTER_TIME
VHOST_GROUPS = ["vhost", "port", "addr", "ident", "user", *_AFTER_GROUPS]

_COMBINED = re.compile(COMBINED_RE)
_VHOST = re.compile(VHOST_RE)
_HOST_NAME = re.compile(HOST_NAME_RE)

# key="value" / key=value pairs of a tail, and the keys read from them (lower case).
_PAIR = r'[A-Za-z_][A-Za-z0-9_.-]*=(?:"(?:[^"\\]|\\.)*"|[^"\s]*)'
_PAIR_KEYS = {
    "xff": ("x-forwarded-for", "x_forwarded_for", "http_x_forwarded_for", "xff", "forwarded_for"),
    "request_id": ("request_id", "request-id", "x-request-id", "x_request_id", "req_id"),
    "host": ("host", "http_host", "vhost", "server_name"),
    "request_time": ("request_time", "request-time"),
}


def _pair(key: str) -> str:
    """The value of a tail's `key=...` pair (any of the key's spellings), unquoted."""
    names = ", ".join(sql_str(k) for k in _PAIR_KEYS[key])
    found = (
        f"list_filter(regexp_extract_all(m.tail, {sql_str(_PAIR)}),"
        f" lambda kv: lower(split_part(kv, '=', 1)) IN ({names}))[1]"
    )
    value = f"regexp_extract({found}, '^[^=]*=\"?(.*?)\"?$', 1)"
    return f"CASE WHEN contains(m.tail, '=') THEN {dash_null(unescape(value))} END"


def _text_source(regex: str, groups: list[str], ts: str, request: str) -> str:
    """SELECT over chunk_lines: the match struct `m`, the time `ts_`, request line and parts."""
    return f"""
SELECT line_no, line, m, ts_, req, {split_request("req", "rq0")} AS rq
FROM (
  SELECT *, {quick_request("req")} AS rq0
  FROM (
    SELECT line_no, line, m, {ts} AS ts_, {request} AS req
    FROM (SELECT line_no, line, regexp_extract(line, {sql_str(regex)}, {groups!r}) AS m
          FROM chunk_lines)))
"""


_CLF_TS = f"try_strptime(m.time, '{CLF_TIME}')"
_REQUEST = unescape("m.request")
_COMBINED_SOURCE = _text_source(COMBINED_RE, COMBINED_GROUPS, _CLF_TS, _REQUEST)
_VHOST_SOURCE = _text_source(VHOST_RE, VHOST_GROUPS, _CLF_TS, _REQUEST)
_CLF_ERROR = time_error("m.time", "ts_", "dd/Mon/yyyy:HH:MM:SS +hhmm")
_COMBINED_ERROR = f"""
CASE WHEN m.addr = '' THEN 'does not match the combined/common log format'
     WHEN contains(m.user, ' ') AND (ip_num(strip_port(m.ident)) IS NOT NULL
                                     OR (contains(m.ident, '.') AND is_host_name(m.ident)))
       THEN 'a virtual-host line (server name, then the client address): pass --format'
            || ' vhost-combined'
     {_CLF_ERROR}
END
"""
_VHOST_ERROR = f"""
CASE WHEN m.addr = '' THEN 'does not match the vhost_combined log format'
          || ' (server-name[:port] client ident user [time] "request" status bytes ...)'
     {_CLF_ERROR}
END
"""


def _combined_columns() -> dict[str, str]:
    return {
        "ts": "ts_",
        "user_id": dash_null("m.user"),
        "client_ip": dash_null("m.addr"),
        "xff": f"coalesce({dash_null(unescape('m.xff'))}, {_pair('xff')})",
        "user_agent": dash_null(unescape("m.ua")),
        "referer": dash_null(unescape("m.referer")),
        "request_id": _pair("request_id"),
        "host": _pair("host"),
        "method": "nullif(rq.method, '')",
        "uri": "CASE WHEN rq.method <> '' THEN rq.uri ELSE nullif(req, '') END",
        "status": dash_null("m.status"),
        "response_bytes": dash_null("m.bytes"),
        "latency_ms": f"round(TRY_CAST({_pair('request_time')} AS DOUBLE) * 1000, 3)",
    }


def is_address(token: str) -> bool:
    """An IP address (optionally with a port) or a host name, as a client field holds."""
    bare = token.rsplit(":", 1)[0] if token.count(":") == 1 else token.strip("[]")
    try:
        ipaddress.ip_address(bare)
        return True
    except ValueError:
        return (
            len(token) <= HOST_NAME_MAX
            and _HOST_NAME.fullmatch(token) is not None
            and re.search("[A-Za-z]", token) is not None
        )


def is_vhost_line(line: str) -> bool:
    """A virtual-host line: server name, then a client address, ident and user tokens."""
    m = _VHOST.match(line)
    return m is not None and is_address(m.group(3)) and is_address(m.group(1))


class Combined(Adapter):
    name = "combined"
    description = "nginx / Apache combined or common access log (text)"

    def sniff(self, head: list[str]) -> bool:
        lines = head[:10]
        hits = sum(1 for line in lines if _COMBINED.match(line) and not is_vhost_line(line))
        return hits > 0 and 2 * hits >= len(lines)

    def staging(self, options: Options) -> Staging:
        return Staging(source=_COMBINED_SOURCE, error=_COMBINED_ERROR, columns=_combined_columns())


class Common(Combined):
    name = "common"
    description = "nginx / Apache common access log (same parser as combined)"
    auto_detect = False


class VhostCombined(Adapter):
    name = "vhost-combined"
    description = "Apache vhost_combined / nginx $host-prefixed access log (server name first)"

    def sniff(self, head: list[str]) -> bool:
        lines = head[:10]
        hits = sum(1 for line in lines if is_vhost_line(line))
        return hits > 0 and 2 * hits >= len(lines)

    def staging(self, options: Options) -> Staging:
        columns = _combined_columns()
        columns["host"] = f"coalesce({dash_null('m.vhost')}, {_pair('host')})"
        columns["port"] = dash_null("m.port")
        return Staging(source=_VHOST_SOURCE, error=_VHOST_ERROR, columns=columns)


class CustomLogFormat(Adapter):
    name = "log-format"
    description = "text access log described by --log-format (Apache LogFormat, nginx log_format)"
    auto_detect = False

    def sniff(self, head: list[str]) -> bool:
        return False

    def check_options(self, options: Options) -> None:
        if not options.log_format:
            raise UsageError(
                "--format log-format needs --log-format",
                hint="e.g. --log-format '%v:%p %h %l %u %t \"%r\" %>s %O'",
            )
        log_format.compile_format(options.log_format)

    def staging(self, options: Options) -> Staging:
        self.check_options(options)
        return custom_staging(log_format.compile_format(options.log_format or ""))


def _value(compiled: CompiledFormat, kind: str) -> str | None:
    """The SQL value of the first field of `kind`, decoded and '-'/'' as NULL; None if absent."""
    f = compiled.fields.get(kind)
    if f is None:
        return None
    return dash_null(unescape(f"m.{kind}") if f.quoted else f"m.{kind}")


def _first(*exprs: str | None) -> str:
    present = [e for e in exprs if e is not None]
    if not present:
        return "NULL"
    return present[0] if len(present) == 1 else f"coalesce({', '.join(present)})"


def _scaled(expr: str | None, factor: float) -> str | None:
    return None if expr is None else f"TRY_CAST({expr} AS DOUBLE) * {factor}"


# The time fields of a format, finest first: nginx $msec has milliseconds, the others seconds.
_TIME_KINDS = ("time_epoch", "time_iso", "time_strf", "time_clf", "time_clf_bare")


def _time(compiled: CompiledFormat) -> tuple[str, str]:
    """The time of a line (from its finest time field), and the raw text (for the error)."""
    exprs: list[str] = []
    raws: list[str] = []
    for kind in _TIME_KINDS:
        raw = _value(compiled, kind)
        if raw is None:
            continue
        raws.append(raw)
        strftime = compiled.fields[kind].strftime
        if kind in ("time_clf", "time_clf_bare"):
            exprs.append(f"try_strptime({raw}, '{CLF_TIME}')")
        elif kind == "time_iso":
            exprs.append(f"TRY_CAST({raw} AS TIMESTAMPTZ)")
        elif kind == "time_epoch":
            exprs.append(f"epoch_ts({raw}, '{strftime or 's'}')")
        else:
            exprs.append(f"try_strptime({raw}, {sql_str(strftime or '')})")
    return _first(*exprs), _first(*raws)


def custom_staging(compiled: CompiledFormat) -> Staging:
    """Staging for a compiled --log-format: each canonical column from the fields present."""
    ts, raw_time = _time(compiled)
    v = {kind: _value(compiled, kind) for kind in compiled.fields}
    request = v.get("request") or "NULL::VARCHAR"
    query = v.get("query")
    # Apache %q keeps its '?', nginx $args has none
    with_mark = (
        "''"
        if query is None
        else f"coalesce(CASE WHEN starts_with({query}, '?') THEN {query}"
        f" ELSE '?' || {query} END, '')"
    )
    path_query = None if v.get("path") is None else f"{v['path']} || {with_mark}"
    uri = _first(
        v.get("uri"),
        path_query,
        "CASE WHEN rq.method <> '' THEN rq.uri ELSE nullif(req, '') END",
    )
    upstream_s = None
    if v.get("upstream_s") is not None:
        numbers = f"regexp_extract_all({v['upstream_s']}, '[0-9]+(?:\\.[0-9]+)?')"
        upstream_s = f"list_sum(list_transform({numbers}, lambda x: CAST(x AS DOUBLE)))"
    latency = _first(
        _scaled(v.get("latency_us"), 0.001),
        _scaled(v.get("latency_ms"), 1),
        _scaled(v.get("latency_s"), 1000),
        _scaled(upstream_s, 1000),
    )
    last_status = r"'([0-9]{3})\D*$'"
    columns = {
        "ts": "ts_",
        "request_id": _first(v.get("request_id")),
        "user_id": _first(v.get("user")),
        "auth_header": _first(v.get("auth")),
        "api_key": _first(v.get("api_key")),
        "client_ip": _first(v.get("addr")),
        "xff": _first(v.get("xff")),
        "user_agent": _first(v.get("ua")),
        "origin": _first(v.get("origin")),
        "referer": _first(v.get("referer")),
        "host": _first(v.get("host")),
        "port": _first(v.get("port")),
        "method": _first(v.get("method"), "nullif(rq.method, '')"),
        "uri": uri,
        "status": _first(v.get("status")),
        "upstream_status": "NULL"
        if v.get("upstream_status") is None
        else f"nullif(regexp_extract({v['upstream_status']}, {last_status}, 1), '')",
        "latency_ms": "NULL" if latency == "NULL" else f"round({latency}, 3)",
        "request_bytes": _first(v.get("request_bytes")),
        "response_bytes": _first(v.get("body_bytes"), v.get("bytes_sent")),
    }
    source = _text_source(compiled.regex, compiled.groups, ts, request)
    expected = {
        "time_clf": "dd/Mon/yyyy:HH:MM:SS +hhmm",
        "time_clf_bare": "dd/Mon/yyyy:HH:MM:SS +hhmm",
        "time_iso": "ISO 8601",
        "time_epoch": "epoch seconds",
        "time_strf": "the strftime format given",
    }
    first_time = next(k for k in _TIME_KINDS if compiled.has(k))
    error = f"""
CASE WHEN m.line_ = '' THEN 'does not match the --log-format layout'
     {time_error(raw_time, "ts_", expected[first_time])}
END
"""
    return Staging(source=source, error=error, columns=columns)
