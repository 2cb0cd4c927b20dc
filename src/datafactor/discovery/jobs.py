"""The scan runner: one background thread per server process that runs queued scan jobs.

A runner loops: sweep the jobs whose state lasted too long (``services.sweep``: stale heartbeats
go back to the queue, expired jobs fail), claim the oldest queued job atomically
(``services.claim_next``), run ``scan.scan_source`` over the version's table, and store the report
or the reason it failed. Any number of runners, in any number of processes, may share one
database: claims never collide, and a runner writes a job's outcome only while the job still
names it (``services`` checks), so a runner that stalled and lost its job to another cannot
overwrite what the other one stored.

While a scan runs, a second, small thread beats its heart every ``scan_heartbeat_seconds``: it
records the rows done (the progress bar) and learns whether to stop — a cancel request, the
run-time limit, or the job having been taken away. The beat is separate from the scan so that a
scan busy inside one long read (a slow database, a large workbook) still shows it is alive; the
scan itself checks the stop flag between batches and ends with ``ScanCancelled``.

When the server shuts down, a running scan is stopped and handed back to the queue at once
(``services.release_job``) rather than waiting for its heartbeat to go stale.

``run_pending`` runs every queued job in the calling thread: what the tests and the CLI use where
a background thread would only add waiting.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from datafactor import dataplane
from datafactor.db import Database
from datafactor.discovery import services
from datafactor.discovery.grading import GradingMetadata
from datafactor.discovery.scan import ScanCancelled, ScanReport, scan_source
from datafactor.discovery.workflow import JobTimeouts, ScanMode
from datafactor.errors import N_, DomainError
from datafactor.settings import Environment, Settings

log = logging.getLogger("datafactor.discovery.jobs")

MSG_INTERNAL = N_(
    "The scan stopped on an unexpected error (it was logged). Try again, or tell the operator."
)


def timeouts(settings: Settings) -> JobTimeouts:
    return JobTimeouts(
        heartbeat_stale=timedelta(seconds=settings.scan_stale_seconds),
        queue_timeout=timedelta(minutes=settings.scan_queue_timeout_minutes),
        max_run=timedelta(minutes=settings.scan_max_run_minutes),
        max_attempts=settings.scan_max_attempts,
    )


def runner_enabled(settings: Settings) -> bool:
    """Whether this process runs a background runner (``DATAFACTOR_SCAN_RUNNER``)."""
    if settings.scan_runner == "auto":
        return settings.environment is not Environment.TEST
    return settings.scan_runner == "on"


def new_runner_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"[:64]


@dataclass
class _Progress:
    """Shared between the scan (writes rows) and its heartbeat (reads rows, sets ``stop``)."""

    rows_done: int = 0
    rows_total: int | None = None
    stop: str | None = None

    def update(self, rows_done: int, rows_total: int | None) -> None:
        self.rows_done, self.rows_total = rows_done, rows_total


def _report_json(report: ScanReport, metadata: GradingMetadata) -> dict[str, Any]:
    """The report as stored: ``as_dict()`` plus what a reviewed report needs later.

    Each column keeps its distinct count and per-type ratios from the full findings (the CLI's
    JSON leaves them out), and the grading metadata is kept so a grade can be recomputed with
    dismissed detections left out.
    """
    data = report.as_dict()
    findings = {f.name: f for f in report.findings}
    for column in data.get("columns", []):
        finding = findings.get(column.get("name"))
        if finding is None:
            continue
        column["distinct_values"] = finding.distinct_values
        column["ratios"] = {k: round(v, 4) for k, v in finding.ratios.items()}
        column["confidences"] = {k: round(v, 4) for k, v in finding.confidences.items()}
        column["non_empty"] = finding.non_empty
    sampled = any(w.code == "sampled" for w in report.warnings)
    grading = metadata.as_dict()
    if grading.get("records") is None and not sampled:
        grading["records"] = report.rows_scanned
    data["metadata"] = {"grading": grading}
    return data


class ScanRunner:
    """Runs queued scan jobs of one database; ``start`` for a background thread."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        store: dataplane.BlobStore | None = None,
        *,
        runner_id: str | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.store = store or dataplane.blob_store(settings)
        self.runner_id = runner_id or new_runner_id()
        self.limits = timeouts(settings)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: _Progress | None = None
        self._next_upload_sweep = 0.0
        self.jobs_run = 0

    # ------------------------------------------------------------------------- lifecycle

    def start(self) -> ScanRunner:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._loop, name=f"scan-runner-{self.runner_id}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current scan is handed back to the queue."""
        self._stop.set()
        current = self._current
        if current is not None:
            current.stop = "shutdown"
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
                log.exception("scan runner %s: an iteration failed", self.runner_id)
                ran = False
            if not ran:
                self._stop.wait(self.settings.scan_poll_seconds)

    # --------------------------------------------------------------------------- one job

    def sweep(self) -> int:
        """Move overdue jobs on; once an hour also abandon expired uploads."""
        now = time.monotonic()
        if now >= self._next_upload_sweep:
            self._next_upload_sweep = now + 3600
            with self.db.write() as session:
                dataplane.expire_uploads(
                    session,
                    self.store,
                    older_than=timedelta(hours=self.settings.upload_expire_hours),
                )
        with self.db.write() as session:
            return services.sweep(session, self.limits)

    def run_once(self) -> bool:
        """Sweep, then claim and run one queued job; False when the queue was empty."""
        self.sweep()
        with self.db.write() as session:
            claimed = services.claim_next(session, self.runner_id)
        if claimed is None:
            return False
        self._execute(claimed)
        self.jobs_run += 1
        return True

    def run_pending(self, max_jobs: int = 1000) -> int:
        """Run queued jobs in this thread until none is left; how many ran."""
        count = 0
        while count < max_jobs and self.run_once():
            count += 1
        return count

    def _execute(self, claimed: services.ClaimedJob) -> None:
        progress = _Progress()
        self._current = progress
        if self._stop.is_set():
            progress.stop = "shutdown"
        beat = threading.Event()
        heart = threading.Thread(
            target=self._beat,
            args=(claimed, progress, beat),
            name=f"scan-heartbeat-{claimed.job_id[:8]}",
            daemon=True,
        )
        heart.start()
        try:
            outcome = self._scan(claimed, progress)
        finally:
            beat.set()
            heart.join()
            self._current = None
        self._record(claimed, progress, outcome)

    def _beat(
        self, claimed: services.ClaimedJob, progress: _Progress, done: threading.Event
    ) -> None:
        while not done.wait(self.settings.scan_heartbeat_seconds):
            try:
                with self.db.write() as session:
                    answer = services.heartbeat(
                        session,
                        claimed.job_id,
                        self.runner_id,
                        rows_done=progress.rows_done,
                        rows_total=progress.rows_total,
                        limits=self.limits,
                    )
            except Exception:  # the next beat retries; the sweep covers a long outage
                log.exception("scan %s: heartbeat failed", claimed.job_id)
                continue
            if answer.stop and progress.stop is None:
                progress.stop = answer.why

    def _scan(
        self, claimed: services.ClaimedJob, progress: _Progress
    ) -> ScanReport | BaseException:
        """Run the scan; the report, or the exception that ended it."""
        table: Any = None
        try:
            with self.db.read() as session:
                source = dataplane.version_source(
                    session, claimed.version_id, secret_key=self.settings.secret_key
                )
            metadata = GradingMetadata(domain=claimed.metadata.get("domain"))
            table = dataplane.open_version(self.store, source)
            report = scan_source(
                table,
                full=claimed.mode == ScanMode.FULL,
                sample_rows=self.settings.scan_sample_rows,
                progress=progress.update,
                should_cancel=lambda: progress.stop is not None,
                metadata=metadata,
                declared_frequency=claimed.metadata.get("update_frequency"),
                last_updated=source.created_at,
            )
            return report if progress.stop is None else ScanCancelled(N_("Cancelled."))
        except Exception as exc:
            return exc
        finally:
            close = getattr(table, "close", None)
            if callable(close):
                close()

    def _record(
        self,
        claimed: services.ClaimedJob,
        progress: _Progress,
        outcome: ScanReport | BaseException,
    ) -> None:
        why = progress.stop
        job, me = claimed.job_id, self.runner_id
        with self.db.write() as session:
            if why == "lost":
                log.info("scan %s: lost to another runner or force-cancelled; not stored", job)
            elif why == "shutdown":
                services.release_job(session, job, me)
            elif why is not None:
                services.cancelled_job(session, job, me, why=why)
            elif isinstance(outcome, ScanReport):
                metadata = GradingMetadata(domain=claimed.metadata.get("domain"))
                services.finish_job(
                    session,
                    job,
                    me,
                    report=_report_json(outcome, metadata),
                    rows_done=outcome.rows_scanned,
                    rows_total=outcome.rows_scanned,
                )
            elif isinstance(outcome, ScanCancelled):
                services.cancelled_job(session, job, me, why="cancel")
            elif isinstance(outcome, DomainError):
                services.fail_job(
                    session,
                    job,
                    me,
                    code=outcome.code,
                    message=outcome.message,
                    params=outcome.params,
                )
            else:
                log.error("scan %s failed", job, exc_info=outcome)
                services.fail_job(session, job, me, code="internal-error", message=MSG_INTERNAL)


def run_pending(db: Database, settings: Settings, store: dataplane.BlobStore | None = None) -> int:
    """Run every queued scan job now, in this thread (tests, the CLI); how many ran."""
    return ScanRunner(db, settings, store, runner_id=f"inline:{new_runner_id()}").run_pending()
