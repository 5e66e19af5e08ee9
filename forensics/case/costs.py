"""Estimated cost of a request from the `prices` table, as SQL shared by ingest and repricing.

A request is priced by the `prices` row that

* is for its provider (a request without a provider, or through a reseller that passes on the
  model maker's list price, such as Azure OpenAI or Bedrock, matches on the model alone, and a
  row for its own provider comes first);
* matches its model: `model_pattern` equal to the model name that answered (a dated snapshot
  such as gpt-4o-2024-05-13), else equal to the model family, else a LIKE pattern over either
  (the longest pattern wins);
* is in effect on the request's day: the greatest `effective_from` <= ts::DATE (a request
  without a time gets the latest price).

cost = ((input - cached) x input price + cached x cached price (else the input price)
        + output x output price) / 1e6, in USD; NULL when no row matches or the request has no
token counts. Cache writes and long-context surcharges are not modelled: it is an estimate.

The lookup is a join, not a per-row subquery: the distinct (provider, model, response model,
family, day) keys of the requests are priced first (a handful per file), then joined back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forensics.lake.store import rewriting

if TYPE_CHECKING:
    import duckdb

# Providers that resell other makers' models at (about) the makers' list prices: their requests
# match price rows by model alone when no row names them.
RESELLERS = ("azure", "azure_openai", "azure_ai", "bedrock", "vertex", "vertex_ai", "google")
_RESELLERS_SQL = ", ".join(f"'{p}'" for p in RESELLERS)

_KEYS = ("provider", "model", "response_model", "model_family")
# The UTC day of a timestamp as days since 1970-01-01: cheaper than ts::DATE (no time zone).
_DAY = "epoch_us({t}) // 86400000000"


def price_join(requests: str) -> str:
    """`LEFT JOIN ... _pk` giving `_pk.price` ([input, cached, output] USD per 1M tokens) for the
    rows of `requests` (a table name), which the query names `c`."""
    on = " AND ".join(f"_pk.{k} IS NOT DISTINCT FROM c.{k}" for k in _KEYS)
    day, request_day = _DAY.format(t="ts"), _DAY.format(t="c.ts")
    return f"""LEFT JOIN (
  SELECT k.provider, k.model, k.response_model, k.model_family, k.day,
    arg_max([p.input_per_mtok, coalesce(p.cached_input_per_mtok, p.input_per_mtok),
             p.output_per_mtok],
            [coalesce(p.provider = k.provider, false)::INTEGER,
             CASE WHEN p.model_pattern = k.name THEN 3 WHEN p.model_pattern = k.family THEN 2
                  ELSE 1 END,
             length(p.model_pattern),
             date_diff('day', DATE '1970-01-01', p.effective_from)]) AS price
  FROM (
    SELECT *, regexp_replace(lower(trim(coalesce(response_model, model))), '^.*/', '') AS name,
           coalesce(model_family_of(response_model), model_family) AS family
    FROM (SELECT DISTINCT provider, model, response_model, model_family, {day} AS day
          FROM {requests})
  ) k
  JOIN prices p
    ON p.effective_from <= coalesce(DATE '1970-01-01' + k.day::INTEGER, DATE '9999-12-31')
   AND (p.provider = k.provider OR k.provider IS NULL OR k.provider IN ({_RESELLERS_SQL}))
   AND (p.model_pattern = k.name OR k.family LIKE p.model_pattern OR k.name LIKE p.model_pattern)
  GROUP BY ALL
) _pk ON {on} AND _pk.day IS NOT DISTINCT FROM {request_day}"""


# The estimate for request `c` priced by `price_join` (alias `_pk`).
EST_COST_SQL = """CASE WHEN c.input_tokens IS NOT NULL OR c.output_tokens IS NOT NULL
  THEN list_inner_product(
    [greatest(coalesce(c.input_tokens, 0) - coalesce(c.cached_input_tokens, 0), 0),
     least(coalesce(c.cached_input_tokens, 0), coalesce(c.input_tokens, 0)),
     coalesce(c.output_tokens, 0)]::DOUBLE[],
    _pk.price) / 1e6 END"""

# Reprice every request in the case (after the prices changed): one set-based UPDATE.
REPRICE_REQUESTS = f"""
UPDATE requests SET est_cost_usd = priced.est_cost_usd
FROM (SELECT c.rowid AS _rid, {EST_COST_SQL} AS est_cost_usd
      FROM requests c {price_join("requests")}) priced
WHERE requests.rowid = priced._rid
  AND requests.est_cost_usd IS DISTINCT FROM priced.est_cost_usd
"""

_REPRICED = f"""
SELECT count(*) FROM requests c {price_join("requests")}
WHERE c.est_cost_usd IS DISTINCT FROM {EST_COST_SQL}
"""


def reprice(con: duckdb.DuckDBPyConnection) -> None:
    """Reprice every request in the case after the prices changed (REPRICE_REQUESTS); a case
    keeping its rows in a lake writes its requests again, when any cost changed."""
    [(changed,)] = con.execute(_REPRICED).fetchall()
    if changed:
        with rewriting(con, "requests"):
            con.execute(REPRICE_REQUESTS)


# Both costs of each request side by side: the gateway's own (Kong ai.proxy.usage.cost, LiteLLM
# spend) and the estimate from the prices table.
REQUEST_COSTS_VIEW = """
CREATE OR REPLACE VIEW request_costs AS
SELECT request_id, ts, tenant_id, credential_id, provider, model, log_cost, est_cost_usd,
       log_cost - est_cost_usd AS cost_diff_usd
FROM requests
"""
