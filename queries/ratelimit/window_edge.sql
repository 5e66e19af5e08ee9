-- ratelimit.window_edge: a principal (credential, else tenant) concentrating its traffic in
-- the minutes around fixed-window (hourly) boundaries, to get two windows' quota in a burst.
-- An edge request falls in the last or first edge_minutes of an hour; it belongs to the burst
-- of the nearest boundary. Only bursts of at least min_per_edge requests count, so a cron job
-- firing once on the hour does not. Windows are fixed buckets of window_hours.
-- Window totals come from the shared `principal_hours` features; only the requests on an
-- edge are read from `requests`.
WITH totals AS (
    SELECT CASE WHEN principal_type = 'credential' THEN 'credential' ELSE 'tenant' END
               AS principal_type,
           CASE WHEN principal_type = 'credential' THEN principal_id ELSE tenant_id END
               AS principal_id,
           time_bucket(to_hours(CAST($window_hours AS BIGINT)), hour) AS bucket,
           arg_min(tenant_id, first_ts) AS tenant_id,
           min(first_ts) AS first_seen,
           max(last_ts) AS last_seen,
           sum(requests) AS requests,
           count(DISTINCT hour) AS active_hours,
           sum(est_cost_usd) AS est_cost_usd
    FROM principal_hours
    WHERE (principal_type = 'credential' OR tenant_id IS NOT NULL)
      AND ($since IS NULL OR last_ts >= $since)
      AND ($until IS NULL OR first_ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
    GROUP BY ALL
    HAVING sum(requests) >= $min_requests
),
edge AS (
    SELECT ts, request_id,
           CASE WHEN credential_id IS NOT NULL THEN 'credential' ELSE 'tenant' END
               AS principal_type,
           coalesce(credential_id, tenant_id) AS principal_id,
           time_bucket(INTERVAL 1 HOUR, ts + to_minutes(CAST($edge_minutes AS BIGINT)))
               AS boundary,
           time_bucket(to_hours(CAST($window_hours AS BIGINT)), ts) AS bucket
    FROM requests
    WHERE coalesce(credential_id, tenant_id) IS NOT NULL AND ts IS NOT NULL
      -- the minute of the UTC hour, from the epoch (cheaper than minute() on a TIMESTAMPTZ)
      AND ((epoch_us(ts) // 60000000) % 60 >= 60 - $edge_minutes
           OR (epoch_us(ts) // 60000000) % 60 < $edge_minutes)
      AND ($since IS NULL OR ts >= $since)
      AND ($until IS NULL OR ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
),
bursts AS (
    SELECT principal_type, principal_id, bucket, boundary, count(*) AS n,
           min_by(request_id, (ts, request_id), 20) FILTER (WHERE request_id IS NOT NULL)
               AS request_ids
    FROM edge
    GROUP BY ALL
    HAVING count(*) >= $min_per_edge
),
per_window AS (
    SELECT principal_type, principal_id, bucket,
           sum(n) AS edge_requests,
           count(*) AS edge_hours,
           max(n) AS max_burst,
           flatten(list(request_ids ORDER BY boundary)) AS request_ids
    FROM bursts
    GROUP BY ALL
),
hits AS (
    SELECT t.*, p.edge_requests, p.edge_hours, p.max_burst, p.request_ids,
           p.edge_requests / t.requests AS edge_share
    FROM totals t
    JOIN per_window p USING (principal_type, principal_id, bucket)
    WHERE p.edge_hours >= $min_hours
      AND p.edge_requests / t.requests >= $min_edge_share
)
SELECT
    principal_type,
    principal_id,
    tenant_id,
    first_seen AS window_start,
    last_seen AS window_end,
    round(least(100, 40 + 50 * (edge_share - $min_edge_share)
                              / greatest(1 - $min_edge_share, 1e-9)
                     + 2 * (edge_hours - $min_hours)), 1)::DOUBLE AS score,
    format('{} {} sent {} of its {} requests ({}%) within {} minute(s) of the hour boundary,'
           || ' in bursts at {} boundaries: gaming a fixed-window rate limit.',
           principal_type, principal_id, edge_requests, requests,
           round(100 * edge_share, 1), CAST($edge_minutes AS BIGINT), edge_hours) AS summary,
    struct_pack(
        requests := requests,
        edge_requests := edge_requests,
        edge_share := round(edge_share, 4)::DOUBLE,
        edge_hours := edge_hours,
        active_hours := active_hours,
        max_burst := max_burst,
        edge_minutes := CAST($edge_minutes AS BIGINT),
        bucket_start := bucket,
        window_hours := CAST($window_hours AS BIGINT)
    ) AS evidence,
    coalesce(request_ids[1:20], []) AS sample_request_ids,
    est_cost_usd
FROM hits
ORDER BY score DESC, principal_id, window_start
