"""`forensics report incident`: one principal's story as a self-contained HTML file.

cli.py registers the group: `cli.add_command(report)`.
"""

from __future__ import annotations

from pathlib import Path

import click

from forensics.errors import UsageError


@click.group("report")
def report() -> None:
    """Reports an investigator attaches to a ticket: one HTML file each, no network needed.

    \b
    Example:
      forensics report incident --tenant tenant-acme -o acme.html
    """


@report.command("incident")
@click.argument("incident_id", required=False)
@click.option("--tenant", metavar="T", help="The latest incident of this tenant.")
@click.option("--credential", metavar="C", help="The latest incident with a finding on C.")
@click.option(
    "--principal", metavar="TYPE:ID", help="The latest incident of any principal, e.g. asn:64500."
)
@click.option(
    "--since", metavar="TIME", help="Start of the window shown (default: the incident's)."
)
@click.option("--until", metavar="TIME", help="End of the window shown (default: the incident's).")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The HTML file to write.",
)
@click.pass_context
def incident(
    ctx: click.Context,
    incident_id: str | None,
    tenant: str | None,
    credential: str | None,
    principal: str | None,
    since: str | None,
    until: str | None,
    output: Path,
) -> None:
    """Write one incident's report: verdict, actions, timeline, request shape, networks,
    findings with evidence and the SQL to reproduce them, and the chain of custody.

    The page is self-contained (styles and charts inside, no external reference), escapes
    every string that came from a log and shows credentials only as fingerprints.

    \b
    Example:
      forensics incidents
      forensics report incident 88ac97c68ab4974c09604a2e7fbff251 -o incident.html
      forensics report incident --tenant tenant-acme -o acme.html
      forensics report incident --principal asn:4200002991 -o farm.html
    """
    from forensics import db
    from forensics.findings_export import parse_time
    from forensics.report_data import incident_report, pick_incident
    from forensics.report_render import render_incident

    start = parse_time(since, "--since")
    end = parse_time(until, "--until")
    if start is not None and end is not None and start >= end:
        raise UsageError(f"--since {since} is not before --until {until}")
    con = db.connect(ctx.obj["db"], read_only=True, create=False)
    try:
        chosen = pick_incident(
            con, incident_id, tenant=tenant, credential=credential, principal=principal
        )
        data = incident_report(con, chosen, since=start, until=end)
    finally:
        con.close()
    render_incident(data, output)
    click.echo(str(output))
