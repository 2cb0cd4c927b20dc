"""Discovery use cases: add versions (each queues a scan), scan jobs, cancellation, reviews.

Each function is one use case on the caller's open ``Session``; the entry point commits, so a
change and its audit event land together. Two kinds of caller:

* people (``Principal``): add a version, request or cancel a scan, force-cancel one (an
  administrator), review a detection. Visibility follows the data set: its holder's users and the
  parties that read across parties; another party's ids answer "not found".
* the scan runners (``jobs.py``), acting for the system: claim a queued job, beat its heart, store
  its report or its failure, and sweep jobs whose state lasted too long. Each of these writes only
  when the job is still in the state the runner expects and still names that runner, so a runner
  that lost its job (force-cancelled, or given to another runner after a stall) can never
  overwrite the outcome.

Claiming is atomic with several runners in several processes: on PostgreSQL the queued row is
taken with ``FOR UPDATE SKIP LOCKED`` (two runners never wait on, or both take, the same job); on
SQLite the write transaction itself holds the database's write lock (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, undefer

from datafactor import audit, dataplane
from datafactor.db import utcnow
from datafactor.discovery.grading import (
    GradeDecision,
    GradingMetadata,
    distinct_individuals,
    grade,
)
from datafactor.discovery.models import DetectionReview, ScanJob
from datafactor.discovery.recognizers import ColumnFinding, load_pii_rules
from datafactor.discovery.workflow import (
    ACTIVE,
    FINAL,
    EventTag,
    JobClock,
    JobTimeouts,
    ReportView,
    Review,
    ReviewDecision,
    ScanMode,
    ScanStatus,
    SweepAction,
    apply_reviews,
    check_reason,
    check_review,
    overran,
    sweep_action,
)
from datafactor.errors import N_, Conflict, DomainError, Forbidden, InvalidInput, NotFound
from datafactor.permissions import Permission, Principal

P = Permission
RUNNER = "scan-runner"


def _require(principal: Principal, permission: Permission) -> None:
    if not principal.can(permission):
        raise Forbidden(
            N_("Your account is not allowed to do this ({permission})."), permission=permission
        )


def sensitive_types() -> frozenset[str]:
    """The entity types that are sensitive personal information (PIPL art. 28)."""
    return frozenset(t for t, rule in load_pii_rules().items() if rule.sensitive)


# ------------------------------------------------------------------------------------- versions


def _queue(
    session: Session, actor: Principal, version: Any, mode: ScanMode, *, automatic: bool
) -> ScanJob:
    job = ScanJob(
        party_id=version.party_id,
        dataset_id=version.dataset_id,
        version_id=version.id,
        version_number=version.number,
        mode=mode,
        status=ScanStatus.QUEUED,
        requested_by=actor.user_id,
        requested_by_name=actor.username,
        attempts=0,
        rows_done=0,
    )
    session.add(job)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=EventTag.SCAN_REQUEST,
        object_type="scan_job",
        object_id=job.id,
        party_id=job.party_id,
        summary=f"{mode.capitalize()} scan of version {version.number} queued"
        + (" (new version)" if automatic else ""),
    )
    return job


def add_file_version(
    session: Session, principal: Principal, dataset_id: str, *, blob: Any, filename: str
) -> tuple[Any, ScanJob]:
    """A stored file becomes the data set's next version, and a sample scan of it is queued."""
    version = dataplane.add_file_version(
        session, principal, dataset_id, blob=blob, filename=filename
    )
    return version, _queue(session, principal, version, ScanMode.SAMPLE, automatic=True)


def add_database_version(
    session: Session,
    principal: Principal,
    dataset_id: str,
    *,
    url: str,
    table: str,
    schema: str | None,
    secret_key: str,
) -> tuple[Any, ScanJob]:
    """A live table becomes the next version (checked beforehand); a sample scan is queued."""
    version = dataplane.add_database_version(
        session,
        principal,
        dataset_id,
        url=url,
        table=table,
        schema=schema,
        secret_key=secret_key,
    )
    return version, _queue(session, principal, version, ScanMode.SAMPLE, automatic=True)


def complete_upload(
    session: Session, principal: Principal, upload_id: str, blob: Any
) -> tuple[Any, ScanJob | None]:
    """A sealed resumable upload becomes a version with its sample scan (once, however often
    the client retries)."""
    version, created = dataplane.complete_upload(session, principal, upload_id, blob)
    if not created:
        return version, None
    return version, _queue(session, principal, version, ScanMode.SAMPLE, automatic=True)


