"""`forensics schema | sources | quarantine | verify`: the evidence in the case, its integrity."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from forensics.cli.options import connect, output_options
from forensics.errors import ExitCode


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "markdown"]),
    default="table",
    show_default=True,
)
def schema(fmt: str) -> None:
    """Every table and column of the case database, what it means, and its OTel / ECS name.

    \b
    Example:
      forensics schema
      forensics schema --format markdown > SCHEMA.md
    """
    from forensics.case.schema import TABLES
    from forensics.case.schema_doc import render

    click.echo(render(TABLES, fmt), nl=False)


@click.command()
@output_options
@click.pass_context
def sources(ctx: click.Context, fmt: str, output: Path | None, raw_csv: bool) -> None:
    """Every ingested file: hash, format, and how its records were accounted for.

    \b
    Example:
      forensics sources
      forensics sources --format json
    """
    from forensics.output import write_result

    con = connect(ctx, read_only=True)
    write_result(
        con,
        "SELECT source_id, format, rows_read, rows_loaded, rows_quarantined, lines_blank,"
        " bytes, left(sha256, 16) AS sha256_16, ingested_at, path FROM sources ORDER BY source_id"
        if fmt == "table"
        else "SELECT * FROM sources ORDER BY source_id",
        fmt,
        sys.stdout,
        output,
        raw_csv=raw_csv,
    )


@click.command()
@click.option("--source", "source_id", type=int, help="Only this source id.")
@click.option(
    "--limit", type=int, default=100, show_default=True, help="At most this many rows (0 = all)."
)
@output_options
@click.pass_context
def quarantine(
    ctx: click.Context,
    source_id: int | None,
    limit: int,
    fmt: str,
    output: Path | None,
    raw_csv: bool,
) -> None:
    """Records that could not be loaded, with file, line and reason (credentials redacted).

    \b
    Example:
      forensics quarantine
      forensics quarantine --source 3 --limit 0 --format csv > bad.csv
    """
    from forensics.output import write_result

    con = connect(ctx, read_only=True)
    where = "WHERE q.source_id = $sid" if source_id is not None else ""
    lim = f"LIMIT {int(limit)}" if limit > 0 else ""
    write_result(
        con,
        "SELECT q.source_id, s.path, q.line_no, q.error, q.raw FROM quarantine q"
        f" JOIN sources s USING (source_id) {where} ORDER BY q.source_id, q.line_no {lim}",
        fmt,
        sys.stdout,
        output,
        {"sid": source_id} if source_id is not None else None,
        raw_csv=raw_csv,
    )


@click.command()
@click.pass_context
def verify(ctx: click.Context) -> None:
    """Check the evidence and the case: re-hash every ingested file still on disk, and compare
    each source's rows in the case (counts and a digest of what ingest stored) with what its
    ingest recorded. Exit 4 if a file no longer matches or rows were changed outside the tool.

    \b
    Example:
      forensics verify
    """
    from forensics.case.verify import verify_rows, verify_sources
    from forensics.output import terminal_safe

    con = connect(ctx, read_only=True)
    try:
        files = verify_sources(con)
        rows = {c.source_id: c for c in verify_rows(con)}
    finally:
        con.close()
    click.echo(f"{'file':9} {'rows':14} {'source':>6}  path / what changed")
    for c in files:
        row = rows[c.source_id]
        what = terminal_safe(c.path if row.status == "ok" else f"{c.path}: {row.detail}")
        click.echo(f"{c.status:9} {row.status:14} {c.source_id:>6}  {what}")
    bad = sum(c.status == "MISMATCH" for c in files)
    changed = sum(c.status == "CHANGED" for c in rows.values())
    ok = sum(c.status == "ok" for c in files)
    missing = sum(c.status == "missing" for c in files)
    click.echo(
        f"files: {ok} ok, {bad} mismatched, {missing} missing;"
        f" rows: {len(rows) - changed} sources as ingested, {changed} changed",
        err=True,
    )
    if bad or changed:
        ctx.exit(int(ExitCode.INTEGRITY))
