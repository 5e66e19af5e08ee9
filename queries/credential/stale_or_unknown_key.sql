-- credential.stale_or_unknown_key: API keys the gateway accepted against what the key inventory
-- says of them. A key is found in `key_inventory` by the credential id as logged or by the
-- fingerprint of the raw key the request carried (every row of a key counts: its latest
-- created_at, its latest expires_at unless one row says it never expires, any of its owners).
-- Four reasons, one finding per key and reason:
--   expired       used more than $grace_minutes after its expires_at
--   stale         used more than $max_age_days after its created_at (and not expired)
--   unknown       not in the inventory at all
--   wrong_tenant  used by a tenant that is not among its owners
-- Only accepted requests count (a 2xx status, or no status and no error): a refused key is the
-- control working. Only API keys are judged (JWTs and basic auth are not in a key inventory),
-- and without a single inventory row the detector returns nothing.
WITH accepted AS (
    SELECT ts, request_id, tenant_id, credential_id, coalesce(key_fingerprint, '') AS kfp,
           client_ip, est_cost_usd
    FROM requests
    WHERE credential_type = 'api_key' AND credential_id IS NOT NULL
      AND CASE WHEN status IS NULL THEN error_type IS NULL ELSE status BETWEEN 200 AND 299 END
      AND EXISTS (SELECT 1 FROM key_inventory WHERE credential_id IS NOT NULL)
      AND ($since IS NULL OR ts >= $since)
      AND ($until IS NULL OR ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
),
seen AS (
    SELECT DISTINCT credential_id, kfp FROM accepted
),
rows_of_key AS (
    -- the inventory rows of each key seen: by the id as logged, or by the raw key's fingerprint
    SELECT s.credential_id, s.kfp, k.credential_id AS inventory_id, k.owner_tenant,
           k.created_at, k.expires_at
    FROM seen s JOIN key_inventory k ON k.credential_id = s.credential_id
    UNION ALL
    SELECT s.credential_id, s.kfp, k.credential_id, k.owner_tenant, k.created_at, k.expires_at
    FROM seen s JOIN key_inventory k ON k.credential_id = s.kfp
    WHERE s.kfp <> s.credential_id
),
listed AS (
    -- what the inventory says of the key (all its rows together)
    SELECT credential_id, kfp,
           list_sort(list_distinct(list(inventory_id))) AS inventory_ids,
           max(created_at) AS created_at,
           CASE WHEN count(expires_at) = count(*) THEN max(expires_at) END AS expires_at,
           list_sort(list_distinct(list(owner_tenant) FILTER (WHERE owner_tenant IS NOT NULL)))
               AS owners
    FROM rows_of_key
    GROUP BY credential_id, kfp
),
flagged AS (
    SELECT a.*, l.inventory_ids, l.created_at, l.expires_at, l.owners,
           CASE WHEN l.credential_id IS NULL THEN 'unknown'
                WHEN a.ts > l.expires_at + to_minutes(CAST($grace_minutes AS BIGINT))
                THEN 'expired'
                WHEN a.ts > l.created_at + to_days(CAST($max_age_days AS INTEGER))
                THEN 'stale' END AS age_reason,
           coalesce(len(l.owners) > 0 AND a.tenant_id IS NOT NULL
                    AND NOT list_contains(l.owners, a.tenant_id), false) AS foreign_use
    FROM accepted a
    LEFT JOIN listed l ON l.credential_id = a.credential_id AND l.kfp = a.kfp
),
hits AS (
    -- in fixed windows of window_hours, so that a key stale for months is one finding a week,
    -- not one finding (and one incident) spanning the whole case
    SELECT *, time_bucket(to_hours(CAST($window_hours AS BIGINT)), ts) AS bucket
    FROM (SELECT *, age_reason AS reason FROM flagged WHERE age_reason IS NOT NULL
          UNION ALL
          SELECT *, 'wrong_tenant' AS reason FROM flagged WHERE foreign_use)
),
per_key AS (
    SELECT credential_id AS principal_id, reason, bucket,
           arg_min(tenant_id, ts) AS tenant_id,
           min(ts) AS first_seen,
           max(ts) AS last_seen,
           count(*) AS requests,
           count(DISTINCT client_ip) AS client_ips,
           list_sort(list_distinct(list(tenant_id) FILTER (WHERE tenant_id IS NOT NULL)))
               AS used_by,
           list_sort(list_distinct(flatten(list(coalesce(inventory_ids, []))))) AS inventory_ids,
           max(created_at) AS created_at,
           max(expires_at) AS expires_at,
           list_sort(list_distinct(flatten(list(coalesce(owners, []))))) AS owners,
           list(request_id ORDER BY ts, request_id) FILTER (WHERE request_id IS NOT NULL)
               AS request_ids,
           sum(est_cost_usd) AS est_cost_usd
    FROM hits
    GROUP BY credential_id, reason, bucket
),
judged AS (
    SELECT *,
           list_sort(list(reason) OVER (PARTITION BY principal_id, bucket)) AS reasons,
           round(epoch(first_seen - created_at) / 86400, 1) AS age_days_first,
           round(epoch(last_seen - created_at) / 86400, 1) AS age_days_last
    FROM per_key
)
SELECT
    'credential' AS principal_type,
    principal_id,
    tenant_id,
    first_seen AS window_start,
    last_seen AS window_end,
    round(least(100,
        CASE reason WHEN 'wrong_tenant' THEN 75 WHEN 'unknown' THEN 70
                    WHEN 'expired' THEN 55 ELSE 35 END
        + least(20, 5 * log10(requests))), 1)::DOUBLE AS score,
    CASE reason
        WHEN 'unknown' THEN format(
            'Key {} is not in the key inventory, yet the gateway accepted it {} time(s) for {}'
            || ' from {} client IP(s).',
            principal_id, requests, array_to_string(used_by, ', '), client_ips)
        WHEN 'wrong_tenant' THEN format(
            'Key {} belongs to {} in the key inventory but was used by {}, {} time(s).',
            principal_id, array_to_string(owners, ', '), array_to_string(used_by, ', '), requests)
        WHEN 'expired' THEN format(
            'Key {} expired at {} and was still accepted {} time(s), the last {} days later.',
            principal_id, strftime(expires_at, '%Y-%m-%d %H:%M:%S UTC'), requests,
            round(epoch(last_seen - expires_at) / 86400, 1))
        ELSE format(
            'Key {}, created {}, was accepted {} time(s) at {} days old, past the {}-day'
            || ' rotation policy.',
            principal_id, strftime(created_at, '%Y-%m-%d'), requests,
            CASE WHEN age_days_first = age_days_last THEN CAST(age_days_first AS VARCHAR)
                 ELSE age_days_first || ' to ' || age_days_last END,
            CAST($max_age_days AS INTEGER))
    END AS summary,
    struct_pack(
        bucket_start := bucket,
        window_hours := CAST($window_hours AS BIGINT),
        reason := reason,
        reasons := reasons,
        requests := requests,
        client_ips := client_ips,
        used_by := used_by,
        owners := owners,
        inventory_ids := inventory_ids,
        created_at := created_at,
        expires_at := expires_at,
        age_days_first := age_days_first,
        age_days_last := age_days_last,
        max_age_days := CAST($max_age_days AS INTEGER),
        grace_minutes := CAST($grace_minutes AS BIGINT)
    ) AS evidence,
    coalesce(request_ids[1:20], []) AS sample_request_ids,
    est_cost_usd,
    CASE reason WHEN 'stale' THEN 'low' WHEN 'expired' THEN 'medium' ELSE 'high' END AS severity
FROM judged
ORDER BY score DESC, principal_id, reason
