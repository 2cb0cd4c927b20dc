"""API shapes of the money ledger: what a client sends (``FundsCreate``) and what it reads back
(accounts, journals with their lines, statements, reconciliations). Amounts are integer fen;
``*_yuan`` fields repeat them as exact decimal text for people (``1234.56``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from datafactor.settlement.domain import CHART, AccountKind, yuan_text
from datafactor.settlement.models import SettlementReconciliation
from datafactor.settlement.services import AccountRow, JournalRecord, LineRecord, StatementLine

T = TypeVar("T")


def _yuan(fen: int) -> str:
    return yuan_text(fen).replace(",", "")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class FundsCreate(BaseModel):
    """A deposit or a withdrawal: the amount in fen (分) and an optional note. The request must
    carry an ``Idempotency-Key`` header."""

    model_config = ConfigDict(extra="forbid")

    amount_fen: StrictInt = Field(
        description="Whole fen (分) as a JSON integer, more than 0 and at most 10^15 (rules/settlement.yaml). "
        "12.50 yuan is 1250."
    )
    memo: str = Field("", max_length=200, description="A note shown on the statement.")


class AccountPublic(BaseModel):
    id: str
    party_id: str | None
    kind: str
    code: str = Field(description="The chart of accounts' number (docs/settlement.md).")
    name: str
    balance_fen: int = Field(
        description="Credit-positive: what the exchange owes the holder (the custody bank "
        "account is negative: the funds it holds)."
    )
    balance_yuan: str
    lines: int
    updated_at: datetime

    @classmethod
    def of(cls, row: AccountRow) -> AccountPublic:
        return cls(
            id=row.id,
            party_id=row.party_id,
            kind=row.kind,
            code=row.code,
            name=CHART[AccountKind(row.kind)].name,
            balance_fen=row.balance_fen,
            balance_yuan=_yuan(row.balance_fen),
            lines=row.lines,
            updated_at=row.updated_at,
        )


class AccountList(BaseModel):
    items: list[AccountPublic]
    total: int


class LinePublic(BaseModel):
    account_id: str | None = Field(description="None on another party's account.")
    account_kind: str
    party_id: str | None
    amount_fen: int = Field(description="Positive credits the account, negative debits it.")
    amount_yuan: str
    kind: str
    seq: int | None
    balance_after_fen: int | None = Field(description="None on another party's account.")

    @classmethod
    def of(cls, line: LineRecord) -> LinePublic:
        hidden = not line.account_id
        return cls(
            account_id=line.account_id or None,
            account_kind=line.account_kind,
            party_id=line.party_id,
            amount_fen=line.amount_fen,
            amount_yuan=_yuan(line.amount_fen),
            kind=line.kind,
            seq=None if hidden else line.seq,
            balance_after_fen=None if hidden else line.balance_after_fen,
        )


class JournalPublic(BaseModel):
    id: str
    kind: str
    reference: str | None
    idempotency_key: str | None = Field(description="Shown to the party that sent it.")
    hold_id: str | None
    related_journal_id: str | None
    batch_id: str | None
    bank_reference: str | None
    memo: str
    actor: str
    posted_at: datetime
    rules: list[str] = Field(
        description="The rule ids (rules/settlement.yaml) it was checked under."
    )
    rules_version: str
    digest: str = Field(
        description="RFC 9162 leaf hash of the journal; its day's Merkle root is "
        "anchored in the transparency ledger."
    )
    lines: list[LinePublic]

    @classmethod
    def of(cls, record: JournalRecord, *, show_key: bool = True) -> JournalPublic:
        return cls(
            id=record.id,
            kind=record.kind,
            reference=record.reference,
            idempotency_key=record.idempotency_key if show_key else None,
            hold_id=record.hold_id,
            related_journal_id=record.related_journal_id,
            batch_id=record.batch_id,
            bank_reference=record.bank_reference,
            memo=record.memo,
            actor=record.actor_name,
            posted_at=record.posted_at,
            rules=list(record.rules),
            rules_version=record.rules_version,
            digest=record.digest,
            lines=[LinePublic.of(x) for x in record.lines],
        )


class StatementLinePublic(BaseModel):
    seq: int
    posted_at: datetime
    journal_id: str
    journal_kind: str
    kind: str
    reference: str | None
    memo: str
    bank_reference: str | None
    amount_fen: int
    amount_yuan: str
    balance_after_fen: int = Field(description="The running balance after this line.")
    balance_after_yuan: str

    @classmethod
    def of(cls, line: StatementLine) -> StatementLinePublic:
        return cls(
            seq=line.seq,
            posted_at=line.posted_at,
            journal_id=line.journal_id,
            journal_kind=line.journal_kind,
            kind=line.kind,
            reference=line.reference,
            memo=line.memo,
            bank_reference=line.bank_reference,
            amount_fen=line.amount_fen,
            amount_yuan=_yuan(line.amount_fen),
            balance_after_fen=line.balance_after_fen,
            balance_after_yuan=_yuan(line.balance_after_fen),
        )


class StatementPublic(BaseModel):
    account: AccountPublic
    period_from: date | None = Field(alias="from", serialization_alias="from")
    period_to: date | None = Field(alias="to", serialization_alias="to")
    opening_balance_fen: int
    closing_balance_fen: int
    items: list[StatementLinePublic]
    total: int
    limit: int
    offset: int

    model_config = ConfigDict(populate_by_name=True)


class ReconciliationPublic(BaseModel):
    id: str
    run_at: datetime
    actor: str
    balanced: bool
    sum_fen: int
    journals: int
    accounts: int
    lines: int
    problems: list[dict[str, Any]]
    days_anchored: int
    ledger_index: int | None

    @classmethod
    def of(cls, row: SettlementReconciliation) -> ReconciliationPublic:
        return cls(
            id=row.id,
            run_at=row.run_at,
            actor=row.actor_name,
            balanced=row.balanced,
            sum_fen=int(row.sum_fen),
            journals=row.journals,
            accounts=row.accounts,
            lines=row.lines,
            problems=list(row.problems),
            days_anchored=row.days_anchored,
            ledger_index=row.ledger_index,
        )
