"""Settling and releasing contracts through the settlement ledger (both databases): paid once,
however often or however (singly, in a batch) it is asked; the books balance after each."""

from __future__ import annotations

import pytest
from exchange_settle_support import (
    NOW,
    available,
    books_balanced,
    completed_contract,
    frozen_of,
    fund,
    record_pulls,
    system_balance,
)
from factories import make_actor
from sqlalchemy import func, select

from datafactor import settlement
from datafactor.exchange import settle
from datafactor.exchange.errors import ExchangeInvalid, ExchangeStateConflict
from datafactor.exchange.models import (
    ExchangeContract,
    ExchangeContractEvent,
    ExchangeListing,
    ExchangeSettlement,
    ExchangeSettlementPart,
)
from datafactor.inbox import list_messages
from datafactor.settlement.models import SettlementJournal


def _settle(db, contract_id, **kw):
    with db.write() as s:
        row = settle.settle_contract(
            s, s.get(ExchangeContract, contract_id), actor="test", now=NOW, **kw
        )
        return {
            "journal": row.journal_id,
            "split": row.split,
            "amount": row.amount_fen,
            "released": row.released_fen,
            "rules": row.rules,
        }


def _journals(db, kind=None):
    with db.read() as s:
        stmt = select(func.count()).select_from(SettlementJournal)
        if kind:
            stmt = stmt.where(SettlementJournal.kind == kind)
        return s.scalar(stmt)


def test_a_completed_contract_is_paid_by_its_split_once(db, world):
    listing = world.listing(
        price_fen=100_000,
        revenue_sharing=[
            {
                "party_id": world.partner.party_id,
                "stage": "circulation",
                "mode": "commission",
                "fen": 1_000,
            },
            {
                "party_id": world.partner.party_id,
                "stage": "application",
                "mode": "dividend",
                "bp": 1_000,
            },
        ],
    )
    contract = completed_contract(
        db, listing, world.buyer.party_id, amount_fen=100_000, broker_id=world.broker.party_id
    )
    before = available(db, world.buyer.party_id)
    first = _settle(db, contract)
    parts = {(p["kind"], p["party_id"], p["stage"]): p["amount_fen"] for p in first["split"]}
    # 100,000 fen: fee 2 % = 2,000; broker 1 % = 1,000; rest 97,000; commission 1,000;
    # net 96,000: partner's dividend 10 % = 9,600, the seller 86,400.
    assert parts == {
        ("fee", None, None): 2_000,
        ("commission", world.broker.party_id, None): 1_000,
        ("share", world.partner.party_id, "circulation"): 1_000,
        ("share", world.partner.party_id, "application"): 9_600,
        ("payout", world.seller.party_id, None): 86_400,
    }
    assert sum(parts.values()) == 100_000 and first["released"] == 0
    assert {"EXC-SETTLE-FEE", "EXC-SETTLE-BROKER", "EXC-SETTLE-SHARING"} <= set(first["rules"])
    assert available(db, world.seller.party_id) == 86_400
    assert available(db, world.partner.party_id) == 10_600
    assert available(db, world.broker.party_id) == 1_000
    assert system_balance(db, "fee_income") == 2_000
    assert frozen_of(db, world.buyer.party_id) == 0
    captures = _journals(db, "capture")

    again = _settle(db, contract)  # settling again answers the same settlement
    assert again == first
    assert _journals(db, "capture") == captures
    assert available(db, world.seller.party_id) == 86_400
    assert available(db, world.buyer.party_id) == before
    with db.read() as s:
        row = s.get(ExchangeContract, contract)
        assert row.capture_journal_id == first["journal"] and row.settled_at is not None
        assert (
            s.scalar(
                select(func.count())
                .select_from(ExchangeContractEvent)
                .where(
                    ExchangeContractEvent.contract_id == contract,
                    ExchangeContractEvent.action == "settle",
                )
            )
            == 1
        )
        assert (
            s.scalar(
                select(func.sum(ExchangeSettlementPart.amount_fen)).where(
                    ExchangeSettlementPart.contract_id == contract
                )
            )
            == 100_000
        )
    # Each payee is told what it received.
    with db.read() as s:
        messages, _ = list_messages(s, world.p(world.partner), limit=10, offset=0)
    assert [m.params["amount"] for m in messages if m.kind == "exchange.contract.settled"] == [
        "106.00"
    ]
    books_balanced(db)


def test_release_gives_everything_back_once_and_free_contracts_need_nothing(db, world):
    listing = world.listing(price_fen=50_000)
    contract = completed_contract(
        db, listing, world.buyer.party_id, amount_fen=50_000, state="active"
    )
    before = available(db, world.buyer.party_id)
    for _ in range(2):
        with db.write() as s:
            settle.release_contract(
                s, s.get(ExchangeContract, contract), actor="test", now=NOW, memo="terminated"
            )
    assert available(db, world.buyer.party_id) == before + 50_000
    assert frozen_of(db, world.buyer.party_id) == 0
    assert _journals(db, "release") == 1
    free = completed_contract(
        db, world.listing(price_fen=0, price_model="free"), world.buyer.party_id, amount_fen=0
    )
    with db.write() as s:
        settle.release_contract(s, s.get(ExchangeContract, free), actor="test", now=NOW)
    row = _settle(db, free)
    assert row["journal"] is None and row["split"] == [] and row["amount"] == 0
    assert _journals(db, "release") == 1
    books_balanced(db)


