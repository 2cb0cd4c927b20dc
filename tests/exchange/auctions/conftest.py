"""Fixtures of the auction tests (helpers in ``tests/support/auctions_support.py``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from auctions_support import NOW, TradeWorld, trade_world

from datafactor.db import Database
from datafactor.exchange import auctions
from datafactor.exchange.models import ExchangeAuction
from datafactor.permissions import Principal
from datafactor.settings import Settings

END = NOW + timedelta(hours=2)


@pytest.fixture
def world(db: Database, settings: Settings) -> TradeWorld:
    return trade_world(db, settings)


@pytest.fixture
def create(db: Database) -> Callable[..., ExchangeAuction]:
    """``create(principal, listing_id, start_fen=10_000, ends_at=END, now=NOW, **draft)``."""

    def make(
        principal: Principal,
        listing_id: str,
        *,
        start_fen: Any = 10_000,
        ends_at: datetime | None = END,
        now: datetime = NOW,
        **draft: Any,
    ) -> ExchangeAuction:
        with db.write() as s:
            return auctions.create_auction(
                s,
                principal,
                auctions.AuctionDraft(
                    listing_id=listing_id, start_fen=start_fen, ends_at=ends_at, **draft
                ),
                now=now,
            )

    return make


@pytest.fixture
def bid(db: Database) -> Callable[..., auctions.Placed]:
    """``bid(principal, auction_id, amount_fen, key=None, now=NOW)``, as the entry points bid."""
    counter = itertools.count()

    def make(
        principal: Principal,
        auction_id: str,
        amount_fen: Any,
        *,
        key: str | None = None,
        now: datetime = NOW,
    ) -> auctions.Placed:
        auctions.open_accounts(db, [principal.party_id])
        with db.write() as s:
            return auctions.place_bid(
                s, principal, auction_id, amount_fen, key=key or f"bid-{next(counter)}", now=now
            )

    return make


@pytest.fixture
def close(db: Database) -> Callable[..., auctions.Closed]:
    """``close(auction_id, principal=None, now=END)``: the clock (or a person) closes it."""

    def make(
        auction_id: str, principal: Principal | None = None, *, now: datetime = END
    ) -> auctions.Closed:
        with db.read() as s:
            row = s.get(ExchangeAuction, auction_id)
            assert row is not None
        auctions.open_accounts(db, [row.seller_id])
        with db.write() as s:
            return auctions.close_auction(s, principal, auction_id, now=now)

    return make
