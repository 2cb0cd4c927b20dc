"""HTML routes of the census: the list with the start form, a run's page with live progress and
its inventory, the Excel downloads, and the province's roll-up with its chart.

Thin shells over ``services`` (and the API module's ``start``/``resume``, which connect to the
department's database outside a transaction): read the form, check CSRF, call the use case,
render the page or the HTMX partial. A refused form re-renders with the message, never with the
URL the person typed (it may hold a password).

While a run is queued or running its page polls two partials with HTMX: the progress (every
second; when the run ends it answers ``HX-Refresh`` and the page reloads) and the inventory read
so far (every three seconds). Charts are inline SVG drawn by the templates: no script.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from datafactor import dataplane
from datafactor.census import services
from datafactor.census.api import resume, start, xlsx
from datafactor.census.domain import (
    DEPARTMENT_KIND,
    ENDED,
    GRADE_LABELS,
    GRADES,
    KIND_LABELS,
    MAX_SAMPLE_ROWS,
    STATUS_LABELS,
    TABLE_STATUS_LABELS,
    CensusStatus,
    Rollup,
)
from datafactor.census.schemas import CensusRunPublic, CensusTablePublic, TotalsPublic
from datafactor.errors import N_, DomainError, InvalidInput
from datafactor.identity import PartyQuery, PartyStatus, WebIdentity, list_parties
from datafactor.permissions import Permission
from datafactor.web.deps import DbDep, SettingsDep, WebUser, check_csrf
from datafactor.web.forms import error_text, read_form, redirect, render

router = APIRouter(include_in_schema=False)
PAGE = 20
TABLE_PAGE = 50

LABELS: dict[str, Any] = {
    "status_labels": STATUS_LABELS,
    "table_status_labels": TABLE_STATUS_LABELS,
    "kind_labels": KIND_LABELS,
    "grade_labels": GRADE_LABELS,
    "grades": GRADES,
    "domain_labels": dataplane.DOMAIN_LABELS,
}


def _error(exc: DomainError) -> dict[str, Any]:
    return dict(error_text(exc))


def _departments(session: Any, identity: WebIdentity) -> list[tuple[str, str]]:
    """The departments the user may census: every verified one for the bureau, else none."""
    if not identity.principal.can(Permission.CENSUS_RUN_START_ANY):
        return []
    rows, _ = list_parties(
        session,
        identity.principal,
        PartyQuery(status=PartyStatus.VERIFIED, kind=DEPARTMENT_KIND),
        limit=500,
        offset=0,
    )
    return sorted(((p.id, p.name) for p in rows), key=lambda item: item[1])


def _list_page(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    settings: Any,
    *,
    status_filter: str | None = None,
    party_filter: str | None = None,
    page: int = 1,
    status: int = 200,
    **extra: Any,
) -> Response:
    principal = identity.principal
    with db.read() as session:
        rows, total = services.list_runs(
            session,
            principal,
            services.RunQuery(party_id=party_filter, status=status_filter),
            limit=PAGE,
            offset=(page - 1) * PAGE,
        )
        items = [CensusRunPublic.of(r) for r in rows]
        departments = _departments(session, identity)
    own_department = principal.party_kind == DEPARTMENT_KIND and principal.can(
        Permission.CENSUS_RUN_START
    )
    return render(
        request,
        "census/runs.html",
        identity,
        status=status,
        items=items,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE)),
        status_filter=status_filter,
        party_filter=party_filter,
        departments=departments,
        can_start=own_department or bool(departments),
        own_department=own_department,
        default_sample_rows=settings.census_sample_rows,
        max_sample_rows=MAX_SAMPLE_ROWS,
        form=extra.pop("form", {}),
        **LABELS,
        **extra,
    )


@router.get("/census")
def runs(
    request: Request,
    identity: WebUser,
    db: DbDep,
    settings: SettingsDep,
    status: Annotated[str | None, Query(max_length=16)] = None,
    party_id: Annotated[str | None, Query(max_length=36)] = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
) -> Response:
    status = status if status in set(CensusStatus) else None
    return _list_page(
        request,
        identity,
        db,
        settings,
        status_filter=status,
        party_filter=party_id or None,
        page=page,
    )


def _sample_rows(text: str) -> int | None:
    text = (text or "").strip().replace(",", "")
    if not text:
        return None
    if not text.isdigit():
        raise InvalidInput(
            N_("Rows to sample per table: a whole number from 1 to {max:,}."),
            field="sample_rows",
            max=MAX_SAMPLE_ROWS,
        )
    return int(text)


@router.post("/census")
async def runs_create(
    request: Request, identity: WebUser, db: DbDep, settings: SettingsDep
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        census = services.CensusRequest(
            url=form.get("url", ""),
            party_id=form.get("party_id") or None,
            schema=form.get("schema") or None,
            sample_rows=_sample_rows(form.get("sample_rows", "")),
            domain=form.get("domain") or None,
        )
        run = await run_in_threadpool(start, db, identity.principal, settings, census)
    except DomainError as exc:
        # The URL may carry a password: it is never echoed back into the page.
        kept = {k: form.get(k, "") for k in ("party_id", "schema", "sample_rows", "domain")}
        return _list_page(
            request, identity, db, settings, status=exc.status, form=kept, **_error(exc)
        )
    return redirect(f"/census/{run.id}")


# ------------------------------------------------------------------------------------- roll-up


def _chart_rows(rollup: Rollup) -> list[dict[str, Any]]:
    """The roll-up chart's bars: per department, tables split by what they hold."""
    rows = []
    for department in rollup.departments:
        t = department.totals
        plain = max(0, t.tables - t.pi_tables - t.tables_failed)
        rows.append(
            {
                "label": department.party_name,
                "total": t.tables,
                "parts": [
                    ("sensitive", t.sensitive_tables),
                    ("pi", t.pi_tables - t.sensitive_tables),
                    ("none", plain),
                    ("failed", t.tables_failed),
                ],
            }
        )
    return rows


