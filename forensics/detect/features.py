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
* a detection run (`forensics detect`, `forensics detectors test`) first materialises a TEMP
  TABLE of the same name, scoped to the run's since / until / tenant, which shadows the view for
  that connection: every detector of the run then reads the same precomputed rows.

`target` is the endpoint, or the path for requests whose endpoint is not an AI one (web logs):
"one target" means one kind of request either way.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

from forensics import sql

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
) -> None:
    """Compute `names` once for this connection, scoped by params since / until / tenant."""
    scope = {k: params.get(k) for k in ("since", "until", "tenant")}
    for name in names:
        temp_views = con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE temporary AND view_name = $n", {"n": name}
        ).fetchall()[0][0]
        if temp_views:  # a read-only connection's TEMP view of the same name
            con.execute(f"DROP VIEW temp.{name}")
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {name} AS {scoped(name)}",
            scope,
        )


def drop(con: duckdb.DuckDBPyConnection, names: list[str]) -> None:
    for name in names:
        con.execute(f"DROP TABLE IF EXISTS temp.{name}")
