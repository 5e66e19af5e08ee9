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
WITH inventory AS (
    -- what the inventory says of each key id (all its rows together); a key is listed under
    -- the credential id the gateway logs or under the fingerprint of the raw key
    SELECT credential_id AS inventory_id,
           max(created_at) AS created_at,
           CASE WHEN count(expires_at) = count(*) THEN max(expires_at) END AS expires_at,
           count(*) AS inventory_rows,
           list_sort(list_distinct(list(owner_tenant) FILTER (WHERE owner_tenant IS NOT NULL)))
               AS owners
    FROM key_inventory
    WHERE credential_id IS NOT NULL
    GROUP BY credential_id
),
accepted AS NOT MATERIALIZED (
    -- every accepted API-key request (only these are judged)
    SELECT r.ts, r.request_id, r.tenant_id, r.credential_id, r.key_fingerprint, r.client_ip,
           r.est_cost_usd
    FROM requests r
    WHERE r.credential_type = 'api_key' AND r.credential_id IS NOT NULL
      AND CASE WHEN r.status IS NULL THEN r.error_type IS NULL
               ELSE r.status BETWEEN 200 AND 299 END
      AND EXISTS (SELECT 1 FROM key_inventory WHERE credential_id IS NOT NULL)
      AND ($since IS NULL OR r.ts >= $since)
      AND ($until IS NULL OR r.ts <= $until)
      AND ($tenant IS NULL OR r.tenant_id = $tenant)
),
keys AS (
    -- what the inventory says of each key as used (by id as logged and, when it differs, by
    -- the raw key's fingerprint) and by which tenant: judged once per key and tenant, so that
    -- only the requests of keys with something to say are read again
    SELECT k.*,
           i.inventory_id AS id_listed, f.inventory_id AS fp_listed,
           i.owners AS id_owners, f.owners AS fp_owners,
           greatest(i.created_at, f.created_at) AS created_at,
           -- never expires if any of its rows says so
           (i.inventory_id IS NOT NULL AND i.expires_at IS NULL)
               OR (f.inventory_id IS NOT NULL AND f.expires_at IS NULL) AS never_expires,
           greatest(i.expires_at, f.expires_at) AS latest_expiry,
           k.tenant_id IS NOT NULL
               AND coalesce(array_length(i.owners), 0) + coalesce(array_length(f.owners), 0) > 0
               AND NOT coalesce(list_contains(i.owners, k.tenant_id), false)
               AND NOT coalesce(list_contains(f.owners, k.tenant_id), false) AS foreign_use
    FROM (SELECT credential_id, key_fingerprint, tenant_id, max(ts) AS last_ts
          FROM accepted GROUP BY ALL) k
    LEFT JOIN inventory i ON i.inventory_id = k.credential_id
    LEFT JOIN inventory f
        ON f.inventory_id = k.key_fingerprint AND k.key_fingerprint <> k.credential_id
),
judged_keys AS (
    SELECT *,
           CASE WHEN never_expires THEN NULL ELSE latest_expiry END AS expires_at
    FROM keys
    WHERE (id_listed IS NULL AND fp_listed IS NULL) OR foreign_use
       OR (NOT never_expires
           AND last_ts > latest_expiry + to_minutes(CAST($grace_minutes AS BIGINT)))
       OR last_ts > created_at + to_days(CAST($max_age_days AS INTEGER))
),
flagged AS (
    -- the requests of those keys, each with its reason by age (if any)
    SELECT r.ts, r.request_id, r.tenant_id, r.credential_id, r.client_ip, r.est_cost_usd,
           k.id_listed, k.fp_listed, k.id_owners, k.fp_owners, k.created_at, k.expires_at,
           CASE WHEN k.id_listed IS NULL AND k.fp_listed IS NULL THEN 'unknown'
                WHEN r.ts > k.latest_expiry + to_minutes(CAST($grace_minutes AS BIGINT))
                     AND NOT k.never_expires
                THEN 'expired'
                WHEN r.ts > k.created_at + to_days(CAST($max_age_days AS INTEGER))
                THEN 'stale'
           END AS age_reason,
           k.foreign_use
    FROM accepted r
    JOIN judged_keys k
      ON k.credential_id = r.credential_id
     AND k.key_fingerprint IS NOT DISTINCT FROM r.key_fingerprint
     AND k.tenant_id IS NOT DISTINCT FROM r.tenant_id
),
hits AS (
    -- in fixed windows of window_hours, so that a key stale for months is one finding a week,
    -- not one finding (and one incident) spanning the whole case; a request with two reasons
    -- (an age and a foreign tenant) counts for both
    SELECT ts, request_id, tenant_id, credential_id, client_ip, est_cost_usd, created_at,
           expires_at,
           list_filter([id_listed, fp_listed], lambda x: x IS NOT NULL) AS inventory_ids,
           list_concat(coalesce(id_owners, []), coalesce(fp_owners, [])) AS owners,
           unnest(list_filter([age_reason, CASE WHEN foreign_use THEN 'wrong_tenant' END],
                              lambda x: x IS NOT NULL)) AS reason,
           time_bucket(to_hours(CAST($window_hours AS BIGINT)), ts) AS bucket
    FROM flagged
    WHERE age_reason IS NOT NULL OR foreign_use
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
           list_sort(list_distinct(flatten(list(inventory_ids)))) AS inventory_ids,
           max(created_at) AS created_at,
           max(expires_at) AS expires_at,
           list_sort(list_distinct(flatten(list(coalesce(owners, []))))) AS owners,
           min_by(request_id, (ts, request_id), 20) FILTER (WHERE request_id IS NOT NULL)
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
