"""Incidents: findings on one principal close in time, grouped into one story.

The grouping, scoring and costing are one statement, forensics/sql/incidents.sql (its header
says the rules). Only current findings count: an allowlisted finding is kept for audit but
raises no incident, and a finding a later run superseded is kept with its run but no longer
counted. An incident's cost is the cost of the union of its principals' requests in its window,
computed here once and stored: `incidents`, the weekly report and the incident page print it.

`incidents` is derived data: it is deleted and rebuilt from the current findings on every run.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from forensics import sql
from forensics.case.principals import present_types

DEFAULT_GAP = "6 hours"
EXTRA_DETECTOR_BONUS = 5  # score added per distinct detector beyond the first


def build_incidents(con: duckdb.DuckDBPyConnection, gap: str | dt.timedelta = DEFAULT_GAP) -> int:
    """Delete and rebuild `incidents` from `findings`; returns how many there are.

    It runs two statements and opens no transaction: call it inside the caller's transaction
    (the runner does) so readers never see the table empty.
    """
    con.execute("DELETE FROM incidents")
    text = sql.read("incidents").replace("/*types*/", present_types(con, "findings"))
    rows = con.execute(text, {"gap": gap, "bonus": EXTRA_DETECTOR_BONUS})
    return int(rows.fetchall()[0][0])
