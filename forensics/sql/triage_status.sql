-- The triage status of every finding and incident: the latest `triage` entry about it, else
-- 'open'. Finding ids hash their run and incidents are rebuilt on every run, so an entry made
-- on one run's finding or incident also speaks for the later ones it describes:
--   finding    the same detector on the same principal, windows overlapping
--   incident   the same principal (as incidents group it), first_seen..last_seen overlapping
-- and not running past the end of the window the decision saw: activity after it is new, so
-- the finding or incident is open again (its history still lists the decision).
-- `triage_entries` counts the entries that matched (the history the reports list).
CREATE OR REPLACE {kind} VIEW finding_triage AS
SELECT f.finding_id,
       coalesce(max_by(t.status, (t.recorded_at, t.entry_id)), 'open') AS triage_status,
       max_by(t.reason, (t.recorded_at, t.entry_id)) AS triage_reason,
       max_by(t.recorded_by, (t.recorded_at, t.entry_id)) AS triage_by,
       max(t.recorded_at) AS triage_at,
       count(t.entry_id) AS triage_entries
FROM findings f
LEFT JOIN triage t
  ON t.target_type = 'finding' AND t.detector_id = f.detector_id
 AND t.principal_type = f.principal_type AND t.principal_id = f.principal_id
 AND t.window_start <= f.window_end AND f.window_start <= t.window_end
 AND f.window_end <= t.window_end
GROUP BY f.finding_id;

CREATE OR REPLACE {kind} VIEW incident_triage AS
SELECT i.incident_id,
       coalesce(max_by(t.status, (t.recorded_at, t.entry_id)), 'open') AS triage_status,
       max_by(t.reason, (t.recorded_at, t.entry_id)) AS triage_reason,
       max_by(t.recorded_by, (t.recorded_at, t.entry_id)) AS triage_by,
       max(t.recorded_at) AS triage_at,
       count(t.entry_id) AS triage_entries
FROM incidents i
LEFT JOIN triage t
  ON t.target_type = 'incident'
 AND t.principal_type = i.principal_type AND t.principal_id = i.principal_id
 AND t.window_start <= i.last_seen AND i.first_seen <= t.window_end
 AND i.last_seen <= t.window_end
GROUP BY i.incident_id;
