-- What the demo prints after `forensics ingest sample_data/logs/`: per source format and tenant,
-- the traffic, who sent it, the tokens it cost and how it failed. `max_ips_per_credential` is
-- the widest spread of one credential over client addresses (a shared or leaked key stands out).
WITH per_credential AS (
  SELECT format, tenant_id, credential_id, count(DISTINCT client_ip) AS ips
  FROM requests
  WHERE credential_id IS NOT NULL
  GROUP BY ALL
)
SELECT
  r.format,
  coalesce(r.tenant_id, '(none)') AS tenant,
  count(*) AS requests,
  count(DISTINCT r.credential_id) AS credentials,
  count(DISTINCT r.client_ip) AS ips,
  coalesce(max(c.ips), 0) AS max_ips_per_credential,
  coalesce(sum(r.input_tokens), 0) AS input_tokens,
  coalesce(sum(r.output_tokens), 0) AS output_tokens,
  count(*) FILTER (WHERE r.status < 400) AS ok,
  count(*) FILTER (WHERE r.error_type = 'rate_limited') AS rate_limited,
  count(*) FILTER (WHERE r.error_type = 'auth') AS auth,
  count(*) FILTER (WHERE r.error_type = 'content_filter') AS content_filter,
  count(*) FILTER (WHERE r.error_type IN ('invalid', 'server')) AS other_errors,
  min(r.ts)::DATE AS first_day,
  max(r.ts)::DATE AS last_day
FROM requests r
LEFT JOIN per_credential c
  ON c.format = r.format
  AND c.tenant_id IS NOT DISTINCT FROM r.tenant_id
  AND c.credential_id = r.credential_id
GROUP BY ALL
ORDER BY r.format, requests DESC
