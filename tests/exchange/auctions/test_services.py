"""English auctions (竞价) on both databases: increments, the bidding window, anti-sniping,
deposits frozen on the first bid and released at the close (checked on the settlement
balances), the reserve, the winner's contract and its one escrow hold, a winner who cannot pay,
idempotent bid retries, anonymity, and the clock that closes due auctions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from auctions_support import NOW, balances, fund
from factories import make_actor

from datafactor import settlement
from datafactor.errors import DomainError
from datafactor.exchange import auctions
from datafactor.exchange.models import ExchangeAuction, ExchangeBid, ExchangeListing

FUNDS = 1_000_000
END = NOW + timedelta(hours=2)  # the fixtures' default deadline


def refused(call, status: int, rule: str) -> DomainError:  # type: ignore[no-untyped-def]
    with pytest.raises(DomainError) as caught:
        call()
    assert caught.value.status == status, caught.value
    assert caught.value.params.get("rule") == rule, caught.value
    return caught.value


def load(db, auction_id: str) -> ExchangeAuction:  # type: ignore[no-untyped-def]
    with db.read() as s:
        row = s.get(ExchangeAuction, auction_id)
        assert row is not None
        return row


def statuses(db, auction_id: str) -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    with db.read() as s:
        rows = s.query(ExchangeBid).filter_by(auction_id=auction_id).all()
        return sorted((b.amount_fen, b.status) for b in rows)


def test_an_auction_is_created_with_the_rules_defaults_and_reserves_its_lots(db, world, create):
    listing_id = world.listing(price_fen=10_000, quantity=5)
    a = create(world.p(world.seller), listing_id, start_fen=10_000, quantity=2)
    assert a.number == "GX-DA-2026-000001"
    assert (a.state, a.reserve_fen, a.increment_fen, a.deposit_fen) == ("open", 10_000, 100, 2_000)
    assert (a.snipe_seconds, a.extension_seconds, a.starts_at, a.ends_at) == (
        300,
        300,
        NOW,
        END,
    )
    assert world.remaining(listing_id) == 3
    later = create(
        world.p(world.seller),
        listing_id,
        start_fen=5_000,
        reserve_fen=8_000,
        increment_fen=500,
        deposit_fen=1_000,
        starts_at=NOW + timedelta(days=1),
        ends_at=NOW + timedelta(days=2),
        snipe_seconds=60,
        extension_seconds=120,
    )
    assert (later.state, later.reserve_fen, later.deposit_fen) == ("scheduled", 8_000, 1_000)
    assert world.remaining(listing_id) == 2


def test_who_may_auction_what(db, world, create):
    listing_id = world.listing(price_fen=10_000, quantity=2)
    seller_p = world.p(world.seller)
    staff = make_actor(db, roles=("staff",))
    refused(lambda: create(world.p(staff), listing_id), 403, "EXC-AUC-CREATE")
    refused(lambda: create(world.p(world.buyer()), listing_id), 403, "EXC-AUC-CREATE")
    draft = world.listing(price_fen=10_000)
    with db.write() as s:
        s.get(ExchangeListing, draft).state = "suspended"
    refused(lambda: create(seller_p, draft), 409, "EXC-AUC-CREATE")
    free = world.listing(price_fen=0, price_model="free")
    refused(lambda: create(seller_p, free), 422, "EXC-AUC-CREATE")
    refused(lambda: create(seller_p, listing_id, quantity=3), 409, "EXC-AUC-LOTS")
    refused(lambda: create(seller_p, listing_id, start_fen=0), 422, "EXC-AUC-CREATE")
    refused(lambda: create(seller_p, listing_id, reserve_fen=9_999), 422, "EXC-AUC-CREATE")
    refused(lambda: create(seller_p, listing_id, deposit_fen=10_001), 422, "EXC-AUC-DEPOSIT")
    refused(lambda: create(seller_p, listing_id, deposit_fen=0), 422, "EXC-AUC-DEPOSIT")
    refused(lambda: create(seller_p, listing_id, ends_at=None), 422, "EXC-AUC-CREATE")
    refused(
        lambda: create(seller_p, listing_id, ends_at=NOW + timedelta(seconds=30)),
        422,
        "EXC-AUC-CREATE",
    )
    refused(
        lambda: create(seller_p, listing_id, ends_at=NOW + timedelta(days=31)),
        422,
        "EXC-AUC-CREATE",
    )
    refused(lambda: create(seller_p, listing_id, snipe_seconds=4_000), 422, "EXC-AUC-SNIPE")
    assert world.remaining(listing_id) == 2  # nothing reserved by a refused auction


def test_bids_rise_by_the_increment_and_the_leader_does_not_bid_against_itself(
    db, world, create, bid
):
    a = create(world.p(world.seller), world.listing(price_fen=10_000), increment_fen=500)
    one, two = world.p(world.buyer()), world.p(world.buyer())
    refused(lambda: bid(one, a.id, 9_999), 422, "EXC-AUC-INCREMENT")
    first = bid(one, a.id, 10_000)
    assert first.bid.status == "leading" and not first.replayed
    refused(lambda: bid(one, a.id, 20_000), 409, "EXC-AUC-BIDDER")
    refused(lambda: bid(two, a.id, 10_499), 422, "EXC-AUC-INCREMENT")
    bid(two, a.id, 10_500)
    bid(one, a.id, 12_000)
    assert statuses(db, a.id) == [(10_000, "outbid"), (10_500, "outbid"), (12_000, "leading")]
    row = load(db, a.id)
    assert (row.leading_fen, row.bids, auctions.minimum_bid(row)) == (12_000, 3, 12_500)
    refused(lambda: bid(world.p(world.seller), a.id, 50_000), 403, "EXC-LST-BUYER")
    unverified = make_actor(db, verified=False)
    refused(lambda: bid(world.p(unverified), a.id, 50_000), 403, "EXC-AUC-BIDDER")
    refused(lambda: bid(two, a.id, 0), 422, "EXC-AUC-INCREMENT")


def test_bids_only_between_the_start_and_the_deadline(db, world, create, bid):
    start = NOW + timedelta(hours=1)
    a = create(
        world.p(world.seller),
        world.listing(price_fen=10_000),
        starts_at=start,
        ends_at=start + timedelta(hours=1),
    )
    bidder = world.p(world.buyer())
    refused(
        lambda: bid(bidder, a.id, 10_000, now=start - timedelta(seconds=1)), 409, "EXC-AUC-WINDOW"
    )
    assert load(db, a.id).state == "scheduled"
    bid(bidder, a.id, 10_000, now=start)
    assert load(db, a.id).state == "open"
    other = world.p(world.buyer())
    refused(lambda: bid(other, a.id, 11_000, now=start + timedelta(hours=1)), 409, "EXC-AUC-WINDOW")
    assert balances(db, other.party_id) == (FUNDS, 0)  # nothing frozen by a refused bid


def test_a_bid_in_the_last_minutes_pushes_the_deadline_back(db, world, create, bid):
    a = create(world.p(world.seller), world.listing(price_fen=10_000), snipe_seconds=300)
    one, two = world.p(world.buyer()), world.p(world.buyer())
    bid(one, a.id, 10_000, now=END - timedelta(minutes=10))
    assert load(db, a.id).ends_at == END
    bid(two, a.id, 10_100, now=END - timedelta(seconds=100))
    assert load(db, a.id).ends_at == END + timedelta(seconds=300)
    # Bidding at the old deadline is fine now; the new deadline is extended once more.
    bid(one, a.id, 10_200, now=END + timedelta(seconds=10))
    assert load(db, a.id).ends_at == END + timedelta(seconds=600)


def test_deposits_are_frozen_once_kept_while_outbid_and_released_at_the_close(
    db, world, create, bid, close
):
    listing_id = world.listing(price_fen=10_000, quantity=3)
    a = create(world.p(world.seller), listing_id, quantity=2, deposit_fen=3_000, reserve_fen=11_000)
    one, two, three = world.buyer(), world.buyer(), world.buyer()
    bid(world.p(one), a.id, 10_000)
    assert balances(db, one.party_id) == (FUNDS - 3_000, 3_000)
    bid(world.p(two), a.id, 10_500)
    bid(world.p(one), a.id, 11_000)  # one's second bid: no second deposit
    assert balances(db, one.party_id) == (FUNDS - 3_000, 3_000)
    bid(world.p(three), a.id, 12_000)
    for loser in (one, two):  # outbid, still frozen until the close
        assert balances(db, loser.party_id) == (FUNDS - 3_000, 3_000)

    early = END - timedelta(seconds=1)
    refused(lambda: close(a.id, world.p(world.seller), now=early), 409, "EXC-AUC-STATE")
    assert close(a.id, now=early).replayed  # the clock leaves it until its deadline
    closed = close(a.id)
    assert not closed.replayed and closed.contract is not None
    contract = closed.contract
    assert (contract.kind, contract.state, contract.auction_id) == ("auction", "accepted", a.id)
    assert (contract.buyer_id, contract.quantity, contract.price_fen, contract.amount_fen) == (
        three.party_id,
        2,
        12_000,
        24_000,
    )
    # The winner's deposit became the full price, on the contract's one hold.
    assert balances(db, three.party_id) == (FUNDS - 24_000, 24_000)
    with db.read() as s:
        hold = settlement.hold_of(s, contract.hold_id)
        assert (hold["party_id"], hold["remaining_fen"]) == (three.party_id, 24_000)
    for loser in (one, two):
        assert balances(db, loser.party_id) == (FUNDS, 0)
    assert statuses(db, a.id) == [
        (10_000, "lost"),
        (10_500, "lost"),
        (11_000, "lost"),
        (12_000, "won"),
    ]
    row = load(db, a.id)
    assert (row.state, row.contract_id) == ("closed", contract.id)
    assert world.remaining(listing_id) == 1  # the lot stays sold
    # Closing again changes nothing.
    again = close(a.id, now=END + timedelta(hours=1))
    assert again.replayed and again.contract is not None and again.contract.id == contract.id
    with db.write() as s:  # one consistent snapshot (a transaction on PostgreSQL)
        report = settlement.reconcile(s)[0]
    assert report.balanced, report


def test_below_the_reserve_or_without_bids_the_auction_is_unsold(db, world, create, bid, close):
    listing_id = world.listing(price_fen=10_000, quantity=2)
    a = create(world.p(world.seller), listing_id, reserve_fen=15_000)
    one, two = world.buyer(), world.buyer()
    bid(world.p(one), a.id, 10_000)
    bid(world.p(two), a.id, 14_000)
    closed = close(a.id)
    assert closed.contract is None
    row = load(db, a.id)
    assert row.state == "unsold" and "reserve" in row.reason
    for bidder in (one, two):
        assert balances(db, bidder.party_id) == (FUNDS, 0)
    assert statuses(db, a.id) == [(10_000, "lost"), (14_000, "lost")]
    assert world.remaining(listing_id) == 2  # the lot is back on the listing

    empty = create(world.p(world.seller), listing_id)
    assert close(empty.id).contract is None
    assert load(db, empty.id).state == "unsold"
    assert world.remaining(listing_id) == 2


def test_a_winner_who_cannot_pay_forfeits_the_deposit_to_the_seller(db, world, create, bid, close):
    listing_id = world.listing(price_fen=10_000, quantity=1)
    a = create(world.p(world.seller), listing_id, deposit_fen=1_000)
    honest, short = world.buyer(), world.buyer(5_000)
    bid(world.p(honest), a.id, 10_000)
    bid(world.p(short), a.id, 20_000)  # its deposit fits; the price does not
    seller_before = balances(db, world.seller.party_id)
    closed = close(a.id)
    assert closed.contract is None
    row = load(db, a.id)
    assert row.state == "unsold" and "default" in row.reason
    assert balances(db, short.party_id) == (4_000, 0)
    assert balances(db, world.seller.party_id)[0] == seller_before[0] + 1_000
    assert balances(db, honest.party_id) == (FUNDS, 0)
    assert world.remaining(listing_id) == 1
    with db.write() as s:
        assert settlement.reconcile(s)[0].balanced


def test_a_bid_retried_with_its_key_is_the_same_bid(db, world, create, bid):
    a = create(world.p(world.seller), world.listing(price_fen=10_000))
    bidder = world.buyer()
    first = bid(world.p(bidder), a.id, 10_000, key="retry-1")
    again = bid(world.p(bidder), a.id, 10_000, key="retry-1")
    assert again.replayed and again.bid.id == first.bid.id
    assert load(db, a.id).bids == 1
    assert balances(db, bidder.party_id) == (FUNDS - 1_000, 1_000)
    error = refused(
        lambda: bid(world.p(bidder), a.id, 10_500, key="retry-1"), 409, "EXC-AUC-IDEMPOTENCY"
    )
    assert error.code == "idempotency-key-reused"
    refused(lambda: bid(world.p(bidder), a.id, 10_500, key="has space"), 422, "EXC-AUC-IDEMPOTENCY")
    with pytest.raises(DomainError) as caught, db.write() as s:
        auctions.place_bid(s, world.p(bidder), a.id, 10_500, key=None, now=NOW)
    assert caught.value.status == 400


def test_a_bidder_without_the_deposit_is_refused(db, world, create, bid):
    a = create(world.p(world.seller), world.listing(price_fen=10_000), deposit_fen=5_000)
    poor = world.buyer(4_999)
    refused(lambda: bid(world.p(poor), a.id, 10_000), 409, "SET-FUNDS")
    assert load(db, a.id).bids == 0
    fund(db, poor.party_id, 1)
    assert bid(world.p(poor), a.id, 10_000).bid.status == "leading"


def test_bidders_are_anonymous_to_each_other(db, world, create, bid, close):
    a = create(world.p(world.seller), world.listing(price_fen=10_000))
    one, two = world.buyer(), world.buyer()
    bid(world.p(one), a.id, 10_000)
    bid(world.p(two), a.id, 10_100)
    with db.read() as s:
        row = s.get(ExchangeAuction, a.id)
        seen_by_one = auctions.auction_dict(s, row, world.p(one), now=NOW)
        seen_by_operator = auctions.auction_dict(s, row, world.p(world.operator), now=NOW)
        seen_by_seller = auctions.auction_dict(s, row, world.p(world.seller), now=NOW)
    leader = seen_by_one["leading"]
    assert (leader["bidder_no"], leader["bidder_id"], leader["mine"]) == (2, None, False)
    assert [(b["bidder_no"], b["mine"]) for b in seen_by_one["history"]] == [(2, False), (1, True)]
    assert seen_by_one["history"][1]["bidder_id"] == one.party_id
    assert seen_by_one["reserve_fen"] is None and seen_by_seller["reserve_fen"] == 10_000
    assert seen_by_seller["leading"]["bidder_id"] is None
    assert seen_by_operator["leading"]["bidder_id"] == two.party_id
    assert seen_by_one["seconds_left"] == 7_200 and seen_by_one["minimum_bid_fen"] == 10_200


def test_an_auction_is_seen_only_by_the_listing_s_audience(db, world, create, bid):
    invited = world.buyer()
    listing_id = world.listing(
        price_fen=10_000, access={"audience": "parties", "parties": [invited.party_id]}
    )
    a = create(world.p(world.seller), listing_id)
    outsider = world.p(world.buyer())
    with db.read() as s:
        assert auctions.get_auction(s, world.p(invited), a.id).id == a.id
        with pytest.raises(DomainError) as caught:
            auctions.get_auction(s, outsider, a.id)
        assert caught.value.status == 404
        assert auctions.list_auctions(s, outsider)[1] == 0
        assert auctions.list_auctions(s, world.p(invited))[1] == 1
    refused(lambda: bid(outsider, a.id, 10_000), 404, "EXC-LST-VISIBLE")


def test_the_seller_cancels_only_before_any_bid(db, world, create, bid):
    listing_id = world.listing(price_fen=10_000, quantity=3)
    a = create(world.p(world.seller), listing_id, quantity=2)
    b = create(world.p(world.seller), listing_id, quantity=1)
    assert world.remaining(listing_id) == 0
    with db.write() as s:
        auctions.cancel_auction(s, world.p(world.seller), a.id, now=NOW)
    assert load(db, a.id).state == "cancelled" and world.remaining(listing_id) == 2
    bid(world.p(world.buyer()), b.id, 10_000)

    def cancel_b() -> None:
        with db.write() as s:
            auctions.cancel_auction(s, world.p(world.seller), b.id, now=NOW)

    refused(cancel_b, 409, "EXC-AUC-STATE")
    refused(lambda: bid(world.p(world.buyer()), a.id, 10_000), 409, "EXC-AUC-STATE")


def test_the_clock_closes_due_auctions_once(db, world, create, bid):
    listing_id = world.listing(price_fen=10_000, quantity=5)
    due = create(world.p(world.seller), listing_id)
    unsold = create(world.p(world.seller), listing_id)
    running = create(world.p(world.seller), listing_id, ends_at=END + timedelta(hours=1))
    scheduled = create(
        world.p(world.seller),
        listing_id,
        starts_at=NOW + timedelta(minutes=30),
        ends_at=END + timedelta(hours=1),
    )
    winner = world.buyer()
    bid(world.p(winner), due.id, 10_000)
    report = auctions.close_due_auctions(db, now=END)
    assert report.sold == [due.number] and report.unsold == [unsold.number]
    assert report.opened == 1 and report.failed == []
    assert load(db, scheduled.id).state == "open"
    assert load(db, running.id).state == "open"
    again = auctions.close_due_auctions(db, now=END + timedelta(minutes=1))
    assert again.sold == [] and again.unsold == []
    assert balances(db, winner.party_id) == (FUNDS - 10_000, 10_000)
