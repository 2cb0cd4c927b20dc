"""Discovery use cases: add versions (each queues a scan), scan jobs, cancellation, reviews,
de-identification into new versions and the trustee's reversal of tokens.

Each function is one use case on the caller's open ``Session``; the entry point commits, so a
change and its audit event land together. Two kinds of caller:

* people (``Principal``): add a version, request or cancel a scan, force-cancel one (an
  administrator), review a detection, de-identify a version, reverse tokens (the trustee's users
  only). Visibility follows the data set: its holder's users and the parties that read across
  parties; another party's ids answer "not found".
* the runners (``jobs.py``), acting for the system: claim a queued job (a scan or a
  de-identification: ``JobKind``), beat its heart, store its outcome or its failure, and sweep
  jobs whose state lasted too long. Each of these writes only
  when the job is still in the state the runner expects and still names that runner, so a runner
  that lost its job (force-cancelled, or given to another runner after a stall) can never
  overwrite the outcome.

The state machine, the claim, the ownership check, the heartbeat and the sweep are every
background job's (``datafactor.jobs``): claiming is atomic with several runners in several
processes, and a job re-queued after its runner vanished counts its queue timeout from when it
went back (``queued_at``). ``JobKind`` says what differs between scans and de-identifications.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session, undefer

from datafactor import audit, dataplane, identity, ledger
from datafactor.db import utcnow
from datafactor.discovery.deidentification import (
    FORMATS,
    DeidentificationPolicy,
    DeidentifiedOutput,
    PlannedColumn,
    Technique,
    policy_from_profile,
)
from datafactor.discovery.grading import (
    GradeDecision,
    GradingMetadata,
    distinct_individuals,
    grade,
)
from datafactor.discovery.models import (
    DeidentificationJob,
    DetectionReview,
    Detokenisation,
    DetokenisationQuota,
    ScanJob,
)
from datafactor.discovery.recognizers import ColumnFinding, load_pii_rules
from datafactor.discovery.tokens import TrusteeKeys, detokenise, require_trustee
from datafactor.discovery.workflow import (
    ACTIVE,
    FINAL,
    EventTag,
    ReportView,
    Review,
    ReviewDecision,
    ScanMode,
    ScanStatus,
    apply_reviews,
    check_reason,
    check_review,
    check_token_count,
    trustee_refusal,
)
from datafactor.errors import N_, Conflict, DomainError, Forbidden, InvalidInput, NotFound
from datafactor.jobs import store as jobstore
from datafactor.jobs.state import Beat, JobTimeouts, StopReason, SweepAction
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
    session: Session,
    actor: Principal | None,
    version: Any,
    mode: ScanMode,
    *,
    automatic: bool,
    requested_by: tuple[str | None, str] | None = None,
) -> ScanJob:
    """Queue a scan of ``version``; ``actor`` None is a runner queueing it for the person
    ``requested_by`` (user id, username) whose request made the version."""
    if requested_by is None:
        assert actor is not None
        requested_by = (actor.user_id, actor.username)
    job = ScanJob(
        party_id=version.party_id,
        dataset_id=version.dataset_id,
        version_id=version.id,
        version_number=version.number,
        mode=mode,
        status=ScanStatus.QUEUED,
        requested_by=requested_by[0],
        requested_by_name=requested_by[1][:64],
        attempts=0,
        rows_done=0,
    )
    session.add(job)
    session.flush()
    audit.record(
        session,
        actor=actor,
        actor_name=RUNNER if actor is None else None,
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


def _cancel_job(session: Session, principal: Principal, job: Job, kind: JobKind) -> None:
    """Ask a job to stop (checked by the caller): a queued one ends at once, a running one at
    its runner's next check (within a heartbeat)."""
    if jobstore.request_cancel(job, principal.username, utcnow()):
        tag, summary = kind.cancelled, f"Queued {kind.noun.lower()} cancelled"
    else:
        tag, summary = kind.cancel_request, f"Cancel of a running {kind.noun.lower()} requested"
    audit.record(
        session,
        actor=principal,
        action=tag,
        object_type=kind.object_type,
        object_id=job.id,
        party_id=job.party_id,
        summary=f"{summary} ({kind.about(job)})",
    )


