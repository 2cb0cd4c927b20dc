"""API shapes of discovery: scan jobs, their reports as reviewed, review decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from datafactor.dataplane import VersionPublic
from datafactor.discovery.models import ScanJob
from datafactor.discovery.services import ReviewedReport
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
