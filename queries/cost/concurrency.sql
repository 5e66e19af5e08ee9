-- cost.concurrency: peak in-flight generations per credential in a window of window_hours far
-- above its baseline (mean of the peaks of its earlier windows). A request is in flight over
-- [ts, ts + latency_ms): +1 at start, -1 at end, ends sorted before starts at the same instant,
-- and a running sum per credential gives the concurrency after every event.
WITH scoped AS (
    SELECT ts, request_id, tenant_id, credential_id, est_cost_usd,
           coalesce(latency_ms, 0) AS latency_ms
    FROM requests
    WHERE credential_id IS NOT NULL AND ts IS NOT NULL
      AND ($since IS NULL OR ts >= $since)
      AND ($until IS NULL OR ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
),
events AS (
    SELECT credential_id, ts AS event_at, 1 AS delta FROM scoped
    UNION ALL
    SELECT credential_id, ts + to_microseconds(CAST(round(latency_ms * 1000) AS BIGINT)), -1
    FROM scoped
),
running AS (
    SELECT credential_id, event_at, delta,
           sum(delta) OVER (PARTITION BY credential_id ORDER BY event_at, delta
                            ROWS UNBOUNDED PRECEDING) AS in_flight
    FROM events
),
peaks AS (
    SELECT credential_id,
           time_bucket(to_hours(CAST($window_hours AS BIGINT)), event_at) AS bucket,
           max(in_flight) AS peak,
           arg_max(event_at, in_flight) AS peak_at
    FROM running
    WHERE delta = 1
    GROUP BY ALL
),
windows AS (
    SELECT s.credential_id, time_bucket(to_hours(CAST($window_hours AS BIGINT)), s.ts) AS bucket,
           arg_min(s.tenant_id, s.ts) AS tenant_id,
           min(s.ts) AS first_seen, max(s.ts) AS last_seen,
           count(*) AS requests,
           avg(s.latency_ms) AS avg_latency_ms,
           list(s.request_id ORDER BY s.ts, s.request_id)
               FILTER (WHERE s.request_id IS NOT NULL) AS request_ids,
           sum(s.est_cost_usd) AS est_cost_usd
    FROM scoped s
    GROUP BY ALL
),
baselined AS (
    SELECT w.*, p.peak, p.peak_at,
           avg(p.peak) OVER (PARTITION BY w.credential_id ORDER BY w.bucket
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS baseline_peak,
           count(*) OVER (PARTITION BY w.credential_id ORDER BY w.bucket
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS baseline_windows
    FROM windows w JOIN peaks p USING (credential_id, bucket)
)
SELECT
    'credential' AS principal_type,
    credential_id AS principal_id,
    tenant_id,
    first_seen AS window_start,
    last_seen AS window_end,
    round(least(100, 40 + 25 * log10(peak / baseline_peak) + 5 * log10(peak)), 1)::DOUBLE
        AS score,
    format('Credential {} had {} generations in flight at once at {}, {}x its baseline peak'
           || ' of {} ({} requests in {} hours).',
           credential_id, peak, strftime(peak_at, '%Y-%m-%d %H:%M:%S UTC'),
           round(peak / baseline_peak, 1), round(baseline_peak, 1), requests,
           CAST($window_hours AS BIGINT)) AS summary,
    struct_pack(
        peak_concurrency := peak,
        peak_at := peak_at,
        baseline_peak := round(baseline_peak, 2)::DOUBLE,
        baseline_windows := baseline_windows,
        ratio := round(peak / baseline_peak, 2)::DOUBLE,
        requests := requests,
        avg_latency_ms := round(avg_latency_ms, 1)::DOUBLE,
        bucket_start := bucket,
        window_hours := CAST($window_hours AS BIGINT)
    ) AS evidence,
    coalesce(request_ids[1:20], []) AS sample_request_ids,
    est_cost_usd
FROM baselined
WHERE baseline_windows >= 1
  AND peak >= $min_concurrency
  AND peak >= $min_ratio * baseline_peak
ORDER BY score DESC, principal_id, window_start
