"""Offline IP enrichment databases: iptoasn TSV and MaxMind GeoLite2 / GeoIP2 .mmdb files.

Both become rows of `ip_ranges` (IPv4 mapped into the IPv6 number space), so looking up a
request's network is one ASOF join in DuckDB. Loading a database also enriches the requests
already in the case that it can place.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from forensics.errors import InputError
from forensics.ingest import canonical, decompress, reader
from forensics.ingest.base import Counts, Options, ReferenceFormat

V4_MAPPED = 0xFFFF00000000

# Re-enrich requests already loaded: the same lookup as ingest uses, over their distinct IPs.
REENRICH = """
UPDATE requests r SET
  asn = coalesce(r.asn, g.asn), as_org = coalesce(r.as_org, g.as_org, ai.name),
  asn_category = coalesce(r.asn_category, ai.category),
  country = coalesce(r.country, upper(g.country)), city = coalesce(r.city, g.city),
  lat = CASE WHEN g.lat IS NOT NULL AND r.geo_source IS DISTINCT FROM 'log' THEN g.lat
             ELSE coalesce(r.lat, cc.lat) END,
  lon = CASE WHEN g.lon IS NOT NULL AND r.geo_source IS DISTINCT FROM 'log' THEN g.lon
             ELSE coalesce(r.lon, cc.lon) END,
  geo_source = coalesce(r.geo_source, g.geo_source)
