"""The sandbox's Spark engine through Spark Connect (``DATAFACTOR_SPARK_REMOTE``): a checked staged
query gives the same answer through a Spark Connect server as on DuckDB, an engine error is
refused without its message, a query that reaches outside the granted views is refused, and the
time limit stops a query.

The module starts one real Spark Connect server — ``SparkConnectServer`` from the PySpark wheel,
through its ``spark-submit``, in a JVM of its own on a free local port, with the static
lock-down a cluster operator sets — and stops it (and its client session) at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datafactor.sandbox import checker
from datafactor.sandbox.domain import ColumnRole, ColumnSpec, Engine, Limits, TableSpec
from datafactor.sandbox.errors import QueryRefused
from datafactor.sandbox.worker import TableSource, WorkerPool, close_spark_connect, run_staged
from datafactor.settings import Settings, get_settings

pytestmark = pytest.mark.spark

REGIONS = ["南宁", "柳州", "桂林", "梧州"]
SECRET = "Alice Zhang"
START_SECONDS = 180  # a generous wait on a busy machine; it normally starts in about 10 s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local Spark Connect server for the module: its URL."""
    import pyspark

    if shutil.which("java") is None:
        pytest.skip("Spark Connect needs a Java runtime (17+)")
    home = Path(pyspark.__file__).parent
    work = tmp_path_factory.mktemp("spark-connect")
    port = _free_port()
    static = {
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        # What a cluster operator sets (docs/sandbox.md): no reflection, no Hive, no UI.
        "spark.sql.reflect.allowList": "(?!)",
        "spark.sql.catalogImplementation": "in-memory",
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "2",
        "spark.local.dir": str(work / "local"),
        "spark.sql.warehouse.dir": str(work / "warehouse"),
    }
    command = [
        str(home / "bin" / "spark-submit"),
        "--master",
        "local[2]",
        "--driver-memory",
        "512m",
        "--class",
        "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--name",
        "datafactor-test-spark-connect",
    ]
    for key, value in static.items():
        command += ["--conf", f"{key}={value}"]
    command.append("spark-internal")
    environment = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_CONF_DIR": str(work),  # no spark-defaults.conf from elsewhere
    }
    environment.pop("SPARK_REMOTE", None)
    log_path = work / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            command,
            cwd=work,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole below
        )
    try:
        deadline = time.monotonic() + START_SECONDS
        while not _listening(port):
            if server.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"the Spark Connect server did not start:\n{tail}")
            time.sleep(0.25)
        yield f"sc://127.0.0.1:{port}"
    finally:
        close_spark_connect()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:  # a throwaway server: a few seconds to stop cleanly (it can take 30), then killed
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerPool]:
    with WorkerPool(1, spill_directory=tmp_path_factory.mktemp("spill")) as pool:
        yield pool


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> list[TableSource]:
    folder = tmp_path_factory.mktemp("connect-data")
    n = 400
    usage = pa.table(
        {
            "household": [f"H{i % 150:04d}" for i in range(n)],
            "region": [REGIONS[(i * 7) % 4] if i % 37 else None for i in range(n)],
            "month": [1 + i % 12 for i in range(n)],
            "kwh": [None if i % 53 == 0 else (i * 13 % 700) / 4 for i in range(n)],
        }
    )
    pq.write_table(usage, folder / "usage.parquet")
    pq.write_table(pa.table({"label": [SECRET, "1", "2"]}), folder / "people.parquet")
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


def comparable(table: pa.Table) -> list[tuple[Any, ...]]:
    """Rows as plain values, sorted; numbers as rounded floats, whatever their Arrow type."""

    def plain(value: Any) -> Any:
        if isinstance(value, Decimal | float | int) and not isinstance(value, bool):
            return round(float(value), 6)
        return value

    rows = [tuple(plain(v) for v in row.values()) for row in table.to_pylist()]
    return sorted(rows, key=lambda r: tuple((v is not None, str(v)) for v in r))


