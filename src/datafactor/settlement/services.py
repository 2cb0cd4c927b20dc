"""Use cases of the money ledger: accounts, the money-moving operations, and reading the books.

Every operation posts exactly one balanced journal (a batch posts one per instruction) inside the
caller's transaction, all or nothing; the caller commits. The order of work is the same in every
operation, and it is what keeps money safe under concurrency:

1. the inputs are checked (amounts, reference, split, key) before anything is read;
2. the idempotency key is looked up in its scope (the party whose money moves): the same key with
   the same request answers the journal it made (a replay changes nothing), the same key with
   another request is refused (409);
3. missing accounts are opened (``INSERT … ON CONFLICT DO NOTHING``, so two first operations of a
   party at once open them once);
4. locks are taken in one global order — the escrow holds by id, then the balance rows by account
   id (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite writers already hold the database's write
   lock from ``BEGIN IMMEDIATE``) — so concurrent journals queue and never deadlock, and the
   exchange's hot accounts (ids ``sys:…``, sorting after every UUID) are locked last;
5. the key is looked up again: a twin request that committed while this one waited is answered
   as a replay;
6. the domain rules post the lines onto the locked balances (``domain.apply_lines``: double
   entry, no available balance below zero, caps) and the journal — carrying its key, the request's
   fingerprint, its lines' sequence numbers and balances after, and its digest — is inserted with
   the balances and holds it changes, in the same transaction.

Freeze, release, capture, refund and ``settle_batch`` are the primitives other domains call (the
exchange's orders, auctions and contracts; trusts' income; public data's treasury share): they
take an ``actor`` for the record and no permission — the calling use case decides who may. The
deposits and withdrawals people make check the principal's permission and are audited here.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, Final, cast

from sqlalchemy import Table, bindparam, exists, func, insert, select, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datafactor import audit, identity, ledger
from datafactor.db import CHINA, new_id, utcnow
from datafactor.errors import N_, Forbidden, NotFound
from datafactor.fastsql import Plan, Raw, Rows
from datafactor.permissions import Permission, Principal
from datafactor.settlement.domain import (
    CHART,
    PARTY_KINDS,
    PAYOUT_KINDS,
    SYSTEM_ACCOUNT_IDS,
    AccountKind,
    AccountState,
    HoldState,
    JournalKind,
    LineKind,
    Payout,
    PostedLine,
    apply_lines,
    check_amount,
    check_key,
    check_memo,
    check_payouts,
    check_reference,
    digest_bytes,
    journal_digest_payload,
    plan_capture,
    plan_deposit,
    plan_freeze,
    plan_refund,
    plan_release,
    plan_withdrawal,
    request_fingerprint,
    system_account_id,
    system_payee,
    yuan_text,
)
from datafactor.settlement.errors import (
    IdempotencyConflict,
    InvalidSettlementInput,
    PartyNotEligible,
    SettlementError,
    UnknownObject,
)
from datafactor.settlement.gateway import PaymentGateway, default_gateway
from datafactor.settlement.models import (
    SettlementAccount,
    SettlementBalance,
    SettlementBatch,
    SettlementHold,
    SettlementJournal,
    SettlementLine,
)
from datafactor.settlement.rulebook import SettlementRules, load_settlement_rules

P = Permission
SYSTEM_SCOPE: Final = "system"
CHUNK: Final = 1000  # ids per IN (...) list

# The hot path's statements, built once and run on the session's connection as Core statements:
# building a statement and the ORM's execution layer cost more than the database work itself.
_A, _B, _J, _L, _H = (
    cast(Table, model.__table__)
    for model in (
        SettlementAccount,
        SettlementBalance,
        SettlementJournal,
        SettlementLine,
        SettlementHold,
    )
)
_IDS: Any = bindparam("ids", expanding=True)
_FIND_ACCOUNTS: Final = select(_A.c.party_id, _A.c.kind, _A.c.id).where(_A.c.party_id.in_(_IDS))
_LOCK_BALANCES: Final = (
    select(_B.c.account_id, _B.c.balance_fen, _B.c.lines, _A.c.kind, _A.c.party_id)
    .join(_A, _A.c.id == _B.c.account_id)
    .where(_B.c.account_id.in_(_IDS))
    .order_by(_B.c.account_id)
    .with_for_update(of=_B)
)
_HOLDS: Final = (
    select(
        _H.c.id,
        _H.c.party_id,
        _H.c.reference,
        _H.c.amount_fen,
        _H.c.released_fen,
        _H.c.captured_fen,
    )
    .where(_H.c.id.in_(_IDS))
    .order_by(_H.c.id)
)
_LOCK_HOLDS: Final = _HOLDS.with_for_update()
_KEY: Final = Plan(
    select(_J.c.id, _J.c.request_hash, _J.c.kind).where(
        _J.c.scope == bindparam("scope"), _J.c.idempotency_key == bindparam("key")
    )
)
_JOURNAL_COLUMNS: Final = (
    "id",
    "kind",
    "reference",
    "scope",
    "idempotency_key",
    "request_hash",
    "hold_id",
    "related_journal_id",
    "batch_id",
    "bank_reference",
    "memo",
    "actor_user_id",
    "actor_name",
    "posted_at",
    "rules",
    "rules_version",
    "digest",
)
_INSERT_JOURNAL: Final = Plan(insert(_J), keys=_JOURNAL_COLUMNS)
# One journal (every escrow primitive): a key that a twin request committed first inserts
# nothing instead of failing, so no savepoint is needed around it (two round trips fewer).
_INSERT_JOURNAL_ONCE: Final = {
    name: Plan(
        dialect.insert(_J)
        .on_conflict_do_nothing(index_elements=["scope", "idempotency_key"])
        .returning(_J.c.id),
        keys=_JOURNAL_COLUMNS,
    )
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_INSERT_LINES: Final = Rows(
    _L,
    (
        "journal_id",
        "account_id",
        "seq",
        "amount_fen",
        "kind",
        "balance_after_fen",
        "posted_at",
    ),
)
_UPDATE_BALANCE: Final = Plan(
    update(_B)
    .where(_B.c.account_id == bindparam("b_account"))
    .values(
        balance_fen=bindparam("b_balance"),
        lines=bindparam("b_lines"),
        updated_at=bindparam("b_at"),
    )
)
_HOLD_COLUMNS: Final = (
    "id",
    "party_id",
    "reference",
    "amount_fen",
    "released_fen",
    "captured_fen",
    "status",
    "freeze_journal_id",
    "created_at",
    "updated_at",
)
_INSERT_HOLD: Final = Plan(insert(_H), keys=_HOLD_COLUMNS)
_LINE_COLUMNS: Final = ("account_id", "seq", "amount_fen", "kind", "balance_after_fen", "posted_at")
# (lines, balances, with a hold) → PostgreSQL's one statement writing a journal (``_posting``).
_POSTINGS: dict[tuple[int, int, bool], Plan] = {}


def _posting(lines: int, balances: int, hold: bool) -> Plan:
    """PostgreSQL: one journal, its ``lines``, the ``balances`` it changed and (``hold``) the
    escrow hold it opens, written in one statement — data-modifying CTEs, each writing only
    when the journal's insert did (``ON CONFLICT DO NOTHING`` on its key: a twin committed
    first). It returns the journal's id, or no row when the key was taken. Five round trips
    (journal, lines, two balances, hold) are one; the row locks the caller took are the same."""
    shape = (lines, balances, hold)
    found = _POSTINGS.get(shape)
    if found is not None:
        return found
    journal = (
        postgresql.insert(_J)
        .values({k: bindparam(f"j_{k}", type_=_J.c[k].type) for k in _JOURNAL_COLUMNS})
        .on_conflict_do_nothing(index_elements=["scope", "idempotency_key"])
        .returning(_J.c.id)
        .cte("j")
    )
    written = exists(select(journal.c.id))
    parts: list[Any] = [
        insert(_L)
        .from_select(
            ("journal_id", *_LINE_COLUMNS),
            union_all(
                *(
                    select(
                        journal.c.id,
                        *(bindparam(f"l{i}_{k}", type_=_L.c[k].type) for k in _LINE_COLUMNS),
                    )
                    for i in range(lines)
                )
            ),
        )
        .cte("l")
    ]
    parts.extend(
        update(_B)
        .where(_B.c.account_id == bindparam(f"b{i}_account", type_=_B.c.account_id.type), written)
        .values(
            balance_fen=bindparam(f"b{i}_balance", type_=_B.c.balance_fen.type),
            lines=bindparam(f"b{i}_lines", type_=_B.c.lines.type),
            updated_at=bindparam(f"b{i}_at", type_=_B.c.updated_at.type),
        )
        .cte(f"b{i}")
        for i in range(balances)
    )
    if hold:
        parts.append(
            insert(_H)
            .from_select(
                _HOLD_COLUMNS,
                select(
                    *(
                        journal.c.id
                        if k == "freeze_journal_id"
                        else bindparam(f"h_{k}", type_=_H.c[k].type)
                        for k in _HOLD_COLUMNS
                    )
                ),
            )
            .cte("h")
        )
    found = _POSTINGS[shape] = Plan(select(journal.c.id).add_cte(*parts))
    return found


# A party's two balance rows, found through its accounts and locked in account-id order in one
# statement (the order ``_lock_balances`` takes them in).
_LOCK_PARTY_BALANCES: Final = Plan(
    select(_B.c.account_id, _B.c.balance_fen, _B.c.lines, _A.c.kind, _A.c.party_id)
    .join(_A, _A.c.id == _B.c.account_id)
    .where(_A.c.party_id == bindparam("party"))
    .order_by(_B.c.account_id)
    .with_for_update(of=_B)
)
_UPDATE_HOLD: Final = (
    update(_H)
    .where(_H.c.id == bindparam("h_id"))
    .values(
        released_fen=bindparam("h_released"),
        captured_fen=bindparam("h_captured"),
        status=bindparam("h_status"),
        updated_at=bindparam("h_at"),
    )
)

# Who opens accounts: the ledger itself, reading a party's status through identity's surface.
_LEDGER_READER: Final = Principal(
    user_id="",
    username="settlement",
    party_id="",
    party_kind="exchange_operator",
    roles=frozenset(),
    permissions=frozenset({P.IDENTITY_PARTY_READ, P.IDENTITY_PARTY_READ_ALL}),
    via="cli",
)

EVENT_LABELS: Final = {
    "settlement:funds:deposit": N_("Deposit funds"),
    "settlement:funds:withdraw": N_("Withdraw funds"),
    "settlement:account:open": N_("Open money accounts"),
    "settlement:batch:settle": N_("Settle a batch"),
    "settlement:books:reconcile": N_("Reconcile the books"),
}

MSG_NOT_ALLOWED: Final = N_("Your role does not include this ({permission}).")
MSG_NO_ACCOUNT: Final = N_("No such account, or it is not one you may see (rule {rule}).")
MSG_NO_JOURNAL: Final = N_("No such journal, or it is not one you may see (rule {rule}).")
MSG_NO_HOLD: Final = N_("No such escrow hold: {hold} (rule {rule}).")
MSG_NO_CAPTURE: Final = N_(
    "Journal {journal} is not a capture: only what a capture paid can be refunded (rule {rule})."
)
MSG_PARTY: Final = N_(
    "Party {party} cannot hold money accounts: it is unknown or not verified. Only verified "
    "parties hold funds (rule {rule})."
)
MSG_KEY_REUSED: Final = N_(
    "The idempotency key {key} was already used for another request (a {kind} journal). Use a "
    "new key for a new operation; repeat exactly the same request to get its result "
    "(rule {rule})."
)
MSG_KEY_RACE: Final = N_(
    "Another request with the idempotency key {key} was being processed at the same moment. "
    "Repeat your request: it will answer that request's result or be refused (rule {rule})."
)
MSG_BATCH_SIZE: Final = N_(
    "A settlement batch holds 1 to {max} instructions; {count} were given (rule {rule})."
)
MSG_BATCH_DUPLICATE: Final = N_(
    "Hold {hold} appears twice in the batch (instructions {first} and {second}); settle each "
    "hold once per batch (rule {rule})."
)
MSG_BATCH_KEY_DUPLICATE: Final = N_(
    "The idempotency key {key} appears twice in the batch; every instruction needs its own "
    "(rule {rule})."
)


def rules() -> SettlementRules:
    return load_settlement_rules()


# ------------------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class LineRecord:
    """A posted line with its account's kind and owner."""

    account_id: str
    account_kind: str
    party_id: str | None
    amount_fen: int
    kind: str
    seq: int
    balance_after_fen: int


