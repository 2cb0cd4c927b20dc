"""The mall in a real browser: a buyer searches for 用电 among the published listings, finds the
park power index (not the port data), opens it and reads its price, the licences left, the terms
of use in plain language and the certificate's link to the public verification page."""

from __future__ import annotations

import re

from factories import PASSWORD
from listing_support import draft, drive, make_world
from playwright.sync_api import Page, expect

from datafactor import registry
from datafactor.db import Database, today_cn, utcnow
from datafactor.exchange import listings
from datafactor.settings import Settings


def login(page: Page, username: str) -> None:
    page.goto("/login")
    form = page.get_by_test_id("login-form")
    form.locator("[name=username]").fill(username)
    form.locator("[name=password]").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()


def test_search_the_mall_and_open_a_listing(
    page: Page, db: Database, settings: Settings, shot
) -> None:  # type: ignore[no-untyped-def]
    world = make_world(db, settings, registry.issuer_for(settings))
    ids = []
    for values in (
        {"title": "园区用电指数", "quantity": 6, "price_fen": 350_000},
        {"title": "北部湾港吞吐量月报", "summary": "集装箱吞吐量", "industry": "transport"},
    ):
        with db.write() as s:
            row = listings.create_listing(
                s,
                world.p(world.seller),
                draft(world.product, **values),
                on=today_cn(),
                now=utcnow(),
            )
            ids.append(row.id)
        drive(world, ids[-1])
    login(page, world.buyer.username)

    page.get_by_test_id("nav-exchange").click()
    expect(page.get_by_test_id("listing-card")).to_have_count(2)
    page.get_by_test_id("mall-q").fill("用电")
    page.get_by_test_id("mall-submit").click()
    expect(page).to_have_url(re.compile(r"/exchange\?q="))
    cards = page.get_by_test_id("listing-card")
    expect(cards).to_have_count(1)
    expect(cards.first).to_have_attribute("data-id", ids[0])
    expect(cards.first.get_by_test_id("card-price")).to_contain_text("¥3,500.00")
    expect(cards.first.get_by_test_id("card-remaining")).to_contain_text("6")
    shot(page, "exchange-mall")

    cards.first.get_by_test_id("listing-link").click()
    expect(page).to_have_url(re.compile(rf"/exchange/listings/{ids[0]}$"))
    expect(page.get_by_test_id("listing-title")).to_have_text("园区用电指数")
    expect(page.get_by_test_id("listing-state")).to_have_attribute("data-state", "published")
    expect(page.get_by_test_id("listing-price")).to_contain_text("¥3,500.00")
    expect(page.get_by_test_id("listing-policy").locator("li").first).to_contain_text("允许")
    certificate = page.get_by_test_id("listing-certificate")
    expect(certificate).to_have_attribute("href", f"/verify/{world.product.certificate}")
    expect(page.get_by_test_id("checkout-link")).to_be_visible()
    shot(page, "exchange-listing")
