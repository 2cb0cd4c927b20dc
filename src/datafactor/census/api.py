"""JSON routes of the census under ``/api/v1``: parse, call the services, answer.

Starting a census connects to the department's database first (outside any transaction), so an
unreachable database or a wrong password is refused at once — 502 problem+json naming the
database with its password hidden — rather than discovered by the runner later. The inventory
downloads as an Excel workbook (``/census/{id}/export.xlsx``); the roll-up of the departments'
current inventories, with the province's total, is ``/census/rollup`` (and ``rollup.xlsx``).

The router's lifespan runs this process's census runner (``jobs.CensusRunner``) unless
``DATAFACTOR_CENSUS_RUNNER`` says otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from datafactor import dataplane
from datafactor.census import export, jobs, services
from datafactor.census.domain import CensusStatus, TableStatus
from datafactor.census.models import CensusRun
from datafactor.census.schemas import (
    CensusCreate,
    CensusResume,
    CensusRunPublic,
    CensusSummary,
    CensusTablePublic,
    ForceCancel,
    RollupPublic,
    TotalsPublic,
)
from datafactor.db import Database
from datafactor.permissions import Principal
from datafactor.settings import Settings
from datafactor.web.deps import ApiPrincipal, DbDep, PagingDep, SettingsDep

Page = dataplane.Page
XLSX_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {export.MEDIA_TYPE: {}}, "description": "An Excel workbook (.xlsx)."}
}


@asynccontextmanager
async def census_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the process's census runner while the application is up."""
    runner = None
    if jobs.runner_enabled(app.state.settings):
        runner = jobs.CensusRunner(app.state.db, app.state.settings).start()
    app.state.census_runner = runner
    try:
        yield
    finally:
        if runner is not None:
            await run_in_threadpool(runner.stop)


router = APIRouter(tags=["census"], lifespan=census_lifespan)


# ------------------------------------------------------------------ flows shared with the views


def start(
    db: Database, principal: Principal, settings: Settings, request: services.CensusRequest
) -> CensusRun:
    """Check the database answers, then queue the census (blocking: run in a thread)."""
    with db.read() as session:
        services.authorize_start(session, principal, request.party_id)
    services.check_request(request, settings.census_sample_rows)
    services.check_source(
        request.url, allow_sqlite=settings.source_allow_sqlite, schema=request.schema
    )
    with db.write() as session:
        run = services.start_census(
            session,
            principal,
            request,
            secret_key=settings.secret_key,
            allow_sqlite=settings.source_allow_sqlite,
            default_sample_rows=settings.census_sample_rows,
        )
        return run


def resume(
    db: Database, principal: Principal, settings: Settings, run_id: str, url: str | None
) -> CensusRun:
    """Put a failed or cancelled census back in the queue (checks a new URL answers first)."""
    if url:
        with db.read() as session:
            services.authorize_change(session, principal, run_id)
        services.check_source(url, allow_sqlite=settings.source_allow_sqlite)
    with db.write() as session:
        run = services.resume_run(
            session,
            principal,
            run_id,
            secret_key=settings.secret_key,
            allow_sqlite=settings.source_allow_sqlite,
            url=url,
        )
        return run


def xlsx(filename: str, data: bytes) -> Response:
    # RFC 6266: an ASCII fallback and the UTF-8 name.
    disposition = f"attachment; filename=\"{filename}\"; filename*=UTF-8''{quote(filename)}"
    return Response(
        data, media_type=export.MEDIA_TYPE, headers={"Content-Disposition": disposition}
    )


# ---------------------------------------------------------------------------------------- routes


@router.get("/census", response_model=Page[CensusRunPublic], summary="Census runs, newest first")
def runs(
    principal: ApiPrincipal,
    db: DbDep,
    page: PagingDep,
    party_id: Annotated[str | None, Query(max_length=36, description="The department")] = None,
    status: Annotated[CensusStatus | None, Query()] = None,
) -> Page[CensusRunPublic]:
    with db.read() as session:
        rows, total = services.list_runs(
            session,
            principal,
            services.RunQuery(party_id, status),
            limit=page.limit,
            offset=page.offset,
        )
        return Page(
            items=[CensusRunPublic.of(r) for r in rows],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )


