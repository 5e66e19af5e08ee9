"""`--format key-inventory`: the gateway's keys, their owners and ages; raw keys fingerprinted
and never stored; and `credential.stale_or_unknown_key`, which judges keys against it."""

from __future__ import annotations

import datetime as dt
import json

import duckdb

from forensics.case import db
from forensics.case.fingerprints import fingerprint
from forensics.case.removal import remove_sources
from forensics.case.verify import verify_rows
from forensics.detect.load import default_dirs, load_detectors
from forensics.detect.runner import run_detectors
from forensics.ingest.base import Options
from forensics.ingest.formats import detect_format
from forensics.ingest.pipeline import ingest_file
from tests.conftest import load, quarantine_reasons, rows
from tests.ingest.test_kong import kong_record
from tests.keys import KEYS

UTC = dt.UTC
HEADER = "credential_id,owner_tenant,created_at,expires_at,scopes,label\n"
# Keys of a gateway's own format: no known key shape, so only the `key` column protects them.
KEEP = Options(max_quarantine_share=1)  # keep a file whatever share of it is quarantined
HOUSE_KEYS = ("acmegw_live_7Hq2xVb9Lm4Tz8Wd", "acmegw_live_Kp3Rt6Yn1Qs5Ue0J", "acmegw_test_Zz9")


def test_ids_and_raw_keys_load_with_owners_times_and_scopes(case, tmp_path):
    key = KEYS["openai-project"]
    result = load(
        case,
        tmp_path,
        HEADER + "5d2e8b1c-2222-4c1d-8f3a-9e7b6c5d4a31,tenant-acme,2026-01-05T09:00:00Z,,"
        "chat embeddings,acme prod\n"
        f"{key},tenant-acme,2026-01-05,2027-01-05,chat;admin,\n"
        f"Bearer {KEYS['anthropic']},,,,,\n"
        "abc,tenant-globex,1767258000\n",
        name="keys.csv",
    )
    assert (result.format, result.rows_read, result.rows_loaded) == ("key-inventory", 4, 4)
    salt = db.salt(case)
    assert rows(case, "SELECT * EXCLUDE (source_id) FROM key_inventory ORDER BY line_no") == [
        {
            "credential_id": "5d2e8b1c-2222-4c1d-8f3a-9e7b6c5d4a31",
            "owner_tenant": "tenant-acme",
            "created_at": dt.datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
            "expires_at": None,
            "scopes": ["chat", "embeddings"],
            "label": "acme prod",
            "line_no": 2,
        },
        {
            "credential_id": fingerprint(key, salt),
            "owner_tenant": "tenant-acme",
            "created_at": dt.datetime(2026, 1, 5, tzinfo=UTC),
            "expires_at": dt.datetime(2027, 1, 5, tzinfo=UTC),
            "scopes": ["chat", "admin"],
            "label": None,
            "line_no": 3,
        },
        {
            "credential_id": fingerprint(KEYS["anthropic"], salt),
            "owner_tenant": None,
            "created_at": None,
            "expires_at": None,
            "scopes": None,
            "label": None,
            "line_no": 4,
        },
        {
            "credential_id": "abc",
            "owner_tenant": "tenant-globex",
            "created_at": dt.datetime(2026, 1, 1, 9, 0, tzinfo=UTC),
            "expires_at": None,
            "scopes": None,
            "label": None,
            "line_no": 5,
        },
    ]


