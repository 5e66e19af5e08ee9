"""Detectors as data: the frozen `Detector` parsed from a `.sql` + `.yml` pair.

Loading and validation (discovery in `queries/` and `--rules` folders, every problem as
`path:line: message`) live in `forensics.detect.load`; binding the SQL against an empty case
lives in `forensics.detect.check`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensics.case.severity import Severity

__all__ = ["Detector", "DetectorTest", "Param", "Problem", "Severity"]


PRINCIPAL_TYPES = ("tenant", "credential", "user", "ip", "asn", "cidr", "provider_key")
PARAM_TYPES = ("integer", "number", "string", "boolean", "timestamp", "interval")
STANDARD_PARAMS = ("since", "until", "tenant")


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    type: str = "string"
    description: str = ""


@dataclass(frozen=True)
class DetectorTest:
    """One inline test: raw events of `format`, provider usage records of `usage_format`,
    reference rows, and what must happen."""

    name: str
    expect: str | None = None  # fire | quiet
    rows: int | None = None
    format: str = "kong"
    events: tuple[Any, ...] = ()
    usage_format: str = "openai-usage"
    usage: tuple[Any, ...] = ()  # provider usage export records (pages), one per line
    revocations: tuple[dict[str, Any], ...] = ()
    retired_keys: tuple[dict[str, Any], ...] = ()
    allowlist: tuple[dict[str, Any], ...] = ()
    known_keys: tuple[dict[str, Any], ...] = ()
    key_inventory: tuple[dict[str, Any], ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    line: int = 0  # where the test starts in the YAML


@dataclass(frozen=True)
class Detector:
    id: str
    title: str
    description: str
    severity: Severity
    principal_type: str
    sql: str
    sql_path: Path
    yml_path: Path
    severity_bounds: tuple[Severity, Severity] | None = None
    tables: tuple[str, ...] = ()
    attack: tuple[str, ...] = ()
    params: tuple[Param, ...] = ()
    references: tuple[str, ...] = ()
    # detector ids (globs) whose findings in the same incident this detector's finding explains:
    # the incident's primary diagnosis is a finding no other one explains (incidents.sql)
    explains: tuple[str, ...] = ()
    status: str = "stable"
    runbook: str = ""
    tests: tuple[DetectorTest, ...] = ()

    @property
    def family(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def version(self) -> str:
        """SHA-256 over the two files: what a run records."""
        digest = hashlib.sha256()
        digest.update(self.sql_path.read_bytes())
        digest.update(b"\0")
        digest.update(self.yml_path.read_bytes())
        return digest.hexdigest()

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}


@dataclass(frozen=True)
class Problem:
    """A validation problem, printed as `path:line: message`."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


# --- Loading and validation -----------------------------------------------------------------
