"""Running a detector's inline tests: each case's raw events go through the real ingest.

A case is built like real evidence: its `events` are written to a file of the case's `format`
and loaded with `ingest_file` (same parsing, fingerprinting and normalisation as a real log),
its `usage` records (provider usage export pages) to a file of its `usage_format`, its
`revocations`, `retired_keys`, `allowlist` and `known_keys` rows are written as the CSV files a
user would bring, then the detector's SELECT runs with the case's parameters. An event, usage
record or reference row that the ingest quarantines fails the case: a quiet case must not pass
because its events never loaded.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from forensics.case import db
from forensics.case.fingerprints import redact
from forensics.detect import features
from forensics.detect.model import STANDARD_PARAMS, Detector, DetectorTest
from forensics.detect.params import bind, run_sql
from forensics.errors import ForensicsError
from forensics.ingest.formats import FORMATS
from forensics.ingest.pipeline import ingest_file

REVOCATION_COLUMNS = ("credential_id", "revoked_at")
RETIRED_KEY_COLUMNS = ("issuer", "key_id", "retired_at", "reason")
ALLOWLIST_COLUMNS = ("kind", "value", "detectors", "reason", "expires")
KNOWN_KEY_COLUMNS = ("provider", "api_key_id", "label")
# DetectorTest field -> (ingest format of its CSV, the CSV's columns), loaded in this order.
REFERENCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "revocations": ("revocations", REVOCATION_COLUMNS),
    "retired_keys": ("retired-keys", RETIRED_KEY_COLUMNS),
    "allowlist": ("allowlist", ALLOWLIST_COLUMNS),
    "known_keys": ("known-keys", KNOWN_KEY_COLUMNS),
}
_UNSAFE = re.compile(r"[^A-Za-z0-9]+")


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one inline test: `detail` says why, in one line."""

    detector_id: str
    name: str
    passed: bool
    detail: str
    rows: int = 0

    @property
    def label(self) -> str:
        return f"{self.detector_id}::{self.name}"


class CaseFailure(Exception):
    """A case that cannot be evaluated as written (bad events, unknown format, ...)."""


