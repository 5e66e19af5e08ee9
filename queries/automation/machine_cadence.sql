-- automation.machine_cadence: a credential calling at machine cadence around the clock.
-- Windows are fixed buckets of window_hours. Inter-arrival gaps come from lag() over the
-- credential's requests in the window; their coefficient of variation (stddev / mean) is
-- near 0 for a timer-driven client. The credential must also be active in many distinct
-- hours, never stream, and use one endpoint and one model family.
WITH scoped AS (
    SELECT ts, request_id, tenant_id, credential_id, endpoint, model_family,
           coalesce(stream, false) AS stream, est_cost_usd,
           time_bucket(to_hours(CAST($window_hours AS BIGINT)), ts) AS bucket
    FROM requests
    WHERE credential_id IS NOT NULL AND ts IS NOT NULL
      AND ($since IS NULL OR ts >= $since)
      AND ($until IS NULL OR ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
),
gaps AS (
    SELECT *,
           epoch(ts - lag(ts) OVER (PARTITION BY credential_id, bucket
                                    ORDER BY ts, request_id)) AS gap_s
    FROM scoped
),
per_window AS (
    SELECT credential_id, bucket,
           arg_min(tenant_id, ts) AS tenant_id,
           min(ts) AS first_seen,
           max(ts) AS last_seen,
           count(*) AS requests,
           count(DISTINCT date_trunc('hour', ts)) AS active_hours,
           count(*) FILTER (WHERE stream) AS stream_requests,
           count(DISTINCT coalesce(endpoint, '')) AS endpoints,
           count(DISTINCT coalesce(model_family, '')) AS model_families,
           any_value(endpoint) AS endpoint,
           any_value(model_family) AS model_family,
           avg(gap_s) AS mean_gap_s,
           stddev_pop(gap_s) AS sd_gap_s,
           list(request_id ORDER BY ts, request_id) FILTER (WHERE request_id IS NOT NULL)
               AS request_ids,
           sum(est_cost_usd) AS est_cost_usd
    FROM gaps
    GROUP BY credential_id, bucket
),
hits AS (
    SELECT *, sd_gap_s / mean_gap_s AS cv
    FROM per_window
    WHERE requests >= $min_requests
      AND active_hours >= $min_active_hours
      AND stream_requests = 0
      AND endpoints = 1
      AND model_families = 1
      AND mean_gap_s > 0
      AND sd_gap_s / mean_gap_s <= $max_cv
)
SELECT
    'credential' AS principal_type,
    credential_id AS principal_id,
    tenant_id,
    first_seen AS window_start,
    last_seen AS window_end,
    round(least(100, 30 + 20 * (1 - cv / greatest($max_cv, 1e-9))
                     + 10 * log10(requests / $min_requests)), 1)::DOUBLE AS score,
    format('Credential {} made {} requests every {} s on average (CV {}) in {} distinct hours,'
           || ' one endpoint and model, never streaming: machine cadence.',
           credential_id, requests, round(mean_gap_s, 1), round(cv, 3), active_hours)
        AS summary,
    struct_pack(
        requests := requests,
        mean_gap_s := round(mean_gap_s, 3)::DOUBLE,
        stddev_gap_s := round(sd_gap_s, 3)::DOUBLE,
        cv := round(cv, 4)::DOUBLE,
        active_hours := active_hours,
        endpoint := endpoint,
        model_family := model_family,
        bucket_start := bucket,
        window_hours := CAST($window_hours AS BIGINT)
    ) AS evidence,
    coalesce(request_ids[1:20], []) AS sample_request_ids,
    est_cost_usd
FROM hits
ORDER BY score DESC, principal_id, window_start
