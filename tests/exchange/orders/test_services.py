"""Mall orders through the use cases, on both databases: what a buyer gets (the order, the
frozen payment, the contract awaiting signatures, the licence taken), replays and reused keys,
every refusal leaving nothing half-done, and cancelling before signature."""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import make_actor
from orders_support import NOW, balances, principal_of
from sqlalchemy import func, select

from datafactor import audit
from datafactor.exchange import contracts, orders
from datafactor.exchange.errors import (
    ExchangeForbidden,
    ExchangeInvalid,
    ExchangeNotFound,
    ExchangeStateConflict,
)
from datafactor.exchange.models import ExchangeContract, ExchangeListing, ExchangeOrder
from datafactor.inbox.models import InboxMessage
from datafactor.policy import parse_policy
from datafactor.registry.models import RegistryAsset, RegistryRight
from datafactor.settlement import InsufficientFunds, hold_of


def _count(db, model) -> int:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _remaining(db, listing_id: str) -> int | None:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return s.get(ExchangeListing, listing_id).remaining_quantity


def test_a_verified_buyer_orders_and_the_contract_awaits_signatures(db, market, place):
    listing_id = market.listing(price_fen=12_345, quantity=5)
    buyer, principal = market.buyer(100_000)
    placed = place(principal, listing_id, 2)
    assert not placed.replayed
    with db.read() as s:
        order = s.get(ExchangeOrder, placed.order.id)
        contract = s.get(ExchangeContract, order.contract_id)
        assert order.state == "contracted"
        assert order.number == "GX-DO-2026-000001"
        assert (order.quantity, order.unit_price_fen, order.amount_fen) == (2, 12_345, 24_690)
        assert (order.buyer_id, order.seller_id) == (buyer.party_id, market.seller.party_id)
        # the contract: mall, accepted (awaiting both signatures), secured by the hold
        assert (contract.kind, contract.state) == ("mall", "accepted")
        assert contract.order_id == order.id and contract.hold_id == order.hold_id
        assert (contract.quantity, contract.amount_fen) == (2, 24_690)
        assert contract.term_start == NOW.date() and contract.term_end == NOW.date() + timedelta(
            days=364
        )
        policy = parse_policy(contract.policy)  # an agreement the engine reads
        assert policy.permissions[0].assignee == buyer.party_id
        assert policy.permissions[0].assigner == market.seller.party_id
        hold = hold_of(s, order.hold_id)
        assert (hold["party_id"], hold["amount_fen"], hold["remaining_fen"]) == (
            buyer.party_id,
            24_690,
            24_690,
        )
        events = s.scalars(
            select(audit.AuditEvent).where(audit.AuditEvent.object_id == order.id)
        ).all()
        assert {(e.action, e.party_id) for e in events} == {
            ("exchange:order:place", buyer.party_id)
        }
        # the seller's trail has the contract drawn up from the order, in the same transaction
        seller_events = s.scalars(
            select(audit.AuditEvent.action).where(
                audit.AuditEvent.object_id == contract.id,
                audit.AuditEvent.party_id == market.seller.party_id,
            )
        ).all()
        assert "exchange:contract:open" in seller_events
        told = s.scalars(
            select(InboxMessage).where(
                InboxMessage.party_id == market.seller.party_id,
                InboxMessage.kind == "exchange.order",
            )
        ).all()
        assert len(told) == 1 and told[0].params["number"] == order.number
    assert balances(db, buyer.party_id) == (100_000 - 24_690, 24_690)
    assert _remaining(db, listing_id) == 3


def test_the_same_key_and_body_answer_the_same_order(db, market, place):
    listing_id = market.listing(price_fen=10_000, quantity=5)
    buyer, principal = market.buyer(100_000)
    first = place(principal, listing_id, 1, key="same")
    again = place(principal, listing_id, 1, key="same")
    assert again.replayed and again.order.id == first.order.id
    assert balances(db, buyer.party_id) == (90_000, 10_000)  # frozen once
    assert _remaining(db, listing_id) == 4  # one licence taken
    assert _count(db, ExchangeContract) == 1


