-- What the demo prints after `forensics ingest sample_data/logs/`: one row per source format,
-- with the traffic, who sent it, the tokens it cost and how it failed. `max_ips_per_credential`
-- is the widest spread of one credential over client addresses, and `widest_tenant` the tenant
-- that credential belongs to (a shared or exposed key stands out).
WITH per_credential AS (
  SELECT format, tenant_id, credential_id, count(DISTINCT client_ip) AS ips
  FROM requests
  WHERE credential_id IS NOT NULL
  GROUP BY ALL
),
widest AS (
  SELECT format, max(ips) AS max_ips_per_credential, arg_max(tenant_id, ips) AS widest_tenant
  FROM per_credential
  GROUP BY ALL
)
SELECT
  r.format,
  count(*) AS requests,
  count(DISTINCT r.tenant_id) AS tenants,
  count(DISTINCT r.credential_id) AS credentials,
  count(DISTINCT r.client_ip) AS ips,
  coalesce(any_value(w.max_ips_per_credential), 0) AS max_ips_per_credential,
  any_value(w.widest_tenant) AS widest_tenant,
  coalesce(sum(r.input_tokens), 0) AS input_tokens,
  coalesce(sum(r.output_tokens), 0) AS output_tokens,
  count(*) FILTER (WHERE r.status < 400) AS ok,
  count(*) FILTER (WHERE r.error_type = 'rate_limited') AS rate_limited,
  count(*) FILTER (WHERE r.error_type = 'auth') AS auth,
  count(*) FILTER (WHERE r.error_type = 'content_filter') AS content_filter,
  count(*) FILTER (WHERE r.status >= 400 AND r.error_type IS DISTINCT FROM 'rate_limited'
    AND r.error_type IS DISTINCT FROM 'auth'
    AND r.error_type IS DISTINCT FROM 'content_filter') AS other_errors,
  min(r.ts)::DATE AS first_day,
  max(r.ts)::DATE AS last_day
FROM requests r
LEFT JOIN widest w ON w.format = r.format
GROUP BY ALL
ORDER BY requests DESC
