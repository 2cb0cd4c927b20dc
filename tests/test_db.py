"""``Database.lookup``: the async hot-path read every API request makes (token, then object)."""

from __future__ import annotations

from datetime import UTC

import pytest
from aio import run_async
from factories import Actor
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
