"""Findings as OCSF Detection Finding objects (class_uid 2004), for SIEMs and data lakes.

Mapping (see docs/detectors.md for the finding columns and FORMATS.md 11.4 for the class):
finding_id -> finding_info.uid, detector_id -> finding_info.analytic, summary -> title,
window -> start_time / end_time, score -> risk_score, principal -> resources[0] (and an IP
Address observable when the principal is an ip), severity -> severity_id, suppressed -> status_id
3 (Suppressed); what OCSF has no place for goes to `unmapped`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Mapping
from typing import Any

from forensics.case.severity import Severity

OCSF_VERSION = "1.5.0"
PRODUCT_NAME = "forensics"
VENDOR_NAME = "forensics"

CLASS_UID = 2004  # Detection Finding
CATEGORY_UID = 2  # Findings
ACTIVITY_CREATE = 1
STATUS_NEW = 1
STATUS_IN_PROGRESS = 2
STATUS_SUPPRESSED = 3
STATUS_RESOLVED = 4
# an investigator's triage status (`forensics triage`) -> OCSF status_id
TRIAGE_STATUS_IDS = {
    "open": STATUS_NEW,
    "investigating": STATUS_IN_PROGRESS,
    "false_positive": STATUS_SUPPRESSED,
    "accepted_risk": STATUS_SUPPRESSED,
    "resolved": STATUS_RESOLVED,
}
ANALYTIC_RULE = 1  # analytic.type_id 1 = Rule
OBSERVABLE_IP = 2  # observable.type_id 2 = IP Address
SEVERITY_UNKNOWN = 0

SEVERITY_CAPTIONS = {
    0: "Unknown",
    1: "Informational",
    2: "Low",
    3: "Medium",
    4: "High",
    5: "Critical",
}
STATUS_CAPTIONS = {
    STATUS_NEW: "New",
    STATUS_IN_PROGRESS: "In Progress",
    STATUS_SUPPRESSED: "Suppressed",
    STATUS_RESOLVED: "Resolved",
}
VALID_SEVERITY_IDS = frozenset({0, 1, 2, 3, 4, 5, 6, 99})

# Attributes class 2004 requires (FORMATS.md 11.4), as dotted paths into the object.
REQUIRED_2004 = (
    "activity_id",
    "category_uid",
    "class_uid",
    "finding_info",
    "finding_info.uid",
    "metadata",
    "metadata.product",
    "metadata.product.name",
    "metadata.product.vendor_name",
    "metadata.product.version",
    "metadata.version",
    "severity_id",
    "time",
    "type_uid",
)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def epoch_ms(value: dt.datetime) -> int:
    """Milliseconds since the epoch, exact (no float); a naive time is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return (value - _EPOCH) // dt.timedelta(milliseconds=1)


def severity_id(severity: object) -> int:
    """OCSF severity_id of a finding severity name; 0 (Unknown) when it is not one."""
    if isinstance(severity, str):
        try:
            return int(Severity.parse(severity))
        except KeyError:
            return SEVERITY_UNKNOWN
    return SEVERITY_UNKNOWN


def _evidence(value: object) -> object:
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _family(detector_id: str) -> str:
    return detector_id.split(".", 1)[0]


def _without_none(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if v is not None}


