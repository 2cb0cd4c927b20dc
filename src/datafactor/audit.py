"""The audit trail: one hash-chained event per state change, written in the change's transaction.

Each event's hash covers its own fields and the previous event's hash, so editing, deleting or
re-ordering any stored event breaks the chain from that point on; ``verify_chain`` re-derives every
hash and names the first event that does not match. The chain head lives in a one-row table that
writers lock (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite writers already hold the database write
lock from ``BEGIN IMMEDIATE``), so concurrent writers append one after another without forking the
chain. Truncation of the tail is caught by comparing the head row with the last event; the head
itself is anchored in the transparency ledger so that a wholesale rewrite is caught too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from datafactor import context
from datafactor.db import ID, Base, UTCDateTime, utcnow
from datafactor.errors import N_, Forbidden
from datafactor.fastsql import Plan, Raw, Rows
from datafactor.permissions import Permission, Principal

GENESIS_HASH = "0" * 64

# Human labels of action tags (English msgids), contributed by each domain at import time, so the
# audit pages can show "认证市场主体" next to ``identity:party:verify``.
ACTION_LABELS: dict[str, str] = {}


def register_action_labels(labels: dict[str, str]) -> None:
    ACTION_LABELS.update(labels)


class AuditEvent(Base):
    """One state change: who did what to which object, why, and the hash linking it to the chain."""

    __tablename__ = "audit_event"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor_user_id: Mapped[str | None] = mapped_column(ID)
    actor_username: Mapped[str] = mapped_column(String(64))
    party_id: Mapped[str | None] = mapped_column(ID, index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64), index=True)
    summary: Mapped[str] = mapped_column(Text)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    request_id: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditChainHead(Base):
    """The single row holding the chain's last sequence number and hash (the writers' lock)."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


