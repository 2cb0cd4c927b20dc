"""Registration types beyond the initial one, on SQLite and PostgreSQL: who may apply on whose
asset, product lineage, revocation, the pledgee's consent to a release, objection registrations
(异议登记), and the audit trail of a transfer.

A fixed clock (``today=``) moves applications through their notices without sleeping:
``drive_to_certified`` closes a notice a week after it starts.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from factories import make_actor
from registry_support import (
    SCOPE,
    TODAY,
    drive_to_certified,
    fingerprint,
    initial,
    new_asset,
    principal,
    scanned_version,
)
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from datafactor.audit import AuditEvent
from datafactor.errors import Forbidden, NotFound
from datafactor.identity import PartyKind
from datafactor.registry import (
    Action,
    AssetKind,
    InvalidRegistration,
    NotRightHolder,
    RegistrationState,
    RegistrationType,
    TitleDisputed,
    TransitionNotAllowed,
)
from datafactor.registry import services as registry
from datafactor.registry.models import RegistryApplication, RegistryAsset, RegistryRight

END = date(2027, 12, 31)
GROUNDS = {
    "grounds": ("title_dispute",),
    "statement": "该站点数据由我方采集，有采集合同为证",
    "evidence": ("contract-2024-17.pdf",),
}


@pytest.fixture
def issuer(settings):
    return registry.issuer_for(settings)


@pytest.fixture
def world(db, settings, issuer, enterprise, other_enterprise, operator):
    """The grid (``owner``) holds a registered resource; the logistics firm (``licensee``) holds
    a licence on it; ``registrar`` is the exchange's registrar."""
    owner, licensee, registrar = (
        principal(db, enterprise),
        principal(db, other_enterprise),
        principal(db, operator),
    )
    asset_id = new_asset(db, owner, scanned_version(db, settings, owner))
    _, holding, day = drive_to_certified(db, owner, registrar, initial(db, asset_id), issuer, TODAY)
    licence = registry.ApplicationDraft(
        type=RegistrationType.LICENCE,
        asset_id=asset_id,
        right_id=holding,
        counterparty_id=licensee.party_id,
        scope=SCOPE,
        term_start=day,
        term_end=END,
    )
    _, pu_right, day = drive_to_certified(db, owner, registrar, licence, issuer, day)
    return {
        "owner": owner,
        "licensee": licensee,
        "registrar": registrar,
        "asset": asset_id,
        "holding": holding,
        "licence": pu_right,
        "day": day,
    }


def submit(db, who, draft, issuer, today):
    with db.write() as s:
        row = registry.submit_application(s, who, draft, issuer=issuer, today=today)
        return row.id, row.state, row.decision


def status(db, right_id):
    with db.read() as s:
        right = s.get(RegistryRight, right_id)
        assert right is not None
        return right.status


def refusing(decision):
    return [r["rule"] for r in decision["reasons"] if r["effect"] in ("refuse", "return")]


# --- 1. an application on another party's asset -------------------------------------------------


def test_a_stranger_cannot_apply_on_another_partys_asset(db, issuer, world):
    stranger = principal(db, make_actor(db))
    probe = registry.ApplicationDraft(
        type=RegistrationType.TRANSFER,
        asset_id=world["asset"],
        right_id=world["holding"],
        counterparty_id=stranger.party_id,
        fingerprint="0" * 64,
    )
    # The decision would have named the stored fingerprint (and the grade): not found instead,
    # exactly as for an asset that does not exist, and nothing is recorded.
    with pytest.raises(NotFound), db.write() as s:
        registry.submit_application(s, stranger, probe, issuer=issuer, today=world["day"])
    with db.read() as s:
        mine = s.scalars(
            select(RegistryApplication).where(RegistryApplication.applicant_id == stranger.party_id)
        ).all()
    assert mine == []


def test_a_licensee_transfers_its_licence_on_someone_elses_asset(db, issuer, world):
    buyer = make_actor(db)
    transfer = registry.ApplicationDraft(
        type=RegistrationType.TRANSFER,
        asset_id=world["asset"],
        right_id=world["licence"],
        counterparty_id=buyer.party_id,
    )
    _, successor, _ = drive_to_certified(
        db, world["licensee"], world["registrar"], transfer, issuer, world["day"]
    )
    assert status(db, world["licence"]) == "transferred"
    with db.read() as s:
        new = s.get(RegistryRight, successor)
        assert new is not None and new.holder_id == buyer.party_id and new.status == "active"


