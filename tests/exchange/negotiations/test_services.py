"""Agreement trades (协议交易) on both databases: offers and counter-offers through a broker to
a contract the broker co-signs, with the agreed amount frozen in escrow; the refusals, each
naming its rule; the deadline and its expiry by the clock; cross-border flags."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from auctions_support import NOW, balances, fund
from factories import make_actor

from datafactor import settlement
from datafactor.db import Database
from datafactor.errors import DomainError
from datafactor.exchange import contracts, negotiation
from datafactor.exchange.models import (
    ExchangeContract,
    ExchangeListing,
    ExchangeNegotiation,
)
from datafactor.identity import PartyKind, ServiceRole

FUNDS = 1_000_000


def load(db: Database, negotiation_id: str) -> ExchangeNegotiation:
    with db.read() as s:
        row = s.get(ExchangeNegotiation, negotiation_id)
        assert row is not None
        return row


def offers(db: Database, negotiation_id: str) -> list[dict]:
    with db.read() as s:
        row = s.get(ExchangeNegotiation, negotiation_id)
        return [negotiation.offer_dict(row, o) for o in negotiation.offers_of(s, negotiation_id)]


def refused(call, status: int, rule: str) -> DomainError:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as caught:
        call()
    assert caught.value.status == status, caught.value
    assert caught.value.params.get("rule") == rule, caught.value
    return caught.value


def test_offers_and_counter_offers_end_in_a_contract_the_broker_co_signs(
    db, world, opened, offer, accept
):
    listing_id = world.listing(price_fen=10_000, quantity=5)
    buyer = world.buyer(FUNDS)
    buyer_p, seller_p = world.p(buyer), world.p(world.seller)

    n = opened(buyer_p, listing_id, price_fen=8_000, quantity=2, note="首次报价")
    assert n.number == "GX-DN-2026-000001"
    assert (n.state, n.broker_id, n.broker_side) == ("open", world.broker.party_id, "seller")
    assert n.deadline_at == NOW + timedelta(days=7)
    offer(seller_p, n.id, price_fen=9_500, term_days=180, note="还价", now=NOW + timedelta(hours=1))
    thread = offers(db, n.id)
    assert [(o["seq"], o["side"], o["price_fen"], o["quantity"]) for o in thread] == [
        (1, "buyer", 8_000, 2),
        (2, "seller", 9_500, 2),
    ]
    assert thread[1]["term_days"] == 180 and thread[1]["channels"] == ["download", "api"]
    assert load(db, n.id).deadline_at == NOW + timedelta(days=7, hours=1)

    done = accept(buyer_p, n.id, seq=2, now=NOW + timedelta(hours=2))
    assert not done.replayed
    contract = done.contract
    assert (contract.kind, contract.state, contract.broker_id) == (
        "agreement",
        "accepted",
        world.broker.party_id,
    )
    assert contracts.required_roles(contract) == ("seller", "buyer", "broker")
    assert (contract.quantity, contract.price_fen, contract.amount_fen) == (2, 9_500, 19_000)
    assert contract.negotiation_id == n.id and contract.cross_border is False
    assert (contract.term_end - contract.term_start).days == 179
    assert contract.policy["@type"] == "Agreement"
    assert contract.policy["assignee"] == buyer.party_id
    agreed = load(db, n.id)
    assert (agreed.state, agreed.contract_id) == ("agreed", contract.id)
    # The agreed amount is the contract's escrow hold; the licences are taken.
    assert balances(db, buyer.party_id) == (FUNDS - 19_000, 19_000)
    with db.read() as s:
        assert settlement.hold_of(s, contract.hold_id)["remaining_fen"] == 19_000
    assert world.remaining(listing_id) == 3

    # Accepting again answers the same contract; nothing is frozen twice.
    again = accept(buyer_p, n.id, seq=2, now=NOW + timedelta(hours=3))
    assert again.replayed and again.contract.id == contract.id
    assert balances(db, buyer.party_id) == (FUNDS - 19_000, 19_000)


def test_the_broker_offers_for_the_seller_it_represents_but_never_accepts(
    db, world, opened, offer, accept
):
    listing_id = world.listing(price_fen=10_000)
    buyer = world.buyer(FUNDS)
    broker_p, buyer_p = world.p(world.broker), world.p(buyer)
    n = opened(buyer_p, listing_id, price_fen=7_000)
    # The broker relays the seller's counter-offer; it may not speak twice for one side.
    offer(broker_p, n.id, price_fen=9_000, note="经纪人代卖方还价")
    thread = offers(db, n.id)
    assert thread[1]["side"] == "seller" and thread[1]["by_broker"] is True
    refused(lambda: offer(broker_p, n.id, price_fen=8_800), 409, "EXC-NEG-TURN")
    refused(lambda: accept(broker_p, n.id), 403, "EXC-NEG-PARTY")
    # The broker sees the thread; the buyer accepts the seller's (relayed) offer.
    with db.read() as s:
        assert negotiation.get_negotiation(s, broker_p, n.id).id == n.id
    done = accept(buyer_p, n.id)
    assert done.contract.amount_fen == 9_000


def test_a_broker_opens_for_a_buyer_and_the_buyer_money_moves_only_on_its_own_act(
    db, world, opened, offer, accept
):
    listing_id = world.listing(price_fen=10_000)
    buyer = world.buyer(FUNDS)
    seller_p = world.p(world.seller)
    n = opened(world.p(world.broker), listing_id, buyer_id=buyer.party_id, price_fen=9_000)
    assert (n.buyer_id, n.broker_side) == (buyer.party_id, "buyer")
    assert offers(db, n.id)[0]["by_broker"] is True
    # The seller cannot turn the broker's proposal into frozen money of the buyer's.
    refused(lambda: accept(seller_p, n.id), 409, "EXC-NEG-CONSENT")
    assert balances(db, buyer.party_id) == (FUNDS, 0)
    offer(seller_p, n.id)  # the same terms, now the seller's own offer
    done = accept(world.p(buyer), n.id, seq=2)
    assert done.contract.amount_fen == 9_000
    assert balances(db, buyer.party_id) == (FUNDS - 9_000, 9_000)


def test_the_seller_accepts_the_buyer_s_own_offer(db, world, opened, accept):
    listing_id = world.listing(price_fen=10_000)
    buyer = world.buyer(FUNDS)
    n = opened(world.p(buyer), listing_id, price_fen=9_900, quantity=3)
    done = accept(world.p(world.seller), n.id, seq=1)
    assert done.contract.amount_fen == 29_700
    assert balances(db, buyer.party_id) == (FUNDS - 29_700, 29_700)


def test_a_buyer_may_name_another_broker_which_then_represents_it(db, world, opened):
    other = make_actor(db, PartyKind.SERVICE_FIRM, service_role=ServiceRole.BROKER)
    listing_id = world.listing(price_fen=10_000)
    n = opened(world.p(world.buyer()), listing_id, broker_id=other.party_id)
    assert (n.broker_id, n.broker_side) == (other.party_id, "buyer")
    assert offers(db, n.id)[0]["price_fen"] == 10_000  # the listing's price by default


def test_insufficient_funds_refuse_the_acceptance_and_leave_it_open(
    db, world, opened, offer, accept
):
    listing_id = world.listing(price_fen=10_000, quantity=2)
    poor = world.buyer(5_000)
    n = opened(world.p(poor), listing_id, price_fen=8_000)
    offer(world.p(world.seller), n.id, price_fen=9_000)
    refused(lambda: accept(world.p(poor), n.id), 409, "SET-FUNDS")
    still = load(db, n.id)
    assert (still.state, still.contract_id) == ("open", None)
    assert balances(db, poor.party_id) == (5_000, 0)
    assert world.remaining(listing_id) == 2
    with db.read() as s:
        assert s.query(ExchangeContract).count() == 0
    # Funded, the same acceptance goes through.
    fund(db, poor.party_id, 10_000)
    assert accept(world.p(poor), n.id).contract.amount_fen == 9_000


def test_refusals_name_their_rule(db, world, opened, offer, accept):
    listing_id = world.listing(price_fen=10_000)
    buyer = world.buyer(FUNDS)
    buyer_p, seller_p = world.p(buyer), world.p(world.seller)

    # Who may open, on what.
    unverified = make_actor(db, verified=False)
    refused(lambda: opened(world.p(unverified), listing_id), 403, "EXC-LST-BUYER")
    refused(lambda: opened(seller_p, listing_id), 403, "EXC-LST-BUYER")
    suspended = world.listing(price_fen=10_000)
    with db.write() as s:
        s.get(ExchangeListing, suspended).state = "suspended"
    refused(lambda: opened(buyer_p, suspended), 409, "EXC-LST-STATE")
    no_broker = world.listing(price_fen=10_000, broker=False)
    refused(lambda: opened(buyer_p, no_broker), 422, "EXC-NEG-BROKER")
    assessor = make_actor(db, PartyKind.SERVICE_FIRM, service_role=ServiceRole.COMPLIANCE_ASSESSOR)
    refused(lambda: opened(buyer_p, listing_id, broker_id=assessor.party_id), 422, "EXC-NEG-BROKER")
    firm = make_actor(db)
    refused(lambda: opened(buyer_p, listing_id, broker_id=firm.party_id), 422, "EXC-NEG-BROKER")
    other_buyer = world.buyer()
    refused(
        lambda: opened(buyer_p, listing_id, buyer_id=other_buyer.party_id), 403, "EXC-NEG-PARTY"
    )

    # The terms.
    for price in (0, -5, "abc"):
        refused(lambda p=price: opened(buyer_p, listing_id, price_fen=p), 422, "EXC-NEG-TERMS")
    refused(lambda: opened(buyer_p, listing_id, channels=["sandbox"]), 422, "EXC-NEG-TERMS")
    refused(lambda: opened(buyer_p, listing_id, channels=[]), 422, "EXC-NEG-TERMS")
    refused(lambda: opened(buyer_p, listing_id, quantity=0), 422, "EXC-NEG-TERMS")
    refused(lambda: opened(buyer_p, listing_id, term_days=0), 422, "EXC-NEG-TERMS")

    # Turns, own offers, stale offers, outsiders.
    n = opened(buyer_p, listing_id, price_fen=8_000)
    refused(lambda: offer(buyer_p, n.id, price_fen=8_100), 409, "EXC-NEG-TURN")
    refused(lambda: accept(buyer_p, n.id), 409, "EXC-NEG-TURN")
    offer(seller_p, n.id, price_fen=9_500)
    refused(lambda: accept(seller_p, n.id), 409, "EXC-NEG-TURN")
    refused(lambda: accept(buyer_p, n.id, seq=1), 409, "EXC-NEG-TURN")
    outsider = world.p(world.buyer())
    refused(lambda: offer(outsider, n.id, price_fen=9_000), 404, "EXC-NEG-PARTY")
    with db.read() as s:
        with pytest.raises(DomainError) as caught:
            negotiation.get_negotiation(s, outsider, n.id)
        assert caught.value.status == 404
        # The exchange and regulators read every negotiation.
        assert negotiation.get_negotiation(s, world.p(world.operator), n.id).id == n.id

    # A closed negotiation takes nothing more.
    with db.write() as s:
        negotiation.withdraw_negotiation(s, buyer_p, n.id, reason="预算调整", now=NOW)
    assert load(db, n.id).state == "withdrawn"
    refused(lambda: offer(buyer_p, n.id, price_fen=9_000), 409, "EXC-NEG-STATE")
    refused(lambda: accept(buyer_p, n.id), 409, "EXC-NEG-STATE")
    assert balances(db, buyer.party_id) == (FUNDS, 0)


def test_the_policy_may_be_narrowed_never_widened(db, world, opened):
    listing_id = world.listing(price_fen=10_000)
    buyer_p = world.p(world.buyer())
    with db.read() as s:
        base = copy.deepcopy(s.get(ExchangeListing, listing_id).contract_policy)
        asset_id = s.get(ExchangeListing, listing_id).asset_id

    def with_purposes(purposes: list[str]) -> dict:
        policy = copy.deepcopy(base)
        policy["permission"][0]["constraint"][0]["rightOperand"] = purposes
        return policy

    narrower = opened(buyer_p, listing_id, policy=with_purposes(["research"]))
    agreed = offers(db, narrower.id)[0]["policy"]
    assert agreed["permission"][0]["constraint"][0]["rightOperand"] == ["research"]
    refused(
        lambda: opened(buyer_p, listing_id, policy=with_purposes(["research", "governance"])),
        422,
        "EXC-NEG-POLICY",
    )
    dropped = copy.deepcopy(base)
    dropped.pop("prohibition")
    refused(lambda: opened(buyer_p, listing_id, policy=dropped), 422, "EXC-NEG-POLICY")
    elsewhere = copy.deepcopy(base)
    elsewhere["target"] = "another-asset"
    assert elsewhere["target"] != asset_id
    refused(lambda: opened(buyer_p, listing_id, policy=elsewhere), 422, "EXC-LST-POLICY")
    refused(lambda: opened(buyer_p, listing_id, policy={"uid": 1}), 422, "EXC-LST-POLICY")


def test_the_deadline_extends_with_each_offer_up_to_the_cap_and_the_clock_expires_it(
    db, world, opened, offer, accept
):
    listing_id = world.listing(price_fen=10_000)
    buyer_p, seller_p = world.p(world.buyer()), world.p(world.seller)
    n = opened(buyer_p, listing_id, price_fen=8_000)
    offer(seller_p, n.id, price_fen=9_800, now=NOW + timedelta(days=6))
    assert load(db, n.id).deadline_at == NOW + timedelta(days=13)
    offer(buyer_p, n.id, price_fen=8_500, now=NOW + timedelta(days=12))
    offer(seller_p, n.id, price_fen=9_500, now=NOW + timedelta(days=18))
    offer(buyer_p, n.id, price_fen=9_000, now=NOW + timedelta(days=24))
    assert load(db, n.id).deadline_at == NOW + timedelta(days=30)  # the cap from the opening

    late = NOW + timedelta(days=30, seconds=1)
    refused(lambda: accept(seller_p, n.id, now=late), 409, "EXC-NEG-DEADLINE")
    assert negotiation.expire_due_negotiations(db, now=NOW + timedelta(days=29)).expired == []
    report = negotiation.expire_due_negotiations(db, now=late)
    assert report.expired == [n.number] and report.failed == []
    assert load(db, n.id).state == "expired"
    assert negotiation.expire_due_negotiations(db, now=late).expired == []  # idempotent
    refused(lambda: accept(seller_p, n.id, now=late), 409, "EXC-NEG-STATE")


def test_a_foreign_buyer_or_a_cross_border_listing_is_flagged(db, world, opened, offer, accept):
    vietnamese = world.buyer(FUNDS, PartyKind.FOREIGN_COMPANY, name="越南海防物流股份公司")
    listing_id = world.listing(price_fen=10_000)
    n = opened(world.p(vietnamese), listing_id, price_fen=9_000)
    assert n.cross_border is True
    done = accept(world.p(world.seller), n.id)
    assert done.contract.cross_border is True
    with db.read() as s:
        shown = negotiation.negotiation_dict(s, load(db, n.id), world.p(vietnamese))
    assert shown["cross_border_note"] == negotiation.CROSS_BORDER_FLAG

    abroad = world.listing(price_fen=10_000, cross_border=True)
    m = opened(world.p(world.buyer()), abroad)
    assert m.cross_border is True
    domestic = opened(world.p(world.buyer()), world.listing(price_fen=10_000))
    assert domestic.cross_border is False


def test_licences_go_back_when_the_agreed_contract_ends_unsigned(db, world, opened, accept):
    listing_id = world.listing(price_fen=10_000, quantity=4)
    buyer = world.buyer(FUNDS)
    n = opened(world.p(buyer), listing_id, quantity=3)
    contract = accept(world.p(world.seller), n.id).contract
    assert world.remaining(listing_id) == 1
    with db.write() as s:
        contracts.terminate_contract(  # the contracts call the trade's hook: licences back
            s, world.p(buyer), contract.id, reason="不再需要", now=NOW + timedelta(hours=1)
        )
        # Looked at again, the hook returns nothing more.
        assert negotiation.contract_ended(s, contract.id, now=NOW + timedelta(hours=1)) == 0
    assert world.remaining(listing_id) == 4
    assert balances(db, buyer.party_id) == (FUNDS, 0)


def test_lists_show_each_party_its_own(db, world, opened):
    listing_id = world.listing(price_fen=10_000)
    a, b = world.buyer(), world.buyer()
    opened(world.p(a), listing_id)
    opened(world.p(b), listing_id)
    with db.read() as s:
        assert negotiation.list_negotiations(s, world.p(a))[1] == 1
        assert negotiation.list_negotiations(s, world.p(world.seller))[1] == 2
        assert negotiation.list_negotiations(s, world.p(world.broker), role="broker")[1] == 2
        assert negotiation.list_negotiations(s, world.p(world.seller), role="buyer")[1] == 0
        assert negotiation.list_negotiations(s, world.p(world.operator))[1] == 2
        with pytest.raises(DomainError):
            negotiation.list_negotiations(s, world.p(a), state="nonsense")
