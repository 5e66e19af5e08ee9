"""`forensics compact`: the lake of a case created with --lake."""

from __future__ import annotations

import click

from forensics.cli.options import connect


@click.command()
@click.pass_context
def compact(ctx: click.Context) -> None:
    """Merge the small Parquet files of a lake's days: one file per day of requests and of
    usage, its rows in time order. Each ingest writes its own files; a lake fed many small
    logs reads faster compacted. One transaction: a crash leaves the lake as it was.

    \b
    Example:
      forensics --db big.duckdb compact
    """
    from forensics.lake.compact import compact as run

    con = connect(ctx)
    try:
        done = run(con)
    finally:
        con.close()
    for c in done:
        if c.days:
            click.echo(
                f"{c.table}: {c.days} days, {c.files_before:,} files -> {c.files_after:,}"
                f" ({c.rows:,} rows)"
            )
        else:
            click.echo(f"{c.table}: nothing to compact (one file per day already)")
