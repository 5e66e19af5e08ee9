"""`forensics ingest`: load evidence files into the case."""

from __future__ import annotations

from pathlib import Path

import click

from forensics.cli.options import connect
from forensics.errors import ExitCode

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


@click.command()
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
    from forensics.cli.progress import run_ingest
    from forensics.ingest.base import Options
    from forensics.ingest.formats import FORMATS
    from forensics.ingest.reader import expand_paths

    options = Options(keep_prompts=keep_prompts, mapping=mapping, extra={"category": category})
    if fmt is not None:
        FORMATS[fmt].check_options(options)  # e.g. jsonl without --mapping: one error, exit 2
    con = connect(ctx, create=True)
    try:
        jobs: list[tuple[list[Path], str | None]] = []
        if asn_dbs:
            jobs.append(([p.resolve() for p in asn_dbs], None))
        jobs.append((expand_paths(list(paths)), fmt))
        results = run_ingest(con, jobs, options, show_progress=not quiet)
    finally:
        con.close()
    from forensics.cli.progress import print_summary

    failed = print_summary(results)
    if failed:
        ctx.exit(int(ExitCode.ERROR))
