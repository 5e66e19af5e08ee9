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
@click.option(
    "--allow-files",
    is_flag=True,
    help="Let the query read local files (read_csv, read_json, read_text, glob, ...); it still"
    " cannot write.",
)
@output_options
@click.pass_context
def sql(
    ctx: click.Context,
    query: str | None,
    query_file: Any,
    allow_files: bool,
    fmt: str,
    output: Path | None,
    raw_csv: bool,
) -> None:
    """Run one read-only SQL statement on the case (argument, -f FILE, or stdin).

    One statement only: SELECT (or FROM, WITH, VALUES, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN
    SELECT); anything that writes or changes settings is refused. The query sees the case and
    nothing else: no file, network or extension, unless --allow-files lets it read local
    files. stdout carries only the result, so it can be piped; messages go to stderr.

    \b
    Example:
      forensics sql "SELECT tenant_id, count(*) AS n FROM requests GROUP BY ALL ORDER BY n DESC"
      forensics sql -f top_keys.sql --format csv > top_keys.csv
      echo "SELECT * FROM sources" | forensics sql --format jsonl
      forensics sql --allow-files "SELECT * FROM read_csv('keys.csv') JOIN requests USING (key_id)"
    """

    from forensics.case.query import open_for_query, statement
    from forensics.errors import QueryError, UsageError
    from forensics.output import print_result

    if query_file is not None:
        query = query_file.read()
    elif query is None or query == "-":
        if sys.stdin.isatty():
            raise UsageError("no query given", hint="pass it as an argument, -f FILE, or stdin")
        query = sys.stdin.read()
    con = open_for_query(ctx.obj["db"], allow_files=allow_files)
    try:
        print_result(con, statement(con, query or ""), fmt, output, raw_csv=raw_csv)
    except QueryError as e:
        if allow_files or "operations are disabled by configuration" not in str(e):
            raise
        hint = "the query sees only the case: pass --allow-files to let it read local files"
        raise QueryError(str(e), hint=hint + (f"\n{e.hint}" if e.hint else "")) from e
    finally:
        con.close()