# ---------------------------------------------------------------------------------------- scans


def request_scan(session: Session, principal: Principal, version_id: str, mode: str) -> ScanJob:
    """Someone asks for a (sample or full) scan of a version of their own data set."""
    _require(principal, P.DISCOVERY_SCAN_RUN)
    try:
        chosen = ScanMode(mode)
    except ValueError:
        raise InvalidInput(N_("Choose a sample scan or a full scan."), field="mode") from None
    version = dataplane.get_version(session, principal, version_id)
    if version.party_id != principal.party_id:
        raise Forbidden(N_("Only the party that holds a data set can scan it."))
    active = session.scalar(
        select(ScanJob.id).where(
            ScanJob.version_id == version.id,
            ScanJob.mode == chosen,
            ScanJob.status.in_([str(s) for s in ACTIVE]),
        )
    )
    if active is not None:
        raise Conflict(
            N_("A {mode} scan of this version is already queued or running."),
            code="scan-active",
            mode=chosen.value,
        )
    return _queue(session, principal, version, chosen, automatic=False)


def get_scan(
    session: Session,
    principal: Principal,
    job_id: str,
    *,
    for_update: bool = False,
    with_report: bool = False,
) -> ScanJob:
    """A scan job of a data set the principal may see; another tenant's id answers 'not found'."""
    stmt = select(ScanJob).where(ScanJob.id == job_id)
    if with_report:
        stmt = stmt.options(undefer(ScanJob.report))
    if for_update:
        stmt = stmt.with_for_update()
    job = session.execute(stmt).scalar_one_or_none()
    if job is None or not dataplane.can_see(principal, job.party_id):
        raise NotFound(N_("No such scan."))
    return job


@dataclass(frozen=True)
class ScanQuery:
    dataset_id: str | None = None
    version_id: str | None = None
    status: str | None = None


def list_scans(
    session: Session, principal: Principal, query: ScanQuery, *, limit: int, offset: int
) -> tuple[list[ScanJob], int]:
    """Scan jobs the principal may see, newest first."""
    if not (principal.can(P.DATAPLANE_DATASET_READ) or principal.can(P.DATAPLANE_DATASET_READ_ALL)):
        raise Forbidden(
            N_("Your account is not allowed to do this ({permission})."),
            permission=P.DATAPLANE_DATASET_READ,
        )
    stmt = select(ScanJob)
    if not principal.can(P.DATAPLANE_DATASET_READ_ALL):
        stmt = stmt.where(ScanJob.party_id == principal.party_id)
    elif not principal.can(P.DATAPLANE_DATASET_READ):
        stmt = stmt.where(ScanJob.party_id != principal.party_id)
    if query.dataset_id:
        stmt = stmt.where(ScanJob.dataset_id == query.dataset_id)
    if query.version_id:
        stmt = stmt.where(ScanJob.version_id == query.version_id)
    if query.status:
        stmt = stmt.where(ScanJob.status == query.status)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(ScanJob.requested_at.desc(), ScanJob.id).limit(limit).offset(offset)
    )
    return list(rows), total


def latest_scans(
    session: Session, principal: Principal, version_ids: list[str]
) -> dict[str, ScanJob]:
    """The newest scan job of each of these versions (for a versions table)."""
    if not version_ids:
        return {}
    rows = session.scalars(
        select(ScanJob)
        .where(ScanJob.version_id.in_(version_ids))
        .order_by(ScanJob.requested_at.desc(), ScanJob.id)
    )
    latest: dict[str, ScanJob] = {}
    for job in rows:
        if dataplane.can_see(principal, job.party_id):
            latest.setdefault(job.version_id, job)
    return latest


def _final_state_conflict(job: ScanJob) -> Conflict:
    return Conflict(
        N_("This scan has already ended ({status}); reload the page."),
        code="scan-ended",
        status=job.status,
    )