@dataclass(frozen=True)
class JournalRecord:
    """A posted journal with its lines (what the API answers and statements link to)."""

    id: str
    kind: str
    reference: str | None
    scope: str
    idempotency_key: str
    hold_id: str | None
    related_journal_id: str | None
    batch_id: str | None
    bank_reference: str | None
    memo: str
    actor_name: str
    posted_at: datetime
    rules: tuple[str, ...]
    rules_version: str
    digest: str
    lines: tuple[LineRecord, ...]


@dataclass(frozen=True)
class Posted:
    """The result of a money-moving call: its journal, and whether it was a replay."""

    journal: JournalRecord
    replayed: bool

    @property
    def hold_id(self) -> str | None:
        return self.journal.hold_id


@dataclass(frozen=True)
class Actor:
    """Who posts: a user (from a principal) or a named system process."""

    user_id: str | None
    name: str
    principal: Principal | None = None

    @classmethod
    def of(cls, actor: Principal | str | None) -> Actor:
        if isinstance(actor, Principal):
            return cls(actor.user_id or None, actor.username[:64], actor)
        return cls(None, (actor or "system")[:64])


def _require(principal: Principal, *permissions: Permission) -> None:
    if not any(principal.can(p) for p in permissions):
        raise Forbidden(MSG_NOT_ALLOWED, permission=permissions[0].value)


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ------------------------------------------------------------------------------------ accounts


def _insert_ignore(
    session: Session, model: type[Any], rows: list[dict[str, Any]], keys: list[str]
) -> None:
    """``INSERT … ON CONFLICT DO NOTHING`` (both databases): a row another transaction inserted
    first — waited for on PostgreSQL until it commits — is left as it is."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        stmt: Any = postgresql.insert(model).on_conflict_do_nothing(index_elements=keys)
    else:
        stmt = sqlite.insert(model).on_conflict_do_nothing(index_elements=keys)
    session.execute(stmt, rows)


def _find_accounts(session: Session, party_ids: Sequence[str]) -> dict[str, dict[AccountKind, str]]:
    found: dict[str, dict[AccountKind, str]] = {}
    connection = session.connection()
    for chunk in _chunks(sorted(party_ids)):
        for party_id, kind, account_id in connection.execute(_FIND_ACCOUNTS, {"ids": chunk}):
            if party_id is not None:
                found.setdefault(party_id, {})[AccountKind(kind)] = account_id
    return found


def party_accounts(
    session: Session, party_ids: Iterable[str], *, actor: Actor | None = None
) -> dict[str, dict[AccountKind, str]]:
    """Each party's account ids (available, frozen), opening them for a verified party that has
    none yet (SET-PARTY), audited. For other domains and tools: the operations below use
    ``_party_accounts``, which leaves the audit events for the end of the operation."""
    found = _party_accounts(session, party_ids, actor=actor)
    _flush_audits(session)
    return found


def _party_accounts(
    session: Session, party_ids: Iterable[str], *, actor: Actor | None = None
) -> dict[str, dict[AccountKind, str]]:
    """``party_accounts`` without recording the openings' audit events yet. Safe under
    concurrency: a second opener finds the first one's rows."""
    wanted = sorted(set(party_ids))
    found = _find_accounts(session, wanted)
    missing = [p for p in wanted if len(found.get(p, {})) < len(PARTY_KINDS)]
    if not missing:
        return found
    rule = rules().rule_id("party")
    now = utcnow()
    for party_id in missing:
        try:
            party = identity.get_party(session, _LEDGER_READER, party_id)
        except NotFound:
            raise PartyNotEligible(MSG_PARTY, rule=rule, party=party_id) from None
        if party.status != identity.PartyStatus.VERIFIED:
            raise PartyNotEligible(MSG_PARTY, rule=rule, party=party_id)
    tried = {(p, k): new_id() for p in missing for k in PARTY_KINDS if k not in found.get(p, {})}
    _insert_ignore(
        session,
        SettlementAccount,
        [
            {"id": account_id, "party_id": p, "kind": k.value, "created_at": now}
            for (p, k), account_id in tried.items()
        ],
        ["party_id", "kind"],
    )
    opened = _find_accounts(session, missing)
    _insert_ignore(
        session,
        SettlementBalance,
        [
            {"account_id": a, "balance_fen": 0, "lines": 0, "updated_at": now}
            for kinds in opened.values()
            for a in kinds.values()
        ],
        ["account_id"],
    )
    for party_id in missing:
        kinds = opened[party_id]
        if not any(tried.get((party_id, k)) == a for k, a in kinds.items()):
            continue  # another transaction opened them at the same moment (and audited it)
        # Recorded when the operation has posted (``_flush_audits``): the audit chain's head is
        # always the last lock a transaction takes, after the balances — otherwise a deposit
        # holding the custody account and waiting for the head, and an opening holding the
        # head and waiting for that account, would deadlock.
        session.info.setdefault(_PENDING_AUDIT, []).append(
            {
                "actor": actor.principal if actor else None,
                "actor_name": actor.name if actor else "settlement",
                "action": "settlement:account:open",
                "object_type": "settlement_account",
                "object_id": kinds[AccountKind.AVAILABLE],
                "summary": "money accounts opened (available, frozen)",
                "party_id": party_id,
                "reasons": [rule],
            }
        )
    found.update(opened)
    return found


