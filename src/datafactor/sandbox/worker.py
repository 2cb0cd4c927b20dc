"""The worker: runs a staged query with memory, thread and time limits, on DuckDB in a separate
process or on Spark, and answers Arrow — or refuses without showing a data value (issue 8, items
4 and 7).

DuckDB: a warm pool. Each server process keeps a small pool of worker processes (``WorkerPool``,
started lazily by the first query or by ``warm()``; ``worker.pool_size`` in
``rules/sandbox.yaml``). A worker is a fresh Python interpreter (``python -c …`` with one end of a
socket pair), not a fork of the server: it inherits none of the server's threads, sockets,
database connections or secrets in memory, and only an allow-listed environment (no
``DATAFACTOR_*`` setting, so no secret key or database URL), and it does not re-run the server's ``__main__`` as
``multiprocessing``'s spawn and forkserver would. It starts in well under a second and then serves
one query at a time: the parent sends the staged SQL, the granted files and the limits; the worker
opens a fresh in-memory DuckDB for the query and configures it tighter than the data plane's
engine (``dataplane/engine.py``):

* ``allowed_paths`` = exactly the granted Parquet files (not their folders: another file beside
  them stays unreadable), and one view per granted table, ``CREATE VIEW "<name>" AS SELECT
  <granted columns> FROM read_parquet('<path>')``, created while access is still on;
* ``enable_external_access=false`` (no other file, no URL, no ``COPY … TO``, no ``ATTACH``, no
  ``INSTALL``), no extension auto-install or auto-load, no community extensions, no Python
  replacement scans, ``memory_limit`` and ``threads`` from the limits, spilling only to the
  worker's own temp folder (capped by ``worker.spill_mb``), then ``lock_configuration=true`` so
  no ``SET``/``RESET``/``PRAGMA`` can undo any of it;
* only one ``SELECT`` statement is run, whatever the text holds.

Because a malicious query could still name the granted file itself (``read_parquet('<path>')``
is allowed: the views need it), the file must hold *only* the granted columns: ``run_staged``
reads each file's footer (once per version of the file) and refuses a file with any other column
(``sources.materialise(..., columns=...)`` writes such projections). The settings that do not
depend on the data (spill folder, memory, threads) are applied to the next query's database
while the worker is idle, and the database is closed after the reply has gone. The worker process also has an address-space limit
(``RLIMIT_AS``: its size when the query starts plus ``memory_mb × address_space_factor +
address_space_slack_mb``; DuckDB's own ``memory_limit`` normally stops a query first and spills
before that), and the parent kills it with ``SIGKILL`` when the time limit passes and starts a
replacement in the background. A worker whose parent died finds its socket closed and exits; one
busy with a query when that happens is ended by its own alarm shortly after the time limit.
Workers are retired after ``worker.max_queries_per_worker`` queries, and the process's pool is
closed at exit (``atexit``) or by ``shutdown_pool()``. The result comes back as Arrow IPC bytes,
at most ``limits.max_result_rows`` rows.

Errors never carry the engine's message to the user: messages such as ``Could not convert string
'Alice' to INT32`` echo data values. The worker sends only a class of failure (conversion,
arithmetic, memory, access, …) and ``run_staged`` raises ``QueryRefused`` with a fixed text for
that class (SBX-EXE-ERROR, SBX-EXE-LIMITS, SBX-OUT-SIZE).

Spark (``engine=Engine.SPARK``) runs in the server process on the process's one Spark session
(``dataplane/spark.py``): the staged SQL is translated by sqlglot (DuckDB → Spark), the granted
files become temporary views of their granted columns in a fresh ``SparkEngine`` (a
``newSession()``: nothing is shared with other queries), and the data plane's lock-down applies
(one query only, no SQL on files, no reflection). Its isolation is the JVM, not a process of its
own: memory is the driver's (``DATAFACTOR_SPARK_DRIVER_MEMORY``), threads are the master's
(``local[N]``) or the cluster's, and the time limit cancels the query's Spark jobs rather than
killing a process. A cluster is reached by ``DATAFACTOR_SPARK_MASTER=spark://…`` (its executors
must read the sandbox's Parquet folder).

Spark Connect (``DATAFACTOR_SPARK_REMOTE=sc://host:15002``, ``_run_spark_connect``): the queries
run on a Spark Connect server instead, through one client session per process
(``SparkSession.builder.remote(url)``, opened by the first query with ANSI mode, SQL on files and
SQL scripting off and the time zone UTC — the session is not used if the server refuses one of
them — and reused by every query; ``close_spark_connect()`` closes it). The same translated SQL
runs over temporary views of the granted columns, named for the query alone (the session is
shared, so a query's views are ``sandbox_<token>_<i>``, the staged SQL's table names renamed to
them by sqlglot and kept as aliases) and dropped afterwards. A Connect client has no JVM, so the
data plane's plan-level lock-down cannot run; the client checks the Spark SQL with sqlglot
instead (one query; no command, ``SET`` or ``TRANSFORM … USING``; no table but the granted ones
and its CTEs, so no ``parquet.`/path``` and no table function; no reflection or file function).
The static lock-down (``spark.sql.reflect.allowList``, no Hive catalogue, no UI) is the server
operator's (docs/sandbox.md). The time limit interrupts the query's operations, which carry a tag
of their own (``interruptTag``); the result cap and the error classes are the same as above. The
server must read the granted files at the same path (a shared mount, or an object store).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from datafactor.sandbox.domain import Engine, Limits, Reason
from datafactor.sandbox.errors import QueryRefused
from datafactor.sandbox.rulebook import rule_id, section

log = logging.getLogger(__name__)

__all__ = [
    "TableSource",
    "WorkerPool",
    "close_spark_connect",
    "default_limits",
    "run_staged",
    "shutdown_pool",
    "worker_pool",
]


@dataclass(frozen=True, slots=True)
class TableSource:
    """A granted table as the worker reads it: the catalog name, the Parquet file, and the
    columns it may read. The file must hold no other column (see the module docstring)."""

    name: str
    path: str
    columns: tuple[str, ...]


def default_limits() -> Limits:
    """The limits ``rules/sandbox.yaml`` sets (``worker`` section, ``output.max_result_rows``)."""
    values = section("worker")
    return Limits(
        memory_mb=int(values["memory_mb"]),
        threads=int(values["threads"]),
        seconds=float(values["seconds"]),
        max_result_rows=int(section("output")["max_result_rows"]),
    )


# --------------------------------------------------------------------------------- refusals

# What went wrong, as the worker reports it: a class, never the engine's message.
_CONVERSION: Final = "conversion"
_ARITHMETIC: Final = "arithmetic"
_INVALID: Final = "invalid"
_ACCESS: Final = "access"
_STATEMENT: Final = "statement"
_MEMORY: Final = "memory"
_TIMEOUT: Final = "timeout"
_CRASHED: Final = "crashed"
_BUSY: Final = "busy"
_OTHER: Final = "other"

_ERROR_TEXTS: Final = {
    _CONVERSION: (
        "a value could not be converted to another type (a conversion error)",
        "某个值无法转换为另一种类型（类型转换错误）",
    ),
    _ARITHMETIC: (
        "an arithmetic error (division by zero or a number out of range)",
        "算术错误（除以零或数值超出范围）",
    ),
    _INVALID: (
        "the query does not fit the granted tables and columns, or uses a function wrongly",
        "查询与授权的数据表和字段不符，或函数使用有误",
    ),
    _ACCESS: (
        "the query tried to reach something outside the granted data",
        "查询试图访问授权数据之外的资源",
    ),
    _STATEMENT: (
        "only a single SELECT statement can run",
        "只能执行单条 SELECT 语句",
    ),
    _CRASHED: (
        "the worker process stopped unexpectedly",
        "工作进程意外终止",
    ),
    _OTHER: (
        "an error in the engine",
        "引擎内部错误",
    ),
}


def _error_reason(kind: str) -> Reason:
    en, zh = _ERROR_TEXTS.get(kind, _ERROR_TEXTS[_OTHER])
    return Reason(
        rule_id("exec_errors"),
        f"The query failed while running: {en}. No value from the data is shown. "
        "Check the column types, casts and divisors in the query, and try again.",
        f"查询执行失败：{zh}。不显示任何数据值。请检查查询中的字段类型、类型转换与除数后重试。",
    )


def _refusal(kind: str, limits: Limits) -> QueryRefused:
    if kind == _TIMEOUT:
        seconds = f"{limits.seconds:g}"
        reason = Reason(
            rule_id("exec_limits"),
            f"The query ran longer than the time limit of {seconds} seconds and was stopped. "
            "Narrow it: fewer tables or joins, a filter on a group key, coarser groups.",
            f"查询运行超过 {seconds} 秒的时间上限，已被终止。请缩小查询范围：减少数据表或连接、"
            "按分组键筛选、使用更粗的分组。",
        )
    elif kind == _MEMORY:
        reason = Reason(
            rule_id("exec_limits"),
            f"The query needed more than the memory limit of {limits.memory_mb} MB and was "
            "stopped. Narrow it: fewer groups, fewer distinct values, a filter on a group key.",
            f"查询所需内存超过 {limits.memory_mb} MB 的上限，已被终止。请缩小查询范围："
            "减少分组或不同取值的数量，或按分组键筛选。",
        )
    elif kind == _BUSY:
        reason = Reason(
            rule_id("exec_limits"),
            "Every sandbox worker is busy with other queries. Try again in a minute.",
            "所有沙箱工作进程均在处理其他查询，请稍后重试。",
        )
    else:
        reason = _error_reason(kind)
    return QueryRefused([reason])


def _too_many_rows(limits: Limits) -> QueryRefused:
    cap = limits.max_result_rows
    return QueryRefused(
        [
            Reason(
                rule_id("out_size"),
                f"The result would have more than {cap} rows, the most a sandbox query may "
                "return. Group more coarsely (fewer or broader group keys) or filter on a group "
                "key.",
                f"结果将超过沙箱查询允许的 {cap} 行上限。请使用更粗的分组（减少分组键或使用"
                "更宽泛的分组键），或按分组键筛选。",
            )
        ]
    )


# ------------------------------------------------------------------------ checking the files


def _check_sources(sources: Sequence[TableSource]) -> None:
    """Every file exists, is Parquet and holds only the granted columns (a programming error
    otherwise: the caller projects the file first, ``sources.materialise(columns=...)``)."""
    names: set[str] = set()
    for source in sources:
        folded = source.name.casefold()
        if not source.name or folded in names:
            raise ValueError(f"table names must be non-empty and distinct: {source.name!r}")
        names.add(folded)
        if not source.columns:
            raise ValueError(f"table {source.name!r} has no granted column")
        present = _column_names(source.path)
        extra = [c for c in present if c not in source.columns]
        missing = [c for c in source.columns if c not in present]
        if extra or missing:
            raise ValueError(
                f"{source.path} must hold exactly the granted columns of {source.name!r} "
                f"(extra {extra}, missing {missing}); project it with sources.materialise"
            )


_footers: dict[tuple[str, int, int, int, int], tuple[str, ...]] = {}
_footers_lock = threading.Lock()


def _column_names(path: str) -> tuple[str, ...]:
    """The columns of the Parquet file at ``path``, read from its footer once per version of
    the file (its device, inode, size and modification time: a file rewritten in place or
    replaced by another under the same name is read again)."""
    resolved = os.path.realpath(path)
    stat = os.stat(resolved)
    key = (resolved, stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _footers_lock:
        names = _footers.get(key)
    if names is None:
        names = tuple(pq.read_schema(resolved).names)
        with _footers_lock:
            if len(_footers) >= 1024:
                _footers.clear()
            _footers[key] = names
    return names


def _quote(name: str) -> str:
    if not name or "\x00" in name:
        raise ValueError("an identifier must be non-empty text")
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --------------------------------------------------------------------- inside a worker process


@dataclass(frozen=True, slots=True)
class _Request:
    sql: str
    sources: tuple[TableSource, ...]
    limits: Limits
    spill_mb: int
    address_space_mb: int

    @property
    def setup(self) -> _Setup:
        return _Setup(self.spill_mb, self.limits.memory_mb, self.limits.threads)


@dataclass(frozen=True, slots=True)
class _Setup:
    """The settings of a worker's database that do not depend on the data a query reads: a
    worker applies the last query's to the next query's database while it is idle, and a query
    whose limits differ applies its own before it runs."""

    spill_mb: int
    memory_mb: int
    threads: int

    def script(self, spill: Path) -> str:
        return (
            f"SET temp_directory = {_literal(str(spill))}; "
            f"SET max_temp_directory_size = '{int(self.spill_mb)}MB'; "
            "SET enable_progress_bar = false; "
            "SET python_enable_replacements = false; "
            f"SET memory_limit = '{int(self.memory_mb)}MB'; "
            f"SET threads = {int(self.threads)}"
        )


def _classify(exc: BaseException) -> str:
    """The class of a DuckDB failure, from its exception type (its message is never sent)."""
    import duckdb

    if isinstance(exc, MemoryError | duckdb.OutOfMemoryException):
        return _MEMORY
    if isinstance(exc, duckdb.ConversionException):
        return _CONVERSION
    if isinstance(exc, duckdb.OutOfRangeException):
        return _ARITHMETIC
    if isinstance(exc, duckdb.InvalidInputException) and "division by zero" in str(exc).lower():
        return _ARITHMETIC
    if isinstance(exc, duckdb.PermissionException):
        return _ACCESS
    if isinstance(
        exc,
        duckdb.BinderException
        | duckdb.CatalogException
        | duckdb.ParserException
        | duckdb.InvalidInputException
        | duckdb.NotImplementedException,
    ):
        return _INVALID
    return _OTHER


def _vm_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0  # pragma: no cover - Linux always has it


@contextlib.contextmanager
def _address_space(limit_mb: int) -> Iterator[None]:
    """Cap the process's address space at its current size plus ``limit_mb`` while inside."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _vm_bytes() + limit_mb * 1024 * 1024
    if soft != resource.RLIM_INFINITY:
        cap = min(cap, soft)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _fresh_database(setup: _Setup | None = None, spill: Path | None = None) -> Any:
    """An in-memory DuckDB that will not look for extensions (faster to open, too), with
    ``setup`` applied when given (spilling to ``spill``)."""
    import duckdb

    con = duckdb.connect(
        ":memory:",
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
        },
    )
    if setup is not None and spill is not None:
        con.execute(setup.script(spill))
    return con


