"""Each Spark rewrite means in Spark what the DuckDB SQL means in DuckDB, on rows chosen to
break a careless one: ties, NULLs in values and keys, times before DuckDB's bucket origin and
off the hour, an unsigned fingerprint above 2^63, lists with repeats and NULLs.

The same table is read by both engines from the same Parquet file (as a run reads the lake).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import duckdb
import pytest

from forensics.dialect.transpile import transpile

pytestmark = pytest.mark.spark

ROWS = """
SELECT * FROM (VALUES
  (1, 'a', TIMESTAMPTZ '2026-01-05 10:17:31.250001+00', 2.5::DOUBLE, 'x',  18446744073709551615::UBIGINT, ['a', 'b', 'a', NULL], '/v1/chat'),
  (2, 'a', TIMESTAMPTZ '2026-01-05 10:17:31.250001+00', NULL, 'x',  1::UBIGINT,                    ['b'],                 '/v1/Chat'),
  (3, 'a', TIMESTAMPTZ '1999-12-31 23:59:59+00',        7.0,  NULL, 255::UBIGINT,                  [],                    '/v2/chat'),
  (4, 'b', TIMESTAMPTZ '2026-03-29 01:30:00+00',        7.0,  'y',  NULL,                          NULL,                  '/v1/x.json'),
  (5, 'b', TIMESTAMPTZ '2026-03-29 23:00:00+00',        -1.0, 'y',  9223372036854775808::UBIGINT, ['x', 'y'],            NULL),
  (6, 'b', NULL,                                         0.0, 'z',  0::UBIGINT,                    ['x', NULL, 'x'],      '/v1/a')
) t(id, g, ts, v, s, fp, l, p)
"""


@pytest.fixture(scope="module")
def engines(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    where = Path(tmp_path_factory.mktemp("semantics")) / "t.parquet"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"COPY ({ROWS}) TO '{where}' (FORMAT parquet)")
    con.execute(f"CREATE VIEW t AS SELECT * FROM '{where}'")
    spark.read.parquet(str(where)).createOrReplaceTempView("t")
    return con, spark


def plain(value: Any) -> Any:
    """Both engines' values in one shape: lists, UTC datetimes, rounded floats, ints."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 9)
    if hasattr(value, "as_integer_ratio") and not isinstance(value, bool | int):
        return int(value) if value == int(value) else float(value)  # Spark's decimals
    return value


def both(engines: tuple[Any, Any], sql: str) -> tuple[list[Any], list[Any]]:
    con, spark = engines
    duck = [plain(list(r)) for r in con.execute(sql).fetchall()]
    text = transpile(sql, "spark", {})
    sparked = [plain(list(r.asDict(recursive=False).values())) for r in spark.sql(text).collect()]
    return duck, sparked


def test_top_n_and_ordered_lists(engines):
    duck, sparked = both(
        engines,
        "SELECT g, min_by(id, (ts, id), 2) AS a, max_by(id, v, 2) AS b,"
        " list(id ORDER BY v DESC, id) AS c, list(v ORDER BY v) AS d,"
        " list(DISTINCT s ORDER BY s DESC) AS e, list(s) AS f"
        " FROM t GROUP BY g ORDER BY g",
    )
    assert duck == sparked
    assert duck[0][4] == [2.5, 7.0, None]  # NULLS LAST kept, NULL kept


def test_time_buckets_and_epochs(engines):
    duck, sparked = both(
        engines,
        "SELECT id, time_bucket(INTERVAL 5 HOUR, ts) AS a, time_bucket(to_minutes(7), ts) AS b,"
        " time_bucket(to_hours(2), ts, to_hours(1)) AS c, time_bucket(INTERVAL 3 DAY, ts) AS d,"
        " epoch(ts) AS e, epoch(ts - min(ts) OVER ()) AS f, epoch_us(ts) AS h,"
        " ts + to_minutes(90) AS i, date_trunc('day', ts) AS j"
        " FROM t ORDER BY id",
    )
    assert duck == sparked
    assert duck[0][5] == pytest.approx(1767608251.250001)


def test_text_formats(engines):
    duck, sparked = both(
        engines,
        "SELECT id, format('{} and {:016x}', v, fp) AS a, format('{:,} tokens', id * 1000000) AS b,"
        " strftime(ts, '%Y-%m-%d %H:%M:%S UTC') AS c FROM t ORDER BY id",
    )
    assert duck == sparked
    assert duck[0][1] == "2.5 and ffffffffffffffff"


def test_aggregates_over_values_and_pairs(engines):
    duck, sparked = both(
        engines,
        "SELECT g, histogram(s) AS a, count(DISTINCT (s, v)) AS b, quantile_cont(v, 0.5) AS c,"
        " count(*) FILTER (WHERE v > 1) AS d FROM t GROUP BY g ORDER BY g",
    )
    assert duck == sparked
    assert duck[0][2] == 3  # (x, 2.5), (x, NULL) and (NULL, 7.0) are three pairs


def test_lists_patterns_and_hashes(engines):
    duck, sparked = both(
        engines,
        "SELECT id, list_sort(list_distinct(l)) AS a, l[2:3] AS b, l[1] AS c, l[2:] AS d,"
        " list_has_any(l, ['x', NULL]) AS e, list_has_all(l, ['a', 'b']) AS f,"
        " p GLOB '/v1/*' AS g, regexp_full_match(p, '/v1/[a-z]+') AS h,"
        " array_length(l) AS i, hash(id) = hash(id) AS j"
        " FROM t ORDER BY id",
    )
    assert duck == sparked
    assert duck[0][1] == ["a", "b"]


def test_list_sum_skips_nulls_and_keeps_the_members_type(engines: tuple[Any, Any]) -> None:
    duck, sparked = both(
        engines,
        "SELECT list_sum([3, NULL, 4]) AS a, list_sum([2.5::DOUBLE, 0.5]) AS b, list_sum([7]) AS c,"
        " list_sum(CAST([] AS BIGINT[])) AS d, list_sum([NULL::BIGINT]) AS e",
    )
    assert duck == sparked
    assert duck[0] == [7, 3.0, 7, None, None]
