-- credential.use_after_revocation: a credential that keeps working after it was revoked.
-- A request matches a revocation by its credential id as logged or by the fingerprint of the
-- raw key it carried (revocations of raw keys are fingerprinted the same way at ingest). Uses
-- inside the grace period after revocation (propagation delay) are not counted, nor are
-- requests the gateway refused with 401 / 403: those show the revocation working.
WITH revoked AS (
    SELECT credential_id, min(revoked_at) AS revoked_at
    FROM revocations
    WHERE credential_id IS NOT NULL AND revoked_at IS NOT NULL
    GROUP BY credential_id
),
scoped AS (
    SELECT ts, request_id, tenant_id, credential_id, key_fingerprint, client_ip, status,
           est_cost_usd
    FROM requests
    WHERE (credential_id IN (SELECT credential_id FROM revoked)
           OR key_fingerprint IN (SELECT credential_id FROM revoked))
      AND ($since IS NULL OR ts >= $since)
      AND ($until IS NULL OR ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
),
matched AS (
    SELECT v.credential_id AS principal_id, v.revoked_at, s.*
    FROM scoped s JOIN revoked v ON v.credential_id = s.credential_id
    UNION ALL
    -- the raw key's fingerprint, when the request is logged under another credential id
    SELECT v.credential_id AS principal_id, v.revoked_at, s.*
    FROM scoped s JOIN revoked v ON v.credential_id = s.key_fingerprint
    WHERE s.credential_id IS DISTINCT FROM s.key_fingerprint
),
after AS (
    SELECT *, coalesce(status IN (401, 403), false) AS refused
    FROM matched
    WHERE ts > revoked_at + to_minutes(CAST($grace_minutes AS BIGINT))
),
per_credential AS (
    SELECT principal_id,
           any_value(revoked_at) AS revoked_at,
           arg_min(tenant_id, ts) FILTER (WHERE NOT refused) AS tenant_id,
           min(ts) FILTER (WHERE NOT refused) AS first_use_after,
           max(ts) FILTER (WHERE NOT refused) AS last_use_after,
           count(*) FILTER (WHERE NOT refused) AS requests_after,
           count(*) FILTER (WHERE refused) AS refused_after,
           count(DISTINCT client_ip) FILTER (WHERE NOT refused) AS client_ips_after,
           min_by(request_id, (ts, request_id), 20)
               FILTER (WHERE NOT refused AND request_id IS NOT NULL) AS request_ids,
           sum(est_cost_usd) FILTER (WHERE NOT refused) AS est_cost_usd
    FROM after
    GROUP BY principal_id
    HAVING count(*) FILTER (WHERE NOT refused) >= 1
)
SELECT
    'credential' AS principal_type,
    principal_id,
    tenant_id,
    first_use_after AS window_start,
    last_use_after AS window_end,
    round(least(100, 70 + 10 * log10(requests_after)
                     + CASE WHEN client_ips_after > 1 THEN 5 ELSE 0 END), 1)::DOUBLE AS score,
    format('Credential {} was used {} time(s) from {} client IP(s) after its revocation at {},'
           || ' the first use {} minutes later.',
           principal_id, requests_after, client_ips_after,
           strftime(revoked_at, '%Y-%m-%d %H:%M:%S UTC'),
           round(epoch(first_use_after - revoked_at) / 60, 1)) AS summary,
    struct_pack(
        revoked_at := revoked_at,
        first_use_after := first_use_after,
        last_use_after := last_use_after,
        requests_after := requests_after,
        lag_minutes := round(epoch(first_use_after - revoked_at) / 60, 1),
        client_ips_after := client_ips_after,
        refused_after := refused_after,
        grace_minutes := CAST($grace_minutes AS BIGINT)
    ) AS evidence,
    coalesce(request_ids[1:20], []) AS sample_request_ids,
    est_cost_usd,
    CASE WHEN requests_after >= $critical_requests THEN 'critical' ELSE 'high' END AS severity
FROM per_credential
ORDER BY score DESC, principal_id