def test_a_contesting_party_never_learns_the_fingerprint(db, issuer, world):
    rival = principal(db, make_actor(db))
    draft = registry.ApplicationDraft(
        type=RegistrationType.OBJECTION,
        asset_id=world["asset"],
        right_id=world["holding"],
        fingerprint="0" * 64,
        **GROUNDS,
    )
    _, state, decision = submit(db, rival, draft, issuer, world["day"])
    assert state == "substantive_review", decision
    assert fingerprint(db, world["asset"]) not in json.dumps(decision)


# --- 2. product lineage -------------------------------------------------------------------------


def product_draft(version_id, lineage, **kw):
    values = {
        "kind": AssetKind.PRODUCT,
        "name": "园区用电指数",
        "description": "按园区汇总的用电指数",
        "domain": "energy",
        "source_statement": "由我方持有或获许可的供电量数据加工",
        "update_frequency": "monthly",
        "region": "450100",
        "field_schema": ({"name": "园区"}, {"name": "指数"}),
        "sample": "园区A,102.3",
        "version_id": version_id,
        "lineage": tuple(lineage),
    }
    values.update(kw)
    return registry.AssetDraft(**values)


def test_lineage_names_only_sources_the_maker_can_build_on(db, settings, world):
    stranger = principal(db, make_actor(db))
    version = scanned_version(db, settings, stranger)
    for source in (world["asset"], "no-such-asset"):
        with pytest.raises(InvalidRegistration) as refused, db.write() as s:
            registry.create_asset(s, stranger, product_draft(version, [source]))
        assert refused.value.rule == "REG-PO-LINEAGE"
        assert refused.value.params["asset"] == source
        assert "Obtain a licence" in str(refused.value)
    # The licensee holds a processing-use right on the grid's data: it may build on it.
    licensee = world["licensee"]
    with db.write() as s:
        product = registry.create_asset(
            s,
            licensee,
            product_draft(scanned_version(db, settings, licensee), [world["asset"]]),
        )
        assert registry.lineage_of(s, product.id) == [world["asset"]]


# Row locks are PostgreSQL's; SQLite serialises every writer.
@pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)
def test_product_certification_locks_its_sources(db, settings, issuer, world):
    licensee, registrar = world["licensee"], world["registrar"]
    with db.write() as s:
        product = registry.create_asset(
            s,
            licensee,
            product_draft(scanned_version(db, settings, licensee), [world["asset"]]),
        ).id
    draft = initial(db, product, term_start=world["day"], term_end=END)
    app_id, state, decision = submit(db, licensee, draft, issuer, world["day"])
    assert state == "substantive_review", decision
    with db.write() as s:
        registry.act(
            s, registrar, app_id, Action.APPROVE_TO_NOTICE, issuer=issuer, today=world["day"]
        )
    # A cancellation of the source right holds the source asset's row (its certification locks
    # it first): the product's certification must wait for it, not certify on a stale book.
    with db.write() as holder:
        holder.execute(
            select(RegistryAsset.id).where(RegistryAsset.id == world["asset"]).with_for_update()
        )
        with pytest.raises(OperationalError, match="lock timeout"):
            close_notice_waiting_at_most(db, registrar, app_id, issuer, world["day"] + timedelta(7))
    with db.read() as s:
        assert s.get(RegistryApplication, app_id).state == "public_notice"  # nothing written


def close_notice_waiting_at_most(db, registrar, app_id, issuer, day):
    with db.write() as s:
        s.execute(text("SET LOCAL lock_timeout = '300ms'"))  # PostgreSQL: wait, then give up
        registry.act(s, registrar, app_id, Action.CLOSE_NOTICE, issuer=issuer, today=day)


# --- 3. revocation ------------------------------------------------------------------------------


def revocation(world, **kw):
    return registry.ApplicationDraft(
        type=RegistrationType.REVOCATION,
        asset_id=world["asset"],
        right_id=world["holding"],
        **kw,
    )


