"""The Spark engine: the ``Engine`` interface over a PySpark session, for data larger than one machine.

One ``SparkSession`` per process (``spark_session``, started on first use: ~5 s and ~1 GB for
``local[2]``); each ``SparkEngine`` is a ``newSession()`` of it, so engines share the JVM but not
their views or SQL settings. PySpark is imported inside functions only: importing ``datafactor``
never starts a JVM, and a machine without PySpark or Java gets ``SparkUnavailable`` saying what to
install, not an ``ImportError`` at start-up.

Data in. ``load_path`` reads files with Spark's own readers, so a file larger than memory never
passes through Python: CSV/TSV (UTF-8, GB18030/GBK, header, delimiter), Parquet and JSON Lines. The
readers in ``readers.py`` still look at each file first — a sample for CSV, the footer for Parquet,
the first records for JSON Lines — so a binary file named ``.csv``, an unknown encoding or a
row-group bomb is refused with the same ``UnreadableSource``, and the columns get the same names
and the same all-text types as ``CsvTable`` and ``JsonLinesTable``. What Spark then drops without
a per-line warning: rows with the wrong number of fields and lines that are not JSON
(``DROPMALFORMED``), and lines longer than the limit (Hadoop's line reader skips them, reading no
more than the limit into memory); run the reader itself for a report that names those lines.
Excel and live databases come through their ``Table`` (``load``): Spark bundles no SQLite,
PostgreSQL or MySQL JDBC driver and none is downloaded at run time. ``register`` and ``load`` of a
stream write its Arrow batches once to a Parquet file in the engine's work folder (memory stays at
one batch) and Spark scans that file; a ``pa.Table`` already in memory goes over with
``createDataFrame``'s Arrow path. On a cluster master that folder must be on storage every executor
sees.

SQL is locked down as far as Spark allows, because a data user in a sandbox may write it. Only one
query is accepted: the statement must begin with ``SELECT``, ``WITH``, ``FROM``, ``VALUES`` or
``TABLE``, and its parsed plan — every node, CTE and subquery — may hold no command (``SET``,
``INSERT``, ``CACHE``, ``CREATE`` …), no script transformation (``SELECT TRANSFORM … USING
'cmd'`` runs a shell command) and no ``EXECUTE IMMEDIATE``; anything else is ``StatementRefused``
before Spark runs it. Because ``SET`` is refused the settings below cannot be undone from SQL:
``spark.sql.runSQLOnFiles=false`` (no ``SELECT * FROM text.`/etc/passwd```),
``spark.sql.scripting.enabled=false``, and — static, for the whole JVM —
``spark.sql.reflect.allowList`` matching nothing (``reflect``/``java_method`` would call any static
Java method, ``System.getenv`` included), an in-memory catalogue (no Hive, no metastore files) and
no web UI. ANSI mode with double-quoted identifiers makes ``quote_identifier`` and
``"中文列名"`` work as in DuckDB (Spark's lexer does not accept unquoted Chinese identifiers);
results come back through Arrow (``toArrow``, and Arrow batches streamed partition by partition
for ``query_batches``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from datafactor.dataplane.engine import ArrowData
from datafactor.dataplane.readers import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_MAX_LINE_LENGTH,
    CsvTable,
    ExcelTable,
    JsonLinesTable,
    ParquetTable,
    Table,
    detect_format,
)
from datafactor.errors import N_, DomainError, InvalidInput

if TYPE_CHECKING:
    from datafactor.dataplane.storage import BlobStore
    from datafactor.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_MASTER = "local[2]"
DEFAULT_DRIVER_MEMORY = "1g"

# Matches no class.method name, so reflect(), java_method() and try_reflect() can call nothing.
# (An empty allow list, Spark's default, allows every static method.)
_REFLECT_NOTHING = "(?!)"

# Static settings: fixed when the JVM starts, the same for every engine of the process.
_STATIC_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.catalogImplementation": "in-memory",
    "spark.sql.reflect.allowList": _REFLECT_NOTHING,
}

# Session settings of every engine; SQL cannot change them because SET is refused.
_SESSION_CONF = {
    "spark.sql.runSQLOnFiles": "false",
    "spark.sql.scripting.enabled": "false",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.ansi.doubleQuotedIdentifiers": "true",
    "spark.sql.session.timeZone": "UTC",
    # Spark 4 accepts only UTF-8/16/32, ASCII and Latin-1 in CSV and JSON unless told otherwise;
    # government files are GBK.
    "spark.sql.legacy.javaCharsets": "true",
    # A path named by load_path is read even if a name in it starts with "_" or "." (Spark
    # would otherwise skip such a file silently and return no rows).
    "spark.sql.files.ignoredPathSegmentRegex": "(?!)",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
}

# Python codec names (as ``CsvTable.encoding`` has them) that Spark's CSV reader decodes itself.
_JAVA_CHARSETS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8",  # Spark drops the BOM
    "gb18030": "GB18030",
    "gbk": "GBK",
    "gb2312": "GB2312",
    "big5": "Big5",
    "ascii": "US-ASCII",
    "iso8859-1": "ISO-8859-1",
}

_QUERY_KEYWORDS = frozenset({"SELECT", "WITH", "FROM", "VALUES", "TABLE"})
_LEADING_NOISE = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.DOTALL)
_FIRST_WORD = re.compile(r"[A-Za-z_]+")
# Plan nodes that are not commands in Spark's class hierarchy but still act or run something.
_REFUSED_NODES = frozenset(
    {
        "ScriptTransformation",
        "InsertIntoStatement",
        "UnresolvedExecuteImmediate",
        "ExecuteImmediateQuery",
        "CompoundBody",
    }
)
_GLOB_CHARACTERS = frozenset("*?[]{}\\:")


# ---------------------------------------------------------------------------------------- errors


class SparkUnavailable(DomainError):
    """PySpark or a Java runtime is missing, or the JVM did not start; ``code`` says which."""

    status = 503
    code = "spark-unavailable"
    title = N_("The Spark engine is not available")


class StatementRefused(InvalidInput):
    """A statement other than a single query was sent to an engine that runs only queries."""

    code = "statement-refused"
    title = N_("This statement is not allowed")


def _refused(what: str) -> StatementRefused:
    return StatementRefused(
        N_(
            "Only a single query (SELECT, or WITH … SELECT) can be run here; {what} is not allowed."
        ),
        what=what,
    )


# --------------------------------------------------------------------------- the process's JVM

_lock = threading.Lock()
_root: Any = None  # the process's SparkSession, once started


def check_spark_runtime() -> None:
    """Raise ``SparkUnavailable`` unless PySpark can be imported and a ``java`` can be found."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SparkUnavailable(
            N_(
                "PySpark is not installed. Install it with pip install 'pyspark==4.*' "
                "(make install does), or use the DuckDB engine."
            ),
            code="pyspark-missing",
        ) from None
    java_home = os.environ.get("JAVA_HOME")
    java = Path(java_home, "bin", "java") if java_home else None
    if not (java and java.is_file()) and shutil.which("java") is None:
        raise SparkUnavailable(
            N_(
                "No Java runtime was found for Spark (JAVA_HOME is not set and java is not on "
                "the PATH). Install Java 17 or 21, e.g. apt-get install default-jre-headless "
                "(make system-deps does)."
            ),
            code="java-missing",
        )


