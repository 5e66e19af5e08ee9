"""Taking a source out of the case: its rows everywhere, the findings that rested on it, and a
record that it was there.

`remove_source` works inside the caller's transaction: `forensics sources remove` opens one for
all the sources it is given, `forensics ingest --force` removes the source a file replaces
inside that file's own transaction. Either the whole removal happens or none of it.

What goes, for source S:

* its rows: in the table its format loads (requests, usage, revocations, retired_keys,
  allowlist, known_keys, key_inventory, ip_ranges), its quarantine entries, its
  `source_digests` (what `forensics verify` compares) and its `sources` row. Rows it set in
  asn_info or prices give way to the shipped rows they had replaced (a key another file had
  set before S is shipped again: ingest that file again with --force to restore it), and
  requests are repriced.
  Requests whose network or place came from a database of the removed one's kind
  (asn_source / geo_source) are placed again from the databases left, by the rule of
  `ingest.enrichment`; what their log gave stays.
* findings: only the current findings of runs that read S (`runs.sources`) can rest on it.
  - S holds gateway requests: a finding whose principal has requests from S inside the
    finding's window is deleted (with its sample requests) when none of the principal's
    requests in that window come from another source, and kept but marked stale
    (`findings.stale_by_source`) when some do. Findings on other principals are untouched.
  - any other source (a usage export, a reference list, an enrichment database) may have
    shaped any finding of such a run (a provider usage bucket, a revocation time, an allowlist
    entry, a network): all of them are kept and marked stale, none deleted.
  Inside `ingest --force` the new file's rows are loaded before the old source goes, so a
  finding whose requests the new file holds again is kept and marked stale, not deleted.
  When a finding was deleted, incidents are rebuilt from the findings left, as `forensics
  detect` builds them. Running `forensics detect` again supersedes stale findings.
  Usage results skipped as duplicates when another export was ingested are not brought back
  by removing that export: ingest the one kept with --force to reload them.
* a `source_removals` row keeps what S was, who removed it, when, why, and what the removal
  did to the findings.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass

import duckdb

from forensics.case import costs
from forensics.case.db import shipped
from forensics.case.verify import ROW_TABLES
from forensics.detect.incidents import build_incidents
from forensics.errors import UsageError
from forensics.ingest.enrichment import KIND_SQL, reenrich
from forensics.lake.store import commit, delete_source, rewriting, rollback

REASON_REPLACED = "replaced by --force ingest"

# Reference tables keyed by value, not by file: the rows a user file set carry its id in
# `origin` ('source N') and replace the shipped row with the same key.
_KEYED = {"asn_info": "asn", "prices": "provider, model_pattern, effective_from"}

# Each current finding of a run that read the source, and what the removal does to it.
_SETTLE_SQL = """
CREATE OR REPLACE TEMP TABLE _removal_findings AS
WITH seen AS (
    SELECT run_id FROM runs
    WHERE list_contains(CAST(json_extract(sources, '$[*].source_id') AS INTEGER[]), $source)
),
reach AS (
    SELECT f.finding_id,
           count(p.source_id) FILTER (WHERE p.source_id = $source) AS from_source,
           count(p.source_id) FILTER (WHERE p.source_id <> $source) AS from_others
    FROM findings f
    JOIN seen USING (run_id)
    LEFT JOIN request_principals p
      ON p.principal_type = f.principal_type AND p.principal_id = f.principal_id
     AND p.ts BETWEEN f.window_start AND f.window_end
    WHERE f.superseded_by IS NULL
    GROUP BY f.finding_id
)
SELECT finding_id,
       CASE WHEN NOT $requests THEN 'stale'
            WHEN from_source > 0 AND from_others = 0 THEN 'delete'
            WHEN from_source > 0 THEN 'stale' END AS action
FROM reach
"""


@dataclass(frozen=True)
class Removal:
    """What removing one source took out of the case."""

    source_id: int
    path: str
    format: str
    rows_loaded: int
    rows_quarantined: int
    findings_deleted: int
    findings_stale: int


def current_user() -> str:
    """The operating-system user running the tool, for `source_removals.removed_by`."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):  # no login name and no passwd entry
        return "unknown"


