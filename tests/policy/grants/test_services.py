"""Authorisations on SQLite and PostgreSQL: request, decide, licence registration, uses, the
monitor, and the refusals a person can cause, each naming its rule."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest
from factories import make_actor
from grants_support import TERM_END, certify_licence, draft, policy, registered_asset, state_of
from registry_support import principal
from sqlalchemy import select

from datafactor import ledger
from datafactor.audit import AuditEvent, verify_chain
from datafactor.errors import DomainError, NotFound
from datafactor.identity import PartyKind
from datafactor.policy import PolicyError
from datafactor.policy.grants import (
    GrantInvalid,
    GrantState,
    GrantStateConflict,
    NotGrantor,
    PublicDataDownload,
    ScopeExceedsGrantor,
    TermExceedsGrantor,
    decide_grant,
    get_grant,
    grant_events,
    list_grants,
    monitor,
    offer_grant,
    request_grant,
    resume_grant,
    revoke_grant,
    suspend_grant,
    use_grant,
    withdraw_grant,
)
from datafactor.registry import Action, DataClass, RegistryError
from datafactor.registry import services as registry

CST_NOON = "T12:00:00+08:00"


@pytest.fixture
def issuer(settings):
    return registry.issuer_for(settings)


@pytest.fixture
def world(db, settings, issuer, enterprise, other_enterprise, operator):
    """The grid (``holder``) holds a registered data set; a merchant (``grantee``) will ask to
    use it; ``registrar`` is the exchange's registrar."""
    holder, grantee, registrar = (
        principal(db, enterprise),
        principal(db, other_enterprise),
        principal(db, operator),
    )
    asset_id, right_id, day = registered_asset(db, settings, holder, registrar, issuer)
    return {
        "holder": holder,
        "grantee": grantee,
        "registrar": registrar,
        "asset": asset_id,
        "right": right_id,
        "day": day,
    }


def moment(day: date) -> datetime:
    return datetime.fromisoformat(day.isoformat() + CST_NOON)


def test_request_approve_register_use(db, issuer, world):
    holder, grantee, day = world["holder"], world["grantee"], world["day"]
    with db.write() as s:
        grant = request_grant(
            s, grantee, draft(world["asset"], grantee.party_id, policy(max_uses=2)), today=day
        )
        grant_id, number = grant.id, grant.number
        assert grant.state == "requested" and number == "GX-SQ-2026-000001"
        assert grant.holder_id == holder.party_id and grant.right_id == world["right"]
    with db.write() as s:
        grant = decide_grant(s, holder, grant_id, approve=True, issuer=issuer, today=day)
        assert grant.state == "approved" and grant.licence_application_id
        record, signature, key = grant.record, grant.signature, grant.signing_key
    # The approval is signed and in the ledger.
    verifier = ledger.Verifier.from_key_string(key)
    import base64

    assert verifier.verify(ledger.canonical_json(record), base64.b64decode(signature))
    with db.read() as s:
        entry = json.loads(ledger.get_entry(s, get_grant(s, holder, grant_id).ledger_index).entry)
        assert entry["kind"] == "policy.grant.decision" and entry["payload"]["action"] == "approve"
    # Not yet in effect: uses are refused with the reason.
    with db.write() as s:
        out = use_grant(
            s,
            grantee,
            grant_id,
            {"action": "read", "purpose": "industry", "channel": "api", "spatial": "CN-GX"},
            now=moment(day),
        )
        assert out.decision.decision == "deny" and out.uses == 0
        assert out.decision.rules == ("GRT-USE",)
    certified = certify_licence(db, world["registrar"], holder, grant_id, issuer, day)
    with db.read() as s:
        grant = get_grant(s, grantee, grant_id)
        assert grant.state == "active" and grant.licence_right_id
        assert grant.licence_certificate and grant.licence_certificate.startswith("GX-DR-")
        right = registry.right_of(s, grant.licence_right_id)
        assert right.holder_id == grantee.party_id and right.kind.value == "processing_use"
        assert sorted(right.scope.purposes) == ["industry"]
        assert [e.action for e in grant_events(s, grant_id)] == ["request", "approve", "activate"]
    request = {
        "action": "read",
        "purpose": "product_development",
        "channel": "api",
        "spatial": "450100",
    }
    with db.write() as s:
        out = use_grant(s, grantee, grant_id, request, dry_run=True, now=moment(certified))
        assert out.decision.decision == "permit" and out.uses == 0 and out.remaining == 2
    for expected_uses in (1, 2):
        with db.write() as s:
            out = use_grant(s, grantee, grant_id, request, now=moment(certified))
            assert out.decision.decision == "permit" and out.uses == expected_uses
    # The count is exhausted: the grant has ended and a third use is refused.
    assert state_of(db, grantee, grant_id) is GrantState.EXPIRED
    with db.write() as s:
        out = use_grant(s, grantee, grant_id, request, now=moment(certified))
        assert out.decision.decision == "deny" and out.uses == 2 and out.remaining == 0
    with db.read() as s:
        assert verify_chain(s).ok
        actions = set(s.scalars(select(AuditEvent.action)))
        assert {"policy:grant:request", "policy:grant:approve", "policy:grant:use"} <= actions


