"""The bank-style crash test of the ledger core: a worker posting under load is killed with
SIGKILL at random moments, and its clients retry with the same idempotency keys.

The worker is a forked child of the test process with its own database connections and three
threads — each a client paying from its own payer's accounts: deposits, freezes, captures
(seller, exchange fee, treasury share; sometimes the rest of the hold back), releases and
withdrawals, some of them refused (insufficient funds). Every call has its idempotency key; a
thread acknowledges a call (writes ``key journal`` to a pipe) only after it returned, and now and
then sends the same call again at once. After each kill the next worker goes back a few calls
and retries them with the same keys. After every kill: every acknowledged call is in the books
exactly once, with the journal it was acknowledged with; a refused call was meant to be refused;
reconciliation balances (Σ = 0). At the end one worker runs to the furthest call any worker may
have reached, without a kill, and every balance must equal the one a pure model of the same calls
gives — no payment lost, none made twice. 25 kills per database in ``make test``, 500 in
``make soak`` (``DATAFACTOR_SOAK=1``). Modelled on ``tests/ledger/test_crash.py``.
"""

from __future__ import annotations

import itertools
import os
import random
import select
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from factories import make_actor
from sqlalchemy import select as sql_select

from datafactor.db import Database
from datafactor.settlement import LineKind, Payout, SettlementError, books, services
from datafactor.settlement.domain import AccountKind, system_account_ids
from datafactor.settlement.models import SettlementBalance, SettlementJournal

SOAK = bool(os.environ.get("DATAFACTOR_SOAK"))
THREADS = 3
SEED = 20261126


@dataclass(frozen=True)
class Call:
    """One client call: its key, what it does, and whether the model says it succeeds."""

    key: str
    kind: str  # deposit | withdraw | freeze | capture | release
    amount: int = 0
    reference: str = ""
    hold: tuple[str, int, str] | None = None  # the freeze it draws on: (key, amount, reference)
    payouts: tuple[tuple[str, int], ...] = ()  # (seller | fee | treasury, fen)
    rest: bool = False
    ok: bool = True


@dataclass
class Model:
    """The expected books, kept by the generator as it writes the calls."""

    available: int = 0
    frozen: int = 0
    seller: int = 0
    fee: int = 0
    treasury: int = 0
    bank: int = 0
    holds: dict[str, list[int]] = field(default_factory=dict)  # freeze key -> [amount, left]


def calls(thread: int) -> Iterator[tuple[Call, Model]]:
    """The thread's calls, deterministic and endless, each with the model after it."""
    rng = random.Random(SEED * 10 + thread)
    m = Model()
    freezes: dict[str, tuple[str, int, str]] = {}
    n = 0
    while True:
        key = f"t{thread}-{n}"
        r = rng.random()
        open_holds = [k for k, (_, left) in m.holds.items() if left > 0]
        if n == 0 or r < 0.10:
            amount = 500_000 if n == 0 else rng.randint(1_000, 50_000)
            m.available += amount
            m.bank -= amount
            call = Call(key, "deposit", amount)
        elif r < 0.45 or (r < 0.80 and not open_holds):
            amount = rng.randint(100, 40_000) if rng.random() < 0.95 else 10**9
            ok = amount <= m.available
            reference = f"order:{key}"
            if ok:
                m.available -= amount
                m.frozen += amount
                m.holds[key] = [amount, amount]
                freezes[key] = (key, amount, reference)
            call = Call(key, "freeze", amount, reference, ok=ok)
        elif r < 0.70:
            hold_key = rng.choice(open_holds)
            left = m.holds[hold_key][1]
            pay = rng.randint(1, left)
            fee = pay // 20
            treasury = pay // 50 if rng.random() < 0.5 else 0
            seller = pay - fee - treasury
            rest = rng.random() < 0.5
            payouts = tuple(
                (who, fen)
                for who, fen in (("seller", seller), ("fee", fee), ("treasury", treasury))
                if fen
            )
            m.seller += seller
            m.fee += fee
            m.treasury += treasury
            back = left - pay if rest else 0
            m.frozen -= pay + back
            m.available += back
            m.holds[hold_key][1] = left - pay - back
            call = Call(key, "capture", hold=freezes[hold_key], payouts=payouts, rest=rest)
        elif r < 0.80:
            hold_key = rng.choice(open_holds)
            left = m.holds[hold_key][1]
            amount = rng.randint(1, left)
            m.frozen -= amount
            m.available += amount
            m.holds[hold_key][1] = left - amount
            call = Call(key, "release", amount, hold=freezes[hold_key])
        else:
            amount = rng.randint(100, 60_000)
            ok = amount <= m.available
            if ok:
                m.available -= amount
                m.bank += amount
            call = Call(key, "withdraw", amount, ok=ok)
        n += 1
        yield call, m


