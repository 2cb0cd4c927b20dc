"""JSON routes of public data authorised operation under ``/api/v1/operation``: parse, call the
services, answer.

Agreements (the implementing body signs, suspends, resumes, terminates; body, operator and
supervisors read), the bureau's fee caps and profit rates, the operators' published fees and the
catalogue of operated data sets (every logged-in user reads them: fees are published), uses
(the operator grants or decides; a user asks; creating a use answers with the grant it became),
costs, and the annual report (JSON, CSV download, filing). Every refusal is problem+json naming
its rule.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Response

from datafactor import dataplane, registry
from datafactor.db import today_cn
from datafactor.policy.grants import get_grant
from datafactor.policy.operation import services
from datafactor.policy.operation.domain import AgreementState, effective_state
from datafactor.policy.operation.schemas import (
    AgreementChange,
    AgreementCreate,
    AgreementPublic,
    CapCreate,
    CapPublic,
    CataloguePublic,
    CostCreate,
    CostPublic,
    FeeCreate,
    FeePublic,
    RateCreate,
    RatePublic,
    ReportFile,
    ReportFiled,
    UseCreate,
    UseDecide,
    UsePublic,
)
from datafactor.web.deps import ApiPrincipal, DbDep, PagingDep, SettingsDep

Page = dataplane.Page
router = APIRouter(prefix="/operation", tags=["operation"])
CSV_TYPE = "text/csv; charset=utf-8"


def operation_today() -> date:
    """Operation's clock (Asia/Shanghai date); tests override it."""
    return today_cn()


TodayDep = Annotated[date, Depends(operation_today)]


def agreement_public(session: Any, row: Any, today: date) -> AgreementPublic:
    state = effective_state(row.state, row.term_end, today).value
    return AgreementPublic.of(row, services.agreement_assets(session, row.id), state)


def agreement_draft(body: AgreementCreate) -> services.AgreementDraft:
    return services.AgreementDraft(
        operator_id=body.operator_id,
        number=body.number,
        selection=body.selection.to_domain() if body.selection else None,
        asset_ids=tuple(body.asset_ids),
        signed_on=body.signed_on,
        term_start=body.term_start,
        term_end=body.term_end,
        purposes=tuple(body.purposes) if body.purposes is not None else None,
        regions=tuple(body.regions) if body.regions is not None else None,
    )


def use_draft(body: UseCreate) -> services.UseDraft:
    return services.UseDraft(
        agreement_id=body.agreement_id,
        asset_id=body.asset_id,
        use_class=body.use_class,
        purpose=body.purpose,
        term_start=body.term_start,
        term_end=body.term_end,
        grantee_id=body.grantee_id,
        regions=tuple(body.regions) if body.regions is not None else None,
        channels=tuple(body.channels) if body.channels is not None else None,
        unit=body.unit,
        quantity=body.quantity,
        unit_fee_fen=body.unit_fee_fen,
        purpose_note=body.purpose_note,
    )


def csv_response(filename: str, text: str) -> Response:
    disposition = f"attachment; filename=\"{filename}\"; filename*=UTF-8''{quote(filename)}"
    # A BOM so spreadsheet programs read the Chinese text as UTF-8.
    return Response(
        ("\ufeff" + text).encode("utf-8"),
        media_type=CSV_TYPE,
        headers={"Content-Disposition": disposition},
    )


# ---------------------------------------------------------------------------------- agreements


@router.get("/agreements", response_model=Page[AgreementPublic], summary="Authorisation agreements")
def agreements(
    principal: ApiPrincipal,
    db: DbDep,
    page: PagingDep,
    today: TodayDep,
    state: Annotated[AgreementState | None, Query()] = None,
) -> Page[AgreementPublic]:
    with db.read() as s:
        rows, total = services.list_agreements(
            s,
            principal,
            state=state.value if state else None,
            limit=page.limit,
            offset=page.offset,
        )
        items = [agreement_public(s, r, today) for r in rows]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.post(
    "/agreements",
    response_model=AgreementPublic,
    status_code=201,
    summary="The implementing body signs an agreement (selection recorded; licence granted)",
)
def sign(
    body: AgreementCreate,
    principal: ApiPrincipal,
    db: DbDep,
    settings: SettingsDep,
    today: TodayDep,
) -> AgreementPublic:
    issuer = registry.issuer_for(settings)
    with db.write() as s:
        row = services.sign_agreement(
            s, principal, agreement_draft(body), issuer=issuer, today=today
        )
        return agreement_public(s, row, today)


@router.get("/agreements/{agreement_id}", response_model=AgreementPublic, summary="One agreement")
def agreement(
    agreement_id: str, principal: ApiPrincipal, db: DbDep, today: TodayDep
) -> AgreementPublic:
    with db.read() as s:
        return agreement_public(s, services.get_agreement(s, principal, agreement_id), today)