def _force_cancel_job(
    session: Session, principal: Principal, job: Job, kind: JobKind, reason: str
) -> None:
    """An administrator ends a job now, whatever its runner is doing (the audited way out of any
    state). The runner, if alive, notices at its next heartbeat and stops without writing.

    A party's admin ends its own party's jobs; only the platform's administrator (the exchange
    operator) ends another party's — a regulator reads across parties but changes nothing."""
    _require(
        principal,
        P.DISCOVERY_SCAN_FORCE
        if job.party_id == principal.party_id
        else P.DISCOVERY_SCAN_FORCE_ALL,
    )
    reason = check_reason(reason)
    if job.status in FINAL:
        raise kind.ended(job)
    previous = jobstore.force_cancel(job, principal.username, reason, utcnow())
    audit.record(
        session,
        actor=principal,
        action=kind.force_cancel,
        object_type=kind.object_type,
        object_id=job.id,
        party_id=job.party_id,
        summary=f"{kind.noun} force-cancelled while {previous} (runner {job.runner_id or '-'})",
        reasons=[reason],
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
    _cancel_job(session, principal, job, SCANS)
    return job


def force_cancel_scan(session: Session, principal: Principal, job_id: str, reason: str) -> ScanJob:
    """An administrator ends a scan now (see ``_force_cancel_job``)."""
    job = get_scan(session, principal, job_id, for_update=True)
    _force_cancel_job(session, principal, job, SCANS, reason)
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


# --------------------------------------------------------------------------- de-identification

LEDGER_DEIDENTIFIED: Final = "discovery.version.deidentified"
RATE_WINDOW: Final = timedelta(hours=1)


class TooManyTokens(DomainError):
    """A trustee party reversed as many values in the last hour as the operator allows."""

    status = 429
    code = "detokenise-rate"
    title = N_("Too many requests")


@dataclass(frozen=True)
class DeidentificationRequest:
    """What a person asks for: a starter ``profile`` or a ``policy`` document (one of them), the
    ``trustee`` party of tokenised columns, and where the new version goes — the source's data set
    (neither ``dataset_id`` nor ``new_dataset_name``), another data set of the same party, or a new
    one declared with that name."""

    profile: str | None = None
    policy: Mapping[str, Any] | None = None
    trustee: str | None = None
    dataset_id: str | None = None
    new_dataset_name: str | None = None
    format: str = "parquet"


@dataclass(frozen=True)
class DeidentificationSource:
    """A version about to be de-identified, read once: how to open it (``source``, for the
    caller to read its columns outside any transaction) and the findings of its latest succeeded
    scan with the data set's dismissed detections left out (None when it was never scanned)."""

    version_id: str
    version_number: int
    dataset_id: str
    party_id: str
    source: dataplane.VersionSource
    findings: dict[str, list[str]] | None
    scan_id: str | None


@dataclass(frozen=True)
class DeidentificationPlan:
    """A request checked against the version's columns: the policy and what each column gets."""

    source: DeidentificationSource
    policy: DeidentificationPolicy
    profile: str | None
    columns: tuple[PlannedColumn, ...]

    @property
    def trustees(self) -> tuple[str, ...]:
        """The parties that will hold the keys of tokenised columns, in column order."""
        named = [
            str(c.params["trustee"]) for c in self.columns if c.technique is Technique.TOKENISE
        ]
        return tuple(dict.fromkeys(named))

    @property
    def exposed(self) -> tuple[PlannedColumn, ...]:
        """Columns kept as they are although the scan found personal information in them."""
        types = self.source.findings or {}
        return tuple(c for c in self.columns if c.technique is Technique.KEEP and types.get(c.name))


def _require_deidentify(principal: Principal) -> None:
    _require(principal, P.DISCOVERY_DEIDENTIFICATION_RUN)
    _require(principal, P.DATAPLANE_DATASET_WRITE)


def deidentification_source(
    session: Session, principal: Principal, version_id: str, *, secret_key: str
) -> DeidentificationSource:
    """A version of the principal's own party, with the findings a policy is planned against."""
    _require_deidentify(principal)
    version = dataplane.get_version(session, principal, version_id)
    if version.party_id != principal.party_id:
        raise Forbidden(N_("Only the party that holds a data set can de-identify it."))
    scan = session.scalar(
        select(ScanJob.id)
        .where(ScanJob.version_id == version.id, ScanJob.status == ScanStatus.SUCCEEDED)
        .order_by(ScanJob.finished_at.desc(), ScanJob.id)
        .limit(1)
    )
    findings = None
    if scan is not None:
        view = reviewed_report(session, principal, scan).view
        findings = {c.name: [d.entity_type for d in c.effective] for c in view.columns}
    return DeidentificationSource(
        version.id,
        version.number,
        version.dataset_id,
        version.party_id,
        dataplane.version_source(session, version.id, secret_key=secret_key),
        findings,
        scan,
    )


def deidentification_policy(
    source: DeidentificationSource, request: DeidentificationRequest
) -> DeidentificationPolicy:
    """The policy a request asks for: built from a starter profile and the scan's findings, or
    read from the document given; ``InvalidInput`` names what to fix."""
    if (request.profile is None) == (request.policy is None):
        raise InvalidInput(
            N_("Choose a starter profile or give a policy, not both and not neither."),
            field="profile",
            code="profile-or-policy",
        )
    if request.format not in FORMATS:
        raise InvalidInput(
            N_("The output format {format} is not supported. Use parquet or csv."),
            field="format",
            code="bad-format",
            format=request.format,
        )
    if request.profile is not None:
        if source.findings is None:
            raise Conflict(
                N_(
                    "Version {n} has not been scanned yet: a starter profile is chosen by what a "
                    "scan found. Wait for its scan to finish, or give a policy that names the "
                    "columns."
                ),
                field="profile",
                code="needs-scan",
                n=source.version_number,
            )
        policy = policy_from_profile(
            source.findings, request.profile, trustee=request.trustee or None
        )
        if policy.trustee is not None and not any(
            rule.technique is Technique.TOKENISE for rule in policy.columns.values()
        ):
            # A trustee named for a profile that tokenises nothing here is not part of it.
            policy = policy_from_profile(source.findings, request.profile)
        return policy
    document = dict(request.policy or {})
    if request.trustee:
        named = document.get("trustee")
        if named not in (None, request.trustee):
            raise InvalidInput(
                N_(
                    "The policy names the trustee {policy_trustee} and the request names "
                    "{trustee}; name one."
                ),
                field="trustee",
                code="two-trustees",
                policy_trustee=str(named),
                trustee=request.trustee,
            )
        document["trustee"] = request.trustee
    return DeidentificationPolicy.from_dict(document)


def check_trustees(session: Session, principal: Principal, trustees: Sequence[str]) -> None:
    """Each trustee must be the principal's own party or a verified data custodian."""
    for trustee in trustees:
        own = trustee == principal.party_id
        custodian = not own and identity.get_custodian(session, principal, trustee) is not None
        refusal = trustee_refusal(own_party=own, verified_custodian=custodian)
        if refusal is not None:
            raise InvalidInput(refusal, field="trustee", code="bad-trustee", trustee=trustee)


def _target_dataset(
    session: Session, principal: Principal, source_dataset_id: str, request: DeidentificationRequest
) -> str:
    if request.dataset_id and request.new_dataset_name:
        raise InvalidInput(
            N_("Put the new version into an existing data set or a new one, not both."),
            field="new_dataset_name",
        )
    if request.new_dataset_name:
        facts = dataplane.get_dataset(session, principal, source_dataset_id)
        created = dataplane.create_dataset(
            session,
            principal,
            dataplane.DatasetDraft(
                name=request.new_dataset_name,
                description=f"De-identified from {facts.name}",
                domain=facts.domain,
                update_frequency=facts.update_frequency,
            ),
        )
        return created.id
    target = request.dataset_id or source_dataset_id
    dataplane.check_writable(session, principal, target)
    return target


def request_deidentification(
    session: Session,
    principal: Principal,
    plan: DeidentificationPlan,
    request: DeidentificationRequest,
) -> DeidentificationJob:
    """Queue the de-identification of a planned version (checked again here, in the write
    transaction: the plan was made outside it)."""
    _require_deidentify(principal)
    version = dataplane.get_version(session, principal, plan.source.version_id)
    if version.party_id != principal.party_id:
        raise Forbidden(N_("Only the party that holds a data set can de-identify it."))
    check_trustees(session, principal, plan.trustees)
    target = _target_dataset(session, principal, version.dataset_id, request)
    policy = plan.policy
    duplicate = session.scalar(
        select(DeidentificationJob.id).where(
            DeidentificationJob.version_id == version.id,
            DeidentificationJob.policy_digest == policy.digest,
            DeidentificationJob.target_dataset_id == target,
            DeidentificationJob.status.in_([str(s) for s in ACTIVE]),
        )
    )
    if duplicate is not None:
        raise Conflict(
            N_("The same de-identification of this version is already queued or running."),
            code="deidentification-active",
        )
    job = DeidentificationJob(
        party_id=version.party_id,
        dataset_id=version.dataset_id,
        version_id=version.id,
        version_number=version.number,
        target_dataset_id=target,
        profile=plan.profile,
        policy_name=policy.name[:128],
        policy_digest=policy.digest,
        policy=policy.as_dict(),
        findings=plan.source.findings,
        trustee_party_id=plan.trustees[0] if plan.trustees else None,
        format=request.format,
        status=ScanStatus.QUEUED,
        requested_by=principal.user_id,
        requested_by_name=principal.username,
        attempts=0,
        rows_done=0,
    )
    session.add(job)
    session.flush()
    techniques = ", ".join(f"{c.name}: {c.technique.value}" for c in plan.columns)
    audit.record(
        session,
        actor=principal,
        action=EventTag.DEID_REQUEST,
        object_type="deidentification_job",
        object_id=job.id,
        party_id=job.party_id,
        summary=f"De-identification of version {version.number} queued: policy {policy.name} "
        f"sha256:{policy.digest}"
        + (f" (profile {plan.profile})" if plan.profile else "")
        + (f", trustee {', '.join(plan.trustees)}" if plan.trustees else "")
        + (f", into data set {target}" if target != version.dataset_id else ""),
        reasons=[techniques[:2000]],
    )
    return job


def get_deidentification(
    session: Session,
    principal: Principal,
    job_id: str,
    *,
    for_update: bool = False,
    with_report: bool = False,
) -> DeidentificationJob:
    """A de-identification job of a data set the principal may see; others answer 'not found'."""
    stmt = select(DeidentificationJob).where(DeidentificationJob.id == job_id)
    if with_report:
        stmt = stmt.options(undefer(DeidentificationJob.report))
    if for_update:
        stmt = stmt.with_for_update()
    job = session.execute(stmt).scalar_one_or_none()
    if job is None or not dataplane.can_see(principal, job.party_id):
        raise NotFound(N_("No such de-identification."))
    return job


def list_deidentifications(
    session: Session, principal: Principal, query: ScanQuery, *, limit: int, offset: int
) -> tuple[list[DeidentificationJob], int]:
    """De-identification jobs the principal may see, newest first (the same filters as scans:
    ``dataset_id`` matches the source's data set or the target)."""
    if not (principal.can(P.DATAPLANE_DATASET_READ) or principal.can(P.DATAPLANE_DATASET_READ_ALL)):
        raise Forbidden(
            N_("Your account is not allowed to do this ({permission})."),
            permission=P.DATAPLANE_DATASET_READ,
        )
    model = DeidentificationJob
    stmt = select(model)
    if not principal.can(P.DATAPLANE_DATASET_READ_ALL):
        stmt = stmt.where(model.party_id == principal.party_id)
    elif not principal.can(P.DATAPLANE_DATASET_READ):
        stmt = stmt.where(model.party_id != principal.party_id)
    if query.dataset_id:
        stmt = stmt.where(
            (model.dataset_id == query.dataset_id) | (model.target_dataset_id == query.dataset_id)
        )
    if query.version_id:
        stmt = stmt.where(model.version_id == query.version_id)
    if query.status:
        stmt = stmt.where(model.status == query.status)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(model.requested_at.desc(), model.id).limit(limit).offset(offset)
    )
    return list(rows), total


