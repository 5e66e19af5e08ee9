"""JWT audience and tenant claim at ingest: `token_audience` keeps `aud` (a string or a list),
`token_tenant` the first tenant claim present (`--tenant-claim`, else tenant_id, tid, tenant,
org_id); both pass the scrubber like every other string from the log."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from click.testing import CliRunner

from forensics.case import db
from forensics.cli import cli
from tests.ingest.test_kong import kong_record


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _token(claims: dict[str, object]) -> str:
    head = {"alg": "RS256", "typ": "JWT", "kid": "k1"}
    return f"{_b64(head)}.{_b64({'iss': 'https://id.example/', 'sub': 'u1', **claims})}.c2ln"


def _ingest(tmp_path: Path, tokens: list[str], *args: str) -> list[tuple[object, ...]]:
    log = tmp_path / "kong.jsonl"
    log.write_text(
        "".join(
            json.dumps(
                kong_record(
                    **{"request.headers.authorization": f"Bearer {t}", "request.id": f"r{i}"}
                )
            )
            + "\n"  # fmt: skip
            for i, t in enumerate(tokens)
        )
    )
    case = tmp_path / "case.duckdb"
    out = CliRunner().invoke(cli, ["--db", str(case), "ingest", "-q", *args, str(log)])
    assert out.exit_code == 0, out.output
    con = db.connect(case, read_only=True)
    try:
        return con.execute(
            "SELECT token_tenant, token_audience FROM requests ORDER BY request_id"
        ).fetchall()
    finally:
        con.close()


def test_default_claims_and_audience_forms(tmp_path: Path) -> None:
    got = _ingest(
        tmp_path,
        [
            _token({"tid": "tenant-globex", "aud": "ai-gateway"}),
            _token({"org_id": "org-9", "tenant_id": "tenant-acme", "aud": ["a", "b"]}),
            _token({"sub": "no-tenant"}),
        ],
    )
    assert got == [
        ("tenant-globex", ["ai-gateway"]),
        ("tenant-acme", ["a", "b"]),  # tenant_id comes before org_id
        (None, None),
    ]


def test_a_custom_claim_with_a_url_name_and_a_planted_key(tmp_path: Path) -> None:
    planted = "sk-proj-" + "Q7w" * 12
    claim = "https://example.com/claims/tenant"
    got = _ingest(
        tmp_path,
        [_token({claim: "tenant-initech", "tid": "ignored", "aud": [planted]})],
        "--tenant-claim",
        claim,
    )
    [(tenant, audience)] = got
    assert tenant == "tenant-initech"
    assert planted not in str(audience) and str(audience[0]).startswith("cred:")
    case = db.connect(tmp_path / "case.duckdb", read_only=True)
    try:
        [(options,)] = case.execute("SELECT options FROM sources").fetchall()
    finally:
        case.close()
    assert json.loads(options)["tenant_claims"] == [claim]


def test_an_empty_claim_name_is_refused_before_any_file(tmp_path: Path) -> None:
    log = tmp_path / "kong.log"
    log.write_text(json.dumps(kong_record()) + "\n")
    for name in ("", '""'):
        out = CliRunner().invoke(
            cli, ["--db", str(tmp_path / "c.duckdb"), "ingest", "--tenant-claim", name, str(log)]
        )
        assert out.exit_code == 2, out.output
        assert "a claim name must not be empty" in out.output
        assert "JSON path" not in out.output
