"""Defects found in review, each pinned: a negotiated policy cannot widen the listing's by a
permission the listing never gave (selling the data on, re-identifying it), by dropping a
constraint the listing set (a use count), or by loosening a prohibition; digits ``int`` refuses
("²", thousands of digits) are refused as bad input, never a server error; licences come back
once when the agreed contract ends, whichever way it ends."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from auctions_support import NOW, balances
from factories import bearer

from datafactor.errors import DomainError
from datafactor.exchange import contracts, jobs
from datafactor.exchange.keys import PartyKeys
from datafactor.exchange.models import ExchangeContract, ExchangeListing

FUNDS = 1_000_000


def refused(call, status: int, rule: str) -> DomainError:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as caught:
        call()
    assert caught.value.status == status, caught.value
    assert caught.value.params.get("rule") == rule, caught.value
    return caught.value


def listing_policy(db, listing_id):  # type: ignore[no-untyped-def]
    with db.read() as s:
        return copy.deepcopy(s.get(ExchangeListing, listing_id).contract_policy)


def test_a_negotiated_policy_gives_no_permission_the_listing_did_not(db, world, opened):
    listing_id = world.listing(price_fen=10_000)
    buyer_p = world.p(world.buyer())
    base = listing_policy(db, listing_id)
    for action in ("sell", "transfer", "df:reidentify"):
        wider = copy.deepcopy(base)
        extra = copy.deepcopy(wider["permission"][0])
        extra["action"] = action
        wider["permission"].append(extra)
        refused(lambda w=wider: opened(buyer_p, listing_id, policy=w), 422, "EXC-NEG-POLICY")
    # A narrower action under the listing's "use", with the same constraints, is fine.
    narrower = copy.deepcopy(base)
    narrower["permission"][0]["action"] = "read"
    assert opened(buyer_p, listing_id, policy=narrower).state == "open"


def test_a_negotiated_policy_keeps_the_listings_other_constraints(db, world, opened):
    listing_id = world.listing(price_fen=10_000)
    capped = listing_policy(db, listing_id)
    capped["permission"][0]["constraint"].append(
        {"leftOperand": "count", "operator": "lteq", "rightOperand": 100}
    )
    with db.write() as s:
        s.get(ExchangeListing, listing_id).contract_policy = capped
    buyer_p = world.p(world.buyer())

    uncapped = copy.deepcopy(capped)
    uncapped["permission"][0]["constraint"].pop()
    refused(lambda: opened(buyer_p, listing_id, policy=uncapped), 422, "EXC-NEG-POLICY")
    # Narrowing the purposes while keeping the cap is fine; so is a tighter cap added.
    research = copy.deepcopy(capped)
    research["permission"][0]["constraint"][0]["rightOperand"] = ["research"]
    research["permission"][0]["constraint"].append(
        {"leftOperand": "count", "operator": "lteq", "rightOperand": 10}
    )
    assert opened(buyer_p, listing_id, policy=research).state == "open"


def test_a_negotiated_policy_cannot_loosen_a_prohibition(db, world, opened):
    listing_id = world.listing(price_fen=10_000)
    buyer_p = world.p(world.buyer())
    loose = listing_policy(db, listing_id)
    # "distribute is prohibited" becomes "distribute is prohibited only in Vietnam".
    loose["prohibition"][0]["constraint"] = [
        {"leftOperand": "spatial", "operator": "eq", "rightOperand": "VN"}
    ]
    refused(lambda: opened(buyer_p, listing_id, policy=loose), 422, "EXC-NEG-POLICY")


def test_digits_int_refuses_are_bad_input(client, db, world):
    listing_id = world.listing(price_fen=10_000)
    as_buyer = bearer(client, world.buyer(FUNDS))
    for body in (
        {"price_fen": "²"},
        {"quantity": "²"},
        {"term_days": "٣²"},
        {"price_fen": "9" * 5000},
        {"quantity": "1" * 5000},
    ):
        r = client.post(
            "/api/v1/negotiations", headers=as_buyer, json={"listing_id": listing_id, **body}
        )
        assert r.status_code == 422, (body, r.status_code, r.text[:200])
        assert r.headers["content-type"].startswith("application/problem+json")


def test_licences_come_back_once_whichever_way_the_contract_ends(
    db, settings, world, opened, accept
):
    listing_id = world.listing(price_fen=10_000, quantity=6)
    keys = PartyKeys(settings.var_dir)

    def agreed(quantity: int) -> tuple[str, object]:
        buyer = world.buyer(FUNDS)
        n = opened(world.p(buyer), listing_id, quantity=quantity)
        return accept(world.p(world.seller), n.id).contract.id, buyer

    expired, _ = agreed(1)
    by_exchange, _ = agreed(2)
    disputed, buyer = agreed(3)
    assert world.remaining(listing_id) == 0

    later = NOW + timedelta(hours=1)
    with db.write() as s:  # the exchange ends one by force
        contracts.terminate_contract(
            s, world.p(world.operator), by_exchange, reason="违规交易", now=later
        )
    assert world.remaining(listing_id) == 2
    for who in (buyer, world.seller, world.broker):  # one is signed, delivered, disputed
        with db.write() as s:
            contracts.sign_contract(s, world.p(who), disputed, keys=keys, confirm=True, now=later)
    with db.write() as s:
        row = s.get(ExchangeContract, disputed, with_for_update=True)
        contracts.mark_delivered(s, row, actor=None, now=later)
    with db.write() as s:
        contracts.dispute_contract(s, world.p(buyer), disputed, grounds="数据缺失", now=later)
        contracts.resolve_dispute(
            s, world.p(world.operator), disputed, outcome="buyer", reason="属实", now=later
        )
    assert world.remaining(listing_id) == 5
    assert balances(db, buyer.party_id) == (FUNDS, 0)
    # The clock expires the unsigned one; running it again changes nothing.
    for _ in range(2):
        jobs.run_deadlines(db, NOW + timedelta(days=30))
    assert world.remaining(listing_id) == 6
    # A move on an ended contract is refused; nothing comes back again.
    with db.write() as s, pytest.raises(DomainError):
        contracts.terminate_contract(s, world.p(world.operator), expired, reason="再次", now=later)
    assert world.remaining(listing_id) == 6


def test_the_systems_reasons_are_shown_in_the_readers_language(monkeypatch):
    from datafactor.exchange import auctions, negotiation, views_auctions

    asked: list[tuple[str, dict]] = []

    def translate(message: str, **params: str) -> str:
        asked.append((message, params))
        return "译:" + message.format(**params)

    monkeypatch.setattr(views_auctions, "gettext", translate)
    stored = negotiation.WHY_CONTRACT_ENDED.format(contract="GX-DC-2026-000007", licences=3)
    shown = views_auctions._reason(stored, negotiation.SYSTEM_REASONS)
    assert shown == "译:" + stored
    assert asked == [
        (negotiation.WHY_CONTRACT_ENDED, {"contract": "GX-DC-2026-000007", "licences": "3"})
    ]
    assert views_auctions._reason(auctions.WHY_NO_BID, auctions.SYSTEM_REASONS).startswith("译:")
    # A person's own words are shown as typed.
    assert views_auctions._reason("价格谈不拢", negotiation.SYSTEM_REASONS) == "价格谈不拢"


def test_a_nul_in_an_id_or_a_text_is_bad_input_not_a_server_error(client, db, world):
    listing_id = world.listing(price_fen=10_000)
    as_buyer = bearer(client, world.buyer(FUNDS))
    assert client.get("/api/v1/negotiations/%00", headers=as_buyer).status_code == 404
    r = client.post(
        "/api/v1/negotiations",
        headers=as_buyer,
        json={"listing_id": listing_id, "broker_id": "\x00"},
    )
    assert r.status_code == 422, r.text
    r = client.post(
        "/api/v1/negotiations",
        headers=as_buyer,
        json={"listing_id": listing_id, "note": "急\x00需"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["latest"]["note"] == "急需"
    r = client.post(
        f"/api/v1/negotiations/{r.json()['id']}/withdraw",
        headers=as_buyer,
        json={"reason": "预算\x00不足"},
    )
    assert r.status_code == 200 and r.json()["reason"] == "预算不足"
