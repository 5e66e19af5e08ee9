"""`forensics export-sql`: the detector pack in another engine's SQL dialect."""

from __future__ import annotations

from pathlib import Path

import click

from forensics.cli.detectors import rules_options
from forensics.dialect import DIALECTS


@click.command("export-sql")
@click.option(
    "--dialect",
    type=click.Choice(DIALECTS),
    required=True,
    help="The SQL dialect to write (spark is the one `detect --engine spark` runs and tests).",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    metavar="DIR",
    help="Folder to write <family>/<name>.sql and _views/<view>.sql into (made if missing).",
)
@rules_options
@click.pass_context
def export_sql(
    ctx: click.Context, dialect: str, out: Path, rules: tuple[Path, ...], shipped: bool
) -> None:
    """Write the detector pack transpiled to DIALECT, for scheduling it on your own engine.

    Each detector becomes <family>/<name>.sql: its SELECT with its default parameters as
    literals (listed in the file's header) and the scope left as named parameters (since,
    until, tenant; NULL leaves one unbounded). The views detectors read go to _views/:
    create them first, over tables named as the case names them (docs/lake.md). A detector
    that does not transpile is listed on stderr and gets no file; then the exit code is 1.
    Only Spark SQL is run and compared with DuckDB's findings in the test suite.

    \b
    Example:
      forensics export-sql --dialect spark -o pack-spark/
      forensics export-sql --dialect trino -o pack-trino/ --rules my_rules/
    """
    from forensics.cli.detectors import _load
    from forensics.dialect.export import export_pack

    detectors = _load(rules, shipped)
    failed = export_pack(detectors, dialect, out)
    for name, reason in sorted(failed.items()):
        click.echo(f"{name}: does not transpile to {dialect}: {reason}", err=True)
    written = len(detectors) - len([n for n in failed if not n.startswith("view ")])
    click.echo(f"{written} of {len(detectors)} detectors written to {out}", err=True)
    if failed:
        ctx.exit(1)
