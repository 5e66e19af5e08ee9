"""Small reference tables the user brings: revocations, retired keys, allowlist, ASN categories.

These are hand-kept CSV files of a few rows to a few thousand, so Python's csv module reads them
(quoted fields with commas included) and DuckDB validates and converts them as a set. Every bad
row goes to quarantine with its line, like any other record.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import duckdb
import pyarrow as pa

from forensics.case.fingerprints import BEARER_PATTERN, FINGERPRINT_PATTERN, KEY_PATTERN
from forensics.case.schema import ALLOW_KINDS
from forensics.errors import InputError
from forensics.ingest import decompress, reader
from forensics.ingest.base import (
    QUARANTINE_RAW_CHARS,
    Counts,
    Options,
    ReferenceFormat,
    quarantine_rows,
)
from forensics.times import shape


def read_csv_rows(
    path: Path, expected: list[str], required: int
) -> tuple[list[tuple[int, list[str]]], list[tuple[int, str, str]], int]:
    """(line, fields) of well-formed rows, quarantine tuples for the others, blank count."""
    text, bad = _read_text(path)
    lines = text.split("\n")
    rows: list[tuple[int, list[str]]] = []
    blank = 0
    header_seen = False
    for number, fields in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        line = lines[number - 1] if number <= len(lines) else ""
        if fields == [reader.BAD_LINE]:
            continue  # not UTF-8: already in `bad`
        if not fields or all(not f.strip() for f in fields):
            blank += 1
            continue
        if not header_seen:
            header = [f.strip().lower() for f in fields]
            if header[: len(expected)] != expected[: len(header)] or len(header) < required:
                raise InputError(
                    path,
                    f"expected a CSV header {','.join(expected)}, found"
                    f" {len(fields)} fields shaped {shape(','.join(fields))}",
                    line=number,
                )
            header_seen = True
            continue
        if not (required <= len(fields) <= len(expected)):
            bad.append(
                (
                    number,
                    f"expected {required} to {len(expected)} fields, found {len(fields)}",
                    line,
                )
            )
            continue
        rows.append((number, [f.strip() for f in fields] + [""] * (len(expected) - len(fields))))
    return rows, bad, blank


def _read_text(path: Path) -> tuple[str, list[tuple[int, str, str]]]:
    """The whole (small) file as text; lines that are not UTF-8 and a damaged end as `bad`."""
    end = decompress.ReadEnd()
    chunks = list(reader.read_chunks(path, end))
    text = "\n".join(chunk.decoded() for chunk in chunks)
    bad = [b for chunk in chunks for b in chunk.bad_lines]
    if end.problem:
        bad.append((end.next_line, end.problem, ""))
    return text, bad


def _insert_checked(
    con: duckdb.DuckDBPyConnection,
    source_id: int,
    names: list[str],
    rows: list[tuple[int, list[str]]],
    bad: list[tuple[int, str, str]],
    checked_sql: str,
    inserts: list[str],
    gate: dict[str, str] | None = None,
) -> Counts:
    """Register rows as table `ref_rows`, quarantine where `checked_sql` gives an _error.

    `gate` replaces the scrubber of a column by another SQL expression over it (a column of raw
    keys is fingerprinted whatever their shape): raw values never reach a table or quarantine.
    """
    check_rows(con, names, rows, checked_sql, gate)
    con.execute(
        "INSERT INTO quarantine SELECT $sid, c.line_no, scrub(c._error),"
        " left(scrub(array_to_string(["
        + ", ".join(f"coalesce(r.{n}, '')" for n in names)
        + "], ',')), $n) FROM ref_checked c JOIN ref_rows r USING (line_no)"
        " WHERE c._error IS NOT NULL",
        {"sid": source_id, "n": QUARANTINE_RAW_CHARS},
    )
    quarantine_rows(con, source_id, bad)
    for statement in inserts:
        con.execute(statement, {"sid": source_id} if "$sid" in statement else None)
    good, failed = con.execute(
        "SELECT count(*) FILTER (WHERE _error IS NULL), count(*) FILTER (WHERE _error IS NOT NULL)"
        " FROM ref_checked"
    ).fetchall()[0]
    return Counts(read=good + failed + len(bad), loaded=good, quarantined=failed + len(bad))


def check_rows(
    con: duckdb.DuckDBPyConnection,
    names: list[str],
    rows: list[tuple[int, list[str]]],
    checked_sql: str,
    gate: dict[str, str] | None = None,
) -> None:
    """The rows (line number, fields) as TEMP table `ref_rows`, every field through the
    scrubber (or its `gate`), and `checked_sql` over them as TEMP table `ref_checked`, whose
    `_error` says why a row cannot be loaded (NULL: it can)."""
    gate = gate or {}
    columns: dict[str, list[object]] = {"line_no": [n for n, _ in rows]}
    for i, name in enumerate(names):
        columns[name] = [fields[i] for _, fields in rows]
    arrow = pa.table(
        {
            k: pa.array(v, type=pa.int64() if k == "line_no" else pa.string())
            for k, v in columns.items()
        }
    )
    con.register("ref_rows_arrow", arrow)
    try:
        # The gate: every field of the file is scrubbed before any check or conversion reads it
        # (a credential column's raw key becomes its fingerprint here, as in the logs).
        con.execute(
            "CREATE OR REPLACE TEMP TABLE ref_rows AS SELECT line_no, "
            + ", ".join(f"{gate.get(n, f'scrub({n})')} AS {n}" for n in names)
            + " FROM ref_rows_arrow"
        )
    finally:
        con.unregister("ref_rows_arrow")
    con.execute(f"CREATE OR REPLACE TEMP TABLE ref_checked AS {scrubbed(con, checked_sql)}")


def scrubbed(con: duckdb.DuckDBPyConnection, select: str) -> str:
    """`select` with every text column (and every text in a list column) through the scrubber:
    the one gate between a user's file and the case."""
    types = con.execute(f"DESCRIBE {select}").fetchall()
    replaced = []
    for name, typ, *_ in types:
        if typ == "VARCHAR":
            replaced.append(f"scrub({name}) AS {name}")
        elif typ == "VARCHAR[]":
            replaced.append(f"scrub_list({name}) AS {name}")
        elif typ == "JSON":
            replaced.append(f"TRY_CAST(scrub(CAST({name} AS VARCHAR)) AS JSON) AS {name}")
    if not replaced:
        return select
    return f"SELECT * REPLACE ({', '.join(replaced)}) FROM ({select})"


