-- credential.impossible_travel: consecutive requests of one credential from two places too far
-- apart for the time between them (haversine distance over elapsed time above max_kmh).
-- Requests without coordinates are skipped; a pair is ignored when either side comes from
-- enterprise egress or a privacy relay, whose exit points say nothing about the user's place.
-- The evidence says which of two stories the day tells: one party moving (each place is left
-- for good: A, A, B, B) or several parties at once (the credential returns to a place it left:
-- A, B, A, C, B), "concurrent use from N locations".
WITH candidates AS (
    -- Only credentials seen at two or more places (from the shared features) can jump.
    SELECT principal_id AS credential_id
    FROM principal_hours
    WHERE principal_type = 'credential' AND lat IS NOT NULL AND lon IS NOT NULL
      AND coalesce(asn_category, '') NOT IN ('enterprise_egress', 'privacy_relay')
      AND ($since IS NULL OR last_ts >= $since)
      AND ($until IS NULL OR first_ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
    GROUP BY principal_id
    HAVING count(DISTINCT (lat, lon)) >= 2
),
scoped AS (
    SELECT ts, request_id, tenant_id, credential_id, client_ip, asn, asn_category, country,
           lat, lon, est_cost_usd
    FROM requests
    WHERE credential_id IN (SELECT credential_id FROM candidates)
      AND lat IS NOT NULL AND lon IS NOT NULL
      AND ($since IS NULL OR ts >= $since)
      AND ($until IS NULL OR ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
),
paired AS (
    SELECT *,
           lag(ts) OVER w AS p_ts, lag(request_id) OVER w AS p_request_id,
           lag(client_ip) OVER w AS p_ip, lag(asn) OVER w AS p_asn,
           lag(asn_category) OVER w AS p_category, lag(country) OVER w AS p_country,
           lag(lat) OVER w AS p_lat, lag(lon) OVER w AS p_lon,
           lag(est_cost_usd) OVER w AS p_cost
    FROM scoped
    WINDOW w AS (PARTITION BY credential_id ORDER BY ts, request_id)
),
measured AS (
    SELECT *,
           2 * 6371.0 * asin(sqrt(
               pow(sin(radians(lat - p_lat) / 2), 2)
               + cos(radians(p_lat)) * cos(radians(lat))
                 * pow(sin(radians(lon - p_lon) / 2), 2))) AS km,
           epoch(ts - p_ts) / 3600.0 AS hours
    FROM paired
    WHERE p_ts IS NOT NULL
      AND (lat <> p_lat OR lon <> p_lon)  -- the same place twice is no travel
      AND coalesce(asn_category, '') NOT IN ('enterprise_egress', 'privacy_relay')
      AND coalesce(p_category, '') NOT IN ('enterprise_egress', 'privacy_relay')
),
jumps AS (
    SELECT *, km / greatest(hours, 1.0 / 60) AS kmh
    FROM measured
    WHERE km >= $min_km AND km / greatest(hours, 1.0 / 60) > $max_kmh
),
-- One finding per credential and UTC day: the fastest jump is the evidence, the others are
-- counted (a leaked key replayed from two continents jumps back and forth all day).
per_day AS (
    SELECT credential_id, date_trunc('day', ts) AS day,
           any_value(tenant_id) AS tenant_id,
           min(p_ts) AS window_start, max(ts) AS window_end,
           count(*) AS jumps,
           -- equal speeds (jumps under a minute all count as a minute) go to the latest jump:
           -- the evidence must not change from one run to the next
           arg_max(struct_pack(p_country, country, p_lat, p_lon, lat, lon, p_ip, client_ip,
                               p_asn, asn, km, hours, kmh), (kmh, ts, request_id)) AS fastest,
           -- sorted: list_distinct keeps no order, and the lists must not depend on the run or
           -- the engine
           list_sort(list_distinct(flatten(list([p_country, country])))) AS countries,
           list_sort(list_distinct(flatten(list([p_request_id, request_id])))) AS request_ids,
           sum(coalesce(p_cost, 0) + coalesce(est_cost_usd, 0)) AS est_cost_usd
    FROM jumps
    GROUP BY credential_id, date_trunc('day', ts)
),
-- Per credential and UTC day: the distinct places and how often the place changed between
-- consecutive requests. More stays than places means a place was left and used again.
moves AS (
    SELECT credential_id, day,
           count(DISTINCT (lat, lon)) AS places,
           1 + count(*) FILTER (WHERE p_lat IS NOT NULL AND (lat <> p_lat OR lon <> p_lon))
               AS stays
    FROM (
        SELECT credential_id, date_trunc('day', ts) AS day, lat, lon,
               lag(lat) OVER d AS p_lat, lag(lon) OVER d AS p_lon
        FROM scoped
        WHERE coalesce(asn_category, '') NOT IN ('enterprise_egress', 'privacy_relay')
          AND credential_id IN (SELECT credential_id FROM per_day)  -- only where it jumped
        WINDOW d AS (PARTITION BY credential_id, date_trunc('day', ts) ORDER BY ts, request_id)
    )
    GROUP BY ALL
),
judged AS (
    SELECT p.*, m.places, m.stays > m.places AS concurrent
    FROM per_day p JOIN moves m USING (credential_id, day)
)
SELECT
    'credential' AS principal_type,
    credential_id AS principal_id,
    tenant_id,
    window_start,
    window_end,
    round(least(100, 60 + 15 * log10(fastest.kmh / $max_kmh) + 10 * log10(fastest.km / $min_km)
                     + 5 * log10(jumps)), 1)::DOUBLE AS score,
    format('Credential {} was used from {} and then from {}, {} km away, {} hours later ({} km/h);'
           || ' {} such jump(s) that day: {}.',
           credential_id, coalesce(fastest.p_country, '?'), coalesce(fastest.country, '?'),
           round(fastest.km)::BIGINT, round(fastest.hours, 2), round(fastest.kmh)::BIGINT,
           jumps, CASE WHEN concurrent THEN format('concurrent use from {} locations', places)
                       ELSE 'one party moving, or a copy used once' END) AS summary,
    struct_pack(
        from_place := struct_pack(country := fastest.p_country, lat := fastest.p_lat,
                                  lon := fastest.p_lon, ip := fastest.p_ip, asn := fastest.p_asn),
        to_place := struct_pack(country := fastest.country, lat := fastest.lat,
                                lon := fastest.lon, ip := fastest.client_ip, asn := fastest.asn),
        km := round(fastest.km, 1),
        hours := round(fastest.hours, 3),
        kmh := round(fastest.kmh, 1),
        jumps := jumps,
        pattern := CASE WHEN concurrent THEN 'concurrent' ELSE 'moving' END,
        locations := places,
        countries := list_filter(countries, lambda c: c IS NOT NULL),
        max_kmh := $max_kmh,
        min_km := $min_km
    ) AS evidence,
    list_filter(request_ids, lambda x: x IS NOT NULL)[1:20] AS sample_request_ids,
    est_cost_usd
FROM judged
ORDER BY score DESC, principal_id, window_start
