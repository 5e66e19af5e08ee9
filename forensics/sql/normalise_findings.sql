-- One detector's rows, normalised into this run's findings (`_run_new`, in the run's scratch
-- database: `into` is its qualified name). The detector's SELECT runs inside this INSERT, so no
-- table is made per detector, and it is bound once: whatever the types of its columns, the
-- same statement takes them. Python fills in the parts marked by a comment naming them: into,
-- query (the SELECT) and severity (within the YAML's bounds, when it has them).
--   optional     severity and est_cost_usd are NULL where the SELECT has none (UNION BY NAME)
--   evidence     as JSON: JSON as it is, text that is valid JSON parsed, anything else to_json
--   cost         what the detector claims, kept as the provider-side cost of provider_key
--                findings only: the gateway cost of every finding is computed from its
--                principal's requests when the run is written
--   finding_id   hash of run, detector, principal and window: each run's findings are its own
--   score        clamped to 0..100
--   duplicates   two rows for one principal and window are one finding: the highest score
INSERT INTO /*into*/ _run_new
SELECT finding_id, $_run_detector_id, $_run_version, severity, score, principal_type,
       principal_id, tenant_id, window_start, window_end, summary, evidence,
       claimed_cost_usd, sample_request_ids
FROM (
    SELECT *, left(sha256(concat_ws('|', $_run_id, $_run_detector_id,
                   coalesce(principal_type, ''), coalesce(principal_id, ''),
                   coalesce(strftime(timezone('UTC', window_start), '%Y-%m-%dT%H:%M:%S.%fZ'), ''),
                   coalesce(strftime(timezone('UTC', window_end), '%Y-%m-%dT%H:%M:%S.%fZ'), ''))),
                   32) AS finding_id
    FROM (
        SELECT coalesce(CAST(principal_type AS VARCHAR), $_run_principal_type) AS principal_type,
               CAST(principal_id AS VARCHAR) AS principal_id,
               CAST(tenant_id AS VARCHAR) AS tenant_id,
               CAST(window_start AS TIMESTAMPTZ) AS window_start,
               CAST(window_end AS TIMESTAMPTZ) AS window_end,
               least(100, greatest(0, CAST(score AS DOUBLE))) AS score,
               CAST(summary AS VARCHAR) AS summary,
               CASE WHEN typeof(evidence) = 'JSON' THEN CAST(evidence AS JSON)
                    WHEN typeof(evidence) = 'VARCHAR' AND json_valid(CAST(evidence AS VARCHAR))
                    THEN CAST(CAST(evidence AS VARCHAR) AS JSON)
                    ELSE to_json(evidence) END AS evidence,
               CAST(est_cost_usd AS DOUBLE) AS claimed_cost_usd,
               /*severity*/ AS severity,
               coalesce(CAST(sample_request_ids AS VARCHAR[]), []) AS sample_request_ids
        FROM (
            (
/*query*/
            ) UNION ALL BY NAME (SELECT NULL AS severity, NULL AS est_cost_usd WHERE false)
        )
    )
)
QUALIFY row_number() OVER (PARTITION BY finding_id ORDER BY score DESC NULLS LAST, summary) = 1
