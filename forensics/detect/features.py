"""Shared features: what several detectors need, computed in one pass over `requests`.

`principal_hours` has one row per principal (the credential, else the client IP, else the
tenant: principal_type credential, ip or tenant), tenant, UTC hour, target, model family,
network (ASN, its category, the IPv4 /24) and place (country, lat/lon), with the counts and sums
the pack reads: requests, streaming requests, tool calls, cost, output tokens, content-filter
rejections, first and last request, longest latency. Detectors that judge a principal per hour,
day or week aggregate these rows instead of rescanning `requests`, and go back to `requests`
only for the few principals and windows that pass (inter-arrival gaps, sample request ids).

Two forms, one definition:

* the case stores a VIEW `principal_hours` over all requests, so a detector's SQL runs as-is in
  any DuckDB client (the view is computed on each use);
* a detection run (`forensics detect`, `forensics detectors test`) first materialises a table
  of the same name, scoped to the run's since / until / tenant, in an in-memory database the
  run attaches, and gives each of its connections a TEMP view of it, which shadows the case's
  view there: every detector of the run then reads the same precomputed rows.

`target` is the endpoint, or the path for requests whose endpoint is not an AI one (web logs):
"one target" means one kind of request either way.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

from forensics import sql
from forensics.case.db import is_read_only

_SCOPE = (
    "($since IS NULL OR ts >= $since) AND ($until IS NULL OR ts <= $until)"
    " AND ($tenant IS NULL OR tenant_id = $tenant)"
)

# Each feature's SELECT is forensics/sql/<name>.sql; the case stores it as a view
# (forensics/case/principals.py installs it), a run materialises it scoped.
FEATURES = ("principal_hours",)


def scoped(name: str) -> str:
    """The SELECT of feature `name`, restricted to the bound since / until / tenant."""
    return sql.read(name).replace("/*scope*/ true", _SCOPE)


def used_by(tables: Iterable[str]) -> list[str]:
    """The features among a detector's (or a run's) `tables`."""
    wanted = set(tables)
    return [name for name in FEATURES if name in wanted]


def materialize(
    con: duckdb.DuckDBPyConnection,
    names: list[str],
    params: dict[str, object],
    into: str,
) -> None:
    """Compute `names` once, scoped by params since / until / tenant, as tables of the attached
    database `into` (which every connection of the run can read: see `expose`)."""
    scope = {k: params.get(k) for k in ("since", "until", "tenant")}
    for name in names:
        con.execute(f"CREATE OR REPLACE TABLE {into}.{name} AS {scoped(name)}", scope)


_UNITS = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
_UNITS |= {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def share_of_memory(con: duckdb.DuckDBPyConnection) -> float:
    """How much of DuckDB's memory limit the in-memory tables take (the materialised features,
    mostly): 0.0 when the limit is not a size this reads."""
    [(limit, used)] = con.execute(
        "SELECT current_setting('memory_limit'), (SELECT sum(memory_usage_bytes"
        " + temporary_storage_bytes) FROM duckdb_memory() WHERE tag = 'IN_MEMORY_TABLE')"
    ).fetchall()
    number, _, unit = str(limit).partition(" ")
    try:
        limit_bytes = float(number) * _UNITS[unit]
    except (KeyError, ValueError):
        return 0.0
    return float(used or 0) / limit_bytes if limit_bytes > 0 else 0.0


def expose(con: duckdb.DuckDBPyConnection, names: list[str], into: str) -> None:
    """On `con`, a TEMP view of each feature over its table in `into`: it shadows the case's
    unscoped view of the same name (and a read-only connection's TEMP one) for this
    connection."""
    for name in names:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {into}.{name}")


def drop(con: duckdb.DuckDBPyConnection, names: list[str]) -> None:
    """Undo `expose` on `con`; a read-only connection gets its unscoped TEMP view back."""
    for name in names:
        con.execute(f"DROP VIEW IF EXISTS temp.{name}")
    if is_read_only(con):
        for name in names:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql.read(name)}")
