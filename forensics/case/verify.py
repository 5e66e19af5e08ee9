"""`forensics verify`: are the files the case was built from still what was ingested, and is the
case itself still what ingest stored?

Two checks:

* files: each source file still on disk is re-hashed and compared with `sources.sha256`;
* rows: each source's rows are counted in every table that holds them and compared with
  `sources.rows_loaded` / `rows_quarantined`, and a digest of the rows (as ingest stored them,
  before later enrichment or repricing filled derived columns) is compared with the one
  recorded in `source_digests` when the file was ingested. Rows deleted, added or edited
  outside the tool show up here even when the files are gone.

The digest is DuckDB's `hash()` of each row, summed: it finds accidents and careless edits, not
a forger, who could rewrite `source_digests` as well. It depends on DuckDB's hash function, so
the DuckDB version is stored with it; a case verified by another version has its counts checked
and its digests reported as not comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from forensics.case.schema import TABLES
from forensics.ingest.decompress import sha256_file

# Tables whose rows come from one source file, with the columns later steps fill in (asn and
# place from enrichment ranges loaded after the requests, cost from a newer price table): they
# are left out of the digest, which covers what the file said.
ROW_TABLES: dict[str, tuple[str, ...]] = {
    "requests": (
        "asn",
        "as_org",
        "asn_category",
        "country",
        "city",
        "lat",
        "lon",
        "asn_source",
        "geo_source",
        "est_cost_usd",
    ),
    "usage": (),
    "revocations": (),
    "retired_keys": (),
    "allowlist": (),
    "known_keys": (),
    "key_inventory": (),
    "ip_ranges": (),
    "quarantine": (),
}
# Formats whose rows land in tables without a source_id (replaced by newer files of the same
# kind): their counts cannot be checked row by row.
_UNCOUNTED_FORMATS = ("asn-categories", "prices")


@dataclass(frozen=True)
class Check:
    source_id: int
    path: str
    status: str  # ok | MISMATCH | missing


@dataclass(frozen=True)
class RowCheck:
    source_id: int
    status: str  # ok | CHANGED | not comparable
    detail: str


def verify_sources(con: duckdb.DuckDBPyConnection) -> list[Check]:
    checks = []
    for source_id, path, digest in con.execute(
        "SELECT source_id, path, sha256 FROM sources ORDER BY source_id"
    ).fetchall():
        p = Path(path)
        if not p.is_file():
            status = "missing"
        else:
            status = "ok" if sha256_file(p) == digest else "MISMATCH"
        checks.append(Check(source_id, path, status))
    return checks


def _digest_sql(table: str) -> str:
    """count and digest of `table` per source_id, over the columns ingest wrote."""
    left_out = set(ROW_TABLES[table])
    columns = [c.name for t in TABLES if t.name == table for c in t.columns]
    kept = ", ".join(f'"{c}"' for c in columns if c not in left_out and c != "source_id")
    return (
        f"SELECT source_id, '{table}' AS table_name, count(*) AS rows,"
        f" CAST(sum(CAST(hash(row({kept})) AS HUGEINT)) AS VARCHAR) AS digest"
        f" FROM {table} WHERE source_id = $source GROUP BY source_id"
    )


def record_digests(con: duckdb.DuckDBPyConnection, source_id: int) -> None:
    """Store the count and digest of a source's rows in every table (inside its ingest)."""
    con.execute("DELETE FROM source_digests WHERE source_id = $source", {"source": source_id})
    for table in ROW_TABLES:
        con.execute(
            f"INSERT INTO source_digests SELECT *, $engine FROM ({_digest_sql(table)})",
            {"source": source_id, "engine": duckdb.__version__},
        )


def verify_rows(con: duckdb.DuckDBPyConnection) -> list[RowCheck]:
    """Each source's rows now against what its ingest stored (see the module docstring)."""
    checks = []
    sources = con.execute(
        "SELECT source_id, format, rows_loaded, rows_quarantined FROM sources ORDER BY source_id"
    ).fetchall()
    has_digests = bool(
        con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = 'source_digests'").fetchall()
    )
    for source_id, fmt, loaded, quarantined in sources:
        now = {
            table: (rows, digest)
            for _, table, rows, digest in (
                row
                for table in ROW_TABLES
                for row in con.execute(_digest_sql(table), {"source": source_id}).fetchall()
            )
        }
        problems = []
        stored_rows = sum(rows for table, (rows, _) in now.items() if table != "quarantine")
        if fmt not in _UNCOUNTED_FORMATS and stored_rows != loaded:
            problems.append(f"{stored_rows} rows in the case, ingest loaded {loaded}")
        held = now.get("quarantine", (0, ""))[0]
        if held != quarantined:
            problems.append(f"{held} quarantine rows, ingest quarantined {quarantined}")
        recorded = (
            con.execute(
                "SELECT table_name, rows, digest, engine FROM source_digests WHERE source_id = $s",
                {"s": source_id},
            ).fetchall()
            if has_digests
            else []
        )
        engines = {engine for *_, engine in recorded}
        comparable = engines <= {duckdb.__version__}
        if recorded and comparable:
            then = {table: (rows, digest) for table, rows, digest, _ in recorded}
            changed = sorted(t for t in set(then) | set(now) if then.get(t) != now.get(t))
            if changed:
                problems.append("rows edited, added or deleted in " + ", ".join(changed))
        if problems:
            checks.append(RowCheck(source_id, "CHANGED", "; ".join(problems)))
        elif not recorded:
            checks.append(RowCheck(source_id, "ok", "counts match (no digest recorded)"))
        elif not comparable:
            versions = ", ".join(sorted(engines))
            checks.append(
                RowCheck(source_id, "not comparable", f"counts match; digest by DuckDB {versions}")
            )
        else:
            checks.append(RowCheck(source_id, "ok", "counts and digest match"))
    return checks