def _run_duckdb(
    request: _Request, spill: Path, con: Any, prepared: _Setup | None
) -> tuple[str, Any]:
    """Run one request in this worker on ``con`` (a fresh in-memory database on which
    ``prepared`` has been applied, or none): ``("ok", ipc bytes)``, ``("rows", None)`` or
    ``("error", kind)``. The caller closes ``con`` and empties ``spill`` afterwards (once the
    reply is sent: closing a database takes milliseconds)."""
    import duckdb

    limits = request.limits
    try:
        with _address_space(request.address_space_mb):
            spill.mkdir(parents=True, exist_ok=True)
            # One script, run in order: the granted files, the views over their granted columns
            # (created while access is on), the limits, then access off and the configuration
            # locked, so nothing after can undo any of it.
            script = [
                "SET allowed_paths = ["
                + ", ".join(_literal(str(Path(s.path).resolve())) for s in request.sources)
                + "]"
            ]
            for source in request.sources:
                columns = ", ".join(_quote(c) for c in source.columns)
                path = _literal(str(Path(source.path).resolve()))
                script.append(
                    f"CREATE VIEW {_quote(source.name)} AS "  # noqa: S608 - quoted names
                    f"SELECT {columns} FROM read_parquet({path})"
                )
            if request.setup != prepared:
                script.append(request.setup.script(spill))
            script += [
                "SET enable_external_access = false",
                "SET autoinstall_known_extensions = false",
                "SET autoload_known_extensions = false",
                "SET allow_community_extensions = false",
                "SET lock_configuration = true",
            ]
            con.execute("; ".join(script))

            statements = con.extract_statements(request.sql)
            if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
                return ("error", _STATEMENT)
            reader = con.sql(statements[0].query).to_arrow_reader(4096)
            batches: list[pa.RecordBatch] = []
            rows = 0
            for batch in reader:
                rows += batch.num_rows
                if rows > limits.max_result_rows:
                    return ("rows", None)
                batches.append(batch)
            table = pa.Table.from_batches(batches, schema=reader.schema)
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            return ("ok", sink.getvalue().to_pybytes())
    except Exception as exc:  # every failure becomes a class, never a message
        return ("error", _classify(exc))


