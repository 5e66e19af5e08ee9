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
def sources(ctx: click.Context, fmt: str, output: Path | None) -> None:
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
    )


@click.command()
@click.option("--source", "source_id", type=int, help="Only this source id.")
@click.option(
    "--limit", type=int, default=100, show_default=True, help="At most this many rows (0 = all)."
)
@output_options
@click.pass_context
def quarantine(
    ctx: click.Context, source_id: int | None, limit: int, fmt: str, output: Path | None
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
    )


@click.command()
@click.pass_context
def verify(ctx: click.Context) -> None:
    """Re-hash every ingested file still on disk; exit 4 if any no longer matches.

    \b
    Example:
      forensics verify
    """
    from forensics.case.verify import verify_sources

    con = connect(ctx, read_only=True)
    checks = verify_sources(con)
    bad = 0
    for c in checks:
        click.echo(f"{c.status:9} {c.source_id:>5}  {c.path}")
        bad += c.status == "MISMATCH"
    ok = sum(c.status == "ok" for c in checks)
    missing = sum(c.status == "missing" for c in checks)
    click.echo(f"{ok} ok, {bad} mismatched, {missing} missing", err=True)
    if bad:
        ctx.exit(int(ExitCode.INTEGRITY))
