"""The demo province's data is consistent (valid codes, unique names, one admin per party), and
loading it registers the plan's pilots through the registry once: certificates that verify,
applications under way where the demo leaves them, an open objection; a second load is a no-op.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from collections import Counter
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select

from datafactor import ledger
from datafactor.audit import AuditEvent, verify_chain
from datafactor.db import Database
from datafactor.demo.loader import demo_principals, demo_users, load_demo
from datafactor.demo.pilots import (
    ASSETS,
    ASSETS_BY_KEY,
    CROSS_BORDER_PILOTS,
    DATASETS,
    DATASETS_BY_KEY,
    ENTERPRISE_PILOTS,
    PUBLIC_PILOT_BODIES_QUOTED,
    PUBLIC_PILOTS,
    REGISTRAR,
    REGISTRATIONS,
    REGISTRATIONS_BY_KEY,
    DemoDataset,
)
from datafactor.demo.province import (
    CODE_TYPES,
    PARTIES,
    PARTIES_BY_KEY,
    PARTY_KINDS,
    SERVICE_ROLES,
    USER_ROLES,
    DemoParty,
)
from datafactor.demo.trusts import ASSET_NAME as TRUST_ASSET_NAME
from datafactor.identity.codes import (
    ASEAN_COUNTRIES,
    validate_foreign_registration,
    validate_resident_id,
    validate_uscc,
)
from datafactor.registry import Action
from datafactor.registry import services as registry
from datafactor.registry.models import (
    RegistryApplication,
    RegistryAsset,
    RegistryCertificate,
    RegistryObjection,
    RegistryRight,
)
from datafactor.settings import Settings

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


# ---------------------------------------------------------------------------- registry pilots


def test_pilots_follow_the_plan() -> None:
    # One registered resource per public-data pilot body the plan names, each held by that body.
    assert len(PUBLIC_PILOTS) == 6
    for body, party_key, asset_key in PUBLIC_PILOTS:
        assert body.removeprefix("自治区") in PUBLIC_PILOT_BODIES_QUOTED.replace(
            "南宁、", "南宁市人民政府、"
        )
        party = PARTIES_BY_KEY[party_key]
        assert body.removeprefix("自治区").removesuffix("公司") in party.name_zh
        asset = ASSETS_BY_KEY[asset_key]
        assert asset.scenario == "public" and asset.data_class == "public"
        assert DATASETS_BY_KEY[asset.dataset].party == party_key
        assert REGISTRATIONS_BY_KEY[asset_key].target == "certified"
    assert {ASSETS_BY_KEY[k].scenario for k in ENTERPRISE_PILOTS} == {"enterprise"}
    assert [ASSETS_BY_KEY[k].scenario for k in CROSS_BORDER_PILOTS] == ["cross_border"]
    assert {DATASETS_BY_KEY[ASSETS_BY_KEY[k].dataset].party for k in ENTERPRISE_PILOTS} == {
        "power-grid",
        "logistics",
    }
    products = [a for a in ASSETS if a.kind == "product"]
    assert len(products) >= 2
    assert all(a.lineage and all(k in ASSETS_BY_KEY for k in a.lineage) for a in products)


@pytest.mark.parametrize("data", DATASETS, ids=lambda d: d.key)
def test_pilot_data_is_generated_deterministically(data: DemoDataset) -> None:
    content = data.content()
    assert content == data.content()  # same bytes, same fingerprint, on every load
    rows = list(csv.reader(io.StringIO(content.decode("utf-8"))))
    assert tuple(rows[0]) == data.header
    assert len(rows) - 1 == data.row_count() >= 30
    assert all(len(row) == len(data.header) for row in rows)
    users = {u.username for u in PARTIES_BY_KEY[data.party].users}
    assert data.user in users


def test_registrations_name_demo_users_and_parties() -> None:
    usernames = {u.username: p.key for p in PARTIES for u in p.users}
    assert usernames[REGISTRAR] == "exchange"
    for plan in REGISTRATIONS:
        assert usernames[plan.user] == DATASETS_BY_KEY[ASSETS_BY_KEY[plan.asset].dataset].party
        if plan.counterparty:
            assert plan.counterparty in PARTIES_BY_KEY
        if plan.right_of:
            assert REGISTRATIONS.index(REGISTRATIONS_BY_KEY[plan.right_of]) < REGISTRATIONS.index(
                plan
            )
    duty = {u["username"]: u["duty"] for u in demo_users()}
    assert "registrar" in str(duty[REGISTRAR])


def _snapshot(db: Database) -> tuple[int, int, int, int]:
    with db.read() as s:
        return (
            s.scalar(select(func.count()).select_from(AuditEvent)) or 0,
            ledger.tree_size(s),
            s.scalar(select(func.count()).select_from(RegistryApplication)) or 0,
            s.scalar(select(func.count()).select_from(RegistryCertificate)) or 0,
        )


def _application(s: Any, asset_name: str, type_: str) -> RegistryApplication:
    """The pilots' application of ``type_`` on the asset: the first one (the grants, public-data
    operation and trust demos loaded after the pilots file licences of their own)."""
    found = s.scalars(
        select(RegistryApplication)
        .join(RegistryAsset, RegistryAsset.id == RegistryApplication.asset_id)
        .where(RegistryAsset.name == asset_name, RegistryApplication.type == type_)
        .order_by(RegistryApplication.submitted_on, RegistryApplication.created_at)
        .limit(1)
    ).first()
    assert found is not None, (asset_name, type_)
    return found


def test_demo_load_registers_the_pilots_once(db: Database, settings: Settings) -> None:
    first = load_demo(db, settings=settings)
    assert first.applications_submitted == len(REGISTRATIONS)
    assert first.objections_lodged == 1
    certified = [p for p in REGISTRATIONS if p.target == "certified" and p.type != "pledge"]

    with db.read() as s:
        rows, total = registry.list_certificates(s, None, limit=100, offset=0)
        # The pilots' certificates, and the electricity trust's two (demo/trusts.py: the grid's
        # holding right on its households' data and the bank's licence under the trust).
        trust = [r for r in rows if r.asset_name == TRUST_ASSET_NAME]
        assert total == len(certified) + len(trust) and len(trust) == 2
        # Serials follow issue dates, as in a real registry.
        by_serial = sorted(s.scalars(select(RegistryCertificate)), key=lambda c: c.serial)
        assert [c.valid_from for c in by_serial] == sorted(c.valid_from for c in by_serial)
        statuses: dict[str, str] = {}
        for row in rows:
            found = registry.verify_certificate(s, row.number)
            assert found.signature_valid, row.number
            assert found.chain_of_title is not None and found.chain_problem is None
            entry = json.loads(ledger.get_entry(s, found.certificate.ledger_index).entry)
            assert entry["kind"] == "registry.certificate.issued"
            assert entry["payload"]["number"] == row.number
            statuses[row.asset_name] = found.status.value

        # Every pilot resource is certified; the pledged one shows its pledge.
        for key in (*[a for _, _, a in PUBLIC_PILOTS], *ENTERPRISE_PILOTS, *CROSS_BORDER_PILOTS):
            name = ASSETS_BY_KEY[key].name
            assert statuses[name] in ("active", "pledged"), name
        assert statuses[ASSETS_BY_KEY["logistics-clearance"].name] == "pledged"
        for _, _, key in PUBLIC_PILOTS:  # public data took the fast track
            assert _application(s, ASSETS_BY_KEY[key].name, "initial").track == "fast"

        # The licence made the operator a processing-use holder; its product rests on it.
        licence = _application(s, ASSETS_BY_KEY["liuzhou-charging"].name, "licence")
        right = s.get(RegistryRight, licence.result_right_id)
        assert right is not None and right.kind == "processing_use"
        product = _application(s, ASSETS_BY_KEY["pdo-charging-heatmap"].name, "initial")
        product_right = s.get(RegistryRight, product.result_right_id)
        assert product_right is not None and product_right.kind == "product_operation"
        assert product_right.basis_ids == [right.id]
        assert product_right.holder_id == right.holder_id
        grid_product = _application(s, ASSETS_BY_KEY["grid-economy-index"].name, "initial")
        assert grid_product.state == "certified"

        # Under way: each where the demo leaves it.
        pending = _application(s, ASSETS_BY_KEY["sugar-cane"].name, "initial")
        assert pending.state == "formal_review"
        assert pending.decision["outcome"] == "pending"  # waits for the discovery scan
        assert _application(s, ASSETS_BY_KEY["credit-sme"].name, "initial").state == (
            "substantive_review"
        )
        noticed = _application(s, ASSETS_BY_KEY["grid-customers"].name, "licence")
        assert noticed.state == "public_notice" and noticed.result_right_id is None
        disputed = _application(s, ASSETS_BY_KEY["ocean-port-calls"].name, "initial")
        assert disputed.state == "objection"
        objections = list(
            s.scalars(
                select(RegistryObjection).where(RegistryObjection.application_id == disputed.id)
            )
        )
        assert len(objections) == 1 and objections[0].outcome is None
        assert disputed.notice_starts <= objections[0].lodged_on <= disputed.notice_ends
        assert verify_chain(s).ok

    before = _snapshot(db)
    second = load_demo(db, settings=settings)
    assert not second.changed
    assert _snapshot(db) == before  # not an audit event, not a ledger entry more

    # What people do in the console afterwards is theirs: a registrar moves the survey on to its
    # notice, and the next load leaves it there rather than certifying it.
    registrar = demo_principals(db)[REGISTRAR]
    with db.write() as s:
        survey = _application(s, ASSETS_BY_KEY["credit-sme"].name, "initial")
        registry.act(
            s,
            registrar,
            survey.id,
            Action.APPROVE_TO_NOTICE,
            issuer=registry.issuer_for(settings),
            today=date(2026, 6, 4),
        )
    after_console = _snapshot(db)
    assert not load_demo(db, settings=settings).changed
    assert _snapshot(db) == after_console
    with db.read() as s:
        assert _application(s, ASSETS_BY_KEY["credit-sme"].name, "initial").state == "public_notice"