def _serve(fd: int, spill_root: str) -> None:
    """A worker process's life: warm up, then one request after another until the socket to
    the parent closes (the parent stopped or died)."""

    conn = Connection(fd)
    spill = Path(spill_root) / f"worker-{os.getpid()}"
    # Opening a DuckDB database takes 15-30 ms, so the next query's is opened (and set up as
    # the last query's was) while idle, after the reply has gone.
    prepared: _Setup | None = None
    con = _fresh_database()
    conn.send(("ready", os.getpid()))
    try:
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                return
            # A watchdog of its own: if the parent died while this query runs, nobody would
            # kill it (SIGALRM's default action ends the process).
            signal.alarm(int(request.limits.seconds) + 10)
            try:
                reply = _run_duckdb(request, spill, con, prepared)
                signal.alarm(0)
                conn.send(reply)
            finally:
                con.close()
                shutil.rmtree(spill, ignore_errors=True)
            prepared = request.setup
            con = _fresh_database(prepared, spill)
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def _main() -> None:  # pragma: no cover - runs in the worker process
    _serve(int(sys.argv[1]), sys.argv[2])


@dataclass(slots=True)
class _Worker:
    process: subprocess.Popen[bytes]
    conn: Connection
    served: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


class WorkerPool:
    """Up to ``size`` warm DuckDB worker processes, each serving one query at a time.

    Workers start on demand and are reused; a worker that was killed (time limit) or crashed is
    discarded and the next query starts a new one; a worker is retired after
    ``max_queries_per_worker`` queries, so memory a long-lived DuckDB keeps never piles up.
    ``close`` stops them all (also registered with ``atexit`` for the process's pool).
    """

    def __init__(
        self,
        size: int | None = None,
        *,
        spill_directory: str | os.PathLike[str] | None = None,
    ) -> None:
        values = section("worker")
        self.size = int(size if size is not None else values["pool_size"])
        if self.size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self._max_queries = int(values["max_queries_per_worker"])
        self._spill_mb = int(values["spill_mb"])
        self._factor = float(values["address_space_factor"])
        self._slack_mb = int(values["address_space_slack_mb"])
        self._queue_seconds = float(values["queue_seconds"])
        root = Path(spill_directory) if spill_directory is not None else None
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        self._spill_root = Path(tempfile.mkdtemp(prefix="datafactor-sandbox-", dir=root))
        self._idle: list[_Worker] = []
        self._count = 0  # workers alive, idle or busy
        self._closed = False
        self._cond = threading.Condition()
        self._pid = os.getpid()

    # -- workers

    def _start(self) -> _Worker:
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(theirs.fileno()), str(self._spill_root)],
                pass_fds=(theirs.fileno(),),
                env={k: v for k, v in os.environ.items() if k in _ENVIRONMENT},
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in a terminal is the server's to handle
                close_fds=True,
            )
        finally:
            theirs.close()
        worker = _Worker(process, Connection(ours.detach()))
        try:
            ready = worker.conn.poll(60) and worker.conn.recv()[0] == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            worker.kill()
            raise RuntimeError("a sandbox worker process did not start")
        return worker

    def _acquire(self) -> _Worker | None:
        deadline = time.monotonic() + self._queue_seconds
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("the sandbox worker pool is closed")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.process.poll() is None:
                        return worker
                    self._count -= 1  # died while idle (killed from outside): start another
                    worker.kill()
                if self._count < self.size:
                    self._count += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
        try:
            return self._start()
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def _release(self, worker: _Worker, *, healthy: bool) -> None:
        worker.served += 1
        keep = healthy and worker.served < self._max_queries and worker.process.poll() is None
        with self._cond:
            if keep and not self._closed:
                self._idle.append(worker)
                self._cond.notify()
                return
            self._count -= 1
            self._cond.notify()
            replace = not self._closed
        worker.kill()
        shutil.rmtree(self._spill_root / f"worker-{worker.pid}", ignore_errors=True)
        if replace:
            # Start the replacement now, so the next query finds a warm worker.
            threading.Thread(target=self.warm, args=(1,), daemon=True).start()

    def warm(self, count: int | None = None) -> None:
        """Start up to ``count`` workers now (all by default), so the first queries do not wait."""
        started: list[_Worker] = []
        with contextlib.suppress(RuntimeError):  # closed meanwhile, or no worker would start
            for _ in range(count or self.size):
                with self._cond:
                    if self._closed or self._count >= self.size:
                        break
                    self._count += 1
                try:
                    started.append(self._start())
                except BaseException:
                    with self._cond:
                        self._count -= 1
                    raise
        with self._cond:
            if self._closed:
                self._count -= len(started)
                for worker in started:
                    worker.kill()
                return
            self._idle.extend(started)
            self._cond.notify_all()

    @property
    def workers(self) -> list[int]:
        """The process ids of the idle workers (for tests and the operator)."""
        with self._cond:
            return [w.pid for w in self._idle]

    # -- queries

    def run(self, staged_sql: str, sources: Sequence[TableSource], limits: Limits) -> pa.Table:
        """Run one staged query in a worker; see ``run_staged``."""
        _check_sources(sources)
        request = _Request(
            staged_sql,
            tuple(sources),
            limits,
            self._spill_mb,
            int(limits.memory_mb * self._factor) + self._slack_mb,
        )
        worker = self._acquire()
        if worker is None:
            raise _refusal(_BUSY, limits)
        healthy = False
        try:
            try:
                worker.conn.send(request)
            except OSError:
                raise _refusal(_CRASHED, limits) from None
            if not worker.conn.poll(limits.seconds):
                log.info("sandbox worker %s killed after %ss", worker.pid, limits.seconds)
                raise _refusal(_TIMEOUT, limits)
            try:
                status, value = worker.conn.recv()
            except (EOFError, OSError):
                code = worker.process.wait(timeout=5)
                log.warning("sandbox worker %s stopped (exit code %s)", worker.pid, code)
                raise _refusal(_CRASHED, limits) from None
            healthy = True
        finally:
            self._release(worker, healthy=healthy)
        if status == "rows":
            raise _too_many_rows(limits)
        if status == "error":
            raise _refusal(str(value), limits)
        with pa.ipc.open_stream(value) as reader:
            return reader.read_all()

    def close(self) -> None:
        """Stop every worker and remove their spill folders. Busy workers stop when released."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        if os.getpid() == self._pid:
            for worker in idle:
                worker.kill()
            shutil.rmtree(self._spill_root, ignore_errors=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# What a worker may see of the server's environment: enough to find Python and its packages.
_ENVIRONMENT: Final = frozenset(
    {"PATH", "PYTHONPATH", "VIRTUAL_ENV", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ"}
)
_BOOT: Final = "import sys; from datafactor.sandbox.worker import _main; _main()"

_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def worker_pool() -> WorkerPool:
    """The process's pool, created on first use (a forked child of the server gets its own)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool._pid != os.getpid() or _pool._closed:
            _pool = WorkerPool()
            atexit.register(_pool.close)
        return _pool


