-- probing.error_mapping: a principal whose varied prompts are often stopped by the safety
-- filters, as when someone maps what the content filters let through. The principal is the
-- credential, else the tenant. Windows are fixed buckets of window_hours. A finding needs at
-- least min_requests requests in the window, a share of error_type 'content_filter' of at
-- least min_share, and at least min_distinct_prompts distinct prompt prefixes. Other errors
-- (invalid, rate_limited, server) count only in the total.
WITH scoped AS (
    SELECT ts, request_id, tenant_id, est_cost_usd, prompt_prefix_fp,
           coalesce(error_type = 'content_filter', false) AS filtered,
           CASE WHEN credential_id IS NOT NULL THEN 'credential' ELSE 'tenant' END
               AS principal_type,
           coalesce(credential_id, tenant_id) AS principal_id,
           time_bucket(to_hours(CAST($window_hours AS BIGINT)), ts) AS bucket
    FROM requests
    WHERE coalesce(credential_id, tenant_id) IS NOT NULL
      AND ($since IS NULL OR ts >= $since)
      AND ($until IS NULL OR ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
),
hits AS (
    SELECT principal_type, principal_id, bucket,
           arg_min(tenant_id, ts) AS tenant_id,
           min(ts) AS first_seen,
           max(ts) AS last_seen,
           count(*) AS requests,
           count(*) FILTER (WHERE filtered) AS filtered_requests,
           count(DISTINCT prompt_prefix_fp) AS distinct_prompts,
           count(DISTINCT prompt_prefix_fp) FILTER (WHERE filtered) AS distinct_filtered_prompts,
           list(request_id ORDER BY ts, request_id)
               FILTER (WHERE filtered AND request_id IS NOT NULL) AS request_ids,
           sum(est_cost_usd) AS est_cost_usd
    FROM scoped
    GROUP BY principal_type, principal_id, bucket
    HAVING count(*) >= $min_requests
       AND count(*) FILTER (WHERE filtered) >= $min_share * count(*)
       AND count(DISTINCT prompt_prefix_fp) >= $min_distinct_prompts
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
