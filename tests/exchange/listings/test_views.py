"""The exchange pages over HTTP (both databases): the mall with search and filters, the listing
page, the seller's form and submission with the declaration, the review queues and forms."""

from __future__ import annotations

from factories import console_login

from datafactor.exchange import listings


def test_the_mall_finds_a_listing_by_chinese_words_and_opens_it(client, world, publish):
    listing_id = publish(title="园区用电指数", quantity=8, audience="public")
    publish(title="港口吞吐量月报", summary="北部湾港集装箱吞吐量", industry="transport")
    client.cookies.set("df_lang", "en")
    # Anyone may browse what is public.
    page = client.get("/exchange", params={"q": "用电"})
    assert page.status_code == 200
    assert page.text.count('data-testid="listing-card"') == 1
    assert f'data-id="{listing_id}"' in page.text
    assert "8 of 8 licences left" in page.text
    assert "¥1,200.00" in page.text
    # Verified parties see listings for verified parties too.
    console_login(client, world.buyer, "/exchange/sell", "en")
    page = client.get("/exchange")
    assert page.text.count('data-testid="listing-card"') == 2
    page = client.get("/exchange", params={"industry": "transport"})
    assert page.text.count('data-testid="listing-card"') == 1 and "港口吞吐量月报" in page.text
    detail = client.get(f"/exchange/listings/{listing_id}")
    assert detail.status_code == 200
    assert f'href="/verify/{world.product.certificate}"' in detail.text
    assert f'href="/exchange/listings/{listing_id}/checkout"' in detail.text
    assert 'data-testid="listing-policy"' in detail.text and "Permitted" in detail.text
    assert 'data-testid="listing-events"' not in detail.text  # the review is not the buyer's


def test_the_nav_has_the_exchange(client, world):
    console_login(client, world.buyer, "/exchange/sell", "en")
    assert 'data-testid="nav-exchange"' in client.get("/exchange").text


def test_a_seller_drafts_and_submits_through_the_forms(client, world):
    csrf = console_login(client, world.seller, "/exchange/sell", "en")
    form = client.get("/exchange/sell/new")
    assert form.status_code == 200 and world.product.certificate in form.text
    data = {
        "csrf_token": csrf,
        "asset_id": world.product.asset_id,
        "title": "园区用电指数",
        "summary": "月度",
        "price_model": "one_off",
        "price": "-3",
        "channels": ["api"],
        "term_days": "365",
        "audience": "verified",
        "placement": "mall",
    }
    refused = client.post("/exchange/sell/new", data=data)
    assert refused.status_code == 422 and 'aria-invalid="true"' in refused.text
    assert "EXC-LST-PRICE" in refused.text
    data["price"] = "1,200.50"
    data["revenue_sharing"] = f"{world.broker.party_id} circulation dividend 12.5%"
    r = client.post("/exchange/sell/new", data=data, follow_redirects=False)
    assert r.status_code == 303, r.text
    listing_id = r.headers["location"].rsplit("/", 1)[1]
    with world.db.read() as s:
        row = listings.get_listing(s, world.p(world.seller), listing_id)
        assert row.price_fen == 120_050 and row.revenue_sharing[0]["bp"] == 1250
    edit = client.get(f"/exchange/sell/{listing_id}/edit")
    assert "1,200.50" in edit.text and "12.5%" in edit.text
    submit = client.get(f"/exchange/sell/{listing_id}/submit")
    assert 'data-testid="declaration"' in submit.text and 'data-outcome="fail"' not in submit.text
    r = client.post(f"/exchange/sell/{listing_id}/submit", data={"csrf_token": csrf})
    assert r.status_code == 422  # not confirmed
    r = client.post(
        f"/exchange/sell/{listing_id}/submit",
        data={"csrf_token": csrf, "confirm": "yes"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    mine = client.get("/exchange/sell")
    assert 'data-state="submitted"' in mine.text


def test_the_assessor_and_the_operator_work_their_queues(client, world, create):
    from listing_support import drive

    listing_id = create(placement="zone", zone="energy")
    drive(world, listing_id, until="submitted")
    csrf = console_login(client, world.assessor, "/exchange/sell", "en")
    queue = client.get("/exchange/review")
    assert 'data-testid="queue-assess"' in queue.text and listing_id in queue.text
    data = {"csrf_token": csrf, "opinion": "同意挂牌", "confirm": "yes"}
    for item in listings.checklist():
        data[f"outcome_{item['id']}"] = "pass"
    data["outcome_title"] = "fail"
    refused = client.post(f"/exchange/review/{listing_id}/assess", data=data)
    assert refused.status_code == 422  # a failure needs its note
    data["outcome_title"] = "pass"
    r = client.post(f"/exchange/review/{listing_id}/assess", data=data, follow_redirects=False)
    assert r.status_code == 303
    # The seller is not a reviewer.
    console_login(client, world.seller, "/exchange/sell", "en")
    assert client.get("/exchange/review").status_code == 403
    csrf = console_login(client, world.operator, "/exchange/sell", "en")
    page = client.get(f"/exchange/review/{listing_id}")
    assert 'data-state="assessed"' in page.text and 'data-testid="decision-form"' in page.text
    r = client.post(
        f"/exchange/review/{listing_id}/decision",
        data={"csrf_token": csrf, "action": "approve", "zone_approved": "yes", "reason": ""},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = client.get(f"/exchange/review/{listing_id}")
    assert 'data-state="published"' in page.text
    r = client.post(
        f"/exchange/review/{listing_id}/decision",
        data={"csrf_token": csrf, "action": "suspend", "reason": ""},
    )
    assert r.status_code == 422
    zone = client.get("/exchange", params={"zone": "energy"})
    assert listing_id in zone.text