def cancel_scan(session: Session, principal: Principal, job_id: str) -> ScanJob:
    """Ask a scan to stop: a queued one is cancelled at once, a running one at its runner's next
    check (within a heartbeat)."""
    _require(principal, P.DISCOVERY_SCAN_RUN)
    job = get_scan(session, principal, job_id, for_update=True)
    if job.party_id != principal.party_id:
        raise Forbidden(N_("Only the party that holds a data set can cancel its scans."))
    if job.status in FINAL:
        raise _final_state_conflict(job)
    now = utcnow()
    if job.cancel_requested_at is None:
        job.cancel_requested_at, job.cancel_requested_by = now, principal.username
    if job.status == ScanStatus.QUEUED:
        job.status, job.finished_at = ScanStatus.CANCELLED, now
        tag, summary = EventTag.SCAN_CANCELLED, "Queued scan cancelled"
    else:
        tag, summary = EventTag.SCAN_CANCEL_REQUEST, "Cancel of a running scan requested"
    audit.record(
        session,
        actor=principal,
        action=tag,
        object_type="scan_job",
        object_id=job.id,
        party_id=job.party_id,
        summary=f"{summary} (version {job.version_number}, {job.mode})",
    )
    return job


def force_cancel_scan(session: Session, principal: Principal, job_id: str, reason: str) -> ScanJob:
    """An administrator ends a scan now, whatever its runner is doing (the audited way out of any
    state). The runner, if alive, notices at its next heartbeat and stops without writing."""
    job = get_scan(session, principal, job_id, for_update=True)
    # A party's admin ends its own party's scans; only the platform's administrator (the exchange
    # operator) ends another party's — a regulator reads across parties but changes nothing.
    _require(
        principal,
        P.DISCOVERY_SCAN_FORCE
        if job.party_id == principal.party_id
        else P.DISCOVERY_SCAN_FORCE_ALL,
    )
    reason = check_reason(reason)
    if job.status in FINAL:
        raise _final_state_conflict(job)
    previous = job.status
    now = utcnow()
    job.status, job.finished_at = ScanStatus.CANCELLED, now
    job.cancel_requested_at = job.cancel_requested_at or now
    job.cancel_requested_by = principal.username
    job.error_code, job.error_message, job.error_params = (
        "force-cancelled",
        N_("Force-cancelled by {user}: {reason}"),
        {"user": principal.username, "reason": reason},
    )
    audit.record(
        session,
        actor=principal,
        action=EventTag.SCAN_FORCE_CANCEL,
        object_type="scan_job",
        object_id=job.id,
        party_id=job.party_id,
        summary=f"Scan force-cancelled while {previous} (runner {job.runner_id or '-'})",
        reasons=[reason],
    )
    return job


# -------------------------------------------------------------------------------------- reviews


def _review_of(row: DetectionReview) -> Review:
    return Review(
        column=row.column_name,
        entity_type=row.entity_type,
        decision=row.decision,
        note=row.note,
        decided_by=row.decided_by_name,
        decided_at=row.decided_at,
        version_number=row.version_number,
    )


def list_reviews(session: Session, principal: Principal, dataset_id: str) -> list[Review]:
    """The review decisions kept for a data set."""
    dataplane.get_dataset(session, principal, dataset_id)
    rows = session.scalars(
        select(DetectionReview)
        .where(DetectionReview.dataset_id == dataset_id)
        .order_by(DetectionReview.column_name, DetectionReview.entity_type)
    )
    return [_review_of(r) for r in rows]


