-- cost.concurrency: peak in-flight generations per credential in a window of window_hours far
-- above its baseline (mean of the peaks of its earlier windows). A request is in flight over
-- [ts, ts + latency_ms): +1 at start, -1 at end, ends sorted before starts at the same instant,
-- and a running sum per credential gives the concurrency after every event.
WITH slow AS (
    -- credentials with a generation longer than a minute (from the shared features)
    SELECT principal_id AS credential_id
    FROM principal_hours
    WHERE principal_type = 'credential'
      AND ($since IS NULL OR last_ts >= $since)
      AND ($until IS NULL OR first_ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
    GROUP BY principal_id
    HAVING max(max_latency_ms) > 60000
),
busy_minutes AS (
    -- integer keys (a hash of the credential, the minute's number): nearly every request is a
    -- group of its own here, and strings made this the detector's costliest step
    SELECT hash(credential_id) AS ck
    FROM requests
    WHERE credential_id IS NOT NULL AND ts IS NOT NULL
      AND ($since IS NULL OR ts >= $since)
      AND ($until IS NULL OR ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
    GROUP BY hash(credential_id), epoch_us(ts) // 60000000
    HAVING count(*) >= $min_concurrency / 2
),
candidates AS (
    -- Only these credentials can reach min_concurrency. When no generation of a credential
    -- lasts over a minute, the ones in flight at any moment started in that minute or the one
    -- before, so one of the two minutes holds half of min_concurrency requests at least;
    -- credentials with longer generations are always computed. (A credential whose hash
    -- equals a busy one's is computed too: more candidates, the same findings.)
    SELECT credential_id FROM slow
    UNION
    SELECT principal_id
    FROM principal_hours
    WHERE principal_type = 'credential'
      AND hash(principal_id) IN (SELECT ck FROM busy_minutes)
      AND ($since IS NULL OR last_ts >= $since)
      AND ($until IS NULL OR first_ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
),
scoped AS (
    -- integer keys (a hash of the credential, microseconds) keep the event sort cheap
    SELECT ts, tenant_id, credential_id, est_cost_usd,
           coalesce(latency_ms, 0) AS latency_ms,
           hash(credential_id) AS ck,
           epoch_us(ts) AS start_us,
           time_bucket(to_hours(CAST($window_hours AS BIGINT)), ts) AS bucket
    FROM requests
    WHERE credential_id IN (SELECT credential_id FROM candidates) AND ts IS NOT NULL
      AND ($since IS NULL OR ts >= $since)
      AND ($until IS NULL OR ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
),
events AS (
    -- one sort key: 2 x the instant, + 1 for a start, so that ends sort before starts
    SELECT ck, 2 * start_us + 1 AS at_key, 1 AS delta, bucket, ts FROM scoped
    UNION ALL
    SELECT ck, 2 * (start_us + CAST(round(latency_ms * 1000) AS BIGINT)), -1, NULL, NULL
    FROM scoped
),
running AS (
    SELECT ck, bucket, ts, delta,
           sum(delta) OVER (PARTITION BY ck ORDER BY at_key ROWS UNBOUNDED PRECEDING)
               AS in_flight
    FROM events
),
peaks AS (
    SELECT ck, bucket,
           max(in_flight) AS peak,
           -- the first time the peak was reached (a later equal peak is a tie)
           arg_min(ts, (-in_flight, ts)) AS peak_at
    FROM running
    WHERE delta = 1
    GROUP BY ALL
),
windows AS (
    SELECT credential_id, ck, bucket,
           arg_min(tenant_id, ts) AS tenant_id,
           min(ts) AS first_seen, max(ts) AS last_seen,
           count(*) AS requests,
           avg(latency_ms) AS avg_latency_ms,
           sum(est_cost_usd) AS est_cost_usd
    FROM scoped
    GROUP BY ALL
),
baselined AS (
    SELECT w.*, p.peak, p.peak_at,
           avg(p.peak) OVER (PARTITION BY w.credential_id ORDER BY w.bucket
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS baseline_peak,
           count(*) OVER (PARTITION BY w.credential_id ORDER BY w.bucket
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS baseline_windows
    FROM windows w JOIN peaks p USING (ck, bucket)
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
    coalesce((SELECT min_by(r.request_id, (r.ts, r.request_id), 20)
              FROM requests r
              WHERE r.credential_id = baselined.credential_id
                AND r.ts BETWEEN baselined.first_seen AND baselined.last_seen
                AND r.request_id IS NOT NULL
                AND ($since IS NULL OR r.ts >= $since)
                AND ($until IS NULL OR r.ts <= $until)
                AND ($tenant IS NULL OR r.tenant_id = $tenant)), []) AS sample_request_ids,
    est_cost_usd
FROM baselined
WHERE baseline_windows >= 1
  AND peak >= $min_concurrency
  AND peak >= $min_ratio * baseline_peak
ORDER BY score DESC, principal_id, window_start