def event_hash(fields: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of an event's fields (which include ``prev_hash``)."""
    material = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def _hashed_fields(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "occurred_at": event.occurred_at.isoformat(),
        "actor_user_id": event.actor_user_id,
        "actor_username": event.actor_username,
        "party_id": event.party_id,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "summary": event.summary,
        "reasons": list(event.reasons),
        "request_id": event.request_id,
        "prev_hash": event.prev_hash,
    }


def record(
    session: Session,
    *,
    actor: Principal | None,
    action: str,
    object_type: str,
    object_id: str,
    summary: str,
    party_id: str | None,
    reasons: Sequence[str] = (),
    actor_name: str | None = None,
) -> AuditEvent:
    """Append one event to the chain inside the caller's transaction."""
    return record_many(
        session,
        [
            {
                "actor": actor,
                "action": action,
                "object_type": object_type,
                "object_id": object_id,
                "summary": summary,
                "party_id": party_id,
                "reasons": reasons,
                "actor_name": actor_name,
            }
        ],
    )[0]


_HEAD = cast(Table, AuditChainHead.__table__)
_EVENT = cast(Table, AuditEvent.__table__)
# The chain's statements, compiled once (``fastsql``): every writer of the platform runs them.
_LOCK_HEAD: Final = Plan(select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update())
_WRITE_HEAD: Final = Plan(
    update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(seq=bindparam("head_seq"), hash=bindparam("head_hash"))
)
_EVENT_COLUMNS: Final = (
    "seq",
    "occurred_at",
    "actor_user_id",
    "actor_username",
    "party_id",
    "action",
    "object_type",
    "object_id",
    "summary",
    "reasons",
    "request_id",
    "prev_hash",
    "hash",
)
_INSERT_EVENTS: Final = Rows(_EVENT, _EVENT_COLUMNS)
# PostgreSQL: the events and the head written by one statement (the head's update a CTE).
_INSERT_EVENTS_AND_HEAD: Final = Rows(
    _EVENT,
    _EVENT_COLUMNS,
    head=update(_HEAD)
    .where(_HEAD.c.id == 1)
    .values(seq=bindparam("head_seq"), hash=bindparam("head_hash"))
    .cte("chain_head"),
)


def record_many(session: Session, records: Sequence[Mapping[str, Any]]) -> list[AuditEvent]:
    """``append`` returning the events written (not attached to the session)."""
    return [AuditEvent(**row) for row in _append(session, records)]


def append(session: Session, records: Sequence[Mapping[str, Any]]) -> None:
    """Append several events (each the keyword arguments of ``record``) in one go: the chain's
    head is locked and read once, the events inserted together, the head written once — three
    statements however many events (two on PostgreSQL, where the insert writes the head too),
    which matters because every writer queues on the head.

    The statements run as compiled Core statements (``fastsql``) after the session's pending
    changes are flushed, so the head is still the last lock the transaction takes."""
    _append(session, records)


def _append(session: Session, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if not records:
        return []
    raw = Raw.of(session)
    # The head row is created by the first migration; locking it serialises writers.
    if raw.is_sqlite:
        # No row locks on SQLite (writers hold the database's lock): the head is read through
        # the session, where what watches the ORM's locking selects (the lock-order tests)
        # sees it taken.
        found = session.execute(cast(Any, _LOCK_HEAD.statement)).first()
        head = None if found is None else tuple(found)
    else:
        head = raw.first(_LOCK_HEAD)
    if head is None:
        raise RuntimeError("the audit chain's head row is missing (run the migrations)")
    request_id = context.request_id.get()
    # Microseconds survive both databases; anything finer would not, and would break the hash.
    now = utcnow()
    occurred = now.isoformat()
    seq, prev = int(head[0]), str(head[1])
    rows: list[dict[str, Any]] = []
    for r in records:
        actor: Principal | None = r.get("actor")
        seq += 1
        fields = {
            "seq": seq,
            "occurred_at": occurred,
            "actor_user_id": actor.user_id if actor else None,
            "actor_username": actor.username if actor else (r.get("actor_name") or "system"),
            "party_id": r["party_id"],
            "action": r["action"],
            "object_type": r["object_type"],
            "object_id": r["object_id"],
            "summary": r["summary"],
            "reasons": list(r.get("reasons") or ()),
            "request_id": request_id,
            "prev_hash": prev,
        }
        prev = event_hash(fields)  # the same fields ``_hashed_fields`` reads back
        fields["occurred_at"] = now
        fields["hash"] = prev
        rows.append(fields)
    written = {"head_seq": seq, "head_hash": prev}
    if raw.is_sqlite or len(rows) > Rows.MAX_ROWS:
        # A large batch goes in row by row (a statement has at most 65,535 parameters on
        # PostgreSQL, and one statement per row count would be compiled).
        raw.insert(_INSERT_EVENTS, rows)
        raw.execute(_WRITE_HEAD, written)
    else:
        raw.insert(_INSERT_EVENTS_AND_HEAD, rows, written)
    return rows


@dataclass(frozen=True)
class ChainReport:
    """The outcome of re-checking the chain: ``ok`` or the first broken event and why."""

    ok: bool
    events: int
    head_seq: int
    head_hash: str
    broken_seq: int | None = None
    problem: str | None = None


def verify_chain(session: Session, batch: int = 5000) -> ChainReport:
    """Re-derive every event hash in order; name the first event that breaks the chain."""
    prev_hash, expected_seq, count = GENESIS_HASH, 1, 0
    # Keyset pages rather than one long cursor: bounded memory, no server-side cursor to leak.
    while True:
        page = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.seq >= expected_seq)
            .order_by(AuditEvent.seq)
            .limit(batch)
        ).all()
        for event in page:
            count += 1
            if event.seq != expected_seq:
                problem = f"event {expected_seq} is missing (next stored is {event.seq})"
                return ChainReport(False, count, expected_seq - 1, prev_hash, expected_seq, problem)
            if event.prev_hash != prev_hash:
                problem = "its prev_hash does not match the previous event's hash"
                return ChainReport(False, count, event.seq, prev_hash, event.seq, problem)
            if event_hash(_hashed_fields(event)) != event.hash:
                problem = "its content does not match its hash (the event was altered)"
                return ChainReport(False, count, event.seq, prev_hash, event.seq, problem)
            prev_hash, expected_seq = event.hash, expected_seq + 1
        session.expunge_all()
        if len(page) < batch:
            break
    head = session.get(AuditChainHead, 1)
    last_seq = expected_seq - 1
    if head is not None and (head.seq != last_seq or head.hash != prev_hash):
        return ChainReport(
            False,
            count,
            last_seq,
            prev_hash,
            last_seq + 1,
            f"the chain head says {head.seq} events but {last_seq} are stored "
            "(events were removed from the end)",
        )
    return ChainReport(True, count, last_seq, prev_hash)


def require_audit_read(principal: Principal) -> None:
    if not (
        principal.can(Permission.AUDIT_EVENT_READ) or principal.can(Permission.AUDIT_EVENT_READ_ALL)
    ):
        raise Forbidden(N_("Your role does not include reading the audit trail."))


@dataclass(frozen=True)
class AuditFilter:
    action: str | None = None
    party_id: str | None = None
    object_id: str | None = None
    actor: str | None = None


def list_events(
    session: Session, principal: Principal, flt: AuditFilter, *, limit: int, offset: int
) -> tuple[list[AuditEvent], int]:
    """Events the principal may read, newest first, with the total count for paging."""
    require_audit_read(principal)
    stmt = select(AuditEvent)
    if not principal.can(Permission.AUDIT_EVENT_READ_ALL):
        stmt = stmt.where(AuditEvent.party_id == principal.party_id)
    elif flt.party_id:
        stmt = stmt.where(AuditEvent.party_id == flt.party_id)
    if flt.action:
        stmt = stmt.where(AuditEvent.action.startswith(flt.action, autoescape=True))
    if flt.object_id:
        stmt = stmt.where(AuditEvent.object_id == flt.object_id)
    if flt.actor:
        stmt = stmt.where(AuditEvent.actor_username == flt.actor)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(AuditEvent.seq.desc()).limit(limit).offset(offset))
    return list(rows), total


def get_event(session: Session, principal: Principal, seq: int) -> AuditEvent | None:
    """One event, if the principal may read it."""
    require_audit_read(principal)
    event = session.get(AuditEvent, seq)
    if event is None:
        return None
    if principal.can(Permission.AUDIT_EVENT_READ_ALL) or event.party_id == principal.party_id:
        return event
    return None
