"""Provider usage against gateway traffic: the `usage_vs_gateway` view.

One row per provider usage bucket, i.e. per (provider, reporter, model_family, bucket_start,
bucket_end, bucket_width), with the provider's numbers next to the gateway requests of the same
provider and model family whose `ts` falls in [bucket_start, bucket_end). A provider key that
shows usage with no matching gateway traffic is a strong sign of a leaked key.

Rules (they are the view's contract; `forensics schema` does not list views):

* Buckets keep their own boundaries. A 1d bucket is one row spanning the day; to compare by
  hour, use the 1h export, or compare 1d rows with `date_trunc('day', ts)` of the gateway.
  Mixed widths are never summed together: filter on `bucket_width`.
* `reporter` is `litellm` for LiteLLM daily spend (the gateway's own accounting) and `provider`
  for everything else, so LiteLLM and the provider's own report are never added up.
* Model families are compared, not model names, so dated snapshots match
  (gpt-4o-2024-08-06 and gpt-4o). A provider row without a model family (an export not split
  by model, or a cost export without models) is compared with all of that provider's gateway
  requests in the bucket.
* Cost exports (`openai_costs`, `anthropic_cost`) carry no tokens: they give `provider_cost`
  and `cost_rows` and are left out of every token and request sum. A bucket with only cost rows
  has `token_diff` and `token_ratio` NULL (nothing to compare).
* Keys: with `known_keys` rows for the provider, a key on that list is the gateway's
  (`known_key_tokens`), any other key is not (`unknown_key_tokens`, `unknown_api_key_ids`),
  and rows without a key id are `unattributed_tokens`. Without any `known_keys` row for the
  provider every key might be the gateway's, so all its tokens are unattributed.
  `unexplained_tokens = unknown_key_tokens + max(0, unattributed_tokens
  - max(0, gateway_tokens - known_key_tokens))`: unattributed tokens are explained only by
  gateway traffic the known keys do not already account for. With no list this is
  `max(0, provider_tokens - gateway_tokens)`; with a list and keyed rows it is exactly the
  tokens of keys not on the list.
* Gateway-only rows: within the time a provider's 1h or 1d export covers (its first bucket
  start to its last bucket end), gateway traffic in an hour no bucket of that width covers for
  its model family gets a row of its own at the UTC hour or day, with provider numbers 0
  (`token_rows` = 0, `cost_rows` = 0). 1m exports get no such rows.
* Gateway requests are counted by their second (`date_trunc('second', ts)`), so bucket
  boundaries are exact for the whole-second boundaries providers use. Days and hours are UTC
  whatever the session time zone.
* Token columns are input (cache reads and writes included) plus output, on both sides.
  `api_key_ids`, `project_ids` and `unknown_api_key_ids` list every row of the bucket, cost rows
  included, sorted, empty rather than NULL.
"""

from __future__ import annotations

import duckdb

VIEW_NAMES = ("usage_vs_gateway",)

COST_FORMATS = ("openai_costs", "anthropic_cost")


def _utc_trunc(part: str, expr: str) -> str:
    """date_trunc in UTC, whatever the session's TimeZone setting."""
    return f"(date_trunc('{part}', ({expr}) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')"


_COST_LIST = ", ".join(f"'{f}'" for f in COST_FORMATS)

