"""The agreement trades' pages on both databases: open a negotiation from a listing with a
first offer in yuan, the thread with the forms each side may use now, a counter-offer, the
acceptance (confirmed) that generates the contract, refusals re-rendered in the person's
language, and another party's negotiation not found."""

from __future__ import annotations

from factories import console_login

from datafactor.exchange.models import ExchangeNegotiation


def test_a_negotiation_in_the_console(client, db, world):
    listing_id = world.listing(price_fen=10_000)
    buyer = world.buyer(1_000_000)

    csrf = console_login(client, buyer, "/exchange/negotiations")
    page = client.get(f"/exchange/negotiations/new?listing={listing_id}")
    assert page.status_code == 200 and 'data-testid="negotiation-form"' in page.text
    r = client.post(
        "/exchange/negotiations",
        data={"csrf_token": csrf, "listing_id": listing_id, "price": "0", "note": "x"},
        follow_redirects=False,
    )
    assert r.status_code == 422 and "EXC-NEG-TERMS" in r.text  # re-rendered with the reason
    r = client.post(
        "/exchange/negotiations",
        data={
            "csrf_token": csrf,
            "listing_id": listing_id,
            "price": "85.00",
            "quantity": "2",
            "channels": "download",
            "note": "首次报价",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    thread = client.get(url).text
    assert 'data-testid="offer"' in thread and "¥170.00" in thread
    assert 'data-testid="offer-form"' not in thread  # the seller's turn
    assert 'data-testid="withdraw-form"' in thread

    csrf = console_login(client, world.seller, "/exchange/negotiations")
    thread = client.get(url).text
    assert 'data-testid="accept-form"' in thread and 'data-testid="offer-form"' in thread
    r = client.post(
        f"{url}/offers",
        data={"csrf_token": csrf, "price": "95", "term_days": "120", "note": "卖方还价"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert "¥190.00" in client.get(url).text

    csrf = console_login(client, buyer, "/exchange/negotiations")
    r = client.post(f"{url}/accept", data={"csrf_token": csrf, "seq": "2"}, follow_redirects=False)
    assert r.status_code == 422  # the confirmation box was not ticked
    r = client.post(
        f"{url}/accept",
        data={"csrf_token": csrf, "seq": "2", "confirm": "yes"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    agreed = client.get(url).text
    assert 'data-status="agreed"' in agreed and 'data-testid="negotiation-contract"' in agreed
    with db.read() as s:
        row = s.query(ExchangeNegotiation).one()
        assert row.state == "agreed" and row.contract_id

    listed = client.get("/exchange/negotiations").text
    assert row.number in listed

    console_login(client, world.buyer(), "/exchange/negotiations")
    assert client.get(url).status_code == 404
