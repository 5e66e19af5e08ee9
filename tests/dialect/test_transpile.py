"""The transpiler without Spark: binding, the rewrites' shapes, and what it refuses.

Whether the rewrites mean in Spark what DuckDB means is tested on Spark itself
(tests/spark/test_semantics.py); here, that each is applied where it must be and that
anything without a rewrite fails loudly, naming what.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlglot
from sqlglot import exp

from forensics.detect.load import default_dirs, load_detectors
from forensics.detect.params import bind
from forensics.dialect.transpile import SCOPE_NULL_TYPES, TranspileError, transpile


def spark(sql: str, params: dict[str, object] | None = None, **kw: object) -> str:
    text = transpile(sql, "spark", params if params is not None else {}, **kw)  # type: ignore[arg-type]
    sqlglot.parse_one(text, read="spark")  # whatever it writes, Spark's grammar reads
    return text


def test_parameters_become_typed_literals():
    text = spark(
        "SELECT * FROM requests WHERE ts >= $since AND tenant_id = $tenant AND n > $n"
        " AND list_contains($ids, x) AND $flag",
        {
            "since": dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
            "tenant": None,
            "n": 2.5,
            "ids": ["a'b", "c"],
            "flag": True,
        },
        null_types=SCOPE_NULL_TYPES,
    )
    assert "ts >= CAST('2026-01-02 03:04:05.000006' AS TIMESTAMP)" in text
    assert "tenant_id = CAST(NULL AS STRING)" in text  # typed: Spark refuses a void NULL
    assert "n > 2.5" in text
    assert "ARRAY_CONTAINS(ARRAY('a\\'b', 'c'), x)" in text
    assert "AND TRUE" in text


def test_an_unbound_parameter_is_named_unless_it_may_stay():
    with pytest.raises(TranspileError, match=r"no value bound for \$since, \$until"):
        transpile("SELECT 1 WHERE $since < $until AND $n > 1", "spark", {"n": 1})
    text = transpile("SELECT 1 WHERE $since < ts", "spark", {}, unbound=("since",))
    assert ":since < ts" in text


def test_a_non_finite_number_has_no_literal():
    with pytest.raises(TranspileError, match="inf"):
        transpile("SELECT $x", "spark", {"x": float("inf")})


def test_top_n_min_by_sorts_collected_structs_and_keeps_its_filter_inside():
    text = spark("SELECT min_by(id, (ts, id), 20) FILTER (WHERE id IS NOT NULL) FROM t")
    assert text.startswith(
        "SELECT SLICE(TRANSFORM(ARRAY_SORT(COLLECT_LIST(STRUCT(ts AS k0, id AS k1, id AS v))"
        " FILTER(WHERE NOT id IS NULL), (_l, _r) -> COALESCE(NULLIF(CASE"
    )
    assert text.endswith("_s -> _s.v), 1, 20) FROM t")
    top = spark("SELECT max_by(id, cost, 3) FROM t")
    assert "ARRAY_SORT(COLLECT_LIST(STRUCT(cost AS k0, id AS v))" in top
    assert "WHEN _l.k0 < _r.k0 THEN 1 WHEN _l.k0 > _r.k0 THEN -1" in top  # largest first
    assert "FILTER(WHERE NOT (cost) IS NULL)" in top  # a NULL key is skipped, as in DuckDB


def test_ordered_list_sorts_by_a_comparator_of_every_key():
    text = spark("SELECT list(x ORDER BY y DESC, z) FROM t")
    # y DESC: a smaller y sorts after; NULLS LAST (DuckDB's default) for both keys; the first
    # key that differs decides
    assert text == (
        "SELECT TRANSFORM(ARRAY_SORT(COLLECT_LIST(STRUCT(y AS k0, z AS k1, x AS v)), (_l, _r) ->"
        " COALESCE(NULLIF(CASE WHEN _l.k0 IS NULL AND _r.k0 IS NULL THEN 0"
        " WHEN _l.k0 IS NULL THEN 1 WHEN _r.k0 IS NULL THEN -1"
        " WHEN _l.k0 < _r.k0 THEN 1 WHEN _l.k0 > _r.k0 THEN -1 ELSE 0 END, 0),"
        " NULLIF(CASE WHEN _l.k1 IS NULL AND _r.k1 IS NULL THEN 0"
        " WHEN _l.k1 IS NULL THEN 1 WHEN _r.k1 IS NULL THEN -1"
        " WHEN _l.k1 < _r.k1 THEN -1 WHEN _l.k1 > _r.k1 THEN 1 ELSE 0 END, 0), 0)),"
        " _s -> _s.v) FROM t"
    )
    plain = spark("SELECT list(x) FROM t")
    assert plain == "SELECT TRANSFORM(COLLECT_LIST(STRUCT(x AS v)), _s -> _s.v) FROM t"
    windowed = spark("SELECT list(x) OVER (PARTITION BY k) FROM t")
    assert "COLLECT_LIST(STRUCT(x AS v)) OVER (PARTITION BY k)" in windowed
    distinct = spark("SELECT list(DISTINCT x ORDER BY x DESC) FROM t")
    assert distinct.startswith(
        "SELECT ARRAY_SORT(ARRAY_DISTINCT(TRANSFORM(COLLECT_LIST(STRUCT(x AS v)), _s -> _s.v)),"
        " (_l, _r) ->"
    )


def test_list_distinct_over_another_order_is_refused():
    with pytest.raises(TranspileError, match="orders by something other than x"):
        spark("SELECT list(DISTINCT x ORDER BY y) FROM t")


def test_time_bucket_counts_from_duckdb_origin_with_offsets_and_column_widths():
    text = spark("SELECT time_bucket(INTERVAL 5 HOUR, ts) FROM t")
    assert text == (
        "SELECT TIMESTAMP_MICROS((UNIX_MICROS(ts) - 946857600000000) - PMOD((UNIX_MICROS(ts)"
        " - 946857600000000), (CAST('5' AS BIGINT) * 3600000000)) + 946857600000000) FROM t"
    )
    shifted = spark("SELECT time_bucket(to_hours(2), ts, to_hours(1)) FROM t")
    assert "(946857600000000 + (CAST(1 AS BIGINT) * 3600000000))" in shifted
    by_column = spark("SELECT time_bucket(to_minutes(k.minutes), s.ts) FROM t")
    assert "(CAST(k.minutes AS BIGINT) * 60000000)" in by_column
    with pytest.raises(TranspileError, match="not an interval of fixed length"):
        spark("SELECT time_bucket(width, ts) FROM t")
    with pytest.raises(TranspileError, match="MONTH has no fixed length"):
        spark("SELECT time_bucket(INTERVAL 1 MONTH, ts) FROM t")


def test_epochs_keep_their_fractions():
    assert spark("SELECT epoch(ts)") == "SELECT (UNIX_MICROS(ts) / 1000000.0)"
    assert spark("SELECT epoch(b - a)") == "SELECT ((UNIX_MICROS(b) - UNIX_MICROS(a)) / 1000000.0)"
    assert spark("SELECT epoch_us(ts)") == "SELECT UNIX_MICROS(ts)"


def test_format_is_a_concat_and_unknown_specifiers_are_refused():
    text = spark("SELECT format('{} x {:016x}' || ' {:,}', a, fp, n)")
    assert text == (
        "SELECT CONCAT(CAST(a AS STRING), ' x ',"
        " LPAD(LOWER(CONV(CAST(fp AS STRING), 10, 16)), 16, '0'), ' ',"
        " FORMAT_NUMBER(CAST(n AS BIGINT), 0))"
    )
    with pytest.raises(TranspileError, match=r"format specifier \{:>5\}"):
        spark("SELECT format('{:>5}', a)")
    with pytest.raises(TranspileError, match="constant template"):
        spark("SELECT format(t, a) FROM x")
    with pytest.raises(TranspileError, match="more {} than arguments"):
        spark("SELECT format('{} {}', a)")


def test_strftime_quotes_its_literal_text_for_java():
    text = spark("SELECT strftime(ts, '%Y-%m-%d %H:%M:%S UTC')")
    # every piece of literal text quoted, as Java's DateTimeFormatter reads it
    assert (
        text
        == "SELECT DATE_FORMAT(ts, 'yyyy\\'-\\'MM\\'-\\'dd\\' \\'HH\\':\\'mm\\':\\'ss\\' UTC\\'')"
    )
    with pytest.raises(TranspileError, match="directive %j"):
        spark("SELECT strftime(ts, '%j')")


def test_glob_slices_and_the_small_rewrites():
    assert spark("SELECT p GLOB '/v1/*.json?'") == "SELECT p RLIKE '^/v1/.*\\\\.json.$'"
    assert spark("SELECT l[2:5], l[3:]") == (
        "SELECT SLICE(l, 2, GREATEST((5) - (2) + 1, 0)),"
        " SLICE(l, 3, GREATEST(SIZE(l) - (3) + 1, 0))"
    )
    assert spark("SELECT l[1]") == "SELECT l[0]"  # sqlglot moves DuckDB's 1-based index
    assert spark("SELECT hash(a, b)") == "SELECT XXHASH64(a, b)"
    assert spark("SELECT count(DISTINCT (a, b))") == (
        "SELECT COUNT(DISTINCT STRUCT(a AS f0, b AS f1))"
    )
    assert spark("SELECT list_distinct(l)") == (
        "SELECT ARRAY_DISTINCT(FILTER(l, _v -> NOT _v IS NULL))"
    )
    assert (
        spark("SELECT regexp_full_match(s, 'a+')") == "SELECT (s RLIKE CONCAT('^(?:', 'a+', ')$'))"
    )
    assert spark("SELECT quantile_cont(x, 0.95)") == "SELECT PERCENTILE(x, 0.95)"
    assert spark("SELECT to_days(3)") == "SELECT MAKE_DT_INTERVAL(CAST(3 AS INT), 0, 0, 0)"
    assert "MAKE_DT_INTERVAL(0, CAST(2 AS INT), 0, 0)" in spark("SELECT ts + to_hours(2)")
    assert "SIZE(ARRAY_EXCEPT(b, a)) = 0" in spark("SELECT list_has_all(a, b)")
    assert spark("SELECT list_has_any(a, b)") == (
        "SELECT ARRAYS_OVERLAP(FILTER(a, _v -> NOT _v IS NULL), FILTER(b, _v -> NOT _v IS NULL))"
    )
    assert spark("SELECT timezone('UTC', ts)") == "SELECT FROM_UTC_TIMESTAMP(ts, 'UTC')"
    assert spark("SELECT [], [1], []::BIGINT[]") == (
        "SELECT CAST(ARRAY() AS ARRAY<STRING>), ARRAY(1), CAST(ARRAY() AS ARRAY<BIGINT>)"
    )
    assert "MATERIALIZED" not in spark("WITH a AS NOT MATERIALIZED (SELECT 1) SELECT * FROM a")


def test_every_shipped_detector_transpiles_to_spark_with_its_defaults():
    detectors, problems = load_detectors(default_dirs([]))
    assert not problems
    assert len(detectors) >= 22
    for d in detectors:
        text = transpile(d.sql, "spark", bind(d), null_types=SCOPE_NULL_TYPES)
        tree = sqlglot.parse_one(text, read="spark")
        assert not list(tree.find_all(exp.Placeholder)), d.id  # every parameter bound


def test_an_unknown_dialect_is_named():
    with pytest.raises(TranspileError, match="unknown dialect 'oracle'"):
        transpile("SELECT 1", "oracle", {})


def test_the_views_needs_are_read_from_their_definitions():
    from forensics.dialect.views import depends, needed

    assert depends("usage_vs_gateway") == {"usage", "requests", "known_keys"}
    built, base = needed({"principal_hours", "key_inventory"})
    assert built == ["request_subjects", "principal_hours"]  # each after what it reads
    assert base == {"requests", "key_inventory"}
