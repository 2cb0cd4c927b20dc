"""Audit trail routes: the JSON API (``/api/v1/audit/events``) and the console page (``/audit``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from datafactor import audit
from datafactor.errors import N_, NotFound
from datafactor.permissions import Permission
from datafactor.web.deps import ApiPrincipal, DbDep, PagingDep, WebUser
from datafactor.web.forms import render

api_router = APIRouter(tags=["audit"])
views_router = APIRouter(include_in_schema=False)
PAGE = 25


class AuditEventPublic(BaseModel):
    seq: int
    occurred_at: datetime
    actor_username: str
    party_id: str | None
    action: str
    object_type: str
    object_id: str
    summary: str
    reasons: list[str]
    request_id: str
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, e: audit.AuditEvent) -> AuditEventPublic:
        return cls(
            seq=e.seq,
            occurred_at=e.occurred_at,
            actor_username=e.actor_username,
            party_id=e.party_id,
            action=e.action,
            object_type=e.object_type,
            object_id=e.object_id,
            summary=e.summary,
            reasons=list(e.reasons),
            request_id=e.request_id,
            prev_hash=e.prev_hash,
            hash=e.hash,
        )


class AuditPage(BaseModel):
    items: list[AuditEventPublic]
    total: int
    limit: int
    offset: int


Str64 = Annotated[str | None, Query(max_length=64)]


@api_router.get("/audit/events", response_model=AuditPage, summary="Audit events you may read")
def events(
    principal: ApiPrincipal,
    db: DbDep,
    page: PagingDep,
    action: Str64 = None,
    party_id: Str64 = None,
    object_id: Str64 = None,
    actor: Str64 = None,
) -> AuditPage:
    with db.read() as session:
        rows, total = audit.list_events(
            session,
            principal,
            audit.AuditFilter(action, party_id, object_id, actor),
            limit=page.limit,
            offset=page.offset,
        )
        return AuditPage(
            items=[AuditEventPublic.of(e) for e in rows],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )


@api_router.get("/audit/events/{seq}", response_model=AuditEventPublic, summary="One audit event")
def event(seq: int, principal: ApiPrincipal, db: DbDep) -> AuditEventPublic:
    with db.read() as session:
        found = audit.get_event(session, principal, seq)
        if found is None:
            raise NotFound(N_("No such audit event."))
        return AuditEventPublic.of(found)


@views_router.get("/audit")
def audit_page(
    request: Request,
    identity: WebUser,
    db: DbDep,
    action: Str64 = None,
    party_id: Str64 = None,
    object_id: Str64 = None,
    actor: Str64 = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
) -> Response:
    flt = audit.AuditFilter(action or None, party_id or None, object_id or None, actor or None)
    with db.read() as session:
        rows, total = audit.list_events(
            session, identity.principal, flt, limit=PAGE, offset=(page - 1) * PAGE
        )
    template = "audit_table.html" if request.headers.get("HX-Request") else "audit.html"
    return render(
        request,
        template,
        identity,
        events=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE)),
        flt=flt,
        read_all=identity.principal.can(Permission.AUDIT_EVENT_READ_ALL),
    )
