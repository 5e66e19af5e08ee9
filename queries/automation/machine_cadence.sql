-- automation.machine_cadence: a client calling at machine cadence around the clock.
-- The principal is the credential, or the client IP for requests without one (web server logs
-- carry no credential). Windows are fixed buckets of window_hours. Cadence shows in one of two
-- ways:
--   gaps:  the inter-arrival gaps (lag() over the principal's requests in the window) have a
--          coefficient of variation (stddev / mean) near 0, over many distinct hours;
--   hours: requests in nearly every hour of the window, night included, with steady hourly
--          counts (variance / mean no higher than random arrivals at a constant rate): no
--          day-night rhythm and no bursts, as with a poller whose timestamps are jittered or too
--          coarse for its gaps to look regular. People have a rhythm; a constant stream, even
--          a random one, comes from a machine.
-- Either way the principal never streams and uses one endpoint (the path, where the endpoint is
-- not an AI one) and one model family; requests with neither known do not count as another.
-- Per-window counts come from the shared `principal_hours` features; inter-arrival gaps are
-- computed from `requests` only for the windows that could pass the gap route.
WITH hours AS (
    -- the columns read below only: two parts of the query read this, so it is materialised
    SELECT principal_type, principal_id, tenant_id, hour, target, endpoint, model_family,
           requests, stream_requests, first_ts, last_ts, est_cost_usd,
           time_bucket(to_hours(CAST($window_hours AS BIGINT)), hour) AS bucket
    FROM principal_hours
    WHERE principal_type IN ('credential', 'ip')
      AND ($since IS NULL OR last_ts >= $since)
      AND ($until IS NULL OR first_ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
),
hourly AS (
    -- requests per clock hour with any: their count and sum of squares give the variance of
    -- the hourly counts over all hours of the window
    SELECT principal_type, principal_id, bucket,
           count(*) AS active_hours,
           sum(n * n) AS sum_sq_hourly
    FROM (SELECT principal_type, principal_id, bucket, hour, sum(requests) AS n
          FROM hours
          GROUP BY ALL)
    GROUP BY ALL
),
per_window AS (
    SELECT principal_type, principal_id, bucket,
           arg_min(tenant_id, first_ts) AS tenant_id,
           min(first_ts) AS first_seen,
           max(last_ts) AS last_seen,
           sum(requests) AS requests,
           sum(stream_requests) AS stream_requests,
           -- one target and one model family: the least and the greatest are the same (or
           -- none is known); cheaper than counting distinct values, which only says "<= 1"
           min(target) AS target,
           max(target) AS last_target,
           min(model_family) AS model_family,
           max(model_family) AS last_model_family,
           any_value(endpoint) AS endpoint,
           sum(est_cost_usd) AS est_cost_usd
    FROM hours
    GROUP BY principal_type, principal_id, bucket
),
measured AS (
    SELECT *,
           requests / $window_hours AS hourly_mean,
           -- variance / mean of the requests per hour over all hours of the window, idle ones
           -- included: 0 for a strict timer, about 1 for random arrivals at a constant rate,
           -- far above 1 for bursts or a day-night rhythm
           (sum_sq_hourly / $window_hours - (requests / $window_hours) ^ 2)
               / (requests / $window_hours) AS dispersion,
           active_hours / $window_hours AS hour_share,
           requests >= $min_requests AND active_hours >= $min_active_hours AS gap_candidate
    FROM per_window JOIN hourly USING (principal_type, principal_id, bucket)
    -- requests without a known endpoint or model (errors the gateway answered itself)
    -- do not count as a second one
    WHERE stream_requests = 0
      AND target IS NOT DISTINCT FROM last_target
      AND model_family IS NOT DISTINCT FROM last_model_family
),
candidates AS (
    SELECT * FROM measured
    WHERE gap_candidate OR (hour_share >= $min_hour_share AND dispersion <= $max_dispersion)
),
gap_rows AS (
    SELECT hash(c.principal_type, c.principal_id, c.bucket) AS wk, epoch_us(r.ts) AS us
    FROM requests r
    JOIN candidates c
      ON c.gap_candidate AND c.principal_type = 'credential'
     AND r.credential_id = c.principal_id
     AND r.ts BETWEEN c.first_seen AND c.last_seen
    WHERE ($since IS NULL OR r.ts >= $since)
      AND ($until IS NULL OR r.ts <= $until)
      AND ($tenant IS NULL OR r.tenant_id = $tenant)
    UNION ALL
    SELECT hash(c.principal_type, c.principal_id, c.bucket), epoch_us(r.ts)
    FROM requests r
    JOIN candidates c
      ON c.gap_candidate AND c.principal_type = 'ip'
     AND r.credential_id IS NULL AND r.client_ip = c.principal_id
     AND r.ts BETWEEN c.first_seen AND c.last_seen
    WHERE ($since IS NULL OR r.ts >= $since)
      AND ($until IS NULL OR r.ts <= $until)
      AND ($tenant IS NULL OR r.tenant_id = $tenant)
),
gaps AS (
    -- integer keys (a hash of principal and window, microseconds) keep the sort cheap
    SELECT wk, avg(gap_us) / 1e6 AS mean_gap_s, stddev_pop(gap_us) / 1e6 AS sd_gap_s
    FROM (SELECT wk, us - lag(us) OVER (PARTITION BY wk ORDER BY us) AS gap_us FROM gap_rows)
    GROUP BY wk
),
hits AS (
    SELECT *, CASE WHEN mean_gap_s > 0 THEN sd_gap_s / mean_gap_s END AS cv,
           coalesce(requests >= $min_requests AND active_hours >= $min_active_hours
                    AND cv <= $max_cv, false) AS by_gaps,
           hour_share >= $min_hour_share AND dispersion <= $max_dispersion AS by_hours
    FROM candidates
    LEFT JOIN gaps ON gaps.wk = hash(candidates.principal_type, candidates.principal_id,
                                     candidates.bucket)
),
scored AS (
    SELECT *,
           greatest(
               CASE WHEN by_gaps THEN 30 + 20 * (1 - cv / greatest($max_cv, 1e-9))
                                      + 10 * log10(requests / $min_requests) END,
               CASE WHEN by_hours THEN 30 + 20 * (1 - dispersion / greatest($max_dispersion, 1e-9))
                                       + 10 * (hour_share - $min_hour_share)
                                            / greatest(1 - $min_hour_share, 1e-9) END) AS raw_score,
           CASE principal_type WHEN 'ip' THEN 'Client IP ' ELSE 'Credential ' END
               || principal_id AS who,
           CASE WHEN endpoint IS NULL OR endpoint = 'other' THEN 'one path' ELSE 'one endpoint' END
               || CASE WHEN model_family IS NULL THEN '' ELSE ' and model' END AS one_target
    FROM hits
    WHERE by_gaps OR by_hours
),
sample_rows AS (
    -- the first requests of each window found, by credential id or by address
    SELECT c.principal_type, c.principal_id, c.bucket, r.ts, r.request_id, r.tenant_id
    FROM scored c
    JOIN requests r
      ON c.principal_type = 'credential' AND r.credential_id = c.principal_id
     AND r.ts BETWEEN c.first_seen AND c.last_seen
    UNION ALL
    SELECT c.principal_type, c.principal_id, c.bucket, r.ts, r.request_id, r.tenant_id
    FROM scored c
    JOIN requests r
      ON c.principal_type = 'ip' AND r.credential_id IS NULL AND r.client_ip = c.principal_id
     AND r.ts BETWEEN c.first_seen AND c.last_seen
),
samples AS (
    SELECT principal_type, principal_id, bucket,
           min_by(request_id, (ts, request_id), 20) AS request_ids
    FROM sample_rows
    WHERE request_id IS NOT NULL
      AND ($since IS NULL OR ts >= $since)
      AND ($until IS NULL OR ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
    GROUP BY ALL
)
SELECT
    principal_type,
    principal_id,
    tenant_id,
    first_seen AS window_start,
    last_seen AS window_end,
    round(least(100, raw_score), 1)::DOUBLE AS score,
    CASE WHEN by_gaps
         THEN format('{} made {} requests every {} s on average (CV {}) in {} distinct hours, {},'
                     || ' never streaming: machine cadence.',
                     who, requests, round(mean_gap_s, 1), round(cv, 3), active_hours, one_target)
         ELSE format('{} made {} requests in {} of the {} hours of the window, a steady {} an hour'
                     || ' (variance/mean {}), {}, never streaming: no day-night rhythm.',
                     who, requests, active_hours, CAST($window_hours AS BIGINT),
                     round(hourly_mean, 1), round(dispersion, 2), one_target)
    END AS summary,
    struct_pack(
        cadence := CASE WHEN by_gaps THEN 'gaps' ELSE 'hours' END,
        requests := requests,
        mean_gap_s := round(mean_gap_s, 3)::DOUBLE,
        stddev_gap_s := round(sd_gap_s, 3)::DOUBLE,
        cv := round(cv, 4)::DOUBLE,
        active_hours := active_hours,
        hourly_mean := round(hourly_mean, 3)::DOUBLE,
        hourly_dispersion := round(dispersion, 4)::DOUBLE,
        endpoint := endpoint,
        path := CASE WHEN endpoint IS NULL OR endpoint = 'other' THEN target END,
        model_family := model_family,
        bucket_start := bucket,
        window_hours := CAST($window_hours AS BIGINT)
    ) AS evidence,
    coalesce(samples.request_ids, []) AS sample_request_ids,
    est_cost_usd
FROM scored LEFT JOIN samples USING (principal_type, principal_id, bucket)
ORDER BY score DESC, principal_type, principal_id, window_start
