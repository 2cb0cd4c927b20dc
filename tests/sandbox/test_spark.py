"""The Spark engine of the sandbox: the same staged query, translated by sqlglot, gives the same
answers on Spark as on DuckDB over the same Parquet files, reads only the granted columns, and
fails without echoing a value.

Spark runs on the test run's one local session (``spark_session`` returns the running one: the
data-plane tests' ``spark_root`` and this module share it, and it is stopped once at the end).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datafactor.dataplane.spark import SparkUnavailable, spark_session, stop_spark_session
from datafactor.sandbox import checker
from datafactor.sandbox.domain import ColumnRole, ColumnSpec, Engine, Limits, TableSpec
from datafactor.sandbox.errors import QueryRefused
from datafactor.sandbox.worker import TableSource, WorkerPool, run_staged, to_spark_sql

pytestmark = pytest.mark.spark

REGIONS = ["南宁", "柳州", "桂林", "梧州"]
SECRET = "Alice Zhang"


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Any:
    try:
        root = spark_session(
            "local[2]", driver_memory="1g", work_directory=tmp_path_factory.mktemp("spark")
        )
    except SparkUnavailable as exc:
        pytest.skip(f"Spark is not available: {exc}")
    return root


@pytest.fixture(scope="session", autouse=True)
def _stop_spark_at_the_end() -> Iterator[None]:
    yield
    stop_spark_session()


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerPool]:
    with WorkerPool(1, spill_directory=tmp_path_factory.mktemp("spill")) as pool:
        yield pool


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> list[TableSource]:
    folder = tmp_path_factory.mktemp("spark-data")
    n = 400
    usage = pa.table(
        {
            "household": [f"H{i % 150:04d}" for i in range(n)],  # several rows per household
            "region": [REGIONS[(i * 7) % 4] if i % 37 else None for i in range(n)],
            "month": [1 + i % 12 for i in range(n)],
            "kwh": [None if i % 53 == 0 else (i * 13 % 700) / 4 for i in range(n)],
        }
    )
    pq.write_table(usage, folder / "usage.parquet")
    people = pa.table({"label": [SECRET, "1", "2"]})
    pq.write_table(people, folder / "people.parquet")
    return [
        TableSource(
            "usage", str(folder / "usage.parquet"), ("household", "region", "month", "kwh")
        ),
        TableSource("people", str(folder / "people.parquet"), ("label",)),
    ]


CATALOG = {
    "usage": TableSpec(
        "usage",
        (
            ColumnSpec("household", "VARCHAR", ColumnRole.PRIVACY_UNIT),
            ColumnSpec("region", "VARCHAR", ColumnRole.GROUP_KEY),
            ColumnSpec("month", "BIGINT", ColumnRole.GROUP_KEY),
            ColumnSpec("kwh", "DOUBLE", ColumnRole.MEASURE, 0.0, 100.0),
        ),
    )
}

QUERIES = [
    "SELECT region, COUNT(*) AS n, SUM(kwh) AS total, AVG(kwh) AS avg_kwh FROM usage "
    "GROUP BY region",
    "SELECT month, region, COUNT(DISTINCT household) AS people FROM usage "
    "WHERE month <= 3 AND kwh > 10 GROUP BY ALL",
    "SELECT COUNT(*) AS n, SUM(kwh) AS total FROM usage WHERE region IS NOT NULL",
]


def staged_queries() -> list[str]:
    """The checker's staged SQL for the queries above, with and without the DP bounding stage
    (group keys, ``__units``, ``<name>__count``, ``<name>__sum``; no noise: that comes later)."""
    return [
        checker.check_query(q, CATALOG, dp=dp).staged_sql for q in QUERIES for dp in (False, True)
    ]


def on_spark(session: Any) -> dict[str, Any]:
    return {"engine": Engine.SPARK, "spark_session": session, "spark_shuffle_partitions": 2}


def comparable(table: pa.Table) -> list[tuple[Any, ...]]:
    """Rows as plain values, sorted (None first); numbers as floats rounded, whatever their
    Arrow type (DuckDB sums BIGINT to HUGEINT, Spark to BIGINT)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Decimal | float | int) and not isinstance(value, bool):
            return round(float(value), 6)
        return value

    rows = [tuple(plain(v) for v in row.values()) for row in table.to_pylist()]
    return sorted(rows, key=lambda r: tuple((v is not None, str(v)) for v in r))


