-- scraping.near_duplicate_prompts: a burst of short prompts that share a normalised prefix.
-- The principal is the credential, else the tenant. Prompts are short (prompt_chars <=
-- max_prompt_chars) and fingerprinted by the normalised first 64 characters of the last user
-- message (prompt_prefix_fp). Two scales of fixed windows are judged: bursts (window_minutes,
-- at least min_requests prompts) and low-and-slow harvests (slow_window_minutes, at least
-- slow_min_requests); either needs at least min_cluster_share of its prompts in the top
-- max_clusters prefix clusters. A slow window that holds a burst finding adds nothing.
WITH scales AS (
    SELECT * FROM (VALUES ('burst', CAST($window_minutes AS BIGINT), $min_requests),
                          ('slow', CAST($slow_window_minutes AS BIGINT), $slow_min_requests))
                  AS s(scale, minutes, min_requests)
),
hourly AS (
    SELECT CASE WHEN principal_type = 'credential' THEN 'credential' ELSE 'tenant' END
               AS principal_type,
           CASE WHEN principal_type = 'credential' THEN principal_id ELSE tenant_id END
               AS principal_id,
           hour, sum(requests) AS n
    FROM principal_hours
    WHERE (principal_type = 'credential' OR tenant_id IS NOT NULL)
      AND ($since IS NULL OR last_ts >= $since)
      AND ($until IS NULL OR first_ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
    GROUP BY ALL
),
candidates AS (
    -- Only these principals can have min_requests prompts in one window. A window of
    -- window_minutes lies within L = ceil(window_minutes / 60) + 1 consecutive clock hours,
    -- and any L consecutive hours lie within one block of 2L hours of one of two tilings (the
    -- second shifted by L), whose requests (from the shared features) must add up to
    -- min_requests.
    SELECT principal_type, principal_id
    FROM hourly
    GROUP BY principal_type, principal_id,
             time_bucket(to_hours(2 * (CAST(ceil($window_minutes / 60) AS BIGINT) + 1)), hour)
    HAVING sum(n) >= $min_requests
    UNION
    SELECT principal_type, principal_id
    FROM hourly
    GROUP BY principal_type, principal_id,
             time_bucket(to_hours(2 * (CAST(ceil($window_minutes / 60) AS BIGINT) + 1)), hour,
                         to_hours(CAST(ceil($window_minutes / 60) AS BIGINT) + 1))
    HAVING sum(n) >= $min_requests
    UNION
    SELECT principal_type, principal_id
    FROM hourly
    GROUP BY principal_type, principal_id,
             time_bucket(to_minutes(CAST($slow_window_minutes AS BIGINT)), hour)
    HAVING sum(n) >= $slow_min_requests
),
scoped AS (
    -- the candidates' short prompts: credentials by their id, tenants by requests without one
    SELECT r.ts, r.request_id, r.tenant_id, r.est_cost_usd, r.prompt_prefix_fp,
           c.principal_type, c.principal_id
    FROM requests r
    JOIN candidates c
      ON (c.principal_type = 'credential' AND r.credential_id = c.principal_id)
    WHERE r.prompt_prefix_fp IS NOT NULL
      AND r.prompt_chars <= $max_prompt_chars
      AND ($since IS NULL OR r.ts >= $since)
      AND ($until IS NULL OR r.ts <= $until)
      AND ($tenant IS NULL OR r.tenant_id = $tenant)
    UNION ALL
    SELECT r.ts, r.request_id, r.tenant_id, r.est_cost_usd, r.prompt_prefix_fp,
           c.principal_type, c.principal_id
    FROM requests r
    JOIN candidates c
      ON (c.principal_type = 'tenant' AND r.credential_id IS NULL
          AND r.tenant_id = c.principal_id)
    WHERE r.prompt_prefix_fp IS NOT NULL
      AND r.prompt_chars <= $max_prompt_chars
      AND ($since IS NULL OR r.ts >= $since)
      AND ($until IS NULL OR r.ts <= $until)
      AND ($tenant IS NULL OR r.tenant_id = $tenant)
),
windowed AS (
    -- each prompt in its window of both scales
    SELECT s.*, k.scale, k.min_requests, time_bucket(to_minutes(k.minutes), s.ts) AS bucket
    FROM scoped s CROSS JOIN scales k
),
clusters AS (
    SELECT scale, principal_type, principal_id, bucket, prompt_prefix_fp, count(*) AS n,
           any_value(min_requests) AS min_requests
    FROM windowed
    GROUP BY scale, principal_type, principal_id, bucket, prompt_prefix_fp
),
judged AS (
    -- the max_clusters largest clusters of the window, largest first (ties: the smaller
    -- prefix first)
    SELECT scale, principal_type, principal_id, bucket,
           sum(n) AS requests,
           count(*) AS distinct_prefixes,
           min_by(n, (-n, prompt_prefix_fp), $max_clusters) AS top_counts,
           min_by(prompt_prefix_fp, (-n, prompt_prefix_fp), $max_clusters) AS top_fps,
           list_sum(min_by(n, (-n, prompt_prefix_fp), $max_clusters)) AS top_requests
    FROM clusters
    GROUP BY scale, principal_type, principal_id, bucket
    HAVING sum(n) >= any_value(min_requests)
       AND list_sum(min_by(n, (-n, prompt_prefix_fp), $max_clusters))
           >= $min_cluster_share * sum(n)
),
per_window AS (
    -- a slow window holding a burst window of the same principal is left out
    SELECT j.* FROM judged j
    WHERE j.scale = 'burst' OR NOT EXISTS (
        SELECT 1 FROM judged b
        WHERE b.scale = 'burst' AND b.principal_type = j.principal_type
          AND b.principal_id = j.principal_id
          AND b.bucket >= j.bucket
          AND b.bucket < j.bucket + to_minutes(CAST($slow_window_minutes AS BIGINT)))
),
hits AS (
    SELECT s.scale, s.principal_type, s.principal_id, s.bucket,
           arg_min(s.tenant_id, s.ts) AS tenant_id,
           min(s.ts) AS first_seen,
           max(s.ts) AS last_seen,
           min_by(s.request_id, (s.ts, s.request_id), 20)
               FILTER (WHERE s.request_id IS NOT NULL
                         AND list_contains(w.top_fps, s.prompt_prefix_fp)) AS request_ids,
           sum(s.est_cost_usd) AS est_cost_usd
    FROM windowed s
    JOIN per_window w USING (scale, principal_type, principal_id, bucket)
    GROUP BY s.scale, s.principal_type, s.principal_id, s.bucket
)
SELECT
    h.principal_type,
    h.principal_id,
    h.tenant_id,
    h.first_seen AS window_start,
    h.last_seen AS window_end,
    round(least(100, 40 + 40 * (w.top_requests / w.requests)
                     + 10 * log10(w.requests / k.min_requests)), 1)::DOUBLE AS score,
    format('{} {} sent {} short prompts within {} minutes, {}% of them sharing {} prefix(es)'
           || ' out of {} distinct.',
           h.principal_type, h.principal_id, w.requests, k.minutes,
           round(100 * w.top_requests / w.requests, 1), array_length(w.top_counts),
           w.distinct_prefixes) AS summary,
    struct_pack(
        requests := w.requests,
        distinct_prefixes := w.distinct_prefixes,
        top_cluster_share := round(w.top_requests / w.requests, 3)::DOUBLE,
        top_cluster_shares := list_transform(w.top_counts,
                                  lambda n: round(n / w.requests, 3)::DOUBLE),
        sample_prefix_fps := list_transform(w.top_fps, lambda f: format('0x{:016x}', f)),
        scale := h.scale,
        bucket_start := h.bucket,
        window_minutes := k.minutes,
        max_prompt_chars := CAST($max_prompt_chars AS BIGINT)
    ) AS evidence,
    coalesce(h.request_ids[1:20], []) AS sample_request_ids,
    h.est_cost_usd
FROM hits h
JOIN per_window w USING (scale, principal_type, principal_id, bucket)
JOIN scales k USING (scale)
ORDER BY score DESC, principal_id, window_start