def test_a_registrar_revokes_and_the_licence_is_suspended(db, issuer, world):
    registrar = world["registrar"]
    _, right_id, _ = drive_to_certified(
        db, registrar, registrar, revocation(world), issuer, world["day"]
    )
    assert right_id == world["holding"]
    assert status(db, world["holding"]) == "revoked"
    assert status(db, world["licence"]) == "suspended"  # the cascade
    with db.read() as s:
        licence = s.get(RegistryRight, world["licence"])
        assert licence is not None and licence.suspended_by == world["holding"]
        events = {
            (e.object_id, e.party_id)
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.action == "registry:right:revoke")
            )
        }
    # Each right has its own event, under its holder: the licensee learns why its right stopped.
    assert events == {
        (world["holding"], world["owner"].party_id),
        (world["licence"], world["licensee"].party_id),
    }


def test_a_revocation_needs_an_authority_or_an_order(db, issuer, world):
    stranger = principal(db, make_actor(db))
    _, state, decision = submit(db, stranger, revocation(world), issuer, world["day"])
    assert state == "refused" and "REG-HOLDER" in refusing(decision), decision
    # On a court's order (its number, the judgment attached) anyone may apply; the registrar
    # checks the order in substantive review.
    ordered = revocation(world, order_reference="(2026)桂0103民初1234号", evidence=("判决书.pdf",))
    _, state, decision = submit(db, stranger, ordered, issuer, world["day"])
    assert state == "substantive_review", decision
    # A regulator is an authority by its party's kind (its administrator may apply).
    inspector = principal(db, make_actor(db, PartyKind.REGULATOR))
    _, state, decision = submit(db, inspector, revocation(world), issuer, world["day"])
    assert state == "substantive_review", decision


# --- 4. pledge release with the pledgee's consent -----------------------------------------------


def test_the_holder_releases_a_pledge_with_the_pledgees_consent(db, issuer, world):
    owner, registrar = world["owner"], world["registrar"]
    bank = principal(db, make_actor(db, name="北部湾银行"))
    pledge = registry.ApplicationDraft(
        type=RegistrationType.PLEDGE,
        asset_id=world["asset"],
        right_id=world["holding"],
        counterparty_id=bank.party_id,
    )
    _, _, day = drive_to_certified(db, owner, registrar, pledge, issuer, world["day"])
    assert status(db, world["holding"]) == "pledged"
    release = registry.ApplicationDraft(
        type=RegistrationType.PLEDGE_RELEASE, asset_id=world["asset"], right_id=world["holding"]
    )
    app_id, state, decision = submit(db, owner, release, issuer, day)
    # It waits in formal review for the pledgee's consent, saying so.
    assert state == "formal_review" and decision["outcome"] == "pending", decision
    assert any("consent" in r["en"] for r in decision["reasons"])
    # Nobody but the pledgee can consent (the application is not even shown to exist).
    for other in (world["licensee"], principal(db, make_actor(db))):
        with pytest.raises(NotFound), db.write() as s:
            registry.consent_to_release(s, other, app_id, issuer=issuer, today=day)
    with db.read() as s:
        assert registry.get_application(s, bank, app_id).id == app_id  # the pledgee reads it
    with db.write() as s:
        row = registry.consent_to_release(s, bank, app_id, issuer=issuer, today=day)
        assert row.state == "substantive_review", row.decision
        assert row.facts["pledgee_consent"]["party_id"] == bank.party_id
    with db.write() as s:
        registry.act(s, registrar, app_id, Action.APPROVE, issuer=issuer, today=day)
    assert status(db, world["holding"]) == "active"
    with db.read() as s:
        consents = s.scalars(
            select(AuditEvent.party_id).where(AuditEvent.action == "registry:pledge:consent")
        ).all()
    assert set(consents) == {bank.party_id, owner.party_id}


