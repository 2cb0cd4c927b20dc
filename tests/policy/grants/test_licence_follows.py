"""A grant and its licence end together, on SQLite and PostgreSQL: ending a grant withdraws its
licence application or ends its licence right in the registry (so the licence certificate
verifies as ended), a grantor cannot refuse a grant it approved, a licence certified for a grant
that has already ended is cancelled at once, and a use is refused as soon as the registry ends or
suspends the licence right — without waiting for the monitor."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from factories import make_actor
from grants_support import certify_licence, draft, policy, registered_asset, state_of
from registry_support import drive_to_certified, principal

from datafactor.errors import DomainError
from datafactor.identity import PartyKind
from datafactor.policy.grants import (
    GrantState,
    GrantStateConflict,
    decide_grant,
    get_grant,
    monitor,
    offer_grant,
    request_grant,
    revoke_grant,
    use_grant,
)
from datafactor.registry import Action, RegistrationType, RegistryError
from datafactor.registry import services as registry

READ = {"action": "read", "purpose": "industry", "channel": "api", "spatial": "CN-GX"}


@pytest.fixture
def issuer(settings):
    return registry.issuer_for(settings)


@pytest.fixture
def world(db, settings, issuer, enterprise, other_enterprise, operator):
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


def noon(day: date) -> datetime:
    return datetime.fromisoformat(day.isoformat() + "T12:00:00+08:00")


def approved(db, issuer, world, document=None, **kw) -> str:
    """A grant the grantee asked for and the holder approved: its licence is being registered."""
    holder, grantee, day = world["holder"], world["grantee"], world["day"]
    with db.write() as s:
        grant_id = request_grant(
            s, grantee, draft(world["asset"], grantee.party_id, document, **kw), today=day
        ).id
    with db.write() as s:
        decide_grant(s, holder, grant_id, approve=True, issuer=issuer, today=day)
    return grant_id


def active(db, issuer, world, document=None, **kw) -> tuple[str, date]:
    grant_id = approved(db, issuer, world, document, **kw)
    day = certify_licence(db, world["registrar"], world["holder"], grant_id, issuer, world["day"])
    return grant_id, day


def application_state(db, world, grant_id) -> str:
    with db.read() as s:
        application = get_grant(s, world["holder"], grant_id).licence_application_id
        outcome = registry.application_outcome(s, application)
        assert outcome is not None
        return outcome.state


def licence_status(db, world, grant_id, on: date) -> tuple[str, str]:
    """The licence right's status in the registry, and what its certificate verifies as."""
    with db.read() as s:
        grant = get_grant(s, world["holder"], grant_id)
        right = registry.right_of(s, grant.licence_right_id)
        verified = registry.verify_certificate(s, grant.licence_certificate, today=on)
        return right.status.value, str(verified.status)


def test_an_approved_grant_is_not_refused_by_its_grantor_but_revoked(db, issuer, world):
    """The grantor changes its mind after approving: refusing is no longer possible (only the
    registry refuses a licence); revoking withdraws the licence application, so the registrar
    can no longer certify a licence nobody authorises."""
    holder, day = world["holder"], world["day"]
    grant_id = approved(db, issuer, world)
    with pytest.raises(GrantStateConflict) as refused, db.write() as s:
        decide_grant(
            s, holder, grant_id, approve=False, reason="改变主意", issuer=issuer, today=day
        )
    assert refused.value.rule == "GRT-TRANSITION" and "Revoke it instead" in str(refused.value)
    assert state_of(db, holder, grant_id) is GrantState.APPROVED
    with db.write() as s:
        revoke_grant(s, holder, grant_id, reason="改变主意", today=day)
    assert state_of(db, holder, grant_id) is GrantState.REVOKED
    assert application_state(db, world, grant_id) == "withdrawn"
    with db.read() as s:
        application = get_grant(s, holder, grant_id).licence_application_id
    with pytest.raises(RegistryError), db.write() as s:
        registry.act(
            s,
            world["registrar"],
            application,
            Action.CLOSE_NOTICE,
            issuer=issuer,
            today=day + timedelta(days=30),
        )
    # The grant keeps its own end: revoked by its grantor, not refused by the registry.
    assert state_of(db, holder, grant_id) is GrantState.REVOKED


def test_an_approved_grant_that_expires_withdraws_its_licence_application(db, issuer, world):
    day = world["day"]
    grant_id = approved(db, issuer, world, term_start=day, term_end=day + timedelta(days=10))
    with db.write() as s:
        report = monitor(s, today=world["day"] + timedelta(days=11))
        assert report.expired == [get_grant(s, world["holder"], grant_id).number]
    assert application_state(db, world, grant_id) == "withdrawn"


