-- The requests of some findings between two times: each request once (request_row), of any of
-- the principals of the findings $ids, from $start to $end; every column of
-- request_principals. An incident's evidence bundle and its page's quota section read these,
-- over the incident's window, as incidents.sql costs them.
SELECT DISTINCT ON (q.request_row) q.*
FROM findings f
JOIN request_principals q
  ON q.principal_type = f.principal_type AND q.principal_id = f.principal_id
 AND q.ts BETWEEN $start AND $end
WHERE list_contains($ids, f.finding_id)
