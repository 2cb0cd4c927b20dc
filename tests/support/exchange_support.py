"""Exchange test helpers: a certified data product with its product-operation right, and a
published listing of it.

``certified_product`` goes through the real registry (a resource with a holding right, a product
derived from it, the product-operation right certified). ``published_listing`` inserts the
listing row as the listing review would leave it published, so the trade, delivery and
settlement tests need not drive the review; the listing tests drive the review itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from factories import Actor, make_actor
from grants_support import registered_asset
from registry_support import TODAY, drive_to_certified, initial, principal, scanned_version
from sqlalchemy import select

from datafactor.db import Database, utcnow
from datafactor.exchange.listings import default_policy, search_text_of
from datafactor.exchange.models import ExchangeListing
from datafactor.identity import PartyKind
from datafactor.permissions import Principal
from datafactor.registry import AssetKind, DataClass
from datafactor.registry import services as registry
from datafactor.registry.models import RegistryCertificate
from datafactor.settings import Settings

PRODUCT_END = date(2029, 3, 1)


@dataclass(frozen=True)
class Product:
    """A certified data product: its asset, the product-operation right and certificate, the
    resource it was derived from and that resource's holding right, and the day all was
    certified."""

    asset_id: str
    right_id: str
    certificate: str
    resource_id: str
    resource_right_id: str
    day: date


def product_draft(version_id: str, lineage: list[str], **kw: Any) -> registry.AssetDraft:
    values: dict[str, Any] = {
        "kind": AssetKind.PRODUCT,
        "name": "园区用电指数",
        "name_en": "Industrial park power index",
        "description": "按园区汇总的用电指数",
        "domain": "energy",
        "source_statement": "由我方持有的供电量数据加工",
        "update_frequency": "monthly",
        "region": "450100",
        "field_schema": ({"name": "园区"}, {"name": "指数"}),
        "sample": "园区A,102.3",
        "version_id": version_id,
        "lineage": tuple(lineage),
    }
    values.update(kw)
    return registry.AssetDraft(**values)


def certified_product(
    db: Database,
    settings: Settings,
    seller: Principal,
    registrar: Principal,
    issuer: registry.Issuer,
    *,
    data_class: DataClass = DataClass.ENTERPRISE,
    on: date = TODAY,
    **product: Any,
) -> Product:
    """A product of ``seller``'s, derived from a resource it holds, with its product-operation
    right certified."""
    resource_id, resource_right, day = registered_asset(
        db, settings, seller, registrar, issuer, data_class=data_class, on=on
    )
    with db.write() as s:
        asset_id = registry.create_asset(
            s,
            seller,
            product_draft(scanned_version(db, settings, seller), [resource_id], **product),
        ).id
    draft = initial(db, asset_id, term_start=day, term_end=PRODUCT_END)
    _, right_id, day = drive_to_certified(db, seller, registrar, draft, issuer, day)
    assert right_id is not None
    with db.read() as s:
        number = s.scalar(
            select(RegistryCertificate.number).where(RegistryCertificate.right_id == right_id)
        )
    assert number
    return Product(asset_id, right_id, number, resource_id, resource_right, day)


def contract_policy(asset_id: str, *, channels: tuple[str, ...] = ("download", "api")) -> dict:
    """A plain contract policy: use for industry analysis and research in Guangxi through the
    listing's channels; no onward transfer."""
    from datafactor.policy import ODRL_CONTEXT

    target = f"urn:datafactor:asset:{asset_id}"
    return {
        "@context": ODRL_CONTEXT,
        "@type": "Set",
        "uid": f"urn:datafactor:listing-policy:{asset_id}",
        "permission": [
            {
                "target": target,
                "action": "use",
                "constraint": [
                    {
                        "leftOperand": "purpose",
                        "operator": "isAnyOf",
                        "rightOperand": ["industry", "research"],
                    },
                    {
                        "leftOperand": "deliveryChannel",
                        "operator": "isAnyOf",
                        "rightOperand": list(channels),
                    },
                ],
            }
        ],
        "prohibition": [{"target": target, "action": "distribute"}],
    }


