"""Fixtures of the delivery tests (the helpers are in tests/support/delivery_support.py)."""

from __future__ import annotations

import pytest
from delivery_support import DeliveryWorld, delivery_world

from datafactor.db import Database
from datafactor.settings import Settings


@pytest.fixture
def world(db: Database, settings: Settings) -> DeliveryWorld:
    return delivery_world(db, settings)