def test_the_same_key_answers_its_order_after_the_listing_was_suspended(db, market, place):
    """A retry of an order that went through is answered, whatever became of the listing since
    (the key is read before the listing's checks)."""
    listing_id = market.listing(price_fen=10_000, quantity=5)
    buyer, principal = market.buyer(100_000)
    first = place(principal, listing_id, 1, key="before")
    with db.write() as s:
        s.get(ExchangeListing, listing_id).state = "suspended"  # type: ignore[union-attr]
    again = place(principal, listing_id, 1, key="before")
    assert again.replayed and again.order.id == first.order.id
    with pytest.raises(ExchangeStateConflict, match="EXC-LST-STATE"):
        place(principal, listing_id, 1, key="after")
    assert balances(db, buyer.party_id) == (90_000, 10_000)


def test_the_same_key_with_another_body_is_refused(db, market, place):
    listing_id = market.listing(price_fen=10_000, quantity=5)
    other = market.listing(price_fen=10_000)
    _, principal = market.buyer(100_000)
    place(principal, listing_id, 1, key="k1")
    # Another quantity, another listing, a listing that does not exist (or cannot be one):
    # the key is spent all the same.
    for listing, quantity in ((listing_id, 2), (other, 1), ("no-such-listing", 1), ("x\x00", 1)):
        with pytest.raises(ExchangeStateConflict) as refused:
            place(principal, listing, quantity, key="k1")
        assert refused.value.code == "idempotency-key-reused"
        assert refused.value.rule == "EXC-ORDER-KEY"
    # keys are the buyer's own: another buyer may use the same key
    _, another = market.buyer(100_000)
    assert not place(another, listing_id, 1, key="k1").replayed


def _nothing_done(db, listing_id, buyer_id, remaining, funds):  # type: ignore[no-untyped-def]
    assert _count(db, ExchangeOrder) == 0
    assert _count(db, ExchangeContract) == 0
    assert _remaining(db, listing_id) == remaining
    assert balances(db, buyer_id) == (funds, 0)


def test_insufficient_funds_are_refused_with_settlements_rule(db, market, place):
    listing_id = market.listing(price_fen=50_000, quantity=3)
    buyer, principal = market.buyer(60_000)
    with pytest.raises(InsufficientFunds) as refused:
        place(principal, listing_id, 2)
    assert refused.value.rule == "SET-FUNDS"
    _nothing_done(db, listing_id, buyer.party_id, 3, 60_000)
    # a refused key is not spent: after a deposit the same key orders
    place(principal, listing_id, 1, key="later")


def test_a_buyer_with_no_money_accounts_is_refused_cleanly(db, market, place):
    listing_id = market.listing(price_fen=1_000, quantity=3)
    _buyer, principal = market.buyer(0)
    with pytest.raises(InsufficientFunds):
        place(principal, listing_id, 1)
    assert _count(db, ExchangeOrder) == 0 and _remaining(db, listing_id) == 3


@pytest.mark.parametrize(
    ("quantity", "asked"), [(4, "fewer left than asked"), (1, "sold out")], ids=["fewer", "none"]
)
def test_sold_out_and_fewer_left_than_asked(db, market, place, quantity, asked):
    listing_id = market.listing(price_fen=1_000, quantity=3)
    buyer, principal = market.buyer(100_000)
    if asked == "sold out":
        place(principal, listing_id, 3)
    with pytest.raises(ExchangeStateConflict) as refused:
        place(principal, listing_id, quantity)
    assert refused.value.rule == "EXC-LST-QUANTITY"
    assert _remaining(db, listing_id) == (0 if asked == "sold out" else 3)
    assert balances(db, buyer.party_id)[1] == (3_000 if asked == "sold out" else 0)


@pytest.mark.parametrize("state", ["suspended", "delisted", "draft"])
def test_an_unlisted_or_suspended_listing_cannot_be_bought(db, market, place, state):
    listing_id = market.listing(state=state, quantity=2)
    buyer, principal = market.buyer(100_000)
    with pytest.raises((ExchangeStateConflict, ExchangeNotFound)) as refused:
        place(principal, listing_id, 1)
    assert refused.value.rule in ("EXC-LST-STATE", "EXC-LST-VISIBLE")
    _nothing_done(db, listing_id, buyer.party_id, 2, 100_000)


