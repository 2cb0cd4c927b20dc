"""Discovery tables: scan jobs, reviewers' decisions, de-identification jobs, detokenisations and
each trustee party's detokenisation quota row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from datafactor.db import ID, Base, UTCDateTime, new_id, utcnow


class ScanJob(Base):
    """One scan of one data set version, run in the background (see ``jobs.py``).

        ``status`` walks queued → running → succeeded | failed | cancelled. A runner that claims the
        job writes its id to ``runner_id`` and refreshes ``heartbeat_at`` while it works; a running job
        whose heartbeat went stale is given back to the queue (``attempts`` counts the claims;
    ``queued_at`` says when it last entered the queue, where the queue timeout counts from). The
        report JSON is loaded only when asked for (deferred): progress polling reads the small row.
    """

    __tablename__ = "scan_job"
    __table_args__ = (
        Index("ix_scan_job_status_queued", "status", "queued_at"),
        Index("ix_scan_job_version_requested", "version_id", "requested_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    party_id: Mapped[str] = mapped_column(ID, index=True)
    dataset_id: Mapped[str] = mapped_column(ID, index=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("dataset_version.id"))
    version_number: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str | None] = mapped_column(ID)
    requested_by_name: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When it last entered the queue (request, requeue, shutdown): the queue timeout counts from it.
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    runner_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rows_done: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_total: Mapped[int | None] = mapped_column(BigInteger)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Headline figures of the report, for lists that should not load the whole report.
    grade: Mapped[str | None] = mapped_column(String(16))
    quality_score: Mapped[float | None] = mapped_column(Float)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, deferred=True)


class DetectionReview(Base):
    """A reviewer's decision on one detection (column + entity type) of a data set.

    Kept per data set, not per scan, so it applies to every later version's reports too; a new
    decision on the same detection replaces the old one (the audit trail keeps both).
    """

    __tablename__ = "detection_review"
    __table_args__ = (UniqueConstraint("dataset_id", "column_name", "entity_type"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("dataset.id"))
    party_id: Mapped[str] = mapped_column(ID, index=True)
    column_name: Mapped[str] = mapped_column(String(255))
    entity_type: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    scan_job_id: Mapped[str | None] = mapped_column(ID)
    version_number: Mapped[int | None] = mapped_column(Integer)
    decided_by: Mapped[str | None] = mapped_column(ID)
    decided_by_name: Mapped[str] = mapped_column(String(64))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeidentificationJob(Base):
    """One de-identification of a data set version into a new version, run in the background.

    Walks the same states, with the same timeouts and owner rules, as a ``ScanJob`` (queued →
    running → succeeded | failed | cancelled; see ``workflow.py``), and is run by the same
    runners. What it was asked to do is fixed when it is queued: the policy as a JSON document
    and its SHA-256 (``policy_digest``; the hashing salt is drawn afresh by each run and never
    stored), the starter profile it came from if any, the findings the policy was planned
    against, the trustee party of tokenised columns, and the data set the new version goes into
    (``target_dataset_id``: the source's own, or another of the same party). When it succeeds it
    names the new version, the sample scan queued on it, and keeps the report (rows written, per
    column the technique and parameters as applied, warnings).
    """

    __tablename__ = "deidentification_job"
    __table_args__ = (
        Index("ix_deidentification_job_status_queued", "status", "queued_at"),
        Index("ix_deidentification_job_version_requested", "version_id", "requested_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    party_id: Mapped[str] = mapped_column(ID, index=True)
    dataset_id: Mapped[str] = mapped_column(ID, index=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("dataset_version.id"))
    version_number: Mapped[int] = mapped_column(Integer)
    target_dataset_id: Mapped[str] = mapped_column(ID, index=True)
    profile: Mapped[str | None] = mapped_column(String(32))
    policy_name: Mapped[str] = mapped_column(String(128))
    policy_digest: Mapped[str] = mapped_column(String(64))
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    findings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    trustee_party_id: Mapped[str | None] = mapped_column(ID, index=True)
    format: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str | None] = mapped_column(ID)
    requested_by_name: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When it last entered the queue (request, requeue, shutdown): the queue timeout counts from it.
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    runner_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rows_done: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_total: Mapped[int | None] = mapped_column(BigInteger)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result_version_id: Mapped[str | None] = mapped_column(ID, index=True)
    result_sha256: Mapped[str | None] = mapped_column(String(64))
    scan_job_id: Mapped[str | None] = mapped_column(ID)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, deferred=True)


class Detokenisation(Base):
    """One reversal of tokens by a user of the trustee party: who, which version and column, how
    many values. Never the tokens or the values. Kept to limit how many values a trustee party
    reverses per hour, beside the audit event each reversal also writes."""

    __tablename__ = "detokenisation"
    __table_args__ = (Index("ix_detokenisation_party_at", "party_id", "at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    party_id: Mapped[str] = mapped_column(ID)
    user_id: Mapped[str | None] = mapped_column(ID)
    username: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[str] = mapped_column(ID, index=True)
    column_name: Mapped[str] = mapped_column(String(255))
    count: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DetokenisationQuota(Base):
    """One row per trustee party that ever reversed tokens: the row a reversal locks (``SELECT …
    FOR UPDATE``) before it counts the party's reversals of the last hour, so two requests of one
    party at the same moment cannot both pass the hourly limit. It also keeps the party's running
    total and when it last reversed."""

    __tablename__ = "detokenisation_quota"

    party_id: Mapped[str] = mapped_column(ID, primary_key=True)
    reversed_total: Mapped[int] = mapped_column(BigInteger, default=0)
    last_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
