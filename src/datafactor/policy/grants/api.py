"""JSON routes of authorisations under ``/api/v1/grants``: parse, call the services, answer.

List (filters), read one (with its history), request (the grantee), offer (the grantor), decide,
suspend / resume / revoke, withdraw, and ``POST /grants/{id}/uses``: decide a use against the
grant's policy (``dry_run`` checks without counting) — permit and deny are both 200 (a decision
is an answer). Refusals are problem+json naming the rule. The router's lifespan runs the
process's monitor (``jobs``), except in the test environment.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from datafactor import context, dataplane, registry
from datafactor.db import today_cn, utcnow
from datafactor.policy.grants import services
from datafactor.policy.grants.domain import reason_text
from datafactor.policy.grants.jobs import monitor_lifespan
from datafactor.policy.grants.models import PolicyGrant
from datafactor.policy.grants.schemas import (
    GrantCreate,
    GrantDecide,
    GrantEventPublic,
    GrantOffer,
    GrantPublic,
    GrantReason,
    UseCreate,
    UsePublic,
)
from datafactor.web.deps import ApiPrincipal, DbDep, PagingDep, SettingsDep

Page = dataplane.Page
router = APIRouter(prefix="/grants", tags=["grants"], lifespan=monitor_lifespan)


def grants_today() -> date:
    """The authorisations' clock (Asia/Shanghai date); tests override it."""
    return today_cn()


def grants_now() -> datetime:
    """The instant a use is decided at; tests override it."""
    return utcnow()


TodayDep = Annotated[date, Depends(grants_today)]
NowDep = Annotated[datetime, Depends(grants_now)]


def _public(session: Any, grant: PolicyGrant, *, history: bool = False) -> GrantPublic:
    events = None
    if history:
        events = [
            GrantEventPublic.of(e, reason_text(e.reason, e.reason_params))
            for e in services.grant_events(session, grant.id)
        ]
    return GrantPublic.of(grant, reason_text(grant.reason, grant.reason_params), events)


@router.get("", response_model=Page[GrantPublic], summary="Authorisations")
def grants(
    principal: ApiPrincipal,
    db: DbDep,
    page: PagingDep,
    state: str | None = None,
    regime: str | None = None,
    reference_id: str | None = None,
    asset_id: str | None = None,
    role: Annotated[str | None, Query(description="grantor or grantee")] = None,
) -> Page[GrantPublic]:
    filters = {
        "state": state,
        "regime": regime,
        "reference_id": reference_id,
        "role": role,
        "asset_id": asset_id,
    }
    with db.read() as s:
        rows = services.list_grants(s, principal, limit=page.limit, offset=page.offset, **filters)
        total = services.count_grants(s, principal, **filters)
        return Page(
            items=[_public(s, g) for g in rows],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )


@router.post(
    "", response_model=GrantPublic, status_code=201, summary="Ask for a grant (the grantee)"
)
def request(body: GrantCreate, principal: ApiPrincipal, db: DbDep, today: TodayDep) -> GrantPublic:
    with db.write() as s:
        grant = services.request_grant(s, principal, body.draft(principal.party_id), today=today)
        return _public(s, grant, history=True)


@router.post(
    "/offers",
    response_model=GrantPublic,
    status_code=201,
    summary="Grant directly (the grantor): approved at once, licence filed",
)
def offer(
    body: GrantOffer, principal: ApiPrincipal, db: DbDep, settings: SettingsDep, today: TodayDep
) -> GrantPublic:
    issuer = registry.issuer_for(settings)
    with db.write() as s:
        grant = services.offer_grant(s, principal, body.draft(), issuer=issuer, today=today)
        return _public(s, grant, history=True)


@router.get(
    "/{grant_id}", response_model=GrantPublic, summary="One authorisation, with its history"
)
def grant(grant_id: str, principal: ApiPrincipal, db: DbDep) -> GrantPublic:
    with db.read() as s:
        return _public(s, services.get_grant(s, principal, grant_id), history=True)


@router.post(
    "/{grant_id}/decision",
    response_model=GrantPublic,
    summary="Approve (licence filed) or refuse a requested grant (the grantor)",
)
def decide(
    grant_id: str,
    body: GrantDecide,
    principal: ApiPrincipal,
    db: DbDep,
    settings: SettingsDep,
    today: TodayDep,
) -> GrantPublic:
    issuer = registry.issuer_for(settings)
    with db.write() as s:
        grant = services.decide_grant(
            s,
            principal,
            grant_id,
            approve=body.approve,
            reason=body.reason,
            issuer=issuer,
            today=today,
        )
        return _public(s, grant, history=True)


@router.post("/{grant_id}/suspension", response_model=GrantPublic, summary="Suspend (grantor)")
def suspend(
    grant_id: str, body: GrantReason, principal: ApiPrincipal, db: DbDep, today: TodayDep
) -> GrantPublic:
    with db.write() as s:
        grant = services.suspend_grant(s, principal, grant_id, reason=body.reason, today=today)
        return _public(s, grant, history=True)


@router.post("/{grant_id}/resumption", response_model=GrantPublic, summary="Resume (grantor)")
def resume(
    grant_id: str, body: GrantReason, principal: ApiPrincipal, db: DbDep, today: TodayDep
) -> GrantPublic:
    with db.write() as s:
        grant = services.resume_grant(s, principal, grant_id, reason=body.reason, today=today)
        return _public(s, grant, history=True)


@router.post(
    "/{grant_id}/revocation", response_model=GrantPublic, summary="Revoke (grantor, regulator)"
)
def revoke(
    grant_id: str, body: GrantReason, principal: ApiPrincipal, db: DbDep, today: TodayDep
) -> GrantPublic:
    with db.write() as s:
        grant = services.revoke_grant(s, principal, grant_id, reason=body.reason, today=today)
        return _public(s, grant, history=True)


@router.post(
    "/{grant_id}/withdrawal", response_model=GrantPublic, summary="Withdraw a request (grantee)"
)
def withdraw(grant_id: str, principal: ApiPrincipal, db: DbDep, today: TodayDep) -> GrantPublic:
    with db.write() as s:
        grant = services.withdraw_grant(s, principal, grant_id, today=today)
        return _public(s, grant, history=True)


@router.post(
    "/{grant_id}/uses",
    response_model=UsePublic,
    response_model_exclude_none=True,
    summary="Decide a use against the grant's policy (counted unless dry_run)",
)
def use(
    grant_id: str, body: UseCreate, principal: ApiPrincipal, db: DbDep, now: NowDep
) -> dict[str, Any]:
    with db.write() as s:
        outcome = services.use_grant(
            s, principal, grant_id, body.request, dry_run=body.dry_run, now=now
        )
        return outcome.as_dict(context.locale.get())
