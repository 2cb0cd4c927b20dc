"""Fixtures of the mall-order tests (helpers in ``tests/support/orders_support.py``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from orders_support import NOW, Market, make_market

from datafactor.db import Database
from datafactor.exchange import orders
from datafactor.permissions import Principal
from datafactor.settings import Settings


@pytest.fixture
def market(db: Database, settings: Settings) -> Market:
    return make_market(db, settings)


@pytest.fixture
def place(db: Database) -> Callable[..., orders.Placed]:
    """``place(principal, listing_id, quantity=1, key=None)``: one order in its own
    transaction, as the entry points place it."""
    counter = itertools.count()

    def make(
        principal: Principal, listing_id: str, quantity: Any = 1, key: str | None = None
    ) -> orders.Placed:
        orders.open_buyer_accounts(db, principal)
        with db.write() as s:
            return orders.place_order(
                s, principal, listing_id, quantity, key=key or f"k-{next(counter)}", now=NOW
            )

    return make
