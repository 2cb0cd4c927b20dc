"""The runner thread every kind of background job shares: its loop, the heartbeat thread beside
the work, and a shutdown that hands the current job back.

A runner loops: ``run_once`` (the domain's: sweep the jobs whose state lasted too long, claim the
oldest queued one, run it and store its outcome), and when the queue was empty waits
``poll_seconds``. An exception in one iteration (a database outage) is logged and the loop goes
on after the pause: nothing a job does may kill the runner.

While a job runs, a second, small thread beats its heart every ``heartbeat_seconds``: the domain's
``beat`` records the progress and learns whether to stop (a cancel request, the run-time limit,
or the job having been taken away), which the heart writes to ``progress.stop``. The beat is
separate from the work so that work busy inside one long read (a slow database, a large
workbook) still shows it is alive; the work itself checks ``progress.stop`` between batches.
``stop()`` sets ``progress.stop`` to ``shutdown`` so the domain hands the job back to the queue
at once rather than waiting for its heartbeat to go stale.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol, Self, TypeVar

from sqlalchemy.orm import Session

from datafactor.db import Database
from datafactor.jobs.state import Beat, JobTimeouts, StopReason
from datafactor.settings import Environment, Settings

_T = TypeVar("_T")


class Stoppable(Protocol):
    """The progress a job's work shares with its heartbeat: ``stop`` says why to stop."""

    stop: StopReason | None


def timeouts(settings: Settings, max_run_minutes: int) -> JobTimeouts:
    """The runners' heartbeat, queue and attempt limits, with a kind's own run-time limit."""
    return JobTimeouts(
        heartbeat_stale=timedelta(seconds=settings.scan_stale_seconds),
        queue_timeout=timedelta(minutes=settings.scan_queue_timeout_minutes),
        max_run=timedelta(minutes=max_run_minutes),
        max_attempts=settings.scan_max_attempts,
    )


def runner_enabled(choice: str, settings: Settings) -> bool:
    """Whether this process runs a background runner: ``on``, ``off``, or ``auto`` (on except in
    the test environment)."""
    if choice == "auto":
        return settings.environment is not Environment.TEST
    return choice == "on"


def new_runner_id(prefix: str = "") -> str:
    """A runner's name: host, process and a random part (at most 64 characters)."""
    return f"{prefix}{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"[:64]


class JobRunner(ABC):
    """Runs queued jobs of one database; ``start`` for a background thread (see the module
    docstring). Subclasses implement ``run_once``."""

    name = "job-runner"

    def __init__(
        self, db: Database, settings: Settings, *, runner_id: str | None, log: logging.Logger
    ) -> None:
        self.db = db
        self.settings = settings
        self.runner_id = runner_id or new_runner_id()
        self.log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: Stoppable | None = None

    # ------------------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._loop, name=f"{self.name}-{self.runner_id}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current job is handed back to the queue."""
        self._stop.set()
        current = self._current
        if current is not None:
            current.stop = StopReason.SHUTDOWN
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = self.run_once()
            except Exception:  # a database outage must not kill the runner; retry after a pause
                self.log.exception("%s %s: an iteration failed", self.name, self.runner_id)
                ran = False
            if not ran:
                self._stop.wait(self.settings.scan_poll_seconds)

    @abstractmethod
    def run_once(self) -> bool:
        """Sweep, then claim and run one queued job; False when there was none."""

    def run_pending(self, max_jobs: int = 1000) -> int:
        """Run queued jobs in this thread until none is left; how many ran."""
        count = 0
        while count < max_jobs and self.run_once():
            count += 1
        return count

    # --------------------------------------------------------------------------- one job

    def with_heart(
        self,
        label: str,
        progress: Stoppable,
        beat: Callable[[Session], Beat],
        work: Callable[[], _T],
    ) -> _T:
        """Run ``work`` while a second thread calls ``beat`` (in a write transaction) every
        ``scan_heartbeat_seconds`` and sets ``progress.stop`` when told to stop."""
        self._current = progress
        if self._stop.is_set():
            progress.stop = StopReason.SHUTDOWN
        done = threading.Event()
        heart = threading.Thread(
            target=self._beat,
            args=(label, progress, beat, done),
            name=f"heartbeat-{label[:24]}",
            daemon=True,
        )
        heart.start()
        try:
            return work()
        finally:
            done.set()
            heart.join()
            self._current = None

    def _beat(
        self,
        label: str,
        progress: Stoppable,
        beat: Callable[[Session], Beat],
        done: threading.Event,
    ) -> None:
        while not done.wait(self.settings.scan_heartbeat_seconds):
            try:
                with self.db.write() as session:
                    answer = beat(session)
            except Exception:  # the next beat retries; the sweep covers a long outage
                self.log.exception("%s: heartbeat failed", label)
                continue
            if answer.stop and progress.stop is None:
                progress.stop = answer.why