def _payouts(call: Call, seller: str) -> list[Payout]:
    kinds = {"seller": LineKind.PAYOUT, "fee": LineKind.FEE, "treasury": LineKind.TREASURY}
    return [
        Payout(kinds[who], fen, seller if who == "seller" else None) for who, fen in call.payouts
    ]


def _execute(db: Database, call: Call, payer: str, seller: str, holds: dict[str, str]) -> str:
    """Make the call; the journal id, or ``-`` when it was refused."""
    try:
        with db.write() as s:
            if call.kind == "deposit":
                return services.deposit_funds(
                    s, payer, call.amount, key=call.key, actor="crash"
                ).journal.id
            if call.kind == "withdraw":
                return services.withdraw_funds(
                    s, payer, call.amount, key=call.key, actor="crash"
                ).journal.id
            if call.kind == "freeze":
                return services.freeze(
                    s, payer, call.amount, call.reference, key=call.key, actor="crash"
                ).journal.id
            assert call.hold is not None
            hold_key, amount, reference = call.hold
            if hold_key not in holds:  # the freeze's own key answers its hold (a replay)
                replay = services.freeze(s, payer, amount, reference, key=hold_key, actor="crash")
                assert replay.replayed and replay.hold_id
                holds[hold_key] = replay.hold_id
            if call.kind == "release":
                return services.release(
                    s, holds[hold_key], call.amount, key=call.key, actor="crash"
                ).journal.id
            return services.capture(
                s,
                holds[hold_key],
                _payouts(call, seller),
                key=call.key,
                actor="crash",
                release_remainder=call.rest,
            ).journal.id
    except SettlementError:
        return "-"


