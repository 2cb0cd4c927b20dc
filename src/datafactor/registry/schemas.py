"""API shapes of the registry: asset, application and objection requests and their public forms,
a certificate row, the public verification of a certificate number."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from datafactor.registry.domain import (
    Action,
    AssetKind,
    DataClass,
    RegistrationState,
    RegistrationType,
)
from datafactor.registry.models import (
    RegistryApplication,
    RegistryApplicationEvent,
    RegistryAsset,
    RegistryObjection,
)


class Strict(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class AssetCreate(Strict):
    kind: AssetKind
    name: str = Field(min_length=1, max_length=256)
    data_class: DataClass = DataClass.ENTERPRISE
    name_en: str = Field("", max_length=256)
    description: str = Field("", max_length=8000)
    domain: str = Field("", max_length=32)
    source_statement: str = Field("", max_length=4000, description="Data Security Law art. 33")
    collection_method: str = Field("", max_length=512)
    update_frequency: str = Field("", max_length=16)
    coverage: str = Field("", max_length=128)
    region: str = Field("", max_length=16)
    volume: str = Field("", max_length=64)
    delivery_mode: str = Field("", max_length=32)
    field_schema: list[dict[str, Any]] = Field(default_factory=list, max_length=2000)
    sample: str = Field("", max_length=8000)
    version_id: str | None = Field(
        None, max_length=36, description="The data set version registered"
    )
    lineage: list[str] = Field(default_factory=list, max_length=200, description="Source asset ids")


class AssetUpdate(Strict):
    name: str | None = Field(None, min_length=1, max_length=256)
    name_en: str | None = Field(None, max_length=256)
    description: str | None = Field(None, max_length=8000)
    source_statement: str | None = Field(None, max_length=4000)
    collection_method: str | None = Field(None, max_length=512)
    coverage: str | None = Field(None, max_length=128)
    region: str | None = Field(None, max_length=16)
    volume: str | None = Field(None, max_length=64)
    delivery_mode: str | None = Field(None, max_length=32)
    sample: str | None = Field(None, max_length=8000)
    version_id: str | None = Field(None, max_length=36)
    lineage: list[str] | None = Field(None, max_length=200)


class AssetPublic(BaseModel):
    id: str
    party_id: str
    kind: str
    data_class: str
    name: str
    name_en: str
    description: str
    domain: str
    source_statement: str
    update_frequency: str
    coverage: str
    region: str
    dataset_id: str | None
    version_id: str | None
    fingerprint: str | None
    grade: str | None
    created_at: datetime

    @classmethod
    def of(cls, a: RegistryAsset) -> AssetPublic:
        return cls.model_validate(a, from_attributes=True)


class ApplicationCreate(Strict):
    type: RegistrationType
    asset_id: str = Field(max_length=36)
    right_id: str | None = Field(None, max_length=36, description="The right acted on")
    counterparty_id: str | None = Field(None, max_length=36)
    scope: dict[str, list[str] | None] | None = None
    term_start: date | None = None
    term_end: date | None = None
    fingerprint: str | None = Field(None, max_length=80, description="SHA-256 of the version")
    self_commitment: bool = False
    order_reference: str | None = Field(
        None, max_length=200, description="Revocation: the court or authority order's number"
    )
    grounds: list[str] = Field(
        default_factory=list, max_length=10, description="Objection registration: grounds"
    )
    statement: str = Field("", max_length=4000, description="Objection registration: why")
    evidence: list[str] = Field(
        default_factory=list, max_length=50, description="Objection or revocation: evidence"
    )


class ActionCreate(Strict):
    action: Action
    reason: str = Field("", max_length=500)
    target: RegistrationState | None = Field(None, description="Force-transitions only")
    checklist: list[Annotated[str, Field(max_length=32)]] = Field(
        default_factory=list,
        max_length=32,
        description="Approvals only: the substantive-review items the registrar confirmed "
        "(every item of the rules' checklist is required, REG-SUBSTANTIVE-CHECKLIST)",
    )


class EventPublic(BaseModel):
    action: str
    source: str | None
    target: str
    role: str
    actor_name: str
    reason: str
    rule: str
    on: date

    @classmethod
    def of(cls, e: RegistryApplicationEvent) -> EventPublic:
        return cls.model_validate(e, from_attributes=True)


class ApplicationPublic(BaseModel):
    id: str
    type: str
    track: str
    state: str
    owner_role: str | None
    due_on: date | None
    submitted_on: date
    notice_starts: date | None
    notice_ends: date | None
    applicant_id: str
    asset_id: str
    right_id: str | None
    result_right_id: str | None
    decision: dict[str, Any] | None
    events: list[EventPublic] = Field(default_factory=list)
    objection_record: dict[str, Any] | None = Field(
        None, description="A certified objection registration's record on the right it names"
    )

    @classmethod
    def of(
        cls, a: RegistryApplication, events: list[RegistryApplicationEvent] | None = None
    ) -> ApplicationPublic:
        out = cls.model_validate(a, from_attributes=True)
        out.events = [EventPublic.of(e) for e in events or []]
        out.objection_record = (a.facts or {}).get("record")
        return out


class LawsuitCreate(Strict):
    """The lawsuit (or proceedings) that keeps an objection registration in force."""

    reference: str = Field(min_length=1, max_length=500, description="Case or file number")


class ObjectionRecordClose(Strict):
    """The registrar closes an objection registration."""

    substantiated: bool
    reason: str = Field(max_length=500)


class NoticePublic(BaseModel):
    """A public notice board entry: what is registered, for whom, and until when to object."""

    id: str
    type: str
    state: str
    applicant_id: str
    asset_id: str
    notice_starts: date | None
    notice_ends: date | None

    @classmethod
    def of(cls, a: RegistryApplication) -> NoticePublic:
        return cls.model_validate(a, from_attributes=True)


class ObjectionCreate(Strict):
    grounds: list[str] = Field(default_factory=list, max_length=10)
    statement: str = Field("", max_length=4000)
    evidence: list[str] = Field(default_factory=list, max_length=50)


class ObjectionDecide(Strict):
    substantiated: bool
    reason: str = Field(max_length=500)


class ObjectionPublic(BaseModel):
    id: str
    application_id: str
    objector_id: str
    grounds: list[str]
    statement: str
    evidence: list[str]
    lodged_on: date
    outcome: str | None
    decision: dict[str, Any] | None
    decided_on: date | None

    @classmethod
    def of(cls, o: RegistryObjection) -> ObjectionPublic:
        return cls.model_validate(o, from_attributes=True)


class OverduePublic(BaseModel):
    application: ApplicationPublic
    working_days_late: int
    owner: str


class CertificatePublic(BaseModel):
    number: str
    asset_id: str
    asset: str
    right_kind: str
    holder_id: str
    status: str
    valid_until: date


class VerificationPublic(BaseModel):
    number: str
    status: str
    valid_from: date
    valid_until: date
    right_id: str
    right_kind: str | None
    right_status: str
    holder_id: str
    asset_id: str
    fingerprint: str | None
    issued_at: str | None
    issuer: str | None
    ledger_index: int
    signature_valid: bool
    chain_of_title: dict[str, Any] | None
    chain_problem: str | None
    under_objection: bool = False
    objections: list[dict[str, Any]] = Field(default_factory=list)