def load_csv_checked(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    source_id: int,
    columns: list[str],
    required: int,
    checked_sql: str,
    inserts: list[str],
) -> Counts:
    """A small reference CSV end to end: rows read (`read_csv_rows`), checked and inserted or
    quarantined (`_insert_checked`); blank lines counted."""
    rows, bad, blank = read_csv_rows(path, columns, required)
    counts = _insert_checked(con, source_id, columns, rows, bad, checked_sql, inserts)
    counts.blank = blank
    return counts


def _credential(v: str) -> str:
    """SQL for a credential column: an id as logged stays, a raw secret is fingerprinted (the
    scrubber already made a bare key its fingerprint; `Bearer <fingerprint>` loses the word)."""
    return (
        f"CASE WHEN regexp_full_match(auth_token({v}), '{FINGERPRINT_PATTERN}')"
        f" THEN auth_token({v})"
        f" WHEN regexp_full_match({v}, '{KEY_PATTERN}')"
        f" OR regexp_matches({v}, '{BEARER_PATTERN}') THEN cred_fp(key_text(auth_token({v})))"
        f" ELSE {v} END"
    )


def _time(v: str) -> str:
    """SQL for a time column: ISO 8601 (UTC unless an offset is given), or epoch s / ms."""
    return (
        f"CASE WHEN {v} = '' THEN NULL"
        f" WHEN regexp_full_match({v}, '[0-9]{{13}}') THEN epoch_ts({v}, 'ms')"
        f" WHEN regexp_full_match({v}, '[0-9]{{9,10}}([.][0-9]+)?') THEN epoch_ts({v}, 's')"
        f" ELSE TRY_CAST({v} AS TIMESTAMPTZ) END"
    )


class Revocations(ReferenceFormat):
    name = "revocations"
    description = "CSV credential_id,revoked_at (ids as logged, or raw keys: fingerprinted)"
    table = "revocations"
    columns = ["credential_id", "revoked_at"]

    def sniff(self, head: list[str]) -> bool:
        return head[0].strip().lower().replace(" ", "").startswith("credential_id,revoked_at")

    def load(
        self, con: duckdb.DuckDBPyConnection, path: Path, source_id: int, options: Options
    ) -> tuple[Counts, list[str]]:
        checked = f"""
            SELECT line_no, {_credential("credential_id")} AS credential_id,
                   {_time("revoked_at")} AS revoked_at,
                   CASE WHEN credential_id = '' THEN 'credential_id is empty'
                        WHEN {_time("revoked_at")} IS NULL
                        THEN 'revoked_at is not a timestamp: ' || value_shape(revoked_at)
                        WHEN NOT plausible_ts({_time("revoked_at")})
                        THEN 'revoked_at is out of range: ' || value_shape(revoked_at) END AS _error
            FROM ref_rows"""
        insert = (
            "INSERT INTO revocations SELECT credential_id, revoked_at, $sid, line_no"
            " FROM ref_checked WHERE _error IS NULL"
        )
        counts = load_csv_checked(con, path, source_id, self.columns, 2, checked, [insert])
        return counts, []


