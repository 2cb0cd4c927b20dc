"""An acceptance names the offer it accepts (EXC-NEG-ACCEPT), on both databases: without the
offer's number nothing is accepted — through the service, the API (400 problem+json), the page
(the form carries the number it displayed; without it the page says what is missing) and the
command line — and a counter-offer that arrived after the page was read is never accepted
unseen (EXC-NEG-TURN)."""

from __future__ import annotations

import re

import pytest
from auctions_support import NOW, balances
from factories import bearer, console_login

from datafactor.errors import DomainError
from datafactor.exchange import negotiation
from datafactor.exchange.models import ExchangeNegotiation

FUNDS = 1_000_000


def state(db, negotiation_id: str) -> tuple[str, str | None]:
    with db.read() as s:
        row = s.get(ExchangeNegotiation, negotiation_id)
        assert row is not None
        return row.state, row.contract_id


def test_an_acceptance_without_the_offers_number_accepts_nothing(db, world, opened, offer, accept):
    listing_id = world.listing(price_fen=10_000, quantity=5)
    buyer = world.buyer(FUNDS)
    n = opened(world.p(buyer), listing_id, price_fen=8_000)
    offer(world.p(world.seller), n.id, price_fen=9_500)
    for seq in (None, 0, -1, True):
        with pytest.raises(negotiation.OfferNotNamed) as caught:
            accept(world.p(buyer), n.id, seq=seq)
        assert caught.value.status == 400 and caught.value.rule == "EXC-NEG-ACCEPT"
        assert caught.value.field == "seq" and "number" in str(caught.value)
    assert state(db, n.id) == ("open", None)
    assert balances(db, buyer.party_id) == (FUNDS, 0)  # nothing frozen
    # Named, it is accepted.
    done = accept(world.p(buyer), n.id, seq=2)
    assert done.negotiation.state == "agreed" and done.contract.amount_fen == 9_500


def test_a_counter_offer_that_arrived_after_reading_is_not_accepted(
    db, world, opened, offer, accept
):
    listing_id = world.listing(price_fen=10_000)
    buyer = world.buyer(FUNDS)
    seller_p = world.p(world.seller)
    n = opened(world.p(buyer), listing_id, price_fen=8_000)
    offer(seller_p, n.id, price_fen=9_000)  # a buyer's user reads offer no. 2 ...
    # ... while a colleague answers it and the seller's broker counters at a higher price
    offer(world.p(buyer), n.id, price_fen=8_500)
    offer(world.p(world.broker), n.id, price_fen=9_900)
    with pytest.raises(DomainError) as caught:
        accept(world.p(buyer), n.id, seq=2)
    assert caught.value.status == 409 and caught.value.params["rule"] == "EXC-NEG-TURN"
    assert "no. 4" in str(caught.value)
    assert state(db, n.id) == ("open", None)
    assert balances(db, buyer.party_id) == (FUNDS, 0)


def test_the_api_refuses_an_acceptance_without_seq_with_a_400_problem(client, db, world):
    listing_id = world.listing(price_fen=10_000)
    buyer = world.buyer(FUNDS)
    as_buyer, as_seller = bearer(client, buyer), bearer(client, world.seller)
    r = client.post("/api/v1/negotiations", headers=as_buyer, json={"listing_id": listing_id})
    negotiation_id = r.json()["id"]
    r = client.post(
        f"/api/v1/negotiations/{negotiation_id}/offers",
        headers=as_seller,
        json={"price_fen": 9_000},
    )
    assert r.status_code == 201, r.text
    url = f"/api/v1/negotiations/{negotiation_id}/accept"
    for kwargs in ({}, {"json": {}}, {"json": {"seq": None}}, {"json": {"seq": 0}}):
        r = client.post(url, headers=as_buyer, **kwargs)
        assert r.status_code == 400, (kwargs, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert "EXC-NEG-ACCEPT" in problem["detail"] and "seq" in problem["detail"]
        assert problem["type"].endswith("/exchange-offer-not-named")
    assert state(db, negotiation_id) == ("open", None)
    r = client.post(url, headers=as_buyer, json={"seq": 1})  # the buyer's own opening offer
    assert r.status_code == 409 and "EXC-NEG-TURN" in r.json()["detail"]
    r = client.post(url, headers=as_buyer, json={"seq": 2})
    assert r.status_code == 200 and r.json()["status"] == "agreed", r.text


def test_the_accept_form_carries_the_offer_it_displayed(client, db, world, opened, offer):
    listing_id = world.listing(price_fen=10_000)
    buyer = world.buyer(FUNDS)
    n = opened(world.p(buyer), listing_id, price_fen=8_000)
    offer(world.p(world.seller), n.id, price_fen=9_000)
    url = f"/exchange/negotiations/{n.id}"
    csrf = console_login(client, buyer, "/exchange/negotiations", "en")
    page = client.get(url).text
    form = page[page.index('data-testid="accept-form"') :]
    form = form[: form.index("</form>")]
    assert re.search(r'name="seq" value="2"', form), form
    # A form without the number (or with garbage) accepts nothing and says why.
    for seq in ("", "abc", "0"):
        r = client.post(
            f"{url}/accept",
            data={"csrf_token": csrf, "seq": seq, "confirm": "yes"},
            follow_redirects=False,
        )
        assert r.status_code == 400, (seq, r.text[:300])
        assert "EXC-NEG-ACCEPT" in r.text
    # Counter-offers arrive while the page is open: the displayed number is refused.
    offer(world.p(buyer), n.id, price_fen=8_500, now=NOW)
    offer(world.p(world.broker), n.id, price_fen=9_900, now=NOW)
    r = client.post(
        f"{url}/accept",
        data={"csrf_token": csrf, "seq": "2", "confirm": "yes"},
        follow_redirects=False,
    )
    assert r.status_code == 409 and "EXC-NEG-TURN" in r.text
    assert state(db, n.id) == ("open", None)
    assert balances(db, buyer.party_id) == (FUNDS, 0)


def test_the_command_line_accepts_only_a_named_offer(run, db, world, opened, offer):
    listing_id = world.listing(price_fen=10_000)
    buyer = world.buyer(FUNDS)
    n = opened(world.p(buyer), listing_id, price_fen=8_000)
    offer(world.p(world.seller), n.id, price_fen=9_000)
    result = run("exchange", "negotiations", "accept", n.id, "--as", buyer.username)
    assert result.exit_code != 0
    assert "EXC-NEG-ACCEPT" in result.output
    assert state(db, n.id) == ("open", None)
    result = run(
        "exchange", "negotiations", "accept", n.number, "--as", buyer.username, "--seq", "2"
    )
    assert result.exit_code == 0, result.output
    assert state(db, n.id)[0] == "agreed"
