"""Tables of data trusts: deeds, their trust property, the versioned revenue split, history,
income with its distribution lines, misuse records, and the per-year deed serial.

The rows hold what the pure rules (``trusts.domain``) work on. Party ids are ``party.id``s;
asset ids are the registry's (``registry_asset.id``), with the settlor's holding right and the
asset's name as they were when the deed was drafted. Grants under a deed live in the grants
core's tables (``policy_grant``, regime ``data_trust``, reference = the deed id).
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


class PolicyTrustDeed(Base):
    """A trust deed (信托合同): settlor, trustee, purpose, scope, term, fee and its state.

    ``version`` is the revenue split in force now (``policy_trust_split``); ``state_since`` the
    day the state began. A proposal to end the deed early waits in
    ``termination_proposed_by`` (the proposing party) until the other party agrees.
    """

    __tablename__ = "policy_trust_deed"
    __table_args__ = (Index("ix_policy_trust_deed_state_term", "state", "term_start", "term_end"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(Text)
    settlor_id: Mapped[str] = mapped_column(ForeignKey("party.id"), index=True)
    trustee_id: Mapped[str] = mapped_column(ForeignKey("party.id"), index=True)
    scope: Mapped[dict[str, Any]] = mapped_column(JSON)
    term_start: Mapped[date] = mapped_column(Date)
    term_end: Mapped[date] = mapped_column(Date)
    trustee_fee_bp: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    state_since: Mapped[date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer, default=1)
    signed_on: Mapped[date | None] = mapped_column(Date)
    accepted_on: Mapped[date | None] = mapped_column(Date)
    activated_on: Mapped[date | None] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date)
    end_reason: Mapped[str] = mapped_column(Text, default="")
    order_reference: Mapped[str] = mapped_column(String(128), default="")
    termination_proposed_by: Mapped[str | None] = mapped_column(ID)
    termination_reason: Mapped[str] = mapped_column(Text, default="")
    rules_version: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PolicyTrustAsset(Base):
    """One registered asset of a deed's trust property, with the settlor's holding right."""

    __tablename__ = "policy_trust_asset"

    deed_id: Mapped[str] = mapped_column(ForeignKey("policy_trust_deed.id"), primary_key=True)
    asset_id: Mapped[str] = mapped_column(ForeignKey("registry_asset.id"), primary_key=True)
    right_id: Mapped[str] = mapped_column(ID)
    asset_name: Mapped[str] = mapped_column(String(256))


class PolicyTrustSplit(Base):
    """One version of a deed's revenue split, in force from ``effective_on``; its shares are
    ``policy_trust_share`` rows. Version 1 takes effect on the term's start; each recorded
    amendment adds a version (never edits one), with its ledger entry."""

    __tablename__ = "policy_trust_split"

    deed_id: Mapped[str] = mapped_column(ForeignKey("policy_trust_deed.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    effective_on: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text, default="")
    ledger_index: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PolicyTrustShare(Base):
    """A beneficiary's share in one version of the split (basis points of the income left
    after the trustee's fee)."""

    __tablename__ = "policy_trust_share"
    __table_args__ = (Index("ix_policy_trust_share_beneficiary", "beneficiary_id", "deed_id"),)

    deed_id: Mapped[str] = mapped_column(ForeignKey("policy_trust_deed.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    beneficiary_id: Mapped[str] = mapped_column(ForeignKey("party.id"), primary_key=True)
    share_bp: Mapped[int] = mapped_column(Integer)


class PolicyTrustEvent(Base):
    """One step of a deed's history: what was done, by whom (role, party, user), why, the rule
    ids applied and the ledger entry it produced, if any."""

    __tablename__ = "policy_trust_event"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    deed_id: Mapped[str] = mapped_column(ForeignKey("policy_trust_deed.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    source: Mapped[str | None] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(16))
    actor_party_id: Mapped[str | None] = mapped_column(ID)
    actor_user_id: Mapped[str | None] = mapped_column(ID)
    actor_name: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    rules: Mapped[list[str]] = mapped_column(JSON, default=list)
    ledger_index: Mapped[int | None] = mapped_column(Integer)
    on: Mapped[date] = mapped_column(Date)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PolicyTrustIncome(Base):
    """Trust income recorded by the trustee (whole fen), split at once by the version of the
    split in force on ``received_on`` and the deed's fee (both kept here)."""

    __tablename__ = "policy_trust_income"
    __table_args__ = (Index("ix_policy_trust_income_deed", "deed_id", "received_on"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    deed_id: Mapped[str] = mapped_column(ForeignKey("policy_trust_deed.id"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    received_on: Mapped[date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(16))
    grant_id: Mapped[str | None] = mapped_column(ID, index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer)
    trustee_fee_bp: Mapped[int] = mapped_column(Integer)
    recorded_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PolicyTrustDistribution(Base):
    """One distribution line of an income: the trustee's fee or a beneficiary's amount, to be
    paid by the exchange's settlement (``status`` pending → paid, ``settlement_reference``)."""

    __tablename__ = "policy_trust_distribution"
    __table_args__ = (
        UniqueConstraint("income_id", "role", "party_id"),
        Index("ix_policy_trust_distribution_party", "party_id", "deed_id"),
        Index("ix_policy_trust_distribution_deed", "deed_id", "status"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    income_id: Mapped[str] = mapped_column(ForeignKey("policy_trust_income.id"))
    deed_id: Mapped[str] = mapped_column(ForeignKey("policy_trust_deed.id"))
    party_id: Mapped[str] = mapped_column(ForeignKey("party.id"))
    role: Mapped[str] = mapped_column(String(16))
    share_bp: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(8), default="pending")
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    settlement_reference: Mapped[str | None] = mapped_column(String(64))


class PolicyTrustMisuse(Base):
    """Data misuse the trustee found under a grant of the deed (a dishonesty event for the
    credit system); the grant is suspended in the same transaction."""

    __tablename__ = "policy_trust_misuse"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    deed_id: Mapped[str] = mapped_column(ForeignKey("policy_trust_deed.id"), index=True)
    grant_id: Mapped[str] = mapped_column(ID, index=True)
    grantee_id: Mapped[str] = mapped_column(ForeignKey("party.id"))
    description: Mapped[str] = mapped_column(Text)
    found_on: Mapped[date] = mapped_column(Date)
    recorded_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PolicyTrustSerial(Base):
    """The last deed serial of a year; drafting locks this row, so numbers are never reused."""

    __tablename__ = "policy_trust_serial"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_serial: Mapped[int] = mapped_column(Integer, default=0)
