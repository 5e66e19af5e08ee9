"""`forensics principals`: who is in the case (the query is forensics/case/principals.py)."""

from __future__ import annotations

from pathlib import Path

import click

from forensics.case.principals import SORTS
from forensics.case.schema import PRINCIPAL_TYPES as TYPES
from forensics.cli.options import connect, output_options, time_span

# the columns a terminal table shows unless --wide (the others are in every other format)
NARROW = ("type", "id", "tenant", "requests", "cost_usd", "last_seen", "findings", "worst",
          "incidents")  # fmt: skip


@click.command()
@click.option(
    "--type",
    "types",
    type=click.Choice(TYPES),
    multiple=True,
    help="Only principals of this type (repeatable; default: every type).",
)
@click.option(
    "--sort",
    type=click.Choice(list(SORTS)),
    default="findings",
    show_default=True,
    help="findings: most severe first, then most findings and cost.",
)
@click.option("--since", help="Only traffic and findings from this time (ISO 8601, UTC).")
@click.option("--until", help="Only traffic and findings before this time.")
@click.option(
    "--limit", type=click.IntRange(min=0), default=50, show_default=True, help="0: all of them."
)
@click.option("--wide", is_flag=True, help="Table: every column, not the main ones.")
@click.option("--columns", metavar="LIST", help="Only these columns, comma-separated.")
@output_options
@click.pass_context
def principals(
    ctx: click.Context,
    types: tuple[str, ...],
    sort: str,
    since: str | None,
    until: str | None,
    limit: int,
    wide: bool,
    columns: str | None,
    fmt: str,
    output: Path | None,
    raw_csv: bool,
) -> None:
    """Who is in the case: tenants, credentials, users, addresses (requests without a
    credential), ASNs, /24 and /64 networks and provider keys, with requests, tokens,
    estimated cost, first and last seen, networks, ASNs, countries, error share, findings
    (current, unsuppressed), the worst severity and the incidents they are part of.

    A provider key's volume is the providers' usage export (its "tenant" column names the
    provider). `forensics report principal TYPE:ID` tells one principal's story.

    \b
    Example:
      forensics principals --type tenant --sort cost
      forensics principals --type credential --since 2026-11-16 --limit 0 --format csv
      forensics principals --type asn --sort findings
    """
    from forensics.case import principals as listing
    from forensics.output import print_result

    start, end = time_span(since, until)
    query = listing.listing(list(types), sort)
    from forensics.output import select_columns, usd_cell

    if columns:
        query = select_columns(query, columns, listing.COLUMNS)
    elif fmt == "table" and not wide:
        main = [f"{usd_cell(c)} AS {c}" if c == "cost_usd" else c for c in NARROW]
        query = f"SELECT {', '.join(main)} FROM ({query})"
    if limit:
        query = f"SELECT * FROM ({query}) LIMIT {int(limit)}"
    con = connect(ctx, read_only=True)
    try:
        print_result(
            con,
            query,
            fmt,
            output,
            {"since": start, "until": end},
            noun="principals",
            raw_csv=raw_csv,
        )
    finally:
        con.close()
