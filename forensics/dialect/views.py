"""The case's views a detector may read, in another dialect.

Each is the case's own definition transpiled, not a second one:

  request_subjects   forensics/sql/request_principals.sql, reading `requests` instead of
                     `request_rows`, so without `request_row` (the case's own numbering of
                     its requests, which no detector reads)
  principal_hours    forensics/sql/principal_hours.sql, scoped to the run like DuckDB's
  usage_vs_gateway   forensics/case/reconcile.py

`depends(view)` reads from each definition the tables it needs, so that a run on Spark
registers them even when no detector names them.
"""

from __future__ import annotations

import re
from typing import Any

import sqlglot
from sqlglot import exp

from forensics import sql
from forensics.case.reconcile import USAGE_VS_GATEWAY
from forensics.detect import features
from forensics.dialect.transpile import SCOPE, SCOPE_NULL_TYPES, transpile

ORDER = ("request_subjects", "principal_hours", "usage_vs_gateway")  # each after what it reads


def _request_subjects() -> str:
    """The SELECT of the case's request_subjects view over `requests` (DuckDB SQL)."""
    text = sql.read("request_principals")
    found = re.search(r"VIEW request_subjects AS\s+(SELECT.*?);", text, re.S)
    if found is None:
        raise LookupError("request_principals.sql no longer defines request_subjects")
    select = sqlglot.parse_one(found.group(1), read="duckdb")
    assert isinstance(select, exp.Select)  # noqa: S101 - our own file, parsed as a SELECT
    plain = select.transform(
        lambda node: (
            exp.to_table("requests")
            if isinstance(node, exp.Table) and node.name == "request_rows"
            else node
        )
    )
    return plain.sql(dialect="duckdb")


def view_sql(
    name: str, dialect: str, scope: dict[str, Any] | None = None, *, pretty: bool = False
) -> str:
    """View `name` in `dialect`, bound to a run's `scope` (since, until, tenant), or with
    those left as the dialect's parameters (None)."""
    if name == "request_subjects":
        return transpile(_request_subjects(), dialect, {}, pretty=pretty)
    if name == "principal_hours":
        return transpile(
            features.scoped(name),
            dialect,
            scope if scope is not None else {},
            null_types=SCOPE_NULL_TYPES,
            unbound=() if scope is not None else SCOPE,
            pretty=pretty,
        )
    if name == "usage_vs_gateway":
        return transpile(USAGE_VS_GATEWAY, dialect, {}, pretty=pretty)
    raise KeyError(name)


def depends(view: str) -> set[str]:
    """The tables and views `view`'s definition reads (its own CTEs left out)."""
    tree = sqlglot.parse_one(view_sql(view, "spark"), read="spark")
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    return {t.name for t in tree.find_all(exp.Table) if t.name and t.name not in ctes}


def needed(tables: set[str]) -> tuple[list[str], set[str]]:
    """The views to build (in order) and the tables they and `tables` read."""
    views: set[str] = set()
    base: set[str] = set()
    pending = list(tables)
    while pending:
        name = pending.pop()
        if name in ORDER and name not in views:
            views.add(name)
            pending.extend(depends(name))
        elif name not in ORDER:
            base.add(name)
    return [v for v in ORDER if v in views], base
