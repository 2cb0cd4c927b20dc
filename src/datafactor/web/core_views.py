"""The console's own pages: the dashboard and the language switch."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from datafactor import audit
from datafactor.identity import get_party, party_counts
from datafactor.identity.domain import KIND_LABELS, ROLE_LABELS, STATUS_LABELS
from datafactor.permissions import Permission
from datafactor.web.deps import LANG_COOKIE, DbDep, SettingsDep, WebUser
from datafactor.web.forms import redirect, render, safe_next
from datafactor.web.i18n import LOCALES

router = APIRouter(include_in_schema=False)


@router.get("/")
def dashboard(request: Request, identity: WebUser, db: DbDep) -> Response:
    principal = identity.principal
    with db.read() as session:
        party = get_party(session, principal, principal.party_id)
        counts = party_counts(session, principal)
        recent: list[audit.AuditEvent] = []
        if principal.can(Permission.AUDIT_EVENT_READ) or principal.can(
            Permission.AUDIT_EVENT_READ_ALL
        ):
            recent, _ = audit.list_events(
                session, principal, audit.AuditFilter(), limit=8, offset=0
            )
    return render(
        request,
        "dashboard.html",
        identity,
        party=party,
        counts=counts,
        recent=recent,
        kind_labels=KIND_LABELS,
        status_labels=STATUS_LABELS,
        role_labels=ROLE_LABELS,
    )


@router.get("/lang/{locale}")
def switch_language(
    locale: str, settings: SettingsDep, next: Annotated[str | None, Query(max_length=512)] = None
) -> Response:
    response = redirect(safe_next(next))
    if locale in LOCALES:
        response.set_cookie(
            LANG_COOKIE,
            locale,
            max_age=365 * 24 * 3600,
            samesite="lax",
            secure=settings.cookie_secure,
            httponly=True,
            path="/",
        )
    return response
