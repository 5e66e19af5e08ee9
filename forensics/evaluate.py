"""Scoring a run's findings against labels (`forensics evaluate`).

A label (one row of labels.csv, as `forensics synth` writes it) says: detector D must report
principal P (type and id as the case stores them) around the window [start, end]. Against the
findings of one run:

* a label is **found** when a finding of D on P overlaps its window, give or take `slack`;
  otherwise it is **missed**;
* a finding is **true** when it matches a label of its own detector;
* a finding at `min_severity` or above is **false** when no scenario covers its principal: no
  label names it, and it is not a tenant, credential or user finding inside a tenant that a
  label names (a credential rolls up to its tenant, so the tenant of a scenario is covered);
* other findings (below `min_severity`, or on covered principals by another detector) are
  counted as **incidental** and judged neither way.

Per detector: precision = true / (true + false), recall = found / labels. Matching is one SQL
join over the labels (registered as an Arrow table) and the run's findings.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from forensics.case.severity import NAMES as SEVERITY_NAMES
from forensics.errors import ForensicsError, InputError, UsageError
from forensics.times import coerce_time

LABEL_COLUMNS = (
    "scenario",
    "detector_id",
    "principal_type",
    "principal_id",
    "tenant_id",
    "window_start",
    "window_end",
    "note",
)
_REQUIRED = ("detector_id", "principal_type", "principal_id", "window_start", "window_end")


@dataclass(frozen=True)
class Label:
    line: int
    scenario: str
    detector_id: str
    principal_type: str
    principal_id: str
    tenant_id: str | None
    window_start: dt.datetime
    window_end: dt.datetime
    note: str = ""


@dataclass
class DetectorScore:
    detector_id: str
    labels: int = 0
    found: int = 0
    true_findings: int = 0
    false_findings: int = 0
    incidental: int = 0

    @property
    def missed(self) -> int:
        return self.labels - self.found

    @property
    def precision(self) -> float | None:
        judged = self.true_findings + self.false_findings
        return self.true_findings / judged if judged else None

    @property
    def recall(self) -> float | None:
        return self.found / self.labels if self.labels else None


@dataclass
class Evaluation:
    run_id: str
    min_severity: str
    scores: dict[str, DetectorScore] = field(default_factory=dict)
    missed: list[Label] = field(default_factory=list)
    false_positives: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> DetectorScore:
        t = DetectorScore("(all)")
        for s in self.scores.values():
            t.labels += s.labels
            t.found += s.found
            t.true_findings += s.true_findings
            t.false_findings += s.false_findings
            t.incidental += s.incidental
        return t


def _time(path: Path, line: int, name: str, text: str) -> dt.datetime:
    try:
        return coerce_time(text, name)
    except UsageError as e:
        raise InputError(path, str(e), line=line, hint=e.hint) from None


def read_labels(path: Path) -> list[Label]:
    """The labels of a labels.csv; a bad row is an error naming the file and line."""
    try:
        f = path.open(encoding="utf-8-sig", newline="")  # a spreadsheet's BOM is not a column
    except OSError as e:
        raise InputError(path, e.strerror or str(e)) from None
    labels: list[Label] = []
    with f:
        rows = csv.reader(f)
        header = [h.strip() for h in next(rows, [])]
        lacking = [c for c in _REQUIRED if c not in header]
        if lacking:
            raise InputError(
                path,
                f"not a labels file: no column {', '.join(lacking)}",
                line=1,
                hint="columns: " + ",".join(LABEL_COLUMNS),
            )
        for row in rows:
            line = rows.line_num  # the physical line where the row ends (notes may span lines)
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise InputError(
                    path, f"{len(row)} fields, the header has {len(header)}", line=line
                )
            cells = dict(zip(header, (c.strip() for c in row), strict=True))
            for name in _REQUIRED:
                if not cells[name]:
                    raise InputError(path, f"{name} is empty", line=line)
            start = _time(path, line, "window_start", cells["window_start"])
            end = _time(path, line, "window_end", cells["window_end"])
            if end < start:
                raise InputError(path, "window_end is before window_start", line=line)
            labels.append(
                Label(
                    line=line,
                    scenario=cells.get("scenario", ""),
                    detector_id=cells["detector_id"],
                    principal_type=cells["principal_type"],
                    principal_id=cells["principal_id"],
                    tenant_id=cells.get("tenant_id") or None,
                    window_start=start,
                    window_end=end,
                    note=cells.get("note", ""),
                )
            )
    if not labels:
        raise InputError(path, "no labels")
    return labels


def latest_run(con: duckdb.DuckDBPyConnection) -> str:
    row = con.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").fetchall()
    if not row:
        raise ForensicsError("the case has no detection run", hint="run `forensics detect` first")
    return str(row[0][0])


_MATCH = """
WITH f AS (
    SELECT finding_id, detector_id, severity, principal_type, principal_id, tenant_id,
           window_start, window_end, summary,
           severity >= CAST($min AS severity) AS serious  -- the case's ordered ENUM
    FROM findings WHERE run_id = $run AND NOT suppressed
),
own AS (  -- label x finding of its own detector, principal and (slack-widened) window
    SELECT l.line, f.finding_id
    FROM eval_labels l JOIN f
      ON f.detector_id = l.detector_id AND f.principal_type = l.principal_type
     AND f.principal_id = l.principal_id
     AND f.window_start <= l.window_end + $slack AND f.window_end >= l.window_start - $slack
),
covered AS (
    SELECT f.finding_id
    FROM f
    WHERE EXISTS (SELECT 1 FROM eval_labels l
                  WHERE (l.principal_type = f.principal_type AND l.principal_id = f.principal_id)
                     OR (f.principal_type IN ('tenant', 'credential', 'user')
                         AND l.tenant_id IS NOT NULL AND l.tenant_id = f.tenant_id))
)
SELECT f.*, f.finding_id IN (SELECT finding_id FROM own) AS is_true,
       f.finding_id IN (SELECT finding_id FROM covered) AS is_covered
