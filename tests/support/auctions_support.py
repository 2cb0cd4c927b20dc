"""Agreement-trade and auction test helpers: a trade world (a seller with a certified product, a
data broker, the exchange operator, makers of funded buyers, of published listings with the
listings module's own contract policy and of the seller's auctions), and the isolation registry's
makers of negotiations and auctions owned by a party."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from exchange_support import Product, certified_product, published_listing, seller_world
from factories import Actor, make_actor
from orders_support import balances, fund, principal_of
from registry_support import principal

from datafactor import registry
from datafactor.db import Database
from datafactor.exchange import auctions, listings, negotiation
from datafactor.exchange.models import ExchangeListing
from datafactor.identity import PartyKind, ServiceRole
from datafactor.permissions import Principal
from datafactor.settings import Settings

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)  # 11:00 in China

__all__ = ["NOW", "TradeWorld", "balances", "fund", "principal_of", "trade_world"]


@dataclass
class TradeWorld:
    """A seller with a certified product, a broker, the operator; makers of buyers, listings."""

    db: Database
    settings: Settings
    seller: Actor
    operator: Actor
    broker: Actor
    product: Product

    def p(self, actor: Actor) -> Principal:
        return principal_of(self.db, actor)

    def buyer(
        self, funds_fen: int = 1_000_000, kind: PartyKind = PartyKind.ENTERPRISE, **kw: Any
    ) -> Actor:
        actor = make_actor(self.db, kind, **kw)
        if funds_fen:
            fund(self.db, actor.party_id, funds_fen)
        return actor

    def listing(
        self,
        *,
        broker: bool = True,
        access: dict[str, Any] | None = None,
        cross_border: bool = False,
        **kw: Any,
    ) -> str:
        """A published listing of the product, with the contract policy the listings module
        gives it (and the world's broker unless ``broker=False``)."""
        listing_id = published_listing(
            self.db,
            self.product,
            self.seller,
            broker_id=self.broker.party_id if broker else None,
            **kw,
        )
        with self.db.write() as s:
            row = s.get(ExchangeListing, listing_id)
            assert row is not None
            row.contract_policy = listings.default_policy(
                asset_id=row.asset_id,
                seller_id=row.seller_id,
                channels=row.channels,
                scope=registry.Scope(purposes=frozenset({"research", "industry"})),
            )
            row.cross_border = cross_border
            if access is not None:
                row.access = access
        return listing_id

    def auction(
        self, listing_id: str, *, start_fen: int, now: datetime, hours: int = 1, **draft: Any
    ) -> str:
        """An auction of ``listing_id`` the seller opens at ``now``, ending ``hours`` later (the
        rest of ``draft`` as ``AuctionDraft`` takes it): its id."""
        with self.db.write() as s:
            return auctions.create_auction(
                s,
                self.p(self.seller),
                auctions.AuctionDraft(
                    listing_id=listing_id,
                    start_fen=start_fen,
                    ends_at=now + timedelta(hours=hours),
                    **draft,
                ),
                now=now,
            ).id

    def remaining(self, listing_id: str) -> int | None:
        with self.db.read() as s:
            row = s.get(ExchangeListing, listing_id)
            assert row is not None
            return row.remaining_quantity


def trade_world(db: Database, settings: Settings) -> TradeWorld:
    base = seller_world(db, settings, registry.issuer_for(settings))
    broker = make_actor(db, PartyKind.SERVICE_FIRM, service_role=ServiceRole.BROKER)
    return TradeWorld(db, settings, base["seller"], base["operator"], broker, base["product"])


# ------------------------------------------------------------------------- isolation makers

_keys = itertools.count()


def _owner_product(client: Any, owner: Actor) -> tuple[Database, Settings, Product]:
    """A certified product of ``owner``'s (so it may list and auction it)."""
    db, settings = client.app.state.db, client.app.state.settings
    operator = make_actor(db, PartyKind.EXCHANGE_OPERATOR)
    product = certified_product(
        db, settings, principal(db, owner), principal(db, operator), registry.issuer_for(settings)
    )
    return db, settings, product


def _listing_of(db: Database, product: Product, seller: Actor, **kw: Any) -> str:
    listing_id = published_listing(db, product, seller, **kw)
    with db.write() as s:
        row = s.get(ExchangeListing, listing_id)
        assert row is not None
        row.contract_policy = listings.default_policy(
            asset_id=row.asset_id, seller_id=row.seller_id, channels=row.channels, scope=None
        )
    return listing_id


def isolation_negotiation(client: Any, owner: Actor, headers: dict[str, str]) -> str:
    """A negotiation ``owner`` (the buyer) opened through the API, answered by the seller's
    counter-offer (so the buyer may offer, accept or withdraw next)."""
    db, settings = client.app.state.db, client.app.state.settings
    world = trade_world(db, settings)
    listing_id = world.listing(price_fen=1_000)
    fund(db, owner.party_id, 100_000)
    r = client.post(
        "/api/v1/negotiations",
        headers=headers,
        json={"listing_id": listing_id, "price_fen": 800, "note": "隔离测试"},
    )
    assert r.status_code == 201, r.text
    negotiation_id = str(r.json()["id"])
    with db.write() as s:
        negotiation.make_offer(
            s,
            world.p(world.seller),
            negotiation_id,
            negotiation.Terms(price_fen=900),
            now=datetime.now(UTC),
        )
    return negotiation_id


def isolation_auction(client: Any, owner: Actor, headers: dict[str, str]) -> str:
    """An open auction of a listing only ``owner`` (a funded, invited bidder) may see."""
    db, settings = client.app.state.db, client.app.state.settings
    world = trade_world(db, settings)
    listing_id = world.listing(
        price_fen=1_000, access={"audience": "parties", "parties": [owner.party_id]}
    )
    fund(db, owner.party_id, 100_000)
    return world.auction(listing_id, start_fen=1_000, now=datetime.now(UTC))


def _seller_auction(client: Any, owner: Actor, *, ended: bool) -> str:
    db, _, product = _owner_product(client, owner)
    listing_id = _listing_of(db, product, owner, price_fen=1_000)
    now = datetime.now(UTC)
    start = now - timedelta(hours=2) if ended else now
    with db.write() as s:
        auction = auctions.create_auction(
            s,
            principal_of(db, owner),
            auctions.AuctionDraft(
                listing_id=listing_id, start_fen=1_000, ends_at=start + timedelta(hours=1)
            ),
            now=start,
        )
        return auction.id


def isolation_ended_auction(client: Any, owner: Actor, headers: dict[str, str]) -> str:
    """An auction of ``owner``'s (the seller) whose deadline has passed (it may close it)."""
    return _seller_auction(client, owner, ended=True)


def isolation_running_auction(client: Any, owner: Actor, headers: dict[str, str]) -> str:
    """A running auction of ``owner``'s (the seller) with no bid yet (it may cancel it)."""
    return _seller_auction(client, owner, ended=False)