_PENDING_AUDIT: Final = "settlement.pending_audit"


def _flush_audits(session: Session) -> None:
    """Record the audit events deferred while the operation held its locks."""
    for event in session.info.pop(_PENDING_AUDIT, []):
        audit.record(session, **event)


def _lock_balances(session: Session, account_ids: Iterable[str]) -> dict[str, AccountState]:
    """The balance rows of ``account_ids``, locked in account-id order."""
    ids = sorted(set(account_ids))
    states: dict[str, AccountState] = {}
    connection = session.connection()
    for chunk in _chunks(ids):
        rows = connection.execute(_LOCK_BALANCES, {"ids": chunk})
        for account_id, balance, lines, kind, party_id in rows:
            states[account_id] = AccountState(
                account_id, AccountKind(kind), balance, lines, party_id
            )
    missing = [a for a in ids if a not in states]
    if missing:
        raise UnknownObject(MSG_NO_ACCOUNT, rule=rules().rule_id("double_entry"))
    return states


def _lock_party(
    session: Session, party_id: str, who: Actor
) -> tuple[dict[str, AccountState], str, str]:
    """The party's balance rows locked (in account-id order), and its available and frozen
    account ids: one statement when its accounts are open (every buyer's, before its first
    order), else opened first (``_party_accounts``) and then locked."""
    states: dict[str, AccountState] = {}
    ids: dict[AccountKind, str] = {}
    for account_id, balance, lines, kind, owner in Raw.of(session, flush=False).all(
        _LOCK_PARTY_BALANCES, {"party": party_id}
    ):
        account_kind = AccountKind(kind)
        states[account_id] = AccountState(account_id, account_kind, balance, lines, owner)
        ids[account_kind] = account_id
    if len(ids) < len(PARTY_KINDS):
        accounts = _party_accounts(session, [party_id], actor=who)[party_id]
        ids = {k: accounts[k] for k in PARTY_KINDS}
        states = _lock_balances(session, ids.values())
    return states, ids[AccountKind.AVAILABLE], ids[AccountKind.FROZEN]


@dataclass(slots=True)
class _Hold:
    id: str
    party_id: str
    reference: str
    state: HoldState


def _load_holds(session: Session, hold_ids: Sequence[str], *, lock: bool) -> dict[str, _Hold]:
    holds: dict[str, _Hold] = {}
    connection = session.connection()
    stmt = _LOCK_HOLDS if lock else _HOLDS
    for chunk in _chunks(sorted(set(hold_ids))):
        rows = connection.execute(stmt, {"ids": chunk})
        for hold_id, party_id, reference, amount, released, captured in rows:
            holds[hold_id] = _Hold(
                hold_id, party_id, reference, HoldState(amount, released, captured)
            )
    return holds


def _one_hold(session: Session, hold_id: str, *, lock: bool) -> _Hold:
    found = _load_holds(session, [hold_id], lock=lock).get(hold_id)
    if found is None:
        raise UnknownObject(MSG_NO_HOLD, rule=rules().rule_id("escrow"), hold=hold_id)
    return found


# ------------------------------------------------------------------------------------- posting


@dataclass
class _Draft:
    """A journal about to be written."""

    kind: JournalKind
    scope: str
    key: str
    request_hash: str
    reference: str | None
    lines: list[PostedLine]
    rule_ids: tuple[str, ...]
    hold_id: str | None = None
    related_journal_id: str | None = None
    batch_id: str | None = None
    bank_reference: str | None = None
    memo: str = ""
    id: str = field(default_factory=new_id)


def _digest(draft: _Draft, posted_at: datetime) -> str:
    payload = journal_digest_payload(
        journal_id=draft.id,
        kind=draft.kind.value,
        reference=draft.reference,
        posted_at=posted_at,
        scope=draft.scope,
        key=draft.key,
        lines=[
            (x.account_id, x.amount_fen, x.kind.value, x.seq, x.balance_after) for x in draft.lines
        ],
    )
    return ledger.leaf_hash(digest_bytes(payload)).hex()


def _write(
    session: Session,
    drafts: Sequence[_Draft],
    states: Mapping[str, AccountState],
    actor: Actor,
    now: datetime,
    hold: Mapping[str, Any] | None = None,
) -> list[JournalRecord]:
    """Insert the journals and their lines and write the balances they changed, and ``hold``
    (the escrow hold a freeze opens: its row but ``freeze_journal_id``, the one journal's)."""
    version = rules().version
    journal_rows: list[dict[str, Any]] = []
    line_rows: list[dict[str, Any]] = []
    records: list[JournalRecord] = []
    for d in drafts:
        digest = _digest(d, now)
        journal_rows.append(
            {
                "id": d.id,
                "kind": d.kind.value,
                "reference": d.reference,
                "scope": d.scope,
                "idempotency_key": d.key,
                "request_hash": d.request_hash,
                "hold_id": d.hold_id,
                "related_journal_id": d.related_journal_id,
                "batch_id": d.batch_id,
                "bank_reference": d.bank_reference,
                "memo": d.memo,
                "actor_user_id": actor.user_id,
                "actor_name": actor.name,
                "posted_at": now,
                "rules": list(d.rule_ids),
                "rules_version": version,
                "digest": digest,
            }
        )
        line_rows.extend(
            {
                "journal_id": d.id,
                "account_id": x.account_id,
                "seq": x.seq,
                "amount_fen": x.amount_fen,
                "kind": x.kind.value,
                "balance_after_fen": x.balance_after,
                "posted_at": now,
            }
            for x in d.lines
        )
        records.append(
            JournalRecord(
                id=d.id,
                kind=d.kind.value,
                reference=d.reference,
                scope=d.scope,
                idempotency_key=d.key,
                hold_id=d.hold_id,
                related_journal_id=d.related_journal_id,
                batch_id=d.batch_id,
                bank_reference=d.bank_reference,
                memo=d.memo,
                actor_name=actor.name,
                posted_at=now,
                rules=d.rule_ids,
                rules_version=version,
                digest=digest,
                lines=tuple(
                    LineRecord(
                        x.account_id,
                        states[x.account_id].kind.value,
                        states[x.account_id].party_id,
                        x.amount_fen,
                        x.kind.value,
                        x.seq,
                        x.balance_after,
                    )
                    for x in d.lines
                ),
            )
        )
    raw = Raw.of(session, flush=False)  # as ``session.connection().execute``: no autoflush
    touched = sorted({x.account_id for d in drafts for x in d.lines})
    balance_rows = [
        {
            "b_account": a,
            "b_balance": states[a].balance_fen,
            "b_lines": states[a].lines,
            "b_at": now,
        }
        for a in touched
    ]
    # On PostgreSQL a twin request with the same key that touches none of this one's accounts
    # (so it did not queue behind our locks) may have committed first: the unique key refuses
    # this insert. Nothing is written then; the caller's retry is answered as a replay. One
    # journal: ``ON CONFLICT DO NOTHING`` inserts nothing (on PostgreSQL the whole posting is
    # one statement that writes nothing then, ``_posting``); several: a savepoint undoes the
    # failed insert. (SQLite writers run one at a time: nothing can conflict.)
    if len(journal_rows) == 1 and not raw.is_sqlite and len(line_rows) <= Rows.MAX_ROWS:
        params = {f"j_{k}": v for k, v in journal_rows[0].items()}
        for i, line in enumerate(line_rows):
            params.update({f"l{i}_{k}": line[k] for k in _LINE_COLUMNS})
        for i, row in enumerate(balance_rows):
            params.update({f"b{i}_{k[2:]}": v for k, v in row.items()})
        if hold is not None:
            params.update({f"h_{k}": hold[k] for k in _HOLD_COLUMNS if k != "freeze_journal_id"})
        plan = _posting(len(line_rows), len(balance_rows), hold is not None)
        if raw.first(plan, params) is None:
            raise IdempotencyConflict(
                MSG_KEY_RACE, rule=rules().rule_id("idempotency"), key=drafts[0].key
            )
        return records
    conflict = False
    if len(journal_rows) == 1:
        conflict = raw.first(_INSERT_JOURNAL_ONCE[raw.dialect.name], journal_rows[0]) is None
    elif raw.is_sqlite:
        raw.executemany(_INSERT_JOURNAL, journal_rows)
    else:
        try:
            with session.begin_nested():
                raw.executemany(_INSERT_JOURNAL, journal_rows)
        except IntegrityError:
            conflict = True
    if conflict:
        raise IdempotencyConflict(
            MSG_KEY_RACE, rule=rules().rule_id("idempotency"), key=drafts[0].key
        ) from None
    raw.insert(_INSERT_LINES, line_rows)
    raw.executemany(_UPDATE_BALANCE, balance_rows)
    if hold is not None:
        raw.execute(_INSERT_HOLD, {**hold, "freeze_journal_id": records[0].id})
    return records