# --- refusals a person can cause -----------------------------------------------------------


def refused(db, fn, *args, **kw):
    with pytest.raises(DomainError) as caught, db.write() as s:
        fn(s, *args, **kw)
    return caught.value


def test_requests_beyond_the_grantors_right_are_refused(db, world):
    grantee, asset, day = world["grantee"], world["asset"], world["day"]
    ask = lambda document=None, **kw: (  # noqa: E731
        request_grant,
        grantee,
        draft(asset, grantee.party_id, document, **kw),
    )

    def refusal(document=None, **kw):
        fn, who, d = ask(document, **kw)
        return refused(db, fn, who, d, today=day)

    err = refusal(policy(purposes=("marketing", "credit_finance")))
    assert isinstance(err, ScopeExceedsGrantor) and err.rule == "GRT-SCOPE-WITHIN"
    assert "credit_finance" in str(err)  # marketing → industry is within, credit_finance is not
    err = refusal(policy(channels=("api", "download"), prohibit_download=False))
    assert isinstance(err, ScopeExceedsGrantor) and err.field == "policy.delivery_modes"
    err = refusal(policy(regions=("CN-GD",)))
    assert isinstance(err, ScopeExceedsGrantor) and "440000" in str(err)
    err = refusal(term_start=date(2026, 1, 5))  # in the past: a new grant is not back-dated
    assert isinstance(err, GrantInvalid) and err.rule == "GRT-NO-BACKDATE"
    assert err.field == "term_start"
    err = refusal(term_end=date(2026, 1, 5))
    assert isinstance(err, GrantInvalid) and err.rule == "GRT-TERM"
    err = refusal(
        {
            "@type": "Set",
            "uid": "x",
            "permission": [
                {
                    "action": "use",
                    "constraint": [{"leftOperand": "count", "operator": "lt", "rightOperand": 0}],
                }
            ],
        }
    )
    assert isinstance(err, PolicyError) and err.rule == "POL-CONTRADICTION"
    err = refusal({**policy(), "target": "another-asset"})
    assert isinstance(err, GrantInvalid) and err.rule == "GRT-POLICY-PARTIES"
    err = refusal(fee_fen=-1)
    assert isinstance(err, GrantInvalid) and err.rule == "GRT-FEE"
    # Asking in another party's name, or asking for oneself as the holder.
    with pytest.raises(NotGrantor), db.write() as s:
        request_grant(s, grantee, draft(asset, world["holder"].party_id), today=day)
    with pytest.raises(GrantInvalid, match="GRT-GRANTEE"), db.write() as s:
        offer_grant(
            s, world["holder"], draft(asset, world["holder"].party_id), issuer=None, today=day
        )
    with db.read() as s:  # nothing was written by any refusal
        assert list_grants(s, grantee) == []


