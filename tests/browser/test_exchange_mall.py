"""The mall in a real browser: a buyer searches for 用电 among the published listings, finds the
park power index (not the port data), opens it and reads its price, the licences left, the terms
of use in plain language and the certificate's link to the public verification page; once a rival
puts the listed right under an objection registration (异议登记), a reload shows the dispute notice
and a disabled buy button in place of the buy link."""

from __future__ import annotations

import re

import registry_support
from listing_support import World, draft, drive, make_world
from playwright.sync_api import Page, expect

from datafactor import registry
from datafactor.db import Database, today_cn, utcnow
from datafactor.exchange import listings
from datafactor.settings import Settings


def object_to(world: World) -> str:
    """A rival's objection registration on the product's right, certified today: its id."""
    return registry_support.object_to(
        world.db,
        world.p(world.operator),
        registry.issuer_for(world.settings),
        asset_id=world.product.asset_id,
        right_id=world.product.right_id,
        on=today_cn(),
    )


def test_search_the_mall_and_open_a_listing(
    page: Page, login, db: Database, settings: Settings, shot
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
    login(world.buyer.username)

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

    # The registry now has the listed right under an objection: the reloaded page says so (in
    # Chinese, naming the objection) and shows the buy button disabled instead of the buy link.
    expect(page.get_by_test_id("dispute-notice")).to_have_count(0)
    app_id = object_to(world)
    page.reload()
    notice = page.get_by_test_id("dispute-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("权属争议")  # "Title in dispute", in the reader's Chinese
    expect(notice).to_contain_text(app_id)
    expect(notice).to_contain_text(world.product.certificate)
    buy = page.get_by_test_id("checkout-disabled")
    expect(buy).to_be_visible()
    expect(buy).to_be_disabled()
    expect(buy).to_have_attribute("aria-describedby", "dispute-notice")
    expect(page.get_by_test_id("checkout-link")).to_have_count(0)
    expect(page.get_by_test_id("negotiate-disabled")).to_be_disabled()
    shot(page, "exchange-listing-disputed")
