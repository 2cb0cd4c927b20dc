"""Races on the mall order's write path: the idempotency key read once the listing's lock is
held (``listings.trade_listing``), and the contract's and the order's numbers drawn together
(``serials.take_many``). One key raced over one listing, another listing and none places one
order and answers every other request with that order or a refusal (never a server error);
the year's first numbers, drawn by many trades at once, are distinct."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from orders_support import NOW, balances, race
from sqlalchemy import func, select, text

from datafactor.db import Database
from datafactor.errors import DomainError
from datafactor.exchange import orders, serials
from datafactor.exchange.models import ExchangeListing, ExchangeOrder
from datafactor.identity.models import Party
from datafactor.settlement import books

PRICE = 2_500


@pytest.mark.parametrize("terms", [{"price_fen": PRICE}, {"price_model": "free", "price_fen": 0}])
def test_one_key_raced_over_a_listing_another_and_none_places_one_order(db, market, terms):
    """Paid listings (the twins queue on the buyer's balance rows) and free ones (nothing but
    the order's unique key orders them)."""
    first, second = market.listing(quantity=5, **terms), market.listing(**terms)
    buyer, principal = market.buyer(10 * PRICE)
    calls = (
        [(principal, first, 1, "k")] * 4
        + [(principal, second, 1, "k")] * 3
        + [(principal, "no-such-listing", 1, "k")] * 2
        + [(principal, first, 2, "k")] * 2
    )
    racing = Database(db.url, pool_size=len(calls) + 2)
    try:
        orders.open_buyer_accounts(racing, principal)
        outcomes = race(racing, calls)
    finally:
        racing.dispose()
    placed = [o for o in outcomes if isinstance(o, orders.Placed)]
    assert {o.order.id for o in placed} and len({o.order.id for o in placed}) == 1, outcomes
    assert sum(not o.replayed for o in placed) == 1
    refused = {(e.status, e.rule) for e in outcomes if isinstance(e, DomainError)}
    assert refused <= {(409, "EXC-ORDER-KEY"), (404, "EXC-LST-VISIBLE")}, outcomes
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(ExchangeOrder)) == 1
    winner = placed[0].order
    assert balances(db, buyer.party_id) == (10 * PRICE - winner.amount_fen, winner.amount_fen)
    with books.snapshot(db) as s:
        report, _ = books.reconcile(s)
    assert report.balanced, report.as_dict()["problems"][:3]


def test_the_years_first_numbers_drawn_together_at_once_are_distinct(db):
    racing = Database(db.url, pool_size=12)
    barrier = threading.Barrier(12)

    def one(n: int) -> list[tuple[int, int]]:
        barrier.wait()
        out = []
        for _ in range(3):
            with racing.write() as s:
                c, o = serials.take_many(s, [("C", 2041), ("O", 2041)])
            out.append((c, o))
        return out

    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            taken = [pair for got in pool.map(one, range(12)) for pair in got]
    finally:
        racing.dispose()
    for numbers in ([c for c, _ in taken], [o for _, o in taken]):
        assert len(set(numbers)) == len(numbers) == 36
        assert min(numbers) == 1


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)
def test_a_retry_waits_for_a_trade_holding_the_listing_and_answers_its_order(db, market, place):
    """PostgreSQL: the retry of a placed order while another trade holds the listing's row is
    answered (the same order) once that trade commits — not refused, not deadlocked."""
    listing_id = market.listing(price_fen=PRICE, quantity=5)
    _buyer, principal = market.buyer(10 * PRICE)
    first = place(principal, listing_id, 1, key="mine")
    other_buyer, other = market.buyer(10 * PRICE)
    racing = Database(db.url, pool_size=4)
    outcome: list[object] = []
    release = threading.Event()

    def other_trade() -> None:
        with racing.write() as s:
            orders.place_order(s, other, listing_id, 1, key="other", now=NOW)
            release.wait(10)

    def retry() -> None:
        try:
            with racing.write() as s:
                outcome.append(orders.place_order(s, principal, listing_id, 1, key="mine", now=NOW))
        except Exception as exc:  # whatever it got: the assertion names it
            outcome.append(exc)

    try:
        orders.open_buyer_accounts(racing, other)
        holder = threading.Thread(target=other_trade)
        holder.start()
        threading.Event().wait(0.5)
        retrying = threading.Thread(target=retry)
        retrying.start()
        threading.Event().wait(0.5)
        release.set()
        holder.join(10)
        retrying.join(10)
    finally:
        racing.dispose()
    [answer] = outcome
    assert isinstance(answer, orders.Placed), answer
    assert answer.replayed and answer.order.id == first.order.id
    assert balances(db, other_buyer.party_id) == (9 * PRICE, PRICE)


