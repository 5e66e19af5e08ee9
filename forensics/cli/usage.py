"""`forensics usage`: the provider's own usage reports, summed by provider, project, key, model
and time.

cli.py registers it: `cli.add_command(usage)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from forensics.cli.options import raw_csv_option, time_span
from forensics.errors import UsageError

# --by name -> (SQL expression over `usage u`, output column). Only these fixed fragments ever
# reach the SQL text; every user value is a bound parameter.
GROUPS: dict[str, tuple[str, str]] = {
    "provider": ("u.provider", "provider"),
    "source": ("u.source_format", "source_format"),
    "project": ("u.project_id", "project_id"),
    "key": ("u.api_key_id", "api_key_id"),
    "model": ("u.model", "model"),
    "family": ("u.model_family", "model_family"),
    "day": ("(date_trunc('day', u.bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')", "day"),
    "hour": (
        "(date_trunc('hour', u.bucket_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')",
        "hour",
    ),
}
DEFAULT_BY = ("provider", "model", "day")
COST_FORMATS = ("openai_costs", "anthropic_cost")


def parse_by(values: tuple[str, ...]) -> list[str]:
    """Repeatable, comma-separated --by values: known names only, each once, in order given."""
    names: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name not in GROUPS:
                raise UsageError(
                    f"--by: unknown grouping {part.strip()!r}",
                    hint="choose from " + ", ".join(GROUPS),
                )
            if name not in names:
                names.append(name)
    return names or list(DEFAULT_BY)


def usage_query(by: list[str], since: Any = None, until: Any = None) -> tuple[str, dict[str, Any]]:
    """The summary SQL and its parameters. `by` must come from `parse_by`."""
    keys = [GROUPS[name] for name in by]
    select = [f"{expr} AS {col}" for expr, col in keys]
    cost = ", ".join(f"'{f}'" for f in COST_FORMATS)
    token_row = f"u.source_format NOT IN ({cost})"
    conds = ["u.bucket_start IS NOT NULL"]
    params: dict[str, Any] = {}
    if since is not None:
        conds.append("u.bucket_start >= $since")
        params["since"] = since
    if until is not None:
        conds.append("u.bucket_start < $until")
        params["until"] = until
    label = ""
    join = ""
    if "key" in by:
        label = ",\n  string_agg(DISTINCT k.label, '; ' ORDER BY k.label) AS known_key_label"
        join = (
            "\nLEFT JOIN (SELECT DISTINCT lower(provider) AS provider, api_key_id, label"
            " FROM known_keys) k ON k.provider = lower(u.provider) AND k.api_key_id = u.api_key_id"
        )
    from forensics.case.costs import EST_COST_SQL, price_join

    # each usage row priced like a gateway request (forensics/case/costs.py), so that a case
    # without a cost export still shows dollars; cost exports carry no tokens to price
    priced = f"""WITH c AS (
  SELECT u.*, u.bucket_start AS ts, NULL::VARCHAR AS response_model FROM usage u
  WHERE {" AND ".join(conds)}
), u AS (
  SELECT c.*, CASE WHEN c.source_format NOT IN ({cost}) THEN {EST_COST_SQL} END AS est_cost_usd
  FROM c {price_join("c")}
)
"""
    query = (
        priced
        + "SELECT\n  "
        + ",\n  ".join(select)
        + f""",
  count(*) AS rows,
  coalesce(sum(u.requests) FILTER (WHERE {token_row}), 0)::BIGINT AS requests,
  coalesce(sum(u.input_tokens) FILTER (WHERE {token_row}), 0)::BIGINT AS input_tokens,
  coalesce(sum(u.cached_input_tokens) FILTER (WHERE {token_row}), 0)::BIGINT
    AS cached_input_tokens,
  coalesce(sum(u.output_tokens) FILTER (WHERE {token_row}), 0)::BIGINT AS output_tokens,
  sum(u.cost) AS cost,
  round(sum(u.est_cost_usd), 6) AS est_cost_usd,
  string_agg(DISTINCT upper(u.currency), ',' ORDER BY upper(u.currency)) AS currency,
  string_agg(DISTINCT u.source_format, ',' ORDER BY u.source_format) AS source_formats,
  string_agg(DISTINCT u.bucket_width, ',' ORDER BY u.bucket_width) AS bucket_widths,
  min(u.bucket_start) AS first_bucket_start,
  max(u.bucket_end) AS last_bucket_end{label}
FROM u{join}
GROUP BY ALL
ORDER BY {", ".join(str(i + 1) for i in range(len(keys)))}"""
    )
    return query, params


@click.command()
@click.option(
    "--by",
    "by",
    multiple=True,
    metavar="LIST",
    help="Group by these, comma-separated or repeated: "
    + ", ".join(GROUPS)
    + f".  [default: {','.join(DEFAULT_BY)}]",
)
@click.option(
    "--since", help="Only buckets starting at or after this time (ISO 8601, UTC if no offset)."
)
@click.option(
    "--until", help="Only buckets starting before this time (ISO 8601, UTC if no offset)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "jsonl", "parquet"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout (needed for parquet).",
)
@raw_csv_option
@click.pass_context
def usage(
    ctx: click.Context,
    by: tuple[str, ...],
    since: str | None,
    until: str | None,
    fmt: str,
    output: Path | None,
    raw_csv: bool,
) -> None:
    """What the providers report: usage summed by provider, project, key, model and time.

    Reads the `usage` table (OpenAI and Anthropic usage and cost exports, LiteLLM daily spend).
    Tokens and requests come from usage exports; cost exports carry only cost, so `cost` is
    their sum. `est_cost_usd` prices the usage exports' tokens with the price table, as the
    gateway's requests are priced (dollars even without a cost export; an estimate). `source`
    separates the exports: LiteLLM spend and a provider's own report of the
    same traffic would otherwise add up. `day` and `hour` are UTC and taken from the bucket
    start, so a 1d bucket counts in the first hour of its day. Grouping by `key` adds the label
    of keys listed in known_keys (the gateway's own); to compare with gateway traffic, query the
    `usage_vs_gateway` view with `forensics sql`.

    \b
    Example:
      forensics usage
      forensics usage --by provider,key --since 2026-01-01 --until 2026-02-01
      forensics usage --by source --by project --by day --format csv > usage.csv
      forensics sql "SELECT * FROM usage_vs_gateway WHERE unexplained_tokens > 0"
    """

    from forensics.case import db
    from forensics.output import print_result

    names = parse_by(by)
    start, end = time_span(since, until)
    query, params = usage_query(names, start, end)
    con = db.connect(ctx.obj["db"], read_only=True)
    try:
        print_result(con, query, fmt, output, params or None, raw_csv=raw_csv)
    finally:
        con.close()
