"""`forensics quota replay`: try a rate-limit policy on the case's own traffic.

cli.py registers the group: `cli.add_command(quota)`.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from forensics.cli.options import output_options, time_span
from forensics.errors import InputError, UsageError


@click.group()
def quota() -> None:
    """Try a quota policy (token buckets, fixed windows, caps on requests in flight) on the
    case's traffic before it ships to the gateway: whom it would stop, whom it would hurt.

    \b
    Example:
      forensics quota suggest -o policy.toml
      forensics quota replay policy.toml --view detectors
    """


@quota.command()
@click.argument("policy_file", metavar="POLICY", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--since", metavar="TIME", help="Replay requests from this time (ISO 8601 or 7d).")
@click.option("--until", metavar="TIME", help="Replay requests up to this time.")
@click.option(
    "--view",
    type=click.Choice(["principals", "detectors", "tenants", "scenarios", "requests"]),
    default="principals",
    show_default=True,
    help="principals: whom it stops and for how long; detectors: the cost of each detector's"
    " findings it blocks, and the requests of no finding it refuses (collateral damage);"
    " tenants: the same per tenant; scenarios (with --labels): the cost of each labelled"
    " scenario blocked, and the unlabelled requests refused; requests: every request's decision.",
)
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the verdict as an SVG file: each detector's cost blocked, each tenant's"
    " requests of no finding refused, the policy beside its fixed-window twin.",
)
@click.option(
    "--labels",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A labels file (`forensics synth` writes labels.csv) for --view scenarios.",
)
@output_options
@click.pass_context
def replay(
    ctx: click.Context,
    policy_file: Path,
    since: str | None,
    until: str | None,
    view: str,
    chart: Path | None,
    labels: Path | None,
    fmt: str,
    output: Path | None,
    raw_csv: bool,
) -> None:
    """Replay the case's requests in time order through POLICY (a TOML file) and say what it
    would have refused, next to a fixed-window policy of the same average rates (columns
    window_*).

    Every request is charged to the buckets it matches, refused or not, as Kong's Rate Limiting
    Advanced counts refused requests by default; on a gateway that does not charge them, a
    client sending above the rate gets more through, so its refusals here are an upper bound.

    \b
    Example:
      forensics quota replay policy.toml
      forensics quota replay policy.toml --view detectors --chart verdict.svg
      forensics quota replay policy.toml --since 2026-03-02 --until 2026-03-09 --view tenants
      forensics quota replay policy.toml --view requests --format csv -o decisions.csv
      forensics quota replay policy.toml --view scenarios --labels world/labels.csv
    """
    from forensics.case import db
    from forensics.evaluate import read_labels
    from forensics.output import print_result
    from forensics.quota.policy import load_policy
    from forensics.quota.verdict import register_labels, replay_both, view_sql

    if (view == "scenarios") != (labels is not None):
        raise UsageError("--view scenarios and --labels FILE go together")
    policy = load_policy(policy_file)
    labelled = read_labels(labels) if labels is not None else []
    start, end = time_span(since, until)
    con = db.connect(ctx.obj["db"], read_only=True)
    try:
        done = replay_both(con, policy, start, end)
        if labelled:
            register_labels(con, labelled)
        print_result(con, view_sql(view), fmt, output, done.params(), raw_csv=raw_csv)
        if chart is not None:
            from forensics.quota.chart import verdict_svg

            drawn = verdict_svg(con, done.params())
            try:
                chart.write_text(drawn, encoding="utf-8")
            except OSError as e:
                raise InputError(chart, f"cannot write: {e.strerror or e}") from None
    finally:
        con.close()
    sys.stdout.flush()
    if done.requests == 0:  # never a silent all-clear
        print("warning: no request in the period replayed: nothing was tried", file=sys.stderr)
    print(
        f"{done.refused} of {done.requests} requests refused by the policy,"
        f" {done.refused_by_window} by its fixed-window twin (refused requests charged: an upper"
        " bound for a gateway that does not charge them)",
        file=sys.stderr,
    )


@quota.command()
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The policy file to write (TOML).",
)
@click.option(
    "--percentile",
    type=click.FloatRange(50, 100),
    default=99.5,
    show_default=True,
    help="Of each tenant's legitimate demand per period and of the bucket depth it needs.",
)
@click.option(
    "--headroom",
    type=click.FloatRange(1, 100),
    default=1.5,
    show_default=True,
    help="Multiplies both.",
)
@click.option("--since", metavar="TIME", help="Learn from requests from this time on.")
@click.option("--until", metavar="TIME", help="Learn from requests up to this time.")
@click.pass_context
def suggest(
    ctx: click.Context,
    output: Path,
    percentile: float,
    headroom: float,
    since: str | None,
    until: str | None,
) -> None:
    """Fit a policy to each tenant's legitimate history (the requests of current findings about
    volume or cost left out) and write it as a TOML file to review, then try with
    `quota replay`. Beside it, the same policy as gateway configuration to review:
    NAME.kong.yaml (decK: Rate Limiting Advanced, AI Rate Limiting Advanced) and
    NAME.envoy.yaml (the HTTP local_ratelimit filter).

    \b
    Example:
      forensics detect
      forensics quota suggest -o policy.toml
      forensics quota replay policy.toml --view detectors --chart verdict.svg
    """
    from forensics.case import db
    from forensics.quota.gateway import envoy_config, kong_config
    from forensics.quota.suggest import policy_text, providers
    from forensics.quota.suggest import suggest as fit

    start, end = time_span(since, until)
    con = db.connect(ctx.obj["db"], read_only=True)
    try:
        found = fit(con, percentile=percentile, headroom=headroom, since=start, until=end)
        seen = providers(con)
    finally:
        con.close()
    policy = dataclasses.replace(found.policy, path=output.name)
    kong = output.with_name(output.stem + ".kong.yaml")
    envoy = output.with_name(output.stem + ".envoy.yaml")
    for path, text in (
        (output, policy_text(found)),
        (kong, kong_config(policy, seen)),
        (envoy, envoy_config(policy)),
    ):
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as e:
            raise InputError(path, f"cannot write: {e.strerror or e}") from None
    print(
        f"{output}: {len(found.policy.rules)} rules, buckets for {found.tenants} tenants from"
        f" {found.legitimate_requests} legitimate requests; gateway configuration to review in"
        f" {kong} and {envoy}",
        file=sys.stderr,
    )
