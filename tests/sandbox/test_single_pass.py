"""The single-pass plan: when every group key and filter is constant within a privacy unit (a
household's district), the checker counts units and bounds contributions in one aggregation
over a file that carries each row's number within its unit (``sources.ranked``). Its answers
without dp are the general plan's; with dp a unit adds at most L rows and lies in one group.
Anything else — a key or filter that varies within a unit, a join — keeps the general plan."""

from __future__ import annotations

import random

import duckdb
import pytest
from registry_support import principal as holder
from sandbox_support import add_file

from datafactor.sandbox.checker import check_query, checker_settings
from datafactor.sandbox.domain import RANK_COLUMN, ColumnRole, ColumnSpec, TableSpec
from datafactor.sandbox.sources import ranked

R = ColumnRole
COLUMNS = (
    ColumnSpec("hid", "VARCHAR", R.PRIVACY_UNIT),
    ColumnSpec("district", "VARCHAR", R.GROUP_KEY),
    ColumnSpec("month", "BIGINT", R.GROUP_KEY),
    ColumnSpec("kwh", "DOUBLE", R.MEASURE, 0.0, 2000.0),
)
GENERAL = {"t": TableSpec("t", COLUMNS)}
SINGLE = {"t": TableSpec("t", COLUMNS, unit_level=frozenset({"district"}))}
BY_DISTRICT = (
    "SELECT district, COUNT(*) AS n, AVG(kwh) AS a, SUM(kwh) AS s, COUNT(DISTINCT hid) AS u "
    "FROM t WHERE district <> 'd1' GROUP BY district"
)


@pytest.fixture(scope="module")
def con():
    """Households in 7 districts, 1–30 readings each (kWh partly out of bounds), ranked."""
    rng = random.Random(7)
    rows = []
    for h in range(400):
        for i in range(rng.randint(1, 30)):
            rows.append((f"h{h}", f"d{h % 7}", i % 12 + 1, rng.uniform(-100.0, 2600.0)))
    rows.append((None, "d0", 1, 5.0))  # a row without a unit: counted, never a unit
    con = duckdb.connect()
    con.execute("CREATE TABLE raw (hid VARCHAR, district VARCHAR, month BIGINT, kwh DOUBLE)")
    con.executemany("INSERT INTO raw VALUES (?, ?, ?, ?)", rows)
    con.execute(  # numbered as sources.rank_file numbers them (no number without a unit)
        f"CREATE TABLE t AS SELECT *, CASE WHEN hid IS NULL THEN NULL ELSE ROW_NUMBER() OVER "
        f'(PARTITION BY hid ORDER BY month, kwh) END AS "{RANK_COLUMN}" FROM raw'
    )
    return con


def _rows(con, sql):
    return sorted(con.execute(sql).fetchall(), key=str)


def test_unit_level_keys_get_the_single_pass_plan_with_one_group_per_unit():
    plan = check_query(BY_DISTRICT, SINGLE, dp=True)
    assert plan.ranked and plan.max_groups_per_unit == 1
    assert "per_unit" not in plan.staged_sql and RANK_COLUMN in plan.staged_sql
    general = check_query(BY_DISTRICT, GENERAL, dp=True)
    assert (
        not general.ranked and general.max_groups_per_unit == checker_settings().max_groups_per_unit
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT month, COUNT(*) AS n FROM t GROUP BY month",  # month varies within a household
        "SELECT district, COUNT(*) AS n FROM t WHERE kwh > 100 GROUP BY district",  # a measure
        "SELECT district, COUNT(*) AS n FROM t WHERE month = 3 GROUP BY district",
    ],
)
def test_a_key_or_filter_that_varies_within_a_unit_keeps_the_general_plan(sql):
    plan = check_query(sql, SINGLE, dp=True)
    assert not plan.ranked and "per_unit" in plan.staged_sql


def test_without_dp_the_single_pass_answers_are_the_general_plans(con):
    single = _rows(con, check_query(BY_DISTRICT, SINGLE, dp=False).staged_sql)
    general = _rows(con, check_query(BY_DISTRICT, GENERAL, dp=False).staged_sql)
    assert len(single) == len(general) == 6
    for a, b in zip(single, general, strict=True):
        assert a == pytest.approx(b)


def test_with_dp_each_unit_adds_at_most_l_clamped_rows(con):
    rows = checker_settings().max_rows_per_unit
    plan = check_query(BY_DISTRICT, SINGLE, dp=True)
    got = {r[0]: r for r in con.execute(plan.staged_sql).fetchall()}
    expected = con.execute(
        f"SELECT district, COUNT(*), SUM(LEAST(GREATEST(kwh, 0), 2000)), COUNT(DISTINCT hid) "
        f"FROM t WHERE district <> 'd1' AND \"{RANK_COLUMN}\" <= {rows} GROUP BY district"
    ).fetchall()
    assert len(got) == len(expected) == 6
    columns = [c[0] for c in con.execute(plan.staged_sql).description]
    for district, count, total, units in expected:
        row = dict(zip(columns, got[district], strict=True))
        assert row["__units"] == units == row["u__count"]
        assert row["n__count"] == count and row["a__count"] == count
        assert row["s__sum"] == pytest.approx(total) and row["a__sum"] == pytest.approx(total)
        assert count <= rows * units  # with dp the row without a unit is not read


def test_ranked_files_number_rows_per_unit_and_find_the_unit_level_columns(
    db, settings, enterprise
):
    csv = "户号,地区,月份,用电量\n" + "".join(
        f"h{h},{'南宁' if h % 2 else '柳州'},{m},{h * 10 + m}\n"
        for h in range(5)
        for m in (1, 2, 3)
    )
    who = holder(db, enterprise)
    version = add_file(db, settings, who, csv.encode(), "households.csv")
    with db.read() as s:
        made = ranked(
            s, settings, version, columns=("户号", "地区", "月份", "用电量"), privacy_unit="户号"
        )
        again = ranked(
            s, settings, version, columns=("户号", "地区", "月份", "用电量"), privacy_unit="户号"
        )
    assert made.unit_level == {"地区"} and made.columns[-1] == RANK_COLUMN
    assert again.path == made.path  # built once, reused
    numbers = duckdb.sql(
        f'SELECT "户号", LIST("{RANK_COLUMN}" ORDER BY "{RANK_COLUMN}") FROM '
        f"read_parquet('{made.path}') GROUP BY 1"
    ).fetchall()
    assert len(numbers) == 5 and all(ranks == [1, 2, 3] for _, ranks in numbers)
