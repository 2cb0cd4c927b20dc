"""The parties' and the exchange's moves: accepting delivery, terminating before signing,
raising a dispute with grounds, and the exchange deciding it — each checked against the state
machine, recorded with its reasons and rules, and moving money only through settlement."""

from __future__ import annotations

from datetime import timedelta

import pytest
from contracts_support import NOW, deliver, events, hold, load, sign_all
from factories import make_actor
from sqlalchemy import select

from datafactor.audit import AuditEvent
from datafactor.exchange import contracts
from datafactor.exchange.errors import (
    ExchangeForbidden,
    ExchangeInvalid,
    ExchangeNotFound,
    ExchangeStateConflict,
)
from datafactor.exchange.models import ExchangeSettlement
from datafactor.identity import PartyKind

LATER = NOW + timedelta(days=1)


def act(world, fn, actor, contract_id, **kw):
    with world.db.write() as s:
        return fn(s, world.p(actor), contract_id, now=kw.pop("now", LATER), **kw)


def active(world, open_for, delivered=True):
    contract_id = open_for()
    sign_all(world, contract_id)
    if delivered:
        deliver(world, contract_id, now=NOW + timedelta(hours=2))
    return contract_id


def test_the_buyer_accepts_delivery_and_the_contract_is_settled(world, open_for):
    contract_id = active(world, open_for)
    with pytest.raises(ExchangeForbidden):
        act(world, contracts.confirm_delivery, world.seller, contract_id)
    act(world, contracts.confirm_delivery, world.buyer, contract_id)
    done = load(world, contract_id)
    assert done.state == "completed" and done.accepted_at == LATER and done.deadline_at is None
    assert hold(world, contract_id)["captured_fen"] == 10_000
    with world.db.read() as s:
        assert s.get(ExchangeSettlement, contract_id) is not None
    assert events(world, contract_id)[-2] == ("confirm", "active", "completed")


def test_nothing_to_accept_before_a_delivery(world, open_for):
    contract_id = active(world, open_for, delivered=False)
    with pytest.raises(ExchangeStateConflict) as refused:
        act(world, contracts.confirm_delivery, world.buyer, contract_id)
    assert refused.value.rule == "EXC-CONTRACT-ACCEPTANCE"
    assert hold(world, contract_id)["remaining_fen"] == 10_000


def test_either_party_terminates_before_signing(world, open_for):
    by_buyer, by_seller = open_for(), open_for()
    act(world, contracts.terminate_contract, world.buyer, by_buyer, reason="买错了")
    act(world, contracts.terminate_contract, world.seller, by_seller, reason="")
    for contract_id in (by_buyer, by_seller):
        row = load(world, contract_id)
        assert row.state == "terminated"
        assert hold(world, contract_id)["released_fen"] == 10_000
    assert load(world, by_buyer).reason == "买错了"
    with world.db.read() as s:
        audited = s.scalars(select(AuditEvent.action).where(AuditEvent.object_id == by_buyer)).all()
    assert "exchange:contract:terminate" in audited


def test_a_signed_contract_cannot_be_walked_away_from(world, open_for):
    contract_id = active(world, open_for)
    with pytest.raises(ExchangeStateConflict) as refused:
        act(world, contracts.terminate_contract, world.buyer, contract_id, reason="不要了")
    assert refused.value.rule == "EXC-CONTRACT-TERMINATE"
    assert load(world, contract_id).state == "active"


def test_staff_and_outsiders_cannot_terminate(world, open_for, db):
    contract_id = open_for()
    with pytest.raises(ExchangeNotFound):
        act(world, contracts.terminate_contract, world.outsider, contract_id, reason="")
    regulator_admin = make_actor(db, PartyKind.REGULATOR)
    with pytest.raises(ExchangeForbidden):
        act(world, contracts.terminate_contract, regulator_admin, contract_id, reason="x")
    assert load(world, contract_id).state == "accepted"


def test_the_exchange_may_force_a_termination_with_a_reason(world, open_for):
    contract_id = active(world, open_for)
    with pytest.raises(ExchangeInvalid):
        act(world, contracts.terminate_contract, world.operator, contract_id, reason=" ")
    act(world, contracts.terminate_contract, world.operator, contract_id, reason="卖方资质被撤销")
    assert load(world, contract_id).state == "terminated"
    assert hold(world, contract_id)["released_fen"] == 10_000


