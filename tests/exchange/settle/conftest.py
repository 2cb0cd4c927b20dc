"""Fixtures of the settlement-of-contracts tests (helpers: tests/support/exchange_settle_support)."""

from __future__ import annotations

import pytest
from exchange_settle_support import SettleWorld, settle_world

from datafactor.db import Database
from datafactor.settings import Settings


@pytest.fixture
def world(db: Database, settings: Settings) -> SettleWorld:
    return settle_world(db, settings)
