"""`forensics demo`: the whole path on the bundled sample, reports written to a folder.

forensics/cli/__init__.py registers it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import click

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
    findings against the world's labels, then writes OUTPUT/weekly.html and one
    OUTPUT/incident-NN-<principal>.html per incident, and prints their paths.

    \b
    Example:
      forensics demo
      forensics demo -o /tmp/demo
      forensics synth -o world --days 7 && forensics demo --data world -o world-out
    """
    from forensics.cli.detect import detect
    from forensics.cli.ingest import ingest
    from forensics.cli.report import incident, weekly
    from forensics.cli.synth import evaluate

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
    ctx.obj["db"] = case
    asn = sorted(world.glob("ip2asn*.tsv*"))
    ctx.invoke(ingest, paths=(str(world / "logs"),), asn_dbs=tuple(asn), quiet=True)
    ctx.invoke(detect)
    labels = world / "labels.csv"
    if labels.exists():
        ctx.invoke(evaluate, labels=labels)
    reports = [out / "weekly.html"]
    ctx.invoke(weekly, output=reports[0])
    from forensics.case import db

    con = db.connect(case, read_only=True)
    try:
        found = con.execute(
            "SELECT incident_id, principal_type, principal_id FROM incidents"
            " ORDER BY first_seen, incident_id"
        ).fetchall()
    finally:
        con.close()
    for n, (incident_id, ptype, pid) in enumerate(found, start=1):
        name = re.sub(r"[^A-Za-z0-9.-]+", "-", f"{ptype}-{pid}")[:60].strip("-")
        path = out / f"incident-{n:02d}-{name}.html"
        ctx.invoke(incident, incident_id=incident_id, output=path)
        reports.append(path)
    click.echo(f"{len(reports)} reports in {out}/ (open weekly.html first)", err=True)
