"""The deadline clock: every non-final state has a deadline and an action when it passes, each
contract handled under its row lock, twice is harmless, money never moves on a timer in a
dispute."""

from __future__ import annotations

from datetime import timedelta

from contracts_support import NOW, deliver, events, hold, load, sign_all
from sqlalchemy import select

from datafactor.exchange import contracts, jobs
from datafactor.exchange.domain import CONTRACT_DEADLINES, ContractState
from datafactor.exchange.models import ExchangeSettlement
from datafactor.inbox.models import InboxMessage


def run(world, now):
    return jobs.run_deadlines(world.db, now)


def test_every_non_final_state_has_a_deadline_action():
    live = {s for s in ContractState} - {ContractState.COMPLETED, ContractState.TERMINATED}
    assert set(CONTRACT_DEADLINES) == live


def test_an_unsigned_contract_ends_at_its_deadline_and_the_escrow_is_released(world, open_for):
    contract_id = open_for(quantity=3)
    assert hold(world, contract_id)["remaining_fen"] == 30_000
    assert run(world, NOW + timedelta(days=7) - timedelta(seconds=1)).done == []
    report = run(world, NOW + timedelta(days=7))
    assert [(d.number, d.action, d.target) for d in report.done] == [
        (load(world, contract_id).number, "expire", "terminated")
    ]
    ended = load(world, contract_id)
    assert ended.state == "terminated" and ended.deadline_at is None
    assert ended.rules[0] == "EXC-CONTRACT-DEADLINE"
    assert hold(world, contract_id)["remaining_fen"] == 0
    assert hold(world, contract_id)["released_fen"] == 30_000
    # A second run (another process, a retry) finds nothing to do and moves no money.
    assert run(world, NOW + timedelta(days=8)).done == []
    assert events(world, contract_id)[-1] == ("expire", "accepted", "terminated")
    assert hold(world, contract_id)["released_fen"] == 30_000


def test_applying_a_deadline_twice_is_harmless(world, open_for):
    contract_id = open_for()
    later = NOW + timedelta(days=8)
    with world.db.write() as s:
        first = contracts.apply_deadline(s, contract_id, now=later)
    with world.db.write() as s:
        second = contracts.apply_deadline(s, contract_id, now=later)
    assert first.action == "expire" and second.action is None
    assert [e for e in events(world, contract_id) if e[0] == "expire"] == [
        ("expire", "accepted", "terminated")
    ]


def test_an_active_contract_never_delivered_ends_and_is_released(world, open_for):
    contract_id = open_for()
    sign_all(world, contract_id)
    assert load(world, contract_id).state == "active"
    report = run(world, NOW + timedelta(days=30))
    assert [(d.source, d.target) for d in report.done] == [("active", "terminated")]
    assert hold(world, contract_id)["released_fen"] == 10_000
    assert load(world, contract_id).rules[:2] == ["EXC-CONTRACT-DEADLINE", "EXC-CONTRACT-DELIVERY"]


def test_a_delivered_contract_is_deemed_accepted_and_settled(world, open_for):
    contract_id = open_for()
    sign_all(world, contract_id)
    delivered = NOW + timedelta(days=2)
    deliver(world, contract_id, now=delivered)
    row = load(world, contract_id)
    assert row.delivered_at == delivered
    assert row.deadline_at == delivered + timedelta(days=7)
    assert run(world, delivered + timedelta(days=6)).done == []
    report = run(world, delivered + timedelta(days=7))
    assert [(d.source, d.target) for d in report.done] == [("active", "completed")]
    done = load(world, contract_id)
    assert done.state == "completed" and done.accepted_at is not None
    assert done.settled_at is not None and done.capture_journal_id
    assert hold(world, contract_id)["remaining_fen"] == 0
    assert hold(world, contract_id)["captured_fen"] == 10_000
    with world.db.read() as s:
        assert s.get(ExchangeSettlement, contract_id) is not None


def test_a_late_delivery_gets_its_full_acceptance_period(world, open_for):
    """The delivery period's deadline passes after a delivery recorded without moving it (a
    delivery path that only set ``delivered_at``): the clock extends to delivery + 7 days."""
    contract_id = open_for()
    sign_all(world, contract_id)
    delivered = NOW + timedelta(days=29)
    with world.db.write() as s:
        from datafactor.exchange.models import ExchangeContract

        s.get(ExchangeContract, contract_id).delivered_at = delivered
    report = run(world, NOW + timedelta(days=30))
    assert [d.action for d in report.done] == [None]
    assert load(world, contract_id).deadline_at == delivered + timedelta(days=7)
    assert load(world, contract_id).state == "active"


def test_an_undecided_dispute_is_escalated_and_no_money_moves(world, open_for, db):
    contract_id = open_for()
    sign_all(world, contract_id)
    deliver(world, contract_id, now=NOW + timedelta(days=1))
    with world.db.write() as s:
        contracts.dispute_contract(
            s,
            world.p(world.buyer),
            contract_id,
            grounds="数据缺少两个园区",
            now=NOW + timedelta(days=2),
        )
    disputed = load(world, contract_id)
    assert disputed.deadline_at == NOW + timedelta(days=2 + 15)
    moment = disputed.deadline_at
    report = run(world, moment)
    assert [(d.action, d.source, d.target) for d in report.done] == [
        ("escalate", "disputed", "disputed")
    ]
    escalated = load(world, contract_id)
    assert escalated.state == "disputed"
    assert escalated.deadline_at == moment + timedelta(days=15)
    assert hold(world, contract_id)["remaining_fen"] == 10_000  # still frozen
    with world.db.read() as s:
        told = set(
            s.scalars(
                select(InboxMessage.party_id).where(
                    InboxMessage.kind == "exchange.contract",
                    InboxMessage.message == contracts.MSG_ESCALATED,
                )
            )
        )
    assert world.regulator.party_id in told and world.operator.party_id in told
    assert world.buyer.party_id in told and world.seller.party_id in told


def test_the_clock_in_a_session_uses_savepoints(world, open_for):
    first, second = open_for(), open_for()
    with world.db.write() as s:
        report = jobs.run_deadlines(s, NOW + timedelta(days=7))
    assert sorted(d.contract_id for d in report.done) == sorted([first, second])
    assert {load(world, i).state for i in (first, second)} == {"terminated"}
    assert report.failed == []
    assert report.as_dict()["counts"] == {"accepted->terminated": 2}
