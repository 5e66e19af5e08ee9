"""`forensics detectors`: list, show and check the detectors (shipped and `--rules` folders)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from forensics.dialect import DIALECTS

if TYPE_CHECKING:
    from forensics.detect.model import Detector, Problem

F = TypeVar("F", bound=Callable[..., Any])


def rules_options(f: F) -> F:
    """`--rules DIR` (repeatable) and `--no-shipped`: which folders detectors come from."""
    f = click.option(
        "--shipped/--no-shipped",
        default=True,
        show_default=True,
        help="Include the detectors shipped with forensics.",
    )(f)
    f = click.option(
        "--rules",
        "rules",
        multiple=True,
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help="Folder of your own detectors, laid out <family>/<name>.sql + .yml (repeatable).",
    )(f)
    return f


def _dirs(rules: tuple[Path, ...], shipped: bool) -> list[Path]:
    from forensics.detect.load import default_dirs

    return default_dirs(list(rules)) if shipped else list(rules)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _summary(problems: list[Problem]) -> str:
    affected = {p.path.with_suffix("") for p in problems}
    return f"{_plural(len(problems), 'problem')} in {_plural(len(affected), 'detector')}"


def _load(rules: tuple[Path, ...], shipped: bool) -> list[Detector]:
    """The valid detectors; a count of problems (if any) goes to stderr."""
    from forensics.detect.load import load_detectors

    detectors, problems = load_detectors(_dirs(rules, shipped))
    if problems:
        click.echo(f"{_summary(problems)} left out; see `forensics detectors check`", err=True)
    return detectors


@click.group()
def detectors() -> None:
    """The detectors: SQL files with a YAML sidecar, shipped in queries/ or your --rules.

    \b
    Example:
      forensics detectors list
      forensics detectors show credential.use_after_revocation
      forensics detectors check --rules my_rules/
    """


@detectors.command("list")
@rules_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
def list_cmd(rules: tuple[Path, ...], shipped: bool, fmt: str) -> None:
    """Every detector: id, severity, principal type, status and title.

    \b
    Example:
      forensics detectors list
      forensics detectors list --rules my_rules/ --format json
    """
    from forensics.output import write_table

    found = _load(rules, shipped)
    if fmt == "json":
        records = [
            {
                "id": d.id,
                "title": d.title,
                "severity": d.severity.name,
                "severity_bounds": [s.name for s in d.severity_bounds]
                if d.severity_bounds
                else None,
                "principal_type": d.principal_type,
                "status": d.status,
                "tables": list(d.tables),
                "attack": list(d.attack),
                "params": d.defaults(),
                "sql_path": str(d.sql_path),
                "yml_path": str(d.yml_path),
            }
            for d in found
        ]
        click.echo(json.dumps(records, indent=2, default=str))
        return
    write_table(
        ["id", "severity", "principal", "status", "title"],
        [(d.id, d.severity.name, d.principal_type, d.status, d.title) for d in found],
        sys.stdout,
    )


@detectors.command()
@click.argument("detector_id", metavar="ID")
@rules_options
def show(detector_id: str, rules: tuple[Path, ...], shipped: bool) -> None:
    """One detector: what it finds, its parameters and defaults, the runbook, then its SQL.

    \b
    Example:
      forensics detectors show credential.use_after_revocation
      forensics detectors show mine.odd_hours --rules my_rules/
    """
    import difflib

    from forensics.errors import UsageError
    from forensics.output import write_table

    found = {d.id: d for d in _load(rules, shipped)}
    d = found.get(detector_id)
    if d is None:
        close = difflib.get_close_matches(detector_id, list(found), n=1)
        raise UsageError(
            f"no detector {detector_id!r}" + (f" (did you mean {close[0]!r}?)" if close else ""),
            hint="`forensics detectors list` shows the ids; add --rules DIR for your own",
        )
    bounds = ""
    if d.severity_bounds is not None:
        low, high = d.severity_bounds
        bounds = f" (may move within {low.name}..{high.name})"
    meta = [
        ("id", d.id),
        ("title", d.title),
        ("severity", d.severity.name + bounds),
        ("principal", d.principal_type),
        ("status", d.status),
        ("tables", ", ".join(d.tables)),
        ("attack", ", ".join(d.attack)),
        ("references", ", ".join(d.references)),
        ("tests", f"{len(d.tests)} ({', '.join(t.name for t in d.tests)})"),
        ("files", f"{d.sql_path}, {d.yml_path}"),
    ]
    out = sys.stdout
    for key, value in meta:
        if value:
            out.write(f"{key + ':':12}{value}\n")
    out.write(f"\n{d.description}\n")
    out.write("\nParameters\n\n")
    if d.params:
        write_table(
            ["name", "type", "default", "description"],
            [(p.name, p.type, p.default, p.description) for p in d.params],
            out,
        )
    else:
        out.write("(none besides $since, $until and $tenant)\n")
    if d.runbook:
        out.write(f"\nRunbook\n\n{d.runbook.rstrip()}\n")
    out.write(f"\nSQL ({d.sql_path.name})\n\n{d.sql.rstrip()}\n")


@detectors.command()
@rules_options
@click.option(
    "--dialect",
    type=click.Choice([*DIALECTS, "none"]),
    default="spark",
    show_default=True,
    help="Also transpile each SELECT to this dialect; one that does not is a problem.",
)
@click.pass_context
def check(ctx: click.Context, rules: tuple[Path, ...], shipped: bool, dialect: str) -> None:
    """Validate every detector: files, YAML fields, tests, the SQL bound against a case and
    transpiled to Spark SQL (`forensics detect --engine spark`).

    Problems go to stdout as `path:line: message`, the count to stderr; exit 1 if any.
    No case database is needed: the SQL is bound against an empty temporary one.

    \b
    Example:
      forensics detectors check
      forensics detectors check --rules my_rules/ --no-shipped
      forensics detectors check --rules my_rules/ --dialect none   # DuckDB only
    """
    from forensics.detect.check import validate

    found, problems = validate(_dirs(rules, shipped), None if dialect == "none" else dialect)
    for problem in problems:
        click.echo(str(problem))
    if problems:
        click.echo(_summary(problems), err=True)
        ctx.exit(1)
    click.echo(f"{_plural(len(found), 'detector')}, no problems", err=True)
