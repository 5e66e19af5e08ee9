"""Provider usage exports: OpenAI Usage / Costs API pages, Anthropic usage / cost reports.

A file holds pages as the APIs return them: one page (pretty-printed or not), JSON lines of
pages, or a JSON array of pages. Python only cuts the file into pages (to know each page's line);
DuckDB unnests buckets and results and maps every field as a set.

Records and accounting. A record is one result of one bucket. `line_no` of a row (and of a
quarantined record) is the line where its page starts; the quarantine reason names the bucket and
result index within the page. A page that is not JSON, not an object or has no `data` list, a
bucket that is not an object or has no `results` list, and a result that is not an object, has
no usable start time or a count that is not a number are quarantined with the reason.

Deduplication. Every row has a `dedupe_key`: provider|source_format|operation|bucket_start|
bucket_end|project_id|user_id|api_key_id|model|batch|service_tier|line_item (NULL as empty),
followed, when the result has them, by its other string/boolean grouping fields (image `size`,
Anthropic `context_window`, `token_type`, ...) so that finer groupings stay apart. A result
whose key is already in `usage` (an earlier, overlapping export) or repeats within the file is
not inserted (the first copy wins). Such results are not counted as read: they go to
`Counts.blank`, so for usage sources `sources.lines_blank` is the number of results skipped as
duplicates (blank lines in these files are not counted), and a warning says how many.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Iterator
from pathlib import Path

import duckdb
import pyarrow as pa

from forensics.ingest import decompress, reader
from forensics.ingest.base import (
    QUARANTINE_RAW_CHARS,
    Counts,
    Options,
    ReferenceFormat,
    quarantine_rows,
)

# Columns of `usage` a loader may fill (the others are NULL); source_id, line_no, source_format,
# provider, model_family and dedupe_key are set here for every loader.
MAPPED = {
    "bucket_start": "TIMESTAMPTZ",
    "bucket_end": "TIMESTAMPTZ",
    "org_id": "VARCHAR",
    "project_id": "VARCHAR",
    "api_key_id": "VARCHAR",
    "user_id": "VARCHAR",
    "model": "VARCHAR",
    "operation": "VARCHAR",
    "service_tier": "VARCHAR",
    "batch": "BOOLEAN",
    "requests": "BIGINT",
    "input_tokens": "BIGINT",
    "input_uncached_tokens": "BIGINT",
    "cached_input_tokens": "BIGINT",
    "cache_creation_input_tokens": "BIGINT",
    "output_tokens": "BIGINT",
    "other_units": "DOUBLE",
    "other_unit_name": "VARCHAR",
    "cost": "DOUBLE",
    "currency": "VARCHAR",
    "line_item": "VARCHAR",
}
KEY_COLUMNS = (
    "provider",
    "source_format",
    "operation",
    "bucket_start",
    "bucket_end",
    "project_id",
    "user_id",
    "api_key_id",
    "model",
    "batch",
    "service_tier",
    "line_item",
)
NUMBER_TYPES = "('BIGINT', 'UBIGINT', 'DOUBLE', 'NULL')"


def _s(path: str, of: str = "r") -> str:
    """SQL: a JSON field of the result (r) or bucket (b) as text (NULL when absent or null)."""
    return f"json_extract_string({of}, '{path}')"


def _n(path: str, typ: str = "BIGINT", of: str = "r") -> str:
    """SQL: a JSON field as a number; numbers given as strings are read too."""
    return f"TRY_CAST({_s(path, of)} AS {typ})"


def _time(path: str) -> str:
    """SQL: a bucket time, unix seconds or RFC 3339."""
    return f"flex_ts({_s(path, 'b')}, 's')"


def _json_pages(text: str) -> Iterator[tuple[int, object | None, str]]:
    """(line, page, raw) for every top-level JSON value, and every element of a top-level array;
    page None (raw and reason in `raw`) for text that does not parse.

    Consecutive unparseable lines (a cut-off pretty-printed page) make one bad record.
    """
    decoder = json.JSONDecoder()
    pos, line, counted = 0, 1, 0
    size = len(text)
    bad_start: int | None = None
    bad_reason = ""

    def flush(upto: int) -> Iterator[tuple[int, object | None, str]]:
        nonlocal bad_start
        if bad_start is not None:
            start_line = text.count("\n", 0, bad_start) + 1
            raw = text[bad_start:upto].strip()
            yield start_line, None, bad_reason + "\x00" + raw[:QUARANTINE_RAW_CHARS]
            bad_start = None

    while True:
        while pos < size and text[pos] in " \t\r\n\ufeff":
            pos += 1
        if pos >= size:
            break
        line += text.count("\n", counted, pos)
        counted = pos
        if text[pos] == reader.BAD_LINE:  # not UTF-8: quarantined by the reader already
            pos = text.find("\n", pos)
            pos = size if pos < 0 else pos
            continue
        try:
            value, after = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            if text[pos] == "[":  # an array document: read it element by element
                yield from flush(pos)
                pos = yield from _array_elements(text, pos, decoder)
                continue
            if bad_start is None:
                bad_start, bad_reason = pos, f"not JSON: {e.msg}"
            nxt = text.find("\n", pos)
            pos = size if nxt < 0 else nxt + 1
            continue
        yield from flush(pos)
        if isinstance(value, list):
            pos = yield from _array_elements(text, pos, decoder)
            continue
        yield line, value, ""
        pos = after
    yield from flush(size)


def _array_elements(
    text: str, pos: int, decoder: json.JSONDecoder
) -> Generator[tuple[int, object | None, str], None, int]:
    """The elements of the array at `pos` with their lines; returns the position after it."""
    size = len(text)
    pos += 1
    while True:
        while pos < size and text[pos] in " \t\r\n,":
            pos += 1
        line = text.count("\n", 0, pos) + 1
        if pos >= size:
            yield line, None, "JSON array is not closed (file cut off?)\x00"
            return size
        if text[pos] == "]":
            return pos + 1
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raw = text[pos : pos + QUARANTINE_RAW_CHARS]
            yield line, None, f"JSON array element does not parse: {e.msg}\x00{raw}"
            return size
        yield line, value, ""


class _ProviderPages(ReferenceFormat):
    kind = "usage"
    table = "usage"
    auto_detect = True
    provider: str
    source_format: str
    start: str  # bucket field of the start / end time
    end: str
    needs: tuple[str, ...] = ()  # sniffing: all of these in the head (white space removed) ...
    needs_any: tuple[str, ...] = ()  # ... and one of these ...
    forbids: tuple[str, ...] = ()  # ... and none of these
    mapped_fields: tuple[str, ...] = ()  # result fields mapped to columns (the rest -> extra)
    number_fields: tuple[str, ...] = ()  # result fields that must be numbers when present
    checks: tuple[str, ...] = ()  # more `WHEN <bad> THEN <reason>` over the mapped columns

    def columns(self) -> dict[str, str]:
        """usage column -> SQL over the result `r` and bucket `b` (JSON)."""
        raise NotImplementedError

    def extra_keys_sql(self) -> str:
        """SQL list of the result's keys that go into `extra`."""
        mapped = ", ".join(f"'{k}'" for k in self.mapped_fields)
        return (
            # keys a JSON path cannot name (empty, with a quote or a backslash) are left out
            "list_filter(list_filter(json_keys(r), lambda k: k <> ''"
            " AND NOT regexp_matches(k, '[\"\\\\]')), lambda k: NOT list_contains(["
            + mapped
            + "], k) AND json_type(r, '$.\"' || k || '\"') <> 'NULL')"
        )

    def extra_value_sql(self) -> str:
        """SQL over the result `r` and a key `k` of `extra_keys_sql`: what `extra` keeps."""
        return "json_extract(r, '$.\"' || k || '\"')"

    def sniff(self, head: list[str]) -> bool:
        text = re.sub(r"\s+", "", "\n".join(head))
        return (
            all(m in text for m in self.needs)
            and (not self.needs_any or any(m in text for m in self.needs_any))
            and not any(m in text for m in self.forbids)
        )

    def load(
        self, con: duckdb.DuckDBPyConnection, path: Path, source_id: int, options: Options
    ) -> tuple[Counts, list[str]]:
        end = decompress.ReadEnd()
        chunks = list(reader.read_chunks(path, end))
        text = "\n".join(chunk.decoded() for chunk in chunks)
        bad = [b for chunk in chunks for b in chunk.bad_lines]
        if end.problem:
            bad.append((end.next_line, end.problem, ""))
        lines: list[int] = []
        pages: list[str] = []
        for line, page, raw in _json_pages(text):
            if page is None:
                reason, _, snippet = raw.partition("\x00")
                bad.append((line, reason, snippet))
            elif isinstance(page, dict) and isinstance(page.get("data"), list):
                lines.append(line)
                pages.append(json.dumps(page["data"], separators=(",", ":")))
            elif isinstance(page, dict) and "results" in page and self.start in page:
                lines.append(line)  # a bare bucket, saved without its page
                pages.append(json.dumps([page], separators=(",", ":")))
            else:
                what = "an object" if isinstance(page, dict) else type(page).__name__
                reason = (
                    "page has no data list"
                    if isinstance(page, dict)
                    else f"page is not an object but {what}"
                )
                bad.append((line, reason, json.dumps(page)[:QUARANTINE_RAW_CHARS]))
        arrow = pa.table(
            {"line_no": pa.array(lines, pa.int64()), "data": pa.array(pages, pa.string())}
        )
        con.register("usage_pages_arrow", arrow)
        try:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE usage_pages AS SELECT * FROM usage_pages_arrow"
            )
        finally:
            con.unregister("usage_pages_arrow")
        con.execute(self._results_sql())
        con.execute(self._mapped_sql())
        con.execute(
            "INSERT INTO quarantine SELECT $sid, line_no, 'bucket ' || b_idx"
            " || coalesce(' result ' || r_idx, '') || ': ' || _error,"
            " left(scrub(CAST(coalesce(r, b) AS VARCHAR)), $n)"
            " FROM usage_mapped WHERE _error IS NOT NULL",
            {"sid": source_id, "n": QUARANTINE_RAW_CHARS},
        )
        quarantine_rows(con, source_id, bad)
        return self._insert_keyed(con, path, source_id, len(bad))

    # What one skipped record is called in the dedupe warnings.
    noun = "usage results"
    order_by = "line_no, b_idx, r_idx"

    def _insert_keyed(
        self, con: duckdb.DuckDBPyConnection, path: Path, source_id: int, bad: int
    ) -> tuple[Counts, list[str]]:
        """Key the mapped rows (`usage_mapped`), insert the new ones, account for the rest:
        duplicates are not read records, they are counted in `blank` and said in a warning."""
        con.execute(self._keyed_sql())
        names = ["line_no", "source_format", "provider", *MAPPED]
        names += ["bucket_width", "model_family", "extra", "dedupe_key"]
        con.execute(
            f"INSERT INTO usage (source_id, {', '.join(names)}) SELECT $sid, "
            + ", ".join(names)
            + f" FROM usage_keyed WHERE NOT _seen AND _copy = 1 ORDER BY {self.order_by}",
            {"sid": source_id},
        )
        good, failed, seen, repeated, differ = con.execute(
            "SELECT (SELECT count(*) FROM usage_keyed WHERE NOT _seen AND _copy = 1),"
            " (SELECT count(*) FROM usage_mapped WHERE _error IS NOT NULL),"
            " (SELECT count(*) FROM usage_keyed WHERE _seen),"
            " (SELECT count(*) FROM usage_keyed WHERE NOT _seen AND _copy > 1),"
            " (SELECT count(*) FROM usage_keyed WHERE _differs)"
        ).fetchall()[0]
        for table in ("usage_pages", "usage_results", "usage_mapped", "usage_keyed"):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        warnings = []
        if seen:
            warnings.append(
                f"{path}: {seen} {self.noun} already in the case (overlapping export):"
                " not counted twice"
            )
        if repeated:
            warnings.append(
                f"{path}: {repeated} {self.noun} repeated within this file: not counted twice"
            )
        if differ:
            warnings.append(
                f"{path}: {differ} of the skipped duplicates have other counts or costs than the"
                " copy kept (the first one loaded wins)"
            )
        counts = Counts(
            read=good + failed + bad, loaded=good, quarantined=failed + bad, blank=seen + repeated
        )
        return counts, warnings

    def _results_sql(self) -> str:
        """One row per result (r) with its bucket (b); a bucket that is not an object or has no
        results list is one row with `b_error`."""
        return """
        CREATE OR REPLACE TEMP TABLE usage_results AS
        WITH buckets AS (
          SELECT line_no, unnest(range(1, len(bs) + 1)) AS b_idx, unnest(bs) AS b
          FROM (SELECT line_no, CAST(data AS JSON[]) AS bs FROM usage_pages)
        ), checked AS (
          SELECT line_no, b_idx, b,
            CASE WHEN json_type(b) <> 'OBJECT' THEN 'bucket is not an object'
                 WHEN json_type(b, '$.results') IS DISTINCT FROM 'ARRAY'
                 THEN 'bucket has no results list' END AS b_error
          FROM buckets
        )
        SELECT line_no, b_idx, NULL::BIGINT AS r_idx, b, NULL::JSON AS r, b_error
        FROM checked WHERE b_error IS NOT NULL
        UNION ALL
        SELECT line_no, b_idx, unnest(range(1, len(rs) + 1)) AS r_idx, b, unnest(rs) AS r,
               NULL AS b_error
        FROM (SELECT *, CAST(json_extract(b, '$.results') AS JSON[]) AS rs
              FROM checked WHERE b_error IS NULL)
        """

    def _mapped_sql(self) -> str:
        cols = self.columns()
        cols.setdefault("bucket_start", _time(self.start))
        cols.setdefault("bucket_end", _time(self.end))
        select = ",\n  ".join(
            f"TRY_CAST({cols[name]} AS {typ}) AS {name}"
            if name in cols
            else f"NULL::{typ} AS {name}"
            for name, typ in MAPPED.items()
        )
        checks = "\n".join(
            f"WHEN json_type(r, '$.{f}') NOT IN {NUMBER_TYPES}"
            f" AND TRY_CAST({_s('$.' + f)} AS DOUBLE) IS NULL"
            f" THEN '{f} is not a number: ' || value_shape({_s('$.' + f)})"
            for f in self.number_fields
        )
        checks += "\n" + "\n".join(self.checks)
        extra_keys = self.extra_keys_sql()
        return f"""
        CREATE OR REPLACE TEMP TABLE usage_mapped AS
        SELECT *,
          CASE WHEN b_error IS NOT NULL THEN b_error
               WHEN json_type(r) <> 'OBJECT' THEN 'result is not an object'
               WHEN {_s("$." + self.start, "b")} IS NULL
               THEN 'bucket has no {self.start}'
               WHEN bucket_start IS NULL OR NOT plausible_ts(bucket_start)
               THEN 'bucket {self.start} is not a usable time: '
                    || value_shape({_s("$." + self.start, "b")})
               WHEN bucket_end IS NOT NULL AND bucket_end < bucket_start
               THEN 'bucket ends before it starts'
               {checks}
          END AS _error,
          CASE date_diff('second', bucket_start, bucket_end)
               WHEN 60 THEN '1m' WHEN 3600 THEN '1h' WHEN 86400 THEN '1d' END AS bucket_width,
          model_family_of(model) AS model_family,
          CASE WHEN json_type(r) = 'OBJECT' AND len({extra_keys}) > 0
               THEN CAST(map_from_entries(list_transform({extra_keys},
                    lambda k: struct_pack(k := k, v := {self.extra_value_sql()})))
                    AS JSON) END AS extra
        FROM (SELECT *, '{self.provider}' AS provider, '{self.source_format}' AS source_format,
              {select}
              FROM usage_results)
        """

    def _keyed_sql(self) -> str:
        parts = []
        for col in KEY_COLUMNS:
            if col in ("bucket_start", "bucket_end"):
                parts.append(
                    f"coalesce(strftime(timezone('UTC', {col}), '%Y-%m-%dT%H:%M:%SZ'), '')"
                )
            else:
                parts.append(f"coalesce(CAST({col} AS VARCHAR), '')")
        # The result's other grouping fields (strings / booleans in extra), sorted.
        groups = (
            "list_sort(list_transform(list_filter(coalesce(json_keys(extra), []),"
            " lambda k: json_type(extra, '$.\"' || k || '\"') IN ('VARCHAR', 'BOOLEAN')),"
            " lambda k: k || '=' || json_extract_string(extra, '$.\"' || k || '\"')))"
        )
        key = (
            " || '|' || ".join(parts)
            + f" || CASE WHEN len({groups}) > 0 THEN '|' || array_to_string({groups}, ',')"
            " ELSE '' END"
        )
        values = (
            "[CAST(requests AS VARCHAR), CAST(input_tokens AS VARCHAR),"
            " CAST(output_tokens AS VARCHAR), CAST(cached_input_tokens AS VARCHAR),"
            " CAST(cache_creation_input_tokens AS VARCHAR), CAST(other_units AS VARCHAR),"
            " CAST(cost AS VARCHAR)]"
        )
        # Every string of the row, and `extra`, passes the scrubber before it is keyed and
        # stored: a provider export can carry a key in any field.
        texts = [name for name, typ in MAPPED.items() if typ == "VARCHAR"] + ["provider"]
        scrubbed = ", ".join(f"scrub({name}) AS {name}" for name in texts)
        return f"""
        CREATE OR REPLACE TEMP TABLE usage_keyed AS
        WITH m AS (
          SELECT * REPLACE ({scrubbed}, model_family_of(scrub(model)) AS model_family,
                 CASE WHEN extra IS NOT NULL THEN coalesce(
                      TRY_CAST(scrub(CAST(extra AS VARCHAR)) AS JSON),
                      to_json(scrub(CAST(extra AS VARCHAR)))) END AS extra)
          FROM usage_mapped WHERE _error IS NULL
        ), k AS (
          SELECT *, {key} AS dedupe_key, {values} AS _values FROM m
        ), kept AS (
          SELECT dedupe_key, {values} AS _values FROM usage
          WHERE dedupe_key IN (SELECT dedupe_key FROM k)
        )
        SELECT k.*,
          kept.dedupe_key IS NOT NULL AS _seen,
          row_number() OVER (PARTITION BY k.dedupe_key ORDER BY line_no, b_idx, r_idx) AS _copy,
          (kept.dedupe_key IS NOT NULL AND kept._values IS DISTINCT FROM k._values)
          OR (kept.dedupe_key IS NULL AND first_value(k._values) OVER (
                PARTITION BY k.dedupe_key ORDER BY line_no, b_idx, r_idx)
              IS DISTINCT FROM k._values) AS _differs
        FROM k LEFT JOIN kept USING (dedupe_key)
        """


