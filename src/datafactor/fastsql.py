"""Core statements compiled once and run on the DBAPI cursor of a session's connection: the
write paths that every trade runs (the exchange's order, settlement's escrow, the audit chain,
the inbox) use these instead of ``session.execute``.

Running a Core statement through SQLAlchemy costs far more CPU than the database spends on it
(the execution context, the compiled cache lookup, ``cursor.description`` turned into result
metadata, the ORM's unit of work around it): a trade of twenty statements spent most of its
~15 ms there. A ``Plan`` compiles its statement once per dialect — the SQL text, the parameter
order of a positional paramstyle, the bind processors of its column types (``UTCDateTime``,
JSON, dates) and the result processors of its columns — and ``Raw`` runs it on the connection
the session's transaction already holds, so it is part of that transaction like any statement.
On PostgreSQL the statement goes to psycopg's ``RawCursor`` with ``$n`` parameters, which
parses nothing per call. ``Rows`` inserts several rows in one statement, and ``Raw.insert_all``
rows of several tables in one statement on PostgreSQL (data-modifying CTEs): a statement fewer
is a round trip fewer, and for the ones a trade makes while it holds the rows every trade
locks, a round trip fewer for every other trade too.

What SQLAlchemy still does: ``before_cursor_execute`` / ``after_cursor_execute`` listeners are
called (the tests and the benchmark that watch statements see these too), and a driver error is
handed to the connection's own handling, so it arrives as SQLAlchemy's exception (an
``IntegrityError`` is ``sqlalchemy.exc.IntegrityError``) and a lost connection invalidates the
pool as it would; the unit of work's next statement runs on a new cursor (SQLAlchemy closes the
failed one). A statement run inside ``session.begin_nested()`` runs inside its savepoint (the
session emits it then if nothing else in the block has yet), so it goes with the savepoint's
rollback. Pending ORM changes are flushed before the first statement (autoflush) unless
the caller says otherwise, so the raw statements come after them, in the order the code runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from sqlalchemy import Table, bindparam, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement

_PYFORMAT: Final = re.compile(r"%%|%\(([^)]+)\)s")


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the bind names, in the order of a positional paramstyle
    positional: bool
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]
    results: tuple[tuple[int, Callable[[Any], Any]], ...]
    defaults: tuple[tuple[str, Any], ...]  # the values the statement itself carries
    # Positional: each parameter's name and conversion (None: as it is).
    order: tuple[tuple[str, Callable[[Any], Any] | None], ...] = ()
    # psycopg: the statement with ``$1, $2, …`` for a ``RawCursor`` (no parsing per call).
    numbered: bytes | None = None

    def args(self, params: Mapping[str, Any]) -> Any:
        if self.defaults:
            params = {**dict(self.defaults), **params}
        if self.positional:
            return tuple(
                [
                    params[name] if process is None else process(params[name])
                    for name, process in self.order
                ]
            )
        if self.binds:
            params = dict(params)
            for name, process in self.binds:
                if name in params:
                    params[name] = process(params[name])
        return params

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        if not self.results:
            return tuple(raw)
        values = list(raw)
        for i, process in self.results:
            values[i] = process(values[i])
        return tuple(values)


class Plan:
    """A Core statement (select, insert, update) compiled once per dialect. ``keys`` names the
    columns an ``insert`` / ``update`` without ``values`` sets (its parameters' keys)."""

    __slots__ = ("_by_dialect", "_keys", "statement")

    def __init__(self, statement: ClauseElement, keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        self._keys = None if keys is None else list(keys)
        self._by_dialect: dict[str, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        found = self._by_dialect.get(dialect.name)
        if found is not None:
            return found
        compiled: Any = self.statement.compile(dialect=dialect, column_keys=self._keys)
        prefetch = [c.key for c in (*compiled.insert_prefetch, *compiled.update_prefetch)]
        if prefetch:  # a column default SQLAlchemy would compute per execution
            raise ValueError(f"pass every column the statement sets; missing {prefetch}")
        sql = str(compiled)
        numbered: bytes | None = None
        positional = bool(compiled.positional)
        if positional:
            names = tuple(compiled.positiontup)
        elif dialect.paramstyle == "pyformat":
            # psycopg takes ``%s`` with a tuple for less work per call than ``%(name)s`` with a
            # dict (no reordering by name); ``%%`` is a literal percent sign and stays. Its
            # ``RawCursor`` takes ``$n`` and parses nothing at all (a query is parsed at every
            # call once it is longer than psycopg's cache takes: a trade's longest are).
            order: list[str] = []

            def positional_mark(found: re.Match[str]) -> str:
                if found.group(1) is None:
                    return found.group(0)
                order.append(found.group(1))
                return "%s"

            def numbered_mark(found: re.Match[str]) -> str:
                if found.group(1) is None:
                    return "%"
                order.append(found.group(1))
                return f"${len(order)}"

            numbered = _PYFORMAT.sub(numbered_mark, sql).encode()
            order.clear()
            sql = _PYFORMAT.sub(positional_mark, sql)
            names, positional = tuple(order), True
        else:
            names = tuple(compiled.binds)
        binds = tuple(
            (name, process)
            for name, process in ((n, compiled._bind_processors.get(n)) for n in set(names))
            if process is not None
        )
        results: list[tuple[int, Callable[[Any], Any]]] = []
        for i, entry in enumerate(compiled._result_columns):
            process = entry[3]._cached_result_processor(dialect, None)
            if process is not None:
                results.append((i, process))
        defaults = tuple(
            (name, bind.effective_value)
            for name, bind in compiled.binds.items()
            if not bind.required and bind.callable is None and name in names
        )
        processors = dict(binds)
        conversions = tuple((n, processors.get(n)) for n in names) if positional else ()
        found = _Compiled(
            sql,
            names,
            positional,
            binds,
            tuple(results),
            defaults,
            conversions,
            numbered if dialect.paramstyle == "pyformat" else None,
        )
        self._by_dialect[dialect.name] = found
        return found


class Rows:
    """A multi-row ``INSERT … VALUES (…), (…)`` of ``keys`` into ``table``, one ``Plan`` per row
    count (compiled on first use): a few rows go in one statement instead of a batch of
    statements. ``head`` is a statement run with it as a CTE (PostgreSQL only: ``WITH x AS
    (UPDATE …) INSERT …`` — one statement for both)."""

    __slots__ = ("_head", "_keys", "_plans", "_table", "single")

    MAX_ROWS: Final = 32  # beyond this, ``Raw.insert`` runs the single-row plan as a batch

    def __init__(self, table: Table, keys: Sequence[str], head: Any = None) -> None:
        self._table = table
        self._keys = tuple(keys)
        self._head = head
        self._plans: dict[int, Plan] = {}
        self.single = Plan(insert(table), keys=keys)  # a row per statement, for large batches

    def statement(self, count: int, tag: str = "") -> Any:
        """The insert of ``count`` rows, its parameters named ``<column>__<tag><row>``."""
        values = [
            {k: bindparam(f"{k}__{tag}{i}", type_=self._table.c[k].type) for k in self._keys}
            for i in range(count)
        ]
        return insert(self._table).values(values)

    def plan(self, count: int) -> Plan:
        found = self._plans.get(count)
        if found is None:
            stmt = self.statement(count)
            if self._head is not None:
                stmt = stmt.add_cte(self._head)
            found = self._plans[count] = Plan(stmt)
        return found

    def params(self, rows: Sequence[Mapping[str, Any]], tag: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, row in enumerate(rows):
            for k in self._keys:
                out[f"{k}__{tag}{i}"] = row[k]
        return out


# (the Rows and row counts of each part) → the PostgreSQL statement inserting them all.
_TOGETHER: dict[tuple[tuple[int, int], ...], Plan] = {}


_HELD: Final = "datafactor.fastsql.raw"  # session.info: (its transaction, its Raw)


class Raw:
    """The statements of one unit of work, run on the cursor of the session's connection.

    ``Raw.of(session)`` is the one of the session's current transaction (made on first use,
    one cursor for the unit of work); each call flushes what the ORM holds pending (as
    ``session.execute`` would; ``flush=False`` as ``session.connection().execute`` would not),
    then the ``Plan``s run in the session's transaction."""

    __slots__ = ("_after", "_before", "_connection", "_cursor", "_numbered", "_session", "dialect")

    @classmethod
    def of(cls, session: Session, *, flush: bool = True) -> Raw:
        """The session's ``Raw`` for its current transaction (one cursor for every statement
        of the unit of work), made on first use."""
        if flush and session.autoflush:
            session.flush()  # nothing to do (and cheap) when nothing is pending
        held: tuple[Any, Raw] | None = session.info.get(_HELD)
        transaction = session.get_transaction()
        if held is not None and transaction is not None and held[0] is transaction:
            return held[1]
        raw = cls(session, flush=False)
        session.info[_HELD] = (session.get_transaction(), raw)
        return raw

    def __init__(self, session: Session, *, flush: bool = True) -> None:
        if flush and session.autoflush:
            session.flush()
        self._session = session
        connection = self._connection = session.connection()
        self.dialect: Dialect = connection.dialect
        self._cursor: Any = None
        self._numbered = isinstance(connection.connection.dbapi_connection, psycopg.Connection)
        # The statement listeners as the unit of work starts (one added later sees the next).
        events = connection._has_events or connection.engine._has_events
        self._before = list(connection.dispatch.before_cursor_execute) if events else []
        self._after = list(connection.dispatch.after_cursor_execute) if events else []

    @property
    def is_sqlite(self) -> bool:
        return self.dialect.name == "sqlite"

    def _run(self, plan: Plan, params: Any, many: bool) -> tuple[_Compiled, Any]:
        compiled = plan.compiled(self.dialect)
        if self._session.in_nested_transaction():
            # The session emits a savepoint when its block first takes the connection: take it,
            # so that this statement runs inside the savepoint and goes with its rollback.
            self._session.connection()
        cursor = self._cursor
        if cursor is None:
            dbapi: Any = self._connection.connection.dbapi_connection
            cursor = self._cursor = psycopg.RawCursor(dbapi) if self._numbered else dbapi.cursor()
        args = [compiled.args(p) for p in params] if many else compiled.args(params)
        connection = self._connection
        for listener in self._before:
            listener(connection, cursor, compiled.sql, args, None, many)
        sql: Any = compiled.numbered if self._numbered else compiled.sql
        try:
            if many:
                cursor.executemany(sql, args)
            else:
                cursor.execute(sql, args)
        except self.dialect.loaded_dbapi.Error as exc:
            # SQLAlchemy's handling closes the cursor: the next statement of the unit of work
            # (after a savepoint undid this one, say) opens another.
            self._cursor = None
            # Wrapped as SQLAlchemy wraps it (IntegrityError, OperationalError, …), the
            # connection invalidated when it was lost: raises.
            connection._handle_dbapi_exception(exc, compiled.sql, args, cursor, None)
            raise  # not reached
        for listener in self._after:
            listener(connection, cursor, compiled.sql, args, None, many)
        return compiled, cursor

    def execute(self, plan: Plan, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing."""
        self._run(plan, params or {}, False)

    def executemany(self, plan: Plan, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run a statement once per parameter set (the driver batches them)."""
        if rows:
            self._run(plan, rows, True)

    def insert(
        self,
        rows_plan: Rows,
        rows: Sequence[Mapping[str, Any]],
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Insert ``rows`` in one statement (``extra``: the parameters of its CTE; the caller
        keeps such an insert to ``Rows.MAX_ROWS`` rows)."""
        if not rows:
            return
        if len(rows) > Rows.MAX_ROWS and not extra:
            self.executemany(rows_plan.single, rows)
            return
        self.execute(rows_plan.plan(len(rows)), {**rows_plan.params(rows), **(extra or {})})

    def insert_all(self, parts: Sequence[tuple[Rows, Sequence[Mapping[str, Any]]]]) -> None:
        """Insert rows into several tables: on PostgreSQL in one statement (each part but the
        last a data-modifying CTE — foreign keys are checked at the statement's end, so a child
        may come before its parent), on SQLite — and for a part of more than ``Rows.MAX_ROWS``
        rows — one statement per part, in order."""
        parts = [(rows_plan, rows) for rows_plan, rows in parts if rows]
        if self.is_sqlite or len(parts) < 2 or any(len(r) > Rows.MAX_ROWS for _, r in parts):
            for rows_plan, rows in parts:
                self.insert(rows_plan, rows)
            return
        shape = tuple((id(rows_plan), len(rows)) for rows_plan, rows in parts)
        plan = _TOGETHER.get(shape)
        if plan is None:
            *ctes, (last, last_rows) = parts
            stmt = last.statement(len(last_rows), f"p{len(ctes)}_")
            for j, (rows_plan, rows) in enumerate(ctes):
                stmt = stmt.add_cte(rows_plan.statement(len(rows), f"p{j}_").cte(f"part_{j}"))
            plan = _TOGETHER[shape] = Plan(stmt)
        params: dict[str, Any] = {}
        for j, (rows_plan, rows) in enumerate(parts):
            params.update(rows_plan.params(rows, f"p{j}_"))
        self.execute(plan, params)

    def first(self, plan: Plan, params: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
        """The first row the statement returns (its column types applied), or None."""
        compiled, cursor = self._run(plan, params or {}, False)
        raw = cursor.fetchone()
        return None if raw is None else compiled.row(raw)

    def all(self, plan: Plan, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Every row the statement returns (its column types applied)."""
        compiled, cursor = self._run(plan, params or {}, False)
        return [compiled.row(raw) for raw in cursor.fetchall()]
