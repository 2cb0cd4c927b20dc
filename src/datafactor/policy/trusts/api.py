"""JSON routes of data trusts under ``/api/v1/trusts``: parse, call the services, answer.

Deeds (list, draft, read, edit a draft, sign, withdraw, accept, decline, amend, terminate), the
trust's grants (the trustee's grant, a party's request, the trustee's decision, misuse), income
(record, list) and distributions (a deed's, with totals per party; a party's own), and a
beneficiary's view of the deeds it benefits from. Refusals are problem+json naming the rule.
What each party sees is the services' ``visible_roles`` (docs/trusts.md).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from datafactor import dataplane, registry
from datafactor.db import today_cn
from datafactor.permissions import Principal
from datafactor.policy.trusts import services
from datafactor.policy.trusts.domain import DeedState
from datafactor.policy.trusts.jobs import sweep_lifespan
from datafactor.policy.trusts.models import PolicyTrustDeed
from datafactor.policy.trusts.schemas import (
    AmendmentCreate,
    AssetPublic,
    BenefitPublic,
    DeedCreate,
    DeedPublic,
    DeedSummary,
    DistributionsPublic,
    EventPublic,
    GrantSummary,
    IncomeCreate,
    IncomePublic,
    LinePublic,
    MisuseCreate,
    MisusePublic,
    Reason,
    Termination,
    TotalPublic,
    UseCreate,
    UseDecision,
    VersionPublic,
)
from datafactor.web.deps import ApiPrincipal, DbDep, PagingDep, SettingsDep

Page = dataplane.Page
# The lifespan runs the trusts' clock (``jobs.sweep_trusts``) in each server process.
router = APIRouter(prefix="/trusts", tags=["trusts"], lifespan=sweep_lifespan)


def trusts_today() -> date:
    """The trusts' clock (Asia/Shanghai date); tests override it."""
    return today_cn()


TodayDep = Annotated[date, Depends(trusts_today)]


def deed_public(session: Session, principal: Principal, deed: PolicyTrustDeed) -> DeedPublic:
    """A deed as the principal may see it (a beneficiary: its own share only)."""
    roles = services.visible_roles(session, deed, principal)
    versions = services.deed_versions(session, deed, principal, roles)
    ids = {deed.settlor_id, deed.trustee_id} | {s.party_id for v in versions for s in v.shares}
    names = services.party_names(session, ids)
    summary = DeedSummary.of(deed).model_dump()
    return DeedPublic(
        **summary,
        purpose=deed.purpose,
        settlor_name=names.get(deed.settlor_id, ""),
        trustee_name=names.get(deed.trustee_id, ""),
        scope=dict(deed.scope),
        assets=[AssetPublic.of(a) for a in services.deed_assets(session, deed.id)],
        versions=[VersionPublic.of(v, names) for v in versions],
        history=[EventPublic.of(e) for e in services.deed_events(session, deed.id)],
        viewer_roles=sorted(roles),
        allowed_actions=sorted(a.value for a in services.allowed(deed, principal)),
        termination_proposed_by=deed.termination_proposed_by,
        order_reference=deed.order_reference,
        ended_on=deed.ended_on,
        end_reason=deed.end_reason,
    )


def _answer(db: Any, principal: Principal, deed_id: str) -> DeedPublic:
    with db.read() as s:
        return deed_public(s, principal, services.get_deed(s, principal, deed_id))


@router.get("/deeds", response_model=Page[DeedSummary], summary="Trust deeds")
def deeds(
    principal: ApiPrincipal,
    db: DbDep,
    page: PagingDep,
    state: Annotated[DeedState | None, Query()] = None,
    role: Annotated[str | None, Query(pattern="^(settlor|trustee|beneficiary)$")] = None,
) -> Page[DeedSummary]:
    with db.read() as s:
        rows, total = services.list_deeds(
            s,
            principal,
            services.DeedQuery(state=state.value if state else None, role=role),
            limit=page.limit,
            offset=page.offset,
        )
        return Page(
            items=[DeedSummary.of(d) for d in rows],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )


@router.post("/deeds", response_model=DeedPublic, status_code=201, summary="Draft a trust deed")
def create(body: DeedCreate, principal: ApiPrincipal, db: DbDep, today: TodayDep) -> DeedPublic:
    with db.write() as s:
        deed = services.draft_deed(s, principal, body.draft(), today=today)
        deed_id = deed.id
    return _answer(db, principal, deed_id)


@router.get("/deeds/{deed_id}", response_model=DeedPublic, summary="One trust deed")
def deed(deed_id: str, principal: ApiPrincipal, db: DbDep) -> DeedPublic:
    return _answer(db, principal, deed_id)


@router.put("/deeds/{deed_id}", response_model=DeedPublic, summary="Rewrite a draft deed")
def edit(
    deed_id: str, body: DeedCreate, principal: ApiPrincipal, db: DbDep, today: TodayDep
) -> DeedPublic:
    with db.write() as s:
        services.edit_deed(s, principal, deed_id, body.draft(), today=today)
    return _answer(db, principal, deed_id)


