-- Incidents: the current findings on one principal close in time, grouped into one story,
-- each with its cost computed once here and stored.
--   principal   a credential finding whose tenant is known counts for its tenant (several keys
--               of one customer misused together are one incident), any other its own principal
--   grouping    a finding joins the incident while it starts no later than $gap after the
--               latest end seen so far (overlapping windows always join)
--   counted     unsuppressed findings that no later run superseded
--   score       the highest score, plus $bonus per distinct detector beyond the first
--   est_cost    the cost of the union of its findings' principals' gateway requests inside the
--               incident's window: a request two findings share is counted once
--   provider    the provider-side cost of its provider_key findings (usage the gateway never saw)
--   primary     the primary diagnosis: among its findings, those that no finding of another
--               detector on the same principal and overlapping in time explains
--               (run_detectors.explains of the explaining finding's own run: a client-embedded
--               key explains its impossible travel), the one with the highest severity, then
--               score, then detector id; if every one is explained (a cycle), all compete
INSERT INTO incidents (incident_id, principal_type, principal_id, tenant_id, first_seen,
                       last_seen, score, severity, detectors, primary_detector, finding_ids,
                       est_cost_usd, provider_cost_usd)
WITH f AS (
    SELECT findings.*, coalesce(d.explains, []) AS explains,
        CASE WHEN findings.principal_type = 'credential' AND tenant_id IS NOT NULL THEN 'tenant'
             ELSE findings.principal_type END AS i_type,
        CASE WHEN findings.principal_type = 'credential' AND tenant_id IS NOT NULL THEN tenant_id
             ELSE principal_id END AS i_id
    FROM findings LEFT JOIN run_detectors d USING (run_id, detector_id)
    WHERE NOT coalesce(suppressed, false) AND superseded_by IS NULL
),
reach AS (
    SELECT *, max(window_end) OVER (
        PARTITION BY i_type, i_id ORDER BY window_start, finding_id
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach_end
    FROM f
),
grouped AS (
    SELECT *, sum(CASE WHEN reach_end IS NULL
                         OR window_start > reach_end + CAST($gap AS INTERVAL)
                       THEN 1 ELSE 0 END) OVER (
        PARTITION BY i_type, i_id ORDER BY window_start, finding_id
        ROWS UNBOUNDED PRECEDING) AS session
    FROM reach
),
explained AS (
    -- the findings of an incident that a finding of another of its detectors explains: on the
    -- same principal (one key's exposure says nothing of another key of the tenant) and
    -- overlapping in time
    SELECT DISTINCT a.finding_id
    FROM grouped a JOIN grouped b
      ON a.i_type = b.i_type AND a.i_id = b.i_id AND a.session = b.session
     AND a.principal_type = b.principal_type AND a.principal_id = b.principal_id
     AND a.window_start <= b.window_end AND b.window_start <= a.window_end
     AND a.detector_id <> b.detector_id
     AND len(list_filter(b.explains, lambda g: a.detector_id GLOB g)) > 0
),
diagnosis AS (
    SELECT i_type, i_id, session,
           arg_max(detector_id, struct_pack(
               unexplained := e.finding_id IS NULL, severity := severity, score := score,
               id := detector_id)) AS primary_detector
    FROM grouped LEFT JOIN explained e USING (finding_id)
    GROUP BY i_type, i_id, session
),
incident AS (
    SELECT
        left(sha256(concat_ws('|', coalesce(i_type, ''), coalesce(i_id, ''),
            first(finding_id ORDER BY window_start, finding_id))), 32) AS incident_id,
        i_type AS principal_type,
        i_id AS principal_id,
        CASE WHEN i_type = 'tenant' THEN i_id
             WHEN count(DISTINCT tenant_id) = 1 THEN min(tenant_id) END AS tenant_id,
        min(window_start) AS first_seen,
        max(window_end) AS last_seen,
        least(100, max(score) + $bonus * (count(DISTINCT detector_id) - 1)) AS score,
        max(severity) AS severity,
        list_sort(list(DISTINCT detector_id)) AS detectors,
        list(finding_id ORDER BY window_start, finding_id) AS finding_ids,
        sum(provider_cost_usd) AS provider_cost_usd,
        list(DISTINCT {'t': principal_type, 'id': principal_id}) AS principals,
        any_value(d.primary_detector) AS primary_detector
    FROM grouped JOIN diagnosis d USING (i_type, i_id, session)
    GROUP BY i_type, i_id, session
),
numbered AS MATERIALIZED (
    -- a number for each incident: the costs below group by it, not by the 32-character id
    SELECT *, row_number() OVER () AS no FROM incident
),
members AS (
    SELECT no, first_seen, last_seen, m.t AS principal_type, m.id AS principal_id,
           len(principals) = 1 AS alone
    FROM (SELECT no, first_seen, last_seen, principals, unnest(principals) AS m
          FROM numbered)
),
requested AS (
    -- each request once per incident, however many of its principals it belongs to: a
    -- principal's requests are distinct already, so only the requests of an incident of
    -- several principals are grouped one by one
    SELECT no, sum(est_cost_usd) AS est_cost_usd
    FROM (
        SELECT no,
               CASE WHEN any_value(alone) THEN sum(est_cost_usd)
                    ELSE any_value(est_cost_usd) END AS est_cost_usd
        FROM (
            SELECT m.no, m.alone, p.request_row, p.est_cost_usd
            FROM members m
            JOIN request_principals p
              ON p.principal_type = m.principal_type AND p.principal_id = m.principal_id
             AND p.ts BETWEEN m.first_seen AND m.last_seen
            -- the types of the findings (forensics/case/principals.py present_types)
            WHERE p.principal_type IN (/*types*/)
        )
        GROUP BY no, CASE WHEN NOT alone THEN request_row END
    )
    GROUP BY no
)
SELECT i.incident_id, i.principal_type, i.principal_id, i.tenant_id, i.first_seen, i.last_seen,
       i.score, i.severity, i.detectors, i.primary_detector, i.finding_ids,
       r.est_cost_usd, i.provider_cost_usd
FROM numbered i LEFT JOIN requested r USING (no)