def remove_source(
    con: duckdb.DuckDBPyConnection,
    source_id: int,
    reason: str,
    *,
    replaced_by: int | None = None,
    user: str | None = None,
) -> Removal:
    """Remove source `source_id` inside the caller's transaction (see the module docstring)."""
    found = con.execute(
        f"SELECT path, format, kind, rows_loaded, rows_quarantined, {KIND_SQL} FROM sources"
        " WHERE source_id = $s",
        {"s": source_id},
    ).fetchall()
    if not found:
        raise UsageError(
            f"no source {source_id} in the case", hint="`forensics sources` lists the sources"
        )
    path, fmt, kind, loaded, quarantined, database = found[0]
    deleted, stale = _settle_findings(con, source_id, requests=kind == "requests")
    con.execute(
        "INSERT INTO source_removals SELECT source_id, path, sha256, format, kind, ingested_at,"
        " rows_read, rows_loaded, rows_quarantined, now(), scrub($user), scrub($reason),"
        " $replaced_by, $deleted, $stale FROM sources WHERE source_id = $s",
        {
            "s": source_id,
            "user": user if user is not None else current_user(),
            "reason": reason,
            "replaced_by": replaced_by,
            "deleted": deleted,
            "stale": stale,
        },
    )
    ranges = _delete_rows(con, source_id)
    for table in _KEYED:
        _restore_shipped(con, table, source_id)
    if ranges:
        _place_again(con, str(database))
    if deleted:
        build_incidents(con)
    return Removal(source_id, str(path), str(fmt), int(loaded), int(quarantined), deleted, stale)


def remove_sources(
    con: duckdb.DuckDBPyConnection, source_ids: list[int], reason: str, *, user: str | None = None
) -> list[Removal]:
    """Remove several sources in one transaction: all of them, or (on any error) none."""
    if not reason.strip():
        raise UsageError("a removal needs a reason", hint="pass --reason TEXT")
    unique = list(dict.fromkeys(source_ids))
    known = {
        int(r[0])
        for r in con.execute(
            "SELECT source_id FROM sources WHERE list_contains($ids, source_id)", {"ids": unique}
        ).fetchall()
    }
    unknown = [str(s) for s in unique if s not in known]
    if unknown:
        raise UsageError(
            f"no source {', '.join(unknown)} in the case; nothing was removed",
            hint="`forensics sources` lists the sources",
        )
    con.execute("BEGIN TRANSACTION")
    try:
        removals = [remove_source(con, s, reason, user=user) for s in unique]
        commit(con)
    except BaseException:
        rollback(con)
        raise
    return removals


def _settle_findings(
    con: duckdb.DuckDBPyConnection, source_id: int, *, requests: bool
) -> tuple[int, int]:
    """Delete or mark the findings resting on the source; (deleted, marked stale)."""
    con.execute(_SETTLE_SQL, {"source": source_id, "requests": requests})
    try:
        [(deleted, stale)] = con.execute(
            "SELECT count(*) FILTER (WHERE action = 'delete'),"
            " count(*) FILTER (WHERE action = 'stale') FROM _removal_findings"
        ).fetchall()
        doomed = "SELECT finding_id FROM _removal_findings WHERE action = 'delete'"
        con.execute(f"DELETE FROM finding_requests WHERE finding_id IN ({doomed})")
        con.execute(f"DELETE FROM findings WHERE finding_id IN ({doomed})")
        con.execute(
            "UPDATE findings SET stale_by_source = coalesce(stale_by_source, $s)"
            " WHERE finding_id IN (SELECT finding_id FROM _removal_findings"
            " WHERE action = 'stale')",
            {"s": source_id},
        )
    finally:
        con.execute("DROP TABLE IF EXISTS _removal_findings")
    return int(deleted), int(stale)


def _delete_rows(con: duckdb.DuckDBPyConnection, source_id: int) -> int:
    """Delete the source's rows from every table holding them; returns its ip_ranges rows."""
    ranges = 0
    for table in (*ROW_TABLES, "source_digests", "sources"):
        n = delete_source(con, table, source_id)
        if table == "ip_ranges":
            ranges = int(n)
    return ranges


def _restore_shipped(con: duckdb.DuckDBPyConnection, table: str, source_id: int) -> None:
    """Drop the rows the source set in `table` and bring back the shipped rows they replaced."""
    [(n,)] = con.execute(
        f"DELETE FROM {table} WHERE origin = $origin", {"origin": f"source {source_id}"}
    ).fetchall()
    if not n:
        return
    key = _KEYED[table]
    select, params = shipped(table)
    con.execute(
        f"INSERT INTO {table} SELECT * FROM ({select}) s"
        f" WHERE ({key}) NOT IN (SELECT ({key}) FROM {table})",
        params,
    )
    if table == "prices":
        costs.reprice(con)


def _place_again(con: duckdb.DuckDBPyConnection, database: str) -> None:
    """Requests placed by databases of the kind `database` (iptoasn, mmdb-asn, mmdb-city),
    placed again by the ones left. `reenrich` places every request again from what its row
    shows of the log, but keeps a place a database's city gave: those of this kind are
    forgotten first (with a country their log may have given, which the row cannot show)."""
    with rewriting(con, "requests"):  # one rewrite of a lake for both statements
        con.execute(
            "UPDATE requests SET country = NULL, city = NULL, lat = NULL, lon = NULL,"
            " geo_source = NULL WHERE geo_source = $kind",
            {"kind": database},
        )
        reenrich(con)