def derivation_of(
    session: Session, principal: Principal, version_id: str
) -> DeidentificationJob | None:
    """The de-identification that made this version (with its report), if it was made so."""
    dataplane.get_version(session, principal, version_id)
    return session.scalar(
        select(DeidentificationJob)
        .options(undefer(DeidentificationJob.report))
        .where(DeidentificationJob.result_version_id == version_id)
    )


def cancel_deidentification(
    session: Session, principal: Principal, job_id: str
) -> DeidentificationJob:
    """Ask a de-identification to stop: at once while queued, at the runner's next check when
    running (what it wrote so far is thrown away; no version is added)."""
    _require(principal, P.DISCOVERY_DEIDENTIFICATION_RUN)
    job = get_deidentification(session, principal, job_id, for_update=True)
    if job.party_id != principal.party_id:
        raise Forbidden(N_("Only the party that holds a data set can cancel its jobs."))
    if job.status in FINAL:
        raise _final_job_conflict(job)
    _cancel_job(session, principal, job, DEIDENTIFICATIONS)
    return job


def _final_job_conflict(job: DeidentificationJob) -> Conflict:
    return Conflict(
        N_("This de-identification has already ended ({status}); reload the page."),
        code="deidentification-ended",
        status=job.status,
    )


def force_cancel_deidentification(
    session: Session, principal: Principal, job_id: str, reason: str
) -> DeidentificationJob:
    """An administrator ends a de-identification now (the same rights as for scans)."""
    job = get_deidentification(session, principal, job_id, for_update=True)
    _force_cancel_job(session, principal, job, DEIDENTIFICATIONS, reason)
    return job


