"""Options and helpers shared by the command modules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def output_options(f: F) -> F:
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
