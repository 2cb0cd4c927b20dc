"""The money ledger's use cases on both databases: each operation's journal, the escrow
primitives and their limits, refunds, batches, idempotent replays and key reuse, append-only
journals (refused by the ORM and by the database), and reconciliation finding what was tampered
with — naming the account, journal or day and the difference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from factories import make_actor
from settlement_support import assert_balanced, balances
from sqlalchemy import select, text, update

from datafactor.db import Database
from datafactor.identity import PartyKind
from datafactor.ledger.models import LedgerEntry
from datafactor.settlement import (
    EscrowExceeded,
    IdempotencyConflict,
    Instruction,
    InsufficientFunds,
    InvalidSettlementInput,
    LineKind,
    PartyNotEligible,
    Payout,
    RefundExceeded,
    books,
    services,
)
from datafactor.settlement.errors import LedgerTampering
from datafactor.settlement.models import SettlementBalance, SettlementJournal, SettlementLine

PAYOUT, FEE, TREASURY, COMMISSION, SHARE = (
    LineKind.PAYOUT,
    LineKind.FEE,
    LineKind.TREASURY,
    LineKind.COMMISSION,
    LineKind.SHARE,
)


def system(db: Database) -> dict[str, int]:
    """The exchange's accounts' balances, sub-accounts added up (``sys:fee-income`` …)."""
    out: dict[str, int] = {}
    with db.read() as s:
        rows = s.execute(
            select(SettlementBalance.account_id, SettlementBalance.balance_fen).where(
                SettlementBalance.account_id.startswith("sys:")
            )
        )
        for account, balance in rows:
            base = ":".join(account.split(":")[:2])
            out[base] = out.get(base, 0) + balance
    return out


def freeze(db: Database, party: str, amount: int, key: str, reference: str = "order:1") -> str:
    with db.write() as s:
        hold = services.freeze(s, party, amount, reference, key=key, actor="exchange").hold_id
        assert hold is not None
        return hold


def test_deposit_and_withdrawal_move_money_through_the_custody_account(db, fund):
    party = fund(100_000)
    with db.write() as s:
        posted = services.withdraw_funds(s, party, 30_000, key="w1", actor="test", memo="提现")
    assert posted.journal.bank_reference and posted.journal.bank_reference.startswith("LB")
    assert balances(db, party) == {"available": 70_000, "frozen": 0}
    assert system(db)["sys:bank"] == -70_000
    assert_balanced(db)


def test_freeze_release_capture_pay_the_split_exactly(db, fund):
    buyer, seller, broker = (
        fund(100_000),
        make_actor(db).party_id,
        make_actor(db, PartyKind.SERVICE_FIRM).party_id,
    )
    hold = freeze(db, buyer, 60_000, "h1")
    assert balances(db, buyer) == {"available": 40_000, "frozen": 60_000}
    with db.write() as s:
        services.release(s, hold, 10_000, key="r1", actor="exchange")
    with db.write() as s:
        captured = services.capture(
            s,
            hold,
            [
                Payout(PAYOUT, 40_000, seller),
                Payout(COMMISSION, 2_000, broker),
                Payout(SHARE, 3_000, broker),
                Payout(FEE, 1_500),
                Payout(TREASURY, 500),
            ],
            key="c1",
            actor="exchange",
        )
    assert {x.kind: x.amount_fen for x in captured.journal.lines} == {
        "capture": -47_000,
        "payout": 40_000,
        "commission": 2_000,
        "share": 3_000,
        "fee": 1_500,
        "treasury": 500,
    }
    assert "SET-TREASURY" in captured.journal.rules
    assert balances(db, buyer) == {"available": 50_000, "frozen": 3_000}
    assert balances(db, seller)["available"] == 40_000
    assert balances(db, broker)["available"] == 5_000
    assert system(db)["sys:fee-income"] == 1_500
    assert system(db)["sys:treasury"] == 500
    with db.read() as s:
        assert services.hold_of(s, hold)["remaining_fen"] == 3_000
    with db.write() as s:  # what is left goes back at the end
        services.release(s, hold, None, key="r2", actor="exchange")
    assert balances(db, buyer) == {"available": 53_000, "frozen": 0}
    assert_balanced(db)


def test_a_capture_can_return_the_rest_of_the_hold_in_the_same_journal(db, fund):
    buyer, seller = fund(10_000), make_actor(db).party_id
    hold = freeze(db, buyer, 10_000, "h")
    with db.write() as s:
        posted = services.capture(
            s, hold, [Payout(PAYOUT, 7_000, seller)], key="c", actor="x", release_remainder=True
        )
    assert [x.kind for x in posted.journal.lines] == ["capture", "payout", "release"]
    assert balances(db, buyer) == {"available": 3_000, "frozen": 0}
    with db.read() as s:
        assert services.hold_of(s, hold)["remaining_fen"] == 0
    assert_balanced(db)


def test_escrow_never_pays_or_releases_more_than_is_frozen(db, fund):
    buyer, seller = fund(10_000), make_actor(db).party_id
    hold = freeze(db, buyer, 5_000, "h")
    with pytest.raises(EscrowExceeded, match="SET-ESCROW"), db.write() as s:
        services.capture(s, hold, [Payout(PAYOUT, 5_001, seller)], key="c", actor="x")
    with pytest.raises(EscrowExceeded), db.write() as s:
        services.release(s, hold, 6_000, key="r", actor="x")
    with db.write() as s:
        services.capture(s, hold, [Payout(PAYOUT, 5_000, seller)], key="c", actor="x")
    with pytest.raises(EscrowExceeded), db.write() as s:  # nothing left
        services.capture(s, hold, [Payout(FEE, 1)], key="c2", actor="x")
    assert balances(db, buyer) == {"available": 5_000, "frozen": 0}
    assert_balanced(db)


def test_insufficient_funds_refuses_and_changes_nothing(db, fund):
    party = fund(1_000)
    with pytest.raises(InsufficientFunds) as refused, db.write() as s:
        services.freeze(s, party, 1_001, "order:9", key="f", actor="x")
    assert refused.value.rule == "SET-FUNDS"
    assert refused.value.params["available"] == "10.00"
    assert refused.value.params["needed"] == "10.01"
    with db.write() as s:  # the refused key was not spent: the same key may now succeed
        services.freeze(s, party, 1_000, "order:9", key="f", actor="x")
    assert balances(db, party) == {"available": 0, "frozen": 1_000}


def test_bad_input_is_refused_before_anything_is_read(db, fund):
    party = fund(1_000)
    for amount in (0, -1, 10**15 + 1, True, 1.5):
        with pytest.raises(InvalidSettlementInput, match="SET-MONEY"), db.write() as s:
            services.freeze(s, party, amount, "order:1", key="k", actor="x")  # type: ignore[arg-type]
    with pytest.raises(InvalidSettlementInput, match="SET-REFERENCE"), db.write() as s:
        services.freeze(s, party, 10, "no reference", key="k", actor="x")
    with pytest.raises(InvalidSettlementInput, match="SET-IDEMPOTENCY"), db.write() as s:
        services.freeze(s, party, 10, "order:1", key="", actor="x")
    hold = freeze(db, party, 100, "ok")
    for payouts in (
        [],
        [Payout(PAYOUT, 10)],
        [Payout(FEE, 10, party)],
        [Payout(LineKind.FREEZE, 1)],
    ):
        with pytest.raises(InvalidSettlementInput, match="SET-SPLIT"), db.write() as s:
            services.capture(s, hold, payouts, key="c", actor="x")
    assert balances(db, party) == {"available": 900, "frozen": 100}


def test_a_party_that_is_not_verified_holds_no_accounts(db):
    pending = make_actor(db, verified=False)
    with pytest.raises(PartyNotEligible, match="SET-PARTY"), db.write() as s:
        services.deposit_funds(s, pending.party_id, 100, key="d", actor="x")
    with pytest.raises(PartyNotEligible), db.write() as s:
        services.deposit_funds(s, "no-such-party", 100, key="d", actor="x")


def test_the_same_key_replays_and_other_parameters_conflict(db, fund):
    party, seller = fund(10_000), make_actor(db).party_id
    with db.write() as s:
        first = services.freeze(s, party, 4_000, "order:7", key="k1", actor="x")
    with db.write() as s:
        again = services.freeze(s, party, 4_000, "order:7", key="k1", actor="x")
    assert again.replayed and again.journal.id == first.journal.id
    assert again.hold_id == first.hold_id
    assert balances(db, party) == {"available": 6_000, "frozen": 4_000}
    with pytest.raises(IdempotencyConflict, match="SET-IDEMPOTENCY"), db.write() as s:
        services.freeze(s, party, 4_001, "order:7", key="k1", actor="x")
    with pytest.raises(IdempotencyConflict), db.write() as s:  # another operation, same key
        services.withdraw_funds(s, party, 100, key="k1", actor="x")
    assert first.hold_id is not None
    split = [Payout(PAYOUT, 3_000, seller), Payout(FEE, 100)]
    with db.write() as s:
        paid = services.capture(s, first.hold_id, split, key="pay", actor="x")
    with db.write() as s:
        replay = services.capture(s, first.hold_id, split, key="pay", actor="x")
    assert replay.replayed and replay.journal.id == paid.journal.id
    assert balances(db, seller)["available"] == 3_000
    # A key is scoped to its party: another party may use the same one.
    other = fund(500)
    with db.write() as s:
        assert not services.freeze(s, other, 100, "order:7", key="k1", actor="x").replayed
    assert_balanced(db)


def test_a_posting_whose_key_was_taken_meanwhile_writes_nothing(db, fund):
    """The race the unique key settles: a twin committed the key after this request looked it
    up (``fresh_key`` skips the look-ups, so the insert itself meets the key). The posting is
    refused whole — no journal, line, balance or hold of it — and the transaction stays usable."""
    party = fund(10_000)
    with db.write() as s:
        first = services.freeze(s, party, 1_000, "order:8", key="taken", actor="x", fresh_key=True)
    with db.write() as s:
        with pytest.raises(IdempotencyConflict, match="SET-IDEMPOTENCY"):
            services.freeze(s, party, 2_000, "order:8", key="taken", actor="x", fresh_key=True)
        # Not aborted: the same transaction goes on to post something else.
        services.freeze(s, party, 500, "order:9", key="other", actor="x")
    assert balances(db, party) == {"available": 8_500, "frozen": 1_500}
    with db.read() as s:
        journals = s.scalars(
            select(SettlementJournal.id).where(SettlementJournal.scope == party)
        ).all()
        holds = s.execute(text("SELECT amount_fen FROM settlement_hold ORDER BY amount_fen"))
        assert sorted(a for (a,) in holds) == [500, 1_000]
    assert first.journal.id in journals and len(journals) == 3  # the deposit, two freezes
    assert_balanced(db)


def test_refunds_return_at_most_what_a_payee_received(db, fund):
    buyer, seller = fund(10_000), make_actor(db).party_id
    hold = freeze(db, buyer, 10_000, "h")
    with db.write() as s:
        capture = services.capture(
            s,
            hold,
            [Payout(PAYOUT, 9_000, seller), Payout(FEE, 800), Payout(TREASURY, 200)],
            key="c",
            actor="x",
        ).journal.id
    with db.write() as s:
        services.refund(
            s, capture, [Payout(PAYOUT, 4_000, seller), Payout(FEE, 800)], key="r1", actor="x"
        )
    assert balances(db, buyer)["available"] == 4_800
    assert balances(db, seller)["available"] == 5_000
    with pytest.raises(RefundExceeded, match="SET-REFUND"), db.write() as s:
        services.refund(s, capture, [Payout(PAYOUT, 5_001, seller)], key="r2", actor="x")
    with pytest.raises(RefundExceeded), db.write() as s:
        services.refund(s, capture, [Payout(FEE, 1)], key="r3", actor="x")  # already returned
    with pytest.raises(RefundExceeded), db.write() as s:
        services.refund(s, capture, [Payout(COMMISSION, 1)], key="r4", actor="x")  # never paid
    with db.write() as s:  # the seller spent some: it cannot return what it no longer holds
        services.withdraw_funds(s, seller, 4_500, key="w", actor="x")
    with pytest.raises(InsufficientFunds), db.write() as s:
        services.refund(s, capture, [Payout(PAYOUT, 1_000, seller)], key="r5", actor="x")
    assert_balanced(db)


def test_a_batch_settles_every_instruction_once(db, fund):
    buyers = [fund(10_000) for _ in range(3)]
    seller = make_actor(db).party_id
    holds = [freeze(db, b, 10_000, f"f{i}", f"contract:{i}") for i, b in enumerate(buyers)]
    split = (Payout(PAYOUT, 9_000, seller), Payout(FEE, 700), Payout(TREASURY, 300))
    # The first contract was settled on its own already, with the key the batch uses for it.
    with db.write() as s:
        single = services.capture(
            s, holds[0], split, key="settle:0", actor="x", release_remainder=True
        )
    instructions = [Instruction(h, split, f"settle:{i}") for i, h in enumerate(holds)]
    with db.write() as s:
        result = services.settle_batch(s, instructions, key="batch-1", actor="settlement-job")
    assert result.settled == 2 and result.replayed == 1 and result.total_fen == 20_000
    assert result.journal_ids[0] == single.journal.id
    assert balances(db, seller)["available"] == 27_000
    with db.read() as s:
        entry = s.scalar(select(LedgerEntry).where(LedgerEntry.idx == result.ledger_index))
        assert entry is not None and result.root.encode() in bytes(entry.entry)
    with db.write() as s:  # the whole batch again: a replay
        again = services.settle_batch(s, instructions, key="batch-1", actor="settlement-job")
    assert again.replayed_batch and again.journal_ids == result.journal_ids
    with db.write() as s:  # the same contracts in another batch: nothing paid twice
        third = services.settle_batch(s, instructions, key="batch-2", actor="settlement-job")
    assert third.settled == 0 and third.replayed == 3
    assert balances(db, seller)["available"] == 27_000
    assert_balanced(db)


def test_one_bad_instruction_refuses_the_whole_batch(db, fund):
    buyers = [fund(1_000) for _ in range(2)]
    seller = make_actor(db).party_id
    holds = [freeze(db, b, 1_000, f"f{i}") for i, b in enumerate(buyers)]
    instructions = [
        Instruction(holds[0], (Payout(PAYOUT, 1_000, seller),), "s0"),
        Instruction(holds[1], (Payout(PAYOUT, 1_001, seller),), "s1"),
    ]
    with pytest.raises(EscrowExceeded) as refused, db.write() as s:
        services.settle_batch(s, instructions, key="b", actor="x")
    assert refused.value.field == "instructions[1]"
    assert balances(db, seller)["available"] == 0
    twice = [instructions[0], Instruction(holds[0], instructions[0].payouts, "s9")]
    with pytest.raises(InvalidSettlementInput, match="SET-ESCROW"), db.write() as s:
        services.settle_batch(s, twice, key="b", actor="x")
    assert_balanced(db)


def test_journals_and_lines_are_append_only_in_the_orm(db, fund):
    party = fund(1_000)
    with db.write() as s:
        journal = s.scalars(select(SettlementJournal)).first()
        assert journal is not None
        journal.memo = "changed"
        with pytest.raises(LedgerTampering, match="SET-APPEND-ONLY"):
            s.flush()
        s.rollback()
    with pytest.raises(LedgerTampering), db.write() as s:
        s.execute(update(SettlementLine).values(amount_fen=1))
    with db.write() as s:
        s.delete(s.scalars(select(SettlementLine)).first())
        with pytest.raises(LedgerTampering):
            s.flush()
        s.rollback()
    assert balances(db, party)["available"] == 1_000


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE settlement_line SET amount_fen = amount_fen + 100",
        "DELETE FROM settlement_line",
        "UPDATE settlement_journal SET memo = 'x'",
        "DELETE FROM settlement_journal",
    ],
)
def test_the_database_refuses_updates_and_deletes(db, fund, statement):
    fund(1_000)
    with pytest.raises(Exception, match="append-only"), db.engine.begin() as connection:
        connection.execute(text(statement))
    assert_balanced(db)


def _bypass_triggers(db: Database) -> None:
    """What an attacker with DDL rights could do: the checks must still see the damage."""
    with db.engine.begin() as connection:
        if db.is_sqlite:
            connection.execute(text("DROP TRIGGER settlement_line_no_update"))
            connection.execute(text("DROP TRIGGER settlement_journal_no_delete"))
            connection.execute(text("DROP TRIGGER settlement_line_no_delete"))
        else:
            connection.execute(text("ALTER TABLE settlement_line DISABLE TRIGGER USER"))
            connection.execute(text("ALTER TABLE settlement_journal DISABLE TRIGGER USER"))


def test_reconciliation_names_the_account_and_the_difference(db, fund):
    party = fund(10_000)
    with db.read() as s:
        available = services.party_accounts(s, [party])[party][services.AccountKind.AVAILABLE]
    with db.engine.begin() as connection:  # a balance edited behind the ledger's back
        connection.execute(
            text(
                "UPDATE settlement_balance SET balance_fen = balance_fen + 250 WHERE account_id = :a"
            ),
            {"a": available},
        )
    with books.snapshot(db) as s:
        report, _ = books.reconcile(s)
    assert not report.balanced and report.sum_fen == 250
    found = {(p.check, p.account): p for p in report.problems}
    assert found[("account-balance", available)].difference == 250
    assert found[("books-sum", None)].difference == 250
    assert report.as_dict().keys() == {"balanced", "sum_fen", "journals", "accounts", "problems"}


def test_reconciliation_sees_an_altered_line_even_without_the_triggers(db, fund):
    fund(10_000)
    _bypass_triggers(db)
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE settlement_line SET amount_fen = amount_fen + 1 WHERE amount_fen > 0")
        )
    with books.snapshot(db) as s:
        report, _ = books.reconcile(s)
    checks = {p.check for p in report.problems}
    assert {"account-balance", "journal-balance", "journal-digest", "line-sequence"} <= checks


def test_closed_days_are_anchored_and_a_late_insertion_is_caught(db, fund):
    monday = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in China
    party = fund(100)
    with db.write() as s:
        services.deposit_funds(s, party, 5_000, key="old-1", actor="x", now=monday)
        services.deposit_funds(
            s, party, 7_000, key="old-2", actor="x", now=monday + timedelta(hours=1)
        )
    row, report = books.run_reconciliation(db, None, now=monday + timedelta(days=1, hours=2))
    assert report.balanced and row.days_anchored == 1
    with db.read() as s:
        anchored = books.SettlementDayAnchor
        day = s.get(anchored, monday.date())
        assert day is not None and day.journals == 2
        entry = s.scalar(select(LedgerEntry).where(LedgerEntry.idx == day.ledger_index))
        assert entry is not None and b"settlement.day.closed" in bytes(entry.entry)
    row, _ = books.run_reconciliation(db, None, now=monday + timedelta(days=1, hours=3))
    assert row.days_anchored == 0  # once per day
    # A journal slipped into the anchored day afterwards (a back-dated posting):
    with db.write() as s:
        services.deposit_funds(s, party, 1, key="late", actor="x", now=monday + timedelta(hours=5))
    with books.snapshot(db) as s:
        report, _ = books.reconcile(s, now=monday + timedelta(days=2))
    anchor_problems = [p for p in report.problems if p.check == "day-anchor"]
    assert anchor_problems and anchor_problems[0].day == "2026-03-02"
    assert anchor_problems[0].difference == 1
