"""Options and helpers shared by the command modules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from forensics.errors import UsageError

if TYPE_CHECKING:
    import datetime as dt

F = TypeVar("F", bound=Callable[..., Any])


def raw_csv_option(f: F) -> F:
    """--raw-csv: CSV cells exactly as stored (the default neutralises spreadsheet formulas)."""
    return click.option(
        "--raw-csv",
        is_flag=True,
        help="CSV: write cells starting with = + - @, a tab or a carriage return as they are"
        " (by default such a cell gets a leading ' so that a spreadsheet shows it as text"
        " instead of running it as a formula).",
    )(f)


def output_options(f: F) -> F:
    f = raw_csv_option(f)
    f = click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write to this file instead of stdout (needed for parquet).",
    )(f)
    f = click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "csv", "json", "jsonl", "parquet"]),
        default="table",
        show_default=True,
        help="Output format.",
    )(f)
    return f


def connect(
    ctx: click.Context,
    *,
    read_only: bool = False,
    create: bool = False,
    allow_missing: bool = False,
) -> Any:
    from forensics.case import db

    return db.connect(
        ctx.obj["db"], read_only=read_only, create=create, allow_missing=allow_missing
    )


def time_span(
    since: str | None, until: str | None
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """--since and --until as times (None: not given); the first must be before the second."""
    from forensics.times import parse_time

    start = parse_time(since, "--since")
    end = parse_time(until, "--until")
    if start is not None and end is not None and start >= end:
        raise UsageError(f"--since {since} is not before --until {until}")
    return start, end


def period_options(f: F) -> F:
    """--week, --since, --until: the period of a weekly report or a bundle (see `period`)."""
    f = click.option("--until", metavar="TIME", help="End of the period instead of a week.")(f)
    f = click.option("--since", metavar="TIME", help="Start of the period instead of a week.")(f)
    return click.option(
        "--week",
        metavar="YYYY-Www",
        help="ISO week, e.g. 2026-W47, or last or this (default: the case's latest).",
    )(f)


def period(
    ctx: click.Context, week: str | None, since: str | None, until: str | None
) -> tuple[dt.datetime, dt.datetime]:
    """The period a weekly report or a bundle covers: --week, --since and --until, else the
    case's latest week."""
    from forensics.case import db
    from forensics.report.weekly import latest_week, week_bounds
    from forensics.times import parse_time

    start = parse_time(since, "--since")
    end = parse_time(until, "--until")
    if week and (start or end):
        raise UsageError("give --week or --since/--until, not both")
    if (start is None) != (end is None):
        raise UsageError("give both --since and --until")
    if week:
        start, end = week_bounds(week)
    elif start is None or end is None:
        con = db.connect(ctx.obj["db"], read_only=True, create=False)
        try:
            start, end = latest_week(con)
        finally:
            con.close()
    if start >= end:
        raise UsageError(f"--since {since} is not before --until {until}")
    return start, end


def policy_option(f: F) -> F:
    """--policy FILE: the quota policy a page's quota section replays."""
    return click.option(
        "--policy",
        "policy_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="The quota policy (TOML) whose replay the pages show (default: the one"
        " `forensics quota suggest` fits to the case).",
    )(f)


def replay_policy(con: Any, policy_file: Path | None) -> None:
    """Replay `policy_file` on `con` for the pages about to be made (else they replay the
    suggested policy themselves)."""
    if policy_file is None:
        return
    from forensics.quota.policy import load_policy
    from forensics.quota.verdict import prepare

    prepare(con, load_policy(policy_file))
