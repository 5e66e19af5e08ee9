"""`forensics triage` and `forensics allow`: an investigator's decisions, kept in the case.

The work is in forensics/case/triage.py and forensics/case/allowlist.py.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    import duckdb

from forensics.case.schema import ALLOW_KINDS
from forensics.case.schema import TRIAGE_STATUSES as STATUSES
from forensics.cli.options import connect, output_options

_HISTORY = (
    "recorded_at", "recorded_by", "target_type", "target_id", "detector_id", "principal_type",
    "principal_id", "status", "reason", "allowlist_entry",
)  # fmt: skip


def who(given: str | None) -> str:
    """--by, else FORENSICS_USER, else the login name."""
    if given and given.strip():
        return given.strip()
    try:
        return os.environ.get("FORENSICS_USER") or getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


@click.command()
@click.argument("ids", nargs=-1, metavar="ID...")
@click.option(
    "--status",
    type=click.Choice(STATUSES),
    help="Record this status for each ID (without it: show their history).",
)
@click.option("--reason", help="Why (required with --status; shown in the reports).")
@click.option("--by", "by_name", metavar="NAME", help="Who decided (default: the login name).")
@click.option(
    "--suppress-similar",
    is_flag=True,
    help="With false_positive or accepted_risk: add an allowlist entry for the same principal"
    " and detector(s), with the reason, applied from the next detection run.",
)
@click.option("--expires", metavar="TIME", help="When that suppression ends (ISO 8601 date).")
@output_options
@click.pass_context
def triage(
    ctx: click.Context,
    ids: tuple[str, ...],
    status: str | None,
    reason: str | None,
    by_name: str | None,
    suppress_similar: bool,
    expires: str | None,
    fmt: str,
    output: Path | None,
    raw_csv: bool,
) -> None:
    """Mark findings or incidents (ids by unique prefix, at least 4 hex digits) as open,
    investigating, false_positive, accepted_risk or resolved, with a reason; or, without
    --status, show the triage history (of the IDs given, else all of it).

    Entries are appended, never changed: the history is the audit trail, and it survives
    re-running `detect` (a status carries over to later runs' findings and incidents on the
    same principal, detector and window). The incident and weekly reports show it.

    \b
    Example:
      forensics triage 3f9a0c1d --status investigating --reason "asked the tenant"
      forensics triage 3f9a 77b2 --status false_positive --reason "nightly eval job" \\
          --suppress-similar --expires 2027-03-01
      forensics triage 3f9a0c1d
    """
    from forensics.case import triage as cases
    from forensics.errors import UsageError
    from forensics.times import parse_time

    if status is None:
        if reason or suppress_similar or expires:
            raise UsageError("--reason, --suppress-similar and --expires go with --status")
        con = connect(ctx, read_only=True)
        try:
            rows = cases.history(con, list(ids))
            _print_rows(con, rows, fmt, output, raw_csv)
        finally:
            con.close()
        return
    if not ids:
        raise UsageError("give the ids of the findings or incidents to mark")
    if not reason:
        raise UsageError("--status needs --reason: the report shows why")
    until = parse_time(expires, "--expires")
    con = connect(ctx)
    try:
        stored = cases.record(
            con,
            list(ids),
            status,
            reason,
            who(by_name),
            suppress_similar=suppress_similar,
            expires=until,
        )
    finally:
        con.close()
    for row in stored:
        line = f"{row['target_type']} {row['target_id']}: {row['status']}"
        if row["allowlist_entry"]:
            line += f" (suppressed from the next run by allowlist entry {row['allowlist_entry']})"
        click.echo(line)


def _print_rows(
    con: duckdb.DuckDBPyConnection,
    rows: list[dict[str, object]],
    fmt: str,
    output: Path | None,
    raw_csv: bool,
) -> None:
    """History rows through the common writer (every format), selected again by their ids."""
    from forensics.output import print_result

    columns = ", ".join(_HISTORY)
    print_result(
        con,
        f"SELECT {columns} FROM triage WHERE list_contains($ids, entry_id)"
        " ORDER BY recorded_at, entry_id",
        fmt,
        output,
        {"ids": [r["entry_id"] for r in rows]},
        noun="triage entries",
        raw_csv=raw_csv,
    )


@click.group()
def allow() -> None:
    """The allowlist inside the case: entries that suppress findings from the next detection
    run on (a CSV of kind,value,detectors,reason,expires can still be ingested for bulk).

    \b
    Example:
      forensics allow add asn 64500 --reason "our CI runners" --expires 2027-06-30
      forensics allow add credential key-batch --reason "eval job" --detectors 'cost.*'
      forensics allow list
      forensics allow remove 4cd58e1e
    """


@allow.command("add")
@click.argument("kind", type=click.Choice(ALLOW_KINDS))
@click.argument("value")
@click.option("--reason", required=True, help="Why it is allowed (shown on what it suppresses).")
@click.option("--expires", metavar="TIME", help="When it stops applying (ISO 8601).")
@click.option(
    "--detectors",
    "detectors",
    multiple=True,
    metavar="GLOB",
    help="Only for detector ids matching this glob (repeatable; default: all).",
)
@click.option("--by", "by_name", metavar="NAME", help="Who added it (default: the login name).")
@click.pass_context
def allow_add(
    ctx: click.Context,
    kind: str,
    value: str,
    reason: str,
    expires: str | None,
    detectors: tuple[str, ...],
    by_name: str | None,
) -> None:
    """Add an entry: KIND is asn, ip, cidr, tenant, credential, user, provider_key or
    user_agent (a substring of a sample request's user agent). A raw key given as a
    credential is stored as its fingerprint.

    \b
    Example:
      forensics allow add asn 64500 --reason "our CI runners" --expires 2027-06-30
      forensics allow add cidr 203.0.113.0/24 --reason "office egress" --detectors 'network.*'
    """
    from forensics.case import allowlist
    from forensics.times import parse_time

    con = connect(ctx, create=True)
    try:
        entry = allowlist.add(
            con,
            kind,
            value,
            reason,
            who(by_name),
            expires=parse_time(expires, "--expires"),
            detectors=list(detectors),
        )
    finally:
        con.close()
    click.echo(f"allowlist entry {entry} added; it applies from the next `forensics detect`")


@allow.command("list")
@click.option("--all", "everything", is_flag=True, help="Also removed and expired entries.")
@output_options
@click.pass_context
def allow_list(
    ctx: click.Context, everything: bool, fmt: str, output: Path | None, raw_csv: bool
) -> None:
    """The entries in force, newest first (with --all: removed and expired ones too).

    \b
    Example:
      forensics allow list
      forensics allow list --all --format csv -o allowlist.csv
    """
    from forensics.case.allowlist import LIST_QUERY
    from forensics.output import print_result

    con = connect(ctx)  # read-write: a case made before `allow` gains its columns first
    try:
        print_result(
            con, LIST_QUERY, fmt, output, {"all": everything}, noun="entries", raw_csv=raw_csv
        )
    finally:
        con.close()


@allow.command("remove")
@click.argument("entry_id")
@click.option("--by", "by_name", metavar="NAME", help="Who removed it (default: the login name).")
@click.pass_context
def allow_remove(ctx: click.Context, entry_id: str, by_name: str | None) -> None:
    """Retire an entry (by unique id prefix): it stops applying at the next run and stays
    listed by `allow list --all`, with who removed it and when.

    \b
    Example:
      forensics allow remove 4cd58e1e --by alice
    """
    from forensics.case import allowlist

    con = connect(ctx)
    try:
        removed = allowlist.remove(con, entry_id, who(by_name))
    finally:
        con.close()
    click.echo(f"allowlist entry {removed['entry_id']} removed; findings it suppressed stay so")
