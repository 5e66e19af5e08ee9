"""Issue acceptance: ingest a week, load revocations, `forensics detect`, `forensics findings`."""

from __future__ import annotations

import datetime as dt
import json

from click.testing import CliRunner

from forensics.cli import cli
from tests.ingest.test_kong import kong_record

CONTRACT = {
    "finding_id", "detector_id", "severity", "score", "principal_type", "principal_id",
    "tenant_id", "window_start", "window_end", "summary", "evidence", "est_cost_usd",
    "provider_cost_usd", "suppressed", "suppressed_by", "run_id", "superseded_by", "triage_status",
}  # fmt: skip
START = dt.datetime(2026, 11, 16, tzinfo=dt.UTC)
REVOKED = START + dt.timedelta(days=3, hours=9)


def request(credential: str, tenant: str, at: dt.datetime, n: int) -> dict[str, object]:
    return kong_record(**{
        "started_at": int(at.timestamp() * 1000),
        "request.id": f"{credential[:4]}-{n}",
        "authenticated_entity.id": credential,
        "consumer.username": tenant,
        "client_ip": f"198.51.100.{n % 200 + 1}",
    })  # fmt: skip


def test_use_hours_after_revocation_is_found_and_a_stop_within_two_minutes_is_not(tmp_path):
    leaked, rotated = "cred-leaked-0001", "cred-rotated-0002"
    events = []
    n = 0
    t = START
    while t < START + dt.timedelta(days=7):
        n += 1
        events.append(request(leaked, "acme", t, n))  # goes on all week, revoked or not
        if t <= REVOKED + dt.timedelta(minutes=1):  # stops within two minutes of revocation
            events.append(request(rotated, "globex", t, n))
        t += dt.timedelta(minutes=30)
    events.append(request(rotated, "globex", REVOKED + dt.timedelta(minutes=1, seconds=50), n + 1))
    week = tmp_path / "kong-week.jsonl"
    week.write_text("".join(json.dumps(e) + "\n" for e in events))
    revoked = tmp_path / "revoked.csv"
    revoked.write_text(
        "credential_id,revoked_at\n"
        f"{leaked},{REVOKED.isoformat()}\n"
        f"{rotated},{REVOKED.isoformat()}\n"
    )
    case = str(tmp_path / "case.duckdb")
    runner = CliRunner()
    assert (
        runner.invoke(cli, ["--db", case, "ingest", "-q", str(week), str(revoked)]).exit_code == 0
    )
    detect = runner.invoke(cli, ["--db", case, "detect"])
    assert detect.exit_code == 0, detect.output
    out = runner.invoke(cli, ["--db", case, "findings", "--format", "jsonl"])
    assert out.exit_code == 0, out.output
    findings = [json.loads(line) for line in out.stdout.splitlines()]
    assert all(set(f) == CONTRACT for f in findings)
    revocation = [f for f in findings if f["detector_id"] == "credential.use_after_revocation"]
    assert [(f["principal_type"], f["principal_id"], f["tenant_id"]) for f in revocation] == [
        ("credential", leaked, "acme")
    ]
    [finding] = revocation
    assert isinstance(finding["evidence"], dict)
    assert finding["severity"] in {"high", "critical"}
    assert finding["suppressed"] is False
    # a re-run supersedes the first run's findings: the same findings, nothing duplicated
    assert runner.invoke(cli, ["--db", case, "detect"]).exit_code == 0
    again = runner.invoke(cli, ["--db", case, "findings", "--format", "jsonl"])
    key = ("detector_id", "principal_id", "window_start", "window_end", "summary")
    assert sorted(tuple(json.loads(x)[k] for k in key) for x in again.stdout.splitlines()) == (
        sorted(tuple(f[k] for k in key) for f in findings)
    )
