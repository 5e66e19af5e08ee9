-- Suppression: (finding_id, suppressed_by) for each finding of this run (`_run_new`) that an
-- allowlist row applies to: the row has not expired nor been removed, its detector globs match
-- (none = all), and its kind matches the finding:
--   tenant       the finding's tenant, or a tenant principal
--   credential   a credential principal
--   user         a user principal
--   provider_key a provider_key principal
--   asn          an asn principal ("AS64500" and "64500" alike)
--   ip           an ip principal (the same address in any spelling)
--   cidr         an ip or cidr principal inside the block (IPv4 as IPv4-mapped IPv6)
--   user_agent   a substring of the user agent of one of the finding's sample requests
-- The first matching row by file and line (then entries added with the CLI, oldest first) is
-- named: `allowlist <source>:<line> <kind>=<value>: <reason>` for a file's row, `allowlist
-- entry <entry id> <kind>=<value>: <reason> (<who>)` for one added with the CLI.
WITH allow AS (
    SELECT kind, value, coalesce(detectors, []) AS detectors, source_id,
           coalesce(line_no, epoch_us(added_at)) AS line_no,
           CASE WHEN source_id IS NULL
                THEN 'allowlist entry ' || left(coalesce(entry_id, '?'), 12) || ' ' || kind || '='
                     || value || ': ' || coalesce(reason, '') || ' ('
                     || coalesce(added_by, 'unknown') || ')'
                ELSE 'allowlist ' || CAST(source_id AS VARCHAR) || ':'
                     || coalesce(CAST(line_no AS VARCHAR), '?') || ' ' || kind || '=' || value
                     || ': ' || coalesce(reason, '')
           END AS label
    FROM allowlist
    WHERE (expires IS NULL OR expires > now()) AND removed_at IS NULL
),
-- an address or block as (number, prefix length in IPv4-mapped-IPv6 bits; 128 = one address)
nets AS (
    SELECT *, ip_num(split_part(value, '/', 1)) AS a_net, net_bits(value) AS a_bits
    FROM allow WHERE kind = 'cidr'
),
addressed AS (
    SELECT finding_id, detector_id, ip_num(split_part(principal_id, '/', 1)) AS f_net,
           net_bits(principal_id) AS f_bits
    FROM _run_new WHERE principal_type IN ('ip', 'cidr')
),
agents AS (
    SELECT DISTINCT s.finding_id, s.detector_id, r.user_agent
    FROM (SELECT finding_id, detector_id,
                 unnest(sample_request_ids[1:$max_samples]) AS request_id
          FROM _run_new) s
    JOIN requests r USING (request_id)
    WHERE r.user_agent IS NOT NULL
),
hits AS (
    SELECT n.finding_id, n.detector_id, a.* FROM _run_new n
    JOIN allow a ON a.kind = 'tenant' AND a.value = n.tenant_id
    UNION ALL
    SELECT n.finding_id, n.detector_id, a.* FROM _run_new n
    JOIN allow a ON a.kind = 'tenant' AND n.principal_type = 'tenant'
        AND a.value = n.principal_id
    UNION ALL
    SELECT n.finding_id, n.detector_id, a.* FROM _run_new n
    JOIN allow a ON a.kind = 'credential' AND n.principal_type = 'credential'
        AND a.value = n.principal_id
    UNION ALL
    SELECT n.finding_id, n.detector_id, a.* FROM _run_new n
    JOIN allow a ON a.kind IN ('user', 'provider_key') AND n.principal_type = a.kind
        AND a.value = n.principal_id
    UNION ALL
    SELECT n.finding_id, n.detector_id, a.* FROM _run_new n
    JOIN allow a ON a.kind = 'asn' AND n.principal_type = 'asn'
        AND a.value = regexp_replace(upper(n.principal_id), '^AS', '')
    UNION ALL
    SELECT n.finding_id, n.detector_id, a.* FROM _run_new n
    JOIN allow a ON a.kind = 'ip' AND n.principal_type = 'ip'
        AND (ip_num(a.value) = ip_num(n.principal_id) OR a.value = lower(n.principal_id))
    UNION ALL
    -- the finding's address or block lies inside the allowlisted block
    SELECT f.finding_id, f.detector_id, a.* EXCLUDE (a_net, a_bits) FROM addressed f
    JOIN nets a
      ON a.a_bits BETWEEN 0 AND 128 AND f.f_bits BETWEEN a.a_bits AND 128
     AND (a.a_bits = 0 OR (f.f_net >> CAST(128 - a.a_bits AS UHUGEINT))
                          = (a.a_net >> CAST(128 - a.a_bits AS UHUGEINT)))
    UNION ALL
    SELECT u.finding_id, u.detector_id, a.* FROM agents u
    JOIN allow a ON a.kind = 'user_agent' AND contains(u.user_agent, a.value)
)
SELECT finding_id, first(label ORDER BY source_id NULLS LAST, line_no, kind, value) AS suppressed_by
FROM hits
WHERE len(detectors) = 0
   OR EXISTS (SELECT 1 FROM unnest(detectors) AS g(pattern) WHERE detector_id GLOB g.pattern)
GROUP BY finding_id
