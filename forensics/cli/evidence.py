"""`forensics schema | sources [remove] | quarantine | verify`: the evidence in the case, its
integrity, and taking a source back out of it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

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


@click.group(invoke_without_command=True)
@click.option(
    "--removed",
    is_flag=True,
    help="List the sources taken out of the case instead (source_removals).",
)
@output_options
@click.pass_context
def sources(
    ctx: click.Context, removed: bool, fmt: str, output: Path | None, raw_csv: bool
) -> None:
    """Every ingested file: hash, format, and how its records were accounted for.

    `forensics sources remove ID... --reason TEXT` takes sources out of the case; --removed
    lists those removed (also by `forensics ingest --force`), by whom, when and why.

    \b
    Example:
      forensics sources
      forensics sources --format json
      forensics sources --removed
      forensics sources remove 3 --reason "kong.jsonl read as combined by mistake"
    """
    if ctx.invoked_subcommand is not None:
        return
    from forensics.output import write_result

    con = connect(ctx, read_only=True)
    if removed:
        query = _removals_query(con)
    elif fmt == "table":
        query = (
            "SELECT source_id, format, rows_read, rows_loaded, rows_quarantined, lines_blank,"
            " bytes, left(sha256, 16) AS sha256_16, ingested_at, path FROM sources"
            " ORDER BY source_id"
        )
    else:
        query = "SELECT * FROM sources ORDER BY source_id"
    write_result(con, query, fmt, sys.stdout, output, raw_csv=raw_csv)


def _removals_query(con: Any) -> str:
    """Every removal, oldest first (an empty result of the same columns on a case opened
    read-only that predates the table)."""
    from forensics.case.schema import SOURCE_REMOVALS

    if con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = 'source_removals'").fetchall():
        return "SELECT * FROM source_removals ORDER BY removed_at, source_id"
    columns = ", ".join(f"NULL::{c.type} AS {c.name}" for c in SOURCE_REMOVALS.columns)
    return f"SELECT {columns} WHERE false"


@sources.command("remove")
@click.argument("source_ids", nargs=-1, required=True, type=int, metavar="ID...")
@click.option(
    "--reason",
    required=True,
    help="Why they are removed (stored in the case with your user name; credentials scrubbed).",
)
@click.pass_context
def remove(ctx: click.Context, source_ids: tuple[int, ...], reason: str) -> None:
    """Take sources out of the case, all in one transaction: each source's rows (requests,
    usage, reference and enrichment rows, its quarantine entries, the digests `forensics
    verify` checks) and its `sources` row, recorded in `source_removals` with who, when and
    why. An unknown ID removes nothing.

    Findings: only current findings of detection runs that read a removed source can rest on
    it. For a source of gateway requests, a finding whose principal has requests from the
    source in the finding's window is deleted when none of the principal's requests in that
    window remain, and kept but marked stale (findings.stale_by_source) when some do. Any other
    source (usage export, reference list, enrichment database) may have shaped any finding of
    such a run: those findings are kept and marked stale. Incidents are rebuilt when a finding
    was deleted. `forensics detect` replaces stale findings with fresh ones.

    \b
    Example:
      forensics sources remove 3 --reason "kong.jsonl read as combined by mistake"
      forensics sources remove 4 5 --reason "exports of the wrong organisation"
    """
    from forensics.case.removal import remove_sources
    from forensics.output import write_table

    con = connect(ctx)
    try:
        removals = remove_sources(con, list(source_ids), reason)
    finally:
        con.close()
    write_table(
        [
            "source_id",
            "format",
            "rows",
            "quarantined",
            "findings_deleted",
            "findings_stale",
            "path",
        ],
        [
            (
                r.source_id,
                r.format,
                r.rows_loaded,
                r.rows_quarantined,
                r.findings_deleted,
                r.findings_stale,
                r.path,
            )
            for r in removals
        ],
        sys.stdout,
    )
    deleted = sum(r.findings_deleted for r in removals)
    stale = sum(r.findings_stale for r in removals)
    click.echo(
        f"removed {len(removals)} source{'s' if len(removals) != 1 else ''}:"
        f" {sum(r.rows_loaded for r in removals):,} rows and"
        f" {sum(r.rows_quarantined for r in removals):,} quarantined records;"
        f" findings: {deleted} deleted, {stale} marked stale"
        + (" (run `forensics detect` to refresh them)" if deleted or stale else ""),
        err=True,
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
    ingest recorded (in a lake, first that every Parquet file the case lists is there). Exit 4
    if a file no longer matches or is missing, or rows were changed outside the tool.

    \b
    Example:
      forensics verify
    """
    from forensics.case.verify import verify_rows, verify_sources
    from forensics.lake.store import missing as missing_lake_files
    from forensics.output import terminal_safe

    con = connect(ctx, read_only=True, allow_missing=True)
    try:
        gone = missing_lake_files(con)
        files = verify_sources(con)
        rows = {c.source_id: c for c in verify_rows(con)}  # read from the files still there
    finally:
        con.close()
    for path in gone:
        click.echo(f"lake file missing: {terminal_safe(str(path))}")
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
    if gone:
        click.echo(
            f"lake: {len(gone)} of the case's Parquet files missing; the sources whose rows"
            " they held show as changed",
            err=True,
        )
    if bad or changed or gone:
        ctx.exit(int(ExitCode.INTEGRITY))
