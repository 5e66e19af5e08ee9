"""Opening a case database: create it, check its version, install the SQL macros."""

from __future__ import annotations

import os
import secrets as pysecrets
from pathlib import Path

import duckdb

from forensics._version import __version__
from forensics.case import costs, principals, reconcile, severity
from forensics.case import fingerprints as creds
from forensics.case import macros as normalize
from forensics.case.schema import SCHEMA_VERSION, TABLES
from forensics.errors import CaseError, describe_duckdb_error
from forensics.resources import data_file

DEFAULT_DB = "forensics.duckdb"


def default_path() -> Path:
    return Path(os.environ.get("FORENSICS_DB", DEFAULT_DB))


def _meta(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT key, value FROM meta").fetchall())


def _create(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("BEGIN")
    con.execute(severity.ENUM_DDL)
    for t in TABLES:
        con.execute(t.ddl())
    con.execute("CREATE SEQUENCE IF NOT EXISTS source_ids START 1")
    con.executemany(
        "INSERT INTO meta VALUES (?, ?)",
        [
            ["schema_version", str(SCHEMA_VERSION)],
            ["created_by", f"forensics {__version__}"],
            ["fingerprint_salt", pysecrets.token_hex(32)],
        ],
    )
    con.execute(
        "INSERT INTO asn_info SELECT asn, category, name, 'shipped' FROM read_csv($p, header=true,"
        " columns={'asn': 'BIGINT', 'category': 'VARCHAR', 'name': 'VARCHAR'})",
        {"p": str(data_file("asn_categories.csv"))},
    )
    con.execute(
        "INSERT INTO country_centroids SELECT * FROM read_csv($p, header=true, columns="
        "{'country': 'VARCHAR', 'name': 'VARCHAR', 'lat': 'DOUBLE', 'lon': 'DOUBLE'})",
        {"p": str(data_file("country_centroids.csv"))},
    )
    con.execute(
        "INSERT INTO prices SELECT *, 'shipped' FROM read_csv($p, header=true, columns="
        "{'provider': 'VARCHAR', 'model_pattern': 'VARCHAR', 'input_per_mtok': 'DOUBLE',"
        " 'cached_input_per_mtok': 'DOUBLE', 'output_per_mtok': 'DOUBLE',"
        " 'effective_from': 'DATE'})",
        {"p": str(data_file("prices.csv"))},
    )
    con.execute(costs.REQUEST_COSTS_VIEW)
    con.execute("COMMIT")


def connect(
    path: str | Path | None = None, *, read_only: bool = False, create: bool = True
) -> duckdb.DuckDBPyConnection:
    """Open (or create) a case and return a connection with the case's macros installed."""
    path = Path(path) if path is not None else default_path()
    exists = path.exists()
    if not exists and (read_only or not create):
        raise CaseError(
            f"{path}: no case database here", hint="run `forensics ingest` first, or pass --db"
        )
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as e:
        reason = describe_duckdb_error(e)
        raise CaseError(f"{path}: cannot open as a DuckDB case: {reason}") from e
    con.execute("SET TimeZone = 'UTC'")  # offset-less times in logs and CSVs are UTC
    if not exists:
        _create(con)
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "meta" not in tables:
        con.close()
        raise CaseError(f"{path}: a DuckDB file, but not a forensics case (no meta table)")
    meta = _meta(con)
    version = meta.get("schema_version")
    if version != str(SCHEMA_VERSION):
        con.close()
        raise CaseError(
            f"{path}: case schema version {version}, this forensics {__version__} reads version"
            f" {SCHEMA_VERSION}",
            hint="open it with the forensics version that created it ("
            + meta.get("created_by", "unknown")
            + "), or start a new case with --db",
        )
    if not read_only:
        # a table added to the case contract since this case was made (same schema version:
        # additions only) is created empty
        for t in TABLES:
            if t.name not in tables:
                con.execute(t.ddl())
    creds.install_macros(con, bytes.fromhex(meta["fingerprint_salt"]))
    normalize.install_macros(con)
    reconcile.install_views(con, read_only)  # stored in the case, or TEMP when read-only
    principals.install(con, read_only)
    return con


def salt(con: duckdb.DuckDBPyConnection) -> bytes:
    return bytes.fromhex(_meta(con)["fingerprint_salt"])
