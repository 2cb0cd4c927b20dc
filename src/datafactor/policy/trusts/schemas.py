"""API shapes of data trusts: a deed's draft, steps on it, amendments, income, grants under a
deed, and their public forms (``…Create`` in, ``…Public`` out). Unknown fields are refused."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from datafactor.policy.trusts.domain import IncomeSource, Share
from datafactor.policy.trusts.models import (
    PolicyTrustAsset,
    PolicyTrustDeed,
    PolicyTrustDistribution,
    PolicyTrustEvent,
    PolicyTrustIncome,
    PolicyTrustMisuse,
)
from datafactor.policy.trusts.services import (
    BenefitRow,
    DeedDraft,
    IncomeView,
    Total,
    VersionView,
)

Id = Annotated[str, Field(min_length=1, max_length=36)]


class Strict(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class BeneficiaryShare(Strict):
    party_id: Id
    share_bp: int = Field(description="Basis points of the income after the trustee's fee")


class ScopeIn(Strict):
    """The registry's scope form: each dimension a list, or null for unrestricted."""

    purposes: list[str] | None = Field(None, max_length=50)
    fields: list[str] | None = Field(None, max_length=2000)
    regions: list[str] | None = Field(None, max_length=200)
    delivery_modes: list[str] | None = Field(None, max_length=10)


class DeedCreate(Strict):
    title: str = Field(max_length=200)
    purpose: str = Field(max_length=4000)
    trustee_id: Id
    asset_ids: list[Id] = Field(max_length=100)
    scope: ScopeIn
    term_start: date
    term_end: date
    trustee_fee_bp: int = Field(description="The trustee's fee, basis points of each income")
    beneficiaries: list[BeneficiaryShare] = Field(max_length=200)

    def draft(self) -> DeedDraft:
        return DeedDraft(
            title=self.title,
            purpose=self.purpose,
            trustee_id=self.trustee_id,
            asset_ids=tuple(self.asset_ids),
            scope=self.scope.model_dump(),
            term_start=self.term_start,
            term_end=self.term_end,
            trustee_fee_bp=self.trustee_fee_bp,
            beneficiaries=tuple(Share(b.party_id, b.share_bp) for b in self.beneficiaries),
        )


class Reason(Strict):
    reason: str = Field("", max_length=2000)


class Termination(Strict):
    reason: str = Field(max_length=2000)
    order_reference: str = Field(
        "", max_length=128, description="A regulator's order: its reference number"
    )


class AmendmentCreate(Strict):
    beneficiaries: list[BeneficiaryShare] = Field(max_length=200)
    reason: str = Field(max_length=2000)
    effective_on: date | None = Field(None, description="Default: today (or the term's start)")

    def shares(self) -> tuple[Share, ...]:
        return tuple(Share(b.party_id, b.share_bp) for b in self.beneficiaries)


class IncomeCreate(Strict):
    amount_fen: int = Field(description="Whole fen (分): 12.50 yuan is 1250")
    received_on: date
    source: IncomeSource
    grant_id: str | None = Field(None, max_length=36)
    description: str = Field("", max_length=2000)


class UseCreate(Strict):
    """A use of the trust property: the trustee's grant, or a party's request."""

    asset_id: Id
    grantee_id: Id | None = Field(None, description="The trustee's grant: to whom")
    policy: dict[str, Any] = Field(description="ODRL 2.2 JSON-LD")
    term_start: date
    term_end: date
    purpose_note: str = Field("", max_length=2000)
    fee_fen: int = Field(0, ge=0)


class UseDecision(Strict):
    grant_id: Id
    approve: bool
    reason: str = Field("", max_length=2000)


class MisuseCreate(Strict):
    grant_id: Id
    description: str = Field(max_length=4000)


class SharePublic(BaseModel):
    party_id: str
    party_name: str
    share_bp: int


class VersionPublic(BaseModel):
    version: int
    effective_on: date
    reason: str
    ledger_index: int | None
    shares: list[SharePublic]

    @classmethod
    def of(cls, v: VersionView, names: dict[str, str]) -> VersionPublic:
        return cls(
            version=v.version,
            effective_on=v.effective_on,
            reason=v.reason,
            ledger_index=v.ledger_index,
            shares=[
                SharePublic(
                    party_id=s.party_id, party_name=names.get(s.party_id, ""), share_bp=s.share_bp
                )
                for s in v.shares
            ],
        )


class AssetPublic(BaseModel):
    asset_id: str
    asset_name: str
    right_id: str

    @classmethod
    def of(cls, row: PolicyTrustAsset) -> AssetPublic:
        return cls(asset_id=row.asset_id, asset_name=row.asset_name, right_id=row.right_id)


class EventPublic(BaseModel):
    action: str
    source: str | None
    target: str
    actor: str
    actor_name: str
    reason: str
    rules: list[str]
    ledger_index: int | None
    on: date
    at: datetime

    @classmethod
    def of(cls, e: PolicyTrustEvent) -> EventPublic:
        return cls(
            action=e.action,
            source=e.source,
            target=e.target,
            actor=e.actor,
            actor_name=e.actor_name,
            reason=e.reason,
            rules=list(e.rules or ()),
            ledger_index=e.ledger_index,
            on=e.on,
            at=e.at,
        )


