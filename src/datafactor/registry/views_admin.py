"""HTML routes of the working-day calendar's administration: ``/registry/calendar``.

A month grid of the calendar the registry counts deadlines with — weekends, the State Council's
holidays and make-up days, and the administrator's overrides — with a form to make a day a
holiday or a working day and a button to remove an override. Registrars see it; administrators
(``registry:calendar:manage``) change it. A change answers with the open applications whose
dates lie on or after the day: they keep the dates already set (``maintenance``'s docstring).
"""

from __future__ import annotations

import calendar as monthcal
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from datafactor.db import today_cn
from datafactor.errors import N_, DomainError, InvalidInput
from datafactor.permissions import Permission
from datafactor.registry import maintenance
from datafactor.web.deps import DbDep, WebUser, check_csrf
from datafactor.web.forms import error_text, read_form, render

router = APIRouter(include_in_schema=False)

MSG_BAD_DATE = N_("Enter the day as a date like 2026-10-01.")
WEEKDAYS = (
    N_("Mon"),
    N_("Tue"),
    N_("Wed"),
    N_("Thu"),
    N_("Fri"),
    N_("Sat"),
    N_("Sun"),
)


def _grid(year: maintenance.CalendarYear, month: int, today: date) -> list[list[dict[str, Any]]]:
    special = {d.day: d for d in year.days}
    weeks = []
    for week in monthcal.Calendar(firstweekday=0).monthdatescalendar(year.year, month):
        row = []
        for day in week:
            entry = special.get(day)
            row.append(
                {
                    "day": day,
                    "in_month": day.month == month,
                    "working": year.is_working_day(day),
                    "special": entry,
                    "today": day == today,
                }
            )
        weeks.append(row)
    return weeks


def _page(
    request: Request,
    identity: WebUser,
    db: DbDep,
    year: int,
    month: int,
    *,
    status: int = 200,
    **extra: Any,
) -> Response:
    today = today_cn()
    with db.read() as s:
        cal = maintenance.calendar_year(s, identity.principal, year)
    previous = (year, month - 1) if month > 1 else (year - 1, 12)
    following = (year, month + 1) if month < 12 else (year + 1, 1)
    return render(
        request,
        "registry/calendar.html",
        identity,
        status=status,
        cal=cal,
        month=month,
        weeks=_grid(cal, month, today),
        weekdays=WEEKDAYS,
        previous=previous if previous[0] >= maintenance.FIRST_YEAR else None,
        following=following if following[0] <= maintenance.LAST_YEAR else None,
        can_manage=identity.principal.can(Permission.REGISTRY_CALENDAR_MANAGE),
        form=extra.pop("form", {}),
        **extra,
    )


@router.get("/registry/calendar")
def calendar_page(
    request: Request,
    identity: WebUser,
    db: DbDep,
    year: Annotated[int | None, Query(ge=maintenance.FIRST_YEAR, le=maintenance.LAST_YEAR)] = None,
    month: Annotated[int | None, Query(ge=1, le=12)] = None,
) -> Response:
    today = today_cn()
    return _page(request, identity, db, year or today.year, month or today.month)


def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(MSG_BAD_DATE, field="day") from None


@router.post("/registry/calendar")
async def calendar_set(request: Request, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    today = today_cn()
    try:
        day = _parse_day(form.get("day", ""))
        with db.write() as s:
            change = maintenance.set_calendar_day(
                s, identity.principal, day, kind=form.get("kind", ""), note=form.get("note", "")
            )
    except DomainError as exc:
        return _page(
            request,
            identity,
            db,
            today.year,
            today.month,
            status=403 if exc.status == 403 else 422,
            form=form,
            **error_text(exc),
        )
    return _page(request, identity, db, day.year, day.month, change=change)


@router.post("/registry/calendar/{day}/delete")
async def calendar_remove(request: Request, day: date, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        with db.write() as s:
            change = maintenance.remove_calendar_day(s, identity.principal, day)
    except DomainError as exc:
        return _page(
            request, identity, db, day.year, day.month, status=exc.status, **error_text(exc)
        )
    return _page(request, identity, db, day.year, day.month, change=change)
