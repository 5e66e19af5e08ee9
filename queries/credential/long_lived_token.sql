-- credential.long_lived_token: JWT credentials whose tokens live longer than the policy allows
-- (exp - iat over $max_lifetime_minutes, or no exp at all) or that were signed with a key id
-- or issuer listed in retired_keys and used after its retirement (plus a grace period for the
-- gateway's key cache). Requests the gateway refused with 401 / 403 are not counted: a token
-- refused is the policy working. One finding per credential.
WITH scoped AS (
    SELECT source_id, line_no, ts, request_id, tenant_id, credential_id, token_id, issuer,
           key_id, token_iat, token_exp, est_cost_usd,
           coalesce(status IN (401, 403), false) AS refused,
           -- without iat, the life left at use is a lower bound of the lifetime
           epoch(token_exp - coalesce(token_iat, ts)) AS lifetime_s,
           token_iat IS NULL AND token_exp IS NOT NULL AS lifetime_from_use
    FROM requests
    WHERE credential_type = 'jwt' AND credential_id IS NOT NULL
      AND ($since IS NULL OR ts >= $since)
      AND ($until IS NULL OR ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
),
retired_use AS (
    -- each request signed by a retired key or issuer after it was retired: the earliest
    -- retirement it falls under (a kid row and an issuer row may both match)
    SELECT s.source_id, s.line_no,
           min(k.retired_at) AS retired_at,
           arg_min(k.key_id, k.retired_at) AS retired_key_id,
           arg_min(k.issuer, k.retired_at) AS retired_issuer,
           arg_min(k.reason, k.retired_at) AS retired_reason
    FROM scoped s
    JOIN retired_keys k
      ON (k.key_id IS NULL OR k.key_id = s.key_id)
     AND (k.issuer IS NULL OR k.issuer = s.issuer)
     AND s.ts > k.retired_at + to_minutes(CAST($grace_minutes AS BIGINT))
    GROUP BY s.source_id, s.line_no
),
flagged AS (
    SELECT s.*, r.retired_at, r.retired_key_id, r.retired_issuer, r.retired_reason,
           s.token_exp IS NULL AS no_exp,
           coalesce(s.lifetime_s > 60 * $max_lifetime_minutes, false) AS long_lived,
           r.retired_at IS NOT NULL AS retired,
           coalesce(s.token_iat > r.retired_at, false) AS issued_after_retirement
    FROM scoped s
    LEFT JOIN retired_use r USING (source_id, line_no)
),
per_credential AS (
    SELECT credential_id,
           arg_min(tenant_id, ts) FILTER (WHERE hit) AS tenant_id,
           min(ts) FILTER (WHERE hit) AS first_seen,
           max(ts) FILTER (WHERE hit) AS last_seen,
           count(*) FILTER (WHERE hit) AS requests,
           count(*) FILTER (WHERE hit AND long_lived) AS long_lived_requests,
           count(*) FILTER (WHERE hit AND no_exp) AS no_exp_requests,
           count(*) FILTER (WHERE hit AND retired) AS retired_key_requests,
           count(*) FILTER (WHERE hit AND issued_after_retirement) AS issued_after_retirement,
           count(*) FILTER (WHERE hit AND long_lived AND lifetime_from_use) AS lifetime_from_use,
           count(*) FILTER (WHERE refused AND (long_lived OR no_exp OR retired)) AS refused,
           count(DISTINCT token_id) FILTER (WHERE hit) AS token_ids,
           max(lifetime_s) FILTER (WHERE hit) AS max_lifetime_s,
           min(retired_at) FILTER (WHERE hit) AS retired_at,
           arg_min(retired_key_id, retired_at) FILTER (WHERE hit AND retired) AS retired_key_id,
           arg_min(retired_issuer, retired_at) FILTER (WHERE hit AND retired) AS retired_issuer,
           arg_min(retired_reason, retired_at) FILTER (WHERE hit AND retired) AS retired_reason,
           min(ts) FILTER (WHERE hit AND retired) AS first_retired_use,
           list_sort(list(DISTINCT issuer) FILTER (WHERE hit AND issuer IS NOT NULL)) AS issuers,
           list_sort(list(DISTINCT key_id) FILTER (WHERE hit AND key_id IS NOT NULL)) AS key_ids,
           min_by(request_id, (ts, request_id), 20)
               FILTER (WHERE hit AND request_id IS NOT NULL) AS request_ids,
           sum(est_cost_usd) FILTER (WHERE hit) AS est_cost_usd
    FROM (SELECT *, NOT refused AND (long_lived OR no_exp OR retired) AS hit FROM flagged)
    GROUP BY credential_id
    HAVING count(*) FILTER (WHERE hit) >= 1
),
described AS (
    SELECT *,
           CASE WHEN max_lifetime_s >= 7200 THEN round(max_lifetime_s / 3600, 1) || ' h'
                ELSE round(max_lifetime_s / 60, 1) || ' min' END AS lifetime_text
    FROM per_credential
)
SELECT
    'credential' AS principal_type,
    credential_id AS principal_id,
    tenant_id,
    first_seen AS window_start,
    last_seen AS window_end,
    round(least(100,
        CASE WHEN retired_key_requests > 0 THEN 70 ELSE 40 END
        + 5 * log10(requests)
        + CASE WHEN no_exp_requests > 0 THEN 15
               WHEN long_lived_requests > 0
               THEN least(15, 7.5 * log10(max_lifetime_s
                                          / greatest(60 * $max_lifetime_minutes, 1)))
               ELSE 0 END
        + CASE WHEN issued_after_retirement > 0 THEN 10 ELSE 0 END), 1)::DOUBLE AS score,
    'JWT credential ' || credential_id || ' made ' || requests
        || ' accepted request(s) against the token policy: '
        || concat_ws('; ',
            CASE WHEN long_lived_requests > 0
                 THEN long_lived_requests || ' with a token living up to ' || lifetime_text
                      || ' (limit ' || $max_lifetime_minutes || ' min)' END,
            CASE WHEN no_exp_requests > 0
                 THEN no_exp_requests || ' with a token without exp' END,
            CASE WHEN retired_key_requests > 0
                 THEN retired_key_requests || ' signed by '
                      || CASE WHEN retired_key_id IS NOT NULL
                              THEN 'key ' || retired_key_id
                              ELSE 'issuer ' || retired_issuer END
                      || ' after its retirement at '
                      || strftime(retired_at, '%Y-%m-%d %H:%M UTC')
                      || CASE WHEN issued_after_retirement > 0
                              THEN ' (' || issued_after_retirement
                                   || ' issued after it)'
                              ELSE '' END END)
        || '.' AS summary,
    struct_pack(
        requests := requests,
        lifetime_limit_minutes := $max_lifetime_minutes,
        max_lifetime_seconds := max_lifetime_s,
        long_lived_requests := long_lived_requests,
        lifetime_from_use := lifetime_from_use,
        no_exp_requests := no_exp_requests,
        retired_key_requests := retired_key_requests,
        retired_key_id := retired_key_id,
        retired_issuer := retired_issuer,
        retired_at := retired_at,
        retired_reason := retired_reason,
        first_use_after_retirement := first_retired_use,
        issued_after_retirement := issued_after_retirement,
        grace_minutes := CAST($grace_minutes AS BIGINT),
        refused_requests := refused,
        token_ids := token_ids,
        issuers := coalesce(issuers, []),
        key_ids := coalesce(key_ids, [])
    ) AS evidence,
    coalesce(request_ids[1:20], []) AS sample_request_ids,
    est_cost_usd,
    CASE WHEN retired_key_requests > 0 THEN 'high' ELSE 'medium' END AS severity
FROM described
ORDER BY score DESC, principal_id
