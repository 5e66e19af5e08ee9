-- principal_hours: the shared feature of the detector pack (forensics/detect/features.py).
-- One row per principal (the credential, else the client IP, else the tenant), tenant, UTC
-- hour, target, model family, network (ASN, its category, the client_net block) and place,
-- with the counts and sums detectors read.
-- The case stores it as a view over all requests; a detection run materialises it as a TEMP
-- table scoped to the run. `/*scope*/` marks where the run's since / until / tenant go.
SELECT
    principal_type,  -- as request_subjects names a request's principal
    principal_id,
    tenant_id,
    time_bucket(INTERVAL 1 HOUR, ts) AS hour,
    CASE WHEN endpoint IS NULL OR endpoint = 'other' THEN path ELSE endpoint END AS target,
    endpoint,
    model_family,
    asn,
    asn_category,
    country,
    lat,
    lon,
    client_net,
    count(*) AS requests,
    min(ts) AS first_ts,
    max(ts) AS last_ts,
    count(*) FILTER (WHERE stream) AS stream_requests,
    count(*) FILTER (WHERE origin NOT IN ('', 'null')) AS origin_requests,
    count(*) FILTER (WHERE client_kind IS NOT NULL) AS client_requests,
    coalesce(sum(tool_calls), 0) AS tool_calls,
    sum(est_cost_usd) AS est_cost_usd,
    sum(output_tokens) AS output_tokens,
    count(output_tokens) AS output_requests,
    count(*) FILTER (WHERE error_type = 'content_filter') AS content_filter,
    max(latency_ms) AS max_latency_ms
FROM request_subjects
WHERE ts IS NOT NULL AND principal_id IS NOT NULL
  AND /*scope*/ true
GROUP BY ALL