def _line_records(session: Session, journal_ids: Sequence[str]) -> dict[str, list[LineRecord]]:
    out: dict[str, list[LineRecord]] = {}
    for chunk in _chunks(list(journal_ids)):
        rows = session.execute(
            select(
                SettlementLine.journal_id,
                SettlementLine.account_id,
                SettlementAccount.kind,
                SettlementAccount.party_id,
                SettlementLine.amount_fen,
                SettlementLine.kind,
                SettlementLine.seq,
                SettlementLine.balance_after_fen,
            )
            .join(SettlementAccount, SettlementAccount.id == SettlementLine.account_id)
            .where(SettlementLine.journal_id.in_(chunk))
            .order_by(SettlementLine.id)
        )
        for journal_id, account_id, account_kind, party_id, amount, kind, seq, after in rows:
            out.setdefault(journal_id, []).append(
                LineRecord(account_id, account_kind, party_id, amount, kind, seq, after)
            )
    return out


def _record(session: Session, row: SettlementJournal) -> JournalRecord:
    lines = _line_records(session, [row.id]).get(row.id, [])
    return JournalRecord(
        id=row.id,
        kind=row.kind,
        reference=row.reference,
        scope=row.scope,
        idempotency_key=row.idempotency_key,
        hold_id=row.hold_id,
        related_journal_id=row.related_journal_id,
        batch_id=row.batch_id,
        bank_reference=row.bank_reference,
        memo=row.memo,
        actor_name=row.actor_name,
        posted_at=row.posted_at,
        rules=tuple(row.rules),
        rules_version=row.rules_version,
        digest=row.digest,
        lines=tuple(lines),
    )


def _replay(session: Session, scope: str, key: str, fingerprint: str) -> Posted | None:
    """The journal this key already made in ``scope`` (a replay), a refusal when the key was
    used for another request, or None when it is new."""
    found = Raw.of(session, flush=False).first(_KEY, {"scope": scope, "key": key})
    if found is None:
        return None
    journal_id, request_hash, kind = found
    if request_hash != fingerprint:
        raise IdempotencyConflict(
            MSG_KEY_REUSED, rule=rules().rule_id("idempotency"), key=key, kind=kind
        )
    row = session.get(SettlementJournal, journal_id)
    assert row is not None
    return Posted(_record(session, row), replayed=True)


def _twin(session: Session, scope: str, key: str, fingerprint: str) -> Posted | None:
    """``_replay`` again once the locks are held: on PostgreSQL a twin request with the same key
    may have committed while this one queued for the locks. SQLite writers run one at a time
    (``BEGIN IMMEDIATE``), so nothing can have committed since the first look."""
    if session.get_bind().dialect.name == "sqlite":
        return None
    return _replay(session, scope, key, fingerprint)


def _update_holds(session: Session, holds: Iterable[_Hold], now: datetime) -> None:
    rows = [
        {
            "h_id": h.id,
            "h_released": h.state.released_fen,
            "h_captured": h.state.captured_fen,
            "h_status": "open" if h.state.remaining_fen > 0 else "closed",
            "h_at": now,
        }
        for h in holds
    ]
    if rows:
        session.connection().execute(_UPDATE_HOLD, rows)


# ---------------------------------------------------------------------- deposits, withdrawals


def _funds_move(principal: Principal) -> None:
    _require(principal, P.SETTLEMENT_FUNDS_MOVE)


def deposit_funds(
    session: Session,
    party_id: str,
    amount_fen: int,
    *,
    key: str,
    actor: Principal | str | None,
    memo: str = "",
    gateway: PaymentGateway | None = None,
    now: datetime | None = None,
) -> Posted:
    """Money paid in through the gateway: custody bank account → the party's available funds."""
    r = rules()
    amount = check_amount(amount_fen, r)
    key = check_key(key, r)
    memo = check_memo(memo, r)
    fingerprint = request_fingerprint(
        "deposit", {"party": party_id, "amount_fen": amount, "memo": memo}
    )
    if (done := _replay(session, party_id, key, fingerprint)) is not None:
        return done
    who = Actor.of(actor)
    available = _party_accounts(session, [party_id], actor=who)[party_id][AccountKind.AVAILABLE]
    bank = SYSTEM_ACCOUNT_IDS[AccountKind.BANK]
    states = _lock_balances(session, [available, bank])
    if (done := _twin(session, party_id, key, fingerprint)) is not None:
        return done
    posted = apply_lines(states, plan_deposit(available, bank, amount), r)
    draft = _Draft(
        JournalKind.DEPOSIT,
        party_id,
        key,
        fingerprint,
        None,
        posted,
        (r.rule_id("gateway"), r.rule_id("money"), r.rule_id("double_entry")),
        memo=memo,
    )
    draft.bank_reference = (gateway or default_gateway()).collect(
        session, party_id=party_id, amount_fen=amount, journal_id=draft.id, key=key
    )
    record = _write(session, [draft], states, who, now or utcnow())[0]
    _flush_audits(session)
    audit.record(
        session,
        actor=who.principal,
        actor_name=who.name,
        action="settlement:funds:deposit",
        object_type="settlement_journal",
        object_id=record.id,
        summary=f"deposit {yuan_text(amount)} yuan (bank {draft.bank_reference})",
        party_id=party_id,
        reasons=list(record.rules),
    )
    return Posted(record, replayed=False)


def withdraw_funds(
    session: Session,
    party_id: str,
    amount_fen: int,
    *,
    key: str,
    actor: Principal | str | None,
    memo: str = "",
    gateway: PaymentGateway | None = None,
    now: datetime | None = None,
) -> Posted:
    """Money paid out through the gateway: available funds → custody bank account (SET-FUNDS:
    never beyond what is available)."""
    r = rules()
    amount = check_amount(amount_fen, r)
    key = check_key(key, r)
    memo = check_memo(memo, r)
    fingerprint = request_fingerprint(
        "withdrawal", {"party": party_id, "amount_fen": amount, "memo": memo}
    )
    if (done := _replay(session, party_id, key, fingerprint)) is not None:
        return done
    who = Actor.of(actor)
    available = _party_accounts(session, [party_id], actor=who)[party_id][AccountKind.AVAILABLE]
    bank = SYSTEM_ACCOUNT_IDS[AccountKind.BANK]
    states = _lock_balances(session, [available, bank])
    if (done := _twin(session, party_id, key, fingerprint)) is not None:
        return done
    posted = apply_lines(states, plan_withdrawal(available, bank, amount), r)
    draft = _Draft(
        JournalKind.WITHDRAWAL,
        party_id,
        key,
        fingerprint,
        None,
        posted,
        (r.rule_id("funds"), r.rule_id("gateway"), r.rule_id("money"), r.rule_id("double_entry")),
        memo=memo,
    )
    draft.bank_reference = (gateway or default_gateway()).pay_out(
        session, party_id=party_id, amount_fen=amount, journal_id=draft.id, key=key
    )
    record = _write(session, [draft], states, who, now or utcnow())[0]
    _flush_audits(session)
    audit.record(
        session,
        actor=who.principal,
        actor_name=who.name,
        action="settlement:funds:withdraw",
        object_type="settlement_journal",
        object_id=record.id,
        summary=f"withdraw {yuan_text(amount)} yuan (bank {draft.bank_reference})",
        party_id=party_id,
        reasons=list(record.rules),
    )
    return Posted(record, replayed=False)


