-- credential.browser_exposed: an API key embedded in a client (web page, mobile or desktop app),
-- judged by the spread of its end users, not of their networks' owners.
-- A client call is a request whose client_kind is web (Origin header or browser agent) or app
-- (a mobile or desktop app's HTTP stack); declared crawlers are neither. Its end-user network is
-- its client_net block (IPv4 /24, IPv6 /64); exits of enterprise egress and privacy relays count
-- as one network per AS, since their addresses rotate for one user; client calls from hosting
-- networks are servers with a borrowed user agent and do not count. Windows are fixed buckets
-- of window_hours. Customers of one national ISP are many /24s of one AS: an ASN count would
-- call them one network.
WITH candidates AS (
    -- Only credentials with client calls from min_networks blocks in a window can be exposed.
    SELECT DISTINCT principal_id AS credential_id
    FROM principal_hours
    WHERE principal_type = 'credential'
      AND ($since IS NULL OR last_ts >= $since)
      AND ($until IS NULL OR first_ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
    GROUP BY principal_id, time_bucket(to_hours(CAST($window_hours AS BIGINT)), hour)
    HAVING count(DISTINCT client_net) FILTER (WHERE client_requests > 0
                                               AND coalesce(asn_category, '') <> 'hosting')
           >= $min_networks
),
scoped AS (
    SELECT ts, request_id, tenant_id, credential_id, client_ip, origin, referer, user_agent,
           user_id, country, est_cost_usd,
           coalesce(origin NOT IN ('', 'null'), false) AS has_origin,
           client_kind,
           coalesce(asn_category = 'hosting', false) AS hosting,
           CASE WHEN asn IS NOT NULL AND asn_category IN ('enterprise_egress', 'privacy_relay')
                    THEN 'AS' || asn
                ELSE coalesce(client_net, client_ip) END AS network,
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
           count(*) FILTER (WHERE client_kind IS NOT NULL) AS client_requests
    FROM scoped
    GROUP BY credential_id, bucket
),
client AS (
    -- a browser or app on a hosting network is a server with a borrowed user agent (a JVM or
    -- Dart backend, or a thief's script): not an end user
    SELECT * FROM scoped WHERE client_kind IS NOT NULL AND NOT hosting
),
hits AS (
    SELECT credential_id, bucket,
           arg_min(tenant_id, ts) AS tenant_id,
           min(ts) AS first_seen,
           max(ts) AS last_seen,
           count(*) AS requests,
           count(*) FILTER (WHERE has_origin) AS origin_requests,
           count(*) FILTER (WHERE client_kind = 'app') AS app_requests,
           count(DISTINCT network) AS networks,
           count(DISTINCT client_ip) AS addresses,
           count(DISTINCT user_agent) AS devices,
           count(DISTINCT user_id) AS end_users,
           count(DISTINCT country) AS countries,
           list(DISTINCT country ORDER BY country) FILTER (WHERE country IS NOT NULL)
               AS country_list,
           min_by(request_id, (ts, request_id), 20) FILTER (WHERE request_id IS NOT NULL)
               AS request_ids,
           sum(est_cost_usd) AS est_cost_usd
    FROM client
    GROUP BY credential_id, bucket
    HAVING count(DISTINCT network) >= $min_networks
),
origins AS (
    SELECT credential_id, bucket, list(site ORDER BY n DESC, site)[1:5] AS top_origins
    FROM (SELECT credential_id, bucket,
                 coalesce(CASE WHEN has_origin THEN origin END,
                          regexp_extract(referer, '^(https?://[^/]+)', 1)) AS site,
                 count(*) AS n
          FROM client
          WHERE has_origin OR regexp_matches(coalesce(referer, ''), '^https?://[^/]+')
          GROUP BY ALL)
    GROUP BY credential_id, bucket
),
agents AS (
    SELECT credential_id, bucket, list(user_agent ORDER BY n DESC, user_agent)[1:5] AS top_agents
    FROM (SELECT credential_id, bucket, user_agent, count(*) AS n
          FROM client WHERE user_agent IS NOT NULL GROUP BY ALL)
    GROUP BY credential_id, bucket
),
judged AS (
    SELECT h.*, t.all_requests, t.client_requests, o.top_origins, a.top_agents,
           CASE WHEN h.app_requests * 2 > h.requests THEN 'app' ELSE 'web' END AS client_kind,
           h.networks >= $high_networks OR h.countries >= $high_countries AS wide
    FROM hits h
    JOIN totals t USING (credential_id, bucket)
    LEFT JOIN origins o USING (credential_id, bucket)
    LEFT JOIN agents a USING (credential_id, bucket)
)
SELECT
    'credential' AS principal_type,
    credential_id AS principal_id,
    tenant_id,
    first_seen AS window_start,
    last_seen AS window_end,
    CASE WHEN wide THEN 'high' ELSE 'medium' END AS severity,
    round(least(100, 40 + 10 * log2(networks / $min_networks) + 5 * (countries - 1)
                     + 3 * log2(greatest(devices, 1))), 1)::DOUBLE AS score,
    format('API key {} is embedded in a {} client: {} requests from {} end-user networks'
           || ' ({} address{}, {} user agent{}{}) within {} hours{}.',
           credential_id, CASE client_kind WHEN 'app' THEN 'mobile or desktop app'
                                           ELSE 'web' END,
           requests, networks, addresses, CASE WHEN addresses = 1 THEN '' ELSE 'es' END,
           devices, CASE WHEN devices = 1 THEN '' ELSE 's' END,
           CASE WHEN countries = 0 THEN ''
                ELSE format(', {} countr{}', countries,
                            CASE WHEN countries = 1 THEN 'y' ELSE 'ies' END) END,
           CAST($window_hours AS BIGINT),
           CASE WHEN top_origins IS NOT NULL AND array_length(top_origins) > 0
                THEN ' (site ' || top_origins[1] || ')' ELSE '' END) AS summary,
    struct_pack(
        client_kind := client_kind,
        origins := coalesce(top_origins, []),
        client_share := round(client_requests / all_requests, 3)::DOUBLE,
        networks := networks,
        addresses := addresses,
        user_agents_distinct := devices,
        end_users := end_users,
        countries := countries,
        country_list := coalesce(country_list, []),
        requests := requests,
        origin_requests := origin_requests,
        app_requests := app_requests,
        all_requests := all_requests,
        user_agents := coalesce(top_agents, []),
        bucket_start := bucket,
        window_hours := CAST($window_hours AS BIGINT)
    ) AS evidence,
    coalesce(request_ids[1:20], []) AS sample_request_ids,
    est_cost_usd
FROM judged
ORDER BY score DESC, principal_id, window_start
