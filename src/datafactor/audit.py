"""The audit trail: one hash-chained event per state change, written in the change's transaction.

Each event's hash covers its own fields and the previous event's hash in its chain, so editing,
deleting or re-ordering any stored event breaks the chain from that point on; ``verify_chain``
re-derives every hash and names the first event that does not match. A chain's head (its last
position and hash) is a row of ``audit_chain_head`` that writers lock (``SELECT … FOR UPDATE`` on
PostgreSQL; SQLite writers already hold the database write lock from ``BEGIN IMMEDIATE``), so
concurrent writers of a chain append one after another without forking it. Truncation of a
chain's tail is caught by comparing its head row with its last event; the heads themselves are
anchored in the transparency ledger so that a wholesale rewrite is caught too.

SQLite writes one chain (chain 1): its writers run one at a time anyway. On PostgreSQL a head
locked by every writer until its commit — through the commit's WAL flush — made every state
change of the platform wait for the one before it, so there are ``CHAINS`` chains: a transaction
appends all its events to one chain, picked at random when it first records one, and writers on
different chains do not wait for each other. An event's ``seq`` is its place in the whole trail
(from a sequence on PostgreSQL, drawn under the chain's lock; the order the trail is listed in),
``chain`` and ``chain_seq`` its place in its chain (1, 2, 3, … with no gaps).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Integer,
    Sequence,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
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
# PostgreSQL's chains (their head rows are made by the migrations); SQLite writes chain 1.
CHAINS: Final = 8
_SEQ_NAME: Final = "audit_event_seq"

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
    chain: Mapped[int] = mapped_column(SmallInteger, default=1)
    chain_seq: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("chain", "chain_seq"),)


class AuditChainHead(Base):
    """A chain's head (``id`` is the chain): its last position ``seq`` and hash (the writers'
    lock), and the ``seq`` in the whole trail of its last event (``event_seq``)."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    event_seq: Mapped[int] = mapped_column(BigInteger, default=0)


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
    reasons: Seq[str] = (),
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
_READ_HEAD: Final = select(_HEAD.c.seq, _HEAD.c.hash, _HEAD.c.event_seq).where(
    _HEAD.c.id == bindparam("chain")
)
_LOCK_HEAD: Final = Plan(_READ_HEAD.with_for_update())
# PostgreSQL: the chain's head locked and the events' places in the whole trail drawn (a value
# drawn before a wait for the lock is drawn again after it, leaving a gap: harmless).
_DRAWN: Final = (
    select(func.array_agg(Sequence(_SEQ_NAME).next_value()))
    .select_from(func.generate_series(1, bindparam("n", type_=Integer)))
    .scalar_subquery()
)
_LOCK_HEAD_DRAW: Final = Plan(_READ_HEAD.add_columns(_DRAWN).with_for_update(of=_HEAD))
_HEAD_VALUES: Final[dict[str, Any]] = {
    "seq": bindparam("head_seq"),
    "hash": bindparam("head_hash"),
    "event_seq": bindparam("head_event_seq"),
}
_WRITE_HEAD: Final = Plan(
    update(_HEAD).where(_HEAD.c.id == bindparam("head_chain")).values(**_HEAD_VALUES)
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
    "chain",
    "chain_seq",
)
_INSERT_EVENTS: Final = Rows(_EVENT, _EVENT_COLUMNS)
# PostgreSQL: the events and the head written by one statement (the head's update a CTE).
_INSERT_EVENTS_AND_HEAD: Final = Rows(
    _EVENT,
    _EVENT_COLUMNS,
    head=update(_HEAD)
    .where(_HEAD.c.id == bindparam("head_chain"))
    .values(**_HEAD_VALUES)
    .cte("chain_head"),
)
_CHAIN: Final = "datafactor.audit.chain"


def record_many(session: Session, records: Seq[Mapping[str, Any]]) -> list[AuditEvent]:
    """``append`` returning the events written (not attached to the session)."""
    return [AuditEvent(**row) for row in _append(session, records)]


def append(session: Session, records: Seq[Mapping[str, Any]]) -> None:
    """Append several events (each the keyword arguments of ``record``) in one go: the chain's
    head is locked and read once, the events inserted together, the head written once — three
    statements however many events (two on PostgreSQL, where the insert writes the head too).

    The statements run as compiled Core statements (``fastsql``) after the session's pending
    changes are flushed, so the head is still the last lock the transaction takes."""
    _append(session, records)


def _chain_of(session: Session) -> int:
    """The chain the session's transaction appends to: the one it picked at its first event
    (one head per transaction: two would be two locks to take in some order)."""
    transaction = session.get_transaction()
    picked = session.info.get(_CHAIN)
    if picked is not None and picked[0] is transaction:
        return int(picked[1])
    chain = random.randint(1, CHAINS)  # spreading writers, not a secret
    session.info[_CHAIN] = (transaction, chain)
    return chain


