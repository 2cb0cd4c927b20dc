"""API shapes of discovery: scan jobs, their reports as reviewed, review decisions,
de-identification requests, plans and jobs, and the trustee's detokenisation."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from datafactor.dataplane import VersionPublic
from datafactor.discovery.deidentification import DeidentificationProfile
from datafactor.discovery.models import DeidentificationJob, ScanJob
from datafactor.discovery.services import (
    DeidentificationPlan,
    DeidentificationRequest,
    ReviewedReport,
)
from datafactor.discovery.workflow import (
    FINAL,
    ReviewDecision,
    ScanMode,
    ScanStatus,
    progress_percent,
)
from datafactor.web.i18n import gettext


class Strict(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ScanCreate(Strict):
    mode: ScanMode = Field(ScanMode.SAMPLE, description="sample (the first rows) or full.")


class ForceCancel(Strict):
    reason: str = Field(max_length=2000, description="Why the scan is force-cancelled (audited).")


class ScanError(BaseModel):
    code: str
    message: str


class ScanPublic(BaseModel):
    id: str
    dataset_id: str
    version_id: str
    version_number: int
    mode: ScanMode
    status: ScanStatus
    final: bool
    requested_by: str
    requested_at: datetime
    attempts: int
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    rows_done: int
    rows_total: int | None
    percent: int | None = Field(description="Progress 0–100; null while the total is unknown.")
    cancel_requested: bool
    error: ScanError | None
    grade: str | None
    quality_score: float | None

    @classmethod
    def of(cls, job: ScanJob) -> ScanPublic:
        error = None
        if job.error_message:
            error = ScanError(
                code=job.error_code or "error",
                message=gettext(job.error_message, **(job.error_params or {})),
            )
        return cls(
            id=job.id,
            dataset_id=job.dataset_id,
            version_id=job.version_id,
            version_number=job.version_number,
            mode=ScanMode(job.mode),
            status=ScanStatus(job.status),
            final=job.status in FINAL,
            requested_by=job.requested_by_name,
            requested_at=job.requested_at,
            attempts=job.attempts,
            started_at=job.started_at,
            heartbeat_at=job.heartbeat_at,
            finished_at=job.finished_at,
            rows_done=job.rows_done,
            rows_total=job.rows_total,
            percent=progress_percent(job.rows_done, job.rows_total, job.status),
            cancel_requested=job.cancel_requested_at is not None,
            error=error,
            grade=job.grade,
            quality_score=job.quality_score,
        )


class VersionCreated(BaseModel):
    """A new version and the sample scan queued for it (null when it already existed)."""

    version: VersionPublic
    scan: ScanPublic | None


class ReviewCreate(Strict):
    column: str = Field(max_length=512)
    entity_type: str = Field(max_length=64)
    decision: ReviewDecision
    note: str = Field("", max_length=4000)
    scan_id: str | None = Field(
        None, max_length=64, description="The scan whose report showed the detection (checked)."
    )


class ReviewPublic(BaseModel):
    column: str
    entity_type: str
    decision: ReviewDecision
    note: str
    decided_by: str
    decided_at: datetime
    version_number: int | None


class DetectionPublic(BaseModel):
    entity_type: str
    match_ratio: float | None
    confidence: float | None
    sensitive: bool
    review: ReviewPublic | None


class ColumnReviewed(BaseModel):
    name: str
    sensitive_as_scanned: bool
    sensitive: bool = Field(description="Sensitive after review: dismissed detections left out.")
    detections: list[DetectionPublic]


class ReportPublic(BaseModel):
    """The stored report (``datafactor scan --json`` shape) and the reviewed view of it."""

    scan_id: str
    report: dict[str, Any]
    columns_reviewed: list[ColumnReviewed]
    sensitive_columns: int = Field(description="Sensitive columns after review.")
    distinct_individuals: int | None = Field(
        description="Distinct individuals after review (dismissed detections left out)."
    )
    grade_after_review: str | None = Field(
        description="The grade recomputed without dismissed detections; null when none was "
        "dismissed."
    )

    @classmethod
    def of(cls, reviewed: ReviewedReport) -> ReportPublic:
        def review(r: Any) -> ReviewPublic | None:
            if r is None:
                return None
            return ReviewPublic(
                column=r.column,
                entity_type=r.entity_type,
                decision=ReviewDecision(r.decision),
                note=r.note,
                decided_by=r.decided_by,
                decided_at=r.decided_at,
                version_number=r.version_number,
            )

        return cls(
            scan_id=reviewed.job.id,
            report=dict(reviewed.job.report or {}),
            columns_reviewed=[
                ColumnReviewed(
                    name=c.name,
                    sensitive_as_scanned=c.sensitive_as_scanned,
                    sensitive=c.sensitive,
                    detections=[
                        DetectionPublic(
                            entity_type=d.entity_type,
                            match_ratio=d.match_ratio,
                            confidence=d.confidence,
                            sensitive=d.sensitive,
                            review=review(d.review),
                        )
                        for d in c.detections
                    ],
                )
                for c in reviewed.view.columns
            ],
            sensitive_columns=len(reviewed.view.sensitive_columns),
            distinct_individuals=reviewed.distinct_individuals,
            grade_after_review=(
                reviewed.grade_after_review.grade.value if reviewed.grade_after_review else None
            ),
        )


# --------------------------------------------------------------------------- de-identification


class DeidentificationCreate(Strict):
    """What to de-identify a version with, and where the new version goes."""

    profile: str | None = Field(
        None,
        max_length=32,
        description="A starter profile (publish, share-with-trustee, display) applied to the "
        "findings of the version's latest scan. Give this or policy.",
    )
    policy: dict[str, Any] | None = Field(
        None,
        description="A policy document: {name, unlisted, trustee, columns: {column: rule}, "
        "entity_types: {type: rule}} (see docs/discovery.md). Give this or profile.",
    )
    trustee: str | None = Field(
        None,
        max_length=128,
        description="The party that will hold the key of tokenised columns: your own or a "
        "verified data custodian (GET /api/v1/deidentification/trustees).",
    )
    dataset_id: str | None = Field(
        None, max_length=36, description="Another data set of yours to add the version to."
    )
    new_dataset_name: str | None = Field(
        None, max_length=128, description="Declare a new data set with this name for it."
    )
    format: Literal["parquet", "csv"] = "parquet"

    def request(self) -> DeidentificationRequest:
        return DeidentificationRequest(
            profile=self.profile or None,
            policy=self.policy,
            trustee=self.trustee or None,
            dataset_id=self.dataset_id or None,
            new_dataset_name=self.new_dataset_name or None,
            format=self.format,
        )


class ProfilePublic(BaseModel):
    name: str
    label: dict[str, str]
    purpose: str
    tokenises: bool = Field(description="Whether it tokenises some columns (needs a trustee).")

    @classmethod
    def of(cls, profile: DeidentificationProfile) -> ProfilePublic:
        rules = [*profile.types.values(), profile.sensitive, profile.personal, profile.other]
        return cls(
            name=profile.name,
            label=dict(profile.label),
            purpose=profile.purpose,
            tokenises=any(r.technique.value == "tokenise" for r in rules),
        )


class TrusteePublic(BaseModel):
    party_id: str
    name: str
    name_en: str
    own: bool = Field(description="Your own organisation (the default trustee).")


class PlannedColumnPublic(BaseModel):
    name: str
    technique: str
    params: dict[str, Any]
    entity_type: str | None
    origin: str = Field(description="Where the rule came from: column, entity_type or unlisted.")
    exposed: bool = Field(
        description="Kept as it is although the scan found personal information in it."
    )


class DeidentificationPlanPublic(BaseModel):
    """What a policy will do to each column of the version, before anything runs."""

    version_id: str
    version_number: int
    profile: str | None
    policy: dict[str, Any]
    policy_digest: str
    trustees: list[str]
    scan_id: str | None = Field(description="The scan whose findings the plan used, if any.")
    columns: list[PlannedColumnPublic]

    @classmethod
    def of(cls, plan: DeidentificationPlan) -> DeidentificationPlanPublic:
        exposed = {c.name for c in plan.exposed}
        return cls(
            version_id=plan.source.version_id,
            version_number=plan.source.version_number,
            profile=plan.profile,
            policy=plan.policy.as_dict(),
            policy_digest=plan.policy.digest,
            trustees=list(plan.trustees),
            scan_id=plan.source.scan_id,
            columns=[
                PlannedColumnPublic(
                    name=c.name,
                    technique=c.technique.value,
                    params=dict(c.params),
                    entity_type=c.entity_type,
                    origin=c.origin,
                    exposed=c.name in exposed,
                )
                for c in plan.columns
            ],
        )


class DeidentificationPublic(BaseModel):
    """A de-identification job: what it was asked, its progress, and what it made."""

    id: str
    dataset_id: str
    version_id: str
    version_number: int
    target_dataset_id: str
    profile: str | None
    policy_name: str
    policy_digest: str = Field(description="SHA-256 of the policy's canonical JSON.")
    policy: dict[str, Any]
    trustee: str | None
    format: str
    status: ScanStatus
    final: bool
    requested_by: str
    requested_at: datetime
    attempts: int
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    rows_done: int
    rows_total: int | None
    percent: int | None = Field(description="Progress 0–100; null while the total is unknown.")
    cancel_requested: bool
    error: ScanError | None
    result_version_id: str | None = Field(description="The new version, once it succeeded.")
    result_sha256: str | None
    scan_id: str | None = Field(description="The sample scan queued on the new version.")
    report: dict[str, Any] | None = Field(
        None, description="Rows written, per column the technique as applied, warnings."
    )

    @classmethod
    def of(cls, job: DeidentificationJob, *, with_report: bool = False) -> DeidentificationPublic:
        error = None
        if job.error_message:
            error = ScanError(
                code=job.error_code or "error",
                message=gettext(job.error_message, **(job.error_params or {})),
            )
        return cls(
            id=job.id,
            dataset_id=job.dataset_id,
            version_id=job.version_id,
            version_number=job.version_number,
            target_dataset_id=job.target_dataset_id,
            profile=job.profile,
            policy_name=job.policy_name,
            policy_digest=job.policy_digest,
            policy=dict(job.policy),
            trustee=job.trustee_party_id,
            format=job.format,
            status=ScanStatus(job.status),
            final=job.status in FINAL,
            requested_by=job.requested_by_name,
            requested_at=job.requested_at,
            attempts=job.attempts,
            started_at=job.started_at,
            heartbeat_at=job.heartbeat_at,
            finished_at=job.finished_at,
            rows_done=job.rows_done,
            rows_total=job.rows_total,
            percent=progress_percent(job.rows_done, job.rows_total, job.status),
            cancel_requested=job.cancel_requested_at is not None,
            error=error,
            result_version_id=job.result_version_id,
            result_sha256=job.result_sha256,
            scan_id=job.scan_job_id,
            report=dict(job.report) if with_report and job.report else None,
        )


class DetokeniseRequest(Strict):
    column: str = Field(max_length=255, description="The tokenised column the tokens come from.")
    tokens: list[str | None] = Field(
        max_length=10_000,
        description="The tokens (tk1.…), at most DATAFACTOR_DETOKENISE_MAX_TOKENS per call; "
        "null stays null.",
    )


class DetokenisePublic(BaseModel):
    version_id: str
    column: str
    values: list[str | None] = Field(description="The original values, in the tokens' order.")
