"""Triage: an investigator's decisions about findings and incidents, kept in the case.

`record` appends one `triage` row per finding or incident (ids by unique prefix) and never
updates or deletes one: the table is the audit trail. Detection runs leave it alone; since a
finding's id hashes its run and incidents are rebuilt on every run, each entry also stores what
it was about (detector, principal, window), and the views of forensics/sql/triage_status.sql
(`finding_triage`, `incident_triage`) carry a status over to the findings and incidents of later
runs that describe the same thing. A false positive or an accepted risk can become a
suppression (`suppress_similar`): an allowlist entry for that principal and detector(s), with
the reason, applied from the next run on.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import duckdb

from forensics import sql
from forensics.case.rows import Row, id_prefix, query_rows
from forensics.case.schema import TRIAGE
from forensics.case.schema import TRIAGE_STATUSES as STATUSES
from forensics.errors import UsageError

SUPPRESSIBLE = ("false_positive", "accepted_risk")


def install(con: duckdb.DuckDBPyConnection, read_only: bool) -> None:
    """The views `finding_triage` and `incident_triage` (TEMP on a read-only connection; a
    read-only case made before triage existed gets an empty TEMP `triage` to read)."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "triage" not in tables:
        con.execute(TRIAGE.ddl().replace("CREATE TABLE", "CREATE TEMP TABLE", 1))
    text = sql.read("triage_status").replace("{kind}", "TEMP" if read_only else "")
    for statement in con.extract_statements(text):
        con.execute(statement)


@dataclass(frozen=True)
class Target:
    """A finding or an incident, as a triage entry describes it."""

    kind: str  # finding | incident
    id: str
    detector_id: str | None
    principal_type: str
    principal_id: str
    window_start: dt.datetime
    window_end: dt.datetime
    detectors: tuple[str, ...]


_CANDIDATES = """
SELECT 'finding' AS kind, finding_id AS id, detector_id, principal_type, principal_id,
       window_start, window_end, [detector_id] AS detectors, superseded_by IS NULL AS current
FROM findings WHERE starts_with(finding_id, $prefix)
UNION ALL
SELECT 'incident', incident_id, NULL, principal_type, principal_id, first_seen, last_seen,
       detectors, true
FROM incidents WHERE starts_with(incident_id, $prefix)
ORDER BY current DESC, kind, id
"""


def resolve(con: duckdb.DuckDBPyConnection, given: str) -> Target:
    """The one finding or incident whose id starts with `given` (a current finding beats one
    a later run superseded)."""
    prefix = id_prefix(
        given,
        "a finding or incident id",
        "`forensics findings` and `forensics incidents` list them",
    )
    rows = con.execute(_CANDIDATES, {"prefix": prefix}).fetchall()
    incidents = [r for r in rows if r[0] == "incident"]
    findings = [r for r in rows if r[0] == "finding"]
    current = [r for r in findings if r[8]]
    found = incidents + (current or findings)  # a superseded finding only when no current one
    if not found:
        raise UsageError(
            f"no finding or incident id starts with {prefix}",
            hint="`forensics findings` and `forensics incidents` list them",
        )
    if len(found) > 1:
        listed = ", ".join(f"{r[0]} {r[1]}" for r in found[:5])
        more = f" and {len(found) - 5} more" if len(found) > 5 else ""
        raise UsageError(f"{prefix} is ambiguous: {listed}{more}", hint="give more of the id")
    kind, ident, detector, ptype, pid, start, end, detectors, _ = found[0]
    return Target(kind, ident, detector, ptype, pid, start, end, tuple(detectors))


