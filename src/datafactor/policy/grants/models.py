"""Tables of authorisations: grants, their history, and the per-year number counter.

A ``PolicyGrant`` row is one grant of use (授权) of a registry asset by its holder (or an agent
under a mandate) to a grantee, under the ODRL policy it stores, for a term. Party, asset, right
and registry application ids are kept by id only: they belong to other domains. The history
(``PolicyGrantEvent``) is append-only: one row per state change, with who, why and the rules.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from datafactor.db import ID, Base, UTCDateTime, new_id, utcnow


class PolicyGrant(Base):
    """One authorisation: who grants what to whom, under which policy, for how long, where it
    stands and why. ``policy`` is the policy as the engine reads it (target and assignee filled
    in), ``policy_hash`` its SHA-256 (the compiled policy is cached by it). ``uses`` counts the
    uses permitted so far; ``max_uses`` is the policy's bound (None: unbounded).
    ``licence_application_id`` is the registry's licence application filed on approval,
    ``licence_right_id`` / ``licence_certificate`` the processing-use right and certificate once
    certified. ``record``/``signature``/``signing_key``/``ledger_index`` are the grant's
    certificate: the signed record of its approval (or refusal) and its ledger entry."""

    __tablename__ = "policy_grant"
    __table_args__ = (
        Index("ix_policy_grant_grantee_state", "grantee_id", "state"),
        Index("ix_policy_grant_holder_state", "holder_id", "state"),
        Index("ix_policy_grant_agent_state", "agent_id", "state"),
        Index("ix_policy_grant_reference", "regime", "reference_id"),
        Index("ix_policy_grant_state_end", "state", "term_end"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    regime: Mapped[str] = mapped_column(String(32))
    reference_id: Mapped[str | None] = mapped_column(ID)
    mandate: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    holder_id: Mapped[str] = mapped_column(ID)
    agent_id: Mapped[str] = mapped_column(ID)
    grantee_id: Mapped[str] = mapped_column(ID)
    asset_id: Mapped[str] = mapped_column(ID, index=True)
    right_id: Mapped[str] = mapped_column(ID)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    policy_hash: Mapped[str] = mapped_column(String(64))
    scope: Mapped[dict[str, Any]] = mapped_column(JSON)
    term_start: Mapped[date] = mapped_column(Date)
    term_end: Mapped[date] = mapped_column(Date)
    purpose_note: Mapped[str] = mapped_column(Text, default="")
    use_class: Mapped[str | None] = mapped_column(String(32))
    fee_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    max_uses: Mapped[int | None] = mapped_column(Integer)
    licence_application_id: Mapped[str | None] = mapped_column(ID, index=True)
    licence_right_id: Mapped[str | None] = mapped_column(ID, index=True)
    licence_certificate: Mapped[str | None] = mapped_column(String(32))
    record: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    signature: Mapped[str | None] = mapped_column(Text)
    signing_key: Mapped[str | None] = mapped_column(Text)
    ledger_index: Mapped[int | None] = mapped_column(BigInteger)
    state_since: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text, default="")
    # When set, ``reason`` is a msgid (a reason the system gave) to translate with these.
    reason_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    rules: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def remaining(self) -> int | None:
        return None if self.max_uses is None else max(self.max_uses - self.uses, 0)


class PolicyGrantEvent(Base):
    """One step of a grant's history (append-only): the action, the states, the role and actor,
    the reason and the rule ids, and the ledger entry of its decision record when it has one."""

    __tablename__ = "policy_grant_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("policy_grant.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    actor_user_id: Mapped[str | None] = mapped_column(ID)
    actor_name: Mapped[str] = mapped_column(String(128))
    actor_party_id: Mapped[str | None] = mapped_column(ID)
    reason: Mapped[str] = mapped_column(Text, default="")
    reason_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    rules: Mapped[list[str]] = mapped_column(JSON, default=list)
    on: Mapped[date] = mapped_column(Date)
    ledger_index: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PolicyGrantSerial(Base):
    """The last grant number issued in a year (row-locked while a number is taken)."""

    __tablename__ = "policy_grant_serial"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_serial: Mapped[int] = mapped_column(Integer, default=0)
