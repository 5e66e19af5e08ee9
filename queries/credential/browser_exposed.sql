-- credential.browser_exposed: an API key that browsers or mobile apps send, from many networks.
-- A browser call is a request with a real Origin header, or a browser / app user agent
-- (declared crawlers excluded). Networks are AS numbers when known, else the /24 (IPv4) or
-- /64 (fully written IPv6) of the client address. Windows are fixed buckets of window_hours.
WITH candidates AS (
    -- Only credentials seen from min_networks networks in a window (the shared features count
    -- them over all calls, browser or not) can have that many browser networks.
    SELECT DISTINCT principal_id AS credential_id
    FROM principal_hours
    WHERE principal_type = 'credential'
      AND ($since IS NULL OR last_ts >= $since)
      AND ($until IS NULL OR first_ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
    GROUP BY principal_id, time_bucket(to_hours(CAST($window_hours AS BIGINT)), hour)
    HAVING count(DISTINCT coalesce('AS' || asn, net24)) >= $min_networks
        OR bool_or(asn IS NULL AND net24 IS NULL)
),
scoped AS (
    SELECT ts, request_id, tenant_id, credential_id, origin, user_agent, est_cost_usd,
           coalesce(origin NOT IN ('', 'null'), false) AS has_origin,
           coalesce(regexp_matches(user_agent,
                        '(Mozilla/|Chrome/|Safari/|okhttp/|CFNetwork/|Dalvik/|Electron/|Dart/)')
                    AND NOT regexp_matches(user_agent,
                        '(?i)(bot[/;]|crawler|spider|\+https?://)'), false) AS browser_ua,
           CASE WHEN asn IS NOT NULL THEN 'AS' || asn
                WHEN regexp_full_match(client_ip, '[0-9]{1,3}(\.[0-9]{1,3}){3}')
                    THEN regexp_extract(client_ip, '^([0-9]+\.[0-9]+\.[0-9]+)\.', 1) || '.0/24'
                WHEN regexp_matches(client_ip, '^([0-9A-Fa-f]{1,4}:){4}')
                    THEN lower(regexp_extract(client_ip, '^(([0-9A-Fa-f]{1,4}:){4})', 1))
                         || ':/64'
                ELSE client_ip END AS network,
           time_bucket(to_hours(CAST($window_hours AS BIGINT)), ts) AS bucket
    FROM requests
    WHERE credential_type = 'api_key'
      AND credential_id IN (SELECT credential_id FROM candidates)
      AND ($since IS NULL OR ts >= $since)
      AND ($until IS NULL OR ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
),
totals AS (
    SELECT credential_id, bucket, count(*) AS all_requests,
           count(*) FILTER (WHERE browser_ua) AS browser_ua_requests
    FROM scoped
    GROUP BY credential_id, bucket
),
browser AS (
    SELECT * FROM scoped WHERE has_origin OR browser_ua
),
hits AS (
    SELECT credential_id, bucket,
           arg_min(tenant_id, ts) AS tenant_id,
           min(ts) AS first_seen,
           max(ts) AS last_seen,
           count(*) AS requests,
           count(*) FILTER (WHERE has_origin) AS origin_requests,
           count(DISTINCT network) AS networks,
           min_by(request_id, (ts, request_id), 20) FILTER (WHERE request_id IS NOT NULL)
               AS request_ids,
           sum(est_cost_usd) AS est_cost_usd
    FROM browser
    GROUP BY credential_id, bucket
    HAVING count(DISTINCT network) >= $min_networks
),
origins AS (
    SELECT credential_id, bucket, list(origin ORDER BY n DESC, origin)[1:5] AS top_origins
    FROM (SELECT credential_id, bucket, origin, count(*) AS n
          FROM browser WHERE has_origin GROUP BY ALL)
    GROUP BY credential_id, bucket
),
agents AS (
    SELECT credential_id, bucket, list(user_agent ORDER BY n DESC, user_agent)[1:5] AS top_agents
    FROM (SELECT credential_id, bucket, user_agent, count(*) AS n
          FROM browser WHERE user_agent IS NOT NULL GROUP BY ALL)
    GROUP BY credential_id, bucket
)
SELECT
    'credential' AS principal_type,
    h.credential_id AS principal_id,
    h.tenant_id,
    h.first_seen AS window_start,
    h.last_seen AS window_end,
    CAST(least(100, 35 + 4 * h.networks) AS DOUBLE) AS score,
    format('API key {} was sent by browsers or apps from {} networks in {} requests'
           || ' within {} hours{}.',
           h.credential_id, h.networks, h.requests, CAST($window_hours AS BIGINT),
           CASE WHEN o.top_origins IS NOT NULL
                THEN ' (origin ' || o.top_origins[1] || ')' ELSE '' END) AS summary,
    struct_pack(
        origins := coalesce(o.top_origins, []),
        browser_ua_share := round(t.browser_ua_requests / t.all_requests, 3)::DOUBLE,
        networks := h.networks,
        requests := h.requests,
        origin_requests := h.origin_requests,
        all_requests := t.all_requests,
        user_agents := coalesce(a.top_agents, []),
        bucket_start := h.bucket,
        window_hours := CAST($window_hours AS BIGINT)
    ) AS evidence,
    coalesce(h.request_ids[1:20], []) AS sample_request_ids,
    h.est_cost_usd
FROM hits h
JOIN totals t USING (credential_id, bucket)
LEFT JOIN origins o USING (credential_id, bucket)
LEFT JOIN agents a USING (credential_id, bucket)
ORDER BY score DESC, principal_id, window_start
