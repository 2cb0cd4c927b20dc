"""A title dispute is shown before anyone clicks (both databases): while the registry has the
listed right under an objection registration (异议登记), the listing's API answer carries
``dispute`` and its page, the auction page, the negotiation page and a contract awaiting its
signatures say so in the reader's language with the buy, negotiate, bid, accept, offer and sign
buttons disabled — the server still refusing each (EXC-LST-DISPUTE), naming the same
objection the notice names; once the registry lifts it, the notices are gone and the buttons
are back.
"""

from __future__ import annotations

import itertools
import re

import pytest
import registry_support
from auctions_support import TradeWorld, trade_world
from factories import bearer, console_login
from registry_support import principal

from datafactor import registry
from datafactor.db import Database, today_cn, utcnow
from datafactor.exchange import negotiation, orders
from datafactor.registry import services as registry_services
from datafactor.settings import Settings

EN = {"Accept-Language": "en"}
NOTICE_EN = "The title to this product is disputed"
_keys = itertools.count()


@pytest.fixture
def tw(db: Database, settings: Settings) -> TradeWorld:
    return trade_world(db, settings)


def object_to(tw: TradeWorld) -> str:
    """A rival's objection registration on the listed right, certified today: its id."""
    return registry_support.object_to(
        tw.db,
        tw.p(tw.operator),
        registry.issuer_for(tw.settings),
        asset_id=tw.product.asset_id,
        right_id=tw.product.right_id,
        on=today_cn(),
    )


def lift(tw: TradeWorld, app_id: str) -> None:
    with tw.db.write() as s:
        registry_services.close_objection_registration(
            s,
            principal(tw.db, tw.operator),
            app_id,
            substantiated=False,
            reason="法院驳回异议人的诉讼请求",
            today=today_cn(),
        )


def notice(html: str) -> str:
    """The text of the page's dispute notice ('' when there is none)."""
    found = re.search(r'<[^>]*data-testid="dispute-notice"[^>]*>(.*?)</(?:article|p)>', html, re.S)
    return re.sub(r"<[^>]+>", "", found.group(1)) if found else ""


def disabled(html: str, testid: str) -> bool:
    """Whether the element ``testid`` is rendered disabled."""
    tag = re.search(rf'<[^>]*data-testid="{testid}"[^>]*>', html)
    assert tag, f"no {testid} on the page"
    return re.search(r"\sdisabled[\s>]", tag.group(0)) is not None


def test_the_listing_says_so_in_its_api_answer_and_page_until_the_registry_lifts_it(client, tw):
    listing_id = tw.listing(price_fen=1_000, quantity=10, broker=False)
    buyer = tw.buyer(100_000)
    headers = bearer(client, buyer) | EN
    answer = client.get(f"/api/v1/listings/{listing_id}", headers=headers).json()
    assert answer["dispute"] is None and answer["status"] == "published"
    csrf = console_login(client, buyer, f"/exchange/listings/{listing_id}", lang="en")
    page = client.get(f"/exchange/listings/{listing_id}").text
    assert notice(page) == "" and 'data-testid="checkout-link"' in page

    app_id = object_to(tw)
    answer = client.get(f"/api/v1/listings/{listing_id}", headers=headers).json()
    dispute = answer["dispute"]
    assert dispute["open"] is True and dispute["rule"] == "EXC-LST-DISPUTE"
    assert dispute["disputes"] == [app_id]
    assert dispute["message"].startswith(NOTICE_EN) and app_id in dispute["message"]
    assert "paused until the registry decides" in dispute["message"]
    # The other fields stay as they were.
    assert answer["id"] == listing_id and answer["price_fen"] == 1_000
    assert answer["remaining_quantity"] == 10 and answer["status"] == "published"

    page = client.get(f"/exchange/listings/{listing_id}").text
    shown = notice(page)
    assert NOTICE_EN in shown and app_id in shown and tw.product.certificate in shown
    assert "EXC-LST-DISPUTE" in shown
    assert 'data-testid="checkout-link"' not in page and 'data-testid="negotiate-link"' not in page
    assert disabled(page, "checkout-disabled") and disabled(page, "negotiate-disabled")
    # In Chinese (the default) the notice is there too, in the reader's language.
    client.cookies.set("df_lang", "zh_CN")
    assert notice(client.get(f"/exchange/listings/{listing_id}").text)
    client.cookies.set("df_lang", "en")

    # The server still refuses, naming the objection the notice names.
    refused = client.post(
        f"/exchange/listings/{listing_id}/checkout",
        data={"csrf_token": csrf, "quantity": "1", "terms_read": "yes", "idempotency_key": "k1"},
        headers=EN,
    )
    assert refused.status_code == 409 and "EXC-LST-DISPUTE" in refused.text
    assert app_id in refused.text
    r = client.post(
        "/api/v1/orders",
        headers=headers | {"Idempotency-Key": "dispute-1"},
        json={"listing_id": listing_id, "quantity": 1},
    )
    assert r.status_code == 409 and "(rule EXC-LST-DISPUTE)" in r.json()["detail"], r.text
    assert app_id in r.json()["detail"]

    lift(tw, app_id)
    assert client.get(f"/api/v1/listings/{listing_id}", headers=headers).json()["dispute"] is None
    page = client.get(f"/exchange/listings/{listing_id}").text
    assert notice(page) == "" and 'data-testid="checkout-link"' in page
    assert 'data-testid="checkout-disabled"' not in page


