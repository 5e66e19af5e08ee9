"""`forensics sql`: ad hoc read-only SQL on the case."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from forensics.cli.options import output_options


@click.command()
@click.argument("query", required=False)
@click.option("-f", "--file", "query_file", type=click.File("r"), help="Read the query from FILE.")
@output_options
@click.pass_context
def sql(
    ctx: click.Context, query: str | None, query_file: Any, fmt: str, output: Path | None
) -> None:
    """Run one read-only SQL statement on the case (argument, -f FILE, or stdin).

    One statement only: SELECT (or FROM, WITH, VALUES, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN
    SELECT); anything that writes or changes settings is refused. stdout carries only the
    result, so it can be piped; messages go to stderr.

    \b
    Example:
      forensics sql "SELECT tenant_id, count(*) AS n FROM requests GROUP BY ALL ORDER BY n DESC"
      forensics sql -f top_keys.sql --format csv > top_keys.csv
      echo "SELECT * FROM sources" | forensics sql --format jsonl
    """

    from forensics.case.query import open_for_query, statement
    from forensics.errors import UsageError
    from forensics.output import print_result

    if query_file is not None:
        query = query_file.read()
    elif query is None or query == "-":
        if sys.stdin.isatty():
            raise UsageError("no query given", hint="pass it as an argument, -f FILE, or stdin")
        query = sys.stdin.read()
    con = open_for_query(ctx.obj["db"])
    try:
        print_result(con, statement(con, query or ""), fmt, output)
    finally:
        con.close()
