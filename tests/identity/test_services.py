"""Identity use cases against both databases: join, review, users, login lockout, tokens."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from factories import PASSWORD, make_actor
from sqlalchemy import func, select, update

from datafactor import audit
from datafactor.errors import Conflict, Forbidden, InvalidInput, Locked, NotFound, Unauthenticated
from datafactor.identity import PartyApplication, PartyKind, services
from datafactor.identity.codes import make_uscc
from datafactor.identity.domain import LockoutPolicy
from datafactor.identity.models import ApiToken, Party, User
from datafactor.permissions import Permission

TODAY = date(2026, 11, 25)
POLICY = LockoutPolicy(slowdown_after=3, lock_after=5, lock_minutes=15)


def audit_count(db) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(audit.AuditEvent))


def principal(db, actor):
    with db.read() as s:
        user = s.get(User, actor.user_id)
        party = s.get(Party, actor.party_id)
        return services.principal_for(user, party, via="session")


def apply(db, code=None, username="newco.admin", kind=PartyKind.ENTERPRISE):
    with db.write() as s:
        party = services.apply_for_party(
            s,
            PartyApplication(
                kind=kind,
                name="新公司",
                name_en="NewCo",
                code=code or make_uscc("9", "1", "450100", "NC000001"),
            ),
            admin_username=username,
            admin_display_name="",
            admin_password=PASSWORD,
            today=TODAY,
        )
        return party.id


def test_application_creates_pending_party_admin_and_one_audit_event(db):
    before = audit_count(db)
    party_id = apply(db)
    with db.read() as s:
        party = s.get(Party, party_id)
        assert party.status == "pending"
        admin = s.scalar(select(User).where(User.party_id == party_id))
        assert admin.username == "newco.admin"
        assert admin.roles == ["admin"]
        assert admin.password_hash.startswith("$argon2id$")
    assert audit_count(db) == before + 1


def test_duplicate_code_is_refused_and_nothing_is_written(db):
    apply(db)
    before = audit_count(db)
    with pytest.raises(Conflict) as info:
        apply(db, username="other.admin")
    assert info.value.field == "code"
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(User)) == 1
    assert audit_count(db) == before


def test_duplicate_username_is_refused_without_a_half_written_party(db):
    apply(db)
    with pytest.raises(Conflict):
        apply(db, code=make_uscc("9", "1", "450100", "NC000002"))
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Party)) == 1


def test_supervisory_kinds_cannot_self_apply(db):
    with pytest.raises(InvalidInput) as info:
        apply(db, kind=PartyKind.REGULATOR)
    assert info.value.field == "kind"


def test_operator_verifies_and_rejects_with_reason(db, operator):
    op = principal(db, operator)
    first, second = apply(db), apply(db, make_uscc("9", "1", "450100", "NC000002"), "b.admin")
    with db.write() as s:
        assert services.review_party(s, op, first, approve=True).status == "verified"
    with pytest.raises(InvalidInput), db.write() as s:
        services.review_party(s, op, second, approve=False, reason="  ")
    with db.write() as s:
        party = services.review_party(s, op, second, approve=False, reason="营业执照不清晰")
        assert (party.status, party.status_reason) == ("rejected", "营业执照不清晰")
    with pytest.raises(Conflict), db.write() as s:
        services.review_party(s, op, first, approve=False, reason="too late")
    with db.read() as s:
        events, _ = audit.list_events(
            s, op, audit.AuditFilter(object_id=second), limit=10, offset=0
        )
    assert [e.action for e in events] == ["identity:party:reject", "identity:party:apply"]
    assert events[0].reasons == ["营业执照不清晰"]


def test_only_the_operator_reviews(db, enterprise, regulator):
    party_id = apply(db)
    for actor in (enterprise, regulator):
        with pytest.raises(Forbidden), db.write() as s:
            services.review_party(s, principal(db, actor), party_id, approve=True)


def test_rejected_applicant_corrects_and_resubmits(db, operator):
    party_id = apply(db)
    with db.write() as s:
        services.review_party(
            s, principal(db, operator), party_id, approve=False, reason="名称有误"
        )
    with db.read() as s:
        admin = s.scalar(select(User).where(User.party_id == party_id))
        applicant = services.principal_for(admin, s.get(Party, party_id), via="session")
    assert applicant.permissions == {
        Permission.IDENTITY_PARTY_READ,
        Permission.IDENTITY_PARTY_UPDATE,
    }
    with db.write() as s:
        party = services.resubmit_application(
            s,
            applicant,
            PartyApplication(
                kind=PartyKind.ENTERPRISE,
                name="新公司（更正）",
                name_en="",
                code=make_uscc("9", "1", "450100", "NC000001"),
            ),
            today=TODAY,
        )
        assert (party.status, party.name) == ("pending", "新公司（更正）")


def test_visibility_of_parties(db, enterprise, other_enterprise, regulator):
    me = principal(db, enterprise)
    with db.read() as s:
        assert services.get_party(s, me, enterprise.party_id).id == enterprise.party_id
        with pytest.raises(NotFound):
            services.get_party(s, me, other_enterprise.party_id)
        rows, total = services.list_parties(s, me, services.PartyQuery(), limit=50, offset=0)
        assert (total, [p.id for p in rows]) == (1, [enterprise.party_id])
        reg = principal(db, regulator)
        rows, total = services.list_parties(s, reg, services.PartyQuery(), limit=2, offset=0)
        assert total == 3
        assert len(rows) == 2


def test_admin_manages_users_of_own_party_only(db, enterprise, other_enterprise):
    admin = principal(db, enterprise)
    with db.write() as s:
        user = services.create_user(
            s, admin, username="acme.staff", display_name="张三", password=PASSWORD, roles=["staff"]
        )
    with db.write() as s:
        assert services.update_user(s, admin, user.id, roles=["staff", "auditor"]).roles == [
            "auditor",
            "staff",
        ]
    with pytest.raises(NotFound), db.write() as s:
        services.update_user(s, principal(db, other_enterprise), user.id, is_active=False)
    with pytest.raises(Conflict), db.write() as s:
        services.update_user(s, admin, enterprise.user_id, is_active=False)
    with pytest.raises(Conflict), db.write() as s:
        services.update_user(s, admin, enterprise.user_id, roles=["staff"])
    staff = principal(
        db, type(enterprise)(enterprise.party_id, user.id, "acme.staff", PASSWORD, enterprise.kind)
    )
    with pytest.raises(Forbidden), db.write() as s:
        services.create_user(
            s, staff, username="x.y.z", display_name="", password=PASSWORD, roles=["admin"]
        )


def test_deactivating_a_user_ends_sessions_and_tokens(db, enterprise):
    admin = principal(db, enterprise)
    with db.write() as s:
        user = services.create_user(
            s, admin, username="acme.bob", display_name="", password=PASSWORD, roles=["staff"]
        )
    with db.write() as s:
        user = s.get(User, user.id)
        web_secret, _ = services.start_web_session(s, user, 8)
        bob = services.principal_for(user, s.get(Party, user.party_id), via="session")
        token_secret, _ = services.create_token(s, bob, name="bob", scopes=None, days=5)
    with db.write() as s:
        services.update_user(s, admin, user.id, is_active=False)
    with db.read() as s:
        assert services.resolve_web_session(s, web_secret) is None
        with pytest.raises(Unauthenticated):
            services.resolve_token(s, token_secret)


def login(db, username, password, now=None):
    with db.write() as s:
        return services.authenticate(s, username, password, POLICY, now or datetime.now(UTC))


def test_wrong_passwords_slow_down_then_lock_then_unlock(db, enterprise):
    outcomes = [login(db, enterprise.username, "wrong-password") for _ in range(5)]
    assert [o.delay for o in outcomes[:4]] == [0, 0, 0.25, 0.5]
    assert isinstance(outcomes[4].error, Locked)
    # Even the right password is refused while locked.
    assert isinstance(login(db, enterprise.username, PASSWORD).error, Locked)
    later = datetime.now(UTC) + timedelta(minutes=16)
    assert login(db, enterprise.username, PASSWORD, later).user is not None
    with db.read() as s:
        actions = [
            e.action for e in s.scalars(select(audit.AuditEvent).order_by(audit.AuditEvent.seq))
        ]
    assert actions[-2:] == ["identity:user:locked", "identity:user:login"]


def test_unknown_user_and_wrong_password_get_the_same_answer(db, enterprise):
    a, b = login(db, "nobody.here", "whatever-pw"), login(db, enterprise.username, "wrong-pw-x")
    assert type(a.error) is type(b.error) is Unauthenticated
    assert a.error.message == b.error.message


def test_tokens_are_hashed_scoped_revocable_and_expire(db, enterprise):
    admin = principal(db, enterprise)
    with db.write() as s:
        secret, token = services.create_token(
            s, admin, name="reader", scopes=["identity:party:read"], days=30
        )
    assert secret.startswith("dft_")
    with db.read() as s:
        stored = s.get(ApiToken, token.id)
        assert secret not in (stored.token_hash, stored.prefix)
        assert stored.token_hash == services.sha256_hex(secret)
        assert services.resolve_token(s, secret).permissions == {Permission.IDENTITY_PARTY_READ}
    with db.write() as s:
        services.revoke_token(s, admin, token.id)
    with db.read() as s, pytest.raises(Unauthenticated) as info:
        services.resolve_token(s, secret)
    assert info.value.code == "token-revoked"
    with db.write() as s:
        secret2, token2 = services.create_token(s, admin, name="old", scopes=None, days=1)
        s.execute(
            update(ApiToken)
            .where(ApiToken.id == token2.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    with db.read() as s, pytest.raises(Unauthenticated) as info:
        services.resolve_token(s, secret2)
    assert info.value.code == "token-expired"


def test_token_cannot_be_created_beyond_own_permissions(db, enterprise):
    admin = principal(db, enterprise)
    with pytest.raises(InvalidInput), db.write() as s:
        services.create_token(s, admin, name="x", scopes=["identity:party:verify"], days=5)


def test_concurrent_applications_with_one_code_admit_one(db):
    import threading

    results: list[str] = []

    def worker(i: int) -> None:
        try:
            apply(db, username=f"race{i}.admin")
            results.append("ok")
        except Conflict:
            results.append("conflict")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["conflict"] * 5 + ["ok"]
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Party)) == 1
        assert audit.verify_chain(s).ok


def test_demo_actor_factory_is_verified(db):
    actor = make_actor(db, PartyKind.DATA_MERCHANT)
    with db.read() as s:
        assert s.get(Party, actor.party_id).status == "verified"


def test_operator_suspends_and_reinstates_with_reasons(db, operator, enterprise):
    op = principal(db, operator)
    with pytest.raises(InvalidInput), db.write() as s:
        services.set_party_standing(s, op, enterprise.party_id, suspend=True, reason="")
    with db.write() as s:
        party = services.set_party_standing(
            s, op, enterprise.party_id, suspend=True, reason="未按期提交年报"
        )
        assert party.status == "suspended"
    suspended = principal(db, enterprise).permissions
    assert Permission.IDENTITY_PARTY_READ in suspended
    assert Permission.IDENTITY_USER_MANAGE not in suspended
    assert Permission.IDENTITY_TOKEN_MANAGE not in suspended
    with pytest.raises(Conflict), db.write() as s:
        services.set_party_standing(s, op, enterprise.party_id, suspend=True, reason="again")
    with db.write() as s:
        party = services.set_party_standing(
            s, op, enterprise.party_id, suspend=False, reason="已整改"
        )
    assert Permission.IDENTITY_USER_MANAGE in principal(db, enterprise).permissions
    with pytest.raises(Forbidden), db.write() as s:
        services.set_party_standing(
            s, principal(db, enterprise), enterprise.party_id, suspend=True, reason="self"
        )


def test_verification_is_published_in_the_ledger_without_personal_data(db, operator):
    import json

    from datafactor import ledger

    def entries():
        with db.read() as s:
            return [json.loads(ledger.get_entry(s, i).entry) for i in range(ledger.tree_size(s))]

    before = len(entries())
    person = make_actor(db, PartyKind.INDIVIDUAL)  # registered verified directly
    party_id = apply(db)
    with db.write() as s:
        services.review_party(s, principal(db, operator), party_id, approve=True)
    published = [e for e in entries()[before:] if e["kind"] == "identity.party.verified"]
    assert [e["payload"]["party_id"] for e in published] == [person.party_id, party_id]
    with db.read() as s:
        resident_id = s.get(Party, person.party_id).code
    assert "code_sha256" not in published[0]["payload"]
    assert resident_id not in json.dumps(published)
    assert len(published[1]["payload"]["code_sha256"]) == 64


def test_counterparty_names_show_organisations_and_mask_individuals(db):
    """A page relating the viewer to other parties names verified organisations (public market
    information), masks another individual's name to the surname, and shows an unverified party
    only by a short id; the viewer's own party and, for a regulator, every party in full."""
    viewer = make_actor(db, PartyKind.ENTERPRISE, name="观看者公司")
    firm = make_actor(db, PartyKind.ENTERPRISE, name="广西某某数据有限公司")
    person = make_actor(db, PartyKind.INDIVIDUAL, name="张三丰")
    pending = make_actor(db, PartyKind.ENTERPRISE, name="待审核公司", verified=False)
    regulator = make_actor(db, PartyKind.REGULATOR, name="监管机构")
    ids = [viewer.party_id, firm.party_id, person.party_id, pending.party_id, "no-such-party"]
    with db.read() as s:
        names = services.counterparty_names(s, principal(db, viewer), ids)
        supervised = services.counterparty_names(s, principal(db, regulator), ids)
    assert names[viewer.party_id] == "观看者公司"
    assert names[firm.party_id] == "广西某某数据有限公司"
    assert names[person.party_id] == "张*"
    assert names[pending.party_id] == pending.party_id[:8]
    assert names["no-such-party"] == "no-such-"
    assert supervised[person.party_id] == "张三丰" and supervised[pending.party_id] == "待审核公司"
