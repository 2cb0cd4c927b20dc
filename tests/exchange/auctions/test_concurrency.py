"""Concurrent bids on both databases: bidders in threads, each retrying some bids with the same
idempotency key. Afterwards there is exactly one leader, it holds the highest bid, every
accepted bid beat the one before it by at least the increment, every retried key answered one
bid, and each bidder froze its deposit exactly once."""

from __future__ import annotations

import itertools
import random
import threading
from collections import defaultdict

from auctions_support import NOW, balances

from datafactor.errors import DomainError
from datafactor.exchange import auctions
from datafactor.exchange.models import ExchangeAuction, ExchangeBid

BIDDERS = 8
ROUNDS = 6
INCREMENT = 100
DEPOSIT = 1_000


def test_concurrent_bids_leave_one_leader_and_no_bid_below_the_increment(db, world, create):
    a = create(
        world.p(world.seller),
        world.listing(price_fen=10_000),
        start_fen=10_000,
        increment_fen=INCREMENT,
        deposit_fen=DEPOSIT,
    )
    bidders = [world.buyer() for _ in range(BIDDERS)]
    principals = [world.p(b) for b in bidders]
    auctions.open_accounts(db, [b.party_id for b in bidders])
    barrier = threading.Barrier(BIDDERS)
    answers: dict[str, set[str]] = defaultdict(set)
    refusals: list[str] = []
    crashes: list[BaseException] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        rng = random.Random(i)
        try:
            barrier.wait()
            for n in range(ROUNDS):
                amount = 10_000 + n * 300 + rng.randrange(0, 8) * 50
                key = f"bidder-{i}-{n}"
                for _attempt in range(1 + rng.randrange(2)):  # sometimes retried, same key
                    try:
                        with db.write() as s:
                            placed = auctions.place_bid(
                                s, principals[i], a.id, amount, key=key, now=NOW
                            )
                            bid_id = placed.bid.id
                        with lock:
                            answers[key].add(bid_id)
                    except DomainError as exc:
                        with lock:
                            refusals.append(str(exc.params.get("rule")))
        except BaseException as exc:  # reported below
            crashes.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(BIDDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not crashes, crashes
    assert set(refusals) <= {"EXC-AUC-INCREMENT", "EXC-AUC-BIDDER"}, set(refusals)

    with db.read() as s:
        auction = s.get(ExchangeAuction, a.id)
        bids = s.query(ExchangeBid).filter_by(auction_id=a.id).all()
    assert auction is not None and len(bids) >= 2
    leaders = [b for b in bids if b.status == "leading"]
    assert len(leaders) == 1
    amounts = sorted(b.amount_fen for b in bids)
    assert leaders[0].amount_fen == amounts[-1] == auction.leading_fen
    assert leaders[0].id == auction.leading_bid_id and auction.bids == len(bids)
    assert amounts[0] >= 10_000
    assert all(later - earlier >= INCREMENT for earlier, later in itertools.pairwise(amounts))
    # A retried key answered the bid it placed, never a second one.
    assert all(len(ids) == 1 for ids in answers.values())
    assert len({b.idempotency_key for b in bids}) == len(bids)
    # One deposit per bidder who bid, none for the others.
    bid_by = {b.bidder_id for b in bids}
    for bidder in bidders:
        frozen = balances(db, bidder.party_id)[1]
        assert frozen == (DEPOSIT if bidder.party_id in bid_by else 0)
