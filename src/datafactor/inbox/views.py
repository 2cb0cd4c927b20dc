"""HTML routes of the inbox: the notifications page with mark-read, and the unread badge.

The badge is a tiny partial the navigation bar loads with HTMX (``hx-trigger="load"``), so that
no other page has to count the party's unread messages before it renders.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from datafactor.errors import DomainError
from datafactor.inbox import services
from datafactor.inbox.schemas import NotificationPublic
from datafactor.web.deps import DbDep, MaybeWebUser, WebUser, check_csrf
from datafactor.web.forms import error_text, read_form, redirect, render

router = APIRouter(include_in_schema=False)
PAGE = 20


def _page(
    request: Request, identity: WebUser, db: DbDep, page: int, status: int = 200, **extra: object
) -> Response:
    principal = identity.principal
    with db.read() as s:
        rows, total = services.list_messages(s, principal, limit=PAGE, offset=(page - 1) * PAGE)
        unread = services.unread_count(s, principal)
    return render(
        request,
        "inbox/notifications.html",
        identity,
        status=status,
        items=[NotificationPublic.of(n) for n in rows],
        total=total,
        unread=unread,
        page=page,
        pages=max(1, -(-total // PAGE)),
        **extra,
    )


@router.get("/notifications")
def notifications(
    request: Request,
    identity: WebUser,
    db: DbDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    return _page(request, identity, db, page)


@router.post("/notifications/read-all")
async def read_all(request: Request, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    with db.write() as s:
        services.mark_all_read(s, identity.principal)
    return redirect("/notifications")


@router.post("/notifications/{message_id}/read")
async def read_one(request: Request, message_id: str, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        with db.write() as s:
            services.mark_read(s, identity.principal, message_id)
    except DomainError as exc:
        return _page(request, identity, db, 1, status=404, **error_text(exc))
    return redirect("/notifications")


@router.get("/notifications/badge")
def badge(request: Request, identity: MaybeWebUser, db: DbDep) -> Response:
    """The unread count for the navigation bar (empty when none, or when logged out)."""
    if identity is None:
        return HTMLResponse("")
    with db.read() as s:
        unread = services.unread_count(s, identity.principal)
    return render(request, "inbox/_badge.html", identity, unread=unread)
