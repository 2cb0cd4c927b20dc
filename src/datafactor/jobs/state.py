"""The background job's state machine as rules: pure Python (no web framework, no ORM).

::

    queued ──claim──▶ running ──▶ succeeded | failed | cancelled
      │                 │  ▲
      │                 │  └── heartbeat stale: back to queued (attempts left) or failed
      │                 └── cancel requested: the runner stops at its next check → cancelled
      └──▶ cancelled (on request) | failed (waited longer than the queue timeout)

Every non-final state has a timeout (``JobTimeouts``) and an owner: a queued job belongs to the
queue until ``queue_timeout`` has passed since it *last entered* the queue (``queued_at``: when it
was requested, re-queued after its runner vanished, handed back at a shutdown or resumed) — not
since it was first requested, or a job re-queued after a long run would expire at once; a running
job belongs to the runner named on it for as long as its heartbeat is fresh and at most
``max_run``. An administrator may force-cancel any non-final job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE: Final = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
FINAL: Final = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True)
class JobTimeouts:
    """How long each non-final state may last (see the module docstring)."""

    heartbeat_stale: timedelta
    queue_timeout: timedelta
    max_run: timedelta
    max_attempts: int


class SweepAction(StrEnum):
    """What the sweep does to a job that overstayed a state."""

    REQUEUE = "requeue"  # its runner vanished; another one restarts (or resumes) it
    CANCEL = "cancel"  # its runner vanished while a cancel was pending
    GIVE_UP = "give-up"  # runners vanished on it max_attempts times
    TIME_OUT = "time-out"  # it ran longer than max_run
    EXPIRE = "expire"  # nobody claimed it within queue_timeout


class StopReason(StrEnum):
    """Why a runner stops a job before it is done."""

    CANCEL = "cancel"  # someone asked
    LOST = "lost"  # the job no longer names this runner (force-cancelled, or given to another)
    TIMEOUT = "timeout"  # it ran longer than max_run
    SHUTDOWN = "shutdown"  # the process is stopping: hand the job back to the queue
    INTERRUPT = "interrupt"  # the command line was interrupted (Ctrl-C)


@dataclass(frozen=True)
class Beat:
    """The answer to a heartbeat: go on, or stop (``why``)."""

    stop: bool
    why: StopReason | None = None


@dataclass(frozen=True)
class JobClock:
    """The times and counters of a job the sweep looks at."""

    status: str
    queued_at: datetime
    started_at: datetime | None
    heartbeat_at: datetime | None
    cancel_requested: bool
    attempts: int


def sweep_action(job: JobClock, now: datetime, limits: JobTimeouts) -> SweepAction | None:
    """What to do with a job whose state lasted too long; None when it is within its limits."""
    if job.status == JobStatus.QUEUED:
        return SweepAction.EXPIRE if now - job.queued_at > limits.queue_timeout else None
    if job.status != JobStatus.RUNNING:
        return None
    beat = job.heartbeat_at or job.started_at or job.queued_at
    started = job.started_at or job.queued_at
    # A live runner stops a job that ran too long itself; this catches one that cannot.
    if now - started > limits.max_run + limits.heartbeat_stale:
        return SweepAction.TIME_OUT
    if now - beat <= limits.heartbeat_stale:
        return None
    if job.cancel_requested:
        return SweepAction.CANCEL
    if job.attempts >= limits.max_attempts:
        return SweepAction.GIVE_UP
    return SweepAction.REQUEUE


def overran(started_at: datetime | None, now: datetime, limits: JobTimeouts) -> bool:
    """Whether a running job passed its run-time limit (its runner then stops it)."""
    return started_at is not None and now - started_at > limits.max_run
