"""Concurrent callers on both databases: the balance rows are locked in one order, so nothing is
overdrawn, exactly the affordable number of operations succeed, nothing deadlocks, and twins with
one idempotency key post one journal between them."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from factories import make_actor
from settlement_support import assert_balanced
from sqlalchemy import func, select

from datafactor.db import Database
from datafactor.settlement import (
    IdempotencyConflict,
    InsufficientFunds,
    LineKind,
    Payout,
    services,
)
from datafactor.settlement.models import SettlementBalance, SettlementJournal

THREADS = 100


@pytest.fixture
def wide(db_url: str):  # type: ignore[no-untyped-def]
    database = Database(db_url, pool_size=20)
    yield database
    database.dispose()


def race(n: int, work: Callable[[int], object]) -> Counter[str]:
    """Run ``work(i)`` for i < n on n threads started together; count outcomes by type."""
    barrier = threading.Barrier(min(n, 50))
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def one(i: int) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=30)
        try:
            result = work(i)
            name = "replayed" if getattr(result, "replayed", False) else "ok"
        except (InsufficientFunds, IdempotencyConflict) as exc:
            name = type(exc).__name__
        with lock:
            outcomes[name] += 1

    with ThreadPoolExecutor(max_workers=n) as pool:
        list(pool.map(one, range(n)))
    return outcomes


def available(db: Database, party: str) -> tuple[int, int]:
    with db.read() as s:
        accounts = services.party_accounts(s, [party])[party]
        get = lambda kind: s.get(SettlementBalance, accounts[kind]).balance_fen  # type: ignore[union-attr]  # noqa: E731
        return get(services.AccountKind.AVAILABLE), get(services.AccountKind.FROZEN)


def test_a_hundred_freezes_of_100_fen_on_1000_fen_exactly_ten_succeed(wide, fund):
    party = fund(1_000)

    def freeze(i: int) -> object:
        with wide.write() as s:
            return services.freeze(s, party, 100, f"order:{i}", key=f"f{i}", actor="buyer")

    outcomes = race(THREADS, freeze)
    assert outcomes == {"ok": 10, "InsufficientFunds": 90}
    assert available(wide, party) == (0, 1_000)
    assert_balanced(wide)


def test_concurrent_withdrawals_never_overdraw(wide, fund):
    party = fund(1_000)

    def withdraw(i: int) -> object:
        with wide.write() as s:
            return services.withdraw_funds(s, party, 300, key=f"w{i}", actor="t")

    outcomes = race(40, withdraw)
    assert outcomes == {"ok": 3, "InsufficientFunds": 37}
    assert available(wide, party) == (100, 0)
    assert_balanced(wide)


def test_twins_with_one_key_post_one_journal(wide, fund):
    party = fund(1_000)

    def twin(i: int) -> object:
        with wide.write() as s:
            return services.freeze(s, party, 250, "order:twin", key="same-key", actor="t")

    outcomes = race(30, twin)
    assert outcomes == {"ok": 1, "replayed": 29}
    with wide.read() as s:
        count = s.scalar(
            select(func.count())
            .select_from(SettlementJournal)
            .where(SettlementJournal.idempotency_key == "same-key")
        )
    assert count == 1
    assert available(wide, party) == (750, 250)


def test_crossing_captures_and_deposits_do_not_deadlock(wide, db, fund):
    # Buyers pay each other's accounts while depositing: every transaction locks several rows,
    # in different combinations; the fixed order keeps them from waiting on each other in a ring.
    buyers = [fund(50_000) for _ in range(4)]
    holds = []
    for i in range(40):
        with wide.write() as s:
            hold = services.freeze(s, buyers[i % 4], 1_000, f"order:{i}", key=f"f{i}", actor="t")
            holds.append((i, hold.hold_id))

    def work(i: int) -> object:
        with wide.write() as s:
            if i % 2:
                return services.deposit_funds(s, buyers[i % 4], 10, key=f"d{i}", actor="t")
            n, hold = holds[i]
            payee = buyers[(n + 1) % 4]
            return services.capture(
                s,
                hold,
                [Payout(LineKind.PAYOUT, 900, payee), Payout(LineKind.FEE, 100)],
                key=f"c{i}",
                actor="t",
            )

    outcomes = race(40, work)
    assert outcomes == {"ok": 40}
    assert_balanced(wide)


def test_the_first_operations_of_a_new_party_open_its_accounts_once(wide, db):
    party = make_actor(db).party_id

    def deposit(i: int) -> object:
        with wide.write() as s:
            return services.deposit_funds(s, party, 100, key=f"d{i}", actor="t")

    assert race(20, deposit) == {"ok": 20}
    with wide.read() as s:
        assert len(services.party_accounts(s, [party])[party]) == 2
    assert available(wide, party) == (2_000, 0)
    assert_balanced(wide)


def test_openings_deposits_and_captures_together_do_not_deadlock(wide, db, fund):
    # The audit chain's head is the last lock every transaction takes: a deposit holding the
    # custody account and a capture opening its payee's accounts never wait on each other.
    buyer = fund(100_000)
    fresh = [make_actor(db).party_id for _ in range(20)]
    holds = []
    for i in range(20):
        with wide.write() as s:
            holds.append(
                services.freeze(s, buyer, 1_000, f"order:{i}", key=f"f{i}", actor="t").hold_id
            )

    def work(i: int) -> object:
        with wide.write() as s:
            if i % 2:
                return services.deposit_funds(s, fresh[i // 2], 500, key=f"d{i}", actor="t")
            hold = holds[i // 2]
            assert hold is not None
            return services.capture(
                s,
                hold,
                [Payout(LineKind.PAYOUT, 1_000, fresh[(i // 2 + 3) % 20])],
                key=f"c{i}",
                actor="t",
            )

    assert race(40, work) == {"ok": 40}
    assert_balanced(wide)
