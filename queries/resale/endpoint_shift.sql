-- resale.endpoint_shift: a tenant whose endpoint mix in one window moves far from its own
-- baseline while its volume jumps to volume_ratio x its usual: a low-volume chat tenant that
-- turns into a high-volume embeddings pipe is an account being resold or repurposed.
-- Windows are fixed buckets of window_hours. One scan groups the requests by tenant, window and
-- endpoint; everything after works on those small cells. A window's baseline is the tenant's
-- earlier active windows, or, for a drift that grew a little every day, its first
-- min_baseline_windows active windows. The shift is the total variation distance between the window's mix
-- and the baseline mix, 0.5 x the sum over endpoints of |share now - share before|: 0 for the
-- same mix, 1 for disjoint endpoints.
-- The cells come from the shared `principal_hours` features; sample requests are read from
-- `requests` for the windows that shift only.
WITH cells AS (
    SELECT tenant_id,
           time_bucket(to_hours(CAST($window_hours AS BIGINT)), hour) AS bucket,
           coalesce(endpoint, 'unknown') AS endpoint,
           sum(requests) AS requests,
           min(first_ts) AS first_seen,
           max(last_ts) AS last_seen,
           sum(est_cost_usd) AS est_cost_usd
    FROM principal_hours
    WHERE tenant_id IS NOT NULL
      AND ($since IS NULL OR last_ts >= $since)
      AND ($until IS NULL OR first_ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
    GROUP BY ALL
),
windows AS (
    SELECT tenant_id, bucket,
           sum(requests) AS requests,
           min(first_seen) AS first_seen,
           max(last_seen) AS last_seen,
           sum(est_cost_usd) AS est_cost_usd
    FROM cells
    GROUP BY ALL
),
baselined AS (
    SELECT *,
           count(*) OVER earlier AS earlier_windows,
           sum(requests) OVER earlier AS earlier_requests,
           row_number() OVER (PARTITION BY tenant_id ORDER BY bucket) AS nth
    FROM windows
    WINDOW earlier AS (PARTITION BY tenant_id ORDER BY bucket
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
first_windows AS (
    -- the tenant's first min_baseline_windows active windows: what it was before any drift
    SELECT tenant_id,
           sum(requests) AS first_requests,
           count(*) AS first_windows,
           max(bucket) + to_hours(CAST($window_hours AS BIGINT)) AS first_until
    FROM baselined
    WHERE nth <= $min_baseline_windows
    GROUP BY tenant_id
),
jumps AS (
    -- enough history and volume, against either baseline: the mean of all earlier windows (a
    -- jump), else the mean of the first windows (a reseller that grew a little every day, so
    -- that its earlier windows already carry the drift). Only these windows have their mix
    -- compared.
    SELECT * EXCLUDE (earlier_windows, earlier_requests, first_requests, first_windows,
                      first_until),
           CASE WHEN jump THEN 'earlier windows' ELSE 'first windows' END AS basis,
           CASE WHEN jump THEN earlier_windows ELSE first_windows END AS baseline_windows,
           CASE WHEN jump THEN earlier_requests ELSE first_requests END AS baseline_requests,
           CASE WHEN jump THEN bucket ELSE first_until END AS baseline_until
    FROM (
        SELECT b.*, f.first_requests, f.first_windows, f.first_until,
               b.requests >= $volume_ratio * b.earlier_requests / b.earlier_windows AS jump,
               b.bucket >= f.first_until
                   AND b.requests >= $volume_ratio * f.first_requests / f.first_windows AS drift
        FROM baselined b JOIN first_windows f USING (tenant_id)
        WHERE b.earlier_windows >= $min_baseline_windows
          AND b.requests >= $min_requests
    )
    WHERE jump OR drift
),
jumps_measured AS (
    SELECT *,
           baseline_requests / baseline_windows AS baseline_mean,
           requests / (baseline_requests / baseline_windows) AS ratio
    FROM jumps
),
mix AS (
    -- per jump window and endpoint the tenant ever used by then: share now and in the baseline
    SELECT j.tenant_id, j.bucket, c.endpoint,
           coalesce(sum(c.requests) FILTER (WHERE c.bucket = j.bucket), 0)
               / any_value(j.requests) AS share_now,
           coalesce(sum(c.requests) FILTER (WHERE c.bucket < j.baseline_until), 0)
               / any_value(j.baseline_requests) AS share_before
    FROM jumps_measured j
    JOIN cells c ON c.tenant_id = j.tenant_id AND c.bucket <= j.bucket
    GROUP BY ALL
),
shifted AS (
    SELECT tenant_id, bucket,
           0.5 * sum(abs(share_now - share_before)) AS shift,
           map_from_entries(list((endpoint, round(share_now, 3)::DOUBLE) ORDER BY endpoint)
                            FILTER (WHERE share_now > 0)) AS window_mix,
           map_from_entries(list((endpoint, round(share_before, 3)::DOUBLE) ORDER BY endpoint)
                            FILTER (WHERE share_before > 0)) AS baseline_mix,
           list(endpoint ORDER BY share_now - share_before DESC, endpoint)
               FILTER (WHERE share_now > share_before) AS grown,
           list(endpoint ORDER BY share_now DESC, endpoint)[1] AS top_now,
           max(share_now) AS top_now_share,
           list(endpoint ORDER BY share_before DESC, endpoint)[1] AS top_before,
           max(share_before) AS top_before_share
    FROM mix
    GROUP BY ALL
),
shifts AS (
    SELECT j.*, s.* EXCLUDE (tenant_id, bucket)
    FROM jumps_measured j JOIN shifted s USING (tenant_id, bucket)
    WHERE s.shift >= $min_shift
),
found AS (
    -- sample requests from the endpoint that grew most
    SELECT f.*,
           (SELECT min_by(r.request_id, (r.ts, r.request_id), 20)
            FROM requests r
            WHERE r.tenant_id = f.tenant_id
              AND r.ts BETWEEN f.first_seen AND f.last_seen
              AND coalesce(r.endpoint, 'unknown') = f.grown[1]
              AND r.request_id IS NOT NULL
              AND ($since IS NULL OR r.ts >= $since)
              AND ($until IS NULL OR r.ts <= $until)
              AND ($tenant IS NULL OR r.tenant_id = $tenant)) AS request_ids
    FROM shifts f
)
SELECT
    'tenant' AS principal_type,
    tenant_id AS principal_id,
    tenant_id,
    first_seen AS window_start,
    last_seen AS window_end,
    round(least(100, 40 + 40 * shift + 10 * log10(ratio / greatest($volume_ratio, 1e-9))), 1)
        ::DOUBLE AS score,
    CASE WHEN shift >= 0.8 AND ratio >= 2 * $volume_ratio THEN 'high' ELSE 'medium' END
        AS severity,
    format('Tenant {} made {} requests in the {} h from {}, {}x its baseline of {} per window'
           || ' ({}), and its endpoint mix moved by {}: {}% {} now against {}% {} before.',
           tenant_id, requests, CAST($window_hours AS BIGINT),
           strftime(bucket, '%Y-%m-%d %H:%M UTC'), round(ratio, 1), round(baseline_mean, 1),
           basis,
           round(shift, 2), CAST(round(100 * top_now_share) AS INTEGER), top_now,
           CAST(round(100 * top_before_share) AS INTEGER), top_before) AS summary,
    struct_pack(
        shift := round(shift, 4)::DOUBLE,
        ratio := round(ratio, 2)::DOUBLE,
        window_requests := requests,
        baseline_mean_requests := round(baseline_mean, 2)::DOUBLE,
        baseline := basis,
        baseline_windows := baseline_windows,
        baseline_requests := baseline_requests,
        window_mix := window_mix,
        baseline_mix := baseline_mix,
        grown_endpoints := coalesce(grown, []),
        bucket_start := bucket,
        window_hours := CAST($window_hours AS BIGINT)
    ) AS evidence,
    coalesce(request_ids[1:20], []) AS sample_request_ids,
    est_cost_usd
FROM found
ORDER BY score DESC, principal_id, window_start
