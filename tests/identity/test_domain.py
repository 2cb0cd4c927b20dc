"""Identity rules without a database: applications, identifiers, passwords, lockout, scopes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from datafactor.errors import InvalidInput
from datafactor.identity.codes import make_resident_id, make_uscc, resident_id_check_char
from datafactor.identity.domain import (
    LockoutPolicy,
    PartyApplication,
    PartyKind,
    ServiceRole,
    check_application,
    check_password,
    check_roles,
    check_token_request,
    check_username,
)
from datafactor.permissions import Permission, Role, effective_permissions

TODAY = date(2026, 11, 25)
USCC = make_uscc("9", "1", "450100", "AB123456")


def app(kind=PartyKind.ENTERPRISE, code=USCC, **kw):
    return PartyApplication(
        kind=kind, name=kw.pop("name", "广西测试有限公司"), name_en="", code=code, **kw
    )


def test_valid_application_is_normalised():
    checked = check_application(app(code=" " + USCC.lower() + " ", name="  广西  测试 "), TODAY)
    assert checked.code == USCC
    assert checked.name == "广西 测试"


def test_wrong_check_character_names_position_and_expected():
    wrong = USCC[:17] + ("0" if USCC[17] != "0" else "1")
    with pytest.raises(InvalidInput) as info:
        check_application(app(code=wrong), TODAY)
    err = info.value
    assert err.field == "code"
    assert err.params["position"] == 18
    assert err.params["char"] == wrong[17]
    assert err.params["expected"] == USCC[17]


def test_forbidden_letter_is_named():
    bad = USCC[:4] + "I" + USCC[5:]
    with pytest.raises(InvalidInput) as info:
        check_application(app(code=bad), TODAY)
    assert info.value.params["position"] == 5
    assert info.value.params["char"] == "I"


def test_individual_needs_resident_id_with_real_birth_date():
    rid = make_resident_id("450102", date(1990, 5, 17), 123)
    assert check_application(app(PartyKind.INDIVIDUAL, rid, name="韦小明"), TODAY).code == rid
    with pytest.raises(InvalidInput):
        check_application(app(PartyKind.INDIVIDUAL, USCC, name="韦小明"), TODAY)
    body = "45010220270101123"
    future = body + resident_id_check_char(body)
    with pytest.raises(InvalidInput) as info:
        check_application(app(PartyKind.INDIVIDUAL, future, name="韦小明"), TODAY)
    assert info.value.code == "invalid-resident_id"


def test_foreign_company_must_be_asean():
    ok = check_application(app(PartyKind.FOREIGN_COMPANY, "0101234567", country="VN"), TODAY)
    assert (ok.code, ok.country) == ("0101234567", "VN")
    with pytest.raises(InvalidInput) as info:
        check_application(app(PartyKind.FOREIGN_COMPANY, "0101234567", country="US"), TODAY)
    assert info.value.field == "country"


def test_service_firm_must_name_its_service():
    with pytest.raises(InvalidInput) as info:
        check_application(app(PartyKind.SERVICE_FIRM), TODAY)
    assert info.value.field == "service_role"
    assert (
        check_application(
            app(PartyKind.SERVICE_FIRM, service_role=ServiceRole.BROKER), TODAY
        ).service_role
        is ServiceRole.BROKER
    )


@pytest.mark.parametrize(("name", "field"), [("", "name"), ("x" * 129, "name")])
def test_empty_or_overlong_fields_are_refused(name, field):
    with pytest.raises(InvalidInput) as info:
        check_application(app(name=name), TODAY)
    assert info.value.field == field


@pytest.mark.parametrize("username", ["ab", "Ab!", "1abc", "a" * 33, "有中文"])
def test_bad_usernames(username):
    with pytest.raises(InvalidInput):
        check_username(username)


def test_password_rules():
    check_password("long-enough-1", "alice")
    for bad in ("short", "x" * 129, "my-alice-password"):
        with pytest.raises(InvalidInput):
            check_password(bad, "alice")


def test_roles_must_be_known_and_non_empty():
    assert check_roles(["admin", "staff"]) == {Role.ADMIN, Role.STAFF}
    for bad in ([], ["root"]):
        with pytest.raises(InvalidInput):
            check_roles(bad)


def test_lockout_slows_down_then_locks():
    policy = LockoutPolicy(slowdown_after=3, lock_after=5, lock_minutes=15)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert [policy.delay_seconds(n) for n in range(1, 6)] == [0, 0, 0.25, 0.5, 1.0]
    assert policy.delay_seconds(20) == 4.0
    assert policy.locked_until(4, now) is None
    assert policy.locked_until(5, now) == now + timedelta(minutes=15)


def test_token_scopes_cannot_exceed_what_the_owner_holds():
    held = frozenset({Permission.IDENTITY_PARTY_READ})
    name, scopes = check_token_request("ci", ["identity:party:read"], 30, held, 365)
    assert (name, scopes) == ("ci", {Permission.IDENTITY_PARTY_READ})
    for bad_scopes, days in (
        (["identity:user:manage"], 30),
        (["nope:x:y"], 30),
        ([], 30),
        (["identity:party:read"], 0),
        (["identity:party:read"], 366),
    ):
        with pytest.raises(InvalidInput):
            check_token_request("ci", bad_scopes, days, held, 365)


def test_permissions_by_role_and_kind():
    staff = effective_permissions("enterprise", True, {Role.STAFF})
    assert Permission.IDENTITY_USER_MANAGE not in staff
    admin = effective_permissions("enterprise", True, {Role.ADMIN})
    assert Permission.IDENTITY_USER_MANAGE in admin
    assert Permission.IDENTITY_PARTY_READ_ALL not in admin
    regulator = effective_permissions("regulator", True, {Role.AUDITOR})
    assert {Permission.IDENTITY_PARTY_READ_ALL, Permission.AUDIT_EVENT_READ_ALL} <= regulator
    assert Permission.IDENTITY_PARTY_VERIFY not in regulator  # regulators read, never decide
    operator = effective_permissions("exchange_operator", True, {Role.STAFF})
    assert Permission.IDENTITY_PARTY_VERIFY in operator


def test_unverified_party_can_only_see_and_fix_its_application():
    pending_admin = effective_permissions("enterprise", False, {Role.ADMIN})
    assert pending_admin == {Permission.IDENTITY_PARTY_READ, Permission.IDENTITY_PARTY_UPDATE}
    assert effective_permissions("enterprise", False, {Role.STAFF}) == {
        Permission.IDENTITY_PARTY_READ
    }
    assert effective_permissions("enterprise", True, set()) == frozenset()
