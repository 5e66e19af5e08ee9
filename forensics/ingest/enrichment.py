"""Offline IP enrichment databases, and where each request's network and place come from.

An iptoasn TSV or a MaxMind .mmdb becomes rows of `ip_ranges` (IPv4 mapped into the IPv6 number
space), so looking up a request's network is one ASOF join in DuckDB. A database has a kind,
kept in `sources` (`KIND_SQL`): `iptoasn`; `mmdb-city` for a .mmdb whose records carry a country
or a location (GeoLite2 / GeoIP2 City or Country); `mmdb-asn` for one whose records carry none
(GeoLite2 ASN). The .mmdb's own `database_type` is recorded beside it in `sources.options`.

A request's fields come in two groups, each from ONE place, which `requests.asn_source` and
`requests.geo_source` name (`placed` is the rule; ingest and `reenrich` both run it):

* asn / as_org: the log's when it gives them (`log`); otherwise the database that knows the
  address's AS, an ASN database before a City one before iptoasn (`mmdb-asn`, `mmdb-city`,
  `iptoasn`), the newest first among databases of a kind. as_org falls back to `asn_info`.
* country / city / lat / lon, where the country always comes first:
  - the log gives a city or coordinates: all four are the log's (`log`; lat / lon the
    centroid of its country when it gives a city only);
  - the log gives only a country: it is kept. The address's city (and its coordinates) from the
    best database is used only when that database places the address in the same country: then
    geo_source names the database, which gave the finest field. When it places the address in
    another country, its city is dropped, lat / lon are the centroid of the log's country and
    geo_source is `centroid`; the ingest summary counts these requests. With no city in any
    database, lat / lon are the centroid and geo_source stays `log`;
  - the log gives nothing: everything comes from the best database (a City database before an
    ASN database before iptoasn, whose country is where the AS is registered; a record with a
    city first; the newest first), lat / lon from its country's centroid when it has none.
  So geo_source names where the finest field used came from; centroid coordinates count as part
  of the country, and `centroid` means a database's city was refused.

Loading or removing a database places the requests already in the case again by the same rule
(`reenrich`), from what their rows still show of the log: the log's asn (asn_source `log`), and
the log's country (geo_source `log` or `centroid`) and city / coordinates (geo_source `log`), so
the order in which logs and databases arrive does not change the result, with one exception.
A row cannot show that the log gave the country when a database's city agreed with it
(geo_source names the database), so a request that a database placed at a city or coordinates
keeps that place while more databases are loaded (a second City database does not move it),
and is placed again, as if its log had given no country, when a database of that kind is
removed (`case.removal`).
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from forensics.errors import InputError
from forensics.ingest import decompress, reader
from forensics.ingest.base import Counts, Options, ReferenceFormat
from forensics.lake.store import rewriting

V4_MAPPED = 0xFFFF00000000

# The kind of an enrichment database, from its `sources` row.
KIND_SQL = "coalesce(options->>'enrichment', format)"
# Which database wins for each group: the higher rank, then a record with a city or coordinates
# (geo), then the newer source.
_ASN_RANK = "CASE kind WHEN 'mmdb-asn' THEN 3 WHEN 'mmdb-city' THEN 2 ELSE 1 END"
_GEO_RANK = "CASE kind WHEN 'mmdb-city' THEN 3 WHEN 'mmdb-asn' THEN 2 ELSE 1 END"

# Client addresses of `canon` not yet in `ipgeo` (the file's lookups so far), looked up in
# every enrichment database loaded: per address, the best database's AS (asn, as_org,
# asn_source) and the best database's place (country, city, lat, lon, geo_source), each
# from one database. Every address gets a row, found or not, so no address is looked up
# twice in a file.
IP_LOOKUP = f"""
WITH ips AS (
  SELECT DISTINCT client_ip AS ip, ip_num(client_ip) AS n FROM canon
  WHERE _error IS NULL AND client_ip IS NOT NULL
    AND client_ip NOT IN (SELECT ip FROM ipgeo)
), dbs AS (
  SELECT source_id, {KIND_SQL} AS kind FROM sources
  WHERE source_id IN (SELECT DISTINCT source_id FROM ip_ranges)
), hits AS (
  SELECT p.ip, p.source_id, p.kind, r.asn, r.as_org, r.country, r.city, r.lat, r.lon,
         r.city IS NOT NULL OR (r.lat IS NOT NULL AND r.lon IS NOT NULL) AS place
  FROM (SELECT ip, n, dbs.* FROM ips CROSS JOIN dbs WHERE n IS NOT NULL) p
  ASOF JOIN ip_ranges r ON p.source_id = r.source_id AND p.n >= r.ip_start
  WHERE p.n <= r.ip_end
), found AS (
  SELECT ip,
    arg_max({{'asn': asn, 'as_org': as_org, 'source': kind}}, [{_ASN_RANK}, source_id])
      FILTER (asn > 0) AS a,
    arg_max({{'country': country, 'city': city, 'lat': lat, 'lon': lon, 'source': kind}},
            [{_GEO_RANK}, place::INTEGER, source_id])
      FILTER (country IS NOT NULL OR place) AS g
  FROM hits GROUP BY ip
)
SELECT ips.ip, a.asn, a.as_org, a.source AS asn_source,
       g.country, g.city, g.lat, g.lon, g.source AS geo_source
