"""The sandbox's query checker (issue 8, item 2 and the attack tests): what it refuses and why,
and what the staged query it writes computes — run on tiny in-memory DuckDB tables, exact
without dp and bounded per privacy unit with dp, and transpilable to Spark SQL. Pure: no
platform database."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datafactor.sandbox.checker import check_query, checker_settings
from datafactor.sandbox.domain import ColumnRole, ColumnSpec, Plan, TableSpec
from datafactor.sandbox.errors import QueryRefused

R = ColumnRole
USAGE = TableSpec(
    "usage",
    (
        ColumnSpec("household_id", "VARCHAR", R.PRIVACY_UNIT),
        ColumnSpec("name", "VARCHAR", R.IDENTIFIER),
        ColumnSpec("district", "VARCHAR", R.GROUP_KEY),
        ColumnSpec("tariff", "VARCHAR", R.GROUP_KEY),
        ColumnSpec("month", "DATE", R.GROUP_KEY),
        ColumnSpec("kwh", "DOUBLE", R.MEASURE, 0.0, 1000.0),
        ColumnSpec("phone", "VARCHAR", R.FORBIDDEN),
    ),
)
HOMES = TableSpec(
    "homes",
    (
        ColumnSpec("hid", "VARCHAR", R.PRIVACY_UNIT),
        ColumnSpec("owner", "VARCHAR", R.IDENTIFIER),
        ColumnSpec("zone", "VARCHAR", R.GROUP_KEY),
        ColumnSpec("area", "INTEGER", R.MEASURE, 0.0, 500.0),
        ColumnSpec("rooms", "INTEGER", R.MEASURE),  # no bounds in the profile
    ),
)
CATALOG = {"usage": USAGE, "homes": HOMES}
L = checker_settings().max_rows_per_unit
G = checker_settings().max_groups_per_unit


def refusal(sql: str, *, dp: bool = False) -> QueryRefused:
    with pytest.raises(QueryRefused) as caught:
        check_query(sql, CATALOG, dp=dp)
    return caught.value


def rules(sql: str, *, dp: bool = False) -> set[str]:
    return {r.rule for r in refusal(sql, dp=dp).reasons}


# ------------------------------------------------------------------------------- refusals
ATTACKS = [
    # syntax, statements
    ("SELECT count(* FROM usage", "SBX-Q-SYNTAX"),
    ("", "SBX-Q-SYNTAX"),
    ("   ;  ", "SBX-Q-SYNTAX"),
    ("SELECT 'unterminated FROM usage", "SBX-Q-SYNTAX"),
    ("SELECT count(*) FROM usage; SELECT count(*) FROM homes", "SBX-Q-SELECT"),
    ("SELECT count(*) FROM usage; DROP TABLE usage", "SBX-Q-SELECT"),
    ("INSERT INTO usage VALUES (1)", "SBX-Q-SELECT"),
    ("UPDATE usage SET kwh = 0", "SBX-Q-SELECT"),
    ("DELETE FROM usage", "SBX-Q-SELECT"),
    ("CREATE TABLE x AS SELECT * FROM usage", "SBX-Q-SELECT"),
    ("DROP TABLE usage", "SBX-Q-SELECT"),
    ("COPY usage TO '/tmp/out.csv'", "SBX-Q-SELECT"),
    ("COPY (SELECT * FROM usage) TO '/tmp/out.parquet' (FORMAT parquet)", "SBX-Q-SELECT"),
    ("ATTACH '/tmp/other.duckdb' AS other", "SBX-Q-SELECT"),
    ("DETACH other", "SBX-Q-SELECT"),
    ("PRAGMA database_list", "SBX-Q-SELECT"),
    ("SET enable_external_access = true", "SBX-Q-SELECT"),
    ("RESET threads", "SBX-Q-SELECT"),
    ("INSTALL httpfs", "SBX-Q-SELECT"),
    ("LOAD httpfs", "SBX-Q-SELECT"),
    ("CALL pragma_version()", "SBX-Q-SELECT"),
    ("USE other", "SBX-Q-SELECT"),
    ("CHECKPOINT", "SBX-Q-SELECT"),
    ("VACUUM", "SBX-Q-SELECT"),
    ("DESCRIBE usage", "SBX-Q-SELECT"),
    # tables and table functions
    ("SELECT count(*) FROM salaries", "SBX-Q-TABLES"),
    ("SELECT count(*) FROM other.main.usage", "SBX-Q-TABLES"),
    ("SELECT count(*) FROM 'usage.csv'", "SBX-Q-TABLES"),
    ("SELECT count(*) FROM '/etc/passwd'", "SBX-Q-TABLES"),
    ("SELECT count(*) FROM 'https://example.com/x.parquet'", "SBX-Q-TABLES"),
    ("SELECT count(*) FROM read_csv('/etc/passwd')", "SBX-Q-FUNCTIONS"),
    ("SELECT count(*) FROM read_csv_auto('x.csv')", "SBX-Q-FUNCTIONS"),
    ("SELECT count(*) FROM read_parquet('x.parquet')", "SBX-Q-FUNCTIONS"),
    ("SELECT count(*) FROM read_json('x.json')", "SBX-Q-FUNCTIONS"),
    ("SELECT count(*) FROM glob('/data/*')", "SBX-Q-FUNCTIONS"),
    ("SELECT count(*) FROM range(10)", "SBX-Q-FUNCTIONS"),
    ("SELECT count(*) FROM generate_series(1, 10)", "SBX-Q-FUNCTIONS"),
    ("SELECT count(*) FROM duckdb_settings()", "SBX-Q-FUNCTIONS"),
    (
        "SELECT district, count(*) FROM usage WHERE district = getenv('HOME') GROUP BY 1",
        "SBX-Q-FUNCTIONS",
    ),
    ("SELECT current_setting('threads') AS s, count(*) FROM usage GROUP BY 1", "SBX-Q-FUNCTIONS"),
    # columns
    ("SELECT count(phone) FROM usage", "SBX-Q-COLUMNS"),
    ("SELECT count(*) FROM usage WHERE phone = '1'", "SBX-Q-COLUMNS"),
    ("SELECT salary, count(*) FROM usage GROUP BY salary", "SBX-Q-COLUMNS"),
    ("SELECT x.district, count(*) FROM usage GROUP BY 1", "SBX-Q-COLUMNS"),
    # functions not on the allow-list
    ("SELECT md5(district) AS h, count(*) FROM usage GROUP BY 1", "SBX-Q-FUNCTIONS"),
    ("SELECT hash(district) AS h, count(*) FROM usage GROUP BY 1", "SBX-Q-FUNCTIONS"),
    ("SELECT count(*) FROM usage WHERE random() < 0.5", "SBX-Q-FUNCTIONS"),
    ("SELECT count(*) FROM usage WHERE regexp_matches(district, '^A')", "SBX-Q-FUNCTIONS"),
    ("SELECT CAST(district AS BLOB) AS b, count(*) FROM usage GROUP BY 1", "SBX-Q-FUNCTIONS"),
    # outputs must be aggregates or group keys
    ("SELECT * FROM usage", "SBX-Q-AGGREGATE"),
    ("FROM usage", "SBX-Q-AGGREGATE"),
    ("SELECT usage.* FROM usage", "SBX-Q-AGGREGATE"),
    ("SELECT district, count(*) FROM usage", "SBX-Q-AGGREGATE"),
    ("SELECT district FROM usage GROUP BY district", "SBX-Q-AGGREGATE"),
    ("SELECT kwh, count(*) FROM usage GROUP BY kwh", "SBX-Q-AGGREGATE"),
    ("SELECT sum(district) FROM usage", "SBX-Q-AGGREGATE"),
    ("SELECT avg(tariff) FROM usage", "SBX-Q-AGGREGATE"),
    ("SELECT sum(kwh) / count(*) AS mean FROM usage", "SBX-Q-AGGREGATE"),
    ("SELECT round(avg(kwh)) AS mean FROM usage", "SBX-Q-AGGREGATE"),
    ("SELECT count(DISTINCT district) FROM usage", "SBX-Q-AGGREGATE"),
    ("SELECT stddev(kwh) FROM usage", "SBX-Q-AGGREGATE"),
    ("SELECT sum(DISTINCT kwh) FROM usage", "SBX-Q-AGGREGATE"),
    # raw-row extraction: ORDER BY … LIMIT 1 over raw rows
    ("SELECT kwh FROM usage ORDER BY kwh DESC LIMIT 1", "SBX-Q-AGGREGATE"),
    ("SELECT district, count(*) FROM usage GROUP BY 1 ORDER BY kwh DESC LIMIT 1", "SBX-Q-SHAPE"),
    # identifiers and the privacy unit as group keys
    ("SELECT name, count(*) FROM usage GROUP BY name", "SBX-Q-GROUPKEY"),
    ("SELECT household_id, sum(kwh) FROM usage GROUP BY 1", "SBX-Q-GROUPKEY"),
    ("SELECT upper(name) AS n, count(*) FROM usage GROUP BY 1", "SBX-Q-GROUPKEY"),
    ("SELECT substr(household_id, 1, 8) AS p, count(*) FROM usage GROUP BY 1", "SBX-Q-GROUPKEY"),
    # differencing: filters on identifiers or the privacy unit
    ("SELECT count(*) FROM usage WHERE household_id = 'H001'", "SBX-Q-FILTER"),
    ("SELECT sum(kwh) FROM usage WHERE household_id <> 'H001'", "SBX-Q-FILTER"),
    ("SELECT sum(kwh) FROM usage WHERE name = 'Zhang San'", "SBX-Q-FILTER"),
    ("SELECT sum(kwh) FROM usage WHERE name LIKE 'Zhang%'", "SBX-Q-FILTER"),
    ("SELECT sum(kwh) FROM usage WHERE regexp_matches(name, '^Zhang')", "SBX-Q-FILTER"),
    ("SELECT sum(kwh) FROM usage WHERE name ~ '^Zhang'", "SBX-Q-FILTER"),
    ("SELECT count(*) FROM usage WHERE length(household_id) > 3", "SBX-Q-FILTER"),
    (
        "SELECT count(*) FROM usage u JOIN homes h ON u.household_id = h.hid AND h.owner = 'x'",
        "SBX-Q-SHAPE",
    ),
    # aggregates that can return one individual's value
    ("SELECT string_agg(name, ',') FROM usage", "SBX-Q-INDIVIDUAL"),
    ("SELECT list(name) FROM usage", "SBX-Q-INDIVIDUAL"),
    ("SELECT array_agg(household_id) FROM usage", "SBX-Q-INDIVIDUAL"),
    ("SELECT group_concat(name) FROM usage", "SBX-Q-INDIVIDUAL"),
    ("SELECT min(name) FROM usage", "SBX-Q-INDIVIDUAL"),
    ("SELECT max(household_id) FROM usage", "SBX-Q-INDIVIDUAL"),
    ("SELECT max(kwh) FROM usage", "SBX-Q-INDIVIDUAL"),
    ("SELECT district, min(kwh) FROM usage GROUP BY 1", "SBX-Q-INDIVIDUAL"),
    ("SELECT any_value(name) FROM usage", "SBX-Q-INDIVIDUAL"),
    ("SELECT first(name) FROM usage", "SBX-Q-INDIVIDUAL"),
    ("SELECT arg_max(name, kwh) FROM usage", "SBX-Q-INDIVIDUAL"),
    ("SELECT median(kwh) FROM usage", "SBX-Q-INDIVIDUAL"),
    ("SELECT count(name) FROM usage", "SBX-Q-INDIVIDUAL"),
    ("SELECT count(household_id) FROM usage", "SBX-Q-INDIVIDUAL"),
    ("SELECT count(DISTINCT name) FROM usage", "SBX-Q-INDIVIDUAL"),
    ("SELECT sum(CAST(household_id AS BIGINT)) FROM usage", "SBX-Q-INDIVIDUAL"),
    # shapes
    (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
        "SBX-Q-SHAPE",
    ),
    ("WITH x AS (SELECT * FROM usage) SELECT count(*) FROM x", "SBX-Q-SHAPE"),
    ("SELECT count(*) FROM usage, homes", "SBX-Q-SHAPE"),
    ("SELECT count(*) FROM usage CROSS JOIN homes", "SBX-Q-SHAPE"),
    ("SELECT count(*) FROM usage u JOIN homes h ON true", "SBX-Q-SHAPE"),
    ("SELECT count(*) FROM usage u JOIN homes h ON u.district = h.zone", "SBX-Q-SHAPE"),
    ("SELECT count(*) FROM usage u LEFT JOIN homes h ON u.household_id = h.hid", "SBX-Q-SHAPE"),
    ("SELECT count(*) FROM usage u JOIN homes h USING (district)", "SBX-Q-SHAPE"),
    ("SELECT count(*) FROM usage NATURAL JOIN homes", "SBX-Q-SHAPE"),
    ("SELECT count(*) FROM usage u, LATERAL (SELECT 1) AS l", "SBX-Q-SHAPE"),
    ("SELECT count(*) OVER () FROM usage", "SBX-Q-SHAPE"),
    ("SELECT district, row_number() OVER (ORDER BY kwh) AS r FROM usage", "SBX-Q-SHAPE"),
    ("SELECT (SELECT count(*) FROM homes) AS c, count(*) FROM usage", "SBX-Q-SHAPE"),
    ("SELECT count(*) FROM usage WHERE kwh > (SELECT avg(kwh) FROM usage)", "SBX-Q-SHAPE"),
    ("SELECT count(*) FROM usage WHERE district IN (SELECT zone FROM homes)", "SBX-Q-SHAPE"),
    ("SELECT count(*) FROM usage WHERE EXISTS (SELECT 1 FROM homes)", "SBX-Q-SHAPE"),
    ("SELECT count(*) FROM (SELECT * FROM usage) AS s", "SBX-Q-SHAPE"),
    ("SELECT count(*) FROM usage UNION SELECT count(*) FROM homes", "SBX-Q-SHAPE"),
    ("SELECT count(*) FROM usage UNION ALL SELECT count(*) FROM usage", "SBX-Q-SHAPE"),
    ("SELECT count(*) FROM usage EXCEPT SELECT count(*) FROM usage", "SBX-Q-SHAPE"),
    ("SELECT district, count(*) FROM usage GROUP BY 1 HAVING count(*) > 5", "SBX-Q-SHAPE"),
    ("SELECT district, count(*) FROM usage GROUP BY 1 QUALIFY count(*) > 5", "SBX-Q-SHAPE"),
    ("SELECT count(*) FROM usage USING SAMPLE 10%", "SBX-Q-SHAPE"),
    ("SELECT count(*) FROM usage TABLESAMPLE 10%", "SBX-Q-SHAPE"),
    ("SELECT DISTINCT district FROM usage", "SBX-Q-SHAPE"),
    ("SELECT district, count(*) FROM usage GROUP BY 1 LIMIT 5 OFFSET 5", "SBX-Q-SHAPE"),
    ("SELECT count(*) FILTER (WHERE kwh > 1) FROM usage", "SBX-Q-SHAPE"),
    ("SELECT count(*) FROM usage GROUP BY district", "SBX-Q-SHAPE"),
    ("SELECT district, count(*) FROM usage GROUP BY ROLLUP (district)", "SBX-Q-SHAPE"),
    ("SELECT count(*) AS __units FROM usage", "SBX-Q-SHAPE"),
    ("SELECT district AS k, tariff AS k, count(*) FROM usage GROUP BY 1, 2", "SBX-Q-SHAPE"),
    ("SELECT count(*) FROM usage", None),  # control: allowed
]


@pytest.mark.parametrize(("sql", "rule"), ATTACKS, ids=[a[0][:60] or "empty" for a in ATTACKS])
def test_each_attack_is_refused_with_its_rule(sql: str, rule: str | None) -> None:
    if rule is None:
        assert isinstance(check_query(sql, CATALOG, dp=True), Plan)
        return
    for dp in (False, True):
        assert rule in rules(sql, dp=dp), sql


def _cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


def test_every_reason_names_a_rule_and_speaks_both_languages() -> None:
    for sql, rule in ATTACKS:
        if rule is None:
            continue
        for reason in refusal(sql).reasons:
            assert reason.rule.startswith("SBX-")
            assert reason.en.strip()
            assert not any(_cjk(ch) for ch in reason.en), reason
            assert any(_cjk(ch) for ch in reason.zh), reason


def test_all_reasons_are_collected_not_just_the_first() -> None:
    found = rules(
        "SELECT name, min(kwh), count(phone) FROM usage "
        "WHERE household_id = 'H1' AND read_csv('x') IS NULL GROUP BY name HAVING count(*) > 1"
    )
    assert found >= {
        "SBX-Q-GROUPKEY",
        "SBX-Q-INDIVIDUAL",
        "SBX-Q-COLUMNS",
        "SBX-Q-FILTER",
        "SBX-Q-FUNCTIONS",
        "SBX-Q-SHAPE",
    }


def test_a_syntax_error_says_where() -> None:
    (reason,) = refusal("SELECT district, count(*) FROM usage WHERE GROUP BY 1").reasons
    assert reason.rule == "SBX-Q-SYNTAX"
    assert "line 1, column" in reason.en
    assert "第 1 行" in reason.zh


def test_an_unknown_table_lists_the_granted_ones() -> None:
    (reason,) = refusal("SELECT count(*) FROM salaries").reasons
    assert "salaries" in reason.en
    assert "homes, usage" in reason.en


def test_a_too_long_query_is_refused_before_parsing() -> None:
    sql = "SELECT count(*) FROM usage WHERE " + " OR ".join(["kwh > 1"] * 5000)
    assert rules(sql) == {"SBX-Q-SYNTAX"}


def test_dp_needs_the_measure_bounds_from_the_profile() -> None:
    assert rules("SELECT sum(rooms) FROM homes", dp=True) == {"SBX-OUT-BOUND"}
    assert (
        check_query("SELECT sum(rooms) FROM homes", CATALOG, dp=False).aggregates[0].kind == "sum"
    )


# ------------------------------------------------------------------------------- plans
def test_plan_records_outputs_keys_aggregates_order_and_limit() -> None:
    plan = check_query(
        "SELECT district AS d, year(month) AS y, count(*) AS n, sum(kwh), avg(kwh) AS mean, "
        "count(DISTINCT household_id) AS homes FROM usage WHERE kwh >= 0 "
        "GROUP BY 1, 2 ORDER BY n DESC, d LIMIT 5",
        CATALOG,
        dp=True,
    )
    assert plan.tables == ("usage",)
    assert plan.columns == ("d", "y", "n", "sum_kwh", "mean", "homes")
    assert plan.group_keys == ("d", "y")
    kinds = {a.name: (a.kind, a.column, a.lower, a.upper) for a in plan.aggregates}
    assert kinds["n"] == ("count", None, None, None)
    assert kinds["sum_kwh"] == ("sum", "kwh", 0.0, 1000.0)
    assert kinds["mean"] == ("avg", "kwh", 0.0, 1000.0)
    assert kinds["homes"][0] == "count"
    assert plan.measurements == (
        "n__count",
        "sum_kwh__sum",
        "mean__sum",
        "mean__count",
        "homes__count",
    )
    assert plan.order_by == (("n", True), ("d", False))
    assert plan.limit == 5
    assert (plan.max_rows_per_unit, plan.max_groups_per_unit) == (L, G)
    assert "ORDER BY n" not in plan.staged_sql
    assert "LIMIT" not in plan.staged_sql


def test_order_by_an_aggregate_expression_maps_to_its_output() -> None:
    plan = check_query(
        "SELECT district, count(*) FROM usage GROUP BY district ORDER BY count(*) DESC",
        CATALOG,
        dp=False,
    )
    assert plan.order_by == (("count", True),)


# ------------------------------------------------------------------------------- execution
ROWS: list[tuple[Any, ...]] = [
    # household, name, district, tariff, month, kwh
    ("H1", "Li", "east", "res", "2026-01-01", 100.0),
    ("H1", "Li", "east", "res", "2026-02-01", 120.0),
    ("H2", "Wang", "east", "res", "2026-01-01", 80.0),
    ("H2", "Wang", "east", "res", "2026-02-01", None),
    ("H3", "Zhao", "west", "biz", "2026-01-01", 300.0),
    ("H3", "Zhao", "west", "biz", "2026-02-01", 5000.0),  # above the profile's bound
    ("H4", "Chen", "west", "res", "2026-01-01", -20.0),  # below it
    ("H5", "Sun", None, "res", "2026-01-01", 10.0),
]
HOME_ROWS = [("H1", "Li", "n", 90), ("H2", "Wang", "n", 70), ("H3", "Zhao", "s", 800)]


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE usage (household_id VARCHAR, name VARCHAR, district VARCHAR, "
        "tariff VARCHAR, month DATE, kwh DOUBLE, phone VARCHAR)"
    )
    connection.executemany(
        "INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?, '000')", [list(r) for r in ROWS]
    )
    # a heavy household: 30 rows in one group, 15 months
    heavy = [("H9", "Heavy", "north", "res", "2026-01-01", 10.0)] * 30
    heavy += [("H9", "Heavy", "north", "biz", f"2025-{m:02d}-01", 10.0) for m in range(1, 13)]
    heavy += [("H9", "Heavy", "north", "biz", f"2024-{m:02d}-01", 10.0) for m in range(1, 4)]
    connection.executemany(
        "INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?, '000')", [list(r) for r in heavy]
    )
    connection.execute(
        "CREATE TABLE homes (hid VARCHAR, owner VARCHAR, zone VARCHAR, area INTEGER, rooms INTEGER)"
    )
    connection.executemany("INSERT INTO homes VALUES (?, ?, ?, ?, 3)", [list(r) for r in HOME_ROWS])
    yield connection
    connection.close()


def staged(con: duckdb.DuckDBPyConnection, plan: Plan) -> dict[Any, dict[str, Any]]:
    """The staged result by group key tuple, each row as {column: value}."""
    cursor = con.execute(plan.staged_sql)
    names = [d[0] for d in cursor.description]
    out: dict[Any, dict[str, Any]] = {}
    for row in cursor.fetchall():
        record = dict(zip(names, row, strict=True))
        out[tuple(record[k] for k in plan.group_keys)] = record
    return out


def test_exact_answers_without_dp_match_plain_sql(con: duckdb.DuckDBPyConnection) -> None:
    sql = (
        "SELECT district, count(*) AS n, count(kwh) AS readings, sum(kwh) AS total, "
        "avg(kwh) AS mean, count(DISTINCT household_id) AS homes "
        "FROM usage WHERE tariff = 'res' OR kwh > 200 GROUP BY district"
    )
    plan = check_query(sql, CATALOG, dp=False)
    got = staged(con, plan)
    expected = con.execute(sql).fetchall()
    assert len(got) == len(expected)
    for district, n, readings, total, mean, homes in expected:
        row = got[(district,)]
        assert row["__units"] == homes
        assert row["homes__count"] == homes
        assert row["n__count"] == n
        assert row["readings__count"] == readings
        assert row["total__sum"] == pytest.approx(total)
        if mean is None:
            assert row["mean__count"] == 0
        else:
            assert row["mean__sum"] / row["mean__count"] == pytest.approx(mean)


def test_exact_answers_with_expression_keys_and_a_join(con: duckdb.DuckDBPyConnection) -> None:
    sql = (
        "SELECT h.zone, month(u.month) AS m, count(*) AS n, sum(h.area) AS area "
        "FROM usage AS u JOIN homes AS h ON u.household_id = h.hid "
        "WHERE u.month >= DATE '2026-01-01' GROUP BY h.zone, month(u.month)"
    )
    plan = check_query(sql, CATALOG, dp=False)
    assert plan.tables == ("usage", "homes")
    got = staged(con, plan)
    expected = {(z, m): (n, a) for z, m, n, a in con.execute(sql).fetchall()}
    assert {k: (r["n__count"], r["area__sum"]) for k, r in got.items()} == expected


def test_no_group_key_gives_one_row_even_when_nothing_matches(
    con: duckdb.DuckDBPyConnection,
) -> None:
    plan = check_query("SELECT count(*), sum(kwh) FROM usage WHERE kwh > 1e9", CATALOG, dp=True)
    (row,) = staged(con, plan).values()
    assert row["__units"] == 0
    assert row["count__count"] == 0
    assert row["sum_kwh__sum"] is None


def test_dp_bounds_each_units_contribution(con: duckdb.DuckDBPyConnection) -> None:
    plan = check_query(
        "SELECT district, count(*) AS n, sum(kwh) AS total, avg(kwh) AS mean "
        "FROM usage GROUP BY district",
        CATALOG,
        dp=True,
    )
    got = staged(con, plan)
    # the heavy household's 45 rows in "north" count L times at most
    assert got[("north",)]["n__count"] == L
    assert got[("north",)]["__units"] == 1
    assert got[("north",)]["mean__count"] == L
    # ... and its sum is its mean times those L rows (an average stays the unit's own mean)
    assert got[("north",)]["total__sum"] == pytest.approx(L * 10.0)
    assert got[("north",)]["total__sum"] / got[("north",)]["mean__count"] == pytest.approx(10.0)
    # measures clamped to the profile's [0, 1000]: 5000 → 1000, -20 → 0; NULL stays out
    assert got[("west",)]["total__sum"] == pytest.approx(300.0 + 1000.0 + 0.0)
    assert got[("east",)]["total__sum"] == pytest.approx(300.0)
    assert got[("east",)]["mean__count"] == 3  # the NULL reading is not counted
    assert got[("east",)]["n__count"] == 4
    assert got[(None,)]["__units"] == 1


def test_dp_keeps_each_unit_in_at_most_g_groups(con: duckdb.DuckDBPyConnection) -> None:
    sql = "SELECT month, count(*) AS n FROM usage WHERE district = 'north' GROUP BY month"
    exact = staged(con, check_query(sql, CATALOG, dp=False))
    bounded = staged(con, check_query(sql, CATALOG, dp=True))
    assert len(exact) == 16  # the heavy household is in 16 months
    assert len(bounded) == G
    # deterministic: the first G months by key
    assert sorted(bounded) == sorted(exact)[:G]
    assert all(r["__units"] == 1 for r in bounded.values())
    assert bounded == staged(con, check_query(sql, CATALOG, dp=True))


def test_a_failed_cast_is_null_not_an_error_that_echoes_a_value(
    con: duckdb.DuckDBPyConnection,
) -> None:
    plan = check_query(
        "SELECT CAST(district AS INTEGER) AS d, count(*) FROM usage GROUP BY 1", CATALOG, dp=False
    )
    assert "TRY_CAST" in plan.staged_sql
    assert set(staged(con, plan)) == {(None,)}


def test_output_names_are_case_preserving_and_deduplicated(con: duckdb.DuckDBPyConnection) -> None:
    plan = check_query(
        "SELECT District, count(*), count(*) FROM usage GROUP BY district", CATALOG, dp=False
    )
    assert plan.columns == ("District", "count", "count_2")
    assert set(staged(con, plan)) == {("east",), ("west",), ("north",), (None,)}


STAGED_CASES = [
    "SELECT count(*) FROM usage",
    "SELECT district, tariff, count(*), sum(kwh), avg(kwh) FROM usage GROUP BY ALL",
    "SELECT date_trunc('month', month) AS m, count(DISTINCT household_id) FROM usage GROUP BY 1",
    "SELECT extract(year FROM month) AS y, sum(CAST(kwh AS DECIMAL(18, 2))) FROM usage "
    "WHERE district IN ('east', 'west') AND kwh BETWEEN 0 AND 500 GROUP BY 1",
    "SELECT CASE WHEN district IS NULL THEN 'none' ELSE upper(district) END AS d, "
    "count(kwh) FROM usage WHERE NOT district LIKE 'n%' GROUP BY 1",
    "SELECT u.tariff, avg(h.area) FROM usage u INNER JOIN homes h ON h.hid = u.household_id "
    "GROUP BY u.tariff",
]


@pytest.mark.parametrize("sql", STAGED_CASES)
@pytest.mark.parametrize("dp", [False, True])
def test_staged_sql_runs_and_transpiles_to_spark(
    con: duckdb.DuckDBPyConnection, sql: str, dp: bool
) -> None:
    plan = check_query(sql, CATALOG, dp=dp)
    rows = staged(con, plan)
    assert rows
    assert all(r["__units"] >= 0 for r in rows.values())
    (spark,) = sqlglot.transpile(plan.staged_sql, read="duckdb", write="spark")
    assert "__units" in spark
    assert "TRY_CAST" not in plan.sql  # the record keeps the user's query


# ------------------------------------------------------------------------------- robustness
VALID = [
    "SELECT district, count(*), sum(kwh) FROM usage WHERE kwh > 10 GROUP BY district",
    "SELECT u.district, avg(h.area) FROM usage u JOIN homes h ON u.household_id = h.hid "
    "GROUP BY 1 ORDER BY 2 DESC LIMIT 3",
    "SELECT year(month) AS y, count(DISTINCT household_id) FROM usage GROUP BY ALL",
]
TOKENS = [
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "ORDER BY",
    "LIMIT",
    "JOIN",
    "ON",
    "UNION",
    "WITH",
    "(",
    ")",
    ",",
    ";",
    "*",
    "'",
    '"',
    "=",
    "<",
    "count(",
    "sum(",
    "min(",
    "read_csv(",
    "household_id",
    "name",
    "district",
    "kwh",
    "phone",
    "usage",
    "homes",
    "1",
    "NULL",
    "OVER",
    "RECURSIVE",
    "COPY",
    "ATTACH",
    "--",
    "/*",
    "::",
    "[",
    "]",
    "{",
    "}",
    "$1",
    "?",
    "\\",
]


def _outcome(sql: str, dp: bool) -> None:
    plan: Plan | None = None
    reasons: tuple[Any, ...] = ()
    try:
        plan = check_query(sql, CATALOG, dp=dp)
    except QueryRefused as refused:
        reasons = refused.reasons
    if plan is None:
        assert reasons
        assert all(r.rule.startswith("SBX-") and r.en and r.zh for r in reasons)
    else:
        assert plan.staged_sql.startswith("WITH base AS")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200), st.booleans())
def test_arbitrary_text_is_refused_or_planned_never_a_crash(sql: str, dp: bool) -> None:
    _outcome(sql, dp)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(VALID),
    st.lists(
        st.tuples(st.integers(0, 300), st.integers(0, 3), st.sampled_from(TOKENS)),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_mutated_sql_is_refused_or_planned_never_a_crash(
    base: str, edits: list[tuple[int, int, str]], dp: bool
) -> None:
    sql = base
    for at, cut, token in edits:
        at %= len(sql) + 1
        sql = f"{sql[:at]} {token} {sql[at + cut :]}"
    _outcome(sql, dp)


def test_settings_give_positive_bounds() -> None:
    assert L >= 1
    assert G >= 1
    assert math.isfinite(L * G)


def test_division_by_zero_is_null_not_an_error(con: duckdb.DuckDBPyConnection) -> None:
    plan = check_query(
        "SELECT length(district) // (length(district) - 4) AS r, count(*) FROM usage GROUP BY 1",
        CATALOG,
        dp=False,
    )
    assert (None,) in staged(con, plan)  # 'east' and 'west' divide by zero


def test_a_measure_in_where_is_compared_not_computed_on() -> None:
    assert rules("SELECT count(*) FROM usage WHERE kwh * 1e300 * 1e300 > 0") == {"SBX-Q-SHAPE"}
    assert rules("SELECT count(*) FROM usage WHERE round(kwh) = 100") == {"SBX-Q-SHAPE"}
    plan = check_query(
        "SELECT count(*) FROM usage WHERE (kwh > 1 AND kwh <= 2) OR kwh IN (3, 4) "
        "OR CAST(kwh AS INTEGER) BETWEEN 5 AND 6 OR kwh IS NULL",
        CATALOG,
        dp=False,
    )
    assert plan.group_keys == ()


def test_rows_without_a_privacy_unit_are_no_unit(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TEMP TABLE orphan AS SELECT * FROM usage LIMIT 0")
    catalog = {"orphan": TableSpec("orphan", USAGE.columns)}
    con.execute("INSERT INTO orphan SELECT * FROM usage WHERE household_id = 'H1'")
    con.execute(
        "INSERT INTO orphan SELECT NULL, name, district, tariff, month, kwh, phone FROM usage WHERE household_id = 'H2'"
    )
    plan = check_query(
        "SELECT count(*), count(DISTINCT household_id) AS homes FROM orphan", catalog, dp=False
    )
    (row,) = staged(con, plan).values()
    assert (row["count__count"], row["__units"], row["homes__count"]) == (4, 1, 1)
    con.execute("DROP TABLE orphan")


def test_joins_are_capped() -> None:
    join = " JOIN usage AS u{n} ON u{n}.household_id = u0.household_id"
    joins = "".join(join.format(n=n) for n in range(1, checker_settings().max_joins + 2))
    assert rules(f"SELECT count(*) FROM usage AS u0{joins}") == {"SBX-Q-SHAPE"}


def test_chinese_names_and_comments(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        'CREATE TEMP TABLE "用电" AS SELECT household_id AS "户号", district AS "区县", kwh AS "电量" '
        "FROM usage"
    )
    catalog = {
        "用电": TableSpec(
            "用电",
            (
                ColumnSpec("户号", "VARCHAR", R.PRIVACY_UNIT),
                ColumnSpec("区县", "VARCHAR", R.GROUP_KEY),
                ColumnSpec("电量", "DOUBLE", R.MEASURE, 0.0, 1000.0),
            ),
        )
    }
    plan = check_query(
        "SELECT 区县 /* 区 */, sum(电量) AS 总电量 -- 合计 */ DROP TABLE usage\nFROM 用电 GROUP BY 区县",
        catalog,
        dp=False,
    )
    assert plan.columns == ("区县", "总电量")
    assert "DROP" not in plan.staged_sql
    assert staged(con, plan)[("west",)]["总电量__sum"] == pytest.approx(5280.0)
    assert rules("SELECT 户号, count(*) FROM 用电 GROUP BY 1".replace("用电", "usage")) == {
        "SBX-Q-COLUMNS"
    }
    con.execute('DROP TABLE "用电"')


KEY_CHOICES = [
    "district",
    "tariff",
    "month",
    "year(month) AS y",
    "upper(district) AS ud",
    "CASE WHEN tariff = 'res' THEN 1 ELSE 0 END AS r",
    "substr(district, 1, 1) AS d1",
]
AGG_CHOICES = [
    "count(*) AS n",
    "sum(kwh) AS s",
    "avg(kwh) AS a",
    "count(kwh) AS c",
    "count(DISTINCT household_id) AS h",
]
WHERE_CHOICES = [
    "kwh > 50",
    "district IN ('east', 'west')",
    "kwh IS NULL OR kwh < 200",
    "NOT tariff = 'biz'",
    "month >= DATE '2026-01-01'",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(KEY_CHOICES), unique=True, max_size=3),
    st.lists(st.sampled_from(AGG_CHOICES), unique=True, min_size=1, max_size=5),
    st.lists(st.sampled_from(WHERE_CHOICES), unique=True, max_size=2),
    st.sampled_from(["names", "positions", "all"]),
)
def test_any_allowed_query_stages_to_the_exact_answer(
    con: duckdb.DuckDBPyConnection,
    keys: list[str],
    aggs: list[str],
    wheres: list[str],
    grouping: str,
) -> None:
    items = keys + aggs
    sql = f"SELECT {', '.join(items)} FROM usage"
    if wheres:
        sql += " WHERE " + " AND ".join(f"({w})" for w in wheres)
    if keys:
        sql += {
            "names": " GROUP BY " + ", ".join(k.split(" AS ")[0] for k in keys),
            "positions": " GROUP BY " + ", ".join(str(i + 1) for i in range(len(keys))),
            "all": " GROUP BY ALL",
        }[grouping]
    plan = check_query(sql, CATALOG, dp=False)
    got = staged(con, plan)
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    expected = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    assert len(got) == len(expected), sql
    for want in expected:
        row = got[tuple(want[k] for k in plan.group_keys)]
        for name, value in want.items():
            if name == "n" or name == "c":
                assert row[f"{name}__count"] == value, sql
            elif name == "h":
                assert row["h__count"] == row["__units"] == value, sql
            elif name == "s":
                assert row["s__sum"] == pytest.approx(value), sql
            elif name == "a":
                mean = row["a__sum"] / row["a__count"] if row["a__count"] else None
                assert mean == pytest.approx(value), sql


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(KEY_CHOICES), unique=True, max_size=3),
    st.lists(st.sampled_from(AGG_CHOICES), unique=True, min_size=1, max_size=5),
    st.lists(st.sampled_from(WHERE_CHOICES), unique=True, max_size=2),
)
def test_any_allowed_query_with_dp_stays_within_the_bounds(
    con: duckdb.DuckDBPyConnection, keys: list[str], aggs: list[str], wheres: list[str]
) -> None:
    sql = f"SELECT {', '.join(keys + aggs)} FROM usage"
    if wheres:
        sql += " WHERE " + " AND ".join(f"({w})" for w in wheres)
    if keys:
        sql += " GROUP BY ALL"
    rows = list(staged(con, check_query(sql, CATALOG, dp=True)).values())
    units = con.execute("SELECT count(DISTINCT household_id) FROM usage").fetchone()
    assert units is not None
    assert sum(r["__units"] for r in rows) <= G * units[0]
    for row in rows:
        for part, value in row.items():
            if part.endswith("__count") and part != "h__count":
                assert 0 <= value <= L * row["__units"], sql
            if part.endswith("__sum") and value is not None:
                assert 0.0 <= value <= L * 1000.0 * row["__units"], sql


def test_count_parts_come_as_64_bit_integers(con: duckdb.DuckDBPyConnection) -> None:
    plan = check_query(
        "SELECT district, count(*), avg(kwh), count(DISTINCT household_id) FROM usage GROUP BY 1",
        CATALOG,
        dp=False,
    )
    cursor = con.cursor()  # a connection of its own: `con` may hold an unfinished result
    schema = cursor.sql(plan.staged_sql).to_arrow_table().schema
    cursor.close()
    for part in ("__units", "count__count", "avg_kwh__count", "count_distinct_household_id__count"):
        assert str(schema.field(part).type) == "int64", part
