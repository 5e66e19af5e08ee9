"""Report bundles: every page of a period, linked, in one folder; evidence bundles to hand over.

`write_bundle` writes, for [start, end):

    index.html                      links every page below, with the period's incidents
    weekly.html                     the weekly report, its incidents linked to their pages
    incidents/incident-<id>-<principal>.html   one page per incident of the period
    principals/principal-<type>-<id>.html      one page per principal with findings in it
    evidence/incident-<id>-<principal>.zip     with `evidence`: what a recipient needs

Every page links back to the index (and the weekly page); all of them stay self-contained and
open from disk with no network. An evidence zip holds the incident's page (HTML and Markdown),
its requests (the union of its findings' principals' requests inside its window, the set its
cost is computed from) as Parquet and CSV, its findings, triage history, the runs that found
them with their parameters, the case's sources with their SHA-256, and `manifest.json` plus
`SHA256SUMS` (`sha256sum -c SHA256SUMS` checks every file).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from forensics import sql
from forensics._version import __version__
from forensics.case import triage
from forensics.case.principals import findings_by_principal
from forensics.case.rows import Row, query_rows
from forensics.ingest.decompress import sha256_file
from forensics.output import write_result
from forensics.report.incident import IncidentReport, case_id, incident_report
from forensics.report.principal import principal_report
from forensics.report.render import render_incident, render_index, render_weekly
from forensics.report.weekly import weekly_report


@dataclass
class BundleIndex:
    """What index.html shows."""

    header: Row
    incidents: list[Row] = field(default_factory=list)
    principals: list[Row] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _slug(text: str, limit: int = 60) -> str:
    """A file-name part from a log string: safe characters only, never a path, and a short
    hash so that two ids that clean up alike stay apart."""
    clean = re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-.")[:limit] or "x"
    return f"{clean}-{hashlib.sha256(text.encode()).hexdigest()[:6]}"


def incident_file(incident: Row) -> str:
    who = _slug(f"{incident['principal_type']}-{incident['principal_id']}")
    return f"incident-{str(incident['incident_id'])[:8]}-{who}"


def principal_file(ptype: str, pid: str) -> str:
    return f"principal-{_slug(f'{ptype}-{pid}')}"


def write_bundle(
    con: duckdb.DuckDBPyConnection,
    out: Path,
    start: dt.datetime,
    end: dt.datetime,
    *,
    evidence: bool = False,
) -> list[Path]:
    """Write the bundle of [start, end) into `out` (see the module docstring); the paths
    written, index first."""
    weekly = weekly_report(con, start, end)
    ids = [str(i["incident_id"]) for i in weekly.incidents]
    incidents = query_rows(
        con,
        "SELECT i.*, t.triage_status FROM incidents i"
        " LEFT JOIN incident_triage t USING (incident_id)"
        " WHERE list_contains($ids, i.incident_id) ORDER BY i.severity DESC, i.score DESC,"
        " i.first_seen, i.incident_id",
        {"ids": ids},
    )
    for i in incidents:
        i["href"] = f"incidents/{incident_file(i)}.html"
    principals = query_rows(
        con,
        f"SELECT * FROM ({findings_by_principal()})"
        " ORDER BY worst DESC, findings DESC, principal_type, principal_id",
        {"since": start, "until": end},
    )
    for p in principals:
        p["href"] = f"principals/{principal_file(p['principal_type'], p['principal_id'])}.html"
    incident_links = {str(i["incident_id"]): str(i["href"]) for i in incidents}
    principal_links = {
        f"{p['principal_type']}:{p['principal_id']}": str(p["href"]) for p in principals
    }

    written: list[Path] = []
    weekly.links = {"index": "index.html", "incidents": incident_links}
    render_weekly(weekly, out / "weekly.html", "html")
    written.append(out / "weekly.html")
    up = {"index": "../index.html", "weekly": "../weekly.html"}
    for incident in incidents:
        page = incident_report(con, incident)
        page.links = {**up, "principals": {k: f"../{v}" for k, v in principal_links.items()}}
        path = out / str(incident["href"])
        render_incident(page, path, "html")
        written.append(path)
        if evidence:
            written.append(_evidence(con, incident, page, out / "evidence"))
            incident["evidence"] = f"evidence/{incident_file(incident)}.zip"
    for p in principals:
        page = principal_report(con, f"{p['principal_type']}:{p['principal_id']}")
        page.links = {**up, "incidents": {k: f"../{v}" for k, v in incident_links.items()}}
        path = out / str(p["href"])
        render_incident(page, path, "html")
        written.append(path)
    index = BundleIndex(
        header={
            "title": weekly.header["title"],
            "start": start,
            "end": end,
            "generated_at": dt.datetime.now(dt.UTC),
            "tool_version": __version__,
            "case_id": case_id(con),
        },
        incidents=incidents,
        principals=principals,
        warnings=weekly.warnings,
    )
    render_index(index, out / "index.html")
    return [out / "index.html", *written]


def _evidence(
    con: duckdb.DuckDBPyConnection, incident: Row, page: IncidentReport, folder: Path
) -> Path:
    """One incident's evidence zip (see the module docstring)."""
    params = {
        "ids": list(incident["finding_ids"] or []),
        "start": incident["first_seen"],
        "end": incident["last_seen"],
    }
    requests = (
        "SELECT * EXCLUDE (principal_type, principal_id, request_row)"
        f" FROM ({sql.read('finding_requests_between')}) ORDER BY source_id, line_no, request_row"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        alone = dataclasses.replace(page, links={})  # the zip holds no other page to link
        render_incident(alone, root / "incident.html", "html")
        render_incident(alone, root / "incident.md", "md")
        for fmt in ("parquet", "csv"):  # CSV cells that look like formulas are neutralised
            write_result(con, requests, fmt, io.StringIO(), root / f"requests.{fmt}", params)
        _json(root / "findings.json", query_rows(
            con, "SELECT * FROM findings WHERE list_contains($ids, finding_id)"
            " ORDER BY window_start, finding_id", params,
        ))  # fmt: skip
        _json(root / "triage.json", triage.about_incident(con, incident))
        _json(root / "runs.json", query_rows(
            con, "SELECT * FROM runs WHERE run_id IN (SELECT run_id FROM findings"
            " WHERE list_contains($ids, finding_id)) ORDER BY started_at", params,
        ))  # fmt: skip
        _json(root / "sources.json", query_rows(
            con, "SELECT source_id, path, sha256, content_sha256, bytes, format, kind,"
            " rows_read, rows_loaded, rows_quarantined, ingested_at FROM sources"
            " ORDER BY source_id", {},
        ))  # fmt: skip
        files = sorted(p for p in root.iterdir() if p.is_file())
        sums = [(p.name, sha256_file(p), p.stat().st_size) for p in files]
        _json(root / "manifest.json", {
            "incident_id": incident["incident_id"],
            "principal": f"{incident['principal_type']}:{incident['principal_id']}",
            "window": [incident["first_seen"], incident["last_seen"]],
            "case_id": case_id(con),
            "generated_at": dt.datetime.now(dt.UTC),
            "tool": f"forensics {__version__}",
            "files": [{"name": n, "sha256": h, "bytes": b} for n, h, b in sums],
        })  # fmt: skip
        (root / "SHA256SUMS").write_text(
            "".join(f"{h}  {n}\n" for n, h, _ in sums), encoding="utf-8"
        )
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{incident_file(incident)}.zip"
        partial = target.with_name(f".{target.name}.partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
            for p in sorted(root.iterdir()):
                z.write(p, f"{incident_file(incident)}/{p.name}")
        partial.replace(target)
    return target


def _json(path: Path, value: Any) -> None:
    def plain(v: Any) -> str:
        return v.isoformat() if isinstance(v, dt.datetime | dt.date) else str(v)

    path.write_text(
        json.dumps(value, indent=2, default=plain, ensure_ascii=False) + "\n", encoding="utf-8"
    )
