"""`forensics detect`: run the detectors on the case and store what they find."""

from __future__ import annotations

import datetime as dt
import fnmatch
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from forensics.case.severity import NAMES as SEVERITY_NAMES

if TYPE_CHECKING:
    import duckdb

    from forensics.detect.model import Detector, Param
    from forensics.detect.runner import RunResult


@click.command("detect")
@click.option(
    "--detector",
    "patterns",
    multiple=True,
    metavar="GLOB",
    help="Only detectors whose id matches, e.g. 'credential.*' (repeatable; default all).",
)
@click.option("--since", metavar="TIME", help="Only evidence from this time on (ISO 8601, UTC).")
@click.option("--until", metavar="TIME", help="Only evidence before this time (ISO 8601, UTC).")
@click.option("--tenant", metavar="TENANT", help="Only this tenant.")
@click.option(
    "--param",
    "param_args",
    multiple=True,
    metavar="ID.NAME=VALUE",
    help="Set a detector parameter, e.g. credential.use_after_revocation.grace_minutes=10"
    " (repeatable; beats --config).",
)
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML file: `params: {detector_id: {name: value}}` and optional `detectors: [globs]`.",
)
@click.option(
    "--rules",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of your own detectors, laid out <family>/<name>.sql + .yml (repeatable).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=300,  # forensics.detect.runner.DEFAULT_TIMEOUT (not imported: --help stays fast)
    show_default=True,
    metavar="SECONDS",
    help="Stop a detector still running after SECONDS; it is recorded as failed and the run"
    " goes on.",
)
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "spark"]),
    default="duckdb",
    show_default=True,
    help="Where the detectors run: DuckDB on the case, or Apache Spark over the case's"
    " requests and usage written as Parquet (needs `pip install 'forensics[spark]'`).",
)
@click.option(
    "--spark-master",
    metavar="URL",
    help="With --engine spark: the cluster to join (default: local[2], in this process).",
)
@click.option(
    "--spark-conf",
    "spark_conf",
    multiple=True,
    metavar="KEY=VALUE",
    help="With --engine spark: a Spark setting, e.g. spark.driver.memory=8g (repeatable; beats"
    " ours, see forensics/spark/session.py).",
)
@click.option(
    "--spark-data",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="With --engine spark on a case keeping its rows: where to write the Parquet the"
    " executors read (a directory they can all reach; default: a temporary directory), removed"
    " after the run. A case in a lake needs none: Spark reads the lake's files, which the"
    " executors must reach at the same path.",
)
@click.option(
    "--fail-on",
    type=click.Choice(SEVERITY_NAMES, case_sensitive=False),
    help="Exit 3 when the run stores an unsuppressed finding at this severity or above, 5 when"
    " its scope holds no request (for cron).",
)
@click.pass_context
def detect(
    ctx: click.Context,
    patterns: tuple[str, ...],
    since: str | None,
    until: str | None,
    tenant: str | None,
    param_args: tuple[str, ...],
    config: Path | None,
    rules: tuple[Path, ...],
    timeout: float,
    engine: str,
    spark_master: str | None,
    spark_conf: tuple[str, ...],
    spark_data: Path | None,
    fail_on: str | None,
) -> None:
    """Run the detectors on the case: findings, allowlist suppression and incidents are stored.

    Progress goes to stderr, one line per detector; stdout gets a summary table. A run
    supersedes the earlier findings of each detector it ran over its scope (--since, --until,
    --tenant), whatever their parameters: they stay in the case with their run (`forensics
    runs`, `forensics findings --run ID`) and are no longer counted. Detectors read only the
    case: one that calls for a file, the environment or a sequence, or runs past --timeout,
    fails alone. Exit code 1 if a detector failed or a selected detector's files have
    problems (both listed on stderr with their file); findings alone are not a failure. An
    empty case, or a scope with no request, is a warning on stderr (exit 5 with --fail-on).

    \b
    Example:
      forensics detect
      forensics detect --detector 'credential.*' --since 2026-01-01 --tenant acme
      forensics detect --param credential.use_after_revocation.grace_minutes=10
      forensics detect --config detect.yml --rules my_rules/
      forensics detect --engine spark --spark-master spark://head:7077 --spark-data /shared/tmp
      forensics detect --engine spark --spark-conf spark.driver.memory=8g
    """
    from forensics.case import db
    from forensics.detect.load import default_dirs, load_detectors
    from forensics.detect.runner import run_detectors
    from forensics.errors import ExitCode
    from forensics.times import parse_time

    settings = _read_config(config) if config is not None else {}
    detectors, problems = load_detectors(default_dirs(list(rules)))
    for problem in problems:
        click.echo(str(problem), err=True)
    globs = list(patterns) or list(settings.get("detectors") or []) or ["*"]
    selected = [d for d in detectors if _matches(d.id, globs)]
    refused = [p for p in problems if _matches(f"{p.path.parent.name}.{p.path.stem}", globs)]
    if not selected and not refused:
        from forensics.errors import UsageError

        raise UsageError(
            f"no detector matches {' '.join(globs)}",
            hint="`forensics detectors list` shows the ids; --detector takes globs like"
            " 'credential.*'",
        )
    if refused:
        click.echo(
            f"{len(refused)} problem(s) in detector files: those detectors do not run", err=True
        )
    broken = {f"{p.path.parent.name}.{p.path.stem}" for p in problems}
    overrides = _overrides(detectors, settings.get("params") or {}, param_args, config, broken)
    since_at = parse_time(since, "--since")
    until_at = parse_time(until, "--until")
    if engine != "spark" and (spark_master or spark_data or spark_conf):
        from forensics.errors import UsageError

        raise UsageError("--spark-master, --spark-conf and --spark-data need --engine spark")
    conf = _spark_conf(spark_conf)

    con = db.connect(ctx.obj["db"], create=False)
    try:
        empty = _empty_scope(con, since_at, until_at, tenant)
        if empty:
            click.echo(
                f"warning: {empty}: the run finds nothing because it reads nothing", err=True
            )
        with ExitStack() as stack:
            evaluator = None
            if engine == "spark":
                from forensics.spark.evaluation import spark_evaluator

                evaluator = stack.enter_context(
                    spark_evaluator(
                        con,
                        selected,
                        master=spark_master,
                        conf=conf,
                        data_dir=spark_data,
                        quiet=not ctx.obj.get("debug"),
                    )
                )
            result = run_detectors(
                con,
                selected,
                overrides={k: v for k, v in overrides.items() if v},
                since=since_at,
                until=until_at,
                tenant=tenant,
                progress=echo_progress,
                timeout=timeout,
                evaluator=evaluator,
            )
    finally:
        con.close()
    print_run(result, selected)
    if result.errors or refused:
        ctx.exit(int(ExitCode.ERROR))
    if fail_on is not None:
        hits = _run_findings_at_least(ctx.obj["db"], result.run_id, fail_on)
        if hits:
            click.echo(f"{hits} unsuppressed findings at or above {fail_on}", err=True)
            ctx.exit(int(ExitCode.FINDINGS))
        if empty:
            click.echo(f"nothing was analysed (--fail-on {fail_on}): exit 5", err=True)
            ctx.exit(int(ExitCode.NOT_ANALYSED))