@router.get("/census/rollup")
def rollup_page(request: Request, identity: WebUser, db: DbDep) -> Response:
    with db.read() as session:
        rollup = services.rollup(session, identity.principal)
    return render(
        request,
        "census/rollup.html",
        identity,
        departments=[
            {
                "party_id": d.party_id,
                "party_name": d.party_name,
                "last_census_at": d.last_census_at,
                "databases": d.databases,
                "totals": TotalsPublic.of(d.totals),
            }
            for d in rollup.departments
        ],
        province=TotalsPublic.of(rollup.province),
        chart=_chart_rows(rollup),
        scale=max((d.totals.tables for d in rollup.departments), default=0),
        province_wide=identity.principal.can(Permission.CENSUS_INVENTORY_READ_ALL),
        **LABELS,
    )


@router.get("/census/rollup.xlsx")
def rollup_xlsx(identity: WebUser, db: DbDep) -> Response:
    with db.read() as session:
        return xlsx(*services.rollup_workbook(session, identity.principal))


# ------------------------------------------------------------------------------------ one run


def _inventory(db: DbDep, identity: WebIdentity, run_id: str, page: int) -> dict[str, Any]:
    with db.read() as session:
        rows, total = services.list_tables(
            session,
            identity.principal,
            run_id,
            limit=TABLE_PAGE,
            offset=(page - 1) * TABLE_PAGE,
        )
        run = CensusRunPublic.of(services.get_run(session, identity.principal, run_id))
    return {
        "run": run,
        "tables": [CensusTablePublic.of(e) for e in rows],
        "table_total": total,
        "table_page": page,
        "table_pages": max(1, -(-total // TABLE_PAGE)),
    }


def _run_page(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    run_id: str,
    *,
    page: int = 1,
    status: int = 200,
    **extra: Any,
) -> Response:
    principal = identity.principal
    with db.read() as session:
        found = services.get_run(session, principal, run_id)
        totals = TotalsPublic.of(services.run_totals(session, principal, run_id))
        can_change = services.can_change(principal, found)
        can_force = services.can_force(principal, found)
    ctx = _inventory(db, identity, run_id, page)
    return render(
        request,
        "census/run.html",
        identity,
        status=status,
        totals=totals,
        can_change=can_change,
        can_force=can_force,
        **ctx,
        **LABELS,
        **extra,
    )


@router.get("/census/{run_id}")
def run_detail(
    request: Request,
    run_id: str,
    identity: WebUser,
    db: DbDep,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
) -> Response:
    return _run_page(request, identity, db, run_id, page=page)


@router.get("/census/{run_id}/progress")
def run_progress(request: Request, run_id: str, identity: WebUser, db: DbDep) -> Response:
    """The progress partial HTMX polls; when the run has ended the page reloads to show it."""
    with db.read() as session:
        run = CensusRunPublic.of(services.get_run(session, identity.principal, run_id))
    response = render(request, "census/_progress.html", identity, run=run, **LABELS)
    if run.status in ENDED and request.headers.get("HX-Request"):
        response.headers["HX-Refresh"] = "true"
    return response


@router.get("/census/{run_id}/inventory")
def run_inventory(
    request: Request,
    run_id: str,
    identity: WebUser,
    db: DbDep,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
) -> Response:
    """The inventory partial (the tables read so far), polled while the run is active."""
    ctx = _inventory(db, identity, run_id, page)
    return render(request, "census/_inventory.html", identity, **ctx, **LABELS)


@router.get("/census/{run_id}/export.xlsx")
def run_xlsx(run_id: str, identity: WebUser, db: DbDep) -> Response:
    with db.read() as session:
        return xlsx(*services.run_workbook(session, identity.principal, run_id))


@router.post("/census/{run_id}/cancel")
async def run_cancel(request: Request, run_id: str, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        with db.write() as session:
            services.cancel_run(session, identity.principal, run_id)
    except DomainError as exc:
        return _run_page(request, identity, db, run_id, status=exc.status, **_error(exc))
    return redirect(f"/census/{run_id}")


@router.post("/census/{run_id}/resume")
async def run_resume(
    request: Request, run_id: str, identity: WebUser, db: DbDep, settings: SettingsDep
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        await run_in_threadpool(
            resume, db, identity.principal, settings, run_id, form.get("url") or None
        )
    except DomainError as exc:
        return _run_page(request, identity, db, run_id, status=exc.status, **_error(exc))
    return redirect(f"/census/{run_id}")


@router.post("/census/{run_id}/force-cancel")
async def run_force_cancel(request: Request, run_id: str, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        with db.write() as session:
            services.force_cancel_run(session, identity.principal, run_id, form.get("reason", ""))
    except DomainError as exc:
        return _run_page(request, identity, db, run_id, status=exc.status, **_error(exc))
    return redirect(f"/census/{run_id}")
