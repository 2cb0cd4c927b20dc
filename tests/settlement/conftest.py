"""Fixtures of the settlement tests: principals of test parties, and funded parties."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from factories import Actor, make_actor

from datafactor.db import Database
from datafactor.identity.models import Party, User
from datafactor.identity.services import principal_for
from datafactor.permissions import Principal
from datafactor.settlement import services


@pytest.fixture
def principal_of(db: Database) -> Callable[[Actor], Principal]:
    """``principal_of(actor)``: the principal a login of ``actor`` gives."""

    def make(actor: Actor) -> Principal:
        with db.read() as s:
            user = s.get(User, actor.user_id)
            party = s.get(Party, actor.party_id)
            assert user is not None and party is not None
            return principal_for(user, party, via="session")

    return make


@pytest.fixture
def fund(db: Database) -> Callable[..., str]:
    """``fund(amount_fen, party_id=None)``: a party (a new enterprise unless given) with
    ``amount_fen`` deposited; returns its party id."""

    def make(amount_fen: int, party_id: str | None = None, key: str | None = None) -> str:
        party_id = party_id or make_actor(db).party_id
        with db.write() as s:
            services.deposit_funds(
                s, party_id, amount_fen, key=key or f"fund-{party_id}-{amount_fen}", actor="test"
            )
        return party_id

    return make