# ------------------------------------------------------------------------------- detokenisation


def _tokenised_columns(job: DeidentificationJob) -> dict[str, Mapping[str, Any]]:
    """The tokenised columns of a finished job's report: name -> parameters as applied."""
    columns = (job.report or {}).get("columns") or []
    return {
        str(c["name"]): c.get("params") or {}
        for c in columns
        if isinstance(c, Mapping) and c.get("technique") == Technique.TOKENISE
    }


def _lock_quota(session: Session, party_id: str) -> DetokenisationQuota:
    """The party's quota row, created if missing and locked until the transaction ends.

    Counting the last hour's reversals and adding this one must not interleave with another
    request of the same party: on PostgreSQL two transactions would both count the same total
    and both pass the limit. The row lock makes the second wait for the first to commit; under
    READ COMMITTED its count, a later statement, then sees the first one's reversal. On SQLite
    the write transaction (``BEGIN IMMEDIATE``) already serialises every writer.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        session.execute(
            pg_insert(DetokenisationQuota)
            .values(party_id=party_id, reversed_total=0)
            .on_conflict_do_nothing(index_elements=["party_id"])
        )
    elif session.get(DetokenisationQuota, party_id) is None:
        session.add(DetokenisationQuota(party_id=party_id, reversed_total=0))
        session.flush()
    return session.execute(
        select(DetokenisationQuota)
        .where(DetokenisationQuota.party_id == party_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def detokenise_values(
    session: Session,
    principal: Principal,
    keys: TrusteeKeys,
    version_id: str,
    *,
    column: str,
    tokens: Sequence[str | None],
    max_per_call: int,
    max_per_hour: int,
    now: datetime | None = None,
) -> list[str | None]:
    """The trustee's users turn tokens of one column of a de-identified version back into values.

    Who may: a user of the party the column's policy named trustee, holding
    ``discovery:token:reverse``. The version is found by anyone who may see it or is a trustee
    of one of its columns; everyone else gets 'not found'. Refused as well: a column that holds no
    tokens, more than ``max_per_call`` tokens, and more than ``max_per_hour`` values reversed by
    the party in the last hour (429). Each reversal is audited for the trustee and, when it is
    another party, for the holder: who, which version and column, how many values — never the
    tokens or the values.
    """
    _require(principal, P.DISCOVERY_TOKEN_REVERSE)
    now = now or utcnow()
    job = session.scalar(
        select(DeidentificationJob)
        .options(undefer(DeidentificationJob.report))
        .where(
            DeidentificationJob.result_version_id == version_id,
            DeidentificationJob.status == ScanStatus.SUCCEEDED,
        )
    )
    tokenised = _tokenised_columns(job) if job is not None else {}
    trustees = {str(p.get("trustee")) for p in tokenised.values()}
    if job is None or not (
        dataplane.can_see(principal, job.party_id) or principal.party_id in trustees
    ):
        raise NotFound(N_("No such data set version."))
    params = tokenised.get(column)
    if params is None:
        raise InvalidInput(
            N_("Column {column} of this version holds no tokens. Tokenised columns: {columns}."),
            field="column",
            code="not-tokenised",
            column=column[:255],
            columns=", ".join(tokenised) or "-",
        )
    trustee = str(params.get("trustee"))
    require_trustee(principal, trustee)
    check_token_count(len(tokens), max_per_call)
    quota = _lock_quota(session, principal.party_id)
    done = session.scalar(
        select(func.coalesce(func.sum(Detokenisation.count), 0)).where(
            Detokenisation.party_id == principal.party_id,
            Detokenisation.at > now - RATE_WINDOW,
        )
    )
    if int(done or 0) + len(tokens) > max_per_hour:
        raise TooManyTokens(
            N_(
                "Your organisation has reversed {done} values in the last hour; at most {limit} "
                "are allowed per hour. Try again later."
            ),
            done=int(done or 0),
            limit=max_per_hour,
        )
    values = detokenise(tokens, trustee=trustee, keys=keys, context=str(params.get("context", "")))
    count = sum(1 for t in tokens if t is not None)
    quota.reversed_total += count
    quota.last_at = now
    session.add(
        Detokenisation(
            party_id=principal.party_id,
            user_id=principal.user_id,
            username=principal.username,
            version_id=version_id,
            column_name=column[:255],
            count=count,
            at=now,
        )
    )
    summary = (
        f"{count} values of column {column} of version {job.version_number} "
        f"(version id {version_id}) reversed by {principal.username} for trustee {trustee}"
    )
    for party_id in dict.fromkeys([principal.party_id, job.party_id]):
        audit.record(
            session,
            actor=principal,
            action=EventTag.TOKEN_REVERSE,
            object_type="dataset_version",
            object_id=version_id,
            party_id=party_id,
            summary=summary,
        )
    return values


# ------------------------------------------------------------------------------ runner side


Job = ScanJob | DeidentificationJob


@dataclass(frozen=True)
class JobKind:
    """What differs between the two kinds of background job the runners share: the table, the
    audit tags, the noun of summaries and the messages of the sweep. The state machine, its
    timeouts and the ownership rules are every background job's (``datafactor.jobs``)."""

    model: type[ScanJob] | type[DeidentificationJob]
    object_type: str
    noun: str
    start: EventTag
    fail: EventTag
    cancelled: EventTag
    requeue: EventTag
    cancel_request: EventTag
    force_cancel: EventTag
    msg_timeout: str
    msg_give_up: str
    msg_expire: str

    def about(self, job: Job) -> str:
        """What an audit summary says of the job."""
        mode = getattr(job, "mode", None) if self.model is ScanJob else None
        return f"version {job.version_number}" + (f", {mode}" if mode else "")

    def ended(self, job: Job) -> Conflict:
        """The refusal of a change to a job that already ended."""
        if isinstance(job, ScanJob):
            return _final_state_conflict(job)
        return _final_job_conflict(job)

    @property
    def sweep_messages(self) -> dict[SweepAction, str]:
        return {
            SweepAction.GIVE_UP: self.msg_give_up,
            SweepAction.TIME_OUT: self.msg_timeout,
            SweepAction.EXPIRE: self.msg_expire,
        }


