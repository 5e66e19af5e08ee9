"""Times given by users: one parser for options, labels files and detector parameters.

A time is ISO 8601: a date (`2026-01-01`, its midnight) or a date and time
(`2026-01-01T08:00:00`, a space for the `T`, fractions of a second, `Z` or an offset such as
`+02:00`). A time without an offset is UTC, and every result is an aware datetime in UTC, so
the values compare, bind to DuckDB and print the same whichever way they were written.

A command-line option (`parse_time`) also takes a span back from now: `30m`, `24h`, `7d`,
`2w`, and `now` itself, for the scheduled job that reports on the last week. Nothing else does
(labels, detector parameters and files are read the same on every run), and what is resolved is
an absolute time: a report prints the period it covers, so it stays reproducible.

A value that does not parse is a `UsageError` naming the option and describing the value's
shape (`9999-99-99`), never the value itself: a mistyped option can hold a key.
"""

from __future__ import annotations

import datetime as dt
import re

from forensics.errors import UsageError

EXAMPLE = (
    "e.g. 2026-01-01 or 2026-01-01T08:00:00Z (a time without an offset is UTC), or 7d, 24h"
    " for that long ago"
)
_SHAPE_LIMIT = 32


_RELATIVE = re.compile(r"(\d{1,6})\s*([mhdw])", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(
    text: str | None, option: str, *, now: dt.datetime | None = None
) -> dt.datetime | None:
    """An optional time from a command-line option: None or blank text gives None; `7d`
    (`m`, `h`, `d`, `w`) is that long before `now` (default: the current time)."""
    if text is None or not text.strip():
        return None
    stripped = text.strip()
    relative = _RELATIVE.fullmatch(stripped)
    if relative is None and stripped.lower() != "now":
        return _parse(text, option)
    moment = now or dt.datetime.now(dt.UTC)
    if relative is None:
        return moment
    return moment - dt.timedelta(**{_UNITS[relative[2].lower()]: int(relative[1])})


def coerce_time(value: object, option: str) -> dt.datetime:
    """A required time: a datetime, a date (its midnight) or ISO 8601 text, as UTC.

    YAML and CSV readers hand over any of the three; a naive datetime is UTC.
    """
    if isinstance(value, dt.datetime):
        return _utc(value)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), dt.UTC)
    if isinstance(value, str):
        if not value.strip():
            raise UsageError(f"{option}: empty, expected a time", hint=EXAMPLE)
        return _parse(value, option)
    raise UsageError(
        f"{option}: expected a time, got {type(value).__name__}",
        hint=EXAMPLE,
    )


def is_time(value: object) -> bool:
    """Whether `coerce_time` accepts the value (for checks that collect every problem)."""
    try:
        coerce_time(value, "time")
    except UsageError:
        return False
    return True


def shape(text: str) -> str:
    """What a value looks like without what it says: digits as 9, letters as a."""
    drawn = "".join("9" if c.isdigit() else "a" if c.isalpha() else c for c in text)
    if len(drawn) > _SHAPE_LIMIT:
        return drawn[:_SHAPE_LIMIT] + "…"
    return drawn


def _parse(text: str, option: str) -> dt.datetime:
    stripped = text.strip()
    try:
        value = dt.datetime.fromisoformat(stripped)
    except ValueError as e:
        reason = str(e)
        # Python's own reason ("month must be in 1..12") helps unless it repeats the value.
        detail = "" if stripped in reason or "isoformat" in reason else f": {reason}"
        raise UsageError(
            f"{option}: not an ISO 8601 date or time"
            f" ({len(stripped)} characters shaped {shape(stripped)}{detail})",
            hint=EXAMPLE,
        ) from None
    return _utc(value)


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


# --- the zone times are shown in -------------------------------------------------------------
# Times are stored and exchanged (csv, json, parquet, SQL) in UTC; a person may read reports
# and terminal tables in their own zone (`forensics --tz Europe/Berlin`). Charts stay in UTC.
_display: dt.tzinfo = dt.UTC


def set_display_zone(name: str | None) -> None:
    """Show times in the IANA zone `name` (None or "UTC": UTC)."""
    global _display
    if not name or name.strip().upper() in ("UTC", "Z"):
        _display = dt.UTC
        return
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        _display = ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"--tz: not a time zone ({len(name)} characters shaped {shape(name)})",
            hint="an IANA name such as Europe/Berlin or America/New_York, or UTC",
        ) from None


def display_zone() -> dt.tzinfo:
    return _display


def zone_label(value: dt.datetime) -> str:
    """The zone a shown time is in: `UTC`, else the zone's abbreviation or offset (`CET`)."""
    if _display is dt.UTC:
        return "UTC"
    return value.astimezone(_display).strftime("%Z") or value.astimezone(_display).strftime("%z")
