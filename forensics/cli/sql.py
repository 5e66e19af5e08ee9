"""`forensics sql`: ad hoc read-only SQL on the case."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from forensics.cli.options import connect, output_options
from forensics.errors import ForensicsError


@click.command()
@click.argument("query", required=False)
@click.option("-f", "--file", "query_file", type=click.File("r"), help="Read the query from FILE.")
@output_options
@click.pass_context
def sql(
    ctx: click.Context, query: str | None, query_file: Any, fmt: str, output: Path | None
) -> None:
    """Run a read-only SQL query on the case (argument, -f FILE, or stdin).

    stdout carries only the result, so it can be piped; messages go to stderr.

    \b
    Example:
      forensics sql "SELECT tenant_id, count(*) AS n FROM requests GROUP BY ALL ORDER BY n DESC"
      forensics sql -f top_keys.sql --format csv > top_keys.csv
      echo "SELECT * FROM sources" | forensics sql --format jsonl
    """
    import duckdb

    from forensics.errors import UsageError
    from forensics.output import write_result

    if query_file is not None:
        query = query_file.read()
    elif query is None or query == "-":
        if sys.stdin.isatty():
            raise UsageError("no query given", hint="pass it as an argument, -f FILE, or stdin")
        query = sys.stdin.read()
    if not query or not query.strip():
        raise UsageError("the query is empty")
    con = connect(ctx, read_only=True)
    try:
        n = write_result(con, query, fmt, sys.stdout, output)
    except duckdb.Error as e:
        raise ForensicsError(str(e).splitlines()[0]) from e
    if output is not None:
        click.echo(f"{n} rows written to {output}", err=True)