def _worker(
    url: str,
    payers: list[str],
    seller: str,
    starts: list[int],
    stops: list[int],
    refused: frozenset[str],
    write_fd: int,
    seed: int,
) -> None:
    db = Database(url, pool_size=THREADS + 1)
    rng = random.Random(seed)
    duplicates = [random.Random(rng.random()) for _ in range(THREADS)]

    def client(t: int) -> None:
        holds: dict[str, str] = {}
        try:
            for n, (call, _) in enumerate(_prefix(t, stops[t])):
                # A refusal is an answer: the client does not send that call again (a refused
                # key is not spent, so a retry later would be a new request against a new
                # balance). A call without an answer, or with a journal, is sent again.
                if n < starts[t] or call.key in refused:
                    continue
                for _ in range(2 if duplicates[t].random() < 0.15 else 1):
                    journal = _execute(db, call, payers[t], seller, holds)
                    os.write(write_fd, f"{call.key} {journal}\n".encode())
        except Exception:  # a bug, not a kill: tell the test
            os.write(write_fd, f"ERROR {traceback.format_exc()!r}\n".encode())

    threads = [threading.Thread(target=client, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _run(  # type: ignore[no-untyped-def]
    db: Database, payers, seller, starts, stops, refused, rng: random.Random, *, kill: bool
) -> bytes:
    db.dispose()  # no pooled connection may cross the fork
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        try:
            os.close(read_fd)
            _worker(db.url, payers, seller, starts, stops, refused, write_fd, rng.randrange(2**31))
        finally:
            os._exit(0)
    os.close(write_fd)
    received = b""
    first_ack: float | None = None
    delay = rng.uniform(0.02, 0.3)
    deadline = time.monotonic() + (20 if kill else 300)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([read_fd], [], [], 0.01)
        if ready:
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                break
            received += chunk
            first_ack = first_ack or time.monotonic()
        if kill and first_ack is not None and time.monotonic() - first_ack >= delay:
            break
    if kill:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    while chunk := os.read(read_fd, 1 << 16):  # acknowledgements written before the kill count
        received += chunk
    os.close(read_fd)
    return received


def _stored(db: Database) -> dict[str, str]:
    with db.read() as s:
        rows = s.execute(sql_select(SettlementJournal.idempotency_key, SettlementJournal.id))
        return {k: j for k, j in rows if k.startswith("t")}


def _crash_loop(db: Database, kills: int) -> None:
    payers = [make_actor(db).party_id for _ in range(THREADS)]
    seller = make_actor(db).party_id
    rng = random.Random(SEED)
    acked: dict[str, str] = {}
    refused: set[str] = set()
    furthest = [0] * THREADS  # one past the last call each thread acknowledged
    plan = [dict[str, Call]() for _ in range(THREADS)]
    for round_ in range(kills + 1):
        last = round_ == kills
        # Go back a few calls: the retries of a client that did not hear its answer.
        starts = [max(0, f - rng.randint(0, 6)) for f in furthest]
        stops = [f + 2 for f in furthest] if last else [f + 100_000 for f in furthest]
        received = _run(db, payers, seller, starts, stops, frozenset(refused), rng, kill=not last)
        text = received.decode()
        assert "ERROR" not in text, text[:3000]
        for line in text.splitlines():
            key, journal = line.split()
            t, n = (int(x) for x in key[1:].split("-"))
            call = _call(plan, t, n)
            assert (journal != "-") == call.ok, f"{key}: the model says ok={call.ok}, got {journal}"
            furthest[t] = max(furthest[t], n + 1)
            if journal == "-":
                refused.add(key)
                continue
            assert acked.setdefault(key, journal) == journal, f"{key} answered two journals"
        stored = _stored(db)
        lost = [k for k, j in acked.items() if stored.get(k) != j]
        assert not lost, f"round {round_}: acknowledged calls lost or changed: {lost[:5]}"
        with books.snapshot(db) as s:
            report, _ = books.reconcile(s)
        assert report.balanced and report.sum_fen == 0, report.as_dict()["problems"][:3]
    assert len(acked) > kills  # the workers really got work done between kills
    # After the last run every call up to the furthest any worker could have reached is done:
    # the books are exactly the model's.
    models = [_model_at(t, stops[t]) for t in range(THREADS)]
    with db.read() as s:
        accounts = services.party_accounts(s, [*payers, seller])
        balance = lambda a: s.get(SettlementBalance, a).balance_fen  # type: ignore[union-attr]  # noqa: E731
        for t, m in enumerate(models):
            assert balance(accounts[payers[t]][AccountKind.AVAILABLE]) == m.available
            assert balance(accounts[payers[t]][AccountKind.FROZEN]) == m.frozen
        assert balance(accounts[seller][AccountKind.AVAILABLE]) == sum(m.seller for m in models)
        total = lambda kind: sum(balance(a) for a in system_account_ids(kind))  # noqa: E731
        assert total(AccountKind.FEE_INCOME) == sum(m.fee for m in models)
        assert total(AccountKind.TREASURY) == sum(m.treasury for m in models)
        assert total(AccountKind.BANK) == sum(m.bank for m in models)
    ok_keys = {c.key for t in range(THREADS) for c, _ in _prefix(t, stops[t]) if c.ok}
    assert set(_stored(db)) == ok_keys  # every successful call once, no refused one


def _prefix(t: int, stop: int) -> Iterator[tuple[Call, Model]]:
    """The first ``stop`` calls (the generator is not advanced past them: its model is the
    state after call ``stop - 1``)."""
    return itertools.islice(calls(t), stop)


def _model_at(t: int, stop: int) -> Model:
    model = Model()
    for _, after in _prefix(t, stop):
        model = after
    return model


def _call(plan: list[dict[str, Call]], t: int, n: int) -> Call:
    key = f"t{t}-{n}"
    if key not in plan[t]:
        for call, _ in _prefix(t, n + 50):
            plan[t][call.key] = call
    return plan[t][key]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_acknowledged_payments_survive_sigkill_exactly_once(db: Database) -> None:
    _crash_loop(db, kills=25)


@pytest.mark.soak
@pytest.mark.skipif(not SOAK, reason="long run: make soak (DATAFACTOR_SOAK=1)")
def test_acknowledged_payments_survive_five_hundred_sigkills(db: Database) -> None:
    _crash_loop(db, kills=500)