def to_ocsf(
    finding: Mapping[str, Any], product_version: str, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """One finding row (the `forensics findings` columns) as an OCSF Detection Finding.

    `time` is when the finding was created: the finish time of its run (`run_time` in the
    row) when known, else `now` (default: the current time).
    """
    created = finding.get("run_time") or now or dt.datetime.now(dt.UTC)
    sev = severity_id(finding.get("severity"))
    suppressed = bool(finding.get("suppressed"))
    triaged = str(finding.get("triage_status") or "open")
    status = STATUS_SUPPRESSED if suppressed else TRIAGE_STATUS_IDS.get(triaged, STATUS_NEW)
    detector = str(finding.get("detector_id") or "")
    principal_type = finding.get("principal_type")
    principal_id = finding.get("principal_id")
    tenant = finding.get("tenant_id")
    start = finding.get("window_start")
    end = finding.get("window_end")
    start_ms = epoch_ms(start) if isinstance(start, dt.datetime) else None
    end_ms = epoch_ms(end) if isinstance(end, dt.datetime) else None
    summary = finding.get("summary")
    score = finding.get("score")

    desc = f"{detector} on {principal_type} {principal_id}"
    if tenant:
        desc += f" (tenant {tenant})"
    if summary:
        desc += f": {summary}"
    if suppressed and finding.get("suppressed_by"):
        desc += f" [suppressed: {finding['suppressed_by']}]"

    obj: dict[str, Any] = {
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "type_uid": CLASS_UID * 100 + ACTIVITY_CREATE,
        "type_name": "Detection Finding: Create",
        "time": epoch_ms(created),
        "severity_id": sev,
        "severity": SEVERITY_CAPTIONS[sev],
        "status_id": status,
        "status": STATUS_CAPTIONS[status],
        "status_detail": "allowlisted" if suppressed else triaged,
        "is_alert": not suppressed and status in (STATUS_NEW, STATUS_IN_PROGRESS),
        "metadata": {
            "version": OCSF_VERSION,
            "product": {
                "name": PRODUCT_NAME,
                "vendor_name": VENDOR_NAME,
                "version": product_version,
            },
        },
        "finding_info": _without_none(
            {
                "uid": finding.get("finding_id"),
                "title": summary,
                "desc": desc,
                "analytic": {"uid": detector, "name": detector, "type_id": ANALYTIC_RULE},
                "first_seen_time": start_ms,
                "last_seen_time": end_ms,
                "types": [_family(detector)] if detector else None,
            }
        ),
    }
    if start_ms is not None:
        obj["start_time"] = start_ms
    if end_ms is not None:
        obj["end_time"] = end_ms
    if isinstance(score, int | float):
        obj["risk_score"] = round(score)  # OCSF risk_score is an integer
    if principal_id is not None:
        resource: dict[str, Any] = {"uid": str(principal_id)}
        if principal_type is not None:
            resource["type"] = str(principal_type)
        if tenant:
            resource["labels"] = [f"tenant:{tenant}"]
        obj["resources"] = [resource]
        if principal_type == "ip" and _is_ip(str(principal_id)):
            obj["observables"] = [
                {
                    "name": "resources.uid",
                    "type_id": OBSERVABLE_IP,
                    "type": "IP Address",
                    "value": str(principal_id),
                }
            ]
    unmapped = _without_none(
        {
            "evidence": _evidence(finding.get("evidence")),
            "score": score,
            "est_cost_usd": finding.get("est_cost_usd"),
            "tenant_id": tenant,
            "suppressed_by": finding.get("suppressed_by"),
        }
    )
    if unmapped:
        obj["unmapped"] = unmapped
    return obj


def _lookup(obj: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node or node[part] is None:
            return False, None
        node = node[part]
    return True, node


def validate(obj: Mapping[str, Any]) -> list[str]:
    """Problems with an OCSF Detection Finding: missing required attributes, wrong ids."""
    problems = [
        f"missing required attribute {path}" for path in REQUIRED_2004 if not _lookup(obj, path)[0]
    ]
    if obj.get("class_uid") not in (None, CLASS_UID):
        problems.append(f"class_uid is {obj['class_uid']!r}, not {CLASS_UID}")
    if obj.get("category_uid") not in (None, CATEGORY_UID):
        problems.append(f"category_uid is {obj['category_uid']!r}, not {CATEGORY_UID}")
    activity, type_uid = obj.get("activity_id"), obj.get("type_uid")
    if isinstance(activity, int) and type_uid is not None:
        if type_uid != CLASS_UID * 100 + activity:
            problems.append(f"type_uid is {type_uid!r}, not class_uid * 100 + activity_id")
    sev = obj.get("severity_id")
    if sev is not None and sev not in VALID_SEVERITY_IDS:
        problems.append(f"severity_id {sev!r} is not an OCSF severity")
    time = obj.get("time")
    if time is not None and (not isinstance(time, int) or isinstance(time, bool)):
        problems.append("time is not an integer (epoch milliseconds)")
    return problems