@router.post("/deeds/{deed_id}/sign", response_model=DeedPublic, summary="The settlor signs")
def sign(deed_id: str, principal: ApiPrincipal, db: DbDep, today: TodayDep) -> DeedPublic:
    with db.write() as s:
        services.sign_deed(s, principal, deed_id, today=today)
    return _answer(db, principal, deed_id)


@router.post(
    "/deeds/{deed_id}/withdraw", response_model=DeedPublic, summary="The settlor withdraws"
)
def withdraw(
    deed_id: str, body: Reason, principal: ApiPrincipal, db: DbDep, today: TodayDep
) -> DeedPublic:
    with db.write() as s:
        services.withdraw_deed(s, principal, deed_id, reason=body.reason, today=today)
    return _answer(db, principal, deed_id)


@router.post("/deeds/{deed_id}/accept", response_model=DeedPublic, summary="The trustee accepts")
def accept(deed_id: str, principal: ApiPrincipal, db: DbDep, today: TodayDep) -> DeedPublic:
    with db.write() as s:
        services.accept_deed(s, principal, deed_id, today=today)
    return _answer(db, principal, deed_id)


@router.post("/deeds/{deed_id}/decline", response_model=DeedPublic, summary="The trustee declines")
def decline(
    deed_id: str, body: Reason, principal: ApiPrincipal, db: DbDep, today: TodayDep
) -> DeedPublic:
    with db.write() as s:
        services.decline_deed(s, principal, deed_id, reason=body.reason, today=today)
    return _answer(db, principal, deed_id)


@router.post(
    "/deeds/{deed_id}/amendments",
    response_model=DeedPublic,
    status_code=201,
    summary="The settlor amends the beneficiaries and shares (a new version)",
)
def amend(
    deed_id: str, body: AmendmentCreate, principal: ApiPrincipal, db: DbDep, today: TodayDep
) -> DeedPublic:
    with db.write() as s:
        services.amend_deed(
            s,
            principal,
            deed_id,
            body.shares(),
            reason=body.reason,
            effective_on=body.effective_on,
            today=today,
        )
    return _answer(db, principal, deed_id)


@router.post(
    "/deeds/{deed_id}/termination",
    response_model=DeedPublic,
    summary="End a deed early: propose or agree (settlor, trustee), or order it (regulator)",
)
def terminate(
    deed_id: str, body: Termination, principal: ApiPrincipal, db: DbDep, today: TodayDep
) -> DeedPublic:
    with db.write() as s:
        services.terminate_deed(
            s,
            principal,
            deed_id,
            reason=body.reason,
            order_reference=body.order_reference,
            today=today,
        )
    return _answer(db, principal, deed_id)


# ------------------------------------------------------------------------------ the grants


def _grants(s: Session, principal: Principal, deed_id: str) -> list[GrantSummary]:
    deed = services.get_deed(s, principal, deed_id)
    if not services.sees_everything(services.visible_roles(s, deed, principal)):
        return []
    rows = services.deed_grants(s, deed.id)
    names = services.party_names(s, {g.grantee_id for g in rows})
    return [GrantSummary.of(g, names) for g in rows]


@router.get(
    "/deeds/{deed_id}/grants",
    response_model=list[GrantSummary],
    summary="Grants under the deed (settlor, trustee, supervisors)",
)
def grants(deed_id: str, principal: ApiPrincipal, db: DbDep) -> list[GrantSummary]:
    with db.read() as s:
        return _grants(s, principal, deed_id)


def _draft(body: UseCreate, grantee_id: str) -> Any:
    from datafactor.policy import grants as grants_core

    return grants_core.GrantDraft(
        asset_id=body.asset_id,
        grantee_id=grantee_id,
        policy=body.policy,
        term_start=body.term_start,
        term_end=body.term_end,
        purpose_note=body.purpose_note,
        fee_fen=body.fee_fen,
    )


@router.post(
    "/deeds/{deed_id}/grants",
    response_model=GrantSummary,
    status_code=201,
    summary="The trustee grants a use of the trust property",
)
def grant(
    deed_id: str,
    body: UseCreate,
    principal: ApiPrincipal,
    db: DbDep,
    settings: SettingsDep,
    today: TodayDep,
) -> GrantSummary:
    from datafactor.errors import N_, InvalidInput

    if not body.grantee_id:
        raise InvalidInput(N_("Name the grantee (grantee_id)."), field="grantee_id")
    issuer = registry.issuer_for(settings)
    with db.write() as s:
        row = services.grant_use(
            s, principal, deed_id, _draft(body, body.grantee_id), issuer=issuer, today=today
        )
        return GrantSummary.of(row, services.party_names(s, {row.grantee_id}))


