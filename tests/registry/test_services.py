"""Registry use cases on SQLite and PostgreSQL: from a data set version to a certificate.

A fixed clock (``today=``) moves applications through their notice periods without sleeping.
"""

from __future__ import annotations

import json
from datetime import date

import pytest
from factories import make_actor
from registry_support import LATER, TODAY, initial, new_asset, principal, scanned_version
from sqlalchemy import select

from datafactor import ledger
from datafactor.audit import AuditEvent, verify_chain
from datafactor.errors import NotFound
from datafactor.identity import PartyKind
from datafactor.registry import (
    Action,
    AssetKind,
    DataClass,
    InvalidCertificateNumber,
    NotRightHolder,
    ObjectionNotAdmissible,
    RegistrationState,
    RegistrationType,
)
from datafactor.registry import services as registry
from datafactor.registry.models import RegistryApplicationEvent, RegistryCertificate


@pytest.fixture
def issuer(settings):
    return registry.issuer_for(settings)


def submit(db, who, draft, issuer, today=TODAY):
    with db.write() as s:
        row = registry.submit_application(s, who, draft, issuer=issuer, today=today)
        return row.id, row.state, row.decision


def act(db, who, application_id, action, issuer, today=TODAY, **kw):
    with db.write() as s:
        row = registry.act(s, who, application_id, action, issuer=issuer, today=today, **kw)
        return row.state


def reasons(decision):
    return [r["rule"] for r in decision["reasons"] if r["effect"] in ("refuse", "return")]


def test_standard_registration_from_version_to_certificate(
    db, settings, issuer, enterprise, operator
):
    who, registrar = principal(db, enterprise), principal(db, operator)
    asset_id = new_asset(db, who, scanned_version(db, settings, who))
    app_id, state, decision = submit(db, who, initial(db, asset_id), issuer)
    assert state == "substantive_review", decision
    assert decision["outcome"] == "pass" and decision["track"] == "standard"

    assert act(db, registrar, app_id, Action.APPROVE_TO_NOTICE, issuer) == "public_notice"
    with db.read() as s:
        row = registry.get_application(s, who, app_id)
        assert row.notice_starts == TODAY and row.notice_ends == date(2026, 3, 5)  # 3 working days
        assert row.owner_role == "registrar"
        board, total = registry.notice_board(s, principal(db, make_actor(db)), limit=10, offset=0)
        assert total == 1 and board[0].id == app_id
    # Closing before the notice has run its course is refused.
    with pytest.raises(Exception, match="public notice runs until"):
        act(db, registrar, app_id, Action.CLOSE_NOTICE, issuer, today=date(2026, 3, 5))
    assert act(db, registrar, app_id, Action.CLOSE_NOTICE, issuer, today=LATER) == "certified"

    with db.read() as s:
        certificate = s.scalars(select(RegistryCertificate)).one()
        assert certificate.number == "GX-DR-2026-000001"
        assert certificate.holder_id == enterprise.party_id
        assert certificate.valid_until == date(2029, 4, 20)
        entry = json.loads(ledger.get_entry(s, certificate.ledger_index).entry)
        assert entry["kind"] == "registry.certificate.issued"
        assert entry["payload"] == certificate.payload
        history = [
            e.action
            for e in s.scalars(
                select(RegistryApplicationEvent).where(
                    RegistryApplicationEvent.application_id == app_id
                )
            )
        ]
        assert history == [
            "submit",
            "accept",
            "pass_formal",
            "approve_to_notice",
            "close_notice",
        ]
        found = registry.verify_certificate(s, " gx-dr-2026-000001 ", today=LATER)
        assert found.status.value == "active" and found.signature_valid
        assert [link["holder_id"] for link in found.chain_of_title["links"]] == [
            enterprise.party_id
        ]
        rows, total = registry.list_certificates(s, None, limit=10, offset=0, today=LATER)
        assert total == 1 and rows[0].right_kind == "holding"
        assert verify_chain(s).ok
        actions = set(s.scalars(select(AuditEvent.action)))
        assert {"registry:certificate:issue", "registry:right:grant"} <= actions

    with db.write() as s:
        receipt = registry.certificate_receipt(s, who, "GX-DR-2026-000001", issuer.keys)
    assert ledger.verify_receipt(receipt).ok
    assert json.loads(receipt.entry)["payload"]["number"] == "GX-DR-2026-000001"
    # A tampered receipt (the holder changed in its entry) no longer verifies.
    doc = receipt.to_json()
    forged = json.loads(receipt.entry)
    forged["payload"]["right"]["holder_id"] = "someone-else"
    doc["entry"] = __import__("base64").b64encode(ledger.canonical_json(forged)).decode()
    doc.pop("leaf_hash")
    assert not ledger.verify_receipt(ledger.Receipt.from_json(doc)).ok


