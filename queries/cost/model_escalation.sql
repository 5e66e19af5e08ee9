-- cost.model_escalation: a tenant whose cost in one hour jumps to min_ratio x its baseline
-- hourly cost (mean over its earlier active hours) because it moved its traffic to a model
-- family it rarely used (< max_baseline_share of its earlier requests) or to maximal outputs
-- (average output tokens >= output_ratio x its earlier average).
-- Hourly costs and model mixes come from the shared `principal_hours` features; sample
-- requests are read from `requests` for the jump hours only.
WITH fam AS (
    SELECT tenant_id, hour, coalesce(model_family, 'unknown') AS family,
           sum(requests) AS requests,
           coalesce(sum(est_cost_usd), 0) AS cost
    FROM principal_hours
    WHERE tenant_id IS NOT NULL
      AND ($since IS NULL OR last_ts >= $since)
      AND ($until IS NULL OR first_ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
    GROUP BY ALL
),
hours AS (
    SELECT tenant_id, hour,
           min(first_ts) AS first_seen, max(last_ts) AS last_seen,
           sum(requests) AS requests,
           coalesce(sum(est_cost_usd), 0) AS cost,
           sum(output_tokens) / nullif(sum(output_requests), 0) AS avg_output,
           sum(output_tokens) AS sum_output,
           sum(output_requests) AS n_output
    FROM principal_hours
    WHERE tenant_id IS NOT NULL
      AND ($since IS NULL OR last_ts >= $since)
      AND ($until IS NULL OR first_ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
    GROUP BY ALL
),
baselined AS (
    SELECT *,
           avg(cost) OVER w AS baseline_cost,
           count(*) OVER w AS baseline_hours,
           sum(requests) OVER w AS baseline_requests,
           sum(sum_output) OVER w / nullif(sum(n_output) OVER w, 0) AS baseline_output
    FROM hours
    WINDOW w AS (PARTITION BY tenant_id ORDER BY hour
                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
jumps AS (
    SELECT * FROM baselined
    WHERE baseline_hours >= 1
      AND cost >= $min_cost_usd
      AND cost >= $min_ratio * baseline_cost
),
families AS (
    -- per jump hour, each family's cost share now and its request share before
    SELECT j.tenant_id, j.hour, f.family,
           f.cost / nullif(j.cost, 0) AS cost_share,
           coalesce(f.before, 0) / j.baseline_requests AS baseline_share
    FROM jumps j
    JOIN (SELECT *, sum(requests) OVER (PARTITION BY tenant_id, family ORDER BY hour
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                        AS before
          FROM fam
          WHERE tenant_id IN (SELECT tenant_id FROM jumps)) f USING (tenant_id, hour)
),
shift AS (
    SELECT tenant_id, hour,
           coalesce(sum(cost_share) FILTER (WHERE baseline_share < $max_baseline_share), 0)
               AS new_family_cost_share,
           list(family ORDER BY cost_share DESC, family)
               FILTER (WHERE baseline_share < $max_baseline_share) AS new_families,
           list(family ORDER BY cost_share DESC, family) AS families
    FROM families
    GROUP BY ALL
),
samples AS (
    SELECT j.tenant_id, j.hour,
           -- the 20 costliest first
           min_by(s.request_id,
                  (coalesce(-s.est_cost_usd, 'Infinity'::DOUBLE), s.ts, s.request_id), 20)
               FILTER (WHERE s.request_id IS NOT NULL) AS request_ids
    FROM jumps j
    JOIN requests s
      ON s.tenant_id = j.tenant_id AND s.ts >= j.hour AND s.ts < j.hour + INTERVAL 1 HOUR
    WHERE TRUE
      AND ($since IS NULL OR s.ts >= $since)
      AND ($until IS NULL OR s.ts <= $until)
      AND ($tenant IS NULL OR s.tenant_id = $tenant)
    GROUP BY ALL
),
credentials AS (
    SELECT j.tenant_id, j.hour,
           count(DISTINCT p.principal_id) FILTER (WHERE p.principal_type = 'credential')
               AS credentials
    FROM jumps j JOIN principal_hours p ON p.tenant_id = j.tenant_id AND p.hour = j.hour
    GROUP BY ALL
),
found AS (
    SELECT j.*, c.credentials, sh.new_family_cost_share, sh.new_families, sh.families,
           sm.request_ids,
           j.cost / nullif(j.baseline_cost, 0) AS ratio,
           j.avg_output / nullif(j.baseline_output, 0) AS output_ratio,
           sh.new_family_cost_share >= $min_shift_share AS model_shift,
           coalesce(j.avg_output >= $output_ratio * j.baseline_output, false) AS output_shift
    FROM jumps j
    JOIN shift sh USING (tenant_id, hour)
    JOIN samples sm USING (tenant_id, hour)
    JOIN credentials c USING (tenant_id, hour)
)
SELECT
    'tenant' AS principal_type,
    tenant_id AS principal_id,
    tenant_id,
    first_seen AS window_start,
    last_seen AS window_end,
    round(least(100, 50 + 20 * log10(coalesce(ratio, 1000)) + 5 * log10(cost)), 1)::DOUBLE
        AS score,
    format('Tenant {} spent ${} in the hour from {}, {} its baseline of ${} per hour, {}.',
           tenant_id, round(cost, 2), strftime(hour, '%Y-%m-%d %H:%M UTC'),
           coalesce(round(ratio, 1) || 'x', 'far above'), round(baseline_cost, 4),
           CASE WHEN model_shift
                THEN 'moving ' || round(100 * new_family_cost_share) || '% of its cost to '
                     || array_to_string(new_families[1:3], ', ')
                ELSE 'with outputs ' || round(output_ratio, 1) || 'x its usual length' END)
        AS summary,
    struct_pack(
        hour_cost_usd := round(cost, 4)::DOUBLE,
        baseline_hourly_cost_usd := round(baseline_cost, 6)::DOUBLE,
        ratio := round(ratio, 2)::DOUBLE,
        baseline_hours := baseline_hours,
        requests := requests,
        baseline_requests := baseline_requests,
        model_shift := model_shift,
        new_families := coalesce(new_families, []),
        new_family_cost_share := round(new_family_cost_share, 3)::DOUBLE,
        families := families,
        output_shift := output_shift,
        avg_output_tokens := round(avg_output, 1)::DOUBLE,
        baseline_avg_output_tokens := round(baseline_output, 1)::DOUBLE,
        credentials := credentials
    ) AS evidence,
    coalesce(request_ids[1:20], []) AS sample_request_ids,
    cost AS est_cost_usd
FROM found
WHERE model_shift OR output_shift
ORDER BY score DESC, principal_id, window_start
