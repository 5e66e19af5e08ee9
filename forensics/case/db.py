"""Opening a case database: create it, check its version, install the SQL macros."""

from __future__ import annotations

import os
import secrets as pysecrets
from contextlib import suppress
from pathlib import Path

import duckdb

from forensics._version import __version__
from forensics.case import costs, principals, reconcile, severity, triage
from forensics.case import fingerprints as creds
from forensics.case import macros as normalize
from forensics.case.schema import SCHEMA_VERSION, TABLES
from forensics.errors import CaseError, UsageError, describe_duckdb_error
from forensics.lake import store as lake
from forensics.lake.snapshot import PARTITIONED
from forensics.resources import data_file
from forensics.sqltext import sql_str

DEFAULT_DB = "forensics.duckdb"
# DuckDB settings every case connection of this process opens with (`limit_resources`)
_RESOURCES: dict[str, str] = {}
# the case this process creates with a lake, and the lake (`use_lake`, `forensics --lake`)
_LAKE: dict[Path, Path] = {}


def default_path() -> Path:
    return Path(os.environ.get("FORENSICS_DB", DEFAULT_DB))


def memory_limit() -> str | None:
    """The memory limit this process's case connections open with, if one was given."""
    return _RESOURCES.get("memory_limit")


def limit_resources(memory_limit: str | None = None, temp_directory: Path | None = None) -> None:
    """Bound the memory of every case connection this process opens from now on (`forensics
    --memory-limit 4GB`; None: DuckDB's default, 80 % of RAM) and where DuckDB spills what does
    not fit (`--temp-dir`; None: `<case>.tmp` beside the case file). A size DuckDB cannot read
    is a UsageError that describes it without repeating it."""
    wanted: dict[str, str] = {}
    if memory_limit is not None:
        wanted["memory_limit"] = memory_limit.strip()
        try:
            duckdb.connect(config={"memory_limit": wanted["memory_limit"]}).close()
        except duckdb.Error as e:
            raise UsageError(
                f"--memory-limit: not a size DuckDB reads ({len(memory_limit)} characters)",
                hint="a number and a unit, e.g. 4GB, 512MiB, 80%",
            ) from e
    if temp_directory is not None:
        wanted["temp_directory"] = str(temp_directory)
    _RESOURCES.clear()
    _RESOURCES.update(wanted)


def use_lake(directory: Path | None, *, case: Path | None = None) -> None:
    """The case at `case`, when this process creates it, keeps `requests` and `usage` in
    `directory` (forensics/lake/store.py); None: every case keeps them in its database file.
    Only that case: a scratch case the process makes (`detectors test`) keeps its own rows.
    The case, opened later, must name the same lake or none (it remembers its own)."""
    _LAKE.clear()
    if directory is not None:
        if case is None:
            raise ValueError("use_lake: name the case that keeps its rows in the lake")
        _LAKE[case.resolve()] = directory


def _lake_for(path: Path) -> Path | None:
    """The lake `use_lake` gave the case at `path`, if any."""
    return _LAKE.get(path.resolve())