FROM f ORDER BY f.detector_id, f.window_start, f.principal_id
"""


def labels_table(labels: list[Label]) -> pa.Table:
    """The labels as an Arrow table for DuckDB to join: line, scenario, detector_id, principal,
    tenant_id, window (UTC)."""
    return pa.table(
        {
            "line": [lb.line for lb in labels],
            "scenario": [lb.scenario for lb in labels],
            "detector_id": [lb.detector_id for lb in labels],
            "principal_type": [lb.principal_type for lb in labels],
            "principal_id": [lb.principal_id for lb in labels],
            "tenant_id": [lb.tenant_id for lb in labels],
            "window_start": pa.array([lb.window_start for lb in labels], pa.timestamp("us", "UTC")),
            "window_end": pa.array([lb.window_end for lb in labels], pa.timestamp("us", "UTC")),
        }
    )


def evaluate(
    con: duckdb.DuckDBPyConnection,
    labels: list[Label],
    *,
    run_id: str | None = None,
    min_severity: str = "medium",
    slack: dt.timedelta = dt.timedelta(hours=24),
) -> Evaluation:
    """Score the findings of `run_id` (default: the latest run) against `labels`."""
    if min_severity not in SEVERITY_NAMES:
        raise ForensicsError(
            f"unknown severity {min_severity!r} (one of {', '.join(SEVERITY_NAMES)})"
        )
    run = run_id or latest_run(con)
    known = con.execute("SELECT 1 FROM runs WHERE run_id = $r", {"r": run}).fetchall()
    if not known:
        raise ForensicsError(f"no run {run} in the case", hint="see `forensics sql` on runs")
    con.register("eval_labels", labels_table(labels))
    try:
        params = {
            "run": run,
            "min": min_severity,
            "slack": slack,
        }
        cur = con.execute(_MATCH, params)
        names = [d[0] for d in cur.description or ()]
        findings = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        found_lines = {
            int(r[0])
            for r in con.execute(
                "SELECT DISTINCT l.line FROM eval_labels l JOIN findings f"
                " ON f.run_id = $run AND NOT f.suppressed AND f.detector_id = l.detector_id"
                " AND f.principal_type = l.principal_type AND f.principal_id = l.principal_id"
                " AND f.window_start <= l.window_end + $slack"
                " AND f.window_end >= l.window_start - $slack",
                {"run": run, "slack": slack},
            ).fetchall()
        }
    finally:
        con.unregister("eval_labels")
    result = Evaluation(run_id=run, min_severity=min_severity)
    for lb in labels:
        score = result.scores.setdefault(lb.detector_id, DetectorScore(lb.detector_id))
        score.labels += 1
        if lb.line in found_lines:
            score.found += 1
        else:
            result.missed.append(lb)
    for row in findings:
        score = result.scores.setdefault(row["detector_id"], DetectorScore(row["detector_id"]))
        if row["is_true"]:
            score.true_findings += 1
        elif row["serious"] and not row["is_covered"]:
            score.false_findings += 1
            result.false_positives.append(row)
        else:
            score.incidental += 1
    result.scores = dict(sorted(result.scores.items()))
    return result
