"""`forensics findings` and `forensics incidents`: what the detectors found, filtered, exported.

cli.py registers them: `cli.add_command(findings)` and `cli.add_command(incidents)`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

from forensics.case.severity import NAMES as SEVERITY_NAMES
from forensics.case.severity import Severity
from forensics.cli.options import raw_csv_option
from forensics.errors import ExitCode, UsageError, duckdb_error

if TYPE_CHECKING:
    import duckdb

    from forensics.findings.export import Filters

F = TypeVar("F", bound=Callable[..., Any])


EXPORT_FORMATS = ("table", "csv", "json", "jsonl", "parquet", "ocsf")
# What a terminal table shows unless --wide, most important first (a table that does not fit
# the terminal leaves out its last columns); ids by their first 8 digits, which every command
# taking an id accepts.
NARROW = {
    "findings": "left(finding_id, 8) AS finding, severity, detector_id, principal_id,"
    " window_start, principal_type AS type, {cost} AS cost_usd, triage_status, summary",
    "incidents": "left(incident_id, 8) AS incident, severity, principal_id, first_seen,"
    " last_seen, principal_type AS type, {cost} AS cost_usd, triage_status, detectors",
}


def _filter_options(f: F) -> F:
    """--severity, --detector, --tenant, --since, --until, --sort, --limit (both commands)."""
    f = click.option(
        "--limit", type=click.IntRange(min=1), help="At most this many (after sorting)."
    )(f)
    f = click.option(
        "--sort",
        type=click.Choice(["oldest", "newest", "severity", "cost"]),
        default="oldest",
        show_default=True,
        help="oldest: the timeline forwards; newest, severity or cost first.",
    )(f)
    f = click.option(
        "--until", help="Only what started at or before this time (ISO 8601, UTC if no offset)."
    )(f)
    f = click.option(
        "--since", help="Only what ended at or after this time (ISO 8601, UTC if no offset)."
    )(f)
    f = click.option("--tenant", help="Only this tenant id.")(f)
    f = click.option(
        "--detector",
        "detectors",
        multiple=True,
        metavar="GLOB",
        help="Only detector ids matching this glob, e.g. 'credential.*' (repeatable: any).",
    )(f)
    f = click.option(
        "--severity",
        type=click.Choice(SEVERITY_NAMES, case_sensitive=False),
        help="Only this severity and above.",
    )(f)
    return f


def _export_options(f: F) -> F:
    """--format, -o/--output, --raw-csv, --fail-on, --wide."""
    f = raw_csv_option(f)
    f = click.option("--wide", is_flag=True, help="Table: every column, not the main ones.")(f)
    f = click.option(
        "--columns", metavar="LIST", help="Only these columns, comma-separated, in this order."
    )(f)
    f = click.option(
        "--fail-on",
        type=click.Choice(SEVERITY_NAMES, case_sensitive=False),
        help="Exit 3 when anything unsuppressed (within the filters) reaches this severity; else"
        " 5 when detection did not cover the span asked about (no run over it, a run older than"
        " evidence ingested since, detectors that did not run or failed) or it has no request.",
    )(f)
    f = click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write to this file instead of stdout (needed for parquet).",
    )(f)
    f = click.option(
        "--format",
        "fmt",
        type=click.Choice(EXPORT_FORMATS),
        default="table",
        show_default=True,
        help="Output format (ocsf: one OCSF Detection Finding per line).",
    )(f)
    return f


def _filters(
    severity: str | None,
    detectors: tuple[str, ...],
    tenant: str | None,
    since: str | None,
    until: str | None,
    include_suppressed: bool,
    sort: str = "oldest",
    limit: int | None = None,
) -> Filters:
    from forensics.findings.export import Filters
    from forensics.times import parse_time

    start = parse_time(since, "--since")
    end = parse_time(until, "--until")
    if start is not None and end is not None and start > end:
        raise UsageError(f"--since {since} is after --until {until}")
    return Filters(
        min_severity=Severity.parse(severity) if severity else None,
        detectors=detectors,
        tenant=tenant,
        since=start,
        until=end,
        include_suppressed=include_suppressed,
        sort=sort,
        limit=limit,
    )


def _write_ocsf(rows: list[dict[str, Any]], out: TextIO) -> None:
    import datetime as dt

    from forensics._version import __version__
    from forensics.findings.ocsf import to_ocsf

    now = dt.datetime.now(dt.UTC)  # one creation time for findings whose run is unknown
    for row in rows:
        out.write(json.dumps(to_ocsf(row, __version__, now=now), ensure_ascii=False) + "\n")


def _export(
    ctx: click.Context,
    kind: str,
    filters: Filters,
    fmt: str,
    output: Path | None,
    *,
    raw_csv: bool,
    fail_on: str | None,
    wide: bool = True,
    columns: str | None = None,
) -> None:
    import duckdb

    from forensics.case import db
    from forensics.case.rows import query_rows
    from forensics.findings import export as fx
    from forensics.output import write_result

    con = db.connect(ctx.obj["db"], read_only=True)
    try:
        if filters.run is not None:
            import dataclasses

            from forensics.case.rows import one_by_prefix

            run = one_by_prefix(
                con, "runs", "run_id", filters.run, "run id", "`forensics runs` lists them"
            )
            filters = dataclasses.replace(filters, run=run)
        try:
            if fmt == "ocsf":
                rows = query_rows(con, *fx.findings_ocsf_query(filters))
                if output is not None:
                    with output.open("w", encoding="utf-8", newline="\n") as f:
                        _write_ocsf(rows, f)
                else:
                    _write_ocsf(rows, sys.stdout)
                n = len(rows)
            else:
                query, params = (
                    fx.findings_query(filters)
                    if kind == "findings"
                    else fx.incidents_query(filters)
                )
                from forensics.output import select_columns, usd_cell

                if columns:
                    contract = fx.FINDING_COLUMNS if kind == "findings" else fx.INCIDENT_COLUMNS
                    query = select_columns(query, columns, contract)
                elif fmt == "table" and not wide:
                    main = NARROW[kind].format(cost=usd_cell("est_cost_usd"))
                    query = f"SELECT {main} FROM ({query})"
                n = write_result(
                    con, query, fmt, sys.stdout, output, params or None, raw_csv=raw_csv
                )
            if output is not None:
                click.echo(f"{n} {kind} written to {output}", err=True)
            hits = 0
            gaps: list[str] = []
            if fail_on is not None:
                threshold = Severity.parse(fail_on)
                count = (
                    fx.count_findings_at_least
                    if kind == "findings"
                    else fx.count_incidents_at_least
                )
                hits = count(con, filters, threshold)
                if filters.run is None:
                    gaps = _unanalysed(con, filters)
        except duckdb.Error as e:
            raise duckdb_error(e) from e
    finally:
        con.close()
    for line in gaps:
        click.echo(f"warning: {line}", err=True)
    if hits:
        what = "unsuppressed findings" if kind == "findings" else "incidents"
        click.echo(f"{hits} {what} at or above {fail_on}", err=True)
        ctx.exit(int(ExitCode.FINDINGS))
    if gaps:
        click.echo(f"the evidence was not (fully) analysed (--fail-on {fail_on}): exit 5", err=True)
        ctx.exit(int(ExitCode.NOT_ANALYSED))


def _unanalysed(con: duckdb.DuckDBPyConnection, filters: Filters) -> list[str]:
    """What detection left unanalysed in the span the filters select (the case's whole span
    when they name none): the lines of detect/coverage.py, or that the span has no request."""
    import datetime as dt

    from forensics.detect.coverage import detection_coverage

    first, last = con.execute(
        "SELECT min(ts), max(ts) FROM requests WHERE $tenant IS NULL OR tenant_id = $tenant",
        {"tenant": filters.tenant},
    ).fetchall()[0]
    start = filters.since or first
    end = filters.until or (last + dt.timedelta(microseconds=1) if last else None)
    if start is None or end is None or first is None or start > last or end <= first:
        return ["no request in the span asked about: nothing in it was analysed"]
    coverage = detection_coverage(con, start, end, tenant=filters.tenant, only=filters.detectors)
    return coverage.lines()


@click.command()
@_filter_options
@click.option(
    "--include-suppressed",
    is_flag=True,
    help="Also findings an allowlist entry suppressed (they are kept, never deleted).",
)
@click.option(
    "--run",
    "run_id",
    metavar="RUN_ID",
    help="One run's findings, superseded ones too (`forensics runs` lists the runs).",
)
@_export_options
@click.pass_context
def findings(
    ctx: click.Context,
    severity: str | None,
    detectors: tuple[str, ...],
    tenant: str | None,
    since: str | None,
    until: str | None,
    sort: str,
    limit: int | None,
    include_suppressed: bool,
    run_id: str | None,
    fmt: str,
    output: Path | None,
    raw_csv: bool,
    fail_on: str | None,
    wide: bool,
    columns: str | None,
) -> None:
    """What the detectors found, oldest window first, most severe first within a time.

    Columns: finding_id, detector_id, severity, score, principal_type, principal_id,
    tenant_id, window_start, window_end, summary, evidence, est_cost_usd (the principal's
    gateway requests in the window), provider_cost_usd (provider-side, for provider keys),
    suppressed, suppressed_by, run_id, superseded_by. A re-run of a detector over a scope
    supersedes its earlier findings there: they are left out unless --run names their run.
    Suppressed findings are left out unless --include-suppressed. With
    --format ocsf each line is an OCSF Detection Finding (class_uid 2004). With --fail-on the
    exit status is 3 when an unsuppressed finding within the filters reaches that severity.

    \b
    Example:
      forensics findings --severity high
      forensics findings --detector 'credential.*' --since 2026-01-01 --format jsonl
      forensics findings --format ocsf -o findings.ocsf.jsonl
      forensics findings --tenant acme-prod --fail-on high --format csv > acme.csv
      forensics findings --run 3f9a0c1d2e4b5a6978877665544332211
    """
    import dataclasses

    filters = _filters(severity, detectors, tenant, since, until, include_suppressed, sort, limit)
    filters = dataclasses.replace(filters, run=run_id)
    _export(
        ctx,
        "findings",
        filters,
        fmt,
        output,
        raw_csv=raw_csv,
        fail_on=fail_on,
        wide=wide,
        columns=columns,
    )


@click.command()
@_filter_options
@_export_options
@click.pass_context
def incidents(
    ctx: click.Context,
    severity: str | None,
    detectors: tuple[str, ...],
    tenant: str | None,
    since: str | None,
    until: str | None,
    sort: str,
    limit: int | None,
    fmt: str,
    output: Path | None,
    raw_csv: bool,
    fail_on: str | None,
    wide: bool,
    columns: str | None,
) -> None:
    """Findings grouped by principal and time: the incidents, oldest first.

    Incidents are built from unsuppressed findings only. --detector matches an incident when
    any of its detectors matches; --since / --until compare with last_seen / first_seen. With
    --fail-on the exit status is 3 when an incident within the filters reaches that severity.
    OCSF output is for findings only.

    \b
    Example:
      forensics incidents
      forensics incidents --severity high --format json
      forensics incidents --detector 'credential.*' --fail-on critical
    """
    if fmt == "ocsf":
        raise UsageError(
            "OCSF output is for findings only",
            hint="use `forensics findings --format ocsf` (each incident lists its finding_ids)",
        )
    filters = _filters(severity, detectors, tenant, since, until, False, sort, limit)
    _export(
        ctx,
        "incidents",
        filters,
        fmt,
        output,
        raw_csv=raw_csv,
        fail_on=fail_on,
        wide=wide,
        columns=columns,
    )


@click.command()
@_export_options
@click.pass_context
def runs(
    ctx: click.Context,
    fmt: str,
    output: Path | None,
    raw_csv: bool,
    fail_on: str | None,
    wide: bool,
    columns: str | None,
) -> None:
    """Every detection run, newest first: when, which detectors with which parameters, over
    which scope, and what it found (findings stored, of them still current).

    A run supersedes the earlier findings of each detector it ran over its scope; those stay
    in the case with their run (`forensics findings --run RUN_ID` shows them).

    \b
    Example:
      forensics runs
      forensics runs --format json
    """

    from forensics.case import db
    from forensics.findings.export import RUNS_QUERY
    from forensics.output import print_result

    if fmt == "ocsf" or fail_on is not None:
        raise UsageError("runs take --format table, csv, json, jsonl or parquet, and no --fail-on")
    con = db.connect(ctx.obj["db"], read_only=True)
    try:
        print_result(con, RUNS_QUERY, fmt, output, noun="runs", raw_csv=raw_csv)
    finally:
        con.close()
