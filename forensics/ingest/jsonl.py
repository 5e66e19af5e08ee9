"""Any other JSON-lines gateway log, through a user's TOML mapping file (``--mapping``).

The mapping says where each staging column is in a record (docs/mapping-example.toml is a
commented example)::

    [timestamp]                  # required: the request start time
    field = "ts"                 # a JSON path
    format = "epoch_ms"          # epoch_s | epoch_ms | epoch_us | epoch_ns | iso8601
                                 # | strptime:<format>, e.g. "strptime:%d/%m/%Y %H:%M:%S"

    [columns]                    # required: staging column = JSON path, or a list of paths
    client_ip = "remote.ip"      #   (the first one present and non-empty wins)
    api_key = ["headers.x-api-key", "headers.apikey"]   # raw secrets: fingerprinted on load

    [scale]                      # optional: multiply a numeric column
    latency_ms = 1000            #   the log has seconds, the column wants milliseconds

A JSON path is dotted (``a.b.c``, ``items[0].id``) or JSONPath (``$.a.b``); a key holding dots,
spaces or quotes is written quoted (``$.headers."x.api.key"`` or ``$['a b']``). Keys are
case-sensitive. Wildcards, filters and recursive descent are refused: a column holds one value.

Every path of the mapping goes into one ``json_extract_string(record, [path, ...])`` call, so
each line is parsed once whatever the number of columns. (A json_transform structure built
from the paths measured no faster, and it breaks when one column maps ``a`` and another
``a.b``.) Mapping text that ends up in SQL (paths, the strptime format, the field name in
quarantine reasons) is validated first and then written as escaped string literals.

Times without a UTC offset (ISO 8601 without ``Z``/``+hh:mm``, strptime without ``%z``) are
read as UTC, whatever the session time zone.

The helpers at the top (exact epoch arithmetic, ISO 8601 as UTC, redaction of mapped secrets
in quarantined raw text) are shared with the Cloudflare adapter.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forensics.case.fingerprints import FINGERPRINT_PATTERN
from forensics.errors import InputError, UsageError
from forensics.ingest.base import STAGING, Adapter, Options, Staging
from forensics.sqltext import sql_str

# --- SQL helpers shared with cloudflare.py ---------------------------------------------------


def micros_to_ts(micros: str) -> str:
    """TIMESTAMPTZ from microseconds since the epoch, exact (no float); NULL when out of range."""
    return f"try(TIMESTAMPTZ '1970-01-01 00:00:00+00' + to_microseconds(CAST({micros} AS BIGINT)))"


_MICROS_PER = {"s": 1_000_000, "ms": 1_000, "us": 1}


def epoch_to_ts(value: str, unit: str) -> str:
    """An epoch number (JSON number or numeric string) in a fixed unit, exact to the microsecond.

    Seconds, ms and µs may carry a fraction (nginx ``$msec`` style); nanoseconds are integers and
    truncate to the microsecond, as DuckDB's TIMESTAMP_NS does.
    """
    if unit == "ns":
        return micros_to_ts(f"TRY_CAST({value} AS HUGEINT) // 1000")
    return micros_to_ts(f"round(TRY_CAST({value} AS DECIMAL(38, 9)) * {_MICROS_PER[unit]})")


# A time of day followed by a zone designator: Z, UTC/GMT, +hh, +hhmm or +hh:mm.
_HAS_OFFSET = (
    r"(?i)[0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?\s*(z|utc|gmt|[+-][0-9]{2}(:?[0-9]{2})?)$"
)


def iso_to_ts(value: str) -> str:
    """An ISO 8601 / RFC 3339 string; without a UTC offset it is taken as UTC."""
    return (
        f"CASE WHEN regexp_matches({value}, {sql_str(_HAS_OFFSET)})"
        f" THEN TRY_CAST({value} AS TIMESTAMPTZ)"
        f" ELSE timezone('UTC', TRY_CAST({value} AS TIMESTAMP)) END"
    )


def _re2_literal(text: str) -> str:
    """`text` as an RE2 pattern matching exactly it."""
    out = []
    for ch in text:
        if ch.isascii() and (ch.isalnum() or ch == "_"):
            out.append(ch)
        elif ch.isascii() and ch.isprintable() and ch != " ":
            out.append("\\" + ch)
        else:
            out.append(f"\\x{{{ord(ch):x}}}")
    return "".join(out)


def redact_secrets(raw: str, keys: list[str], values: list[str]) -> str:
    """`raw` with every secret fingerprinted: string values of JSON fields named in `keys` (any
    case, found by pattern so it works on broken JSON too) and the SQL expressions `values`
    (secrets the adapter extracted). A scheme word (Bearer, Basic, ...) is kept, the token after
    it becomes ``cred:...``, as in the loaded rows. Used for quarantined raw text only."""
    found = []
    if keys:
        names = "|".join(_re2_literal(k) for k in sorted(set(keys)))
        # The closing quote may be missing: a record cut off inside the secret.
        pattern = f'(?i)"(?:{names})"\\s*:\\s*"((?:[^"\\\\]|\\\\.)*)(?:"|$)'
        found.append(f"regexp_extract_all({raw}, {sql_str(pattern)}, 1)")
    if values:
        found.append("[" + ", ".join(values) + "]")
    if not found:
        return raw
    candidates = (
        f"list_filter(list_transform({' || '.join(found)}, lambda m: auth_token(m)),"
        f" lambda m: m IS NOT NULL AND NOT regexp_full_match(m, {sql_str(FINGERPRINT_PATTERN)}))"
    )
    return (
        f"list_reduce(list_prepend({raw}, {candidates}),"
        " lambda acc, m: replace(acc, m, cred_fp(m)))"
    )


def json_error(line: str) -> str:
    """Why a line that did not parse is not JSON."""
    return (
        f"CASE WHEN regexp_matches({line}, '^\\s*[\\[{{]')"
        f" AND NOT regexp_matches({line}, '[}}\\]]\\s*$')"
        " THEN 'invalid JSON: record is cut off' ELSE 'invalid JSON' END"
    )


# Each line is one record, or a JSON array of records (batched shippers): `rec` is the record
# text, NULL when an array line does not parse.
RECORDS = """
SELECT line_no, line, unnest(CASE WHEN json_opens(line, '[')
           THEN coalesce(try(json_extract(line, '$[*]'))::VARCHAR[], [NULL::VARCHAR])
           ELSE [line] END) AS rec
