"""The DuckDB engine: Arrow in and out, and a lock-down that SQL cannot undo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from datafactor.dataplane import (
    BlobStore,
    DuckDBEngine,
    Engine,
    UnreadableSource,
    open_table,
    quote_identifier,
)


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "store")


@pytest.fixture
def engine(store: BlobStore) -> Iterator[DuckDBEngine]:
    with DuckDBEngine.for_store(store, memory_limit="256MB", threads=1) as engine:
        yield engine


def sql_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def test_is_an_engine(engine: DuckDBEngine) -> None:
    assert isinstance(engine, Engine)


def test_settings_are_applied_and_locked(engine: DuckDBEngine, store: BlobStore) -> None:
    assert engine.setting("enable_external_access") is False
    assert engine.setting("autoinstall_known_extensions") is False
    assert engine.setting("autoload_known_extensions") is False
    assert engine.setting("lock_configuration") is True
    assert engine.setting("threads") == 1
    assert engine.setting("memory_limit").endswith("MiB")
    assert str(store.root) in str(engine.setting("allowed_directories"))


def test_register_arrow_and_query(engine: DuckDBEngine) -> None:
    engine.register("people", pa.table({"name": ["甲", "乙", "丙"], "age": [30, 40, 50]}))
    result = engine.query("SELECT name FROM people WHERE age > ? ORDER BY age", [35])
    assert result.column("name").to_pylist() == ["乙", "丙"]
    batches = list(engine.query_batches("SELECT * FROM people", batch_size=2))
    assert sum(b.num_rows for b in batches) == 3
    # The reader of query_batches was closed: the connection is free again.
    assert engine.query("SELECT count(*) AS n FROM people").column("n").to_pylist() == [3]


def test_register_and_load_a_reader_table(engine: DuckDBEngine, tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes("姓名,年龄\n张三,30\n李四,41\n".encode("gbk"))
    table = open_table(path)
    engine.load("people", table)
    for _ in range(2):  # a loaded table can be scanned again
        result = engine.query("SELECT avg(TRY_CAST(年龄 AS INTEGER)) AS a FROM people")
        assert result.column("a").to_pylist() == [35.5]
    engine.register("once", table)
    assert engine.query("SELECT count(*) AS n FROM once").column("n").to_pylist() == [2]


def test_a_reader_error_surfaces_as_itself(engine: DuckDBEngine, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "a\n" + "1\n" * 40_000 + "x" * (12 << 20) + "\n"
    )  # the long line is past the sample
    table = open_table(path, max_line_length=1000)
    with pytest.raises(UnreadableSource) as caught:
        engine.load("bad", table)
    assert caught.value.code == "line-too-long"
    engine.register("bad_view", table)
    with pytest.raises(UnreadableSource):
        engine.query("SELECT count(*) FROM bad_view")


def test_reads_files_inside_the_store(engine: DuckDBEngine, store: BlobStore) -> None:
    blob = store.put_bytes(b"a,b\n1,2\n", max_bytes=100)
    query = f"SELECT * FROM read_csv({sql_path(store.path_for(blob.digest))})"
    assert engine.query(query).to_pylist() == [{"a": 1, "b": 2}]


def test_cannot_read_outside_the_allowed_directory(
    engine: DuckDBEngine, store: BlobStore, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("password\nhunter2\n")
    sibling = tmp_path / "store-other"  # shares the store root's name as a prefix
    sibling.mkdir()
    (sibling / "x.csv").write_text("a\n1\n")
    for path in (
        secret,
        store.root / ".." / "secret.csv",
        sibling / "x.csv",
        Path("/etc/passwd"),
    ):
        with pytest.raises(duckdb.PermissionException):
            engine.query(f"SELECT * FROM read_csv({sql_path(path)})")
    with pytest.raises(duckdb.PermissionException):
        engine.query("SELECT * FROM glob('/etc/*')")
    with pytest.raises(duckdb.PermissionException):
        engine.execute(f"COPY (SELECT 1) TO {sql_path(tmp_path / 'out.csv')}")
    with pytest.raises(duckdb.PermissionException):
        engine.execute(f"ATTACH {sql_path(tmp_path / 'other.duckdb')}")
    with pytest.raises(duckdb.PermissionException):
        engine.query("SELECT * FROM read_csv('https://example.com/data.csv')")


@pytest.mark.parametrize(
    "statement",
    ["INSTALL httpfs", "FORCE INSTALL excel", "LOAD httpfs", "INSTALL spatial FROM community"],
)
def test_cannot_install_or_load_extensions(engine: DuckDBEngine, statement: str) -> None:
    with pytest.raises(duckdb.Error):
        engine.execute(statement)


def test_excel_is_not_available_and_not_autoloaded(engine: DuckDBEngine, store: BlobStore) -> None:
    with pytest.raises(duckdb.Error):
        engine.query(f"SELECT * FROM read_xlsx({sql_path(store.root / 'x.xlsx')})")


@pytest.mark.parametrize(
    "statement",
    [
        "SET enable_external_access = true",
        "SET allowed_directories = ['/']",
        "SET autoinstall_known_extensions = true",
        "SET lock_configuration = false",
        "RESET enable_external_access",
        "SET memory_limit = '100GB'",
    ],
)
def test_configuration_cannot_be_changed_from_sql(engine: DuckDBEngine, statement: str) -> None:
    with pytest.raises(duckdb.InvalidInputException, match="locked"):
        engine.execute(statement)


def test_python_variables_are_not_visible_to_sql(engine: DuckDBEngine) -> None:
    hidden = pa.table({"x": [1]})  # noqa: F841 - DuckDB would find it by name if replacements were on
    with pytest.raises(duckdb.CatalogException):
        engine.query("SELECT * FROM hidden")


def test_engine_without_directories_reads_no_files(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("a\n1\n")
    with DuckDBEngine(threads=1) as engine, pytest.raises(duckdb.PermissionException):
        engine.query(f"SELECT * FROM read_csv({sql_path(tmp_path / 'a.csv')})")


def test_quote_identifier() -> None:
    assert quote_identifier('we"ird') == '"we""ird"'
    with pytest.raises(ValueError, match="non-empty"):
        quote_identifier("")
