"""Fixtures of the agreement-trade tests (helpers in ``tests/support/auctions_support.py``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import pytest
from auctions_support import NOW, TradeWorld, trade_world

from datafactor.db import Database
from datafactor.exchange import negotiation
from datafactor.exchange.models import ExchangeNegotiation
from datafactor.permissions import Principal
from datafactor.settings import Settings

LATEST: Final = object()  # ``accept``'s default: the number of the latest offer


@pytest.fixture
def world(db: Database, settings: Settings) -> TradeWorld:
    return trade_world(db, settings)


@pytest.fixture
def opened(db: Database) -> Callable[..., ExchangeNegotiation]:
    """``opened(principal, listing_id, now=NOW, broker_id=None, buyer_id=None, **terms)``."""

    def make(
        principal: Principal,
        listing_id: str,
        *,
        now: datetime = NOW,
        broker_id: str | None = None,
        buyer_id: str | None = None,
        **terms: Any,
    ) -> ExchangeNegotiation:
        with db.write() as s:
            return negotiation.open_negotiation(
                s,
                principal,
                listing_id,
                negotiation.Terms(**terms),
                broker_id=broker_id,
                buyer_id=buyer_id,
                now=now,
            )

    return make


@pytest.fixture
def offer(db: Database) -> Callable[..., None]:
    """``offer(principal, negotiation_id, now=NOW, **terms)``: a counter-offer."""

    def make(
        principal: Principal, negotiation_id: str, *, now: datetime = NOW, **terms: Any
    ) -> None:
        with db.write() as s:
            negotiation.make_offer(
                s, principal, negotiation_id, negotiation.Terms(**terms), now=now
            )

    return make


@pytest.fixture
def accept(db: Database) -> Callable[..., negotiation.Accepted]:
    """``accept(principal, negotiation_id, seq=LATEST, now=NOW)``, as the entry points run it:
    by default naming the latest offer's number, as a page that showed it would send it;
    ``seq=None`` names none (refused)."""

    def make(
        principal: Principal,
        negotiation_id: str,
        *,
        seq: int | object | None = LATEST,
        now: datetime = NOW,
    ) -> negotiation.Accepted:
        with db.read() as s:
            buyer = s.get(ExchangeNegotiation, negotiation_id).buyer_id
            if seq is LATEST:
                seq = negotiation.latest_offer(s, negotiation_id).seq
        negotiation.open_accounts(db, [buyer])
        with db.write() as s:
            return negotiation.accept_offer(s, principal, negotiation_id, seq=seq, now=now)

    return make
