"""The inline-test runner (forensics.detect.inline_tests) and the credential detectors' own tests."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from forensics.cli.detectors_test import detectors_test
from forensics.detect import load as catalog
from forensics.detect.inline_tests import CaseResult, evaluate, run_all, run_case
from forensics.detect.model import Detector, DetectorTest, Problem

REPO = Path(__file__).resolve().parents[2]
QUERIES = REPO / "queries"
DETECTOR_IDS = ("credential.use_after_revocation", "credential.browser_exposed")


def shipped(detector_id: str) -> Detector:
    """A shipped detector, loaded and validated by the real loader."""
    found, problems = catalog.load_detectors([QUERIES])
    assert problems == []
    return next(d for d in found if d.id == detector_id)


def case_named(detector: Detector, prefix: str) -> DetectorTest:
    """The one inline case of `detector` whose name starts with `prefix`."""
    [case] = [t for t in detector.tests if t.name.startswith(prefix)]
    return case


def _cases() -> list[tuple[str, str]]:
    return [(d, t.name) for d in DETECTOR_IDS for t in shipped(d).tests]


def _case(detector: Detector, name: str) -> DetectorTest:
    [case] = [t for t in detector.tests if t.name == name]
    return case


@pytest.mark.parametrize(("detector_id", "case_name"), _cases(), ids=lambda v: str(v))
def test_inline_case_passes(detector_id: str, case_name: str, tmp_path: Path) -> None:
    detector = shipped(detector_id)
    result = run_case(detector, _case(detector, case_name), tmp_path)
    assert result.passed, f"{result.detector_id}::{result.name}: {result.detail}"


def test_every_detector_has_fire_quiet_and_yml_fields() -> None:
    for detector_id in DETECTOR_IDS:
        detector = shipped(detector_id)
        expects = {t.expect for t in detector.tests}
        assert {"fire", "quiet"} <= expects, detector_id
        assert detector.id == detector_id
        assert detector.principal_type == "credential"
        assert detector.runbook and detector.references and detector.attack
        assert all(p.description for p in detector.params)
        assert list(yaml.safe_load(detector.yml_path.read_text()))[-1] == "tests"


def test_use_after_revocation_evidence(tmp_path: Path) -> None:
    detector = shipped("credential.use_after_revocation")
    case = _case(detector, "kong credential used three hours after its revocation")
    [row] = evaluate(detector, case, tmp_path)
    assert row["principal_type"] == "credential"
    assert row["principal_id"] == "5d2e8b1c-2222-4c1d-8f3a-9e7b6c5d4a31"
    assert row["tenant_id"] == "tenant-acme"
    assert row["severity"] == "high"
    ev = row["evidence"]
    assert ev["requests_after"] == 2
    assert ev["lag_minutes"] == 180.0
    assert ev["client_ips_after"] == 2
    assert row["sample_request_ids"] == [
        "0a7c2e4f9b1d4c6e8f0a1b2c3d4e5f02",
        "0a7c2e4f9b1d4c6e8f0a1b2c3d4e5f03",
    ]
    assert str(row["window_start"]).startswith("2026-01-05 12:00:00")
    assert 0 <= row["score"] <= 100
    critical = dataclasses.replace(case, params={"critical_requests": 2})
    assert [r["severity"] for r in evaluate(detector, critical, tmp_path)] == ["critical"]


def test_raw_key_revocation_matches_the_fingerprint_not_the_key(tmp_path: Path) -> None:
    detector = shipped("credential.use_after_revocation")
    case = _case(detector, "raw key revoked, request logged under the key-auth credential id")
    [row] = evaluate(detector, case, tmp_path)
    raw = case.revocations[0]["credential_id"]
    assert row["principal_id"].startswith("cred:")
    assert row["principal_id"].endswith(raw[-4:])
    assert raw not in str(row)


def test_browser_exposed_evidence(tmp_path: Path) -> None:
    detector = shipped("credential.browser_exposed")
    case = _case(detector, "one key, origin https://shop.example, from eight /24 networks")
    [row] = evaluate(detector, case, tmp_path)
    assert row["principal_id"] == "9a41c7e2-3333-4b8d-a1f0-6c2d8e4b7f52"
    ev = row["evidence"]
    assert ev["origins"] == ["https://shop.example"]
    assert ev["networks"] == 8
    assert ev["requests"] == 8
    assert ev["client_share"] == 1.0
    assert ev["client_kind"] == "web"
    assert (ev["addresses"], ev["user_agents_distinct"]) == (8, 1)
    assert ev["user_agents"][0].startswith("Mozilla/5.0")
    assert len(row["sample_request_ids"]) == 8
    assert row["severity"] == "medium"  # eight networks, no country known: below high


def test_client_exposure_severity_rises_with_spread(tmp_path: Path) -> None:
    detector = shipped("credential.browser_exposed")
    case = _case(detector, "one key, origin https://shop.example, from eight /24 networks")
    [row] = evaluate(detector, dataclasses.replace(case, params={"high_networks": 8}), tmp_path)
    assert row["severity"] == "high"
    app = _case(detector, "mobile app (okhttp) without an origin, from five networks")
    [row] = evaluate(detector, app, tmp_path / "app")
    assert (row["severity"], row["evidence"]["client_kind"]) == ("medium", "app")


def test_impossible_travel_tells_one_party_moving_from_several_at_once(tmp_path: Path) -> None:
    detector = shipped("credential.impossible_travel")
    [moving] = evaluate(detector, _case(detector, "Frankfurt then New York twenty minutes later"),
                        tmp_path / "moving")  # fmt: skip
    assert (moving["evidence"]["pattern"], moving["evidence"]["locations"]) == ("moving", 2)
    assert "one party moving" in moving["summary"]
    case = _case(detector, "two parties at once, Frankfurt and New York alternating")
    [both] = evaluate(detector, case, tmp_path / "both")
    assert (both["evidence"]["pattern"], both["evidence"]["jumps"]) == ("concurrent", 3)
    assert "concurrent use from 2 locations" in both["summary"]


def _without_auth_header(event: dict[str, Any]) -> dict[str, Any]:
    headers = {k: v for k, v in event["request"]["headers"].items() if k != "authorization"}
    return {**event, "request": {**event["request"], "headers": headers}}


def _with_status(event: dict[str, Any], status: int) -> dict[str, Any]:
    return {**event, "response": {"status": status}}


# Each quiet case changed in the one respect its name says makes it quiet must fire: the quiet
# cases are quiet for the reason they claim, not because their events never matched at all.
CONTROLS: dict[tuple[str, str], Any] = {
    ("credential.use_after_revocation", "used only before its revocation"): lambda c: (
        dataclasses.replace(
            c, revocations=({**c.revocations[0], "revoked_at": "2026-01-05T08:00:00Z"},)
        )
    ),
    (
        "credential.use_after_revocation",
        "near miss, used two minutes after revocation within the grace period",
    ): lambda c: dataclasses.replace(c, params={"grace_minutes": 1}),
    ("credential.use_after_revocation", "revoked key refused by the gateway with 401"): lambda c: (
        dataclasses.replace(c, events=tuple(_with_status(e, 200) for e in c.events))
    ),
    ("credential.browser_exposed", "near miss, browser origin from four networks"): lambda c: (
        dataclasses.replace(c, params={"min_networks": 4})
    ),
    ("credential.browser_exposed", "JWT-authenticated browser app from eight networks"): lambda c: (
        dataclasses.replace(c, events=tuple(_without_auth_header(e) for e in c.events))
    ),
    ("credential.browser_exposed", "field app with per-user OAuth tokens on one mobile carrier"): (
        lambda c: dataclasses.replace(c, events=tuple(_without_auth_header(e) for e in c.events))
    ),
    (
        "credential.browser_exposed",
        "a staff tool behind Zscaler, browser calls from many egress addresses of one AS",
    ): lambda c: dataclasses.replace(c, events=tuple({**e, "ClientASN": 3320} for e in c.events)),
    (
        "credential.browser_exposed",
        "a Kotlin backend on a cloud, okhttp user agent, exits on many /24s of one hosting AS",
    ): lambda c: dataclasses.replace(c, events=tuple({**e, "ClientASN": 3320} for e in c.events)),
    (
        "credential.residential_proxy",
        "users of a mobile app (okhttp) on the same spread of home networks",
    ): lambda c: dataclasses.replace(
        c, events=tuple({**e, "ClientRequestUserAgent": "python-requests/2.32.3"} for e in c.events)
    ),
    (
        "credential.residential_proxy",
        "a developer's script behind privacy relays and VPNs (Private Relay, Mullvad, Proton,"
        " NordVPN)",
    ): lambda c: dataclasses.replace(
        c, events=tuple({**e, "ClientASN": 4200000000 + i % 4} for i, e in enumerate(c.events))
    ),
    ("credential.residential_proxy", "near miss, seven addresses with min_addresses 8"): (
        lambda c: dataclasses.replace(c, params={**c.params, "min_addresses": 7})
    ),
    (
        "credential.residential_proxy",
        "near miss, each address used four times with max_per_address 3 (regulars, not a pool)",
    ): lambda c: dataclasses.replace(c, params={**c.params, "max_per_address": 4}),
    ("credential.long_lived_token", "10 minute token used twice"): lambda c: dataclasses.replace(
        c, params={"max_lifetime_minutes": 5}
    ),
    ("credential.long_lived_token", "kid used only before its retirement"): lambda c: (
        dataclasses.replace(
            c, retired_keys=({**c.retired_keys[0], "retired_at": "2026-01-05T08:00:00Z"},)
        )
    ),
    (
        "credential.long_lived_token",
        "near miss, token lifetime exactly at the 15 minute limit",
    ): lambda c: dataclasses.replace(c, params={"max_lifetime_minutes": 14}),
    ("credential.long_lived_token", "token of a retired issuer refused with 401"): lambda c: (
        dataclasses.replace(c, events=tuple(_with_status(e, 200) for e in c.events))
    ),
    (
        "usage.unexplained_provider_usage",
        "the gateway's known key within 5 % of the gateway's tokens",
    ): lambda c: dataclasses.replace(
        c, known_keys=({**c.known_keys[0], "api_key_id": "key_SomeoneElse"},)
    ),
    (
        "usage.unexplained_provider_usage",
        "near miss, a key not on the list with 99,000 tokens in an hour",
    ): lambda c: dataclasses.replace(c, params={"min_tokens": 98000}),
    (
        "usage.unexplained_provider_usage",
        "600k unexplained tokens within 10 % of a 10M-token gateway hour",
    ): lambda c: dataclasses.replace(c, params={"tolerance_ratio": 0.05}),
}


@pytest.mark.parametrize(("detector_id", "case_name"), sorted(CONTROLS), ids=lambda v: str(v))
def test_quiet_case_fires_once_its_reason_is_removed(
    detector_id: str, case_name: str, tmp_path: Path
) -> None:
    detector = shipped(detector_id)
    control = CONTROLS[detector_id, case_name](_case(detector, case_name))
    rows = evaluate(detector, control, tmp_path)
    assert len(rows) == 1
    assert isinstance(rows[0]["score"], float)


# --- the runner itself -----------------------------------------------------------------------


def _always_fires(tmp_path: Path) -> Detector:
    sql = tmp_path / "always.sql"
    sql.write_text(
        "SELECT 'credential' AS principal_type, 'x' AS principal_id, NULL AS tenant_id,"
        " now() AS window_start, now() AS window_end, 50.0 AS score, 'always' AS summary,"
        " struct_pack(n := 1) AS evidence, ['r1'] AS sample_request_ids"
    )
    yml = tmp_path / "always.yml"
    yml.write_text("id: test.always\n")
    real = shipped("credential.browser_exposed")
    return dataclasses.replace(
        real, id="test.always", sql=sql.read_text(), sql_path=sql, yml_path=yml, params=()
    )


def test_a_wrong_detector_fails_its_quiet_case(tmp_path: Path) -> None:
    wrong = _always_fires(tmp_path)
    results = run_all([wrong], tmp_path / "work")
    by_name = {r.name: r for r in results}
    quiet = by_name["server-side SDK (python-httpx) from eight networks"]
    assert not quiet.passed
    assert quiet.rows == 1
    assert quiet.detail.startswith("expected quiet, got 1 row")
    assert by_name["one key, origin https://shop.example, from eight /24 networks"].passed


def test_rows_n_must_match_exactly(tmp_path: Path) -> None:
    wrong = _always_fires(tmp_path)
    two = DetectorTest(name="two rows", rows=2, events=())
    result = run_case(wrong, two, tmp_path)
    assert (result.passed, result.rows) == (False, 1)
    assert result.detail.startswith("expected 2 rows, got 1 row")
    assert run_case(wrong, dataclasses.replace(two, rows=1), tmp_path).passed


def test_events_that_do_not_parse_fail_the_case_with_a_message(tmp_path: Path) -> None:
    detector = shipped("credential.use_after_revocation")
    broken = DetectorTest(
        name="broken",
        expect="quiet",
        events=({"started_at": 1767614400000, "client_ip": "192.0.2.1"}, '{"started_at": 17'),
    )
    result = run_case(detector, broken, tmp_path)
    assert isinstance(result, CaseResult)
    assert not result.passed
    assert result.detail == (
        "event 2 of 2 quarantined (1 in all) as kong: invalid JSON: record is cut off"
    )


def test_a_case_that_cannot_run_is_reported_not_raised(tmp_path: Path) -> None:
    detector = shipped("credential.use_after_revocation")
    unknown = DetectorTest(name="odd format", expect="quiet", format="no-such-format")
    result = run_case(detector, unknown, tmp_path)
    assert not result.passed
    assert result.detail.startswith("unknown format 'no-such-format'")
    bad_ref = DetectorTest(
        name="bad revocation",
        expect="quiet",
        revocations=({"credential_id": "abc", "revoked_at": "yesterday"},),
    )
    result = run_case(detector, bad_ref, tmp_path)
    assert not result.passed
    assert "revocations row 1 of 1 quarantined" in result.detail
    broken_sql = dataclasses.replace(detector, sql="SELECT * FROM no_such_table")
    result = run_case(broken_sql, detector.tests[0], tmp_path)
    assert not result.passed
    assert "no_such_table" in result.detail
    assert "\n" not in result.detail


def test_a_leaked_key_in_an_error_is_redacted(tmp_path: Path) -> None:
    detector = shipped("credential.use_after_revocation")
    key = "sk-proj-" + "A1b2C3d4" * 20
    leaking = dataclasses.replace(detector, sql=f"SELECT * FROM requests WHERE x = '{key}'")
    result = run_case(leaking, detector.tests[0], tmp_path)
    assert not result.passed
    assert key not in result.detail


def test_detector_without_tests_is_a_failure(tmp_path: Path) -> None:
    bare = dataclasses.replace(shipped("credential.browser_exposed"), tests=())
    [result] = run_all([bare], tmp_path)
    assert (result.passed, result.name) == (False, "(no tests)")


# --- the `detectors test` command (loader stubbed: it is tested on its own) ------------------


def _stub_loader(
    monkeypatch: pytest.MonkeyPatch, found: list[Detector], problems: list[Problem]
) -> list[list[Path]]:
    calls: list[list[Path]] = []

    def load(dirs: list[Path]) -> tuple[list[Detector], list[Problem]]:
        calls.append(dirs)
        return found, problems

    monkeypatch.setattr(catalog, "default_dirs", lambda rules: [Path("shipped"), *rules])
    monkeypatch.setattr(catalog, "load_detectors", load)
    return calls


def test_command_prints_one_line_per_case_and_the_counts(monkeypatch, tmp_path):
    found = [shipped(d) for d in DETECTOR_IDS]
    calls = _stub_loader(monkeypatch, found, [])
    result = CliRunner().invoke(detectors_test, ["--rules", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    n = sum(len(d.tests) for d in found)
    assert len(lines) == n + 1
    assert lines[0].startswith("PASS  credential.use_after_revocation::kong credential used")
    assert all(line.startswith("PASS  credential.") for line in lines[:-1])
    assert lines[-1] == f"{n} passed, 0 failed"
    assert result.stderr == ""
    assert calls == [[Path("shipped"), tmp_path]]


def test_command_exits_1_on_a_failing_case(monkeypatch, tmp_path):
    always = _always_fires(tmp_path)
    _stub_loader(monkeypatch, [always], [])
    result = CliRunner().invoke(detectors_test, [])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert (
        "FAIL  test.always::server-side SDK (python-httpx) from eight networks  expected quiet, got 1 row"
        in result.stdout
    )
    fire = sum(1 for case in always.tests if case.expect == "fire")  # they pass, the rest fail
    assert lines[-1] == f"{fire} passed, {len(always.tests) - fire} failed"
    assert len(always.tests) - fire == 6


def test_command_exits_1_when_a_detector_could_not_be_loaded(monkeypatch, tmp_path):
    problem = Problem(tmp_path / "x" / "y.yml", 3, "severity 'huge' is not a severity")
    _stub_loader(monkeypatch, [], [problem])
    result = CliRunner().invoke(detectors_test, [])
    assert result.exit_code == 1
    assert result.stdout == "0 passed, 0 failed\n"
    assert f"{tmp_path}/x/y.yml:3: severity 'huge' is not a severity" in result.stderr


# --- inputs of every kind reach the case as the ingest would load them ------------------------

_ECHO = (
    "SELECT 'ip' AS principal_type, {id} AS principal_id, NULL AS tenant_id,"
    " {ts} AS window_start, {ts} AS window_end, 1.0 AS score, 'echo' AS summary,"
    " struct_pack(x := 1{extra}) AS evidence, []::VARCHAR[] AS sample_request_ids FROM {table}"
)


def _echo(table: str, id_sql: str, ts_sql: str = "now()", extra: str = "") -> Detector:
    """A detector with one finding per row of `table`; the `extra` columns go into evidence."""
    base = shipped("credential.browser_exposed")
    sql = _ECHO.format(id=id_sql, ts=ts_sql, table=table, extra=extra)
    return dataclasses.replace(base, id=f"test.echo_{table}", sql=sql, params=(), tests=())


def test_text_format_events_are_lines(tmp_path):
    detector = _echo("requests", "client_ip", "ts", ", path")
    case = DetectorTest(
        name="combined",
        rows=2,
        format="combined",
        events=(
            '203.0.113.45 - - [01/Jan/2026:09:15:02 +0100] "POST /v1/chat/completions HTTP/1.1" 200 5 "-" "curl/8.5.0"',
            '192.0.2.10 - - [01/Jan/2026:08:00:00 +0000] "POST /v1/embeddings HTTP/1.0" 200 1024 "-" "curl/8.5.0"',
        ),
    )
    assert run_case(detector, case, tmp_path).passed
    rows = sorted(
        (r["principal_id"], r["evidence"]["path"]) for r in evaluate(detector, case, tmp_path)
    )
    assert rows == [("192.0.2.10", "/v1/embeddings"), ("203.0.113.45", "/v1/chat/completions")]


def test_allowlist_rows_are_loaded_with_their_detector_globs(tmp_path):
    detector = _echo("allowlist", "value", "expires", ", kind, detectors, reason")
    case = DetectorTest(
        name="allowlist",
        rows=2,
        events=(),
        allowlist=(
            {
                "kind": "asn",
                "value": "AS16509",
                "detectors": ["credential.*", "scraping.near_duplicate_prompts"],
                "reason": "our batch jobs, on AWS",
                "expires": "2026-06-30T00:00:00Z",
            },
            {"kind": "cidr", "value": "203.0.113.0/24", "detectors": [], "reason": "office"},
        ),
    )
    assert run_case(detector, case, tmp_path).passed
    rows = {r["evidence"]["kind"]: r for r in evaluate(detector, case, tmp_path)}
    assert rows["asn"]["principal_id"] == "16509"
    assert rows["asn"]["evidence"]["detectors"] == [
        "credential.*",
        "scraping.near_duplicate_prompts",
    ]
    assert str(rows["asn"]["window_start"]).startswith("2026-06-30 00:00:00")
    assert (rows["cidr"]["evidence"]["detectors"], rows["cidr"]["window_start"]) == ([], None)


def test_yaml_timestamps_in_reference_rows_are_utc(tmp_path):
    # Unquoted YAML times arrive as datetime objects, naive or aware: both mean UTC.
    detector = _echo("revocations", "credential_id", "revoked_at")
    times = yaml.safe_load("[2026-01-05 09:00:00, 2026-01-05T09:00:00Z, 2026-01-05T10:00:00+01:00]")
    assert [type(t) for t in times] == [dt.datetime] * 3
    for revoked_at in times:
        case = DetectorTest(
            name="when",
            rows=1,
            events=(),
            revocations=({"credential_id": "5d2e8b1c", "revoked_at": revoked_at},),
        )
        [row] = evaluate(detector, case, tmp_path)
        assert row["window_start"] == dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


def test_unknown_reference_fields_fail_the_case(tmp_path):
    detector = _echo("revocations", "credential_id")
    case = DetectorTest(
        name="typo",
        expect="quiet",
        revocations=({"credential": "5d2e8b1c", "revoked_at": "2026-01-05T09:00:00Z"},),
    )
    result = run_case(detector, case, tmp_path)
    assert not result.passed
    assert result.detail == (
        "revocations row 1 has unknown fields credential (expected credential_id, revoked_at)"
    )


def test_standard_filters_in_case_params(tmp_path):
    detector = shipped("credential.use_after_revocation")
    fire = _case(detector, "kong credential used three hours after its revocation")
    for params, expected in (
        ({"tenant": "tenant-acme"}, 1),
        ({"tenant": "tenant-other"}, 0),
        ({"since": "2026-01-05T12:05:00Z"}, 1),
        ({"since": dt.datetime(2026, 1, 5, 13, 0, tzinfo=dt.UTC)}, 0),
        ({"until": "2026-01-05T11:00:00"}, 0),
        ({"until": "2026-01-05T11:00:00", "grace_minutes": 1}, 0),
    ):
        rows = evaluate(detector, dataclasses.replace(fire, params=params), tmp_path)
        assert len(rows) == expected, params
    bad = run_case(detector, dataclasses.replace(fire, params={"since": "last week"}), tmp_path)
    assert (
        bad.detail == "params.since: not an ISO 8601 date or time (9 characters shaped aaaa aaaa)"
    )


def test_case_files_are_removed_after_the_run(tmp_path):
    detector = shipped("credential.use_after_revocation")
    assert all(run_case(detector, case, tmp_path).passed for case in detector.tests)
    assert list(tmp_path.iterdir()) == []


# --- credential.long_lived_token and usage.unexplained_provider_usage -------------------------


def test_long_lived_token_evidence_and_severity(tmp_path):
    detector = shipped("credential.long_lived_token")
    [day] = evaluate(detector, _case(detector, "24 hour token used twice"), tmp_path)
    assert day["principal_id"].startswith("cred:")
    assert (day["tenant_id"], day["severity"]) == ("tenant-acme", "medium")
    ev = day["evidence"]
    assert (ev["requests"], ev["long_lived_requests"], ev["no_exp_requests"]) == (2, 2, 0)
    assert ev["max_lifetime_seconds"] == 86400.0
    assert (ev["retired_key_requests"], ev["token_ids"]) == (0, 1)
    assert ev["issuers"] == ["https://auth.example.com/"]
    assert "24.0 h (limit 15 min)" in day["summary"]
    assert len(day["sample_request_ids"]) == 2

    [noexp] = evaluate(
        detector, _case(detector, "two tokens without exp on one gateway credential"), tmp_path
    )
    assert noexp["principal_id"] == "7c1e9a3b-4444-4e2f-9a0b-1c2d3e4f5a6b"  # one finding, 2 jti
    assert (noexp["evidence"]["no_exp_requests"], noexp["evidence"]["token_ids"]) == (2, 2)

    [old] = evaluate(
        detector,
        _case(detector, "10 minute token signed by a kid retired the day before"),
        tmp_path,
    )
    ev = old["evidence"]
    assert old["severity"] == "high"
    assert (ev["retired_key_id"], ev["retired_reason"]) == ("kid-2025-12", "quarterly rotation")
    assert ev["retired_at"] == "2026-01-04 00:00:00+00"  # as the case stores evidence: JSON
    assert (ev["retired_key_requests"], ev["issued_after_retirement"]) == (1, 1)
    assert ev["long_lived_requests"] == 0
    assert old["score"] > day["score"]


def test_long_lived_token_grace_after_retirement(tmp_path):
    detector = shipped("credential.long_lived_token")
    case = _case(detector, "kid used only before its retirement")
    # issued 08:55, used 09:00, kid retired 08:57: inside the default 5 minute grace
    retired = ({**case.retired_keys[0], "retired_at": "2026-01-05T08:57:00Z"},)
    assert evaluate(detector, dataclasses.replace(case, retired_keys=retired), tmp_path) == []
    one_minute = dataclasses.replace(case, retired_keys=retired, params={"grace_minutes": 1})
    fired = evaluate(detector, one_minute, tmp_path)
    assert [r["evidence"]["issued_after_retirement"] for r in fired] == [0]  # issued before
    other_issuer = ({**retired[0], "issuer": "https://other.example.org/"},)
    assert (
        evaluate(detector, dataclasses.replace(one_minute, retired_keys=other_issuer), tmp_path)
        == []
    )


def test_unexplained_usage_names_the_key_and_prices_it(tmp_path):
    detector = shipped("usage.unexplained_provider_usage")
    case = _case(
        detector, "key not on the known-keys list, 2M tokens in an hour without gateway traffic"
    )
    [row] = evaluate(detector, case, tmp_path)
    assert (row["principal_type"], row["principal_id"]) == ("provider_key", "key_Leaked77")
    assert (row["tenant_id"], row["sample_request_ids"]) == (None, [])
    assert row["window_start"] == dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)
    ev = row["evidence"]
    assert ev["attribution"] == ["key_not_in_known_keys"]
    assert (ev["unexplained_tokens"], ev["gateway_tokens"], ev["provider_requests"]) == (
        2_000_000,
        0,
        950,
    )
    assert ev["project_ids"] == ["proj_Acme01"]
    assert [b["bucket_width"] for b in ev["bucket_list"]] == ["1h"]
    # gpt-4o-mini: 1.8M input at $0.15 and 0.2M output at $0.60 per 1M tokens
    assert (row["est_cost_usd"], row["provider_cost_usd"]) == (None, pytest.approx(0.39))
    assert "2,000,000 tokens" in row["summary"]
    assert 0 <= row["score"] <= 100


def test_unexplained_usage_without_a_key_list_blames_the_only_key(tmp_path):
    detector = shipped("usage.unexplained_provider_usage")
    case = _case(
        detector, "no known-keys list, the provider reports three times the gateway's tokens"
    )
    [row] = evaluate(detector, case, tmp_path)
    ev = row["evidence"]
    assert (row["principal_id"], ev["attribution"]) == ("key_GatewayProd01", ["only_key_in_bucket"])
    assert (ev["provider_tokens"], ev["gateway_tokens"], ev["unexplained_tokens"]) == (
        3_000_000,
        1_000_000,
        2_000_000,
    )
    assert (row["est_cost_usd"], row["provider_cost_usd"]) == (None, pytest.approx(0.72 * 2 / 3))


def _page(*buckets: tuple[int, int, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "object": "page",
        "has_more": False,
        "data": [
            {"object": "bucket", "start_time": s, "end_time": e, "results": r}
            for s, e, r in buckets
        ],
    }


def _result(key: str | None, tokens: int, project: str | None = "proj_Acme01") -> dict[str, Any]:
    return {
        "object": "organization.usage.completions.result",
        "input_tokens": tokens,
        "output_tokens": 0,
        "num_model_requests": 10,
        "project_id": project,
        "api_key_id": key,
        "model": "gpt-4o-mini-2024-07-18",
    }


H9 = 1767603600  # 2026-01-05T09:00:00Z


def test_unexplained_usage_hourly_and_daily_exports_are_not_added_up(tmp_path):
    detector = shipped("usage.unexplained_provider_usage")
    case = _case(
        detector, "key not on the known-keys list, 2M tokens in an hour without gateway traffic"
    )
    day = H9 - 9 * 3600
    daily = _page(
        (day, day + 86400, [_result("key_GatewayProd01", 1500), _result("key_Leaked77", 2_000_000)])
    )
    [row] = evaluate(detector, dataclasses.replace(case, usage=(*case.usage, daily)), tmp_path)
    ev = row["evidence"]
    assert ev["unexplained_tokens"] == 2_000_000
    assert (ev["counted_width"], ev["buckets"]) == ("1h", 1)
    assert [b["bucket_width"] for b in ev["bucket_list"]] == ["1d", "1h"]


def test_unexplained_usage_a_key_off_the_list_is_not_hidden_by_a_busy_gateway(tmp_path):
    detector = shipped("usage.unexplained_provider_usage")
    busy = _case(detector, "600k unexplained tokens within 10 % of a 10M-token gateway hour")
    known = ({"provider": "openai", "api_key_id": "key_GatewayProd01", "label": "kong"},)
    hour = H9 - 3600
    usage = _page((hour, H9, [_result("key_GatewayProd01", 10_000_000), _result("key_X", 300_000)]))
    case = dataclasses.replace(busy, usage=(usage,), known_keys=known)
    [row] = evaluate(detector, case, tmp_path)
    assert (row["principal_id"], row["evidence"]["unexplained_tokens"]) == ("key_X", 300_000)
    # the same 300k without a key list are counting noise next to 10M gateway tokens
    assert evaluate(detector, dataclasses.replace(case, known_keys=()), tmp_path) == []


def test_unexplained_usage_without_key_ids_names_the_project(tmp_path):
    detector = shipped("usage.unexplained_provider_usage")
    case = _case(
        detector, "key not on the known-keys list, 2M tokens in an hour without gateway traffic"
    )
    dated = {**_result(None, 700_000, "proj_Ops"), "model": "gpt-4o-mini"}  # same family
    keyless = _page((H9, H9 + 3600, [_result(None, 500_000, "proj_Ops"), dated]))
    [row] = evaluate(detector, dataclasses.replace(case, usage=(keyless,), params={}), tmp_path)
    assert (row["principal_id"], row["evidence"]["attribution"]) == ("proj_Ops", ["project"])
    assert row["evidence"]["unexplained_tokens"] == 1_200_000
    two_projects = _page(
        (H9, H9 + 3600, [_result(None, 500_000, "proj_A"), _result(None, 700_000, "proj_B")])
    )
    [row] = evaluate(detector, dataclasses.replace(case, usage=(two_projects,)), tmp_path)
    assert (row["principal_id"], row["evidence"]["attribution"]) == ("openai", ["provider"])
    # --tenant keeps findings whose provider projects carry that name
    for tenant, expected in (("proj_B", 1), ("tenant-acme", 0)):
        scoped = dataclasses.replace(case, usage=(two_projects,), params={"tenant": tenant})
        assert len(evaluate(detector, scoped, tmp_path)) == expected


# --- usage, retired_keys and known_keys inputs ----------------------------------------------


def test_retired_and_known_key_rows_load_through_their_formats(tmp_path):
    retired = _echo("retired_keys", "coalesce(key_id, issuer)", "retired_at", ", reason")
    case = DetectorTest(
        name="retired",
        rows=2,
        retired_keys=(
            {"issuer": "https://auth.example.com/", "key_id": "kid-1", "retired_at": "2026-01-04"},
            {
                "issuer": "https://old.example.net/",
                "retired_at": dt.datetime(2025, 12, 1, tzinfo=dt.UTC),
            },
        ),
    )
    got = {r["principal_id"]: r for r in evaluate(retired, case, tmp_path)}
    assert set(got) == {"kid-1", "https://old.example.net/"}
    assert got["kid-1"]["window_start"] == dt.datetime(2026, 1, 4, tzinfo=dt.UTC)
    known = _echo("known_keys", "api_key_id", extra=", provider, label")
    case = DetectorTest(
        name="known",
        rows=1,
        known_keys=({"provider": "OpenAI", "api_key_id": "key_1", "label": "gateway"},),
    )
    [row] = evaluate(known, case, tmp_path)
    ev = row["evidence"]
    assert (row["principal_id"], ev["provider"], ev["label"]) == ("key_1", "openai", "gateway")


def test_usage_records_load_beside_events(tmp_path):
    detector = _echo("usage", "api_key_id", "bucket_start", ", input_tokens, source_format")
    page = _page((H9, H9 + 3600, [_result("key_1", 10), _result("key_2", 20)]))
    case = DetectorTest(name="usage", rows=2, usage=(page,))
    found = evaluate(detector, case, tmp_path)
    got = sorted((r["principal_id"], r["evidence"]["input_tokens"]) for r in found)
    assert got == [("key_1", 10), ("key_2", 20)]
    assert found[0]["evidence"]["source_format"] == "openai_usage"


def test_bad_usage_records_and_reference_rows_fail_the_case(tmp_path):
    detector = _echo("usage", "api_key_id")
    bad_page = DetectorTest(
        name="bad page",
        expect="quiet",
        usage=(_page((H9, H9 + 3600, [_result("key_1", 10)])), {"object": "page", "data": 5}),
    )
    result = run_case(detector, bad_page, tmp_path)
    assert not result.passed
    assert result.detail.startswith("usage record 2 of 2 quarantined (1 in all) as openai-usage:")
    neither = DetectorTest(
        name="no kid",
        expect="quiet",
        retired_keys=({"issuer": "", "key_id": "", "retired_at": "2026-01-04T00:00:00Z"},),
    )
    result = run_case(detector, neither, tmp_path)
    assert result.detail == (
        "retired_keys row 1 of 1 quarantined (1 in all) as retired-keys:"
        " issuer and key_id are both empty: give at least one"
    )
    typo = DetectorTest(
        name="typo", expect="quiet", known_keys=({"provider": "openai", "key": "key_1"},)
    )
    assert run_case(detector, typo, tmp_path).detail == (
        "known_keys row 1 has unknown fields key (expected provider, api_key_id, label)"
    )
    wrong_format = DetectorTest(name="fmt", expect="quiet", usage_format="no-such-format")
    assert run_case(detector, wrong_format, tmp_path).detail.startswith(
        "unknown format 'no-such-format'"
    )


_NEW_INPUTS_YML = """\
id: testfam.inputs
title: Inputs
description: every kind of test input
severity: low
principal_type: provider_key
tests:
  - name: fires
    expect: fire
    events: []
    usage_format: {usage_format}
    usage: {usage}
    retired_keys: {retired_keys}
    known_keys: [{{provider: openai, api_key_id: key_1, label: gw}}]
  - name: quiet
    expect: quiet
    events: []
