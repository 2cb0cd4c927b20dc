"""Mall-order test helpers: principals of test actors, funds, balances, a market (a seller with
a certified product, makers of funded buyers and published listings), and the isolation
registry's maker of an order owned by a buyer (``isolation_order``)."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from exchange_support import Product, published_listing, seller_world
from factories import Actor, make_actor
from sqlalchemy import select

from datafactor import registry
from datafactor.db import Database
from datafactor.errors import DomainError
from datafactor.exchange import listings, orders
from datafactor.exchange.models import ExchangeListing
from datafactor.identity.models import Party, User
from datafactor.identity.services import principal_for
from datafactor.permissions import Principal
from datafactor.settings import Settings
from datafactor.settlement import services as money
from datafactor.settlement.models import SettlementAccount, SettlementBalance

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)  # 11:00 in China


def principal_of(db: Database, actor: Actor) -> Principal:
    """The principal a login of ``actor`` gives."""
    with db.read() as s:
        user = s.get(User, actor.user_id)
        party = s.get(Party, actor.party_id)
        assert user is not None and party is not None
        return principal_for(user, party, via="session")


def fund(db: Database, party_id: str, amount_fen: int) -> None:
    with db.write() as s:
        money.deposit_funds(
            s, party_id, amount_fen, key=f"fund-{party_id}-{amount_fen}", actor="test"
        )


def balances(db: Database, party_id: str) -> tuple[int, int]:
    """(available, frozen) of a party, in fen (0, 0 before its accounts are open)."""
    with db.read() as s:
        rows = s.execute(
            select(SettlementAccount.kind, SettlementBalance.balance_fen)
            .join(SettlementBalance, SettlementBalance.account_id == SettlementAccount.id)
            .where(SettlementAccount.party_id == party_id)
        ).all()
    found = dict(rows)
    return found.get("available", 0), found.get("frozen", 0)


@dataclass
class Market:
    """A seller with a certified product, and makers of buyers and listings."""

    db: Database
    settings: Settings
    seller: Actor
    seller_principal: Principal
    operator: Actor
    product: Product

    def buyer(self, funds_fen: int = 1_000_000, **kw: Any) -> tuple[Actor, Principal]:
        actor = make_actor(self.db, **kw)
        if funds_fen:
            fund(self.db, actor.party_id, funds_fen)
        return actor, principal_of(self.db, actor)

    def listing(
        self, *, state: str = "published", access: dict[str, Any] | None = None, **kw: Any
    ) -> str:
        """A listing (published unless ``state`` says otherwise) with the contract policy the
        listings module would give it."""
        listing_id = published_listing(self.db, self.product, self.seller, **kw)
        with self.db.write() as s:
            row = s.get(ExchangeListing, listing_id)
            assert row is not None
            row.contract_policy = listings.default_policy(
                asset_id=row.asset_id, seller_id=row.seller_id, channels=row.channels, scope=None
            )
            row.state = state
            if access is not None:
                row.access = access
        return listing_id


def make_market(db: Database, settings: Settings) -> Market:
    world = seller_world(db, settings, registry.issuer_for(settings))
    seller: Actor = world["seller"]
    return Market(
        db, settings, seller, principal_of(db, seller), world["operator"], world["product"]
    )


_keys = itertools.count()


def isolation_order(client: Any, owner: Actor, headers: dict[str, str]) -> str:
    """An order placed through the API by ``owner`` (the buyer) from a new seller's listing."""
    db, settings = client.app.state.db, client.app.state.settings
    market = make_market(db, settings)
    listing_id = market.listing(price_fen=1_000, quantity=5)
    fund(db, owner.party_id, 100_000)
    r = client.post(
        "/api/v1/orders",
        headers={**headers, "Idempotency-Key": f"isolation-{next(_keys)}"},
        json={"listing_id": listing_id, "quantity": 1},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def race(db: Database, calls: list[tuple[Principal, str, int, str]]) -> list[object]:
    """Run ``place_order`` calls — (principal, listing id, quantity, key) — at once, one thread
    and transaction each, released together by a barrier: each call's ``Placed`` or the refusal
    it got."""
    barrier = threading.Barrier(len(calls))

    def one(call: tuple[Principal, str, int, str]) -> object:
        principal, listing_id, quantity, key = call
        barrier.wait()
        try:
            with db.write() as s:
                return orders.place_order(s, principal, listing_id, quantity, key=key, now=NOW)
        except DomainError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(one, calls))
