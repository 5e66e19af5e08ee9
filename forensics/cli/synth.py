"""`forensics synth` and `forensics evaluate`: labelled synthetic worlds, and scoring a run.

cli.py registers them: `cli.add_command(synth)`, `cli.add_command(evaluate)`.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from forensics.case.severity import NAMES as SEVERITY_NAMES
from forensics.errors import ExitCode

if TYPE_CHECKING:
    from forensics.evaluate import Evaluation


@click.command("synth")
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the world into (created; existing files of the same names replaced).",
)
@click.option("--days", type=click.IntRange(1, 60), default=7, show_default=True)
@click.option(
    "--tenants",
    type=click.IntRange(0, 2000),
    default=50,
    show_default=True,
    help="Ordinary tenants; each scenario and look-alike adds its own.",
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--start",
    metavar="DATE",
    default="2026-11-16",
    show_default=True,
    help="First day (UTC) of the world.",
)
@click.option(
    "--compress",
    type=click.Choice(["none", "gzip", "zstd"]),
    default="none",
    show_default=True,
    help="Compress the big logs (Kong, LiteLLM, nginx) as .gz or .zst.",
)
@click.option(
    "--hard",
    is_flag=True,
    help="Stealthier variants of some scenarios: low-and-slow scraping, probing spread over"
    " days, a reseller growing slowly, a small audience, a thinned-out proxy pool.",
)
def synth(
    out: Path, days: int, tenants: int, seed: int, start: str, compress: str, hard: bool
) -> None:
    """Write a labelled synthetic world: a gateway's logs, provider usage, reference files.

    Kong lines with AI Proxy payloads, LiteLLM spend rows, an nginx access log, OpenAI and
    Anthropic usage pages, revocations, retired signing keys and an iptoasn table, with one abuse
    scenario per detector (parameters drawn from the seed) among ordinary tenants and their
    legitimate look-alikes. labels.csv says which detector must find which principal when;
    scenarios that need more days than the world has are left out and named on stderr.

    \b
    Example:
      forensics synth -o world --days 7 --tenants 50 --seed 3
      forensics synth -o hard-world --hard --seed 3
      forensics --db world.duckdb ingest --asn-db world/ip2asn-v4.tsv world/logs
      forensics --db world.duckdb detect
      forensics --db world.duckdb evaluate world/labels.csv --min-recall 1 --max-false-positives 0
    """
    from forensics.synth import SynthConfig, synthesize
    from forensics.times import coerce_time

    first = coerce_time(start, "--start")
    suffix = {"none": "", "gzip": ".gz", "zstd": ".zst"}[compress]
    config = SynthConfig(
        days=days, tenants=tenants, seed=seed, start=first, compress=suffix, hard=hard
    )
    summary = synthesize(out, config)
    for name, count in summary.files.items():
        click.echo(f"{count:>9,}  {out / name}")
    click.echo(
        f"{summary.tenants} tenants, {len(summary.labels)} labelled scenarios, seed {seed}",
        err=True,
    )
    if summary.skipped:
        click.echo(f"left out (the world is too short): {', '.join(summary.skipped)}", err=True)


def _json_value(value: object) -> str:
    """Times as ISO 8601; anything else JSON has no type for as text."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def print_evaluation(result: Evaluation) -> None:
    """The scores as a table on stdout, then each miss and false positive on a line."""
    from forensics.output import write_table

    rows = []
    for s in [*result.scores.values(), result.total]:
        rows.append(
            (
                s.detector_id,
                s.labels,
                s.found,
                s.missed,
                s.true_findings,
                s.false_findings,
                s.incidental,
                _ratio(s.precision),
                _ratio(s.recall),
            )
        )
    names = ["detector", "labels", "found", "missed", "true", "false", "incidental"]
    write_table([*names, "precision", "recall"], rows, sys.stdout)
    for lb in result.missed:
        click.echo(
            f"missed: {lb.detector_id} on {lb.principal_type} {lb.principal_id}"
            f" ({lb.scenario}, labels line {lb.line}): {lb.note}"
        )
    for f in result.false_positives:
        click.echo(
            f"false positive: {f['detector_id']} {f['severity']} on {f['principal_type']}"
            f" {f['principal_id']}: {f['summary']}"
        )


