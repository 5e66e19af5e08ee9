"""The requests of a principal: one definition in the case (forensics/sql/request_principals.sql).

`request_principals` (a view) lists each request once per principal it belongs to, and
`principal_requests(type, id)` (a table macro) gives one principal's requests. Detector
read-backs, finding and incident costs, both reports and the Python API read these instead of
writing their own condition.

The case also stores the detector pack's shared feature `principal_hours` as a view
(forensics/sql/principal_hours.sql, unscoped; forensics/detect/features.py materialises it
scoped for a run), so detector SQL runs as-is in any DuckDB client.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from forensics import sql
from forensics.case.schema import PRINCIPAL_TYPES as TYPES
from forensics.errors import UsageError

if TYPE_CHECKING:
    import duckdb


def parse(spec: str) -> tuple[str, str]:
    """`TYPE:ID` as (type, id), the id spelled as the case stores it (an ASN without "AS",
    an address in lower case); the id may itself hold colons (an IPv6 address)."""
    kind, _, ident = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in TYPES or not ident:
        raise UsageError(
            f"give TYPE:ID, TYPE one of {', '.join(TYPES)}",
            hint="e.g. tenant:acme-prod, credential:key-123, ip:203.0.113.7, asn:64500"
            " (`forensics principals` lists them)",
        )
    ident = ident.strip()
    if kind == "asn":  # as the case stores it: "64500", not "AS64500"
        ident = re.sub(r"^AS\s*", "", ident, flags=re.IGNORECASE)
    elif kind in ("ip", "cidr"):  # addresses are stored in lower case
        ident = ident.lower()
    return kind, ident


def install(con: duckdb.DuckDBPyConnection, read_only: bool, *, views: bool = True) -> None:
    """Store the views in the case (TEMP on a read-only connection) and define the macro;
    with `views` False, only the macro (another connection to a case that stores the views)."""
    kind = "TEMP" if read_only else ""
    if views:
        from forensics.lake.store import install_request_rows

        install_request_rows(con, read_only)
    text = sql.read("request_principals").replace("{kind}", kind)
    for statement in con.extract_statements(text):
        if views or " TEMP MACRO " in statement.query:
            con.execute(statement)
    if views:
        view = "TEMP VIEW" if read_only else "VIEW"
        con.execute(f"CREATE OR REPLACE {view} principal_hours AS {sql.read('principal_hours')}")


def present_types(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """The principal types found in the column principal_type of `table`, as the SQL list to
    put in `request_principals.principal_type IN (...)` (NULL when there are none).

    A join of findings with `request_principals` on the type reads every branch of the view,
    whatever types the findings have; constants in an IN list let DuckDB drop the branches of
    the others before reading anything. At 50M requests in a lake, none of whose findings was
    on a user: the findings' costs 3.8 s instead of 4.8 s, the incidents 4.7 s instead of 7.0 s
    (with incidents.sql grouping by an incident's number).
    """
    rows = con.execute(f"SELECT DISTINCT principal_type FROM {table}").fetchall()
    present = {str(r[0]) for r in rows}
    return ", ".join(f"'{t}'" for t in TYPES if t in present) or "NULL"


# `forensics principals`: who is in the case. The gateway's principals come from
# `request_principals` (one definition of a principal's requests), a provider key from `usage`.
# the columns of `forensics principals`, in order
COLUMNS = ("type", "id", "tenant", "requests", "tokens", "cost_usd", "first_seen", "last_seen",
           "networks", "asns", "countries", "error_pct", "findings", "worst", "incidents",
           "detectors")  # fmt: skip
SORTS = {
    "findings": "worst DESC NULLS LAST, findings DESC, cost_usd DESC NULLS LAST",
    "requests": "requests DESC",
    "cost": "cost_usd DESC NULLS LAST, requests DESC",
    "last_seen": "last_seen DESC",
}

_GATEWAY = """
SELECT principal_type, principal_id,
       CASE WHEN count(DISTINCT tenant_id) = 1 THEN min(tenant_id)
            WHEN count(DISTINCT tenant_id) > 1
            THEN count(DISTINCT tenant_id) || ' tenants' END AS tenant,
       count(*) AS requests,
       coalesce(sum(input_tokens), 0) + coalesce(sum(output_tokens), 0) AS tokens,
       sum(est_cost_usd) AS cost_usd,
       min(ts) AS first_seen, max(ts) AS last_seen,
       count(DISTINCT client_net) AS networks, count(DISTINCT asn) AS asns,
       count(DISTINCT country) AS countries,
       round(100.0 * count(*) FILTER (WHERE status >= 400) / count(*), 1) AS error_pct
FROM request_principals
WHERE principal_type IN ({types})
  AND ($since IS NULL OR ts >= $since) AND ($until IS NULL OR ts < $until)
GROUP BY principal_type, principal_id
"""

_PROVIDER = """
SELECT 'provider_key' AS principal_type, api_key_id AS principal_id,
       string_agg(DISTINCT provider, ', ' ORDER BY provider) AS tenant,
       coalesce(sum(requests), 0) AS requests,
       coalesce(sum(input_tokens), 0) + coalesce(sum(output_tokens), 0) AS tokens,
       sum(cost) AS cost_usd, min(bucket_start) AS first_seen, max(bucket_end) AS last_seen,
       NULL::BIGINT AS networks, NULL::BIGINT AS asns, NULL::BIGINT AS countries,
       NULL::DOUBLE AS error_pct
FROM usage
WHERE api_key_id IS NOT NULL
  AND ($since IS NULL OR bucket_end > $since) AND ($until IS NULL OR bucket_start < $until)
GROUP BY api_key_id
"""

# The current, unsuppressed findings of each principal of the given types overlapping the span
# ($since, $until; NULL: unbounded): how many, the worst severity, which detectors.
_FOUND = """
SELECT principal_type, principal_id, count(*) AS findings, max(severity) AS worst,
       list_sort(list(DISTINCT detector_id)) AS detectors
FROM findings
WHERE superseded_by IS NULL AND NOT coalesce(suppressed, false)
  AND principal_type IN ({types})
  AND ($since IS NULL OR window_end >= $since) AND ($until IS NULL OR window_start < $until)
GROUP BY ALL
"""


def findings_by_principal(types: list[str] | tuple[str, ...] = TYPES) -> str:
    """The SELECT of `_FOUND` for `types` (fixed names, checked against TYPES)."""
    return _FOUND.format(types=", ".join(f"'{t}'" for t in TYPES if t in types))


_LISTING = """
WITH seen AS ({seen}),
found AS ({found}),
raised AS (
    SELECT f.principal_type, f.principal_id, count(DISTINCT i.incident_id) AS incidents
    FROM incidents i, unnest(i.finding_ids) AS u(finding_id)
    JOIN findings f USING (finding_id)
    GROUP BY ALL
)
-- a principal with findings but no traffic in the span (an address judged by its keys'
-- requests, a finding that reaches into the span) is listed too, with no volume
SELECT principal_type AS type, principal_id AS id, s.tenant,
       coalesce(s.requests, 0) AS requests, coalesce(s.tokens, 0) AS tokens,
       s.cost_usd, s.first_seen, s.last_seen, s.networks, s.asns,
       s.countries, s.error_pct, coalesce(f.findings, 0) AS findings, f.worst,
       coalesce(r.incidents, 0) AS incidents, f.detectors
FROM seen s
FULL JOIN found f USING (principal_type, principal_id)
LEFT JOIN raised r USING (principal_type, principal_id)
ORDER BY {order}, type, id
"""


def listing(types: list[str], sort: str) -> str:
    """The SELECT of `forensics principals` for `types` (all when empty), sorted by `sort`;
    its parameters are $since and $until (NULL: unbounded)."""
    chosen = [t for t in TYPES if not types or t in types]
    gateway = [t for t in chosen if t != "provider_key"]
    parts = []
    if gateway:
        parts.append(_GATEWAY.format(types=", ".join(f"'{t}'" for t in gateway)))
    if "provider_key" in chosen:
        parts.append(_PROVIDER)
    return _LISTING.format(
        seen=" UNION ALL ".join(parts), found=findings_by_principal(chosen), order=SORTS[sort]
    )
