"""JSON routes of the registry under ``/api/v1/registry``: parse, call the services, answer.

Assets, applications (submit, read with history, act on), objections, the public notice board
(any logged-in party), the registrar's overdue queue, certificates, their ledger receipts and
their PDFs (with a QR code to the public verification page).
``GET /registry/verify/{number}`` is public, without login: anyone holding a certificate can
check its status, validity and chain of title; ``VerificationShortcut`` sends its cached answers
before routing. Errors are problem+json naming the rule.
"""

from __future__ import annotations

import inspect
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette._utils import get_route_path
from starlette.types import ASGIApp, Receive, Scope, Send

from datafactor import dataplane
from datafactor.db import Database, today_cn
from datafactor.registry import maintenance, pdf, services, verifications
from datafactor.registry.certificates import normalise_certificate_number
from datafactor.registry.schemas import (
    ActionCreate,
    ApplicationCreate,
    ApplicationPublic,
    AssetCreate,
    AssetPublic,
    AssetUpdate,
    CertificatePublic,
    LawsuitCreate,
    NoticePublic,
    ObjectionCreate,
    ObjectionDecide,
    ObjectionPublic,
    ObjectionRecordClose,
    OverduePublic,
    VerificationPublic,
)
from datafactor.web.deps import ApiPrincipal, DbDep, PagingDep, SettingsDep

Page = dataplane.Page
# The lifespan runs the daily sweep (expiry, reminders, overdue) in each server process.
router = APIRouter(prefix="/registry", tags=["registry"], lifespan=maintenance.sweep_lifespan)


async def registry_today() -> date:
    """The registry's clock (Asia/Shanghai date); tests override it to pass notice periods.
    ``async``: a plain ``def`` dependency costs every request a hop to the thread pool, the
    public verification's included."""
    return today_cn()


TodayDep = Annotated[date, Depends(registry_today)]


def _public(session: Any, row: Any) -> ApplicationPublic:
    """An application as the API answers it: with its history."""
    return ApplicationPublic.of(row, services.application_events(session, row.id))


# The public verification first: a QR-code scan is the registry's hottest path, and routes
# are matched in the order they are declared.
@router.get(
    "/verify/{number}",
    response_model=VerificationPublic,
    summary="Public: a certificate's status, validity and chain of title (no login)",
)
async def verify(number: str, db: DbDep, today: TodayDep) -> Response:
    # The revision is read before the verification is computed (services.VerificationCache).
    # A cached answer is usually sent by VerificationShortcut before this route is reached; a
    # change to the key or the response here must be made there too.
    key = (number, today, await services.registry_revision(db))
    body = await _known(db, key)
    if body is None:
        found = await db.run_read(lambda s: services.verify_certificate(s, number, today=today))
        body = VerificationPublic(**found.as_dict()).model_dump_json().encode()
        services.verification_cache(db).put(key, body)
        await verifications.share(db, *key, body)
    return Response(body, media_type="application/json")


async def _known(db: Database, key: tuple[str, date, int]) -> bytes | None:
    """A verification already computed for ``key``: by this worker (its memory), else by
    another worker on the same database (``verifications``, then kept in memory too)."""
    cache = services.verification_cache(db)
    body: bytes | None = cache.get(key)
    if body is None and (body := await verifications.shared(db, *key)) is not None:
        cache.put(key, body)
    return body