def _running(session: Any) -> bool:
    return session is not None and session.sparkContext._jsc is not None


def spark_session(
    master: str = DEFAULT_MASTER,
    *,
    driver_memory: str = DEFAULT_DRIVER_MEMORY,
    work_directory: str | os.PathLike[str] | None = None,
) -> Any:
    """The process's ``SparkSession``, started on first use with the static settings above.

    ``work_directory`` holds Spark's spill files and its (unused) warehouse folder. Asking for a
    different master than the running session's is an error: one process has one JVM.
    """
    global _root
    with _lock:
        if _running(_root):
            running = _root.sparkContext.master
            if running != master:
                raise RuntimeError(
                    f"a Spark session with master {running} is already running in this process; "
                    f"it cannot also use {master}"
                )
            return _root
        check_spark_runtime()
        from pyspark.errors import PySparkException
        from pyspark.logger import PySparkLogger
        from pyspark.sql import SparkSession

        if master.startswith("local"):
            # Spark otherwise binds to whatever the host name resolves to.
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        base = Path(work_directory or tempfile.mkdtemp(prefix="datafactor-spark-")).resolve()
        base.mkdir(parents=True, exist_ok=True)
        builder = SparkSession.builder.master(master).appName("datafactor")
        conf = dict(_STATIC_CONF)
        conf["spark.driver.memory"] = driver_memory
        conf["spark.local.dir"] = str(base / "local")
        conf["spark.sql.warehouse.dir"] = str(base / "warehouse")
        if master.startswith("local"):
            conf["spark.driver.host"] = "127.0.0.1"
            conf["spark.driver.bindAddress"] = "127.0.0.1"
        for key, value in conf.items():
            builder = builder.config(key, value)
        try:
            session = builder.getOrCreate()
        except (PySparkException, OSError) as exc:
            raise SparkUnavailable(
                N_("Spark did not start ({reason}). Check the Java runtime and the master URL."),
                code="spark-failed",
                reason=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            ) from None
        session.sparkContext.setLogLevel("ERROR")
        # PySpark also logs every failing query, with its text, to stderr; the engine raises the
        # error to its caller, who decides what to log.
        for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
            PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)
        log.info("Spark session started (master %s)", master)
        _root = session
        return session