def test_revoking_an_active_grant_revokes_its_licence_right(db, issuer, world, regulator):
    grant_id, day = active(db, issuer, world)
    assert licence_status(db, world, grant_id, day) == ("active", "active")
    admin = principal(db, make_actor(db, PartyKind.REGULATOR))
    with db.write() as s:
        revoke_grant(s, admin, grant_id, reason="违规使用", today=day)
    status, verified = licence_status(db, world, grant_id, day)
    assert status == "revoked" and verified == "revoked"
    # The monitor finds nothing left to do.
    with db.write() as s:
        assert monitor(s, today=day).changed is False


def test_a_grant_whose_uses_are_exhausted_cancels_its_licence_right(db, issuer, world):
    grant_id, day = active(db, issuer, world, policy(max_uses=1))
    with db.write() as s:
        assert use_grant(s, world["grantee"], grant_id, READ, now=noon(day)).counted
    assert state_of(db, world["grantee"], grant_id) is GrantState.EXPIRED
    status, verified = licence_status(db, world, grant_id, day)
    assert status == "cancelled" and verified == "cancelled"


def test_a_licence_certified_for_a_grant_already_ended_is_cancelled(db, issuer, world):
    """A grant that ended while its licence application stayed open (before grants withdrew
    their applications, say) must not leave a licence in force once the registry certifies it."""
    from datafactor.policy.grants.models import PolicyGrant

    grant_id = approved(db, issuer, world)
    with db.write() as s:
        row = s.get(PolicyGrant, grant_id)
        row.state = GrantState.EXPIRED.value  # ended, its application left open
    certified = certify_licence(
        db, world["registrar"], world["holder"], grant_id, issuer, world["day"]
    )
    with db.read() as s:
        application = get_grant(s, world["holder"], grant_id).licence_application_id
        outcome = registry.application_outcome(s, application)
        assert outcome.state == "certified" and outcome.result_right_id
        right = registry.right_of(s, outcome.result_right_id)
        assert right.status.value == "cancelled" and right.holder_id == world["grantee"].party_id
        assert get_grant(s, world["holder"], grant_id).state == "expired"
    del certified


def test_a_use_follows_the_licence_right_at_once(db, issuer, world):
    """The registry suspends the licence (its parent right is cancelled) and then revokes it:
    each time the next use is refused and the grant moves, before any monitor run."""
    holder, grantee, registrar = world["holder"], world["grantee"], world["registrar"]
    grant_id, day = active(db, issuer, world)
    cancel = registry.ApplicationDraft(
        type=RegistrationType.CANCELLATION, asset_id=world["asset"], right_id=world["right"]
    )
    _, _, day = drive_to_certified(db, holder, registrar, cancel, issuer, day)
    with db.write() as s:
        out = use_grant(s, grantee, grant_id, READ, dry_run=True, now=noon(day))
        assert out.decision.decision == "deny" and out.decision.rules == ("GRT-USE",)
        assert "suspended" in out.decision.reasons[0].en
    assert state_of(db, grantee, grant_id) is GrantState.SUSPENDED
    with db.read() as s:
        licence = get_grant(s, holder, grant_id).licence_right_id
    revocation = registry.ApplicationDraft(
        type=RegistrationType.REVOCATION, asset_id=world["asset"], right_id=licence
    )
    _, _, day = drive_to_certified(db, registrar, registrar, revocation, issuer, day)
    with db.write() as s:  # suspended: refused by the grant's state, and moved on from it
        monitor(s, today=day)
    assert state_of(db, grantee, grant_id) is GrantState.REVOKED


def test_a_use_refused_when_the_licence_is_revoked(db, issuer, world):
    holder, grantee, registrar = world["holder"], world["grantee"], world["registrar"]
    grant_id, day = active(db, issuer, world)
    with db.read() as s:
        licence = get_grant(s, holder, grant_id).licence_right_id
    revocation = registry.ApplicationDraft(
        type=RegistrationType.REVOCATION, asset_id=world["asset"], right_id=licence
    )
    _, _, day = drive_to_certified(db, registrar, registrar, revocation, issuer, day)
    with db.write() as s:
        out = use_grant(s, grantee, grant_id, READ, now=noon(day))
        assert out.decision.decision == "deny" and not out.counted
        assert "revoked" in out.decision.reasons[0].en and "已撤销" in out.decision.reasons[0].zh
    assert state_of(db, grantee, grant_id) is GrantState.REVOKED
    with db.write() as s:
        assert monitor(s, today=day).changed is False


def test_an_offer_to_the_wrong_party_changes_nothing_in_the_registry(db, issuer, world):
    """A refusal writes nothing: no grant, no licence application."""
    holder = world["holder"]
    with pytest.raises(DomainError), db.write() as s:
        offer_grant(
            s,
            holder,
            draft(world["asset"], holder.party_id),
            issuer=issuer,
            today=world["day"],
        )
    with db.read() as s:
        applications, _ = registry.list_applications(
            s, world["registrar"], registry.ApplicationQuery(), limit=50, offset=0
        )
        assert [a.type for a in applications] == ["initial"]