def deposit(
    session: Session,
    principal: Principal,
    amount_fen: int,
    *,
    key: str,
    memo: str = "",
    gateway: PaymentGateway | None = None,
) -> Posted:
    """A party administrator pays money into the party's available funds."""
    _funds_move(principal)
    return deposit_funds(
        session,
        principal.party_id,
        amount_fen,
        key=key,
        actor=principal,
        memo=memo,
        gateway=gateway,
    )


def withdraw(
    session: Session,
    principal: Principal,
    amount_fen: int,
    *,
    key: str,
    memo: str = "",
    gateway: PaymentGateway | None = None,
) -> Posted:
    """A party administrator takes money out of the party's available funds."""
    _funds_move(principal)
    return withdraw_funds(
        session,
        principal.party_id,
        amount_fen,
        key=key,
        actor=principal,
        memo=memo,
        gateway=gateway,
    )


# ------------------------------------------------------------------------ escrow primitives


def freeze(
    session: Session,
    party_id: str,
    amount_fen: int,
    reference: str,
    *,
    key: str,
    actor: Principal | str | None,
    memo: str = "",
    now: datetime | None = None,
    fresh_key: bool = False,
) -> Posted:
    """Freeze ``amount_fen`` of the party's available funds in escrow for ``reference`` (an
    order, a bid deposit): available → frozen, and a hold (``Posted.hold_id``) that release and
    capture draw on. Refused when the available funds do not cover it (SET-FUNDS).

    ``fresh_key``: the caller made the key from an id it has just drawn (an order's), so no
    request can have used it yet and the two look-ups of the key are skipped; the journal's
    unique key still refuses a duplicate (IdempotencyConflict)."""
    r = rules()
    amount = check_amount(amount_fen, r)
    reference = check_reference(reference, r)
    key = check_key(key, r)
    memo = check_memo(memo, r)
    fingerprint = request_fingerprint(
        "freeze", {"party": party_id, "amount_fen": amount, "reference": reference, "memo": memo}
    )
    if not fresh_key and (done := _replay(session, party_id, key, fingerprint)) is not None:
        return done
    who = Actor.of(actor)
    states, available, frozen = _lock_party(session, party_id, who)
    if not fresh_key and (done := _twin(session, party_id, key, fingerprint)) is not None:
        return done
    posted = apply_lines(states, plan_freeze(available, frozen, amount), r)
    now = now or utcnow()
    hold_id = new_id()
    draft = _Draft(
        JournalKind.FREEZE,
        party_id,
        key,
        fingerprint,
        reference,
        posted,
        (r.rule_id("escrow"), r.rule_id("funds"), r.rule_id("double_entry")),
        hold_id=hold_id,
        memo=memo,
    )
    hold = {
        "id": hold_id,
        "party_id": party_id,
        "reference": reference,
        "amount_fen": amount,
        "released_fen": 0,
        "captured_fen": 0,
        "status": "open",
        "created_at": now,
        "updated_at": now,
    }
    record = _write(session, [draft], states, who, now, hold)[0]
    _flush_audits(session)
    return Posted(record, replayed=False)


def release(
    session: Session,
    hold_id: str,
    amount_fen: int | None = None,
    *,
    key: str,
    actor: Principal | str | None,
    memo: str = "",
    now: datetime | None = None,
) -> Posted:
    """Give frozen money back to the payer's available funds: all that remains on the hold
    (``amount_fen=None``) or part of it; never more than remains (SET-ESCROW)."""
    r = rules()
    if amount_fen is not None:
        amount_fen = check_amount(amount_fen, r)
    key = check_key(key, r)
    memo = check_memo(memo, r)
    hold = _one_hold(session, hold_id, lock=False)
    scope = hold.party_id
    fingerprint = request_fingerprint(
        "release", {"hold": hold_id, "amount_fen": amount_fen, "memo": memo}
    )
    if (done := _replay(session, scope, key, fingerprint)) is not None:
        return done
    who = Actor.of(actor)
    hold = _one_hold(session, hold_id, lock=True)
    accounts = _party_accounts(session, [scope], actor=who)[scope]
    available, frozen = accounts[AccountKind.AVAILABLE], accounts[AccountKind.FROZEN]
    states = _lock_balances(session, [available, frozen])
    if (done := _twin(session, scope, key, fingerprint)) is not None:
        return done
    lines, amount = plan_release(frozen, available, hold.state, amount_fen, hold.reference, r)
    posted = apply_lines(states, lines, r)
    now = now or utcnow()
    draft = _Draft(
        JournalKind.RELEASE,
        scope,
        key,
        fingerprint,
        hold.reference,
        posted,
        (r.rule_id("escrow"), r.rule_id("double_entry")),
        hold_id=hold_id,
        memo=memo,
    )
    record = _write(session, [draft], states, who, now)[0]
    s = hold.state
    hold.state = HoldState(s.amount_fen, s.released_fen + amount, s.captured_fen)
    _update_holds(session, [hold], now)
    _flush_audits(session)
    return Posted(record, replayed=False)


def _capture_fingerprint(
    hold_id: str, payouts: Sequence[Payout], release_remainder: bool, memo: str
) -> str:
    return request_fingerprint(
        "capture",
        {
            "hold": hold_id,
            "payouts": [p.as_params() for p in payouts],
            "release_remainder": release_remainder,
            "memo": memo,
        },
    )


def _payee_accounts(
    payouts: Sequence[Payout], accounts: Mapping[str, Mapping[AccountKind, str]], hold_id: str
) -> list[tuple[str, Payout]]:
    out = []
    for payout in payouts:
        system = system_payee(payout)
        if system is not None:
            out.append((system_account_id(system, hold_id), payout))
        else:
            assert payout.party_id is not None
            out.append((accounts[payout.party_id][AccountKind.AVAILABLE], payout))
    return out


def _capture_rules(r: SettlementRules, payouts: Sequence[Payout]) -> tuple[str, ...]:
    ids = [r.rule_id("escrow"), r.rule_id("split"), r.rule_id("double_entry")]
    if any(p.kind is LineKind.TREASURY for p in payouts):
        ids.append(r.rule_id("treasury"))
    return tuple(ids)


def capture(
    session: Session,
    hold_id: str,
    payouts: Sequence[Payout],
    *,
    key: str,
    actor: Principal | str | None,
    release_remainder: bool = False,
    memo: str = "",
    now: datetime | None = None,
) -> Posted:
    """Pay frozen money out to the payees exactly as split by the caller — the seller, revenue
    shares, the broker's commission, the exchange's fee, public data's treasury share — never
    more than remains frozen on the hold (SET-ESCROW, SET-SPLIT). With ``release_remainder`` the
    rest of the hold returns to the payer in the same journal."""
    r = rules()
    payouts = check_payouts(payouts, r)
    key = check_key(key, r)
    memo = check_memo(memo, r)
    hold = _one_hold(session, hold_id, lock=False)
    scope = hold.party_id
    fingerprint = _capture_fingerprint(hold_id, payouts, release_remainder, memo)
    if (done := _replay(session, scope, key, fingerprint)) is not None:
        return done
    who = Actor.of(actor)
    parties = {scope} | {p.party_id for p in payouts if p.party_id}
    accounts = _party_accounts(session, parties, actor=who)
    hold = _one_hold(session, hold_id, lock=True)
    payees = _payee_accounts(payouts, accounts, hold_id)
    available, frozen = accounts[scope][AccountKind.AVAILABLE], accounts[scope][AccountKind.FROZEN]
    states = _lock_balances(session, [frozen, available, *(a for a, _ in payees)])
    if (done := _twin(session, scope, key, fingerprint)) is not None:
        return done
    plan = plan_capture(frozen, available, hold.state, payees, release_remainder, hold.reference, r)
    posted = apply_lines(states, plan.lines, r)
    now = now or utcnow()
    draft = _Draft(
        JournalKind.CAPTURE,
        scope,
        key,
        fingerprint,
        hold.reference,
        posted,
        _capture_rules(r, payouts),
        hold_id=hold_id,
        memo=memo,
    )
    record = _write(session, [draft], states, who, now)[0]
    s = hold.state
    hold.state = HoldState(
        s.amount_fen, s.released_fen + plan.released_fen, s.captured_fen + plan.captured_fen
    )
    _update_holds(session, [hold], now)
    _flush_audits(session)
    return Posted(record, replayed=False)


