"""JSON routes of the inbox under ``/api/v1/notifications``: the caller's party's messages
(unread first, paged, in the caller's language) and marking one read. A message of another
party answers 404."""

from __future__ import annotations

from fastapi import APIRouter

from datafactor.inbox import services
from datafactor.inbox.schemas import NotificationPage, NotificationPublic
from datafactor.web.deps import ApiPrincipal, DbDep, PagingDep

router = APIRouter(prefix="/notifications", tags=["inbox"])


@router.get("", response_model=NotificationPage, summary="My party's notifications, unread first")
def notifications(
    principal: ApiPrincipal, db: DbDep, page: PagingDep, unread: bool = False
) -> NotificationPage:
    with db.read() as s:
        rows, total = services.list_messages(
            s, principal, limit=page.limit, offset=page.offset, unread_only=unread
        )
        return NotificationPage(
            items=[NotificationPublic.of(n) for n in rows],
            total=total,
            unread=services.unread_count(s, principal),
            limit=page.limit,
            offset=page.offset,
        )


@router.post(
    "/{message_id}/read", response_model=NotificationPublic, summary="Mark a notification read"
)
def read(message_id: str, principal: ApiPrincipal, db: DbDep) -> NotificationPublic:
    with db.write() as s:
        return NotificationPublic.of(services.mark_read(s, principal, message_id))