class VerificationShortcut:
    """Answers a ``GET`` of the public verification from the worker's verification cache
    without FastAPI's routing and dependency resolution, which were most of a cached lookup's
    CPU (the lookup is the registry's hottest path: QR-code scans).

    A plain ASGI middleware inside ``RequestContextMiddleware`` (request id, locale, security
    headers are added as for any response). It answers only what the route itself would answer
    byte for byte: the cache is filled by the ``verify`` route alone, keyed by the path's
    certificate number, the day and the registry revision read *before* the lookup, exactly as
    that route keys it — so a hit means the route has served this number at this revision and
    day (in this worker, or in another whose answer it shared: ``registry.verifications``). Everything else goes on to the app unchanged: any method but ``GET``, a query string
    (the route refuses unknown parameters), a path the route's ``{number}`` would not match, a
    miss, an error while reading the revision (the route then meets it and answers as it does),
    and an app with dependency overrides other than the registry's clock (``registry_today``,
    which tests set and which is honoured here as the route honours it).
    """

    def __init__(self, app: ASGIApp, *, path: str) -> None:
        self.app = app
        self.prefix = path.removesuffix("{number}")
        if self.prefix == path:
            raise ValueError(f"{path} does not end with {{number}}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and not scope["query_string"]
            and (body := await self._cached(scope)) is not None
        ):
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    # What starlette's Response(body, media_type="application/json") sends.
                    "headers": [
                        (b"content-length", str(len(body)).encode("latin-1")),
                        (b"content-type", b"application/json"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    async def _cached(self, scope: Scope) -> bytes | None:
        path = get_route_path(scope)
        if not path.startswith(self.prefix):
            return None
        number = path[len(self.prefix) :]
        app = scope["app"]
        overrides = app.dependency_overrides
        if not number or "/" in number or overrides.keys() - {registry_today}:
            return None
        db = app.state.db
        try:
            today = overrides.get(registry_today, registry_today)()
            if inspect.isawaitable(today):
                today = await today
            key = (number, today, await services.registry_revision(db))
            return await _known(db, key)
        except Exception:  # the route meets the same error and answers it as it does
            return None


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
    data = body.model_dump()
    data["grounds"], data["evidence"] = tuple(data["grounds"]), tuple(data["evidence"])
    draft = services.ApplicationDraft(**data)
    issuer = services.issuer_for(settings)
    with db.write() as s:
        row = services.submit_application(s, principal, draft, issuer=issuer, today=today)
        return _public(s, row)


@router.get(
    "/applications/{application_id}",
    response_model=ApplicationPublic,
    summary="An application: where it stands, why, and its history",
)
def application(application_id: str, principal: ApiPrincipal, db: DbDep) -> ApplicationPublic:
    with db.read() as s:
        row = services.get_application(s, principal, application_id)
        return _public(s, row)


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
            checklist=body.checklist,
        )
        return _public(s, row)


@router.post(
    "/applications/{application_id}/consent",
    response_model=ApplicationPublic,
    summary="The pledgee consents to the holder's application to release its pledge",
)
def consent(
    application_id: str,
    principal: ApiPrincipal,
    db: DbDep,
    settings: SettingsDep,
    today: TodayDep,
) -> ApplicationPublic:
    issuer = services.issuer_for(settings)
    with db.write() as s:
        row = services.consent_to_release(s, principal, application_id, issuer=issuer, today=today)
        return _public(s, row)


@router.post(
    "/applications/{application_id}/lawsuit",
    response_model=ApplicationPublic,
    summary="Record the lawsuit that keeps an objection registration in force",
)
def lawsuit(
    application_id: str, body: LawsuitCreate, principal: ApiPrincipal, db: DbDep, today: TodayDep
) -> ApplicationPublic:
    with db.write() as s:
        row = services.record_objection_lawsuit(
            s, principal, application_id, reference=body.reference, today=today
        )
        return _public(s, row)


@router.post(
    "/applications/{application_id}/closure",
    response_model=ApplicationPublic,
    summary="The registrar closes an objection registration (substantiated or lifted)",
)
def close_objection(
    application_id: str,
    body: ObjectionRecordClose,
    principal: ApiPrincipal,
    db: DbDep,
    today: TodayDep,
) -> ApplicationPublic:
    with db.write() as s:
        row = services.close_objection_registration(
            s,
            principal,
            application_id,
            substantiated=body.substantiated,
            reason=body.reason,
            today=today,
        )
        return _public(s, row)


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
    "/certificates/{number}/pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "The certificate PDF"}},
    summary="The certificate as a PDF, with a QR code to its public verification page",
)
def certificate_pdf(
    number: str,
    request: Request,
    principal: ApiPrincipal,
    db: DbDep,
    settings: SettingsDep,
    today: TodayDep,
) -> Response:
    base_url = (settings.public_base_url or str(request.base_url)).rstrip("/")
    with db.read() as s:
        content = pdf.certificate_pdf(s, principal, number, base_url=base_url, today=today)
    # The number was checked by the service: normalised, it is safe in a header.
    filename = normalise_certificate_number(number)
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{filename}.pdf"'},
    )


# ------------------------------------------------------------------ the working-day calendar


class CalendarDayUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: Literal["holiday", "workday"] = Field(
        description="holiday: not a working day; workday: a working day (e.g. a make-up day)."
    )
    note: str = Field("", max_length=256, description="Why (e.g. the notice that says so).")


class CalendarDayPublic(BaseModel):
    day: date
    kind: str
    source: str = Field(description="file: the State Council's arrangement; override: an edit.")
    note: str
    note_en: str = ""

    @classmethod
    def of(cls, d: maintenance.CalendarDay) -> CalendarDayPublic:
        return cls(day=d.day, kind=d.kind, source=d.source, note=d.note, note_en=d.note_en)


class CalendarYearPublic(BaseModel):
    year: int
    covered: bool = Field(description="Whether the year's arrangement is entered (strict counts).")
    source: str
    working_days: int
    days: list[CalendarDayPublic]
    overrides: list[CalendarDayPublic]


class CalendarChangePublic(BaseModel):
    day: CalendarDayPublic | None
    removed: date | None
    affected: list[dict[str, Any]] = Field(
        description="Open applications whose due date or notice end is on or after the day: "
        "they keep the dates already set; periods counted from now on use the change."
    )

    @classmethod
    def of(cls, c: maintenance.CalendarChange) -> CalendarChangePublic:
        return cls(
            day=None if c.day is None else CalendarDayPublic.of(c.day),
            removed=c.removed,
            affected=list(c.affected),
        )


@router.get("/calendar", response_model=CalendarYearPublic, summary="The working-day calendar")
def calendar(
    principal: ApiPrincipal,
    db: DbDep,
    today: TodayDep,
    year: Annotated[int | None, Query(ge=maintenance.FIRST_YEAR, le=maintenance.LAST_YEAR)] = None,
) -> CalendarYearPublic:
    with db.read() as s:
        y = maintenance.calendar_year(s, principal, year or today.year)
    return CalendarYearPublic(
        year=y.year,
        covered=y.covered,
        source=y.source,
        working_days=y.working_days,
        days=[CalendarDayPublic.of(d) for d in y.days],
        overrides=[CalendarDayPublic.of(d) for d in y.overrides],
    )


@router.put(
    "/calendar/{day}",
    response_model=CalendarChangePublic,
    summary="Make a day a holiday or a working day (administrators; audited)",
)
def set_calendar_day(
    day: date, body: CalendarDayUpdate, principal: ApiPrincipal, db: DbDep
) -> CalendarChangePublic:
    with db.write() as s:
        change = maintenance.set_calendar_day(s, principal, day, kind=body.kind, note=body.note)
    return CalendarChangePublic.of(change)


@router.delete(
    "/calendar/{day}",
    response_model=CalendarChangePublic,
    summary="Remove a day's override (administrators; audited)",
)
def remove_calendar_day(day: date, principal: ApiPrincipal, db: DbDep) -> CalendarChangePublic:
    with db.write() as s:
        change = maintenance.remove_calendar_day(s, principal, day)
    return CalendarChangePublic.of(change)