@pytest.mark.parametrize("sql", staged_queries())
def test_the_same_staged_query_gives_identical_answers_on_duckdb_and_spark(
    session, pool, sources, sql
):
    limits = Limits()
    duck = run_staged(sql, sources, limits=limits, pool=pool)
    spark = run_staged(sql, sources, limits=limits, **on_spark(session))
    assert spark.column_names == duck.column_names
    assert len(duck) > 0
    assert comparable(spark) == comparable(duck)
    for column in duck.column_names:
        d, s = duck.schema.field(column).type, spark.schema.field(column).type
        assert (pa.types.is_string(d) or pa.types.is_large_string(d)) == (
            pa.types.is_string(s) or pa.types.is_large_string(s)
        )


def test_spark_sees_only_the_granted_columns(session, sources):
    narrowed = [TableSource("usage", sources[0].path, ("region",))]
    with pytest.raises(ValueError, match="exactly the granted columns"):
        run_staged("SELECT 1", narrowed, limits=Limits(), **on_spark(session))


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT raise_error(label) AS e FROM people",
        "SELECT COUNT(*) AS n FROM people WHERE assert_true(label = '1') IS NULL",
        "SELECT * FROM parquet.`{path}`",
        "SELECT household FROM people",
    ],
)
def test_spark_failures_do_not_echo_a_value(session, sources, sql):
    text = sql.format(path=sources[1].path)
    with pytest.raises(QueryRefused) as caught:
        run_staged(text, sources, limits=Limits(), **on_spark(session))
    for reason in caught.value.reasons:
        assert reason.rule == "SBX-EXE-ERROR"
        assert SECRET not in reason.en and "Alice" not in reason.zh


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT SUM(CAST(label AS INTEGER)) AS s FROM people",
        "SELECT COUNT(*) AS n FROM people WHERE 1 / (LENGTH(label) - 11) > 0",
        checker.check_query(
            "SELECT month * 4611686018427387904 AS m, COUNT(*) AS n FROM usage "
            "WHERE kwh > 100 GROUP BY 1",
            CATALOG,
            dp=False,
        ).staged_sql,
    ],
)
def test_spark_answers_null_where_a_value_would_make_it_fail(session, sources, sql):
    # A failure that depends on a value (an overflow, a bad cast, a division by zero on the
    # rows a filter keeps) would tell the grantee whether some row holds it, past k and the
    # noise. The sandbox's Spark session is not ANSI: such a value is NULL.
    table = run_staged(sql, sources, limits=Limits(), **on_spark(session))
    assert table.num_rows >= 1


def test_spark_caps_the_result_rows(session, sources):
    with pytest.raises(QueryRefused) as caught:
        run_staged(
            "SELECT household, COUNT(*) AS n__count FROM usage GROUP BY household",
            sources,
            limits=Limits(max_result_rows=20),
            **on_spark(session),
        )
    assert caught.value.reasons[0].rule == "SBX-OUT-SIZE"


def test_spark_stops_a_query_at_the_time_limit(session, sources):
    with pytest.raises(QueryRefused) as caught:
        run_staged(
            "SELECT COUNT(*) AS n FROM usage a CROSS JOIN usage b CROSS JOIN usage c CROSS JOIN usage d",
            sources,
            limits=Limits(seconds=2),
            **on_spark(session),
        )
    reason = caught.value.reasons[0]
    assert reason.rule == "SBX-EXE-LIMITS" and "2 seconds" in reason.en


def test_the_translation_quotes_identifiers_for_spark():
    sql = to_spark_sql('SELECT "地区", COUNT(*) AS n__count FROM usage GROUP BY "地区"')
    assert "`地区`" in sql
    assert not math.isnan(len(sql))


def test_the_service_s_minimum_group_filter_runs_alike_on_spark(session, pool, sources):
    staged = checker.check_query(QUERIES[0], CATALOG, dp=True).staged_sql
    sql = checker.with_min_units(staged, 30)
    duck = run_staged(sql, sources, limits=Limits(), pool=pool)
    spark = run_staged(sql, sources, limits=Limits(), **on_spark(session))
    assert comparable(spark) == comparable(duck)
    everything = run_staged(staged, sources, limits=Limits(), pool=pool)
    assert 0 < duck.num_rows < everything.num_rows
    assert min(duck.column("__units").to_pylist()) >= 30
