"""The mall order's compiled check (``trade_listing``) and the ORM path of agreements and
auctions (``tradable_listing``) answer alike — the same refusal, status, rule id and message,
or both pass — in every case a buyer can meet, on both databases: they run one set of checks."""

from __future__ import annotations

from typing import Any

import pytest
from factories import make_actor
from orders_support import NOW, Market, make_market, principal_of

from datafactor.db import Database
from datafactor.errors import DomainError
from datafactor.exchange import listings
from datafactor.fastsql import Raw
from datafactor.identity.models import Party
from datafactor.permissions import Principal
from datafactor.registry.models import RegistryAsset, RegistryRight
from datafactor.settings import Settings

DAY = NOW.date()


@pytest.fixture
def market(db: Database, settings: Settings) -> Market:
    return make_market(db, settings)


def answer(market: Market, buyer: Principal, listing_id: str) -> Any:
    """Both paths' answers, asserted equal: None (tradable) or the refusal's particulars."""
    found = []
    for path in ("compiled", "orm"):
        try:
            with market.db.write() as s:
                if path == "compiled":
                    listings.trade_listing(s, Raw.of(s), listing_id, buyer=buyer, on=DAY, key="k")
                else:
                    listings.tradable_listing(s, listing_id, buyer=buyer, on=DAY, lock=True)
            found.append(None)
        except DomainError as exc:
            found.append((type(exc).__name__, exc.status, exc.params.get("rule"), str(exc)))
    assert found[0] == found[1], found
    return found[0]


def test_both_paths_refuse_alike(market, db):
    _, buyer = market.buyer(0)
    published = market.listing(price_fen=1_000)
    assert answer(market, buyer, published) is None

    draft = market.listing(price_fen=1_000, state="draft")
    assert answer(market, buyer, draft)[1:3] == (404, "EXC-LST-VISIBLE")
    assert answer(market, buyer, "no-such-listing")[1:3] == (404, "EXC-LST-VISIBLE")
    assert answer(market, buyer, "bad\x00id")[1:3] == (404, "EXC-LST-VISIBLE")
    # Only for other parties: the buyer is not among them.
    named = market.listing(price_fen=1_000, access={"audience": "parties", "parties": ["x"]})
    assert answer(market, buyer, named)[1:3] == (404, "EXC-LST-VISIBLE")

    pending = principal_of(db, make_actor(db, verified=False))
    assert answer(market, pending, published)[1:3] == (404, "EXC-LST-VISIBLE")
    public = market.listing(price_fen=1_000, access={"audience": "public"})
    assert answer(market, pending, public)[1:3] == (403, "EXC-LST-BUYER")
    assert answer(market, market.seller_principal, published)[1:3] == (403, "EXC-LST-BUYER")

    suspended = market.listing(price_fen=1_000, state="suspended")
    refused = answer(market, buyer, suspended)
    assert refused[1:3] == (409, "EXC-LST-STATE") and "suspended" in refused[3]


def test_both_paths_refuse_a_seller_or_a_right_that_changed_alike(market, db):
    _, buyer = market.buyer(0)
    listing_id = market.listing(price_fen=1_000)
    assert answer(market, buyer, listing_id) is None  # a pass is cached at this revision
    with db.write() as s:
        s.get(RegistryAsset, market.product.asset_id).grade = "core"
    assert answer(market, buyer, listing_id)[1:3] == (403, "EXC-LST-CORE")
    with db.write() as s:
        s.get(RegistryAsset, market.product.asset_id).grade = "internal"
    assert answer(market, buyer, listing_id) is None
    with db.write() as s:
        s.get(Party, market.seller.party_id).status = "suspended"
    assert answer(market, buyer, listing_id)[1:3] == (409, "EXC-LST-SELLER")
    with db.write() as s:
        s.get(Party, market.seller.party_id).status = "verified"
        s.get(RegistryRight, market.product.right_id).status = "revoked"
    refused = answer(market, buyer, listing_id)
    assert refused[1:3] == (409, "EXC-LST-CERT") and "revoked" in refused[3]
