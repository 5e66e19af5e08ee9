"""Offline enrichment (iptoasn, MaxMind) and the user's reference tables."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import pytest

from forensics.case import db
from forensics.ingest.pipeline import ingest_file
from tests.conftest import load, rows
from tests.ingest.test_kong import kong_record
from tests.keys import KEYS


def kong_from(*ips: str) -> str:
    return "".join(json.dumps(kong_record(client_ip=ip)) + "\n" for ip in ips)


IPTOASN = (
    "198.51.100.0\t198.51.100.255\t64500\tDE\tEXAMPLE-TRANSIT-AS Example Transit GmbH\n"
    "203.0.113.0\t203.0.113.127\t16509\tUS\tAMAZON-02\n"
    "203.0.113.128\t203.0.113.255\t0\tNone\tNot routed\n"
    "2001:db8::\t2001:db8::ffff\t53813\tUS\tZSCALER-INC\n"
    "not an ip\t1.2.3.4\t5\tUS\tbroken\n"
)


def test_iptoasn_enriches_new_and_already_loaded_requests(case, tmp_path):
    load(case, tmp_path, kong_from("198.51.100.7", "2001:db8::42"), name="before.jsonl")
    tsv = tmp_path / "ip2asn-combined.tsv.gz"
    tsv.write_bytes(gzip.compress(IPTOASN.encode()))
    result = ingest_file(case, tsv)
    assert (result.format, result.rows_loaded, result.rows_quarantined) == ("iptoasn", 4, 1)
    assert case.execute("SELECT line_no, error FROM quarantine").fetchall() == [
        (5, "range_start / range_end is not an IP address")
    ]
    load(
        case, tmp_path, kong_from("203.0.113.45", "203.0.113.200", "192.0.2.1"), name="after.jsonl"
    )
    got = rows(
        case,
        "SELECT client_ip, asn, as_org, asn_category, asn_source, country, lat, lon, geo_source"
        " FROM requests ORDER BY source_id, line_no",
    )
    us = case.execute("SELECT lat, lon FROM country_centroids WHERE country = 'US'").fetchall()[0]
    de = case.execute("SELECT lat, lon FROM country_centroids WHERE country = 'DE'").fetchall()[0]
    assert got == [
        {
            "client_ip": "198.51.100.7",
            "asn": 64500,
            "as_org": "EXAMPLE-TRANSIT-AS Example Transit GmbH",
            "asn_category": None,
            "asn_source": "iptoasn",
            "country": "DE",
            "lat": de[0],
            "lon": de[1],
            "geo_source": "iptoasn",
        },
        {
            "client_ip": "2001:db8::42",
            "asn": 53813,
            "as_org": "ZSCALER-INC",
            "asn_category": "enterprise_egress",
            "asn_source": "iptoasn",
            "country": "US",
            "lat": us[0],
            "lon": us[1],
            "geo_source": "iptoasn",
        },
        {
            "client_ip": "203.0.113.45",
            "asn": 16509,
            "as_org": "AMAZON-02",
            "asn_category": "hosting",
            "asn_source": "iptoasn",
            "country": "US",
            "lat": us[0],
            "lon": us[1],
            "geo_source": "iptoasn",
        },
        {
            "client_ip": "203.0.113.200",
            "asn": None,
            "as_org": None,
            "asn_category": None,
            "asn_source": None,
            "country": None,
            "lat": None,
            "lon": None,
            "geo_source": None,  # its range is "Not routed": nothing came from iptoasn
        },
        {
            "client_ip": "192.0.2.1",
            "asn": None,
            "as_org": None,
            "asn_category": None,
            "asn_source": None,
            "country": None,
            "lat": None,
            "lon": None,
            "geo_source": None,
        },
    ]


def test_maxmind_asn_and_city_databases(case, tmp_path):
    mmdb_writer = pytest.importorskip("mmdb_writer")
    from netaddr import IPSet

    asn = mmdb_writer.MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-ASN")
    asn.insert_network(
        IPSet(["198.51.100.0/24"]),
        {"autonomous_system_number": 64501, "autonomous_system_organization": "EXAMPLE-NET"},
    )
    asn.to_db_file(str(tmp_path / "GeoLite2-ASN.mmdb"))
    city = mmdb_writer.MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City")
    city.insert_network(
        IPSet(["198.51.100.0/25"]),
        {
            "country": {"iso_code": "FR"},
            "city": {"names": {"en": "Lyon"}},
            "location": {"latitude": 45.76, "longitude": 4.84},
        },
    )
    city.to_db_file(str(tmp_path / "GeoLite2-City.mmdb"))
    for name in ("GeoLite2-ASN.mmdb", "GeoLite2-City.mmdb"):
        assert ingest_file(case, tmp_path / name).format == "mmdb"
    load(case, tmp_path, kong_from("198.51.100.10", "198.51.100.200"))
    got = rows(
        case,
        "SELECT asn, as_org, asn_source, country, city, lat, lon, geo_source"
        " FROM requests ORDER BY line_no",
    )
    assert got == [
        {
            "asn": 64501,
            "as_org": "EXAMPLE-NET",
            "asn_source": "mmdb-asn",
            "country": "FR",
            "city": "Lyon",
            "lat": 45.76,
            "lon": 4.84,
            "geo_source": "mmdb-city",
        },
        {
            "asn": 64501,
            "as_org": "EXAMPLE-NET",
            "asn_source": "mmdb-asn",
            "country": None,
            "city": None,
            "lat": None,
            "lon": None,
            "geo_source": None,
        },
    ]


def test_revocations_ids_and_raw_keys(case, tmp_path):
    key = KEYS["openai-project"]
    result = load(
        case,
        tmp_path,
        (
            "credential_id,revoked_at\n"
            "5d2e8b1c-2222-4c1d-8f3a-9e7b6c5d4a31,2026-01-01T09:30:00Z\n"
            f"{key},2026-01-02 10:00:00\n"
            "abc,1767258000\n"
            ",2026-01-01T00:00:00Z\n"
            "def,yesterday\n"
        ),
        fmt="revocations",
        name="revoked.csv",
    )
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (5, 3, 2)
    got = case.execute(
        "SELECT credential_id, revoked_at FROM revocations ORDER BY line_no"
    ).fetchall()
    utc = dt.UTC
    assert got == [
        ("5d2e8b1c-2222-4c1d-8f3a-9e7b6c5d4a31", dt.datetime(2026, 1, 1, 9, 30, tzinfo=utc)),
        (
            __import__("forensics.case.fingerprints", fromlist=["x"]).fingerprint(
                key, db.salt(case)
            ),
            dt.datetime(2026, 1, 2, 10, 0, tzinfo=utc),
        ),
        ("abc", dt.datetime(2026, 1, 1, 9, 0, tzinfo=utc)),
    ]
    assert case.execute("SELECT line_no, error FROM quarantine ORDER BY 1").fetchall() == [
        (5, "credential_id is empty"),
        (6, "revoked_at is not a timestamp: 9 characters shaped aaaaaaaaa"),
    ]


def test_allowlist_kinds_globs_expiry_and_bad_rows(case, tmp_path):
    result = load(
        case,
        tmp_path,
        (
            "kind,value,detectors,reason,expires\n"
            'asn,AS53813,network.*;credential.impossible_travel,"Zscaler, corporate egress",\n'
            "cidr,198.51.100.0/24,,office NAT,2027-01-01\n"
            "tenant,acme,scraping.*,load test,2026-12-01T00:00:00Z\n"
            "ip,not-an-ip,,x,\n"
            "planet,mars,,x,\n"
        ),
        fmt="allowlist",
        name="allow.csv",
    )
    assert (result.rows_loaded, result.rows_quarantined) == (3, 2)
    got = rows(
        case, "SELECT kind, value, detectors, reason, expires FROM allowlist ORDER BY line_no"
    )
    assert got[0] == {
        "kind": "asn",
        "value": "53813",
        "detectors": ["network.*", "credential.impossible_travel"],
        "reason": "Zscaler, corporate egress",
        "expires": None,
    }
    assert got[1]["detectors"] == [] and got[1]["value"] == "198.51.100.0/24"
    assert got[2]["expires"] == dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    errors = [
        r[0] for r in case.execute("SELECT error FROM quarantine ORDER BY line_no").fetchall()
    ]
    assert errors == [
        "not an IP address: 9 characters shaped aaa-aa-aa",
        "kind must be one of asn, ip, cidr, tenant, credential, user, provider_key, user_agent:"
        " 6 characters shaped aaaaaa",
    ]


def test_user_asn_categories_override_shipped_ones(case, tmp_path):
    load(
        case,
        tmp_path,
        "asn,category,name\n16509,isp,relabelled\n64500,mobile,Example Mobile\n",
        fmt="asn-categories",
        name="cats.csv",
    )
    got = case.execute(
        "SELECT asn, category, name FROM asn_info WHERE asn IN (16509, 64500) ORDER BY asn"
    ).fetchall()
    assert got == [(16509, "isp", "relabelled"), (64500, "mobile", "Example Mobile")]


def test_real_x4b_datacenter_list_loads_as_hosting(case, realdata):
    result = ingest_file(case, realdata / "x4b_datacenter_ASN.txt")
    assert result.format == "asn-categories" and result.reconciles
    lines = [
        ln for ln in (realdata / "x4b_datacenter_ASN.txt").read_text().splitlines() if ln.strip()
    ]
    assert result.rows_read == len(lines) == 906
    assert result.rows_quarantined == 0
    assert case.execute("SELECT category FROM asn_info WHERE asn = 3223").fetchall() == [
        ("hosting",)
    ]