def test_unregistered_data_and_unverified_grantees(db, settings, issuer, world):
    holder, day = world["holder"], world["day"]
    from registry_support import new_asset

    bare = new_asset(db, holder, None)  # declared, never registered: no right to license
    err = refused(
        db, offer_grant, holder, draft(bare, world["grantee"].party_id), issuer=issuer, today=day
    )
    assert isinstance(err, NotGrantor) and err.rule == "GRT-GRANTOR-RIGHT"
    pending = make_actor(db, PartyKind.ENTERPRISE, verified=False)
    err = refused(
        db, offer_grant, holder, draft(world["asset"], pending.party_id), issuer=issuer, today=day
    )
    assert isinstance(err, GrantInvalid) and err.rule == "GRT-GRANTEE"


def test_a_pledged_right_cannot_license(db, issuer, world, operator):
    """The registry's own refusal (REG-PLEDGE-LOCK) is surfaced, before anything is filed."""
    from registry_support import drive_to_certified

    from datafactor.registry import RegistrationType

    pledgee = make_actor(db, PartyKind.ENTERPRISE)
    pledge = registry.ApplicationDraft(
        type=RegistrationType.PLEDGE,
        asset_id=world["asset"],
        right_id=world["right"],
        counterparty_id=pledgee.party_id,
    )
    _, _, day = drive_to_certified(
        db, world["holder"], world["registrar"], pledge, issuer, world["day"]
    )
    err = refused(
        db,
        offer_grant,
        world["holder"],
        draft(world["asset"], world["grantee"].party_id),
        issuer=issuer,
        today=day,
    )
    assert isinstance(err, RegistryError) and err.params["rule"] == "REG-PLEDGE-LOCK"


def test_public_data_never_leaves_the_domain(db, settings, issuer, operator):
    department = principal(db, make_actor(db, PartyKind.GOVERNMENT_DEPARTMENT))
    merchant = principal(db, make_actor(db, PartyKind.DATA_MERCHANT))
    registrar = principal(db, operator)
    asset, _, day = registered_asset(
        db, settings, department, registrar, issuer, data_class=DataClass.PUBLIC
    )
    err = refused(
        db,
        request_grant,
        merchant,
        draft(
            asset, merchant.party_id, policy(channels=("api", "download"), prohibit_download=False)
        ),
        today=day,
    )
    assert isinstance(err, PublicDataDownload) and err.rule == "GRT-PUBLIC-NO-DOWNLOAD"
    # A policy that names no channel at all would let download through too.
    from datafactor.policy.editor import EditorValues, build_document

    anything = build_document(EditorValues(purposes=["industry"], regions=["CN-GX"]))
    err = refused(db, request_grant, merchant, draft(asset, merchant.party_id, anything), today=day)
    assert isinstance(err, PublicDataDownload)
    with db.write() as s:
        grant = request_grant(
            s,
            merchant,
            draft(asset, merchant.party_id, policy(channels=("api", "sandbox"))),
            today=day,
        )
        assert grant.state == "requested"


# --- who may do what ---------------------------------------------------------------------------


