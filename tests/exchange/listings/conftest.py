"""Fixtures of the listing tests (helpers in ``tests/support/listing_support.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from listing_support import World, draft, drive, make_world

from datafactor import registry
from datafactor.db import Database, today_cn, utcnow
from datafactor.exchange import listings
from datafactor.settings import Settings


@pytest.fixture
def issuer(settings: Settings) -> registry.Issuer:
    return registry.issuer_for(settings)


@pytest.fixture
def world(db: Database, settings: Settings, issuer: registry.Issuer) -> World:
    return make_world(db, settings, issuer)


@pytest.fixture
def create(world: World) -> Callable[..., str]:
    """``create(**draft fields)``: a draft listing of the world's product, by the seller."""

    def make(**kw: Any) -> str:
        with world.db.write() as s:
            row = listings.create_listing(
                s, world.p(world.seller), draft(world.product, **kw), on=today_cn(), now=utcnow()
            )
            return row.id

    return make


@pytest.fixture
def publish(world: World, create: Callable[..., str]) -> Callable[..., str]:
    """``publish(**draft fields)``: a listing driven through submission, assessment and
    approval; returns its id."""

    def make(**kw: Any) -> str:
        listing_id = create(**kw)
        drive(world, listing_id)
        return listing_id

    return make
