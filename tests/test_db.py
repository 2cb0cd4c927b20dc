"""``Database.lookup``: the async hot-path read every API request makes (token, then object)."""

from __future__ import annotations

import socket
from datetime import UTC

import pytest
from aio import run_async
from factories import Actor
from pgserver import PgServer, find_bindir
from sqlalchemy import bindparam, select, text

from datafactor.db import Database
from datafactor.identity.models import Party

postgresql_only = pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)
_PARTY = select(Party.id, Party.name, Party.created_at).where(Party.id == bindparam("party_id"))


def test_lookup_returns_typed_row_or_none(db: Database, enterprise: Actor) -> None:
    async def both() -> tuple[object, object]:
        try:
            found = await db.lookup(_PARTY, {"party_id": enterprise.party_id})
            missing = await db.lookup(_PARTY, {"party_id": "no-such-party"})
            return found, missing
        finally:
            await db.aclose()

    found, missing = run_async(both)
    with db.read() as session:
        party = session.get(Party, enterprise.party_id)
        assert party is not None
    assert missing is None
    assert found is not None
    assert found.id == party.id and found.name == party.name  # type: ignore[attr-defined]
    # column types apply: a UTCDateTime comes back timezone-aware, equal to the ORM's value
    assert found.created_at == party.created_at  # type: ignore[attr-defined]
    assert found.created_at.tzinfo is UTC  # type: ignore[attr-defined]
    assert tuple(found) == (party.id, party.name, party.created_at)  # type: ignore[arg-type]


@postgresql_only
def test_lookup_survives_the_server_dropping_its_connections(
    db: Database, enterprise: Actor
) -> None:
    async def around_a_restart() -> tuple[object, object]:
        try:
            before = await db.lookup(_PARTY, {"party_id": enterprise.party_id})
            # what an idle timeout or a server restart does to pooled connections
            with db.engine.connect() as connection:
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            after = await db.lookup(_PARTY, {"party_id": enterprise.party_id})
            return before, after
        finally:
            await db.aclose()

    before, after = run_async(around_a_restart)
    assert before == after
    assert after is not None


@postgresql_only  # the guard of the PostgreSQL path, which passes parameters unconverted
def test_lookup_refuses_parameters_that_need_conversion(db: Database) -> None:
    stmt = select(Party.id).where(
        Party.created_at > bindparam("since", type_=Party.created_at.type)
    )

    async def run() -> object:
        try:
            return await db.lookup(stmt, {"since": None})
        finally:
            await db.aclose()

    with pytest.raises(TypeError, match="no conversion"):
        run_async(run)


@postgresql_only
def test_a_watched_counter_follows_commits_and_survives_losing_its_connection(
    db: Database, enterprise: Actor
) -> None:
    """The registry revision read from memory on PostgreSQL: live after the first reads, moved by
    each commit's notification (a read of the counter would not be needed), back to reading the
    table while its connection is gone, and live again after."""
    import asyncio

    from datafactor.registry.models import REVISION_CHANNEL, RegistryAsset, RegistryRevision

    stmt = select(RegistryRevision.value).where(RegistryRevision.id == bindparam("id"))

    def bump() -> int:
        with db.write() as s:
            s.add(
                RegistryAsset(
                    party_id=enterprise.party_id,
                    kind="resource",
                    data_class="enterprise",
                    name="资产",
                )
            )
        with db.read() as s:
            return s.get(RegistryRevision, 1).value  # type: ignore[union-attr]

    async def until(predicate: object, what: str) -> None:
        for _ in range(1000):
            if predicate():  # type: ignore[operator]
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"not {what} within 10 s")

    async def scenario() -> list[int | None]:
        seen: list[int | None] = []
        loop = asyncio.get_running_loop()
        try:
            seen.append(await db.counter(stmt, {"id": 1}, channel=REVISION_CHANNEL))
            watch = db._watches[(loop, REVISION_CHANNEL)]
            await until(lambda: watch.value is not None, "live")
            value = await asyncio.to_thread(bump)
            await until(lambda: watch.value == value, "notified")
            seen.append(await db.counter(stmt, {"id": 1}, channel=REVISION_CHANNEL))
            with db.engine.connect() as connection:  # drop every other connection
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            await until(lambda: watch.value is None, "fallen back")
            value = await asyncio.to_thread(bump)
            seen.append(await db.counter(stmt, {"id": 1}, channel=REVISION_CHANNEL))
            await until(lambda: watch.value == value, "live again")
            seen.append(value)
            return seen
        finally:
            await db.aclose()

    first, notified, fallback, recovered = run_async(scenario)
    assert first is not None and notified is not None and notified > first
    assert fallback == recovered  # read from the table while the watch reconnected


@pytest.mark.postgresql
def test_a_postgresql_server_that_cannot_start_says_why_and_leaves_no_folder() -> None:
    # The port is taken: pg_ctl fails; the error carries the server's own words, and the
    # throwaway cluster's folder (data files, socket) is removed rather than left in /tmp.
    if find_bindir() is None:
        pytest.skip("PostgreSQL server binaries not available")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = PgServer()
        server.port = int(taken.getsockname()[1])
        with pytest.raises(RuntimeError, match="PostgreSQL did not start") as failed:
            server.start()
    assert "could not bind" in str(failed.value)  # from the server log
    assert not server.base.exists()
