"""Compile an Apache `LogFormat` or nginx `log_format` string into one RE2 regular expression.

The user describes their access-log layout the way the server was configured (as GoAccess and
lnav let them), and every line is then cut by a single `regexp_extract` inside DuckDB, the same
path the built-in text formats take. Each directive or variable becomes one capturing group named
for what it holds (`addr`, `time_clf`, `referer`, ...; a second occurrence of a kind is kept but
not read), and the literal text between them is matched exactly. A directive between double
quotes captures up to the closing quote (the servers escape quotes inside values); an unquoted
one captures a token of the shape that directive prints.

Directives: https://httpd.apache.org/docs/2.4/mod/mod_log_config.html; variables:
https://nginx.org/en/docs/http/ngx_http_log_module.html (see FORMATS.md section 4.1b).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from forensics.errors import UsageError

QUOTED_VALUE = r"((?:[^\"\\]|\\.)*)"

# What a field holds -> the RE2 pattern of its value when it stands unquoted.
_SHAPES: dict[str, str] = {
    "addr": r"(\S+)",
    "host": r"(\S+)",
    "port": r"(\d+|-)",
    "ident": r"(\S+)",
    "user": r"(\S+)",
    "time_clf": r"\[([^\]]+)\]",
    "time_clf_bare": r"(\d{1,2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})",
    "time_iso": r"(\S+)",
    "time_epoch": r"(\d+(?:\.\d+)?)",
    "time_strf": r"(.+?)",
    "request": r"(\S+(?: \S+)*?)",
    "method": r"(\S+)",
    "uri": r"(\S+)",
    "path": r"(\S+)",
    "query": r"(\S*)",
    "status": r"(\d{3}|-)",
    "upstream_status": r"(\S+(?:(?:, | : )\S+)*)",
    "body_bytes": r"(\d+|-)",
    "bytes_sent": r"(\d+|-)",
    "request_bytes": r"(\d+|-)",
    "latency_us": r"(\d+|-)",
    "latency_ms": r"(\d+(?:\.\d+)?|-)",
    "latency_s": r"(\d+(?:\.\d+)?|-)",
    "upstream_s": r"(\S+(?:(?:, | : )\S+)*)",
    "referer": r"(\S+)",
    "ua": r"(\S+)",
    "xff": r"(\S+(?:, \S+)*)",
    "auth": r"(\S+(?: \S+)?)",
    "api_key": r"(\S+)",
    "origin": r"(\S+)",
    "request_id": r"(\S+)",
    "other": r"(\S+)",
}

# Request and response headers by lower-case name (Apache %{Name}i, nginx $http_name).
_HEADERS = {
    "referer": "referer",
    "user-agent": "ua",
    "x-forwarded-for": "xff",
    "authorization": "auth",
    "proxy-authorization": "auth",
    "x-api-key": "api_key",
    "api-key": "api_key",
    "apikey": "api_key",
    "x-goog-api-key": "api_key",
    "origin": "origin",
    "x-request-id": "request_id",
    "host": "host",
}

_NGINX: dict[str, str] = {
    "remote_addr": "addr",
    "remote_user": "user",
    "time_local": "time_clf_bare",
    "time_iso8601": "time_iso",
    "msec": "time_epoch",
    "request": "request",
    "request_method": "method",
    "request_uri": "uri",
    "uri": "path",
    "document_uri": "path",
    "args": "query",
    "query_string": "query",
    "status": "status",
    "upstream_status": "upstream_status",
    "body_bytes_sent": "body_bytes",
    "bytes_sent": "bytes_sent",
    "request_length": "request_bytes",
    "request_time": "latency_s",
    "upstream_response_time": "upstream_s",
    "request_id": "request_id",
    "host": "host",
    "server_name": "host",
    "server_port": "port",
}

_APACHE: dict[str, str] = {
    "a": "addr",
    "h": "addr",
    "l": "ident",
    "u": "user",
    "t": "time_clf",
    "r": "request",
    "m": "method",
    "U": "path",
    "q": "query",
    "s": "status",
    "b": "body_bytes",
    "B": "body_bytes",
    "O": "bytes_sent",
    "I": "request_bytes",
    "D": "latency_us",
    "T": "latency_s",
    "v": "host",
    "V": "host",
    "p": "port",
    "L": "request_id",
}
# Directives that print something this tool does not read (captured, then ignored).
_APACHE_OTHER = set("AfHkPRSXCenoxiF^")

_APACHE_TOKEN = re.compile(
    r"%(?P<mods>[<>!0-9,]*)(?:\{(?P<arg>[^}]*)\})?(?P<mods2>[<>]?)(?P<d>\^[a-zA-Z]{2}|[A-Za-z%])"
)
_NGINX_TOKEN = re.compile(r"\$(?:\{(?P<b>[A-Za-z0-9_]+)\}|(?P<n>[A-Za-z0-9_]+))")
_STRFTIME = re.compile(r"%[a-zA-Z%]")


@dataclass
class Field:
    kind: str
    quoted: bool = False
    strftime: str | None = None  # Apache %{format}t: the strptime format of the value


@dataclass
class CompiledFormat:
    """A log format as one regular expression over a whole line."""

    source: str  # the format as the user gave it
    dialect: str  # apache | nginx
    regex: str  # group 1 is the whole line (never empty on a match), then one per field
    groups: list[str]  # DuckDB struct names of the groups, in order
    fields: dict[str, Field] = field(default_factory=dict)  # first group of each kind

    def has(self, kind: str) -> bool:
        return kind in self.fields


# The layouts servers ship under a name (Apache's apache2.conf / httpd.conf, nginx's built-in).
NICKNAMES = {
    "common": '%h %l %u %t "%r" %>s %b',
    "combined": '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"',
    "vhost_combined": '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
}


def unwrap(text: str) -> str:
    """The format string from a pasted config line (`LogFormat "..." nick`, `CustomLog file
    "..."`, `log_format name '...' '...';`) or a nickname (`vhost_combined`)."""
    s = text.strip()
    if s in NICKNAMES:
        return NICKNAMES[s]
    apache = re.fullmatch(r'(?s)(?:LogFormat|CustomLog\s+\S+)\s+"((?:[^"\\]|\\.)*)"(?:\s+\S+)?', s)
    if apache:
        return _apache_unescape(apache.group(1))
    nginx = re.fullmatch(r"(?s)log_format\s+\S+(?:\s+escape=(\S+))?\s+(.*?);?", s)
    if nginx and nginx.group(1) == "json":
        raise UsageError(
            "--log-format: a log_format with escape=json writes JSON lines",
            hint="load the file with --format nginx-json (or leave --format out)",
        )
    if nginx:
        parts = re.findall(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"", nginx.group(2))
        if parts:
            return "".join(re.sub(r"\\(.)", r"\1", a or b) for a, b in parts)
        return nginx.group(2).strip()
    return _apache_unescape(s) if "%" in s and '\\"' in s else s


def _apache_unescape(s: str) -> str:
    return s.replace('\\"', '"').replace("\\t", "\t").replace("\\n", "\n").replace("\\\\", "\\")


def _literal(text: str) -> str:
    """RE2 for literal text: metacharacters escaped, everything else as is."""
    return "".join("\\" + c if c in r"\.^$|?*+()[]{}" else c for c in text)


def _tokens(fmt: str, dialect: str) -> list[str | Field]:
    """Literal strings and fields, in order."""
    pattern = _APACHE_TOKEN if dialect == "apache" else _NGINX_TOKEN
    out: list[str | Field] = []
    pos = 0
    for m in pattern.finditer(fmt):
        if m.start() > pos:
            out.append(fmt[pos : m.start()])
        pos = m.end()
        if dialect == "nginx":
            name = (m.group("b") or m.group("n")).lower()
            out.append(Field(_nginx_kind(name)))
            continue
        directive, arg = m.group("d"), m.group("arg")
        if directive == "%":
            out.append("%")
            continue
        out.append(_apache_field(directive, arg, m.group(0)))
    if pos < len(fmt):
        out.append(fmt[pos:])
    if dialect == "apache":
        stray = [t for t in out if isinstance(t, str) and "%" in t and t != "%"]
        if stray:
            bad = stray[0][stray[0].index("%") :][:6]
            raise UsageError(f"--log-format: {bad!r} is not an Apache LogFormat directive")
    return out


def _nginx_kind(name: str) -> str:
    if name in _NGINX:
        return _NGINX[name]
    if name.startswith("http_"):
        return _HEADERS.get(name[5:].replace("_", "-"), "other")
    return "other"


def _apache_field(directive: str, arg: str | None, text: str) -> Field:
    if directive == "i" and arg is not None:
        return Field(_HEADERS.get(arg.lower(), "other"))
    if directive == "a" and arg == "c":
        return Field("other")  # the peer address, when %a is the client after mod_remoteip
    if directive == "p" and arg not in (None, "canonical", "local"):
        return Field("other")  # %{remote}p: the client's port
    if directive == "s" and text.startswith("%<"):
        return Field("other")  # the original status of an internally redirected request
    if directive == "T" and arg:
        units = {"s": "latency_s", "ms": "latency_ms", "us": "latency_us"}
        if arg not in units:
            raise UsageError(f"--log-format: {text!r}: %T takes {{s}}, {{ms}} or {{us}}")
        return Field(units[arg])
    if directive == "t" and arg:
        return _apache_time(arg, text)
    if directive in _APACHE:
        return Field(_APACHE[directive])
    if directive in _APACHE_OTHER or directive.startswith("^"):
        return Field("other")
    raise UsageError(f"--log-format: {text!r} is not an Apache LogFormat directive")


def _apache_time(arg: str, text: str) -> Field:
    fmt = re.sub(r"^(?:begin|end):", "", arg)
    epoch = {"sec": "s", "msec": "ms", "usec": "us"}
    if fmt in epoch:
        return Field("time_epoch", strftime=epoch[fmt])
    if fmt in ("msec_frac", "usec_frac"):
        return Field("other")
    if not _STRFTIME.search(fmt):
        raise UsageError(f"--log-format: {text!r}: no strftime conversion in the time format")
    return Field("time_strf", strftime=fmt)


def compile_format(text: str) -> CompiledFormat:
    """The format string as one anchored regular expression, or a UsageError saying why not."""
    fmt = unwrap(text)
    if not fmt.strip():
        raise UsageError("--log-format: the format is empty")
    dialect = "nginx" if _NGINX_TOKEN.search(fmt) and not _APACHE_TOKEN.search(fmt) else "apache"
    tokens = _tokens(fmt, dialect)
    compiled = CompiledFormat(source=text, dialect=dialect, regex="", groups=["line_"])
    parts: list[str] = []
    counts: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        if isinstance(tok, str):
            parts.append(_literal(tok))
            continue
        before = tokens[i - 1] if i > 0 else ""
        after = tokens[i + 1] if i + 1 < len(tokens) else ""
        tok.quoted = (
            isinstance(before, str)
            and before.endswith('"')
            and isinstance(after, str)
            and after.startswith('"')
        )
        if tok.quoted:
            parts.append(QUOTED_VALUE)
        elif tok.kind == "time_clf_bare" and isinstance(after, str) and after.startswith("]"):
            parts.append(r"([^\]]+)")
        else:
            parts.append(_SHAPES[tok.kind])
        counts[tok.kind] = counts.get(tok.kind, 0) + 1
        name = tok.kind if counts[tok.kind] == 1 else f"{tok.kind}_{counts[tok.kind]}"
        compiled.groups.append(name)
        compiled.fields.setdefault(tok.kind, tok)
    times = [k for k in compiled.fields if k.startswith("time_")]
    if not times:
        raise UsageError(
            "--log-format: the format has no time field",
            hint="Apache %t or %{...}t; nginx $time_local, $time_iso8601 or $msec",
        )
    if not ({"request", "path", "uri"} & compiled.fields.keys()):
        raise UsageError(
            "--log-format: the format has no request field",
            hint="Apache %r or %U; nginx $request, $request_uri or $uri",
        )
    compiled.regex = "^(" + "".join(parts) + r")\s*$"
    return compiled
