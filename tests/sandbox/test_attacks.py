"""Attacks of a malicious data buyer on the sandbox, each through the checker and the staged
query the service runs (``checker.with_min_units`` over ``Plan.staged_sql``) in a real worker.

The data: 200 households in five districts of 40, and one household alone in the district
"rare", whose kWh (1234.5) the attacker wants. k is 10. A failed query is refunded and says
only that it failed — so a failure that depends on the data is itself an answer, one that
neither k nor the noise protects. Each test asks the same question on both sides of the secret
(kWh over 1000, over 1500) and shows the answers do not tell them apart.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sandbox_support import another_grant, offer_world

from datafactor import ledger
from datafactor.sandbox import dp, services
from datafactor.sandbox.checker import check_query, with_min_units
from datafactor.sandbox.domain import ColumnRole, ColumnSpec, Limits, TableSpec
from datafactor.sandbox.errors import QueryRefused
from datafactor.sandbox.worker import TableSource, WorkerPool, run_staged

R = ColumnRole
K = 10
CATALOG = {
    "t": TableSpec(
        "t",
        (
            ColumnSpec("hid", "VARCHAR", R.PRIVACY_UNIT),
            ColumnSpec("district", "VARCHAR", R.GROUP_KEY),
            ColumnSpec("month", "BIGINT", R.GROUP_KEY),
            ColumnSpec("kwh", "DOUBLE", R.MEASURE, 0.0, 2000.0),
        ),
    )
}
COLUMNS = ("hid", "district", "month", "kwh")
SECRET_KWH = 1234.5
BELOW, ABOVE = 1000, 1500  # the secret lies between


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> list[TableSource]:
    rng = random.Random(8)
    rows: list[tuple[str, str, int, float]] = []
    for h in range(200):
        for month in range(1, 4):
            rows.append((f"h{h}", f"d{h % 5}", month, rng.uniform(0.0, 900.0)))
    rows.append(("target", "rare", 3, SECRET_KWH))
    table = pa.table({name: [r[i] for r in rows] for i, name in enumerate(COLUMNS)})
    path = tmp_path_factory.mktemp("attacks") / "t.parquet"
    pq.write_table(table, path)
    return [TableSource("t", str(path), COLUMNS)]


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerPool]:
    with WorkerPool(1, spill_directory=tmp_path_factory.mktemp("spill")) as pool:
        yield pool


def answer(pool, source, sql: str, *, dp_on: bool = False, rows: int = 10_000) -> object:
    """What the grantee learns: the released rows, or the refusal's rule ids."""
    plan = check_query(sql, CATALOG, dp=dp_on)
    try:
        staged = run_staged(
            with_min_units(plan.staged_sql, K),
            source,
            limits=Limits(max_result_rows=rows),
            pool=pool,
        )
    except QueryRefused as refused:
        return ("refused", [r.rule for r in refused.reasons])
    if dp_on:  # noisy: whether it ran is what matters here
        dp.release(plan, staged, k=K, epsilon=1.0)
        return "released"
    return dp.release(plan, staged, k=K, epsilon=None).rows


@pytest.mark.parametrize(
    "template",
    [
        # integer overflow, only on the rows the CASE reaches
        "SELECT district, COUNT(*) AS n FROM t "
        "WHERE CASE WHEN kwh > {x} THEN month * 4611686018427387904 ELSE 0 END > 0 "
        "GROUP BY district",
        # a substring offset DuckDB rejects, evaluated only on the rows the filter keeps
        "SELECT substring(district, -9223372036854775808, 1) AS d, COUNT(*) AS n FROM t "
        "WHERE kwh > {x} GROUP BY 1",
        # overflow in a group key, on the rows the filter keeps
        "SELECT month * 4611686018427387904 AS m, COUNT(*) AS n FROM t WHERE kwh > {x} GROUP BY 1",
    ],
)
@pytest.mark.parametrize("dp_on", [False, True])
def test_an_engine_error_that_depends_on_a_value_cannot_act_as_an_oracle(
    pool, source, template, dp_on
):
    below = answer(pool, source, template.format(x=BELOW), dp_on=dp_on)
    above = answer(pool, source, template.format(x=ABOVE), dp_on=dp_on)
    assert below == above
    assert not (isinstance(below, tuple) and below and below[0] == "refused"), below


