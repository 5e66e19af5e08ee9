"""Checking detectors against a case: each SELECT bound (not run) against the schema of a fresh,
empty case, so `forensics detectors check` finds a misspelt column or table before any
evidence is loaded, and each call a detector may not make (files, environment, sequences,
side effects: `forensics.detect.guard`) is refused. Problems are `path:line: message`, like
those of loading. The empty case is sandboxed like the runner's connection, so binding a
hostile SELECT cannot read the machine either.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forensics.detect.load import load_detectors
from forensics.detect.model import Detector, Problem
from forensics.errors import duckdb_error

if TYPE_CHECKING:
    import duckdb


@contextmanager
def scratch_case() -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh, empty, sandboxed case in a temporary folder: the schema detectors are bound
    against."""
    from forensics.case import db

    with tempfile.TemporaryDirectory(prefix="forensics-check-") as tmp:
        con = db.connect(Path(tmp) / "check.duckdb")
        try:
            db.sandbox(con)
            yield con
        finally:
            con.close()


def check_sql(
    detectors: list[Detector], con: duckdb.DuckDBPyConnection, dialect: str | None = "spark"
) -> list[Problem]:
    """Bind each detector's SELECT against the case's schema (no data is read).

    A parser or binder error becomes a problem at the line DuckDB names, with DuckDB's
    suggestions; so do missing contract columns and `tables:` entries the case does not have.
    A call the guard refuses is a problem at its line, and the SELECT is then not bound.
    A SELECT that binds is then transpiled to `dialect` (None: not), with its default
    parameters: one that does not transpile is a problem too (the pack must run on Spark).
    """
    import duckdb

    from forensics.detect.guard import refusals
    from forensics.detect.params import CONTRACT_COLUMNS, bind

    known = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() UNION SELECT view_name FROM duckdb_views()"
        ).fetchall()
    }
    problems: list[Problem] = []
    for d in detectors:
        for table in d.tables:
            if table not in known:
                problems.append(
                    Problem(
                        d.yml_path,
                        _field_line(d.yml_path, "tables"),
                        f"tables: no table {table!r} in a case",
                    )
                )
        refused = refusals(con, d.sql)
        problems.extend(Problem(d.sql_path, line, message) for line, message in refused)
        if refused:
            continue
        params = bind(d)
        try:
            described = con.execute("DESCRIBE " + d.sql, params).fetchall()
        except duckdb.Error as e:
            error = duckdb_error(e)
            problems.append(Problem(d.sql_path, error.line or 1, error.one_line))
            continue
        names = {row[0] for row in described}
        missing = [col for col in CONTRACT_COLUMNS if col not in names]
        if missing:
            problems.append(
                Problem(d.sql_path, 1, f"the SELECT lacks contract columns: {', '.join(missing)}")
            )
        if dialect is not None:
            problems.extend(_transpiles(d, params, dialect))
    return problems


def _transpiles(detector: Detector, params: dict[str, Any], dialect: str) -> list[Problem]:
    from forensics.dialect.transpile import SCOPE_NULL_TYPES, TranspileError, transpile

    try:
        transpile(detector.sql, dialect, params, null_types=SCOPE_NULL_TYPES)
    except TranspileError as e:
        return [Problem(detector.sql_path, 1, f"does not transpile to {dialect}: {e}")]
    return []


def _field_line(path: Path, name: str) -> int:
    found = re.search(rf"^{name}\s*:", path.read_text(encoding="utf-8"), re.MULTILINE)
    return path.read_text(encoding="utf-8").count("\n", 0, found.start()) + 1 if found else 1


def validate(
    dirs: list[Path], dialect: str | None = "spark"
) -> tuple[list[Detector], list[Problem]]:
    """Load every detector, bind the valid ones against an empty case and transpile them to
    `dialect`: `detectors check`."""
    detectors, problems = load_detectors(dirs)
    if detectors:
        with scratch_case() as con:
            problems.extend(check_sql(detectors, con, dialect))
    problems.sort(key=lambda p: (str(p.path), p.line))
    bad = {p.path.with_suffix("") for p in problems}
    return [d for d in detectors if d.sql_path.with_suffix("") not in bad], problems
