-- ratelimit.window_edge: a principal (credential, else tenant) concentrating its traffic in
-- the minutes around fixed-window (hourly) boundaries, to get two windows' quota in a burst.
-- An edge request falls in the last or first edge_minutes of an hour; it belongs to the burst
-- of the nearest boundary. Only bursts of at least min_per_edge requests count, so a cron job
-- firing once on the hour does not. Windows are fixed buckets of window_hours.
WITH scoped AS (
    SELECT ts, request_id, tenant_id, est_cost_usd,
           CASE WHEN credential_id IS NOT NULL THEN 'credential' ELSE 'tenant' END
               AS principal_type,
           coalesce(credential_id, tenant_id) AS principal_id,
           (minute(ts) >= 60 - $edge_minutes OR minute(ts) < $edge_minutes) AS on_edge,
           date_trunc('hour', ts + to_minutes(CAST($edge_minutes AS BIGINT))) AS boundary,
           time_bucket(to_hours(CAST($window_hours AS BIGINT)), ts) AS bucket
    FROM requests
    WHERE coalesce(credential_id, tenant_id) IS NOT NULL AND ts IS NOT NULL
      AND ($since IS NULL OR ts >= $since)
      AND ($until IS NULL OR ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
),
bursts AS (
    SELECT principal_type, principal_id, bucket, boundary, count(*) AS n
    FROM scoped
    WHERE on_edge
    GROUP BY ALL
    HAVING count(*) >= $min_per_edge
),
marked AS (
    SELECT s.*, b.n IS NOT NULL AS in_burst
    FROM scoped s
    LEFT JOIN bursts b
      ON s.on_edge AND b.principal_type = s.principal_type
     AND b.principal_id = s.principal_id AND b.bucket = s.bucket AND b.boundary = s.boundary
),
per_window AS (
    SELECT principal_type, principal_id, bucket,
           arg_min(tenant_id, ts) AS tenant_id,
           min(ts) AS first_seen,
           max(ts) AS last_seen,
           count(*) AS requests,
           count(*) FILTER (WHERE in_burst) AS edge_requests,
           count(DISTINCT boundary) FILTER (WHERE in_burst) AS edge_hours,
           count(DISTINCT date_trunc('hour', ts)) AS active_hours,
           list(request_id ORDER BY ts, request_id)
               FILTER (WHERE in_burst AND request_id IS NOT NULL) AS request_ids,
           sum(est_cost_usd) AS est_cost_usd
    FROM marked
    GROUP BY principal_type, principal_id, bucket
),
burst_max AS (
    SELECT principal_type, principal_id, bucket, max(n) AS max_burst
    FROM bursts
    GROUP BY ALL
),
hits AS (
    SELECT p.*, m.max_burst, p.edge_requests / p.requests AS edge_share
    FROM per_window p
    JOIN burst_max m USING (principal_type, principal_id, bucket)
    WHERE p.requests >= $min_requests
      AND p.edge_hours >= $min_hours
      AND p.edge_requests / p.requests >= $min_edge_share
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