def test_bad_rows_are_quarantined_with_their_line(case, tmp_path):
    result = load(
        case,
        tmp_path,
        HEADER
        + "k1,tenant-acme,2026-01-05\n"
        + ",tenant-acme,2026-01-05\n"
        + "k2,tenant-acme,yesterday\n"
        + "k3,tenant-acme,2026-02-01,2026-01-01\n"
        + "k4,tenant-acme,2026-01-01,0000-01-01\n"
        + "k5,tenant-acme\n"
        + "k6,tenant-acme,2026-01-01,,,,surplus\n"
        + "k1,tenant-globex,2026-01-06\n",
        name="keys.csv",
        options=KEEP,
    )
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (8, 2, 6)
    assert quarantine_reasons(case) == [
        (3, "credential_id is empty"),
        (4, "created_at is not a timestamp: 9 characters shaped aaaaaaaaa"),
        (5, "expires_at is before created_at"),
        (6, "expires_at is out of range: 10 characters shaped 9999-99-99"),
        (7, "expected 3 to 6 fields, found 2"),
        (8, "expected 3 to 6 fields, found 7"),
    ]
    assert result.warnings == [
        f"{tmp_path / 'keys.csv'}:9: lists the key of line 2 again (the detectors read every"
        " row of a key: its latest created_at and expires_at, any of its owners)"
    ]


def test_a_key_column_is_fingerprinted_whatever_its_shape_and_never_stored(tmp_path):
    path = tmp_path / "case.duckdb"
    con = db.connect(path)
    try:
        result = load(
            con,
            tmp_path,
            "key,owner_tenant,created_at,expires_at\n"
            f"{HOUSE_KEYS[0]},tenant-acme,2026-01-05,\n"
            f"{HOUSE_KEYS[1]},tenant-acme,tomorrow,\n"  # quarantined: the key is in the row
            f"{HOUSE_KEYS[2]},tenant-acme,2026-01-05,,,,,\n",  # malformed: the raw line
            name="house-keys.csv",
            options=KEEP,
        )
        assert (result.rows_loaded, result.rows_quarantined) == (1, 2)
        salt = db.salt(con)
        prints = [fingerprint(k, salt) for k in HOUSE_KEYS]
        assert con.execute("SELECT credential_id FROM key_inventory").fetchall() == [(prints[0],)]
        quarantined = con.execute("SELECT line_no, raw FROM quarantine ORDER BY 1").fetchall()
        assert [(line, raw.split(",")[0]) for line, raw in quarantined] == [
            (3, prints[1]),
            (4, prints[2]),
        ]
    finally:
        con.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("case.duckdb*"))
    assert stored  # the case file was written
    for key in HOUSE_KEYS:
        assert key.encode() not in stored
        assert key[-12:].encode() not in stored


def test_sniffed_by_its_header_from_a_folder(case, tmp_path):
    assert detect_format(tmp_path / "a.csv", [HEADER.strip()]) == "key-inventory"
    assert detect_format(tmp_path / "b.csv", ["key, owner_tenant, created_at"]) == "key-inventory"
    assert detect_format(tmp_path / "c.csv", ["credential_id,revoked_at"]) == "revocations"
    path = tmp_path / "inventory.csv"
    path.write_text(HEADER + "k1,tenant-acme,2026-01-05\n", encoding="utf-8")
    result = ingest_file(case, path)  # no --format: detected
    assert (result.format, result.rows_loaded) == ("key-inventory", 1)


def test_verify_counts_it_and_removal_takes_its_rows(case, tmp_path):
    load(case, tmp_path, HEADER + "k1,tenant-acme,2026-01-05\n", name="keys.csv")
    assert [c.status for c in verify_rows(case)] == ["ok"]
    case.execute("UPDATE key_inventory SET owner_tenant = 'tenant-evil'")
    assert [c.status for c in verify_rows(case)] == ["CHANGED"]
    remove_sources(case, [1], "wrong list", user="me")
    assert case.execute("SELECT count(*) FROM key_inventory").fetchall() == [(0,)]


# --- the detector --------------------------------------------------------------------------

JAN_5 = dt.datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def _use(credential: str, tenant: str, at: dt.datetime, n: int, status: int = 200) -> dict:
    return kong_record(
        **{
            "started_at": int(at.timestamp() * 1000),
            "request.id": f"req-{credential}-{tenant}-{n}",
            "response.status": status,
            "consumer.username": tenant,
            "authenticated_entity.id": credential,
        }
    )