def _change(
    agreement_id: str,
    target: AgreementState,
    body: AgreementChange,
    principal: Any,
    db: Any,
    today: date,
) -> AgreementPublic:
    with db.write() as s:
        row = services.change_agreement(
            s, principal, agreement_id, target, reason=body.reason, today=today
        )
        return agreement_public(s, row, today)


@router.post(
    "/agreements/{agreement_id}/suspend",
    response_model=AgreementPublic,
    summary="Suspend an agreement (its grants in effect suspended, the others revoked)",
)
def suspend(
    agreement_id: str, body: AgreementChange, principal: ApiPrincipal, db: DbDep, today: TodayDep
) -> AgreementPublic:
    return _change(agreement_id, AgreementState.SUSPENDED, body, principal, db, today)


@router.post(
    "/agreements/{agreement_id}/resume",
    response_model=AgreementPublic,
    summary="Resume a suspended agreement (the grants it suspended resume)",
)
def resume(
    agreement_id: str, body: AgreementChange, principal: ApiPrincipal, db: DbDep, today: TodayDep
) -> AgreementPublic:
    return _change(agreement_id, AgreementState.ACTIVE, body, principal, db, today)


@router.post(
    "/agreements/{agreement_id}/terminate",
    response_model=AgreementPublic,
    summary="Terminate an agreement (every grant under it revoked)",
)
def terminate(
    agreement_id: str, body: AgreementChange, principal: ApiPrincipal, db: DbDep, today: TodayDep
) -> AgreementPublic:
    return _change(agreement_id, AgreementState.TERMINATED, body, principal, db, today)


# -------------------------------------------------------------------- caps, rates and fees


@router.get("/caps", response_model=list[CapPublic], summary="Service-fee caps, with history")
def caps(principal: ApiPrincipal, db: DbDep, today: TodayDep) -> list[CapPublic]:
    with db.read() as s:
        rows = services.list_caps(s, principal)
        live = services.in_force_ids(rows, today)
        return [CapPublic.of(row, row.id in live) for row in rows]


@router.post("/caps", response_model=CapPublic, status_code=201, summary="The bureau sets a cap")
def set_cap(body: CapCreate, principal: ApiPrincipal, db: DbDep, today: TodayDep) -> CapPublic:
    with db.write() as s:
        row = services.set_cap(
            s,
            principal,
            unit=body.unit,
            amount_fen=body.amount_fen,
            effective_from=body.effective_from,
            source_document=body.source_document,
            note=body.note,
            today=today,
        )
        return CapPublic.of(row)


@router.get("/rates", response_model=list[RatePublic], summary="Reasonable-profit rates")
def rates(principal: ApiPrincipal, db: DbDep, today: TodayDep) -> list[RatePublic]:
    with db.read() as s:
        rows = services.list_rates(s, principal)
        live = services.in_force_ids(rows, today, key="")
        return [RatePublic.of(row, row.id in live) for row in rows]


@router.post(
    "/rates",
    response_model=RatePublic,
    status_code=201,
    summary="The bureau sets the reasonable-profit rate",
)
def set_rate(body: RateCreate, principal: ApiPrincipal, db: DbDep, today: TodayDep) -> RatePublic:
    with db.write() as s:
        row = services.set_profit_rate(
            s,
            principal,
            rate_bp=body.rate_bp,
            effective_from=body.effective_from,
            source_document=body.source_document,
            note=body.note,
            today=today,
        )
        return RatePublic.of(row)


@router.get("/fees", response_model=list[FeePublic], summary="Published fees (收费公示)")
def fees(
    principal: ApiPrincipal,
    db: DbDep,
    today: TodayDep,
    operator_id: Annotated[str | None, Query(max_length=36)] = None,
    history: bool = False,
) -> list[FeePublic]:
    with db.read() as s:
        rows = services.list_fees(s, principal, operator_id=operator_id, on=today, history=history)
        return [FeePublic.of(r) for r in rows]


@router.post(
    "/fees", response_model=FeePublic, status_code=201, summary="The operator publishes a fee"
)
def publish_fee(body: FeeCreate, principal: ApiPrincipal, db: DbDep, today: TodayDep) -> FeePublic:
    with db.write() as s:
        row = services.publish_fee(
            s,
            principal,
            asset_id=body.asset_id,
            unit=body.unit,
            amount_fen=body.amount_fen,
            effective_from=body.effective_from,
            note=body.note,
            today=today,
        )
        found = services.list_fees(
            s, principal, operator_id=row.operator_id, asset_id=row.asset_id, on=row.effective_from
        )
        return FeePublic.of(next(f for f in found if f.fee.id == row.id))


@router.get(
    "/catalogue",
    response_model=list[CataloguePublic],
    summary="Data sets operated under agreements in effect (published)",
)
def catalogue(principal: ApiPrincipal, db: DbDep, today: TodayDep) -> list[CataloguePublic]:
    with db.read() as s:
        return [CataloguePublic.of(e) for e in services.catalogue(s, principal, today=today)]