def test_a_contract_settled_singly_is_not_paid_again_by_a_batch(db, world):
    listing = world.listing(price_fen=10_000)
    contracts = [
        completed_contract(db, listing, world.buyer.party_id, amount_fen=10_000) for _ in range(3)
    ]
    _settle(db, contracts[0])
    seller_after_one = available(db, world.seller.party_id)
    with db.write() as s:
        result = settle.settle_due(s, None, key="run-1", actor="test", now=NOW)
    assert result.settled == 2 and set(result.contract_ids) == set(contracts[1:])
    assert result.paid_fen == 20_000
    assert available(db, world.seller.party_id) == seller_after_one + 2 * 9_800
    # The same run again answers what it did; a new run finds nothing due.
    with db.write() as s:
        replay = settle.settle_due(s, None, key="run-1", actor="test", now=NOW)
        fresh = settle.settle_due(s, None, key="run-2", actor="test", now=NOW)
    assert replay.replayed and replay.settled == 2 and replay.paid_fen == 20_000
    assert fresh.settled == 0 and not fresh.replayed
    # Settling a batch-settled contract singly answers the batch's settlement.
    again = _settle(db, contracts[1])
    assert again["journal"] is not None
    assert available(db, world.seller.party_id) == seller_after_one + 2 * 9_800
    assert _journals(db, "capture") == 3
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(ExchangeSettlement)) == 3
    books_balanced(db)


def test_a_batch_settled_contract_keyed_like_a_single_capture_pays_once(db, world):
    """Even when the exchange's record were lost, the ledger's key refuses a second payment:
    the batch instruction carries the single settlement's key and memo."""
    listing = world.listing(price_fen=10_000)
    contract = completed_contract(db, listing, world.buyer.party_id, amount_fen=10_000)
    with db.write() as s:
        settle.settle_due(s, [contract], key="run-a", actor="test", now=NOW)
    with db.write() as s:
        row = s.get(ExchangeContract, contract)
        found = settle.contract_split(s, row, s.get(ExchangeListing, row.listing_id), 10_000, NOW)
        posted = settlement.capture(
            s,
            row.hold_id,
            found.payouts(),
            key=settle.settle_key(contract),
            actor="test",
            release_remainder=True,
            memo=row.number,
            now=NOW,
        )
        assert posted.replayed
    books_balanced(db)


def test_a_run_settles_what_it_can_and_reports_a_split_that_cannot_be_paid(db, world):
    good = completed_contract(
        db, world.listing(price_fen=10_000), world.buyer.party_id, amount_fen=10_000
    )
    greedy = world.listing(
        price_fen=1_000,
        revenue_sharing=[
            {
                "party_id": world.partner.party_id,
                "stage": "circulation",
                "mode": "commission",
                "fen": 5_000,
            }
        ],
    )
    bad = completed_contract(db, greedy, world.buyer.party_id, amount_fen=1_000)
    not_yet = completed_contract(
        db, world.listing(price_fen=10_000), world.buyer.party_id, amount_fen=10_000, state="active"
    )
    with db.write() as s:
        result = settle.settle_due(s, None, key="run-b", actor="test", now=NOW)
    assert result.contract_ids == (good,)
    assert [(x.contract_id, x.rule) for x in result.refused] == [(bad, "EXC-SETTLE-SHARING")]
    with db.read() as s:
        assert s.get(ExchangeContract, bad).settled_at is None
        assert s.get(ExchangeContract, not_yet).settled_at is None
    with pytest.raises(ExchangeInvalid) as refused:
        _settle(db, bad)
    assert refused.value.rule == "EXC-SETTLE-SHARING"
    books_balanced(db)


def test_only_a_completed_contract_settles(db, world):
    contract = completed_contract(
        db, world.listing(), world.buyer.party_id, amount_fen=10_000, state="signed"
    )
    with pytest.raises(ExchangeStateConflict) as refused:
        _settle(db, contract)
    assert refused.value.rule == "EXC-SETTLE-ONCE"
    contract = completed_contract(db, world.listing(), world.buyer.party_id, amount_fen=10_000)
    with pytest.raises(ExchangeInvalid):
        _settle(db, contract, pay_fen=10_001)
    books_balanced(db)


