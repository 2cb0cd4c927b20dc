"""Tables of public data authorised operation: agreements and the data they cover, the bureau's
fee caps and profit rates, the operators' published fees, the uses made under agreements, the
operators' costs and their filed annual reports.

Caps, rates and fees are never updated in place: each change is a new row with its effective
date, so the one in force on any day — and the history — is a query (``domain.in_force``). A
use row carries what the operation rules decided (class, purpose, unit, quantity, the unit fee,
the fee and the cap checked); the grant it became (``grant_id``) lives in the grants tables and
holds the state. Party ids are ``party.id``s; assets are registry asset ids (another domain: by
id only, with the name as it was when recorded).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from datafactor.db import ID, Base, UTCDateTime, new_id, utcnow


class OperationAgreement(Base):
    """An authorisation agreement (授权运营协议) between an implementing body (实施机构) and a
    public-data operator (运营机构), with the recorded procedure that selected the operator.

    ``scope`` is the registry ``Scope.as_dict`` form every use under the agreement stays within
    (delivery modes: api and sandbox only); ``channels`` the delivery channels allowed. ``state``
    walks active → suspended / terminated / expired (``domain.TRANSITIONS``); ``state_since`` and
    ``state_reason`` say when and why it last changed. ``ledger_index`` is the entry the signed
    agreement was appended as; ``rules`` the rule ids applied when it was signed.
    """

    __tablename__ = "policy_operation_agreement"
    __table_args__ = (
        UniqueConstraint("body_id", "number"),
        Index("ix_policy_operation_agreement_operator_state", "operator_id", "state"),
        Index("ix_policy_operation_agreement_state_end", "state", "term_end"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(64))
    body_id: Mapped[str] = mapped_column(ForeignKey("party.id"), index=True)
    body_name: Mapped[str] = mapped_column(String(128))
    operator_id: Mapped[str] = mapped_column(ForeignKey("party.id"))
    operator_name: Mapped[str] = mapped_column(String(128))
    procedure: Mapped[str] = mapped_column(String(32))
    procedure_reference: Mapped[str] = mapped_column(String(128))
    selected_on: Mapped[date] = mapped_column(Date)
    selection_record: Mapped[str] = mapped_column(Text)
    signed_on: Mapped[date] = mapped_column(Date)
    term_start: Mapped[date] = mapped_column(Date)
    term_end: Mapped[date] = mapped_column(Date)
    scope: Mapped[dict[str, Any]] = mapped_column(JSON)
    channels: Mapped[list[str]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    state_since: Mapped[date] = mapped_column(Date)
    state_reason: Mapped[str] = mapped_column(Text, default="")
    # The grants a suspension suspended (and a resumption resumes); empty otherwise.
    suspended_grants: Mapped[list[str]] = mapped_column(JSON, default=list)
    ledger_index: Mapped[int | None] = mapped_column(BigInteger)
    rules: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OperationAgreementAsset(Base):
    """One registered public data set (registry asset) an agreement covers."""

    __tablename__ = "policy_operation_agreement_asset"

    agreement_id: Mapped[str] = mapped_column(
        ForeignKey("policy_operation_agreement.id"), primary_key=True
    )
    asset_id: Mapped[str] = mapped_column(ID, primary_key=True, index=True)
    asset_name: Mapped[str] = mapped_column(String(256))


class OperationFeeCap(Base):
    """A service-fee cap (上限收费标准, government-guided price) per fee unit, set by the
    big-data bureau from ``effective_from``, with the document that sets it."""

    __tablename__ = "policy_operation_fee_cap"
    __table_args__ = (Index("ix_policy_operation_fee_cap_unit_from", "unit", "effective_from"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    unit: Mapped[str] = mapped_column(String(32))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    effective_from: Mapped[date] = mapped_column(Date)
    source_document: Mapped[str] = mapped_column(String(256))
    note: Mapped[str] = mapped_column(Text, default="")
    set_by_party_id: Mapped[str] = mapped_column(ID)
    set_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OperationProfitRate(Base):
    """The reasonable-profit rate (合理利润率, basis points) the allowed revenue is computed
    with, set by the big-data bureau from ``effective_from``."""

    __tablename__ = "policy_operation_profit_rate"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    rate_bp: Mapped[int] = mapped_column(Integer)
    effective_from: Mapped[date] = mapped_column(Date, index=True)
    source_document: Mapped[str] = mapped_column(String(256))
    note: Mapped[str] = mapped_column(Text, default="")
    set_by_party_id: Mapped[str] = mapped_column(ID)
    set_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OperationFee(Base):
    """A fee an operator publishes (收费公示) for one data set and fee unit, from
    ``effective_from``; ``cap_fen`` is the cap it was checked against when published."""

    __tablename__ = "policy_operation_fee"
    __table_args__ = (
        Index("ix_policy_operation_fee_operator_asset", "operator_id", "asset_id", "unit"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    operator_id: Mapped[str] = mapped_column(ForeignKey("party.id"))
    operator_name: Mapped[str] = mapped_column(String(128))
    asset_id: Mapped[str] = mapped_column(ID)
    asset_name: Mapped[str] = mapped_column(String(256))
    unit: Mapped[str] = mapped_column(String(32))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    effective_from: Mapped[date] = mapped_column(Date)
    cap_fen: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text, default="")
    published_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OperationUse(Base):
    """One use of an agreement's data (a grant made under the agreement), as the operation rules
    classed and priced it. ``outcome`` is requested until the operator decides (approved or
    refused; an offered use is approved at once); ``decided_on`` dates the paid-use income."""

    __tablename__ = "policy_operation_use"
    __table_args__ = (
        Index("ix_policy_operation_use_operator_decided", "operator_id", "decided_on"),
        Index("ix_policy_operation_use_grantee", "grantee_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    grant_id: Mapped[str] = mapped_column(ID, unique=True)
    grant_number: Mapped[str] = mapped_column(String(32))
    agreement_id: Mapped[str] = mapped_column(
        ForeignKey("policy_operation_agreement.id"), index=True
    )
    operator_id: Mapped[str] = mapped_column(ID)
    body_id: Mapped[str] = mapped_column(ID)
    grantee_id: Mapped[str] = mapped_column(ID)
    grantee_name: Mapped[str] = mapped_column(String(128))
    asset_id: Mapped[str] = mapped_column(ID)
    asset_name: Mapped[str] = mapped_column(String(256))
    use_class: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(32))
    regions: Mapped[list[str] | None] = mapped_column(JSON)
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)  # delivery: api, sandbox
    unit: Mapped[str | None] = mapped_column(String(32))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_fee_fen: Mapped[int] = mapped_column(BigInteger)
    fee_fen: Mapped[int] = mapped_column(BigInteger)
    cap_fen: Mapped[int | None] = mapped_column(BigInteger)
    term_start: Mapped[date] = mapped_column(Date)
    term_end: Mapped[date] = mapped_column(Date)
    purpose_note: Mapped[str] = mapped_column(Text, default="")
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    rules: Mapped[list[str]] = mapped_column(JSON, default=list)
    requested_by: Mapped[str | None] = mapped_column(ID)
    decided_by: Mapped[str | None] = mapped_column(ID)
    decided_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OperationCost(Base):
    """One cost an operator records for a year (成本), by category, in whole fen."""

    __tablename__ = "policy_operation_cost"
    __table_args__ = (Index("ix_policy_operation_cost_operator_year", "operator_id", "year"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    operator_id: Mapped[str] = mapped_column(ForeignKey("party.id"))
    year: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(32))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text, default="")
    recorded_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OperationReport(Base):
    """An annual report (年度经营情况报告) as the operator filed it: the report generated from the
    records on filing, frozen (``content``), its SHA-256 over canonical JSON (``digest``) and the
    ledger entry it was appended as. One per operator and year."""

    __tablename__ = "policy_operation_report"
    __table_args__ = (UniqueConstraint("operator_id", "year"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    operator_id: Mapped[str] = mapped_column(ForeignKey("party.id"))
    year: Mapped[int] = mapped_column(Integer)
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(64))
    ledger_index: Mapped[int | None] = mapped_column(BigInteger)
    filed_on: Mapped[date] = mapped_column(Date)
    filed_by: Mapped[str | None] = mapped_column(ID)
    filed_by_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
