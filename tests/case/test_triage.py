"""Triage and the allowlist inside the case: decisions kept as history across detection runs,
suppressions applied at the next run and shown with their reason, ids by unique prefix."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from forensics.case import db
from tests.conftest import copy_case, rows
from tests.conftest import forensics_on as run
from tests.conftest import query_case as query
from tests.keys import KEYS


@pytest.fixture
def detected(synth_week: tuple[Path, Path], tmp_path: Path) -> Path:
    case = copy_case(synth_week[1], tmp_path)
    code, _, err = run(case, "detect")
    assert code == 0, err
    return case


def a_finding(case: Path, detector: str | None = None) -> dict[str, object]:
    """A current finding (of `detector`) whose principal has no other finding of its detector,
    so a suppression of the pair hides exactly it."""
    found = query(
        case,
        "SELECT * FROM findings f WHERE superseded_by IS NULL AND NOT suppressed"
        " AND ($d IS NULL OR detector_id = $d) AND (SELECT count(*) FROM findings g"
        " WHERE g.superseded_by IS NULL AND g.detector_id = f.detector_id"
        " AND g.principal_id = f.principal_id) = 1 ORDER BY finding_id LIMIT 1",
        {"d": detector},
    )
    assert found, detector
    return found[0]


def test_a_status_is_history_that_survives_detect_and_follows_the_finding(detected):
    f = a_finding(detected)
    fid = str(f["finding_id"])
    code, out, err = run(
        detected, "triage", fid[:6], "--status", "investigating", "--reason", "asked", "--by", "al"
    )
    assert code == 0, err
    assert f"finding {fid}: investigating" in out
    code, _, err = run(
        detected, "triage", fid[:8], "--status", "resolved", "--reason", "key rotated", "--by", "bo"
    )
    assert code == 0, err
    code, _, err = run(detected, "detect")
    assert code == 0, err
    [now] = query(
        detected,
        "SELECT finding_id FROM findings WHERE superseded_by IS NULL AND detector_id = $d"
        " AND principal_id = $p",
        {"d": f["detector_id"], "p": f["principal_id"]},
    )
    assert now["finding_id"] != fid  # a new run: a new id for the same finding
    [status] = query(
        detected, "SELECT * FROM finding_triage WHERE finding_id = $f", {"f": now["finding_id"]}
    )
    assert (status["triage_status"], status["triage_reason"], status["triage_by"]) == (
        "resolved",
        "key rotated",
        "bo",
    )
    assert status["triage_entries"] == 2
    history = query(detected, "SELECT status, recorded_by FROM triage ORDER BY recorded_at")
    assert [(h["status"], h["recorded_by"]) for h in history] == [
        ("investigating", "al"),
        ("resolved", "bo"),
    ]
    # the history of the new id is the same two entries; findings print the status
    code, out, _ = run(detected, "triage", str(now["finding_id"])[:10], "--format", "json")
    assert [e["status"] for e in json.loads(out)] == ["investigating", "resolved"]
    code, out, _ = run(detected, "findings", "--format", "json")
    by_id = {r["finding_id"]: r for r in json.loads(out)}
    assert by_id[now["finding_id"]]["triage_status"] == "resolved"
    assert {r["triage_status"] for k, r in by_id.items() if k != now["finding_id"]} == {"open"}


def test_a_false_positive_suppressed_similar_is_hidden_at_the_next_run_with_its_reason(
    detected, tmp_path
):
    f = a_finding(detected)
    fid = str(f["finding_id"])
    code, out, err = run(
        detected, "triage", fid[:8], "--status", "false_positive", "--reason",
        "nightly eval job", "--by", "carol", "--suppress-similar", "--expires", "2099-01-01",
    )  # fmt: skip
    assert code == 0, err
    assert "suppressed from the next run by allowlist entry" in out
    # nothing changes until detection runs again
    assert query(detected, "SELECT suppressed FROM findings WHERE finding_id = $f", {"f": fid}) == [
        {"suppressed": False}
    ]
    code, out, err = run(detected, "detect")
    assert code == 0, err
    [now] = query(
        detected,
        "SELECT * FROM findings WHERE superseded_by IS NULL AND detector_id = $d"
        " AND principal_type = $t AND principal_id = $p",
        {"d": f["detector_id"], "t": f["principal_type"], "p": f["principal_id"]},
    )
    assert now["suppressed"] is True
    label = str(now["suppressed_by"])
    assert "nightly eval job" in label and "(carol)" in label and "false_positive" in label
    # only that pair: the principal's findings of other detectors stay
    others = query(
        detected,
        "SELECT count(*) AS n FROM findings WHERE superseded_by IS NULL AND suppressed"
        " AND finding_id <> $f",
        {"f": now["finding_id"]},
    )
    assert others == [{"n": 0}]
    # the weekly report shows the suppression with its reason, and the decision
    start = f["window_start"]
    assert hasattr(start, "isocalendar")
    year, week, _ = start.isocalendar()  # type: ignore[union-attr]
    page = tmp_path / "week.md"
    code, _, err = run(
        detected, "report", "weekly", "--week", f"{year}-W{week:02d}", "--format", "md",
        "-o", str(page),
    )  # fmt: skip
    assert code == 0, err
    text = page.read_text(encoding="utf-8")
    assert "## Triage" in text and "Suppressed findings" in text
    assert "nightly eval job" in text and "false positive" in text
    # removing the entry brings the finding back at the next run, and the entry stays listed
    [entry] = query(detected, "SELECT entry_id FROM allowlist WHERE source_id IS NULL")
    code, out, err = run(detected, "allow", "remove", str(entry["entry_id"])[:8], "--by", "dee")
    assert code == 0, err
    code, out, _ = run(detected, "allow", "list", "--format", "json")
    assert json.loads(out) == []
    code, out, _ = run(detected, "allow", "list", "--all", "--format", "json")
    [listed] = json.loads(out)
    assert (listed["state"], listed["removed_by"]) == ("removed", "dee")
    run(detected, "detect")
    [back] = query(
        detected,
        "SELECT suppressed FROM findings WHERE superseded_by IS NULL AND detector_id = $d"
        " AND principal_id = $p",
        {"d": f["detector_id"], "p": f["principal_id"]},
    )
    assert back["suppressed"] is False


def test_an_incident_triage_shows_on_its_page_and_in_the_weekly_report(detected, tmp_path):
    [incident] = query(detected, "SELECT * FROM incidents ORDER BY score DESC, incident_id LIMIT 1")
    iid = str(incident["incident_id"])
    code, _, err = run(
        detected, "triage", iid[:8], "--status", "accepted_risk", "--reason",
        "pentest <b>window</b>", "--by", "eve",
    )  # fmt: skip
    assert code == 0, err
    run(detected, "detect")  # incidents are rebuilt; the decision follows the principal
    code, out, _ = run(detected, "incidents", "--format", "json")
    statuses = {
        (r["principal_type"], r["principal_id"]): r["triage_status"] for r in json.loads(out)
    }
    assert statuses[(incident["principal_type"], incident["principal_id"])] == "accepted_risk"
    assert sorted(set(statuses.values())) == ["accepted_risk", "open"]
    page = tmp_path / "incident.html"
    code, _, err = run(
        detected, "report", "incident", "--principal",
        f"{incident['principal_type']}:{incident['principal_id']}", "-o", str(page),
    )  # fmt: skip
    assert code == 0, err
    html = page.read_text(encoding="utf-8")
    assert 'id="triage-status">Triage: <strong>accepted risk</strong>' in html
    assert "pentest &lt;b&gt;window&lt;/b&gt;" in html and "<b>window" not in html
    assert '<section id="triage">' in html


def test_ids_by_unique_prefix_and_refusals(detected):
    # two findings whose ids share their first six digits: that prefix is refused, naming both
    pair = [str(r["finding_id"]) for r in query(
        detected, "SELECT finding_id FROM findings ORDER BY finding_id LIMIT 2"
    )]  # fmt: skip
    con = db.connect(detected)
    try:
        for fid in pair:
            con.execute(
                "UPDATE findings SET finding_id = 'abcdef' || substr(finding_id, 7)"
                " WHERE finding_id = $f",
                {"f": fid},
            )
    finally:
        con.close()
    code, _, err = run(detected, "triage", "abcdef", "--status", "resolved", "--reason", "x")
    assert code == 2 and "abcdef is ambiguous" in err
    assert all(f"abcdef{fid[6:]}" in err for fid in pair)
    code, _, err = run(
        detected, "triage", f"abcdef{pair[0][6:12]}", "--status", "resolved", "--reason", "x"
    )
    assert code == 0, err
    con = db.connect(detected)
    con.execute("DELETE FROM triage")
    con.close()
    code, _, err = run(detected, "triage", "ab", "--status", "resolved", "--reason", "x")
    assert code == 2 and "at least 4 hex digits" in err
    code, _, err = run(detected, "triage", "zzzzzz", "--status", "resolved", "--reason", "x")
    assert code == 2 and "not an id" in err and "zzzzzz" not in err  # its shape, not the text
    fid = str(a_finding(detected)["finding_id"])
    code, _, err = run(detected, "triage", fid, "--status", "resolved")
    assert code == 2 and "--reason" in err
    code, _, err = run(
        detected, "triage", fid, "--status", "false_positive", "--reason", "x",
        "--suppress-similar",
    )  # fmt: skip
    assert code == 2 and "--expires" in err
    code, _, err = run(
        detected, "triage", fid, "--status", "investigating", "--reason", "x",
        "--suppress-similar", "--expires", "2099-01-01",
    )  # fmt: skip
    assert code == 2 and "false_positive and accepted_risk" in err
    assert query(detected, "SELECT count(*) AS n FROM triage") == [{"n": 0}]  # all refused
    assert query(detected, "SELECT count(*) AS n FROM allowlist") == [{"n": 0}]


def test_secrets_never_reach_the_case_and_bad_values_are_described_by_shape(detected):
    key = KEYS["openai-project"]
    code, out, err = run(detected, "allow", "add", "credential", key, "--reason", f"for {key}")
    assert code == 0, err
    code, _, err = run(detected, "allow", "add", "ip", "10.0.0.999", "--reason", "x")
    assert code == 2 and "not an IP address" in err and "10.0.0.999" not in err
    code, _, err = run(detected, "allow", "add", "asn", "AS64500", "--reason", "ci runners")
    assert code == 0, err
    fid = str(a_finding(detected)["finding_id"])
    code, _, err = run(
        detected, "triage", fid, "--status", "investigating", "--reason", f"pasted {key}",
        "--by", key,
    )  # fmt: skip
    assert code == 0, err
    con = db.connect(detected, read_only=True)
    try:
        for table in ("allowlist", "triage"):
            text = json.dumps(rows(con, f"SELECT * FROM {table}"), default=str)
            assert key not in text and key[8:30] not in text, table
        values = {r["kind"]: r["value"] for r in rows(con, "SELECT kind, value FROM allowlist")}
    finally:
        con.close()
    assert values["asn"] == "64500"
    assert str(values["credential"]).startswith("cred:")


def test_a_case_made_before_triage_opens_read_only_and_gains_it_read_write(detected, tmp_path):
    allow = tmp_path / "allow.csv"
    allow.write_text("kind,value,detectors,reason,expires\nasn,AS64500,,ci runners,\n")
    code, _, err = run(detected, "ingest", "-q", str(allow))
    assert code == 0, err
    [csv_row] = query(detected, "SELECT entry_id FROM allowlist")
    con = duckdb.connect(str(detected))
    con.execute("DROP VIEW IF EXISTS finding_triage")
    con.execute("DROP VIEW IF EXISTS incident_triage")
    con.execute("DROP TABLE triage")
    for column in ("entry_id", "added_by", "added_at", "removed_at", "removed_by"):
        con.execute(f"ALTER TABLE allowlist DROP COLUMN {column}")
    con.close()
    code, out, err = run(detected, "findings", "--format", "json")  # read-only: no triage table
    assert code == 0, err
    assert {r["triage_status"] for r in json.loads(out)} == {"open"}
    fid = str(a_finding(detected)["finding_id"])
    code, _, err = run(detected, "triage", fid, "--status", "resolved", "--reason", "done")
    assert code == 0, err
    assert query(detected, "SELECT status FROM triage") == [{"status": "resolved"}]
    code, out, err = run(detected, "allow", "list", "--format", "json")  # gains its columns
    assert code == 0, err
    [listed] = json.loads(out)  # the file's row has the id a fresh ingest gives it: removable
    assert listed["id"] == csv_row["entry_id"] and len(listed["id"]) == 32
    code, _, err = run(detected, "allow", "remove", listed["id"][:8])
    assert code == 0, err


def test_a_decision_covers_what_it_saw_new_activity_reopens(detected):
    f = a_finding(detected)
    fid = str(f["finding_id"])
    code, _, err = run(detected, "triage", fid, "--status", "resolved", "--reason", "rotated")
    assert code == 0, err
    con = db.connect(detected)
    try:
        # the same detector on the same principal, running an hour past what was triaged
        con.execute(
            "INSERT INTO findings SELECT * REPLACE (md5(finding_id) AS finding_id,"
            " window_end + INTERVAL 1 HOUR AS window_end) FROM findings WHERE finding_id = $f",
            {"f": fid},
        )
        statuses = dict(
            con.execute(
                "SELECT finding_id, triage_status FROM finding_triage"
                " WHERE finding_id IN ($f, md5($f))",
                {"f": fid},
            ).fetchall()
        )
    finally:
        con.close()
    assert statuses == {fid: "resolved", _md5(fid): "open"}
    code, out, _ = run(detected, "triage", _md5(fid)[:10], "--format", "json")
    assert [e["status"] for e in json.loads(out)] == ["resolved"]  # its history still says so


def _md5(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - DuckDB's md5, for an id


def test_allowlist_values_that_could_never_match_are_refused(detected):
    for args, message in (
        (["cidr", "10.0.0.0/99"], "CIDR prefix length out of range"),
        (["cidr", "2001:db8::/129"], "CIDR prefix length out of range"),
        (["tenant", "   "], "value is empty"),
        (["user", "bob", "--expires", "2001-01-01"], "is past"),
    ):
        code, _, err = run(detected, "allow", "add", *args, "--reason", "x")
        assert code == 2 and message in err, (args, err)
    code, _, err = run(detected, "allow", "add", "asn", " AS 64500 ", "--reason", "x")
    assert code == 0, err
    assert query(detected, "SELECT value FROM allowlist") == [{"value": "64500"}]
    fid = str(a_finding(detected)["finding_id"])
    code, _, err = run(
        detected, "triage", fid, "--status", "investigating", "--reason", "x",
        "--expires", "2099-01-01",
    )  # fmt: skip
    assert code == 2 and "--suppress-similar" in err


def test_an_allowlist_entry_id_that_is_no_id_is_described_not_echoed(detected):
    code, _, err = run(detected, "allow", "remove", "sk-proj-abcdefghijklmnopqrst")
    assert code == 2 and "not an id" in err and "abcdefghij" not in err
    code, _, err = run(detected, "allow", "remove", "0123abcd")
    assert code == 2 and "no allowlist entry id starts with 0123abcd" in err
