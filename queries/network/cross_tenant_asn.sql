-- network.cross_tenant_asn: many distinct tenants converging on one small network within a
-- window. A small network is an uncategorised ASN (no big ISP, cloud, carrier or egress
-- provider is uncategorised in a maintained list) or, on a categorised hosting network (a public
-- cloud, where thousands of customers run their own servers) and where the ASN is unknown, one
-- IPv4 /24: the same few addresses. isp, mobile, enterprise_egress and privacy_relay networks
-- are skipped: many customers legitimately share them. One operator holding several tenants'
-- keys (stolen, resold, or an account farm) shows up this way. Windows are fixed buckets of
-- window_hours. Tenants whose first request in scope falls in the window raise the score.
-- The networks, tenants and counts come from the shared `principal_hours` features.
WITH scoped AS (
    -- the columns read below only: two parts of the query read this, so it is materialised
    SELECT tenant_id, first_ts, last_ts, asn, asn_category, client_net, requests, est_cost_usd,
           time_bucket(to_hours(CAST($window_hours AS BIGINT)), hour) AS bucket
    FROM principal_hours
    WHERE tenant_id IS NOT NULL
      AND ($since IS NULL OR last_ts >= $since)
      AND ($until IS NULL OR first_ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
),
first_seen AS (
    SELECT tenant_id, min(first_ts) AS tenant_first_ts FROM scoped GROUP BY tenant_id
),
networked AS (
    SELECT s.*, f.tenant_first_ts,
           CASE WHEN s.asn IS NOT NULL AND s.asn_category IS NULL THEN 'asn' ELSE 'cidr' END
               AS ptype,
           CASE WHEN s.asn IS NOT NULL AND s.asn_category IS NULL THEN CAST(s.asn AS VARCHAR)
                ELSE s.client_net END AS network
    FROM scoped s JOIN first_seen f USING (tenant_id)
    WHERE (s.asn IS NOT NULL AND s.asn_category IS NULL)
       OR ((s.asn IS NULL OR s.asn_category = 'hosting') AND s.client_net IS NOT NULL)
),
tenant_hits AS (
    -- each tenant once per network and window. Tenants are counted in two steps, not with
    -- count(DISTINCT): DuckDB estimates a DISTINCT aggregate's rows far above its input
    -- (trillions at 10M requests), then builds the read-back's hash table on `requests`
    -- instead of on the few hits (at 50M requests in a lake: 13 s instead of 4 s)
    SELECT ptype, network, bucket, tenant_id,
           min(first_ts) AS first_ts,
           max(last_ts) AS last_ts,
           sum(requests) AS requests,
           any_value(tenant_first_ts) >= bucket AS new_tenant,
           any_value(asn_category) AS asn_category,
           sum(est_cost_usd) AS est_cost_usd
    FROM networked
    GROUP BY ptype, network, bucket, tenant_id
),
hits AS (
    SELECT ptype, network, bucket,
           min(first_ts) AS window_start,
           max(last_ts) AS window_end,
           sum(requests) AS requests,
           count(*) AS tenants,
           count(*) FILTER (WHERE new_tenant) AS new_tenants,
           list(tenant_id ORDER BY tenant_id) AS tenant_list,
           any_value(asn_category) AS asn_category,
           sum(est_cost_usd) AS est_cost_usd
    FROM tenant_hits
    GROUP BY ptype, network, bucket
    HAVING count(*) >= $min_tenants
),
seen AS (
    -- client addresses and sample requests, read back from `requests` for the hits only: an
    -- ASN's requests joined on the number and a network's on its client_net, as they are
    -- stored (not on text made for every request); a kind without hits reads nothing
    SELECT ptype, network, bucket,
           count(DISTINCT client_ip) AS client_ips,
           any_value(as_org) AS as_org,
           min_by(request_id, (ts, request_id), 20) FILTER (WHERE request_id IS NOT NULL)
               AS request_ids
    FROM (
        SELECT h.ptype, h.network, h.bucket, r.ts, r.request_id, r.client_ip, r.as_org
        FROM requests r
        JOIN (SELECT *, CAST(network AS BIGINT) AS asn FROM hits WHERE ptype = 'asn') h
          ON r.asn = h.asn AND r.ts >= h.bucket
         AND r.ts < h.bucket + to_hours(CAST($window_hours AS BIGINT))
        WHERE r.tenant_id IS NOT NULL AND r.asn_category IS NULL
          AND ($since IS NULL OR r.ts >= $since)
          AND ($until IS NULL OR r.ts <= $until)
          AND ($tenant IS NULL OR r.tenant_id = $tenant)
        UNION ALL
        SELECT h.ptype, h.network, h.bucket, r.ts, r.request_id, r.client_ip, r.as_org
        FROM requests r
        JOIN (SELECT * FROM hits WHERE ptype = 'cidr') h
          ON r.client_net = h.network AND r.ts >= h.bucket
         AND r.ts < h.bucket + to_hours(CAST($window_hours AS BIGINT))
        WHERE r.tenant_id IS NOT NULL
          AND (r.asn_category = 'hosting' OR (r.asn IS NULL AND r.asn_category IS NULL))
          AND ($since IS NULL OR r.ts >= $since)
          AND ($until IS NULL OR r.ts <= $until)
          AND ($tenant IS NULL OR r.tenant_id = $tenant)
    )
    GROUP BY ALL
),
sampled AS (
    SELECT h.*, s.client_ips, s.as_org, s.request_ids
    FROM hits h LEFT JOIN seen s USING (ptype, network, bucket)
)
SELECT
    ptype AS principal_type,
    network AS principal_id,
    CAST(NULL AS VARCHAR) AS tenant_id,
    window_start,
    window_end,
    round(least(100, 40 + 4 * (tenants - $min_tenants) + 20 * new_tenants / tenants), 1)::DOUBLE
        AS score,
    format('{} tenants ({} new) sent requests from {}{}{} within {} hours.',
           tenants, new_tenants, CASE WHEN ptype = 'asn' THEN 'AS' ELSE 'network ' END, network,
           CASE WHEN as_org IS NOT NULL THEN ' (' || as_org || ')' ELSE '' END,
           CAST($window_hours AS BIGINT)) AS summary,
    struct_pack(
        tenants := tenants,
        new_tenants := new_tenants,
        tenant_list := tenant_list[1:30],
        requests := requests,
        client_ips := client_ips,
        as_org := as_org,
        asn_category := asn_category,
        bucket_start := bucket,
        window_hours := CAST($window_hours AS BIGINT)
    ) AS evidence,
    coalesce(request_ids[1:20], []) AS sample_request_ids,
    est_cost_usd
FROM sampled
ORDER BY score DESC, principal_id, window_start
