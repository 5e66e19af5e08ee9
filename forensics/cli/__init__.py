"""The `forensics` command: Click wiring only; the work happens in library functions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from forensics._version import __version__
from forensics.errors import ForensicsError


class ForensicsGroup(click.Group):
    """Turns library errors into one line on stderr (traceback only with --debug), and takes
    the case's `--db FILE` (and `--debug`) after the subcommand as well as before it."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _global_options_first(args))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ForensicsError as e:
            if ctx.params.get("debug"):
                raise
            from forensics.case.fingerprints import redact

            click.echo(f"Error: {redact(str(e))}", err=True)
            if e.hint:
                # Later lines line up under the first, so DuckDB's caret stays under its column.
                click.echo("Hint: " + redact(e.hint).replace("\n", "\n      "), err=True)
            ctx.exit(int(e.exit_code))


def _global_options_first(args: list[str]) -> list[str]:
    """`forensics findings --db case.duckdb` as `forensics --db case.duckdb findings`: the
    group's own options (--db, --lake, --tz, --memory-limit, --temp-dir, --debug) are moved
    before the subcommand (`--` ends the search)."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        taken = 2 if arg in _GROUP_VALUE_OPTIONS and i + 1 < len(args) else 1
        if taken == 2 or arg == "--debug" or arg.startswith(_GROUP_VALUE_PREFIXES):
            front.extend(args[i : i + taken])
        else:
            rest.append(arg)
        i += taken
    return front + rest


# the group's options that take a value
_GROUP_VALUE_OPTIONS = ("--db", "--lake", "--tz", "--memory-limit", "--temp-dir")
_GROUP_VALUE_PREFIXES = tuple(f"{o}=" for o in _GROUP_VALUE_OPTIONS)


@click.group(cls=ForensicsGroup)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="FORENSICS_DB",
    default="forensics.duckdb",
    show_default=True,
    help="Case database file (env FORENSICS_DB).",
)
@click.option(
    "--lake",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="FORENSICS_LAKE",
    metavar="DIR",
    help="Keep a new case's requests and usage as Parquet files in DIR, a new or empty"
    " directory (env FORENSICS_LAKE; docs/lake.md). The case remembers its lake.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option(
    "--tz",
    envvar="FORENSICS_TZ",
    metavar="ZONE",
    help="Show times in reports and tables in this IANA zone, e.g. Europe/Berlin (env"
    " FORENSICS_TZ; default UTC). csv, json, parquet and the case stay in UTC.",
)
@click.option(
    "--memory-limit",
    envvar="FORENSICS_MEMORY_LIMIT",
    metavar="SIZE",
    help="Most memory the case's database may use, e.g. 4GB (env FORENSICS_MEMORY_LIMIT;"
    " default 80% of RAM); past it, work spills to --temp-dir.",
)
@click.option(
    "--temp-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="FORENSICS_TEMP_DIR",
    metavar="DIR",
    help="Where the database spills what does not fit in memory (env FORENSICS_TEMP_DIR;"
    " default CASE.tmp beside the case file).",
)
@click.version_option(__version__, prog_name="forensics")
@click.pass_context
def cli(
    ctx: click.Context,
    db: Path,
    lake: Path | None,
    debug: bool,
    tz: str | None,
    memory_limit: str | None,
    temp_dir: Path | None,
) -> None:
    """Offline forensics for abuse of AI APIs: load gateway logs and provider usage into a
    DuckDB case, query it, and find what happened.

    \b
    Example:
      forensics --db case.duckdb ingest logs/kong/ --asn-db ip2asn-v4.tsv.gz
      forensics --db case.duckdb sql "SELECT tenant_id, count(*) FROM requests GROUP BY 1"
      forensics --db case.duckdb --memory-limit 4GB --temp-dir /scratch detect
      forensics --db big.duckdb --lake /data/lake --memory-limit 4GB ingest logs/
    """
    from forensics.case.db import limit_resources, use_lake
    from forensics.times import set_display_zone

    set_display_zone(tz)  # a bad zone is a UsageError: ForensicsGroup.invoke prints it
    limit_resources(memory_limit, temp_dir)
    use_lake(lake, case=db)
    ctx.obj = {"db": db, "debug": debug}


def _register() -> None:
    """One module per command family (each imports only click at load time)."""
    from forensics.cli.demo import demo
    from forensics.cli.detect import detect
    from forensics.cli.detectors import detectors
    from forensics.cli.detectors_test import detectors_test
    from forensics.cli.evidence import quarantine, schema, sources, verify
    from forensics.cli.export_sql import export_sql
    from forensics.cli.findings import findings, incidents, runs
    from forensics.cli.ingest import ingest
    from forensics.cli.lake import compact
    from forensics.cli.principals import principals
    from forensics.cli.quota import quota
    from forensics.cli.report import report
    from forensics.cli.sql import sql
    from forensics.cli.synth import evaluate, synth
    from forensics.cli.triage import allow, triage
    from forensics.cli.usage import usage

    detectors.add_command(detectors_test)
    for command in (
        ingest,
        schema,
        sources,
        quarantine,
        verify,
        compact,
        sql,
        detectors,
        detect,
        export_sql,
        findings,
        runs,
        incidents,
        principals,
        triage,
        allow,
        report,
        usage,
        quota,
        synth,
        evaluate,
        demo,
    ):
        cli.add_command(command)


_register()


def main() -> None:  # pragma: no cover - console entry
    cli()