def shutdown_pool() -> None:
    """Stop the process's pool, if any (the next query starts a new one)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.close()


# ---------------------------------------------------------------------------------- Spark


_SPARK_CONVERSION = ("CAST_", "CONVERSION", "DATATYPE_MISMATCH", "INVALID_FORMAT")
_SPARK_ARITHMETIC = ("DIVIDE_BY_ZERO", "ARITHMETIC", "NUMERIC_VALUE_OUT_OF_RANGE", "OVERFLOW")


def _condition(exc: BaseException) -> str:
    """Spark's error condition (``DIVIDE_BY_ZERO`` …): a class, never a value; "" if none."""
    with contextlib.suppress(Exception):
        return str(exc.getCondition() or "")  # type: ignore[attr-defined]
    return ""


def _spark_kind(exc: BaseException) -> str:
    condition = _condition(exc)
    if any(condition.startswith(p) or p in condition for p in _SPARK_ARITHMETIC):
        return _ARITHMETIC
    if any(condition.startswith(p) for p in _SPARK_CONVERSION):
        return _CONVERSION
    if condition.startswith(("UNRESOLVED_", "PARSE_", "TABLE_OR_VIEW_NOT_FOUND")):
        return _INVALID
    from pyspark.errors import AnalysisException, ParseException

    if isinstance(exc, AnalysisException | ParseException):
        return _INVALID
    return _OTHER


