"""The live auction page in a real browser: a bidder opens a running auction, sees the rival's
bid as “bidder 1”, places a bid through the form and sees it lead; a rival's new bid then
appears on the open page by itself (the live fragment is polled every 2 s). The console speaks
Chinese; the checks read figures, test ids and data attributes, which do not depend on the
catalogue."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from auctions_support import trade_world
from playwright.sync_api import Page, expect

from datafactor.db import Database
from datafactor.exchange import auctions


def place(db: Database, principal, auction_id: str, amount: int, key: str) -> None:  # type: ignore[no-untyped-def]
    auctions.open_accounts(db, [principal.party_id])
    with db.write() as s:
        auctions.place_bid(s, principal, auction_id, amount, key=key, now=datetime.now(UTC))


def test_a_bid_on_the_live_auction_page_appears_and_so_do_others(  # type: ignore[no-untyped-def]
    page: Page, login, db: Database, settings, shot
) -> None:
    world = trade_world(db, settings)
    auction_id = world.auction(
        world.listing(price_fen=10_000, title="北部湾港口吞吐量月度数据"),
        start_fen=10_000,
        increment_fen=500,
        deposit_fen=1_000,
        now=datetime.now(UTC),
    )
    rival = world.buyer()
    place(db, world.p(rival), auction_id, 10_000, "rival-1")
    bidder = world.buyer(username="bid.admin", name="广西物流数据采购有限公司")

    login(bidder.username, bidder.password)
    page.goto(f"/exchange/auctions/{auction_id}")
    live = page.get_by_test_id("auction-live")
    expect(page.get_by_test_id("auction-price")).to_have_text("¥100.00")
    expect(page.get_by_test_id("auction-leader")).to_have_attribute("data-bidder-no", "1")
    expect(page.get_by_test_id("auction-minimum")).to_have_text("¥105.00")
    expect(page.get_by_test_id("auction-clock")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))

    page.get_by_test_id("bid-amount").fill("105")
    page.get_by_test_id("bid-submit").click()
    expect(page.get_by_test_id("bid-placed")).to_be_visible()
    expect(page.get_by_test_id("auction-price")).to_have_text("¥105.00")
    leader = page.get_by_test_id("auction-leader")
    expect(leader).to_have_attribute("data-mine", "yes")
    rows = page.get_by_test_id("auction-bid")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-amount", "10500")
    expect(rows.first).to_have_attribute("data-mine", "yes")
    shot(page, "auction-bid-placed")

    # The rival outbids on its own; the open page shows it without a reload.
    place(db, world.p(rival), auction_id, 11_000, "rival-2")
    expect(page.get_by_test_id("auction-price")).to_have_text("¥110.00")
    expect(leader).to_have_attribute("data-mine", "no")
    expect(live).to_have_attribute("data-bids", "3")
    expect(page.get_by_test_id("auction-minimum")).to_have_text("¥115.00")
    shot(page, "auction-outbid-live")