def _meta(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT key, value FROM meta").fetchall())


# The rows the package ships for reference tables (a user file's rows override asn_info and
# prices by key; endpoint_roles is extended by the abuse.account_farm parameter extra_roles):
# table -> (package data file, the SELECT of its rows, with origin 'shipped' where it has one).
SHIPPED: dict[str, tuple[str, str]] = {
    "asn_info": (
        "asn_categories.csv",
        "SELECT asn, category, name, 'shipped' FROM read_csv($p, header=true,"
        " columns={'asn': 'BIGINT', 'category': 'VARCHAR', 'name': 'VARCHAR'})",
    ),
    "prices": (
        "prices.csv",
        "SELECT *, 'shipped' FROM read_csv($p, header=true, columns="
        "{'provider': 'VARCHAR', 'model_pattern': 'VARCHAR', 'input_per_mtok': 'DOUBLE',"
        " 'cached_input_per_mtok': 'DOUBLE', 'output_per_mtok': 'DOUBLE',"
        " 'effective_from': 'DATE'})",
    ),
    "endpoint_roles": (
        "endpoint_roles.csv",
        "SELECT * FROM read_csv($p, header=true,"
        " columns={'pattern': 'VARCHAR', 'role': 'VARCHAR'})",
    ),
}


def shipped(table: str) -> tuple[str, dict[str, str]]:
    """The SELECT of the shipped rows of `table` (asn_info, prices) and its parameters."""
    name, select = SHIPPED[table]
    return select, {"p": str(data_file(name))}


def _create(con: duckdb.DuckDBPyConnection, lake_root: Path | None) -> None:
    con.execute("BEGIN")
    con.execute(severity.ENUM_DDL)
    for t in TABLES:
        if not (lake_root and t.name in PARTITIONED):  # a lake's are views (lake.create)
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
    if lake_root is not None:
        lake.create(con, lake_root)
    for table in SHIPPED:
        select, params = shipped(table)
        con.execute(f"INSERT INTO {table} {select}", params)
    con.execute(
        "INSERT INTO country_centroids SELECT * FROM read_csv($p, header=true, columns="
        "{'country': 'VARCHAR', 'name': 'VARCHAR', 'lat': 'DOUBLE', 'lon': 'DOUBLE'})",
        {"p": str(data_file("country_centroids.csv"))},
    )
    con.execute(costs.REQUEST_COSTS_VIEW)
    con.execute("COMMIT")


def _is_blank(con: duckdb.DuckDBPyConnection) -> bool:
    """A DuckDB file with nothing in it: no table, view, sequence or type of its own."""
    [(objects,)] = con.execute(
        "SELECT (SELECT count(*) FROM duckdb_tables() WHERE NOT temporary)"
        " + (SELECT count(*) FROM duckdb_views() WHERE NOT internal AND NOT temporary)"
        " + (SELECT count(*) FROM duckdb_sequences() WHERE NOT temporary)"
        " + (SELECT count(*) FROM duckdb_types()"
        "    WHERE NOT internal AND database_name = current_database())"
    ).fetchall()
    return int(objects) == 0


def connect(
    path: str | Path | None = None,
    *,
    read_only: bool = False,
    create: bool = True,
    allow_missing: bool = False,
) -> duckdb.DuckDBPyConnection:
    """Open (or create) a case and return a connection with the case's macros installed.
    `allow_missing` (read-only): a lake case whose listed files are not all on disk opens,
    reading the files still there (`verify`); otherwise that is a CaseError."""
    path = Path(path) if path is not None else default_path()
    exists = path.exists()
    if not exists and (read_only or not create):
        raise CaseError(
            f"{path}: no case database here", hint="run `forensics ingest` first, or pass --db"
        )
    try:
        con = duckdb.connect(str(path), read_only=read_only, config=dict(_RESOURCES))
    except duckdb.Error as e:
        reason = describe_duckdb_error(e)
        raise CaseError(f"{path}: cannot open as a DuckDB case: {reason}") from e
    try:
        _prepare(
            con,
            path,
            exists=exists,
            read_only=read_only,
            create=create,
            allow_missing=allow_missing,
        )
    except CaseError:
        con.close()
        raise
    except duckdb.Error as e:  # a damaged file: DuckDB cannot read a page of it
        con.close()
        reason = describe_duckdb_error(e)
        raise CaseError(
            f"{path}: damaged case: {reason}",
            hint="restore the case file from a copy, or ingest the evidence into a new case",
        ) from e
    return con


# Tables added to the case contract after schema version 2 was first released: a case made
# before such an addition gets the table, empty, when opened read-write (read-only, readers
# do without it). Any other missing table means the case was damaged or edited outside the
# tool.
_ADDED_LATER = frozenset(
    {"source_digests", "source_removals", "endpoint_roles", "triage", "lake_files"}
)
# Columns added the same way to a table that was already there: a case made before gets the
# column (NULL in its old rows) when opened read-write.
_COLUMNS_ADDED_LATER = (
    ("sources", "content_sha256"),
    ("findings", "stale_by_source"),
    *(("allowlist", c) for c in ("entry_id", "added_by", "added_at", "removed_at", "removed_by")),
)


def _prepare(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    exists: bool,
    read_only: bool,
    create: bool,
    allow_missing: bool,
) -> None:
    """Create or check the case behind `con` and install its macros and views."""
    # offset-less times in logs and CSVs are UTC; GLOBAL, so that every connection to the case
    # in this process (`session`) reads times the same way
    con.execute("SET GLOBAL TimeZone = 'UTC'")
    con.execute("SET TimeZone = 'UTC'")
    if not exists or (create and not read_only and _is_blank(con)):
        _create(con, _lake_for(path))  # also a case whose creation was killed before it committed
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "meta" not in tables:
        raise CaseError(f"{path}: a DuckDB file, but not a forensics case (no meta table)")
    meta = _meta(con)
    version = meta.get("schema_version")
    if version != str(SCHEMA_VERSION):
        raise CaseError(
            f"{path}: case schema version {version}, this forensics {__version__} reads version"
            f" {SCHEMA_VERSION}",
            hint="open it with the forensics version that created it ("
            + meta.get("created_by", "unknown")
            + "), or start a new case with --db",
        )
    in_lake = lake.lake_dir(con) is not None  # its requests and usage are views
    missing = [t.name for t in TABLES if t.name not in tables]
    missing = [name for name in missing if not (in_lake and name in PARTITIONED)]
    damaged = [name for name in missing if name not in _ADDED_LATER]
    if damaged:
        raise CaseError(
            f"{path}: damaged case: table {', '.join(damaged)} missing",
            hint="restore the case file from a copy, or ingest the evidence into a new case",
        )
    if not read_only:
        _add_later_parts(con, missing)
    lake.check(con, _lake_for(path), read_only)
    lake.allow_reads(con)
    gone = lake.missing(con)
    if gone and not (read_only and allow_missing):
        raise CaseError(
            f"{path}: {len(gone)} of the Parquet files the case lists are missing from its lake"
            f" (the first: {gone[0]})",
            hint="`forensics verify` lists them and the sources whose rows they held; restore"
            " them from a copy of the lake",
        )
    if gone:
        lake.refresh_views(con, present_only=True)
    if in_lake and not read_only:
        lake.tidy(con)  # what a killed writer left: never listed, so never read
    salt = meta.get("fingerprint_salt", "")
    if len(salt) != 64 or any(c not in "0123456789abcdef" for c in salt):
        raise CaseError(
            f"{path}: damaged case: its fingerprint salt (meta.fingerprint_salt) is missing or"
            " not 64 hex digits, so credentials cannot be fingerprinted as they were",
            hint="restore the case file from a copy; a new salt would not match the stored"
            " fingerprints",
        )
    creds.install_macros(con, bytes.fromhex(salt))
    normalize.install_macros(con)
    reconcile.install_views(con, read_only)  # stored in the case, or TEMP when read-only
    principals.install(con, read_only)
    triage.install(con, read_only)


def _add_later_parts(con: duckdb.DuckDBPyConnection, missing: list[str]) -> None:
    """Create the tables and columns of `_ADDED_LATER` and `_COLUMNS_ADDED_LATER` a case lacks."""
    for t in TABLES:
        if t.name in missing:
            con.execute(t.ddl())
            if t.name in SHIPPED:  # a table the package fills gets the shipped rows
                select, params = shipped(t.name)
                con.execute(f"INSERT INTO {t.name} {select}", params)
    present = set(
        con.execute(
            "SELECT table_name, column_name FROM duckdb_columns()"
            " WHERE database_name = current_database() AND schema_name = current_schema()"
        ).fetchall()
    )
    for table_name, column in _COLUMNS_ADDED_LATER:
        if (table_name, column) not in present:
            [declared] = [
                c for t in TABLES if t.name == table_name for c in t.columns if c.name == column
            ]
            con.execute(f"ALTER TABLE {table_name} ADD COLUMN {column} {declared.type}")
            if (table_name, column) == ("allowlist", "entry_id"):
                from forensics.ingest.reference import allow_entry_id

                # a file's rows get the id they would get today
                con.execute(
                    f"UPDATE allowlist SET entry_id = {allow_entry_id('source_id')}"
                    " WHERE source_id IS NOT NULL"
                )


_SANDBOX = (
    # extensions: nothing fetched from the network or loaded from disk on a query's behalf
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET allow_community_extensions = false",
    # JSON columns keep their type through Arrow, so `output.write_result` can write files for
    # a connection that cannot (the same bytes as DuckDB's own COPY)
    "SET arrow_lossless_conversion = true",
)


def session(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Another connection to the case behind `con` (to run a query beside it, in another
    thread), with the macros (and, on a read-only case, the TEMP views) `connect` installs, and
    `con`'s time zone. It shares `con`'s sandbox; close it before `con`."""
    read_only = is_read_only(con)
    other = con.cursor()
    zone = "SELECT current_setting('TimeZone')"
    [(name,)] = con.execute(zone).fetchall()
    if other.execute(zone).fetchall() != [(name,)]:
        with suppress(duckdb.Error):  # a sandboxed connection's settings are locked
            other.execute(f"SET TimeZone = {sql_str(str(name))}")
    if other.execute(zone).fetchall() != [(name,)]:
        other.close()
        raise CaseError("a second connection to the case would read times in another zone")
    creds.install_macros(other, salt(con))
    normalize.install_macros(other)
    if read_only:
        reconcile.install_views(other, True)
    principals.install(other, read_only, views=read_only)
    if read_only:
        triage.install(other, read_only)
    return other


def is_read_only(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the case behind `con` was opened read-only."""
    [(read_only,)] = con.execute(
        "SELECT readonly FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchall()
    return bool(read_only)


def sandbox(
    con: duckdb.DuckDBPyConnection, *, allow_files: bool = False, lock: bool = True
) -> None:
    """Lock `con` down for SQL the tool did not write (ad hoc SQL, detectors).

    External access goes off (no COPY TO, EXPORT, ATTACH, INSTALL, LOAD, and no file, glob or
    network read: only the case file itself stays open), unless `allow_files` (`forensics sql
    --allow-files`, reading only: statements that write are refused before they run); DuckDB
    cannot turn it back on while the database runs. Then the configuration is locked, so no
    SET, RESET or PRAGMA can change any setting. DuckDB keeps these settings per database, for
    every connection to it in this process, and for good: call this last, after the
    connection's own setup. A connection sandboxed already is left as it is.

    `lock=False` does all but the lock, for a caller with a setting of its own still to change
    while SQL it did not write runs, none of which can set anything (the runner: the threads
    its detectors share, each detector one guarded SELECT); it calls `sandbox(con)` after.
    """
    if is_locked(con):
        if external_access(con) and not allow_files:
            raise CaseError("the case connection is locked with external access on")
        return
    for setting in _SANDBOX:
        con.execute(setting)
    if not allow_files:
        con.execute("SET enable_external_access = false")
    if lock:
        con.execute("SET lock_configuration = true")


def is_locked(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether `con`'s configuration is locked (`sandbox`): no SET, RESET or PRAGMA changes it."""
    return con.execute("SELECT current_setting('lock_configuration')").fetchall() == [(True,)]


def external_access(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether `con` may read and write files (False once `sandbox` locked it down)."""
    return con.execute("SELECT current_setting('enable_external_access')").fetchall() == [(True,)]


def salt(con: duckdb.DuckDBPyConnection) -> bytes:
    return bytes.fromhex(_meta(con)["fingerprint_salt"])