def test_withdraw_refuse_and_final_states(db, issuer, world):
    holder, grantee, day = world["holder"], world["grantee"], world["day"]
    with db.write() as s:
        first = request_grant(s, grantee, draft(world["asset"], grantee.party_id), today=day).id
        second = request_grant(s, grantee, draft(world["asset"], grantee.party_id), today=day).id
    # Only the grantee withdraws; only the grantor decides.
    assert isinstance(refused(db, withdraw_grant, holder, first, today=day), NotGrantor)
    err = refused(db, decide_grant, grantee, first, approve=True, issuer=issuer, today=day)
    assert isinstance(err, (NotGrantor, Exception)) and getattr(err, "status", 0) == 403
    with db.write() as s:
        assert withdraw_grant(s, grantee, first, today=day).state == "withdrawn"
    err = refused(db, decide_grant, holder, first, approve=True, issuer=issuer, today=day)
    assert isinstance(err, GrantStateConflict) and err.rule == "GRT-TRANSITION"
    assert isinstance(
        refused(
            db, decide_grant, holder, second, approve=False, reason=" ", issuer=issuer, today=day
        ),
        Exception,
    )  # a refusal needs a reason
    with db.write() as s:
        grant = decide_grant(
            s, holder, second, approve=False, reason="用途不符", issuer=issuer, today=day
        )
        assert grant.state == "refused" and grant.reason == "用途不符" and grant.signature
    with db.read() as s:
        notes = [e.action for e in grant_events(s, second)]
        assert notes == ["request", "refuse"]
    # A stranger sees nothing.
    stranger = principal(db, make_actor(db))
    with pytest.raises(NotFound), db.read() as s:
        get_grant(s, stranger, first)


def test_the_registry_refusing_the_licence_ends_the_grant(db, issuer, world):
    holder, grantee, day = world["holder"], world["grantee"], world["day"]
    with db.write() as s:
        grant = offer_grant(
            s, holder, draft(world["asset"], grantee.party_id), issuer=issuer, today=day
        )
        grant_id, application = grant.id, grant.licence_application_id
        assert grant.state == "approved"
    with db.write() as s:
        registry.act(
            s,
            world["registrar"],
            application,
            Action.REFUSE,
            issuer=issuer,
            reason="许可范围与登记材料不符",
            today=day,
        )
    with db.read() as s:
        grant = get_grant(s, grantee, grant_id)
        assert grant.state == "refused"
        assert grant.reason_params == {"reason": "许可范围与登记材料不符"}
        assert "GRT-LICENCE" in grant.rules
        licence = registry.application_outcome(s, application)
        assert licence.state == "refused"


# --- uses ----------------------------------------------------------------------------------------


def active_grant(db, issuer, world, document, **kw):
    holder, grantee, day = world["holder"], world["grantee"], world["day"]
    with db.write() as s:
        grant = offer_grant(
            s,
            holder,
            draft(world["asset"], grantee.party_id, document, **kw),
            issuer=issuer,
            today=day,
        )
        grant_id = grant.id
    return grant_id, certify_licence(db, world["registrar"], holder, grant_id, issuer, day)


READ = {"action": "read", "purpose": "industry", "channel": "api", "spatial": "CN-GX"}


