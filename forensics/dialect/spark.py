"""DuckDB constructs of the detector pack rewritten into Spark SQL that computes the same thing.

sqlglot maps most of DuckDB to Spark by name; these are the places where a name maps but the
meaning does not, or nothing maps at all:

  min_by(x, key, n) / max_by(x, key, n)   the n values of x with the smallest (largest) key:
                                          collect_list of (key, x) structs, array_sort by a
                                          comparator (a NULL member of a tuple key sorts last,
                                          where Spark's struct order puts it first), slice
  list(x [ORDER BY k ...])                Spark's collect_list drops NULLs and has no order:
                                          collect_list of structs, sorted by a comparator that
                                          follows each key's direction and NULLS FIRST / LAST
  list(DISTINCT x [ORDER BY x])           array_distinct of the same (a NULL is one value, as in
                                          DuckDB; collect_set would drop it), sorted the same way
  time_bucket(width, ts[, offset])        microsecond arithmetic from DuckDB's origin
                                          (2000-01-03, a Monday) with pmod, exact for any width
  epoch(ts), epoch(a - b), epoch_us(ts)   unix_micros: Spark's unix_timestamp drops fractions
  to_hours / to_minutes / to_seconds /    make_dt_interval
  to_days
  histogram(x)                            map_from_entries of each distinct value's count
  quantile_cont(x, p)                     percentile(x, p)
  format('{} {:016x} {:,}', ...)          concat of the pieces (fmt's {} has no Spark twin); a
                                          NULL argument makes it NULL in both, and a double
                                          past 1e16 prints as Spark does (1.0E20, not 1e+20)
  hash(...)                               xxhash64 (Spark's hash is 32 bits: keys collide)
  count(DISTINCT (a, b))                  count(DISTINCT named_struct(...)): a row with a NULL
                                          member still counts, as in DuckDB
  []                                      a list of text: Spark types an empty ARRAY() as void
  list_distinct(l)                        NULLs dropped, as DuckDB does
  list_inner_product(a, b)                aggregate over zip_with
  list_sum(l)                             aggregate over its non-NULL members, from the first
  timezone(zone, ts)                      from_utc_timestamp (the session time zone is UTC)
  list_has_any(a, b)                      arrays_overlap (sqlglot writes &&, not Spark's)
  regexp_full_match(s, p)                 s RLIKE '^(?:p)$'
  l[a:b]                                  slice(l, a, b - a + 1) (both 1-based, inclusive)
  s GLOB 'pattern'                        RLIKE of the pattern as a regular expression
  strftime(ts, '%Y-%m-%d %H:%M UTC')      date_format with the literal text quoted

Each rewrite renders its operands (already rewritten) as Spark SQL and parses the result back,
so a rewritten node is a plain Spark expression to sqlglot's generator. Anything else of
DuckDB's that Spark lacks fails to transpile with sqlglot's own message.
"""

from __future__ import annotations

import re

from sqlglot import exp

from forensics.dialect import spark_aggregates  # noqa: F401 - registers the aggregates' rewrites
from forensics.dialect.spark_core import (
    ANONYMOUS,
    RULES,
    TranspileError,
    call,
    constant,
    parse,
    rewrite,
    sql,
    struct,
)

__all__ = ["TranspileError", "rewrite"]

ORIGIN_US = 946_857_600_000_000  # 2000-01-03 00:00:00 UTC, in microseconds since the epoch
UNIT_US = {
    "MICROSECOND": 1,
    "MILLISECOND": 1_000,
    "SECOND": 1_000_000,
    "MINUTE": 60_000_000,
    "HOUR": 3_600_000_000,
    "DAY": 86_400_000_000,
    "WEEK": 7 * 86_400_000_000,
}
_TO_UNIT = {"TO_SECONDS": "SECOND", "TO_MINUTES": "MINUTE", "TO_HOURS": "HOUR", "TO_DAYS": "DAY"}
_STRFTIME = {"%Y": "yyyy", "%m": "MM", "%d": "dd", "%H": "HH", "%M": "mm", "%S": "ss"}


# -- time -------------------------------------------------------------------------------------


def _micros(width: exp.Expr) -> str:
    """An interval expression as Spark SQL for its length in microseconds."""
    if isinstance(width, exp.Interval):
        unit = width.args.get("unit")
        name = (unit.name if unit is not None else "").upper().rstrip("S")
        if name not in UNIT_US:
            raise TranspileError(f"an interval of {name or 'no unit'} has no fixed length")
        return f"(CAST({sql(width.this)} AS BIGINT) * {UNIT_US[name]})"
    if isinstance(width, exp.ToDays):
        return f"(CAST({sql(width.this)} AS BIGINT) * {UNIT_US['DAY']})"
    if isinstance(width, exp.Anonymous) and width.name.upper() in _TO_UNIT:
        [amount] = width.expressions
        return f"(CAST({sql(amount)} AS BIGINT) * {UNIT_US[_TO_UNIT[width.name.upper()]]})"
    if isinstance(width, exp.Paren):
        return _micros(width.this)
    raise TranspileError(
        f"time_bucket width {width.sql('duckdb')} is not an interval of fixed length"
    )


