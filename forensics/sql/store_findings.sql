-- This run's findings (`_run_new`) stored, each with
--   est_cost_usd       the cost of its principal's gateway requests inside its window (the one
--                      definition of a principal's requests, `request_principals`), so no
--                      finding claims more than its principal spent; NULL when none of them
--                      is priced or the principal has no gateway requests (a provider key)
--   provider_cost_usd  for a provider_key finding, the provider-side cost the detector measured
--   suppressed_by      the allowlist row that applies (suppression.sql, joined as `m`)
INSERT INTO findings (finding_id, detector_id, detector_version, run_id, severity, score,
                      principal_type, principal_id, tenant_id, window_start, window_end, summary,
                      evidence, est_cost_usd, provider_cost_usd, suppressed, suppressed_by)
WITH costs AS (
    SELECT n.finding_id, sum(p.est_cost_usd) AS cost
    FROM _run_new n
    JOIN request_principals p
      ON p.principal_type = n.principal_type AND p.principal_id = n.principal_id
     AND p.ts BETWEEN n.window_start AND n.window_end
    -- the types of the findings (forensics/case/principals.py present_types)
    WHERE p.principal_type IN (/*types*/)
    GROUP BY n.finding_id
)
SELECT n.finding_id, n.detector_id, n.detector_version, $run, n.severity, n.score,
       n.principal_type, n.principal_id, n.tenant_id, n.window_start, n.window_end, n.summary,
       n.evidence,
       c.cost,
       CASE WHEN n.principal_type = 'provider_key' THEN n.claimed_cost_usd END,
       m.finding_id IS NOT NULL, m.suppressed_by
FROM _run_new n
LEFT JOIN costs c USING (finding_id)
LEFT JOIN (/*suppression*/) m USING (finding_id)
