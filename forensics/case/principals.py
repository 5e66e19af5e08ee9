"""The requests of a principal: one definition in the case (forensics/sql/request_principals.sql).

`request_principals` (a view) lists each request once per principal it belongs to, and
`principal_requests(type, id)` (a table macro) gives one principal's requests. Detector
read-backs, finding and incident costs, both reports and the Python API read these instead of
writing their own condition.

The case also stores the detector pack's shared feature `principal_hours` as a view
(forensics/sql/principal_hours.sql, unscoped; forensics/detect/features.py materialises it
scoped for a run), so detector SQL runs as-is in any DuckDB client.
"""

from __future__ import annotations

import duckdb

from forensics import sql


def install(con: duckdb.DuckDBPyConnection, read_only: bool, *, views: bool = True) -> None:
    """Store the views in the case (TEMP on a read-only connection) and define the macro;
    with `views` False, only the macro (another connection to a case that stores the views)."""
    text = sql.read("request_principals").replace("{kind}", "TEMP" if read_only else "")
    for statement in con.extract_statements(text):
        if views or " TEMP MACRO " in statement.query:
            con.execute(statement)
    if views:
        view = "TEMP VIEW" if read_only else "VIEW"
        con.execute(f"CREATE OR REPLACE {view} principal_hours AS {sql.read('principal_hours')}")
