"""Signing: the parties' administrators sign after confirming; with every signature the
contract is signed, recorded in the ledger and takes effect. A signature that does not verify
is never stored; a tampered document cannot be signed and its signatures stop verifying."""

from __future__ import annotations

from datetime import timedelta

import pytest
from contracts_support import NOW, events, load, sign_all
from factories import make_actor
from sqlalchemy import update

from datafactor import ledger
from datafactor.exchange import contracts
from datafactor.exchange.domain import TradeKind
from datafactor.exchange.errors import (
    ExchangeForbidden,
    ExchangeInvalid,
    ExchangeNotFound,
    ExchangeStateConflict,
)
from datafactor.exchange.keys import verify_record
from datafactor.exchange.models import ExchangeContract, ExchangeListing
from datafactor.identity import PartyKind, ServiceRole
from datafactor.registry.models import RegistryRight


def sign(world, actor, contract_id, *, confirm=True, now=NOW):
    with world.db.write() as s:
        return contracts.sign_contract(
            s, world.p(actor), contract_id, keys=world.keys, confirm=confirm, now=now
        )


def test_both_signatures_make_the_contract_signed_recorded_and_active(world, open_for):
    contract_id = open_for()
    sign(world, world.buyer, contract_id)
    half = load(world, contract_id)
    assert half.state == "accepted" and half.buyer_signature and half.seller_signature is None
    assert half.ledger_index is None

    sign(world, world.seller, contract_id, now=NOW + timedelta(hours=1))
    done = load(world, contract_id)
    assert done.state == "active"
    assert done.delivered_at is None
    assert done.deadline_at == NOW + timedelta(hours=1) + timedelta(days=30)
    for role in ("buyer", "seller"):
        signature = getattr(done, f"{role}_signature")
        key = getattr(done, f"{role}_signing_key")
        assert key.startswith(f"party-{getattr(done, f'{role}_id')}+")
        assert verify_record(done.document, signature, key)
    assert [c.valid for c in contracts.signature_checks(done)] == [True, True]
    assert events(world, contract_id) == [
        ("accept", None, "accepted"),
        ("sign", "accepted", "accepted"),
        ("sign", "accepted", "accepted"),
        ("sign", "accepted", "signed"),
        ("activate", "signed", "active"),
    ]

    # The ledger holds the signed contract: its hash, both signatures and verifier keys.
    assert done.ledger_index is not None
    with world.db.read() as s:
        entry = ledger.get_entry(s, done.ledger_index)
    record = entry.event()
    assert record is not None
    payload = record["payload"]
    assert record["kind"] == "exchange.contract.signed"
    assert payload["number"] == done.number
    assert payload["document_sha256"] == done.document_hash
    assert {x["role"]: x["signature"] for x in payload["signatures"]} == {
        "seller": done.seller_signature,
        "buyer": done.buyer_signature,
    }
    for x in payload["signatures"]:
        assert verify_record(done.document, x["signature"], x["key"])


def test_nothing_is_signed_without_the_users_confirmation(world, open_for):
    contract_id = open_for()
    with pytest.raises(ExchangeInvalid) as refused:
        sign(world, world.buyer, contract_id, confirm=False)
    assert refused.value.rule == "EXC-CONTRACT-SIGN"
    assert load(world, contract_id).buyer_signature is None


def test_only_an_administrator_of_a_party_signs(world, open_for):
    contract_id = open_for()
    staff = make_actor(world.db, roles=("staff",))
    with pytest.raises(ExchangeNotFound):  # another party's contract is not even visible
        sign(world, staff, contract_id)
    with pytest.raises(ExchangeNotFound):
        sign(world, world.outsider, contract_id)
    with pytest.raises(ExchangeForbidden):  # the exchange reads it but is not a party
        sign(world, world.operator, contract_id)
    assert load(world, contract_id).seller_signature is None


def test_a_party_signs_once(world, open_for):
    contract_id = open_for()
    sign(world, world.buyer, contract_id)
    with pytest.raises(ExchangeStateConflict) as refused:
        sign(world, world.buyer, contract_id)
    assert refused.value.rule == "EXC-CONTRACT-SIGN"


def test_signing_after_the_deadline_is_refused(world, open_for):
    contract_id = open_for()
    with pytest.raises(ExchangeStateConflict) as refused:
        sign(world, world.buyer, contract_id, now=NOW + timedelta(days=7))
    assert refused.value.rule == "EXC-CONTRACT-DEADLINE"