FROM ipgeo g
LEFT JOIN asn_info ai ON ai.asn = g.asn
LEFT JOIN country_centroids cc ON cc.country = upper(g.country)
WHERE r.client_ip = g.ip AND (r.asn IS NULL OR r.country IS NULL OR r.city IS NULL)
"""


def reenrich(con: duckdb.DuckDBPyConnection) -> int:
    """Fill asn/country/city of loaded requests from the enrichment ranges; rows changed."""
    # `canon` and `ipgeo` are read by the SQL from these variables (replacement scans).
    canon = con.sql(  # noqa: F841
        "SELECT DISTINCT client_ip, NULL AS _error FROM requests"
        " WHERE client_ip IS NOT NULL AND (asn IS NULL OR country IS NULL OR city IS NULL)"
    ).to_arrow_table()
    ipgeo = con.sql(canonical.NO_IP_LOOKUP).to_arrow_table()
    ipgeo = con.sql(canonical.IP_LOOKUP).to_arrow_table()  # noqa: F841 - read by REENRICH
    return int(con.execute(REENRICH).fetchall()[0][0])


class IpToAsn(ReferenceFormat):
    name = "iptoasn"
    description = "iptoasn.com ip2asn-v4/v6/combined TSV: range_start, range_end, AS, country, name"
    kind = "enrichment"
    table = "ip_ranges"

    def sniff(self, head: list[str]) -> bool:
        parts = head[0].split("\t")
        return (
            len(parts) == 5 and parts[2].strip().isdigit() and ("." in parts[0] or ":" in parts[0])
        )

    def load(
        self, con: duckdb.DuckDBPyConnection, path: Path, source_id: int, options: Options
    ) -> tuple[Counts, list[str]]:
        counts = Counts()
        end = decompress.ReadEnd()
        for chunk in reader.read_chunks(path, end):
            con.execute(
                "CREATE OR REPLACE TEMP TABLE tsv AS SELECT $first + i AS line_no, l AS line,"
                " string_split(rtrim(l, chr(13)), chr(9)) AS f"
                " FROM (SELECT unnest(range(len(ls))) AS i, unnest(ls) AS l"
                " FROM (SELECT string_split($text, chr(10)) AS ls)) WHERE trim(l) <> ''",
                {"first": chunk.first_line, "text": chunk.decoded()},
            )
            con.execute(
                "CREATE OR REPLACE TEMP TABLE tsv_checked AS SELECT line_no, line,"
                " ip_num(f[1]) AS s, ip_num(f[2]) AS e, TRY_CAST(f[3] AS BIGINT) AS asn,"
                " nullif(nullif(upper(scrub(f[4])), 'NONE'), '') AS country,"
                " nullif(scrub(f[5]), '') AS org,"
                " CASE WHEN len(f) <> 5 THEN 'expected 5 tab-separated fields, found ' || len(f)"
                "      WHEN ip_num(f[1]) IS NULL OR ip_num(f[2]) IS NULL"
                "        THEN 'range_start / range_end is not an IP address'"
                "      WHEN TRY_CAST(f[3] AS BIGINT) IS NULL THEN 'AS_number is not a number'"
                "      WHEN ip_num(f[1]) > ip_num(f[2]) THEN 'range_start is after range_end'"
                " END AS _error FROM tsv"
            )
            con.execute(
                "INSERT INTO ip_ranges SELECT s, e, asn, org, country, NULL, NULL, NULL, $sid"
                " FROM tsv_checked WHERE _error IS NULL",
                {"sid": source_id},
            )
            con.execute(
                "INSERT INTO quarantine SELECT $sid, line_no, _error,"
                " left(scrub(left(line, 8000)), 2000)"
                " FROM tsv_checked WHERE _error IS NOT NULL",
                {"sid": source_id},
            )
            good, bad, blank = con.execute(
                "SELECT count(*) FILTER (WHERE _error IS NULL),"
                " count(*) FILTER (WHERE _error IS NOT NULL),"
                " $n - (SELECT count(*) FROM tsv) FROM tsv_checked",
                {"n": chunk.line_count},
            ).fetchall()[0]
            counts.loaded += good
            counts.quarantined += bad
            counts.blank += blank
        warnings = []
        if end.problem:
            con.execute(
                "INSERT INTO quarantine VALUES ($1, $2, $3, '')",
                [source_id, end.next_line, end.problem],
            )
            counts.quarantined += 1
            warnings.append(f"{path}:{end.next_line}: {end.problem}")
        counts.read = counts.loaded + counts.quarantined
        reenrich(con)
        return counts, warnings


def _network_bounds(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, int]:
    start, end = int(network.network_address), int(network.broadcast_address)
    if network.version == 4:
        return V4_MAPPED + start, V4_MAPPED + end
    return start, end


def _get(record: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(record, dict):
            return None
        record = record.get(key)
    return record


class MaxMind(ReferenceFormat):
    """GeoLite2 / GeoIP2 ASN, Country and City databases (.mmdb)."""

    name = "mmdb"
    description = "MaxMind GeoLite2 / GeoIP2 ASN, Country or City database (.mmdb)"
    kind = "enrichment"
    table = "ip_ranges"
    auto_detect = False  # binary: chosen by the .mmdb suffix

    def sniff(self, head: list[str]) -> bool:
        return False

    def load(
        self, con: duckdb.DuckDBPyConnection, path: Path, source_id: int, options: Options
    ) -> tuple[Counts, list[str]]:
        import maxminddb

        try:
            db = maxminddb.open_database(str(path))
        except (ValueError, OSError) as e:
            raise InputError(path, f"not a MaxMind DB file: {e}") from e
        columns: dict[str, list[Any]] = {
            k: [] for k in ("ip_start", "ip_end", "asn", "as_org", "country", "city", "lat", "lon")
        }
        seen: set[tuple[int, int]] = set()
        # One pass over the database's networks (not over log records): the tree is flattened
        # into ranges once, then every lookup is a join in DuckDB.
        with db:
            for network, record in db:
                bounds = _network_bounds(network)
                if bounds in seen:  # IPv4 appears again under IPv6 aliases of the same space
                    continue
                seen.add(bounds)
                columns["ip_start"].append(str(bounds[0]))
                columns["ip_end"].append(str(bounds[1]))
                columns["asn"].append(_get(record, "autonomous_system_number"))
                columns["as_org"].append(_get(record, "autonomous_system_organization"))
                columns["country"].append(
                    _get(record, "country", "iso_code")
                    or _get(record, "registered_country", "iso_code")
                )
                columns["city"].append(_get(record, "city", "names", "en"))
                columns["lat"].append(_get(record, "location", "latitude"))
                columns["lon"].append(_get(record, "location", "longitude"))
        arrow = pa.table(
            {
                "ip_start": pa.array(columns["ip_start"], pa.string()),
                "ip_end": pa.array(columns["ip_end"], pa.string()),
                "asn": pa.array(columns["asn"], pa.int64()),
                "as_org": pa.array(columns["as_org"], pa.string()),
                "country": pa.array(columns["country"], pa.string()),
                "city": pa.array(columns["city"], pa.string()),
                "lat": pa.array(columns["lat"], pa.float64()),
                "lon": pa.array(columns["lon"], pa.float64()),
            }
        )
        con.register("mmdb_arrow", arrow)
        try:
            con.execute(
                "INSERT INTO ip_ranges SELECT ip_start::UHUGEINT, ip_end::UHUGEINT, asn,"
                " scrub(as_org), upper(scrub(country)), scrub(city), lat, lon, $sid"
                " FROM mmdb_arrow",
                {"sid": source_id},
            )
        finally:
            con.unregister("mmdb_arrow")
        n = arrow.num_rows
        reenrich(con)
        return Counts(read=n, loaded=n), []
