"""The Spark engine: the same answers as DuckDB over the same sources, and a lock-down SQL cannot undo.

Runs in local mode on the one session of the test run (``conftest.py``). The conformance test runs
one set of queries over one table held in six sources (CSV in UTF-8 and GBK, Parquet, JSON Lines,
an Arrow table, an SQLite table through ``SqlTable``) on DuckDB, on Spark reading files natively
(``load_path``) and on Spark fed by the readers (``load``); every engine must give the same rows.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datafactor.dataplane import (
    BlobStore,
    DuckDBEngine,
    Engine,
    SparkEngine,
    SparkUnavailable,
    SqlTable,
    StatementRefused,
    UnreadableSource,
    open_table,
    quote_identifier,
    spark_engine,
)
from datafactor.dataplane.spark import check_spark_runtime
from datafactor.settings import Environment, Settings

spark_only = pytest.mark.spark

# ----------------------------------------------------------------------------------- the sources

COLUMNS = ("编号", "姓名", "城市", "年龄")
ROWS: list[tuple[int, str, str, int | None]] = [
    (1, "张三", "南宁", 30),
    (2, "李四", "柳州", None),
    (3, "王五", "南宁", 41),
    (4, 'Zoé "Z"', "桂林,象山", 25),  # a quote and a delimiter inside fields
]
SOURCES = ("csv_utf8", "csv_gbk", "parquet", "jsonl", "arrow", "sqlite")
FILES = {
    "csv_utf8": "people.csv",
    "csv_gbk": "people_gbk.csv",
    "parquet": "people.parquet",
    "jsonl": "people.jsonl",
}


def _csv_text() -> str:
    def field(value: object) -> str:
        text = "" if value is None else str(value)
        if any(c in text for c in ',"\n'):
            return '"' + text.replace('"', '""') + '"'
        return text

    return "".join(",".join(map(field, row)) + "\n" for row in [COLUMNS, *ROWS])


def _arrow() -> pa.Table:
    columns = list(zip(*ROWS, strict=True))
    return pa.table(
        {
            "编号": pa.array(columns[0], pa.int64()),
            "姓名": pa.array(columns[1], pa.string()),
            "城市": pa.array(columns[2], pa.string()),
            "年龄": pa.array(columns[3], pa.int64()),
        }
    )


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sources")
    (folder / FILES["csv_utf8"]).write_text(_csv_text(), encoding="utf-8")
    (folder / FILES["csv_gbk"]).write_bytes(_csv_text().encode("gbk"))
    pq.write_table(_arrow(), folder / FILES["parquet"])
    with (folder / FILES["jsonl"]).open("w", encoding="utf-8") as out:
        for row in ROWS:
            out.write(json.dumps(dict(zip(COLUMNS, row, strict=True)), ensure_ascii=False) + "\n")
    with sqlite3.connect(folder / "people.db") as con:
        con.execute(
            'CREATE TABLE people ("编号" INTEGER, "姓名" TEXT, "城市" TEXT, "年龄" INTEGER)'
        )
        con.executemany("INSERT INTO people VALUES (?, ?, ?, ?)", ROWS)
    con.close()
    return folder


def _load_sources(engine: Any, folder: Path, *, native: bool) -> None:
    for source, file_name in FILES.items():
        path = folder / file_name
        if native:
            engine.load_path(source, path)
        else:
            engine.load(source, open_table(path))
    engine.register("arrow", _arrow())
    table = SqlTable(f"sqlite:///{folder / 'people.db'}", "people")
    try:
        engine.load("sqlite", table)
    finally:
        table.close()


ENGINES = [
    "duckdb",
    pytest.param("spark", marks=spark_only),
    pytest.param("spark-readers", marks=spark_only),
]


@pytest.fixture(scope="module", params=ENGINES)
def loaded(
    request: pytest.FixtureRequest, source_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """An engine of each kind with every source loaded (once per module: Spark loads take time)."""
    if request.param == "duckdb":
        engine: Any = DuckDBEngine(allowed_directories=(source_dir,), threads=1)
        _load_sources(engine, source_dir, native=False)
    else:
        root = request.getfixturevalue("spark_root")
        engine = SparkEngine(
            session=root,
            allowed_directories=(source_dir,),
            temp_directory=tmp_path_factory.mktemp("spark-work"),
            shuffle_partitions=2,
        )
        _load_sources(engine, source_dir, native=request.param == "spark")
    yield engine
    engine.close()


# (query, parameters, expected rows): SQL both dialects accept. Identifiers are double-quoted as
# quote_identifier writes them; Spark accepts no unquoted Chinese names.
QUERIES: list[tuple[str, list[Any] | None, list[dict[str, Any]]]] = [
    (
        'SELECT CAST("编号" AS INTEGER) AS id, "姓名" AS name, "城市" AS city FROM {t} ORDER BY id',
        None,
        [
            {"id": 1, "name": "张三", "city": "南宁"},
            {"id": 2, "name": "李四", "city": "柳州"},
            {"id": 3, "name": "王五", "city": "南宁"},
            {"id": 4, "name": 'Zoé "Z"', "city": "桂林,象山"},
        ],
    ),
    (
        'SELECT count(*) AS n, count("年龄") AS with_age, '
        'avg(TRY_CAST("年龄" AS INTEGER)) AS mean_age FROM {t}',
        None,
        [{"n": 4, "with_age": 3, "mean_age": 32.0}],
    ),
    (
        'SELECT "城市" AS city, count(*) AS n FROM {t} GROUP BY "城市" ORDER BY n DESC, city',
        None,
        [{"city": "南宁", "n": 2}, {"city": "柳州", "n": 1}, {"city": "桂林,象山", "n": 1}],
    ),
    (
        'SELECT "姓名" AS name FROM {t} WHERE "城市" = ? AND TRY_CAST("年龄" AS INTEGER) > ? '
        "ORDER BY name",
        ["南宁", 35],
        [{"name": "王五"}],
    ),
    (
        'WITH grown AS (SELECT "姓名" AS name, TRY_CAST("年龄" AS INTEGER) AS age FROM {t} '
        'WHERE "年龄" IS NOT NULL) '
        "SELECT max(age) AS oldest, min(name) AS first_name, count(*) AS n FROM grown",
        None,
        [{"oldest": 41, "first_name": 'Zoé "Z"', "n": 3}],
    ),
    ('SELECT "姓名" AS name FROM {t} WHERE "年龄" IS NULL', None, [{"name": "李四"}]),
]


@pytest.mark.parametrize("source", SOURCES)
def test_engines_agree_on_every_source(loaded: Any, source: str) -> None:
    assert isinstance(loaded, Engine)
    for sql, params, expected in QUERIES:
        result = loaded.query(sql.format(t=quote_identifier(source)), params)
        assert result.to_pylist() == expected, (loaded.name, source, sql)


def test_batches_over_a_source(loaded: Any) -> None:
    sql = 'SELECT "姓名" AS name, "城市" AS city FROM csv_gbk ORDER BY "编号" DESC'
    rows = [r for b in loaded.query_batches(sql, batch_size=3) for r in b.to_pylist()]
    assert [r["name"] for r in rows] == ['Zoé "Z"', "王五", "李四", "张三"]


# ------------------------------------------------------------------------------ the Spark engine


@spark_only
def test_is_an_engine_with_its_settings(spark: SparkEngine) -> None:
    assert isinstance(spark, Engine)
    assert spark.setting("spark.sql.runSQLOnFiles") == "false"
    assert spark.setting("spark.sql.scripting.enabled") == "false"
    assert spark.setting("spark.sql.ansi.doubleQuotedIdentifiers") == "true"
    assert spark.setting("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert spark.setting("spark.sql.catalogImplementation") == "in-memory"
    assert spark.setting("spark.ui.enabled") == "false"
    assert spark.setting("spark.sql.reflect.allowList") == "(?!)"


REFUSED = [
    "SET spark.sql.runSQLOnFiles = true",
    "RESET spark.sql.runSQLOnFiles",
    "/* hidden */ SET spark.sql.scripting.enabled = true",
    "CREATE TABLE t AS SELECT 1 AS a",
    "CREATE TEMPORARY VIEW v USING text OPTIONS (path '/etc/passwd')",
    "INSERT INTO people VALUES ('x', 1)",
    "WITH a AS (SELECT 'x' AS name, 1 AS age) INSERT INTO people SELECT * FROM a",
    "FROM people INSERT INTO people SELECT *",
    "DROP VIEW people",
    "CACHE TABLE people",
    "ADD JAR /tmp/evil.jar",
    "EXPLAIN SELECT 1",
    "SHOW TABLES",
    "DESCRIBE people",
    "EXECUTE IMMEDIATE 'SET spark.sql.runSQLOnFiles = true'",
    "BEGIN SELECT 1; END",
    "SELECT TRANSFORM(name) USING 'cat /etc/passwd' AS (x) FROM people",
    "WITH a AS (SELECT TRANSFORM(1) USING 'id' AS (x)) SELECT * FROM a",
    "SELECT * FROM people WHERE EXISTS (SELECT TRANSFORM(1) USING 'id' AS (x))",
    "SELECT * FROM (SELECT TRANSFORM(1) USING 'id' AS (x)) s",
    "SELECT * FROM people, LATERAL (SELECT TRANSFORM(name) USING 'id' AS (z))",
    "FROM people MAP name USING 'cat' AS x",
    "FROM people REDUCE name USING 'cat' AS x",
    "",
    "-- only a comment",
]


@spark_only
@pytest.mark.parametrize("statement", REFUSED)
def test_only_queries_are_run(spark: SparkEngine, statement: str) -> None:
    spark.register("people", pa.table({"name": ["甲"], "age": [1]}))
    with pytest.raises(StatementRefused) as caught:
        spark.query(statement)
    assert caught.value.status == 422
    with pytest.raises(StatementRefused):
        list(spark.query_batches(statement))
    # Nothing ran: the settings and the view are as they were.
    assert spark.setting("spark.sql.runSQLOnFiles") == "false"
    assert spark.setting("spark.sql.scripting.enabled") == "false"
    assert spark.query("SELECT count(*) AS n FROM people").to_pylist() == [{"n": 1}]


ALLOWED = [
    ("SELECT 1 AS x", [{"x": 1}]),
    ("  -- a comment\n/* and another */ (SELECT 1 AS x)", [{"x": 1}]),
    ("WITH a AS (SELECT 1 AS x) SELECT x FROM a", [{"x": 1}]),
    ("VALUES (1)", [{"col1": 1}]),
    ("TABLE people", [{"x": 1}]),
    ("FROM people SELECT x", [{"x": 1}]),
    ("FROM people |> WHERE x > 0 |> SELECT x", [{"x": 1}]),
    ("SELECT transform(array(x), v -> v + 1) AS y FROM people", [{"y": [2]}]),  # a function
    ("SELECT 1 AS x;", [{"x": 1}]),
]


@spark_only
@pytest.mark.parametrize(("sql", "expected"), ALLOWED)
def test_queries_of_every_shape_run(spark: SparkEngine, sql: str, expected: list[Any]) -> None:
    spark.register("people", pa.table({"x": [1]}))
    assert spark.query(sql).to_pylist() == expected


@spark_only
def test_sql_cannot_read_files_or_call_java(spark: SparkEngine, tmp_path: Path) -> None:
    from pyspark.errors import AnalysisException

    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2\n")
    for fmt in ("text", "csv", "json", "parquet", "orc", "binaryFile"):
        with pytest.raises(AnalysisException, match="TABLE_OR_VIEW_NOT_FOUND"):
            spark.query(f"SELECT * FROM {fmt}.`{secret}`")
    with pytest.raises(AnalysisException):
        spark.query(f"SELECT * FROM IDENTIFIER('text.`{secret}`')")
    for call in (
        "reflect('java.lang.System', 'getenv', 'HOME')",
        "java_method('java.lang.System', 'getProperty', 'user.home')",
        "try_reflect('java.lang.System', 'exit', 1)",
    ):
        with pytest.raises(AnalysisException, match="METHOD_NOT_ALLOWED"):
            spark.query(f"SELECT {call} AS x")
    # XML functions do not resolve external entities.
    entity = f'<!DOCTYPE x [<!ENTITY e SYSTEM "file://{secret}">]><a>&e;</a>'
    result = spark.query(f"SELECT xpath_string('{entity}', 'a') AS x")
    assert result.to_pylist() == [{"x": ""}]


@spark_only
def test_query_batches_stream_in_order(spark: SparkEngine) -> None:
    n = 25_000
    spark.register("numbers", pa.table({"id": pa.array(range(n), pa.int64())}))
    sql = "SELECT id, CAST(id AS STRING) AS label FROM numbers WHERE id % ? = 0 ORDER BY id DESC"
    batches = list(spark.query_batches(sql, [1], batch_size=1000))
    assert len(batches) >= n // 1000
    assert all(0 < b.num_rows <= 1000 for b in batches)
    ids = [i for b in batches for i in b.column("id").to_pylist()]
    assert ids == list(range(n - 1, -1, -1))
    assert batches[0].schema == spark.query(sql, [1]).schema
    # Leaving a stream early frees the engine for the next query.
    for _ in spark.query_batches(sql, [1], batch_size=10):
        break
    assert spark.query("SELECT count(*) AS n FROM numbers").to_pylist() == [{"n": n}]
    assert list(spark.query_batches("SELECT id FROM numbers WHERE id < 0")) == []


@spark_only
def test_register_forms_and_names(spark: SparkEngine, tmp_path: Path) -> None:
    table = pa.table({"v": [1, 2, 3]})
    name = 'we"ird 表'
    spark.register(name, table)
    spark.register("batch", table.to_batches()[0])
    spark.register("stream", pa.RecordBatchReader.from_batches(table.schema, table.to_batches()))
    path = tmp_path / "gbk.csv"
    path.write_bytes("姓名,年龄\n张三,30\n李四,41\n".encode("gbk"))
    spark.register("reader", open_table(path))
    for view in (name, "batch", "stream"):
        query = f"SELECT sum(v) AS s FROM {quote_identifier(view)}"
        for _ in range(2):  # a stream was spooled, so it can be scanned again
            assert spark.query(query).to_pylist() == [{"s": 6}]
    result = spark.query('SELECT avg(TRY_CAST("年龄" AS INTEGER)) AS a FROM reader')
    assert result.to_pylist() == [{"a": 35.5}]
    # Replacing a spooled view removes its old file; unregister removes the new one.
    spools = lambda: sorted((tmp_path / "spark-work").rglob("*.parquet"))  # noqa: E731
    before = spools()
    spark.register("stream", pa.table({"v": [10]}))
    assert len(spools()) == len(before) - 1
    spark.unregister("reader")
    assert len(spools()) == len(before) - 2
    assert spark.query("SELECT sum(v) AS s FROM stream").to_pylist() == [{"s": 10}]


@spark_only
def test_engines_do_not_see_each_others_views(spark: SparkEngine, spark_root: Any) -> None:
    spark.register("mine", pa.table({"v": [1]}))
    with SparkEngine(session=spark_root) as other:
        from pyspark.errors import AnalysisException

        with pytest.raises(AnalysisException, match="TABLE_OR_VIEW_NOT_FOUND"):
            other.query("SELECT * FROM mine")
        other.register("theirs", pa.table({"v": [2]}))
    assert spark.query("SELECT v FROM mine").to_pylist() == [{"v": 1}]


@spark_only
def test_a_reader_error_surfaces_as_itself(spark: SparkEngine, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a\n" + "1\n" * 40_000 + "x" * (12 << 20) + "\n")  # past the sample
    with pytest.raises(UnreadableSource) as caught:
        spark.load("bad", open_table(path, max_line_length=1000))
    assert caught.value.code == "line-too-long"
    assert not list((tmp_path / "spark-work").rglob("*.parquet"))  # no half-written spool left


@spark_only
def test_load_path_reads_only_allowed_files(spark: SparkEngine, tmp_path: Path) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-other"  # shares the allowed folder's prefix
    outside.mkdir()
    (outside / "x.csv").write_text("a\n1\n")
    for path in (outside / "x.csv", tmp_path / ".." / f"{tmp_path.name}-other" / "x.csv"):
        with pytest.raises(PermissionError):
            spark.load_path("x", path)
    with pytest.raises(PermissionError):
        spark.load_path("x", "/etc/passwd", "csv")
    with pytest.raises(FileNotFoundError):
        spark.load_path("x", tmp_path)  # a folder would be read whole
    for name in ("*.csv", "a:b.csv", "[ab].csv"):
        (tmp_path / name).write_text("a\n1\n")
        with pytest.raises(ValueError, match="by name"):
            spark.load_path("x", tmp_path / name)
    # Spark would skip a file whose name starts with "_" or "." and return no rows.
    (tmp_path / "_part.csv").write_text("a\n1\n")
    spark.load_path("x", tmp_path / "_part.csv")
    assert spark.query("SELECT a FROM x").to_pylist() == [{"a": "1"}]


@spark_only
def test_load_path_refuses_what_the_readers_refuse(spark: SparkEngine, tmp_path: Path) -> None:
    (tmp_path / "image.csv").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(UnreadableSource) as caught:
        spark.load_path("x", tmp_path / "image.csv")
    assert caught.value.code == "binary-file"
    (tmp_path / "fake.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(UnreadableSource) as caught:
        spark.load_path("x", tmp_path / "fake.parquet")
    assert caught.value.code == "not-parquet"
    (tmp_path / "macro.xlsm").write_bytes(b"PK")
    with pytest.raises(UnreadableSource) as caught:
        spark.load_path("x", tmp_path / "macro.xlsm")
    assert caught.value.code == "macro-workbook"


@spark_only
def test_load_path_drops_bad_rows_and_long_lines(spark: SparkEngine, tmp_path: Path) -> None:
    csv = tmp_path / "ragged.tsv"
    # The long line lies beyond the sample the reader checks when the file is opened.
    body = "1\t2\n3\n4\t5\t6\n" + "7\t8\n" * 20_000 + "x" * 5000 + "\t9\n10\t11\n"
    csv.write_text("a\tb\n" + body)
    spark.load_path("ragged", csv, max_line_length=1000)
    result = spark.query(
        "SELECT count(*) AS n, max(length(a)) AS widest, sum(CAST(b AS INT)) AS total FROM ragged"
    )
    assert result.to_pylist() == [{"n": 20_002, "widest": 2, "total": 2 + 8 * 20_000 + 11}]
    jsonl = tmp_path / "mixed.jsonl"
    jsonl.write_text('{"a": 1, "b": "x"}\nnot json\n7\n{"a": "2", "c": true}\n')
    spark.load_path("mixed", jsonl)
    result = spark.query("SELECT a, b FROM mixed ORDER BY a")
    assert result.to_pylist() == [{"a": "1", "b": "x"}, {"a": "2", "b": None}]
    assert result.schema.field("a").type == pa.string()  # JSON Lines columns are text, as read


@spark_only
def test_excel_and_unusual_encodings_go_through_the_readers(
    spark: SparkEngine, tmp_path: Path
) -> None:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["姓名", "年龄"])
    sheet.append(["张三", 30])
    workbook.save(tmp_path / "people.xlsx")
    spark.load_path("sheet", tmp_path / "people.xlsx")
    assert spark.query('SELECT "年龄" AS age FROM sheet').to_pylist() == [{"age": "30"}]
    path = tmp_path / "utf16.csv"
    path.write_text("a,b\n1,é\n", encoding="utf-16")
    spark.load_path("utf16", path)
    assert spark.query("SELECT b FROM utf16").to_pylist() == [{"b": "é"}]


@spark_only
def test_engine_from_settings_reads_the_store(spark_root: Any, tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "store")
    blob = store.put_bytes("城市,人口\n南宁,889\n".encode("gbk"), max_bytes=1000)
    settings = Settings(environment=Environment.TEST, var_dir=tmp_path / "var")
    assert settings.spark_master == "local[2]"
    with spark_engine(settings, store) as engine:
        assert engine.session.sparkContext is spark_root.sparkContext  # the same JVM
        engine.load_path("city", store.path_for(blob.digest), "csv")
        assert engine.query('SELECT "人口" AS n FROM city').to_pylist() == [{"n": "889"}]
        with pytest.raises(PermissionError):
            engine.load_path("x", tmp_path / "elsewhere.csv", "csv")


# ------------------------------------------------------------------------- without Spark at all


def test_missing_pyspark_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # what an import finds when not installed
    with pytest.raises(SparkUnavailable) as caught:
        check_spark_runtime()
    assert caught.value.code == "pyspark-missing"
    assert caught.value.status == 503
    assert "pip install" in str(caught.value)


def test_missing_java_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", types.ModuleType("pyspark"))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SparkUnavailable) as caught:
        check_spark_runtime()
    assert caught.value.code == "java-missing"
    assert "default-jre-headless" in str(caught.value)


def test_importing_datafactor_starts_no_spark() -> None:
    code = (
        "import sys, datafactor.dataplane, datafactor.dataplane.spark; "
        "assert 'pyspark' not in sys.modules and 'py4j' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_session_without_the_lock_down_is_refused(tmp_path: Path) -> None:
    # A session from SparkSession.builder elsewhere would lack the static settings (reflect).
    foreign = types.SimpleNamespace(conf=types.SimpleNamespace(get=lambda key, default=None: None))
    with pytest.raises(RuntimeError, match="not started by spark_session"):
        SparkEngine(session=foreign, temp_directory=tmp_path)
