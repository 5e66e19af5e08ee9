"""`forensics ingest`: load evidence files into the case."""

from __future__ import annotations

from pathlib import Path

import click

from forensics.cli.options import connect
from forensics.errors import ExitCode, ForensicsError

INGEST_FORMATS = (
    "kong",
    "combined",
    "common",
    "vhost-combined",
    "log-format",
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
    "key-inventory",
)


def _claim_names(
    _ctx: click.Context, _param: click.Parameter, names: tuple[str, ...]
) -> tuple[str, ...]:
    """--tenant-claim values: a claim is named by at least one character besides quotes."""
    if any(not name.replace('"', "") for name in names):
        raise click.BadParameter("a claim name must not be empty", param_hint="--tenant-claim")
    return names


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
    "--log-format",
    metavar="FORMAT",
    help="Layout of a text access log as an Apache LogFormat ('%h %l %u %t \"%r\" %>s %b')"
    " or nginx log_format ('$remote_addr - $remote_user [$time_local] \"$request\" ...')"
    " string; implies --format log-format.",
)
@click.option(
    "--keep-prompts",
    is_flag=True,
    help="Store the last user message (credentials scrubbed) in requests.prompt_text.",
)
@click.option(
    "--tenant-claim",
    "tenant_claims",
    multiple=True,
    metavar="CLAIM",
    callback=_claim_names,
    help="JWT claim that names the token's tenant, kept in requests.token_tenant (repeatable,"
    " first present wins; default tenant_id, tid, tenant, org_id).",
)
@click.option(
    "--category",
    default="hosting",
    show_default=True,
    help="Category for a plain `AS<n> # name` list loaded with asn-categories.",
)
@click.option(
    "--max-expansion",
    type=click.FloatRange(min=1),
    default=200,
    show_default=True,
    metavar="RATIO",
    help="Stop a .gz/.zst file that decompresses to more than RATIO times its size on disk"
    " (any file may reach 16 MiB): the file fails, nothing of it is kept.",
)
@click.option(
    "--max-decompressed-bytes",
    "max_decompressed",
    default="64G",
    show_default=True,
    metavar="SIZE",
    help="Stop a compressed file past this many decompressed bytes, whatever the ratio.",
)
@click.option(
    "--max-record-bytes",
    "max_record",
    default="64M",
    show_default=True,
    metavar="SIZE",
    help="A longer line (record) is quarantined with its line number, never held whole.",
)
@click.option(
    "--max-quarantine-share",
    "max_quarantine_share",
    type=click.FloatRange(min=0, max=1),
    default=0.5,
    show_default=True,
    metavar="FLOAT",
    help="A file with more than this share of its records quarantined fails and nothing of it"
    " is kept (a wrong --format, or not a log at all); 1 keeps any file.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace, in the same transaction, the sources already in the case with the same"
    " content or the same path (a file changed in place): their rows are removed and the"
    " removal recorded, as `forensics sources remove` does.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def ingest(
    ctx: click.Context,
    paths: tuple[str, ...],
    fmt: str | None,
    asn_dbs: tuple[Path, ...],
    mapping: Path | None,
    log_format: str | None,
    keep_prompts: bool,
    tenant_claims: tuple[str, ...],
    category: str,
    max_expansion: float,
    max_decompressed: str,
    max_record: str,
    max_quarantine_share: float,
    force: bool,
    quiet: bool,
) -> None:
    """Load log files, directories or globs into the case (.gz and .zst are read as is).

    Every file is hashed as it is read: the same content twice (also a compressed copy of
    a loaded file) is skipped, unless --force replaces the earlier source with it. A path
    ingested before with other content (a log changed in place) loads as a new source with a
    warning, or replaces the earlier one with --force. Each file loads in one transaction,
    and records that cannot be parsed go to quarantine with their line; a file with more than
    --max-quarantine-share of its records quarantined fails instead, with the format its
    first records look like. A file that fails is one line on stderr, and so is a directory
    without files or a glob that matches none; the others still load, and the exit code is 1.

    \b
    Example:
      forensics ingest --asn-db sample_data/ip2asn-v4.tsv sample_data/logs/
      forensics ingest --asn-db ip2asn-v4.tsv.gz 'logs/**/*.jsonl.gz'
      forensics ingest --format revocations revoked.csv
      forensics ingest --format jsonl --mapping gateway.toml gw.log
      forensics ingest --log-format '%v:%p %h %l %u %t "%r" %>s %O' other_vhosts_access.log
      forensics ingest --max-expansion 1000 --max-record-bytes 16M logs/
      forensics ingest --force logs/kong.jsonl
    """
    from forensics.cli.progress import run_ingest
    from forensics.ingest.base import DEFAULT_TENANT_CLAIMS, Options
    from forensics.ingest.decompress import Limits, parse_size
    from forensics.ingest.formats import FORMATS
    from forensics.ingest.paths import expand_paths
    from forensics.ingest.pipeline import FileResult, describe_failure

    try:
        limits = Limits(
            max_expansion=max_expansion,
            max_decompressed_bytes=parse_size(max_decompressed),
            max_record_bytes=parse_size(max_record),
        )
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    options = Options(
        keep_prompts=keep_prompts,
        mapping=mapping,
        extra={"category": category},
        limits=limits,
        max_quarantine_share=max_quarantine_share,
        replace=force,
        log_format=log_format,
        tenant_claims=tenant_claims or DEFAULT_TENANT_CLAIMS,
    )
    if log_format is not None:
        if fmt not in (None, "log-format"):
            raise click.UsageError(f"--log-format describes a text access log, not --format {fmt}")
        fmt = "log-format"
    if fmt is not None:
        FORMATS[fmt].check_options(options)  # e.g. jsonl without --mapping: one error, exit 2
    con = connect(ctx, create=True)
    try:
        jobs: list[tuple[list[Path], str | None]] = []
        if asn_dbs:
            jobs.append(([p.resolve() for p in asn_dbs], None))
        problems: list[FileResult] = []

        def problem(error: ForensicsError) -> None:
            path = getattr(error, "path", "?")
            problems.append(
                FileResult(
                    path, fmt, "failed", message=describe_failure(Path(path), error), error=error
                )
            )

        jobs.append((expand_paths(list(paths), on_problem=problem), fmt))
        if problems and not any(files for files, _ in jobs):
            raise problems[0].error or ForensicsError(str(problems[0].message))
        results = problems + run_ingest(con, jobs, options, show_progress=not quiet)
    finally:
        con.close()
    from forensics.cli.progress import print_summary

    if ctx.obj.get("debug"):
        import traceback

        for r in results:
            if r.error is not None:
                traceback.print_exception(r.error)
    failed = print_summary(results)
    if failed:
        ctx.exit(int(ExitCode.ERROR))
