"""The inbox's use cases: store notifications for parties, list them, mark them read.

``notify`` is what other domains call, inside the transaction of the change they report: the
messages are stored with the change and become visible only when it commits — a rolled-back
change tells nobody anything (the "notify after commit" rule, kept by the database instead of a
queue). A message is an English msgid with string parameters; it is translated when read, in the
reader's language. A parameter whose name ends in ``_label`` holds a msgid itself (a right kind,
a status), so it is translated too; every other parameter is shown as it is (ids, numbers, dates,
a registrar's reason).

The inbox belongs to the party: every member reads the party's messages, and marking one read
marks it for the whole party (a notification is addressed to a party, like a letter to a firm).
Reads are not audited — they change no object of record — but who marked a message read, and
when, is kept on the message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datafactor.db import new_id, utcnow
from datafactor.errors import N_, InvalidInput, NotFound
from datafactor.fastsql import Raw, Rows
from datafactor.inbox.models import InboxMessage
from datafactor.permissions import Principal

MSG_NO_MESSAGE: Final = N_("No such notification.")
MSG_BAD_PARAM: Final = N_("A notification parameter must be text: {name} is not.")
MAX_PARAM_CHARS: Final = 512
_INSERT_MESSAGES: Final = Rows(
    cast(Table, InboxMessage.__table__),
    (
        "id",
        "party_id",
        "kind",
        "message",
        "params",
        "link",
        "dedupe_key",
        "created_at",
        "read_at",
        "read_by",
    ),
)


@dataclass(frozen=True)
class Notification:
    """A stored message as its reader sees it (the text is translated by the entry point)."""

    id: str
    kind: str
    message: str
    params: Mapping[str, str]
    link: str | None
    created_at: datetime
    read_at: datetime | None


def _public(row: InboxMessage) -> Notification:
    return Notification(
        id=row.id,
        kind=row.kind,
        message=row.message,
        params=dict(row.params or {}),
        link=row.link,
        created_at=row.created_at,
        read_at=row.read_at,
    )


def notify(
    session: Session,
    party_ids: Iterable[str],
    *,
    kind: str,
    message: str,
    params: Mapping[str, str],
    link: str | None = None,
    dedupe_key: str | None = None,
) -> int:
    """Store ``message`` (an ``N_`` msgid) once for each party, in the caller's transaction.

    With ``dedupe_key`` a party that already has a message under that key gets nothing new (the
    daily sweep's reminders and overdue notices are sent once however often it runs). Returns how
    many messages were stored.
    """
    for name, value in params.items():
        if not isinstance(value, str):
            raise InvalidInput(MSG_BAD_PARAM, field="params", name=name)
    clean = {k: v[:MAX_PARAM_CHARS] for k, v in params.items()}
    parties = sorted(set(party_ids))
    if not parties:
        return 0
    if dedupe_key is not None:
        seen = set(
            session.scalars(
                select(InboxMessage.party_id).where(
                    InboxMessage.party_id.in_(parties), InboxMessage.dedupe_key == dedupe_key
                )
            )
        )
        parties = [p for p in parties if p not in seen]
    stored = 0
    now = utcnow()
    if dedupe_key is None:
        # Every trade tells its parties: one compiled statement for all of them (``fastsql``),
        # after the session's pending changes, as the flush below would have written them.
        return notify_all(
            session,
            [Note(parties, kind=kind, message=message, params=params, link=link, at=now)],
        )
    for party_id in parties:
        row = InboxMessage(
            id=new_id(),
            party_id=party_id,
            kind=kind,
            message=message,
            params=clean,
            link=link,
            dedupe_key=dedupe_key,
            created_at=now,
        )
        # A concurrent sender may have stored the same key since the check above: the unique
        # (party, key) constraint decides, and only this one insert is rolled back.
        try:
            with session.begin_nested():
                session.add(row)
            stored += 1
        except IntegrityError:
            pass
    session.flush()
    return stored


@dataclass(frozen=True)
class Note:
    """One message for ``notify_all``: ``notify``'s arguments (without a dedupe key), and when
    it was written."""

    party_ids: Iterable[str]
    kind: str
    message: str
    params: Mapping[str, str]
    link: str | None = None
    at: datetime | None = None  # now when None


def notify_all(
    session: Session,
    notes: Sequence[Note],
    *,
    together: Sequence[tuple[Rows, Sequence[Mapping[str, Any]]]] = (),
) -> int:
    """``notify`` for several messages at once (a use case that tells different parties
    different things), in one statement; returns how many were stored. ``together``: rows of
    the caller's own tables written at the same moment (``Raw.insert_all``: one statement with
    the messages on PostgreSQL, those first on SQLite)."""
    rows: list[dict[str, Any]] = []
    for note in notes:
        for name, value in note.params.items():
            if not isinstance(value, str):
                raise InvalidInput(MSG_BAD_PARAM, field="params", name=name)
        clean = {k: v[:MAX_PARAM_CHARS] for k, v in note.params.items()}
        at = note.at or utcnow()
        rows.extend(
            {
                "id": new_id(),
                "party_id": party_id,
                "kind": note.kind,
                "message": note.message,
                "params": clean,
                "link": note.link,
                "dedupe_key": None,
                "created_at": at,
                "read_at": None,
                "read_by": None,
            }
            for party_id in sorted(set(note.party_ids))
        )
    Raw.of(session).insert_all([*together, (_INSERT_MESSAGES, rows)])
    return len(rows)


def list_messages(
    session: Session, principal: Principal, *, limit: int, offset: int, unread_only: bool = False
) -> tuple[list[Notification], int]:
    """The principal's party's messages, unread first, then newest first."""
    where = [InboxMessage.party_id == principal.party_id]
    if unread_only:
        where.append(InboxMessage.read_at.is_(None))
    total = session.scalar(select(func.count()).select_from(InboxMessage).where(*where)) or 0
    rows = session.scalars(
        select(InboxMessage)
        .where(*where)
        .order_by(
            InboxMessage.read_at.is_not(None),
            InboxMessage.created_at.desc(),
            InboxMessage.id,
        )
        .limit(limit)
        .offset(offset)
    )
    return [_public(r) for r in rows], total


def unread_count(session: Session, principal: Principal) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(InboxMessage)
            .where(InboxMessage.party_id == principal.party_id, InboxMessage.read_at.is_(None))
        )
        or 0
    )


def mark_read(session: Session, principal: Principal, message_id: str) -> Notification:
    """Mark one of the party's messages read (already read: unchanged). Another party's id is
    not found, never forbidden: ids reveal nothing across tenants."""
    row = session.get(InboxMessage, message_id, with_for_update=True)
    if row is None or row.party_id != principal.party_id:
        raise NotFound(MSG_NO_MESSAGE)
    if row.read_at is None:
        row.read_at = utcnow()
        row.read_by = principal.user_id
        session.flush()
    return _public(row)


def mark_all_read(session: Session, principal: Principal) -> int:
    """Mark every unread message of the party read; returns how many."""
    result = session.execute(
        update(InboxMessage)
        .where(InboxMessage.party_id == principal.party_id, InboxMessage.read_at.is_(None))
        .values(read_at=utcnow(), read_by=principal.user_id)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