def to_spark_sql(staged_sql: str) -> str:
    """The staged query (DuckDB dialect) in Spark SQL, translated by sqlglot. DuckDB's TRY(…)
    (the checker's guard against errors that depend on a value) has no Spark form: it is
    dropped; the sandbox's Spark session runs without ANSI mode instead (``_run_spark``)."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(staged_sql, read="duckdb")
    tree = tree.transform(lambda n: n.this if isinstance(n, exp.Try) else n)
    return str(tree.sql("spark"))


def _run_spark(
    staged_sql: str,
    sources: Sequence[TableSource],
    limits: Limits,
    *,
    spark_master: str,
    spark_driver_memory: str,
    spark_session: Any,
    spark_shuffle_partitions: int | None,
) -> pa.Table:
    from pyspark.errors import PySparkException

    from datafactor.dataplane import SparkEngine, StatementRefused

    _check_sources(sources)
    try:
        sql = to_spark_sql(staged_sql)
    except Exception:  # sqlglot's message quotes the query; the refusal stays generic
        raise _refusal(_INVALID, limits) from None
    folders = sorted({str(Path(s.path).resolve().parent) for s in sources})
    engine = SparkEngine(
        master=spark_master,
        driver_memory=spark_driver_memory,
        session=spark_session,
        allowed_directories=folders,
        shuffle_partitions=spark_shuffle_partitions,
    )
    # Not ANSI: an overflow, a bad cast or a division by zero is NULL (or wraps), never an
    # error — an error that depends on a value would tell the grantee whether some row holds
    # it, past k and the noise (DuckDB has the checker's TRY(…) for that; Spark has no TRY).
    # The staged SQL quotes identifiers with backticks, so double quotes are not needed.
    engine.session.conf.set("spark.sql.ansi.enabled", "false")
    group = f"sandbox-{uuid.uuid4().hex}"
    context = engine.session.sparkContext
    timed_out = threading.Event()

    def cancel() -> None:
        timed_out.set()
        context.cancelJobGroup(group)

    timer = threading.Timer(limits.seconds, cancel)
    try:
        for source in sources:
            frame = engine.session.read.parquet(str(Path(source.path).resolve()))
            frame = frame.select(*[frame[f"`{c.replace('`', '``')}`"] for c in source.columns])
            frame.createOrReplaceTempView(f"`{source.name.replace('`', '``')}`")
        context.setJobGroup(group, "datafactor sandbox query", interruptOnCancel=True)
        timer.start()
        frame = engine.dataframe(sql)
        # One row more than the cap tells "too many" without collecting a huge result.
        table = frame.limit(limits.max_result_rows + 1).toArrow()
    except StatementRefused:
        raise _refusal(_STATEMENT, limits) from None
    except (PySparkException, Exception) as exc:
        if timed_out.is_set():
            raise _refusal(_TIMEOUT, limits) from None
        if isinstance(exc, QueryRefused):
            raise
        raise _refusal(_spark_kind(exc), limits) from None
    finally:
        timer.cancel()
        with contextlib.suppress(Exception):
            context.setLocalProperty("spark.jobGroup.id", None)
        engine.close()
    if timed_out.is_set():
        raise _refusal(_TIMEOUT, limits)
    if table.num_rows > limits.max_result_rows:
        raise _too_many_rows(limits)
    return table


# -------------------------------------------------------------------------- Spark Connect

# Session settings asked of the Spark Connect server for the sandbox's client session. The
# server may refuse one (an operator's lock); the session is then not used (``_connect_session``).
_CONNECT_CONF: Final = {
    # Not ANSI: a value-dependent failure would tell whether some row holds the value.
    "spark.sql.ansi.enabled": "false",
    "spark.sql.runSQLOnFiles": "false",
    "spark.sql.scripting.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
}
# Functions that reach outside the granted views: Java reflection, file names and file reads.
_CONNECT_REFUSED_FUNCTIONS: Final = frozenset(
    {
        "reflect",
        "java_method",
        "try_reflect",
        "input_file_name",
        "input_file_block_start",
        "input_file_block_length",
        "read_files",
    }
)

_connect_lock = threading.Lock()
_connect_sessions: dict[str, Any] = {}


def _connect_session(url: str) -> Any:
    """The process's Spark Connect client session for ``url``: created on first use with the
    sandbox's session settings (``_CONNECT_CONF``), then reused by every query."""
    with _connect_lock:
        session = _connect_sessions.get(url)
        if session is not None:
            return session
        from pyspark.sql import SparkSession

        session = SparkSession.builder.remote(url).create()
        try:
            for key, value in _CONNECT_CONF.items():
                session.conf.set(key, value)
                if str(session.conf.get(key)) != value:
                    raise RuntimeError(f"the Spark Connect server keeps {key} from being {value}")
        except BaseException:
            with contextlib.suppress(Exception):
                session.stop()
            raise
        _connect_sessions[url] = session
        return session


