"""Fixtures of the contracts tests (the helpers are in tests/support/contracts_support.py)."""

from __future__ import annotations

import pytest
from contracts_support import OpenFor, World, contract_opener, contract_world

from datafactor.db import Database
from datafactor.exchange import jobs  # noqa: F401 - imports the trades, which register their hooks
from datafactor.settings import Settings


@pytest.fixture
def world(db: Database, settings: Settings) -> World:
    return contract_world(db, settings)


@pytest.fixture
def open_for(world: World) -> OpenFor:
    return contract_opener(world)