@router.post(
    "/deeds/{deed_id}/requests",
    response_model=GrantSummary,
    status_code=201,
    summary="A party requests a use of the trust property from the trustee",
)
def request_use(
    deed_id: str, body: UseCreate, principal: ApiPrincipal, db: DbDep, today: TodayDep
) -> GrantSummary:
    with db.write() as s:
        row = services.request_use(
            s, principal, deed_id, _draft(body, principal.party_id), today=today
        )
        return GrantSummary.of(row, services.party_names(s, {row.grantee_id}))


@router.post(
    "/deeds/{deed_id}/decisions",
    response_model=GrantSummary,
    summary="The trustee decides a request under the deed (body names the grant)",
)
def decide(
    deed_id: str,
    body: UseDecision,
    principal: ApiPrincipal,
    db: DbDep,
    settings: SettingsDep,
    today: TodayDep,
) -> GrantSummary:
    issuer = registry.issuer_for(settings)
    with db.write() as s:
        row = services.decide_use(
            s,
            principal,
            deed_id,
            body.grant_id,
            approve=body.approve,
            reason=body.reason,
            issuer=issuer,
            today=today,
        )
        return GrantSummary.of(row, services.party_names(s, {row.grantee_id}))


@router.post(
    "/deeds/{deed_id}/misuse",
    response_model=MisusePublic,
    status_code=201,
    summary="The trustee records data misuse under a grant (the grant is suspended)",
)
def misuse(
    deed_id: str, body: MisuseCreate, principal: ApiPrincipal, db: DbDep, today: TodayDep
) -> MisusePublic:
    with db.write() as s:
        row = services.record_misuse(
            s, principal, deed_id, body.grant_id, description=body.description, today=today
        )
        return MisusePublic.of(row)


# ------------------------------------------------------------------------ income and money


@router.get(
    "/deeds/{deed_id}/income",
    response_model=list[IncomePublic],
    summary="The deed's income and its distribution lines (a beneficiary: its own lines)",
)
def income(deed_id: str, principal: ApiPrincipal, db: DbDep) -> list[IncomePublic]:
    with db.read() as s:
        views = services.list_income(s, principal, deed_id)
        names = services.party_names(s, {line.party_id for v in views for line in v.lines})
        return [IncomePublic.of(v, names) for v in views]


@router.post(
    "/deeds/{deed_id}/income",
    response_model=IncomePublic,
    status_code=201,
    summary="The trustee records income; it is split at once",
)
def record_income(
    deed_id: str, body: IncomeCreate, principal: ApiPrincipal, db: DbDep, today: TodayDep
) -> IncomePublic:
    draft = services.IncomeDraft(
        amount_fen=body.amount_fen,
        received_on=body.received_on,
        source=body.source,
        grant_id=body.grant_id,
        description=body.description,
    )
    with db.write() as s:
        row = services.record_income(s, principal, deed_id, draft, today=today)
        income_id = row.id
    with db.read() as s:
        view = next(
            v for v in services.list_income(s, principal, deed_id) if v.income.id == income_id
        )
        names = services.party_names(s, {line.party_id for line in view.lines})
        return IncomePublic.of(view, names)


@router.post(
    "/income/{income_id}/payment",
    response_model=IncomePublic,
    summary="The trustee pays an income's distribution through settlement (once)",
)
def pay_income(income_id: str, principal: ApiPrincipal, db: DbDep) -> IncomePublic:
    with db.write() as s:
        row = services.pay_income(s, principal, income_id)
        deed_id = row.deed_id
    with db.read() as s:
        view = next(
            v for v in services.list_income(s, principal, deed_id) if v.income.id == income_id
        )
        names = services.party_names(s, {line.party_id for line in view.lines})
        return IncomePublic.of(view, names)


@router.get(
    "/deeds/{deed_id}/distributions",
    response_model=DistributionsPublic,
    summary="The deed's distribution lines and totals per party (a beneficiary: its own)",
)
def distributions(deed_id: str, principal: ApiPrincipal, db: DbDep) -> DistributionsPublic:
    with db.read() as s:
        total_income, totals = services.deed_totals(s, principal, deed_id)
        lines = services.list_distributions(s, principal, deed_id=deed_id)
        names = services.party_names(s, {t.party_id for t in totals})
        return DistributionsPublic(
            income_fen=total_income,
            totals=[TotalPublic.of(t, names) for t in totals],
            lines=[LinePublic.of(line, names) for line in lines],
        )


@router.get(
    "/benefits",
    response_model=list[BenefitPublic],
    summary="The deeds the caller's party benefits from, with its share and totals",
)
def benefits(principal: ApiPrincipal, db: DbDep, today: TodayDep) -> list[BenefitPublic]:
    with db.read() as s:
        return [BenefitPublic.of(b) for b in services.my_benefits(s, principal, today=today)]


@router.get(
    "/distributions",
    response_model=list[LinePublic],
    summary="The caller's party's own distribution lines, on every deed",
)
def my_distributions(principal: ApiPrincipal, db: DbDep) -> list[LinePublic]:
    with db.read() as s:
        lines = services.list_distributions(s, principal)
        names = services.party_names(s, {principal.party_id})
        return [LinePublic.of(line, names) for line in lines]