def _findings(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    detectors, problems = load_detectors(default_dirs([]))
    [detector] = [d for d in detectors if d.id == "credential.stale_or_unknown_key"]
    run = run_detectors(con, [detector])
    assert run.errors == {}
    return [
        (str(principal), json.loads(evidence)["reason"], str(severity))
        for principal, evidence, severity in con.execute(
            "SELECT principal_id, evidence, severity FROM findings WHERE run_id = $r"
            " ORDER BY principal_id, window_start",
            {"r": run.run_id},
        ).fetchall()
    ]


def test_each_reason_once_per_key_with_its_severity(case, tmp_path):
    events = [
        _use("key-fresh", "tenant-acme", JAN_5, 1),  # 30 days old, its owner: quiet
        _use("key-89d", "tenant-acme", JAN_5, 1),  # near miss
        _use("key-old", "tenant-acme", JAN_5, 1),  # 120 days old: stale
        _use("key-old", "tenant-acme", JAN_5 + dt.timedelta(hours=1), 2),
        _use("key-expired", "tenant-acme", JAN_5, 1),  # expired on 1 January
        _use("key-rogue", "tenant-acme", JAN_5, 1),  # not in the inventory
        _use("key-rogue-refused", "tenant-acme", JAN_5, 1, status=401),  # refused: quiet
        _use("key-globex", "tenant-acme", JAN_5, 1),  # another tenant's key
    ]
    load(case, tmp_path, "".join(json.dumps(e) + "\n" for e in events), name="kong.jsonl")
    assert _findings(case) == []  # no inventory: quiet
    load(
        case,
        tmp_path,
        HEADER
        + "key-fresh,tenant-acme,2025-12-06T10:00:00Z\n"
        + "key-89d,tenant-acme,2025-10-08T10:00:01Z\n"
        + "key-old,tenant-acme,2025-09-07T10:00:00Z\n"
        + "key-expired,tenant-acme,2025-12-01,2026-01-01\n"
        + "key-globex,tenant-globex,2025-12-20\n",
        name="keys.csv",
    )
    assert _findings(case) == [
        ("key-expired", "expired", "medium"),
        ("key-globex", "wrong_tenant", "high"),
        ("key-old", "stale", "low"),
        ("key-rogue", "unknown", "high"),
    ]
    # the same key listed again for tenant-acme: either owner may use it
    load(case, tmp_path, HEADER + "key-globex,tenant-acme,2025-12-20\n", name="more.csv")
    assert ("key-globex", "wrong_tenant", "high") not in _findings(case)


def test_a_raw_key_in_the_inventory_matches_the_key_in_the_log(case, tmp_path):
    key = KEYS["openai-project"]
    event = kong_record(
        **{
            "started_at": int(JAN_5.timestamp() * 1000),
            "request.headers.apikey": key,
            "consumer.username": "tenant-acme",
        }
    )
    event.pop("authenticated_entity")
    load(case, tmp_path, json.dumps(event) + "\n", name="kong.jsonl")
    load(case, tmp_path, HEADER + "other,tenant-acme,2025-12-20\n", name="other.csv")
    unknown = fingerprint(key, db.salt(case))
    assert _findings(case) == [(unknown, "unknown", "high")]
    load(case, tmp_path, f"key,owner_tenant,created_at\n{key},tenant-acme,2025-12-20\n")
    assert _findings(case) == []  # the raw key's row lists it


def test_requests_batched_on_one_line_are_each_counted_once(case, tmp_path):
    """Kong http-log batches several records into one JSON array: one line, many requests."""
    batch = [_use("key-rogue", "tenant-acme", JAN_5, n) for n in range(3)]
    load(case, tmp_path, json.dumps(batch) + "\n", fmt="kong", name="batch.json")
    load(case, tmp_path, HEADER + "key-a,tenant-acme,2025-12-20\n" * 2, name="keys.csv")
    assert _findings(case) == [("key-rogue", "unknown", "high")]
    [(evidence,)] = case.execute("SELECT evidence FROM findings").fetchall()
    assert json.loads(evidence)["requests"] == 3
