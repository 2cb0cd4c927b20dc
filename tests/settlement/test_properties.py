"""Random sequences of money operations keep the ledger's invariants.

In memory (the pure rules of ``domain``, hundreds of sequences) and on both databases (the
services, fewer sequences): deposits, withdrawals, freezes, partial and full releases, captures
with random splits, refunds — many of them refused — and replays of earlier keys. Whatever
happens: all balances sum to 0; each balance is the sum of its lines and its last line's balance
after; no available or frozen balance is below 0; frozen funds equal what the holds keep frozen;
a refusal changes nothing; a replayed key changes nothing and answers the same journal; a key
reused with other parameters is refused."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from factories import make_actor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datafactor.db import Database
from datafactor.settlement import (
    IdempotencyConflict,
    LineKind,
    Payout,
    SettlementError,
    books,
    services,
)
from datafactor.settlement.domain import (
    CHART,
    SYSTEM_ACCOUNT_IDS,
    AccountKind,
    AccountState,
    HoldState,
    Side,
    apply_lines,
    plan_capture,
    plan_deposit,
    plan_freeze,
    plan_release,
    plan_withdrawal,
)
from datafactor.settlement.models import SettlementBalance
from datafactor.settlement.rulebook import load_settlement_rules

RULES = load_settlement_rules()
PAYERS = 3
amounts = st.integers(min_value=1, max_value=5_000)
ops = st.one_of(
    st.tuples(st.just("deposit"), st.integers(0, PAYERS - 1), amounts),
    st.tuples(st.just("withdraw"), st.integers(0, PAYERS - 1), amounts),
    st.tuples(st.just("freeze"), st.integers(0, PAYERS - 1), amounts),
    st.tuples(st.just("release"), st.integers(0, 20), st.one_of(st.none(), amounts)),
    st.tuples(
        st.just("capture"),
        st.integers(0, 20),
        st.tuples(amounts, st.integers(0, 300), st.integers(0, 100), st.booleans()),
    ),
    st.tuples(st.just("replay"), st.integers(0, 40), st.booleans()),
)

# ------------------------------------------------------------------------------ in memory


@dataclass
class MemoryBook:
    """The domain rules applied to balances kept in a dict: the reference model."""

    states: dict[str, AccountState] = field(default_factory=dict)
    lines: dict[str, list[int]] = field(default_factory=dict)
    holds: list[tuple[int, HoldState]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for kind, account in SYSTEM_ACCOUNT_IDS.items():
            self.states[account] = AccountState(account, kind, 0, 0)
        for p in range(PAYERS + 1):
            for kind in (AccountKind.AVAILABLE, AccountKind.FROZEN):
                account = f"{p}:{kind.value}"
                self.states[account] = AccountState(account, kind, 0, 0, str(p))

    def post(self, lines) -> None:  # type: ignore[no-untyped-def]
        before = {a: (s.balance_fen, s.lines) for a, s in self.states.items()}
        try:
            for x in apply_lines(self.states, lines, RULES):
                self.lines.setdefault(x.account_id, []).append(x.amount_fen)
                assert x.balance_after == sum(self.lines[x.account_id])
        except SettlementError:
            assert before == {a: (s.balance_fen, s.lines) for a, s in self.states.items()}
            raise

    def apply(self, op) -> None:  # type: ignore[no-untyped-def]
        name, a, b = op
        bank = SYSTEM_ACCOUNT_IDS[AccountKind.BANK]
        try:
            if name == "deposit":
                self.post(plan_deposit(f"{a}:available", bank, b))
            elif name == "withdraw":
                self.post(plan_withdrawal(f"{a}:available", bank, b))
            elif name == "freeze":
                self.post(plan_freeze(f"{a}:available", f"{a}:frozen", b))
                self.holds.append((a, HoldState(b)))
            elif name in ("release", "capture") and a < len(self.holds):
                payer, hold = self.holds[a]
                avail, frozen = f"{payer}:available", f"{payer}:frozen"
                if name == "release":
                    lines, amount = plan_release(frozen, avail, hold, b, "order:x", RULES)
                    self.post(lines)
                    self.holds[a] = (
                        payer,
                        HoldState(hold.amount_fen, hold.released_fen + amount, hold.captured_fen),
                    )
                else:
                    seller, fee, treasury, rest = b
                    payees = [(f"{PAYERS}:available", Payout(LineKind.PAYOUT, seller))]
                    payees += (
                        [(SYSTEM_ACCOUNT_IDS[AccountKind.FEE_INCOME], Payout(LineKind.FEE, fee))]
                        if fee
                        else []
                    )
                    payees += (
                        [
                            (
                                SYSTEM_ACCOUNT_IDS[AccountKind.TREASURY],
                                Payout(LineKind.TREASURY, treasury),
                            )
                        ]
                        if treasury
                        else []
                    )
                    plan = plan_capture(frozen, avail, hold, payees, rest, "order:x", RULES)
                    self.post(plan.lines)
                    self.holds[a] = (
                        payer,
                        HoldState(
                            hold.amount_fen,
                            hold.released_fen + plan.released_fen,
                            hold.captured_fen + plan.captured_fen,
                        ),
                    )
        except SettlementError:
            pass

    def check(self) -> None:
        assert sum(s.balance_fen for s in self.states.values()) == 0
        for account, state in self.states.items():
            assert state.balance_fen == sum(self.lines.get(account, []))
            side = CHART[state.kind].side
            assert state.balance_fen >= 0 if side is Side.CREDIT else state.balance_fen <= 0
        for p in range(PAYERS):
            frozen = sum(h.remaining_fen for payer, h in self.holds if payer == p)
            assert self.states[f"{p}:frozen"].balance_fen == frozen


@settings(max_examples=300)
@given(st.lists(ops, max_size=60))
def test_random_sequences_keep_the_rules_in_memory(sequence) -> None:  # type: ignore[no-untyped-def]
    book = MemoryBook()
    for op in sequence:
        book.apply(op)
        book.check()


# ------------------------------------------------------------------------- on the databases


def _balances(db: Database) -> dict[str, int]:
    with db.read() as s:
        return {b.account_id: b.balance_fen for b in s.query(SettlementBalance)}


@settings(
    max_examples=12,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=st.lists(ops, min_size=1, max_size=25))
def test_random_sequences_keep_the_books_balanced(db, sequence) -> None:  # type: ignore[no-untyped-def]
    payers = [make_actor(db).party_id for _ in range(PAYERS)]
    seller = make_actor(db).party_id
    holds: list[str] = []
    done: list[tuple[str, tuple, str]] = []  # (key, op, journal id)
    for n, op in enumerate(sequence):
        name, a, b = op
        key = f"k{n}"
        before = _balances(db)
        try:
            with db.write() as s:
                if name == "deposit":
                    posted = services.deposit_funds(s, payers[a], b, key=key, actor="h")
                elif name == "withdraw":
                    posted = services.withdraw_funds(s, payers[a], b, key=key, actor="h")
                elif name == "freeze":
                    posted = services.freeze(s, payers[a], b, f"order:{n}", key=key, actor="h")
                    holds.append(posted.hold_id or "")
                elif name == "release" and a < len(holds):
                    posted = services.release(s, holds[a], b, key=key, actor="h")
                elif name == "capture" and a < len(holds):
                    seller_fen, fee, treasury, rest = b
                    split = [Payout(LineKind.PAYOUT, seller_fen, seller)]
                    split += [Payout(LineKind.FEE, fee)] if fee else []
                    split += [Payout(LineKind.TREASURY, treasury)] if treasury else []
                    posted = services.capture(
                        s, holds[a], split, key=key, actor="h", release_remainder=rest
                    )
                elif name == "replay" and done:
                    old_key, old_op, journal_id = done[a % len(done)]
                    if b:  # exactly the same request: the same journal, nothing moves
                        posted = _repeat(s, old_op, old_key, payers, seller, holds)
                        assert posted.replayed and posted.journal.id == journal_id
                    else:  # the same key for something else: refused
                        # (a deposit of another amount: 1 fen would repeat a 1-fen deposit)
                        other = 2 if old_op[0] == "deposit" and old_op[2] == 1 else 1
                        with pytest.raises(IdempotencyConflict):
                            services.deposit_funds(
                                s, _scope(old_op, payers, holds, s), other, key=old_key, actor="h"
                            )
                    continue
                else:
                    continue
            done.append((key, op, posted.journal.id))
        except SettlementError:
            assert _balances(db) == before  # a refusal changes nothing
    with books.snapshot(db) as s:
        report, _ = books.reconcile(s)
    assert report.balanced, report.as_dict()["problems"]


def _scope(op, payers, holds, session) -> str:  # type: ignore[no-untyped-def]
    name, a, _ = op
    if name in ("deposit", "withdraw", "freeze"):
        return payers[a]
    return services.hold_of(session, holds[a])["party_id"]


def _repeat(s, op, key, payers, seller, holds):  # type: ignore[no-untyped-def]
    name, a, b = op
    if name == "deposit":
        return services.deposit_funds(s, payers[a], b, key=key, actor="h")
    if name == "withdraw":
        return services.withdraw_funds(s, payers[a], b, key=key, actor="h")
    if name == "freeze":
        n = int(key[1:])
        return services.freeze(s, payers[a], b, f"order:{n}", key=key, actor="h")
    if name == "release":
        return services.release(s, holds[a], b, key=key, actor="h")
    seller_fen, fee, treasury, rest = b
    split = [Payout(LineKind.PAYOUT, seller_fen, seller)]
    split += [Payout(LineKind.FEE, fee)] if fee else []
    split += [Payout(LineKind.TREASURY, treasury)] if treasury else []
    return services.capture(s, holds[a], split, key=key, actor="h", release_remainder=rest)
