"""The requests of the current findings, one definition for the verdict (verdict.py) and the
fit that leaves them out (suggest.py)."""

# Each request inside a current finding's window on the finding's principal, once per
# detector; `condition` narrows the findings or the requests.
FLAGGED = """
SELECT DISTINCT f.detector_id, q.request_row
FROM findings f
JOIN request_principals q
  ON q.principal_type = f.principal_type AND q.principal_id = f.principal_id
 AND q.ts BETWEEN f.window_start AND f.window_end
WHERE NOT coalesce(f.suppressed, false) AND f.superseded_by IS NULL AND ({condition})"""
