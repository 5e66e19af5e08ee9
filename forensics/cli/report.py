"""`forensics report incident`: one principal's story as a self-contained HTML file.

cli.py registers the group: `cli.add_command(report)`.
"""

from __future__ import annotations

from pathlib import Path

import click

from forensics.case.severity import NAMES as SEVERITY_NAMES
from forensics.case.severity import Severity
from forensics.cli.options import period_options, policy_option, replay_policy, time_span
from forensics.errors import UsageError

_output = click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    help="The file to write (-: stdout).",
)
_format = click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "md"]),
    default="html",
    show_default=True,
    help="html: one self-contained page; md: Markdown for tickets and chat.",
)


_SUFFIXES = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md"}


def _format_for(ctx: click.Context, output: Path, fmt: str) -> str:
    """The format to write: --format when given, else the one -o's extension names (a page
    named .md is Markdown); an extension that contradicts --format is an error."""
    named = _SUFFIXES.get(output.suffix.lower())
    given = ctx.get_parameter_source("fmt") not in (
        click.core.ParameterSource.DEFAULT,
        None,
    )
    if named is None or str(output) == "-":
        return fmt
    if given and named != fmt:
        raise UsageError(f"-o {output.name} is {named}, but --format says {fmt}")
    return named


def _written(output: Path) -> None:
    """Say which file was written (nothing when the page went to stdout)."""
    if str(output) != "-":
        click.echo(str(output))


@click.group("report")
def report() -> None:
    """Reports an investigator attaches to a ticket: one HTML file each, no network needed.

    \b
    Example:
      forensics report incident --tenant tenant-acme -o acme.html
      forensics report weekly --week 2026-W47 -o week47.html
    """


@report.command("incident")
@click.argument("incident_id", required=False)
@click.option("--tenant", metavar="T", help="The incident of this tenant.")
@click.option("--credential", metavar="C", help="The incident with a finding on C.")
@click.option(
    "--principal", metavar="TYPE:ID", help="The incident of any principal, e.g. asn:64500."
)
@click.option(
    "--all",
    "every",
    is_flag=True,
    help="When the tenant, credential or principal has several incidents: one page each,"
    " into the directory -o names (default: list them and stop).",
)
@click.option(
    "--since", metavar="TIME", help="Start of the window shown (default: the incident's)."
)
@click.option("--until", metavar="TIME", help="End of the window shown (default: the incident's).")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="The file to write (with --all: a directory).",
)
@_format
@policy_option
@click.pass_context
def incident(
    ctx: click.Context,
    incident_id: str | None,
    tenant: str | None,
    credential: str | None,
    principal: str | None,
    every: bool,
    since: str | None,
    until: str | None,
    output: Path,
    fmt: str,
    policy_file: Path | None,
) -> None:
    """Write one incident's report: verdict, actions, what a quota would have done, timeline,
    request shape, networks, findings with evidence and the SQL to reproduce them, triage, and
    the chain of custody.

    INCIDENT_ID may be a unique prefix (4 digits or more). A tenant, credential or principal
    with several incidents gets them listed, newest first, to pick one (or --all). The page is
    self-contained (styles and charts inside, no external reference), escapes every string
    that came from a log and shows credentials only as fingerprints.

    \b
    Example:
      forensics incidents
      forensics report incident 88ac97c6 -o incident.html
      forensics report incident --tenant tenant-acme -o acme.html
      forensics report incident --tenant tenant-acme --all -o acme-incidents/
      forensics report incident --principal asn:4200002991 -o farm.html
      forensics report incident --tenant tenant-acme --format md -o acme.md
    """
    from forensics.case import db
    from forensics.report.bundle import incident_file
    from forensics.report.incident import incident_report, pick_incidents
    from forensics.report.render import render_incident

    start, end = time_span(since, until)
    if every and output.exists() and not output.is_dir():
        raise UsageError(f"{output}: a file; with --all, -o names a directory")
    con = db.connect(ctx.obj["db"], read_only=True, create=False)
    try:
        db.sandbox(con)  # reports run only our SQL; a case's text cannot reach files anyway
        replay_policy(con, policy_file)
        chosen = pick_incidents(
            con, incident_id, tenant=tenant, credential=credential, principal=principal
        )
        if len(chosen) > 1 and not every:
            listed = "\n".join(
                f"  {i['incident_id'][:8]}  {i['severity']:<8}  {i['first_seen']:%Y-%m-%d %H:%M}"
                f" – {i['last_seen']:%Y-%m-%d %H:%M}  {', '.join(i['detectors'] or [])}"
                for i in chosen
            )
            raise UsageError(
                f"{len(chosen)} incidents match, newest first:\n{listed}",
                hint="give one of their ids (a prefix will do), or --all -o DIR for every one",
            )
        pages = [incident_report(con, i, since=start, until=end) for i in chosen]
    finally:
        con.close()
    if not every:
        if output.is_dir():
            raise UsageError(f"{output}: a directory; give a file name (or --all)")
        render_incident(pages[0], output, _format_for(ctx, output, fmt))
        _written(output)
        return
    output.mkdir(parents=True, exist_ok=True)
    for page in pages:
        path = output / f"{incident_file(page.header)}.{fmt}"
        render_incident(page, path, fmt)
        click.echo(str(path))


