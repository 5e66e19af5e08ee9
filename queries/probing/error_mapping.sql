-- probing.error_mapping: a principal whose varied prompts are often stopped by the safety
-- filters, as when someone maps what the content filters let through. The principal is the
-- credential, else the tenant. Windows are fixed buckets of window_hours. A finding needs at
-- least min_requests requests in the window, a share of error_type 'content_filter' of at
-- least min_share, and at least min_distinct_prompts distinct prompt prefixes. Other errors
-- (invalid, rate_limited, server) count only in the total.
-- Window counts come from the shared `principal_hours` features; prompt prefixes and sample
-- requests are read from `requests` for the windows that pass them.
WITH windows AS (
    SELECT CASE WHEN principal_type = 'credential' THEN 'credential' ELSE 'tenant' END
               AS principal_type,
           CASE WHEN principal_type = 'credential' THEN principal_id ELSE tenant_id END
               AS principal_id,
           time_bucket(to_hours(CAST($window_hours AS BIGINT)), hour) AS bucket,
           arg_min(tenant_id, first_ts) AS tenant_id,
           min(first_ts) AS first_seen,
           max(last_ts) AS last_seen,
           sum(requests) AS requests,
           sum(content_filter) AS filtered_requests,
           sum(est_cost_usd) AS est_cost_usd
    FROM principal_hours
    WHERE (principal_type = 'credential' OR tenant_id IS NOT NULL)
      AND ($since IS NULL OR last_ts >= $since)
      AND ($until IS NULL OR first_ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
    GROUP BY ALL
    HAVING sum(requests) >= $min_requests
       AND sum(content_filter) >= $min_share * sum(requests)
),
prompts AS (
    SELECT w.principal_type, w.principal_id, w.bucket,
           count(DISTINCT r.prompt_prefix_fp) AS distinct_prompts,
           count(DISTINCT r.prompt_prefix_fp) FILTER (WHERE r.error_type = 'content_filter')
               AS distinct_filtered_prompts,
           min_by(r.request_id, (r.ts, r.request_id), 20)
               FILTER (WHERE r.error_type = 'content_filter' AND r.request_id IS NOT NULL)
               AS request_ids
    FROM windows w
    JOIN requests r
      ON r.ts BETWEEN w.first_seen AND w.last_seen
     AND coalesce(r.credential_id, r.tenant_id) = w.principal_id
     AND w.principal_type = CASE WHEN r.credential_id IS NOT NULL THEN 'credential'
                                 ELSE 'tenant' END
    WHERE TRUE
      AND ($since IS NULL OR r.ts >= $since)
      AND ($until IS NULL OR r.ts <= $until)
      AND ($tenant IS NULL OR r.tenant_id = $tenant)
    GROUP BY ALL
),
hits AS (
    SELECT * FROM windows JOIN prompts USING (principal_type, principal_id, bucket)
    WHERE distinct_prompts >= $min_distinct_prompts
)
SELECT
    principal_type,
    principal_id,
    tenant_id,
    first_seen AS window_start,
    last_seen AS window_end,
    round(least(100, 35 + 50 * (filtered_requests / requests)
                     + 10 * log10(distinct_prompts / $min_distinct_prompts)), 1)::DOUBLE
        AS score,
    format('{} {} had {} of {} requests ({}%) blocked by content filters within {} hours,'
           || ' over {} distinct prompts.',
           principal_type, principal_id, filtered_requests, requests,
           round(100 * filtered_requests / requests, 1), CAST($window_hours AS BIGINT),
           distinct_prompts) AS summary,
    struct_pack(
        requests := requests,
        content_filter_requests := filtered_requests,
        content_filter_share := round(filtered_requests / requests, 3)::DOUBLE,
        distinct_prompts := distinct_prompts,
        distinct_filtered_prompts := distinct_filtered_prompts,
        bucket_start := bucket,
        window_hours := CAST($window_hours AS BIGINT)
    ) AS evidence,
    coalesce(request_ids[1:20], []) AS sample_request_ids,
    est_cost_usd
FROM hits
ORDER BY score DESC, principal_id, window_start
