"""Who is in the case and one principal's page: `forensics principals`, `report principal`,
`report incident` with several incidents, `--db` after the subcommand, tables that fit."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from forensics.case import db
from forensics.cli import cli
from tests.conftest import copy_case
from tests.conftest import forensics_on as run
from tests.conftest import query_case as query

TYPES = ("tenant", "credential", "ip", "asn", "provider_key")


@pytest.fixture(scope="module")
def detected(synth_week: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    case = copy_case(synth_week[1], tmp_path_factory.mktemp("principals"))
    code, _, err = run(case, "detect")
    assert code == 0, err
    return case


@pytest.mark.parametrize("kind", TYPES)
def test_principals_count_what_the_case_holds(detected, kind):
    code, out, err = run(detected, "principals", "--type", kind, "--limit", "0", "--format", "json")
    assert code == 0, err
    listed = json.loads(out)
    assert listed and {p["type"] for p in listed} == {kind}
    if kind == "provider_key":
        expected = query(
            detected,
            "SELECT api_key_id AS id, coalesce(sum(requests), 0) AS n FROM usage"
            " WHERE api_key_id IS NOT NULL GROUP BY 1",
        )
    else:
        column = {"tenant": "tenant_id", "credential": "credential_id", "asn": "asn"}.get(kind)
        where = "credential_id IS NULL" if kind == "ip" else "true"
        expected = query(
            detected,
            f"SELECT CAST({column or 'client_ip'} AS VARCHAR) AS id, count(*) AS n"
            f" FROM requests WHERE {where} AND {column or 'client_ip'} IS NOT NULL GROUP BY 1",
        )
    volume = {p["id"]: p["requests"] for p in listed if p["first_seen"] is not None}
    assert volume == {e["id"]: e["n"] for e in expected}
    # findings per principal are the current, unsuppressed ones
    found = query(
        detected,
        "SELECT principal_id AS id, count(*) AS n FROM findings WHERE superseded_by IS NULL"
        " AND NOT suppressed AND principal_type = $t GROUP BY 1",
        {"t": kind},
    )
    assert {p["id"]: p["findings"] for p in listed if p["findings"]} == {
        f["id"]: f["n"] for f in found
    }
    # default order: the most severe first
    ranks = ["info", "low", "medium", "high", "critical"]
    worst = [ranks.index(p["worst"]) if p["worst"] else -1 for p in listed]
    assert worst == sorted(worst, reverse=True)


@pytest.mark.parametrize("kind", TYPES)
def test_a_principal_page_for_each_type(detected, tmp_path, kind):
    """The most severe principal of each type (or the busiest one with no finding)."""
    code, out, _ = run(detected, "principals", "--type", kind, "--limit", "1", "--format", "json")
    [top] = json.loads(out)
    page = tmp_path / "p.html"
    code, _, err = run(detected, "report", "principal", f"{kind}:{top['id']}", "-o", str(page))
    assert code == 0, err
    html = page.read_text(encoding="utf-8")
    assert "<h1>Principal: " in html
    assert f"{top['findings']} finding{'' if top['findings'] == 1 else 's'}" in html
    for i in query(
        detected,
        "SELECT DISTINCT i.incident_id FROM incidents i, findings f"
        " WHERE list_contains(i.finding_ids, f.finding_id) AND f.principal_type = $t"
        " AND f.principal_id = $p",
        {"t": kind, "p": top["id"]},
    ):
        assert str(i["incident_id"]) in html  # every incident it is part of is listed
    md = tmp_path / "p.md"
    code, _, err = run(
        detected, "report", "timeline", f"{kind}:{top['id']}", "--format", "md", "-o", str(md)
    )
    assert code == 0, err
    assert md.read_text(encoding="utf-8").startswith("# Principal: ")


def test_a_principal_without_findings_and_an_unknown_one(detected, tmp_path):
    [quiet] = query(
        detected,
        "SELECT tenant_id FROM requests WHERE tenant_id IS NOT NULL AND tenant_id NOT IN"
        " (SELECT tenant_id FROM findings WHERE tenant_id IS NOT NULL)"
        " GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
    )
    page = tmp_path / "q.html"
    code, _, err = run(
        detected, "report", "principal", f"tenant:{quiet['tenant_id']}", "-o", str(page)
    )
    assert code == 0, err
    html = page.read_text(encoding="utf-8")
    assert "0 findings" in html and "No incident in the case involves this principal." in html
    code, _, err = run(detected, "report", "principal", "tenant:nobody-here", "-o", str(page))
    assert code == 1 and "no traffic and no finding of tenant nobody-here" in err
    code, _, err = run(detected, "report", "principal", "planet:earth", "-o", str(page))
    assert code == 2 and "TYPE:ID" in err


def test_several_incidents_are_listed_to_pick_one_or_all(detected, tmp_path):
    # a second incident on the top incident's principal: one of its findings again, three
    # days later, past the grouping gap (incidents are rebuilt from findings)
    from forensics.detect.incidents import build_incidents

    case = copy_case(detected, tmp_path)
    con = db.connect(case)
    try:
        [(t, p, fid)] = con.execute(
            "SELECT principal_type, principal_id, finding_ids[1] FROM incidents"
            " ORDER BY score DESC, incident_id LIMIT 1"
        ).fetchall()
        con.execute(
            "INSERT INTO findings SELECT * REPLACE (md5(finding_id) AS finding_id,"
            " window_start + INTERVAL 3 DAY AS window_start,"
            " window_end + INTERVAL 3 DAY AS window_end) FROM findings WHERE finding_id = $f",
            {"f": fid},
        )
        build_incidents(con)
    finally:
        con.close()
    detected = case
    ids = [
        str(r["incident_id"])
        for r in query(
            detected,
            "SELECT incident_id FROM incidents WHERE principal_type = $t AND principal_id = $p"
            " ORDER BY last_seen DESC",
            {"t": t, "p": p},
        )
    ]
    out = tmp_path / "one.html"
    code, _, err = run(detected, "report", "incident", "--principal", f"{t}:{p}", "-o", str(out))
    assert code == 2 and f"{len(ids)} incidents match" in err and not out.exists()
    assert [line.split()[0] for line in err.splitlines()[1 : 1 + len(ids)]] == [i[:8] for i in ids]
    folder = tmp_path / "all"
    code, stdout, err = run(
        detected, "report", "incident", "--principal", f"{t}:{p}", "--all", "-o", str(folder)
    )
    assert code == 0, err
    written = sorted(folder.iterdir())
    assert len(written) == len(ids)
    assert all(any(f.name.startswith(f"incident-{i[:8]}-") for f in written) for i in ids)
    code, _, err = run(detected, "report", "incident", ids[0][:6], "-o", str(out))
    assert code == 0, err
    assert ids[0] in out.read_text(encoding="utf-8")


def test_db_after_the_subcommand_and_tables_that_fit_120_columns(detected):
    res = CliRunner().invoke(
        cli, ["findings", "--db", str(detected), "--severity", "high"], env={"COLUMNS": "120"}
    )
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["finding", "severity", "detector_id"]
    for command in (
        ["findings"],
        ["findings", "--wide"],
        ["incidents"],
        ["principals", "--wide"],
        ["runs"],
        ["sources"],
        ["allow", "list", "--all"],
    ):
        res = CliRunner().invoke(cli, [*command, "--db", str(detected)], env={"COLUMNS": "120"})
        assert res.exit_code == 0, (command, res.stderr)
        assert max(len(line) for line in res.stdout.splitlines()) <= 120, command
    # without a width (a pipe), nothing is left out
    res = CliRunner().invoke(
        cli, ["--db", str(detected), "findings", "--wide"], env={"COLUMNS": ""}
    )
    assert "evidence" in res.stdout.splitlines()[0] and "left out" not in res.stderr


def test_report_to_stdout_and_the_format_an_extension_names(detected, tmp_path):
    code, out, err = run(detected, "report", "principal", "asn:AS" + _an_asn(detected), "-o", "-")
    assert code == 0, err
    assert out.startswith("<!DOCTYPE html>") and out.rstrip().endswith("</html>")
    page = tmp_path / "page.md"
    code, out, err = run(
        detected, "report", "principal", "asn:" + _an_asn(detected), "-o", str(page)
    )
    assert code == 0 and page.read_text(encoding="utf-8").startswith("# Principal: asn ")
    code, _, err = run(
        detected, "report", "weekly", "--week", "last", "--format", "html", "-o", str(page)
    )
    assert code == 2 and "is md, but --format says html" in err


def _an_asn(case: Path) -> str:
    return str(query(case, "SELECT CAST(asn AS VARCHAR) AS a FROM requests WHERE asn IS NOT NULL"
                     " GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")[0]["a"])  # fmt: skip


def test_findings_and_incidents_sort_and_limit(detected):
    ranks = ["info", "low", "medium", "high", "critical"]
    code, out, err = run(
        detected, "findings", "--sort", "severity", "--limit", "5", "--format", "json"
    )
    assert code == 0, err
    top = json.loads(out)
    assert len(top) == 5
    assert [ranks.index(f["severity"]) for f in top] == sorted(
        (ranks.index(f["severity"]) for f in top), reverse=True
    )
    worst = query(detected, "SELECT max(severity) AS s FROM findings WHERE superseded_by IS NULL"
                  " AND NOT suppressed")[0]["s"]  # fmt: skip
    assert top[0]["severity"] == worst
    code, out, _ = run(detected, "incidents", "--sort", "newest", "--format", "json")
    ends = [i["last_seen"] for i in json.loads(out)]
    assert ends == sorted(ends, reverse=True) and len(ends) > 1
    code, out, _ = run(detected, "findings", "--sort", "cost", "--format", "csv", "--limit", "3")
    costs = [float(r["est_cost_usd"] or 0) for r in csv.DictReader(io.StringIO(out))]
    assert costs == sorted(costs, reverse=True) and len(costs) == 3


def test_times_shown_in_another_zone_and_stored_in_utc(detected, tmp_path):
    res = CliRunner().invoke(
        cli, ["incidents", "--db", str(detected), "--tz", "Asia/Kolkata", "--limit", "1"],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert res.exit_code == 0, res.stderr
    assert "+05:30" in res.stdout.splitlines()[2]
    code, out, _ = run(detected, "--tz", "Asia/Kolkata", "incidents", "--format", "json")
    assert all(i["first_seen"].endswith("+00") for i in json.loads(out))  # data stays UTC
    page = tmp_path / "p.md"
    code, _, err = run(
        detected, "--tz", "Europe/Berlin", "report", "principal", "asn:" + _an_asn(detected),
        "-o", str(page),
    )  # fmt: skip
    assert code == 0, err
    header = page.read_text(encoding="utf-8").splitlines()[2]
    assert " CET" in header and "UTC" not in header
    code, _, err = run(detected, "--tz", "Mars/Olympus", "incidents")
    assert code == 2 and "not a time zone" in err and "Olympus" not in err
    # the next command without --tz is back in UTC
    res = CliRunner().invoke(cli, ["incidents", "--db", str(detected)], env={"COLUMNS": "200"})
    assert "+00" in res.stdout.splitlines()[2]


def test_columns_by_name(detected):
    code, out, err = run(
        detected, "findings", "--columns", "severity,finding_id", "--format", "csv", "--limit", "1"
    )
    assert code == 0, err
    assert out.splitlines()[0] == "severity,finding_id"
    code, out, _ = run(detected, "principals", "--columns", "id,findings", "--format", "json")
    assert all(set(p) == {"id", "findings"} for p in json.loads(out))
    code, _, err = run(detected, "incidents", "--columns", "finding_id;drop")
    assert code == 2 and "no column" in err and "choose from incident_id" in err


def test_findings_of_one_run_by_a_prefix_of_its_id(detected):
    [run_row] = query(detected, "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1")
    code, out, err = run(
        detected, "findings", "--run", str(run_row["run_id"])[:6], "--format", "json"
    )
    assert code == 0, err
    assert {f["run_id"] for f in json.loads(out)} == {run_row["run_id"]}
    ids = [str(r["run_id"]) for r in query(detected, "SELECT run_id FROM runs")]
    absent = next(
        p for p in ("0000", "ffff", "abcd", "1234") if not any(i.startswith(p) for i in ids)
    )
    code, _, err = run(detected, "findings", "--run", absent)
    assert code == 2 and f"no run id starts with {absent}" in err
    # not an id at all (a pasted key, say): described by its shape, never echoed
    code, _, err = run(detected, "findings", "--run", "sk-proj-abcdefghijklmnop")
    assert code == 2 and "not an id" in err and "abcdefghij" not in err