def _forget_connect_session(url: str, session: Any) -> None:
    """Drop a client session that failed for no query-related reason (a restarted server, a
    lost connection): the next query opens a new one."""
    with _connect_lock:
        if _connect_sessions.get(url) is session:
            del _connect_sessions[url]
    with contextlib.suppress(Exception):
        session.stop()


def close_spark_connect() -> None:
    """Close the process's Spark Connect client sessions (the servers keep running)."""
    with _connect_lock:
        sessions = list(_connect_sessions.values())
        _connect_sessions.clear()
    for session in sessions:
        with contextlib.suppress(Exception):
            session.stop()


atexit.register(close_spark_connect)


def _connect_query(sql: str, views: dict[str, str]) -> str:
    """``sql`` (Spark SQL) with each granted table renamed to its query's own view (``views``:
    folded table name → view name), after the lock-down a Spark Connect client can do itself:
    one query; no command, no ``SET``, no ``TRANSFORM … USING``; no table but the granted ones
    and the query's own CTEs (no ``parquet.`/path```, no table function); no reflection or file
    function. Raises ``ValueError`` otherwise."""
    import sqlglot
    from sqlglot import exp

    statements = sqlglot.parse(sql, read="spark")
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise ValueError("one query only")
    tree = statements[0]
    ctes = {cte.alias_or_name.casefold() for cte in tree.find_all(exp.CTE)}
    if ctes & views.keys():
        raise ValueError("a CTE may not take a granted table's name")
    for node in tree.walk():
        if isinstance(node, exp.Command | exp.DDL | exp.DML | exp.Set | exp.QueryTransform):
            raise ValueError(f"{type(node).__name__} is not a query")
        if isinstance(node, exp.Func):
            name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
            if name.casefold() in _CONNECT_REFUSED_FUNCTIONS:
                raise ValueError(f"{name} is not allowed")
        if isinstance(node, exp.Table):
            if not isinstance(node.this, exp.Identifier) or node.args.get("db"):
                raise ValueError("only the granted tables may be read")
            if node.name.casefold() not in views.keys() | ctes:
                raise ValueError("only the granted tables may be read")

    for table in list(tree.find_all(exp.Table)):
        view = views.get(table.name.casefold())
        if view is None:
            continue  # a CTE
        if not table.args.get("alias"):
            # Keep the table's own name for the columns that are qualified by it.
            table.set("alias", exp.TableAlias(this=exp.to_identifier(table.name, quoted=True)))
        table.set("this", exp.to_identifier(view, quoted=True))
    return str(tree.sql("spark"))