SCANS: Final = JobKind(
    ScanJob,
    "scan_job",
    "Scan",
    EventTag.SCAN_START,
    EventTag.SCAN_FAIL,
    EventTag.SCAN_CANCELLED,
    EventTag.SCAN_REQUEUE,
    EventTag.SCAN_CANCEL_REQUEST,
    EventTag.SCAN_FORCE_CANCEL,
    N_("The scan ran longer than the limit and was stopped."),
    N_("The scan was interrupted {attempts} times (its runner stopped); try again later."),
    N_(
        "No scan runner started the scan in time. Ask the operator whether scan runners "
        "are running, then request the scan again."
    ),
)
DEIDENTIFICATIONS: Final = JobKind(
    DeidentificationJob,
    "deidentification_job",
    "De-identification",
    EventTag.DEID_START,
    EventTag.DEID_FAIL,
    EventTag.DEID_CANCELLED,
    EventTag.DEID_REQUEUE,
    EventTag.DEID_CANCEL_REQUEST,
    EventTag.DEID_FORCE_CANCEL,
    N_("The de-identification ran longer than the limit and was stopped."),
    N_(
        "The de-identification was interrupted {attempts} times (its runner stopped); try "
        "again later."
    ),
    N_(
        "No runner started the de-identification in time. Ask the operator whether scan "
        "runners are running, then request it again."
    ),
)


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
    session: Session,
    job: Job,
    tag: str,
    summary: str,
    reasons: list[str] | None = None,
    *,
    object_type: str = "scan_job",
) -> None:
    audit.record(
        session,
        actor=None,
        actor_name=RUNNER,
        action=tag,
        object_type=object_type,
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


def _claim(session: Session, kind: JobKind, runner_id: str, now: datetime) -> Job | None:
    """The job of ``kind`` longest in the queue, now running for ``runner_id`` (atomically)."""
    job: Job | None = jobstore.claim_oldest(session, kind.model, runner_id, now)
    if job is None:
        return None
    job.rows_done, job.rows_total = 0, None
    _system_event(
        session,
        job,
        kind.start,
        f"{kind.noun} of version {job.version_number} started by {runner_id} "
        f"(attempt {job.attempts})",
        object_type=kind.object_type,
    )
    return job


def claim_next(session: Session, runner_id: str, now: datetime | None = None) -> ClaimedJob | None:
    """Take the scan job longest in the queue for ``runner_id`` (atomically; see
    ``datafactor.jobs.store``)."""
    job = _claim(session, SCANS, runner_id, now or utcnow())
    if job is None:
        return None
    assert isinstance(job, ScanJob)
    return ClaimedJob(
        job.id,
        job.version_id,
        job.dataset_id,
        job.party_id,
        job.mode,
        job.attempts,
        scan_metadata(session, job),
    )


def _owned(session: Session, job_id: str, runner_id: str, kind: JobKind = SCANS) -> Job | None:
    job: Job | None = jobstore.owned(session, kind.model, job_id, runner_id)
    return job


def heartbeat(
    session: Session,
    job_id: str,
    runner_id: str,
    *,
    rows_done: int,
    rows_total: int | None,
    limits: JobTimeouts,
    now: datetime | None = None,
    kind: JobKind = SCANS,
) -> Beat:
    """A runner records progress and that it is alive; the answer says whether to go on."""

    def progress(job: Job) -> None:
        job.rows_done, job.rows_total = rows_done, rows_total

    return jobstore.heartbeat(
        session,
        kind.model,
        job_id,
        runner_id,
        limits=limits,
        now=now or utcnow(),
        progress=progress,
    )


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
    assert isinstance(job, ScanJob)
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
    kind: JobKind = SCANS,
) -> bool:
    """Record why a job failed (a translatable message and its parameters)."""
    job = _owned(session, job_id, runner_id, kind)
    if job is None:
        return False
    jobstore.fail(job, utcnow(), code, message, params)
    _system_event(
        session,
        job,
        kind.fail,
        f"{kind.noun} of version {job.version_number} failed: {code}",
        object_type=kind.object_type,
    )
    return True