def _time_bucket(node: exp.DateBin) -> exp.Expr:
    width, ts = node.this, node.expression
    offset = node.args.get("unit")
    origin = str(ORIGIN_US)
    if isinstance(offset, exp.Expr) and not isinstance(offset, exp.Var):
        origin = f"({ORIGIN_US} + {_micros(offset)})"
    w = _micros(width)
    a = f"(unix_micros({sql(ts)}) - {origin})"
    return parse(f"timestamp_micros({a} - pmod({a}, {w}) + {origin})")


def _epoch(node: exp.TimeToUnix) -> exp.Expr:
    inner = node.this
    while isinstance(inner, exp.Paren):
        inner = inner.this
    if isinstance(inner, exp.Sub):  # epoch of an interval: the difference of two instants
        return parse(
            f"((unix_micros({sql(inner.this)}) - unix_micros({sql(inner.expression)})) / 1000000.0)"
        )
    return parse(f"(unix_micros({sql(inner)}) / 1000000.0)")


def _interval(unit: str, amount: exp.Expr) -> exp.Expr:
    n = f"CAST({sql(amount)} AS INT)"
    args = {"DAY": f"{n}, 0, 0, 0", "HOUR": f"0, {n}, 0, 0", "MINUTE": f"0, 0, {n}, 0"}
    return parse(f"make_dt_interval({args.get(unit, f'0, 0, 0, {sql(amount)}')})")


def _to_days(node: exp.ToDays) -> exp.Expr:
    return _interval("DAY", node.this)


def _strftime(node: exp.TimeToStr) -> exp.Expr:
    fmt = node.args.get("format")
    if not isinstance(fmt, exp.Literal) or not fmt.is_string:
        raise TranspileError("strftime needs a constant format")
    pattern = []
    for piece in re.split(r"(%[A-Za-z%])", fmt.this):
        if not piece:
            continue
        if piece in _STRFTIME:
            pattern.append(_STRFTIME[piece])
        elif piece.startswith("%") and len(piece) == 2:
            raise TranspileError(f"strftime directive {piece} has no rewrite")
        else:  # literal text, quoted for Java's DateTimeFormatter
            pattern.append("'" + piece.replace("'", "''") + "'")
    return call("date_format", rewrite(node.this), exp.Literal.string("".join(pattern)))


# -- the rest ---------------------------------------------------------------------------------


def _epoch_us(node: exp.Anonymous) -> exp.Expr:
    return parse(f"unix_micros({sql(node.expressions[0])})")


def _hash(node: exp.Anonymous) -> exp.Expr:
    return call("xxhash64", *(rewrite(a) for a in node.expressions))


def _histogram(node: exp.Anonymous) -> exp.Expr:
    """A map of each value to its count, keys in order."""
    x = sql(node.expressions[0])
    return parse(
        f"map_from_entries(transform(array_sort(array_distinct(collect_list({x}))),"
        f" _v -> struct(_v, CAST(size(filter(collect_list({x}), _y -> _y = _v)) AS BIGINT))))"
    )


def _timezone(node: exp.Anonymous) -> exp.Expr:
    """DuckDB: the wall time in a zone; Spark (session time zone UTC): the same shift."""
    if len(node.expressions) != 2:
        return node
    zone, ts = node.expressions
    return call("from_utc_timestamp", rewrite(ts), rewrite(zone))


def _inner_product(node: exp.Anonymous) -> exp.Expr:
    a, b = (sql(e) for e in node.expressions[:2])
    return parse(
        f"aggregate(zip_with({a}, {b}, (_x, _y) -> _x * _y), CAST(0 AS DOUBLE),"
        " (_acc, _v) -> _acc + _v)"
    )


def _list_sum(node: exp.Anonymous) -> exp.Expr:
    """The sum of a list's non-NULL members, NULL for none; the first member is the start, so
    the sum keeps the members' type (Spark's aggregate wants the start's type throughout)."""
    members = f"filter({sql(node.expressions[0])}, _x -> _x IS NOT NULL)"
    return parse(
        f"aggregate(slice({members}, 2, greatest(size({members}), 1)),"
        f" try_element_at({members}, 1), (_acc, _v) -> _acc + _v)"
    )


def _has_all(node: exp.Anonymous) -> exp.Expr:
    """Every element of the second list is in the first."""
    whole, part = (sql(e) for e in node.expressions[:2])
    return parse(f"(size(array_except({part}, {whole})) = 0)")


def _to_unit(node: exp.Anonymous) -> exp.Expr:
    return _interval(_TO_UNIT[node.name.upper()], node.expressions[0])


