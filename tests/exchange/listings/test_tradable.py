"""The trades' interface to listings: ``tradable_listing`` and ``take_quantity`` (both databases)."""

from __future__ import annotations

import pytest
from factories import make_actor
from listing_support import drive
from registry_support import principal
from sqlalchemy import update

from datafactor.db import today_cn, utcnow
from datafactor.exchange import (
    ExchangeForbidden,
    ExchangeInvalid,
    ExchangeNotFound,
    ExchangeStateConflict,
    listings,
)
from datafactor.registry.models import RegistryRight


def test_a_published_listing_is_tradable_for_a_verified_buyer(world, publish):
    listing_id = publish(quantity=5)
    with world.db.write() as s:
        row = listings.tradable_listing(
            s, listing_id, buyer=world.p(world.buyer), on=today_cn(), lock=True
        )
        assert row.id == listing_id and row.state == "published"
        assert row.remaining_quantity == 5


def test_the_seller_cannot_buy_its_own_listing(world, publish):
    listing_id = publish()
    with world.db.read() as s, pytest.raises(ExchangeForbidden) as caught:
        listings.tradable_listing(s, listing_id, buyer=world.p(world.seller), on=today_cn())
    assert caught.value.rule == "EXC-LST-BUYER"


def test_a_draft_does_not_exist_for_a_buyer(world, create):
    listing_id = create()
    with world.db.read() as s, pytest.raises(ExchangeNotFound) as caught:
        listings.tradable_listing(s, listing_id, buyer=world.p(world.buyer), on=today_cn())
    assert caught.value.rule == "EXC-LST-VISIBLE"


def test_an_unverified_buyer_is_refused(world, publish, db):
    listing_id = publish(audience="public")
    pending = make_actor(db, verified=False)
    with world.db.read() as s, pytest.raises(ExchangeForbidden) as caught:
        listings.tradable_listing(s, listing_id, buyer=principal(db, pending), on=today_cn())
    assert caught.value.rule == "EXC-LST-BUYER"


def test_a_suspended_listing_is_refused_with_its_state(world, publish):
    listing_id = publish()
    with world.db.write() as s:
        listings.decide_listing(
            s,
            world.p(world.operator),
            listing_id,
            "suspend",
            reason="卖方涉嫌数据来源争议，暂停交易",
            on=today_cn(),
            now=utcnow(),
        )
    with world.db.read() as s, pytest.raises(ExchangeStateConflict) as caught:
        listings.tradable_listing(s, listing_id, buyer=world.p(world.buyer), on=today_cn())
    assert caught.value.rule == "EXC-LST-STATE"
    assert "suspended" in str(caught.value)


def test_a_seller_that_no_longer_holds_the_right_is_refused(world, publish):
    listing_id = publish()
    with world.db.write() as s:
        s.execute(
            update(RegistryRight)
            .where(RegistryRight.id == world.product.right_id)
            .values(status="revoked")
        )
    with world.db.read() as s, pytest.raises(ExchangeStateConflict) as caught:
        listings.tradable_listing(s, listing_id, buyer=world.p(world.buyer), on=today_cn())
    assert caught.value.rule == "EXC-LST-CERT"


def test_named_parties_only_see_a_listing_for_them(world, publish, db):
    listing_id = publish(audience="parties", audience_parties=(world.buyer.party_id,))
    other = make_actor(db)
    with world.db.read() as s:
        assert listings.tradable_listing(s, listing_id, buyer=world.p(world.buyer), on=today_cn())
        with pytest.raises(ExchangeNotFound):
            listings.tradable_listing(s, listing_id, buyer=principal(db, other), on=today_cn())


def test_take_quantity_takes_licences_until_none_remain(world, publish):
    listing_id = publish(quantity=3)
    buyer = world.p(world.buyer)
    with world.db.write() as s:
        row = listings.tradable_listing(s, listing_id, buyer=buyer, on=today_cn(), lock=True)
        listings.take_quantity(s, row, 2)
    with world.db.write() as s:
        row = listings.tradable_listing(s, listing_id, buyer=buyer, on=today_cn(), lock=True)
        assert row.remaining_quantity == 1
        with pytest.raises(ExchangeStateConflict) as caught:
            listings.take_quantity(s, row, 2)
        assert caught.value.rule == "EXC-LST-QUANTITY"
        with pytest.raises(ExchangeInvalid):
            listings.take_quantity(s, row, 0)
        listings.take_quantity(s, row, 1)
    with world.db.read() as s:
        assert listings.get_listing(s, buyer, listing_id).remaining_quantity == 0


def test_an_unlimited_listing_is_never_sold_out(world, publish):
    listing_id = publish()
    with world.db.write() as s:
        row = listings.tradable_listing(
            s, listing_id, buyer=world.p(world.buyer), on=today_cn(), lock=True
        )
        listings.take_quantity(s, row, 1000)
        assert row.remaining_quantity is None and row.total_quantity is None


def test_a_submitted_listing_is_not_for_sale(world, create):
    listing_id = create()
    drive(world, listing_id, until="submitted")
    with world.db.read() as s, pytest.raises(ExchangeNotFound):
        listings.tradable_listing(s, listing_id, buyer=world.p(world.buyer), on=today_cn())


def test_a_suspended_seller_cannot_sell(world, publish):
    from datafactor.identity.models import Party

    listing_id = publish()
    with world.db.write() as s:
        s.execute(update(Party).where(Party.id == world.seller.party_id).values(status="suspended"))
    with world.db.read() as s, pytest.raises(ExchangeStateConflict) as caught:
        listings.tradable_listing(s, listing_id, buyer=world.p(world.buyer), on=today_cn())
    assert caught.value.rule == "EXC-LST-SELLER"
