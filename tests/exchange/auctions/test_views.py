"""The auctions' pages on both databases: the seller starts an auction in yuan, the live page
with its polled fragment (bidders anonymous: “竞买人 N”), a bid from the form (a resubmitted form
bids once; a bid below the increment re-rendered with the rule), the fragment reloading the page
once the auction has ended, and another party's auction of a private listing not found."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from factories import console_login, csrf_of

from datafactor.db import CHINA
from datafactor.exchange.models import ExchangeAuction, ExchangeBid


def test_the_live_auction_page(client, db, world, bid):
    listing_id = world.listing(price_fen=10_000, quantity=2)
    csrf = console_login(client, world.seller, "/exchange/auctions")
    form = client.get(f"/exchange/auctions/new?listing={listing_id}")
    assert form.status_code == 200 and 'data-testid="auction-form"' in form.text
    ends = (datetime.now(CHINA) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")  # China time
    r = client.post(
        "/exchange/auctions",
        data={
            "csrf_token": csrf,
            "listing_id": listing_id,
            "start": "100",
            "increment": "5",
            "deposit": "20",
            "ends_at": ends,
            "quantity": "1",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    with db.read() as s:
        auction = s.query(ExchangeAuction).one()
        assert (auction.start_fen, auction.increment_fen, auction.deposit_fen) == (
            10_000,
            500,
            2_000,
        )

    rival = world.buyer()
    bid(world.p(rival), auction.id, 10_000, now=datetime.now(UTC))
    bidder = world.buyer()
    csrf = console_login(client, bidder, "/exchange/auctions")
    page = client.get(url).text
    assert 'data-testid="bid-form"' in page and 'hx-trigger="every 2s"' in page
    assert 'data-bidder-no="1" data-mine="no"' in page  # the rival, anonymous
    assert 'data-testid="auction-minimum">¥105.00' in page
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page).group(1)

    low = client.post(
        f"{url}/bids",
        data={"csrf_token": csrf, "idempotency_key": key, "amount": "101"},
        follow_redirects=False,
    )
    assert low.status_code == 422 and "EXC-AUC-INCREMENT" in low.text
    for _ in range(2):  # the same form sent twice bids once
        r = client.post(
            f"{url}/bids",
            data={"csrf_token": csrf, "idempotency_key": key, "amount": "105"},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
    with db.read() as s:
        assert s.query(ExchangeBid).filter_by(bidder_id=bidder.party_id).count() == 1
    live = client.get(f"{url}/live", headers={"HX-Request": "true"})
    assert live.status_code == 200 and "HX-Refresh" not in live.headers
    assert 'data-testid="auction-price">¥105.00' in live.text
    assert 'data-testid="auction-leader" data-bidder-no="2" data-mine="yes"' in live.text

    # Ended and closed: the fragment asks the page to reload, and stops polling.
    with db.write() as s:
        row = s.get(ExchangeAuction, auction.id)
        row.ends_at = datetime.now(UTC) - timedelta(seconds=1)
    console_login(client, world.operator, "/exchange/auctions")
    assert 'data-testid="close-form"' in client.get(url).text
    csrf = csrf_of(client.get(url).text)
    r = client.post(f"{url}/close", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303, r.text
    live = client.get(f"{url}/live", headers={"HX-Request": "true"})
    assert live.headers.get("HX-Refresh") == "true" and "hx-trigger" not in live.text
    page = client.get(url).text
    assert 'data-testid="auction-contract"' in page and 'data-testid="bid-form"' not in page

    listed = client.get("/exchange/auctions").text
    assert auction.number in listed


def test_a_private_listing_s_auction_is_not_found_by_others(client, db, world, create):
    invited = world.buyer()
    listing_id = world.listing(
        price_fen=10_000, access={"audience": "parties", "parties": [invited.party_id]}
    )
    a = create(
        world.p(world.seller),
        listing_id,
        now=datetime.now(UTC),
        ends_at=datetime.now(UTC) + timedelta(hours=1),
    )
    console_login(client, world.buyer(), "/exchange/auctions")
    assert client.get(f"/exchange/auctions/{a.id}").status_code == 404
    assert client.get(f"/exchange/auctions/{a.id}/live").status_code == 404
    console_login(client, invited, "/exchange/auctions")
    assert client.get(f"/exchange/auctions/{a.id}").status_code == 200