def _run_spark_connect(
    staged_sql: str, sources: Sequence[TableSource], limits: Limits, *, url: str
) -> pa.Table:
    """``_run_spark`` through a Spark Connect server (see the module docstring)."""
    _check_sources(sources)
    token = uuid.uuid4().hex
    # Views of this query only: the client session is shared by the process's queries.
    views = {s.name.casefold(): f"sandbox_{token}_{i}" for i, s in enumerate(sources)}
    try:
        sql = _connect_query(to_spark_sql(staged_sql), views)
    except Exception:  # sqlglot's message quotes the query; the refusal stays generic
        raise _refusal(_STATEMENT, limits) from None
    try:
        session = _connect_session(url)
    except Exception as exc:
        # The URL may carry a token (sc://host:15002/;token=…): it is not logged.
        log.warning("the sandbox cannot use its Spark Connect server: %s", type(exc).__name__)
        raise _refusal(_OTHER, limits) from None
    tag = f"datafactor-sandbox-{token}"
    timed_out = threading.Event()

    def cancel() -> None:
        timed_out.set()
        with contextlib.suppress(Exception):
            session.interruptTag(tag)

    timer = threading.Timer(limits.seconds, cancel)
    created: list[str] = []
    session.addTag(tag)  # this thread's operations only
    try:
        timer.start()
        try:
            for source in sources:
                view = views[source.name.casefold()]
                frame = session.read.parquet(str(Path(source.path).resolve()))
                frame = frame.select(*[frame[f"`{c.replace('`', '``')}`"] for c in source.columns])
                frame.createOrReplaceTempView(view)
                created.append(view)
        except Exception as exc:
            if timed_out.is_set():
                raise
            # Not the query's fault: the server cannot read the file (docs/sandbox.md).
            log.warning(
                "the Spark Connect server cannot read a sandbox file (%s)",
                _condition(exc) or type(exc).__name__,
            )
            raise _refusal(_OTHER, limits) from None
        # One row more than the cap tells "too many" without collecting a huge result.
        table = session.sql(sql).limit(limits.max_result_rows + 1).toArrow()
    except QueryRefused:
        raise
    except Exception as exc:
        if timed_out.is_set():
            raise _refusal(_TIMEOUT, limits) from None
        kind = _spark_kind(exc)
        if kind == _OTHER:
            _forget_connect_session(url, session)
        raise _refusal(kind, limits) from None
    finally:
        timer.cancel()
        with contextlib.suppress(Exception):
            session.removeTag(tag)
        for view in created:
            with contextlib.suppress(Exception):
                session.catalog.dropTempView(view)
    if timed_out.is_set():
        raise _refusal(_TIMEOUT, limits)
    if table.num_rows > limits.max_result_rows:
        raise _too_many_rows(limits)
    return table