def cancelled_job(
    session: Session, job_id: str, runner_id: str, *, why: str, kind: JobKind = SCANS
) -> bool:
    """The runner stopped the job on request (or on its time limit)."""
    job = _owned(session, job_id, runner_id, kind)
    if job is None:
        return False
    now = utcnow()
    if why == StopReason.TIMEOUT:
        jobstore.fail(job, now, "timeout", kind.msg_timeout)
        tag, summary = kind.fail, f"{kind.noun} stopped at its time limit"
    else:
        job.status, job.finished_at = ScanStatus.CANCELLED, now
        tag, summary = kind.cancelled, f"{kind.noun} cancelled as requested"
    _system_event(
        session,
        job,
        tag,
        f"{summary} (version {job.version_number})",
        object_type=kind.object_type,
    )
    return True


def release_job(session: Session, job_id: str, runner_id: str, *, kind: JobKind = SCANS) -> bool:
    """A runner shutting down hands its job back to the queue at once (no stale wait)."""
    job = _owned(session, job_id, runner_id, kind)
    if job is None:
        return False
    jobstore.requeue(job, utcnow())
    _system_event(
        session,
        job,
        kind.requeue,
        f"Runner {runner_id} shut down; {kind.noun.lower()} back in the queue after attempt "
        f"{job.attempts}",
        object_type=kind.object_type,
    )
    return True


