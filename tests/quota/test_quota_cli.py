"""`forensics quota suggest` and `quota replay` on a labelled synthetic week, through the CLI:
the suggested policy blocks the cost of the volume and cost scenarios and refuses almost none
of the unlabelled requests, and its fixed-window twin lets the window-edge gamer through."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
import yaml

from forensics.quota.policy import load_policy
from tests.conftest import copy_case, forensics_on

pytestmark = pytest.mark.slow

# the scenarios a quota is for: scraping, resale, cost amplification, window-edge gaming
ABUSE = ("scraping", "endpoint_shift", "concurrency", "model_escalation", "tool_fanout",
         "window_edge")  # fmt: skip


@pytest.fixture(scope="module")
def suggested(
    synth_week: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, Path]:
    """(case with a detection run, policy file, labels) of the synthetic week."""
    root = tmp_path_factory.mktemp("quota")
    case = copy_case(synth_week[1], root)
    code, _, err = forensics_on(case, "quota", "suggest", "-o", str(root / "policy.toml"))
    assert code == 2 and "no detection run" in err and "forensics detect" in err, err
    assert not (root / "policy.toml").exists()
    code, _, err = forensics_on(case, "detect")
    assert code == 0, err
    code, _, err = forensics_on(case, "quota", "suggest", "-o", str(root / "policy.toml"))
    assert code == 0, err
    return case, root / "policy.toml", synth_week[0] / "labels.csv"


def table(case: Path, *args: str) -> list[dict[str, str]]:
    code, out, err = forensics_on(case, "quota", "replay", *args, "--format", "csv")
    assert code == 0, err
    assert "refused by the policy" in err
    return list(csv.DictReader(io.StringIO(out)))


def test_the_suggestion_blocks_abuse_and_spares_the_rest(
    suggested: tuple[Path, Path, Path],
) -> None:
    case, policy, labels = suggested
    rules = load_policy(policy).rules
    assert [r.id for r in rules] == [
        "requests-per-minute", "tokens-per-minute", "requests-per-hour", "tool-calls-per-day",
    ]  # fmt: skip
    assert all(r.overrides for r in rules)  # each tenant with history has its own limits
    rows = {r["scenario"]: r for r in table(case, str(policy), "--view", "scenarios",
                                            "--labels", str(labels))}  # fmt: skip
    present = [s for s in ABUSE if s in rows]
    assert len(present) >= 5, sorted(rows)
    for scenario in present:
        assert float(rows[scenario]["cost_blocked_pct"]) >= 90, rows[scenario]
    legit = rows["(no label)"]
    assert int(legit["requests"]) > 10_000
    assert float(legit["refused_pct"]) < 0.5, legit
    # the fixed window of the same average rate lets the window-edge gamer through
    edge = rows["window_edge"]
    assert float(edge["window_cost_blocked_pct"]) < float(edge["cost_blocked_pct"]) - 5, edge


def test_every_view_reconciles_with_the_requests(suggested: tuple[Path, Path, Path]) -> None:
    case, policy, _ = suggested
    requests = table(case, str(policy), "--view", "requests")
    refused = sum(1 for r in requests if r["refused_by"])
    principals = table(case, str(policy))
    assert sum(int(p["requests"]) for p in principals) == len(requests)
    assert sum(int(p["refused"]) for p in principals) == refused > 0
    # throttled time runs from each refused request to the principal's next request
    for p in principals:
        if int(p["refused"]) == 0:
            assert float(p["throttled_seconds"]) == 0, p
    assert sum(float(p["throttled_seconds"]) for p in principals) > 0
    detectors = table(case, str(policy), "--view", "detectors")
    assert detectors[-1]["detector_id"] == "(no finding)"
    tenants = table(case, str(policy), "--view", "tenants")
    assert sum(int(t["other_refused"]) for t in tenants) == int(detectors[-1]["refused"])
    code, _, err = forensics_on(case, "quota", "replay", str(policy), "--view", "scenarios")
    assert code == 2 and "--labels" in err


def test_a_replay_of_a_week_can_be_narrowed_to_a_day(suggested: tuple[Path, Path, Path]) -> None:
    case, policy, _ = suggested
    every = table(case, str(policy), "--view", "requests")
    day = every[len(every) // 2]["ts"][:10]
    one = table(case, str(policy), "--view", "requests", "--since", day,
                "--until", f"{day}T23:59:59")  # fmt: skip
    assert 0 < len(one) < len(every)
    assert {r["ts"][:10] for r in one} == {day}


def test_the_gateway_files_hold_the_policy(suggested: tuple[Path, Path, Path]) -> None:
    _, policy_path, _ = suggested
    policy = load_policy(policy_path)
    kong = yaml.safe_load(policy_path.with_name("policy.kong.yaml").read_text())
    envoy = yaml.safe_load(policy_path.with_name("policy.envoy.yaml").read_text())
    by_rule = {p["config"]["namespace"]: p for p in kong["plugins"]}
    minute = policy.rules[0]
    plugin = by_rule["forensics-requests-per-minute"]
    assert plugin["name"] == "rate-limiting-advanced"
    assert plugin["config"]["limit"][0] >= minute.limit.burst
    assert plugin["config"]["window_size"] == [60, 3600]
    groups = {g["name"]: g for g in kong["consumer_groups"]}
    assert set(minute.overrides) <= set(groups)
    descriptors = envoy["http_filters"][0]["typed_config"]["descriptors"]
    assert {d["entries"][0]["value"] for d in descriptors} == set(minute.overrides)
    text = policy_path.with_name("policy.kong.yaml").read_text()
    assert "Not rendered: tool-calls-per-day" in text  # said, not dropped
    assert json.dumps(kong)  # plain data: no anchors or tags


def test_the_verdict_chart_draws_both_policies(
    suggested: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    case, policy, _ = suggested
    svg = tmp_path / "verdict.svg"
    code, _, err = forensics_on(case, "quota", "replay", str(policy), "--chart", str(svg))
    assert code == 0, err
    text = svg.read_text(encoding="utf-8")
    assert text.startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in text
    for label in ("scraping.near_duplicate_prompts", "fixed-window twin", "findings' cost blocked"):
        assert label in text


def test_an_incident_page_says_what_a_policy_would_have_done(
    suggested: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    case, policy, _ = suggested
    code, out, err = forensics_on(case, "incidents", "--format", "json", "--sort", "cost")
    assert code == 0, err
    costliest = json.loads(out)[0]  # --sort cost: the costliest first
    page = tmp_path / "incident.md"
    for extra, named in (([], "fits to this case"), (["--policy", str(policy)], "policy.toml")):
        code, _, err = forensics_on(case, "report", "incident", costliest["incident_id"],
                                    "--format", "md", "-o", str(page), *extra)  # fmt: skip
        assert code == 0, err
        text = page.read_text(encoding="utf-8")
        section = text.split("## What a quota would have done", 1)[1].split("\n## ", 1)[0]
        assert named in section
        refused, total = (
            int(n.replace(",", "")) for n in re.findall(r"\*\*([\d,]+) of ([\d,]+)\*\*", section)[0]
        )
        assert 0 < refused <= total
        assert "`requests-per-minute`" in section


def test_an_empty_period_says_so(suggested: tuple[Path, Path, Path], tmp_path: Path) -> None:
    case, policy, _ = suggested
    far = ("--since", "2031-01-01", "--until", "2031-01-02")
    code, out, err = forensics_on(
        case, "quota", "replay", str(policy), *far, "--view", "detectors", "--format", "csv"
    )
    assert code == 0, err
    assert "warning: no request in the period replayed" in err
    assert not re.search(r"(^|,)-?nan(,|$)", out, re.I | re.M)  # shares of nothing: empty
    code, _, err = forensics_on(case, "quota", "suggest", "-o", str(tmp_path / "p.toml"), *far)
    assert code == 2 and "nothing to fit" in err
    assert not (tmp_path / "p.toml").exists()


def test_the_cli_offers_every_view_there_is() -> None:
    from forensics.cli.quota import replay
    from forensics.quota.verdict import QUERIES

    view = next(p for p in replay.params if p.name == "view")
    assert sorted(view.type.choices) == sorted(QUERIES)  # type: ignore[attr-defined]