class RetiredKeys(ReferenceFormat):
    """`issuer,key_id,retired_at,reason`: JWT signing keys or whole issuers taken out of use.

    A row names a key id (kid), an issuer (iss), or both (that kid of that issuer); at least
    one is required. Values are compared exactly as the token carries them.
    """

    name = "retired-keys"
    description = "CSV issuer,key_id,retired_at,reason: JWT signing keys (kid) or issuers retired"
    table = "retired_keys"
    columns = ["issuer", "key_id", "retired_at", "reason"]

    def sniff(self, head: list[str]) -> bool:
        return head[0].strip().lower().replace(" ", "").startswith("issuer,key_id,retired_at")

    def load(
        self, con: duckdb.DuckDBPyConnection, path: Path, source_id: int, options: Options
    ) -> tuple[Counts, list[str]]:
        checked = f"""
            SELECT line_no, nullif(issuer, '') AS issuer, nullif(key_id, '') AS key_id,
                   {_time("retired_at")} AS retired_at, nullif(reason, '') AS reason,
                   CASE WHEN issuer = '' AND key_id = ''
                        THEN 'issuer and key_id are both empty: give at least one'
                        WHEN retired_at = '' THEN 'retired_at is empty'
                        WHEN {_time("retired_at")} IS NULL
                        THEN 'retired_at is not a timestamp: ' || value_shape(retired_at)
                        WHEN NOT plausible_ts({_time("retired_at")})
                        THEN 'retired_at is out of range: ' || value_shape(retired_at) END AS _error
            FROM ref_rows"""
        insert = (
            "INSERT INTO retired_keys SELECT issuer, key_id, retired_at, reason, $sid, line_no"
            " FROM ref_checked WHERE _error IS NULL"
        )
        counts = load_csv_checked(con, path, source_id, self.columns, 3, checked, [insert])
        return counts, []


ALLOW_COLUMNS = ["kind", "value", "detectors", "reason", "expires"]


def allow_entry_id(source: str) -> str:
    """SQL for the id of a file's allowlist row: a hash of its source (`source`, SQL) and line."""
    return f"left(sha256(concat_ws('|', 'allowlist', {source}, line_no)), 32)"


def allowlist_checked() -> str:
    """The allowlist's checks and normalisation over `ref_rows` (ALLOW_COLUMNS as text): one
    definition for a CSV file and `forensics allow add`."""
    kinds = ", ".join(f"'{k}'" for k in ALLOW_KINDS)
    value = (
        "CASE lower(kind) WHEN 'asn' THEN regexp_replace(upper(value), '^AS\\s*', '')"
        f" WHEN 'credential' THEN {_credential('value')}"
        " WHEN 'cidr' THEN lower(value) WHEN 'ip' THEN lower(value) ELSE value END"
    )
    return f"""
        SELECT line_no, lower(kind) AS kind, {value} AS value,
          list_filter(regexp_split_to_array(detectors, '[;| ,]+'), lambda d: d <> '')
              AS detectors,
          nullif(reason, '') AS reason,
          {_time("expires")} AS expires,
          CASE WHEN lower(kind) NOT IN ({kinds})
                 THEN 'kind must be one of {", ".join(ALLOW_KINDS)}: ' || value_shape(kind)
               WHEN value = '' THEN 'value is empty'
               WHEN lower(kind) = 'asn'
                    AND TRY_CAST(regexp_replace(upper(value), '^AS\\s*', '') AS BIGINT) IS NULL
                 THEN 'asn is not a number: ' || value_shape(value)
               WHEN lower(kind) = 'ip' AND ip_num(value) IS NULL
                 THEN 'not an IP address: ' || value_shape(value)
               WHEN lower(kind) = 'cidr' AND (ip_num(split_part(value, '/', 1)) IS NULL
                    OR TRY_CAST(split_part(value, '/', 2) AS INTEGER) IS NULL)
                 THEN 'not a CIDR block: ' || value_shape(value)
               WHEN lower(kind) = 'cidr' AND NOT TRY_CAST(split_part(value, '/', 2) AS INTEGER)
                    BETWEEN 0 AND CASE WHEN contains(value, ':') THEN 128 ELSE 32 END
                 THEN 'CIDR prefix length out of range: ' || value_shape(value)
               WHEN expires <> '' AND {_time("expires")} IS NULL
                 THEN 'expires is not a timestamp: ' || value_shape(expires)
          END AS _error
        FROM (SELECT * REPLACE (trim(kind) AS kind, trim(value) AS value) FROM ref_rows)"""


