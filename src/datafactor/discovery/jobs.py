"""The scan runner: one background thread per server process that runs queued scan jobs and
de-identification jobs, on the job framework every background job shares (``datafactor.jobs``:
the loop, the heartbeat thread, the claim and the sweep); what is discovery's is what a job does
and what it stores.

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

De-identification jobs (``models.DeidentificationJob``) share the runner, the state machine, the
timeouts and the heartbeat: a runner takes scans and de-identifications in turn, so neither kind
starves the other. A de-identification reads the source version once, batch by batch, through
``deidentify_to_store`` (a private temporary file, then the blob store: no whole table in
memory), and on success ``services.finish_deidentification`` adds the new version, queues its
scan and appends the derivation to the ledger in one transaction. The hashing salt lives only in
that call; a run that is restarted draws a new one and writes the whole output again.

``run_pending`` runs every queued job in the calling thread: what the tests and the CLI use where
a background thread would only add waiting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from datafactor import dataplane
from datafactor.db import Database
from datafactor.discovery import services
from datafactor.discovery.deidentification import (
    DeidentificationPolicy,
    DeidentifiedOutput,
    deidentify_to_store,
)
from datafactor.discovery.grading import GradingMetadata
from datafactor.discovery.scan import ScanCancelled, ScanReport, scan_source
from datafactor.discovery.tokens import trustee_keys
from datafactor.discovery.workflow import ScanMode
from datafactor.errors import N_, DomainError
from datafactor.jobs import runner as jobrunner
from datafactor.jobs.state import Beat, JobTimeouts, StopReason
from datafactor.settings import Settings

log = logging.getLogger("datafactor.discovery.jobs")

MSG_INTERNAL = N_(
    "The scan stopped on an unexpected error (it was logged). Try again, or tell the operator."
)
MSG_DEID_INTERNAL = N_(
    "The de-identification stopped on an unexpected error (it was logged). Try again, or tell "
    "the operator."
)


def timeouts(settings: Settings) -> JobTimeouts:
    return jobrunner.timeouts(settings, settings.scan_max_run_minutes)


def runner_enabled(settings: Settings) -> bool:
    """Whether this process runs a background runner (``DATAFACTOR_SCAN_RUNNER``)."""
    return jobrunner.runner_enabled(settings.scan_runner, settings)


new_runner_id = jobrunner.new_runner_id


@dataclass
class _Progress:
    """Shared between the scan (writes rows) and its heartbeat (reads rows, sets ``stop``)."""

    rows_done: int = 0
    rows_total: int | None = None
    stop: StopReason | None = None

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


class ScanRunner(jobrunner.JobRunner):
    """Runs queued scan jobs of one database; ``start`` for a background thread."""

    name = "scan-runner"

    def __init__(
        self,
        db: Database,
        settings: Settings,
        store: dataplane.BlobStore | None = None,
        *,
        runner_id: str | None = None,
    ) -> None:
        super().__init__(db, settings, runner_id=runner_id, log=log)
        self.store = store or dataplane.blob_store(settings)
        self.limits = timeouts(settings)
        self._next_upload_sweep = 0.0
        self._scan_first = True
        self.jobs_run = 0

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
            moved = services.sweep(session, self.limits)
        with self.db.write() as session:
            return moved + services.sweep(session, self.limits, kind=services.DEIDENTIFICATIONS)

    def run_once(self) -> bool:
        """Sweep, then claim and run one queued job (scans and de-identifications in turn);
        False when both queues were empty."""
        self.sweep()
        order = [self._run_scan, self._run_deidentification]
        if not self._scan_first:
            order.reverse()
        self._scan_first = not self._scan_first
        for run in order:
            if run():
                self.jobs_run += 1
                return True
        return False

    def _run_scan(self) -> bool:
        with self.db.write() as session:
            claimed = services.claim_next(session, self.runner_id)
        if claimed is None:
            return False
        self._execute(claimed)
        return True

    def _run_deidentification(self) -> bool:
        with self.db.write() as session:
            claimed = services.claim_next_deidentification(session, self.runner_id)
        if claimed is None:
            return False
        progress = _Progress()
        outcome = self.with_heart(
            f"de-identification {claimed.job_id}",
            progress,
            self._beat_of(claimed.job_id, services.DEIDENTIFICATIONS, progress),
            lambda: self._deidentify(claimed, progress),
        )
        self._record_deidentification(claimed, progress, outcome)
        return True

    def _execute(self, claimed: services.ClaimedJob) -> None:
        progress = _Progress()
        outcome = self.with_heart(
            f"scan {claimed.job_id}",
            progress,
            self._beat_of(claimed.job_id, services.SCANS, progress),
            lambda: self._scan(claimed, progress),
        )
        self._record(claimed, progress, outcome)

    def _beat_of(
        self, job_id: str, kind: services.JobKind, progress: _Progress
    ) -> Callable[[Session], Beat]:
        def beat(session: Session) -> Beat:
            return services.heartbeat(
                session,
                job_id,
                self.runner_id,
                rows_done=progress.rows_done,
                rows_total=progress.rows_total,
                limits=self.limits,
                kind=kind,
            )

        return beat

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

    # ------------------------------------------------------------------ de-identification

    def _deidentify(
        self, claimed: services.ClaimedDeidentification, progress: _Progress
    ) -> tuple[DeidentifiedOutput, str | None] | BaseException:
        """Run the de-identification into the blob store; the output and the source file's
        digest, or the exception that ended it."""
        table: Any = None
        try:
            with self.db.read() as session:
                source = dataplane.version_source(
                    session, claimed.version_id, secret_key=self.settings.secret_key
                )
            policy = DeidentificationPolicy.from_dict(claimed.policy)
            table = dataplane.open_version(self.store, source)
            output = deidentify_to_store(
                table,
                policy,
                self.store,
                max_bytes=self.settings.upload_max_bytes,
                format=claimed.format,
                tokens=trustee_keys(self.settings),
                findings=claimed.findings,
                progress=progress.update,
                should_cancel=lambda: progress.stop is not None,
            )
            if progress.stop is not None:
                return ScanCancelled(N_("Cancelled."))
            return output, source.digest
        except Exception as exc:
            return exc
        finally:
            close = getattr(table, "close", None)
            if callable(close):
                close()

    def _record_deidentification(
        self,
        claimed: services.ClaimedDeidentification,
        progress: _Progress,
        outcome: tuple[DeidentifiedOutput, str | None] | BaseException,
    ) -> None:
        why = progress.stop
        job, me, kind = claimed.job_id, self.runner_id, services.DEIDENTIFICATIONS
        if why is None and isinstance(outcome, tuple):
            output, source_sha256 = outcome
            try:
                with self.db.write() as session:
                    services.finish_deidentification(
                        session, job, me, output=output, source_sha256=source_sha256
                    )
                return
            except DomainError as exc:  # e.g. the new version refused: record why, not retry
                outcome = exc
        with self.db.write() as session:
            if why == "lost":
                log.info("de-identification %s: lost or force-cancelled; not stored", job)
            elif why == "shutdown":
                services.release_job(session, job, me, kind=kind)
            elif why is not None:
                services.cancelled_job(session, job, me, why=why, kind=kind)
            elif isinstance(outcome, DomainError):
                services.fail_job(
                    session,
                    job,
                    me,
                    code=outcome.code,
                    message=outcome.message,
                    params=outcome.params,
                    kind=kind,
                )
            else:
                failure = outcome if isinstance(outcome, BaseException) else None
                log.error("de-identification %s failed", job, exc_info=failure)
                services.fail_job(
                    session, job, me, code="internal-error", message=MSG_DEID_INTERNAL, kind=kind
                )


def run_pending(db: Database, settings: Settings, store: dataplane.BlobStore | None = None) -> int:
    """Run every queued scan job now, in this thread (tests, the CLI); how many ran."""
    return ScanRunner(db, settings, store, runner_id=f"inline:{new_runner_id()}").run_pending()