@report.command("principal")
@click.argument("principal", metavar="TYPE:ID")
@click.option("--since", metavar="TIME", help="Start of the span shown (default: its traffic's).")
@click.option("--until", metavar="TIME", help="End of the span shown (default: its traffic's).")
@_output
@_format
@policy_option
@click.pass_context
def principal_page(
    ctx: click.Context,
    principal: str,
    since: str | None,
    until: str | None,
    output: Path,
    fmt: str,
    policy_file: Path | None,
) -> None:
    """Write one principal's page, with or without findings: the incident page's anatomy
    (volume and cost, timeline, request shape against its baseline, networks, findings with
    evidence) over its traffic, and every incident it is part of.

    TYPE is tenant, credential, user, ip, asn, cidr or provider_key (`forensics principals`
    lists them).

    \b
    Example:
      forensics report principal tenant:tenant-acme -o acme.html
      forensics report principal ip:203.0.113.7 --since 2026-11-16 --until 2026-11-17 -o ip.html
      forensics report principal provider_key:key_a241 --format md -o key.md
    """
    from forensics.case import db
    from forensics.report.principal import principal_report
    from forensics.report.render import render_incident

    start, end = time_span(since, until)
    if output.is_dir():
        raise UsageError(f"{output}: a directory; give a file name")
    con = db.connect(ctx.obj["db"], read_only=True, create=False)
    try:
        db.sandbox(con)
        replay_policy(con, policy_file)
        page = principal_report(con, principal, start, end)
    finally:
        con.close()
    render_incident(page, output, _format_for(ctx, output, fmt))
    _written(output)


report.add_command(principal_page, "timeline")


@report.command("weekly")
@period_options
@_output
@_format
@click.option(
    "--fail-on",
    type=click.Choice(SEVERITY_NAMES),
    help="Exit 3 when a finding of the period is at this severity or above, 5 when the"
    " period was not analysed (for cron).",
)
@click.option(
    "--detect",
    "run_detect",
    is_flag=True,
    help="Run the detector pack over the period and the one before it first (for cron).",
)
@click.pass_context
def weekly(
    ctx: click.Context,
    week: str | None,
    since: str | None,
    until: str | None,
    output: Path,
    fmt: str,
    fail_on: str | None,
    run_detect: bool,
) -> None:
    """Write the weekly report: a headline, incidents new, recurring and resolved against the
    previous week, findings by detector, cost exposure by tenant, daily trends, and the
    coverage of the evidence and of detection.

    The report is never a silent all-clear: when no detection run covers the period (or one
    predates evidence ingested since, or detectors of the pack did not run or failed), when
    the period has no request, when it reaches past the case's evidence, or when a log went
    silent against its own rhythm, the page opens with a banner and each reason is printed
    on stderr. With --fail-on the exit status is 3 for a finding at that severity, else 5
    when the period was not analysed (no covering detection run, or no request).

    \b
    Example:
      forensics report weekly -o weekly.html
      forensics report weekly --week 2026-W47 -o week47.html --fail-on high
      forensics report weekly --detect --fail-on high -o weekly.html   # cron
      forensics report weekly --since 2026-11-16 --until 2026-11-18 -o two-days.html
      forensics report weekly --format md -o weekly.md
    """
    from forensics.case import db
    from forensics.cli.options import period
    from forensics.errors import ExitCode
    from forensics.report.render import render_weekly
    from forensics.report.weekly import weekly_report

    start, end = period(ctx, week, since, until)
    detect_failed = False
    if run_detect:  # a failed detector still gets its report: the banner names it, exit 1
        from forensics.cli.detect import detect_period

        detect_failed = detect_period(ctx.obj["db"], start - (end - start), end)
    con = db.connect(ctx.obj["db"], read_only=True, create=False)
    try:
        db.sandbox(con)  # reports run only our SQL; a case's text cannot reach files anyway
        data = weekly_report(con, start, end)
    finally:
        con.close()
    render_weekly(data, output, _format_for(ctx, output, fmt))
    _written(output)
    for line in data.warnings:
        click.echo(f"warning: {line}", err=True)
    if detect_failed:
        ctx.exit(int(ExitCode.ERROR))
    worst = data.worst if data.worst in Severity.__members__ else None
    if fail_on and worst and Severity.parse(worst) >= Severity.parse(fail_on):
        click.echo(f"a finding at {worst} (--fail-on {fail_on})", err=True)
        ctx.exit(ExitCode.FINDINGS)
    if fail_on and data.not_analysed:
        click.echo(f"the period was not analysed (--fail-on {fail_on}): exit 5", err=True)
        ctx.exit(ExitCode.NOT_ANALYSED)


def _add_bundle() -> None:
    from forensics.cli.bundle import bundle

    report.add_command(bundle)


_add_bundle()
