-- cost.tool_fanout: a credential whose tool calls per request in one window of window_hours
-- jump far above its own history (mean of its earlier windows) and above the population's
-- p95 (all other credential windows). Agents that always fan out have a high baseline.
-- Window counts come from the shared `principal_hours` features; sessions and sample requests
-- are read from `requests` for the windows that pass.
WITH windows AS (
    SELECT principal_id AS credential_id,
           time_bucket(to_hours(CAST($window_hours AS BIGINT)), hour) AS bucket,
           arg_min(tenant_id, first_ts) AS tenant_id,
           min(first_ts) AS first_seen, max(last_ts) AS last_seen,
           sum(requests) AS requests,
           sum(tool_calls) AS tool_calls,
           sum(tool_calls) / sum(requests) AS tools_per_request,
           sum(est_cost_usd) AS est_cost_usd
    FROM principal_hours
    WHERE principal_type = 'credential'
      AND ($since IS NULL OR last_ts >= $since)
      AND ($until IS NULL OR first_ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
    GROUP BY ALL
),
baselined AS (
    SELECT *,
           avg(tools_per_request) OVER (PARTITION BY credential_id ORDER BY bucket
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS baseline,
           count(*) OVER (PARTITION BY credential_id ORDER BY bucket
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS baseline_windows
    FROM windows
),
candidates AS (
    SELECT *, tools_per_request / greatest(baseline, 0.1) AS ratio
    FROM baselined
    WHERE baseline_windows >= 1
      AND requests >= $min_requests
      AND tools_per_request >= $min_per_request
      AND tools_per_request >= $min_ratio * greatest(baseline, 0.1)
),
-- the population p95 is quantile_cont's over all other windows (the window itself left out),
-- read off the ranked windows: with the N windows in order and the candidate at rank k, the
-- others' p95 interpolates between their ranks lo and lo + 1 (lo = 1 + floor(0.95 (N - 2))),
-- which are the windows' ranks lo and lo + 1 below k, one further at or above it. Three rows
-- of `ranked` a candidate, where comparing it with every other window was a cross join.
ranked AS (
    SELECT credential_id, bucket, tools_per_request AS value,
           row_number() OVER (ORDER BY tools_per_request) AS i
    FROM windows
    WHERE tools_per_request IS NOT NULL
),
spread AS (
    SELECT others, CAST(floor(position) AS BIGINT) + 1 AS lo, position - floor(position) AS frac
    FROM (SELECT count(*) - 1 AS others, CAST(0.95 AS DOUBLE) * (count(*) - 2) AS position
          FROM ranked)
),
population AS (
    SELECT credential_id, bucket,
           CASE WHEN others < 1 THEN 0
                ELSE lower_value + frac * (coalesce(upper_value, lower_value) - lower_value)
           END AS population_p95
    FROM (
        SELECT c.credential_id, c.bucket, s.others, s.frac,
               CASE WHEN s.lo < me.i THEN x0.value ELSE x1.value END AS lower_value,
               CASE WHEN s.lo + 1 < me.i THEN x1.value ELSE x2.value END AS upper_value
        FROM candidates c
        JOIN ranked me ON me.credential_id = c.credential_id AND me.bucket = c.bucket
        CROSS JOIN spread s
        LEFT JOIN ranked x0 ON x0.i = s.lo
        LEFT JOIN ranked x1 ON x1.i = s.lo + 1
        LEFT JOIN ranked x2 ON x2.i = s.lo + 2
    )
),
detail AS (
    SELECT c.credential_id, c.bucket,
           count(DISTINCT r.session_id) AS sessions,
           max(r.tool_calls) AS max_tools,
           min_by(r.request_id, (-coalesce(r.tool_calls, 0), r.ts, r.request_id), 20)
               FILTER (WHERE r.request_id IS NOT NULL) AS request_ids
    FROM candidates c
    JOIN requests r
      ON r.credential_id = c.credential_id AND r.ts BETWEEN c.first_seen AND c.last_seen
    WHERE TRUE
      AND ($since IS NULL OR r.ts >= $since)
      AND ($until IS NULL OR r.ts <= $until)
      AND ($tenant IS NULL OR r.tenant_id = $tenant)
    GROUP BY ALL
)
SELECT
    'credential' AS principal_type,
    c.credential_id AS principal_id,
    c.tenant_id,
    c.first_seen AS window_start,
    c.last_seen AS window_end,
    round(least(100, 40 + 20 * log10(c.ratio) + 5 * log10(c.requests)), 1)::DOUBLE AS score,
    format('Credential {} made {} tool calls per request over {} requests in {} hours,'
           || ' {}x its baseline of {} and above the population p95 of {}.',
           c.credential_id, round(c.tools_per_request, 2), c.requests,
           CAST($window_hours AS BIGINT), round(c.ratio, 1), round(c.baseline, 2),
           round(p.population_p95, 2)) AS summary,
    struct_pack(
        tools_per_request := round(c.tools_per_request, 3)::DOUBLE,
        baseline_tools_per_request := round(c.baseline, 3)::DOUBLE,
        baseline_windows := c.baseline_windows,
        ratio := round(c.ratio, 2)::DOUBLE,
        population_p95 := round(p.population_p95, 3)::DOUBLE,
        tool_calls := c.tool_calls,
        requests := c.requests,
        sessions := d.sessions,
        tools_per_session := round(c.tool_calls / greatest(d.sessions, 1), 2)::DOUBLE,
        max_tools_in_request := d.max_tools,
        bucket_start := c.bucket,
        window_hours := CAST($window_hours AS BIGINT)
    ) AS evidence,
    coalesce(d.request_ids[1:20], []) AS sample_request_ids,
    c.est_cost_usd
FROM candidates c
JOIN population p USING (credential_id, bucket)
LEFT JOIN detail d USING (credential_id, bucket)
WHERE c.tools_per_request > p.population_p95
ORDER BY score DESC, principal_id, window_start
