-- credential.residential_proxy: one credential replayed through a rotating residential proxy
-- pool: within one window, many addresses on residential and mobile networks of many ISPs, each
-- address used only a handful of times, by a server-like client (no browser or app: few
-- requests with a client_kind). Networks are residential when their category is isp or mobile,
-- or when no category is known; hosting, enterprise egress and privacy relays are not counted
-- (relay exits rotate for one user by design). The ASN must be known: without it no one can say
-- "many ISPs".
WITH windows AS (
    -- per credential and window, from the shared features: residential requests, how many came
    -- from clients, and how many ISPs; only these candidates are read again from `requests`
    SELECT principal_id AS credential_id,
           time_bucket(to_hours(CAST($window_hours AS BIGINT)), hour) AS bucket,
           sum(requests) AS requests,
           sum(client_requests) AS client_requests,
           sum(stream_requests) AS stream_requests
    FROM principal_hours
    WHERE principal_type = 'credential'
      AND coalesce(asn_category, 'isp') IN ('isp', 'mobile')
      AND asn IS NOT NULL
      AND ($since IS NULL OR last_ts >= $since)
      AND ($until IS NULL OR first_ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
    GROUP BY ALL
    HAVING count(DISTINCT asn) >= $min_asns
       AND sum(requests) >= $min_addresses
       AND sum(client_requests) <= $max_client_share * sum(requests)
),
scoped AS (
    SELECT r.ts, r.request_id, r.tenant_id, r.credential_id, r.client_ip, r.asn, r.as_org,
           r.country, r.user_agent, r.est_cost_usd, w.bucket
    FROM requests r
    JOIN windows w
      ON r.credential_id = w.credential_id
     AND r.ts >= w.bucket
     AND r.ts < w.bucket + to_hours(CAST($window_hours AS BIGINT))
    WHERE r.ts IS NOT NULL AND r.client_ip IS NOT NULL AND r.asn IS NOT NULL
      AND coalesce(r.asn_category, 'isp') IN ('isp', 'mobile')
      AND ($since IS NULL OR r.ts >= $since)
      AND ($until IS NULL OR r.ts <= $until)
      AND ($tenant IS NULL OR r.tenant_id = $tenant)
),
per_address AS (
    SELECT credential_id, bucket, client_ip, count(*) AS n
    FROM scoped
    GROUP BY ALL
),
spread AS (
    SELECT credential_id, bucket,
           count(*) AS addresses,
           median(n) AS median_per_address,
           max(n) AS max_per_address
    FROM per_address
    GROUP BY ALL
    HAVING count(*) >= $min_addresses AND median(n) <= $max_per_address
),
hits AS (
    SELECT s.credential_id, s.bucket, s.addresses, s.median_per_address, s.max_per_address,
           arg_min(x.tenant_id, x.ts) AS tenant_id,
           min(x.ts) AS first_seen,
           max(x.ts) AS last_seen,
           count(*) AS requests,
           count(DISTINCT x.asn) AS asns,
           count(DISTINCT x.country) AS countries,
           list(DISTINCT x.country ORDER BY x.country) FILTER (WHERE x.country IS NOT NULL)
               AS country_list,
           list(DISTINCT x.asn ORDER BY x.asn)[1:30] AS asn_list,
           min_by(x.request_id, (x.ts, x.request_id), 20) FILTER (WHERE x.request_id IS NOT NULL)
               AS request_ids,
           sum(x.est_cost_usd) AS est_cost_usd
    FROM spread s JOIN scoped x USING (credential_id, bucket)
    GROUP BY s.credential_id, s.bucket, s.addresses, s.median_per_address, s.max_per_address
    HAVING count(DISTINCT x.asn) >= $min_asns
),
agents AS (
    SELECT credential_id, bucket, list(user_agent ORDER BY n DESC, user_agent)[1:5] AS top_agents
    FROM (SELECT credential_id, bucket, user_agent, count(*) AS n
          FROM scoped WHERE user_agent IS NOT NULL GROUP BY ALL)
    GROUP BY ALL
)
SELECT
    'credential' AS principal_type,
    h.credential_id AS principal_id,
    h.tenant_id,
    h.first_seen AS window_start,
    h.last_seen AS window_end,
    round(least(100, 55 + 10 * log2(h.addresses / $min_addresses)
                     + 2 * (h.asns - $min_asns) + 3 * (h.countries - 1)), 1)::DOUBLE AS score,
    format('Credential {} was used from {} residential and mobile addresses on {} ISPs in {}'
           || ' countr{} within {} hours, {} request(s) per address (median), by a server-like'
           || ' client: a rotating proxy pool.',
           h.credential_id, h.addresses, h.asns, h.countries,
           CASE WHEN h.countries = 1 THEN 'y' ELSE 'ies' END, CAST($window_hours AS BIGINT),
           h.median_per_address) AS summary,
    struct_pack(
        addresses := h.addresses,
        isps := h.asns,
        asn_list := h.asn_list,
        countries := h.countries,
        country_list := coalesce(h.country_list, []),
        requests := h.requests,
        median_per_address := h.median_per_address,
        max_per_address := h.max_per_address,
        client_share := round(w.client_requests / w.requests, 3)::DOUBLE,
        stream_share := round(w.stream_requests / w.requests, 3)::DOUBLE,
        user_agents := coalesce(a.top_agents, []),
        bucket_start := h.bucket,
        window_hours := CAST($window_hours AS BIGINT)
    ) AS evidence,
    coalesce(h.request_ids[1:20], []) AS sample_request_ids,
    h.est_cost_usd
FROM hits h
JOIN windows w USING (credential_id, bucket)
LEFT JOIN agents a USING (credential_id, bucket)
ORDER BY score DESC, principal_id, window_start
