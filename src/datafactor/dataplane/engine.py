"""Query engines over Arrow data: the ``Engine`` interface and its embedded DuckDB implementation.

Everything a reader produces lands in an engine as Arrow: ``register`` puts an Arrow table or
stream (or a reader's ``Table``) under a view name, ``load`` copies a table into the engine so it
can be scanned many times, ``query`` returns Arrow. The interface is deliberately small so that a
Spark engine can sit behind it for data larger than one machine.

``SparkEngine`` (``spark.py``) implements the same protocol over a local or cluster Spark session.

DuckDB runs locked down, because SQL reaching it may be written by a data user in a sandbox:
file access is limited to ``allowed_directories`` (normally the blob store root) and the spill
directory; extensions are neither installed nor loaded automatically (the wheel's built-ins — CSV,
Parquet, JSON — are all it needs, and nothing is downloaded at run time); Python variables are not
visible to SQL by name (``python_enable_replacements``), only what was registered; and finally
``lock_configuration`` stops SQL from undoing any of it. The order matters and is what DuckDB
requires: directories and the spill folder must be set while external access is still enabled,
everything else before the lock.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeAlias, runtime_checkable

import duckdb
import pyarrow as pa

from datafactor.dataplane.readers import DEFAULT_BATCH_ROWS, Table

ArrowData: TypeAlias = "pa.Table | pa.RecordBatchReader | pa.RecordBatch | Table"


@runtime_checkable
class Engine(Protocol):
    """What every engine offers; table names are plain identifiers the engine quotes itself."""

    name: str

    def register(self, name: str, data: ArrowData) -> None:
        """Make Arrow data queryable as ``name`` without copying; a stream can be scanned once."""
        ...

    def load(self, name: str, table: Table) -> None:
        """Copy a table into the engine (streaming) so that it can be scanned any number of times."""
        ...

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        """Run one statement; its result as an Arrow table."""
        ...

    def query_batches(
        self, sql: str, params: Sequence[Any] | None = None, *, batch_size: int = DEFAULT_BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        """Run one query; its result as a stream of Arrow batches."""
        ...

    def close(self) -> None: ...


def quote_identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier (any text is safe, quotes are doubled)."""
    if not name or "\x00" in name:
        raise ValueError("a table name must be non-empty text")
    return '"' + name.replace('"', '""') + '"'


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class DuckDBEngine:
    """An in-process DuckDB database configured as the module docstring describes."""

    name = "duckdb"

    def __init__(
        self,
        *,
        allowed_directories: Sequence[str | os.PathLike[str]] = (),
        temp_directory: str | os.PathLike[str] | None = None,
        memory_limit: str = "1GB",
        threads: int = 2,
        database: str = ":memory:",
    ) -> None:
        self._con = duckdb.connect(database)
        self._failures: list[Exception] = []
        try:
            self._configure(allowed_directories, temp_directory, memory_limit, threads)
        except BaseException:
            self._con.close()
            raise

    @classmethod
    def for_store(cls, store: Any, **options: Any) -> DuckDBEngine:
        """An engine that may read the files of a local ``BlobStore`` and nothing else."""
        if store.is_local:
            options.setdefault("allowed_directories", (store.root,))
            options.setdefault("temp_directory", store.root / "tmp" / "duckdb")
        return cls(**options)

    def _configure(
        self,
        allowed_directories: Sequence[str | os.PathLike[str]],
        temp_directory: str | os.PathLike[str] | None,
        memory_limit: str,
        threads: int,
    ) -> None:
        execute = self._con.execute
        # A trailing separator, or "/data/store" would also admit "/data/store-other".
        allowed = [os.path.join(Path(d).resolve(), "") for d in allowed_directories]
        execute(f"SET allowed_directories = [{', '.join(_sql_string(d) for d in allowed)}]")
        if temp_directory is not None:
            Path(temp_directory).mkdir(parents=True, exist_ok=True)
            execute(f"SET temp_directory = {_sql_string(str(Path(temp_directory).resolve()))}")
        execute("SET enable_external_access = false")
        execute("SET autoinstall_known_extensions = false")
        execute("SET autoload_known_extensions = false")
        execute("SET allow_community_extensions = false")
        execute("SET python_enable_replacements = false")
        execute(f"SET memory_limit = {_sql_string(memory_limit)}")
        execute(f"SET threads = {int(threads)}")
        execute("SET lock_configuration = true")

    # ---------------------------------------------------------------------------------- data in

    def _stream(self, table: Table) -> pa.RecordBatchReader:
        """The table's batches as a stream that remembers why it failed.

        DuckDB reports a failing Python stream as an ``InvalidInputException`` with the reason
        flattened into text; the reader's own error (``UnreadableSource`` with its code and a
        message for people) is kept here and re-raised in its place by ``_source_errors``.
        """

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from table.batches()
            except Exception as exc:
                self._failures.append(exc)
                raise

        return pa.RecordBatchReader.from_batches(table.schema, batches())

    @contextlib.contextmanager
    def _source_errors(self) -> Iterator[None]:
        self._failures.clear()
        try:
            yield
        except duckdb.Error:
            if self._failures:
                raise self._failures.pop() from None
            raise
        finally:
            self._failures.clear()

    def register(self, name: str, data: ArrowData) -> None:
        if isinstance(data, Table):
            data = self._stream(data)
        elif isinstance(data, pa.RecordBatch):
            data = pa.Table.from_batches([data])
        self._con.register(name, data)

    def unregister(self, name: str) -> None:
        self._con.unregister(name)

    def load(self, name: str, table: Table) -> None:
        staging = f"__staging_{abs(hash((name, id(table))))}"
        self._con.register(staging, self._stream(table))
        try:
            # Both names are quoted identifiers; no value is spliced into the statement.
            target, source = quote_identifier(name), quote_identifier(staging)
            with self._source_errors():
                self._con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT * FROM {source}")  # noqa: S608
        finally:
            self._con.unregister(staging)

    # --------------------------------------------------------------------------------- data out

    def relation(self, sql: str, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyRelation:
        """A DuckDB relation for further composition (DuckDB-specific, not part of ``Engine``)."""
        return self._con.sql(sql, params=list(params) if params is not None else None)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        with self._source_errors():
            return self.relation(sql, params).to_arrow_table()

    def query_batches(
        self, sql: str, params: Sequence[Any] | None = None, *, batch_size: int = DEFAULT_BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        # The reader holds the connection until it is read out, so it is closed in any case.
        with self._source_errors():
            reader = self.relation(sql, params).to_arrow_reader(batch_size)
            with contextlib.closing(reader):
                yield from reader

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Run a statement for its effect (``CREATE TABLE … AS``, ``INSERT``)."""
        with self._source_errors():
            self._con.execute(sql, list(params) if params is not None else None)

    def setting(self, name: str) -> Any:
        """The current value of a DuckDB setting."""
        return self._con.execute("SELECT current_setting(?)", [name]).fetchall()[0][0]

    # ------------------------------------------------------------------------------- lifecycle

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> DuckDBEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