def test_a_buyer_that_is_not_verified_is_refused(db, market, place):
    listing_id = market.listing(quantity=2)
    actor = make_actor(db, verified=False)
    with pytest.raises(ExchangeForbidden) as refused:
        place(principal_of(db, actor), listing_id, 1)
    assert refused.value.rule == "EXC-LST-BUYER"
    assert _count(db, ExchangeOrder) == 0 and _remaining(db, listing_id) == 2


def test_a_role_without_the_permission_is_refused(db, market, place):
    listing_id = market.listing(quantity=2)
    actor = make_actor(db, roles=("auditor",))
    with pytest.raises(ExchangeForbidden) as refused:
        place(principal_of(db, actor), listing_id, 1)
    assert refused.value.rule == "EXC-ORDER-PLACE"


def test_the_seller_cannot_buy_its_own_listing(db, market, place):
    listing_id = market.listing(quantity=2)
    with pytest.raises(ExchangeForbidden) as refused:
        place(market.seller_principal, listing_id, 1)
    assert refused.value.rule == "EXC-LST-BUYER"
    assert _remaining(db, listing_id) == 2


def test_a_seller_who_no_longer_holds_the_right_cannot_sell(db, market, place):
    listing_id = market.listing(price_fen=1_000, quantity=2)
    buyer, principal = market.buyer(100_000)
    other = make_actor(db)
    with db.write() as s:  # the right moved to another holder since the listing was published
        s.get(RegistryRight, market.product.right_id).holder_id = other.party_id
    with pytest.raises(ExchangeStateConflict) as refused:
        place(principal, listing_id, 1)
    assert refused.value.rule == "EXC-LST-CERT"
    _nothing_done(db, listing_id, buyer.party_id, 2, 100_000)


def test_a_prohibited_trade_is_refused(db, market, place):
    listing_id = market.listing(price_fen=1_000, quantity=2)
    buyer, principal = market.buyer(100_000)
    with db.write() as s:  # discovery found core data in it since
        s.get(RegistryAsset, market.product.asset_id).grade = "core"
    with pytest.raises(ExchangeForbidden) as refused:
        place(principal, listing_id, 1)
    assert refused.value.rule == "EXC-LST-CORE"
    _nothing_done(db, listing_id, buyer.party_id, 2, 100_000)


def test_an_unknown_or_invisible_listing_is_not_found(db, market, place):
    hidden = market.listing(access={"audience": "parties", "parties": []})
    _buyer, principal = market.buyer(100_000)
    for listing_id in ("no-such-listing", hidden):
        with pytest.raises(ExchangeNotFound):
            place(principal, listing_id, 1)


@pytest.mark.parametrize("quantity", [0, -2, 1.5, "two", None, True])
def test_a_bad_quantity_is_refused_before_anything(db, market, place, quantity):
    listing_id = market.listing(quantity=5)
    buyer, principal = market.buyer(100_000)
    with pytest.raises(ExchangeInvalid) as refused:
        place(principal, listing_id, quantity)
    assert refused.value.rule == "EXC-ORDER-QUANTITY"
    _nothing_done(db, listing_id, buyer.party_id, 5, 100_000)


def test_a_quantity_above_the_cap_is_refused(db, market, place):
    listing_id = market.listing(price_fen=1)
    buyer, principal = market.buyer(100_000)
    with pytest.raises(ExchangeInvalid) as refused:
        place(principal, listing_id, orders.max_quantity("one_off") + 1)
    assert refused.value.rule == "EXC-ORDER-QUANTITY"
    _nothing_done(db, listing_id, buyer.party_id, None, 100_000)


