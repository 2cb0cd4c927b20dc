"""A mall purchase in a real browser: a buyer opens a published listing, goes to the checkout,
reads the total and the terms, ticks the declaration and double-clicks "Place the order" — one
order, its payment frozen, its contract awaiting signatures — and finds it under "My orders".
The console speaks Chinese; the checks read figures and test ids."""

from __future__ import annotations

import re

from factories import make_actor
from orders_support import balances, fund, make_market
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from datafactor.db import Database
from datafactor.exchange.models import ExchangeOrder
from datafactor.settings import Settings


def test_buy_a_listing_through_the_checkout(
    page: Page, login, db: Database, settings: Settings, shot
) -> None:  # type: ignore[no-untyped-def]
    market = make_market(db, settings)
    listing_id = market.listing(price_fen=250_000, quantity=5)
    buyer = make_actor(db, username="bank.buyer", name="北部湾银行股份有限公司")
    fund(db, buyer.party_id, 2_000_000)
    login(buyer.username)

    page.goto(f"/exchange/listings/{listing_id}")
    page.get_by_test_id("checkout-link").click()
    expect(page).to_have_url(re.compile(rf"/exchange/listings/{listing_id}/checkout$"))
    expect(page.get_by_test_id("checkout-available")).to_contain_text("¥20,000.00")
    expect(page.get_by_test_id("checkout-total")).to_have_text("¥2,500.00")
    page.get_by_test_id("checkout-quantity").fill("3")
    expect(page.get_by_test_id("checkout-total")).to_have_text("¥7,500.00")  # HTMX refresh
    expect(page.get_by_test_id("checkout-policy")).to_be_visible()
    shot(page, "exchange-checkout")
    page.get_by_test_id("checkout-terms").check()
    page.get_by_test_id("checkout-submit").dblclick()  # a double click buys once

    expect(page).to_have_url(re.compile(r"/exchange/orders/[0-9a-f-]{36}$"))
    expect(page.get_by_test_id("order-status")).to_have_attribute("data-status", "contracted")
    expect(page.get_by_test_id("order-amount")).to_contain_text("¥7,500.00")
    expect(page.get_by_test_id("order-contract")).to_have_text(re.compile(r"^GX-DC-\d{4}-\d{6}$"))
    shot(page, "exchange-order")
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(ExchangeOrder)) == 1
    assert balances(db, buyer.party_id) == (2_000_000 - 750_000, 750_000)

    page.goto("/exchange/orders")
    rows = page.get_by_test_id("order-row")
    expect(rows).to_have_count(1)
    expect(rows.first.get_by_test_id("order-amount")).to_have_text("¥7,500.00")
