"""Defects found in review, each pinned: a broker's staff cannot co-sign for the firm; a
dispute cannot be raised once the state's deadline has passed (the clock decides then); every
termination path returns the trade's licences exactly once; the audit chain's head is the last
lock a contract move takes (so moves never deadlock with a trade on PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from contracts_support import NOW, deliver, hold, load, sign_all
from factories import console_login
from listing_support import staff_of
from sqlalchemy import event
from sqlalchemy.orm import Session

from datafactor.errors import DomainError
from datafactor.exchange import contracts, jobs
from datafactor.exchange.domain import TradeKind


def test_a_brokers_staff_cannot_co_sign_for_the_firm(world, open_for):
    contract_id = open_for(kind=TradeKind.AGREEMENT, broker=True)
    staff = staff_of(world.db, world.broker, "broker-staff")
    with world.db.write() as s, pytest.raises(DomainError) as refused:
        contracts.sign_contract(
            s, world.p(staff), contract_id, keys=world.keys, confirm=True, now=NOW
        )
    assert refused.value.status == 403
    assert load(world, contract_id).broker_signature is None
    with world.db.read() as s:
        row = s.get(contracts.ExchangeContract, contract_id)
        assert "sign" not in contracts.available_actions(row, world.p(staff), NOW)
    # The firm's administrator co-signs.
    sign_all(world, contract_id, broker=True)
    assert load(world, contract_id).state == "active"


def test_no_dispute_once_the_acceptance_period_has_passed(world, open_for):
    contract_id = open_for()
    sign_all(world, contract_id)
    deliver(world, contract_id, now=NOW + timedelta(hours=1))
    due = load(world, contract_id).deadline_at
    assert due is not None
    with world.db.write() as s, pytest.raises(DomainError) as refused:
        contracts.dispute_contract(
            s, world.p(world.buyer), contract_id, grounds="太晚了", now=due + timedelta(minutes=1)
        )
    assert refused.value.status == 409
    with world.db.read() as s:
        row = s.get(contracts.ExchangeContract, contract_id)
        assert "dispute" not in contracts.available_actions(
            row, world.p(world.buyer), due + timedelta(minutes=1)
        )
    with world.db.write() as s:  # the clock deems it accepted and settles it
        contracts.apply_deadline(s, contract_id, now=due + timedelta(minutes=1))
    assert load(world, contract_id).state == "completed"


# --- lock order ------------------------------------------------------------------------------


@contextmanager
def locks(db) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    """The table of every row lock taken meanwhile, in order: on PostgreSQL every ``SELECT …
    FOR UPDATE`` sent (the ORM's and settlement's Core statements alike); on SQLite, which has
    no row locks, the ORM's ``with_for_update`` selects."""
    taken: list[str] = []
    engine = db.engine

    def sent(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if "FOR UPDATE" in statement.upper():
            # The table named by ``FOR UPDATE OF``, else the statement's first FROM.
            found = re.search(r'\bFOR UPDATE OF\s+"?(\w+)"?', statement, re.I) or re.search(
                r'\bFROM\s+"?(\w+)"?', statement, re.I
            )
            taken.append(found.group(1) if found else "?")

    def seen(state) -> None:  # type: ignore[no-untyped-def]
        stmt = state.statement
        if state.is_select and getattr(stmt, "_for_update_arg", None) is not None:
            taken.extend(t.name for t in stmt.get_final_froms() if hasattr(t, "name"))

    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        event.listen(Session, "do_orm_execute", seen)
    else:
        event.listen(engine, "before_cursor_execute", sent)
    try:
        yield taken
    finally:
        if sqlite:
            event.remove(Session, "do_orm_execute", seen)
        else:
            event.remove(engine, "before_cursor_execute", sent)


def _audit_head_last(taken: list[str]) -> None:
    assert "audit_chain_head" in taken
    first = taken.index("audit_chain_head")
    assert set(taken[first:]) == {"audit_chain_head"}, taken


def test_terminating_takes_the_audit_head_last(world, open_for):
    contract_id = open_for()
    with locks(world.db) as taken, world.db.write() as s:
        contracts.terminate_contract(
            s, world.p(world.buyer), contract_id, reason="不再需要", now=NOW + timedelta(hours=1)
        )
    _audit_head_last(taken)
    assert hold(world, contract_id)["remaining_fen"] == 0


def test_expiring_takes_the_audit_head_last(world, open_for):
    contract_id = open_for()
    with locks(world.db) as taken, world.db.write() as s:
        contracts.apply_deadline(s, contract_id, now=NOW + timedelta(days=30))
    _audit_head_last(taken)
    assert load(world, contract_id).state == "terminated"


def test_deciding_for_the_buyer_takes_the_audit_head_last(world, open_for):
    contract_id = open_for()
    sign_all(world, contract_id)
    deliver(world, contract_id, now=NOW + timedelta(hours=1))
    with world.db.write() as s:
        contracts.dispute_contract(
            s, world.p(world.buyer), contract_id, grounds="质量不符", now=NOW + timedelta(hours=2)
        )
    with locks(world.db) as taken, world.db.write() as s:
        contracts.resolve_dispute(
            s,
            world.p(world.operator),
            contract_id,
            outcome="buyer",
            reason="卖方未按约交付",
            now=NOW + timedelta(hours=3),
        )
    _audit_head_last(taken)
    assert hold(world, contract_id)["remaining_fen"] == 0


def test_the_last_signature_takes_the_ledger_head_before_the_audit_head(world, open_for):
    contract_id = open_for()
    with world.db.write() as s:
        contracts.sign_contract(
            s, world.p(world.buyer), contract_id, keys=world.keys, confirm=True, now=NOW
        )
    with locks(world.db) as taken, world.db.write() as s:
        contracts.sign_contract(
            s, world.p(world.seller), contract_id, keys=world.keys, confirm=True, now=NOW
        )
    _audit_head_last(taken)
    assert taken.index("ledger_head") < taken.index("audit_chain_head")


def test_a_failed_step_of_the_clock_leaves_no_audit_of_it(world, open_for, monkeypatch):
    """A contract the clock cannot handle rolls back whole (its savepoint), audits included,
    and the next contract's audits are its own."""
    broken, fine = open_for(), open_for()
    real = contracts._release

    def fail_once(contract, *a, **k):  # type: ignore[no-untyped-def]
        if contract.id == broken:
            raise RuntimeError("the bank is down")
        return real(contract, *a, **k)

    monkeypatch.setattr(contracts, "_release", fail_once)
    with world.db.write() as s:
        report = contracts.run_deadlines_in(s, now=NOW + timedelta(days=30))
    assert report.failed == [broken]
    from datafactor.audit import AuditEvent

    with world.db.read() as s:
        about = {
            e.object_id
            for e in s.query(AuditEvent).filter(AuditEvent.action == "exchange:contract:expire")
        }
    assert about == {fine}
    assert load(world, broken).state == "accepted"


def test_the_settlement_step_reads_in_the_readers_words(client, world, open_for):
    from datafactor.db import utcnow

    now = utcnow()
    contract_id = open_for(now=now)
    sign_all(world, contract_id, now=now)
    deliver(world, contract_id, now=now)
    with world.db.write() as s:
        contracts.confirm_delivery(s, world.p(world.buyer), contract_id, now=now)
    console_login(client, world.buyer, "/exchange/contracts")
    page = client.get(f"/exchange/contracts/{contract_id}")
    assert page.status_code == 200
    assert 'data-action="settle"' in page.text
    assert "<td>settle</td>" not in page.text  # the step has its label
    assert "paid, 0.00 released" not in page.text  # not the settlement's English note


def test_ending_a_mall_orders_contract_takes_the_audit_head_last(world):
    from datafactor.exchange import orders

    with world.db.write() as s:
        placed = orders.place_order(
            s, world.p(world.buyer), world.listing_id, 1, key="review-order-1", now=NOW
        )
        contract_id = placed.order.contract_id
    assert contract_id is not None
    with locks(world.db) as taken, world.db.write() as s:
        contracts.terminate_contract(
            s, world.p(world.seller), contract_id, reason="无法交付", now=NOW + timedelta(hours=1)
        )
    _audit_head_last(taken)
    assert "exchange_order" in taken and "exchange_listing" in taken
    assert hold(world, contract_id)["remaining_fen"] == 0
    with world.db.read() as s:
        assert s.get(orders.ExchangeOrder, placed.order.id).state == "cancelled"


def test_a_nul_in_an_id_filter_or_reason_is_bad_input_not_a_server_error(client, world, open_for):
    from factories import bearer

    contract_id = open_for()
    as_buyer, as_operator = bearer(client, world.buyer), bearer(client, world.operator)
    for url in ("/api/v1/contracts/%00", "/api/v1/contracts/a%00b.pdf"):
        assert client.get(url, headers=as_buyer).status_code == 404
    nul = client.get("/api/v1/contracts?status=%00", headers=as_buyer)  # refused at the edge
    assert nul.status_code == 400 and nul.json()["field"] == "status"
    r = client.get("/api/v1/contracts?status=nonsense", headers=as_buyer)
    assert r.status_code == 422 and "EXC-CONTRACT-VISIBLE" in r.json()["detail"]
    r = client.post(
        f"/api/v1/contracts/{contract_id}/terminate",
        headers=as_operator,
        json={"reason": "违规\x00交易"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "terminated" and r.json()["reason"] == "违规交易"


def test_a_mall_contract_never_delivered_ends_its_order_once(world):
    from datafactor.exchange import orders

    with world.db.write() as s:
        placed = orders.place_order(
            s, world.p(world.buyer), world.listing_id, 1, key="review-order-2", now=NOW
        )
        contract_id = placed.order.contract_id
    assert contract_id is not None
    sign_all(world, contract_id)
    assert load(world, contract_id).state == "active"
    for _ in range(2):  # the clock, twice: terminated and released once
        jobs.run_deadlines(world.db, NOW + timedelta(days=60))
    assert load(world, contract_id).state == "terminated"
    assert hold(world, contract_id)["remaining_fen"] == 0
    assert hold(world, contract_id)["released_fen"] == 10_000
    with world.db.read() as s:
        assert s.get(orders.ExchangeOrder, placed.order.id).state == "cancelled"
