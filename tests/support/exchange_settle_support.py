"""Settlement-of-contracts test helpers: a world (a seller with a certified product and its
listing, a funded buyer, a broker, a share-holding partner, the exchange operator, a regulator)
and ``completed_contract``, which freezes the buyer's payment through settlement and writes a
contract row in the state asked (``completed`` by default) — as the trades and the contracts
leave it — so settlement is tested without driving a whole trade."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from exchange_support import Product, certified_product, published_listing
from factories import Actor, make_actor
from registry_support import principal

from datafactor import registry
from datafactor.db import Database
from datafactor.exchange.models import ExchangeContract, ExchangeDelivery
from datafactor.identity import PartyKind, ServiceRole
from datafactor.permissions import Principal
from datafactor.settings import Settings
from datafactor.settlement import services as money
from datafactor.settlement.books import reconcile, snapshot

NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)  # 10:00 in Guangxi
FUNDS = 10_000_000
_serial = itertools.count(1)


@dataclass
class SettleWorld:
    db: Database
    settings: Settings
    seller: Actor
    buyer: Actor
    broker: Actor
    partner: Actor
    operator: Actor
    regulator: Actor
    outsider: Actor
    product: Product

    def p(self, actor: Actor) -> Principal:
        return principal(self.db, actor)

    def listing(self, **kw: Any) -> str:
        return published_listing(self.db, self.product, self.seller, **kw)


def settle_world(db: Database, settings: Settings, **product: Any) -> SettleWorld:
    seller = make_actor(db)
    operator = make_actor(db, PartyKind.EXCHANGE_OPERATOR)
    issuer = registry.issuer_for(settings)
    made = certified_product(
        db, settings, principal(db, seller), principal(db, operator), issuer, **product
    )
    buyer = make_actor(db)
    fund(db, buyer.party_id, FUNDS)
    return SettleWorld(
        db=db,
        settings=settings,
        seller=seller,
        buyer=buyer,
        broker=make_actor(db, PartyKind.SERVICE_FIRM, service_role=ServiceRole.BROKER),
        partner=make_actor(db),
        operator=operator,
        regulator=make_actor(db, PartyKind.REGULATOR),
        outsider=make_actor(db),
        product=made,
    )


def fund(db: Database, party_id: str, amount_fen: int) -> None:
    with db.write() as s:
        money.deposit_funds(
            s, party_id, amount_fen, key=f"fund-{party_id}-{next(_serial)}", actor="test"
        )


def completed_contract(
    db: Database,
    listing_id: str,
    buyer_id: str,
    *,
    amount_fen: int,
    price_fen: int | None = None,
    quantity: int = 1,
    broker_id: str | None = None,
    state: str = "completed",
    frozen: bool = True,
) -> str:
    """A contract of ``listing_id`` bought by ``buyer_id`` for ``amount_fen`` (frozen in escrow
    first, unless ``frozen`` is False or the amount is 0), in ``state``; returns its id."""
    from datafactor.exchange.models import ExchangeListing

    n = next(_serial)
    with db.write() as s:
        listing = s.get(ExchangeListing, listing_id)
        assert listing is not None
        hold_id = None
        contract_id = f"00000000-0000-4000-8000-{n:012d}"
        if frozen and amount_fen > 0:
            hold_id = money.freeze(
                s,
                buyer_id,
                amount_fen,
                f"contract:{contract_id}",
                key=f"test-freeze-{contract_id}",
                actor="test",
            ).hold_id
        row = ExchangeContract(
            id=contract_id,
            number=f"GX-DC-2026-{800000 + n:06d}",
            state=state,
            kind="mall",
            listing_id=listing_id,
            asset_id=listing.asset_id,
            seller_id=listing.seller_id,
            buyer_id=buyer_id,
            broker_id=broker_id,
            quantity=quantity,
            price_fen=price_fen if price_fen is not None else amount_fen // max(quantity, 1),
            amount_fen=amount_fen,
            channels=list(listing.channels),
            policy=dict(listing.contract_policy),
            term_start=date(2026, 5, 1),
            term_end=date(2027, 4, 30),
            document={"number": n},
            document_hash="0" * 64,
            hold_id=hold_id,
            accepted_at=NOW if state == "completed" else None,
        )
        s.add(row)
        s.flush()
        return row.id


def record_pulls(db: Database, contract_id: str, buyer_id: str, allowed: int, refused: int = 0):
    """API pulls of a contract as the delivery records them (one row per pull)."""
    with db.write() as s:
        for decision, count in (("allowed", allowed), ("refused", refused)):
            for _ in range(count):
                s.add(
                    ExchangeDelivery(
                        contract_id=contract_id,
                        buyer_id=buyer_id,
                        channel="api",
                        decision=decision,
                        reasons=[],
                        rules=[],
                    )
                )


def books_balanced(db: Database) -> bool:
    with snapshot(db) as s:
        report, _ = reconcile(s)
    assert report.balanced, [p.as_dict() for p in report.problems]
    return report.balanced


def available(db: Database, party_id: str) -> int:
    with db.read() as s:
        rows = money.list_accounts(s, _reader(), party_id)
    return sum(r.balance_fen for r in rows if r.kind == "available")


def frozen_of(db: Database, party_id: str) -> int:
    with db.read() as s:
        rows = money.list_accounts(s, _reader(), party_id)
    return sum(r.balance_fen for r in rows if r.kind == "frozen")


def system_balance(db: Database, kind: str) -> int:
    with db.read() as s:
        return money.system_totals(s).get(kind, 0)


def _reader() -> Principal:
    from datafactor.permissions import Permission

    return Principal(
        user_id="",
        username="test",
        party_id="",
        party_kind="exchange_operator",
        roles=frozenset(),
        permissions=frozenset(
            {Permission.SETTLEMENT_ACCOUNT_READ, Permission.SETTLEMENT_ACCOUNT_READ_ALL}
        ),
        via="cli",
    )


def settled_contract_for(db: Database, settings: Settings, seller: Actor) -> str:
    """A contract of ``seller``'s certified product, bought by a new funded buyer, completed and
    settled (the tenant-isolation test's object)."""
    from datafactor.exchange import settle

    operator = make_actor(db, PartyKind.EXCHANGE_OPERATOR)
    made = certified_product(
        db,
        settings,
        principal(db, seller),
        principal(db, operator),
        registry.issuer_for(settings),
    )
    listing = published_listing(db, made, seller, price_fen=10_000)
    buyer = make_actor(db)
    fund(db, buyer.party_id, 10_000)
    contract_id = completed_contract(db, listing, buyer.party_id, amount_fen=10_000)
    with db.write() as s:
        settle.settle_contract(s, s.get(ExchangeContract, contract_id), actor="test", now=NOW)
    return contract_id