def review_detection(
    session: Session,
    principal: Principal,
    dataset_id: str,
    *,
    column: str,
    entity_type: str,
    decision: str,
    note: str = "",
    scan_job_id: str | None = None,
) -> Review:
    """A reviewer confirms or dismisses one detection of a data set (kept for later versions)."""
    _require(principal, P.DISCOVERY_DETECTION_REVIEW)
    dataset = dataplane.get_dataset(session, principal, dataset_id, for_update=True)
    if dataset.party_id != principal.party_id:
        raise Forbidden(N_("Only the party that holds a data set can review its detections."))
    decision, note = check_review(decision, note, column, entity_type)
    version_number = None
    if scan_job_id:
        job = get_scan(session, principal, scan_job_id, with_report=True)
        if job.dataset_id != dataset.id:
            raise NotFound(N_("No such scan."))
        found = {
            (str(c.get("name")), str(t))
            for c in (job.report or {}).get("columns", [])
            if isinstance(c, Mapping)
            for t in c.get("types", []) or []
        }
        if (column, entity_type) not in found:
            raise InvalidInput(
                N_("The scan found no {entity_type} in column {column}."),
                field="column",
                entity_type=entity_type,
                column=column,
            )
        version_number = job.version_number
    row = session.scalar(
        select(DetectionReview).where(
            DetectionReview.dataset_id == dataset.id,
            DetectionReview.column_name == column,
            DetectionReview.entity_type == entity_type,
        )
    )
    if row is None:
        row = DetectionReview(
            dataset_id=dataset.id,
            party_id=dataset.party_id,
            column_name=column,
            entity_type=entity_type,
        )
        session.add(row)
    previous = row.decision
    row.decision, row.note = decision, note
    row.scan_job_id, row.version_number = scan_job_id, version_number
    row.decided_by, row.decided_by_name, row.decided_at = (
        principal.user_id,
        principal.username,
        utcnow(),
    )
    session.flush()
    tag = (
        EventTag.DETECTION_DISMISS
        if decision == ReviewDecision.DISMISSED
        else EventTag.DETECTION_CONFIRM
    )
    audit.record(
        session,
        actor=principal,
        action=tag,
        object_type="dataset",
        object_id=dataset.id,
        party_id=dataset.party_id,
        summary=f"Detection {entity_type} in column {column} {decision}"
        + (f" (was {previous})" if previous and previous != decision else ""),
        reasons=[note] if note else [],
    )
    return _review_of(row)


# ---------------------------------------------------------------------------- reviewed reports


@dataclass(frozen=True)
class ReviewedReport:
    """What a report page shows: the job, the report with reviews applied, and the grade after
    review (None when no dismissal changed what the grade looks at)."""

    job: ScanJob
    view: ReportView
    grade_as_scanned: GradeDecision | None
    grade_after_review: GradeDecision | None
    distinct_individuals: int | None


def _grading_metadata(report: Mapping[str, Any]) -> GradingMetadata:
    meta = report.get("metadata")
    grading = meta.get("grading") if isinstance(meta, Mapping) else None
    if isinstance(grading, Mapping):
        return GradingMetadata.from_dict(grading)
    return GradingMetadata()


def _decision(report: Mapping[str, Any]) -> GradeDecision | None:
    if not report.get("grade"):
        return None
    try:
        return GradeDecision.from_dict(report)
    except (KeyError, ValueError, TypeError):
        return None


def reviewed_findings(view: ReportView) -> list[ColumnFinding]:
    """The report's columns as findings without the dismissed detections (for the grading)."""
    pii = load_pii_rules()
    findings = []
    for column in view.columns:
        types = tuple(d.entity_type for d in column.effective if d.entity_type in pii)
        identifying = any(pii[t].identifying for t in types)
        # The stored column says how many cells were filled (the cap on a distinct count).
        filled = column.extra.get("non_empty")
        non_empty = filled if isinstance(filled, int) else (column.distinct_values or 0)
        findings.append(
            ColumnFinding(
                name=column.name,
                types=types,
                match_ratio=column.match_ratio if types else 0.0,
                confidence=column.confidence if types else 0.0,
                sensitive=column.sensitive,
                distinct_values=column.distinct_values if identifying else None,
                total=non_empty,
                non_empty=non_empty,
            )
        )
    return findings


def regrade(view: ReportView, metadata: GradingMetadata) -> GradeDecision:
    """The grade of the report's columns without the dismissed detections (same rules)."""
    return grade(reviewed_findings(view), metadata)


def reviewed_report(session: Session, principal: Principal, job_id: str) -> ReviewedReport:
    """A finished scan's report with the data set's current review decisions applied."""
    job = get_scan(session, principal, job_id, with_report=True)
    report: Mapping[str, Any] = job.report or {}
    rows = session.scalars(
        select(DetectionReview).where(DetectionReview.dataset_id == job.dataset_id)
    )
    view = apply_reviews(report, [_review_of(r) for r in rows], sensitive_types())
    as_scanned = _decision(report)
    after = None
    individuals = report.get("distinct_individuals")
    if view.dismissed and report.get("columns"):
        individuals = distinct_individuals(reviewed_findings(view))
        try:
            after = regrade(view, _grading_metadata(report))
        except DomainError:
            after = None
    return ReviewedReport(
        job, view, as_scanned, after, individuals if isinstance(individuals, int) else None
    )


# ------------------------------------------------------------------------------ runner side


@dataclass(frozen=True)
class ClaimedJob:
    """A job a runner took, with what it needs to run it without touching the ORM again."""

    job_id: str
    version_id: str
    dataset_id: str
    party_id: str
    mode: str
    attempt: int
    metadata: dict[str, Any]


