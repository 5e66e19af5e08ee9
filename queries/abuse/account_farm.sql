-- abuse.account_farm: many addresses driving sign-up, login, password-reset or key-creation
-- endpoints as one client (one user agent), each address only a few times and doing little
-- else: mass free-trial sign-ups and credential stuffing through rotating addresses.
-- A path's role comes from the shipped `endpoint_roles` table (a pattern matches the end of the
-- path, lower-cased, trailing slash dropped; `*` is any characters) and the extra_roles
-- parameter ('pattern=role, ...'), whose patterns win over the shipped ones; then the longer
-- pattern wins, and role `none` takes a path out. Requests answered 404 or 410 (no such
-- endpoint: a scan, not a use) are left out. Windows are fixed buckets of window_hours.
-- An address of a client (user agent) in a window is a farm address when at least one of its
-- requests has an account role (signup, login, password_reset, key_create; `form` alone is
-- not one), it made at most max_per_address such requests, and they are at least half of all
-- its requests in the window: a real user goes on to use the product (pages, API calls). A
-- client is a farm when it has min_addresses farm addresses, they are min_farm_share of its
-- addresses on these endpoints, and min_sequence_share of them ran the same sequence of steps
-- (method and role in time order, repeats collapsed: 'GET signup > POST signup').
-- The principal is the network holding most farm addresses (ASN when known, else the IPv4 /24
-- or IPv6 /64): what a block, a challenge or an abuse report acts on; every network is listed.
WITH patterns AS (
    SELECT role, extra,
           length(replace(pattern, '*', '')) AS specificity,
           '%' || replace(replace(replace(replace(pattern, '\', '\\'), '%', '\%'), '_', '\_'),
                          '*', '%') AS like_pattern
    FROM (SELECT lower(trim(pattern)) AS pattern, lower(trim(role)) AS role, false AS extra
          FROM endpoint_roles
          UNION ALL
          SELECT lower(trim(split_part(item, '=', 1))), lower(trim(split_part(item, '=', 2))),
                 true
          FROM (SELECT unnest(string_split_regex(coalesce($extra_roles, ''), '[,;\s]+'))
                           AS item))
    WHERE pattern <> '' AND role <> ''
),
paths AS (
    SELECT DISTINCT path
    FROM requests
    WHERE path IS NOT NULL
      AND ($since IS NULL OR ts >= $since)
      AND ($until IS NULL OR ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
),
path_roles AS (
    SELECT p.path, arg_max(x.role, (x.extra, x.specificity, x.role)) AS role
    FROM paths p
    JOIN patterns x ON rtrim(lower(p.path), '/') LIKE x.like_pattern ESCAPE '\'
    GROUP BY p.path
),
attempts AS (
    SELECT r.ts, r.request_id, r.client_ip, r.tenant_id, r.as_org, r.country, r.status, pr.role,
           coalesce(nullif(trim(r.user_agent), ''), '(none)') AS user_agent,
           coalesce(upper(r.method), '?') || ' ' || pr.role AS step,
           CASE WHEN r.asn IS NOT NULL THEN 'asn'
                WHEN r.client_net IS NOT NULL THEN 'cidr'
                ELSE 'ip' END AS network_type,
           CASE WHEN r.asn IS NOT NULL THEN CAST(r.asn AS VARCHAR)
                ELSE coalesce(r.client_net, r.client_ip) END AS network,
           time_bucket(to_hours(CAST($window_hours AS BIGINT)), r.ts) AS bucket
    FROM requests r
    JOIN path_roles pr ON r.path = pr.path
    WHERE pr.role <> 'none'
      AND r.client_ip IS NOT NULL
      AND coalesce(r.status, 0) NOT IN (404, 410)
      AND ($since IS NULL OR r.ts >= $since)
      AND ($until IS NULL OR r.ts <= $until)
      AND ($tenant IS NULL OR r.tenant_id = $tenant)
),
stepped AS (
    SELECT *, lag(step) OVER w AS prev_step, lag(ts) OVER w AS prev_ts
    FROM attempts
    WINDOW w AS (PARTITION BY bucket, user_agent, client_ip ORDER BY ts, request_id)
),
addresses AS (
    SELECT bucket, user_agent, client_ip,
           arg_min(network, ts) AS network,
           arg_min(network_type, ts) AS network_type,
           arg_min(as_org, ts) AS as_org,
           count(*) AS attempts,
           string_agg(step, ' > ' ORDER BY ts, request_id)
               FILTER (WHERE prev_step IS DISTINCT FROM step) AS sequence,
           bool_or(role IN ('signup', 'login', 'password_reset', 'key_create')) AS account_role,
           -- seconds from opening a form (GET) to sending it (POST)
           median(epoch(ts) - epoch(prev_ts))
               FILTER (WHERE step = 'POST ' || role AND prev_step = 'GET ' || role)
               AS form_seconds
    FROM stepped
    GROUP BY bucket, user_agent, client_ip
),
totals AS (
    -- every request of those addresses in the window, whatever its path or user agent
    SELECT client_ip, time_bucket(to_hours(CAST($window_hours AS BIGINT)), ts) AS bucket,
           count(*) AS all_requests
    FROM requests
    WHERE client_ip IN (SELECT client_ip FROM addresses)
      AND ($since IS NULL OR ts >= $since)
      AND ($until IS NULL OR ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
    GROUP BY ALL
),
judged AS (
    SELECT a.*, t.all_requests,
           a.account_role AND a.attempts <= $max_per_address
               AND 2 * a.attempts >= t.all_requests AS farm
    FROM addresses a
    JOIN totals t USING (client_ip, bucket)
),
clusters AS (
    SELECT bucket, user_agent,
           count(*) AS addresses_seen,
           count(*) FILTER (WHERE farm) AS addresses,
           min(attempts) FILTER (WHERE farm) AS min_attempts,
           median(attempts) FILTER (WHERE farm) AS median_attempts,
           max(attempts) FILTER (WHERE farm) AS max_attempts,
           median(form_seconds) FILTER (WHERE farm) AS form_seconds,
           -- the first 20 farm addresses (an ordered list of them all took 2 GiB at 35,000)
           min_by(client_ip, client_ip, 20) FILTER (WHERE farm) AS address_list
    FROM judged
    GROUP BY bucket, user_agent
    HAVING count(*) FILTER (WHERE farm) >= $min_addresses
       AND count(*) FILTER (WHERE farm) >= $min_farm_share * count(*)
),
farm AS (
    SELECT j.* FROM judged j JOIN clusters USING (bucket, user_agent) WHERE j.farm
),
sequences AS (
    SELECT bucket, user_agent,
           list({'sequence': sequence, 'addresses': n} ORDER BY n DESC, sequence) AS seq_list
    FROM (SELECT bucket, user_agent, sequence, count(*) AS n FROM farm GROUP BY ALL)
    GROUP BY bucket, user_agent
),
networks AS (
    SELECT bucket, user_agent,
           count(*) AS networks,
           list({'network_type': network_type, 'network': network, 'as_org': as_org,
                 'addresses': n} ORDER BY n DESC, network) AS net_list
    FROM (SELECT bucket, user_agent, network_type, network, min(as_org) AS as_org,
                 count(*) AS n
          FROM farm GROUP BY bucket, user_agent, network_type, network)
    GROUP BY bucket, user_agent
),
farm_attempts AS (
    SELECT a.* FROM attempts a JOIN farm f USING (bucket, user_agent, client_ip)
),
detail AS (
    SELECT bucket, user_agent,
           min(ts) AS first_seen,
           max(ts) AS last_seen,
           count(*) AS requests,
           count(*) FILTER (WHERE status BETWEEN 200 AND 399) AS succeeded,
           count(*) FILTER (WHERE status IN (401, 403)) AS refused,
           count(*) FILTER (WHERE status = 429) AS rate_limited,
           count(DISTINCT country) AS countries,
           list(DISTINCT country ORDER BY country) FILTER (WHERE country IS NOT NULL)
               AS country_list,
           CASE WHEN count(tenant_id) = count(*) AND count(DISTINCT tenant_id) = 1
                THEN min(tenant_id) END AS tenant_id,
           min_by(request_id, (ts, request_id), 20) FILTER (WHERE request_id IS NOT NULL)
               AS request_ids
    FROM farm_attempts
    GROUP BY bucket, user_agent
),
roles AS (
    SELECT bucket, user_agent,
           list({'role': role, 'requests': n} ORDER BY n DESC, role) AS role_counts
    FROM (SELECT bucket, user_agent, role, count(*) AS n FROM farm_attempts GROUP BY ALL)
    GROUP BY bucket, user_agent
),
statuses AS (
    SELECT bucket, user_agent,
           list({'step': step, 'status': status, 'requests': n}
                ORDER BY n DESC, step, status)[1:12] AS status_counts
    FROM (SELECT bucket, user_agent, step, status, count(*) AS n
          FROM farm_attempts GROUP BY ALL)
    GROUP BY bucket, user_agent
),
hits AS (
    SELECT c.*, d.* EXCLUDE (bucket, user_agent), s.seq_list,
           n.networks, n.net_list, r.role_counts, st.status_counts,
           s.seq_list[1].addresses / c.addresses AS sequence_share
    FROM clusters c
    JOIN detail d USING (bucket, user_agent)
    JOIN sequences s USING (bucket, user_agent)
    JOIN networks n USING (bucket, user_agent)
    JOIN roles r USING (bucket, user_agent)
    JOIN statuses st USING (bucket, user_agent)
    WHERE s.seq_list[1].addresses >= $min_sequence_share * c.addresses
)
SELECT
    net_list[1].network_type AS principal_type,
    net_list[1].network AS principal_id,
    tenant_id,
    first_seen AS window_start,
    last_seen AS window_end,
    round(least(100, 40 + 10 * log2(addresses / $min_addresses) + 20 * sequence_share
                     + CASE WHEN form_seconds < 3 THEN 10 ELSE 0 END), 1)::DOUBLE AS score,
    format('{} addresses on {} networks drove {} endpoints as one client ({}) within {} hours:'
           || ' {} requests, at most {} per address, {}% of the addresses running {};'
           || ' most from {}{}.',
           addresses, networks,
           array_to_string(list_transform(role_counts, lambda x: x.role), ', '), left(user_agent, 80),
           CAST($window_hours AS BIGINT), requests, max_attempts,
           CAST(round(100 * sequence_share) AS INTEGER), seq_list[1].sequence,
           CASE net_list[1].network_type WHEN 'asn' THEN 'AS' ELSE '' END,
           net_list[1].network
           || CASE WHEN net_list[1].as_org IS NOT NULL THEN ' (' || net_list[1].as_org || ')'
                   ELSE '' END) AS summary,
    struct_pack(
        user_agent := user_agent,
        sequence := seq_list[1].sequence,
        sequence_share := round(sequence_share, 3)::DOUBLE,
        sequences := seq_list[1:5],
        addresses := addresses,
        addresses_on_these_endpoints := addresses_seen,
        attempts_per_address := struct_pack(min := min_attempts,
                                            median := median_attempts,
                                            max := max_attempts),
        median_form_seconds := round(form_seconds, 1)::DOUBLE,
        networks := networks,
        network_list := net_list[1:15],
        principal_share := round(net_list[1].addresses / addresses, 3)::DOUBLE,
        countries := countries,
        country_list := coalesce(country_list, []),
        requests := requests,
        role_counts := role_counts,
        succeeded := succeeded,
        refused := refused,
        rate_limited := rate_limited,
        statuses := status_counts,
        sample_addresses := address_list,
        bucket_start := bucket,
        window_hours := CAST($window_hours AS BIGINT)
    ) AS evidence,
    coalesce(request_ids[1:20], []) AS sample_request_ids
FROM hits
ORDER BY score DESC, principal_id, window_start