def sweep(
    session: Session, limits: JobTimeouts, now: datetime | None = None, *, kind: JobKind = SCANS
) -> int:
    """Move every job that overstayed its state on (see ``datafactor.jobs.state.sweep_action``);
    how many."""
    noun = kind.noun.lower()

    def moved(job: Job, action: SweepAction, stale_runner: str) -> None:
        if action is SweepAction.REQUEUE:
            tag, summary = (
                kind.requeue,
                f"Runner {stale_runner} stopped beating; {noun} back in the queue after attempt "
                f"{job.attempts}",
            )
        elif action is SweepAction.CANCEL:
            tag, summary = kind.cancelled, f"Runner {stale_runner} lost; cancelled"
        else:
            tag, summary = kind.fail, f"{kind.noun} failed by the sweep: {action}"
        _system_event(session, job, tag, summary, object_type=kind.object_type)

    return jobstore.sweep(
        session,
        kind.model,
        limits,
        now or utcnow(),
        messages=kind.sweep_messages,
        moved=moved,
    )


# ------------------------------------------------------------- de-identification runner side


@dataclass(frozen=True)
class ClaimedDeidentification:
    """A de-identification a runner took: everything it needs, fixed when it was requested."""

    job_id: str
    version_id: str
    party_id: str
    target_dataset_id: str
    policy: dict[str, Any]
    findings: dict[str, list[str]] | None
    format: str
    attempt: int


