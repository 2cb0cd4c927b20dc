"""The control-plane database: engine set-up, the declarative base, sessions and transactions.

One ``Database`` object per process wraps one engine. SQLite is the embedded default and runs in
WAL mode so readers never block the writer; PostgreSQL is production. Two transaction shapes:

* ``db.read()`` — a plain transaction for queries.
* ``db.write()`` — a transaction that will write. On SQLite it opens with ``BEGIN IMMEDIATE``:
  a deferred transaction that reads and then writes can fail with ``SQLITE_BUSY`` when another
  writer committed in between (the busy timeout does not help in that case), so writers take the
  write lock up front and queue on ``busy_timeout`` instead. On PostgreSQL writers serialise where
  they must with row locks (``SELECT … FOR UPDATE``), e.g. on the audit chain head.

Service functions receive the ``Session`` and never commit; the entry point that opened the
transaction commits, so a use case and its audit event land together or not at all.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import DateTime, Engine, MetaData, Select, String, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and always returned timezone-aware (UTC).

    SQLite has no time zones and PostgreSQL's ``timestamptz`` converts to the session zone; storing
    naive UTC on both gives identical round trips, which the audit hash chain depends on.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base of every control-plane table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def new_id() -> str:
    """A fresh random object id (UUID4 text): not guessable, so ids leak nothing across tenants."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


CHINA = ZoneInfo("Asia/Shanghai")


def today_cn() -> date:
    """Today's date in China, where birth dates, deadlines and working days are counted."""
    return datetime.now(CHINA).date()


ID = String(36)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not pysqlite, decide when transactions begin (see the "begin" hook below).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged commit survives power loss
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """Create the engine for ``url`` with the per-dialect settings this project relies on."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # As many pooled connections as the thread pool has threads (AnyIO's default is 40):
        # an overflow connection is closed after use, so a smaller pool reconnects under load.
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=40,
            max_overflow=10,
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    # A fixed pool, no overflow: an overflow connection is closed after one use, and opening a
    # PostgreSQL connection (a server process fork) costs more than the query; under load threads
    # wait for a pooled connection instead. No pre-ping (a round trip per checkout): a connection
    # found dead raises a disconnect error, on which SQLAlchemy invalidates the whole pool.
    return create_engine(
        url, pool_size=pool_size, max_overflow=0, pool_timeout=30, pool_recycle=3600
    )


@dataclass(frozen=True)
class _LookupPlan:
    """A ``SELECT`` compiled once for the database's dialect: its SQL, its parameter order when
    the driver's paramstyle is positional (sqlite3), and how to turn a raw row into a row."""

    sql: str
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]
    row_type: type[tuple[Any, ...]]
    positions: tuple[str, ...] | None = None  # parameter order of a positional paramstyle

    @classmethod
    def compile(cls, stmt: Select[Any], dialect: Dialect) -> _LookupPlan:
        compiled = stmt.compile(dialect=dialect)
        if any(compiled._bind_processors.values()):  # our lookups bind text ids and hashes
            raise TypeError("Database.lookup takes only parameters that need no conversion")
        processors = []
        for i, column in enumerate(stmt.selected_columns):
            processor = column.type._cached_result_processor(dialect, None)
            if processor is not None:
                processors.append((i, processor))
        keys = list(stmt.selected_columns.keys())
        positions = compiled.positiontup
        return cls(
            str(compiled),
            tuple(processors),
            namedtuple("Row", keys, rename=True),  # fields known only at run time
            None if positions is None else tuple(positions),
        )

    def parameters(self, params: Mapping[str, Any]) -> Mapping[str, Any] | tuple[Any, ...]:
        if self.positions is None:
            return params
        return tuple(params[name] for name in self.positions)

    def row(self, raw: tuple[Any, ...]) -> tuple[Any, ...]:
        if self.processors:
            values = list(raw)
            for i, processor in self.processors:
                values[i] = processor(values[i])
            raw = tuple(values)
        return self.row_type._make(raw)  # type: ignore[attr-defined,no-any-return]


