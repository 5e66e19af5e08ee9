"""`forensics detectors test`: run every detector's inline tests through the real ingest."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from forensics.errors import ExitCode

if TYPE_CHECKING:
    from forensics.detect.inline_tests import CaseResult


def _line(result: CaseResult) -> str:
    return f"{'PASS' if result.passed else 'FAIL'}  {result.label}  {result.detail}"


@click.command("test")
@click.option(
    "--rules",
    "rules",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of your own detectors, laid out <family>/<name>.sql + .yml (repeatable).",
)
def detectors_test(rules: tuple[Path, ...]) -> None:
    """Run every detector's inline tests through the real ingest.

    Each case's events are ingested into a fresh case with its format's adapter, its
    revocations and allowlist rows are loaded, the SELECT runs with the case's params, and the
    row count is checked against `expect` / `rows`. An event the ingest quarantines fails
    the case.

    One line per case on stdout (PASS or FAIL, detector::case, why), then the counts. Exits 1
    when a case fails or a detector could not be loaded (its problems go to stderr).

    \b
    Example:
      forensics detectors test
      forensics detectors test --rules my_rules/
    """
    from forensics.detect.inline_tests import run_all
    from forensics.detect.load import default_dirs, load_detectors

    detectors, problems = load_detectors(default_dirs(list(rules)))
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        click.echo(
            f"{len(problems)} problem(s): those detectors were not tested;"
            " see `forensics detectors check`",
            err=True,
        )
    with tempfile.TemporaryDirectory(prefix="forensics-detector-tests-") as tmp:
        results = run_all(detectors, Path(tmp), on_result=lambda r: click.echo(_line(r)))
    failed = sum(1 for r in results if not r.passed)
    click.echo(f"{len(results) - failed} passed, {failed} failed")
    if failed or problems:
        click.get_current_context().exit(int(ExitCode.ERROR))