def test_the_seller_sees_the_notice_on_its_own_listing(client, tw):
    listing_id = tw.listing(price_fen=1_000, broker=False)
    app_id = object_to(tw)
    console_login(client, tw.seller, f"/exchange/listings/{listing_id}", lang="en")
    page = client.get(f"/exchange/listings/{listing_id}").text
    assert app_id in notice(page)
    headers = bearer(client, tw.seller) | EN
    assert client.get(f"/api/v1/listings/{listing_id}", headers=headers).json()["dispute"][
        "disputes"
    ] == [app_id]


def test_the_auction_and_negotiation_pages_disable_their_forms_while_disputed(client, tw, db):
    listing_id = tw.listing(price_fen=10_000)
    buyer, bidder = tw.buyer(1_000_000), tw.buyer(1_000_000)
    now = utcnow()
    with db.write() as s:
        n = negotiation.open_negotiation(
            s, tw.p(buyer), listing_id, negotiation.Terms(price_fen=8_000), now=now
        )
        negotiation_id = n.id
    with db.write() as s:
        negotiation.make_offer(
            s, tw.p(tw.seller), negotiation_id, negotiation.Terms(price_fen=9_000), now=now
        )
    auction_id = tw.auction(listing_id, start_fen=10_000, now=now, hours=2)
    auction_page, negotiation_page = (
        f"/exchange/auctions/{auction_id}",
        f"/exchange/negotiations/{negotiation_id}",
    )

    console_login(client, bidder, auction_page, lang="en")
    page = client.get(auction_page).text
    assert notice(page) == "" and not disabled(page, "bid-submit")
    console_login(client, buyer, negotiation_page, lang="en")
    page = client.get(negotiation_page).text
    assert notice(page) == ""
    assert not disabled(page, "accept-submit") and not disabled(page, "offer-submit")

    app_id = object_to(tw)
    page = client.get(negotiation_page).text
    assert NOTICE_EN in notice(page) and app_id in notice(page)
    assert disabled(page, "accept-submit") and disabled(page, "offer-submit")
    assert not disabled(page, "withdraw-submit")  # leaving the negotiation is never paused
    page = client.get(f"/exchange/negotiations/new?listing={listing_id}").text
    assert app_id in notice(page) and disabled(page, "negotiation-submit")
    csrf = console_login(client, bidder, auction_page, lang="en")
    page = client.get(auction_page).text
    shown = notice(page)
    assert NOTICE_EN in shown and app_id in shown and "ends without a winner" in shown
    assert disabled(page, "bid-submit")
    # The server still refuses the bid.
    refused = client.post(
        f"{auction_page}/bids",
        data={"csrf_token": csrf, "amount": "100.00", "idempotency_key": "b1"},
    )
    assert refused.status_code == 409 and "EXC-LST-DISPUTE" in refused.text

    lift(tw, app_id)
    page = client.get(auction_page).text
    assert notice(page) == "" and not disabled(page, "bid-submit")
    console_login(client, buyer, negotiation_page, lang="en")
    page = client.get(negotiation_page).text
    assert notice(page) == "" and not disabled(page, "accept-submit")


def test_a_contract_awaiting_signatures_says_why_it_cannot_be_signed(client, tw, db):
    listing_id = tw.listing(price_fen=1_000, quantity=10, broker=False)
    buyer = tw.buyer(100_000)
    who = tw.p(buyer)
    orders.open_buyer_accounts(db, who)
    with db.write() as s:
        placed = orders.place_order(s, who, listing_id, 1, key=f"n-{next(_keys)}", now=utcnow())
        contract_id = placed.order.contract_id
    contract_page = f"/exchange/contracts/{contract_id}"
    console_login(client, buyer, contract_page, lang="en")
    page = client.get(contract_page).text
    assert notice(page) == "" and not disabled(page, "contract-sign-submit")

    app_id = object_to(tw)
    csrf = console_login(client, buyer, contract_page, lang="en")
    page = client.get(contract_page).text
    shown = notice(page)
    assert "cannot be signed now" in shown and app_id in shown
    assert "the contract ends and the payment is released" in shown
    assert disabled(page, "contract-sign-submit")
    refused = client.post(f"{contract_page}/sign", data={"csrf_token": csrf, "confirm": "yes"})
    assert refused.status_code == 409 and "EXC-LST-DISPUTE" in refused.text

    lift(tw, app_id)
    page = client.get(contract_page).text
    assert notice(page) == "" and not disabled(page, "contract-sign-submit")