def published_listing(
    db: Database,
    product: Product,
    seller: Actor | Principal,
    *,
    price_fen: int = 10_000,
    price_model: str = "one_off",
    quantity: int | None = None,
    channels: tuple[str, ...] = ("download", "api"),
    broker_id: str | None = None,
    revenue_sharing: list[dict[str, Any]] | None = None,
    **columns: Any,
) -> str:
    """A listing of ``product`` in the published state (as the review leaves it)."""
    seller_id = seller.party_id
    now = utcnow()
    with db.write() as s:
        count = len(s.scalars(select(ExchangeListing.id)).all())
        number = f"GX-DL-{now.year}-{900000 + count + 1:06d}"
        title = columns.pop("title", "园区用电指数")
        title_en = columns.pop("title_en", "Industrial park power index")
        summary = columns.pop("summary", "按园区汇总的月度用电指数")
        row = ExchangeListing(
            number=number,
            state="published",
            asset_id=product.asset_id,
            right_id=product.right_id,
            certificate_number=product.certificate,
            seller_id=seller_id,
            broker_id=broker_id,
            kind="product",
            title=title,
            title_en=title_en,
            summary=summary,
            industry="energy",
            region="450100",
            data_class="enterprise",
            price_model=price_model,
            price_fen=price_fen,
            channels=list(channels),
            term_days=365,
            contract_policy=default_policy(
                asset_id=product.asset_id, seller_id=seller_id, channels=channels, scope=None
            ),
            access={"audience": "verified"},
            placement="mall",
            total_quantity=quantity,
            remaining_quantity=quantity,
            revenue_sharing=revenue_sharing or [],
            search_text=search_text_of(
                title=title,
                title_en=title_en,
                summary=summary,
                summary_en="",
                tags=(),
                industry="energy",
                region="450100",
                kind="product",
                number=number,
                seller="",
            ),
            published_at=now,
            **columns,
        )
        s.add(row)
        s.flush()
        return row.id


def seller_world(db: Database, settings: Settings, issuer: registry.Issuer) -> dict[str, Any]:
    """A seller with a certified product, an exchange operator, a registrar principal."""
    seller = make_actor(db)
    operator = make_actor(db, PartyKind.EXCHANGE_OPERATOR)
    registrar = principal(db, operator)
    product = certified_product(db, settings, principal(db, seller), registrar, issuer)
    return {"seller": seller, "operator": operator, "registrar": registrar, "product": product}


def later(day: date, days: int) -> date:
    return day + timedelta(days=days)


def active_contract(
    db: Database,
    listing_id: str,
    buyer: Actor,
    *,
    policy: dict[str, Any] | None = None,
    channels: tuple[str, ...] | None = None,
    term_start: date | None = None,
    term_end: date | None = None,
    state: str = "active",
    now: Any = None,
) -> str:
    """A contract of ``listing_id`` for ``buyer`` drawn up by ``contracts.open_contract`` (free:
    no escrow) and moved straight to ``state`` (a test shortcut past the signatures); the
    listing's channels and contract policy unless given. Returns its id."""
    from datetime import UTC, datetime

    from datafactor.exchange import contracts
    from datafactor.exchange.domain import ContractState, TradeKind
    from datafactor.exchange.models import ExchangeContract

    moment = now or datetime.now(UTC)
    start = term_start or moment.date() - timedelta(days=1)
    with db.write() as s:
        listing = s.get(ExchangeListing, listing_id)
        assert listing is not None
        contract = contracts.open_contract(
            s,
            contracts.ContractDraft(
                kind=TradeKind.MALL,
                listing=listing,
                buyer_id=buyer.party_id,
                quantity=1,
                price_fen=0,
                amount_fen=0,
                channels=tuple(channels or listing.channels),
                policy=policy if policy is not None else listing.contract_policy,
                term_start=start,
                term_end=term_end or start + timedelta(days=listing.term_days),
                hold_id=None,
                state=ContractState.ACCEPTED,
            ),
            actor=None,
            now=moment,
        )
        row = s.get(ExchangeContract, contract.id)
        assert row is not None
        row.state = state
        return contract.id
