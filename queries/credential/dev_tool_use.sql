-- credential.dev_tool_use: an API key (credential_type api_key: a shared, long-lived secret, not
-- a per-user JWT or OAuth token) sent by an interactive API tool (user agent PostmanRuntime/,
-- insomnia/, curl/, HTTPie/) from a home or mobile connection: asn_category isp or mobile, or a
-- network no category names (unknown, or no ASN known at all), but never a categorised hosting
-- network (a CI runner or server on a cloud), enterprise egress or privacy relay, nor a private
-- or loopback address (an internal hop). Hygiene, not abuse: the key was pasted into a tool on
-- a laptop, where it lands in shell history, saved collections and synced workspaces.
-- Windows are fixed buckets of window_hours (168: ISO weeks). The credential's whole traffic in
-- the window, and how much of it came from hosting networks (servers: a production key), come
-- from the shared `principal_hours` features.
WITH scoped AS (
    SELECT ts, request_id, tenant_id, credential_id, client_ip, user_agent, asn, as_org,
           asn_category, country, status,
           coalesce(nullif(endpoint, 'other'), path) AS target,
           CASE WHEN user_agent ^@ 'PostmanRuntime/' THEN 'Postman'
                WHEN lower(user_agent) ^@ 'insomnia/' THEN 'Insomnia'
                WHEN user_agent ^@ 'curl/' THEN 'curl'
                ELSE 'HTTPie' END AS tool,
           CASE WHEN asn_category IS NOT NULL THEN asn_category
                WHEN asn IS NOT NULL THEN 'uncategorised'
                ELSE 'unknown' END AS network_kind,
           time_bucket(to_hours(CAST($window_hours AS BIGINT)), ts) AS bucket
    FROM requests
    WHERE credential_type = 'api_key'
      AND credential_id IS NOT NULL
      AND regexp_matches(user_agent, '^(PostmanRuntime|[Ii]nsomnia|curl|HTTPie)/')
      AND (asn_category IS NULL OR asn_category IN ('isp', 'mobile'))
      AND NOT coalesce(regexp_matches(client_ip,
              '^(10\.|127\.|192\.168\.|172\.(1[6-9]|2[0-9]|3[01])\.|::1$|[Ff][CcDd][0-9A-Fa-f]{2}:'
              || '|[Ff][Ee]80:)'), true)
      AND ($since IS NULL OR ts >= $since)
      AND ($until IS NULL OR ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
),
hits AS (
    SELECT credential_id, bucket,
           arg_min(tenant_id, ts) AS tenant_id,
           min(ts) AS first_seen,
           max(ts) AS last_seen,
           count(*) AS requests,
           list(DISTINCT tool ORDER BY tool) AS tools,
           list(DISTINCT user_agent ORDER BY user_agent)[1:5] AS user_agents,
           count(DISTINCT client_ip) AS addresses,
           list(DISTINCT client_ip ORDER BY client_ip)[1:10] AS address_list,
           list(DISTINCT network_kind ORDER BY network_kind) AS network_kinds,
           count(DISTINCT country) AS countries,
           list(DISTINCT country ORDER BY country) FILTER (WHERE country IS NOT NULL)
               AS country_list,
           count(*) FILTER (WHERE status BETWEEN 200 AND 399) AS succeeded,
           count(*) FILTER (WHERE status IN (401, 403)) AS refused,
           min_by(request_id, (ts, request_id), 20) FILTER (WHERE request_id IS NOT NULL)
               AS request_ids
    FROM scoped
    GROUP BY credential_id, bucket
    HAVING count(*) >= $min_requests
),
networks AS (
    SELECT credential_id, bucket,
           list({'asn': asn, 'as_org': as_org, 'category': network_kind, 'requests': n}
                ORDER BY n DESC, asn)[1:5] AS network_list
    FROM (SELECT credential_id, bucket, asn, min(as_org) AS as_org,
                 min(network_kind) AS network_kind, count(*) AS n
          FROM scoped GROUP BY credential_id, bucket, asn)
    GROUP BY credential_id, bucket
),
targets AS (
    SELECT credential_id, bucket, list(target ORDER BY n DESC, target)[1:5] AS top_targets
    FROM (SELECT credential_id, bucket, target, count(*) AS n
          FROM scoped WHERE target IS NOT NULL GROUP BY ALL)
    GROUP BY credential_id, bucket
),
traffic AS (
    -- the key's whole traffic in the window: all of it, and from hosting networks (servers)
    SELECT principal_id AS credential_id,
           time_bucket(to_hours(CAST($window_hours AS BIGINT)), hour) AS bucket,
           sum(requests) AS all_requests,
           coalesce(sum(requests) FILTER (WHERE asn_category = 'hosting'), 0) AS server_requests
    FROM principal_hours
    WHERE principal_type = 'credential'
      AND principal_id IN (SELECT credential_id FROM hits)
      AND ($since IS NULL OR last_ts >= $since)
      AND ($until IS NULL OR first_ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
    GROUP BY ALL
),
judged AS (
    SELECT h.*, n.network_list, t.top_targets,
           coalesce(tr.all_requests, h.requests) AS all_requests,
           coalesce(tr.server_requests, 0) AS server_requests
    FROM hits h
    JOIN networks n USING (credential_id, bucket)
    LEFT JOIN targets t USING (credential_id, bucket)
    LEFT JOIN traffic tr USING (credential_id, bucket)
)
SELECT
    'credential' AS principal_type,
    credential_id AS principal_id,
    tenant_id,
    first_seen AS window_start,
    last_seen AS window_end,
    round(least(60, 20 + 5 * log2(requests / $min_requests)
                    + CASE WHEN server_requests > 0 THEN 15 ELSE 0 END), 1)::DOUBLE AS score,
    format('API key {} was used from {} on {} ({} requests from {} address{}{}){}.',
           credential_id, array_to_string(tools, ', '),
           CASE WHEN list_has_all(['isp', 'mobile'], network_kinds)
                THEN 'a home or mobile connection'
                ELSE 'a network of unknown kind, not a known hosting one' END,
           requests, addresses, CASE WHEN addresses = 1 THEN '' ELSE 'es' END,
           CASE WHEN network_list[1].as_org IS NOT NULL THEN ', ' || network_list[1].as_org
                WHEN network_list[1].asn IS NOT NULL THEN ', AS' || network_list[1].asn
                ELSE '' END,
           CASE WHEN server_requests > 0
                THEN '; the same key sent ' || server_requests || ' requests from servers'
                ELSE '' END) AS summary,
    struct_pack(
        tools := tools,
        user_agents := user_agents,
        requests := requests,
        addresses := addresses,
        address_list := address_list,
        network_kinds := network_kinds,
        networks := network_list,
        countries := countries,
        country_list := coalesce(country_list, []),
        targets := coalesce(top_targets, []),
        succeeded := succeeded,
        refused := refused,
        all_requests := all_requests,
        server_requests := server_requests,
        bucket_start := bucket,
        window_hours := CAST($window_hours AS BIGINT)
    ) AS evidence,
    coalesce(request_ids[1:20], []) AS sample_request_ids
FROM judged
ORDER BY score DESC, principal_id, window_start
