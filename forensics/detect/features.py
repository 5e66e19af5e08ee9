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

_SCOPE = (
    "($since IS NULL OR ts >= $since) AND ($until IS NULL OR ts <= $until)"
    " AND ($tenant IS NULL OR tenant_id = $tenant)"
)

PRINCIPAL_HOURS = r"""
SELECT
    CASE WHEN credential_id IS NOT NULL THEN 'credential'
         WHEN client_ip IS NOT NULL THEN 'ip' ELSE 'tenant' END AS principal_type,
    coalesce(credential_id, client_ip, tenant_id) AS principal_id,
    tenant_id,
    time_bucket(INTERVAL 1 HOUR, ts) AS hour,
    CASE WHEN endpoint IS NULL OR endpoint = 'other' THEN path ELSE endpoint END AS target,
    endpoint,
    model_family,
    asn,
    asn_category,
    country,
    lat,
    lon,
    CASE WHEN regexp_full_match(client_ip, '[0-9]{{1,3}}(\.[0-9]{{1,3}}){{3}}')
         THEN regexp_extract(client_ip, '^([0-9]+\.[0-9]+\.[0-9]+)\.', 1) || '.0/24' END AS net24,
    count(*) AS requests,
    min(ts) AS first_ts,
    max(ts) AS last_ts,
    count(*) FILTER (WHERE stream) AS stream_requests,
    count(*) FILTER (WHERE origin NOT IN ('', 'null')) AS origin_requests,
    coalesce(sum(tool_calls), 0) AS tool_calls,
    sum(est_cost_usd) AS est_cost_usd,
    sum(output_tokens) AS output_tokens,
    count(output_tokens) AS output_requests,
    count(*) FILTER (WHERE error_type = 'content_filter') AS content_filter,
    max(latency_ms) AS max_latency_ms
FROM requests
WHERE ts IS NOT NULL AND coalesce(credential_id, client_ip, tenant_id) IS NOT NULL AND {scope}
GROUP BY ALL
"""

FEATURES = {"principal_hours": PRINCIPAL_HOURS}


def install_views(con: duckdb.DuckDBPyConnection, read_only: bool) -> None:
    """Store the unscoped views in the case (TEMP views on a read-only connection)."""
    kind = "TEMP VIEW" if read_only else "VIEW"
    for name, body in FEATURES.items():
        con.execute(f"CREATE OR REPLACE {kind} {name} AS {body.format(scope='true')}")


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
            f"CREATE OR REPLACE TEMP TABLE {name} AS {FEATURES[name].format(scope=_SCOPE)}",
            scope,
        )


def drop(con: duckdb.DuckDBPyConnection, names: list[str]) -> None:
    for name in names:
        con.execute(f"DROP TABLE IF EXISTS temp.{name}")
