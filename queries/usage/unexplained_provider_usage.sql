-- usage.unexplained_provider_usage: provider-side usage that the gateway's traffic does not
-- explain, attributed to the provider keys behind it: a provider key used outside the gateway.
--
-- Buckets: usage_vs_gateway rows reported by the provider itself (not LiteLLM), 1h or 1d wide,
-- with token rows. A bucket is unexplained when its unexplained_tokens exceed $min_tokens and
-- either $tolerance_ratio x its gateway_tokens (counting noise) or, with a known-keys list,
-- the tokens of keys not on it exceed $min_tokens by themselves (they are not noise).
-- Attribution in such a bucket: a key not on the list gets its own tokens; the rest of the
-- unexplained tokens (no list, or rows without a key id) go to the only key of those rows,
-- else to the only key without which the rest matches the gateway's tokens within the
-- allowance, else their only project, else the provider. One finding per provider and
-- principal whose unexplained tokens exceed $min_tokens; 1h and 1d buckets of the same usage
-- are not added up: the width with more unexplained tokens is counted, both are listed.
WITH buckets AS (
    SELECT *,
           unexplained_tokens - unknown_key_tokens AS excess_tokens
    FROM usage_vs_gateway
    WHERE reporter = 'provider' AND bucket_width IN ('1h', '1d') AND token_rows > 0
      AND ($since IS NULL OR bucket_end > $since)
      AND ($until IS NULL OR bucket_start <= $until)
),
flagged AS (
    SELECT * FROM buckets
    WHERE unexplained_tokens > $min_tokens
      AND (unexplained_tokens > $tolerance_ratio * gateway_tokens
           OR unknown_key_tokens > $min_tokens)
),
usage_rows AS (
    -- the token rows behind each flagged bucket, classed like the view does (cost exports and
    -- LiteLLM's own accounting are not provider token rows)
    SELECT f.provider, f.model_family, f.bucket_start, f.bucket_end, f.bucket_width,
           f.excess_tokens, f.provider_tokens AS bucket_provider_tokens, f.gateway_tokens,
           f.unexplained_tokens AS bucket_unexplained_tokens, f.known_keys_listed,
           f.unattributed_tokens,
           greatest(0, f.gateway_tokens - f.known_key_tokens) AS gateway_available,
           greatest($min_tokens, $tolerance_ratio * f.gateway_tokens) AS allowance,
           u.api_key_id, u.project_id, u.model,
           coalesce(u.requests, 0) AS requests,
           coalesce(u.input_tokens, 0) AS input_tokens,
           coalesce(u.cached_input_tokens, 0) AS cached_input_tokens,
           coalesce(u.output_tokens, 0) AS output_tokens,
           CASE WHEN list_contains(f.unknown_api_key_ids, u.api_key_id) THEN 'unknown'
                WHEN f.known_keys_listed AND u.api_key_id IS NOT NULL THEN 'known'
                ELSE 'unattributed' END AS key_class
    FROM flagged f
    JOIN usage u
      ON lower(trim(u.provider)) = f.provider
     AND lower(nullif(trim(u.model_family), '')) IS NOT DISTINCT FROM f.model_family
     AND u.bucket_start = f.bucket_start AND u.bucket_end = f.bucket_end
     AND u.bucket_width = f.bucket_width
    WHERE u.source_format NOT IN ('openai_costs', 'anthropic_cost', 'litellm_daily')
),
price AS (
    -- USD per 1M tokens [input, cached input, output] on the bucket's day: the provider's row
    -- for the exact model, else its family, else the longest matching LIKE pattern
    SELECT k.provider, k.model, k.day,
           arg_max([p.input_per_mtok, coalesce(p.cached_input_per_mtok, p.input_per_mtok),
                    p.output_per_mtok],
                   [CASE WHEN p.model_pattern = k.name THEN 3
                         WHEN p.model_pattern = k.family THEN 2 ELSE 1 END,
                    length(p.model_pattern),
                    date_diff('day', DATE '1970-01-01', p.effective_from)]) AS per_mtok
    FROM (SELECT DISTINCT provider, model, model_family AS family,
                 regexp_replace(lower(trim(model)), '^.*/', '') AS name,
                 CAST(timezone('UTC', bucket_start) AS DATE) AS day
          FROM usage_rows WHERE model IS NOT NULL) k
    JOIN prices p
      ON p.provider = k.provider AND p.effective_from <= k.day
     AND (p.model_pattern = k.name OR k.family LIKE p.model_pattern
          OR k.name LIKE p.model_pattern)
    GROUP BY ALL
),
costed AS (
    SELECT r.*,
           r.input_tokens + r.output_tokens AS tokens,
           list_inner_product(
               [greatest(r.input_tokens - r.cached_input_tokens, 0),
                least(r.cached_input_tokens, r.input_tokens), r.output_tokens]::DOUBLE[],
               p.per_mtok) / 1e6 AS est_cost_usd
    FROM usage_rows r
    LEFT JOIN price p
      ON p.provider = r.provider AND p.model = r.model
     AND p.day = CAST(timezone('UTC', r.bucket_start) AS DATE)
),
parts AS (
    -- per flagged bucket: each key not on the list, and the unattributed rows together
    SELECT provider, model_family, bucket_start, bucket_end, bucket_width, key_class,
           CASE WHEN key_class = 'unknown' THEN api_key_id END AS unknown_key,
           any_value(excess_tokens) AS excess_tokens,
           any_value(bucket_provider_tokens) AS bucket_provider_tokens,
           any_value(gateway_tokens) AS gateway_tokens,
           any_value(bucket_unexplained_tokens) AS bucket_unexplained_tokens,
           any_value(known_keys_listed) AS known_keys_listed,
           coalesce(list_sort(list(DISTINCT api_key_id) FILTER (WHERE api_key_id IS NOT NULL)),
                    []) AS key_ids,
           coalesce(list_sort(list(DISTINCT project_id) FILTER (WHERE project_id IS NOT NULL)),
                    []) AS project_ids,
           count(*) FILTER (WHERE api_key_id IS NULL) AS keyless_rows,
           sum(tokens) AS tokens,
           sum(requests) AS requests,
           sum(est_cost_usd) AS est_cost_usd
    FROM costed
    WHERE key_class <> 'known'
    GROUP BY provider, model_family, bucket_start, bucket_end, bucket_width, key_class,
             unknown_key
),
fits AS (
    -- keys of the unattributed rows whose tokens, left out, leave the rest matching the gateway
    -- tokens the known keys do not account for (within the allowance): the only such key of a
    -- bucket is the one that explains its excess
    SELECT provider, model_family, bucket_start, bucket_end, bucket_width,
           list(struct_pack(api_key_id, project_ids, tokens, requests, est_cost_usd)
                ORDER BY api_key_id) AS fitting
    FROM (
        SELECT provider, model_family, bucket_start, bucket_end, bucket_width, api_key_id,
               coalesce(list_sort(list(DISTINCT project_id)
                                  FILTER (WHERE project_id IS NOT NULL)), []) AS project_ids,
               sum(tokens) AS tokens, sum(requests) AS requests,
               sum(est_cost_usd) AS est_cost_usd,
               any_value(unattributed_tokens) - sum(tokens) AS rest,
               any_value(gateway_available) AS gateway_available,
               any_value(allowance) AS allowance
        FROM costed
        WHERE key_class = 'unattributed' AND api_key_id IS NOT NULL
        GROUP BY provider, model_family, bucket_start, bucket_end, bucket_width, api_key_id
    )
    WHERE abs(rest - gateway_available) <= allowance
    GROUP BY provider, model_family, bucket_start, bucket_end, bucket_width
),
joined AS (
    SELECT p.*, f.fitting,
           p.key_class = 'unattributed' AND array_length(p.key_ids) = 1 AND p.keyless_rows = 0
               AS one_key
    FROM parts p
    LEFT JOIN fits f
      ON p.key_class = 'unattributed' AND f.provider = p.provider
     AND f.model_family IS NOT DISTINCT FROM p.model_family
     AND f.bucket_start = p.bucket_start AND f.bucket_end = p.bucket_end
     AND f.bucket_width = p.bucket_width
),
named AS (
    -- each part with the principal it is attributed to; a key named by `fits` brings its own
    -- projects, tokens, requests and cost
    -- (the columns replaced are listed out, not REPLACE'd: Spark has no SELECT * REPLACE)
    SELECT * EXCLUDE (fitting, one_fit, key_ids, project_ids, tokens, requests, est_cost_usd),
           CASE WHEN one_fit THEN [fitting[1].api_key_id] ELSE key_ids END AS key_ids,
           CASE WHEN one_fit THEN fitting[1].project_ids ELSE project_ids END AS project_ids,
           CASE WHEN one_fit THEN fitting[1].tokens ELSE tokens END AS tokens,
           CASE WHEN one_fit THEN fitting[1].requests ELSE requests END AS requests,
           CASE WHEN one_fit THEN fitting[1].est_cost_usd ELSE est_cost_usd END
               AS est_cost_usd,
           CASE WHEN key_class = 'unknown' THEN unknown_key
                WHEN one_key THEN key_ids[1]
                WHEN one_fit THEN fitting[1].api_key_id
                WHEN array_length(project_ids) = 1 THEN project_ids[1]
                ELSE provider END AS principal_id,
           CASE WHEN key_class = 'unknown' THEN 'key_not_in_known_keys'
                WHEN one_key THEN 'only_key_in_bucket'
                WHEN one_fit THEN 'key_explains_excess'
                WHEN array_length(project_ids) = 1 THEN 'project'
                ELSE 'provider' END AS attribution
    FROM (SELECT *, coalesce(NOT one_key AND array_length(fitting) = 1, false) AS one_fit FROM joined)
),
attributed AS (
    SELECT *,
           CASE WHEN key_class = 'unknown' THEN tokens
                ELSE least(excess_tokens, tokens) END AS unexplained_tokens,
           CASE WHEN key_class = 'unknown' THEN est_cost_usd
                ELSE est_cost_usd * least(excess_tokens, tokens) / nullif(tokens, 0)
                END AS unexplained_cost_usd
    FROM named
),
per_width AS (
    -- 1h and 1d exports of the same usage: count the width that shows more
    SELECT * EXCLUDE (rk)
    FROM (
        SELECT *, row_number() OVER (PARTITION BY provider, principal_id
                                     ORDER BY unexplained_tokens DESC, bucket_width = '1h' DESC)
                      AS rk
        FROM (
            SELECT provider, principal_id, bucket_width,
                   sum(unexplained_tokens) AS unexplained_tokens,
                   sum(tokens) AS provider_tokens,
                   sum(requests) AS provider_requests,
                   sum(gateway_tokens) AS gateway_tokens,
                   sum(unexplained_cost_usd) AS est_cost_usd,
                   count(*) AS buckets
            FROM attributed
            WHERE unexplained_tokens > 0
            GROUP BY provider, principal_id, bucket_width
        )
    )
    WHERE rk = 1
),
per_principal AS (
    SELECT provider, principal_id,
           min(bucket_start) AS window_start,
           max(bucket_end) AS window_end,
           list_sort(list(DISTINCT attribution)) AS attributions,
           bool_or(known_keys_listed) AS known_keys_listed,
           list_sort(list_distinct(flatten(list(key_ids)))) AS key_ids,
           list_sort(list_distinct(flatten(list(project_ids)))) AS project_ids,
           list_sort(list(DISTINCT model_family) FILTER (WHERE model_family IS NOT NULL))
               AS model_families,
           list(struct_pack(
                    bucket_start := bucket_start,
                    bucket_end := bucket_end,
                    bucket_width := bucket_width,
                    model_family := model_family,
                    provider_tokens := bucket_provider_tokens,
                    gateway_tokens := gateway_tokens,
                    unexplained_tokens := bucket_unexplained_tokens,
                    attributed_tokens := unexplained_tokens,
                    attribution := attribution,
                    key_ids := key_ids)
                ORDER BY bucket_start, bucket_width, model_family) AS bucket_list
    FROM attributed
    WHERE unexplained_tokens > 0
    GROUP BY provider, principal_id
),
found AS (
    SELECT p.*, w.bucket_width AS counted_width, w.unexplained_tokens, w.provider_tokens,
           w.provider_requests, w.gateway_tokens, w.est_cost_usd, w.buckets
    FROM per_principal p
    JOIN per_width w USING (provider, principal_id)
    WHERE w.unexplained_tokens > $min_tokens
      AND ($tenant IS NULL OR list_contains(p.project_ids, $tenant))
)
SELECT
    'provider_key' AS principal_type,
    principal_id,
    NULL::VARCHAR AS tenant_id,
    window_start,
    window_end,
    round(least(100, 50 + 10 * log10(unexplained_tokens / greatest($min_tokens, 1))
                     + CASE WHEN list_has_any(attributions, ['key_not_in_known_keys',
                                              'only_key_in_bucket', 'key_explains_excess'])
                            THEN 10 ELSE 0 END
                     + 5 * log10(buckets)), 1)::DOUBLE AS score,
    CASE WHEN list_contains(attributions, 'key_not_in_known_keys')
         THEN 'Provider key ' || principal_id || ' (' || provider || '), not on the known-keys'
              || ' list, used '
         WHEN list_has_any(attributions, ['only_key_in_bucket', 'key_explains_excess'])
         THEN 'Provider key ' || principal_id || ' (' || provider || ') used '
         WHEN attributions = ['project']
         THEN 'Provider project ' || principal_id || ' (' || provider || '; keys: '
              || coalesce(nullif(array_to_string(key_ids[1:5], ', '), ''), 'not reported')
              || ') used '
         ELSE 'Provider ' || provider || ' (keys: '
              || coalesce(nullif(array_to_string(key_ids[1:5], ', '), ''), 'not reported')
              || ') reported '
    END
        || format('{:,}', unexplained_tokens::BIGINT) || ' tokens that the gateway''s traffic'
        || ' does not explain, in ' || buckets
        || CASE counted_width WHEN '1h' THEN ' hourly' ELSE ' daily' END || ' bucket(s) from '
        || strftime(window_start, '%Y-%m-%d %H:%M UTC') || ' to '
        || strftime(window_end, '%Y-%m-%d %H:%M UTC')
        || coalesce(', about $' || round(est_cost_usd, 2), '') || '.' AS summary,
    struct_pack(
        provider := provider,
        attribution := attributions,
        known_keys_listed := known_keys_listed,
        unexplained_tokens := unexplained_tokens::BIGINT,
        provider_tokens := provider_tokens::BIGINT,
        provider_requests := provider_requests::BIGINT,
        gateway_tokens := gateway_tokens::BIGINT,
        counted_width := counted_width,
        buckets := buckets,
        api_key_ids := key_ids,
        project_ids := project_ids,
        model_families := model_families,
        tolerance_ratio := $tolerance_ratio,
        min_tokens := $min_tokens,
        bucket_list := bucket_list[1:48]
    ) AS evidence,
    []::VARCHAR[] AS sample_request_ids,
    est_cost_usd
FROM found
ORDER BY score DESC, principal_id