def test_price_models(db, market, place):
    _, principal = market.buyer(1_000_000)
    subscription = market.listing(price_model="subscription", period="month", price_fen=3_000)
    order = place(principal, subscription, 6).order
    assert order.amount_fen == 18_000
    metered = market.listing(price_model="metered", price_fen=2, quantity=1)
    order = place(principal, metered, 5_000).order
    assert order.amount_fen == 10_000
    assert _remaining(db, metered) == 0  # one subscriber's licence, however many calls
    free = market.listing(price_model="free", price_fen=0, quantity=2)
    order = place(principal, free, 1).order
    assert (order.amount_fen, order.hold_id, order.state) == (0, None, "contracted")
    with db.read() as s:
        contract = s.get(ExchangeContract, s.get(ExchangeOrder, order.id).contract_id)
        assert contract.amount_fen == 0 and contract.hold_id is None


def test_orders_are_numbered_per_year_without_gaps(db, market, place):
    listing_id = market.listing(price_fen=100)
    _, principal = market.buyer(100_000)
    numbers = [place(principal, listing_id, 1).order.number for _ in range(3)]
    assert numbers == [f"GX-DO-2026-{n:06d}" for n in (1, 2, 3)]


# ------------------------------------------------------------------------------- cancelling


def test_the_buyer_cancels_before_signature(db, market, place):
    listing_id = market.listing(price_fen=7_000, quantity=3)
    buyer, principal = market.buyer(100_000)
    order = place(principal, listing_id, 2).order
    kept = place(principal, listing_id, 1).order
    assert _remaining(db, listing_id) == 0
    with db.write() as s:
        cancelled = orders.cancel_order(s, principal, order.id, now=NOW, reason="预算调整")
        assert not cancelled.replayed and cancelled.order.state == "cancelled"
    with db.read() as s:
        contract = s.get(ExchangeContract, order.contract_id)
        assert contract.state == "terminated"
        assert hold_of(s, order.hold_id)["remaining_fen"] == 0
        assert s.get(ExchangeOrder, kept.id).state == "contracted"
    assert balances(db, buyer.party_id) == (93_000, 7_000)  # the other order's stays frozen
    assert _remaining(db, listing_id) == 2  # two licences back, exactly
    with db.write() as s:  # cancelling again answers the cancelled order
        again = orders.cancel_order(s, principal, order.id, now=NOW)
        assert again.replayed and again.order.state == "cancelled"
    assert _remaining(db, listing_id) == 2


def test_only_the_buyer_cancels_and_others_do_not_see_the_order(db, market, place):
    listing_id = market.listing(price_fen=7_000, quantity=3)
    _, principal = market.buyer(100_000)
    order = place(principal, listing_id, 1).order
    with db.write() as s, pytest.raises(ExchangeForbidden) as refused:
        orders.cancel_order(s, market.seller_principal, order.id, now=NOW)
    assert refused.value.rule == "EXC-ORDER-CANCEL"
    _, stranger = market.buyer(0)
    with db.write() as s, pytest.raises(ExchangeNotFound):
        orders.cancel_order(s, stranger, order.id, now=NOW)
    with db.read() as s, pytest.raises(ExchangeNotFound):
        orders.get_order(s, stranger, order.id)


def test_a_signed_contract_is_not_cancelled_here(db, market, place, settings):
    listing_id = market.listing(price_fen=7_000, quantity=3)
    buyer, principal = market.buyer(100_000)
    order = place(principal, listing_id, 1).order
    with db.write() as s:
        s.get(ExchangeContract, order.contract_id).state = "signed"
    with db.write() as s, pytest.raises(ExchangeStateConflict) as refused:
        orders.cancel_order(s, principal, order.id, now=NOW)
    assert refused.value.rule == "EXC-ORDER-CANCEL"
    assert balances(db, buyer.party_id) == (93_000, 7_000)


def test_a_contract_ended_elsewhere_returns_the_licences(db, market, place):
    listing_id = market.listing(price_fen=7_000, quantity=3)
    buyer, principal = market.buyer(100_000)
    order = place(principal, listing_id, 2).order
    other = place(principal, listing_id, 1).order
    with db.write() as s:  # the seller declines: terminates before signing
        contracts.terminate_contract(
            s, market.seller_principal, order.contract_id, reason="库存不足", now=NOW
        )
        assert orders.contract_ended(s, order.contract_id, now=NOW) is None  # done, once
    with db.read() as s:  # the order ended with its contract, in that transaction
        assert s.get(ExchangeOrder, order.id).state == "cancelled"
        assert s.get(ExchangeOrder, other.id).state == "contracted"
    assert _remaining(db, listing_id) == 2  # its two licences back, the other order's not
    assert balances(db, buyer.party_id) == (93_000, 7_000)


