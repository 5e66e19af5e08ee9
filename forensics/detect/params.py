"""Running one detector's SELECT: named parameters bound, never formatted into the text."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import duckdb

from forensics.detect.model import Detector

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
CONTRACT_COLUMNS = (
    "principal_type",
    "principal_id",
    "tenant_id",
    "window_start",
    "window_end",
    "score",
    "summary",
    "evidence",
    "sample_request_ids",
)
OPTIONAL_COLUMNS = ("est_cost_usd", "severity")


def used_params(sql: str) -> set[str]:
    """Names of the `$parameters` the SQL mentions (DuckDB refuses unused ones)."""
    return set(_PARAM.findall(sql))


def bind(
    detector: Detector,
    overrides: dict[str, Any] | None = None,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    tenant: str | None = None,
) -> dict[str, Any]:
    """The parameter values for one run: defaults, overrides, the standard filters."""
    values: dict[str, Any] = detector.defaults()
    values.update(overrides or {})
    values.update({"since": since, "until": until, "tenant": tenant})
    return {k: v for k, v in values.items() if k in used_params(detector.sql)}


def run_sql(
    con: duckdb.DuckDBPyConnection, detector: Detector, params: dict[str, Any]
) -> list[dict[str, Any]]:
    """Execute the detector; its rows as dicts with the contract columns (extra ones kept)."""
    cursor = con.execute(detector.sql, params)
    names = [d[0] for d in cursor.description or []]
    missing = [c for c in CONTRACT_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"the SELECT lacks contract columns: {', '.join(missing)}")
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