@router.post(
    "/census",
    response_model=CensusRunPublic,
    status_code=201,
    summary="Start a census of a department's database (connects to check it first)",
)
def create(
    body: CensusCreate, principal: ApiPrincipal, db: DbDep, settings: SettingsDep
) -> CensusRunPublic:
    request = services.CensusRequest(
        url=body.url,
        party_id=body.party_id,
        schema=body.schema_name,
        sample_rows=body.sample_rows,
        domain=body.domain,
    )
    return CensusRunPublic.of(start(db, principal, settings, request))


@router.get(
    "/census/rollup",
    response_model=RollupPublic,
    summary="Current inventories per department and the province's total",
)
def rollup(principal: ApiPrincipal, db: DbDep) -> RollupPublic:
    with db.read() as session:
        return RollupPublic.of(services.rollup(session, principal))


@router.get(
    "/census/rollup.xlsx",
    response_class=Response,
    responses=XLSX_RESPONSES,
    summary="The roll-up and every current table as an Excel workbook",
)
def rollup_xlsx(principal: ApiPrincipal, db: DbDep) -> Response:
    with db.read() as session:
        return xlsx(*services.rollup_workbook(session, principal))


@router.get(
    "/census/{run_id}", response_model=CensusSummary, summary="One census: progress and figures"
)
def run(run_id: str, principal: ApiPrincipal, db: DbDep) -> CensusSummary:
    with db.read() as session:
        found = services.get_run(session, principal, run_id)
        totals = services.run_totals(session, principal, run_id)
        return CensusSummary(run=CensusRunPublic.of(found), totals=TotalsPublic.of(totals))


@router.get(
    "/census/{run_id}/tables",
    response_model=Page[CensusTablePublic],
    summary="A census's inventory: one entry per table or view, in listing order",
)
def tables(
    run_id: str,
    principal: ApiPrincipal,
    db: DbDep,
    page: PagingDep,
    status: Annotated[TableStatus | None, Query()] = None,
) -> Page[CensusTablePublic]:
    with db.read() as session:
        rows, total = services.list_tables(
            session, principal, run_id, limit=page.limit, offset=page.offset, status=status
        )
        return Page(
            items=[CensusTablePublic.of(e) for e in rows],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )


@router.get(
    "/census/{run_id}/export.xlsx",
    response_class=Response,
    responses=XLSX_RESPONSES,
    summary="A census's inventory as an Excel workbook (summary, tables, columns)",
)
def run_xlsx(run_id: str, principal: ApiPrincipal, db: DbDep) -> Response:
    with db.read() as session:
        return xlsx(*services.run_workbook(session, principal, run_id))


@router.post("/census/{run_id}/cancel", response_model=CensusRunPublic, summary="Cancel a census")
def cancel(run_id: str, principal: ApiPrincipal, db: DbDep) -> CensusRunPublic:
    with db.write() as session:
        return CensusRunPublic.of(services.cancel_run(session, principal, run_id))


@router.post(
    "/census/{run_id}/resume",
    response_model=CensusRunPublic,
    summary="Resume a failed or cancelled census where it stopped",
)
def resume_route(
    run_id: str,
    principal: ApiPrincipal,
    db: DbDep,
    settings: SettingsDep,
    body: CensusResume | None = None,
) -> CensusRunPublic:
    return CensusRunPublic.of(
        resume(db, principal, settings, run_id, body.url if body is not None else None)
    )


@router.post(
    "/census/{run_id}/force-cancel",
    response_model=CensusRunPublic,
    summary="End a census at once, whatever its runner does (administrators; audited)",
)
def force_cancel(
    run_id: str, body: ForceCancel, principal: ApiPrincipal, db: DbDep
) -> CensusRunPublic:
    with db.write() as session:
        return CensusRunPublic.of(
            services.force_cancel_run(session, principal, run_id, body.reason)
        )
