"""`forensics demo`: the whole path on the bundled sample, reports written to a folder.

It calls the library functions each stage's command calls (and prints what those commands
print), not the Click commands themselves. forensics/cli/__init__.py registers it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    import duckdb

_REPO_SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


@click.command("demo")
@click.option(
    "-o",
    "--output",
    "out",
    default=Path("demo-out"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the case, the weekly report and one incident report per incident.",
)
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A world written by `forensics synth` (default: sample_data/ of this checkout, or a"
    " one-day world written into the output folder when there is none).",
)
@click.pass_context
def demo(ctx: click.Context, out: Path, data: Path | None) -> None:
    """Ingest the sample, run the detectors, score them and write the reports.

    Makes a fresh case OUTPUT/demo.duckdb from the sample world (its logs, usage exports and
    reference files, enriched with its iptoasn table), runs the detector pack, scores the
    findings against the world's labels, then writes the report bundle of the latest week
    (`forensics report bundle --zip`): OUTPUT/index.html linking OUTPUT/weekly.html, a page
    per incident and per principal with findings, and an evidence zip per incident.

    \b
    Example:
      forensics demo
      forensics demo -o /tmp/demo
      forensics synth -o world --days 7 && forensics demo --data world -o world-out
    """
    from forensics.case import db
    from forensics.errors import ExitCode

    out.mkdir(parents=True, exist_ok=True)
    world = data or (_REPO_SAMPLE if (_REPO_SAMPLE / "logs").is_dir() else None)
    if world is None:
        from forensics.synth import SynthConfig, synthesize

        world = out / "world"
        if world.exists():
            shutil.rmtree(world)
        synthesize(world, SynthConfig(days=1, tenants=12, seed=1))
    case = out / "demo.duckdb"
    for stale in (case, case.with_name(case.name + ".wal"), *out.glob("incident-*.html")):
        stale.unlink(missing_ok=True)
    for folder in ("incidents", "principals", "evidence"):
        shutil.rmtree(out / folder, ignore_errors=True)
    con = db.connect(case, create=True)
    try:
        failed = _ingest(con, world)
        errors = _detect(con)
        labels = world / "labels.csv"
        if labels.exists():
            _evaluate(con, labels)
        reports = _reports(con, out)
    finally:
        con.close()
    click.echo(f"{len(reports)} files in {out}/ (open index.html first)", err=True)
    if failed or errors:
        ctx.exit(int(ExitCode.ERROR))


def _ingest(con: duckdb.DuckDBPyConnection, world: Path) -> int:
    from forensics.cli.progress import print_summary, run_ingest
    from forensics.ingest.base import Options
    from forensics.ingest.paths import expand_paths

    asn = [p.resolve() for p in sorted(world.glob("ip2asn*.tsv*"))]
    jobs: list[tuple[list[Path], str | None]] = [(asn, None)] if asn else []
    jobs.append((expand_paths([str(world / "logs")]), None))
    results = run_ingest(con, jobs, Options(), show_progress=False)
    return print_summary(results)


def _detect(con: duckdb.DuckDBPyConnection) -> int:
    from forensics.cli.detect import echo_progress, print_run
    from forensics.detect.load import default_dirs, load_detectors
    from forensics.detect.runner import run_detectors

    detectors, problems = load_detectors(default_dirs([]))
    for problem in problems:
        click.echo(str(problem), err=True)
    result = run_detectors(con, detectors, progress=echo_progress)
    print_run(result, detectors)
    return len(result.errors) + len(problems)


def _evaluate(con: duckdb.DuckDBPyConnection, labels: Path) -> None:
    from forensics.cli.synth import print_evaluation
    from forensics.evaluate import evaluate, read_labels

    print_evaluation(evaluate(con, read_labels(labels)))


def _reports(con: duckdb.DuckDBPyConnection, out: Path) -> list[Path]:
    """The report bundle of the latest week, with evidence zips; the paths written."""
    from forensics.report.bundle import write_bundle
    from forensics.report.weekly import latest_week

    written = write_bundle(con, out, *latest_week(con), evidence=True)
    for path in written:
        click.echo(str(path))
    return written