def test_a_metered_contract_earns_its_allowed_calls(db, world):
    listing = world.listing(price_fen=300, price_model="metered")
    contract = completed_contract(
        db, listing, world.buyer.party_id, amount_fen=30_000, price_fen=300, quantity=100
    )
    record_pulls(db, contract, world.buyer.party_id, allowed=40, refused=7)
    before = available(db, world.buyer.party_id)
    row = _settle(db, contract)
    assert row["amount"] == 12_000 and row["released"] == 18_000
    assert "EXC-SETTLE-METERED" in row["rules"]
    assert available(db, world.buyer.party_id) == before + 18_000
    assert sum(p["amount_fen"] for p in row["split"]) == 12_000
    # Never called: everything goes back, and the contract is settled at 0.
    idle = completed_contract(
        db, listing, world.buyer.party_id, amount_fen=3_000, price_fen=300, quantity=10
    )
    with db.write() as s:
        result = settle.settle_due(s, [idle], key="run-idle", actor="test", now=NOW)
    assert result.settled == 1 and result.paid_fen == 0 and result.released_fen == 3_000
    # More calls than bought cannot earn more than the amount frozen.
    busy = completed_contract(
        db, listing, world.buyer.party_id, amount_fen=900, price_fen=300, quantity=3
    )
    record_pulls(db, busy, world.buyer.party_id, allowed=5)
    assert _settle(db, busy)["amount"] == 900
    books_balanced(db)


def test_refund_after_settlement_takes_back_in_proportion(db, world):
    listing = world.listing(price_fen=10_000)
    contract = completed_contract(db, listing, world.buyer.party_id, amount_fen=10_000)
    _settle(db, contract)
    before = available(db, world.buyer.party_id)
    with db.write() as s:
        settle.refund_settled(
            s, s.get(ExchangeContract, contract), actor="test", now=NOW, amount_fen=5_000
        )
    with db.write() as s:  # the same refund again changes nothing
        settle.refund_settled(
            s, s.get(ExchangeContract, contract), actor="test", now=NOW, amount_fen=5_000
        )
    assert available(db, world.buyer.party_id) == before + 5_000
    assert available(db, world.seller.party_id) == 9_800 - 4_900
    assert system_balance(db, "fee_income") == 100
    with db.read() as s:
        assert (
            s.scalar(
                select(func.sum(ExchangeSettlementPart.amount_fen)).where(
                    ExchangeSettlementPart.contract_id == contract
                )
            )
            == 5_000
        )
    books_balanced(db)


def test_the_seller_may_be_paid_even_with_many_buyers_in_one_run(db, world):
    listing = world.listing(price_fen=1_234)
    buyers = [world.buyer.party_id]
    for _ in range(3):
        other = make_actor(db).party_id
        fund(db, other, 100_000)
        buyers.append(other)
    ids = [
        completed_contract(
            db, listing, b, amount_fen=1_234 * (i + 1), quantity=i + 1, price_fen=1_234
        )
        for i, b in enumerate(buyers * 3)
    ]
    with db.write() as s:
        result = settle.settle_due(s, None, key="run-many", actor="test", now=NOW)
    assert result.settled == len(ids) and len(result.batch_ids) == 1
    assert result.paid_fen == sum(1_234 * (i + 1) for i in range(len(ids)))
    books_balanced(db)


def test_public_data_pays_its_share_to_the_treasury(db, settings):
    from exchange_settle_support import settle_world

    from datafactor.registry import DataClass

    world = settle_world(db, settings, data_class=DataClass.PUBLIC)
    listing = world.listing(price_fen=50_000)
    contract = completed_contract(db, listing, world.buyer.party_id, amount_fen=50_000)
    row = _settle(db, contract)
    parts = {p["kind"]: p for p in row["split"]}
    assert parts["treasury"]["amount_fen"] == 5_000 and parts["treasury"]["party_id"] is None
    assert parts["treasury"]["rule"] == "EXC-SETTLE-TREASURY"
    assert system_balance(db, "treasury") == 5_000
    with db.read() as s:
        journal = s.get(SettlementJournal, row["journal"])
        assert "SET-TREASURY" in journal.rules
    books_balanced(db)


def test_a_single_and_a_batch_settlement_at_the_same_moment_pay_once(db, world):
    import threading

    listing = world.listing(price_fen=10_000)
    contracts = [
        completed_contract(db, listing, world.buyer.party_id, amount_fen=10_000) for _ in range(4)
    ]
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def single(contract_id: str) -> None:
        barrier.wait()
        try:
            _settle(db, contract_id)
        except BaseException as exc:  # reported below
            errors.append(exc)

    def batch() -> None:
        barrier.wait()
        try:
            with db.write() as s:
                settle.settle_due(s, None, key="run-race", actor="test", now=NOW)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=single, args=(contracts[0],)),
        threading.Thread(target=single, args=(contracts[1],)),
        threading.Thread(target=batch),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert _journals(db, "capture") == 4
    assert available(db, world.seller.party_id) == 4 * 9_800
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(ExchangeSettlement)) == 4
    books_balanced(db)
