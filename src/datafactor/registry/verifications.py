"""Public verifications shared by the server's worker processes.

Each worker keeps the verifications it has answered in memory (``services.VerificationCache``,
keyed by number, day and registry revision). Several workers on one database each computed
every certificate's verification themselves — a few milliseconds of CPU on the event loop, with
every other request of that worker waiting — so after a registry change, or with the cache of
one worker colder than the other's, lookups queued behind computations. Here a worker that
computed a verification stores its bytes in ``registry_verification`` (one row per certificate),
and a worker that misses in memory reads that row (one indexed read) before computing it again.

The row is used only for the same number, day and revision — exactly the key of the memory
cache, with the same argument for its validity: it was computed by a reader that read the
revision *before* computing. A row is replaced only by one of a later (revision, day).

PostgreSQL: an ``UNLOGGED`` table (a cache, rebuilt on demand after a crash), read and written on
the hot path's raw async connection, which does not block the worker's event loop. SQLite: the
write is best effort — on a connection of its own that never waits for the database's write lock
(a lookup must not queue behind a registration: when a writer holds it, the row is simply not
shared this time) and does not sync the file at commit (``synchronous=NORMAL``: a crash may lose
the row, never the database's consistency, and the next lookup computes it again).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import weakref
from datetime import date
from typing import Final, cast

from sqlalchemy import BigInteger, String, Table, Text, bindparam, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Mapped, mapped_column

from datafactor.db import Base, Database


class RegistryVerification(Base):
    """The last public verification of a certificate computed by any worker, and its key."""

    __tablename__ = "registry_verification"

    number: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[str] = mapped_column(String(10))  # ISO date: no conversion on the raw path
    revision: Mapped[int] = mapped_column(BigInteger)
    body: Mapped[str] = mapped_column(Text)  # the API's JSON (UTF-8 text)


_T = cast(Table, RegistryVerification.__table__)
_READ: Final = select(_T.c.body).where(
    _T.c.number == bindparam("number"),
    _T.c.day == bindparam("day"),
    _T.c.revision == bindparam("revision"),
)
_UPSERT = pg_insert(_T).values(
    number=bindparam("number"),
    day=bindparam("day"),
    revision=bindparam("revision"),
    body=bindparam("body"),
)
_WRITE: Final = select(
    _UPSERT.on_conflict_do_update(
        index_elements=[_T.c.number],
        set_={
            "day": _UPSERT.excluded.day,
            "revision": _UPSERT.excluded.revision,
            "body": _UPSERT.excluded.body,
        },
        where=tuple_(_UPSERT.excluded.revision, _UPSERT.excluded.day)
        > tuple_(_T.c.revision, _T.c.day),
    )
    .returning(_T.c.number)
    .cte("stored")
    .c.number
)


def _params(number: str, day: date, revision: int) -> dict[str, object]:
    return {"number": number, "day": day.isoformat(), "revision": revision}


def _storable(number: str) -> bool:
    # A number no certificate has (too long, a NUL) is not worth a round trip, nor an error.
    return len(number) <= 64 and "\x00" not in number


async def shared(db: Database, number: str, day: date, revision: int) -> bytes | None:
    """The verification a worker stored for this key, or None."""
    if not _storable(number):
        return None
    row = await db.lookup(_READ, _params(number, day, revision))
    return None if row is None else str(row[0]).encode("utf-8")


async def share(db: Database, number: str, day: date, revision: int, body: bytes) -> None:
    """Store a verification computed for this key for the other workers (best effort on
    SQLite: skipped while a writer holds the database)."""
    if not _storable(number):
        return
    params = {**_params(number, day, revision), "body": body.decode("utf-8")}
    if db.is_sqlite:
        _SqliteSharer.of(db).store(params)
        return
    await db.lookup(_WRITE, params)


_SQLITE_WRITE: Final = (
    "INSERT INTO registry_verification (number, day, revision, body) "
    "VALUES (:number, :day, :revision, :body) "
    "ON CONFLICT (number) DO UPDATE SET day = excluded.day, revision = excluded.revision, "
    "body = excluded.body WHERE (excluded.revision, excluded.day) > "
    "(registry_verification.revision, registry_verification.day)"
)


class _SqliteSharer:
    """The SQLite connection a process stores shared verifications on (see the module's note)."""

    _of: Final[weakref.WeakKeyDictionary[Database, _SqliteSharer]] = weakref.WeakKeyDictionary()

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        # timeout=0: a locked database is "not now", never a wait; autocommit statements.
        self._connection = sqlite3.connect(
            path, timeout=0, isolation_level=None, check_same_thread=False
        )
        self._connection.execute("PRAGMA synchronous=NORMAL")

    @classmethod
    def of(cls, db: Database) -> _SqliteSharer:
        found = cls._of.get(db)
        if found is None:
            found = cls._of[db] = cls(str(db.engine.url.database))
        return found

    def store(self, params: dict[str, object]) -> None:
        # Locked by a writer (or busy): not shared this time.
        with self._lock, contextlib.suppress(sqlite3.OperationalError):
            self._connection.execute(_SQLITE_WRITE, params)