def _other_units(units: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    """SQL for other_units and other_unit_name: the first (field, unit name SQL) of `units`
    the result has."""
    value = "coalesce(" + ", ".join(_n("$." + f, "DOUBLE") for f, _ in units) + ")"
    name = (
        "CASE "
        + " ".join(f"WHEN {_n('$.' + f, 'DOUBLE')} IS NOT NULL THEN {unit}" for f, unit in units)
        + " END"
    )
    return value, name


# SQL: the OpenAI usage type of a result, from its `object` (organization.usage.<type>.result,
# as the API reference for GET /v1/organization/usage/<type> lists them).
_OPENAI_OPERATION = (
    "coalesce(nullif(regexp_extract(json_extract_string(r, '$.object'),"
    " '^organization[.]usage[.]([a-z0-9_]+)[.]result$', 1), ''),"
    # results saved without their `object`: the type from the count fields it has
    " CASE WHEN json_type(r, '$.images') IS NOT NULL THEN 'images'"
    " WHEN json_type(r, '$.characters') IS NOT NULL THEN 'audio_speeches'"
    " WHEN json_type(r, '$.seconds') IS NOT NULL THEN 'audio_transcriptions'"
    " WHEN json_type(r, '$.usage_bytes') IS NOT NULL THEN 'vector_stores'"
    " WHEN json_type(r, '$.num_sessions') IS NOT NULL OR json_type(r, '$.sessions') IS NOT NULL"
    " THEN 'code_interpreter_sessions'"
    " WHEN json_type(r, '$.num_requests') IS NOT NULL"
    " AND json_type(r, '$.num_model_requests') IS NOT NULL THEN 'web_searches'"
    " WHEN json_type(r, '$.num_requests') IS NOT NULL THEN 'file_searches'"
    " WHEN json_type(r, '$.output_tokens') IS NOT NULL THEN 'completions' END)"
)
# (count field, SQL naming its unit) for other_units, the first one present wins. `sessions` is
# the name older references gave `num_sessions`. `num_requests` counts tool calls (file search
# calls, web search calls): its unit is the usage type, `file_searches` or `web_searches`.
OPENAI_UNITS = (
    ("images", "'images'"),
    ("characters", "'characters'"),
    ("seconds", "'seconds'"),
    ("usage_bytes", "'bytes'"),
    ("num_sessions", "'sessions'"),
    ("sessions", "'sessions'"),
    ("num_requests", f"coalesce({_OPENAI_OPERATION}, 'num_requests')"),
)
_OPENAI_UNIT_FIELDS = tuple(f for f, _ in OPENAI_UNITS)


class OpenAIUsage(_ProviderPages):
    """OpenAI Usage API results. Every usage type's count lands in a column (usage type from
    `object`, organization.usage.<type>.result; other_unit_name in brackets):

    * completions, embeddings, moderations: requests = `num_model_requests`;
    * images: requests, other_units = `images` (images);
    * audio_speeches: requests, other_units = `characters` (characters);
    * audio_transcriptions: requests, other_units = `seconds` (seconds);
    * vector_stores: other_units = `usage_bytes` (bytes);
    * code_interpreter_sessions: other_units = `num_sessions`, older `sessions` (sessions);
    * file_searches: requests and other_units = `num_requests`, the file search calls
      (file_searches); the type reports no model requests;
    * web_searches: requests = `num_model_requests`, other_units = `num_requests`, the web
      search calls (web_searches).

    requests = `num_model_requests`, else `num_requests`. Tokens as FORMATS.md 8 and 13.2 say;
    the audio token counts of completions have no column and stay in `extra`.
    """

    name = "openai-usage"
    description = "OpenAI organization Usage API pages (any usage type, bucket width, group_by)"
    provider = "openai"
    source_format = "openai_usage"
    start, end = "start_time", "end_time"
    needs = ('"object":"organization.usage.',)
    mapped_fields = (
        "object",
        "input_tokens",
        "input_cached_tokens",
        "input_uncached_tokens",
        "input_cache_write_tokens",
        "output_tokens",
        "num_model_requests",
        *_OPENAI_UNIT_FIELDS,
        "organization_id",
        "project_id",
        "user_id",
        "api_key_id",
        "model",
        "batch",
        "service_tier",
    )  # input_cache_write_12h_tokens is summed into the cache writes and kept in extra
    number_fields = (
        "input_tokens",
        "input_cached_tokens",
        "input_uncached_tokens",
        "input_cache_write_tokens",
        "input_cache_write_12h_tokens",
        "output_tokens",
        "num_model_requests",
        *_OPENAI_UNIT_FIELDS,
    )

    def columns(self) -> dict[str, str]:
        units, unit_name = _other_units(OPENAI_UNITS)
        writes = (
            f"CASE WHEN coalesce({_n('$.input_cache_write_tokens')},"
            f" {_n('$.input_cache_write_12h_tokens')}) IS NOT NULL"
            f" THEN coalesce({_n('$.input_cache_write_tokens')}, 0)"
            f" + coalesce({_n('$.input_cache_write_12h_tokens')}, 0) END"
        )
        return {
            "org_id": _s("$.organization_id"),
            "project_id": _s("$.project_id"),
            "api_key_id": _s("$.api_key_id"),
            "user_id": _s("$.user_id"),
            "model": _s("$.model"),
            "operation": _OPENAI_OPERATION,
            "service_tier": _s("$.service_tier"),
            "batch": _s("$.batch"),
            "requests": f"coalesce({_n('$.num_model_requests')}, {_n('$.num_requests')})",
            "input_tokens": _n("$.input_tokens"),
            "cached_input_tokens": _n("$.input_cached_tokens"),
            "input_uncached_tokens": f"coalesce({_n('$.input_uncached_tokens')},"
            f" {_n('$.input_tokens')} - coalesce({_n('$.input_cached_tokens')}, 0)"
            f" - coalesce({writes}, 0))",
            "cache_creation_input_tokens": writes,
            "output_tokens": _n("$.output_tokens"),
            "other_units": units,
            "other_unit_name": unit_name,
        }


class OpenAICosts(_ProviderPages):
    name = "openai-costs"
    description = "OpenAI organization Costs API pages"
    provider = "openai"
    source_format = "openai_costs"
    start, end = "start_time", "end_time"
    needs = ('"organization.costs.result"',)
    mapped_fields = (
        "object",
        "amount",
        "line_item",
        "organization_id",
        "project_id",
        "api_key_id",
        "quantity",
    )
    number_fields = ("amount.value", "quantity")

    def columns(self) -> dict[str, str]:
        return {
            "org_id": _s("$.organization_id"),
            "project_id": _s("$.project_id"),
            "api_key_id": _s("$.api_key_id"),
            "other_units": _n("$.quantity", "DOUBLE"),
            "other_unit_name": f"CASE WHEN {_n('$.quantity', 'DOUBLE')} IS NOT NULL"
            " THEN 'quantity' END",
            "cost": _n("$.amount.value", "DOUBLE"),
            "currency": f"upper(scrub({_s('$.amount.currency')}))",
            "line_item": _s("$.line_item"),
        }


class AnthropicUsage(_ProviderPages):
    name = "anthropic-usage"
    description = "Anthropic Admin API messages usage report pages"
    provider = "anthropic"
    source_format = "anthropic_usage"
    start, end = "starting_at", "ending_at"
    needs = ('"starting_at"',)
    needs_any = ('"uncached_input_tokens":', '"cache_read_input_tokens":', '"output_tokens":')
    forbids = ('"amount":',)
    # cache_creation (per-TTL split) and context_window etc. stay in extra.
    mapped_fields = (
        "uncached_input_tokens",
        "cache_read_input_tokens",
        "output_tokens",
        "api_key_id",
        "workspace_id",
        "account_id",
        "model",
        "service_tier",
    )
    number_fields = (
        "uncached_input_tokens",
        "cache_read_input_tokens",
        "output_tokens",
        "cache_creation.ephemeral_5m_input_tokens",
        "cache_creation.ephemeral_1h_input_tokens",
        "server_tool_use.web_search_requests",
    )

    def extra_keys_sql(self) -> str:
        # server_tool_use is mapped when web searches are all it holds ...
        return (
            f"list_filter({super().extra_keys_sql()}, lambda k: k <> 'server_tool_use'"
            " OR json_keys(r, '$.server_tool_use') <> ['web_search_requests'])"
        )

    def extra_value_sql(self) -> str:
        # ... and otherwise extra keeps its other counts, not the web searches again.
        return (
            "CASE WHEN k = 'server_tool_use' AND json_type(r, '$.server_tool_use') = 'OBJECT'"
            " THEN json_merge_patch(json_extract(r, '$.server_tool_use'),"
            " '{\"web_search_requests\":null}')"
            f" ELSE {super().extra_value_sql()} END"
        )

    def columns(self) -> dict[str, str]:
        # every value of the cache_creation object, read by position: a key a JSON path
        # cannot name ("", a quote) must neither stop the file nor drop its tokens
        writes = (
            "CASE WHEN json_type(r, '$.cache_creation') = 'OBJECT' THEN list_sum(list_transform("
            "json_extract_string(r, '$.cache_creation.*'), lambda v: TRY_CAST(v AS BIGINT))) END"
        )
        parts = [_n("$.uncached_input_tokens"), _n("$.cache_read_input_tokens"), writes]
        total = (
            f"CASE WHEN coalesce({', '.join(parts)}) IS NOT NULL THEN "
            + " + ".join(f"coalesce({p}, 0)" for p in parts)
            + " END"
        )
        searches = _n("$.server_tool_use.web_search_requests", "DOUBLE")
        return {
            "project_id": _s("$.workspace_id"),
            "api_key_id": _s("$.api_key_id"),
            "user_id": _s("$.account_id"),
            "model": _s("$.model"),
            "operation": "'messages'",
            "service_tier": _s("$.service_tier"),
            "batch": f"{_s('$.service_tier')} = 'batch'",
            "input_tokens": total,
            "input_uncached_tokens": _n("$.uncached_input_tokens"),
            "cached_input_tokens": _n("$.cache_read_input_tokens"),
            "cache_creation_input_tokens": writes,
            "output_tokens": _n("$.output_tokens"),
            "other_units": searches,
            # named like OpenAI's, so that both providers' web searches add up
            "other_unit_name": f"CASE WHEN {searches} IS NOT NULL THEN 'web_searches' END",
        }


class AnthropicCost(_ProviderPages):
    name = "anthropic-cost"
    description = "Anthropic Admin API cost report pages (amounts in cents)"
    provider = "anthropic"
    source_format = "anthropic_cost"
    start, end = "starting_at", "ending_at"
    needs = ('"starting_at"', '"amount":', '"currency":')
    # token_type, context_window, inference_geo stay in extra (they split line items apart).
    mapped_fields = (
        "amount",
        "currency",
        "description",
        "cost_type",
        "workspace_id",
        "model",
        "service_tier",
    )
    # an amount given as {"value", "currency"} is read like a plain amount
    checks = (
        "WHEN json_type(r, '$.amount') NOT IN ('NULL') AND cost IS NULL"
        " THEN 'amount is not a number: ' || value_shape(json_extract_string(r, '$.amount'))",
    )

    def columns(self) -> dict[str, str]:
        amount = (
            "CASE WHEN json_type(r, '$.amount') = 'OBJECT'"
            f" THEN {_n('$.amount.value', 'DECIMAL(38, 12)')}"
            f" ELSE {_n('$.amount', 'DECIMAL(38, 12)')} END"
        )
        return {
            "project_id": _s("$.workspace_id"),
            "model": _s("$.model"),
            "operation": _s("$.cost_type"),
            "service_tier": _s("$.service_tier"),
            "cost": f"CAST({amount} / 100 AS DOUBLE)",
            "currency": f"upper(scrub(coalesce({_s('$.currency')}, {_s('$.amount.currency')})))",
            "line_item": f"coalesce({_s('$.description')},"
            f" nullif(concat_ws(' / ', {_s('$.cost_type')}, {_s('$.token_type')}), ''))",
        }
