"""What every Spark rewrite shares (forensics/dialect/spark.py lists the rewrites).

`RULES` maps a DuckDB AST node type to its rewrite; spark.py and spark_aggregates.py fill it.
A rewrite renders its operands, already rewritten, as Spark SQL (`sql`) and parses its result
back (`parse`), so that what it returns is a plain Spark expression to sqlglot's generator.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp, parse_one

from forensics.errors import UsageError

RULES: dict[type[exp.Expr], Callable[..., exp.Expr]] = {}
ANONYMOUS: dict[str, Callable[[exp.Anonymous], exp.Expr]] = {}
"""Rewrites of functions sqlglot does not know, by upper-case name."""


class TranspileError(UsageError):
    """A construct of the SQL that has no rewrite for the target dialect."""


def rewrite(tree: exp.Expr) -> exp.Expr:
    """`tree` (DuckDB's AST) with every registered construct in its Spark form."""
    return tree.transform(_node, copy=True)


def sql(node: exp.Expr) -> str:
    """`node`, rewritten, as Spark SQL."""
    return rewrite(node).sql(dialect="spark")


def parse(text: str) -> exp.Expr:
    return parse_one(text, read="spark")


def call(name: str, *args: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this=name, expressions=list(args))


def constant(node: exp.Expr) -> str | None:
    """The text of a string literal, or of literals joined with ||; else None."""
    if isinstance(node, exp.Literal) and node.is_string:
        return str(node.this)
    if isinstance(node, exp.DPipe):
        left, right = constant(node.this), constant(node.expression)
        return None if left is None or right is None else left + right
    if isinstance(node, exp.Paren):
        return constant(node.this)
    return None


def struct(fields: list[tuple[str, exp.Expr]]) -> str:
    return "named_struct(" + ", ".join(f"'{name}', {sql(e)}" for name, e in fields) + ")"


def _node(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.CTE) and node.args.get("materialized") is not None:
        node.set("materialized", None)  # a hint to DuckDB's planner; Spark has no syntax for it
    rule = RULES.get(type(node))
    if rule is not None:
        return rule(node)
    if isinstance(node, exp.Anonymous):
        named = ANONYMOUS.get(node.name.upper())
        if named is not None:
            return named(node)
    return node
