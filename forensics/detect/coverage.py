"""Which detection runs cover a period, and what they leave unanalysed.

A finding count means something only when detection read the evidence. For a period [start,
end) and, optionally, one tenant, each detector of the pack is judged by its latest finished
run whose scope covers the whole period (no --since or one at or before `start`, no --until
or one at or after `end`, all tenants or this one):

- no such run: the detector did not run over the period;
- the detector failed in that run;
- the run predates evidence of the period: a file with requests or provider usage before
  the period's end (the detectors read history for baselines and first sightings), or a
  reference or enrichment file (revocations, allowlist, networks), ingested after it (the
  run's `sources` list does not hold it);
- the run read a file since removed (`forensics sources remove`), or findings of the period
  are marked stale by a removal.

`DetectionCoverage.lines` turns those into a few lines a reader acts on (reports show them as
a banner; `--fail-on` exits 5 when there is any). The pack is the shipped detectors
(`--rules` detectors are the user's to judge: a folder may be gone, and an
old run of it must not hold every later week hostage).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from dataclasses import dataclass, field
from typing import Any

import duckdb

_JUDGED = """
WITH
pack AS (SELECT unnest($pack::VARCHAR[]) AS detector_id),
covering AS (
    SELECT d.detector_id, d.status, d.error, r.run_id, r.started_at, r.read_removed,
           list_transform(CAST(r.sources AS JSON[]),
                          lambda s: CAST(json_extract(s, '$.source_id') AS INTEGER)) AS read_ids,
           row_number() OVER (PARTITION BY d.detector_id ORDER BY r.started_at DESC) AS nth
    FROM run_detectors d JOIN (
        SELECT *, EXISTS (SELECT 1 FROM source_removals x
                          WHERE list_contains(list_transform(CAST(sources AS JSON[]),
                                lambda s: CAST(json_extract(s, '$.source_id') AS INTEGER)),
                                x.source_id)) AS read_removed
        FROM runs) r USING (run_id)
    WHERE r.status IN ('ok', 'errors')
      AND (r.since IS NULL OR r.since <= $start)
      AND (r.until IS NULL OR r.until >= $end)
      AND (r.tenant IS NULL OR r.tenant IS NOT DISTINCT FROM $tenant)
),
evidence AS (
    SELECT DISTINCT source_id FROM requests
    WHERE ts < $end AND ($tenant IS NULL OR tenant_id = $tenant)
    UNION
    SELECT DISTINCT source_id FROM usage WHERE bucket_start < $end
    UNION
    SELECT source_id FROM sources WHERE kind IN ('reference', 'enrichment')
),
needed AS (SELECT list(source_id ORDER BY source_id) AS ids FROM evidence),
stale_findings AS (
    SELECT DISTINCT detector_id FROM findings
    WHERE stale_by_source IS NOT NULL AND superseded_by IS NULL
      AND window_start < $end AND window_end >= $start
)
SELECT p.detector_id, c.status, c.error, c.run_id, c.started_at,
       CASE WHEN c.run_id IS NULL THEN []
            ELSE list_filter(n.ids, lambda i: NOT list_contains(c.read_ids, i)) END AS unread,
       coalesce(c.read_removed, false) OR sf.detector_id IS NOT NULL AS removed
