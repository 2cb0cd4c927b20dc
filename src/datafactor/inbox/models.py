"""The inbox table: one stored notification per receiving party.

A message is stored as an English msgid and its parameters, never as rendered text, so each
reader sees it in their own language at read time. ``dedupe_key`` is unique per party: a sender
that passes one (an expiry reminder, an overdue notice) can call ``notify`` again without the
party receiving the message twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from datafactor.db import ID, Base, UTCDateTime, new_id, utcnow


class InboxMessage(Base):
    """A notification to a party (市场主体): every member of the party sees it.

    ``read_at`` / ``read_by`` record the first member who marked it read; the read state belongs
    to the party, like the message (a notification is addressed to the party, not to a person).
    """

    __tablename__ = "inbox_message"
    __table_args__ = (
        UniqueConstraint("party_id", "dedupe_key"),
        Index("ix_inbox_message_party_unread", "party_id", "read_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    party_id: Mapped[str] = mapped_column(ForeignKey("party.id"))
    kind: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(String(512))
    params: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    link: Mapped[str | None] = mapped_column(String(512))
    dedupe_key: Mapped[str | None] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    read_by: Mapped[str | None] = mapped_column(ID)