def test_a_release_forced_past_the_consent_is_refused_at_certification(db, issuer, world):
    owner, registrar = world["owner"], world["registrar"]
    bank = principal(db, make_actor(db))
    pledge = registry.ApplicationDraft(
        type=RegistrationType.PLEDGE,
        asset_id=world["asset"],
        right_id=world["holding"],
        counterparty_id=bank.party_id,
    )
    _, _, day = drive_to_certified(db, owner, registrar, pledge, issuer, world["day"])
    release = registry.ApplicationDraft(
        type=RegistrationType.PLEDGE_RELEASE, asset_id=world["asset"], right_id=world["holding"]
    )
    app_id, _, _ = submit(db, owner, release, issuer, day)
    with db.write() as s:
        registry.act(
            s,
            registrar,
            app_id,
            Action.FORCE,
            issuer=issuer,
            today=day,
            reason="登记员误操作测试",
            target=RegistrationState.SUBSTANTIVE_REVIEW,
        )
    with pytest.raises(NotRightHolder, match="consent") as refused, db.write() as s:
        registry.act(s, registrar, app_id, Action.APPROVE, issuer=issuer, today=day)
    assert refused.value.rule == "REG-PLEDGE-LOCK"
    assert status(db, world["holding"]) == "pledged"


# --- 5. objection registration ------------------------------------------------------------------


def objection(world, **kw):
    return registry.ApplicationDraft(
        type=RegistrationType.OBJECTION,
        asset_id=world["asset"],
        right_id=world["holding"],
        **{**GROUNDS, **kw},
    )


def licence_to(db, world, party_id, day):
    return registry.ApplicationDraft(
        type=RegistrationType.LICENCE,
        asset_id=world["asset"],
        right_id=world["holding"],
        counterparty_id=party_id,
        scope=SCOPE,
        term_start=day,
        term_end=END,
    )


def verification(db, world, day):
    with db.read() as s:
        number = s.execute(
            text("select number from registry_certificate where right_id = :r"),
            {"r": world["holding"]},
        ).scalar_one()
        return registry.verify_certificate(s, number, today=day)


def test_an_objection_registration_puts_the_right_under_objection_until_it_lapses(
    db, issuer, world
):
    claimant = principal(db, make_actor(db, name="南宁数据采集公司"))
    app_id, right_id, day = drive_to_certified(
        db, claimant, world["registrar"], objection(world), issuer, world["day"]
    )
    assert right_id == world["holding"]
    with db.read() as s:
        record = registry.get_application(s, claimant, app_id).facts["record"]
    assert record["registered_on"] == day.isoformat()
    lapses = date.fromisoformat(record["lapses_on"])
    assert lapses == day + timedelta(days=15)  # rules: objections.registration_lapse_days
    found = verification(db, world, day)
    assert found.under_objection and found.as_dict()["objections"][0]["status"] == "in_force"
    # The holder can no longer license or transfer the right, or pledge it.
    newcomer = make_actor(db)
    _, state, decision = submit(
        db, world["owner"], licence_to(db, world, newcomer.party_id, day), issuer, day
    )
    assert state == "refused" and "REG-REFUSE-OPEN-DISPUTE" in refusing(decision), decision
    # ... nor the licensee transfer the licence whose title rests on it.
    transfer = registry.ApplicationDraft(
        type=RegistrationType.TRANSFER,
        asset_id=world["asset"],
        right_id=world["licence"],
        counterparty_id=newcomer.party_id,
    )
    _, state, decision = submit(db, world["licensee"], transfer, issuer, day)
    assert state == "refused" and "REG-REFUSE-OPEN-DISPUTE" in refusing(decision), decision
    # No lawsuit within the period: the objection lapses and the right is free again.
    after = lapses + timedelta(days=1)
    assert not verification(db, world, after).under_objection
    _, state, decision = submit(
        db, world["owner"], licence_to(db, world, newcomer.party_id, after), issuer, after
    )
    assert state == "substantive_review", decision
    with (
        pytest.raises(TransitionNotAllowed, match="no longer in force \\(Objection lapsed\\)"),
        db.write() as s,
    ):
        registry.record_objection_lawsuit(
            s, claimant, app_id, reference="(2026)桂01民初1号", today=after
        )


