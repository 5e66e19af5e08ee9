"""Options and helpers shared by the command modules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

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


def connect(ctx: click.Context, *, read_only: bool = False, create: bool = False) -> Any:
    from forensics.case import db

    return db.connect(ctx.obj["db"], read_only=read_only, create=create)