def stop_spark_session() -> None:
    """Stop the process's Spark session, if one is running (the next engine starts a new one)."""
    global _root
    with _lock:
        if _running(_root):
            _root.stop()
        _root = None


# ------------------------------------------------------------------------------------ the engine


def spark_identifier(name: str) -> str:
    """``name`` as a back-quoted Spark identifier (for APIs that parse names, not SQL text)."""
    if not name or "\x00" in name:
        raise ValueError("a table name must be non-empty text")
    return "`" + name.replace("`", "``") + "`"


class SparkEngine:
    """A Spark session of its own over the process's JVM, configured as the module docstring says.

    ``session`` is the process's session from ``spark_session`` (the default starts or reuses it);
    ``temp_directory`` holds the engine's spooled Parquet files (and, for the process's first
    engine, Spark's own work files); ``allowed_directories`` are the only folders ``load_path``
    reads, none by default.
    """

    name = "spark"

    def __init__(
        self,
        *,
        master: str = DEFAULT_MASTER,
        driver_memory: str = DEFAULT_DRIVER_MEMORY,
        allowed_directories: Sequence[str | os.PathLike[str]] = (),
        temp_directory: str | os.PathLike[str] | None = None,
        shuffle_partitions: int | None = None,
        session: Any = None,
    ) -> None:
        if temp_directory is not None:
            Path(temp_directory).mkdir(parents=True, exist_ok=True)
        root = session or spark_session(
            master, driver_memory=driver_memory, work_directory=temp_directory
        )
        for key, value in _STATIC_CONF.items():
            # A session started elsewhere (SparkSession.builder) lacks the static lock-down, and
            # static settings cannot be added later.
            if root.conf.get(key, None) != value:
                raise RuntimeError(
                    f"this Spark session was not started by spark_session(): {key} is not {value}"
                )
        self._session = root.newSession()
        for key, value in _SESSION_CONF.items():
            self._session.conf.set(key, value)
        if shuffle_partitions is not None:
            self._session.conf.set("spark.sql.shuffle.partitions", str(int(shuffle_partitions)))
        # A trailing separator, or "/data/store" would also admit "/data/store-other".
        self._allowed = [os.path.join(Path(d).resolve(), "") for d in allowed_directories]
        self._work = Path(tempfile.mkdtemp(prefix="spark-engine-", dir=temp_directory))
        self._spools: dict[str, Path] = {}
        self._jvm = self._session._jvm
        self._command_class = self._jvm.java.lang.Class.forName(
            "org.apache.spark.sql.catalyst.plans.logical.Command"
        )

    @classmethod
    def for_store(cls, store: BlobStore, **options: Any) -> SparkEngine:
        """An engine that may load the files of a local ``BlobStore`` and no others."""
        if store.is_local:
            options.setdefault("allowed_directories", (store.root,))
            options.setdefault("temp_directory", store.root / "tmp" / "spark")
        return cls(**options)

    @property
    def session(self) -> Any:
        """This engine's ``SparkSession`` (Spark-specific, not part of ``Engine``)."""
        return self._session

    def setting(self, name: str) -> str | None:
        """The current value of a Spark setting in this engine's session."""
        value = self._session.conf.get(name, None)
        return None if value is None else str(value)

    # ---------------------------------------------------------------------------------- data in

    def _view(self, name: str, frame: Any, spool: Path | None = None) -> None:
        frame.createOrReplaceTempView(spark_identifier(name))
        # Spark's view names ignore case, as its SQL does.
        old = self._spools.pop(name.casefold(), None)
        if spool is not None:
            self._spools[name.casefold()] = spool
        if old is not None and old != spool:
            old.unlink(missing_ok=True)

    def _spool(self, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> Path:
        """Arrow batches written to a Parquet file Spark can scan, one batch in memory at a time."""
        path = self._work / f"{uuid.uuid4().hex}.parquet"
        try:
            with pq.ParquetWriter(path, schema) as writer:
                for batch in batches:
                    writer.write_batch(batch)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def _load_stream(self, name: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> None:
        if not len(schema):
            # Parquet has no file without columns; neither has the stream anything to show.
            self._view(name, self._session.range(0).select())
            return
        path = self._spool(schema, batches)
        self._view(name, self._session.read.parquet(str(path)), path)

    def register(self, name: str, data: ArrowData) -> None:
        """Make Arrow data queryable as ``name``.

        An in-memory table goes to Spark through Arrow; a stream or a reader's ``Table`` is read
        once into a Parquet file that Spark scans (see the module docstring).
        """
        if isinstance(data, Table):
            self.load(name, data)
        elif isinstance(data, pa.RecordBatchReader):
            self._load_stream(name, data.schema, iter(data))
        else:
            table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
            self._view(name, self._session.createDataFrame(table))

    def unregister(self, name: str) -> None:
        self._session.catalog.dropTempView(name)
        spool = self._spools.pop(name.casefold(), None)
        if spool is not None:
            spool.unlink(missing_ok=True)

    def load(self, name: str, table: Table) -> None:
        """Copy a table into the engine, streaming; a reader's error surfaces as itself."""
        self._load_stream(name, table.schema, table.batches())

    def _readable(self, path: str | os.PathLike[str]) -> Path:
        resolved = Path(path).resolve()
        if not any(os.path.join(resolved, "").startswith(d) for d in self._allowed):
            raise PermissionError(f"{resolved} is outside the folders this Spark engine may read")
        if not resolved.is_file():
            raise FileNotFoundError(f"{resolved} is not a file")
        if _GLOB_CHARACTERS & set(str(resolved)):
            # Hadoop would expand these as a pattern and read whatever matches.
            raise ValueError(
                f"Spark cannot read {resolved} by name: it contains * ? [ ] {{ }} \\ or :"
            )
        return resolved

    def load_path(
        self,
        name: str,
        path: str | os.PathLike[str],
        format: str | None = None,
        *,
        encoding: str | None = None,
        delimiter: str | None = None,
        header: bool = True,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        sheet: str | None = None,
    ) -> None:
        """Make a file queryable as ``name``, read by Spark's own CSV, Parquet or JSON reader.

        ``format`` is ``csv``, ``tsv``, ``jsonl``, ``parquet`` or ``xlsx`` (default: from the
        suffix). The file must lie in one of ``allowed_directories``. CSV options are those of
        ``CsvTable`` and default the same way (encoding and delimiter sniffed from a sample); an
        encoding Spark cannot decode, and Excel workbooks, are read through their reader instead.
        """
        from pyspark.sql.types import StringType, StructField, StructType

        resolved = self._readable(path)
        format = format or detect_format(resolved.name)
        location = str(resolved)

        def text_schema(table: Table) -> Any:
            return StructType([StructField(n, StringType()) for n in table.schema.names])

        if format in ("csv", "tsv"):
            if format == "tsv" and delimiter is None:
                delimiter = "\t"
            csv = CsvTable(
                resolved,
                name=name,
                encoding=encoding,
                delimiter=delimiter,
                header=header,
                max_line_length=max_line_length,
            )
            charset = _JAVA_CHARSETS.get(csv.encoding or "")
            if charset is None or not len(csv.schema):
                self.load(name, csv)
                return
            frame = (
                self._session.read.schema(text_schema(csv))
                .options(
                    header=header,
                    sep=csv.delimiter,
                    encoding=charset,
                    escape='"',  # RFC 4180 doubles quotes; Spark's default escape is a backslash
                    mode="DROPMALFORMED",
                    # Bytes, and a character takes at most four: no line the reader accepts is
                    # dropped, and no line longer than this is held in memory.
                    **{"mapreduce.input.linerecordreader.line.maxlength": 4 * max_line_length},
                )
                .csv(location)
            )
        elif format == "jsonl":
            jsonl = JsonLinesTable(resolved, name=name, max_line_length=max_line_length)
            if not len(jsonl.schema):
                self.load(name, jsonl)
                return
            frame = (
                self._session.read.schema(text_schema(jsonl))
                .options(
                    mode="DROPMALFORMED",
                    encoding="UTF-8",
                    **{"mapreduce.input.linerecordreader.line.maxlength": max_line_length},
                )
                .json(location)
            )
        elif format == "parquet":
            ParquetTable(resolved, name=name)  # a valid footer and no row-group bomb
            frame = self._session.read.parquet(location)
        elif format == "xlsx":
            self.load(name, ExcelTable(resolved, name=name, sheet=sheet))
            return
        else:
            raise ValueError(f"Spark cannot read the format {format!r}")
        self._view(name, frame)

    # --------------------------------------------------------------------------------- data out

    def _nodes(self, plan: Any) -> Iterator[Any]:
        """Every node of a parsed plan: children, CTE definitions and subqueries in expressions."""
        stack = [plan]
        while stack:
            node = stack.pop()
            yield node
            for members in (node.children(), node.innerChildren(), node.subqueries()):
                stack.extend(members.apply(i) for i in range(members.size()))

    def check_query(self, sql: str) -> None:
        """Raise ``StatementRefused`` unless ``sql`` is one query (see the module docstring)."""
        from pyspark.errors.exceptions.captured import capture_sql_exception

        noise = _LEADING_NOISE.match(sql)  # comments, blanks and "(" before the first word
        text = sql[noise.end() :] if noise else sql
        word = _FIRST_WORD.match(text)
        keyword = word.group().upper() if word else text[:1]
        if keyword not in _QUERY_KEYWORDS:
            raise _refused(keyword or "an empty statement")
        parser = self._session._jsparkSession.sessionState().sqlParser()
        plan = capture_sql_exception(parser.parsePlan)(sql)
        for node in self._nodes(plan):
            kind = str(node.nodeName())
            if (
                kind in _REFUSED_NODES
                or kind.endswith(("Command", "Statement"))
                or self._command_class.isInstance(node)
            ):
                raise _refused(kind)

    def dataframe(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        """The query as a Spark ``DataFrame`` (Spark-specific, not part of ``Engine``)."""
        self.check_query(sql)
        if params is None:
            return self._session.sql(sql)
        return self._session.sql(sql, args=list(params))

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        return self.dataframe(sql, params).toArrow()

    def query_batches(
        self, sql: str, params: Sequence[Any] | None = None, *, batch_size: int = DEFAULT_BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        """The result as Arrow batches, fetched one partition at a time.

        PySpark's ``toArrow`` collects the whole result; this serves the same Arrow batches
        through Spark's local iterator instead (one job per partition, in order, so ``ORDER BY``
        holds), so the driver and this process hold one partition at a time. It uses PySpark
        internals (``toArrowBatchRdd``, ``_local_iterator_from_socket``) pinned by the lock file.
        """
        from pyspark.errors.exceptions.captured import unwrap_spark_exception
        from pyspark.serializers import NoOpSerializer
        from pyspark.sql.pandas.types import to_arrow_schema
        from pyspark.util import _local_iterator_from_socket

        frame = self.dataframe(sql, params)
        large = self._session.conf.get("spark.sql.execution.arrow.useLargeVarTypes") == "true"
        schema = to_arrow_schema(frame.schema, timezone="UTC", prefers_large_types=large)
        key = "spark.sql.execution.arrow.maxRecordsPerBatch"
        previous = self._session.conf.get(key)
        self._session.conf.set(key, str(batch_size))  # read when the RDD is built, just below
        try:
            rdd = frame._jdf.toArrowBatchRdd()
        finally:
            self._session.conf.set(key, previous)
        with unwrap_spark_exception():
            served = self._jvm.PythonRDD.toLocalIteratorAndServe(rdd, False)
            for message in _local_iterator_from_socket(served, NoOpSerializer()):
                batch = pa.ipc.read_record_batch(pa.py_buffer(message), schema)
                for start in range(0, batch.num_rows, batch_size):
                    yield batch.slice(start, batch_size)

    # ------------------------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Drop this engine's views and spooled files; the process's JVM keeps running."""
        for view in self._session.catalog.listTables():
            if view.isTemporary:
                self._session.catalog.dropTempView(view.name)
        self._spools.clear()
        shutil.rmtree(self._work, ignore_errors=True)

    def __enter__(self) -> SparkEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def spark_engine(settings: Settings, store: BlobStore) -> SparkEngine:
    """A Spark engine on ``DATAFACTOR_SPARK_MASTER`` that may load only ``store``'s files."""
    return SparkEngine.for_store(
        store, master=settings.spark_master, driver_memory=settings.spark_driver_memory
    )
