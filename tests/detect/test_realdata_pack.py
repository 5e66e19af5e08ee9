"""The whole detector pack on real traffic: the 2015 Apache log of ../shared/realdata.

The log has no credentials, so automation.machine_cadence judges each client IP. Every timestamp
in it falls in minute :05 of its hour, so the gaps between a poller's requests are never regular
(an hour, or a few seconds): the feed pollers show up through their steady hourly counts.
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
# Tiny Tiny RSS on Amazon EC2 (50.16.0.0/15): one or two fetches of one feed in 76 of 84 hours.
AWS_FEED_READER = "50.16.19.13"
# UniversalFeedParser on OVH (46.105.0.0/16): one feed in all 84 hours, ~4 fetches an hour,
# 9.8 s apart on average within the logged minute.
OVH_FEED_PARSER = "46.105.14.53"


@pytest.fixture
def apache_case(case: duckdb.DuckDBPyConnection, realdata: Path) -> duckdb.DuckDBPyConnection:
    result = ingest_file(case, realdata / APACHE_LOG, fmt="combined")
    assert result.status == "loaded", result.message
    assert (result.rows_loaded, result.rows_quarantined) == (9_999, 1)
    return case


def test_the_whole_pack_runs_on_real_apache_traffic_and_finds_the_feed_pollers(
    apache_case: duckdb.DuckDBPyConnection,
) -> None:
    detectors, problems = load_detectors(default_dirs([]))
    assert [str(p) for p in problems] == []
    assert "automation.machine_cadence" in {d.id for d in detectors}

    result = run_detectors(apache_case, detectors)

    assert result.errors == {}
    assert result.status == "ok"
    assert set(result.findings) == {d.id for d in detectors}
    cadence = rows(
        apache_case,
        "SELECT principal_type, principal_id, list(DISTINCT CAST(window_start AS DATE)::VARCHAR"
        " ORDER BY CAST(window_start AS DATE)::VARCHAR) AS days,"
        " list(DISTINCT json_extract_string(evidence, '$.cadence')) AS cadence"
        " FROM findings WHERE detector_id = 'automation.machine_cadence'"
        " GROUP BY ALL ORDER BY principal_id",
    )
    # Default parameters; nothing else on the log is flagged: the crawlers fetch many paths,
    # the people come and go within a few hours.
    assert cadence == [
        {
            "principal_type": "ip",
            "principal_id": OVH_FEED_PARSER,
            "days": ["2015-05-18", "2015-05-19", "2015-05-20"],
            "cadence": ["hours"],
        },
        {
            "principal_type": "ip",
            "principal_id": AWS_FEED_READER,
            "days": ["2015-05-18", "2015-05-19"],
            "cadence": ["hours"],
        },
    ]
