"""The sandbox worker: a staged query runs in a separate, limited process that reads only the
granted columns of the granted files, and every failure is refused without showing a data value.

The malicious queries here are passed to the worker directly — the checker would refuse them
first; these tests show that the worker holds even when the checker does not. One pool (one
worker) serves the whole module; it is closed at the end and its process must be gone.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datafactor.sandbox.domain import Limits
from datafactor.sandbox.errors import QueryRefused
from datafactor.sandbox.worker import TableSource, WorkerPool, default_limits, run_staged

SECRET = "Alice Zhang"
REGIONS = ["Nanning", "Liuzhou", "Guilin"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sandbox-data")
    n = 60
    table = pa.table(
        {
            "household": [f"H{i:03d}" for i in range(n)],
            "region": [REGIONS[i % 3] for i in range(n)],
            "kwh": [float(i) for i in range(n)],
            "label": [SECRET if i == 7 else str(i) for i in range(n)],
        }
    )
    pq.write_table(table.select(["household", "region", "kwh", "label"]), folder / "full.parquet")
    pq.write_table(table.select(["household", "region", "kwh"]), folder / "granted.parquet")
    pq.write_table(table.select(["label"]), folder / "labels.parquet")
    pq.write_table(pa.table({"password": ["hunter2"]}), folder / "other.parquet")
    return folder


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerPool]:
    with WorkerPool(1, spill_directory=tmp_path_factory.mktemp("spill")) as pool:
        yield pool


def granted(data: Path) -> list[TableSource]:
    return [TableSource("usage", str(data / "granted.parquet"), ("household", "region", "kwh"))]


def run(pool: WorkerPool, sql: str, sources: list[TableSource], **limits: float) -> pa.Table:
    return run_staged(sql, sources, limits=Limits(**limits), pool=pool)  # type: ignore[arg-type]


def refused(
    pool: WorkerPool, sql: str, sources: list[TableSource], **limits: float
) -> QueryRefused:
    with pytest.raises(QueryRefused) as caught:
        run(pool, sql, sources, **limits)
    for reason in caught.value.reasons:
        for text in (reason.en, reason.zh):
            assert SECRET not in text and "Alice" not in text and "hunter2" not in text
            assert "H007" not in text
    return caught.value


STAGED = (
    "SELECT region, COUNT(DISTINCT household) AS __units, COUNT(*) AS n__count, "
    "SUM(LEAST(GREATEST(kwh, 0), 50)) AS kwh__sum FROM usage GROUP BY region"
)


def test_a_staged_query_answers_arrow_from_a_worker_process(pool, data):
    table = run(pool, STAGED, granted(data))
    rows = {r["region"]: r for r in table.to_pylist()}
    assert set(rows) == set(REGIONS)
    assert all(r["__units"] == 20 and r["n__count"] == 20 for r in rows.values())
    expected = sum(min(float(i), 50.0) for i in range(0, 60, 3))
    assert rows["Nanning"]["kwh__sum"] == pytest.approx(expected)
    assert pool.workers and os.getpid() not in pool.workers


def test_the_worker_process_is_reused(pool, data):
    run(pool, STAGED, granted(data))  # a worker exists and is idle, whatever ran before
    before = pool.workers
    run(pool, STAGED, granted(data))
    assert pool.workers == before and before


def test_default_limits_come_from_the_rules():
    limits = default_limits()
    assert limits.seconds > 0 and limits.memory_mb > 0 and limits.max_result_rows > 0


def test_a_file_with_more_than_the_granted_columns_is_not_run(pool, data):
    source = TableSource("usage", str(data / "full.parquet"), ("household", "region", "kwh"))
    with pytest.raises(ValueError, match="exactly the granted columns"):
        run(pool, STAGED, [source])


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_parquet('{other}')",
        "SELECT * FROM '{other}'",
        "SELECT label FROM read_parquet('{labels}')",
        "SELECT * FROM glob('{folder}/*')",
        "SELECT * FROM parquet_metadata('{other}')",
        "COPY (SELECT * FROM usage) TO '{folder}/stolen.csv'",
        "ATTACH '{folder}/stolen.db' AS stolen",
        "SET threads = 8",
        "RESET memory_limit",
        "SET enable_external_access = true",
        "PRAGMA threads = 8",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SELECT 1; SELECT * FROM read_parquet('{other}')",
        "CREATE TABLE copy AS SELECT * FROM usage",
        "SELECT label FROM usage",
        "SELECT * FROM usage WHERE label = 'x'",
    ],
)
def test_a_malicious_staged_query_reaches_nothing_outside_the_granted_columns(pool, data, sql):
    text = sql.format(other=data / "other.parquet", labels=data / "labels.parquet", folder=data)
    reasons = refused(pool, text, granted(data)).reasons
    assert reasons[0].rule in ("SBX-EXE-ERROR",)
    assert "No value from the data is shown" in reasons[0].en
    assert not (data / "stolen.csv").exists() and not (data / "stolen.db").exists()


def test_reading_the_granted_file_by_path_sees_only_the_granted_columns(pool, data):
    path = data / "granted.parquet"
    table = run(pool, f"SELECT * FROM read_parquet('{path}')", granted(data))
    assert table.column_names == ["household", "region", "kwh"]


def test_settings_stay_as_the_worker_set_them(pool, data):
    table = run(
        pool,
        "SELECT current_setting('threads') AS t, current_setting('enable_external_access') AS e, "
        "current_setting('lock_configuration') AS l",
        granted(data),
        threads=1,
    )
    assert table.to_pylist() == [{"t": 1, "e": False, "l": True}]


def test_a_conversion_error_does_not_echo_the_value(pool, data):
    sources = [TableSource("people", str(data / "labels.parquet"), ("label",))]
    reasons = refused(pool, "SELECT SUM(CAST(label AS INTEGER)) AS s FROM people", sources).reasons
    assert reasons[0].rule == "SBX-EXE-ERROR"
    assert "conversion" in reasons[0].en and "类型转换" in reasons[0].zh


def test_an_arithmetic_error_does_not_echo_the_value(pool, data):
    reasons = refused(
        pool,
        "SELECT region, SUM(kwh)::BIGINT // (COUNT(*) - 20) AS x FROM usage GROUP BY 1",
        granted(data),
    ).reasons
    assert reasons[0].rule == "SBX-EXE-ERROR" and "division by zero" in reasons[0].en


def test_an_error_raised_by_the_query_itself_does_not_echo_the_value(pool, data):
    sources = [TableSource("people", str(data / "labels.parquet"), ("label",))]
    sql = "SELECT COUNT(*) AS n FROM people WHERE CASE WHEN label LIKE 'A%' THEN error(label) END"
    assert refused(pool, sql, sources).reasons[0].rule == "SBX-EXE-ERROR"


def test_too_many_result_rows_are_refused(pool, data):
    reasons = refused(
        pool,
        "SELECT household, COUNT(*) AS n__count FROM usage GROUP BY household",
        granted(data),
        max_result_rows=10,
    ).reasons
    assert reasons[0].rule == "SBX-OUT-SIZE"
    assert "10 rows" in reasons[0].en and "Group more coarsely" in reasons[0].en
    assert len(run(pool, STAGED, granted(data), max_result_rows=3)) == 3


def test_a_query_over_the_time_limit_is_killed_and_the_worker_replaced(pool, data):
    before = pool.workers
    reasons = refused(
        pool,
        "SELECT SUM(a.range * b.range) AS s FROM range(1000000000) a, range(1000) b",
        granted(data),
        seconds=1,
    ).reasons
    assert reasons[0].rule == "SBX-EXE-LIMITS"
    assert "1 seconds" in reasons[0].en and "Narrow it" in reasons[0].en
    for pid in before:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert len(run(pool, STAGED, granted(data))) == 3


def test_a_query_over_the_memory_limit_is_refused(pool, data):
    reasons = refused(
        pool,
        "SELECT LENGTH(STRING_AGG(REPEAT('x', 1000) || range::VARCHAR, ',')) AS n "
        "FROM range(2000000)",
        granted(data),
        memory_mb=64,
    ).reasons
    assert reasons[0].rule == "SBX-EXE-LIMITS"
    assert "64 MB" in reasons[0].en
    assert len(run(pool, STAGED, granted(data))) == 3


def test_a_worker_that_died_while_idle_is_replaced(pool, data):
    run(pool, STAGED, granted(data))
    for pid in pool.workers:
        os.kill(pid, signal.SIGKILL)
        wait_until_dead(pid)
    assert len(run(pool, STAGED, granted(data))) == 3


def wait_until_dead(pid: int) -> None:
    """Until the killed process can be reaped: a zombie whose threads (DuckDB's) have all ended."""
    proc = Path(f"/proc/{pid}")
    for _ in range(1000):
        if not proc.exists():
            return
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X") and len(list((proc / "task").iterdir())) <= 1:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not die")


def test_closing_the_pool_stops_its_workers(tmp_path, data):
    pool = WorkerPool(2, spill_directory=tmp_path)
    pool.warm()
    pids = pool.workers
    assert len(pids) == 2
    assert len(run(pool, STAGED, granted(data))) == 3
    pool.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not any(tmp_path.iterdir())


def test_a_worker_sees_none_of_the_servers_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAFACTOR_SECRET_KEY", "do-not-hand-this-to-a-worker")
    with WorkerPool(1, spill_directory=tmp_path) as pool:
        pool.warm()
        (pid,) = pool.workers
        environment = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"DATAFACTOR_" not in environment and b"do-not-hand-this" not in environment


def test_the_process_pool_starts_on_first_use_and_stops_on_shutdown(data):
    from datafactor.sandbox.worker import shutdown_pool, worker_pool

    try:
        assert len(run_staged(STAGED, granted(data), limits=Limits())) == 3
        pool = worker_pool()
        assert worker_pool() is pool
        pids = pool.workers
        assert pids
    finally:
        shutdown_pool()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert worker_pool() is not pool
    shutdown_pool()
