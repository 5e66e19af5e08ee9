"""Running a detector's inline tests: each case's raw events go through the real ingest.

A case is built like real evidence: its `events` are written to a file of the case's `format`
and loaded with `ingest_file` (same parsing, fingerprinting and normalisation as a real log),
its `usage` records (provider usage export pages) to a file of its `usage_format`, its
`revocations`, `retired_keys`, `allowlist`, `known_keys` and `key_inventory` rows are written as
the CSV files a user would bring, then the detector runs through the same runner as `forensics
detect` (normalisation, severity bounds, allowlist suppression, a stored run) with the case's
parameters.
An event, usage record or reference row that the ingest quarantines fails the case: a quiet case
must not pass because its events never loaded.

What a case expects, counted on the findings the run stored:
  fire         at least one finding that no allowlist row suppressed
  quiet        no finding at all
  suppressed   at least one finding, and every one suppressed by an allowlist row
  rows: N      exactly N findings, suppressed or not
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
from forensics.detect.model import STANDARD_PARAMS, Detector, DetectorTest
from forensics.detect.runner import run_detectors
from forensics.errors import ForensicsError, UsageError, describe_duckdb_error
from forensics.ingest.base import Options
from forensics.ingest.formats import FORMATS
from forensics.ingest.pipeline import ingest_file
from forensics.times import coerce_time

REVOCATION_COLUMNS = ("credential_id", "revoked_at")
RETIRED_KEY_COLUMNS = ("issuer", "key_id", "retired_at", "reason")
ALLOWLIST_COLUMNS = ("kind", "value", "detectors", "reason", "expires")
KNOWN_KEY_COLUMNS = ("provider", "api_key_id", "label")
KEY_INVENTORY_COLUMNS = (
    "credential_id",
    "owner_tenant",
    "created_at",
    "expires_at",
    "scopes",
    "label",
)
# DetectorTest field -> (ingest format of its CSV, the CSV's columns), loaded in this order.
REFERENCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "revocations": ("revocations", REVOCATION_COLUMNS),
    "retired_keys": ("retired-keys", RETIRED_KEY_COLUMNS),
    "allowlist": ("allowlist", ALLOWLIST_COLUMNS),
    "known_keys": ("known-keys", KNOWN_KEY_COLUMNS),
    "key_inventory": ("key-inventory", KEY_INVENTORY_COLUMNS),
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
    # any quarantined record fails the case below, with its line: the file is kept whatever
    # share of it was quarantined, so that the message can name that line
    result = ingest_file(con, path, fmt=fmt, options=Options(max_quarantine_share=1))
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
    try:
        return coerce_time(value, f"params.{name}")
    except UsageError as e:
        raise CaseFailure(str(e)) from None


def case_scope(
    case: DetectorTest,
) -> tuple[dict[str, Any], dt.datetime | None, dt.datetime | None, str | None]:
    """A case's parameter overrides and its since / until / tenant filters."""
    given = dict(case.params)
    tenant = given.pop("tenant", None)
    return (
        {k: v for k, v in given.items() if k not in STANDARD_PARAMS},
        _instant("since", given.get("since")),
        _instant("until", given.get("until")),
        None if tenant is None else str(tenant),
    )


def evaluate(detector: Detector, case: DetectorTest, workdir: Path) -> list[dict[str, Any]]:
    """Build a fresh case from the test's inputs, run the detector, return its findings.

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
        overrides, since, until, tenant = case_scope(case)
        run = run_detectors(
            con,
            [detector],
            overrides={detector.id: overrides},
            since=since,
            until=until,
            tenant=tenant,
        )
        if detector.id in run.errors:
            raise CaseFailure(run.errors[detector.id])
        cursor = con.execute(
            "SELECT f.*, coalesce((SELECT list(request_id ORDER BY request_id)"
            " FROM finding_requests r WHERE r.finding_id = f.finding_id), []) AS sample_request_ids"
            " FROM findings f WHERE f.run_id = $run ORDER BY f.window_start, f.finding_id",
            {"run": run.run_id},
        )
        names = [d[0] for d in cursor.description or []]
        found = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        for finding in found:
            finding["evidence"] = json.loads(finding["evidence"])
        return found
    finally:
        con.close()
        for path in (database, database.with_name(database.name + ".wal"), *inputs.values()):
            path.unlink(missing_ok=True)


def _verdict(case: DetectorTest, found: list[dict[str, Any]]) -> tuple[bool, str]:
    n = len(found)
    hidden = sum(1 for f in found if f.get("suppressed"))
    got = f"{n} row" + ("" if n == 1 else "s")
    if hidden:
        got += f", {hidden} suppressed"
    if n:
        first = found[0]
        got += f" (first: {first.get('principal_id')}: {first.get('summary')})"
    if case.rows is not None:
        if n == case.rows:
            return True, f"{got}, as expected"
        return False, f"expected {case.rows} rows, got {got}"
    if case.expect == "fire":
        if n - hidden:
            return True, f"fired: {got}"
        return False, f"expected fire, got {got}" if n else "expected fire, got 0 rows"
    if case.expect == "quiet":
        return (True, "quiet: 0 rows") if not n else (False, f"expected quiet, got {got}")
    if case.expect == "suppressed":
        if n and hidden == n:
            return True, f"suppressed: {got}"
        return False, f"expected every finding suppressed, got {got}"
    raise CaseFailure(
        f"expect must be fire, quiet or suppressed (or give rows: N), not {case.expect!r}"
    )


def _one_line(error: Exception) -> str:
    if isinstance(error, duckdb.Error):
        return redact(describe_duckdb_error(error))
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(error, ForensicsError | CaseFailure) and first:
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