def claim_next_deidentification(
    session: Session, runner_id: str, now: datetime | None = None
) -> ClaimedDeidentification | None:
    """Take the oldest queued de-identification for ``runner_id`` (atomically, as scans)."""
    job = _claim(session, DEIDENTIFICATIONS, runner_id, now or utcnow())
    if job is None:
        return None
    assert isinstance(job, DeidentificationJob)
    return ClaimedDeidentification(
        job.id,
        job.version_id,
        job.party_id,
        job.target_dataset_id,
        dict(job.policy),
        {str(k): list(v) for k, v in job.findings.items()} if job.findings else None,
        job.format,
        job.attempts,
    )


def _technique_counts(output: DeidentifiedOutput) -> dict[str, int]:
    counts: dict[str, int] = {}
    for column in output.report.columns:
        counts[column.technique.value] = counts.get(column.technique.value, 0) + 1
    return dict(sorted(counts.items()))


def finish_deidentification(
    session: Session,
    job_id: str,
    runner_id: str,
    *,
    output: DeidentifiedOutput,
    source_sha256: str | None,
) -> bool:
    """Record a finished de-identification: the stored file becomes the next version of the
    target data set (its lineage naming the source and the policy's digest), a sample scan of
    it is queued, the report kept, and the derivation appended to the transparency ledger —
    ids and digests only (``source_sha256``: the source file's, None for a live table). False
    (nothing written) if the runner lost the job."""
    job = _owned(session, job_id, runner_id, DEIDENTIFICATIONS)
    if job is None:
        return False
    assert isinstance(job, DeidentificationJob)
    derivation = {
        "kind": "deidentification",
        "job_id": job.id,
        "source_dataset_id": job.dataset_id,
        "source_number": job.version_number,
        "policy_name": job.policy_name,
        "policy_digest": job.policy_digest,
    }
    requester = (job.requested_by, job.requested_by_name)
    version = dataplane.add_derived_version(
        session,
        job.target_dataset_id,
        blob=output.blob,
        filename=output.filename,
        derived_from_id=job.version_id,
        derivation=derivation,
        created_by=requester,
        actor_name=RUNNER,
    )
    scan = _queue(session, None, version, ScanMode.SAMPLE, automatic=True, requested_by=requester)
    report = output.report.as_dict()
    job.status, job.finished_at = ScanStatus.SUCCEEDED, utcnow()
    job.report = report
    job.rows_done = job.rows_total = output.rows
    job.result_version_id, job.result_sha256 = version.id, output.digest
    job.scan_job_id = scan.id
    index = ledger.append_event(
        session,
        LEDGER_DEIDENTIFIED,
        {
            "job_id": job.id,
            "party_id": job.party_id,
            "source_dataset_id": job.dataset_id,
            "source_version_id": job.version_id,
            "source_sha256": source_sha256,
            "dataset_id": version.dataset_id,
            "version_id": version.id,
            "sha256": output.digest,
            "size": output.size,
            "format": output.format,
            "rows": output.rows,
            "policy_digest": job.policy_digest,
            "techniques": _technique_counts(output),
        },
    )
    _system_event(
        session,
        job,
        EventTag.DEID_SUCCEED,
        f"De-identification of version {job.version_number} finished: version {version.number} "
        f"of data set {version.dataset_id}, sha256:{output.digest}, {output.rows} rows, policy "
        f"sha256:{job.policy_digest}, ledger entry {index}",
        object_type="deidentification_job",
    )
    return True