def _spark_conf(pairs: tuple[str, ...]) -> dict[str, str]:
    """--spark-conf KEY=VALUE pairs; a pair without `=` or with a key outside spark.* is a usage
    error that names the key's shape, not the value."""
    from forensics.errors import UsageError

    conf: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().startswith("spark."):
            raise UsageError(
                f"--spark-conf takes KEY=VALUE with a spark.* key (got {len(pair)} characters"
                f"{' without =' if not sep else ''})",
                hint="e.g. --spark-conf spark.driver.memory=8g",
            )
        conf[key.strip()] = value.strip()
    return conf


def _empty_scope(
    con: duckdb.DuckDBPyConnection,
    since: dt.datetime | None,
    until: dt.datetime | None,
    tenant: str | None,
) -> str | None:
    """Why the run's scope holds no request (None: it holds some)."""
    total = con.execute("SELECT count(*) FROM requests").fetchall()[0][0]
    usage = con.execute("SELECT count(*) FROM usage").fetchall()[0][0]
    if not total and not usage:
        return "the case has no requests and no provider usage"
    found = con.execute(
        "SELECT count(*) FROM requests WHERE ($since IS NULL OR ts >= $since)"
        " AND ($until IS NULL OR ts < $until) AND ($tenant IS NULL OR tenant_id = $tenant)",
        {"since": since, "until": until, "tenant": tenant},
    ).fetchall()[0][0]
    if found or (since is None and until is None and tenant is None):
        return None
    return "no request in the scope (--since / --until / --tenant)"


