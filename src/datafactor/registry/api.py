"""JSON routes of the registry under ``/api/v1/registry``: parse, call the services, answer.

Assets, applications (submit, read with history, act on), objections, the public notice board
(any logged-in party), the registrar's overdue queue, certificates and their ledger receipts.
``GET /registry/verify/{number}`` is public, without login: anyone holding a certificate can
check its status, validity and chain of title. Errors are problem+json naming the rule.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from datafactor import dataplane
from datafactor.db import today_cn
from datafactor.registry import services
from datafactor.registry.schemas import (
    ActionCreate,
    ApplicationCreate,
    ApplicationPublic,
    AssetCreate,
    AssetPublic,
    AssetUpdate,
    CertificatePublic,
    NoticePublic,
    ObjectionCreate,
    ObjectionDecide,
    ObjectionPublic,
    OverduePublic,
    VerificationPublic,
)
from datafactor.web.deps import ApiPrincipal, DbDep, PagingDep, SettingsDep

Page = dataplane.Page
router = APIRouter(prefix="/registry", tags=["registry"])


def registry_today() -> date:
    """The registry's clock (Asia/Shanghai date); tests override it to pass notice periods."""
    return today_cn()


TodayDep = Annotated[date, Depends(registry_today)]


@router.get("/assets", response_model=Page[AssetPublic], summary="Registry assets")
def assets(principal: ApiPrincipal, db: DbDep, page: PagingDep) -> Page[AssetPublic]:
    with db.read() as s:
        rows, total = services.list_assets(s, principal, limit=page.limit, offset=page.offset)
        return Page(
            items=[AssetPublic.of(a) for a in rows],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )


@router.post("/assets", response_model=AssetPublic, status_code=201, summary="Declare an asset")
def create_asset(body: AssetCreate, principal: ApiPrincipal, db: DbDep) -> AssetPublic:
    data = body.model_dump()
    data["field_schema"] = tuple(data["field_schema"])
    data["lineage"] = tuple(data["lineage"])
    with db.write() as s:
        return AssetPublic.of(services.create_asset(s, principal, services.AssetDraft(**data)))


@router.get("/assets/{asset_id}", response_model=AssetPublic, summary="One asset")
def asset(asset_id: str, principal: ApiPrincipal, db: DbDep) -> AssetPublic:
    with db.read() as s:
        return AssetPublic.of(services.get_asset(s, principal, asset_id))


@router.patch("/assets/{asset_id}", response_model=AssetPublic, summary="Change an asset")
def update_asset(
    asset_id: str, body: AssetUpdate, principal: ApiPrincipal, db: DbDep
) -> AssetPublic:
    with db.write() as s:
        changes = body.model_dump(exclude_unset=True)
        return AssetPublic.of(services.update_asset(s, principal, asset_id, changes))


@router.get("/applications", response_model=Page[ApplicationPublic], summary="Applications")
def applications(
    principal: ApiPrincipal, db: DbDep, page: PagingDep, state: str | None = None
) -> Page[ApplicationPublic]:
    with db.read() as s:
        rows, total = services.list_applications(
            s,
            principal,
            services.ApplicationQuery(state=state),
            limit=page.limit,
            offset=page.offset,
        )
        return Page(
            items=[ApplicationPublic.of(a) for a in rows],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )


@router.post(
    "/applications",
    response_model=ApplicationPublic,
    status_code=201,
    summary="Submit an application (the formal review runs at once)",
)
def submit(
    body: ApplicationCreate,
    principal: ApiPrincipal,
    db: DbDep,
    settings: SettingsDep,
    today: TodayDep,
) -> ApplicationPublic:
    draft = services.ApplicationDraft(**body.model_dump())
    issuer = services.issuer_for(settings)
    with db.write() as s:
        row = services.submit_application(s, principal, draft, issuer=issuer, today=today)
        return ApplicationPublic.of(row, services.application_events(s, row.id))


@router.get(
    "/applications/{application_id}",
    response_model=ApplicationPublic,
    summary="An application: where it stands, why, and its history",
)
def application(application_id: str, principal: ApiPrincipal, db: DbDep) -> ApplicationPublic:
    with db.read() as s:
        row = services.get_application(s, principal, application_id)
        return ApplicationPublic.of(row, services.application_events(s, row.id))