def _text(value: Any) -> str:
    """A YAML scalar as CSV / log text; YAML timestamps become ISO 8601 (naive = UTC)."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        stamp: dt.datetime = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return stamp.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_default(value: Any) -> str:
    if isinstance(value, dt.date):
        return _text(value)
    raise TypeError(f"an event holds a {type(value).__name__}, which JSON cannot carry")


def event_line(event: Any) -> str:
    """One event as a line of the log: strings as they are, anything else as compact JSON."""
    if isinstance(event, str):
        return event
    return json.dumps(event, default=_json_default, ensure_ascii=False, separators=(",", ":"))


def _write_csv(
    path: Path, what: str, columns: Sequence[str], rows: Iterable[dict[str, Any]]
) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(columns)
        for number, row in enumerate(rows, start=1):
            if not isinstance(row, dict):
                raise CaseFailure(f"{what} {number} is not a mapping of {', '.join(columns)}")
            unknown = sorted(set(row) - set(columns))
            if unknown:
                raise CaseFailure(
                    f"{what} {number} has unknown fields {', '.join(map(str, unknown))}"
                    f" (expected {', '.join(columns)})"
                )
            values = []
            for column in columns:
                value = row.get(column)
                if column == "detectors" and isinstance(value, list | tuple):
                    value = ";".join(str(v) for v in value)
                values.append(_text(value))
            out.writerow(values)


def _load(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    fmt: str,
    what: str,
    first_line: int,
    written: int | None = None,
) -> None:
    """Ingest one file of the case; any record left in quarantine fails the case.

    `written` is the number of lines the case wrote, when the format counts records otherwise
    (a usage page holds many records): the message then counts lines ("usage record 2 of 3").
    """
    result = ingest_file(con, path, fmt=fmt)
    if result.status != "loaded":
        raise CaseFailure(f"{what} not loaded: {result.message or result.status}")
    if result.rows_quarantined:
        line, error = con.execute(
            "SELECT line_no, error FROM quarantine WHERE source_id = $s ORDER BY line_no LIMIT 1",
            {"s": result.source_id},
        ).fetchall()[0]
        total = result.rows_read if written is None else written
        raise CaseFailure(
            f"{what} {int(line) - first_line + 1} of {total} quarantined"
            f" ({result.rows_quarantined} in all) as {fmt}: {error}"
        )


def _slug(text: str) -> str:
    return _UNSAFE.sub("-", text).strip("-")[:60] or "case"


def _instant(name: str, value: Any) -> dt.datetime | None:
    """A `since` / `until` test parameter (YAML timestamp or ISO 8601 text; naive = UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise CaseFailure(f"params.{name} {value!r} is not an ISO 8601 time") from None
    if not isinstance(value, dt.datetime):
        raise CaseFailure(f"params.{name} must be a time, not {type(value).__name__}")
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def case_params(detector: Detector, case: DetectorTest) -> dict[str, Any]:
    """The values bound for a case: defaults, its overrides, and its since / until / tenant."""
    given = dict(case.params)
    tenant = given.pop("tenant", None)
    return bind(
        detector,
        {k: v for k, v in given.items() if k not in STANDARD_PARAMS},
        since=_instant("since", given.get("since")),
        until=_instant("until", given.get("until")),
        tenant=None if tenant is None else str(tenant),
    )


def evaluate(detector: Detector, case: DetectorTest, workdir: Path) -> list[dict[str, Any]]:
    """Build a fresh case from the test's inputs and return the detector's rows.

    The case's files live in `workdir` while it runs and are removed afterwards.
    """
    for fmt in (case.format, case.usage_format):
        if fmt not in FORMATS:
            raise CaseFailure(f"unknown format {fmt!r} (known: {', '.join(sorted(FORMATS))})")
    workdir.mkdir(parents=True, exist_ok=True)
    stem = f"{_slug(f'{detector.id}-{case.name}')}-{uuid.uuid4().hex[:12]}"
    database = workdir / f"{stem}.duckdb"
    inputs = {"events": workdir / f"{stem}.events.log", "usage": workdir / f"{stem}.usage.log"}
    inputs.update({kind: workdir / f"{stem}.{kind}.csv" for kind in REFERENCES})
    con = db.connect(database)
    try:
        if case.events:
            inputs["events"].write_text(
                "".join(event_line(e) + "\n" for e in case.events), encoding="utf-8"
            )
            _load(con, inputs["events"], case.format, "event", 1)
        if case.usage:
            inputs["usage"].write_text(
                "".join(event_line(u) + "\n" for u in case.usage), encoding="utf-8"
            )
            _load(con, inputs["usage"], case.usage_format, "usage record", 1, len(case.usage))
        for kind, (fmt, columns) in REFERENCES.items():
            given: tuple[dict[str, Any], ...] = getattr(case, kind)
            if given:
                _write_csv(inputs[kind], f"{kind} row", columns, given)
                _load(con, inputs[kind], fmt, f"{kind} row", 2)
        params = case_params(detector, case)
        features.materialize(con, features.used_by(detector.tables), params)
        return run_sql(con, detector, params)
    finally:
        con.close()
        for path in (database, database.with_name(database.name + ".wal"), *inputs.values()):
            path.unlink(missing_ok=True)


def _verdict(case: DetectorTest, found: list[dict[str, Any]]) -> tuple[bool, str]:
    n = len(found)
    got = f"{n} row" + ("" if n == 1 else "s")
    if n:
        first = found[0]
        got += f" (first: {first.get('principal_id')}: {first.get('summary')})"
    if case.rows is not None:
        if n == case.rows:
            return True, f"{got}, as expected"
        return False, f"expected {case.rows} rows, got {got}"
    if case.expect == "fire":
        return (True, f"fired: {got}") if n else (False, "expected fire, got 0 rows")
    if case.expect == "quiet":
        return (True, "quiet: 0 rows") if not n else (False, f"expected quiet, got {got}")
    raise CaseFailure(f"expect must be fire or quiet (or give rows: N), not {case.expect!r}")


def _one_line(error: Exception) -> str:
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(error, ForensicsError | duckdb.Error | CaseFailure) and first:
        return redact(first)
    return redact(f"{type(error).__name__}: {first}" if first else type(error).__name__)


def run_case(detector: Detector, case: DetectorTest, workdir: Path) -> CaseResult:
    """Run one inline test; never raises for a problem of the detector or the case."""
    try:
        found = evaluate(detector, case, workdir)
        passed, detail = _verdict(case, found)
    except Exception as e:  # a broken case is a failed case, reported in one line
        return CaseResult(detector.id, case.name, False, _one_line(e), 0)
    return CaseResult(detector.id, case.name, passed, detail, len(found))


def run_all(
    detectors: Iterable[Detector],
    workdir: Path,
    *,
    on_result: Callable[[CaseResult], None] | None = None,
) -> list[CaseResult]:
    """Every test of every detector, in order; a detector without tests is a failure."""
    results: list[CaseResult] = []
    for detector in detectors:
        if not detector.tests:
            outcome = CaseResult(detector.id, "(no tests)", False, "the detector has no tests", 0)
            results.append(outcome)
            if on_result is not None:
                on_result(outcome)
        for case in detector.tests:
            outcome = run_case(detector, case, workdir)
            results.append(outcome)
            if on_result is not None:
                on_result(outcome)
    return results
