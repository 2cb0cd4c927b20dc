"""Orders racing, on both databases, through the real ``Database`` (each thread its own
session and transaction, as concurrent requests have): 100 buyers for 10 licences — exactly 10
orders; twins of one request — one order; and the books balance afterwards."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from factories import make_actor
from orders_support import NOW, balances, race
from sqlalchemy import func, select, text

from datafactor import audit
from datafactor.db import Database
from datafactor.errors import DomainError
from datafactor.exchange import orders
from datafactor.exchange.models import ExchangeContract, ExchangeListing, ExchangeOrder
from datafactor.identity.models import Party
from datafactor.registry.models import RegistryRight
from datafactor.settlement import books

BUYERS = 100
LICENCES = 10
PRICE = 2_500


def _racing_db(db: Database) -> Database:
    return Database(db.url, pool_size=24)


def test_a_hundred_buyers_for_ten_licences(db, market):
    listing_id = market.listing(price_fen=PRICE, quantity=LICENCES)
    buyers = [market.buyer(10 * PRICE)[1] for _ in range(BUYERS)]
    racing = _racing_db(db)
    try:
        for principal in buyers:  # as the entry points do before an order
            orders.open_buyer_accounts(racing, principal)
        outcomes = race(racing, [(p, listing_id, 1, f"buy-{p.party_id}") for p in buyers])
    finally:
        racing.dispose()
    placed = [o for o in outcomes if isinstance(o, orders.Placed)]
    refused = [o for o in outcomes if isinstance(o, DomainError)]
    assert len(placed) == LICENCES
    assert len(refused) == BUYERS - LICENCES
    assert {(e.status, e.rule) for e in refused} == {(409, "EXC-LST-QUANTITY")}  # sold out
    with db.read() as s:
        assert s.get(ExchangeListing, listing_id).remaining_quantity == 0
        assert s.scalar(select(func.count()).select_from(ExchangeOrder)) == LICENCES
        assert s.scalar(select(func.count()).select_from(ExchangeContract)) == LICENCES
    frozen = {p.party_id: balances(db, p.party_id)[1] for p in buyers}
    assert sum(frozen.values()) == LICENCES * PRICE
    winners = {o.order.buyer_id for o in placed}
    assert all(frozen[b] == PRICE for b in winners)
    assert all(frozen[b] == 0 for b in frozen if b not in winners)
    with books.snapshot(db) as s:
        report, _ = books.reconcile(s)
    assert report.balanced and report.sum_fen == 0, report.as_dict()["problems"][:3]
    with db.read() as s:  # the racing trades' audit events make one unbroken chain
        chain = audit.verify_chain(s)
        opened = s.scalar(
            select(func.count())
            .select_from(audit.AuditEvent)
            .where(audit.AuditEvent.action == "exchange:contract:open")
        )
    assert chain.ok, chain
    assert opened == 2 * LICENCES  # the seller's and the buyer's of each contract


def test_twins_of_one_request_place_one_order(db, market):
    listing_id = market.listing(price_fen=PRICE, quantity=5)
    buyer, principal = market.buyer(10 * PRICE)
    racing = _racing_db(db)
    try:
        orders.open_buyer_accounts(racing, principal)
        outcomes = race(racing, [(principal, listing_id, 2, "twin")] * 12)
    finally:
        racing.dispose()
    assert all(isinstance(o, orders.Placed) for o in outcomes), outcomes
    assert len({o.order.id for o in outcomes}) == 1  # type: ignore[attr-defined]
    assert Counter(o.replayed for o in outcomes) == {True: 11, False: 1}  # type: ignore[attr-defined]
    assert balances(db, buyer.party_id) == (8 * PRICE, 2 * PRICE)
    with db.read() as s:
        assert s.get(ExchangeListing, listing_id).remaining_quantity == 3


def test_one_key_for_different_listings_at_once_places_one_order(db, market):
    listings = [market.listing(price_fen=PRICE) for _ in range(6)]
    buyer, principal = market.buyer(10 * PRICE)
    racing = _racing_db(db)
    try:
        orders.open_buyer_accounts(racing, principal)
        outcomes = race(racing, [(principal, listing, 1, "one-key") for listing in listings])
    finally:
        racing.dispose()
    placed = [o for o in outcomes if isinstance(o, orders.Placed)]
    refused = [o for o in outcomes if isinstance(o, DomainError)]
    assert len(placed) == 1
    assert all(e.status == 409 and e.rule == "EXC-ORDER-KEY" for e in refused), refused
    assert balances(db, buyer.party_id) == (9 * PRICE, PRICE)


def _wait_for_a_lock_wait(db: Database) -> None:
    """Until a transaction waits for a row lock (PostgreSQL)."""
    with db.engine.connect() as watch:
        for _ in range(4000):
            waiting = watch.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            ).scalar_one()
            watch.rollback()  # a new statistics snapshot for the next look
            if waiting:
                return
            threading.Event().wait(0.005)
    raise AssertionError("the order never reached the listing's lock")


# SQLite runs one writer at a time: nothing can change while an order waits.
@pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)
@pytest.mark.parametrize("change", ["right_moved", "seller_suspended"])
def test_a_change_made_while_an_order_waits_for_the_listing_refuses_it(db, market, change):
    """An order queued on the listing's lock (behind another trade) is checked against the
    registry and the seller as they are once it holds the lock: a right that moved, or a seller
    suspended, while it waited refuses it — even when an earlier trade passed the same checks."""
    listing_id = market.listing(price_fen=PRICE, quantity=5)
    _buyer, principal = market.buyer(10 * PRICE)
    racing = _racing_db(db)
    outcome: list[object] = []

    def second() -> None:
        try:
            with racing.write() as s:
                outcome.append(
                    orders.place_order(s, principal, listing_id, 1, key="second", now=NOW)
                )
        except DomainError as exc:
            outcome.append(exc)

    try:
        orders.open_buyer_accounts(racing, principal)
        with racing.write() as s:  # passes the registry's checks (and is remembered)
            orders.place_order(s, principal, listing_id, 1, key="first", now=NOW)
        waiting = threading.Thread(target=second)
        with racing.write() as holder:  # another trade holds the listing's row
            holder.execute(
                select(ExchangeListing.id).where(ExchangeListing.id == listing_id).with_for_update()
            ).one()
            waiting.start()
            _wait_for_a_lock_wait(db)
            with db.write() as s:  # meanwhile, committed while the order waits
                if change == "right_moved":
                    s.get(RegistryRight, market.product.right_id).holder_id = make_actor(
                        db
                    ).party_id
                else:
                    seller = s.get(ExchangeListing, listing_id).seller_id
                    s.get(Party, seller).status = "suspended"
        waiting.join()
    finally:
        racing.dispose()
    [refused] = outcome
    assert isinstance(refused, DomainError), refused
    expected = "EXC-LST-CERT" if change == "right_moved" else "EXC-LST-SELLER"
    assert (refused.status, refused.rule) == (409, expected)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(ExchangeOrder)) == 1
        assert s.get(ExchangeListing, listing_id).remaining_quantity == 4
