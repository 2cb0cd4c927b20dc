"""Public data operation test helpers: the cast (an implementing body holding registered public
data, a public-data operator, the big-data bureau, a registrar, a user), a signed agreement, the
bureau's caps and rate, a published fee.

On the registry's fixed clock: the body's public data set is registered from
``registry_support.TODAY`` (a working Monday) and its holding right is certified three weeks
later (``CERTIFIED``, the public-data notice is 10 working days); everything operation does
happens from ``SIGNED`` on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from factories import Actor, make_actor
from registry_support import TODAY, initial, new_asset, principal, scanned_version

from datafactor.db import Database
from datafactor.identity import PartyKind
from datafactor.permissions import Principal
from datafactor.policy.operation import services
from datafactor.policy.operation.domain import AgreementState, Selection
from datafactor.registry import Action, DataClass
from datafactor.registry import services as registry
from datafactor.settings import Settings

CERTIFIED = date(2026, 3, 23)  # the public-data notice (10 working days) has run
SIGNED = date(2026, 4, 1)  # after the holding right is certified
YEAR = 2026
PUBLIC_SCOPE: dict[str, Any] = {
    "purposes": [
        "public_governance",
        "public_welfare",
        "industry",
        "research",
        "product_development",
    ],
    "fields": None,
    "regions": ["450000"],
    "delivery_modes": ["api", "sandbox"],
}
SELECTION = Selection(
    procedure="public_tender",
    reference="GXZC2026-G1-000123-GXZB",
    decided_on=date(2026, 3, 20),
    record="经公开招标，广西数智公共数据运营有限公司中标。",
)


@dataclass
class Cast:
    """Everyone a public-data operation test needs, as actors and principals."""

    body: Actor
    operator: Actor
    bureau: Actor
    user: Actor
    registrar: Actor
    who: dict[str, Principal]
    asset_id: str
    issuer: registry.Issuer

    def __getitem__(self, name: str) -> Principal:
        return self.who[name]


def public_asset(
    db: Database, settings: Settings, holder: Principal, registrar: Principal, issuer: Any
) -> str:
    """A public data set of ``holder``'s whose holding right is certified on ``CERTIFIED``: the
    fast track puts it on its 10-working-day notice at once, the registrar closes it after."""
    asset_id = new_asset(
        db, holder, scanned_version(db, settings, holder), data_class=DataClass.PUBLIC
    )
    with db.write() as s:
        row = registry.submit_application(
            s, holder, initial(db, asset_id, scope=PUBLIC_SCOPE), issuer=issuer, today=TODAY
        )
        app_id, state = row.id, row.state
    if state == "substantive_review":
        with db.write() as s:
            state = registry.act(
                s, registrar, app_id, Action.APPROVE_TO_NOTICE, issuer=issuer, today=TODAY
            ).state
    assert state == "public_notice", state
    with db.write() as s:
        state = registry.act(
            s, registrar, app_id, Action.CLOSE_NOTICE, issuer=issuer, today=CERTIFIED
        ).state
    assert state == "certified", state
    return asset_id


def make_cast(db: Database, settings: Settings) -> Cast:
    body = make_actor(db, PartyKind.GOVERNMENT_DEPARTMENT, name="南宁市人民政府（测试）")
    operator = make_actor(db, PartyKind.PUBLIC_DATA_OPERATOR, name="公共数据运营公司（测试）")
    bureau = make_actor(db, PartyKind.BIGDATA_BUREAU, name="大数据发展局（测试）")
    user = make_actor(db, PartyKind.ENTERPRISE, name="邕江银行（测试）")
    registrar = make_actor(db, PartyKind.EXCHANGE_OPERATOR, roles=("staff",))
    who = {
        "body": principal(db, body),
        "operator": principal(db, operator),
        "bureau": principal(db, bureau),
        "user": principal(db, user),
        "registrar": principal(db, registrar),
    }
    issuer = registry.issuer_for(settings)
    asset_id = public_asset(db, settings, who["body"], who["registrar"], issuer)
    return Cast(body, operator, bureau, user, registrar, who, asset_id, issuer)


def agreement_draft(cast: Cast, **kw: Any) -> services.AgreementDraft:
    values: dict[str, Any] = {
        "operator_id": cast.operator.party_id,
        "number": "NNSZF-SQYY-2026-001",
        "selection": SELECTION,
        "asset_ids": (cast.asset_id,),
    }
    values.update(kw)
    return services.AgreementDraft(**values)


def sign(db: Database, cast: Cast, on: date = SIGNED, **kw: Any) -> str:
    with db.write() as s:
        return services.sign_agreement(
            s, cast["body"], agreement_draft(cast, **kw), issuer=cast.issuer, today=on
        ).id


def price_list(
    db: Database, cast: Cast, on: date = SIGNED, *, cap: int = 50, fee: int = 40
) -> None:
    """The bureau's cap for API calls (and an 8 % profit rate), and the operator's fee under it."""
    with db.write() as s:
        services.set_cap(
            s,
            cast["bureau"],
            unit="api_call",
            amount_fen=cap,
            effective_from=on,
            source_document="桂发改价格〔2026〕12号",
            today=on,
        )
        services.set_profit_rate(
            s,
            cast["bureau"],
            rate_bp=800,
            effective_from=on,
            source_document="桂发改价格〔2026〕12号",
            today=on,
        )
    with db.write() as s:
        services.publish_fee(
            s,
            cast["operator"],
            asset_id=cast.asset_id,
            unit="api_call",
            amount_fen=fee,
            effective_from=on,
            today=on,
        )


def use_draft(cast: Cast, agreement_id: str, **kw: Any) -> services.UseDraft:
    values: dict[str, Any] = {
        "agreement_id": agreement_id,
        "asset_id": cast.asset_id,
        "use_class": "industry_development",
        "purpose": "product_development",
        "term_start": SIGNED,
        "term_end": date(2026, 12, 31),
        "grantee_id": cast.user.party_id,
        "unit": "api_call",
        "quantity": 1000,
    }
    values.update(kw)
    return services.UseDraft(**values)


# ------------------------------------------------------------------- tenant isolation makers
# ``tests/support/isolation.py`` calls these with the owner the isolation test made (an actor
# of the endpoint's ``owner_kind``); they build the rest of the cast around it through the
# services, on the fixed clock above, and return the path parameter's value.


def _ctx(client: Any) -> tuple[Database, Settings]:
    return client.app.state.db, client.app.state.settings


def _cast_around(client: Any, **given: Actor) -> Cast:
    """A cast whose body, operator or user is the given actor (the others made fresh)."""
    db, settings = _ctx(client)
    body = given.get("body") or make_actor(db, PartyKind.GOVERNMENT_DEPARTMENT)
    operator = given.get("operator") or make_actor(db, PartyKind.PUBLIC_DATA_OPERATOR)
    bureau = make_actor(db, PartyKind.BIGDATA_BUREAU)
    user = given.get("user") or make_actor(db, PartyKind.ENTERPRISE)
    registrar = make_actor(db, PartyKind.EXCHANGE_OPERATOR, roles=("staff",))
    who = {
        name: principal(db, actor)
        for name, actor in (
            ("body", body),
            ("operator", operator),
            ("bureau", bureau),
            ("user", user),
            ("registrar", registrar),
        )
    }
    issuer = registry.issuer_for(settings)
    asset_id = public_asset(db, settings, who["body"], who["registrar"], issuer)
    return Cast(body, operator, bureau, user, registrar, who, asset_id, issuer)


def isolation_agreement(client: Any, owner: Actor, headers: dict[str, str]) -> str:
    """An agreement the owner (a government department) signed."""
    cast = _cast_around(client, body=owner)
    return sign(_ctx(client)[0], cast)


def isolation_suspended_agreement(client: Any, owner: Actor, headers: dict[str, str]) -> str:
    db, _ = _ctx(client)
    cast = _cast_around(client, body=owner)
    agreement_id = sign(db, cast)
    with db.write() as s:
        services.change_agreement(
            s,
            cast["body"],
            agreement_id,
            AgreementState.SUSPENDED,
            reason="核查",
            today=SIGNED,
        )
    return agreement_id


def isolation_use(client: Any, owner: Actor, headers: dict[str, str]) -> str:
    """A free use the owner (a public-data operator) granted."""
    db, _ = _ctx(client)
    cast = _cast_around(client, operator=owner)
    agreement_id = sign(db, cast)
    draft = use_draft(
        cast, agreement_id, use_class="public_governance", purpose="public_governance", unit=None
    )
    with db.write() as s:
        use, _ = services.make_use(s, cast["operator"], draft, issuer=cast.issuer, today=SIGNED)
        return str(use.id)


def isolation_requested_use(client: Any, owner: Actor, headers: dict[str, str]) -> str:
    """A use a user asked the owner (a public-data operator) for."""
    db, _ = _ctx(client)
    cast = _cast_around(client, operator=owner)
    agreement_id = sign(db, cast)
    draft = use_draft(
        cast,
        agreement_id,
        use_class="public_welfare",
        purpose="research",
        unit=None,
        grantee_id=None,
    )
    with db.write() as s:
        use, _ = services.make_use(s, cast["user"], draft, issuer=cast.issuer, today=SIGNED)
        return str(use.id)


def isolation_operator(client: Any, owner: Actor, headers: dict[str, str]) -> str:
    """The owner (a public-data operator) itself, with an agreement: its report's path."""
    db, _ = _ctx(client)
    sign(db, _cast_around(client, operator=owner))
    return owner.party_id