"""


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, None),
        (
            {"usage_format": "kong"},
            "test 'fires': usage_format 'kong' is not a provider usage format (anthropic-cost,"
            " anthropic-usage, litellm-daily, openai-costs, openai-usage)",
        ),
        ({"usage": "{object: page}"}, "test 'fires': usage must be a list (the export's records)"),
        ({"retired_keys": "[kid-1]"}, "test 'fires': retired_keys must be a list of mappings"),
    ],
)
def test_the_loader_checks_the_new_test_inputs(tmp_path, fields, message):
    values = {"usage_format": "openai-usage", "usage": "[]", "retired_keys": "[]", **fields}
    folder = tmp_path / "testfam"
    folder.mkdir()
    (folder / "inputs.sql").write_text(_ECHO.format(id="'x'", ts="now()", table="usage", extra=""))
    (folder / "inputs.yml").write_text(_NEW_INPUTS_YML.format(**values))
    found, problems = catalog.load_detectors([tmp_path])
    if message is None:
        assert problems == []
        [case, _] = found[0].tests
        assert case.usage_format == "openai-usage"
        assert case.known_keys == ({"provider": "openai", "api_key_id": "key_1", "label": "gw"},)
    else:
        # (the broken case is left out, so the detector also lacks a firing case)
        assert [p.message for p in problems if p.message.startswith("test ")] == [message]


def test_unexplained_usage_without_a_list_names_the_key_that_leaves_the_rest_matching(tmp_path):
    detector = shipped("usage.unexplained_provider_usage")
    case = _case(
        detector, "no known-keys list, the one key that leaves the rest matching the gateway"
    )
    [row] = evaluate(detector, case, tmp_path)
    ev = row["evidence"]
    assert (row["principal_id"], ev["attribution"]) == ("key_Leaked77", ["key_explains_excess"])
    # 12.1M provider tokens against 10M at the gateway: the 2M of the key, not the 0.1M noise
    assert (ev["unexplained_tokens"], ev["provider_tokens"], ev["provider_requests"]) == (
        2_000_000,
        2_000_000,
        800,
    )
    assert (ev["api_key_ids"], ev["project_ids"]) == (["key_Leaked77"], ["proj_Sandbox"])
    assert (row["est_cost_usd"], row["provider_cost_usd"]) == (
        None,
        pytest.approx(1.7 * 0.15 + 0.3 * 0.6),
    )
    # two keys outside the gateway: leaving out either one still leaves 2M unexplained, so no
    # key is named; the project all three keys belong to is
    page = case.usage[0]
    gateway, leaked = page["data"][0]["results"]
    results = [
        gateway,
        {**leaked, "project_id": "proj_Acme01"},
        {**leaked, "project_id": "proj_Acme01", "api_key_id": "key_Twin"},
    ]
    two = {**page, "data": [{**page["data"][0], "results": results}]}
    [row] = evaluate(detector, dataclasses.replace(case, usage=(two,)), tmp_path)
    assert (row["principal_id"], row["evidence"]["attribution"]) == ("proj_Acme01", ["project"])
    assert row["evidence"]["api_key_ids"] == ["key_GatewayProd01", "key_Leaked77", "key_Twin"]
    assert row["evidence"]["unexplained_tokens"] == 4_100_000
