"""Data-trust test helpers: a settlor with a registered (certified) asset, a trustee, a
beneficiary, a stranger and a regulator; a deed draft over the asset; a deed taken to any state
— all through the services, on the registry's fixed clock (``registry_support.TODAY``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import registry_support as rs
from factories import PASSWORD, Actor, make_actor

from datafactor.db import Database
from datafactor.identity import PartyKind, create_user_as_operator
from datafactor.permissions import Principal
from datafactor.policy.trusts import services
from datafactor.policy.trusts.domain import Share
from datafactor.registry import services as registry
from datafactor.settings import Settings

CERTIFIED = rs.TODAY + timedelta(days=7)  # the asset's holding right is registered then
DRAFTED = date(2026, 3, 16)  # a Monday after it
START = date(2026, 4, 1)
END = date(2029, 3, 31)
IN_TERM = date(2026, 5, 4)  # the deed is in effect
# The settlor's registered holding right, and the deed's narrower scope.
RIGHT_SCOPE: dict[str, Any] = {
    "purposes": ["industry", "credit_finance", "research"],
    "fields": None,
    "regions": ["450000"],
    "delivery_modes": ["api", "sandbox"],
}
SCOPE: dict[str, Any] = {
    "purposes": ["credit_finance", "research"],
    "fields": None,
    "regions": ["450000"],
    "delivery_modes": ["sandbox"],
}


@dataclass(frozen=True)
class Trust:
    """The parties of a test trust and the settlor's registered asset."""

    settlor: Principal
    trustee: Principal
    beneficiary: Principal
    stranger: Principal
    regulator: Principal
    settlor_staff: Principal
    actors: dict[str, Actor]
    asset_id: str
    right_id: str


def make_trust(db: Database, settings: Settings) -> Trust:
    actors = {
        "settlor": make_actor(db, PartyKind.ENTERPRISE, name="广西测试电网公司"),
        "trustee": make_actor(db, PartyKind.SERVICE_FIRM, name="测试数据托管公司"),
        "beneficiary": make_actor(db, PartyKind.INDIVIDUAL, name="韦测试"),
        "stranger": make_actor(db, PartyKind.ENTERPRISE, name="无关企业"),
        "regulator": make_actor(db, PartyKind.REGULATOR, name="测试监管局"),
        "registrar": make_actor(db, PartyKind.EXCHANGE_OPERATOR),
    }
    settlor = rs.principal(db, actors["settlor"])
    with db.write() as s:
        user = create_user_as_operator(
            s,
            settlor.party_id,
            username=f"{actors['settlor'].username}.staff",
            display_name="数据专员",
            password=PASSWORD,
            roles=["staff"],
        )
        staff_actor = Actor(settlor.party_id, user.id, user.username, PASSWORD, "enterprise")
    asset_id = rs.new_asset(db, settlor, rs.scanned_version(db, settings, settlor))
    _, right_id, _ = rs.drive_to_certified(
        db,
        settlor,
        rs.principal(db, actors["registrar"]),
        rs.initial(db, asset_id, scope=RIGHT_SCOPE),
        registry.issuer_for(settings),
        rs.TODAY,
    )
    assert right_id is not None
    staff = rs.principal(db, staff_actor)
    return Trust(
        settlor=settlor,
        trustee=rs.principal(db, actors["trustee"]),
        beneficiary=rs.principal(db, actors["beneficiary"]),
        stranger=rs.principal(db, actors["stranger"]),
        regulator=rs.principal(db, actors["regulator"]),
        settlor_staff=staff,
        actors=actors,
        asset_id=asset_id,
        right_id=right_id,
    )


def another_asset(db: Database, settings: Settings, trust: Trust) -> str:
    """A second registered asset of the settlor's (data is in one trust at a time: a second
    deed needs other data)."""
    data = rs.POWER.replace(b"2025-01-", b"2025-02-")
    asset_id = rs.new_asset(
        db, trust.settlor, rs.scanned_version(db, settings, trust.settlor, data)
    )
    _, right_id, _ = rs.drive_to_certified(
        db,
        trust.settlor,
        rs.principal(db, trust.actors["registrar"]),
        rs.initial(db, asset_id, scope=RIGHT_SCOPE),
        registry.issuer_for(settings),
        rs.TODAY,
    )
    assert right_id is not None
    return asset_id


