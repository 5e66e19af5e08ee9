"""`--format key-inventory`: the gateway's API keys as its key management knows them.

A CSV with a header, one key per row::

    credential_id,owner_tenant,created_at,expires_at,scopes,label
    5d2e8b1c-2222-4c1d-8f3a-9e7b6c5d4a31,tenant-acme,2026-01-05T09:00:00Z,,chat embeddings,prod

The first column names the key, in one of two ways, and its header says which:

* `credential_id`: the id the gateway logs (Kong credential id, LiteLLM key hash), or a
  fingerprint (`cred:...`); a raw key of a known shape (`sk-...`, `Bearer ...`) is
  fingerprinted like in every other input;
* `key`: raw keys, each fingerprinted whatever its shape (a gateway's own key format that no
  pattern knows included); the raw value never reaches the case, quarantine included.

`owner_tenant`, `created_at`, `expires_at`, `scopes` (separated by spaces, commas, `;` or `|`)
and `label` may be empty: a key without an owner or a creation time is still a known key. The
header needs the first three columns and may stop there. A row whose key is empty, whose times
are not times, or that expires before it was created is quarantined with its line.
"""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb

from forensics.case.fingerprints import FINGERPRINT_PATTERN
from forensics.ingest import reader
from forensics.ingest.base import Counts, Options, ReferenceFormat
from forensics.ingest.reference import _credential, _insert_checked, _time, read_csv_rows

COLUMNS = ["credential_id", "owner_tenant", "created_at", "expires_at", "scopes", "label"]
KEY_COLUMNS = ["key", *COLUMNS[1:]]
_REQUIRED = 3  # the key, its owner and its creation time (the cells may be empty)

# A raw key, fingerprinted whatever its shape (a fingerprint given as such is kept).
_KEY_GATE = (
    f"CASE WHEN regexp_full_match(auth_token(key), '{FINGERPRINT_PATTERN}') THEN auth_token(key)"
    " ELSE cred_fp(key_text(auth_token(key))) END"
)


def _header(line: str) -> str:
    return line.strip().lower().replace(" ", "").replace('"', "")


class KeyInventory(ReferenceFormat):
    name = "key-inventory"
    description = (
        "CSV credential_id|key,owner_tenant,created_at,expires_at,scopes,label: the gateway's"
        " API keys, their owners and ages (raw keys: fingerprinted)"
    )
    table = "key_inventory"
    columns = COLUMNS

    def sniff(self, head: list[str]) -> bool:
        first = _header(head[0])
        return first.startswith("credential_id,owner_tenant,") or first.startswith(
            "key,owner_tenant,"
        )

    def load(
        self, con: duckdb.DuckDBPyConnection, path: Path, source_id: int, options: Options
    ) -> tuple[Counts, list[str]]:
        head = reader.head_lines(path, 1)
        raw_keys = bool(head) and _header(head[0]).startswith("key,")
        names = KEY_COLUMNS if raw_keys else COLUMNS
        rows, bad, blank = read_csv_rows(path, names, _REQUIRED)
        if raw_keys:
            bad = [(line, why, _without_key(con, raw)) for line, why, raw in bad]
        ident = "key" if raw_keys else _credential("credential_id")
        given = "key" if raw_keys else "credential_id"
        created, expires = _time("created_at"), _time("expires_at")
        checked = f"""
            SELECT line_no, {ident} AS credential_id, nullif(owner_tenant, '') AS owner_tenant,
                   {created} AS created_at, {expires} AS expires_at,
                   nullif(list_filter(regexp_split_to_array(scopes, '[;|, ]+'),
                                      lambda s: s <> ''), []) AS scopes,
                   nullif(label, '') AS label,
                   CASE WHEN coalesce({given}, '') = '' THEN '{given} is empty'
                        WHEN created_at <> '' AND {created} IS NULL
                        THEN 'created_at is not a timestamp: ' || value_shape(created_at)
                        WHEN created_at <> '' AND NOT plausible_ts({created})
                        THEN 'created_at is out of range: ' || value_shape(created_at)
                        WHEN expires_at <> '' AND {expires} IS NULL
                        THEN 'expires_at is not a timestamp: ' || value_shape(expires_at)
                        WHEN expires_at <> '' AND NOT plausible_ts({expires})
                        THEN 'expires_at is out of range: ' || value_shape(expires_at)
                        WHEN {expires} < {created} THEN 'expires_at is before created_at'
                   END AS _error
            FROM ref_rows"""
        insert = (
            "INSERT INTO key_inventory SELECT credential_id, owner_tenant, created_at,"
            " expires_at, scopes, label, $sid, line_no FROM ref_checked WHERE _error IS NULL"
        )
        gate = {"key": _KEY_GATE} if raw_keys else None
        counts = _insert_checked(con, source_id, names, rows, bad, checked, [insert], gate)
        counts.blank = blank
        warnings = [
            f"{path}:{line}: lists the key of line {first} again (the detectors read every row"
            " of a key: its latest created_at and expires_at, any of its owners)"
            for line, first in con.execute(
                "SELECT line_no, first_value(line_no) OVER (PARTITION BY credential_id"
                " ORDER BY line_no) AS first FROM ref_checked WHERE _error IS NULL"
                " QUALIFY row_number() OVER (PARTITION BY credential_id ORDER BY line_no) > 1"
                " ORDER BY line_no"
            ).fetchall()
        ]
        return counts, warnings


def _without_key(con: duckdb.DuckDBPyConnection, raw: str) -> str:
    """A malformed line of a raw-key file with its first field (the key) fingerprinted; nothing
    of the line when the key cannot be told apart from the rest."""
    try:
        first = next(csv.reader([raw]))[0]
    except (csv.Error, StopIteration, IndexError):
        return ""
    if not first.strip():
        return raw  # no key on the line
    if first not in raw:
        return ""  # quoted: the key is not written as read
    [(fingerprint,)] = con.execute(
        f"SELECT coalesce({_KEY_GATE}, '') FROM (SELECT trim($k) AS key)", {"k": first}
    ).fetchall()
    return raw.replace(first, str(fingerprint))