def test_the_result_size_cap_does_not_reveal_a_group_smaller_than_k(pool, source):
    # Five districts of 40 fit a cap of 5 rows; "rare" (one household) is a sixth group only
    # when its kWh passes the filter. Before, the staged result held it — and was refused.
    template = (
        "SELECT district, COUNT(*) AS n FROM t WHERE district <> 'rare' OR kwh > {x} GROUP BY 1"
    )
    below = answer(pool, source, template.format(x=BELOW), rows=5)
    above = answer(pool, source, template.format(x=ABOVE), rows=5)
    assert below == above
    assert [row[0] for row in below] == ["d0", "d1", "d2", "d3", "d4"]


def test_groups_of_fewer_than_k_units_never_leave_the_worker(pool, source):
    plan = check_query("SELECT district, COUNT(*) AS n FROM t GROUP BY 1", CATALOG, dp=True)
    staged = run_staged(with_min_units(plan.staged_sql, K), source, limits=Limits(), pool=pool)
    assert sorted(staged.column("district").to_pylist()) == ["d0", "d1", "d2", "d3", "d4"]


@pytest.mark.parametrize("target", ["DECIMAL(38, 37)", "NUMERIC(19, 2)", "HUGEINT"])
def test_a_sum_cast_to_a_type_that_can_overflow_is_refused(target):
    # SUM(DECIMAL(38, 37)) fails once the values add up past 10: with WHERE kwh > x, the
    # failure told whether one household's kWh passed x.
    with pytest.raises(QueryRefused) as caught:
        check_query(
            f"SELECT district, SUM(CAST(kwh AS {target})) AS s FROM t GROUP BY 1",
            CATALOG,
            dp=False,
        )
    assert "SBX-Q-FUNCTIONS" in [r.rule for r in caught.value.reasons]
    assert "DOUBLE" in caught.value.reasons[0].en and "DOUBLE" in caught.value.reasons[0].zh


def test_a_sum_cast_to_double_a_64_bit_integer_or_a_short_decimal_still_runs(pool, source):
    rows = answer(
        pool,
        source,
        "SELECT district, SUM(CAST(kwh AS DOUBLE)) AS s, AVG(CAST(kwh AS BIGINT)) AS a, "
        "SUM(CAST(kwh AS DECIMAL(18, 2))) AS d "
        "FROM t GROUP BY 1",
    )
    assert isinstance(rows, tuple) and len(rows) == 5 and rows[0] != "refused", rows


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT CAST(t.month AS VARCHAR) AS m, COUNT(*) AS n FROM t GROUP BY 1",
        # a self-join whose aliases are the staged query's own table names, swapped
        "SELECT CAST(a0.month AS VARCHAR) AS m, SUM(CAST(a1.kwh AS DOUBLE)) AS s "
        "FROM t AS a1 JOIN t AS a0 ON a1.hid = a0.hid "
        "WHERE a1.month / (a0.month - 1) >= 0 GROUP BY 1",
    ],
)
def test_a_column_under_a_cast_or_a_division_is_the_one_the_checker_resolved(pool, source, sql):
    # The staged query names tables a0, a1 …: a column under CAST or / kept the user's
    # qualifier, so the query failed — or, with aliases swapped, read the other table.
    plan = check_query(sql, CATALOG, dp=False)
    for alias in ("t.", "a0.month", "a1.kwh"):
        assert alias not in plan.staged_sql
    rows = answer(pool, source, sql)
    assert isinstance(rows, tuple) and rows and rows[0] != "refused", rows


