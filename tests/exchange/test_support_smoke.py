"""The exchange's test world builds: a certified product and a published listing of it."""

from __future__ import annotations

import pytest
from exchange_support import published_listing, seller_world

from datafactor import registry
from datafactor.exchange.models import ExchangeListing


@pytest.fixture
def issuer(settings):
    return registry.issuer_for(settings)


def test_a_published_listing_of_a_certified_product(db, settings, issuer):
    world = seller_world(db, settings, issuer)
    listing_id = published_listing(db, world["product"], world["seller"], quantity=10)
    with db.read() as s:
        row = s.get(ExchangeListing, listing_id)
        assert row.state == "published" and row.remaining_quantity == 10
        assert row.certificate_number.startswith("GX-")