# ----------------------------------------------------------------------------- the entry point


def run_staged(
    staged_sql: str,
    sources: Sequence[TableSource],
    *,
    limits: Limits,
    engine: Engine = Engine.DUCKDB,
    pool: WorkerPool | None = None,
    spark_master: str = "local[2]",
    spark_driver_memory: str = "1g",
    spark_session: Any = None,
    spark_shuffle_partitions: int | None = None,
    spark_remote: str | None = None,
) -> pa.Table:
    """Run a staged query over the granted files under ``limits``; its result as Arrow.

    DuckDB runs in a worker of ``pool`` (default: the process's pool, ``worker_pool()``). Spark
    runs on ``spark_session`` if given; otherwise through the Spark Connect server at
    ``spark_remote`` (default: ``DATAFACTOR_SPARK_REMOTE``) if that is set, else on the
    process's session on ``spark_master`` (started if need be). Raises ``QueryRefused`` — with a reason that never quotes the data — when the query
    fails, passes a limit, or would return more than ``limits.max_result_rows`` rows; raises
    ``ValueError`` when a file holds more than the granted columns (a caller's mistake).
    """
    if engine is Engine.SPARK:
        if spark_session is None:
            if spark_remote is None:
                from datafactor.settings import get_settings

                spark_remote = get_settings().spark_remote
            if spark_remote:
                return _run_spark_connect(staged_sql, sources, limits, url=spark_remote)
        return _run_spark(
            staged_sql,
            sources,
            limits,
            spark_master=spark_master,
            spark_driver_memory=spark_driver_memory,
            spark_session=spark_session,
            spark_shuffle_partitions=spark_shuffle_partitions,
        )
    return (pool or worker_pool()).run(staged_sql, sources, limits)
