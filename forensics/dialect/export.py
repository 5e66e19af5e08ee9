"""The pack written in another dialect, for teams that schedule it on their own engine.

`export_pack(detectors, dialect, out)` writes, for each detector, `<out>/<family>/<name>.sql`:
its SELECT transpiled with its default parameters as literals and the scope filters left as
the dialect's named parameters (`:since`, `:until`, `:tenant` in Spark SQL; NULL means
unbounded), under a header naming the detector, its version and what each parameter was.
The views detectors read are written to `<out>/_views/<name>.sql` the same way: create them
over tables named as the case names them (`requests`, `usage`, the reference tables; the lake's
layout in docs/lake.md) before running a detector. A detector that does not transpile gets no
file and is returned with the reason.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from forensics.detect.model import Detector
from forensics.detect.params import bind
from forensics.dialect.transpile import SCOPE, TranspileError, transpile
from forensics.dialect.views import ORDER, view_sql


def _header(lines: list[str]) -> str:
    return "".join(f"-- {line}\n" for line in lines)


def _bound(detector: Detector) -> dict[str, Any]:
    values = bind(detector)
    return {k: v for k, v in values.items() if k not in SCOPE}


def _shown(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.datetime) else json.dumps(value)


def export_pack(detectors: list[Detector], dialect: str, out: Path) -> dict[str, str]:
    """Write the pack (see the module docstring); the detectors left out, with the reason."""
    failed: dict[str, str] = {}
    for name in ORDER:
        try:
            text = view_sql(name, dialect, pretty=True)
        except TranspileError as e:
            failed[f"view {name}"] = str(e)
            continue
        target = out / "_views" / f"{name}.sql"
        target.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"view {name}, {dialect} SQL (forensics export-sql)"]
        target.write_text(_header(lines) + text + "\n", encoding="utf-8")
    for d in detectors:
        params = _bound(d)
        try:
            text = transpile(d.sql, dialect, params, unbound=SCOPE, pretty=True)
        except TranspileError as e:
            failed[d.id] = str(e)
            continue
        family, _, name = d.id.partition(".")
        target = out / family / f"{name}.sql"
        target.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            f"{d.id} {d.version}: {d.title}",
            f"{dialect} SQL written by forensics export-sql from {d.sql_path.name}",
            "scope parameters: since, until (timestamps), tenant; NULL leaves one unbounded",
            *(f"{k} = {_shown(v)}" for k, v in sorted(params.items())),
        ]
        target.write_text(_header(lines) + text + "\n", encoding="utf-8")
    return failed