def _system_event(
    session: Session, job: ScanJob, tag: str, summary: str, reasons: list[str] | None = None
) -> None:
    audit.record(
        session,
        actor=None,
        actor_name=RUNNER,
        action=tag,
        object_type="scan_job",
        object_id=job.id,
        party_id=job.party_id,
        summary=summary,
        reasons=reasons or [],
    )


def scan_metadata(session: Session, job: ScanJob) -> dict[str, Any]:
    """What the scan is told about the data set: its declarations and the dismissed detections."""
    dataset = dataplane.dataset_facts(session, job.dataset_id)
    dismissed = session.execute(
        select(DetectionReview.column_name, DetectionReview.entity_type).where(
            DetectionReview.dataset_id == job.dataset_id,
            DetectionReview.decision == ReviewDecision.DISMISSED,
        )
    ).all()
    return {
        **dataset,
        "version_number": job.version_number,
        "dismissed": [[c, t] for c, t in dismissed],
    }


def claim_next(session: Session, runner_id: str, now: datetime | None = None) -> ClaimedJob | None:
    """Take the oldest queued job for ``runner_id`` (atomically; see the module docstring)."""
    now = now or utcnow()
    job = session.execute(
        select(ScanJob)
        .where(ScanJob.status == ScanStatus.QUEUED)
        .order_by(ScanJob.requested_at, ScanJob.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).scalar_one_or_none()
    if job is None:
        return None
    job.status, job.runner_id = ScanStatus.RUNNING, runner_id[:64]
    job.started_at = job.heartbeat_at = now
    job.attempts += 1
    job.rows_done, job.rows_total = 0, None
    _system_event(
        session,
        job,
        EventTag.SCAN_START,
        f"Scan of version {job.version_number} started by {runner_id} (attempt {job.attempts})",
    )
    return ClaimedJob(
        job.id,
        job.version_id,
        job.dataset_id,
        job.party_id,
        job.mode,
        job.attempts,
        scan_metadata(session, job),
    )


def _owned(session: Session, job_id: str, runner_id: str) -> ScanJob | None:
    job = session.execute(
        select(ScanJob).where(ScanJob.id == job_id).with_for_update()
    ).scalar_one_or_none()
    if job is None or job.status != ScanStatus.RUNNING or job.runner_id != runner_id[:64]:
        return None
    return job


@dataclass(frozen=True)
class Beat:
    """The answer to a heartbeat: go on, or stop (``why``: cancel, lost, timeout)."""

    stop: bool
    why: str | None = None


def heartbeat(
    session: Session,
    job_id: str,
    runner_id: str,
    *,
    rows_done: int,
    rows_total: int | None,
    limits: JobTimeouts,
    now: datetime | None = None,
) -> Beat:
    """A runner records progress and that it is alive; the answer says whether to go on."""
    now = now or utcnow()
    job = _owned(session, job_id, runner_id)
    if job is None:
        return Beat(True, "lost")
    job.heartbeat_at, job.rows_done, job.rows_total = now, rows_done, rows_total
    if job.cancel_requested_at is not None:
        return Beat(True, "cancel")
    if overran(job.started_at, now, limits):
        return Beat(True, "timeout")
    return Beat(False)


def finish_job(
    session: Session,
    job_id: str,
    runner_id: str,
    *,
    report: dict[str, Any],
    rows_done: int,
    rows_total: int | None,
) -> bool:
    """Store a finished scan's report; False (nothing written) if the runner lost the job."""
    job = _owned(session, job_id, runner_id)
    if job is None:
        return False
    quality = report.get("quality")
    score = quality.get("score") if isinstance(quality, Mapping) else None
    job.status, job.finished_at = ScanStatus.SUCCEEDED, utcnow()
    job.report = report
    job.grade = str(report["grade"])[:16] if report.get("grade") else None
    job.quality_score = float(score) if isinstance(score, int | float) else None
    job.rows_done, job.rows_total = rows_done, rows_total
    _system_event(
        session,
        job,
        EventTag.SCAN_SUCCEED,
        f"Scan of version {job.version_number} finished: grade {job.grade or '-'}, "
        f"{len(report.get('columns') or [])} columns, {rows_done} rows",
    )
    return True


def fail_job(
    session: Session,
    job_id: str,
    runner_id: str,
    *,
    code: str,
    message: str,
    params: Mapping[str, Any] | None = None,
) -> bool:
    """Record why a scan failed (a translatable message and its parameters)."""
    job = _owned(session, job_id, runner_id)
    if job is None:
        return False
    job.status, job.finished_at = ScanStatus.FAILED, utcnow()
    job.error_code = code[:64]
    job.error_message = message
    job.error_params = {k: str(v)[:500] for k, v in (params or {}).items()}
    _system_event(
        session, job, EventTag.SCAN_FAIL, f"Scan of version {job.version_number} failed: {code}"
    )
    return True


def cancelled_job(session: Session, job_id: str, runner_id: str, *, why: str) -> bool:
    """The runner stopped the scan on request (or on its time limit)."""
    job = _owned(session, job_id, runner_id)
    if job is None:
        return False
    job.finished_at = utcnow()
    if why == "timeout":
        job.status = ScanStatus.FAILED
        job.error_code = "timeout"
        job.error_message = N_("The scan ran longer than the limit and was stopped.")
        tag, summary = EventTag.SCAN_FAIL, "Scan stopped at its time limit"
    else:
        job.status = ScanStatus.CANCELLED
        tag, summary = EventTag.SCAN_CANCELLED, "Scan cancelled as requested"
    _system_event(session, job, tag, f"{summary} (version {job.version_number})")
    return True


def release_job(session: Session, job_id: str, runner_id: str) -> bool:
    """A runner shutting down hands its job back to the queue at once (no stale wait)."""
    job = _owned(session, job_id, runner_id)
    if job is None:
        return False
    job.status, job.runner_id, job.heartbeat_at = ScanStatus.QUEUED, None, None
    _system_event(
        session,
        job,
        EventTag.SCAN_REQUEUE,
        f"Runner {runner_id} shut down; scan back in the queue after attempt {job.attempts}",
    )
    return True


def sweep(session: Session, limits: JobTimeouts, now: datetime | None = None) -> int:
    """Move every job that overstayed its state on (see ``workflow.sweep_action``); how many."""
    now = now or utcnow()
    candidates = session.scalars(
        select(ScanJob)
        .where(
            (
                (ScanJob.status == ScanStatus.QUEUED)
                & (ScanJob.requested_at < now - limits.queue_timeout)
            )
            | (
                (ScanJob.status == ScanStatus.RUNNING)
                & (
                    (ScanJob.heartbeat_at < now - limits.heartbeat_stale)
                    | (ScanJob.started_at < now - limits.max_run)
                )
            )
        )
        .order_by(ScanJob.requested_at)
        .limit(100)
        .with_for_update(skip_locked=True)
    ).all()
    moved = 0
    for job in candidates:
        clock = JobClock(
            job.status,
            job.requested_at,
            job.started_at,
            job.heartbeat_at,
            job.cancel_requested_at is not None,
            job.attempts,
        )
        action = sweep_action(clock, now, limits)
        if action is None:
            continue
        moved += 1
        stale_runner = job.runner_id or "-"
        if action is SweepAction.REQUEUE:
            job.status, job.runner_id = ScanStatus.QUEUED, None
            job.heartbeat_at = None
            _system_event(
                session,
                job,
                EventTag.SCAN_REQUEUE,
                f"Runner {stale_runner} stopped beating; scan back in the queue "
                f"after attempt {job.attempts}",
            )
            continue
        job.finished_at = now
        if action is SweepAction.CANCEL:
            job.status = ScanStatus.CANCELLED
            _system_event(
                session, job, EventTag.SCAN_CANCELLED, f"Runner {stale_runner} lost; cancelled"
            )
            continue
        job.status = ScanStatus.FAILED
        job.error_code = str(action)
        job.error_message = {
            SweepAction.GIVE_UP: N_(
                "The scan was interrupted {attempts} times (its runner stopped); try again later."
            ),
            SweepAction.TIME_OUT: N_("The scan ran longer than the limit and was stopped."),
            SweepAction.EXPIRE: N_(
                "No scan runner started the scan in time. Ask the operator whether scan runners "
                "are running, then request the scan again."
            ),
        }[action]
        job.error_params = {"attempts": str(job.attempts)}
        _system_event(session, job, EventTag.SCAN_FAIL, f"Scan failed by the sweep: {action}")
    return moved
