"""One detector's SELECT (DuckDB's dialect) in another engine's dialect.

`transpile(sql, dialect, params)` parses the SELECT with sqlglot, replaces each `$name` with its
bound value as a literal (when `params` is given; otherwise the placeholders stay, as the
dialect writes named parameters), rewrites what sqlglot maps wrongly or not at all (spark.py,
for Spark) and generates the dialect with unsupported constructs raising instead of passing
through. Spark is the dialect the pack is run and tested in (forensics/spark/); the others
are written by `forensics export-sql` for teams that schedule the pack themselves, checked
only in that they transpile.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Mapping
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from forensics.dialect import DIALECTS, spark
from forensics.dialect.spark import TranspileError

SCOPE = ("since", "until", "tenant")  # a run's standard filters, bound to every detector
SCOPE_NULL_TYPES = {"since": "TIMESTAMP", "until": "TIMESTAMP"}  # a run's unbounded times

__all__ = ["DIALECTS", "SCOPE", "SCOPE_NULL_TYPES", "TranspileError", "literal", "transpile"]


def literal(value: Any, null_type: str = "STRING") -> exp.Expr:
    """A bound parameter value as a SQL literal; NULL is typed (`null_type`), as engines that
    type an untyped NULL as "void" refuse it in some functions (Spark's array_contains)."""
    if value is None:
        return exp.cast(exp.Null(), exp.DataType.build(null_type))
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        return exp.Literal.number(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TranspileError(f"a parameter is {value}: no literal for it")
        return exp.Literal.number(repr(value))
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        text = when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return exp.cast(exp.Literal.string(text), exp.DataType.build("TIMESTAMP"))
    if isinstance(value, list | tuple):
        return exp.Array(expressions=[literal(v) for v in value])
    raise TranspileError(f"a parameter of type {type(value).__name__} has no literal")


def _bind(
    tree: exp.Expr,
    params: Mapping[str, Any],
    null_types: Mapping[str, str],
    unbound: Collection[str],
) -> exp.Expr:
    missing: set[str] = set()

    def one(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Placeholder) and node.name:
            if node.name not in params:
                if node.name not in unbound:
                    missing.add(node.name)
                return node
            return literal(params[node.name], null_types.get(node.name, "STRING"))
        return node

    bound = tree.transform(one, copy=True)
    if missing:
        raise TranspileError(f"no value bound for ${', $'.join(sorted(missing))}")
    return bound


def transpile(
    sql: str,
    dialect: str,
    params: Mapping[str, Any] | None = None,
    *,
    null_types: Mapping[str, str] | None = None,
    unbound: Collection[str] = (),
    pretty: bool = False,
) -> str:
    """`sql` (one DuckDB SELECT) in `dialect`, with `params` bound as literals (a NULL typed
    by `null_types`, else STRING) and the names in `unbound` left as the dialect's named
    parameters; TranspileError says what does not transpile, or which names are unbound."""
    if dialect not in DIALECTS:
        raise TranspileError(f"unknown dialect {dialect!r} (one of {', '.join(DIALECTS)})")
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
        if params is not None:
            tree = _bind(tree, params, null_types or {}, unbound)
        if dialect == "spark":
            tree = spark.rewrite(tree)
        return tree.sql(dialect=dialect, pretty=pretty, unsupported_level=sqlglot.ErrorLevel.RAISE)
    except TranspileError:
        raise
    except SqlglotError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TranspileError(first) from e
