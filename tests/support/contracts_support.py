"""Contracts test helpers: a world with a seller and its published listing, a funded buyer, a
broker, the exchange operator and a regulator (``contract_world``), and ``contract_opener``,
which draws up a contract the way a trade does (the buyer's escrow frozen first, in the same
transaction). Used by the contracts tests and by any test that needs a contract to work on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from exchange_support import published_listing, seller_world
from factories import Actor, make_actor
from registry_support import principal

from datafactor import registry, settlement
from datafactor.db import Database
from datafactor.exchange import contracts
from datafactor.exchange.domain import ContractState, TradeKind
from datafactor.exchange.keys import PartyKeys
from datafactor.exchange.models import ExchangeContract, ExchangeListing
from datafactor.identity import PartyKind, ServiceRole
from datafactor.permissions import Principal
from datafactor.settings import Settings
from datafactor.settlement import services as money

# A fixed clock: every test passes ``now`` explicitly.
NOW = datetime(2026, 5, 11, 2, 0, tzinfo=UTC)  # 10:00 in Guangxi
FUNDS = 1_000_000


@dataclass
class World:
    db: Database
    settings: Settings
    seller: Actor
    buyer: Actor
    broker: Actor
    operator: Actor
    regulator: Actor
    outsider: Actor
    listing_id: str
    keys: PartyKeys

    def p(self, actor: Actor) -> Principal:
        return principal(self.db, actor)


def contract_world(db: Database, settings: Settings) -> World:
    base = seller_world(db, settings, registry.issuer_for(settings))
    buyer = make_actor(db)
    with db.write() as s:
        money.deposit_funds(s, buyer.party_id, FUNDS, key=f"fund-{buyer.party_id}", actor="test")
    broker = make_actor(db, PartyKind.SERVICE_FIRM, service_role=ServiceRole.BROKER)
    regulator = make_actor(db, PartyKind.REGULATOR)
    listing_id = published_listing(db, base["product"], base["seller"], price_fen=10_000)
    return World(
        db=db,
        settings=settings,
        seller=base["seller"],
        buyer=buyer,
        broker=broker,
        operator=base["operator"],
        regulator=regulator,
        outsider=make_actor(db),
        listing_id=listing_id,
        keys=PartyKeys(settings.var_dir),
    )


OpenFor = Callable[..., str]


def contract_opener(world: World) -> OpenFor:
    """``open_for(quantity=1, kind=mall, broker=False, term_start=None, now=NOW)``: a contract
    of the world's listing for the world's buyer, escrow frozen; returns its id."""
    serial = iter(range(1, 10_000))

    def make(
        *,
        quantity: int = 1,
        kind: TradeKind = TradeKind.MALL,
        broker: bool = False,
        term_start: date | None = None,
        now: datetime = NOW,
        state: ContractState = ContractState.ACCEPTED,
        policy: dict[str, Any] | None = None,
        **extra: Any,
    ) -> str:
        n = next(serial)
        start = term_start or now.date()
        with world.db.write() as s:
            listing = s.get(ExchangeListing, world.listing_id)
            assert listing is not None
            amount = listing.price_fen * quantity
            hold = settlement.freeze(
                s,
                world.buyer.party_id,
                amount,
                f"order:test-{n}",
                key=f"test-order-{n}:freeze",
                actor="test",
            )
            contract = contracts.open_contract(
                s,
                contracts.ContractDraft(
                    kind=kind,
                    listing=listing,
                    buyer_id=world.buyer.party_id,
                    quantity=quantity,
                    price_fen=listing.price_fen,
                    amount_fen=amount,
                    channels=tuple(listing.channels),
                    policy=policy or listing.contract_policy,
                    term_start=start,
                    term_end=start + timedelta(days=listing.term_days),
                    hold_id=hold.hold_id,
                    broker_id=world.broker.party_id if broker else None,
                    state=state,
                    **extra,
                ),
                actor=None,
                now=now,
            )
            return contract.id

    return make


def load(world: World, contract_id: str) -> ExchangeContract:
    with world.db.read() as s:
        row = s.get(ExchangeContract, contract_id)
        assert row is not None
        return row


def sign_all(world: World, contract_id: str, *, now: datetime = NOW, broker: bool = False) -> None:
    """Every required party signs (buyer, seller, and the broker when asked)."""
    who = [world.buyer, world.seller] + ([world.broker] if broker else [])
    for actor in who:
        with world.db.write() as s:
            contracts.sign_contract(
                s, world.p(actor), contract_id, keys=world.keys, confirm=True, now=now
            )


def deliver(world: World, contract_id: str, *, now: datetime) -> None:
    """The first delivery under an active contract (what the delivery records)."""
    with world.db.write() as s:
        row = s.get(ExchangeContract, contract_id, with_for_update=True)
        assert row is not None
        contracts.mark_delivered(s, row, actor=None, now=now)


def hold(world: World, contract_id: str) -> dict[str, Any]:
    with world.db.read() as s:
        row = s.get(ExchangeContract, contract_id)
        assert row is not None and row.hold_id
        return settlement.hold_of(s, row.hold_id)


def events(world: World, contract_id: str) -> list[tuple[str, str | None, str]]:
    with world.db.read() as s:
        return [(e.action, e.source, e.target) for e in contracts.contract_events(s, contract_id)]


def contract_for(
    db: Database,
    settings: Settings,
    owner: Actor,
    *,
    stage: str = "accepted",
    as_buyer: bool = True,
) -> str:
    """A contract (now, with real escrow and signatures) whose buyer is ``owner`` — or, with
    ``as_buyer=False``, between two other parties — at ``stage``: ``accepted`` (awaiting
    signatures), ``active``, ``delivered`` (active, delivered) or ``disputed``. For the
    tenant-isolation registry."""
    from datafactor.db import utcnow

    base = seller_world(db, settings, registry.issuer_for(settings))
    buyer = owner if as_buyer else make_actor(db)
    with db.write() as s:
        money.deposit_funds(
            s, buyer.party_id, FUNDS, key=f"iso-fund-{buyer.party_id}", actor="test"
        )
    listing_id = published_listing(db, base["product"], base["seller"], price_fen=10_000)
    world = World(
        db=db,
        settings=settings,
        seller=base["seller"],
        buyer=buyer,
        broker=buyer,
        operator=base["operator"],
        regulator=buyer,
        outsider=buyer,
        listing_id=listing_id,
        keys=PartyKeys(settings.var_dir),
    )
    now = utcnow()
    contract_id = contract_opener(world)(now=now)
    if stage == "accepted":
        return contract_id
    sign_all(world, contract_id, now=now)
    if stage == "active":
        return contract_id
    deliver(world, contract_id, now=now)
    if stage == "delivered":
        return contract_id
    with db.write() as s:
        contracts.dispute_contract(s, world.p(buyer), contract_id, grounds="isolation", now=now)
    return contract_id


def engine_policy(asset_id: str) -> dict[str, Any]:
    """A contract policy the policy engine reads: use for industry or research, no onward
    distribution."""
    from datafactor.policy import ODRL_CONTEXT

    target = f"urn:datafactor:asset:{asset_id}"
    return {
        "@context": ODRL_CONTEXT,
        "@type": "Set",
        "uid": f"urn:datafactor:contract-policy:{asset_id}",
        "permission": [
            {
                "target": target,
                "action": "use",
                "constraint": [
                    {
                        "leftOperand": "purpose",
                        "operator": "isAnyOf",
                        "rightOperand": ["industry", "research"],
                    }
                ],
            }
        ],
        "prohibition": [{"target": target, "action": "distribute"}],
    }
