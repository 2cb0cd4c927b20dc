"""API shapes of public data authorised operation: agreement, cap, rate, fee, use and cost
requests and their public forms. Request bodies refuse unknown fields. Money is whole fen
(``*_fen``): an amount that is not a whole non-negative number of fen reaches the rules and is
refused there with rule OPS-MONEY, so the person reads why."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from datafactor.policy.operation.domain import Selection
from datafactor.policy.operation.models import (
    OperationAgreement,
    OperationCost,
    OperationFeeCap,
    OperationProfitRate,
    OperationUse,
)
from datafactor.policy.operation.services import CatalogueEntry, FeeRow, use_outcome

# What a client may send as an amount: checked by the rules (whole, non-negative fen).
Amount = int | float | str | None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SelectionIn(Strict):
    procedure: str = Field(
        "",
        max_length=32,
        description="public_tender, invited_tender, competitive_negotiation, "
        "competitive_consultation, single_source or enquiry",
    )
    reference: str = Field("", max_length=128, description="The procedure's reference number")
    decided_on: date = Field(description="When the operator was selected")
    record: str = Field("", max_length=4000, description="A short record of the outcome")

    def to_domain(self) -> Selection:
        return Selection(self.procedure, self.reference, self.decided_on, self.record)


class AgreementCreate(Strict):
    operator_id: str = Field(max_length=36, description="The public-data operator")
    number: str = Field(max_length=64, description="The agreement's number")
    selection: SelectionIn | None = Field(None, description="How the operator was selected")
    asset_ids: list[str] = Field(max_length=200, description="The body's registered public data")
    signed_on: date | None = None
    term_start: date | None = None
    term_end: date | None = Field(None, description="Default: 5 years from the start")
    purposes: list[str] | None = Field(None, max_length=20, description="Default: the rights'")
    regions: list[str] | None = Field(None, max_length=50, description="Default: the rights'")


class AgreementChange(Strict):
    reason: str = Field(max_length=2000)


class AgreementPublic(BaseModel):
    id: str
    number: str
    body_id: str
    body_name: str
    operator_id: str
    operator_name: str
    procedure: str
    procedure_reference: str
    selected_on: date
    selection_record: str
    signed_on: date
    term_start: date
    term_end: date
    scope: dict[str, Any]
    channels: list[str]
    state: str
    state_since: date
    state_reason: str
    ledger_index: int | None
    rules: list[str]
    data_sets: list[dict[str, str]] = Field(default_factory=list)
    created_at: datetime

    @classmethod
    def of(
        cls, a: OperationAgreement, data_sets: list[tuple[str, str]], state: str | None = None
    ) -> AgreementPublic:
        return cls(
            id=a.id,
            number=a.number,
            body_id=a.body_id,
            body_name=a.body_name,
            operator_id=a.operator_id,
            operator_name=a.operator_name,
            procedure=a.procedure,
            procedure_reference=a.procedure_reference,
            selected_on=a.selected_on,
            selection_record=a.selection_record,
            signed_on=a.signed_on,
            term_start=a.term_start,
            term_end=a.term_end,
            scope=dict(a.scope),
            channels=list(a.channels),
            state=state or a.state,
            state_since=a.state_since,
            state_reason=a.state_reason,
            ledger_index=a.ledger_index,
            rules=list(a.rules),
            data_sets=[{"id": i, "name": n} for i, n in data_sets],
            created_at=a.created_at,
        )


class CapCreate(Strict):
    unit: str = Field(max_length=32, description="api_call, sandbox_query or access_year")
    amount_fen: Amount = Field(description="The cap per unit, whole fen")
    effective_from: date
    source_document: str = Field("", max_length=256)
    note: str = Field("", max_length=2000)


class CapPublic(BaseModel):
    id: str
    unit: str
    amount_fen: int
    effective_from: date
    source_document: str
    note: str
    in_force: bool = False
    created_at: datetime

    @classmethod
    def of(cls, c: OperationFeeCap, in_force: bool = False) -> CapPublic:
        return cls(
            id=c.id,
            unit=c.unit,
            amount_fen=c.amount_fen,
            effective_from=c.effective_from,
            source_document=c.source_document,
            note=c.note,
            in_force=in_force,
            created_at=c.created_at,
        )


class RateCreate(Strict):
    rate_bp: Amount = Field(description="Basis points: 800 = 8.00 %")
    effective_from: date
    source_document: str = Field("", max_length=256)
    note: str = Field("", max_length=2000)


class RatePublic(BaseModel):
    id: str
    rate_bp: int
    effective_from: date
    source_document: str
    note: str
    in_force: bool = False
    created_at: datetime

    @classmethod
    def of(cls, r: OperationProfitRate, in_force: bool = False) -> RatePublic:
        return cls(
            id=r.id,
            rate_bp=r.rate_bp,
            effective_from=r.effective_from,
            source_document=r.source_document,
            note=r.note,
            in_force=in_force,
            created_at=r.created_at,
        )


class FeeCreate(Strict):
    asset_id: str = Field(max_length=36, description="A data set the operator operates")
    unit: str = Field(max_length=32)
    amount_fen: Amount = Field(description="The fee per unit, whole fen, not above the cap")
    effective_from: date
    note: str = Field("", max_length=2000)


class FeePublic(BaseModel):
    id: str
    operator_id: str
    operator_name: str
    asset_id: str
    asset_name: str
    unit: str
    amount_fen: int
    effective_from: date
    cap_fen: int | None = Field(description="The cap in force on the day asked")
    within_cap: bool
    in_force: bool
    agreement_id: str | None
    agreement_number: str | None

    @classmethod
    def of(cls, row: FeeRow) -> FeePublic:
        f = row.fee
        return cls(
            id=f.id,
            operator_id=f.operator_id,
            operator_name=f.operator_name,
            asset_id=f.asset_id,
            asset_name=f.asset_name,
            unit=f.unit,
            amount_fen=f.amount_fen,
            effective_from=f.effective_from,
            cap_fen=row.cap_fen,
            within_cap=row.within_cap,
            in_force=row.in_force,
            agreement_id=row.agreement_id,
            agreement_number=row.agreement_number,
        )


class CataloguePublic(BaseModel):
    agreement_id: str
    agreement_number: str
    body_name: str
    operator_id: str
    operator_name: str
    asset_id: str
    asset_name: str
    purposes: list[str]
    regions: list[str] | None
    term_end: date

    @classmethod
    def of(cls, e: CatalogueEntry) -> CataloguePublic:
        return cls(
            agreement_id=e.agreement_id,
            agreement_number=e.agreement_number,
            body_name=e.body_name,
            operator_id=e.operator_id,
            operator_name=e.operator_name,
            asset_id=e.asset_id,
            asset_name=e.asset_name,
            purposes=list(e.purposes),
            regions=list(e.regions) if e.regions is not None else None,
            term_end=e.term_end,
        )


class UseCreate(Strict):
    """A use asked for or granted. Its ODRL policy is written by the platform from these fields
    (OPS-USE-POLICY): a ``policy`` is not accepted."""

    agreement_id: str = Field(max_length=36)
    asset_id: str = Field(max_length=36)
    use_class: str = Field(
        max_length=32,
        description="public_governance, public_welfare, industry_development, sector_development",
    )
    purpose: str = Field(max_length=32, description="A registry purpose the class allows")
    term_start: date
    term_end: date
    grantee_id: str | None = Field(
        None,
        max_length=36,
        description="The user (the operator granting); a request is for the requester's own party",
    )
    regions: list[str] | None = Field(None, max_length=50)
    channels: list[Literal["api", "sandbox", "download"]] | None = Field(
        None, max_length=3, description="Default: the fee unit's (paid), api and sandbox (free)"
    )
    unit: str | None = Field(None, max_length=32, description="Paid uses: what is bought")
    quantity: int = Field(1, description="Paid uses: how many units (1 for a free use)")
    unit_fee_fen: Amount = Field(None, description="The fee per unit, if stated (checked)")
    purpose_note: str = Field("", max_length=2000)


class UseDecide(Strict):
    approve: bool
    reason: str = Field("", max_length=2000)


class GrantBrief(BaseModel):
    id: str
    number: str
    state: str
    regime: str
    reference_id: str | None
    holder_id: str
    agent_id: str
    grantee_id: str
    asset_id: str
    use_class: str | None
    fee_fen: int
    term_start: date
    term_end: date
    licence_application_id: str | None = None

    @classmethod
    def of(cls, g: Any) -> GrantBrief:
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
            use_class=g.use_class,
            fee_fen=g.fee_fen,
            term_start=g.term_start,
            term_end=g.term_end,
            licence_application_id=g.licence_application_id,
        )


class UsePublic(BaseModel):
    id: str
    grant_id: str
    grant_number: str
    grant_state: str | None = None
    agreement_id: str
    operator_id: str
    body_id: str
    grantee_id: str
    grantee_name: str
    asset_id: str
    asset_name: str
    use_class: str
    purpose: str
    regions: list[str] | None
    channels: list[str]
    unit: str | None
    quantity: int
    unit_fee_fen: int
    fee_fen: int
    cap_fen: int | None
    term_start: date
    term_end: date
    outcome: str = Field(
        description="requested, approved or refused by the operator; withdrawn, revoked or "
        "expired: a request that ended before the operator decided it"
    )
    reason: str
    rules: list[str]
    decided_on: date | None
    created_at: datetime
    grant: GrantBrief | None = None

    @classmethod
    def of(cls, u: OperationUse, grant: Any = None, state: str | None = None) -> UsePublic:
        return cls(
            id=u.id,
            grant_id=u.grant_id,
            grant_number=u.grant_number,
            grant_state=grant.state if grant is not None else state,
            agreement_id=u.agreement_id,
            operator_id=u.operator_id,
            body_id=u.body_id,
            grantee_id=u.grantee_id,
            grantee_name=u.grantee_name,
            asset_id=u.asset_id,
            asset_name=u.asset_name,
            use_class=u.use_class,
            purpose=u.purpose,
            regions=u.regions,
            channels=list(u.channels or ()),
            unit=u.unit,
            quantity=u.quantity,
            unit_fee_fen=u.unit_fee_fen,
            fee_fen=u.fee_fen,
            cap_fen=u.cap_fen,
            term_start=u.term_start,
            term_end=u.term_end,
            outcome=use_outcome(u, grant.state if grant is not None else state),
            reason=u.reason,
            rules=list(u.rules),
            decided_on=u.decided_on,
            created_at=u.created_at,
            grant=GrantBrief.of(grant) if grant is not None else None,
        )


class CostCreate(Strict):
    year: int
    category: str = Field(max_length=32)
    amount_fen: Amount = Field(description="Whole fen, 0 or more")
    note: str = Field("", max_length=2000)


class CostPublic(BaseModel):
    id: str
    operator_id: str
    year: int
    category: str
    amount_fen: int
    note: str
    created_at: datetime

    @classmethod
    def of(cls, c: OperationCost) -> CostPublic:
        return cls.model_validate(c, from_attributes=True)


class ReportFile(Strict):
    year: int


class ReportFiled(BaseModel):
    id: str
    operator_id: str
    year: int
    digest: str
    ledger_index: int | None
    filed_on: date
