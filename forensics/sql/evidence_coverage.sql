-- Silent spans of each log format inside a period, judged against the format's own rhythm.
--
-- $start, $end: the period [start, end). Hours are whole UTC hours; the judged hours are the
-- period's whole hours inside the case's span (first to last hour with a request of any
-- format): beyond it no log speaks, which the report says once for the whole period.
--
-- A format's rhythm is learnt over its live span (its first to its last hour with a record,
-- anywhere in the case), per class (weekday or weekend hours) and per slot (class and hour of
-- day). Each silent hour (no record of the format) weighs how unlikely its silence is, as the
-- larger of two measures:
--   presence  -ln(1 - p), p the slot's share of hours with a record, shrunk towards its
--             class's share with the weight of two hours: (present + 2 p_class) / (seen + 2)
--   volume    the lower-quartile count of records per hour (zeros included) of the slot, or of
--             the class while the slot has fewer than 4 hours, capped at 50: about the
--             log-odds of an empty hour for a Poisson source that busy. A source silent in a
--             quarter of its hours or more gets nothing from this measure, so bursty and quiet
--             sources are judged by presence alone
-- A class the live span never saw (a one-week case asked about its weekend) borrows the
-- format's all-hours figures, and the span says its rhythm there is unknown.
-- A silent span is a run of silent hours; its surprise is the sum of its hours' weights, and
-- spans of at least ln(1000) are returned: a quiet weekend of a weekday source, or an empty
-- night hour of a small proxy, is not; a busy gateway silent for an hour, a weekday afternoon
-- gone quiet, or a log that stops while others go on, is.
WITH
hourly AS (
    SELECT s.format, time_bucket(INTERVAL 1 HOUR, r.ts) AS h, count(*) AS n
    FROM requests r JOIN sources s USING (source_id)
    GROUP BY ALL
),
case_span AS (SELECT min(h) AS first_h, max(h) AS last_h FROM hourly),
judged AS (
    SELECT greatest(CASE WHEN time_bucket(INTERVAL 1 HOUR, $start) = $start THEN $start
                         ELSE time_bucket(INTERVAL 1 HOUR, $start) + INTERVAL 1 HOUR END,
                    first_h) AS lo,
           least(time_bucket(INTERVAL 1 HOUR, $end) - INTERVAL 1 HOUR, last_h) AS hi
    FROM case_span
),
live AS (SELECT format, min(h) AS first_h, max(h) AS last_h FROM hourly GROUP BY format),
live_hours AS (
    SELECT l.format, l.h, isodow(l.h) >= 6 AS weekend, hour(l.h) AS hod, coalesce(y.n, 0) AS n
    FROM (SELECT format, unnest(generate_series(first_h, last_h, INTERVAL 1 HOUR)) AS h
          FROM live) l
    LEFT JOIN hourly y USING (format, h)
),
overall AS (
    SELECT format, avg(CAST(n > 0 AS INTEGER)) AS p, quantile_disc(n, 0.25) AS q
    FROM live_hours GROUP BY format
),
class AS (
    SELECT format, weekend, avg(CAST(n > 0 AS INTEGER)) AS p, quantile_disc(n, 0.25) AS q
    FROM live_hours GROUP BY ALL
),
slot AS (
    SELECT format, weekend, hod, count(*) AS seen, count(*) FILTER (WHERE n > 0) AS present,
           quantile_disc(n, 0.25) AS q
    FROM live_hours GROUP BY ALL
),
judged_hours AS (
    SELECT f.format, unnest(generate_series(j.lo, j.hi, INTERVAL 1 HOUR)) AS h
    FROM live f, judged j
    WHERE j.lo <= j.hi
),
silent AS (
    SELECT g.format, g.h,
           c.p IS NULL AS unknown,
           coalesce(c.p, o.p) AS p_class,
           CASE WHEN s.seen >= 4 THEN s.q ELSE coalesce(c.q, o.q) END AS q_volume,
           coalesce(s.seen, 0) AS seen,
           coalesce(s.present, 0) AS present,
           g.h - to_hours(row_number() OVER (PARTITION BY g.format ORDER BY g.h)) AS grp
    FROM judged_hours g
    JOIN overall o USING (format)
    LEFT JOIN hourly y USING (format, h)
    LEFT JOIN class c ON c.format = g.format AND c.weekend = (isodow(g.h) >= 6)
    LEFT JOIN slot s ON s.format = g.format AND s.weekend = (isodow(g.h) >= 6)
                    AND s.hod = hour(g.h)
    WHERE y.h IS NULL
),
weighed AS (
    SELECT *,
           greatest(-ln(1 - least((present + 2 * p_class) / (seen + 2), 0.999)),
                    least(q_volume, 50)) AS weight
    FROM silent
)
SELECT w.format,
       min(w.h) AS gap_start,
       max(w.h) + INTERVAL 1 HOUR AS gap_end,
       count(*) AS hours,
       round(sum(w.weight), 1) AS surprise,
       max(CASE WHEN w.unknown THEN CASE WHEN isodow(w.h) >= 6 THEN 'weekend' ELSE 'weekday' END
           END) AS unknown_rhythm,
       min(w.h) = any_value(j.lo) AS from_start,
       max(w.h) = any_value(j.hi) AS to_end
FROM weighed w, judged j
GROUP BY w.format, w.grp
HAVING sum(w.weight) >= ln(1000)
ORDER BY gap_start, w.format
