"""Live MySQL tables (``SqlTable``, ``sql_tables``) on a throwaway MariaDB server, read with PyMySQL.

One server per test run (``tests/support/mysqlserver.py``, ~1 s to start), one set of tables per
module: the tests only read. Where the MariaDB binaries are missing the tests skip and say what to
install; they carry the ``mysql`` marker, so in CI (``CI=true``) such a skip fails the run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import gc
import logging
import random
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from mysqlserver import MySqlServer, free_port
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SAWarning

from datafactor.dataplane import SourceUnavailable, SqlTable, sql_tables
from datafactor.errors import NotFound

pytestmark = pytest.mark.mysql

CUSTOMERS = "客户 信息-2024"  # Chinese, a space and a dash: only readable quoted
ORDERS_ROWS = 2_500


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[MySqlServer]:
    try:
        server = MySqlServer().start()
    except FileNotFoundError as exc:
        pytest.skip(f"MySQL tests need MariaDB's server binaries: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mysql_url(mysql_server: MySqlServer) -> str:
    url = mysql_server.url()
    engine = create_engine(url)
    with engine.begin() as conn:
        for statement in SCHEMA:
            conn.execute(text(statement))
        conn.execute(
            text(
                f"INSERT INTO `{CUSTOMERS}` VALUES (:id, :name, :balance, :score, :born, :seen, "
                ":stamp, :photo, :attrs, :big, :flag, :opened)"
            ),
            CUSTOMER_ROWS,
        )
        conn.execute(text(f"INSERT INTO `{CUSTOMERS}` (id) VALUES (4)"))  # NULL everywhere else
        conn.execute(text("INSERT INTO `order` VALUES (1, 'a', 2.5, 'x')"))
        conn.execute(
            text(
                f"INSERT INTO orders SELECT seq, CONCAT('订单', seq), seq * 1.25 "
                f"FROM seq_1_to_{ORDERS_ROWS}"
            )
        )
        conn.execute(text("INSERT INTO legacy VALUES (1, '0000-00-00'), (2, '2020-02-29')"))
    engine.dispose()
    return url


SCHEMA = [
    f"""CREATE TABLE `{CUSTOMERS}` (
        id INT PRIMARY KEY,
        姓名 VARCHAR(20),
        余额 DECIMAL(14, 2),
        score DOUBLE,
        born DATE,
        seen DATETIME(6),
        stamp TIMESTAMP NULL,
        photo BLOB,
        attrs JSON,
        big BIGINT UNSIGNED,
        flag BIT(1),
        opened TIME
    )""",
    # Reserved words, a space, a percent sign and a backtick, in table and column names.
    "CREATE TABLE `order` (`from` INT, `a b` VARCHAR(5), `50%` DOUBLE, `sel``ect` CHAR(1))",
    "CREATE TABLE orders (id INT PRIMARY KEY, item VARCHAR(20), amount DECIMAL(10, 2))",
    "CREATE TABLE legacy (id INT, day DATE)",
    f"CREATE VIEW `v_客户` AS SELECT id, 姓名 FROM `{CUSTOMERS}`",
    # 2 ms a row: read to the end it takes 40 s (see the early-stop test).
    "CREATE ALGORITHM=MERGE VIEW slow_rows AS "
    "SELECT seq AS n, REPEAT('x', 2000) AS pad, SLEEP(0.002) AS s FROM seq_1_to_20000",
]

CUSTOMER_ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "name": "张三",
        "balance": "12345678.90",
        "score": 0.1,
        "born": dt.date(1990, 3, 7),
        "seen": dt.datetime(2024, 2, 29, 23, 59, 58, 123456),
        "stamp": dt.datetime(2024, 2, 29, 12, 0, 0),
        "photo": b"\x89PNG\r\n\x1a\n\x00\xff",
        "attrs": '{"城市": "南宁"}',
        "big": 2**64 - 1,
        "flag": 1,
        "opened": "08:30:00",
    },
    {
        "id": 2,
        "name": "𠮷田 李",  # U+20BB7: four bytes in UTF-8, needs utf8mb4
        "balance": "-0.01",
        "score": -1.5e300,
        "born": dt.date(1970, 1, 1),
        "seen": dt.datetime(1999, 12, 31, 0, 0, 0),
        "stamp": None,
        "photo": b"",
        "attrs": "[]",
        "big": 0,
        "flag": 0,
        "opened": "-01:15:00",
    },
    {
        "id": 3,
        "name": "",
        "balance": "0.00",
        "score": 2.0,
        "born": dt.date(2024, 12, 31),
        "seen": dt.datetime(2038, 1, 19, 3, 14, 8),
        "stamp": dt.datetime(1999, 1, 1, 0, 0, 1),
        "photo": bytes(range(256)),
        "attrs": None,
        "big": 2**63,
        "flag": None,
        "opened": "100:00:00",
    },
]


def rows(table: SqlTable, batch_size: int = 65_536) -> list[dict[str, Any]]:
    return [row for batch in table.batches(batch_size) for row in batch.to_pylist()]


# ------------------------------------------------------------------------------------ listing


def test_tables_and_views_are_listed(mysql_url: str) -> None:
    names = sql_tables(mysql_url)
    assert {CUSTOMERS, "order", "orders", "legacy", "v_客户", "slow_rows"} <= set(names)
    assert names == sorted(names)
    assert sql_tables(mysql_url, schema="dept") == names


# -------------------------------------------------------------------------------- types, values


@pytest.mark.parametrize("scheme", ["mysql+pymysql", "mariadb+pymysql"])
def test_columns_keep_their_mysql_types(mysql_url: str, scheme: str) -> None:
    table = SqlTable(mysql_url.replace("mysql+pymysql", scheme, 1), CUSTOMERS)
    assert table._engine.dialect.name == scheme.split("+")[0]
    assert table.name == CUSTOMERS
    assert table.schema == pa.schema(
        [
            ("id", pa.int64()),
            ("姓名", pa.string()),
            ("余额", pa.string()),  # DECIMAL: exact text
            ("score", pa.float64()),  # DOUBLE (SQLAlchemy reflects it as a Decimal type)
            ("born", pa.date32()),
            ("seen", pa.timestamp("us")),
            ("stamp", pa.timestamp("us")),
            ("photo", pa.binary()),
            ("attrs", pa.string()),  # MariaDB's JSON is LONGTEXT
            ("big", pa.uint64()),  # BIGINT UNSIGNED
            ("flag", pa.uint64()),  # BIT(1)
            ("opened", pa.duration("us")),  # TIME: an interval of up to ±838 hours
        ]
    )
    assert rows(table)[0]["opened"] == dt.timedelta(hours=8, minutes=30)
    table.close()


def test_rows_come_back_exactly(mysql_url: str) -> None:
    table = SqlTable(mysql_url, CUSTOMERS)
    got = rows(table)
    assert [r["id"] for r in got] == [1, 2, 3, 4]
    first, second, third, empty = got
    assert first == {
        "id": 1,
        "姓名": "张三",
        "余额": "12345678.90",
        "score": 0.1,
        "born": dt.date(1990, 3, 7),
        "seen": dt.datetime(2024, 2, 29, 23, 59, 58, 123456),
        "stamp": dt.datetime(2024, 2, 29, 12, 0, 0),
        "photo": b"\x89PNG\r\n\x1a\n\x00\xff",
        "attrs": '{"城市": "南宁"}',
        "big": 2**64 - 1,
        "flag": 1,
        "opened": dt.timedelta(hours=8, minutes=30),
    }
    assert second["姓名"] == "𠮷田 李"
    assert second["余额"] == "-0.01"
    assert second["score"] == -1.5e300
    assert (second["photo"], second["flag"], second["big"]) == (b"", 0, 0)
    assert second["opened"] == -dt.timedelta(hours=1, minutes=15)
    assert third["photo"] == bytes(range(256))
    assert third["big"] == 2**63
    assert third["opened"] == dt.timedelta(hours=100)
    assert (third["姓名"], third["attrs"], third["flag"]) == ("", None, None)
    assert empty == {name: None for name in table.schema.names} | {"id": 4}
    assert table.warnings == []
    assert table.count_rows() == 4
    table.close()


def test_a_view_is_read_like_a_table(mysql_url: str) -> None:
    table = SqlTable(mysql_url, "v_客户")
    assert rows(table)[:2] == [{"id": 1, "姓名": "张三"}, {"id": 2, "姓名": "𠮷田 李"}]
    table.close()


def test_names_that_need_quoting(mysql_url: str) -> None:
    table = SqlTable(mysql_url, "order")
    assert table.schema.names == ["from", "a b", "50%", "sel`ect"]
    assert rows(table) == [{"from": 1, "a b": "a", "50%": 2.5, "sel`ect": "x"}]
    assert table.count_rows() == 1
    table.close()


def test_a_zero_date_is_read_as_empty_with_a_warning(mysql_url: str) -> None:
    # MariaDB's default sql_mode admits '0000-00-00'; PyMySQL hands it over as a string.
    table = SqlTable(mysql_url, "legacy")
    assert rows(table) == [{"id": 1, "day": None}, {"id": 2, "day": dt.date(2020, 2, 29)}]
    assert [w.code for w in table.warnings] == ["type-mismatch"]
    assert table.warnings[0].params == {"column": "day", "type": "date32[day]"}
    table.close()


def test_a_type_sqlalchemy_does_not_know_is_read_as_text(
    mysql_server: MySqlServer, mysql_url: str
) -> None:
    mysql_server.execute("CREATE TABLE hosts (id INT, addr INET6)", database="dept")
    mysql_server.execute("INSERT INTO hosts VALUES (1, '2001:db8::1'), (2, NULL)", database="dept")
    with pytest.warns(SAWarning, match="inet6"):
        table = SqlTable(mysql_url, "hosts")
    assert table.schema.field("addr").type == pa.string()
    assert rows(table) == [{"id": 1, "addr": "2001:db8::1"}, {"id": 2, "addr": None}]
    table.close()


def test_missing_table(mysql_url: str) -> None:
    with pytest.raises(NotFound):
        SqlTable(mysql_url, "no_such_table")


# ------------------------------------------------------------------------------------ batches


def test_a_table_is_streamed_in_batches(mysql_url: str) -> None:
    table = SqlTable(mysql_url, "orders")
    assert table.count_rows() == ORDERS_ROWS
    for _ in range(2):  # batches can be iterated again
        batches = list(table.batches(1_000))
        assert [b.num_rows for b in batches] == [1_000, 1_000, 500]
        assert all(b.schema == table.schema for b in batches)
    got = pa.Table.from_batches(batches)
    assert got.column("id").to_pylist() == list(range(1, ORDERS_ROWS + 1))
    assert got.column("item")[-1].as_py() == f"订单{ORDERS_ROWS}"
    assert got.column("amount")[1].as_py() == "2.50"
    assert table.row_count is None  # COUNT(*) is a scan: only on request
    table.close()


def test_stopping_early_does_not_read_the_rest(mysql_server: MySqlServer, mysql_url: str) -> None:
    # PyMySQL reads every remaining row of an unbuffered result before it lets the connection
    # go: without care, a scan that stops after its sample would read the whole table (here 40 s).
    table = SqlTable(mysql_url, "slow_rows")
    started = time.monotonic()
    batches = table.batches(10)
    assert isinstance(batches, Generator)
    assert next(batches).num_rows == 10
    batches.close()
    gc.collect()  # PyMySQL's result would also drain itself when collected
    assert time.monotonic() - started < 10
    running = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s"
    deadline = time.monotonic() + 10
    while mysql_server.query(running, (mysql_server.user,))[0][0] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mysql_server.query(running, (mysql_server.user,))[0][0] == 0  # the server stopped too
    table.close()


# ------------------------------------------------------------------------- unreachable, secrets


def assert_secret_hidden(
    error: SourceUnavailable, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert error.status == 502
    assert error.code == "source-unavailable"
    for shown in (str(error), repr(error), repr(error.args), repr(error.params), caplog.text):
        assert secret not in shown
        assert secret.replace("@", "%40") not in shown


def test_a_wrong_password_is_refused_without_showing_it(
    mysql_server: MySqlServer, mysql_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Wr0ng-p@ss-4-census"
    url = mysql_server.url(password=secret)
    with caplog.at_level(logging.DEBUG), pytest.raises(SourceUnavailable) as caught:
        SqlTable(url, CUSTOMERS)
    assert "Access denied" in str(caught.value)
    assert f"mysql+pymysql://census:***@127.0.0.1:{mysql_server.port}/dept" in str(caught.value)
    assert_secret_hidden(caught.value, secret, caplog)
    with caplog.at_level(logging.DEBUG), pytest.raises(SourceUnavailable) as caught:
        sql_tables(url)
    assert_secret_hidden(caught.value, secret, caplog)


def test_an_unreachable_server_is_named_without_its_password(
    mysql_server: MySqlServer, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens there
    url = mysql_server.url(port=port)
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG), pytest.raises(SourceUnavailable) as caught:
        SqlTable(url, CUSTOMERS, connect_timeout=2)
    assert time.monotonic() - started < 5
    assert "Can't connect" in str(caught.value)
    assert f"census:***@127.0.0.1:{port}/dept" in str(caught.value)
    assert_secret_hidden(caught.value, mysql_server.password, caplog)


# ----------------------------------------------------------------------------------- discovery


def test_a_scan_finds_resident_ids_in_a_mysql_table(
    mysql_server: MySqlServer, mysql_url: str
) -> None:
    from datafactor.discovery.corpus import generate_value
    from datafactor.discovery.scan import scan_source

    rng = random.Random(11)
    ids: dict[str, None] = {}
    while len(ids) < 300:
        ids[generate_value("cn_resident_id", rng)] = None
    mysql_server.execute(
        "CREATE TABLE `居民` (序号 INT PRIMARY KEY, 身份证号 VARCHAR(18), 备注 VARCHAR(20), "
        "余额 DECIMAL(10, 2), 登记时间 DATETIME, 时长 TIME, 照片 BLOB, 标志 BIT(1))",
        database="dept",
    )
    engine = create_engine(mysql_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO `居民` VALUES (:n, :id, :note, :amount, '2024-05-01 08:00:00', "
                "'01:30:00', :photo, 1)"
            ),
            [
                {"n": n, "id": value, "note": "正常", "amount": f"{n}.50", "photo": b"\x00\x01"}
                for n, value in enumerate(ids)
            ],
        )
    engine.dispose()
    table = SqlTable(mysql_url, "居民")
    report = scan_source(table)
    found = {c.name: c for c in report.columns}
    assert found["身份证号"].types == ("cn_resident_id",)
    assert found["身份证号"].sensitive
    assert found["身份证号"].match_ratio == 1.0
    assert found["备注"].types == ()
    assert report.rows_scanned == 300
    table.close()


def test_a_mysql_table_loads_into_duckdb(mysql_url: str, tmp_path: Path) -> None:
    from datafactor.dataplane import DuckDBEngine

    table = SqlTable(mysql_url, CUSTOMERS)
    with contextlib.closing(DuckDBEngine(temp_directory=tmp_path)) as engine:
        engine.load("customers", table)
        got = engine.query(
            "SELECT id, big, flag, CAST(opened AS VARCHAR) AS opened, "
            "CAST(余额 AS DECIMAL(14, 2)) AS balance "
            "FROM customers ORDER BY id LIMIT 1"
        ).to_pylist()
    assert got == [
        {
            "id": 1,
            "big": 2**64 - 1,
            "flag": 1,
            "opened": "08:30:00",
            "balance": decimal.Decimal("12345678.90"),
        }
    ]
    table.close()
