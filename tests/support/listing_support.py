"""Listing test helpers: the world of a listing test (a seller with a certified product, the
exchange operator, a compliance assessor, a broker, a buyer), a draft of the product, the
assessor's all-pass checklist, and ``drive`` — a listing taken through submission, assessment and
approval with the real services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exchange_support import Product, certified_product
from factories import PASSWORD, Actor, make_actor
from registry_support import principal

from datafactor import registry
from datafactor.db import Database, today_cn, utcnow
from datafactor.exchange import listings
from datafactor.exchange.keys import PartyKeys, party_keys
from datafactor.identity import PartyKind, ServiceRole, create_user_as_operator
from datafactor.permissions import Principal
from datafactor.settings import Settings

OPINION = "材料齐全，来源合法，权属清晰，同意挂牌。"


@dataclass
class World:
    db: Database
    settings: Settings
    seller: Actor
    seller_staff: Actor
    operator: Actor
    assessor: Actor
    broker: Actor
    buyer: Actor
    product: Product
    keys: PartyKeys

    def p(self, actor: Actor) -> Principal:
        return principal(self.db, actor)


def staff_of(db: Database, party_actor: Actor, username: str) -> Actor:
    """Another user (staff) of ``party_actor``'s party."""
    with db.write() as s:
        user = create_user_as_operator(
            s,
            party_actor.party_id,
            username=username,
            display_name=username,
            password=PASSWORD,
            roles=["staff"],
        )
        return Actor(party_actor.party_id, user.id, username, PASSWORD, party_actor.kind)


def make_world(db: Database, settings: Settings, issuer: registry.Issuer) -> World:
    seller = make_actor(db, name="广西电网数据公司")
    operator = make_actor(db, PartyKind.EXCHANGE_OPERATOR)
    product = certified_product(
        db, settings, principal(db, seller), principal(db, operator), issuer
    )
    return World(
        db=db,
        settings=settings,
        seller=seller,
        seller_staff=staff_of(db, seller, f"staff-{seller.username}"),
        operator=operator,
        assessor=make_actor(
            db, PartyKind.SERVICE_FIRM, service_role=ServiceRole.COMPLIANCE_ASSESSOR
        ),
        broker=make_actor(db, PartyKind.SERVICE_FIRM, service_role=ServiceRole.BROKER),
        buyer=make_actor(db, name="北部湾银行"),
        product=product,
        keys=party_keys(settings),
    )


def draft(product: Product, **kw: Any) -> listings.ListingDraft:
    values: dict[str, Any] = {
        "asset_id": product.asset_id,
        "title": "园区用电指数",
        "title_en": "Industrial park power index",
        "summary": "按园区汇总的月度用电指数，反映园区开工率",
        "industry": "energy",
        "region": "450100",
        "tags": ("电力", "园区"),
        "price_model": "one_off",
        "price_fen": 120_000,
        "channels": ("api",),
    }
    values.update(kw)
    return listings.ListingDraft(**values)


def all_pass() -> list[dict[str, str]]:
    return [{"id": str(i["id"]), "outcome": "pass", "note": ""} for i in listings.checklist()]


def drive(world: World, listing_id: str, *, until: str = "published") -> None:
    with world.db.write() as s:
        listings.submit_listing(
            s,
            world.p(world.seller),
            listing_id,
            keys=world.keys,
            confirm=True,
            on=today_cn(),
            now=utcnow(),
        )
    if until == "submitted":
        return
    with world.db.write() as s:
        listings.assess_listing(
            s,
            world.p(world.assessor),
            listing_id,
            items=all_pass(),
            opinion=OPINION,
            confirm=True,
            keys=world.keys,
            now=utcnow(),
        )
    if until == "assessed":
        return
    with world.db.write() as s:
        listings.decide_listing(
            s, world.p(world.operator), listing_id, "approve", on=today_cn(), now=utcnow()
        )


def listing_for(
    db: Database, settings: Settings, owner: Actor | None, *, state: str = "draft"
) -> str:
    """A listing of a freshly certified product of ``owner`` (a new enterprise when None), in
    ``state`` (draft, submitted, assessed or published) — the tenant-isolation registry's."""
    seller = owner or make_actor(db)
    operator = make_actor(db, PartyKind.EXCHANGE_OPERATOR)
    issuer = registry.issuer_for(settings)
    product = certified_product(
        db, settings, principal(db, seller), principal(db, operator), issuer
    )
    with db.write() as s:
        listing_id = listings.create_listing(
            s, principal(db, seller), draft(product), on=today_cn(), now=utcnow()
        ).id
    if state == "draft":
        return listing_id
    world = World(
        db=db,
        settings=settings,
        seller=seller,
        seller_staff=seller,
        operator=operator,
        assessor=make_actor(
            db, PartyKind.SERVICE_FIRM, service_role=ServiceRole.COMPLIANCE_ASSESSOR
        ),
        broker=seller,
        buyer=seller,
        product=product,
        keys=party_keys(settings),
    )
    drive(world, listing_id, until=state)
    return listing_id
