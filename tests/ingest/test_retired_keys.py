"""The `retired-keys` reference format: JWT signing keys and issuers taken out of use."""

from __future__ import annotations

import datetime as dt

import pytest

from forensics.case.schema import table
from forensics.errors import InputError
from forensics.ingest.base import Options
from forensics.ingest.formats import FORMATS, detect_format
from forensics.ingest.pipeline import ingest_file
from forensics.ingest.reader import head_lines
from tests.conftest import load, quarantine_reasons, rows

UTC = dt.UTC
HEADER = "issuer,key_id,retired_at,reason\n"


def test_rows_load_with_kid_issuer_or_both(case, tmp_path):
    result = load(
        case,
        tmp_path,
        HEADER
        + "https://auth.example.com/,kid-2025-12,2026-01-04T00:00:00Z,quarterly rotation\n"
        + ",kid-legacy-7,1767225600,\n"
        + 'https://legacy-idp.example.net/,,2025-12-01 00:00:00,"IdP migration, phase 2"\n'
        + "\n"
        + "https://auth.example.com/,kid-2025-06,2025-07-01T02:00:00+02:00,\n",
        fmt="retired-keys",
        name="retired.csv",
    )
    assert (result.format, result.rows_read, result.rows_loaded, result.rows_quarantined) == (
        "retired-keys",
        4,
        4,
        0,
    )
    assert rows(
        case, "SELECT issuer, key_id, retired_at, reason, line_no FROM retired_keys ORDER BY 5"
    ) == [
        {
            "issuer": "https://auth.example.com/",
            "key_id": "kid-2025-12",
            "retired_at": dt.datetime(2026, 1, 4, tzinfo=UTC),
            "reason": "quarterly rotation",
            "line_no": 2,
        },
        {
            "issuer": None,
            "key_id": "kid-legacy-7",
            "retired_at": dt.datetime(2026, 1, 1, tzinfo=UTC),
            "reason": None,
            "line_no": 3,
        },
        {
            "issuer": "https://legacy-idp.example.net/",
            "key_id": None,
            "retired_at": dt.datetime(2025, 12, 1, tzinfo=UTC),
            "reason": "IdP migration, phase 2",
            "line_no": 4,
        },
        {
            "issuer": "https://auth.example.com/",
            "key_id": "kid-2025-06",
            "retired_at": dt.datetime(2025, 7, 1, tzinfo=UTC),
            "reason": None,
            "line_no": 6,
        },
    ]
    source = rows(case, "SELECT kind, rows_read, rows_loaded, lines_blank FROM sources")
    assert source == [{"kind": "reference", "rows_read": 4, "rows_loaded": 4, "lines_blank": 1}]


def test_the_reason_column_may_be_left_out(case, tmp_path):
    result = load(
        case,
        tmp_path,
        "issuer,key_id,retired_at\n,kid-1,2026-01-01T00:00:00Z\n",
        fmt="retired-keys",
    )
    assert (result.rows_loaded, result.rows_quarantined) == (1, 0)
    assert case.execute("SELECT key_id, reason FROM retired_keys").fetchall() == [("kid-1", None)]


def test_bad_rows_are_quarantined_at_their_line_and_counts_reconcile(case, tmp_path):
    result = load(
        case,
        tmp_path,
        HEADER
        + "https://auth.example.com/,kid-ok,2026-01-04T00:00:00Z,rotation\n"
        + ",,2026-01-04T00:00:00Z,neither issuer nor kid\n"
        + "https://auth.example.com/,kid-1,,no date\n"
        + "https://auth.example.com/,kid-2,last tuesday,\n"
        + "https://auth.example.com/,kid-3,1066-10-14T00:00:00Z,\n"
        + "https://auth.example.com/,kid-4,2026-01-04T00:00:00Z,a,b\n",
        fmt="retired-keys",
        name="retired.csv",
        options=Options(max_quarantine_share=1),
    )
    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (6, 1, 5)
    assert result.reconciles
    assert quarantine_reasons(case) == [
        (3, "issuer and key_id are both empty: give at least one"),
        (4, "retired_at is empty"),
        (5, "retired_at is not a timestamp: 12 characters shaped aaaa aaaaaaa"),
        (6, "retired_at is out of range: 20 characters shaped 9999-99-99a99:99:99a"),
        (7, "expected 3 to 4 fields, found 5"),
    ]
    assert case.execute("SELECT key_id FROM retired_keys").fetchall() == [("kid-ok",)]
    stored = rows(case, "SELECT rows_read, rows_loaded, rows_quarantined FROM sources")
    assert stored == [{"rows_read": 6, "rows_loaded": 1, "rows_quarantined": 5}]


def test_a_wrong_header_is_one_error_and_nothing_is_kept(case, tmp_path):
    path = tmp_path / "keys.csv"
    path.write_text("kid,retired\nkid-1,2026-01-01\n", encoding="utf-8")
    with pytest.raises(InputError) as raised:
        ingest_file(case, path, fmt="retired-keys")
    assert str(raised.value).startswith(
        f"{path}:1: expected a CSV header issuer,key_id,retired_at,reason, found 2 fields shaped aaa,aaaaaaa"
    )
    assert case.execute("SELECT count(*) FROM retired_keys").fetchall() == [(0,)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEADER + ",kid-1,2026-01-01T00:00:00Z,\n", "retired-keys"),
        ("Issuer, Key_ID, Retired_At\n,kid-1,2026-01-01\n", "retired-keys"),
        ("credential_id,revoked_at\nabc,2026-01-01T00:00:00Z\n", "revocations"),
    ],
)
def test_detected_by_its_header(tmp_path, text, expected):
    path = tmp_path / "ref.csv"
    path.write_text(text, encoding="utf-8")
    assert detect_format(path, head_lines(path, 5)) == expected


def test_auto_detected_ingest_and_the_schema_entry(case, tmp_path):
    result = load(case, tmp_path, HEADER + ",kid-1,2026-01-01T00:00:00Z,\n", name="rk.csv")
    assert result.format == "retired-keys"
    assert FORMATS["retired-keys"].table == "retired_keys"
    assert table("retired_keys").column_names == [
        "issuer",
        "key_id",
        "retired_at",
        "reason",
        "source_id",
        "line_no",
    ]


def test_a_case_made_before_a_table_was_added_gets_it_on_open(tmp_path):
    """source_digests came after schema version 2 was first released (db._ADDED_LATER)."""
    from forensics.case import db

    path = tmp_path / "old.duckdb"
    con = db.connect(path)
    con.execute("DROP TABLE source_digests")
    con.close()
    con = db.connect(path, read_only=True)  # read-only: nothing is created
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    con.close()
    assert "source_digests" not in tables
    con = db.connect(path)
    assert con.execute("SELECT count(*) FROM source_digests").fetchall() == [(0,)]
    con.close()