def test_a_checked_query_gives_the_same_answer_through_spark_connect_as_on_duckdb(
    remote, pool, sources, monkeypatch
):
    staged = checker.check_query(
        "SELECT region, COUNT(*) AS n, SUM(kwh) AS total, AVG(kwh) AS avg_kwh FROM usage "
        "WHERE month <= 6 GROUP BY region",
        CATALOG,
        dp=False,
    ).staged_sql
    duck = run_staged(staged, sources, limits=Limits(), pool=pool)
    spark = run_staged(staged, sources, limits=Limits(), engine=Engine.SPARK, spark_remote=remote)
    assert spark.column_names == duck.column_names
    assert len(duck) > 1
    assert comparable(spark) == comparable(duck)
    # The service's minimum-group filter too, and the setting picks the server.
    filtered = checker.with_min_units(
        checker.check_query(
            "SELECT region, COUNT(*) AS n FROM usage GROUP BY region", CATALOG, dp=True
        ).staged_sql,
        30,
    )
    assert Settings(spark_remote=remote).spark_remote == remote
    duck = run_staged(filtered, sources, limits=Limits(), pool=pool)
    monkeypatch.setenv("DATAFACTOR_SPARK_REMOTE", remote)
    get_settings.cache_clear()
    try:
        spark = run_staged(filtered, sources, limits=Limits(), engine=Engine.SPARK)
    finally:
        monkeypatch.delenv("DATAFACTOR_SPARK_REMOTE")
        get_settings.cache_clear()
    assert len(duck) > 0 and comparable(spark) == comparable(duck)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT raise_error(label) AS e FROM people",  # the engine's message holds the value
        "SELECT household FROM people",  # no such column
        "SELECT * FROM parquet.`{path}`",  # SQL on a file
        "SELECT reflect('java.lang.System', 'getenv', 'HOME') AS h",  # Java reflection
        "SELECT COUNT(*) AS n FROM usage; SELECT label FROM people",  # two statements
    ],
)
def test_spark_connect_refuses_without_echoing_the_engine(remote, sources, sql):
    with pytest.raises(QueryRefused) as caught:
        run_staged(
            sql.format(path=sources[1].path),
            sources,
            limits=Limits(),
            engine=Engine.SPARK,
            spark_remote=remote,
        )
    for reason in caught.value.reasons:
        assert reason.rule == "SBX-EXE-ERROR"
        assert "Alice" not in reason.en and "Alice" not in reason.zh
        assert "USER_RAISED_EXCEPTION" not in reason.en


def test_spark_connect_is_not_ansi_and_caps_the_rows(remote, sources):
    # A value-dependent failure would tell whether a row holds the value: it is NULL instead.
    table = run_staged(
        "SELECT SUM(CAST(label AS INTEGER)) AS s FROM people",
        sources,
        limits=Limits(),
        engine=Engine.SPARK,
        spark_remote=remote,
    )
    assert table.column("s").to_pylist() == [3]
    with pytest.raises(QueryRefused) as caught:
        run_staged(
            "SELECT household, COUNT(*) AS n__count FROM usage GROUP BY household",
            sources,
            limits=Limits(max_result_rows=20),
            engine=Engine.SPARK,
            spark_remote=remote,
        )
    assert caught.value.reasons[0].rule == "SBX-OUT-SIZE"


def test_spark_connect_stops_a_query_at_the_time_limit(remote, sources):
    with pytest.raises(QueryRefused) as caught:
        run_staged(
            "SELECT COUNT(*) AS n FROM usage a CROSS JOIN usage b CROSS JOIN usage c "
            "CROSS JOIN usage d",
            sources,
            limits=Limits(seconds=2),
            engine=Engine.SPARK,
            spark_remote=remote,
        )
    reason = caught.value.reasons[0]
    assert reason.rule == "SBX-EXE-LIMITS" and "2 seconds" in reason.en
    # The session goes on serving queries after the interruption.
    table = run_staged(
        "SELECT COUNT(*) AS n FROM usage",
        sources,
        limits=Limits(),
        engine=Engine.SPARK,
        spark_remote=remote,
    )
    assert table.column("n").to_pylist() == [400]