def _run_findings_at_least(db_path: Path, run_id: str, severity: str) -> int:
    from forensics.case import db
    from forensics.case.severity import Severity
    from forensics.findings.export import Filters, count_findings_at_least

    con = db.connect(db_path, read_only=True, create=False)
    try:
        return count_findings_at_least(con, Filters(run=run_id), Severity.parse(severity))
    finally:
        con.close()


def detect_period(db_path: Path, since: dt.datetime, until: dt.datetime) -> bool:
    """Run the shipped pack over [since, until) with progress on stderr (for `report weekly
    --detect`); True when a detector failed (each named on stderr)."""
    from forensics.case import db
    from forensics.detect.load import default_dirs, load_detectors
    from forensics.detect.runner import run_detectors

    detectors, problems = load_detectors(default_dirs([]))
    for problem in problems:
        click.echo(str(problem), err=True)
    con = db.connect(db_path, create=False)
    try:
        result = run_detectors(con, detectors, since=since, until=until, progress=echo_progress)
    finally:
        con.close()
    total = sum(result.findings.values())
    click.echo(
        f"run {result.run_id}: {total} findings from {len(detectors)} detectors over"
        f" {since:%Y-%m-%d %H:%M} – {until:%Y-%m-%d %H:%M} UTC, {len(result.errors)} failed",
        err=True,
    )
    return bool(result.errors or problems)


def echo_progress(detector_id: str, seconds: float, rows: int, error: str | None) -> None:
    """One line on stderr per detector as it finishes."""
    outcome = f"ERROR {error}" if error else f"{rows} finding{'' if rows == 1 else 's'}"
    click.echo(f"{detector_id:<40} {seconds:7.2f}s  {outcome}", err=True)


def print_run(result: RunResult, selected: list[Detector]) -> None:
    """The run's summary: a table per detector on stdout, one line of totals on stderr."""
    from forensics.output import write_table

    if result.features_seconds:
        click.echo(f"{'(shared features)':<40} {result.features_seconds:7.2f}s", err=True)
    table = [
        (
            d.id,
            result.findings.get(d.id, 0),
            result.suppressed.get(d.id, 0),
            f"{result.seconds.get(d.id, 0.0):.2f}",
            "error" if d.id in result.errors else "ok",
        )
        for d in selected
    ]
    write_table(["detector", "findings", "suppressed", "seconds", "status"], table, sys.stdout)
    total = sum(result.findings.values())
    hidden = sum(result.suppressed.values())
    click.echo(
        f"run {result.run_id}: {total} findings ({hidden} suppressed) from {len(selected)}"
        f" detectors, {len(result.errors)} failed; {result.superseded} earlier findings"
        " superseded",
        err=True,
    )


def _matches(detector_id: str, globs: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(detector_id, g) for g in globs)


