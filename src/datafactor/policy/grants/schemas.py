"""API shapes of authorisations: a request or offer of a grant, a decision, a reason, a use, and
a grant as the API answers it (with its history)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from datafactor.policy.grants.domain import GrantDraft
from datafactor.policy.grants.models import PolicyGrant, PolicyGrantEvent


class Strict(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class GrantCreate(Strict):
    """The grantee asks for a grant in its own name."""

    asset_id: str = Field(min_length=1, max_length=36, description="The registry asset")
    policy: dict[str, Any] = Field(description="ODRL 2.2 JSON-LD; target and assignee filled in")
    term_start: date
    term_end: date
    right_id: str | None = Field(None, max_length=36, description="The grantor's right")
    purpose_note: str = Field("", max_length=2000)
    use_class: str | None = Field(None, max_length=32)
    fee_fen: int = Field(0, ge=0, description="Fee in fen (分), recorded as given")

    def draft(self, grantee_id: str) -> GrantDraft:
        return GrantDraft(grantee_id=grantee_id, **self.model_dump())


class GrantOffer(GrantCreate):
    """The grantor grants directly to a grantee."""

    grantee_id: str = Field(min_length=1, max_length=36)

    def draft(self, grantee_id: str | None = None) -> GrantDraft:
        data = self.model_dump()
        return GrantDraft(**data)


class GrantDecide(Strict):
    approve: bool
    reason: str = Field("", max_length=2000)


class GrantReason(Strict):
    reason: str = Field(min_length=1, max_length=2000)


class UseCreate(Strict):
    request: dict[str, Any] = Field(
        description="A policy request (action, purpose, channel, spatial, fields, industry, "
        "pay_amount); target, assignee, time and uses so far are the grant's"
    )
    dry_run: bool = False


class UsePublic(BaseModel):
    decision: str
    reasons: list[str]
    duties: list[str]
    rules: list[str]
    uses: int
    remaining: int | None
    limits: list[dict[str, Any]] | None = None


class GrantEventPublic(BaseModel):
    action: str
    source: str | None
    target: str
    role: str
    actor: str
    reason: str
    rules: list[str]
    on: date
    at: datetime
    ledger_index: int | None

    @classmethod
    def of(cls, e: PolicyGrantEvent, reason: str) -> GrantEventPublic:
        return cls(
            action=e.action,
            source=e.source,
            target=e.target,
            role=e.role,
            actor=e.actor_name,
            reason=reason,
            rules=list(e.rules),
            on=e.on,
            at=e.at,
            ledger_index=e.ledger_index,
        )


class GrantPublic(BaseModel):
    id: str
    number: str
    state: str
    regime: str
    reference_id: str | None
    holder_id: str
    agent_id: str
    grantee_id: str
    asset_id: str
    right_id: str
    policy: dict[str, Any]
    policy_hash: str
    scope: dict[str, Any]
    term_start: date
    term_end: date
    purpose_note: str
    use_class: str | None
    fee_fen: int
    uses: int
    max_uses: int | None
    remaining: int | None
    licence_application_id: str | None
    licence_right_id: str | None
    licence_certificate: str | None
    ledger_index: int | None
    state_since: date
    reason: str
    rules: list[str]
    created_at: datetime
    updated_at: datetime
    history: list[GrantEventPublic] | None = None

    @classmethod
    def of(
        cls,
        g: PolicyGrant,
        reason: str,
        history: list[GrantEventPublic] | None = None,
    ) -> GrantPublic:
        return cls(
            id=g.id,
            number=g.number,
            state=g.state,
            regime=g.regime,
            reference_id=g.reference_id,
            holder_id=g.holder_id,
            agent_id=g.agent_id,
            grantee_id=g.grantee_id,
            asset_id=g.asset_id,
            right_id=g.right_id,
            policy=g.policy,
            policy_hash=g.policy_hash,
            scope=g.scope,
            term_start=g.term_start,
            term_end=g.term_end,
            purpose_note=g.purpose_note,
            use_class=g.use_class,
            fee_fen=g.fee_fen,
            uses=g.uses,
            max_uses=g.max_uses,
            remaining=g.remaining,
            licence_application_id=g.licence_application_id,
            licence_right_id=g.licence_right_id,
            licence_certificate=g.licence_certificate,
            ledger_index=g.ledger_index,
            state_since=g.state_since,
            reason=reason,
            rules=list(g.rules),
            created_at=g.created_at,
            updated_at=g.updated_at,
            history=history,
        )