def test_two_uses_racing_on_a_count_of_one_permit_once(db, issuer, world):
    """On PostgreSQL the grant's row lock orders the two uses; on SQLite the write lock taken
    up front does. Either way the second sees the first's count."""
    import threading

    grant_id, day = active_grant(db, issuer, world, policy(max_uses=1))
    grantee = world["grantee"]
    start = threading.Barrier(2)
    results: list[str] = []

    def use() -> None:
        start.wait()
        with db.write() as s:
            out = use_grant(s, grantee, grant_id, READ, now=moment(day))
            results.append(out.decision.decision)

    threads = [threading.Thread(target=use) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["deny", "permit"]
    with db.read() as s:
        assert get_grant(s, grantee, grant_id).uses == 1


def test_uses_are_decided_by_the_policy_and_only_the_grantee_uses(db, issuer, world):
    grant_id, day = active_grant(db, issuer, world, policy())
    grantee, holder = world["grantee"], world["holder"]
    with db.write() as s:
        out = use_grant(s, grantee, grant_id, {**READ, "channel": "download"}, now=moment(day))
        assert out.decision.decision == "deny" and "POL-PROHIBITION" in out.decision.rules
        assert out.uses == 0 and out.remaining is None
        out = use_grant(s, grantee, grant_id, {**READ, "purpose": "research"}, now=moment(day))
        assert out.decision.decision == "deny" and "POL-PURPOSE" in out.decision.rules
        assert use_grant(s, grantee, grant_id, READ, now=moment(day)).uses == 1
    # Outside the term: refused by the grant itself.
    with db.write() as s:
        out = use_grant(s, grantee, grant_id, READ, now=moment(TERM_END + timedelta(days=1)))
        assert out.decision.decision == "deny" and out.decision.rules == ("GRT-USE",)
    assert isinstance(refused(db, use_grant, holder, grant_id, READ, now=moment(day)), NotGrantor)
    # The target, assignee and count are the grant's own.
    err = refused(db, use_grant, grantee, grant_id, {**READ, "target": "x"}, now=moment(day))
    assert err.field == "target"
    with db.read() as s:
        actions = list(
            s.scalars(
                select(AuditEvent.action).where(
                    AuditEvent.object_id == grant_id, AuditEvent.action == "policy:grant:use"
                )
            )
        )
        assert len(actions) == 4  # every use, permitted or not; no dry run, no refused input


# --- the monitor ------------------------------------------------------------------------------


def test_the_monitor_ends_grants_when_their_policy_stops_holding(db, issuer, world):
    holder, grantee = world["holder"], world["grantee"]
    by_policy, day = active_grant(db, issuer, world, policy(until=date(2026, 12, 31)))
    by_term, _ = active_grant(db, issuer, world, policy(), term_end=date(2027, 1, 31))
    with db.write() as s:
        assert monitor(s, today=day).changed is False  # nothing to do yet
    with db.write() as s:
        report = monitor(s, today=date(2027, 1, 2))
        assert report.expired == [get_grant(s, holder, by_policy).number]
    with db.write() as s:
        report = monitor(s, today=date(2027, 2, 1))
        assert report.expired == [get_grant(s, holder, by_term).number]
        assert monitor(s, today=date(2027, 2, 1)).changed is False  # a second run: nothing
    with db.read() as s:
        grant = get_grant(s, grantee, by_policy)
        assert grant.state == "expired" and grant.reason_params["end"].startswith("2026-12-31")
        assert [e.action for e in grant_events(s, by_term)][-1] == "expire"


def test_the_monitor_follows_the_licence_right_in_the_registry(db, issuer, world):
    """The holder deregisters its holding right: the licence is suspended by the cascade, and
    the grant with it (the grantor cannot resume it); the registrar revokes the licence: the
    grant is revoked."""
    from registry_support import drive_to_certified

    from datafactor.registry import RegistrationType

    holder, grantee, registrar = world["holder"], world["grantee"], world["registrar"]
    grant_id, day = active_grant(db, issuer, world, policy())
    cancel = registry.ApplicationDraft(
        type=RegistrationType.CANCELLATION, asset_id=world["asset"], right_id=world["right"]
    )
    _, _, day = drive_to_certified(db, holder, registrar, cancel, issuer, day)
    with db.write() as s:
        report = monitor(s, today=day)
        assert report.suspended == [get_grant(s, holder, grant_id).number]
    with db.write() as s:
        out = use_grant(s, grantee, grant_id, READ, now=moment(day))
        assert out.decision.decision == "deny"
    err = refused(db, resume_grant, holder, grant_id, reason="恢复", today=day)
    assert isinstance(err, GrantStateConflict) and err.rule == "GRT-MONITOR"
    with db.read() as s:
        licence = get_grant(s, holder, grant_id).licence_right_id
    revocation = registry.ApplicationDraft(
        type=RegistrationType.REVOCATION, asset_id=world["asset"], right_id=licence
    )
    _, _, day = drive_to_certified(db, registrar, registrar, revocation, issuer, day)
    with db.write() as s:
        report = monitor(s, today=day)
        assert report.revoked == [get_grant(s, holder, grant_id).number]


def test_suspend_resume_revoke_by_the_grantor_and_a_regulator(db, issuer, world, regulator):
    holder, grantee = world["holder"], world["grantee"]
    grant_id, day = active_grant(db, issuer, world, policy())
    # A regulator's auditor (or staff) reads every grant but revokes none: that is its
    # administrator's (policy:grant:revoke-any).
    for reader in (
        principal(db, regulator),
        principal(db, make_actor(db, PartyKind.REGULATOR, roles=("staff",))),
    ):
        err = refused(db, revoke_grant, reader, grant_id, reason="越权", today=day)
        assert getattr(err, "status", 0) == 403
    assert state_of(db, grantee, grant_id) is GrantState.ACTIVE
    assert isinstance(
        refused(db, suspend_grant, grantee, grant_id, reason="x", today=day), Exception
    )
    with db.write() as s:
        assert suspend_grant(s, holder, grant_id, reason="核查用途", today=day).state == "suspended"
    with db.write() as s:  # the monitor does not resume what a person suspended
        assert monitor(s, today=day).resumed == []
    with db.write() as s:
        assert resume_grant(s, holder, grant_id, reason="核查完毕", today=day).state == "active"
    regulator_admin = principal(db, make_actor(db, PartyKind.REGULATOR))
    with db.write() as s:
        grant = revoke_grant(s, regulator_admin, grant_id, reason="违规使用", today=day)
        assert grant.state == "revoked"
    err = refused(db, resume_grant, holder, grant_id, reason="x", today=day)
    assert isinstance(err, GrantStateConflict)
    with db.read() as s:
        grant = get_grant(s, grantee, grant_id)
        entry = json.loads(ledger.get_entry(s, grant.ledger_index).entry)
        assert entry["payload"]["action"] == "revoke" and entry["payload"]["state"] == "revoked"


# --- grants under a mandate (public-data operation, data trusts) ---------------------------------


@pytest.fixture
def operation(db, settings, issuer, operator):
    """A department's public data, and an operator authorised by agreement ``agr-1`` to grant
    API and sandbox uses of it for industry purposes in Guangxi until 2030."""
    from datafactor.policy.grants import Mandate, Regime

    department = principal(db, make_actor(db, PartyKind.GOVERNMENT_DEPARTMENT))
    operator_party = principal(db, make_actor(db, PartyKind.PUBLIC_DATA_OPERATOR))
    registrar = principal(db, operator)
    scope = {
        "purposes": ["industry", "public_welfare"],
        "fields": None,
        "regions": ["450000"],
        "delivery_modes": ["api", "sandbox"],
    }
    asset, right, day = registered_asset(
        db, settings, department, registrar, issuer, data_class=DataClass.PUBLIC, scope=scope
    )
    mandate = Mandate(
        regime=Regime.OPERATION,
        reference_id="agr-1",
        agent_id=operator_party.party_id,
        holder_id=department.party_id,
        asset_ids=frozenset({asset}),
        scope={
            "purposes": ["industry"],
            "fields": None,
            "regions": ["450000"],
            "delivery_modes": ["api", "sandbox"],
        },
        term_start=day,
        term_end=date(2030, 12, 31),
        allowed_channels=frozenset({"api", "sandbox"}),
    )
    return {
        "department": department,
        "operator": operator_party,
        "registrar": registrar,
        "asset": asset,
        "right": right,
        "day": day,
        "mandate": mandate,
    }


def test_an_operator_grants_under_its_agreement_in_the_holders_name(db, issuer, operation):
    from dataclasses import replace

    from datafactor.policy.grants import GrantState, Regime, end_grants_under, grants_under

    agent, mandate, day = operation["operator"], operation["mandate"], operation["day"]
    merchant = principal(db, make_actor(db, PartyKind.DATA_MERCHANT))
    offer = draft(
        operation["asset"],
        merchant.party_id,
        policy(channels=("api",)),
        term_start=day,
        use_class="industry_development",
        fee_fen=50_000,
    )
    # Beyond the agreement: its purposes, its channels, its term, its data; or not its agent.
    for document, kw, rule in (
        (policy(purposes=("public_welfare",), channels=("api",)), {}, "GRT-MANDATE"),
        (policy(channels=("api",)), {"term_end": date(2031, 1, 31)}, "GRT-TERM-WITHIN"),
    ):
        err = refused(
            db,
            offer_grant,
            agent,
            replace(offer, policy=document, **kw),
            mandate=mandate,
            issuer=issuer,
            today=day,
        )
        assert getattr(err, "rule", None) in (rule, "GRT-MANDATE"), err
        assert not kw or isinstance(err, TermExceedsGrantor)
    narrow = replace(mandate, allowed_channels=frozenset({"sandbox"}))
    err = refused(db, offer_grant, agent, offer, mandate=narrow, issuer=issuer, today=day)
    assert isinstance(err, ScopeExceedsGrantor) and err.rule == "GRT-MANDATE"
    other = replace(mandate, asset_ids=frozenset({"another"}))
    err = refused(db, offer_grant, agent, offer, mandate=other, issuer=issuer, today=day)
    assert isinstance(err, GrantInvalid) and err.rule == "GRT-MANDATE"
    stranger = principal(db, make_actor(db, PartyKind.PUBLIC_DATA_OPERATOR))
    err = refused(db, offer_grant, stranger, offer, mandate=mandate, issuer=issuer, today=day)
    assert isinstance(err, NotGrantor) and err.rule == "GRT-MANDATE"

    with db.write() as s:
        grant = offer_grant(s, agent, offer, mandate=mandate, issuer=issuer, today=day)
        assert grant.regime == "public_data_operation" and grant.reference_id == "agr-1"
        assert grant.holder_id == operation["department"].party_id
        assert grant.agent_id == agent.party_id and grant.fee_fen == 50_000
        licence = registry.get_application(s, operation["registrar"], grant.licence_application_id)
        # Filed in the holder's name, the mandate recorded.
        assert licence.applicant_id == operation["department"].party_id
        assert licence.facts["mandate"]["reference_id"] == "agr-1"
        grant_id = grant.id
    certify_licence(db, operation["registrar"], agent, grant_id, issuer, day)
    with db.read() as s:
        assert [g.id for g in grants_under(s, Regime.OPERATION, "agr-1")] == [grant_id]
        assert get_grant(s, merchant, grant_id).state == "active"
    # The agreement ends early: every grant under it is revoked, its parties told.
    with db.write() as s:
        ended = end_grants_under(
            s,
            Regime.OPERATION,
            "agr-1",
            state=GrantState.REVOKED,
            reason="协议终止",
            actor=None,
            today=day,
        )
        assert [g.id for g in ended] == [grant_id]
    with db.read() as s:
        assert get_grant(s, merchant, grant_id).state == "revoked"
        from datafactor import inbox

        messages, _ = inbox.list_messages(s, merchant, limit=20, offset=0)
        assert any(m.params.get("number") == ended[0].number for m in messages)


def test_the_monitor_ends_grants_whose_mandate_term_is_over(db, issuer, operation):
    agent, mandate, day = operation["operator"], operation["mandate"], operation["day"]
    from dataclasses import replace

    merchant = principal(db, make_actor(db, PartyKind.DATA_MERCHANT))
    short = replace(mandate, term_end=date(2026, 12, 31))
    with db.write() as s:
        grant_id = request_grant(
            s,
            merchant,
            draft(
                operation["asset"],
                merchant.party_id,
                policy(channels=("api",)),
                term_start=day,
                term_end=date(2026, 12, 31),
            ),
            mandate=short,
            today=day,
        ).id
    # A request under a mandate is decided under it (by the regime, which passes the live
    # agreement or deed): without one it is refused.
    err = refused(db, decide_grant, agent, grant_id, approve=True, issuer=issuer, today=day)
    assert isinstance(err, GrantInvalid) and err.rule == "GRT-MANDATE"
    with db.write() as s:
        grant = decide_grant(
            s, agent, grant_id, approve=True, mandate=short, issuer=issuer, today=day
        )
        assert grant.state == "approved"
    with db.write() as s:
        report = monitor(s, today=date(2027, 1, 1))
        assert report.expired == [get_grant(s, agent, grant_id).number]