FROM ips LEFT JOIN found USING (ip)
"""

NO_IP_LOOKUP = """
SELECT NULL::VARCHAR AS ip, NULL::BIGINT AS asn, NULL::VARCHAR AS as_org,
       NULL::VARCHAR AS asn_source, NULL::VARCHAR AS country, NULL::VARCHAR AS city,
       NULL::DOUBLE AS lat, NULL::DOUBLE AS lon, NULL::VARCHAR AS geo_source WHERE false
"""


def placed(rows: str) -> str:
    """The rule of the module docstring, as SQL: `rows` (a relation with client_ip and what the
    log gave in asn, as_org, country, city, lat, lon, plus asn_category, asn_source and
    geo_source, whose values are ignored) with those nine columns replaced by the request's
    network and place (geo_source `centroid`: a database's city refused). It reads `ipgeo`
    (IP_LOOKUP's rows), `asn_info` and `country_centroids`."""
    return f"""
SELECT x.* EXCLUDE (_asn_log, _geo_log, _place, _country, _log_xy, _db_xy,
                    g_asn, g_as_org, g_asn_source, g_country, g_city, g_lat, g_lon, g_geo_source)
  REPLACE (
    CASE WHEN _asn_log THEN x.asn ELSE g_asn END AS asn,
    coalesce(CASE WHEN _asn_log THEN x.as_org ELSE g_as_org END, ai.name) AS as_org,
    ai.category AS asn_category,
    CASE WHEN _asn_log THEN 'log' ELSE g_asn_source END AS asn_source,
    _country AS country,
    CASE _place WHEN 'log' THEN x.city WHEN 'database' THEN g_city END AS city,
    CASE WHEN _place = 'log' AND _log_xy THEN x.lat
         WHEN _place = 'database' AND _db_xy THEN g_lat ELSE cc.lat END AS lat,
    CASE WHEN _place = 'log' AND _log_xy THEN x.lon
         WHEN _place = 'database' AND _db_xy THEN g_lon ELSE cc.lon END AS lon,
    CASE _place WHEN 'log' THEN 'log' WHEN 'database' THEN g_geo_source
                WHEN 'refused' THEN 'centroid'
                ELSE CASE WHEN _geo_log THEN 'log' WHEN _country IS NOT NULL THEN g_geo_source END
    END AS geo_source)
FROM (
  SELECT *,
    CASE WHEN _geo_log THEN y.country ELSE g_country END AS _country,
    -- where the city and coordinates come from: the log, the database, or nowhere
    CASE WHEN y.city IS NOT NULL OR _log_xy THEN 'log'
         WHEN g_city IS NULL AND NOT _db_xy THEN NULL
         WHEN NOT _geo_log OR y.country = g_country THEN 'database'
         ELSE 'refused' END AS _place
  FROM (
    SELECT i.*,
      i.asn IS NOT NULL OR i.as_org IS NOT NULL AS _asn_log,
      i.country IS NOT NULL OR i.city IS NOT NULL OR (i.lat IS NOT NULL AND i.lon IS NOT NULL)
        AS _geo_log,
      i.lat IS NOT NULL AND i.lon IS NOT NULL AS _log_xy,
      g.lat IS NOT NULL AND g.lon IS NOT NULL AS _db_xy,
      g.asn AS g_asn, g.as_org AS g_as_org, g.asn_source AS g_asn_source,
      g.country AS g_country, g.city AS g_city, g.lat AS g_lat, g.lon AS g_lon,
      g.geo_source AS g_geo_source
    FROM ({rows}) i LEFT JOIN ipgeo g ON g.ip = i.client_ip
  ) y
) x
LEFT JOIN asn_info ai ON ai.asn = CASE WHEN x._asn_log THEN x.asn ELSE x.g_asn END
LEFT JOIN country_centroids cc ON cc.country = x._country
"""


# What a request's row still shows of its log (module docstring), and whether its place is
# kept: a database's city or coordinates, which may have agreed with a country the log gave.
_AS_LOGGED = """
SELECT _rid, client_ip,
  CASE WHEN asn_source = 'log' THEN asn END AS asn,
  CASE WHEN asn_source = 'log' THEN as_org END AS as_org,
  NULL::VARCHAR AS asn_category, asn_source,
  CASE WHEN geo_source IN ('log', 'centroid') THEN country END AS country,
  CASE WHEN geo_source = 'log' THEN city END AS city,
  CASE WHEN geo_source = 'log' AND NOT _at_centre THEN lat END AS lat,
  CASE WHEN geo_source = 'log' AND NOT _at_centre THEN lon END AS lon,
  geo_source,
  coalesce(geo_source NOT IN ('log', 'centroid') AND (city IS NOT NULL OR NOT _at_centre), false)
    AS _keep_place
FROM (
  SELECT r.rowid AS _rid, r.client_ip, r.asn, r.as_org, r.asn_source, r.country, r.city,
         r.lat, r.lon, r.geo_source,
         (r.lat, r.lon) IS NOT DISTINCT FROM (cc.lat, cc.lon) AS _at_centre
  FROM requests r LEFT JOIN country_centroids cc ON cc.country = r.country
  WHERE r.client_ip IS NOT NULL
)
"""

_ASN = ("asn", "as_org", "asn_category", "asn_source")
_GEO = ("country", "city", "lat", "lon", "geo_source")


def _differ(columns: tuple[str, ...]) -> str:
    return (
        f"({', '.join(f'requests.{c}' for c in columns)})"
        f" IS DISTINCT FROM ({', '.join(f'p.{c}' for c in columns)})"
    )


# Place the requests already loaded again: the same rule as ingest, over their addresses.
REENRICH = f"""
UPDATE requests SET
  {", ".join(f"{c} = p.{c}" for c in _ASN)},
  {", ".join(f"{c} = CASE WHEN p._keep_place THEN requests.{c} ELSE p.{c} END" for c in _GEO)}
FROM ({placed(_AS_LOGGED)}) p
WHERE requests.rowid = p._rid
  AND ({_differ(_ASN)} OR (NOT p._keep_place AND {_differ(_GEO)}))
"""


def reenrich(con: duckdb.DuckDBPyConnection) -> int:
    """Place the loaded requests again after the enrichment databases changed (module docstring);
    returns how many a database's city newly put at their country's centroid."""
    with rewriting(con, "requests"):  # a lake's requests are written again
        return _reenrich(con)


def _reenrich(con: duckdb.DuckDBPyConnection) -> int:
    # `canon`, `ipgeo` and `centroid_before` are read by the SQL from these variables
    # (replacement scans), so they are issued from this frame.
    canon = con.sql(  # noqa: F841
        "SELECT DISTINCT client_ip, NULL AS _error FROM requests WHERE client_ip IS NOT NULL"
    ).to_arrow_table()
    ipgeo = con.sql(NO_IP_LOOKUP).to_arrow_table()
    ipgeo = con.sql(IP_LOOKUP).to_arrow_table()  # noqa: F841 - read by REENRICH
    centroid_before = con.sql(  # noqa: F841
        "SELECT rowid AS _rid FROM requests WHERE geo_source = 'centroid'"
    ).to_arrow_table()
    con.execute(REENRICH)
    [(newly,)] = con.execute(
        "SELECT count(*) FROM requests WHERE geo_source = 'centroid'"
        " AND rowid NOT IN (SELECT _rid FROM centroid_before)"
    ).fetchall()
    return int(newly)


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
        counts.geo_disagreements = reenrich(con)
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
            db_type = str(db.metadata().database_type)
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
        # a record with a country or a location makes a City / Country database
        located = any(v is not None for k in ("country", "lat") for v in columns[k])
        kind = "mmdb-city" if located else "mmdb-asn"
        con.execute(
            "UPDATE sources SET options = json_merge_patch(options, CAST(scrub($add) AS JSON))"
            " WHERE source_id = $sid",
            {"sid": source_id, "add": json.dumps({"enrichment": kind, "database_type": db_type})},
        )
        n = arrow.num_rows
        return Counts(read=n, loaded=n, geo_disagreements=reenrich(con)), []
