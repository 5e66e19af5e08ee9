-- recon.endpoint_enumeration: a client walking the API surface. In one fixed window of
-- window_hours it asked for many distinct paths (or model names) that were not there (404,
-- 405, 410, 501, or 400 other than a content filter), or for the paths scanners try first
-- (secret and VCS files, admin panels, API descriptions, the model list), and most of its
-- requests were turned away (those statuses, or 401 / 403). The client is the credential,
-- else the client address. Path segments that are object ids (file-…, batch_…, UUIDs, long
-- hex) count as one path, so a client polling for expired files is not a walk.
-- Only refused and sensitive-path requests are read from `requests`; the window's total
-- requests and distinct targets come from the shared `principal_hours` features.
WITH sensitive_paths AS (
    -- The distinct paths (other than AI endpoints) that scanners ask for first, matched once
    -- per distinct path with %2e and %2f decoded: secret and VCS files, admin and debug
    -- consoles, known-vulnerable editors, API descriptions, model lists and billing probes.
    SELECT unnest(list_filter(list(DISTINCT path), lambda p: regexp_matches(
               replace(replace(lower(p), '%2e', '.'), '%2f', '/'),
               '\.env($|[/.~_-])|(^|/)(\.?aws|s3)/(credentials|config)'
               || '|(^|/)\.(git|svn|hg|aws|ssh|docker|npmrc|htpasswd|htaccess|ds_store)'
               || '($|[/.~_-])'
               || '|(^|/)(wp-config|config|settings|secrets?|credentials)'
               || '\.(php|json|ya?ml|js|ini|env|bak)$'
               || '|\.(sql|bak|swp)$|etc/passwd|win\.ini|\.\./'
               || '|(^|/)(admin|administrator|wp-admin|wp-login\.php|admin\.php|xmlrpc\.php'
               || '|phpmyadmin|pma|adminer(\.php)?|phpinfo\.php|server-status|server-info'
               || '|actuator|jmx-console|manager/html|_profiler|console|cgi-bin'
               || '|fckeditor|ckfinder|kcfinder|elfinder)(/|$)'
               || '|(^|/)(swagger(-ui)?(\.json|\.ya?ml|\.html)?|openapi(\.json|\.ya?ml)?'
               || '|api-docs|redoc|graphql|graphiql)(/|$)|^/(api/)?docs/?$'
               || '|(^|/)v1/(models|engines)(/|$)|(^|/)api/(tags|ps)$'
               || '|(^|/)openai/deployments/?$|(^|/)dashboard/billing(/|$)'))) AS path
    FROM requests
    WHERE coalesce(endpoint, 'other') = 'other' AND path IS NOT NULL
      AND ($since IS NULL OR ts >= $since)
      AND ($until IS NULL OR ts <= $until)
      AND ($tenant IS NULL OR tenant_id = $tenant)
),
marked AS (
    -- the refused and the sensitive-path requests, by client
    SELECT * FROM (
        SELECT ts, request_id, tenant_id, method, status, model, user_agent, path,
               CASE WHEN credential_id IS NOT NULL THEN 'credential' ELSE 'ip' END
                   AS principal_type,
               coalesce(credential_id, client_ip) AS principal_id,
               coalesce(status IN (400, 401, 403, 404, 405, 410, 501)
                        AND coalesce(error_type, '') <> 'content_filter', false) AS refused,
               coalesce(status IN (404, 405, 410, 501)
                        OR (status = 400 AND coalesce(error_type, '') <> 'content_filter'),
                        false) AS missing,
               coalesce(path IN (SELECT path FROM sensitive_paths), false) AS sensitive
        FROM requests
        WHERE ts IS NOT NULL AND coalesce(credential_id, client_ip) IS NOT NULL
          AND ($since IS NULL OR ts >= $since)
          AND ($until IS NULL OR ts <= $until)
          AND ($tenant IS NULL OR tenant_id = $tenant)
    )
    WHERE refused OR sensitive
),
shapes AS (
    -- each distinct path once, its object-id segments written {id}
    SELECT path,
           array_to_string(list_transform(string_split(path, '/'),
               lambda s: CASE WHEN regexp_full_match(s,
                   '[A-Za-z]{2,12}[-_][A-Za-z0-9]{12,}|[0-9A-Fa-f]{16,}'
                   || '|[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}')
                              THEN '{id}' ELSE s END), '/') AS shape
    FROM (SELECT DISTINCT path FROM marked WHERE path IS NOT NULL)
),
probes AS (
    SELECT m.*, coalesce(s.shape, '') AS shape,
           time_bucket(to_hours(CAST($window_hours AS BIGINT)), m.ts) AS bucket,
           coalesce(s.shape, '') || coalesce(' model=' || m.model, '') AS target
    FROM marked m
    LEFT JOIN shapes s USING (path)
),
targets AS (
    -- one row per client, window and path (or path and model)
    SELECT principal_type, principal_id, bucket, shape, target,
           arg_min(tenant_id, ts) AS tenant_id,
           min(ts) AS first_seen,
           max(ts) AS last_seen,
           count(*) FILTER (WHERE refused) AS refused_requests,
           bool_or(missing) AS missing,
           bool_or(sensitive) AS sensitive
    FROM probes
    GROUP BY principal_type, principal_id, bucket, shape, target
),
windows AS (
    SELECT principal_type, principal_id, bucket,
           arg_min(tenant_id, first_seen) AS tenant_id,
           min(first_seen) AS first_seen,
           max(last_seen) AS last_seen,
           CAST(sum(refused_requests) AS BIGINT) AS refused_requests,
           count(*) FILTER (WHERE missing) AS missing_targets,
           count(DISTINCT shape) FILTER (WHERE missing) AS missing_paths,
           count(DISTINCT shape) FILTER (WHERE sensitive) AS sensitive_paths
    FROM targets
    GROUP BY principal_type, principal_id, bucket
    HAVING count(*) FILTER (WHERE missing) >= $min_missing_paths
        OR count(DISTINCT shape) FILTER (WHERE sensitive) >= $min_sensitive_paths
),
totals AS (
    -- all the window's requests of those clients, and the distinct paths (or AI endpoints)
    SELECT w.principal_type, w.principal_id, w.bucket,
           sum(p.requests) AS requests,
           count(DISTINCT p.target) AS distinct_paths,
           sum(p.est_cost_usd) AS est_cost_usd
    FROM windows w
    JOIN (SELECT *, time_bucket(to_hours(CAST($window_hours AS BIGINT)), hour) AS bucket
          FROM principal_hours
          WHERE principal_id IN (SELECT principal_id FROM windows)
            AND ($since IS NULL OR last_ts >= $since)
            AND ($until IS NULL OR first_ts <= $until)
            AND ($tenant IS NULL OR tenant_id = $tenant)) p
      ON p.principal_type = w.principal_type AND p.principal_id = w.principal_id
     AND p.bucket = w.bucket
    GROUP BY ALL
),
hits AS (
    SELECT w.*, t.distinct_paths, t.est_cost_usd,
           greatest(t.requests, w.refused_requests) AS requests,
           w.refused_requests / greatest(t.requests, w.refused_requests) AS refused_share
    FROM windows w
    JOIN totals t USING (principal_type, principal_id, bucket)
    WHERE w.refused_requests >= $min_refused_share * greatest(t.requests, w.refused_requests)
),
details AS (
    -- the evidence lists, for the windows that are findings only
    SELECT principal_type, principal_id, bucket,
           list(DISTINCT shape ORDER BY shape) FILTER (WHERE missing) AS missing_list,
           list(DISTINCT model ORDER BY model) FILTER (WHERE missing AND model IS NOT NULL)
               AS model_list,
           list(DISTINCT shape ORDER BY shape) FILTER (WHERE sensitive) AS sensitive_list,
           list(DISTINCT shape ORDER BY shape) FILTER (WHERE sensitive AND status < 400)
               AS answered_list,
           histogram(status) AS statuses,
           histogram(method) AS methods,
           min_by(request_id, (ts, request_id), 20)
               FILTER (WHERE (missing OR sensitive) AND request_id IS NOT NULL) AS request_ids
    FROM probes
    WHERE (principal_type, principal_id, bucket) IN
          (SELECT principal_type, principal_id, bucket FROM hits)
    GROUP BY principal_type, principal_id, bucket
),
agents AS (
    SELECT principal_type, principal_id, bucket,
           list(user_agent ORDER BY n DESC, user_agent)[1:3] AS top_agents
    FROM (SELECT principal_type, principal_id, bucket, user_agent, count(*) AS n
          FROM probes
          WHERE user_agent IS NOT NULL
            AND (principal_type, principal_id, bucket) IN
                (SELECT principal_type, principal_id, bucket FROM hits)
          GROUP BY ALL)
    GROUP BY ALL
)
SELECT
    principal_type,
    principal_id,
    tenant_id,
    first_seen AS window_start,
    last_seen AS window_end,
    round(least(100, 20 + 30 * refused_share
                     + 12 * log2(1 + missing_targets / $min_missing_paths)
                     + 4 * sensitive_paths), 1)::DOUBLE AS score,
    CASE WHEN missing_targets >= $medium_missing_paths
              OR sensitive_paths >= $medium_sensitive_paths THEN 'medium' ELSE 'low' END
        AS severity,
    format('{} {} asked for {} missing paths or models and {} sensitive paths{} within {} hours;'
           || ' {} of its {} requests ({}%) were refused.',
           principal_type, principal_id, missing_targets, sensitive_paths,
           CASE WHEN sensitive_paths > 0
                THEN ' (' || array_to_string(sensitive_list[1:2], ', ')
                     || CASE WHEN sensitive_paths > 2 THEN ', …' ELSE '' END || ')'
                ELSE '' END,
           CAST($window_hours AS BIGINT), refused_requests, requests,
           round(100 * refused_share, 1)) AS summary,
    struct_pack(
        requests := requests,
        refused_requests := refused_requests,
        refused_share := round(refused_share, 3)::DOUBLE,
        distinct_paths := distinct_paths,
        missing_targets := missing_targets,
        missing_paths := missing_paths,
        missing_path_sample := coalesce(missing_list, [])[1:15],
        refused_models := coalesce(model_list, [])[1:15],
        sensitive_paths := sensitive_paths,
        sensitive_path_sample := coalesce(sensitive_list, [])[1:15],
        sensitive_answered := coalesce(answered_list, [])[1:10],
        statuses := statuses,
        methods := methods,
        user_agents := coalesce(top_agents, []),
        bucket_start := bucket,
        window_hours := CAST($window_hours AS BIGINT)
    ) AS evidence,
    coalesce(request_ids[1:20], []) AS sample_request_ids,
    est_cost_usd
FROM hits
JOIN details USING (principal_type, principal_id, bucket)
LEFT JOIN agents USING (principal_type, principal_id, bucket)
ORDER BY score DESC, principal_id, window_start