@click.command("evaluate")
@click.argument("labels", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--run", "run_id", metavar="RUN_ID", help="Score this run (default: the latest).")
@click.option(
    "--min-severity",
    type=click.Choice(SEVERITY_NAMES),
    default="medium",
    show_default=True,
    help="Findings below this severity are never counted as false positives.",
)
@click.option(
    "--slack-hours",
    type=click.FloatRange(0),
    default=24.0,
    show_default=True,
    help="How far outside a label's window a finding may lie and still match it.",
)
@click.option("--min-recall", type=click.FloatRange(0, 1), help="Fail below this recall.")
@click.option("--min-precision", type=click.FloatRange(0, 1), help="Fail below this precision.")
@click.option(
    "--max-false-positives", type=click.IntRange(0), help="Fail above this many false positives."
)
@click.option(
    "--per-detector",
    is_flag=True,
    help="Apply --min-recall and --min-precision to every detector, not only to the total.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.pass_context
def evaluate(
    ctx: click.Context,
    labels: Path,
    run_id: str | None,
    min_severity: str,
    slack_hours: float,
    min_recall: float | None,
    min_precision: float | None,
    max_false_positives: int | None,
    per_detector: bool,
    fmt: str,
) -> None:
    """Score a detection run against labels: true and false positives, misses, precision, recall.

    A label is found when a finding of its detector names its principal within its window
    (give or take --slack-hours). A finding at --min-severity or above is a false positive when
    no label covers its principal (a labelled credential's tenant is covered too). Exits 3 when a
    threshold given by a flag is not met.

    \b
    Example:
      forensics evaluate world/labels.csv
      forensics evaluate world/labels.csv --min-recall 1 --max-false-positives 0 --per-detector
      forensics evaluate world/labels.csv --format json > scores.json
    """
    from forensics.case import db
    from forensics.evaluate import evaluate as score
    from forensics.evaluate import read_labels

    wanted = read_labels(labels)
    con = db.connect(ctx.obj["db"], read_only=True, create=False)
    try:
        result = score(
            con,
            wanted,
            run_id=run_id,
            min_severity=min_severity,
            slack=dt.timedelta(hours=slack_hours),
        )
    finally:
        con.close()
    if fmt == "json":
        doc = {
            "run_id": result.run_id,
            "min_severity": result.min_severity,
            "detectors": [
                {
                    "detector_id": s.detector_id,
                    "labels": s.labels,
                    "found": s.found,
                    "missed": s.missed,
                    "true_findings": s.true_findings,
                    "false_findings": s.false_findings,
                    "incidental": s.incidental,
                    "precision": s.precision,
                    "recall": s.recall,
                }
                for s in [*result.scores.values(), result.total]
            ],
            "missed": [
                {
                    "line": lb.line,
                    "scenario": lb.scenario,
                    "detector_id": lb.detector_id,
                    "principal_type": lb.principal_type,
                    "principal_id": lb.principal_id,
                    "window_start": lb.window_start,
                    "window_end": lb.window_end,
                    "note": lb.note,
                }
                for lb in result.missed
            ],
            "false_positives": [
                {k: v for k, v in f.items() if k not in ("serious", "is_true", "is_covered")}
                for f in result.false_positives
            ],
        }
        click.echo(json.dumps(doc, indent=2, default=_json_value))
    else:
        print_evaluation(result)
    failures = _failures(result, min_recall, min_precision, max_false_positives, per_detector)
    for failure in failures:
        click.echo(f"below threshold: {failure}", err=True)
    if failures:
        ctx.exit(ExitCode.FINDINGS)


def _failures(
    result: Evaluation,
    min_recall: float | None,
    min_precision: float | None,
    max_false_positives: int | None,
    per_detector: bool,
) -> list[str]:
    scores = [*result.scores.values()] if per_detector else []
    out = []
    for s in [*scores, result.total]:
        if min_recall is not None and s.recall is not None and s.recall < min_recall:
            out.append(f"{s.detector_id} recall {s.recall:.0%} < {min_recall:.0%}")
        if min_precision is not None and s.precision is not None and s.precision < min_precision:
            out.append(f"{s.detector_id} precision {s.precision:.0%} < {min_precision:.0%}")
    total = result.total.false_findings
    if max_false_positives is not None and total > max_false_positives:
        out.append(f"{total} false positives > {max_false_positives}")
    return out