def test_a_lawsuit_keeps_it_and_the_registrar_closes_it(db, issuer, world):
    registrar, owner = world["registrar"], world["owner"]
    claimant = principal(db, make_actor(db))
    app_id, _, day = drive_to_certified(
        db, claimant, registrar, objection(world), issuer, world["day"]
    )
    with db.write() as s:
        registry.record_objection_lawsuit(
            s, claimant, app_id, reference="(2026)桂0103民初88号", today=day + timedelta(days=10)
        )
    later = day + timedelta(days=60)
    assert verification(db, world, later).under_objection  # the suit keeps it in force
    # Only a registrar closes it; unsubstantiated, it is lifted.
    with pytest.raises(Forbidden), db.write() as s:
        registry.close_objection_registration(
            s, claimant, app_id, substantiated=False, reason="撤诉", today=later
        )
    with db.write() as s:
        row = registry.close_objection_registration(
            s,
            registrar,
            app_id,
            substantiated=False,
            reason="法院驳回异议人的诉讼请求",
            today=later,
        )
        assert row.facts["record"]["closed"] == "lifted"
    assert not verification(db, world, later).under_objection
    _, state, decision = submit(
        db, owner, licence_to(db, world, make_actor(db).party_id, later), issuer, later
    )
    assert state == "substantive_review", decision


def test_a_substantiated_objection_stays_until_the_right_is_revoked(db, issuer, world):
    registrar = world["registrar"]
    claimant = principal(db, make_actor(db))
    app_id, _, day = drive_to_certified(
        db, claimant, registrar, objection(world), issuer, world["day"]
    )
    with db.write() as s:
        registry.close_objection_registration(
            s, registrar, app_id, substantiated=True, reason="判决确认数据归异议人", today=day
        )
    long_after = day + timedelta(days=90)
    assert verification(db, world, long_after).under_objection  # substantiated never lapses
    drive_to_certified(db, registrar, registrar, revocation(world), issuer, long_after)
    assert status(db, world["holding"]) == "revoked"
    with db.read() as s:
        record = registry.get_application(s, claimant, app_id).facts["record"]
    assert record["closed"] == "resolved"


def test_an_objection_registration_by_the_holder_or_on_nothing_is_refused(db, issuer, world):
    _, state, decision = submit(db, world["owner"], objection(world), issuer, world["day"])
    assert state == "refused" and "REG-HOLDER" in refusing(decision), decision
    claimant = principal(db, make_actor(db))
    _, state, decision = submit(
        db, claimant, objection(world, grounds=(), evidence=()), issuer, world["day"]
    )
    assert state == "refused" and "REG-OBJECTION-GROUNDS" in refusing(decision), decision


def test_a_registration_in_notice_is_stopped_by_an_objection_registered_meanwhile(
    db, issuer, world
):
    registrar, owner = world["registrar"], world["owner"]
    day = world["day"]
    app_id, state, decision = submit(
        db, owner, licence_to(db, world, make_actor(db).party_id, day), issuer, day
    )
    assert state == "substantive_review", decision
    with db.write() as s:
        registry.act(s, registrar, app_id, Action.APPROVE_TO_NOTICE, issuer=issuer, today=day)
    claimant = principal(db, make_actor(db))
    drive_to_certified(db, claimant, registrar, objection(world), issuer, day)
    with pytest.raises(TitleDisputed) as refused, db.write() as s:
        registry.act(
            s, registrar, app_id, Action.CLOSE_NOTICE, issuer=issuer, today=day + timedelta(7)
        )
    assert refused.value.rule == "REG-REFUSE-OPEN-DISPUTE"
    with db.read() as s:
        assert s.get(RegistryApplication, app_id).state == "public_notice"  # nothing written


# --- 7. the transfer-out audit event ------------------------------------------------------------


def test_a_transfer_out_is_audited_under_the_transferring_holder(db, issuer, world):
    buyer = make_actor(db)
    transfer = registry.ApplicationDraft(
        type=RegistrationType.TRANSFER,
        asset_id=world["asset"],
        right_id=world["holding"],
        counterparty_id=buyer.party_id,
    )
    _, successor, _ = drive_to_certified(
        db, world["owner"], world["registrar"], transfer, issuer, world["day"]
    )
    with db.read() as s:
        events = {
            e.object_id: e
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.action == "registry:right:transfer")
            )
        }
    # The old holder's trail shows the transfer out; the new holder's the transfer in.
    assert events[world["holding"]].party_id == world["owner"].party_id
    assert "transferred" in events[world["holding"]].summary
    assert events[successor].party_id == buyer.party_id
