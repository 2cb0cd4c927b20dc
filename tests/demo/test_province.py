"""The demo province's data is consistent: valid codes, unique names, one admin per party."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter

import pytest

from datafactor.demo.province import (
    CODE_TYPES,
    PARTIES,
    PARTIES_BY_KEY,
    PARTY_KINDS,
    SERVICE_ROLES,
    USER_ROLES,
    DemoParty,
)
from datafactor.identity.codes import (
    ASEAN_COUNTRIES,
    validate_foreign_registration,
    validate_resident_id,
    validate_uscc,
)

# The username rule of the identity domain, repeated so this data test stands alone.
USERNAME_RE = re.compile(r"^[a-z][a-z0-9._-]{2,31}$")
KEY_RE = re.compile(r"^[a-z][a-z0-9-]{1,31}$")
EXPECTED_KINDS = {
    "bigdata_bureau",
    "exchange_operator",
    "regulator",
    "government_department",
    "public_data_operator",
    "enterprise",
    "data_merchant",
    "service_firm",
    "individual",
    "treasury",
    "foreign_company",
}


def _ids(party: DemoParty) -> str:
    return party.key


@pytest.mark.parametrize("party", PARTIES, ids=_ids)
def test_party_code_validates(party: DemoParty) -> None:
    if party.code_type == "uscc":
        assert validate_uscc(party.code) == party.code
        assert party.country == "CN"
    elif party.code_type == "resident_id":
        assert validate_resident_id(party.code) == party.code
        assert party.country == "CN"
    else:
        assert party.code_type == "foreign"
        assert validate_foreign_registration(party.country, party.code) == (
            party.country,
            party.code,
        )
        assert party.country in ASEAN_COUNTRIES


@pytest.mark.parametrize("party", PARTIES, ids=_ids)
def test_code_type_follows_kind(party: DemoParty) -> None:
    expected = {"individual": "resident_id", "foreign_company": "foreign"}.get(party.kind, "uscc")
    assert party.code_type == expected


@pytest.mark.parametrize("party", PARTIES, ids=_ids)
def test_party_fields(party: DemoParty) -> None:
    assert KEY_RE.fullmatch(party.key)
    assert party.kind in PARTY_KINDS
    assert party.code_type in CODE_TYPES
    assert party.name_zh.strip() == party.name_zh
    assert party.name_zh
    assert party.name_en.strip() == party.name_en
    assert party.name_en
    if party.kind == "service_firm":
        assert party.service_role in SERVICE_ROLES
    else:
        assert party.service_role is None


@pytest.mark.parametrize("party", PARTIES, ids=_ids)
def test_every_party_has_one_to_three_users_and_exactly_one_admin(party: DemoParty) -> None:
    assert 1 <= len(party.users) <= 3
    admins = [user for user in party.users if "admin" in user.roles]
    assert len(admins) == 1
    for user in party.users:
        assert user.roles
        assert set(user.roles) <= set(USER_ROLES)
        assert len(set(user.roles)) == len(user.roles)
        assert USERNAME_RE.fullmatch(user.username), user.username
        assert user.display_name


@pytest.mark.parametrize("party", [p for p in PARTIES if p.kind == "regulator"], ids=_ids)
def test_regulators_have_an_auditor(party: DemoParty) -> None:
    assert any("auditor" in user.roles for user in party.users)


def test_keys_usernames_and_codes_are_unique() -> None:
    keys = Counter(party.key for party in PARTIES)
    assert [k for k, n in keys.items() if n > 1] == []
    usernames = Counter(user.username for party in PARTIES for user in party.users)
    assert [u for u, n in usernames.items() if n > 1] == []
    codes = Counter((party.country, party.code) for party in PARTIES)
    assert [c for c, n in codes.items() if n > 1] == []
    assert set(PARTIES_BY_KEY) == set(keys)


def test_all_kinds_are_present() -> None:
    assert set(PARTY_KINDS) == EXPECTED_KINDS
    assert {party.kind for party in PARTIES} == EXPECTED_KINDS


def test_cast_of_the_province() -> None:
    kinds = Counter(party.kind for party in PARTIES)
    assert kinds["bigdata_bureau"] == 1
    assert kinds["exchange_operator"] == 1
    assert kinds["regulator"] == 4
    assert kinds["treasury"] == 1
    assert kinds["government_department"] >= 5
    assert kinds["enterprise"] >= 5
    assert kinds["data_merchant"] == 2
    assert kinds["individual"] == 3
    roles = {party.service_role for party in PARTIES if party.kind == "service_firm"}
    assert {"broker", "custodian", "appraiser", "compliance_assessor"} <= roles
    vietnamese = [party for party in PARTIES if party.kind == "foreign_company"]
    assert [party.country for party in vietnamese] == ["VN"]
    assert PARTIES_BY_KEY["bureau"].name_zh == "广西壮族自治区大数据发展局"
    assert PARTIES_BY_KEY["exchange"].name_zh == "北部湾大数据交易中心"


def test_codes_are_guangxi_and_marked_synthetic() -> None:
    for party in PARTIES:
        if party.code_type == "uscc":
            assert party.code[2:4] == "45", party.key
            assert party.code[8:10] == "DF", party.key
        elif party.code_type == "resident_id":
            assert party.code[:2] == "45", party.key


def test_individuals_sex_digit() -> None:
    # The 17th digit is odd for men and even for women.
    assert int(PARTIES_BY_KEY["person-wei"].code[16]) % 2 == 1
    assert int(PARTIES_BY_KEY["person-huang"].code[16]) % 2 == 0
    assert int(PARTIES_BY_KEY["person-qin"].code[16]) % 2 == 1


def test_data_is_frozen() -> None:
    party = PARTIES[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        party.key = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        party.users[0].username = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        PARTIES_BY_KEY["new"] = party  # type: ignore[index]