def _read_config(path: Path) -> dict[str, Any]:
    """The --config file: `params: {id: {name: value}}`, `detectors: [globs]`, both optional."""
    import yaml

    from forensics.detect.yamlcheck import YamlRefused, load_bounded
    from forensics.errors import InputError

    try:
        loaded = load_bounded(path.read_text(encoding="utf-8"))
    except YamlRefused as e:
        raise InputError(path, f"YAML refused: {e}", line=e.line) from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InputError(
            path, f"not valid YAML: {getattr(e, 'problem', None) or e}", line=line
        ) from e
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, f"cannot read: {e}") from e
    data = loaded[1] if loaded is not None else None
    if data is None:
        return {}
    if not isinstance(data, dict) or set(data) - {"params", "detectors"}:
        raise InputError(path, "expected a mapping with `params` and/or `detectors`")
    params = data.get("params") or {}
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise InputError(path, "`params` must map detector ids to {name: value} mappings")
    globs = data.get("detectors") or []
    if not isinstance(globs, list) or not all(isinstance(g, str) for g in globs):
        raise InputError(path, "`detectors` must be a list of id globs")
    return {"params": params, "detectors": globs}


def _overrides(
    detectors: list[Detector],
    config_params: dict[str, dict[str, Any]],
    param_args: tuple[str, ...],
    config: Path | None,
    broken: set[str],
) -> dict[str, dict[str, Any]]:
    """Detector id -> parameter -> value: the config file first, then --param over it.

    Config entries for detectors whose files have problems (`broken`) are skipped: those
    detectors do not run, and their problems are already on stderr.
    """
    import yaml

    from forensics.errors import InputError, UsageError

    by_id = {d.id: d for d in detectors}
    overrides: dict[str, dict[str, Any]] = {d.id: {} for d in detectors}
    for detector_id, values in config_params.items():
        detector = by_id.get(str(detector_id))
        if detector is None and str(detector_id) in broken:
            continue
        if detector is None:
            raise InputError(str(config), f"params: no detector {detector_id!r}")
        for name, value in values.items():
            param = _param(detector, str(name))
            if param is None:
                raise InputError(
                    str(config),
                    f"params: {detector_id} has no parameter {name!r}{_known(detector)}",
                )
            overrides[detector.id][param.name] = _coerce(param, value, f"{config}: {detector_id}")
    for arg in param_args:
        key, sep, text = arg.partition("=")
        detector_id, dot, name = key.strip().rpartition(".")
        if not sep or not dot:
            raise UsageError(f"--param {arg!r}: expected ID.NAME=VALUE")
        detector = by_id.get(detector_id)
        if detector is None:
            raise UsageError(
                f"--param {arg!r}: no detector {detector_id!r}",
                hint="`forensics detectors list` shows the ids",
            )
        param = _param(detector, name)
        if param is None:
            raise UsageError(
                f"--param {arg!r}: {detector_id} has no parameter {name!r}{_known(detector)}"
            )
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        overrides[detector.id][param.name] = _coerce(param, value, f"--param {arg!r}")
    return overrides


def _param(detector: Detector, name: str) -> Param | None:
    return next((p for p in detector.params if p.name == name), None)


def _known(detector: Detector) -> str:
    names = [p.name for p in detector.params]
    return f" (it has: {', '.join(names)})" if names else " (it has none)"


def _coerce(param: Param, value: Any, where: str) -> Any:
    """`value` as the parameter's declared type, or a UsageError naming `where`."""
    from forensics.errors import UsageError
    from forensics.times import coerce_time

    if value is None:
        return None
    kind = param.type
    ok: Any = None
    if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
        ok = value
    elif kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        ok = float(value)
    elif kind == "boolean" and isinstance(value, bool):
        ok = value
    elif kind in ("string", "interval") and isinstance(value, str | int | float):
        ok = str(value)
    elif kind == "timestamp" and isinstance(value, dt.datetime | dt.date | str):
        ok = coerce_time(value, where)
    if ok is None:
        raise UsageError(f"{where}: {param.name} must be of type {kind}, got {value!r}")
    return ok