def _append(session: Session, records: Seq[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if not records:
        return []
    raw = Raw.of(session)
    found: Any
    if raw.is_sqlite:
        # One chain; no row locks on SQLite (writers hold the database's lock): the head is
        # read through the session, where what watches the ORM's locking selects (the
        # lock-order tests) sees it taken. The trail's places follow the chain's.
        chain = 1
        found = session.execute(cast(Any, _LOCK_HEAD.statement), {"chain": chain}).first()
        if found is None:
            raise RuntimeError("the audit chain's head row is missing (run the migrations)")
        drawn = list(range(int(found[2]) + 1, int(found[2]) + 1 + len(records)))
    else:
        chain = _chain_of(session)
        found = raw.first(_LOCK_HEAD_DRAW, {"chain": chain, "n": len(records)})
        if found is None:
            raise RuntimeError("the audit chain's head row is missing (run the migrations)")
        drawn = sorted(int(x) for x in found[3])
    request_id = context.request_id.get()
    # Microseconds survive both databases; anything finer would not, and would break the hash.
    now = utcnow()
    occurred = now.isoformat()
    position, prev = int(found[0]), str(found[1])
    rows: list[dict[str, Any]] = []
    for r, seq in zip(records, drawn, strict=True):
        actor: Principal | None = r.get("actor")
        position += 1
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
        fields["chain"] = chain
        fields["chain_seq"] = position
        rows.append(fields)
    written = {
        "head_chain": chain,
        "head_seq": position,
        "head_hash": prev,
        "head_event_seq": drawn[-1],
    }
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
    """The outcome of re-checking the chains: ``ok`` or the first broken event and why.
    ``head_seq`` is the number of events the heads account for, ``head_hash`` the digest of
    the heads (``heads_digest``: what the ledger anchors)."""

    ok: bool
    events: int
    head_seq: int
    head_hash: str
    broken_seq: int | None = None
    problem: str | None = None
    chain: int | None = None


def heads_digest(heads: Seq[tuple[int, int, str]]) -> str:
    """SHA-256 of the canonical JSON of the non-empty chains' heads ``[[chain, seq, hash], …]``
    in chain order: one value for the whole trail, anchored in the ledger."""
    material = json.dumps(
        [[c, n, h] for c, n, h in sorted(heads) if n], separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def chain_heads(session: Session) -> list[tuple[int, int, str]]:
    """Every chain's ``(chain, last position, last hash)``, in chain order."""
    found = session.execute(
        select(AuditChainHead.id, AuditChainHead.seq, AuditChainHead.hash).order_by(
            AuditChainHead.id
        )
    )
    return [(int(c), int(n), str(h)) for c, n, h in found]


def verify_chain(session: Session, batch: int = 5000) -> ChainReport:
    """Re-derive every event hash, chain by chain in order; name the first event that breaks a
    chain (an event's content that does not match its hash, a link to a previous hash that is
    not the previous event's, a missing place) or a head that says more than is stored."""
    heads = chain_heads(session)
    stored = session.execute(
        select(AuditEvent.chain, func.count()).group_by(AuditEvent.chain)
    ).all()
    known = {c for c, _, _ in heads}
    count = 0
    for chain, events in stored:
        if chain not in known:
            return ChainReport(
                False,
                int(events),
                0,
                "",
                None,
                f"{events} event(s) name chain {chain}, which has no head",
                int(chain),
            )
    for chain, head_position, head_hash in heads:
        broken = _verify_one(session, chain, head_position, head_hash, batch)
        if isinstance(broken, ChainReport):
            return broken
        count += broken
    return ChainReport(True, count, sum(n for _, n, _ in heads), heads_digest(heads))


def _verify_one(
    session: Session, chain: int, head_position: int, head_hash: str, batch: int
) -> int | ChainReport:
    """The events of ``chain`` checked (their number), or the report of the first broken one."""
    prev_hash, expected, last_seq = GENESIS_HASH, 1, 0
    # Keyset pages rather than one long cursor: bounded memory, no server-side cursor to leak.
    while True:
        page = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.chain == chain, AuditEvent.chain_seq >= expected)
            .order_by(AuditEvent.chain_seq)
            .limit(batch)
        ).all()
        for event in page:
            problem = None
            if event.chain_seq != expected:
                problem = (
                    f"the event before it in chain {chain} (place {expected}) is missing "
                    f"(the event after {last_seq or 'the start'})"
                )
            elif event.prev_hash != prev_hash:
                problem = "its prev_hash does not match the previous event's hash"
            elif event_hash(_hashed_fields(event)) != event.hash:
                problem = "its content does not match its hash (the event was altered)"
            if problem is not None:
                return ChainReport(
                    False, expected - 1, expected - 1, prev_hash, event.seq, problem, chain
                )
            prev_hash, expected, last_seq = event.hash, expected + 1, event.seq
        session.expunge_all()
        if len(page) < batch:
            break
    stored = expected - 1
    if head_position != stored or head_hash != prev_hash:
        return ChainReport(
            False,
            stored,
            stored,
            prev_hash,
            _head_event_seq(session, chain),
            f"the head of chain {chain} says {head_position} events but {stored} are stored "
            "(events were removed from the end)",
            chain,
        )
    return stored


def _head_event_seq(session: Session, chain: int) -> int | None:
    head = session.get(AuditChainHead, chain)
    return None if head is None else head.event_seq


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
