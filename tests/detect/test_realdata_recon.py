"""recon.endpoint_enumeration and credential.key_testing on real traffic: the 2015 Apache log
of ../shared/realdata, with default parameters.

The addresses below were picked by reading the log (grep by address, status and path), not from
the detector's output. The log has no credentials, so each client is its address, and no
request carries an API key, so credential.key_testing has nothing to judge.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from forensics.detect.load import default_dirs, load_detectors
from forensics.detect.runner import run_detectors
from forensics.ingest.pipeline import ingest_file
from tests.conftest import rows

pytestmark = pytest.mark.realdata

APACHE_LOG = "elastic-examples_apache_logs.log"

# 20 May 2015, 05:05 UTC: eight HEAD requests within one minute, each for an FCKeditor page
# (fckeditor/editor/fckeditor.html, _samples/default.html, filemanager/connectors/test.html,
# under /, /admin/, /include/ and /js/), all appended to one blog post's URL and all 404. A
# scanner looking for the editor's file manager, a known upload hole; its only other request
# (GET / on 18 May) is two days earlier.
FCKEDITOR_SCANNER = "91.236.75.25"
# Four addresses that each sent the same three requests within a minute, /wp-login.php,
# /administrator/ and /admin.php, all 404, and nothing else, with the same family of user
# agent (Windows NT 5.1-6.1, AppleWebKit/537.1): one CMS admin-panel probe from a botnet.
CMS_PROBERS = ("198.245.61.43", "188.165.243.45", "195.250.34.144", "95.78.54.93")

# Clients with 404s that are not walking the site:
QUIET = {
    # MJ12bot (Majestic's crawler): 27 requests, 14 of them 404 for links it scraped from page
    # text (mangled URLs like /scripts//%22file://$file/%22), the rest robots.txt and pages.
    "144.76.95.39": "crawler following broken links",
    # Chef Client fetching one missing jar (/files/logstash/logstash-1.3.2-monolithic.jar),
    # sixty times over four days.
    "208.91.156.11": "one missing path retried",
    # Googlebot: 482 requests, 8 of them 404.
    "66.249.73.135": "crawler, pages mostly there",
    # A spider with no user agent that read about forty pages of the site and also asked for
    # /wp-login.php and /administrator/index.php (404): CMS fingerprinting, two admin paths
    # among pages that exist. The same on 18 May from the second address.
    "144.76.194.187": "two admin paths among forty pages",
    "199.168.96.66": "two admin paths among forty pages",
    # An iPhone reading a project page, then its apple-touch-icon variants (four 404s).
    "84.137.208.44": "browser asking for home-screen icons",
    # /wordpress/wp-admin/ and /wp/wp-admin/, two requests, both 404: a near miss.
    "212.90.148.107": "two admin paths only",
}


@pytest.fixture
def apache_case(case: duckdb.DuckDBPyConnection, realdata: Path) -> duckdb.DuckDBPyConnection:
    result = ingest_file(case, realdata / APACHE_LOG, fmt="combined")
    assert result.status == "loaded", result.message
    return case


def test_the_probers_of_the_real_log_are_found_and_the_crawlers_are_not(
    apache_case: duckdb.DuckDBPyConnection,
) -> None:
    detectors, problems = load_detectors(default_dirs([]))
    assert [str(p) for p in problems] == []
    pack = [
        d for d in detectors if d.id in ("recon.endpoint_enumeration", "credential.key_testing")
    ]
    assert len(pack) == 2

    result = run_detectors(apache_case, pack)

    assert result.errors == {}
    found = rows(
        apache_case,
        "SELECT detector_id, principal_type, principal_id, severity::VARCHAR AS severity,"
        " json_extract(evidence, '$.sensitive_paths')::INTEGER AS sensitive,"
        " json_extract(evidence, '$.missing_targets')::INTEGER AS missing"
        " FROM findings ORDER BY principal_id",
    )
    by_address = {f["principal_id"]: f for f in found}
    assert {f["detector_id"] for f in found} == {"recon.endpoint_enumeration"}
    assert {f["principal_type"] for f in found} == {"ip"}
    assert set(by_address) == {FCKEDITOR_SCANNER, *CMS_PROBERS}
    assert not set(QUIET) & set(by_address)

    # eight missing FCKeditor paths, all of them known-vulnerable-component paths: medium
    scanner = by_address[FCKEDITOR_SCANNER]
    assert (scanner["missing"], scanner["sensitive"], scanner["severity"]) == (8, 8, "medium")
    # three admin paths each: enough to name the probe, low
    for address in CMS_PROBERS:
        prober = by_address[address]
        assert (prober["missing"], prober["sensitive"], prober["severity"]) == (3, 3, "low")
