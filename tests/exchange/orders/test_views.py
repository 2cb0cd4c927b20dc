"""The checkout and order pages over HTTP, on both databases: the checkout shows the price,
the total, the buyer's available funds and the terms in plain language; a double-submitted
form places one order; a refusal re-renders the form with the reason; my orders as buyer and
seller; cancelling from the order's page."""

from __future__ import annotations

import re

import pytest
from factories import console_login, csrf_of, make_actor
from orders_support import balances, fund
from sqlalchemy import func, select

from datafactor.exchange.models import ExchangeOrder


def text_of(html: str, name: str) -> str:
    match = re.search(rf'data-testid="{name}"[^>]*>([^<]*)<', html)
    assert match, f"no {name} in the page"
    return match.group(1).strip()


@pytest.fixture
def shop(client, market):  # type: ignore[no-untyped-def]
    listing_id = market.listing(price_fen=123_456, quantity=3)
    buyer = make_actor(market.db)
    fund(market.db, buyer.party_id, 1_000_000)
    console_login(client, buyer, "/exchange")
    return listing_id, buyer


def _orders(db) -> int:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(ExchangeOrder)) or 0)


def test_the_checkout_page_shows_price_total_funds_and_terms(client, shop):
    listing_id, _ = shop
    page = client.get(f"/exchange/listings/{listing_id}/checkout?quantity=2")
    assert page.status_code == 200, page.text
    html = page.text
    assert text_of(html, "checkout-price").startswith("¥1,234.56")
    assert text_of(html, "checkout-total") == "¥2,469.12"
    assert text_of(html, "checkout-available").startswith("¥10,000.00")
    assert text_of(html, "checkout-remaining") == "3 / 3"
    assert 'data-testid="checkout-policy"' in html and "<li>" in html  # plain language
    assert 'name="idempotency_key"' in html and 'name="terms_read"' in html
    total = client.get(f"/exchange/listings/{listing_id}/checkout/total?quantity=3")
    assert text_of(total.text, "checkout-total") == "¥3,703.68"
    bad = client.get(f"/exchange/listings/{listing_id}/checkout/total?quantity=0")
    assert 'data-testid="total-error"' in bad.text


def test_a_double_submitted_checkout_places_one_order(client, market, shop):
    listing_id, buyer = shop
    html = client.get(f"/exchange/listings/{listing_id}/checkout").text
    form = {
        "csrf_token": csrf_of(html),
        "idempotency_key": re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1),
        "quantity": "2",
        "terms_read": "yes",
    }
    url = f"/exchange/listings/{listing_id}/checkout"
    first = client.post(url, data=form, follow_redirects=False)
    second = client.post(url, data=form, follow_redirects=False)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert _orders(market.db) == 1
    assert balances(market.db, buyer.party_id) == (1_000_000 - 246_912, 246_912)
    page = client.get(first.headers["location"])
    assert page.status_code == 200
    assert text_of(page.text, "order-number").startswith("GX-DO-")
    assert text_of(page.text, "order-amount").startswith("¥2,469.12")
    assert 'data-testid="order-contract"' in page.text
    assert 'data-testid="order-cancel"' in page.text  # the buyer's administrator may cancel


def test_the_terms_must_be_read_and_refusals_are_shown(client, market, shop):
    listing_id, _ = shop
    html = client.get(f"/exchange/listings/{listing_id}/checkout").text
    url = f"/exchange/listings/{listing_id}/checkout"
    base = {"csrf_token": csrf_of(html), "idempotency_key": "form-1", "quantity": "1"}
    r = client.post(url, data=base)
    assert r.status_code == 422
    assert "EXC-ORDER-CONTRACT" in text_of(r.text, "error")
    r = client.post(url, data={**base, "quantity": "9", "terms_read": "yes"})
    assert r.status_code == 409 and "EXC-LST-QUANTITY" in text_of(r.text, "error")
    r = client.post(url, data={**base, "quantity": "abc", "terms_read": "yes"})
    assert r.status_code == 422 and "EXC-ORDER-QUANTITY" in text_of(r.text, "error")
    assert _orders(market.db) == 0


def test_the_seller_cannot_check_out_its_own_listing(client, market):
    listing_id = market.listing(price_fen=100)
    console_login(client, market.seller, "/exchange")
    r = client.get(f"/exchange/listings/{listing_id}/checkout")
    assert r.status_code == 403 and "EXC-LST-BUYER" in r.text


def test_my_orders_as_buyer_and_seller_and_cancelling(client, market, shop):
    listing_id, buyer = shop
    html = client.get(f"/exchange/listings/{listing_id}/checkout").text
    placed = client.post(
        f"/exchange/listings/{listing_id}/checkout",
        data={
            "csrf_token": csrf_of(html),
            "idempotency_key": "f-1",
            "quantity": "1",
            "terms_read": "yes",
        },
        follow_redirects=False,
    )
    order_url = placed.headers["location"]
    mine = client.get("/exchange/orders")
    assert mine.status_code == 200 and mine.text.count('data-testid="order-row"') == 1
    assert 'href="/exchange/contracts/' in mine.text
    page = client.get(order_url)
    r = client.post(
        f"{order_url}/cancel", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False
    )
    assert r.status_code == 303
    assert 'data-status="cancelled"' in client.get(order_url).text
    assert balances(market.db, buyer.party_id) == (1_000_000, 0)

    console_login(client, market.seller, "/exchange")
    sold = client.get("/exchange/orders?role=seller")
    assert sold.text.count('data-testid="order-row"') == 1
    assert client.get("/exchange/orders?role=buyer").text.count('data-testid="order-row"') == 0
    assert client.get(order_url).status_code == 200
    stranger = make_actor(market.db)
    console_login(client, stranger, "/exchange")
    assert client.get(order_url).status_code == 404


def test_a_sold_out_listing_says_so_at_checkout(client, market, place):
    listing_id = market.listing(price_fen=100, quantity=1)
    _, principal = market.buyer(10_000)
    place(principal, listing_id, 1)
    buyer = make_actor(market.db)
    console_login(client, buyer, "/exchange")
    page = client.get(f"/exchange/listings/{listing_id}/checkout")
    assert page.status_code == 200
    assert 'data-testid="checkout-sold-out"' in page.text
    assert text_of(page.text, "checkout-remaining") == "0 / 1"