def test_nobody_signs_for_a_right_the_seller_no_longer_holds(world, open_for):
    contract_id = open_for()
    with world.db.write() as s:  # the right moved to another holder since the order
        listing = s.get(ExchangeListing, world.listing_id)
        s.get(RegistryRight, listing.right_id).holder_id = world.outsider.party_id
    for actor in (world.buyer, world.seller):
        with pytest.raises(ExchangeStateConflict) as refused:
            sign(world, actor, contract_id)
        assert refused.value.rule == "EXC-LST-CERT"
    row = load(world, contract_id)
    assert row.state == "accepted" and row.buyer_signature is None
    assert row.seller_signature is None


def test_a_tampered_document_cannot_be_signed_and_breaks_existing_signatures(world, open_for):
    contract_id = open_for()
    sign(world, world.buyer, contract_id)
    doc = dict(load(world, contract_id).document)
    doc["amount_fen"] = 1  # someone edits the price in the database
    with world.db.write() as s:
        s.execute(
            update(ExchangeContract).where(ExchangeContract.id == contract_id).values(document=doc)
        )
    with pytest.raises(ExchangeStateConflict) as refused:
        sign(world, world.seller, contract_id)
    assert refused.value.rule == "EXC-CONTRACT-SIGN"
    tampered = load(world, contract_id)
    assert tampered.seller_signature is None and tampered.state == "accepted"
    assert [c.valid for c in contracts.signature_checks(tampered) if c.signature] == [False]
    assert not verify_record(
        tampered.document, tampered.buyer_signature, tampered.buyer_signing_key
    )


def test_a_signature_that_does_not_verify_is_never_stored(world, open_for):
    contract_id = open_for()
    sign(world, world.buyer, contract_id)
    good = load(world, contract_id)
    with world.db.write() as s:
        row = s.get(ExchangeContract, contract_id)
        forged = world.keys.sign(world.seller.party_id, {"something": "else"})
        with pytest.raises(ExchangeStateConflict):
            contracts.store_signature(
                row, "seller", forged.signature, forged.key, signed_by="x", at=NOW
            )
        # The buyer's own valid signature does not pass for the seller's either.
        with pytest.raises(ExchangeStateConflict):
            contracts.store_signature(
                row, "seller", good.buyer_signature, good.buyer_signing_key, signed_by="x", at=NOW
            )
        assert row.seller_signature is None


def test_a_contract_whose_term_starts_later_takes_effect_at_its_start(world, open_for):
    start = (NOW + timedelta(days=10)).date()
    contract_id = open_for(term_start=start)
    sign_all(world, contract_id)
    signed = load(world, contract_id)
    assert signed.state == "signed"
    assert signed.deadline_at == contracts.day_start(start)
    with world.db.write() as s:
        assert contracts.run_deadlines_in(s, now=NOW + timedelta(days=5)).done == []
    with world.db.write() as s:
        report = contracts.run_deadlines_in(s, now=contracts.day_start(start))
    assert [(d.source, d.target) for d in report.done] == [("signed", "active")]
    assert load(world, contract_id).state == "active"


def test_an_agreement_trade_needs_the_brokers_signature_too(world, open_for):
    contract_id = open_for(kind=TradeKind.AGREEMENT, broker=True)
    assert load(world, contract_id).document["parties"]["broker"]["id"] == world.broker.party_id
    sign_all(world, contract_id)
    assert load(world, contract_id).state == "accepted"
    sign(world, world.broker, contract_id)
    done = load(world, contract_id)
    assert done.state == "active" and done.broker_signature
    assert [c.role for c in contracts.signature_checks(done)] == ["seller", "buyer", "broker"]
    assert all(c.valid for c in contracts.signature_checks(done))


def test_a_firm_that_is_not_a_broker_cannot_co_sign(world, open_for, db):
    assessor = make_actor(db, PartyKind.SERVICE_FIRM, service_role=ServiceRole.COMPLIANCE_ASSESSOR)
    world.broker = assessor
    contract_id = open_for(kind=TradeKind.AGREEMENT, broker=True)
    with pytest.raises(ExchangeForbidden) as refused:
        sign(world, assessor, contract_id)
    assert refused.value.rule == "EXC-CONTRACT-BROKER"