class _RawPool:
    """At most ``size`` psycopg async connections of one event loop, in autocommit mode.

    A connection found broken is dropped and the lookup retried once on a fresh one (a server
    restart or an idle timeout must not fail requests); a second failure is a real error.
    """

    def __init__(self, engine: Engine, size: int) -> None:
        _args, self._connect_kwargs = engine.dialect.create_connect_args(engine.url)
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._slots = asyncio.Semaphore(size)

    async def fetchone(self, sql: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        async with self._slots:
            for attempt in (1, 2):
                reused = bool(self._idle)
                connection = (
                    self._idle.pop()
                    if reused
                    else await psycopg.AsyncConnection.connect(
                        **self._connect_kwargs, autocommit=True
                    )
                )
                try:
                    cursor = await connection.execute(sql, params, prepare=True)
                    row = await cursor.fetchone()
                except psycopg.OperationalError:
                    await connection.close()
                    if attempt == 2 or not reused or not connection.broken:
                        raise
                    continue
                except BaseException:
                    await connection.close()
                    raise
                self._idle.append(connection)
                return row
        raise AssertionError("unreachable")

    async def close(self) -> None:
        while self._idle:
            await self._idle.pop().close()


class _Watch:
    """A counter kept current by PostgreSQL notifications, for one event loop.

    A task holds one autocommit connection that ``LISTEN``s on ``channel`` and *then* reads the
    counter, so every commit is either seen by that read or notified after it; each notification
    carries the new value (writers ``pg_notify`` it in the committing transaction, and PostgreSQL
    delivers it only once the transaction commits). ``value`` is None while the watch is not
    live — before the first read, or after the connection broke until it is re-established —
    and readers then fall back to reading the counter themselves.
    """

    def __init__(self, connect_kwargs: Mapping[str, Any], channel: str, sql: str) -> None:
        self._connect_kwargs = connect_kwargs
        self._channel = channel
        self._sql = sql
        self.value: int | None = None
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"watch {channel}")

    def seen(self, value: int) -> None:
        if self.value is not None and value > self.value:
            self.value = value

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    **self._connect_kwargs, autocommit=True
                ) as connection:
                    await connection.execute(f'LISTEN "{self._channel}"')
                    row = await (await connection.execute(self._sql)).fetchone()
                    self.value = 0 if row is None else int(row[0])
                    delay = 0.5
                    async for note in connection.notifies():
                        self.seen(int(note.payload))
            except asyncio.CancelledError:
                self.value = None
                raise
            except (psycopg.Error, OSError, ValueError):
                self.value = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def close(self) -> None:
        self.value = None
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task


