"""Drawing up a contract: its number, document, fingerprint, state, deadline, history and the
messages both parties receive."""

from __future__ import annotations

from datetime import timedelta

from contracts_support import NOW, load
from sqlalchemy import select

from datafactor import ledger
from datafactor.audit import AuditEvent
from datafactor.exchange import contracts
from datafactor.exchange.domain import TradeKind
from datafactor.exchange.models import ExchangeContractEvent
from datafactor.inbox.models import InboxMessage


def test_a_trade_draws_up_a_numbered_contract_awaiting_signatures(world, open_for):
    first = load(world, open_for(quantity=2))
    second = load(world, open_for())
    assert first.number == "GX-DC-2026-000001"
    assert second.number == "GX-DC-2026-000002"
    assert first.state == "accepted"
    assert first.deadline_at == NOW + timedelta(days=7)
    assert (first.amount_fen, first.quantity, first.price_fen) == (20_000, 2, 10_000)
    assert first.hold_id and first.kind == TradeKind.MALL.value

    doc = first.document
    assert doc["number"] == first.number
    assert doc["parties"]["seller"]["id"] == world.seller.party_id
    assert doc["parties"]["buyer"]["id"] == world.buyer.party_id
    assert doc["parties"]["buyer"]["code"] and doc["parties"]["seller"]["name"]
    assert doc["parties"]["broker"] is None
    assert doc["object"]["certificate_number"].startswith("GX-")
    assert doc["amount_fen"] == 20_000 and doc["channels"] == ["download", "api"]
    assert doc["policy"]["permission"][0]["action"] == "use"
    assert doc["records"]["law"].endswith("第三十三条")
    assert doc["records"]["parties_verified"] == {"seller": True, "buyer": True}
    assert doc["rules"]["version"]
    assert first.document_hash == contracts.document_hash(doc)
    assert len(first.document_hash) == 64


def test_opening_records_history_audit_and_tells_both_parties(world, open_for):
    contract_id = open_for()
    with world.db.read() as s:
        events = s.scalars(
            select(ExchangeContractEvent).where(ExchangeContractEvent.contract_id == contract_id)
        ).all()
        assert [(e.source, e.target) for e in events] == [(None, "accepted")]
        told = s.scalars(
            select(InboxMessage.party_id).where(InboxMessage.kind == "exchange.contract")
        ).all()
        assert set(told) == {world.seller.party_id, world.buyer.party_id}
        audited = s.scalars(
            select(AuditEvent.party_id).where(AuditEvent.object_id == contract_id)
        ).all()
        assert set(audited) == {world.seller.party_id, world.buyer.party_id}


def test_the_document_hash_is_the_canonical_json_hash(world, open_for):
    contract = load(world, open_for())
    import hashlib

    assert (
        contract.document_hash
        == hashlib.sha256(ledger.canonical_json(contract.document)).hexdigest()
    )
