"""recon.endpoint_enumeration and credential.key_testing: evidence, severity, scope, and the
look-alikes that must stay quiet for the reason they claim.

Besides the inline cases, small fixtures here follow the shapes of other public access logs
with bot traffic (written from their documented format, with documentation addresses): the
Joomla admin-login botnet of the almhuette-raith.at Apache log (each address GET
/administrator/, then POST /administrator/index.php, both answered 200, one Firefox 34 user
agent), a config-file harvester with URL-encoded dots, a WordPress login brute force answered
200, and key checkers that validate each key with GET /v1/models.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from forensics.detect.inline_tests import evaluate
from forensics.detect.model import DetectorTest
from tests.detect.test_inline_tests import case_named, shipped

ENUMERATION = "recon.endpoint_enumeration"
KEY_TESTING = "credential.key_testing"


def combined(*lines: str, params: dict[str, Any] | None = None) -> DetectorTest:
    return DetectorTest(name="fixture", format="combined", events=lines, params=params or {})


def line(ip: str, when: str, request: str, status: int, agent: str, referer: str = "-") -> str:
    return f'{ip} - - [{when} +0000] "{request} HTTP/1.1" {status} 512 "{referer}" "{agent}"'


# --- credential.key_testing -----------------------------------------------------------------


def test_key_testing_names_the_network_and_lists_the_victims(tmp_path: Path) -> None:
    detector = shipped(KEY_TESTING)
    case = case_named(detector, "a checker on two addresses")
    [row] = evaluate(detector, case, tmp_path)
    assert (row["principal_type"], row["principal_id"]) == ("cidr", "203.0.113.0/24")
    assert row["tenant_id"] == "tenant-acme"  # the one victim's tenant
    assert row["severity"] == "high"  # a key worked
    ev = row["evidence"]
    assert ev["victims"] == ["7e3f9a10-5555-4c2d-9b8e-2f1a6c4d8e03"]
    assert ev["victim_tenants"] == ["tenant-acme"]
    assert (ev["refused_keys"], ev["accepted_keys"], ev["keys_presented"]) == (12, 1, 13)
    assert ev["addresses"] == ["203.0.113.41", "203.0.113.42"]
    assert ev["statuses"] == {"401": 11, "403": 1}
    assert ev["paths"] == ["/llm/v1/models"]
    assert all(k.startswith("cred:") for k in ev["refused_key_sample"])
    assert "kt1-12" in row["sample_request_ids"]  # the victim's request among the samples
    assert str(row["window_end"]).startswith("2026-01-10 08:05:00")  # up to the accepted key
    assert "sk-proj-" not in str(row)  # fingerprints only


def test_key_testing_without_a_working_key_is_medium(tmp_path: Path) -> None:
    detector = shipped(KEY_TESTING)
    case = case_named(detector, "a checker on two addresses")
    refused_only = dataclasses.replace(case, events=case.events[:-1])
    [row] = evaluate(detector, refused_only, tmp_path)
    assert row["severity"] == "medium"
    assert (row["evidence"]["victims"], row["tenant_id"]) == ([], None)


def test_key_testing_groups_an_ipv6_host_by_its_64(tmp_path: Path) -> None:
    detector = shipped(KEY_TESTING)
    [row] = evaluate(detector, case_named(detector, "Anthropic keys"), tmp_path)
    assert row["principal_id"] == "2001:db8:7:1::/64"  # three spellings of one /64
    assert row["evidence"]["address_count"] == 4
    assert row["evidence"]["refused_keys"] == 4


def test_key_testing_tenant_scope_shows_testing_that_reached_the_tenant(tmp_path: Path) -> None:
    detector = shipped(KEY_TESTING)
    case = case_named(detector, "a checker on two addresses")
    hit = dataclasses.replace(case, params={"tenant": "tenant-acme"})
    assert len(evaluate(detector, hit, tmp_path / "hit")) == 1
    other = dataclasses.replace(case, params={"tenant": "tenant-globex"})
    assert evaluate(detector, other, tmp_path / "other") == []


def _set_key(event: dict[str, Any], key: str) -> dict[str, Any]:
    request = event["request"]
    headers = {**request["headers"], "authorization": f"Bearer {key}"}
    return {**event, "request": {**request, "headers": headers}}


def test_key_testing_quiet_cases_are_quiet_for_their_reason(tmp_path: Path) -> None:
    detector = shipped(KEY_TESTING)
    # the revoked key retried: the same retries with a different key each time fire
    retried = case_named(detector, "a server retrying")
    varied = tuple(
        _set_key(e, f"sk-proj-Rotating{i:02d}Zq7Wd3Lx9Pe2Rb") for i, e in enumerate(retried.events)
    )
    assert len(evaluate(detector, dataclasses.replace(retried, events=varied), tmp_path / "a")) == 1
    # rotation day: without the replacement keys that work, the refused old keys fire
    rotation = case_named(detector, "rotation day")
    refused = tuple(e for e in rotation.events if e["response"]["status"] == 401)
    assert len(evaluate(detector, dataclasses.replace(rotation, events=refused), tmp_path / "b"))
    # the near miss in time: without the twenty-minute pause it is one burst
    paused = case_named(detector, "near miss in time")
    wide = dataclasses.replace(paused, params={**paused.params, "max_gap_minutes": 30})
    assert len(evaluate(detector, wide, tmp_path / "c")) == 1


def test_key_testing_ignores_login_forms_and_expired_jwts(tmp_path: Path) -> None:
    """A WordPress login brute force (POST /wp-login.php, answered 200, from two addresses) has
    no API key; refused JWTs are routine expiry. Neither is key testing."""
    detector = shipped(KEY_TESTING)
    agent = "-"
    brute = [line(f"192.0.2.{7 + i % 2}", f"22/Oct/2024:21:54:{i:02d}", "POST /wp-login.php",
                  200, agent) for i in range(40)]  # fmt: skip
    assert evaluate(detector, combined(*brute), tmp_path / "wp") == []
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLXt9IiwiZXhwIjoxNzY4MDAwMDAwfQ.c2lnbmF0dXJl"
    expired = [
        {"started_at": 1768032000000 + 1000 * i, "client_ip": "100.64.0.9",
         "request": {"id": f"jw-{i}", "method": "POST", "uri": "/llm/v1/chat",
                     "headers": {"authorization": f"Bearer {jwt}{i:02d}"}},
         "response": {"status": 401}}
        for i in range(15)
    ]  # fmt: skip
    case = DetectorTest(name="jwt", events=tuple(expired))
    assert evaluate(detector, case, tmp_path / "jwt") == []


# --- recon.endpoint_enumeration -------------------------------------------------------------


def test_enumeration_evidence_of_a_keyless_scanner(tmp_path: Path) -> None:
    detector = shipped(ENUMERATION)
    [row] = evaluate(detector, case_named(detector, "keyless scanner"), tmp_path)
    assert (row["principal_type"], row["principal_id"]) == ("ip", "203.0.113.77")
    assert row["severity"] == "medium"  # six sensitive paths
    ev = row["evidence"]
    assert ev["sensitive_path_sample"] == [
        "/.env", "/.git/config", "/actuator/env", "/swagger.json", "/v1/models", "/wp-admin/",
    ]  # fmt: skip
    assert (ev["requests"], ev["refused_requests"], ev["refused_share"]) == (8, 7, 0.875)
    assert ev["statuses"] == {"401": 1, "404": 6}
    assert ev["methods"] == {"GET": 7}
    assert ev["sensitive_answered"] == []
    assert ev["distinct_paths"] == 8
    assert len(row["sample_request_ids"]) == 6  # the missing and sensitive requests


def test_enumeration_of_models_by_a_key(tmp_path: Path) -> None:
    detector = shipped(ENUMERATION)
    [row] = evaluate(detector, case_named(detector, "a key asking for nine models"), tmp_path)
    assert (row["principal_type"], row["tenant_id"]) == ("credential", "tenant-trial-7731")
    assert row["severity"] == "low"
    ev = row["evidence"]
    assert ev["refused_models"] == sorted(ev["refused_models"])
    assert {"gpt-5-pro", "claude-opus-4-1", "deepseek-r1"} <= set(ev["refused_models"])
    assert (ev["missing_targets"], ev["missing_paths"]) == (9, 1)  # one path, nine models
    medium = dataclasses.replace(
        case_named(detector, "a key asking for nine models"), params={"medium_missing_paths": 9}
    )
    assert [r["severity"] for r in evaluate(detector, medium, tmp_path / "m")] == ["medium"]


def test_enumeration_quiet_cases_are_quiet_for_their_reason(tmp_path: Path) -> None:
    detector = shipped(ENUMERATION)
    # the crawler: with its pages answered 404 instead, the same walk fires
    crawler = case_named(detector, "web log, a search crawler")
    gone = tuple(e.replace('" 200 ', '" 404 ').replace('" 304 ', '" 404 ') for e in crawler.events)
    assert len(evaluate(detector, dataclasses.replace(crawler, events=gone), tmp_path / "a")) == 1
    # the expired files: with the ids read as paths (no normalisation), they would be a walk
    files = case_named(detector, "a batch client polling")
    named = tuple(
        {**e, "request": {**e["request"], "uri": f"/llm/v1/files/report-{i}.pdf"}}
        for i, e in enumerate(files.events)
    )
    assert len(evaluate(detector, dataclasses.replace(files, events=named), tmp_path / "b")) == 1


def test_enumeration_finds_a_config_harvester_with_encoded_dots(tmp_path: Path) -> None:
    """Config-file harvesters ask for .env files under many spellings, some URL-encoded."""
    detector = shipped(ENUMERATION)
    agent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/81.0.4044.129"
    paths = ("/.env", "/core/sql/database%2eenv", "/config.yml", "/aws/credentials",
             "/wp-config.php", "/src/config/%2eenv", "/%2eenv%2elocal%2ejpg")  # fmt: skip
    lines = [line("198.51.100.201", f"22/Sep/2024:21:10:{10 + i:02d}", f"GET {p}", 404, agent)
             for i, p in enumerate(paths)]  # fmt: skip
    [row] = evaluate(detector, combined(*lines), tmp_path)
    assert row["evidence"]["sensitive_paths"] == 7
    assert row["severity"] == "medium"


def test_enumeration_leaves_login_brute_force_to_other_detectors(tmp_path: Path) -> None:
    """The Joomla admin-login botnet: every address fetches /administrator/ and posts the login
    form, both answered 200. Sensitive paths, but nothing refused: not a walk."""
    detector = shipped(ENUMERATION)
    agent = "Mozilla/5.0 (Windows NT 6.0; rv:34.0) Gecko/20100101 Firefox/34.0"
    lines = []
    for i in range(12):
        ip, when = f"198.51.100.{30 + i}", f"12/Dec/2015:18:{25 + i:02d}:11"
        lines.append(line(ip, when, "GET /administrator/", 200, agent))
        lines.append(line(ip, when, "POST /administrator/index.php", 200, agent,
                          referer="http://example.org/administrator/"))  # fmt: skip
    assert evaluate(detector, combined(*lines), tmp_path / "joomla") == []
    # a login brute force on one path: one sensitive path, however many times
    brute = [line("192.0.2.7", f"22/Oct/2024:21:54:{i:02d}", "POST /wp-login.php", 200, "-")
             for i in range(40)]  # fmt: skip
    assert evaluate(detector, combined(*brute), tmp_path / "wp") == []


@pytest.mark.parametrize(
    ("path", "sensitive"),
    [
        ("/.git/config", True),
        ("/.env.production", True),
        ("/api/tags", True),
        ("/openai/v1/models", True),
        ("/openai/deployments/gpt-4o/chat/completions", False),
        ("/docs/quickstart", False),
        ("/blog/environment.html", False),
        ("/llm/v1/chat", False),
    ],
)
def test_which_paths_count_as_sensitive(tmp_path: Path, path: str, sensitive: bool) -> None:
    detector = shipped(ENUMERATION)
    lines = [line("192.0.2.50", f"10/Jan/2026:10:00:{i:02d}", f"GET {path}", 404, "x")
             for i in range(3)]  # fmt: skip
    lines += [line("192.0.2.50", "10/Jan/2026:10:01:00", f"GET /probe-{i}", 404, "x")
              for i in range(2)]  # fmt: skip
    # two other sensitive paths: the client reaches three only if `path` is sensitive
    lines += [
        line("192.0.2.50", "10/Jan/2026:10:02:00", "GET /wp-login.php", 404, "x"),
        line("192.0.2.50", "10/Jan/2026:10:02:01", "GET /.aws/credentials", 404, "x"),
    ]
    found = evaluate(detector, combined(*lines), tmp_path)
    assert bool(found) is sensitive