class DeedSummary(BaseModel):
    id: str
    number: str
    title: str
    settlor_id: str
    trustee_id: str
    state: str
    state_since: date
    term_start: date
    term_end: date
    trustee_fee_bp: int
    version: int

    @classmethod
    def of(cls, d: PolicyTrustDeed) -> DeedSummary:
        return cls(
            id=d.id,
            number=d.number,
            title=d.title,
            settlor_id=d.settlor_id,
            trustee_id=d.trustee_id,
            state=d.state,
            state_since=d.state_since,
            term_start=d.term_start,
            term_end=d.term_end,
            trustee_fee_bp=d.trustee_fee_bp,
            version=d.version,
        )


class DeedPublic(DeedSummary):
    purpose: str
    settlor_name: str
    trustee_name: str
    scope: dict[str, Any]
    assets: list[AssetPublic]
    versions: list[VersionPublic]
    history: list[EventPublic]
    viewer_roles: list[str]
    allowed_actions: list[str]
    termination_proposed_by: str | None
    order_reference: str
    ended_on: date | None
    end_reason: str


class LinePublic(BaseModel):
    id: str
    income_id: str
    deed_id: str
    party_id: str
    party_name: str
    role: str
    share_bp: int
    amount_fen: int
    status: str
    settlement_reference: str | None = None  # the settlement journal that paid it

    @classmethod
    def of(cls, row: PolicyTrustDistribution, names: dict[str, str]) -> LinePublic:
        return cls(
            id=row.id,
            income_id=row.income_id,
            deed_id=row.deed_id,
            party_id=row.party_id,
            party_name=names.get(row.party_id, ""),
            role=row.role,
            share_bp=row.share_bp,
            amount_fen=row.amount_fen,
            status=row.status,
            settlement_reference=row.settlement_reference,
        )


class IncomePublic(BaseModel):
    id: str
    deed_id: str
    amount_fen: int
    received_on: date
    source: str
    grant_id: str | None
    description: str
    version: int
    trustee_fee_bp: int
    lines: list[LinePublic]

    @classmethod
    def of(cls, view: IncomeView, names: dict[str, str]) -> IncomePublic:
        i: PolicyTrustIncome = view.income
        return cls(
            id=i.id,
            deed_id=i.deed_id,
            amount_fen=i.amount_fen,
            received_on=i.received_on,
            source=i.source,
            grant_id=i.grant_id,
            description=i.description,
            version=i.version,
            trustee_fee_bp=i.trustee_fee_bp,
            lines=[LinePublic.of(line, names) for line in view.lines],
        )


class TotalPublic(BaseModel):
    party_id: str
    party_name: str
    role: str
    pending_fen: int
    paid_fen: int
    total_fen: int

    @classmethod
    def of(cls, t: Total, names: dict[str, str]) -> TotalPublic:
        return cls(
            party_id=t.party_id,
            party_name=names.get(t.party_id, ""),
            role=t.role,
            pending_fen=t.pending_fen,
            paid_fen=t.paid_fen,
            total_fen=t.total_fen,
        )


class DistributionsPublic(BaseModel):
    income_fen: int
    totals: list[TotalPublic]
    lines: list[LinePublic]


class BenefitPublic(BaseModel):
    deed: DeedSummary
    share_bp: int | None
    pending_fen: int
    paid_fen: int

    @classmethod
    def of(cls, row: BenefitRow) -> BenefitPublic:
        return cls(
            deed=DeedSummary.of(row.deed),
            share_bp=row.share_bp,
            pending_fen=row.pending_fen,
            paid_fen=row.paid_fen,
        )


class GrantSummary(BaseModel):
    """A grant under the deed as the grants core records it (details at /api/v1/grants/{id})."""

    id: str
    number: str
    state: str
    asset_id: str
    grantee_id: str
    grantee_name: str
    term_start: date
    term_end: date
    fee_fen: int

    @classmethod
    def of(cls, grant: Any, names: dict[str, str]) -> GrantSummary:
        return cls(
            id=grant.id,
            number=grant.number,
            state=str(grant.state),
            asset_id=grant.asset_id,
            grantee_id=grant.grantee_id,
            grantee_name=names.get(grant.grantee_id, ""),
            term_start=grant.term_start,
            term_end=grant.term_end,
            fee_fen=int(grant.fee_fen or 0),
        )


class MisusePublic(BaseModel):
    id: str
    grant_id: str
    grantee_id: str
    description: str
    found_on: date

    @classmethod
    def of(cls, row: PolicyTrustMisuse) -> MisusePublic:
        return cls(
            id=row.id,
            grant_id=row.grant_id,
            grantee_id=row.grantee_id,
            description=row.description,
            found_on=row.found_on,
        )