def test_fast_track_public_data(db, settings, issuer, operator):
    department = make_actor(db, PartyKind.GOVERNMENT_DEPARTMENT)
    who, registrar = principal(db, department), principal(db, operator)
    asset_id = new_asset(db, who, scanned_version(db, settings, who), data_class=DataClass.PUBLIC)
    app_id, state, decision = submit(db, who, initial(db, asset_id), issuer)
    assert state == "public_notice" and decision["track"] == "fast"
    with db.read() as s:
        row = registry.get_application(s, who, app_id)
        assert row.notice_ends == date(2026, 3, 16)  # 10 working days for public data
    assert act(db, registrar, app_id, Action.CLOSE_NOTICE, issuer, today=LATER) == "certified"
    with db.read() as s:
        certificate = s.scalars(select(RegistryCertificate)).one()
        assert certificate.payload["registration"]["track"] == "fast"


def test_objection_substantiated_refuses_and_tells_the_objector(
    db, settings, issuer, enterprise, other_enterprise, operator
):
    who, rival, registrar = (
        principal(db, enterprise),
        principal(db, other_enterprise),
        principal(db, operator),
    )
    asset_id = new_asset(db, who, scanned_version(db, settings, who))
    app_id, _, _ = submit(db, who, initial(db, asset_id), issuer)
    act(db, registrar, app_id, Action.APPROVE_TO_NOTICE, issuer)
    # No grounds, and the applicant objecting to itself: refused with the rule.
    with db.write() as s, pytest.raises(ObjectionNotAdmissible) as no_grounds:
        registry.lodge(
            s,
            rival,
            app_id,
            registry.ObjectionDraft((), "这是我们的数据来源", ("合同",)),
            today=TODAY,
        )
    assert no_grounds.value.rule == "REG-OBJECTION-GROUNDS"
    with db.write() as s, pytest.raises(ObjectionNotAdmissible):
        registry.lodge(
            s,
            who,
            app_id,
            registry.ObjectionDraft(("title_dispute",), "自己反对自己的申请", ("x",)),
            today=TODAY,
        )
    with db.write() as s:
        objection = registry.lodge(
            s,
            rival,
            app_id,
            registry.ObjectionDraft(
                ("title_dispute",), "该站点数据由我方采集，有合同为证", ("contract-2024-17.pdf",)
            ),
            today=date(2026, 3, 3),
        )
        objection_id = objection.id
    with db.read() as s:
        assert registry.get_application(s, who, app_id).state == "objection"
    with db.write() as s:
        registry.decide(
            s,
            registrar,
            objection_id,
            substantiated=True,
            reason="合同证明数据归异议人所有",
            today=date(2026, 3, 4),
        )
    with db.read() as s:
        row = registry.get_application(s, who, app_id)
        assert row.state == "refused"
        assert row.decision["objection_id"] == objection_id
        told = registry.get_objection(s, rival, objection_id)
        assert told.outcome == "substantiated"
        assert other_enterprise.party_id in told.decision["notify"]
        assert s.scalars(select(RegistryCertificate)).first() is None