# --------------------------------------------------------------------------------------- uses


@router.get("/uses", response_model=Page[UsePublic], summary="Uses made under agreements")
def uses(
    principal: ApiPrincipal,
    db: DbDep,
    page: PagingDep,
    agreement_id: Annotated[str | None, Query(max_length=36)] = None,
    outcome: Annotated[
        Literal["requested", "approved", "refused", "withdrawn", "revoked", "expired"] | None,
        Query(),
    ] = None,
) -> Page[UsePublic]:
    with db.read() as s:
        rows, total = services.list_uses(
            s,
            principal,
            agreement_id=agreement_id,
            outcome=outcome,
            limit=page.limit,
            offset=page.offset,
        )
        states = services.grant_states(s, {r.agreement_id for r in rows})
        items = [UsePublic.of(r, state=states.get(r.grant_id)) for r in rows]
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.post(
    "/uses",
    response_model=UsePublic,
    status_code=201,
    summary="The operator grants a use, or a user asks for one (answers with the grant)",
)
def create_use(
    body: UseCreate,
    principal: ApiPrincipal,
    db: DbDep,
    settings: SettingsDep,
    today: TodayDep,
) -> UsePublic:
    issuer = registry.issuer_for(settings)
    with db.write() as s:
        row, grant = services.make_use(s, principal, use_draft(body), issuer=issuer, today=today)
        return UsePublic.of(row, grant)


@router.get("/uses/{use_id}", response_model=UsePublic, summary="One use, with its grant")
def use(use_id: str, principal: ApiPrincipal, db: DbDep) -> UsePublic:
    with db.read() as s:
        row = services.get_use(s, principal, use_id)
        # The use's parties are its grant's (operator = agent, body = holder, user = grantee).
        return UsePublic.of(row, get_grant(s, principal, row.grant_id))


@router.post(
    "/uses/{use_id}/decision",
    response_model=UsePublic,
    summary="The operator approves or refuses a requested use",
)
def decide(
    use_id: str,
    body: UseDecide,
    principal: ApiPrincipal,
    db: DbDep,
    settings: SettingsDep,
    today: TodayDep,
) -> UsePublic:
    issuer = registry.issuer_for(settings)
    with db.write() as s:
        row, grant = services.decide_use(
            s,
            principal,
            use_id,
            approve=body.approve,
            reason=body.reason,
            issuer=issuer,
            today=today,
        )
        return UsePublic.of(row, grant)


# -------------------------------------------------------------------------------------- costs


@router.get("/costs", response_model=list[CostPublic], summary="An operator's costs")
def costs(
    principal: ApiPrincipal,
    db: DbDep,
    operator_id: Annotated[str | None, Query(max_length=36)] = None,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
) -> list[CostPublic]:
    with db.read() as s:
        rows = services.list_costs(s, principal, operator_id=operator_id, year=year)
        return [CostPublic.of(r) for r in rows]


@router.post(
    "/costs", response_model=CostPublic, status_code=201, summary="The operator records a cost"
)
def record_cost(body: CostCreate, principal: ApiPrincipal, db: DbDep) -> CostPublic:
    with db.write() as s:
        row = services.record_cost(
            s,
            principal,
            year=body.year,
            category=body.category,
            amount_fen=body.amount_fen,
            note=body.note,
        )
        return CostPublic.of(row)


# ------------------------------------------------------------------------------------ reports


@router.post(
    "/reports",
    response_model=ReportFiled,
    status_code=201,
    summary="The operator files its annual report for a year that has ended",
)
def file_report(
    body: ReportFile, principal: ApiPrincipal, db: DbDep, today: TodayDep
) -> ReportFiled:
    with db.write() as s:
        row = services.file_report(s, principal, body.year, today=today)
        return ReportFiled(
            id=row.id,
            operator_id=row.operator_id,
            year=row.year,
            digest=row.digest,
            ledger_index=row.ledger_index,
            filed_on=row.filed_on,
        )


@router.get(
    "/reports/{operator_id}/{year}",
    response_model=dict[str, Any],
    summary="An operator's annual report, generated from the records (or as filed)",
)
def report(
    operator_id: str, year: int, principal: ApiPrincipal, db: DbDep, today: TodayDep
) -> dict[str, Any]:
    with db.read() as s:
        return services.build_report(s, principal, operator_id, year, today=today)


@router.get(
    "/reports/{operator_id}/{year}/report.csv",
    response_class=Response,
    responses={200: {"content": {CSV_TYPE: {}}, "description": "The report as CSV."}},
    summary="The annual report as a CSV download",
)
def report_csv(
    operator_id: str, year: int, principal: ApiPrincipal, db: DbDep, today: TodayDep
) -> Response:
    with db.read() as s:
        found = services.build_report(s, principal, operator_id, year, today=today)
    return csv_response(f"operation-report-{year}.csv", services.report_csv(found))