def record(
    con: duckdb.DuckDBPyConnection,
    ids: list[str],
    status: str,
    reason: str,
    by: str,
    *,
    suppress_similar: bool = False,
    expires: dt.datetime | None = None,
) -> list[Row]:
    """Append one entry per id (all or none, in one transaction); returns them as stored."""
    if status not in STATUSES:
        raise UsageError(f"status must be one of {', '.join(STATUSES)}")
    if not reason.strip():
        raise UsageError("a triage entry needs a reason (--reason)")
    if suppress_similar and status not in SUPPRESSIBLE:
        raise UsageError(f"--suppress-similar is for {' and '.join(SUPPRESSIBLE)}, not {status}")
    if expires is not None and not suppress_similar:
        raise UsageError("--expires is the end of a suppression: it goes with --suppress-similar")
    if suppress_similar and expires is None:
        raise UsageError(
            "--suppress-similar needs --expires: a suppression that never ends hides the next"
            " real incident too",
            hint="or add a lasting entry on purpose with `forensics allow add`",
        )
    from forensics.case import allowlist  # the ingest checks: only when a suppression is made

    targets = list({t.id: t for t in (resolve(con, i) for i in ids)}.values())
    now = dt.datetime.now(dt.UTC)
    entries: list[str] = []
    con.execute("BEGIN")
    try:
        for target in targets:
            entry = uuid.uuid4().hex
            allowed = None
            if suppress_similar:
                allowed = allowlist.add(
                    con,
                    target.principal_type,
                    target.principal_id,
                    f"{status} ({target.kind} {target.id[:12]}): {reason}",
                    by,
                    expires=expires,
                    detectors=list(target.detectors),
                    transaction=False,
                )
            con.execute(
                "INSERT INTO triage VALUES ($entry, $at, scrub($by), $kind, $id, $detector,"
                " $ptype, $pid, $start, $end, $status, scrub($reason), $allowed)",
                {
                    "entry": entry,
                    "at": now,
                    "by": by,
                    "kind": target.kind,
                    "id": target.id,
                    "detector": target.detector_id,
                    "ptype": target.principal_type,
                    "pid": target.principal_id,
                    "start": target.window_start,
                    "end": target.window_end,
                    "status": status,
                    "reason": reason,
                    "allowed": allowed,
                },
            )
            entries.append(entry)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return query_rows(
        con, "SELECT * FROM triage WHERE list_contains($ids, entry_id)", {"ids": entries}
    )


# The entries about an incident: on the incident (same principal, overlapping) or on one of its
# findings (same detector and principal, overlapping), oldest first.
_ABOUT_INCIDENT = """
SELECT t.* FROM triage t
WHERE (t.target_type = 'incident' AND t.principal_type = $ptype AND t.principal_id = $pid
       AND t.window_start <= $last AND $first <= t.window_end)
   OR (t.target_type = 'finding' AND EXISTS (
        SELECT 1 FROM findings f
        WHERE list_contains($finding_ids, f.finding_id) AND f.detector_id = t.detector_id
          AND f.principal_type = t.principal_type AND f.principal_id = t.principal_id
          AND t.window_start <= f.window_end AND f.window_start <= t.window_end))
ORDER BY t.recorded_at, t.entry_id
"""


def about_incident(con: duckdb.DuckDBPyConnection, incident: Row) -> list[Row]:
    """The history of an incident and its findings, oldest first."""
    return query_rows(
        con,
        _ABOUT_INCIDENT,
        {
            "ptype": incident["principal_type"],
            "pid": incident["principal_id"],
            "first": incident["first_seen"],
            "last": incident["last_seen"],
            "finding_ids": list(incident["finding_ids"] or []),
        },
    )


def between(
    con: duckdb.DuckDBPyConnection, start: dt.datetime | None, end: dt.datetime | None
) -> list[Row]:
    """Entries about findings or incidents whose window overlaps [start, end), oldest first."""
    return query_rows(
        con,
        "SELECT * FROM triage WHERE ($end IS NULL OR window_start < $end)"
        " AND ($start IS NULL OR window_end >= $start) ORDER BY recorded_at, entry_id",
        {"start": start, "end": end},
    )


def history(con: duckdb.DuckDBPyConnection, ids: list[str]) -> list[Row]:
    """Every entry (none given: all), or those about the given findings and incidents."""
    if not ids:
        return query_rows(con, "SELECT * FROM triage ORDER BY recorded_at, entry_id", {})
    found: dict[str, Row] = {}
    for target in (resolve(con, i) for i in ids):
        if target.kind == "incident":
            [incident] = query_rows(
                con, "SELECT * FROM incidents WHERE incident_id = $i", {"i": target.id}
            )
            found.update((r["entry_id"], r) for r in about_incident(con, incident))
            continue
        for row in query_rows(
            con,
            "SELECT * FROM triage WHERE target_type = $kind"
            " AND principal_type = $ptype AND principal_id = $pid"
            " AND ($detector IS NULL OR detector_id = $detector)"
            " AND window_start <= $end AND $start <= window_end",
            {
                "kind": target.kind,
                "ptype": target.principal_type,
                "pid": target.principal_id,
                "detector": target.detector_id,
                "start": target.window_start,
                "end": target.window_end,
            },
        ):
            found[row["entry_id"]] = row
    return sorted(found.values(), key=lambda r: (r["recorded_at"], r["entry_id"]))
