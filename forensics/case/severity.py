"""Severity: one ordered definition for Python and SQL alike.

`Severity` orders findings in Python (its value is OCSF's severity_id); the case stores the same
order as the DuckDB ENUM type `severity` (created from this class), so SQL compares, sorts and
takes max() of severities directly: `ORDER BY severity DESC`, `severity >= 'high'`.
"""

from __future__ import annotations

from enum import IntEnum


class Severity(IntEnum):
    """Ordered severities; the value is OCSF's severity_id."""

    info = 1
    low = 2
    medium = 3
    high = 4
    critical = 5

    @classmethod
    def parse(cls, text: str) -> Severity:
        return cls[text.strip().lower()]


NAMES = tuple(s.name for s in sorted(Severity))  # least severe first

ENUM_DDL = "CREATE TYPE severity AS ENUM (" + ", ".join(f"'{n}'" for n in NAMES) + ")"
"""SQL: the `severity` type of the case, least severe first (ENUM order is comparison order)."""