def test_a_dispute_needs_grounds_and_freezes_the_money(world, open_for):
    contract_id = active(world, open_for)
    with pytest.raises(ExchangeInvalid) as refused:
        act(world, contracts.dispute_contract, world.buyer, contract_id, grounds="  ")
    assert refused.value.rule == "EXC-CONTRACT-DISPUTE"
    act(world, contracts.dispute_contract, world.buyer, contract_id, grounds="字段缺失")
    row = load(world, contract_id)
    assert row.state == "disputed" and row.reason == "字段缺失"
    assert hold(world, contract_id)["remaining_fen"] == 10_000
    with pytest.raises(ExchangeStateConflict):  # no acceptance while in dispute
        act(world, contracts.confirm_delivery, world.buyer, contract_id)


def test_only_the_exchanges_administrator_resolves(world, open_for, db):
    contract_id = active(world, open_for)
    act(world, contracts.dispute_contract, world.seller, contract_id, grounds="买方拒不验收")
    with pytest.raises(ExchangeForbidden):
        act(world, contracts.resolve_dispute, world.buyer, contract_id, outcome="buyer", reason="x")
    staff = make_actor(db, PartyKind.EXCHANGE_OPERATOR, roles=("staff",))
    with pytest.raises(ExchangeForbidden):
        act(world, contracts.resolve_dispute, staff, contract_id, outcome="buyer", reason="x")
    with pytest.raises(ExchangeNotFound):
        act(
            world,
            contracts.resolve_dispute,
            world.outsider,
            contract_id,
            outcome="buyer",
            reason="x",
        )
    assert load(world, contract_id).state == "disputed"


def test_a_dispute_decided_for_the_seller_is_settled(world, open_for):
    contract_id = active(world, open_for)
    act(world, contracts.dispute_contract, world.buyer, contract_id, grounds="质量问题")
    act(
        world,
        contracts.resolve_dispute,
        world.operator,
        contract_id,
        outcome="seller",
        reason="交付符合合同",
    )
    row = load(world, contract_id)
    assert row.state == "completed" and row.settled_at is not None
    assert hold(world, contract_id)["captured_fen"] == 10_000


def test_a_dispute_decided_for_the_buyer_releases_everything(world, open_for):
    contract_id = active(world, open_for)
    act(world, contracts.dispute_contract, world.buyer, contract_id, grounds="未交付约定字段")
    act(
        world,
        contracts.resolve_dispute,
        world.operator,
        contract_id,
        outcome="buyer",
        reason="卖方违约",
    )
    row = load(world, contract_id)
    assert row.state == "terminated"
    assert hold(world, contract_id)["released_fen"] == 10_000
    assert events(world, contract_id)[-1] == ("resolve", "disputed", "terminated")


def test_a_split_pays_part_and_releases_the_rest(world, open_for):
    contract_id = active(world, open_for)
    act(world, contracts.dispute_contract, world.buyer, contract_id, grounds="部分数据缺失")
    for bad in (None, 0, 10_000, -5):
        with pytest.raises(ExchangeInvalid):
            act(
                world,
                contracts.resolve_dispute,
                world.operator,
                contract_id,
                outcome="split",
                reason="各担一半",
                pay_fen=bad,
            )
    act(
        world,
        contracts.resolve_dispute,
        world.operator,
        contract_id,
        outcome="split",
        reason="各担一半",
        pay_fen=4_000,
    )
    row = load(world, contract_id)
    assert row.state == "completed"
    figures = hold(world, contract_id)
    assert (figures["captured_fen"], figures["released_fen"], figures["remaining_fen"]) == (
        4_000,
        6_000,
        0,
    )


def test_available_actions_follow_the_state_and_the_role(world, open_for):
    contract_id = open_for()
    row = load(world, contract_id)
    assert contracts.available_actions(row, world.p(world.buyer), LATER) == {"sign", "terminate"}
    assert contracts.available_actions(row, world.p(world.outsider), LATER) == frozenset()
    assert "terminate" in contracts.available_actions(row, world.p(world.operator), LATER)
    sign_all(world, contract_id)
    deliver(world, contract_id, now=LATER)
    row = load(world, contract_id)
    assert contracts.available_actions(row, world.p(world.buyer), LATER) == {"confirm", "dispute"}
    assert contracts.available_actions(row, world.p(world.seller), LATER) == {"dispute"}