def test_an_unsigned_contract_past_its_deadline_ends_the_order(db, market, place):
    listing_id = market.listing(price_fen=7_000, quantity=3)
    buyer, principal = market.buyer(100_000)
    order = place(principal, listing_id, 2).order
    with db.read() as s:
        deadline = s.get(ExchangeContract, order.contract_id).deadline_at
    with db.write() as s:  # the exchange's clock, after the signing deadline
        contracts.apply_deadline(s, order.contract_id, now=deadline + timedelta(minutes=1))
    with db.read() as s:
        assert s.get(ExchangeContract, order.contract_id).state == "terminated"
        assert s.get(ExchangeOrder, order.id).state == "cancelled"
    assert _remaining(db, listing_id) == 3
    assert balances(db, buyer.party_id) == (100_000, 0)


# ----------------------------------------------------------------------------------- reading


def test_buyer_and_seller_list_their_orders(db, market, place):
    listing_id = market.listing(price_fen=100)
    _, alice = market.buyer(100_000)
    _, bob = market.buyer(100_000)
    a = place(alice, listing_id, 1).order
    place(bob, listing_id, 2)
    with db.read() as s:
        mine, total = orders.list_orders(s, alice)
        assert total == 1 and [v.order.id for v in mine] == [a.id]
        assert mine[0].contract_state == "accepted" and mine[0].listing_title
        _sold, total = orders.list_orders(s, market.seller_principal, role="seller")
        assert total == 2
        _bought, total = orders.list_orders(s, market.seller_principal, role="buyer")
        assert total == 0
        with pytest.raises(ExchangeInvalid):
            orders.list_orders(s, alice, role="broker")


def test_a_right_moved_after_a_trade_refuses_the_next_one(db, market, place):
    """The registry's checks are cached under the registry's revision: a trade that passed them
    does not let the next one through once the right has moved (the move bumps the revision)."""
    listing_id = market.listing(price_fen=1_000, quantity=3)
    _buyer, principal = market.buyer(100_000)
    place(principal, listing_id, 1)
    other = make_actor(db)
    with db.write() as s:
        s.get(RegistryRight, market.product.right_id).holder_id = other.party_id
    with pytest.raises(ExchangeStateConflict) as refused:
        place(principal, listing_id, 1)
    assert refused.value.rule == "EXC-LST-CERT"
    assert _count(db, ExchangeOrder) == 1 and _remaining(db, listing_id) == 2


def test_core_data_found_after_a_trade_refuses_the_next_one(db, market, place):
    listing_id = market.listing(price_fen=1_000, quantity=3)
    _buyer, principal = market.buyer(100_000)
    place(principal, listing_id, 1)
    with db.write() as s:
        s.get(RegistryAsset, market.product.asset_id).grade = "core"
    with pytest.raises(ExchangeForbidden) as refused:
        place(principal, listing_id, 1)
    assert refused.value.rule == "EXC-LST-CORE"
    assert _count(db, ExchangeOrder) == 1 and _remaining(db, listing_id) == 2


@pytest.mark.parametrize("status", ["revoked", "cancelled", "expired"])
def test_a_right_revoked_cancelled_or_expired_after_a_trade_refuses_the_next_one(
    db, market, place, status
):
    """The cached registry checks do not outlive a change of the right's status (its
    certificate is then no longer active)."""
    listing_id = market.listing(price_fen=1_000, quantity=3)
    _buyer, principal = market.buyer(100_000)
    place(principal, listing_id, 1)
    with db.write() as s:
        s.get(RegistryRight, market.product.right_id).status = status
    with pytest.raises(ExchangeStateConflict) as refused:
        place(principal, listing_id, 1)
    assert refused.value.rule == "EXC-LST-CERT"
    assert _count(db, ExchangeOrder) == 1 and _remaining(db, listing_id) == 2