def refund(
    session: Session,
    capture_journal_id: str,
    refunds: Sequence[Payout],
    *,
    key: str,
    actor: Principal | str | None,
    memo: str = "",
    now: datetime | None = None,
) -> Posted:
    """Return money a capture paid out (a contract terminated, a dispute decided): each refund
    names a payee of the capture as its payout did (kind and party) and is taken from that
    payee's account back to the payer's available funds — at most what the payee received there
    and has not yet returned (SET-REFUND), and never beyond what the payee still holds
    (SET-FUNDS)."""
    r = rules()
    refunds = check_payouts(refunds, r)
    key = check_key(key, r)
    memo = check_memo(memo, r)
    capture_row = session.get(SettlementJournal, capture_journal_id)
    if capture_row is None or capture_row.kind != JournalKind.CAPTURE or not capture_row.hold_id:
        raise UnknownObject(MSG_NO_CAPTURE, rule=r.rule_id("refund"), journal=capture_journal_id)
    hold = _one_hold(session, capture_row.hold_id, lock=False)
    scope = hold.party_id
    fingerprint = request_fingerprint(
        "refund",
        {"capture": capture_journal_id, "refunds": [p.as_params() for p in refunds], "memo": memo},
    )
    if (done := _replay(session, scope, key, fingerprint)) is not None:
        return done
    who = Actor.of(actor)
    parties = {scope} | {p.party_id for p in refunds if p.party_id}
    accounts = _party_accounts(session, parties, actor=who)
    payees = _payee_accounts(refunds, accounts, capture_row.hold_id)
    available = accounts[scope][AccountKind.AVAILABLE]
    states = _lock_balances(session, [available, *(a for a, _ in payees)])
    if (done := _twin(session, scope, key, fingerprint)) is not None:
        return done
    received: dict[str, int] = {}
    for account_id, amount, kind in session.execute(
        select(SettlementLine.account_id, SettlementLine.amount_fen, SettlementLine.kind).where(
            SettlementLine.journal_id == capture_journal_id
        )
    ):
        if kind in PAYOUT_KINDS:
            received[account_id] = received.get(account_id, 0) + amount
    refunded: dict[str, int] = {}
    for account_id, amount in session.execute(
        select(SettlementLine.account_id, func.sum(SettlementLine.amount_fen))
        .join(SettlementJournal, SettlementJournal.id == SettlementLine.journal_id)
        .where(
            SettlementJournal.related_journal_id == capture_journal_id,
            SettlementJournal.kind == JournalKind.REFUND.value,
            SettlementLine.amount_fen < 0,
        )
        .group_by(SettlementLine.account_id)
    ):
        refunded[account_id] = -int(amount)
    lines = plan_refund(available, [(a, p.amount_fen) for a, p in payees], received, refunded, r)
    posted = apply_lines(states, lines, r)
    draft = _Draft(
        JournalKind.REFUND,
        scope,
        key,
        fingerprint,
        capture_row.reference,
        posted,
        (r.rule_id("refund"), r.rule_id("funds"), r.rule_id("double_entry")),
        hold_id=capture_row.hold_id,
        related_journal_id=capture_journal_id,
        memo=memo,
    )
    record = _write(session, [draft], states, who, now or utcnow())[0]
    _flush_audits(session)
    return Posted(record, replayed=False)


# ----------------------------------------------------------------------------- batch settling


@dataclass(frozen=True)
class Instruction:
    """One capture of a settlement batch: the hold, the split, the capture's own idempotency key
    (the same key a single ``capture`` of this hold would use, so settling a contract twice —
    in two batches, or singly and in a batch — pays once), and whether the rest of the hold goes
    back to the payer."""

    hold_id: str
    payouts: tuple[Payout, ...]
    key: str
    release_remainder: bool = True
    memo: str = ""


@dataclass(frozen=True)
class BatchResult:
    """What a batch did: its id, the journal of each instruction (in order), how many were
    settled now and how many had been settled before (replays), the total paid, and the Merkle
    root of the new journals' digests appended to the transparency ledger."""

    batch_id: str
    journal_ids: tuple[str, ...]
    settled: int
    replayed: int
    total_fen: int
    root: str
    ledger_index: int | None
    replayed_batch: bool = False


def _batch_result(
    session: Session, row: SettlementBatch, journal_ids: Sequence[str]
) -> BatchResult:
    return BatchResult(
        row.id,
        tuple(journal_ids),
        row.settled,
        row.replayed,
        row.total_fen,
        row.root,
        row.ledger_index,
        replayed_batch=True,
    )


_USED_KEYS: Final = select(_J.c.idempotency_key, _J.c.id, _J.c.request_hash).where(
    _J.c.scope == bindparam("scope"), _J.c.idempotency_key.in_(_IDS)
)


def _existing_keys(
    session: Session, pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[str, str]]:
    """(scope, key) → (journal id, request hash) for those of ``pairs`` already used: per scope,
    probes of the unique (scope, key) index (SQLite scans the table for a row-value ``IN``)."""
    by_scope: dict[str, set[str]] = {}
    for scope, key in pairs:
        by_scope.setdefault(scope, set()).add(key)
    found: dict[tuple[str, str], tuple[str, str]] = {}
    connection = session.connection()
    for scope, keys in sorted(by_scope.items()):
        for chunk in _chunks(sorted(keys)):
            for key, journal_id, request_hash in connection.execute(
                _USED_KEYS, {"scope": scope, "ids": list(chunk)}
            ):
                found[(scope, key)] = (journal_id, request_hash)
    return found


