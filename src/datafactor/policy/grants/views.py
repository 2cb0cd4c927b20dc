"""Console pages of authorisations under ``/grants``: the list, one grant, the request and
offer forms, and the grantor's, grantee's and regulator's actions.

* ``/grants`` — as grantor, as grantee, or (supervisors) all; filtered by state.
* ``/grants/new`` — the grantee asks for an authorisation: the data named by its registration
  certificate number (public) or asset id, a template adjusted with the policy form editor
  (``policy.editor``: no ODRL needed), the term and a note.
* ``/grants/offer`` — the holder grants directly to a party named by its credit code.
* ``/grants/{id}`` — where it stands and why: state and reason, parties by name, the data, the
  policy in plain language, term, uses and what remains, the licence application and, once in
  effect, the licence certificate; the history; the forms the viewer may use (CSRF-protected).

Every form posts back to the same services as the API; a refusal is shown on the page with its
rule, with what was typed kept.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from datafactor import context, identity, registry
from datafactor.db import today_cn
from datafactor.errors import N_, DomainError, InvalidInput
from datafactor.permissions import Permission, Principal
from datafactor.policy import Policy, editor, parse_policy
from datafactor.policy import templates as policy_templates
from datafactor.policy.grants import services
from datafactor.policy.grants.domain import (
    ACTION_LABELS,
    FINAL_STATES,
    REGIME_LABELS,
    ROLE_LABELS,
    STATE_LABELS,
    GrantDraft,
    GrantState,
    reason_text,
)
from datafactor.policy.grants.models import PolicyGrant
from datafactor.policy.render import describe
from datafactor.web.deps import DbDep, SettingsDep, WebUser, check_csrf
from datafactor.web.forms import error_text, read_form, redirect, render

router = APIRouter(include_in_schema=False)
P = Permission
PAGE = 50
STATES = tuple(s.value for s in GrantState)

MSG_DATE: Final = N_("The {name} must be a date like 2027-12-31.")
MSG_UNKNOWN_DATA: Final = N_(
    "No registered data matches “{text}”: type the registration certificate number of the "
    "data's holding right (GX-DR-…), as shown on its certificate."
)
MSG_UNKNOWN_PARTY: Final = N_(
    "No party is registered under the credit code {code}: check the 18-character unified "
    "social credit code."
)
MSG_FEE_YUAN: Final = N_("The fee must be an amount in yuan, 0 or more, like 500.00.")


def grants_today() -> date:
    return today_cn()


# ----------------------------------------------------------------------------------- helpers


def _names(session: Any, principal: Principal, grants: list[PolicyGrant]) -> dict[str, str]:
    ids = {p for g in grants for p in (g.holder_id, g.agent_id, g.grantee_id)}
    return identity.counterparty_names(session, principal, ids)


def _assets(session: Any, grants: list[PolicyGrant]) -> dict[str, str]:
    out = {}
    for asset_id in {g.asset_id for g in grants}:
        facts = registry.asset_facts(session, asset_id)
        out[asset_id] = facts.name if facts is not None else asset_id[:8]
    return out


def _role(principal: Principal, grant: PolicyGrant) -> str:
    if principal.party_id == grant.agent_id:
        return "grantor"
    if principal.party_id == grant.holder_id:
        return "holder"  # under a mandate: the agent grants; the holder reads
    if principal.party_id == grant.grantee_id:
        return "grantee"
    return "supervisor"


def _can_decide(principal: Principal) -> bool:
    return any(
        principal.can(p)
        for p in (P.POLICY_GRANT_DECIDE, P.POLICY_OPERATION_OPERATE, P.POLICY_TRUST_MANAGE)
    )


def _actions(principal: Principal, grant: PolicyGrant) -> list[str]:
    """The forms the viewer may use on the grant now."""
    state = GrantState(grant.state)
    if state in FINAL_STATES:
        return []
    role = _role(principal, grant)
    out: list[str] = []
    if role == "grantor" and any(
        principal.can(p) for p in services.regime_permissions(grant.regime)
    ):
        if state is GrantState.REQUESTED:
            # Under an agreement or a deed the request is decided on that regime's page.
            out.append("decide" if grant.reference_id is None else "decide_under")
        if state is GrantState.ACTIVE:
            out.append("suspend")
        if state is GrantState.SUSPENDED:
            out.append("resume")
        out.append("revoke")
    elif role == "grantee" and state is GrantState.REQUESTED:
        if principal.can(P.POLICY_GRANT_REQUEST):
            out.append("withdraw")
    elif role in ("supervisor", "holder") and principal.can(P.POLICY_GRANT_REVOKE_ANY):
        out.append("revoke")  # a regulator's administrator
    return out


def _unaddressed(policy: Policy) -> Policy:
    """The policy without its target and assignee (the page names the data and the parties;
    the plain-language rendering would otherwise repeat their ids in every sentence)."""
    return replace(
        policy,
        permissions=tuple(replace(p, target=None, assignee=None) for p in policy.permissions),
        prohibitions=tuple(replace(p, target=None, assignee=None) for p in policy.prohibitions),
    )


def _labels() -> dict[str, Any]:
    return {
        "state_labels": STATE_LABELS,
        "regime_labels": REGIME_LABELS,
        "action_labels": ACTION_LABELS,
        "role_labels": ROLE_LABELS,
    }


# -------------------------------------------------------------------------------------- list


@router.get("/grants")
def grant_list(
    request: Request,
    identity_: WebUser,
    db: DbDep,
    role: Annotated[str | None, Query(max_length=16)] = None,
    state: Annotated[str | None, Query(max_length=16)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    principal = identity_.principal
    supervisor = principal.can(P.POLICY_GRANT_READ_ALL)
    if role not in ("grantor", "grantee", "all"):
        role = "all" if supervisor else "grantor" if _can_decide(principal) else "grantee"
    filters = {"role": role, "state": state if state in STATES else None}
    with db.read() as s:
        rows = services.list_grants(s, principal, limit=PAGE, offset=(page - 1) * PAGE, **filters)
        total = services.count_grants(s, principal, **filters)
        names, assets = _names(s, principal, rows), _assets(s, rows)
    return render(
        request,
        "grants/list.html",
        identity_,
        grants=rows,
        names=names,
        assets=assets,
        role=role,
        state=filters["state"],
        states=STATES,
        supervisor=supervisor,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE)),
        can_request=principal.can(P.POLICY_GRANT_REQUEST),
        can_offer=principal.can(P.POLICY_GRANT_DECIDE),
        **_labels(),
    )


# ------------------------------------------------------------------------------------ detail


def _detail(
    request: Request, identity_: WebUser, db: DbDep, grant_id: str, status: int = 200, **extra: Any
) -> Response:
    principal = identity_.principal
    locale = context.locale.get()
    with db.read() as s:
        grant = services.get_grant(s, principal, grant_id)
        names = _names(s, principal, [grant])
        asset = registry.asset_facts(s, grant.asset_id)
        events = services.grant_events(s, grant.id)
        history = [(e, reason_text(e.reason, e.reason_params)) for e in events]
        text = describe(_unaddressed(parse_policy(grant.policy)), locale)
        role = _role(principal, grant)
        return render(
            request,
            "grants/detail.html",
            identity_,
            status=status,
            grant=grant,
            names=names,
            asset=asset,
            history=history,
            policy_text=text,
            policy_json=json.dumps(grant.policy, ensure_ascii=False, indent=2),
            reason=reason_text(grant.reason, grant.reason_params),
            role=role,
            actions=_actions(principal, grant),
            sees_application=principal.party_id == grant.holder_id
            or principal.can(P.REGISTRY_APPLICATION_READ_ALL),
            **_labels(),
            **extra,
        )


@router.get("/grants/new")
def new_form(
    request: Request,
    identity_: WebUser,
    db: DbDep,
    data: Annotated[str | None, Query(max_length=64)] = None,
    template: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    return _form(request, identity_, mode="request", form={"data": data or ""}, template=template)


@router.get("/grants/offer")
def offer_form(
    request: Request,
    identity_: WebUser,
    db: DbDep,
    template: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    with db.read() as s:
        assets = _own_assets(s, identity_.principal)
    return _form(request, identity_, mode="offer", form={}, template=template, own_assets=assets)


@router.get("/grants/{grant_id}")
def grant_detail(request: Request, grant_id: str, identity_: WebUser, db: DbDep) -> Response:
    return _detail(request, identity_, db, grant_id)


# ------------------------------------------------------------------------------------- forms


def _own_assets(session: Any, principal: Principal) -> list[tuple[str, str]]:
    if not principal.can(P.REGISTRY_ASSET_READ):
        return []
    rows, _ = registry.list_assets(session, principal, limit=200, offset=0)
    return [(a.id, a.name) for a in rows if a.party_id == principal.party_id]


def _form(
    request: Request,
    identity_: WebUser,
    *,
    mode: str,
    form: dict[str, str],
    template: str | None = None,
    values: editor.EditorValues | None = None,
    status: int = 200,
    **extra: Any,
) -> Response:
    name = template if template in policy_templates.TEMPLATES else "industry-paid"
    if values is None:
        values = editor.values_from_document(policy_templates.get_template(name).document())
        values.term_end = None
        values.pay_amount = None  # the fee of a grant is its own field
    today = today_cn()
    defaults = {
        "term_start": today.isoformat(),
        "term_end": date(today.year + 1, 12, 31).isoformat(),
    }
    return render(
        request,
        "grants/form.html",
        identity_,
        status=status,
        mode=mode,
        form={**defaults, **form},
        templates=[(t.name, t.title) for t in policy_templates.TEMPLATES.values()],
        current=name,
        values=values,
        choices=editor.choices(),
        **extra,
    )


DATE_LABELS: Final = {"term_start": N_("start of the term"), "term_end": N_("end of the term")}


def _date(form: dict[str, str], key: str) -> date:
    try:
        return date.fromisoformat(form.get(key, "").strip())
    except ValueError:
        from datafactor.policy.grants.domain import Msgid

        raise InvalidInput(MSG_DATE, field=key, name=Msgid(DATE_LABELS[key])) from None


def _fee(form: dict[str, str]) -> int:
    text = form.get("fee_yuan", "").strip()
    if not text:
        return 0
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(text)
        # Whole fen only; a number too large to quantize (1e100) is no fee either. The
        # service refuses a fee above its rules' cap with the rule.
        if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")):
            raise InvalidOperation
    except InvalidOperation:
        raise InvalidInput(MSG_FEE_YUAN, field="fee_yuan") from None
    return int(value * 100)


def _draft_from(
    form: dict[str, str], asset_id: str, grantee_id: str, right_id: str | None
) -> GrantDraft:
    values = editor.values_from_form(form)
    term_start = _date(form, "term_start")
    term_end = _date(form, "term_end")
    values.term_end = term_end
    values.pay_amount = None
    return GrantDraft(
        asset_id=asset_id,
        grantee_id=grantee_id,
        policy=editor.build_document(values),
        term_start=term_start,
        term_end=term_end,
        right_id=right_id,
        purpose_note=form.get("purpose_note", "").strip()[:2000],
        fee_fen=_fee(form),
    )


def _data(session: Any, text: str) -> tuple[str, str | None]:
    """The asset (and right) a request names: a certificate number of its holding right (public:
    certificates are verifiable by anyone), or an asset id."""
    text = text.strip()
    try:
        found = registry.verify_certificate(session, text)
        return found.certificate.asset_id, found.certificate.right_id
    except DomainError:
        pass
    if text and registry.asset_facts(session, text) is not None:
        return text, None
    raise InvalidInput(MSG_UNKNOWN_DATA, field="data", text=text)


@router.post("/grants/new")
async def request_post(request: Request, identity_: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity_)
    principal = identity_.principal
    try:
        with db.write() as s:
            asset_id, right_id = _data(s, form.get("data", ""))
            draft = _draft_from(form, asset_id, principal.party_id, right_id)
            grant = services.request_grant(s, principal, draft)
            grant_id = grant.id
    except DomainError as exc:
        return _form(
            request,
            identity_,
            mode="request",
            form=form,
            template=form.get("template"),
            values=editor.values_from_form(form, lenient=True),
            status=exc.status if exc.status != 400 else 422,
            **error_text(exc),
        )
    return redirect(f"/grants/{grant_id}")


@router.post("/grants/offer")
async def offer_post(
    request: Request, identity_: WebUser, db: DbDep, settings: SettingsDep
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity_)
    principal = identity_.principal
    issuer = registry.issuer_for(settings)
    try:
        with db.write() as s:
            code = "".join(form.get("grantee", "").split()).upper()
            grantee_id = identity.find_party_id(s, "uscc", "CN", code) if code else None
            if grantee_id is None:
                raise InvalidInput(MSG_UNKNOWN_PARTY, field="grantee", code=code)
            draft = _draft_from(form, form.get("asset_id", ""), grantee_id, None)
            grant = services.offer_grant(s, principal, draft, issuer=issuer)
            grant_id = grant.id
    except DomainError as exc:
        with db.read() as s:
            assets = _own_assets(s, principal)
        return _form(
            request,
            identity_,
            mode="offer",
            form=form,
            template=form.get("template"),
            values=editor.values_from_form(form, lenient=True),
            status=exc.status if exc.status != 400 else 422,
            own_assets=assets,
            **error_text(exc),
        )
    return redirect(f"/grants/{grant_id}")


async def _act(
    request: Request, identity_: WebUser, db: DbDep, grant_id: str, work: Any
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity_)
    try:
        with db.write() as s:
            work(s, identity_.principal, form)
    except DomainError as exc:
        if exc.status == 404:
            raise
        return _detail(
            request, identity_, db, grant_id, status=exc.status, form=form, **error_text(exc)
        )
    return redirect(f"/grants/{grant_id}")


@router.post("/grants/{grant_id}/decision")
async def decide_post(
    request: Request, grant_id: str, identity_: WebUser, db: DbDep, settings: SettingsDep
) -> Response:
    issuer = registry.issuer_for(settings)

    def work(s: Any, principal: Principal, form: dict[str, str]) -> None:
        services.decide_grant(
            s,
            principal,
            grant_id,
            approve=form.get("approve") == "yes",
            reason=form.get("reason", ""),
            issuer=issuer,
        )

    return await _act(request, identity_, db, grant_id, work)


@router.post("/grants/{grant_id}/suspend")
async def suspend_post(request: Request, grant_id: str, identity_: WebUser, db: DbDep) -> Response:
    def work(s: Any, principal: Principal, form: dict[str, str]) -> None:
        services.suspend_grant(s, principal, grant_id, reason=form.get("reason", ""))

    return await _act(request, identity_, db, grant_id, work)


@router.post("/grants/{grant_id}/resume")
async def resume_post(request: Request, grant_id: str, identity_: WebUser, db: DbDep) -> Response:
    def work(s: Any, principal: Principal, form: dict[str, str]) -> None:
        services.resume_grant(s, principal, grant_id, reason=form.get("reason", ""))

    return await _act(request, identity_, db, grant_id, work)


@router.post("/grants/{grant_id}/revoke")
async def revoke_post(request: Request, grant_id: str, identity_: WebUser, db: DbDep) -> Response:
    def work(s: Any, principal: Principal, form: dict[str, str]) -> None:
        services.revoke_grant(s, principal, grant_id, reason=form.get("reason", ""))

    return await _act(request, identity_, db, grant_id, work)


@router.post("/grants/{grant_id}/withdraw")
async def withdraw_post(request: Request, grant_id: str, identity_: WebUser, db: DbDep) -> Response:
    def work(s: Any, principal: Principal, form: dict[str, str]) -> None:
        services.withdraw_grant(s, principal, grant_id)

    return await _act(request, identity_, db, grant_id, work)
