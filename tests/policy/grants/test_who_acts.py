"""Who may act on a grant and what a grant may record, on SQLite and PostgreSQL: only a
regulator's administrator revokes any grant; a grantor's user acts with its grant's regime's
permission; an asset the requester cannot see is not found, without its name; a fee, a count
and a use class are bounded by the rules (problem+json, never a server error); a new grant is not
back-dated; the monitor checks each grant on its own and skips one it cannot check."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from factories import PASSWORD, Actor, bearer, console_login, make_actor
from grants_support import START, certify_licence, draft, policy, registered_asset, state_of
from registry_support import new_asset, principal

from datafactor.db import today_cn
from datafactor.errors import DomainError
from datafactor.identity import PartyKind, create_user_as_operator
from datafactor.policy.grants import (
    GrantInvalid,
    GrantNotFound,
    GrantState,
    decide_grant,
    get_grant,
    list_grants,
    monitor,
    offer_grant,
    request_grant,
    resume_grant,
    revoke_grant,
    run_monitor,
    suspend_grant,
)
from datafactor.policy.grants.api import grants_today
from datafactor.policy.grants.models import PolicyGrant
from datafactor.registry import services as registry


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
    asset_id, _, day = registered_asset(db, settings, holder, registrar, issuer)
    return {
        "holder": holder,
        "grantee": grantee,
        "registrar": registrar,
        "asset": asset_id,
        "day": day,
    }


def refused(db, fn, *args, **kw) -> DomainError:
    with pytest.raises(DomainError) as caught, db.write() as s:
        fn(s, *args, **kw)
    return caught.value


def requested(db, world) -> str:
    grantee = world["grantee"]
    with db.write() as s:
        return request_grant(
            s, grantee, draft(world["asset"], grantee.party_id), today=world["day"]
        ).id


# --- who acts -------------------------------------------------------------------------------------


def test_only_a_regulators_administrator_revokes_over_http(
    client, app, db, world, regulator
) -> None:
    grant_id = requested(db, world)
    app.dependency_overrides[grants_today] = lambda: world["day"]
    try:
        url = f"/api/v1/grants/{grant_id}/revocation"
        auditor = bearer(client, regulator)
        r = client.post(url, headers=auditor, json={"reason": "越权撤销"})
        assert r.status_code == 403, r.text
        assert "policy:grant:revoke-any" in r.json()["detail"]
        assert client.get(f"/api/v1/grants/{grant_id}", headers=auditor).json()["state"] == (
            "requested"
        )
        admin = bearer(client, make_actor(db, PartyKind.REGULATOR))
        r = client.post(url, headers=admin, json={"reason": "违规"})
        assert r.status_code == 200 and r.json()["state"] == "revoked"
        assert r.json()["history"][-1]["role"] == "regulator"
    finally:
        app.dependency_overrides.pop(grants_today, None)


def test_the_revoke_form_is_shown_only_to_a_regulators_administrator(
    client, db, world, regulator
) -> None:
    grant_id = requested(db, world)
    console_login(client, regulator, "/grants", "en")
    page = client.get(f"/grants/{grant_id}").text
    assert 'data-testid="grant-number"' in page and 'data-testid="grant-revoke"' not in page
    console_login(client, make_actor(db, PartyKind.REGULATOR), "/grants", "en")
    assert 'data-testid="grant-revoke"' in client.get(f"/grants/{grant_id}").text


def _staff_of(db, actor: Actor) -> Actor:
    with db.write() as s:
        user = create_user_as_operator(
            s,
            actor.party_id,
            username=f"{actor.username}.staff",
            display_name="运营专员",
            password=PASSWORD,
            roles=["staff"],
        )
    return Actor(actor.party_id, user.id, user.username, PASSWORD, actor.kind)


def test_an_operators_staff_do_not_act_on_its_direct_grants(db, settings, issuer, operator):
    """A public-data operator's staff operate public data (policy:operation:operate); the
    operator's own data, granted directly, is its administrator's to decide."""
    owner = make_actor(db, PartyKind.PUBLIC_DATA_OPERATOR)
    admin, staff = principal(db, owner), principal(db, _staff_of(db, owner))
    grantee = principal(db, make_actor(db))
    registrar = principal(db, operator)
    asset_id, _, day = registered_asset(db, settings, admin, registrar, issuer)
    with db.write() as s:
        grant_id = offer_grant(
            s, admin, draft(asset_id, grantee.party_id, term_start=day), issuer=issuer, today=day
        ).id
    day = certify_licence(db, registrar, admin, grant_id, issuer, day)
    for act in (suspend_grant, revoke_grant):
        err = refused(db, act, staff, grant_id, reason="运营调整", today=day)
        assert err.status == 403 and "policy:grant:decide" in str(err)
    assert state_of(db, admin, grant_id) is GrantState.ACTIVE
    with db.write() as s:
        assert suspend_grant(s, admin, grant_id, reason="核查", today=day).state == "suspended"
    err = refused(db, resume_grant, staff, grant_id, reason="恢复", today=day)
    assert err.status == 403


# --- what a grant may name and record -------------------------------------------------------------


def test_data_the_requester_cannot_see_is_not_found_without_its_name(db, world, other_enterprise):
    """Declared but never registered data of another party: the same 404 as an unknown id, and
    its name is not told. Registered data (its certificates are public) is named as before."""
    holder, grantee, day = world["holder"], world["grantee"], world["day"]
    bare = new_asset(db, holder, None, name="未登记的秘密数据")
    for asset in (bare, "00000000-0000-0000-0000-000000000000"):
        err = refused(db, request_grant, grantee, draft(asset, grantee.party_id), today=day)
        assert isinstance(err, GrantNotFound) and err.status == 404
        assert "秘密" not in str(err)
    # A right that is not the holder's, on registered data: refused, naming registered data.
    err = refused(
        db,
        request_grant,
        grantee,
        draft(world["asset"], grantee.party_id, right_id="no-such-right"),
        today=day,
    )
    assert err.status == 403 and err.params["rule"] == "GRT-GRANTOR-RIGHT"


def test_fee_count_and_use_class_are_bounded_by_the_rules(db, world):
    grantee, day = world["grantee"], world["day"]

    def ask(document=None, **kw):
        return refused(
            db, request_grant, grantee, draft(world["asset"], grantee.party_id, document, **kw),
            today=day,
        )  # fmt: skip

    for fee in (2**63, 10**30, 10**15 + 1):
        err = ask(fee_fen=fee)
        assert isinstance(err, GrantInvalid) and err.rule == "GRT-FEE" and err.field == "fee_fen"
    err = ask(policy(max_uses=2**40))
    assert isinstance(err, GrantInvalid) and err.rule == "GRT-POLICY"
    assert err.field == "policy.count" and "1000000000" in str(err)
    err = ask(use_class="我想怎么用就怎么用")
    assert isinstance(err, GrantInvalid) and err.rule == "GRT-USE-CLASS"
    with db.write() as s:
        grant = request_grant(
            s,
            grantee,
            draft(
                world["asset"],
                grantee.party_id,
                policy(max_uses=10**9),
                fee_fen=10**15,
                use_class="industry_development",
            ),
            today=day,
        )
        assert grant.max_uses == 10**9 and grant.fee_fen == 10**15
    with db.read() as s:
        assert len(list_grants(s, grantee)) == 1  # the refusals wrote nothing


def test_the_use_classes_are_the_public_data_operation_classes() -> None:
    from datafactor.policy.grants import load_grant_rules
    from datafactor.policy.operation.domain import load_operation_rules

    assert load_grant_rules().use_classes == frozenset(load_operation_rules().use_classes)


def test_bad_numbers_are_problems_not_server_errors(client, app, db, world, other_enterprise):
    app.dependency_overrides[grants_today] = lambda: world["day"]
    try:
        grantee = bearer(client, other_enterprise)
        body = {
            "asset_id": world["asset"],
            "policy": policy(),
            "term_start": START.isoformat(),
            "term_end": "2027-03-01",
        }
        for bad in (
            {"fee_fen": 2**63},
            {"fee_fen": 10**30},
            {"policy": policy(max_uses=2**40)},
            {"use_class": "x" * 30},
        ):
            r = client.post("/api/v1/grants", headers=grantee, json={**body, **bad})
            assert r.status_code == 422, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert re.search(r"GRT-(FEE|POLICY|USE-CLASS)", r.json()["detail"])
    finally:
        app.dependency_overrides.pop(grants_today, None)
    # The console's fee in yuan: too large to be a fee, or not a number of yuan at all.
    console_login(client, other_enterprise, "/grants", "en")
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/grants/new").text)
    assert token
    form = {
        "csrf_token": token.group(1),
        "data": world["asset"],
        "term_start": today_cn().isoformat(),
        "term_end": (today_cn() + timedelta(days=90)).isoformat(),
        "purposes": "industry",
        "channels": "api",
        "regions": "CN-GX",
        "prohibit_download": "1",
    }
    for fee in ("1e100", "99999999999999999999", "NaN", "-1", "0.001"):
        r = client.post("/grants/new", data={**form, "fee_yuan": fee})
        assert r.status_code == 422, (fee, r.status_code)
        assert 'data-testid="error' in r.text


def test_a_new_grant_is_not_back_dated(db, issuer, world):
    holder, grantee, day = world["holder"], world["grantee"], world["day"]
    for fn, kw in ((request_grant, {}), (offer_grant, {"issuer": issuer})):
        who = grantee if fn is request_grant else holder
        err = refused(
            db,
            fn,
            who,
            draft(world["asset"], grantee.party_id, term_start=day - timedelta(days=1)),
            today=day,
            **kw,
        )
        assert isinstance(err, GrantInvalid) and err.rule == "GRT-NO-BACKDATE"
    # A request decided some days later is approved with the term it asked for.
    with db.write() as s:
        grant_id = request_grant(
            s, grantee, draft(world["asset"], grantee.party_id, term_start=day), today=day
        ).id
    with db.write() as s:
        grant = decide_grant(
            s, holder, grant_id, approve=True, issuer=issuer, today=day + timedelta(days=3)
        )
        assert grant.state == "approved" and grant.term_start == day


# --- the monitor ----------------------------------------------------------------------------------


def _grants_to_check(db, issuer, world) -> tuple[str, str]:
    """Two active grants: one whose term is over on 2027-01-02, one whose stored policy no
    longer parses (as after a change of the policy language)."""
    holder, grantee, day = world["holder"], world["grantee"], world["day"]
    ids = []
    for end in (date(2027, 1, 1), date(2027, 3, 1)):
        with db.write() as s:
            ids.append(
                offer_grant(
                    s,
                    holder,
                    draft(world["asset"], grantee.party_id, term_start=day, term_end=end),
                    issuer=issuer,
                    today=day,
                ).id
            )
        certify_licence(db, world["registrar"], holder, ids[-1], issuer, day)
    with db.write() as s:
        s.get(PolicyGrant, ids[1]).policy = {"@type": "Set", "permission": [{"action": "fly"}]}
    return ids[0], ids[1]


def test_the_monitor_skips_a_grant_it_cannot_check(db, issuer, world):
    ended, broken = _grants_to_check(db, issuer, world)
    with db.write() as s:
        report = monitor(s, today=date(2027, 1, 2))
        assert report.failed == [broken] and report.changed
        assert report.expired == [get_grant(s, world["holder"], ended).number]
    assert state_of(db, world["holder"], ended) is GrantState.EXPIRED
    assert state_of(db, world["holder"], broken) is GrantState.ACTIVE


def test_the_servers_monitor_commits_grant_by_grant(db, issuer, world):
    ended, broken = _grants_to_check(db, issuer, world)
    report = run_monitor(db, today=date(2027, 1, 2))
    assert report.failed == [broken]
    with db.read() as s:
        assert report.expired == [get_grant(s, world["holder"], ended).number]
    assert state_of(db, world["holder"], ended) is GrantState.EXPIRED
    assert run_monitor(db, today=date(2027, 1, 2)).changed is False
