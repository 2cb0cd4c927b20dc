"""The one-statement posting (``services._posting``, PostgreSQL) on both databases:
journals with many lines and accounts — a capture paying several payees (two lines on one
account among them), its refunds, a journal of exactly ``Rows.MAX_ROWS`` lines (one statement)
and one of more (the statements one by one), several postings in one transaction, a batch of
one new capture — leave every balance, hold and line as the split says, the books reconciled,
and a replay answering the very lines that were posted, in their order."""

from __future__ import annotations

import pytest
from factories import make_actor
from settlement_support import assert_balanced, balances
from sqlalchemy import event

from datafactor.db import Database
from datafactor.fastsql import Rows
from datafactor.identity import PartyKind
from datafactor.settlement import Instruction, LineKind, Payout, services
from datafactor.settlement.models import SettlementHold, SettlementJournal
from datafactor.settlement.services import JournalRecord

PAYOUT, FEE, TREASURY, COMMISSION, SHARE = (
    LineKind.PAYOUT,
    LineKind.FEE,
    LineKind.TREASURY,
    LineKind.COMMISSION,
    LineKind.SHARE,
)


def _lines(record: JournalRecord) -> list[tuple[str, int, str, int, int]]:
    return [(x.account_id, x.amount_fen, x.kind, x.seq, x.balance_after_fen) for x in record.lines]


def _freeze(db: Database, party: str, amount: int, key: str) -> str:
    with db.write() as s:
        frozen = services.freeze(s, party, amount, f"order:{key}", key=key, actor="x")
    assert frozen.hold_id is not None
    with db.read() as s:  # the hold names the journal that froze it, for the same amount
        row = s.get(SettlementHold, frozen.hold_id)
        assert row is not None
        assert (row.freeze_journal_id, row.amount_fen, row.party_id, row.status) == (
            frozen.journal.id,
            amount,
            party,
            "open",
        )
    return frozen.hold_id


def test_a_capture_with_many_payees_pays_each_and_replays_the_same_lines(db, fund):
    buyer = fund(100_000)
    seller = make_actor(db).party_id
    broker = make_actor(db, PartyKind.SERVICE_FIRM).party_id
    hold = _freeze(db, buyer, 60_000, "f")
    split = [
        Payout(PAYOUT, 30_000, seller),
        Payout(SHARE, 4_000, seller),  # a second line on the seller's account
        Payout(COMMISSION, 2_000, broker),
        Payout(FEE, 1_500),
        Payout(TREASURY, 500),
    ]
    with db.write() as s:
        paid = services.capture(s, hold, split, key="c", actor="x", release_remainder=True)
    assert [x.kind for x in paid.journal.lines] == [
        "capture",
        "payout",
        "share",
        "commission",
        "fee",
        "treasury",
        "release",
    ]
    seller_lines = [x for x in paid.journal.lines if x.party_id == seller]
    assert [(x.seq, x.balance_after_fen) for x in seller_lines] == [(1, 30_000), (2, 34_000)]
    assert balances(db, buyer) == {"available": 62_000, "frozen": 0}
    assert balances(db, seller)["available"] == 34_000
    assert balances(db, broker)["available"] == 2_000
    with db.write() as s:
        again = services.capture(s, hold, split, key="c", actor="x", release_remainder=True)
    assert again.replayed and again.journal.id == paid.journal.id
    assert _lines(again.journal) == _lines(paid.journal)
    assert again.journal.digest == paid.journal.digest
    with db.write() as s:
        refunded = services.refund(
            s,
            paid.journal.id,
            [Payout(PAYOUT, 10_000, seller), Payout(SHARE, 4_000, seller), Payout(FEE, 1_500)],
            key="r",
            actor="x",
        )
    assert sum(x.amount_fen for x in refunded.journal.lines) == 0
    assert balances(db, buyer) == {"available": 77_500, "frozen": 0}
    assert balances(db, seller)["available"] == 20_000
    with db.read() as s:
        assert services.hold_of(s, hold)["remaining_fen"] == 0
    assert_balanced(db)


@pytest.mark.parametrize("payees", [Rows.MAX_ROWS - 2, Rows.MAX_ROWS - 1])
def test_a_capture_of_up_to_and_beyond_one_statements_lines_posts_all(db, fund, payees):
    """The payees' lines, the capture's and the release of the rest: ``Rows.MAX_ROWS`` lines are
    one statement on PostgreSQL, one line more the statements one by one. Both pay every payee
    and leave the books balanced."""
    buyer = fund(1_000_000)
    sellers = [make_actor(db).party_id for _ in range(payees)]
    hold = _freeze(db, buyer, 1_000_000, "f")
    split = [Payout(PAYOUT, 100 * (i + 1), p) for i, p in enumerate(sellers)]
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        with db.write() as s:
            paid = services.capture(s, hold, split, key="c", actor="x", release_remainder=True)
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert len(paid.journal.lines) == payees + 2  # with the capture's and the release's
    one_statement = any(x.startswith("WITH j AS") for x in statements)
    assert one_statement == (not db.is_sqlite and payees + 2 <= Rows.MAX_ROWS)
    total = sum(p.amount_fen for p in split)
    assert balances(db, buyer) == {"available": 1_000_000 - total, "frozen": 0}
    for i, seller in enumerate(sellers):
        assert balances(db, seller)["available"] == 100 * (i + 1)
    with db.write() as s:
        again = services.capture(s, hold, split, key="c", actor="x", release_remainder=True)
    assert _lines(again.journal) == _lines(paid.journal)
    assert_balanced(db)


def test_several_postings_in_one_transaction_build_on_each_other(db, fund):
    buyer, seller = fund(10_000), make_actor(db).party_id
    with db.write() as s:
        hold = services.freeze(s, buyer, 6_000, "order:1", key="f", actor="x").hold_id
        assert hold is not None
        services.release(s, hold, 1_000, key="r", actor="x")
        paid = services.capture(s, hold, [Payout(PAYOUT, 4_000, seller)], key="c", actor="x")
        services.refund(s, paid.journal.id, [Payout(PAYOUT, 1_500, seller)], key="b", actor="x")
        services.freeze(s, buyer, 2_000, "order:2", key="f2", actor="x")
        services.withdraw_funds(s, seller, 2_500, key="w", actor="x")
    assert balances(db, buyer) == {"available": 4_500, "frozen": 3_000}
    assert balances(db, seller) == {"available": 0, "frozen": 0}
    with db.read() as s:
        assert services.hold_of(s, hold)["remaining_fen"] == 1_000
    assert_balanced(db)


def test_a_batch_with_one_new_capture_posts_it_with_its_batch(db, fund):
    buyer, seller = fund(10_000), make_actor(db).party_id
    hold = _freeze(db, buyer, 10_000, "f")
    split = (Payout(PAYOUT, 9_000, seller), Payout(FEE, 500))
    with db.write() as s:
        result = services.settle_batch(
            s, [Instruction(hold, split, "settle:1")], key="b", actor="job"
        )
    assert result.settled == 1 and result.total_fen == 9_500
    with db.read() as s:
        journal = s.get(SettlementJournal, result.journal_ids[0])
        assert journal is not None and journal.batch_id == result.batch_id
    assert balances(db, buyer) == {"available": 500, "frozen": 0}
    assert balances(db, seller)["available"] == 9_000
    assert_balanced(db)