def test_orders_retries_and_cancellations_on_one_listing_at_once_all_finish(db, market):
    """New orders, retries of placed ones (their keys read once the listing's lock is held) and
    the cancellations of those orders (which lock the order, then the listing) at once: each is
    answered — no deadlock, no server error — and the licences and the books add up."""
    listing_id = market.listing(price_fen=PRICE, quantity=20)
    placed = []
    for _ in range(4):
        buyer, principal = market.buyer(10 * PRICE)
        orders.open_buyer_accounts(db, principal)
        with db.write() as s:
            first = orders.place_order(s, principal, listing_id, 1, key="k", now=NOW)
        placed.append((buyer, principal, first.order.id))
    newcomers = [market.buyer(10 * PRICE) for _ in range(6)]
    racing = Database(db.url, pool_size=20)
    barrier = threading.Barrier(4 * 2 + 6)

    def cancel(principal, order_id):  # type: ignore[no-untyped-def]
        barrier.wait()
        with racing.write() as s:
            return orders.cancel_order(s, principal, order_id, now=NOW)

    def place(principal, key):  # type: ignore[no-untyped-def]
        barrier.wait()
        with racing.write() as s:
            return orders.place_order(s, principal, listing_id, 1, key=key, now=NOW)

    try:
        for _, principal in newcomers:
            orders.open_buyer_accounts(racing, principal)
        with ThreadPoolExecutor(max_workers=14) as pool:
            cancels = [pool.submit(cancel, p, o) for _, p, o in placed]
            retries = [pool.submit(place, p, "k") for _, p, _ in placed]
            fresh = [pool.submit(place, p, "new") for _, p in newcomers]
            results = [f.result(timeout=60) for f in (*cancels, *retries, *fresh)]
    finally:
        racing.dispose()
    assert all(isinstance(r, orders.Placed) for r in results), results
    retried = results[4:8]
    assert [r.order.id for r in retried] == [o for _, _, o in placed]  # type: ignore[attr-defined]
    assert all(r.replayed for r in retried)  # type: ignore[attr-defined]
    with db.read() as s:
        listing = s.get(ExchangeListing, listing_id)
        assert listing is not None and listing.remaining_quantity == 20 - 6
    for buyer, _, _ in placed:
        assert balances(db, buyer.party_id) == (10 * PRICE, 0)
    for buyer, _ in newcomers:
        assert balances(db, buyer.party_id) == (9 * PRICE, PRICE)
    with books.snapshot(db) as s:
        report, _ = books.reconcile(s)
    assert report.balanced, report.as_dict()["problems"][:3]


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)
def test_a_buyer_suspended_while_its_order_waits_for_the_listing_is_refused(db, market):
    """PostgreSQL: the buyer's card is read once the listing's lock is held (in a statement of
    its own), so a buyer suspended while its order queued behind another trade is refused and
    nothing of the order remains."""
    listing_id = market.listing(price_fen=PRICE, quantity=5)
    buyer, principal = market.buyer(10 * PRICE)
    racing = Database(db.url, pool_size=4)
    outcome: list[object] = []

    def waiting_order() -> None:
        try:
            with racing.write() as s:
                outcome.append(orders.place_order(s, principal, listing_id, 1, key="k", now=NOW))
        except DomainError as exc:
            outcome.append(exc)

    try:
        orders.open_buyer_accounts(racing, principal)
        waiting = threading.Thread(target=waiting_order)
        with racing.write() as holder:  # another trade holds the listing's row
            holder.execute(
                select(ExchangeListing.id).where(ExchangeListing.id == listing_id).with_for_update()
            ).one()
            waiting.start()
            _wait_for_a_lock_wait(db)
            with db.write() as s:
                party = s.get(Party, buyer.party_id)
                assert party is not None
                party.status = "suspended"
        waiting.join(20)
    finally:
        racing.dispose()
    [refused] = outcome
    assert isinstance(refused, DomainError), refused
    assert refused.rule in ("EXC-LST-BUYER", "EXC-LST-VISIBLE"), refused
    assert balances(db, buyer.party_id) == (10 * PRICE, 0)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(ExchangeOrder)) == 0


def _wait_for_a_lock_wait(db: Database) -> None:
    """Until a transaction waits for a row lock (PostgreSQL)."""
    with db.engine.connect() as watch:
        for _ in range(4000):
            waiting = watch.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            ).scalar_one()
            watch.rollback()
            if waiting:
                return
            threading.Event().wait(0.005)
    raise AssertionError("the order never reached the listing's lock")
