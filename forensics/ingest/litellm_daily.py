"""LiteLLM daily spend tables (FORMATS.md 6.1, 13.2) into `usage`.

`LiteLLM_DailyUserSpend`, `...DailyTeamSpend`, `...DailyOrganizationSpend`,
`...DailyEndUserSpend`, `...DailyAgentSpend` and `...DailyTagSpend` rows, exported as CSV with a
header, JSON lines, or a JSON array of rows (an object with a `data` list of rows is read too).
One row per (date, entity, api_key, model, provider, MCP tool, endpoint) becomes one 1d bucket.

Mapping: bucket_start = `date` at UTC midnight, bucket_end = +1 day; provider =
`custom_llm_provider` (lower case) or the model's `provider/` prefix; project_id = `team_id` /
`organization_id` / `tag` / `agent_id` and user_id = `user_id` / `end_user_id`, with the table's
kind in `extra.entity_kind`; api_key_id = `api_key` (LiteLLM stores the key's hash; a value
that looks like a raw key is fingerprinted with `cred_fp` and never stored); model = `model`
(the deployment's model), else `model_group` (the public name; '' counts as missing);
operation = `endpoint`; requests = `api_requests`; prompt/completion/cache tokens and `spend`
(USD). `model_group` (kept also when it stands in for the model, so that dedupe keys do not
change), `mcp_namespaced_tool_name`, `successful_requests`, `failed_requests` and any unknown
column stay in `extra`; the table's bookkeeping columns `id`, `created_at` and
`updated_at` are dropped (a re-export after LiteLLM updated a day must still deduplicate).

Records, quarantine and deduplication follow `provider_usage`: a row's `line_no` is its line
(CSV: the physical line where the record starts; JSON array: where the element starts), bad rows
are quarantined with the reason, and rows whose `dedupe_key` is already in `usage` or repeats in
the file go to `Counts.blank` with a warning.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import duckdb
import pyarrow as pa

from forensics.ingest.base import QUARANTINE_RAW_CHARS, Counts, Options, quarantine_rows
from forensics.ingest.provider_usage import (
    _json_pages,
    _n,
    _ProviderPages,
    _s,
)
from forensics.ingest.reference import _read_text

# id column -> (entity_kind, usage column); the first one a row has wins.
ENTITY_COLUMNS = (
    ("team_id", "team", "project_id"),
    ("organization_id", "organization", "project_id"),
    ("tag", "tag", "project_id"),
    ("agent_id", "agent", "project_id"),
    ("end_user_id", "end_user", "user_id"),
    ("user_id", "user", "user_id"),
)
NUMBERS = (
    "prompt_tokens",
    "completion_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "spend",
    "api_requests",
    "successful_requests",
    "failed_requests",
)
DATE_RE = r"^(\d{4}-\d{2}-\d{2})([T ]00:00(:00(\.0+)?)?(Z|[+]00(:?00)?)?)?$"
# SQL: the row's model, `model_group` when `model` is missing or empty.
MODEL = f"coalesce(nullif(trim({_s('$.model')}), ''), nullif(trim({_s('$.model_group')}), ''))"


def _date() -> str:
    """SQL: the row's `date` as UTC midnight (NULL unless it is a whole day)."""
    day = f"regexp_extract(trim({_s('$.date')}), '{DATE_RE}', 1)"
    return f"(CAST(TRY_CAST(nullif({day}, '') AS DATE) AS TIMESTAMP) AT TIME ZONE 'UTC')"


def _number(v: str) -> object:
    """A CSV count or spend as a JSON number, as in a JSON export (so both dedupe alike);
    text that is not a number stays text and is quarantined by the number checks."""
    try:
        return int(v.strip())
    except ValueError:
        pass
    try:
        number = float(v.strip())
    except ValueError:
        return v
    return number if math.isfinite(number) else v