def test_bad_input_is_refused_with_the_rule(
    db, settings, issuer, enterprise, other_enterprise, operator
):
    who, rival, registrar = (
        principal(db, enterprise),
        principal(db, other_enterprise),
        principal(db, operator),
    )
    version_id = scanned_version(db, settings, who)
    # Registering data you do not hold: another party's version is not even visible, and a
    # registrar who can see it is refused by REG-HOLDER.
    with db.write() as s, pytest.raises(NotFound):
        registry.create_asset(
            s, rival, registry.AssetDraft(kind=AssetKind.RESOURCE, name="x", version_id=version_id)
        )
    with db.write() as s, pytest.raises(NotRightHolder) as not_holder:
        registry.create_asset(
            s,
            registrar,
            registry.AssetDraft(kind=AssetKind.RESOURCE, name="x", version_id=version_id),
        )
    assert not_holder.value.rule == "REG-HOLDER"

    asset_id = new_asset(db, who, version_id)
    # Fingerprint mismatch: refused at the formal review, with the rule.
    _, state, decision = submit(db, who, initial(db, asset_id, fingerprint="0" * 64), issuer)
    assert state == "refused" and "REG-FINGERPRINT" in reasons(decision)

    # Register, pledge, then try to transfer the pledged right.
    app_id, _, _ = submit(db, who, initial(db, asset_id), issuer)
    act(db, registrar, app_id, Action.APPROVE_TO_NOTICE, issuer)
    act(db, registrar, app_id, Action.CLOSE_NOTICE, issuer, today=LATER)
    with db.read() as s:
        right_id = registry.get_application(s, who, app_id).result_right_id
    pledge = registry.ApplicationDraft(
        type=RegistrationType.PLEDGE,
        asset_id=asset_id,
        right_id=right_id,
        counterparty_id=other_enterprise.party_id,
    )
    pledge_id, state, decision = submit(db, who, pledge, issuer, today=LATER)
    assert state == "substantive_review", decision
    assert act(db, registrar, pledge_id, Action.APPROVE, issuer, today=LATER) == "certified"
    transfer = registry.ApplicationDraft(
        type=RegistrationType.TRANSFER,
        asset_id=asset_id,
        right_id=right_id,
        counterparty_id=other_enterprise.party_id,
    )
    _, state, decision = submit(db, who, transfer, issuer, today=LATER)
    assert state == "refused" and "REG-PLEDGE-LOCK" in reasons(decision), decision
    with db.read() as s:
        found = registry.verify_certificate(s, "GX-DR-2026-000001", today=LATER)
        assert found.status.value == "pledged"

    # Certificate numbers: unknown, and malformed.
    with db.read() as s:
        with pytest.raises(NotFound) as unknown:
            registry.verify_certificate(s, "GX-DR-2026-000999", today=LATER)
        assert unknown.value.code == "registry-unknown-certificate"
        with pytest.raises(InvalidCertificateNumber):
            registry.verify_certificate(s, "GX-2026-1", today=LATER)


def test_force_transition_is_audited_and_overdue_queue(db, settings, issuer, enterprise, operator):
    who, admin = principal(db, enterprise), principal(db, operator)
    asset_id = new_asset(db, who, scanned_version(db, settings, who))
    app_id, _, _ = submit(db, who, initial(db, asset_id), issuer)
    with db.read() as s:
        late = registry.overdue_queue(s, admin, today=LATER)
        assert [r.id for r, _, _ in late] == [app_id]
    assert (
        act(
            db,
            admin,
            app_id,
            Action.FORCE,
            issuer,
            reason="申请人要求退回补充材料",
            target=RegistrationState.RETURNED,
        )
        == "returned"
    )
    with db.read() as s:
        forced = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "registry:application:force")
        ).one()
        assert "申请人要求退回补充材料" in forced.reasons