@router.post(
    "/applications/{application_id}/actions",
    response_model=ApplicationPublic,
    summary="Act on an application (registrar, applicant, or administrator's force)",
)
def act(
    application_id: str,
    body: ActionCreate,
    principal: ApiPrincipal,
    db: DbDep,
    settings: SettingsDep,
    today: TodayDep,
) -> ApplicationPublic:
    issuer = services.issuer_for(settings)
    with db.write() as s:
        row = services.act(
            s,
            principal,
            application_id,
            body.action,
            issuer=issuer,
            reason=body.reason,
            target=body.target,
            today=today,
        )
        return ApplicationPublic.of(row, services.application_events(s, row.id))


@router.get(
    "/applications/{application_id}/objections",
    response_model=list[ObjectionPublic],
    summary="Objections lodged against an application",
)
def objections(application_id: str, principal: ApiPrincipal, db: DbDep) -> list[ObjectionPublic]:
    with db.read() as s:
        return [
            ObjectionPublic.of(o) for o in services.list_objections(s, principal, application_id)
        ]


@router.post(
    "/applications/{application_id}/objections",
    response_model=ObjectionPublic,
    status_code=201,
    summary="Object to an application during its public notice",
)
def lodge(
    application_id: str,
    body: ObjectionCreate,
    principal: ApiPrincipal,
    db: DbDep,
    today: TodayDep,
) -> ObjectionPublic:
    draft = services.ObjectionDraft(tuple(body.grounds), body.statement, tuple(body.evidence))
    with db.write() as s:
        return ObjectionPublic.of(services.lodge(s, principal, application_id, draft, today=today))


@router.get("/objections/{objection_id}", response_model=ObjectionPublic, summary="An objection")
def objection(objection_id: str, principal: ApiPrincipal, db: DbDep) -> ObjectionPublic:
    with db.read() as s:
        return ObjectionPublic.of(services.get_objection(s, principal, objection_id))


@router.post(
    "/objections/{objection_id}/decision",
    response_model=ObjectionPublic,
    summary="The registrar decides an objection",
)
def decide(
    objection_id: str,
    body: ObjectionDecide,
    principal: ApiPrincipal,
    db: DbDep,
    today: TodayDep,
) -> ObjectionPublic:
    with db.write() as s:
        return ObjectionPublic.of(
            services.decide(
                s,
                principal,
                objection_id,
                substantiated=body.substantiated,
                reason=body.reason,
                today=today,
            )
        )


@router.get("/notices", response_model=Page[NoticePublic], summary="The public notice board")
def notices(principal: ApiPrincipal, db: DbDep, page: PagingDep) -> Page[NoticePublic]:
    with db.read() as s:
        rows, total = services.notice_board(s, principal, limit=page.limit, offset=page.offset)
        return Page(
            items=[NoticePublic.of(a) for a in rows],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )


@router.get("/overdue", response_model=list[OverduePublic], summary="The overdue queue")
def overdue(principal: ApiPrincipal, db: DbDep, today: TodayDep) -> list[OverduePublic]:
    with db.read() as s:
        return [
            OverduePublic(
                application=ApplicationPublic.of(row), working_days_late=late, owner=owner
            )
            for row, late, owner in services.overdue_queue(s, principal, today=today)
        ]


@router.get("/certificates", response_model=Page[CertificatePublic], summary="Certificates")
def certificates(
    principal: ApiPrincipal, db: DbDep, page: PagingDep, today: TodayDep
) -> Page[CertificatePublic]:
    with db.read() as s:
        rows, total = services.list_certificates(
            s, principal, limit=page.limit, offset=page.offset, today=today
        )
        return Page(
            items=[CertificatePublic(**r.as_dict()) for r in rows],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )


@router.get(
    "/certificates/{number}/receipt",
    summary="The certificate's ledger receipt (verify offline with datafactor verify-receipt)",
)
def receipt(
    number: str, principal: ApiPrincipal, db: DbDep, settings: SettingsDep, today: TodayDep
) -> dict[str, Any]:
    keys = services.issuer_for(settings).keys
    with db.write() as s:
        return services.certificate_receipt(s, principal, number, keys, today=today).to_json()


@router.get(
    "/verify/{number}",
    response_model=VerificationPublic,
    summary="Public: a certificate's status, validity and chain of title (no login)",
)
def verify(number: str, db: DbDep, today: TodayDep) -> VerificationPublic:
    with db.read() as s:
        return VerificationPublic(**services.verify_certificate(s, number, today=today).as_dict())
