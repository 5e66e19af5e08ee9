"""`forensics report bundle`: a period's pages, linked, in one folder (forensics/report/bundle.py).

forensics/cli/report.py adds it to the `report` group.
"""

from __future__ import annotations

from pathlib import Path

import click

from forensics.cli.options import period_options, policy_option, replay_policy


@click.command("bundle")
@period_options
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The folder to write (created; pages already in it are replaced).",
)
@click.option(
    "--zip",
    "evidence",
    is_flag=True,
    help="Also an evidence zip per incident: its page (HTML and Markdown), its requests as"
    " Parquet and CSV, findings, triage, runs, sources' hashes and a SHA-256 manifest.",
)
@policy_option
@click.pass_context
def bundle(
    ctx: click.Context,
    week: str | None,
    since: str | None,
    until: str | None,
    output: Path,
    evidence: bool,
    policy_file: Path | None,
) -> None:
    """Write every page of a period into one folder: index.html linking the weekly report,
    one page per incident (file names carry the incident id and principal) and one per
    principal with findings, every page linking back. All pages open from disk, no network.

    \b
    Example:
      forensics report bundle --week 2026-W47 -o week47/
      forensics report bundle --since 2026-11-16 --until 2026-11-18 -o two-days/ --zip
    """
    from forensics.case import db
    from forensics.cli.options import period
    from forensics.report.bundle import write_bundle

    start, end = period(ctx, week, since, until)
    con = db.connect(ctx.obj["db"], read_only=True, create=False)
    try:
        db.sandbox(con)  # reports run only our SQL
        replay_policy(con, policy_file)
        written = write_bundle(con, output, start, end, evidence=evidence)
    finally:
        con.close()
    click.echo(f"{written[0]} ({len(written)} files in {output})")