class Database:
    """One engine and its session factories."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        write_bind = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        # Reads on PostgreSQL run in autocommit: under READ COMMITTED every statement takes its own
        # snapshot even inside a transaction, so a read-only transaction adds nothing but the
        # BEGIN and ROLLBACK round trips (which were half of an API read's). SQLite keeps its
        # in-process transactions (a snapshot for the whole read).
        self.read_engine = (
            self.engine
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._read = sessionmaker(self.read_engine, expire_on_commit=False)
        self._write = sessionmaker(write_bind, expire_on_commit=False)
        self._writer = threading.RLock()
        self._pool_size = pool_size
        # PostgreSQL reads from async code go through an asyncio engine (psycopg's async mode):
        # the same sync service code runs in a greenlet on the event loop, so a read costs no
        # thread-pool hop. Its connections belong to the loop that opened them: one engine per
        # loop, created on first use and closed by ``aclose`` when that loop's app shuts down.
        self._async_engines: dict[asyncio.AbstractEventLoop, AsyncEngine] = {}
        # ``lookup`` on PostgreSQL: raw psycopg connections, also one pool per loop.
        self._raw_pools: dict[asyncio.AbstractEventLoop, _RawPool] = {}
        self._lookup_plans: dict[Select[Any], _LookupPlan] = {}
        # ``counter`` on PostgreSQL: watched counters, one per loop and channel.
        self._watches: dict[tuple[asyncio.AbstractEventLoop, str], _Watch] = {}

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work. Closing ends the transaction without expiring the objects
        loaded in it (a rollback would), so they stay readable after the block."""
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A unit of work that commits on success and rolls back on any exception.

        On SQLite the process's writers also queue on an in-process lock before ``BEGIN
        IMMEDIATE``: SQLite's busy handler retries a locked database by sleeping (up to 100 ms a
        time), so writers of one process queued on it see long tails; on the lock each wakes as
        soon as the one before commits. Writers of other processes still queue on the busy
        timeout."""
        if not self.is_sqlite:
            with self._write() as session, session.begin():
                yield session
            return
        with self._writer, self._write() as session, session.begin():
            yield session

    def _async_engine(self) -> AsyncEngine:
        loop = asyncio.get_running_loop()
        engine = self._async_engines.get(loop)
        if engine is None:
            engine = create_async_engine(
                self.engine.url,
                pool_size=self._pool_size,
                max_overflow=0,
                pool_recycle=3600,
                isolation_level="AUTOCOMMIT",
            )
            self._async_engines[loop] = engine
        return engine

    async def run_read(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` (sync code taking a ``Session``) in a read unit of work from async code.

        On SQLite a read is a local indexed lookup of a fraction of a millisecond (WAL readers never
        wait for the writer), so it runs inline; on PostgreSQL it runs in a greenlet over the
        asyncio engine, waiting on the network without blocking the loop or hopping threads.
        """
        if self.is_sqlite:
            with self.read() as session:
                return work(session)
        async with AsyncSession(self._async_engine(), expire_on_commit=False) as session:
            return await session.run_sync(work)

    async def lookup(self, stmt: Select[Any], params: Mapping[str, Any]) -> Any | None:
        """The first row of a Core ``SELECT`` (or None), from async code, on the hot path.

        Every API request resolves its token and most read one object, so these lookups skip
        what a general read pays for. On SQLite they run inline on a pooled sqlite3 connection. On
        PostgreSQL they run on a raw psycopg async connection as a server-side prepared statement
        (compiled once per statement), without the ORM, the greenlet bridge or SQLAlchemy's result
        machinery — that was half of an API request's CPU. The row has the statement's column
        types applied (e.g. ``UTCDateTime``) and attribute access by column name like a
        SQLAlchemy ``Row``. Only for statements whose parameters need no type conversion.
        """
        plan = self._lookup_plans.get(stmt)
        if plan is None:
            plan = self._lookup_plans[stmt] = _LookupPlan.compile(stmt, self.engine.dialect)
        if self.is_sqlite:
            # The pooled sqlite3 connection itself (its pragmas applied): no SQLAlchemy
            # execution context, compilation cache lookup or result object per call.
            connection = self.read_engine.raw_connection()
            try:
                cursor = connection.cursor()
                try:
                    cursor.execute(plan.sql, plan.parameters(params))
                    raw = cursor.fetchone()
                finally:
                    cursor.close()
            finally:
                connection.close()
            return None if raw is None else plan.row(tuple(raw))
        pool = self._raw_pools.get(asyncio.get_running_loop())
        if pool is None:
            pool = _RawPool(self.engine, self._pool_size)
            self._raw_pools[asyncio.get_running_loop()] = pool
        row = await pool.fetchone(plan.sql, params)
        return None if row is None else plan.row(row)

    async def counter(
        self, stmt: Select[Any], params: Mapping[str, Any], *, channel: str
    ) -> int | None:
        """A counter that writers ``pg_notify(channel, new value)`` as they change it, read on a
        hot path: on PostgreSQL from memory once this loop's watch is live (no round trip), and
        with ``lookup`` until then or while the watch reconnects; on SQLite always with
        ``lookup`` (a local read). ``stmt`` reads the counter (its first column); None when it
        has no row.

        A change is seen here once its notification arrives — after the writer's commit, within
        the notification's delivery time — so a reader may briefly see the value before a commit
        that has just returned, never one older than a commit it saw notified.
        """
        if not self.is_sqlite:
            loop = asyncio.get_running_loop()
            watch = self._watches.get((loop, channel))
            if watch is None:
                literal = stmt.params(**params).compile(
                    dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}
                )
                _args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
                watch = self._watches[(loop, channel)] = _Watch(kwargs, channel, str(literal))
            if watch.value is not None:
                return watch.value
        row = await self.lookup(stmt, params)
        return None if row is None else int(row[0])

    async def aclose(self) -> None:
        """Close the asyncio engine, raw connections and watches of the running loop (app
        shutdown)."""
        loop = asyncio.get_running_loop()
        for key in [k for k in self._watches if k[0] is loop]:
            await self._watches.pop(key).close()
        engine = self._async_engines.pop(loop, None)
        if engine is not None:
            await engine.dispose()
        pool = self._raw_pools.pop(loop, None)
        if pool is not None:
            await pool.close()

    def dispose(self) -> None:
        self.engine.dispose()