def _format(node: exp.Format) -> exp.Expr:
    template = constant(node.this)
    if template is None:
        raise TranspileError("format needs a constant template")
    args = list(node.expressions)
    pieces: list[exp.Expr] = []
    for part in re.split(r"(\{[^{}]*\})", template):
        if not part:
            continue
        if not (part.startswith("{") and part.endswith("}")):
            pieces.append(exp.Literal.string(part))
            continue
        if not args:
            raise TranspileError("format has more {} than arguments")
        value = sql(args.pop(0))
        spec = part[1:-1]
        if spec == "":
            pieces.append(parse(f"CAST({value} AS STRING)"))  # a NULL makes it NULL, as in fmt
        elif spec == ":016x":
            pieces.append(parse(f"lpad(lower(conv(CAST({value} AS STRING), 10, 16)), 16, '0')"))
        elif spec == ":,":
            pieces.append(parse(f"format_number(CAST({value} AS BIGINT), 0)"))
        else:
            raise TranspileError(f"format specifier {part} has no rewrite")
    return call("concat", *(pieces or [exp.Literal.string("")]))


def _percentile(node: exp.PercentileCont) -> exp.Expr:
    """quantile_cont(x, p): Spark's percentile interpolates between the same two values."""
    if node.expression is None:
        return node
    return call("percentile", rewrite(node.this), rewrite(node.expression))


def _overlaps(node: exp.ArrayOverlaps) -> exp.Expr:
    """list_has_any: NULL elements never match (Spark's arrays_overlap would answer NULL)."""
    a, b = sql(node.this), sql(node.expression)
    return parse(
        f"arrays_overlap(filter({a}, _v -> _v IS NOT NULL), filter({b}, _v -> _v IS NOT NULL))"
    )


def _array(node: exp.Array) -> exp.Expr:
    """[] has no element type in Spark (array<void> cannot become an Arrow column): a list of
    text, unless a CAST around it says otherwise."""
    if node.expressions or isinstance(node.parent, exp.Cast):
        return node
    return exp.cast(node.copy(), exp.DataType.build("ARRAY<STRING>", dialect="spark"))


def _count(node: exp.Count) -> exp.Expr:
    distinct = node.this
    if isinstance(distinct, exp.Distinct) and len(distinct.expressions) == 1:
        [only] = distinct.expressions
        if isinstance(only, exp.Tuple):
            fields = [(f"f{i}", e) for i, e in enumerate(only.expressions)]
            return parse(f"count(DISTINCT {struct(fields)})")
    return node


def _array_distinct(node: exp.ArrayDistinct) -> exp.Expr:
    return parse(f"array_distinct(filter({sql(node.this)}, _v -> _v IS NOT NULL))")


def _full_match(node: exp.RegexpFullMatch) -> exp.Expr:
    return parse(f"({sql(node.this)} RLIKE concat('^(?:', {sql(node.expression)}, ')$'))")


def _bracket(node: exp.Bracket) -> exp.Expr:
    if len(node.expressions) != 1 or not isinstance(node.expressions[0], exp.Slice):
        return node
    piece = node.expressions[0]
    lst = sql(node.this)
    start = sql(piece.this) if piece.this is not None else "1"
    if piece.expression is None:
        return parse(f"slice({lst}, {start}, greatest(size({lst}) - ({start}) + 1, 0))")
    return parse(f"slice({lst}, {start}, greatest(({sql(piece.expression)}) - ({start}) + 1, 0))")


def _glob(node: exp.Glob) -> exp.Expr:
    pattern = constant(node.expression)
    if pattern is None:
        raise TranspileError("GLOB needs a constant pattern")
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return exp.RegexpLike(this=rewrite(node.this), expression=exp.Literal.string(f"^{regex}$"))


ANONYMOUS.update(
    {
        "EPOCH_US": _epoch_us,
        "HASH": _hash,
        "HISTOGRAM": _histogram,
        "TIMEZONE": _timezone,
        "LIST_INNER_PRODUCT": _inner_product,
        "LIST_DOT_PRODUCT": _inner_product,
        "LIST_HAS_ALL": _has_all,
        "LIST_SUM": _list_sum,
        **dict.fromkeys(_TO_UNIT, _to_unit),
    }
)
RULES.update(
    {
        exp.DateBin: _time_bucket,
        exp.TimeToUnix: _epoch,
        exp.ToDays: _to_days,
        exp.TimeToStr: _strftime,
        exp.Format: _format,
        exp.Count: _count,
        exp.Array: _array,
        exp.ArrayOverlaps: _overlaps,
        exp.PercentileCont: _percentile,
        exp.ArrayDistinct: _array_distinct,
        exp.RegexpFullMatch: _full_match,
        exp.Bracket: _bracket,
        exp.Glob: _glob,
    }
)
