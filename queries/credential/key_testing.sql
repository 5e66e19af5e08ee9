-- credential.key_testing: one source network presenting many distinct API keys in one burst,
-- most of them refused: someone checking a list of stolen or guessed keys against the gateway.
-- The source is the client's client_net (IPv4 /24 "203.0.113.0/24", IPv6 /64
-- "2001:db8:0:1::/64"), so a checker rotating through the addresses of one host or subnet stays one source. A key
-- is the fingerprint of the raw key the request carried, else the gateway's credential id (a
-- key refused with 401 has only the fingerprint as its credential_id). A burst is a run of
-- refused (401, 403) API-key requests from the source with no pause longer than
-- max_gap_minutes. Keys accepted (2xx) from the same addresses during the burst, or within
-- max_gap_minutes of its ends, are its victims.
WITH refused AS (
    SELECT ts, request_id, client_ip, path, user_agent, status,
           coalesce(key_fingerprint, credential_id) AS key_ref,
           client_net AS source
    FROM requests
    WHERE status IN (401, 403) AND credential_type = 'api_key'
      AND coalesce(key_fingerprint, credential_id) IS NOT NULL
      AND client_ip IS NOT NULL AND ts IS NOT NULL
      AND ($since IS NULL OR ts >= $since)
      AND ($until IS NULL OR ts <= $until)
),
runs AS (
    SELECT *, sum(starts_run) OVER (PARTITION BY source ORDER BY ts, request_id
                                    ROWS UNBOUNDED PRECEDING) AS run
    FROM (SELECT *,
                 CASE WHEN ts - lag(ts) OVER (PARTITION BY source ORDER BY ts, request_id)
                           > to_minutes(CAST($max_gap_minutes AS BIGINT)) THEN 1 ELSE 0 END
                     AS starts_run
          FROM refused WHERE source IS NOT NULL)
),
bursts AS (
    SELECT source, run,
           min(ts) AS first_seen,
           max(ts) AS last_seen,
           count(*) AS refused_requests,
           count(DISTINCT key_ref) AS refused_keys,
           list(DISTINCT client_ip ORDER BY client_ip) AS addresses,
           list(DISTINCT key_ref ORDER BY key_ref)[1:10] AS refused_key_sample,
           histogram(status) AS statuses,
           min_by(request_id, (ts, request_id), 20) FILTER (WHERE request_id IS NOT NULL)
               AS request_ids
    FROM runs
    GROUP BY source, run
    HAVING count(DISTINCT key_ref) >= $min_refused_keys
),
accepted AS (
    -- the API-key requests of the same addresses around the burst that got past authentication
    SELECT b.source, b.run, r.ts, r.request_id, r.credential_id, r.tenant_id,
           coalesce(r.key_fingerprint, r.credential_id) AS key_ref
    FROM (SELECT source, run, first_seen, last_seen, unnest(addresses) AS client_ip
          FROM bursts) b
    JOIN requests r
      ON r.client_ip = b.client_ip
     AND r.ts BETWEEN b.first_seen - to_minutes(CAST($max_gap_minutes AS BIGINT))
                  AND b.last_seen + to_minutes(CAST($max_gap_minutes AS BIGINT))
    WHERE r.credential_type = 'api_key' AND r.status BETWEEN 200 AND 299
      AND coalesce(r.key_fingerprint, r.credential_id) IS NOT NULL
      AND ($since IS NULL OR r.ts >= $since)
      AND ($until IS NULL OR r.ts <= $until)
),
victims AS (
    SELECT source, run,
           min(ts) AS first_accepted,
           max(ts) AS last_accepted,
           count(*) AS accepted_requests,
           count(DISTINCT key_ref) AS accepted_keys,
           list(DISTINCT credential_id ORDER BY credential_id) AS victim_list,
           list(DISTINCT tenant_id ORDER BY tenant_id) FILTER (WHERE tenant_id IS NOT NULL)
               AS tenant_list,
           min_by(request_id, (ts, request_id), 10) FILTER (WHERE request_id IS NOT NULL)
               AS request_ids
    FROM accepted
    GROUP BY source, run
),
parts AS (
    SELECT source, run, list(path ORDER BY n DESC, path)[1:5] AS top_paths
    FROM (SELECT source, run, path, count(*) AS n FROM runs WHERE path IS NOT NULL GROUP BY ALL)
    GROUP BY ALL
),
agents AS (
    SELECT source, run, list(user_agent ORDER BY n DESC, user_agent)[1:3] AS top_agents
    FROM (SELECT source, run, user_agent, count(*) AS n
          FROM runs WHERE user_agent IS NOT NULL GROUP BY ALL)
    GROUP BY ALL
),
hits AS (
    SELECT b.*, p.top_paths, a.top_agents,
           v.first_accepted, v.last_accepted,
           coalesce(v.accepted_requests, 0) AS accepted_requests,
           coalesce(v.accepted_keys, 0) AS accepted_keys,
           coalesce(v.victim_list, []) AS victim_list,
           coalesce(v.tenant_list, []) AS tenant_list,
           coalesce(v.request_ids, []) AS victim_request_ids,
           b.refused_keys / (b.refused_keys + coalesce(v.accepted_keys, 0)) AS refused_key_share,
           greatest(1, datediff('second', b.first_seen, b.last_seen) / 60) AS minutes
    FROM bursts b
    LEFT JOIN victims v USING (source, run)
    LEFT JOIN parts p USING (source, run)
    LEFT JOIN agents a USING (source, run)
    WHERE b.refused_keys >= $min_refused_share * (b.refused_keys + coalesce(v.accepted_keys, 0))
      -- refused keys carry no tenant: a tenant's run shows the testing that reached its keys
      AND ($tenant IS NULL OR list_contains(coalesce(v.tenant_list, []), $tenant))
)
SELECT
    'cidr' AS principal_type,
    source AS principal_id,
    CASE WHEN array_length(tenant_list) = 1 THEN tenant_list[1] END AS tenant_id,
    least(first_seen, first_accepted) AS window_start,
    greatest(last_seen, last_accepted) AS window_end,
    round(least(100, 45 + 10 * log2(refused_keys / $min_refused_keys)
                     + 20 * refused_key_share + CASE WHEN accepted_keys > 0 THEN 20 ELSE 0 END),
          1)::DOUBLE AS score,
    CASE WHEN accepted_keys > 0 THEN 'high' ELSE 'medium' END AS severity,
    format('Network {} presented {} distinct API keys in {} minutes from {} address(es): {} refused'
           || ' with 401/403, {} accepted{}.',
           source, refused_keys + accepted_keys, round(minutes, 1), array_length(addresses), refused_keys,
           accepted_keys,
           CASE WHEN accepted_keys > 0
                THEN ' (' || array_to_string(victim_list[1:3], ', ')
                     || CASE WHEN array_length(victim_list) > 3 THEN ', …' ELSE '' END || ')'
                ELSE '' END) AS summary,
    struct_pack(
        addresses := addresses[1:10],
        address_count := array_length(addresses),
        keys_presented := refused_keys + accepted_keys,
        refused_keys := refused_keys,
        accepted_keys := accepted_keys,
        refused_key_share := round(refused_key_share, 3)::DOUBLE,
        victims := victim_list[1:20],
        victim_tenants := tenant_list[1:20],
        refused_requests := refused_requests,
        accepted_requests := accepted_requests,
        refused_key_sample := refused_key_sample,
        statuses := statuses,
        paths := coalesce(top_paths, []),
        user_agents := coalesce(top_agents, []),
        minutes := round(minutes, 1)::DOUBLE,
        keys_per_minute := round((refused_keys + accepted_keys) / minutes, 2)::DOUBLE,
        max_gap_minutes := CAST($max_gap_minutes AS BIGINT)
    ) AS evidence,
    (victim_request_ids || coalesce(request_ids, []))[1:20] AS sample_request_ids
FROM hits
ORDER BY score DESC, principal_id, window_start