USAGE_VS_GATEWAY = f"""
WITH
kp AS (
    SELECT DISTINCT lower(trim(provider)) AS provider FROM known_keys WHERE provider IS NOT NULL
),
kk AS (
    SELECT DISTINCT lower(trim(provider)) AS provider, api_key_id
    FROM known_keys WHERE provider IS NOT NULL AND api_key_id IS NOT NULL
),
u AS (
    SELECT
        lower(trim(u.provider)) AS provider,
        CASE WHEN u.source_format = 'litellm_daily' THEN 'litellm' ELSE 'provider' END
            AS reporter,
        lower(nullif(trim(u.model_family), '')) AS model_family,
        u.bucket_start,
        u.bucket_end,
        u.bucket_width,
        coalesce(u.source_format IN ({_COST_LIST}), false) AS is_cost,
        u.api_key_id,
        u.project_id,
        coalesce(u.requests, 0) AS requests,
        coalesce(u.input_tokens, 0) AS input_tokens,
        coalesce(u.output_tokens, 0) AS output_tokens,
        coalesce(u.input_tokens, 0) + coalesce(u.output_tokens, 0) AS tokens,
        u.cost,
        u.currency,
        kp.provider IS NOT NULL AS listed,
        CASE
            WHEN kp.provider IS NULL OR u.api_key_id IS NULL THEN 'unattributed'
            WHEN kk.api_key_id IS NOT NULL THEN 'known'
            ELSE 'unknown'
        END AS key_class
    FROM usage u
    LEFT JOIN kp ON kp.provider = lower(trim(u.provider))
    LEFT JOIN kk ON kk.provider = lower(trim(u.provider)) AND kk.api_key_id = u.api_key_id
    WHERE u.provider IS NOT NULL AND u.bucket_start IS NOT NULL
      AND u.bucket_end > u.bucket_start
),
b AS (
    SELECT
        provider, reporter, model_family, bucket_start, bucket_end, bucket_width,
        count(*) FILTER (WHERE NOT is_cost) AS token_rows,
        count(*) FILTER (WHERE is_cost) AS cost_rows,
        coalesce(sum(requests) FILTER (WHERE NOT is_cost), 0)::BIGINT AS provider_requests,
        coalesce(sum(input_tokens) FILTER (WHERE NOT is_cost), 0)::BIGINT
            AS provider_input_tokens,
        coalesce(sum(output_tokens) FILTER (WHERE NOT is_cost), 0)::BIGINT
            AS provider_output_tokens,
        coalesce(sum(tokens) FILTER (WHERE NOT is_cost), 0)::BIGINT AS provider_tokens,
        coalesce(sum(tokens) FILTER (WHERE NOT is_cost AND key_class = 'known'), 0)::BIGINT
            AS known_key_tokens,
        coalesce(sum(tokens) FILTER (WHERE NOT is_cost AND key_class = 'unknown'), 0)::BIGINT
            AS unknown_key_tokens,
        coalesce(sum(tokens) FILTER (WHERE NOT is_cost AND key_class = 'unattributed'), 0)
            ::BIGINT AS unattributed_tokens,
        coalesce(list_sort(list(DISTINCT api_key_id) FILTER (WHERE api_key_id IS NOT NULL)),
            []::VARCHAR[]) AS api_key_ids,
        coalesce(list_sort(list(DISTINCT api_key_id) FILTER (WHERE key_class = 'unknown')),
            []::VARCHAR[]) AS unknown_api_key_ids,
        coalesce(list_sort(list(DISTINCT project_id) FILTER (WHERE project_id IS NOT NULL)),
            []::VARCHAR[]) AS project_ids,
        bool_or(listed) AS known_keys_listed,
        sum(cost) FILTER (WHERE is_cost) AS provider_cost,
        string_agg(DISTINCT upper(currency), ',' ORDER BY upper(currency))
            FILTER (WHERE is_cost) AS provider_cost_currency
    FROM u
    GROUP BY provider, reporter, model_family, bucket_start, bucket_end, bucket_width
),
g0 AS (
    -- per second as logged first (cheap keys), normalised on the far fewer grouped rows
    SELECT
        provider,
        model_family,
        time_bucket(INTERVAL 1 SECOND, ts) AS sec,
        count(*) AS n,
        coalesce(sum(input_tokens), 0) AS input_tokens,
        coalesce(sum(output_tokens), 0) AS output_tokens,
        sum(est_cost_usd) AS est_cost_usd
    FROM requests
    WHERE ts IS NOT NULL AND provider IS NOT NULL
    GROUP BY ALL
),
g AS (
    SELECT
        lower(trim(provider)) AS provider,
        lower(nullif(trim(model_family), '')) AS model_family,
        sec,
        {_utc_trunc("hour", "sec")} AS hour,
        sum(n) AS n,
        sum(input_tokens) AS input_tokens,
        sum(output_tokens) AS output_tokens,
        sum(est_cost_usd) AS est_cost_usd
    FROM g0
    GROUP BY ALL
),
bh AS (
    SELECT provider, reporter, model_family, bucket_start, bucket_end, bucket_width,
        unnest(generate_series({_utc_trunc("hour", "bucket_start")},
            bucket_end - INTERVAL 1 MICROSECOND, INTERVAL 1 HOUR)) AS hour
    FROM b
),
gw AS (
    SELECT bh.provider, bh.reporter, bh.model_family, bh.bucket_start, bh.bucket_end,
        bh.bucket_width,
        sum(g.n)::BIGINT AS gateway_requests,
        sum(g.input_tokens)::BIGINT AS gateway_input_tokens,
        sum(g.output_tokens)::BIGINT AS gateway_output_tokens,
        sum(g.est_cost_usd) AS gateway_est_cost_usd
    FROM bh
    JOIN g ON g.provider = bh.provider AND g.hour = bh.hour
        AND (bh.model_family IS NULL OR g.model_family = bh.model_family)
        AND g.sec >= bh.bucket_start AND g.sec < bh.bucket_end
    GROUP BY ALL
),
matched AS (
    SELECT b.*,
        coalesce(gw.gateway_requests, 0) AS gateway_requests,
        coalesce(gw.gateway_input_tokens, 0) AS gateway_input_tokens,
        coalesce(gw.gateway_output_tokens, 0) AS gateway_output_tokens,
        gw.gateway_est_cost_usd
    FROM b
    LEFT JOIN gw ON gw.provider = b.provider AND gw.reporter = b.reporter
        AND gw.model_family IS NOT DISTINCT FROM b.model_family
        AND gw.bucket_start = b.bucket_start AND gw.bucket_end = b.bucket_end
        AND gw.bucket_width IS NOT DISTINCT FROM b.bucket_width
),
cov AS (
    SELECT provider, reporter, bucket_width, min(bucket_start) AS lo, max(bucket_end) AS hi
    FROM b WHERE bucket_width IN ('1h', '1d')
    GROUP BY ALL
),
covered AS (
    SELECT DISTINCT provider, reporter, bucket_width, model_family, hour FROM bh
),
gh AS (
    SELECT provider, model_family, hour, sum(n) AS n, sum(input_tokens) AS input_tokens,
        sum(output_tokens) AS output_tokens, sum(est_cost_usd) AS est_cost_usd
    FROM g GROUP BY ALL
),
uncovered AS (
    SELECT cov.provider, cov.reporter, cov.bucket_width, gh.model_family, gh.hour, gh.n,
        gh.input_tokens, gh.output_tokens, gh.est_cost_usd
    FROM cov
    JOIN gh ON gh.provider = cov.provider AND gh.hour >= cov.lo AND gh.hour < cov.hi
    WHERE NOT EXISTS (
        SELECT 1 FROM covered c
        WHERE c.provider = cov.provider AND c.reporter = cov.reporter
          AND c.bucket_width = cov.bucket_width AND c.hour = gh.hour
          AND (c.model_family IS NULL OR c.model_family = gh.model_family)
    )
),
gateway_only AS (
    SELECT provider, reporter, model_family,
        CASE bucket_width WHEN '1h' THEN hour ELSE {_utc_trunc("day", "hour")} END
            AS bucket_start,
        bucket_width,
        sum(n)::BIGINT AS gateway_requests,
        sum(input_tokens)::BIGINT AS gateway_input_tokens,
        sum(output_tokens)::BIGINT AS gateway_output_tokens,
        sum(est_cost_usd) AS gateway_est_cost_usd
    FROM uncovered
    GROUP BY ALL
),
all_rows AS (
    SELECT provider, reporter, model_family, bucket_start, bucket_end, bucket_width,
        token_rows, cost_rows, provider_requests, provider_input_tokens, provider_output_tokens,
        provider_tokens, gateway_requests, gateway_input_tokens, gateway_output_tokens,
        api_key_ids, unknown_api_key_ids, project_ids, known_keys_listed, known_key_tokens,
        unknown_key_tokens, unattributed_tokens, provider_cost, provider_cost_currency,
        gateway_est_cost_usd
    FROM matched
    UNION ALL  -- the same columns in the same order (Spark has no BY NAME)
    SELECT o.provider, o.reporter, o.model_family, o.bucket_start,
        o.bucket_start + CASE o.bucket_width WHEN '1h' THEN INTERVAL 1 HOUR
            ELSE INTERVAL 1 DAY END AS bucket_end,
        o.bucket_width,
        0::BIGINT AS token_rows, 0::BIGINT AS cost_rows, 0::BIGINT AS provider_requests,
        0::BIGINT AS provider_input_tokens, 0::BIGINT AS provider_output_tokens,
        0::BIGINT AS provider_tokens, o.gateway_requests, o.gateway_input_tokens,
        o.gateway_output_tokens, []::VARCHAR[] AS api_key_ids,
        []::VARCHAR[] AS unknown_api_key_ids, []::VARCHAR[] AS project_ids,
        kp.provider IS NOT NULL AS known_keys_listed, 0::BIGINT AS known_key_tokens,
        0::BIGINT AS unknown_key_tokens, 0::BIGINT AS unattributed_tokens,
        NULL::DOUBLE AS provider_cost, NULL::VARCHAR AS provider_cost_currency,
        o.gateway_est_cost_usd
    FROM gateway_only o
    LEFT JOIN kp ON kp.provider = o.provider
)
SELECT
    provider, reporter, model_family, bucket_start, bucket_end, bucket_width,
    token_rows, cost_rows,
    provider_requests, provider_input_tokens, provider_output_tokens, provider_tokens,
    gateway_requests, gateway_input_tokens, gateway_output_tokens,
    gateway_input_tokens + gateway_output_tokens AS gateway_tokens,
    CASE WHEN token_rows > 0 OR cost_rows = 0
        THEN provider_tokens - (gateway_input_tokens + gateway_output_tokens) END AS token_diff,
    CASE WHEN token_rows > 0 OR cost_rows = 0
        THEN provider_tokens / nullif(gateway_input_tokens + gateway_output_tokens, 0)
        END::DOUBLE AS token_ratio,
    api_key_ids, project_ids, known_keys_listed,
    known_key_tokens, unknown_key_tokens, unattributed_tokens,
    (unknown_key_tokens + greatest(0, unattributed_tokens
        - greatest(0, gateway_input_tokens + gateway_output_tokens - known_key_tokens)))::BIGINT
        AS unexplained_tokens,
    unknown_api_key_ids,
    provider_cost, provider_cost_currency, gateway_est_cost_usd
FROM all_rows
"""

VIEWS = {"usage_vs_gateway": USAGE_VS_GATEWAY}


def install_views(con: duckdb.DuckDBPyConnection, read_only: bool) -> None:
    """Create (or refresh) the reconciliation views on this connection.

    A read-write connection stores them in the case; a read-only one cannot, so it gets TEMP
    views of the same names (they shadow any stored ones and vanish with the connection).
    """
    kind = "TEMP VIEW" if read_only else "VIEW"
    for name, body in VIEWS.items():
        con.execute(f"CREATE OR REPLACE {kind} {name} AS {body}")
