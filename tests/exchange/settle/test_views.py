"""The dashboard and settlement pages (both databases): each role sees its figures; the
operator settles from the page once however often the form is posted."""

from __future__ import annotations

import re

from exchange_settle_support import books_balanced, completed_contract
from factories import console_login, csrf_of

from datafactor.db import utcnow
from datafactor.exchange import settle
from datafactor.exchange.models import ExchangeContract


def _trades(db, world):
    listing = world.listing(price_fen=20_000)
    settled = completed_contract(
        db, listing, world.buyer.party_id, amount_fen=20_000, broker_id=world.broker.party_id
    )
    due = completed_contract(db, listing, world.buyer.party_id, amount_fen=30_000)
    with db.write() as s:
        settle.settle_contract(s, s.get(ExchangeContract, settled), actor="test", now=utcnow())
    return settled, due


def test_the_seller_and_the_broker_see_their_dashboards(client, db, world):
    settled, _ = _trades(db, world)
    console_login(client, world.seller, "/exchange/dashboard", "en")
    page = client.get("/exchange/dashboard")
    assert page.status_code == 200
    assert 'data-testid="settled-income"' in page.text and "¥194.00" in page.text
    assert f'data-testid="recent-{settled}"' in page.text
    console_login(client, world.broker, "/exchange/dashboard", "en")
    page = client.get("/exchange/dashboard?role=broker")
    assert page.status_code == 200 and "¥2.00" in page.text
    assert f"/exchange/settlements/{settled}" in page.text


def test_the_settlement_page_shows_the_split_to_the_parties_only(client, db, world):
    settled, due = _trades(db, world)
    console_login(client, world.buyer, "/exchange/dashboard", "en")
    page = client.get(f"/exchange/settlements/{settled}")
    assert page.status_code == 200
    assert 'data-testid="settled"' in page.text and "EXC-SETTLE-FEE" in page.text
    page = client.get(f"/exchange/settlements/{due}")
    assert page.status_code == 200 and 'data-testid="not-settled"' in page.text
    console_login(client, world.outsider, "/exchange/dashboard", "en")
    assert client.get(f"/exchange/settlements/{settled}").status_code == 404


def test_the_operator_settles_from_the_dashboard_once(client, db, world):
    _, due = _trades(db, world)
    console_login(client, world.operator, "/exchange/dashboard", "en")
    page = client.get("/exchange/dashboard")
    assert page.status_code == 200 and 'data-testid="run-form"' in page.text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text).group(1)
    form = {"csrf_token": csrf_of(page.text), "idempotency_key": key}
    first = client.post("/exchange/settlements/run", data=form)
    assert first.status_code == 200 and 'data-testid="ran"' in first.text
    second = client.post("/exchange/settlements/run", data=form)  # a double click
    assert second.status_code == 200
    with db.read() as s:
        assert s.get(ExchangeContract, due).settled_at is not None
    assert "¥300.00" in second.text
    books_balanced(db)
    console_login(client, world.seller, "/exchange/dashboard", "en")
    page = client.get("/exchange/dashboard")
    refused = client.post(
        "/exchange/settlements/run", data={"csrf_token": csrf_of(page.text), "idempotency_key": "x"}
    )
    assert refused.status_code == 403
