"""The one parser of times given by users: ISO 8601, naive = UTC, errors that never echo."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from forensics.case import db
from forensics.cli import cli
from forensics.errors import ExitCode, UsageError
from forensics.times import EXAMPLE, coerce_time, is_time, parse_time, shape

UTC = dt.UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01", dt.datetime(2026, 1, 1, tzinfo=UTC)),
        ("2026-01-01T08:00:00", dt.datetime(2026, 1, 1, 8, tzinfo=UTC)),
        ("2026-01-01 08:00", dt.datetime(2026, 1, 1, 8, tzinfo=UTC)),
        ("2026-01-01T08:00:00Z", dt.datetime(2026, 1, 1, 8, tzinfo=UTC)),
        ("2026-01-01T08:00:00.250Z", dt.datetime(2026, 1, 1, 8, 0, 0, 250000, tzinfo=UTC)),
        ("2026-01-01T08:00:00+02:00", dt.datetime(2026, 1, 1, 6, tzinfo=UTC)),
        ("2026-01-01T01:00:00-05:00", dt.datetime(2026, 1, 1, 6, tzinfo=UTC)),
        ("  2026-01-01  ", dt.datetime(2026, 1, 1, tzinfo=UTC)),
    ],
)
def test_iso_dates_and_times_become_aware_utc(text, expected):
    value = parse_time(text, "--since")
    assert value == expected
    assert value is not None and value.tzinfo is UTC  # printed in UTC, whatever was typed


@pytest.mark.parametrize("text", [None, "", "   "])
def test_an_option_not_given_is_none(text):
    assert parse_time(text, "--since") is None


def test_coerce_takes_what_yaml_and_csv_readers_give():
    naive = dt.datetime(2026, 1, 1, 8)  # noqa: DTZ001 - a naive time is what YAML gives
    assert coerce_time(naive, "since") == dt.datetime(2026, 1, 1, 8, tzinfo=UTC)
    berlin = dt.timezone(dt.timedelta(hours=1))
    assert coerce_time(dt.datetime(2026, 1, 1, 8, tzinfo=berlin), "since") == dt.datetime(
        2026, 1, 1, 7, tzinfo=UTC
    )
    assert coerce_time(dt.date(2026, 1, 1), "since") == dt.datetime(2026, 1, 1, tzinfo=UTC)
    assert coerce_time("2026-01-01T00:00Z", "since") == dt.datetime(2026, 1, 1, tzinfo=UTC)


def test_coerce_refuses_blank_text_and_other_types():
    with pytest.raises(UsageError) as blank:
        coerce_time(" ", "window_end")
    assert str(blank.value) == "window_end: empty, expected a time"
    with pytest.raises(UsageError) as number:
        coerce_time(1767225600, "params.since")
    assert str(number.value) == "params.since: expected a time, got int"
    assert number.value.hint == EXAMPLE


def test_is_time_answers_without_raising():
    assert is_time("2026-01-01") and is_time(dt.date(2026, 1, 1)) and is_time(dt.datetime.now(UTC))
    assert not is_time("last week") and not is_time("") and not is_time(3) and not is_time(None)


def test_no_relative_forms():
    for text in ("now", "7d", "24h", "yesterday"):
        assert not is_time(text)


def test_errors_name_the_option_and_the_shape_never_the_value():
    secret = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
    with pytest.raises(UsageError) as caught:
        parse_time(secret, "--until")
    message = str(caught.value)
    assert secret not in message and "abcdef" not in message
    assert message == (
        "--until: not an ISO 8601 date or time"
        " (44 characters shaped aa-aaaa-aaaaaaaaaaaaaaaaaaaaaaaa…)"
    )
    assert caught.value.hint == EXAMPLE
    assert caught.value.exit_code == ExitCode.USAGE


def test_errors_keep_pythons_reason_when_it_does_not_repeat_the_value():
    with pytest.raises(UsageError) as month:
        parse_time("2026-13-01", "--since")
    assert str(month.value) == (
        "--since: not an ISO 8601 date or time"
        " (10 characters shaped 9999-99-99: month must be in 1..12)"
    )
    with pytest.raises(UsageError) as day:
        parse_time("2026-02-30T10:00", "--since")
    assert str(day.value).endswith("shaped 9999-99-99a99:99: day is out of range for month)")


def test_shape():
    assert shape("2026/01/01 8h") == "9999/99/99 9a"
    assert shape("x" * 40) == "a" * 32 + "…"


def test_the_cli_shows_the_error_and_exits_2(tmp_path):
    case = tmp_path / "c.duckdb"
    db.connect(case).close()
    result = CliRunner().invoke(cli, ["--db", str(case), "findings", "--since", "last tuesday"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "Error: --since: not an ISO 8601 date or time (12 characters shaped aaaa aaaaaaa)\n"
        f"Hint: {EXAMPLE}\n"
    )


def test_options_take_a_span_back_from_now_and_files_do_not():
    now = dt.datetime(2026, 12, 6, 12, 30, tzinfo=UTC)
    assert parse_time("7d", "--since", now=now) == now - dt.timedelta(days=7)
    assert parse_time(" 24H ", "--since", now=now) == now - dt.timedelta(hours=24)
    assert parse_time("2w", "--since", now=now) == now - dt.timedelta(weeks=2)
    assert parse_time("30m", "--since", now=now) == now - dt.timedelta(minutes=30)
    assert parse_time("now", "--until", now=now) == now
    for text in ("7 days", "-7d", "7y", "d7"):
        with pytest.raises(UsageError):
            parse_time(text, "--since", now=now)
    assert not is_time("7d")  # labels and detector parameters stay absolute


def test_last_and_this_week_from_any_day():
    from forensics.report.weekly import week_bounds

    for day in range(7):  # Monday 2026-11-30 .. Sunday 2026-12-06
        now = dt.datetime(2026, 11, 30, 23, 59, tzinfo=UTC) + dt.timedelta(days=day)
        assert week_bounds("last", now) == week_bounds("2026-W48")
        assert week_bounds("THIS", now) == week_bounds("2026-W49")