FROM chunk_lines
"""

# --- the mapping file ------------------------------------------------------------------------

EPOCH_FORMATS = {"epoch_s": "s", "epoch_ms": "ms", "epoch_us": "us", "epoch_ns": "ns"}
TIME_FORMATS = (*EPOCH_FORMATS, "iso8601", "strptime:<format>")
# Directives DuckDB's strptime accepts (checked against DuckDB 2.0).
_STRPTIME_DIRECTIVE = re.compile(r"%(-[dHIjMmSy]|[aAbBcdfgGhHIjmMnpSTuUVwWxXyYzZ%])")
_PATH_MAX = 512
_KEY = r"""(?:([^.\[\]"'\\*\s]+)|"([^"\\]+)")"""
_FIRST_KEY = re.compile(_KEY)
_DOT_KEY = re.compile(r"\." + _KEY)
_INDEX = re.compile(r"\[([0-9]{1,9})\]")
_BRACKET_KEY = re.compile(r"""\[(?:"([^"\\]+)"|'([^'\\]+)')\]""")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
PATH_HELP = 'write a.b.c, items[0].id, or $.headers."x.key" for keys with dots or spaces'
_SECRET_COLUMNS = ("auth_header", "api_key")
_NUMERIC = ("BIGINT", "INTEGER", "DOUBLE")

Part = str | int


def parse_path(text: str) -> tuple[Part, ...]:
    """The keys and array indices of a dotted or JSONPath path; ValueError says what is wrong."""
    if not text.strip():
        raise ValueError("it is empty")
    if len(text) > _PATH_MAX:
        raise ValueError(f"it is longer than {_PATH_MAX} characters")
    bad = _CONTROL.search(text)
    if bad:
        raise ValueError(f"control character at character {bad.start() + 1}")
    jsonpath = text.startswith("$")
    steps = (_DOT_KEY, _INDEX, _BRACKET_KEY) if jsonpath else (_DOT_KEY, _INDEX)
    parts: list[Part] = []
    pos = 1 if jsonpath else 0
    if not jsonpath:
        first = _FIRST_KEY.match(text)
        if first is None:
            raise _unexpected(text, 0)
        parts.append(first.group(1) or first.group(2))
        pos = first.end()
    while pos < len(text):
        for step in steps:
            m = step.match(text, pos)
            if m is not None:
                break
        else:
            raise _unexpected(text, pos)
        parts.append(int(m.group(1)) if step is _INDEX else m.group(1) or m.group(2))
        pos = m.end()
    if not parts:
        raise ValueError("it names the whole record, not a field")
    return tuple(parts)


def _unexpected(text: str, pos: int) -> ValueError:
    if text[pos] == "." and pos + 1 == len(text):
        return ValueError("it ends with '.'")
    if text[pos] == "." and text[pos + 1] not in "\"'":
        pos += 1
    what = "wildcard '*'" if text[pos] == "*" else repr(text[pos])
    return ValueError(f"unexpected {what} at character {pos + 1}")


def to_jsonpath(parts: tuple[Part, ...]) -> str:
    """The canonical DuckDB JSONPath: every key quoted, so dashes and dots need no care."""
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f'."{p}"' for p in parts)


@dataclass(frozen=True)
class Mapping:
    """A validated mapping file."""

    path: Path
    ts_field: str  # as the user wrote it, for quarantine reasons
    ts_path: str  # canonical JSONPath
    ts_format: str  # epoch_s | epoch_ms | epoch_us | epoch_ns | iso8601 | strptime
    strptime: str | None
    columns: dict[str, tuple[str, ...]]  # staging column -> canonical JSONPaths, in priority
    scale: dict[str, float]
    secret_keys: tuple[str, ...]  # last key of each path mapped to a secret column


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _path(mapping_path: Path, key: str, value: object) -> str:
    if not isinstance(value, str):
        raise InputError(mapping_path, f"{key} must be a JSON path string")
    try:
        return to_jsonpath(parse_path(value))
    except ValueError as e:
        raise InputError(
            mapping_path, f"{key} = {_q(value)} is not a usable JSON path: {e} ({PATH_HELP})"
        ) from None


def _time_format(mapping_path: Path, value: object) -> tuple[str, str | None]:
    known = ", ".join(TIME_FORMATS)
    if not isinstance(value, str):
        raise InputError(mapping_path, f"timestamp.format is missing: one of {known}")
    if value in EPOCH_FORMATS or value == "iso8601":
        return value, None
    if not value.startswith("strptime:"):
        raise InputError(mapping_path, f"timestamp.format = {_q(value)} is not one of {known}")
    fmt = value.removeprefix("strptime:")
    where = f"timestamp.format = {_q(value)}"
    if _CONTROL.search(fmt) or len(fmt) > 200:
        raise InputError(mapping_path, f"{where}: control characters or over 200 characters")
    pos, directives = 0, 0
    while (pos := fmt.find("%", pos)) >= 0:
        m = _STRPTIME_DIRECTIVE.match(fmt, pos)
        if m is None:
            bad = fmt[pos : pos + 2] if pos + 1 < len(fmt) else "a lone % at the end"
            raise InputError(mapping_path, f"{where}: {bad} is not a strptime directive")
        directives += m.group(1) != "%"
        pos = m.end()
    if not directives:
        raise InputError(mapping_path, f"{where}: no strptime directive such as %Y or %H")
    return "strptime", fmt


def _unknown_column(mapping_path: Path, table: str, name: str) -> InputError:
    close = difflib.get_close_matches(name, list(STAGING), n=1)
    known = f"did you mean {close[0]}?" if close else "known: " + ", ".join(STAGING)
    return InputError(mapping_path, f"{table}.{name} is not a staging column ({known})")


def load_mapping(path: Path) -> Mapping:
    """Read and check a mapping file; every problem is an InputError naming the file and key."""
    try:
        with path.open("rb") as f:
            doc: dict[str, Any] = tomllib.load(f)
    except OSError as e:
        raise InputError(path, f"cannot read the mapping file: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(path, f"not valid TOML: {e}") from None
    for key in doc:
        if key not in ("timestamp", "columns", "scale"):
            raise InputError(
                path,
                f"unknown key {key} at the top level (expected [timestamp], [columns], [scale])",
            )
    stamp = doc.get("timestamp")
    if stamp is None:
        raise InputError(
            path,
            '[timestamp] is missing: give the request time as field = "..." and format = "..."',
        )
    if not isinstance(stamp, dict):
        raise InputError(path, "timestamp must be a table: [timestamp] with field and format")
    for key in stamp:
        if key not in ("field", "format"):
            raise InputError(path, f"timestamp.{key} is not a known key (field, format)")
    if "field" not in stamp:
        raise InputError(path, "timestamp.field is missing: the JSON path of the request time")
    ts_path = _path(path, "timestamp.field", stamp["field"])
    ts_format, strptime = _time_format(path, stamp.get("format"))

    table = doc.get("columns")
    if not isinstance(table, dict) or not table:
        raise InputError(path, '[columns] is missing or empty: map columns, e.g. client_ip = "ip"')
    columns: dict[str, tuple[str, ...]] = {}
    secret_keys: list[str] = []
    for name, value in table.items():
        if name == "ts":
            raise InputError(path, "columns.ts: the request time is set in [timestamp]")
        if name not in STAGING:
            raise _unknown_column(path, "columns", name)
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) for v in values):
            raise InputError(path, f"columns.{name} must be a JSON path or a list of JSON paths")
        columns[name] = tuple(_path(path, f"columns.{name}", v) for v in values)
        if name in _SECRET_COLUMNS:
            secret_keys += [
                str(p) for v in values for p in parse_path(v)[-1:] if isinstance(p, str)
            ]

    scale: dict[str, float] = {}
    scales = doc.get("scale", {})
    if not isinstance(scales, dict):
        raise InputError(path, "scale must be a table: [scale] with column = factor")
    for name, factor in scales.items():
        if name not in STAGING:
            raise _unknown_column(path, "scale", name)
        if STAGING[name] not in _NUMERIC or name not in columns:
            raise InputError(
                path, f"scale.{name}: only a numeric column mapped in [columns] scales"
            )
        if isinstance(factor, bool) or not isinstance(factor, int | float):
            raise InputError(path, f"scale.{name} must be a number")
        if not math.isfinite(factor) or factor == 0:
            raise InputError(path, f"scale.{name} must be a finite number other than 0")
        scale[name] = float(factor)
    return Mapping(
        path, stamp["field"], ts_path, ts_format, strptime, columns, scale, tuple(secret_keys)
    )


# --- the adapter -----------------------------------------------------------------------------


def _ts_sql(m: Mapping, raw: str) -> str:
    if m.ts_format in EPOCH_FORMATS:
        return epoch_to_ts(raw, EPOCH_FORMATS[m.ts_format])
    if m.ts_format == "iso8601":
        return iso_to_ts(raw)
    fmt = m.strptime or ""
    parsed = f"try_strptime({raw}, {sql_str(fmt)})"
    has_zone = any(d.group(1) in ("z", "Z") for d in _STRPTIME_DIRECTIVE.finditer(fmt))
    return parsed if has_zone else f"timezone('UTC', {parsed})"


def _error_sql(m: Mapping) -> str:
    field = sql_str(f"timestamp {m.ts_field} = ")
    fmt = m.ts_format if m.strptime is None else f"strptime:{m.strptime}"
    number = "regexp_full_match(ts_raw, '-?[0-9]+(\\.[0-9]*)?([eE][+-]?[0-9]+)?')"
    if m.ts_format in EPOCH_FORMATS:
        unparsed = (
            f"CASE WHEN {number} THEN ' is out of range for {fmt}'"
            f" ELSE ' is not a number (timestamp.format is {fmt})' END"
        )
    else:
        unparsed = sql_str(f" does not parse as {fmt}")
    return f"""
CASE WHEN v IS NULL THEN {json_error("coalesce(rec, line)")}
     WHEN ts_raw IS NULL THEN
       CASE WHEN json_type(rec) <> 'OBJECT' THEN 'JSON value is not an object'
            ELSE {sql_str(f"no timestamp: {m.ts_field} is missing or null")} END
     WHEN ts_ IS NULL THEN {sql_str(f"timestamp {m.ts_field} of ")} || value_shape(ts_raw)
          || {unparsed}
     WHEN NOT plausible_ts(ts_) THEN {field} || left(ts_raw, 40)
          || {sql_str(f" is implausible as {fmt} (it would be ")}
          || strftime(ts_, '%Y-%m-%d') || ')'
END"""


def build_staging(m: Mapping) -> Staging:
    paths: list[str] = [m.ts_path]
    for ps in m.columns.values():
        paths += [p for p in ps if p not in paths]
    slot = {p: i + 1 for i, p in enumerate(paths)}
    exprs: dict[str, str] = {}
    for name, ps in m.columns.items():
        values = [f"nullif(v[{slot[p]}], '')" for p in ps]
        expr = values[0] if len(values) == 1 else f"coalesce({', '.join(values)})"
        if name in m.scale:
            expr = f"TRY_CAST({expr} AS DOUBLE) * {m.scale[name]!r}"
        exprs[name] = expr
    secrets = [exprs[c] for c in _SECRET_COLUMNS if c in exprs]
    raw = redact_secrets("coalesce(rec, line)", list(m.secret_keys), secrets)
    source = f"""
SELECT line_no, CASE WHEN err_ IS NOT NULL THEN {raw} ELSE line END AS line, v, ts_, err_
FROM (SELECT *, {_error_sql(m)} AS err_
  FROM (SELECT *, {_ts_sql(m, "ts_raw")} AS ts_
    FROM (SELECT *, trim(v[1]) AS ts_raw
      FROM (SELECT line_no, line, rec,
                   try(json_extract_string(rec, [{", ".join(sql_str(p) for p in paths)}])) AS v
            FROM ({RECORDS})))))
"""
    return Staging(source=source, columns={"ts": "ts_", **exprs}, error="err_")


class JsonLines(Adapter):
    name = "jsonl"
    description = "any JSON-lines gateway log, mapped by a TOML file (--mapping)"
    auto_detect = False

    def sniff(self, head: list[str]) -> bool:
        return False

    def _mapping(self, options: Options) -> Mapping:
        if options.mapping is None:
            raise UsageError(
                "--format jsonl needs --mapping FILE",
                hint="write a TOML file mapping the log's fields to columns;"
                " docs/mapping-example.toml is a commented example",
            )
        return load_mapping(options.mapping)

    def check_options(self, options: Options) -> None:
        self._mapping(options)

    def staging(self, options: Options) -> Staging:
        return build_staging(self._mapping(options))
