"""API shapes of the inbox: a notification as its reader sees it, in the reader's language."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from datafactor.inbox.services import Notification
from datafactor.web.i18n import gettext

LABEL_SUFFIX = "_label"


def message_text(notification: Notification) -> str:
    """The message in the current request's language: the msgid translated, then its parameters
    filled in (a ``*_label`` parameter is a msgid itself and is translated first)."""
    params = {
        key: gettext(value) if key.endswith(LABEL_SUFFIX) and value else value
        for key, value in notification.params.items()
    }
    return gettext(notification.message, **params)


class NotificationPublic(BaseModel):
    id: str
    kind: str = Field(description="What the message is about, e.g. registry.rights.")
    text: str = Field(description="The message in the reader's language.")
    message: str = Field(description="The message id (English) the text was translated from.")
    params: dict[str, str]
    link: str | None = Field(description="Where to look (a console path), if anywhere.")
    created_at: datetime
    read_at: datetime | None
    read: bool

    @classmethod
    def of(cls, n: Notification) -> NotificationPublic:
        return cls(
            id=n.id,
            kind=n.kind,
            text=message_text(n),
            message=n.message,
            params=dict(n.params),
            link=n.link,
            created_at=n.created_at,
            read_at=n.read_at,
            read=n.read_at is not None,
        )


class NotificationPage(BaseModel):
    items: list[NotificationPublic]
    total: int
    unread: int
    limit: int
    offset: int