def settle_batch(
    session: Session,
    instructions: Sequence[Instruction],
    *,
    key: str,
    actor: Principal | str | None,
    scope: str = SYSTEM_SCOPE,
    now: datetime | None = None,
) -> BatchResult:
    """Settle many captures in one pass, all or nothing: one journal per instruction, balances
    and holds written once each, one audit event and one ledger entry (the batch's Merkle root)
    for the batch. An instruction whose key already settled its hold with the same split is a
    replay (nothing paid again); any refusal refuses the whole batch, naming the instruction
    (``field = instructions[i]``)."""
    r = rules()
    if not 1 <= len(instructions) <= r.max_batch:
        raise InvalidSettlementInput(
            MSG_BATCH_SIZE,
            rule=r.rule_id("split"),
            field="instructions",
            max=r.max_batch,
            count=len(instructions),
        )
    key = check_key(key, r)
    checked: list[tuple[Instruction, str]] = []
    seen_holds: dict[str, int] = {}
    seen_keys: set[str] = set()
    for i, ins in enumerate(instructions):
        try:
            payouts = check_payouts(ins.payouts, r)
            ins_key = check_key(ins.key, r)
            memo = check_memo(ins.memo, r)
        except SettlementError as exc:
            exc.field = f"instructions[{i}].{exc.field}" if exc.field else f"instructions[{i}]"
            raise
        if ins.hold_id in seen_holds:
            raise InvalidSettlementInput(
                MSG_BATCH_DUPLICATE,
                rule=r.rule_id("escrow"),
                field=f"instructions[{i}]",
                hold=ins.hold_id,
                first=seen_holds[ins.hold_id],
                second=i,
            )
        if ins_key in seen_keys:
            raise InvalidSettlementInput(
                MSG_BATCH_KEY_DUPLICATE,
                rule=r.rule_id("idempotency"),
                field=f"instructions[{i}].key",
                key=ins_key,
            )
        seen_holds[ins.hold_id] = i
        seen_keys.add(ins_key)
        clean = Instruction(ins.hold_id, payouts, ins_key, ins.release_remainder, memo)
        checked.append(
            (clean, _capture_fingerprint(ins.hold_id, payouts, ins.release_remainder, memo))
        )
    batch_hash = request_fingerprint("batch", {"instructions": [[c.key, f] for c, f in checked]})
    who = Actor.of(actor)

    def instruction_journals(holds: Mapping[str, _Hold]) -> dict[tuple[str, str], tuple[str, str]]:
        return _existing_keys(session, [(holds[c.hold_id].party_id, c.key) for c, _ in checked])

    previous = session.execute(
        select(SettlementBatch).where(
            SettlementBatch.scope == scope, SettlementBatch.idempotency_key == key
        )
    ).scalar_one_or_none()
    if previous is not None:
        if previous.request_hash != batch_hash:
            raise IdempotencyConflict(
                MSG_KEY_REUSED, rule=r.rule_id("idempotency"), key=key, kind="batch"
            )
        holds = _load_holds(session, [c.hold_id for c, _ in checked], lock=False)
        existing = instruction_journals(holds)
        ids = [existing[(holds[c.hold_id].party_id, c.key)][0] for c, _ in checked]
        return _batch_result(session, previous, ids)

    # Accounts first (opening one may wait for another transaction), then the holds, then the
    # balances: the global lock order. Payees may be new; payers have accounts since they froze.
    payees_parties = {p.party_id for c, _ in checked for p in c.payouts if p.party_id}
    accounts = _party_accounts(session, payees_parties, actor=who)
    holds = _load_holds(session, [c.hold_id for c, _ in checked], lock=True)
    for i, (c, _) in enumerate(checked):
        if c.hold_id not in holds:
            raise UnknownObject(
                MSG_NO_HOLD, rule=r.rule_id("escrow"), field=f"instructions[{i}]", hold=c.hold_id
            )
    accounts = {
        **accounts,
        **_party_accounts(session, {h.party_id for h in holds.values()}, actor=who),
    }
    existing = instruction_journals(holds)
    for i, (c, fingerprint) in enumerate(checked):
        found = existing.get((holds[c.hold_id].party_id, c.key))
        if found is not None and found[1] != fingerprint:
            raise IdempotencyConflict(
                MSG_KEY_REUSED,
                rule=r.rule_id("idempotency"),
                field=f"instructions[{i}].key",
                key=c.key,
                kind="capture",
            )
    todo = [
        (i, c, f)
        for i, (c, f) in enumerate(checked)
        if (holds[c.hold_id].party_id, c.key) not in existing
    ]
    payees = {i: _payee_accounts(c.payouts, accounts, c.hold_id) for i, c, _ in todo}
    wanted: set[str] = set()
    for i, c, _ in todo:
        party = accounts[holds[c.hold_id].party_id]
        wanted.update((party[AccountKind.FROZEN], party[AccountKind.AVAILABLE]))
        wanted.update(a for a, _ in payees[i])
    states = _lock_balances(session, wanted)
    now = now or utcnow()
    batch_id = new_id()
    drafts: list[_Draft] = []
    changed: list[_Hold] = []
    total = 0
    for i, c, fingerprint in todo:
        hold = holds[c.hold_id]
        party = accounts[hold.party_id]
        try:
            plan = plan_capture(
                party[AccountKind.FROZEN],
                party[AccountKind.AVAILABLE],
                hold.state,
                payees[i],
                c.release_remainder,
                hold.reference,
                r,
            )
            posted = apply_lines(states, plan.lines, r)
        except SettlementError as exc:
            exc.field = f"instructions[{i}]"
            raise
        s = hold.state
        hold.state = HoldState(
            s.amount_fen, s.released_fen + plan.released_fen, s.captured_fen + plan.captured_fen
        )
        changed.append(hold)
        total += plan.captured_fen
        drafts.append(
            _Draft(
                JournalKind.CAPTURE,
                hold.party_id,
                c.key,
                fingerprint,
                hold.reference,
                posted,
                _capture_rules(r, c.payouts),
                hold_id=hold.id,
                batch_id=batch_id,
                memo=c.memo,
            )
        )
    records = _write(session, drafts, states, who, now) if drafts else []
    _update_holds(session, changed, now)
    _flush_audits(session)
    root = ledger.root_from_leaf_hashes(bytes.fromhex(x.digest) for x in records).hex()
    ledger_index = ledger.append_event(
        session,
        "settlement.batch.settled",
        {
            "batch": batch_id,
            "instructions": len(checked),
            "settled": len(records),
            "total_fen": str(total),
            "root": root,
        },
    )
    session.execute(
        insert(SettlementBatch).values(
            id=batch_id,
            scope=scope,
            idempotency_key=key,
            request_hash=batch_hash,
            instructions=len(checked),
            settled=len(records),
            replayed=len(checked) - len(records),
            total_fen=total,
            root=root,
            ledger_index=ledger_index,
            actor_name=who.name,
            created_at=now,
        )
    )
    audit.record(
        session,
        actor=who.principal,
        actor_name=who.name,
        action="settlement:batch:settle",
        object_type="settlement_batch",
        object_id=batch_id,
        summary=f"{len(records)} capture(s) settled, {len(checked) - len(records)} replayed, "
        f"{yuan_text(total)} yuan paid",
        party_id=None,
        reasons=[r.rule_id("escrow"), r.rule_id("split"), r.rule_id("double_entry")],
    )
    new_ids = {(x.scope, x.idempotency_key): x.id for x in records}
    journal_ids = tuple(
        new_ids.get((holds[c.hold_id].party_id, c.key))
        or existing[(holds[c.hold_id].party_id, c.key)][0]
        for c, _ in checked
    )
    return BatchResult(
        batch_id, journal_ids, len(records), len(checked) - len(records), total, root, ledger_index
    )


# ------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class AccountRow:
    """An account with its balance, as the pages and the API show it."""

    id: str
    party_id: str | None
    kind: str
    code: str
    balance_fen: int
    lines: int
    updated_at: datetime


def _account_rows(
    session: Session, where: Any, *, limit: int | None = None, offset: int = 0
) -> list[AccountRow]:
    stmt = (
        select(
            SettlementAccount.id,
            SettlementAccount.party_id,
            SettlementAccount.kind,
            SettlementBalance.balance_fen,
            SettlementBalance.lines,
            SettlementBalance.updated_at,
        )
        .join(SettlementBalance, SettlementBalance.account_id == SettlementAccount.id)
        .where(where)
        .order_by(SettlementAccount.party_id, SettlementAccount.kind)
    )
    if limit is not None:
        stmt = stmt.limit(limit).offset(offset)
    return [
        AccountRow(i, p, k, CHART[AccountKind(k)].code, b, n, u)
        for i, p, k, b, n, u in session.execute(stmt)
    ]


def may_read_party(principal: Principal, party_id: str | None) -> bool:
    if principal.can(P.SETTLEMENT_ACCOUNT_READ_ALL):
        return True
    return (
        party_id is not None
        and party_id == principal.party_id
        and principal.can(P.SETTLEMENT_ACCOUNT_READ)
    )


def list_accounts(
    session: Session, principal: Principal, party: str | None = None
) -> list[AccountRow]:
    """A party's accounts (default: the principal's own; ``"system"``: the exchange's own).
    Another party's, or the system's, only with read-all (regulators, the exchange's staff)."""
    _require(principal, P.SETTLEMENT_ACCOUNT_READ, P.SETTLEMENT_ACCOUNT_READ_ALL)
    if party == SYSTEM_SCOPE:
        _require(principal, P.SETTLEMENT_ACCOUNT_READ_ALL)
        return _account_rows(session, SettlementAccount.party_id.is_(None))
    party = party or principal.party_id
    if not may_read_party(principal, party):
        raise UnknownObject(MSG_NO_ACCOUNT, rule=rules().rule_id("party"))
    return _account_rows(session, SettlementAccount.party_id == party)


def list_all_accounts(
    session: Session, principal: Principal, *, limit: int, offset: int
) -> tuple[list[AccountRow], int]:
    """Every party's accounts (the exchange's books page), paged, with the total."""
    _require(principal, P.SETTLEMENT_ACCOUNT_READ_ALL)
    rows = _account_rows(
        session, SettlementAccount.party_id.is_not(None), limit=limit, offset=offset
    )
    total = session.scalar(
        select(func.count())
        .select_from(SettlementAccount)
        .where(SettlementAccount.party_id.is_not(None))
    )
    return rows, int(total or 0)


def has_accounts(session: Session, party_id: str) -> bool:
    return bool(
        session.scalar(
            select(func.count())
            .select_from(SettlementAccount)
            .where(SettlementAccount.party_id == party_id)
        )
    )


def open_own_accounts(session: Session, principal: Principal) -> dict[AccountKind, str]:
    """Open the principal's party's accounts if it has none yet (a party sees its zero balances
    before its first deposit)."""
    _require(principal, P.SETTLEMENT_ACCOUNT_READ)
    opened = _party_accounts(session, [principal.party_id], actor=Actor.of(principal))
    _flush_audits(session)
    return opened[principal.party_id]