def deed_draft(trust: Trust, **kw: Any) -> services.DeedDraft:
    values: dict[str, Any] = {
        "title": "居民用电数据信托",
        "purpose": "以居民用电数据支持普惠金融，收益惠及用户",
        "trustee_id": trust.trustee.party_id,
        "asset_ids": (trust.asset_id,),
        "scope": SCOPE,
        "term_start": START,
        "term_end": END,
        "trustee_fee_bp": 500,
        "beneficiaries": (
            Share(trust.settlor.party_id, 7000),
            Share(trust.beneficiary.party_id, 3000),
        ),
    }
    values.update(kw)
    return services.DeedDraft(**values)


def drafted(db: Database, trust: Trust, **kw: Any) -> str:
    with db.write() as s:
        return services.draft_deed(s, trust.settlor, deed_draft(trust, **kw), today=DRAFTED).id


def established(db: Database, trust: Trust, *, on: date = IN_TERM, **kw: Any) -> str:
    """A deed signed and accepted on ``on`` (in effect at once when its term has started)."""
    deed_id = drafted(db, trust, **kw)
    with db.write() as s:
        services.sign_deed(s, trust.settlor, deed_id, today=on)
    with db.write() as s:
        services.accept_deed(s, trust.trustee, deed_id, today=on)
    return deed_id


def state_of(db: Database, deed_id: str) -> str:
    from datafactor.policy.trusts.models import PolicyTrustDeed

    with db.read() as s:
        deed = s.get(PolicyTrustDeed, deed_id)
        assert deed is not None
        return deed.state


# ----------------------------------------------------------- tenant isolation (isolation.py)
# Deeds made through the services on the app's database, dated on the API's own clock (today):
# the owner of the endpoint is the deed's settlor or its trustee, as each step needs.


def _isolation_trust(client: Any, owner: Actor, *, owner_is: str) -> tuple[Trust, Database]:
    from datafactor.db import today_cn

    db, settings = client.app.state.db, client.app.state.settings
    registrar = rs.principal(db, make_actor(db, PartyKind.EXCHANGE_OPERATOR))
    settlor_actor = owner if owner_is == "settlor" else make_actor(db, PartyKind.ENTERPRISE)
    trustee_actor = owner if owner_is == "trustee" else make_actor(db, PartyKind.SERVICE_FIRM)
    settlor = rs.principal(db, settlor_actor)
    asset_id = rs.new_asset(db, settlor, rs.scanned_version(db, settings, settlor))
    _, right_id, _ = rs.drive_to_certified(
        db,
        settlor,
        registrar,
        rs.initial(db, asset_id, scope=RIGHT_SCOPE),
        registry.issuer_for(settings),
        rs.TODAY,
    )
    beneficiary = make_actor(db, PartyKind.INDIVIDUAL)
    trust = Trust(
        settlor=settlor,
        trustee=rs.principal(db, trustee_actor),
        beneficiary=rs.principal(db, beneficiary),
        stranger=settlor,
        regulator=settlor,
        settlor_staff=settlor,
        actors={"settlor": settlor_actor, "trustee": trustee_actor},
        asset_id=asset_id,
        right_id=right_id or "",
    )
    assert today_cn() >= START  # the deeds below are in effect on the API's clock
    return trust, db


def _isolation_deed(client: Any, owner: Actor, *, owner_is: str, state: str) -> str:
    from datafactor.db import today_cn

    trust, db = _isolation_trust(client, owner, owner_is=owner_is)
    today = today_cn()
    end = max(END, date(today.year + 2, 12, 31))
    with db.write() as s:
        deed_id = services.draft_deed(
            s, trust.settlor, deed_draft(trust, term_end=end), today=today
        ).id
    if state in ("signed", "active"):
        with db.write() as s:
            services.sign_deed(s, trust.settlor, deed_id, today=today)
    if state == "active":
        with db.write() as s:
            services.accept_deed(s, trust.trustee, deed_id, today=today)
    return deed_id


def settlors_draft(client: Any, owner: Actor, headers: dict[str, str]) -> str:
    return _isolation_deed(client, owner, owner_is="settlor", state="draft")


def settlors_active_deed(client: Any, owner: Actor, headers: dict[str, str]) -> str:
    return _isolation_deed(client, owner, owner_is="settlor", state="active")


def trustees_signed_deed(client: Any, owner: Actor, headers: dict[str, str]) -> str:
    return _isolation_deed(client, owner, owner_is="trustee", state="signed")


def trustees_active_deed(client: Any, owner: Actor, headers: dict[str, str]) -> str:
    return _isolation_deed(client, owner, owner_is="trustee", state="active")