class LiteLLMDaily(_ProviderPages):
    noun = "LiteLLM daily rows"
    order_by = "line_no, b_idx"

    name = "litellm-daily"
    description = "LiteLLM daily spend tables (user/team/org/end-user/agent/tag), CSV or JSON"
    provider = ""  # per row, set after mapping
    source_format = "litellm_daily"
    start, end = "date", "date"
    mapped_fields = (
        "date",
        "api_key",
        "model",
        "custom_llm_provider",
        "endpoint",
        "prompt_tokens",
        "completion_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "spend",
        "api_requests",
        "id",
        "created_at",
        "updated_at",
        *(c for c, _, _ in ENTITY_COLUMNS),
    )
    number_fields = NUMBERS

    def sniff(self, head: list[str]) -> bool:
        want = {"date", "api_requests", "spend"}
        first = head[0].strip().lstrip("\ufeff") if head else ""
        if first[:1] in ("{", "["):  # JSON lines, or a (pretty-printed) array / object
            return want <= set(re.findall(r'"([A-Za-z_]+)"\s*:', "\n".join(head)))
        try:
            found = {f.strip().lower() for f in next(csv.reader([first]))}
        except (csv.Error, StopIteration):
            return False
        return want <= found

    def columns(self) -> dict[str, str]:
        def first(target: str) -> str:
            ids = [_s("$." + c) for c, _, col in ENTITY_COLUMNS if col == target]
            return "coalesce(" + ", ".join(ids) + ")"

        key = f"nullif(trim({_s('$.api_key')}), '')"
        return {
            "bucket_start": _date(),
            "bucket_end": f"{_date()} + INTERVAL 1 DAY",
            "project_id": first("project_id"),
            "user_id": first("user_id"),
            "api_key_id": f"CASE WHEN regexp_matches({key}, '^(?i)sk-')"
            f" OR len(secrets_in({key})) > 0 THEN cred_fp({key}) ELSE {key} END",
            "model": MODEL,
            "operation": _s("$.endpoint"),
            "requests": _n("$.api_requests"),
            "input_tokens": _n("$.prompt_tokens"),
            "cached_input_tokens": _n("$.cache_read_input_tokens"),
            "cache_creation_input_tokens": _n("$.cache_creation_input_tokens"),
            "output_tokens": _n("$.completion_tokens"),
            "cost": _n("$.spend", "DOUBLE"),
            "currency": f"CASE WHEN {_n('$.spend', 'DOUBLE')} IS NOT NULL THEN 'USD' END",
        }

    def _rows(self, text: str) -> tuple[list[int], list[str], list[tuple[int, str, str]]]:
        """(lines, row objects as JSON, quarantine tuples) of a CSV or JSON file."""
        lines: list[int] = []
        objs: list[str] = []
        bad: list[tuple[int, str, str]] = []
        if text.lstrip("\ufeff \t\r\n")[:1] in ("{", "["):
            for line, value, raw in _json_pages(text):
                if value is None:
                    reason, _, snippet = raw.partition("\x00")
                    bad.append((line, reason, snippet))
                    continue
                items = value.get("data") if isinstance(value, dict) else None
                for item in items if isinstance(items, list) else [value]:
                    lines.append(line)
                    objs.append(json.dumps(item, separators=(",", ":")))
            return lines, objs, bad
        physical = text.split("\n")
        reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
        header: list[str] | None = None
        while True:
            line = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                bad.append((line, f"CSV does not parse: {e}", physical[line - 1]))
                continue
            if not fields or all(not f.strip() for f in fields):
                continue
            if header is None:
                header = [f.strip().strip('"') for f in fields]
                continue
            if len(fields) != len(header):
                raw = "\n".join(physical[line - 1 : reader.line_num])
                reason = f"expected {len(header)} fields, found {len(fields)}"
                bad.append((line, reason, raw))
                continue
            row: dict[str, object] = {
                k: _number(v) if k in NUMBERS else v
                for k, v in zip(header, fields, strict=True)
                if v.strip() != ""
            }
            lines.append(line)
            objs.append(json.dumps(row, separators=(",", ":")))
        return lines, objs, bad

    def load(
        self, con: duckdb.DuckDBPyConnection, path: Path, source_id: int, options: Options
    ) -> tuple[Counts, list[str]]:
        text, bad = _read_text(path)
        lines, objs, more = self._rows(text)
        bad += more
        arrow = pa.table({"line_no": pa.array(lines, pa.int64()), "r": pa.array(objs, pa.string())})
        con.register("litellm_daily_arrow", arrow)
        try:
            # One result per row: the row is its own bucket (b = r), so the shared mapping,
            # checks and dedupe SQL of provider_usage apply unchanged.
            con.execute(
                "CREATE OR REPLACE TEMP TABLE usage_results AS SELECT line_no,"
                " row_number() OVER (PARTITION BY line_no ORDER BY rowid) AS b_idx,"
                " 1::BIGINT AS r_idx, CAST(r AS JSON) AS b, CAST(r AS JSON) AS r,"
                " CASE WHEN json_type(CAST(r AS JSON)) <> 'OBJECT'"
                " THEN 'row is not an object' END AS b_error"
                " FROM (SELECT *, row_number() OVER () AS rowid FROM litellm_daily_arrow)"
            )
        finally:
            con.unregister("litellm_daily_arrow")
        con.execute(self._mapped_sql())
        prefix = f"lower(scrub(regexp_extract({MODEL}, '^([A-Za-z0-9_.-]+)/', 1)))"
        kind = (
            "CASE "
            + " ".join(
                f"WHEN nullif({_s('$.' + c)}, '') IS NOT NULL THEN '{k}'"
                for c, k, _ in ENTITY_COLUMNS
            )
            + " END"
        )
        con.execute(
            "UPDATE usage_mapped SET"
            f" provider = coalesce(nullif(lower(trim(scrub({_s('$.custom_llm_provider')}))), ''),"
            f" nullif({prefix}, '')),"
            f" extra = CASE WHEN {kind} IS NULL THEN extra"
            f" ELSE json_merge_patch(coalesce(extra, '{{}}'::JSON),"
            f" json_object('entity_kind', {kind})) END"
            " WHERE json_type(r) = 'OBJECT'"
        )
        con.execute(
            "INSERT INTO quarantine SELECT $sid, line_no,"
            " 'row: ' || regexp_replace(_error, '^(bucket|result) ', ''),"
            " left(scrub(CAST(r AS VARCHAR)), $n)"
            " FROM usage_mapped WHERE _error IS NOT NULL",
            {"sid": source_id, "n": QUARANTINE_RAW_CHARS},
        )
        quarantine_rows(con, source_id, bad)
        return self._insert_keyed(con, path, source_id, len(bad))