def test_a_column_outside_the_policy_fields_is_not_in_the_worker_s_file(
    db, settings, tmp_path, enterprise, other_enterprise, operator, monkeypatch
):
    # The checker refuses it; the file the worker reads must not hold it either, so a way
    # past the checker would still not reach it.
    world = offer_world(db, settings, tmp_path, enterprise, other_enterprise, operator, k=5)
    grant_id = another_grant(
        db, settings, world, other_enterprise.party_id, fields=["account", "county"]
    )
    refused = services.run_query(
        db, settings, world.grantee, grant_id, "SELECT SUM(kwh) AS s FROM households"
    )
    assert refused.decision == "refused"
    assert "SBX-Q-COLUMNS" in {r["rule"] for r in refused.reasons}

    read: list[list[str]] = []
    real = services.worker.run_staged

    def spy(sql, sources, **kw):
        read.extend(pq.read_schema(s.path).names for s in sources)
        return real(sql, sources, **kw)

    monkeypatch.setattr(services.worker, "run_staged", spy)
    answer = services.run_query(
        db,
        settings,
        world.grantee,
        grant_id,
        "SELECT county, COUNT(*) AS n FROM households GROUP BY county",
    )
    assert answer.decision == "allowed" and len(answer.rows) == 3
    assert read and all("kwh" not in names and "name" not in names for names in read)


def _unsalted(columns, rows) -> str:
    body = {"columns": list(columns), "rows": [list(r) for r in rows]}
    return hashlib.sha256(ledger.canonical_json(body)).hexdigest()


def test_a_held_result_cannot_be_read_off_its_hash(
    db, settings, tmp_path, enterprise, other_enterprise, operator
):
    # The hash is on the public ledger and in the grantee's answer and audit trail. Unsalted,
    # a one-count result is found by trying the counts: output review (and k) undone.
    world = offer_world(
        db, settings, tmp_path, enterprise, other_enterprise, operator, k=5, review=True
    )
    held = services.run_query(
        db, settings, world.grantee, world.grant_id, "SELECT COUNT(*) AS n FROM households"
    )
    assert held.held and held.rows == [] and held.result_hash
    guesses = {_unsalted(["n"], [[n]]): n for n in range(1000)}
    assert held.result_hash not in guesses
    with db.read() as s:
        row = services.get_query(s, world.grantee, held.id or "")
        mine = services.query_dict(row, world.grantee)
        event = ledger.get_entry(s, row.ledger_index).event()
    assert mine["rows"] == [] and mine["row_count"] is None and mine["result_salt"] is None
    assert event is not None and held.result_hash in json.dumps(event)

    with db.write() as s:
        services.review_query(s, world.holder, held.id or "", release=True)
    with db.read() as s:
        mine = services.query_dict(
            services.get_query(s, world.grantee, held.id or ""), world.grantee
        )
    assert mine["rows"] == [[63]] and mine["row_count"] == 1
    body = {"columns": ["n"], "rows": [[63]], "salt": mine["result_salt"]}
    assert hashlib.sha256(ledger.canonical_json(body)).hexdigest() == held.result_hash


def test_the_ledger_does_not_confirm_a_guessed_query_text(
    db, settings, tmp_path, enterprise, other_enterprise, operator
):
    # The ledger is public: the bare hash of a query's text would let anyone confirm which of
    # a few likely queries a buyer ran. It is a commitment instead, checkable with the salt
    # shown to those who may read the text.
    world = offer_world(db, settings, tmp_path, enterprise, other_enterprise, operator, k=5)
    sql = "SELECT county, COUNT(*) AS n FROM households GROUP BY county"
    answer = services.run_query(db, settings, world.grantee, world.grant_id, sql)
    with db.read() as s:
        row = services.get_query(s, world.holder, answer.id or "")
        shown = services.query_dict(row, world.holder)
        event = ledger.get_entry(s, row.ledger_index).event()
    assert event is not None
    payload = event["payload"]
    assert payload["sql_sha256"] != hashlib.sha256(sql.encode()).hexdigest()
    body = {"salt": shown["sql_salt"], "sql": shown["sql"]}
    assert hashlib.sha256(ledger.canonical_json(body)).hexdigest() == payload["sql_sha256"]
    assert shown["sql_sha256"] == payload["sql_sha256"]
