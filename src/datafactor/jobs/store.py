"""The job state machine (``state``) applied to rows: generic over any table with the standard
job columns (``JobRow``), so each domain's services keep only what is theirs — the fields of
their own, the audit events and the words of their messages.

Each function works in the caller's open ``Session`` and never commits. Claiming is atomic with
several runners in several processes: on PostgreSQL the queued row is taken with ``FOR UPDATE
SKIP LOCKED`` (two runners never wait on, or both take, the same job); on SQLite the write
transaction itself holds the database's write lock (``BEGIN IMMEDIATE``). A runner's writes go
through ``owned``: the job must still be running *and name that runner*, so a runner that lost
its job (force-cancelled, or given to another runner after a stall) can never overwrite what the
other one stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from datafactor.errors import N_
from datafactor.jobs.state import (
    Beat,
    JobClock,
    JobStatus,
    JobTimeouts,
    StopReason,
    SweepAction,
    overran,
    sweep_action,
)

MSG_FORCE_CANCELLED = N_("Force-cancelled by {user}: {reason}")


class JobRow(Protocol):
    """The columns every background job's table has (see the module docstring)."""

    id: str
    status: str
    queued_at: datetime
    runner_id: str | None
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    attempts: int
    cancel_requested_at: datetime | None
    cancel_requested_by: str | None
    error_code: str | None
    error_message: str | None
    error_params: dict[str, Any] | None


J = TypeVar("J", bound=JobRow)


def start(job: JobRow, runner_id: str, now: datetime) -> None:
    """``job`` is now running for ``runner_id`` (one more attempt)."""
    job.status, job.runner_id = JobStatus.RUNNING, runner_id[:64]
    job.started_at = job.heartbeat_at = now
    job.attempts += 1


def claim_oldest(session: Session, model: type[J], runner_id: str, now: datetime) -> J | None:
    """The job longest in the queue, now running for ``runner_id`` (atomically), or None."""
    table: Any = model
    job: J | None = session.execute(
        select(table)
        .where(table.status == JobStatus.QUEUED)
        .order_by(table.queued_at, table.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).scalar_one_or_none()
    if job is not None:
        start(job, runner_id, now)
    return job


def owned(session: Session, model: type[J], job_id: str, runner_id: str) -> J | None:
    """The job, locked, if it is still running for ``runner_id``; None otherwise."""
    table: Any = model
    job: J | None = session.execute(
        select(table).where(table.id == job_id).with_for_update()
    ).scalar_one_or_none()
    if job is None or job.status != JobStatus.RUNNING or job.runner_id != runner_id[:64]:
        return None
    return job


def heartbeat(
    session: Session,
    model: type[J],
    job_id: str,
    runner_id: str,
    *,
    limits: JobTimeouts,
    now: datetime,
    progress: Callable[[J], None],
) -> Beat:
    """A runner says it is alive (``progress`` records what it did); the answer says go on or
    stop."""
    job = owned(session, model, job_id, runner_id)
    if job is None:
        return Beat(True, StopReason.LOST)
    job.heartbeat_at = now
    progress(job)
    if job.cancel_requested_at is not None:
        return Beat(True, StopReason.CANCEL)
    if overran(job.started_at, now, limits):
        return Beat(True, StopReason.TIMEOUT)
    return Beat(False)


def requeue(job: JobRow, now: datetime) -> None:
    """Back to the queue: no runner; the queue timeout counts again from ``now``."""
    job.status, job.runner_id, job.heartbeat_at, job.queued_at = JobStatus.QUEUED, None, None, now


def fail(
    job: JobRow, now: datetime, code: str, message: str, params: Mapping[str, Any] | None = None
) -> None:
    """The job failed: why, as a translatable message and its parameters."""
    job.status, job.finished_at = JobStatus.FAILED, now
    job.error_code = code[:64]
    job.error_message = message
    job.error_params = {k: str(v)[:500] for k, v in (params or {}).items()}


def request_cancel(job: JobRow, username: str, now: datetime) -> bool:
    """Ask a non-final job to stop; True when it was queued and so is cancelled at once (a
    running one stops at its runner's next check)."""
    if job.cancel_requested_at is None:
        job.cancel_requested_at, job.cancel_requested_by = now, username[:64]
    if job.status == JobStatus.QUEUED:
        job.status, job.finished_at = JobStatus.CANCELLED, now
        return True
    return False


def force_cancel(job: JobRow, username: str, reason: str, now: datetime) -> str:
    """End a non-final job now, whatever its runner does; the status it had."""
    previous = job.status
    job.status, job.finished_at = JobStatus.CANCELLED, now
    job.cancel_requested_at = job.cancel_requested_at or now
    job.cancel_requested_by = username[:64]
    job.error_code, job.error_message, job.error_params = (
        "force-cancelled",
        MSG_FORCE_CANCELLED,
        {"user": username, "reason": reason},
    )
    return previous


def clock(job: JobRow) -> JobClock:
    return JobClock(
        job.status,
        job.queued_at,
        job.started_at,
        job.heartbeat_at,
        job.cancel_requested_at is not None,
        job.attempts,
    )


def overdue(
    session: Session, model: type[J], limits: JobTimeouts, now: datetime, *, batch: int = 100
) -> Sequence[J]:
    """Jobs that may have overstayed their state (locked; others' locked rows are skipped)."""
    table: Any = model
    rows: Sequence[J] = session.scalars(
        select(table)
        .where(
            ((table.status == JobStatus.QUEUED) & (table.queued_at < now - limits.queue_timeout))
            | (
                (table.status == JobStatus.RUNNING)
                & (
                    (table.heartbeat_at < now - limits.heartbeat_stale)
                    | (table.started_at < now - limits.max_run)
                )
            )
        )
        .order_by(table.queued_at)
        .limit(batch)
        .with_for_update(skip_locked=True)
    ).all()
    return rows


def sweep(
    session: Session,
    model: type[J],
    limits: JobTimeouts,
    now: datetime,
    *,
    messages: Mapping[SweepAction, str],
    moved: Callable[[J, SweepAction, str], None],
) -> int:
    """Move every job that overstayed its state on (``state.sweep_action``); how many.

    ``messages`` are the failure messages of give-up, time-out and expire; ``moved(job, action,
    stale_runner)`` is told of each job moved (its audit event, fields of the domain's own).
    """
    count = 0
    for job in overdue(session, model, limits, now):
        action = sweep_action(clock(job), now, limits)
        if action is None:
            continue
        count += 1
        stale_runner = job.runner_id or "-"
        if action is SweepAction.REQUEUE:
            requeue(job, now)
        elif action is SweepAction.CANCEL:
            job.status, job.finished_at = JobStatus.CANCELLED, now
        else:
            fail(job, now, str(action), messages[action], {"attempts": job.attempts})
        moved(job, action, stale_runner)
    return count