class Allowlist(ReferenceFormat):
    name = "allowlist"
    description = "CSV kind,value,detectors,reason,expires (kind: " + ", ".join(ALLOW_KINDS) + ")"
    table = "allowlist"
    columns = ALLOW_COLUMNS

    def sniff(self, head: list[str]) -> bool:
        return head[0].strip().lower().replace(" ", "").startswith("kind,value,detectors")

    def load(
        self, con: duckdb.DuckDBPyConnection, path: Path, source_id: int, options: Options
    ) -> tuple[Counts, list[str]]:
        # a file's entry is named by its file and line: the id is a hash of the two
        insert = (
            "INSERT INTO allowlist (kind, value, detectors, reason, expires, source_id, line_no,"
            " entry_id) SELECT kind, value, detectors, reason, expires, $sid, line_no,"
            f" {allow_entry_id('$sid')}"
            " FROM ref_checked WHERE _error IS NULL"
        )
        checked = allowlist_checked()
        counts = load_csv_checked(con, path, source_id, self.columns, 2, checked, [insert])
        return counts, []


_X4B = re.compile(r"^AS\d+\s*(#.*)?$", re.IGNORECASE)
CATEGORIES = (
    "hosting",
    "enterprise_egress",
    "privacy_relay",
    "mobile",
    "isp",
    "education",
    "government",
    "other",
)


class AsnCategories(ReferenceFormat):
    """`asn,category,name` CSV, or a plain ASN list (`AS123 # name`, one per line: hosting)."""

    name = "asn-categories"
    description = "CSV asn,category,name, or an `AS<n> # name` list (hosting/datacenter ASNs)"
    table = "asn_info"
    source_column = None

    def sniff(self, head: list[str]) -> bool:
        first = head[0].strip().lower().replace(" ", "")
        return first.startswith("asn,category") or all(_X4B.match(h.strip()) for h in head[:5])

    def load(
        self, con: duckdb.DuckDBPyConnection, path: Path, source_id: int, options: Options
    ) -> tuple[Counts, list[str]]:
        head = reader.head_lines(path, 1)
        if head and head[0].strip().lower().replace(" ", "").startswith("asn,category"):
            rows, bad, blank = read_csv_rows(path, ["asn", "category", "name"], 2)
        else:
            rows, bad, blank = self._read_list(path, options.extra.get("category", "hosting"))
        cats = ", ".join(f"'{c}'" for c in CATEGORIES)
        checked = f"""
            SELECT line_no, TRY_CAST(regexp_replace(upper(asn), '^AS', '') AS BIGINT) AS asn,
                   lower(category) AS category, nullif(name, '') AS name,
                   CASE WHEN TRY_CAST(regexp_replace(upper(asn), '^AS', '') AS BIGINT) IS NULL
                          THEN 'asn is not a number: ' || value_shape(asn)
                        WHEN lower(category) NOT IN ({cats})
                          THEN 'category must be one of {", ".join(CATEGORIES)}: '
                               || value_shape(category) END AS _error
            FROM ref_rows"""
        inserts = [
            "DELETE FROM asn_info WHERE asn IN (SELECT asn FROM ref_checked WHERE _error IS NULL)",
            "INSERT INTO asn_info SELECT asn, any_value(category), any_value(name),"
            " 'source ' || $sid FROM ref_checked WHERE _error IS NULL GROUP BY asn",
        ]
        # asn_info keeps one row per ASN (the user's file overrides the shipped row), so the
        # table is not reconciled by source; `loaded` counts the rows read, duplicates included.
        counts = _insert_checked(
            con, source_id, ["asn", "category", "name"], rows, bad, checked, inserts
        )
        counts.blank = blank
        return counts, []

    def _read_list(
        self, path: Path, category: str
    ) -> tuple[list[tuple[int, list[str]]], list[tuple[int, str, str]], int]:
        text, bad = _read_text(path)
        rows: list[tuple[int, list[str]]] = []
        blank = 0
        for number, line in enumerate(text.split("\n"), start=1):
            if line == reader.BAD_LINE:
                continue
            if not line.strip():
                blank += 1
                continue
            if _X4B.match(line.strip()):
                asn, _, name = line.partition("#")
                rows.append((number, [asn.strip(), category, name.strip()]))
            else:
                bad.append((number, "expected `AS<number> # name`", line))
        return rows, bad, blank
