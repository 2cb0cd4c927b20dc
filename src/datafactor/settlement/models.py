"""Tables of the money ledger: accounts, balances, journals and their lines, escrow holds, the
local bank's transfers, settlement batches, reconciliations and the daily anchors.

Journals and lines are **append-only**: the ORM refuses to update or delete them (mapper events
and a guard on bulk statements) and the database refuses too (triggers created by migration 0013
on SQLite and PostgreSQL), so a correction can only be a new journal. A journal carries its
idempotency scope and key (unique together) and the fingerprint of the request that made it: the
key is recorded in the very row that moves the money, so there is no moment at which money moved
and its key was not recorded. Balances and holds are derived state, updated under row locks in
the journal's transaction; reconciliation re-derives them from the lines.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column

from datafactor.db import ID, Base, UTCDateTime
from datafactor.errors import N_
from datafactor.settlement.errors import LedgerTampering

# Account ids: UUIDs for parties' accounts, fixed "sys:…" ids for the exchange's own.
ACCOUNT_ID = String(36)
APPEND_ONLY_TABLES: Final = frozenset({"settlement_journal", "settlement_line"})
_BIGINT_PK = BigInteger().with_variant(Integer, "sqlite")  # SQLite's rowid autoincrements


class SettlementAccount(Base):
    """An account in the chart: a party's available or frozen funds, or one of the exchange's
    own (custody bank, fee income, commissions payable, treasury non-tax revenue)."""

    __tablename__ = "settlement_account"
    __table_args__ = (UniqueConstraint("party_id", "kind"),)

    id: Mapped[str] = mapped_column(ACCOUNT_ID, primary_key=True)
    party_id: Mapped[str | None] = mapped_column(ID, ForeignKey("party.id"))
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SettlementBalance(Base):
    """An account's balance (credit-positive fen) and its number of lines, kept in step with the
    journal lines in the same transaction, under a row lock."""

    __tablename__ = "settlement_balance"

    account_id: Mapped[str] = mapped_column(
        ACCOUNT_ID, ForeignKey("settlement_account.id"), primary_key=True
    )
    balance_fen: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SettlementJournal(Base):
    """One balanced journal entry (凭证): what it is, what it settles, who posted it when, the
    idempotency key it answers, the rules it was checked under and its digest (the leaf hash
    its day's Merkle root is built from). Never updated or deleted."""

    __tablename__ = "settlement_journal"
    __table_args__ = (
        UniqueConstraint("scope", "idempotency_key"),
        Index("ix_settlement_journal_posted", "posted_at", "id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str | None] = mapped_column(String(128), index=True)
    scope: Mapped[str] = mapped_column(String(40))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    hold_id: Mapped[str | None] = mapped_column(ID, index=True)
    related_journal_id: Mapped[str | None] = mapped_column(ID, index=True)
    batch_id: Mapped[str | None] = mapped_column(ID, index=True)
    bank_reference: Mapped[str | None] = mapped_column(String(40))
    memo: Mapped[str] = mapped_column(String(200))
    actor_user_id: Mapped[str | None] = mapped_column(ID)
    actor_name: Mapped[str] = mapped_column(String(64))
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rules: Mapped[list[str]] = mapped_column(JSON)
    rules_version: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64))


class SettlementLine(Base):
    """One line of a journal: the account, the signed amount (credit > 0), its kind, the
    account's sequence number (1, 2, 3 … without gaps) and the balance after it. Never updated
    or deleted."""

    __tablename__ = "settlement_line"
    __table_args__ = (
        UniqueConstraint("account_id", "seq"),
        Index("ix_settlement_line_account_posted", "account_id", "posted_at"),
    )

    id: Mapped[int] = mapped_column(_BIGINT_PK, primary_key=True, autoincrement=True)
    journal_id: Mapped[str] = mapped_column(ID, ForeignKey("settlement_journal.id"), index=True)
    account_id: Mapped[str] = mapped_column(ACCOUNT_ID, ForeignKey("settlement_account.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    balance_after_fen: Mapped[int] = mapped_column(BigInteger)
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SettlementHold(Base):
    """Money frozen in escrow for what ``reference`` names (an order, a bid deposit): how much
    was frozen and how much was released or paid out of it since (derived from its journals)."""

    __tablename__ = "settlement_hold"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    party_id: Mapped[str] = mapped_column(ID, ForeignKey("party.id"), index=True)
    reference: Mapped[str] = mapped_column(String(128), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    released_fen: Mapped[int] = mapped_column(BigInteger)
    captured_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(8))  # open | closed (nothing left frozen)
    freeze_journal_id: Mapped[str] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SettlementBankTransfer(Base):
    """The local bank backend's own record of a transfer into or out of the custody account,
    with the bank's reference (no real money moves). A real gateway keeps its records at the
    bank; reconciliation compares these with the custody account."""

    __tablename__ = "settlement_bank_transfer"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    direction: Mapped[str] = mapped_column(String(8))  # in | out
    party_id: Mapped[str] = mapped_column(ID, ForeignKey("party.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    bank_reference: Mapped[str] = mapped_column(String(40), unique=True)
    journal_id: Mapped[str] = mapped_column(ID, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SettlementBatch(Base):
    """A settlement batch (many captures in one pass), keyed for idempotency like a journal."""

    __tablename__ = "settlement_batch"
    __table_args__ = (UniqueConstraint("scope", "idempotency_key"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    scope: Mapped[str] = mapped_column(String(40))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    instructions: Mapped[int] = mapped_column(Integer)
    settled: Mapped[int] = mapped_column(Integer)
    replayed: Mapped[int] = mapped_column(Integer)
    total_fen: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[str] = mapped_column(String(64))
    ledger_index: Mapped[int | None] = mapped_column(BigInteger)
    actor_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SettlementReconciliation(Base):
    """One reconciliation of the whole book: its verdict, figures, problems and ledger entry."""

    __tablename__ = "settlement_reconciliation"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor_user_id: Mapped[str | None] = mapped_column(ID)
    actor_name: Mapped[str] = mapped_column(String(64))
    balanced: Mapped[bool] = mapped_column(Boolean)
    sum_fen: Mapped[str] = mapped_column(String(40))  # exact whatever its size (a broken book)
    journals: Mapped[int] = mapped_column(BigInteger)
    accounts: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[int] = mapped_column(BigInteger)
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    days_anchored: Mapped[int] = mapped_column(Integer)
    ledger_index: Mapped[int | None] = mapped_column(BigInteger)


class SettlementDayAnchor(Base):
    """A closed day's journals (Asia/Shanghai date) anchored by the RFC 9162 Merkle root of
    their digests, in (posted_at, id) order, appended to the transparency ledger."""

    __tablename__ = "settlement_day_anchor"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    journals: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[str] = mapped_column(String(64))
    ledger_index: Mapped[int] = mapped_column(BigInteger)
    anchored_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --------------------------------------------------------------------- append-only, in the ORM

MSG_APPEND_ONLY: Final = N_(
    "Journals and their lines are never changed or deleted; post a correcting journal instead "
    "(rule {rule})."
)
APPEND_ONLY_RULE: Final = "SET-APPEND-ONLY"


def _refuse(*_: Any) -> None:
    raise LedgerTampering(MSG_APPEND_ONLY, rule=APPEND_ONLY_RULE)


for _model in (SettlementJournal, SettlementLine):
    event.listen(_model, "before_update", _refuse)
    event.listen(_model, "before_delete", _refuse)


@event.listens_for(Session, "do_orm_execute")
def _guard_bulk(state: ORMExecuteState) -> None:
    """Refuse a bulk ``update()`` / ``delete()`` of journals or lines run through a session."""
    if state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in APPEND_ONLY_TABLES:
            _refuse()
