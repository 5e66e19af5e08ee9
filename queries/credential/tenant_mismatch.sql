-- credential.tenant_mismatch: a credential that crosses tenants, in one of two ways:
--   claim   a JWT whose tenant claim (token_tenant: --tenant-claim at ingest, else tenant_id, tid,
--           tenant, org_id) names another tenant than the one the gateway routed it to; with
--           audience_names_tenant, also a JWT whose audience does not list the routed tenant
--   shared  one credential seen under two or more tenants within one window
-- Both are a token or key of one customer spending another's quota: a confused deputy in the
-- gateway's routing, a token replayed against another tenant's route, or a key shared or
-- resold. Windows are fixed buckets of window_hours; one finding per credential, window and way.
WITH claims AS (
    SELECT credential_id, time_bucket(to_hours(CAST($window_hours AS BIGINT)), ts) AS bucket,
           ts, request_id, tenant_id, est_cost_usd,
           CASE WHEN token_tenant IS NOT NULL AND lower(token_tenant) <> lower(tenant_id)
                    THEN token_tenant
                WHEN $audience_names_tenant AND token_audience IS NOT NULL
                     AND NOT list_contains(list_transform(token_audience, lambda a: lower(a)),
                                           lower(tenant_id))
                    THEN array_to_string(token_audience, ' ') END AS claimed
    FROM requests
    WHERE credential_type IN ('jwt', 'oauth') AND credential_id IS NOT NULL
      AND tenant_id IS NOT NULL AND (token_tenant IS NOT NULL OR token_audience IS NOT NULL)
      AND ($since IS NULL OR ts >= $since)
      AND ($until IS NULL OR ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
),
claim_hits AS (
    SELECT credential_id, bucket, 'claim' AS way,
           arg_min(tenant_id, ts) AS tenant_id,
           min(ts) AS first_seen, max(ts) AS last_seen, count(*) AS requests,
           list(DISTINCT claimed ORDER BY claimed) AS claimed_tenants,
           list(DISTINCT tenant_id ORDER BY tenant_id) AS routed_tenants,
           min_by(request_id, (ts, request_id), 20) FILTER (WHERE request_id IS NOT NULL)
               AS request_ids
    FROM claims
    WHERE claimed IS NOT NULL
    GROUP BY credential_id, bucket
),
shared_candidates AS (
    -- credentials under two or more tenants in a window, from the shared features
    SELECT principal_id AS credential_id,
           time_bucket(to_hours(CAST($window_hours AS BIGINT)), hour) AS bucket
    FROM principal_hours
    WHERE principal_type = 'credential' AND tenant_id IS NOT NULL
      AND ($since IS NULL OR last_ts >= $since)
      AND ($until IS NULL OR first_ts <= $until)
    GROUP BY ALL
    HAVING count(DISTINCT tenant_id) >= 2
),
shared_hits AS (
    SELECT r.credential_id, c.bucket, 'shared' AS way,
           arg_min(r.tenant_id, r.ts) AS tenant_id,
           min(r.ts) AS first_seen, max(r.ts) AS last_seen, count(*) AS requests,
           []::VARCHAR[] AS claimed_tenants,
           list(DISTINCT r.tenant_id ORDER BY r.tenant_id) AS routed_tenants,
           min_by(r.request_id, (r.ts, r.request_id), 20) FILTER (WHERE r.request_id IS NOT NULL)
               AS request_ids
    FROM requests r
    JOIN shared_candidates c
      ON r.credential_id = c.credential_id
     AND r.ts >= c.bucket AND r.ts < c.bucket + to_hours(CAST($window_hours AS BIGINT))
    WHERE r.tenant_id IS NOT NULL
      AND ($since IS NULL OR r.ts >= $since)
      AND ($until IS NULL OR r.ts <= $until)
    GROUP BY r.credential_id, c.bucket
    HAVING $tenant IS NULL OR list_contains(list(DISTINCT r.tenant_id), $tenant)
),
hits AS (
    SELECT * FROM claim_hits
    UNION ALL
    SELECT * FROM shared_hits
)
SELECT
    'credential' AS principal_type,
    credential_id AS principal_id,
    tenant_id,
    first_seen AS window_start,
    last_seen AS window_end,
    CASE way WHEN 'claim' THEN 'high' ELSE 'medium' END AS severity,
    round(least(100, CASE way WHEN 'claim' THEN 70 ELSE 55 END + 5 * log10(requests)
                     + 5 * (array_length(routed_tenants) - 1)), 1)::DOUBLE AS score,
    CASE way
        WHEN 'claim' THEN format(
            'Token credential {} was routed to {} {} time(s) while its claims name {}.',
            credential_id, array_to_string(routed_tenants, ', '), requests,
            array_to_string(claimed_tenants, ', '))
        ELSE format('Credential {} was used under {} tenants ({}) within {} hours, {} requests.',
                    credential_id, array_length(routed_tenants), array_to_string(routed_tenants, ', '),
                    CAST($window_hours AS BIGINT), requests)
    END AS summary,
    struct_pack(
        way := way,
        claimed_tenants := claimed_tenants,
        routed_tenants := routed_tenants,
        requests := requests,
        bucket_start := bucket,
        window_hours := CAST($window_hours AS BIGINT)
    ) AS evidence,
    coalesce(request_ids[1:20], []) AS sample_request_ids
FROM hits
ORDER BY score DESC, principal_id, window_start
