"""abuse.account_farm and credential.dev_tool_use beyond their inline cases: why the quiet
cases are quiet, how users extend the path table, the evidence, a web log shaped like a public
one of a real sign-up and login farm, the real Apache log, and the synthetic worlds' scenarios.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from forensics.case import db
from forensics.detect.inline_tests import run_case
from forensics.detect.model import Detector, DetectorTest
from forensics.detect.runner import run_detectors
from forensics.ingest.pipeline import ingest_file
from forensics.synth import SynthConfig, build
from forensics.synth.account_scenarios import (
    FARM_AGENTS,
    LOGIN_PATHS,
    SIGNUP_PATHS,
    STUFFING_AGENTS,
)
from tests.conftest import load, rows
from tests.detect.test_inline_tests import case_named, shipped

FARM = "abuse.account_farm"
DEV = "credential.dev_tool_use"
OLD_FIREFOX = "Mozilla/5.0 (Windows NT 6.1; rv:32.0) Gecko/20100101 Firefox/32.0"


def returns(detector: Detector, case: DetectorTest, tmp_path: Path, n: int, **changes: Any) -> None:
    """The detector returns `n` rows on `case` with `changes` (events, params) applied."""
    variant = dataclasses.replace(case, expect=None, rows=n, **changes)
    result = run_case(detector, variant, tmp_path)
    assert result.passed, result.detail


def line(ip: str, at: dt.datetime, method: str, path: str, status: int, agent: str) -> str:
    return (
        f'{ip} - - [{at:%d/%b/%Y:%H:%M:%S} +0000] "{method} {path} HTTP/1.1" {status} 1024'
        f' "https://www.example.org/" "{agent}"'
    )


def findings(
    con: duckdb.DuckDBPyConnection, detector_id: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    result = run_detectors(con, [shipped(detector_id)], overrides={detector_id: params or {}})
    assert result.errors == {}
    found = rows(
        con,
        "SELECT principal_type, principal_id, severity, summary, evidence FROM findings"
        " WHERE detector_id = $d ORDER BY window_start, principal_id",
        {"d": detector_id},
    )
    for f in found:
        f["evidence"] = json.loads(str(f["evidence"]))
    return found


# --- abuse.account_farm ---------------------------------------------------------------------


def test_launch_day_is_quiet_because_its_people_use_the_product(tmp_path: Path) -> None:
    detector = shipped(FARM)
    launch = case_named(detector, "launch-day sign-ups")
    assert run_case(detector, launch, tmp_path / "a").passed
    # the same sign-ups, had nobody gone on to use the product, would be a farm
    signups_only = tuple(e for e in launch.events if " /signup HTTP" in e)
    assert len(signups_only) == 12
    returns(detector, launch, tmp_path / "b", 1, events=signups_only)


def test_extra_roles_adds_a_path_and_none_takes_a_shipped_one_out(tmp_path: Path) -> None:
    detector = shipped(FARM)
    site = case_named(detector, "a site-specific sign-up path")
    returns(detector, site, tmp_path / "a", 0, params={"min_addresses": 5})
    farm = case_named(detector, "sign-up and login form farm")
    dropped = {"min_addresses": 5, "extra_roles": "/join_form=none; /login_form=none"}
    returns(detector, farm, tmp_path / "b", 0, params=dropped)
    # the user's pattern wins over a shipped one for the same path
    moved = {"min_addresses": 5, "extra_roles": "*_form=form"}
    returns(detector, farm, tmp_path / "c", 0, params=moved)


def test_form_farm_evidence(case: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    start = dt.datetime(2026, 3, 2, 6, 0, 0, tzinfo=dt.UTC)
    lines = []
    for i in range(6):
        ip = f"198.51.100.{10 + i}" if i < 4 else f"203.0.113.{20 + i}"
        t = start + dt.timedelta(minutes=9 * i)
        lines += [
            line(ip, t, "GET", "/accounts/register/", 200, OLD_FIREFOX),
            line(ip, t + dt.timedelta(seconds=1), "POST", "/accounts/register/", 302, OLD_FIREFOX),
            line(
                ip,
                t + dt.timedelta(seconds=3),
                "POST",
                "/v1/organization/api_keys",
                201,
                OLD_FIREFOX,
            ),  # fmt: skip
        ]
    lines.append(line("203.0.113.90", start, "GET", "/reset.css", 200, OLD_FIREFOX))
    load(case, tmp_path, "\n".join(lines) + "\n", fmt="combined")
    [found] = findings(case, FARM, {"min_addresses": 5})
    ev = found["evidence"]
    assert (found["principal_type"], found["principal_id"]) == ("cidr", "198.51.100.0/24")
    assert found["severity"] == "medium"
    assert ev["sequence"] == "GET signup > POST signup > POST key_create"
    assert ev["sequence_share"] == 1.0
    assert ev["addresses"] == 6 and ev["networks"] == 2 and ev["principal_share"] == 0.667
    assert ev["attempts_per_address"] == {"min": 3, "median": 3.0, "max": 3}
    assert ev["median_form_seconds"] == 1.0
    assert ev["role_counts"] == [
        {"role": "signup", "requests": 12},
        {"role": "key_create", "requests": 6},
    ]
    assert (ev["succeeded"], ev["refused"], ev["rate_limited"]) == (18, 0, 0)
    assert ev["user_agent"] == OLD_FIREFOX
    assert "6 addresses on 2 networks drove" in str(found["summary"])


def test_password_reset_paths_have_their_role_and_reset_css_has_none(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    start = dt.datetime(2026, 3, 2, 6, 0, 0, tzinfo=dt.UTC)
    lines = []
    for i in range(5):
        t = start + dt.timedelta(minutes=5 * i)
        ip = f"192.0.2.{30 + i}"
        lines += [
            line(ip, t, "POST", "/users/password", 302, "aiohttp/3.8.4"),
            line(ip, t + dt.timedelta(seconds=2), "GET", "/reset.css", 200, "aiohttp/3.8.4"),
        ]
    load(case, tmp_path, "\n".join(lines) + "\n", fmt="combined")
    [found] = findings(case, FARM, {"min_addresses": 5})
    assert found["evidence"]["role_counts"] == [{"role": "password_reset", "requests": 5}]
    assert found["evidence"]["sequence"] == "POST password_reset"


def public_plone_farm_log(addresses: int) -> str:
    """A web log shaped like the public Plone log of a sign-up and login farm (nielsbasjes/
    logparser, examples/demolog/hackers-access.log, 2015): hundreds of addresses, one stale
    browser string a day, each address landing on a page, opening /join_form and sending it a
    second later (302: account made), then /login_form; a person reads pages with assets."""
    start = dt.datetime(2026, 3, 3, 1, 0, 0, tzinfo=dt.UTC)
    out = []
    for i in range(addresses):
        ip = f"198.18.{i // 50}.{(i * 37) % 250 + 2}"
        t = start + dt.timedelta(minutes=13 * i)
        if i % 3 == 0:
            out.append(line(ip, t - dt.timedelta(seconds=1), "GET", "/linux/pxe-boot", 200,
                            OLD_FIREFOX))  # fmt: skip
        out += [
            line(ip, t, "GET", "/join_form", 200, OLD_FIREFOX),
            line(ip, t + dt.timedelta(seconds=1), "POST", "/join_form", 302, OLD_FIREFOX),
            line(ip, t + dt.timedelta(seconds=2), "GET",
                 "/acl_users/credentials_cookie_auth/require_login", 200, OLD_FIREFOX),
            line(ip, t + dt.timedelta(seconds=3), "GET", "/login_form", 200, OLD_FIREFOX),
        ]  # fmt: skip
        if i % 4:
            out.append(line(ip, t + dt.timedelta(seconds=4), "POST", "/login_form", 200,
                            OLD_FIREFOX))  # fmt: skip
    reader = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
    for path in ("/linux/pxe-boot", "/style.css", "/logo.png", "/login_form", "/open-source"):
        out.append(line("192.0.2.200", start, "GET", path, 200, reader))
    return "\n".join(out) + "\n"


def test_a_log_shaped_like_a_public_farm_log_fires_with_default_parameters(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    load(case, tmp_path, public_plone_farm_log(24), fmt="combined")
    [found] = findings(case, FARM)
    ev = found["evidence"]
    assert ev["addresses"] == 24 and ev["addresses_on_these_endpoints"] == 24
    assert ev["sequence"] == "GET signup > POST signup > GET login > POST login"
    assert ev["median_form_seconds"] == 1.0
    assert found["principal_type"] == "cidr"


def test_near_miss_of_the_public_farm_shape(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    load(case, tmp_path, public_plone_farm_log(19), fmt="combined")
    assert findings(case, FARM) == []


@pytest.mark.realdata
def test_real_apache_log_has_no_account_farm_or_dev_tool_use(
    case: duckdb.DuckDBPyConnection, realdata: Path
) -> None:
    """The 2015 Apache log's only account paths are /wp-login.php (12 addresses, a few a
    day) and /user/register, all answered 404: probes of endpoints the site does not have."""
    result = ingest_file(case, realdata / "elastic-examples_apache_logs.log", fmt="combined")
    assert result.status == "loaded"
    probes = rows(
        case,
        "SELECT count(*) AS n, count(DISTINCT client_ip) AS ips, list(DISTINCT status) AS st"
        " FROM requests WHERE path IN ('/wp-login.php', '/user/register')",
    )
    assert probes == [{"n": 13, "ips": 13, "st": [404]}]
    detectors = [shipped(FARM), shipped(DEV)]
    run = run_detectors(case, detectors, overrides={FARM: {"min_addresses": 2}})
    assert run.errors == {}
    assert rows(case, "SELECT count(*) AS n FROM findings") == [{"n": 0}]


# --- credential.dev_tool_use ----------------------------------------------------------------


def test_dev_tool_use_evidence_says_the_key_also_serves_servers(tmp_path: Path) -> None:
    detector = shipped(DEV)
    comcast = case_named(detector, "curl with a raw key from Comcast")
    assert run_case(detector, comcast, tmp_path / "a").passed
    # a private address is an internal hop, not a home: the same calls from 10.1.2.3 are quiet
    internal = tuple(
        {**e, "ClientIP": "10.1.2.3"} if e["ClientRequestUserAgent"] == "curl/8.5.0" else e
        for e in comcast.events
    )
    returns(detector, comcast, tmp_path / "b", 0, events=internal)


def test_dev_tool_use_httpie_on_a_mobile_carrier(
    case: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    events = [
        {
            "RayID": f"h{i}",
            "EdgeStartTimestamp": f"2026-01-07T08:0{i}:00Z",
            "ClientIP": "198.51.100.99",
            "ClientASN": 21928,
            "ClientCountry": "us",
            "ClientRequestMethod": "POST",
            "ClientRequestURI": "/v1/embeddings",
            "ClientRequestUserAgent": "HTTPie/3.2.2",
            "EdgeResponseStatus": 200,
            "RequestHeaders": {"authorization": "Bearer sk-proj-Htt9ieK3yMob1leQ7wE2"},
        }
        for i in range(4)
    ]
    load(case, tmp_path, "\n".join(json.dumps(e) for e in events) + "\n", fmt="cloudflare")
    [found] = findings(case, DEV)
    ev = found["evidence"]
    assert found["severity"] == "low"
    assert ev["tools"] == ["HTTPie"] and ev["network_kinds"] == ["mobile"]
    assert ev["server_requests"] == 0 and ev["requests"] == 4
    assert "home or mobile connection" in str(found["summary"])


# --- synthetic worlds -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_synthetic_worlds_label_one_farm_and_one_dev_tool_key(seed: int) -> None:
    world = build(SynthConfig(days=7, tenants=2, seed=seed))
    labels = {lb.detector: lb for lb in world.labels}
    farm, dev = labels[FARM], labels[DEV]
    assert farm.principal_type in ("asn", "cidr") and farm.tenant_id is None
    assert dev.principal_type == "credential"
    requests = [c for c in world.calls if c.path is not None]
    bots = {*FARM_AGENTS, *STUFFING_AGENTS}
    assert all(c.cred is None for c in requests if c.user_agent in bots)
    # the look-alikes are there: a launch-day wave on current browsers, and one office NAT
    people = [c for c in requests if c.user_agent not in bots]
    signed_up = {c.ip for c in people if c.method == "POST" and c.path.endswith(SIGNUP_PATHS)}
    assert len(signed_up) >= 60
    logins = Counter(c.ip for c in people if c.method == "POST" and c.path.endswith(LOGIN_PATHS))
    assert logins.most_common(1)[0][1] >= 7 * 30


def test_a_case_made_before_the_path_table_gets_it_shipped_when_opened(tmp_path: Path) -> None:
    con = db.connect(tmp_path / "old.duckdb")
    shipped_rows = con.execute("SELECT count(*) FROM endpoint_roles").fetchall()[0][0]
    assert shipped_rows > 30
    con.execute("DROP TABLE endpoint_roles")
    con.close()
    con = db.connect(tmp_path / "old.duckdb")
    try:
        again = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE pattern = '/oauth/token' AND role = 'login')"
            " FROM endpoint_roles"
        ).fetchall()
        assert again == [(shipped_rows, 1)]
    finally:
        con.close()
