"""Public verifications shared by the server's worker processes (PostgreSQL).

Each worker keeps the verifications it has answered in memory (``services.VerificationCache``,
keyed by number, day and registry revision). Several workers on one database each computed
every certificate's verification themselves — a few milliseconds of CPU on the event loop, with
every other request of that worker waiting — so after a registry change, or with the cache of
one worker colder than the other's, lookups queued behind computations. Here a worker that
computed a verification stores its bytes in ``registry_verification`` (one row per certificate,
an ``UNLOGGED`` table: a cache, rebuilt on demand after a crash), and a worker that misses in
memory reads that row (one indexed read on the hot path's raw connection, without blocking the
loop) before computing it again.

The row is used only for the same number, day and revision — exactly the key of the memory
cache, with the same argument for its validity: it was computed by a reader that read the
revision *before* computing. A row is replaced only by one of a later (revision, day). On SQLite
(one file, one host, a local read per lookup) nothing is shared: a write on the lookup path
would queue on the database's write lock.
"""

from __future__ import annotations

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


def _storable(db: Database, number: str) -> bool:
    # A number no certificate has (too long, a NUL) is not worth a round trip, nor an error.
    return not db.is_sqlite and len(number) <= 64 and "\x00" not in number


async def shared(db: Database, number: str, day: date, revision: int) -> bytes | None:
    """The verification another worker stored for this key, or None (always on SQLite)."""
    if not _storable(db, number):
        return None
    row = await db.lookup(_READ, _params(number, day, revision))
    return None if row is None else str(row[0]).encode("utf-8")


async def share(db: Database, number: str, day: date, revision: int, body: bytes) -> None:
    """Store a verification computed for this key for the other workers (not on SQLite)."""
    if not _storable(db, number):
        return
    await db.lookup(_WRITE, {**_params(number, day, revision), "body": body.decode("utf-8")})
