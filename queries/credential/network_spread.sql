-- credential.network_spread: a credential that shows up on one UTC day from many autonomous
-- systems in several countries, when on its earlier days it used only a few ASNs: a leaked key
-- replayed through residential proxies or a botnet. Enterprise egress and privacy relay
-- requests are not counted. Days with browser calls (an Origin header) are left to
-- credential.browser_exposed.
-- Per-day networks come from the shared `principal_hours` features.
WITH placed AS (
    -- first per credential, day, ASN and country: the distinct counts below then read a few
    -- rows per day instead of every hour, target and network of it
    SELECT principal_id AS credential_id,
           date_trunc('day', hour AT TIME ZONE 'UTC') AS day,
           asn, country,
           arg_min(tenant_id, first_ts) AS tenant_id,
           min(first_ts) AS first_seen,
           max(last_ts) AS last_seen,
           sum(requests) AS requests,
           sum(origin_requests) AS origin_requests,
           sum(est_cost_usd) AS est_cost_usd
    FROM principal_hours
    WHERE principal_type = 'credential'
      AND coalesce(asn_category, '') NOT IN ('enterprise_egress', 'privacy_relay')
      AND ($since IS NULL OR last_ts >= $since)
      AND ($until IS NULL OR first_ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
    GROUP BY ALL
),
daily AS (
    SELECT credential_id, day,
           arg_min(tenant_id, first_seen) AS tenant_id,
           min(first_seen) AS first_seen,
           max(last_seen) AS last_seen,
           sum(requests) AS requests,
           count(DISTINCT asn) AS asns,
           count(DISTINCT country) AS countries,
           sum(origin_requests) > 0 AS any_origin,
           sum(est_cost_usd) AS est_cost_usd
    FROM placed
    GROUP BY credential_id, day
),
baselined AS (
    SELECT *,
           avg(asns) OVER (PARTITION BY credential_id ORDER BY day
                           ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS baseline_asns,
           count(*) OVER (PARTITION BY credential_id ORDER BY day
                          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS baseline_days
    FROM daily
),
hits AS (
    SELECT * FROM baselined
    WHERE baseline_days >= 1
      AND baseline_asns <= $max_baseline_asns
      AND asns >= $min_asns
      AND countries >= $min_countries
      AND NOT any_origin
),
places AS (
    -- the networks and countries of the hits, listed for the evidence
    SELECT h.credential_id, h.day,
           list(DISTINCT p.asn ORDER BY p.asn) FILTER (WHERE p.asn IS NOT NULL) AS asn_list,
           list(DISTINCT p.country ORDER BY p.country) FILTER (WHERE p.country IS NOT NULL)
               AS country_list
    FROM hits h
    JOIN principal_hours p
      ON p.principal_type = 'credential' AND p.principal_id = h.credential_id
     AND p.hour >= h.day AT TIME ZONE 'UTC'
     AND p.hour < (h.day + INTERVAL 1 DAY) AT TIME ZONE 'UTC'
    WHERE coalesce(p.asn_category, '') NOT IN ('enterprise_egress', 'privacy_relay')
      AND ($since IS NULL OR p.last_ts >= $since)
      AND ($until IS NULL OR p.first_ts <= $until)
      AND ($tenant IS NULL OR p.tenant_id = $tenant)
    GROUP BY ALL
)
SELECT
    'credential' AS principal_type,
    credential_id AS principal_id,
    tenant_id,
    first_seen AS window_start,
    last_seen AS window_end,
    round(least(100, 50 + 3 * (asns - $min_asns) + 5 * (countries - $min_countries)
                     + 10 * (1 - baseline_asns / greatest($max_baseline_asns, 1))), 1)::DOUBLE
        AS score,
    format('Credential {} was used from {} ASNs in {} countries on {}, against {} ASNs a day'
           || ' over its {} earlier day(s).',
           credential_id, asns, countries, strftime(day, '%Y-%m-%d'),
           round(baseline_asns, 2), baseline_days) AS summary,
    struct_pack(
        day := strftime(day, '%Y-%m-%d'),
        asns := asns,
        countries := countries,
        requests := requests,
        asn_list := asn_list[1:30],
        country_list := country_list,
        baseline_asns_per_day := round(baseline_asns, 2),
        baseline_days := baseline_days
    ) AS evidence,
    coalesce((SELECT min_by(r.request_id, (r.ts, r.request_id), 20)
              FROM requests r
              WHERE r.credential_id = hits.credential_id
                AND r.ts BETWEEN hits.first_seen AND hits.last_seen
                AND r.request_id IS NOT NULL
                AND coalesce(r.asn_category, '') NOT IN ('enterprise_egress', 'privacy_relay')
                AND ($since IS NULL OR r.ts >= $since)
                AND ($until IS NULL OR r.ts <= $until)
                AND ($tenant IS NULL OR r.tenant_id = $tenant)), []) AS sample_request_ids,
    est_cost_usd
FROM hits JOIN places USING (credential_id, day)
ORDER BY score DESC, principal_id, window_start