FROM pack p CROSS JOIN needed n
LEFT JOIN covering c ON c.detector_id = p.detector_id AND c.nth = 1
LEFT JOIN stale_findings sf ON sf.detector_id = p.detector_id
ORDER BY p.detector_id
"""

_SHOWN = 5  # detector ids or files named in one line before "and N more"


@dataclass
class DetectionCoverage:
    """What detection left unanalysed in a period; `ok` when nothing."""

    runs: int = 0  # distinct runs that cover the period for some detector
    not_run: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # detector id -> error
    stale: list[str] = field(default_factory=list)  # detectors whose run missed evidence
    unread: list[str] = field(default_factory=list)  # files (basename #id) such runs missed
    removed: list[str] = field(default_factory=list)  # detectors whose run read a removed file
    last_run: str | None = None
    last_run_at: dt.datetime | None = None
    stale_since: dt.datetime | None = None  # the oldest covering run of a stale detector

    @property
    def ok(self) -> bool:
        return not (self.not_run or self.failed or self.stale or self.removed)

    def lines(self) -> list[str]:
        """One sentence per kind of problem, for the banner and stderr."""
        out: list[str] = []
        if self.runs == 0 and self.not_run:
            out.append(
                "detection has not run over this period: no finding here means nothing"
                " (run `forensics detect`, or `forensics report weekly --detect`)"
            )
            return out
        if self.not_run:
            out.append(
                f"{_count(self.not_run, 'detector')} of the pack did not run over this"
                f" period: {_some(self.not_run)}"
            )
        if self.failed:
            out.append(
                f"{_count(list(self.failed), 'detector')} failed in the last run over this"
                f" period: {_some(list(self.failed))} (`forensics runs` shows why)"
            )
        if self.stale:
            when = f" ({self.stale_since:%Y-%m-%d %H:%M} UTC)" if self.stale_since else ""
            out.append(
                f"detection predates evidence of this period: {_count(self.unread, 'file')}"
                f" ingested after the run{when} ({_some(self.unread)}) that"
                f" {_count(self.stale, 'detector')} last ran in ({_some(self.stale)})"
                " (run `forensics detect` again)"
            )
        if self.removed:
            out.append(
                f"{_count(self.removed, 'detector')} last ran on evidence since removed from the"
                f" case ({_some(self.removed)}): their findings may no longer hold"
                " (run `forensics detect` again)"
            )
        return out


def _count(items: list[str], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _it(items: list[str]) -> str:
    return "it" if len(items) == 1 else "them"


def _some(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown if len(items) <= _SHOWN else f"{shown} and {len(items) - _SHOWN} more"


def shipped_pack() -> list[str]:
    """The ids of the detectors shipped in queries/ (`<family>/<name>.sql` with its `.yml`),
    read from the file names: parsing the pack only to list it would cost most of a report."""
    from forensics.resources import shipped_dir

    root = shipped_dir("queries")
    return sorted(
        f"{sql.parent.name}.{sql.stem}"
        for sql in root.glob("*/*.sql")
        if sql.with_suffix(".yml").is_file()
    )


def detection_coverage(
    con: duckdb.DuckDBPyConnection,
    start: dt.datetime,
    end: dt.datetime,
    *,
    tenant: str | None = None,
    pack: list[str] | None = None,
    only: tuple[str, ...] = (),
) -> DetectionCoverage:
    """Judge each detector of `pack` (default: the shipped pack), or those of them matching a
    glob of `only`, against the runs stored in the case; see the module docstring. The period
    is first cut to the evidence in it: a run up to the last request covers a period that
    reaches past it."""
    ids = set(shipped_pack() if pack is None else pack)
    first, last = con.execute(
        "SELECT min(t0), max(t1) FROM (SELECT min(ts) AS t0, max(ts) AS t1 FROM requests"
        " WHERE ts >= $start AND ts < $end AND ($tenant IS NULL OR tenant_id = $tenant)"
        " UNION ALL SELECT min(greatest(bucket_start, $start)),"
        " max(least(bucket_end, $end) - INTERVAL 1 MICROSECOND) FROM usage"
        " WHERE bucket_start < $end AND bucket_end > $start)",
        {"start": start, "end": end, "tenant": tenant},
    ).fetchall()[0]
    if first is not None:
        start, end = max(start, first), min(end, last + dt.timedelta(microseconds=1))
    params: dict[str, Any] = {"start": start, "end": end, "tenant": tenant}
    if only:
        ids = {i for i in ids if any(fnmatch.fnmatchcase(i, g) for g in only)}
    rows = con.execute(_JUDGED, {**params, "pack": sorted(ids)}).fetchall()
    coverage = DetectionCoverage()
    runs: set[str] = set()
    unread: set[int] = set()
    for detector_id, status, error, run_id, started_at, missed, removed in rows:
        if run_id is None:
            coverage.not_run.append(detector_id)
            continue
        runs.add(run_id)
        if coverage.last_run_at is None or started_at > coverage.last_run_at:
            coverage.last_run, coverage.last_run_at = run_id, started_at
        if status == "failed":
            coverage.failed[detector_id] = error or "failed"
        elif missed:
            coverage.stale.append(detector_id)
            unread.update(missed)
            if coverage.stale_since is None or started_at < coverage.stale_since:
                coverage.stale_since = started_at
        elif removed:
            coverage.removed.append(detector_id)
    coverage.runs = len(runs)
    if unread:
        names = con.execute(
            "SELECT regexp_extract(path, '[^/\\\\]*$') || ' #' || source_id FROM sources"
            " WHERE list_contains($ids, source_id) ORDER BY source_id",
            {"ids": sorted(unread)},
        ).fetchall()
        coverage.unread = [n[0] for n in names]
    return coverage