def get_account(session: Session, principal: Principal, account_id: str) -> AccountRow:
    _require(principal, P.SETTLEMENT_ACCOUNT_READ, P.SETTLEMENT_ACCOUNT_READ_ALL)
    rows = _account_rows(session, SettlementAccount.id == account_id)
    if not rows or not may_read_party(principal, rows[0].party_id):
        raise UnknownObject(MSG_NO_ACCOUNT, rule=rules().rule_id("party"))
    return rows[0]


def system_totals(session: Session) -> dict[str, int]:
    """Balance per account kind over the whole book (the books page's summary)."""
    rows = session.execute(
        select(SettlementAccount.kind, func.sum(SettlementBalance.balance_fen))
        .join(SettlementBalance, SettlementBalance.account_id == SettlementAccount.id)
        .group_by(SettlementAccount.kind)
    )
    return {kind: int(total or 0) for kind, total in rows}


@dataclass(frozen=True)
class StatementLine:
    """One line of an account statement: the journal it belongs to and the running balance."""

    seq: int
    posted_at: datetime
    journal_id: str
    journal_kind: str
    kind: str
    reference: str | None
    memo: str
    bank_reference: str | None
    amount_fen: int
    balance_after_fen: int


@dataclass(frozen=True)
class Statement:
    """An account's lines over a period (China dates, both ends included), paged, with the
    balance before the period's first line and after its last."""

    account: AccountRow
    start: date | None
    end: date | None
    opening_fen: int
    closing_fen: int
    lines: list[StatementLine]
    total: int


def _utc_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=CHINA).astimezone(UTC)


def _period(stmt: Any, start: date | None, end: date | None) -> Any:
    if start is not None:
        stmt = stmt.where(SettlementLine.posted_at >= _utc_start(start))
    if end is not None:
        stmt = stmt.where(SettlementLine.posted_at < _utc_start(end + _ONE_DAY))
    return stmt


_ONE_DAY: Final = date(2000, 1, 2) - date(2000, 1, 1)
MSG_PERIOD: Final = N_("The period ends ({end}) before it starts ({start}) (rule {rule}).")


def _statement_query(account_id: str) -> Any:
    return (
        select(
            SettlementLine.seq,
            SettlementLine.posted_at,
            SettlementJournal.id,
            SettlementJournal.kind,
            SettlementLine.kind,
            SettlementJournal.reference,
            SettlementJournal.memo,
            SettlementJournal.bank_reference,
            SettlementLine.amount_fen,
            SettlementLine.balance_after_fen,
        )
        .join(SettlementJournal, SettlementJournal.id == SettlementLine.journal_id)
        .where(SettlementLine.account_id == account_id)
    )


def statement(
    session: Session,
    principal: Principal,
    account_id: str,
    *,
    start: date | None = None,
    end: date | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Statement:
    """An account's statement: each line with the balance after it (its running balance)."""
    account = get_account(session, principal, account_id)
    if start is not None and end is not None and end < start:
        raise InvalidSettlementInput(
            MSG_PERIOD, rule=rules().rule_id("reconcile"), field="to", start=start, end=end
        )
    base = _period(_statement_query(account_id), start, end)
    total = int(
        session.scalar(
            _period(
                select(func.count())
                .select_from(SettlementLine)
                .where(SettlementLine.account_id == account_id),
                start,
                end,
            )
        )
        or 0
    )
    lines = [
        StatementLine(*row)
        for row in session.execute(base.order_by(SettlementLine.seq).limit(limit).offset(offset))
    ]
    opening = 0
    if start is not None:
        before = session.scalar(
            select(SettlementLine.balance_after_fen)
            .where(
                SettlementLine.account_id == account_id,
                SettlementLine.posted_at < _utc_start(start),
            )
            .order_by(SettlementLine.seq.desc())
            .limit(1)
        )
        opening = int(before or 0)
    last = session.scalar(
        _period(
            select(SettlementLine.balance_after_fen).where(SettlementLine.account_id == account_id),
            start,
            end,
        )
        .order_by(SettlementLine.seq.desc())
        .limit(1)
    )
    closing = opening if last is None else int(last)
    return Statement(account, start, end, opening, closing, lines, total)


CSV_HEADER: Final = (
    "seq",
    "posted_at_cst",
    "journal_id",
    "journal_kind",
    "line_kind",
    "reference",
    "bank_reference",
    "memo",
    "amount_fen",
    "amount_yuan",
    "balance_after_fen",
    "balance_after_yuan",
)


def statement_csv(
    session: Session,
    principal: Principal,
    account_id: str,
    *,
    start: date | None = None,
    end: date | None = None,
) -> Iterator[str]:
    """The whole statement of the period as CSV text, produced in pages (bounded memory)."""
    statement(session, principal, account_id, start=start, end=end, limit=1)  # checks, 404
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADER)
    yield "\ufeff" + buffer.getvalue()  # a BOM: spreadsheet programs then read UTF-8
    after = 0
    while True:
        buffer.seek(0)
        buffer.truncate()
        page = list(
            session.execute(
                _period(_statement_query(account_id), start, end)
                .where(SettlementLine.seq > after)
                .order_by(SettlementLine.seq)
                .limit(CHUNK)
            )
        )
        for row in page:
            line = StatementLine(*row)
            writer.writerow(
                (
                    line.seq,
                    line.posted_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
                    line.journal_id,
                    line.journal_kind,
                    line.kind,
                    line.reference or "",
                    line.bank_reference or "",
                    line.memo,
                    line.amount_fen,
                    yuan_text(line.amount_fen).replace(",", ""),
                    line.balance_after_fen,
                    yuan_text(line.balance_after_fen).replace(",", ""),
                )
            )
        if page:
            yield buffer.getvalue()
            after = page[-1][0]
        if len(page) < CHUNK:
            return


def get_journal(session: Session, principal: Principal, journal_id: str) -> JournalRecord:
    """A journal that touches the principal's party's accounts (or any, with read-all). Lines on
    other parties' and the exchange's accounts are shown without their account and balance: a
    buyer sees that the seller and the exchange were paid, not their balances."""
    _require(principal, P.SETTLEMENT_ACCOUNT_READ, P.SETTLEMENT_ACCOUNT_READ_ALL)
    row = session.get(SettlementJournal, journal_id)
    if row is None:
        raise UnknownObject(MSG_NO_JOURNAL, rule=rules().rule_id("party"))
    record = _record(session, row)
    if principal.can(P.SETTLEMENT_ACCOUNT_READ_ALL):
        return record
    own = principal.party_id
    if not any(x.party_id == own for x in record.lines):
        raise UnknownObject(MSG_NO_JOURNAL, rule=rules().rule_id("party"))
    masked = tuple(
        x if x.party_id == own else LineRecord("", x.account_kind, None, x.amount_fen, x.kind, 0, 0)
        for x in record.lines
    )
    return JournalRecord(**{**record.__dict__, "lines": masked})


def hold_of(session: Session, hold_id: str) -> dict[str, Any]:
    """A hold's figures (for the calling domain: what is still frozen on an order)."""
    hold = _one_hold(session, hold_id, lock=False)
    s = hold.state
    return {
        "id": hold.id,
        "party_id": hold.party_id,
        "reference": hold.reference,
        "amount_fen": s.amount_fen,
        "released_fen": s.released_fen,
        "captured_fen": s.captured_fen,
        "remaining_fen": s.remaining_fen,
    }


def holds_of(session: Session, hold_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Many holds' figures at once, by hold id (unknown ids are left out): what the exchange's
    settlement runs and dashboards read, in chunks rather than one query per hold."""
    return {
        h.id: {
            "id": h.id,
            "party_id": h.party_id,
            "reference": h.reference,
            "amount_fen": h.state.amount_fen,
            "released_fen": h.state.released_fen,
            "captured_fen": h.state.captured_fen,
            "remaining_fen": h.state.remaining_fen,
        }
        for h in _load_holds(session, list(hold_ids), lock=False).values()
    }


def journals_by_key(session: Session, scope: str, keys: Iterable[str]) -> dict[str, str]:
    """key → journal id for those of ``keys`` already used in ``scope``."""
    return {
        k: v[0]
        for (s, k), v in _existing_keys(session, [(scope, k) for k in keys]).items()
        if s == scope
    }
