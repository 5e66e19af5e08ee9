"""The allowlist inside the case: `forensics allow add | list | remove`.

An entry added here goes through the same checks, normalisation and scrubber as a row of an
allowlist CSV (`forensics.ingest.reference.allowlist_checked`): a raw key given as a credential
is stored as its fingerprint, an ASN without its "AS", and a bad value is refused with its shape,
never the value. Entries are never deleted: `remove` marks one removed (who, when), so a finding
it suppressed still names it. Suppression reads the table at the next detection run
(forensics/sql/suppression.sql).
"""

from __future__ import annotations

import datetime as dt
import uuid

import duckdb

from forensics.case.rows import Row, one_by_prefix
from forensics.case.schema import ALLOW_KINDS
from forensics.errors import UsageError
from forensics.ingest.reference import ALLOW_COLUMNS, allowlist_checked, check_rows

# What `allow list` shows, newest first; `state` is active, expired or removed.
LIST_QUERY = """
SELECT entry_id AS id, kind, value, array_to_string(detectors, ' ') AS detectors, reason,
       expires,
       CASE WHEN removed_at IS NOT NULL THEN 'removed'
            WHEN expires IS NOT NULL AND expires <= now() THEN 'expired'
            ELSE 'active' END AS state,
       CASE WHEN source_id IS NULL THEN 'cli' ELSE 'file ' || source_id || ':' || line_no END
           AS origin,
       added_by, added_at, removed_by, removed_at
FROM allowlist
WHERE $all OR (removed_at IS NULL AND (expires IS NULL OR expires > now()))
ORDER BY coalesce(added_at, TIMESTAMPTZ '1970-01-01') DESC, source_id, line_no
"""


def add(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    value: str,
    reason: str,
    by: str,
    *,
    expires: dt.datetime | None = None,
    detectors: list[str] | None = None,
    transaction: bool = True,
) -> str:
    """Check and store one entry; returns its id. With `transaction` False the caller holds
    the transaction (triage adds its suppression and its entry together)."""
    if kind.lower() not in ALLOW_KINDS:
        raise UsageError(f"an allowlist kind is one of {', '.join(ALLOW_KINDS)}")
    if not reason.strip():
        raise UsageError("an allowlist entry needs a reason (--reason)")
    if expires is not None and expires <= dt.datetime.now(dt.UTC):
        raise UsageError(
            f"--expires {expires:%Y-%m-%d %H:%M} UTC is past: the entry would never apply"
        )
    fields = [
        kind,
        value,
        " ".join(detectors or []),
        reason,
        expires.isoformat() if expires is not None else "",
    ]
    check_rows(con, ALLOW_COLUMNS, [(1, fields)], allowlist_checked())
    [(error,)] = con.execute("SELECT _error FROM ref_checked").fetchall()
    if error is not None:
        raise UsageError(f"allowlist entry refused: {error}")
    entry = uuid.uuid4().hex
    if transaction:
        con.execute("BEGIN")
    try:
        con.execute(
            "INSERT INTO allowlist (kind, value, detectors, reason, expires, entry_id, added_by,"
            " added_at) SELECT kind, value, detectors, reason, expires, $entry, scrub($by), now()"
            " FROM ref_checked",
            {"entry": entry, "by": by},
        )
        if transaction:
            con.execute("COMMIT")
    except BaseException:
        if transaction:
            con.execute("ROLLBACK")
        raise
    return entry


def remove(con: duckdb.DuckDBPyConnection, given: str, by: str) -> Row:
    """Mark the entry whose id starts with `given` removed; returns it as it was."""
    entry = one_by_prefix(
        con, "allowlist", "entry_id", given, "allowlist entry id", "`allow list --all` lists them"
    )
    [(kind, value, removed_at)] = con.execute(
        "SELECT kind, value, removed_at FROM allowlist WHERE entry_id = $e", {"e": entry}
    ).fetchall()
    if removed_at is not None:
        raise UsageError(f"allowlist entry {entry} was already removed at {removed_at}")
    con.execute(
        "UPDATE allowlist SET removed_at = now(), removed_by = scrub($by) WHERE entry_id = $e",
        {"by": by, "e": entry},
    )
    return {"entry_id": entry, "kind": kind, "value": value}
