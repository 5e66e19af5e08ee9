"""The `forensics` command: Click wiring only; the work happens in library functions."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from forensics import __version__
from forensics.errors import ExitCode, ForensicsError

F = TypeVar("F", bound=Callable[..., Any])

INGEST_FORMATS = (
    "kong",
    "combined",
    "common",
    "nginx-json",
    "envoy",
    "cloudflare",
    "jsonl",
    "revocations",
    "retired-keys",
    "allowlist",
    "asn-categories",
    "iptoasn",
    "mmdb",
    "litellm",
    "litellm-daily",
    "openai-usage",
    "openai-costs",
    "anthropic-usage",
    "anthropic-cost",
    "prices",
    "known-keys",
)


class ForensicsGroup(click.Group):
    """Turns library errors into one line on stderr (traceback only with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ForensicsError as e:
            if ctx.params.get("debug"):
                raise
            from forensics.secrets import redact

            click.echo(f"Error: {redact(str(e))}", err=True)
            if e.hint:
                click.echo(f"Hint: {e.hint}", err=True)
            ctx.exit(int(e.exit_code))


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


@click.group(cls=ForensicsGroup)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="FORENSICS_DB",
    default="forensics.duckdb",
    show_default=True,
    help="Case database file (env FORENSICS_DB).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(__version__, prog_name="forensics")
@click.pass_context
def cli(ctx: click.Context, db: Path, debug: bool) -> None:
    """Offline forensics for abuse of AI APIs: load gateway logs and provider usage into a
    DuckDB case, query it, and find what happened.

    \b
    Example:
      forensics --db case.duckdb ingest logs/kong/ --asn-db ip2asn-v4.tsv.gz
      forensics --db case.duckdb sql "SELECT tenant_id, count(*) FROM requests GROUP BY 1"
    """
    ctx.obj = {"db": db, "debug": debug}


def _connect(ctx: click.Context, *, read_only: bool = False, create: bool = False) -> Any:
    from forensics import db

    return db.connect(ctx.obj["db"], read_only=read_only, create=create)


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(INGEST_FORMATS),
    help="Format of every PATH (default: detected per file from its first records).",
)
@click.option(
    "--asn-db",
    "asn_dbs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="iptoasn TSV or MaxMind .mmdb to enrich with (repeatable; remembered in the case).",
)
@click.option(
    "--mapping",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML column mapping for --format jsonl.",
)
@click.option(
    "--keep-prompts",
    is_flag=True,
    help="Store the last user message (credentials scrubbed) in requests.prompt_text.",
)
@click.option(
    "--category",
    default="hosting",
    show_default=True,
    help="Category for a plain `AS<n> # name` list loaded with asn-categories.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def ingest(
    ctx: click.Context,
    paths: tuple[str, ...],
    fmt: str | None,
    asn_dbs: tuple[Path, ...],
    mapping: Path | None,
    keep_prompts: bool,
    category: str,
    quiet: bool,
) -> None:
    """Load log files, directories or globs into the case (.gz and .zst are read as is).

    Every file is hashed: the same content twice is skipped. Each file loads in one
    transaction, and records that cannot be parsed go to quarantine with their line.

    \b
    Example:
      forensics ingest --asn-db sample_data/ip2asn-v4.tsv sample_data/logs/
      forensics ingest --asn-db ip2asn-v4.tsv.gz 'logs/**/*.jsonl.gz'
      forensics ingest --format revocations revoked.csv
      forensics ingest --format jsonl --mapping gateway.toml gw.log
    """
    from forensics.ingest.base import Options
    from forensics.ingest.formats import FORMATS
    from forensics.ingest.reader import expand_paths
    from forensics.progress import run_ingest

    options = Options(keep_prompts=keep_prompts, mapping=mapping, extra={"category": category})
    if fmt is not None:
        FORMATS[fmt].check_options(options)  # e.g. jsonl without --mapping: one error, exit 2
    con = _connect(ctx, create=True)
    try:
        jobs: list[tuple[list[Path], str | None]] = []
        if asn_dbs:
            jobs.append(([p.resolve() for p in asn_dbs], None))
        jobs.append((expand_paths(list(paths)), fmt))
        results = run_ingest(con, jobs, options, show_progress=not quiet)
    finally:
        con.close()
    from forensics.progress import print_summary

    failed = print_summary(results)
    if failed:
        ctx.exit(int(ExitCode.ERROR))


@cli.command()
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
    from forensics.schema import TABLES
    from forensics.schema_doc import render

    click.echo(render(TABLES, fmt), nl=False)


@cli.command()
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

    con = _connect(ctx, read_only=True)
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


@cli.command()
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

    con = _connect(ctx, read_only=True)
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


@cli.command()
@click.pass_context
def verify(ctx: click.Context) -> None:
    """Re-hash every ingested file still on disk; exit 4 if any no longer matches.

    \b
    Example:
      forensics verify
    """
    from forensics.verify import verify_sources

    con = _connect(ctx, read_only=True)
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


@cli.command()
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
    con = _connect(ctx, read_only=True)
    try:
        n = write_result(con, query, fmt, sys.stdout, output)
    except duckdb.Error as e:
        raise ForensicsError(str(e).splitlines()[0]) from e
    if output is not None:
        click.echo(f"{n} rows written to {output}", err=True)


def _register() -> None:
    """Commands that live in forensics/commands/ (each imports only click at load time)."""
    from forensics.commands.demo_cmd import demo
    from forensics.commands.detect_cmd import detect
    from forensics.commands.detectors_cmd import detectors
    from forensics.commands.detectors_test_cmd import detectors_test
    from forensics.commands.findings_cmd import findings, incidents
    from forensics.commands.report_cmd import report
    from forensics.commands.synth_cmd import evaluate, synth
    from forensics.commands.usage_cmd import usage

    detectors.add_command(detectors_test)
    for command in (detectors, detect, findings, incidents, report, usage, synth, evaluate, demo):
        cli.add_command(command)


_register()


def main() -> None:  # pragma: no cover - console entry
    cli()
