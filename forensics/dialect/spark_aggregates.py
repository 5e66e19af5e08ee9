"""Spark rewrites of DuckDB's list-building aggregates (see forensics/dialect/spark.py).

Spark's collect_list drops NULLs and keeps no order; DuckDB's list keeps both, and min_by /
max_by with a count return the values of the n smallest (largest) keys in order. Each becomes a
collect_list of structs (never NULL, so no row is lost) with the original FILTER or OVER
clause, sorted by a comparator that follows DuckDB's ORDER BY, then unpacked.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from forensics.dialect.spark_core import RULES, TranspileError, parse, sql, struct


def _is_collect(node: exp.Expr) -> bool:
    return isinstance(node, exp.ArrayAgg) or (
        isinstance(node, exp.ArgMin | exp.ArgMax) and node.args.get("count") is not None
    )


def _filter(node: exp.Filter) -> exp.Expr:
    if not _is_collect(node.this):
        return node
    return _collect(node.this, where=node.expression.this)


def _window(node: exp.Window) -> exp.Expr:
    if not _is_collect(node.this):
        return node
    return _collect(node.this, window=node)


def _bare(node: exp.Expr) -> exp.Expr:
    if not _is_collect(node):
        return node
    return _collect(node)


def _wrapped(
    inner: str, where: exp.Expr | None, window: exp.Window | None, distinct: bool = False
) -> str:
    """The aggregate `inner` (collect_list/collect_set of one argument) with the original
    FILTER or OVER clause."""
    text = inner
    if where is not None:
        text += f" FILTER (WHERE {sql(where)})"
    if window is not None:
        spec = window.copy()
        spec.set("this", exp.Column(this=exp.to_identifier("_placeholder_")))
        over = sql(spec)
        text = over.replace("_placeholder_", text, 1)
    return text


def _collect(
    node: exp.Expr, where: exp.Expr | None = None, window: exp.Window | None = None
) -> exp.Expr:
    if isinstance(node, exp.ArgMin | exp.ArgMax):
        return _top_n(node, where, window)
    if isinstance(node, exp.ArrayAgg):
        return _list(node, where, window)
    return node


def _top_n(
    node: exp.ArgMin | exp.ArgMax, where: exp.Expr | None, window: exp.Window | None
) -> exp.Expr:
    """min_by / max_by with a count: the values of the smallest (largest) keys, in order."""
    key = node.expression
    keys = key.expressions if isinstance(key, exp.Tuple) else [key]
    fields = [(f"k{i}", k) for i, k in enumerate(keys)] + [("v", node.this)]
    cond = where
    if not isinstance(key, exp.Tuple):  # DuckDB skips a NULL key (a tuple is never NULL)
        present = f"({sql(key)}) IS NOT NULL"
        cond = parse(f"({sql(where)}) AND {present}" if where is not None else present)
    inner = _wrapped(f"collect_list({struct(fields)})", cond, window)
    # smallest (largest) first, a NULL member of a tuple key last, as DuckDB orders tuples
    desc = isinstance(node, exp.ArgMax)
    order: list[exp.Expr] = [exp.Ordered(this=k, desc=desc, nulls_first=False) for k in keys]
    ordered = f"array_sort({inner}, {_comparator(order, lambda i: f'.k{i}')})"
    count = sql(node.args["count"])
    return parse(f"slice(transform({ordered}, _s -> _s.v), 1, {count})")


def _list(node: exp.ArrayAgg, where: exp.Expr | None, window: exp.Window | None) -> exp.Expr:
    """list(x), with DISTINCT or ORDER BY: NULLs kept, the order followed."""
    body, order = node.this, []
    if isinstance(body, exp.Order):
        order = list(body.expressions)
        body = body.this
    if isinstance(body, exp.Distinct):
        [value] = body.expressions
        if any(o.this != value for o in order):
            raise TranspileError("list(DISTINCT x ORDER BY y) orders by something other than x")
        # collect_set would drop a NULL, which DuckDB keeps as one value among the others
        values = _wrapped(f"collect_list({struct([('v', value)])})", where, window)
        collected = f"array_distinct(transform({values}, _s -> _s.v))"
        if not order:
            return parse(collected)
        return parse(f"array_sort({collected}, {_comparator(order, lambda _i: '')})")
    fields = [(f"k{i}", o.this) for i, o in enumerate(order)] + [("v", body)]
    collected = _wrapped(f"collect_list({struct(fields)})", where, window)
    if order:
        collected = f"array_sort({collected}, {_comparator(order, lambda i: f'.k{i}')})"
    return parse(f"transform({collected}, _s -> _s.v)")


def _comparator(order: list[exp.Expr], field: Callable[[int], str]) -> str:
    """A Spark array_sort comparator (l, r) for DuckDB's ORDER BY keys `order`: the first key
    that tells two elements apart decides."""
    keys = []
    for i, key in enumerate(order):
        desc = bool(key.args.get("desc"))
        nulls_first = bool(key.args.get("nulls_first"))
        a, b = f"_l{field(i)}", f"_r{field(i)}"
        less, more = ("1", "-1") if desc else ("-1", "1")
        null_l = "-1" if nulls_first else "1"
        null_r = "1" if nulls_first else "-1"
        keys.append(
            f"nullif(CASE WHEN {a} IS NULL AND {b} IS NULL THEN 0"
            f" WHEN {a} IS NULL THEN {null_l} WHEN {b} IS NULL THEN {null_r}"
            f" WHEN {a} < {b} THEN {less} WHEN {a} > {b} THEN {more} ELSE 0 END, 0)"
        )
    return f"(_l, _r) -> coalesce({', '.join(keys)}, 0)"


RULES.update({exp.Filter: _filter, exp.Window: _window, exp.ArrayAgg: _bare})
RULES.update({exp.ArgMin: _bare, exp.ArgMax: _bare})
