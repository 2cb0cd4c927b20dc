"""The census runner: lists a department's database, then reads each table — its columns, an
exact row count and a sample scan — storing every table as it completes.

It is a runner of the job framework every background job shares (``datafactor.jobs``), as the
scan runner is: a background thread per server process that sweeps overdue runs, claims the
oldest queued one atomically, and runs it while a second, small thread beats its heart
(recording the table being read and learning whether to stop: a cancel, the time limit, or the
run having been taken away). It is a runner of its own, not a job kind of the scan runner's, for
two reasons: a census of a department's database can take hours, and it must not hold up the
data set scans queued in the same process; and a census stopped half-way *resumes* — each table
is stored in its own transaction, so the next claim (after a stale heartbeat, a shutdown or a
resume) reads only what is still pending.

A table's own trouble (a view that fails, a permission refused on one table, a type the driver
cannot read, a row count that ran past ``DATAFACTOR_CENSUS_COUNT_TIMEOUT_SECONDS`` on a huge or
locked table) is written on that table and the census goes on; losing the database itself (it no
longer answers) fails the run, which stays resumable. The same executor runs a census in the
foreground for ``datafactor census`` (``CensusRunner.execute`` with a progress callback), so a
run started on the command line is the same run the console shows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from datafactor.census import services
from datafactor.census.domain import (
    RunTimeouts,
    ScannedTable,
    StopReason,
    table_pi_types,
)
from datafactor.census.source import ColumnInfo, DepartmentDatabase, unseal
from datafactor.dataplane import CountTimedOut, SourceUnavailable
from datafactor.db import Database
from datafactor.discovery import (
    GradingMetadata,
    ScanCancelled,
    ScanReport,
    load_pii_rules,
    scan_source,
)
from datafactor.errors import N_, DomainError
from datafactor.jobs import runner as jobrunner
from datafactor.jobs.state import Beat
from datafactor.settings import Settings

log = logging.getLogger("datafactor.census.jobs")

MSG_INTERNAL = N_(
    "The census stopped on an unexpected error (it was logged). Resume it, or tell the operator."
)
MSG_TABLE_INTERNAL = N_("The table could not be read because of an unexpected error (logged).")


def timeouts(settings: Settings) -> RunTimeouts:
    """The census's limits: the scan runners' heartbeat, queue and attempt settings, and its own
    (longer) run-time limit."""
    return jobrunner.timeouts(settings, settings.census_max_run_minutes)


def runner_enabled(settings: Settings) -> bool:
    """Whether this process runs a background census runner (``DATAFACTOR_CENSUS_RUNNER``)."""
    return jobrunner.runner_enabled(settings.census_runner, settings)


new_runner_id = jobrunner.new_runner_id


@dataclass(frozen=True)
class Snapshot:
    """Where a run stands, for a progress bar (the command line's)."""

    tables_total: int | None
    tables_read: int
    current_table: str | None
    current_rows: int
    current_total: int | None


Observer = Callable[[Snapshot], None]


@dataclass
class _Progress:
    """Shared between the reading thread (writes) and its heartbeat (reads; sets ``stop``)."""

    tables_total: int | None = None
    tables_read: int = 0
    current_table: str | None = None
    current_rows: int = 0
    current_total: int | None = None
    stop: StopReason | None = None

    def snapshot(self) -> Snapshot:
        return Snapshot(
            self.tables_total,
            self.tables_read,
            self.current_table,
            self.current_rows,
            self.current_total,
        )


class _Finished:
    """The outcome of a run that read every table it listed."""


FINISHED = _Finished()


def _personal_types() -> frozenset[str]:
    """The entity types that are personal information (``discovery``'s PII rules)."""
    return frozenset(t for t, rule in load_pii_rules().items() if rule.personal)


def scanned_table(columns: list[ColumnInfo], row_count: int, report: ScanReport) -> ScannedTable:
    """The inventory entry of a table from its declared columns, its count and its scan."""
    found = {c.name: c for c in report.columns}
    entries: list[dict[str, Any]] = []
    for column in columns or [ColumnInfo(c.name, "", True) for c in report.columns]:
        scanned = found.get(column.name)
        entries.append(
            {
                "name": column.name,
                "type": column.type,
                "nullable": column.nullable,
                "entity_types": list(scanned.types) if scanned else [],
                "sensitive": bool(scanned and scanned.sensitive),
            }
        )
    score = report.quality.get("score")
    return ScannedTable(
        row_count=row_count,
        columns=tuple(entries),
        pi_types=table_pi_types(entries, _personal_types()),
        sensitive=any(e["sensitive"] for e in entries),
        grade=report.grade.value,
        quality_score=float(score) if isinstance(score, int | float) else None,
        rows_scanned=report.rows_scanned,
        individuals=report.distinct_individuals,
    )


def _plain_columns(columns: list[ColumnInfo]) -> tuple[dict[str, Any], ...]:
    return tuple(
        {
            "name": c.name,
            "type": c.type,
            "nullable": c.nullable,
            "entity_types": [],
            "sensitive": False,
        }
        for c in columns
    )


class CensusRunner(jobrunner.JobRunner):
    """Runs queued census runs of one database; ``start`` for a background thread."""

    name = "census-runner"

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        runner_id: str | None = None,
        connect_timeout: int = 10,
    ) -> None:
        super().__init__(db, settings, runner_id=runner_id, log=log)
        self.limits = timeouts(settings)
        self.connect_timeout = connect_timeout
        self.runs = 0

    # --------------------------------------------------------------------------- one run

    def sweep(self) -> int:
        with self.db.write() as session:
            return services.sweep(session, self.limits)

    def run_once(self) -> bool:
        """Sweep, then claim and run one queued census; False when the queue was empty."""
        self.sweep()
        with self.db.write() as session:
            claimed = services.claim_next(session, self.runner_id)
        if claimed is None:
            return False
        self.execute(claimed)
        self.runs += 1
        return True

    def execute(self, claimed: services.ClaimedRun, observe: Observer | None = None) -> None:
        """Run a claimed census to its end (or until told to stop) and record the outcome.

        ``observe`` is called with a ``Snapshot`` as the run moves. A ``KeyboardInterrupt``
        (the command line's Ctrl-C) cancels the run, keeping what was read, and is re-raised.
        """
        progress = _Progress(tables_total=claimed.tables_total, tables_read=claimed.tables_read)

        def work() -> tuple[_Finished | BaseException, bool]:
            try:
                return self._work(claimed, progress, observe), False
            except KeyboardInterrupt as exc:
                progress.stop = StopReason.INTERRUPT
                return exc, True

        def beat(session: Session) -> Beat:
            return services.heartbeat(
                session,
                claimed.run_id,
                self.runner_id,
                current_table=progress.current_table,
                current_rows=progress.current_rows,
                limits=self.limits,
            )

        outcome, interrupted = self.with_heart(f"census {claimed.run_id}", progress, beat, work)
        self._record(claimed, progress, outcome)
        if interrupted:
            raise KeyboardInterrupt

    def _work(
        self, claimed: services.ClaimedRun, progress: _Progress, observe: Observer | None
    ) -> _Finished | BaseException:
        """List (once) and read every pending table; FINISHED, or the exception that ended it."""

        def tell() -> None:
            if observe is not None:
                observe(progress.snapshot())

        try:
            url = unseal(self.settings.secret_key, claimed.sealed_url)
            with DepartmentDatabase(url, connect_timeout=self.connect_timeout) as database:
                if not claimed.listed:
                    schemas, listed = database.listing(claimed.schema)
                    with self.db.write() as session:
                        if not services.record_listing(
                            session, claimed.run_id, self.runner_id, listed, schemas=len(schemas)
                        ):
                            progress.stop = progress.stop or StopReason.LOST
                            return FINISHED
                with self.db.read() as session:
                    pending = services.tables_to_read(session, claimed.run_id)
                if progress.tables_total is None:
                    progress.tables_total = progress.tables_read + len(pending)
                tell()
                for entry in pending:
                    if progress.stop is not None:
                        break
                    progress.current_table = f"{entry.schema}.{entry.table}"
                    progress.current_rows, progress.current_total = 0, None
                    tell()
                    outcome = self._read_table(database, claimed, entry, progress, tell)
                    if outcome is None:  # stopped in the middle: the table stays pending
                        break
                    with self.db.write() as session:
                        stored = services.store_table(
                            session, claimed.run_id, self.runner_id, entry.entry_id, outcome
                        )
                    if not stored:
                        progress.stop = progress.stop or StopReason.LOST
                        break
                    progress.tables_read += 1
                    progress.current_table, progress.current_rows = None, 0
                    tell()
            return FINISHED
        except Exception as exc:
            return exc

    def _read_table(
        self,
        database: DepartmentDatabase,
        claimed: services.ClaimedRun,
        entry: services.PendingTable,
        progress: _Progress,
        tell: Callable[[], None],
    ) -> ScannedTable | services.TableFailure | None:
        """One table's entry, the reason it could not be read, or None when told to stop.

        Raises ``SourceUnavailable`` when the database itself stopped answering.
        """
        columns: list[ColumnInfo] = []
        row_count: int | None = None

        def rows(done: int, total: int | None) -> None:
            progress.current_rows, progress.current_total = done, total
            tell()

        try:
            columns = database.columns(entry.schema, entry.table)
            row_count = database.count_rows(
                entry.schema, entry.table, timeout=self.settings.census_count_timeout_seconds
            )
            table = database.open_table(entry.schema, entry.table)
            try:
                report = scan_source(
                    table,
                    sample_rows=claimed.sample_rows,
                    progress=rows,
                    should_cancel=lambda: progress.stop is not None,
                    metadata=GradingMetadata(domain=claimed.domain, records=row_count),
                )
            finally:
                table.close()
            return scanned_table(columns, row_count, report)
        except ScanCancelled:
            return None
        except CountTimedOut as exc:  # a huge or locked table: say so, and go on with the next
            return self._failure(exc, None, columns)
        except SourceUnavailable as exc:
            if not database.reachable():
                raise
            return self._failure(exc, row_count, columns)
        except DomainError as exc:
            return self._failure(exc, row_count, columns)
        except Exception:
            log.exception("census %s: table %s.%s", claimed.run_id, entry.schema, entry.table)
            return services.TableFailure(
                "internal-error", MSG_TABLE_INTERNAL, {}, row_count, _plain_columns(columns)
            )

    @staticmethod
    def _failure(
        exc: DomainError, row_count: int | None, columns: list[ColumnInfo]
    ) -> services.TableFailure:
        return services.TableFailure(
            exc.code, exc.message, dict(exc.params), row_count, _plain_columns(columns)
        )

    def _record(
        self,
        claimed: services.ClaimedRun,
        progress: _Progress,
        outcome: _Finished | BaseException,
    ) -> None:
        why = progress.stop
        run, me = claimed.run_id, self.runner_id
        with self.db.write() as session:
            if why is StopReason.LOST:
                log.info("census %s: lost to another runner or force-cancelled; not stored", run)
            elif why is not None:
                services.stopped_run(session, run, me, why=why)
            elif isinstance(outcome, _Finished):
                services.finish_run(session, run, me)
            elif isinstance(outcome, DomainError):
                services.fail_run(
                    session,
                    run,
                    me,
                    code=outcome.code,
                    message=outcome.message,
                    params=outcome.params,
                )
            else:
                log.error("census %s failed", run, exc_info=outcome)
                services.fail_run(session, run, me, code="internal-error", message=MSG_INTERNAL)


def run_pending(db: Database, settings: Settings) -> int:
    """Run every queued census now, in this thread (tests, tools); how many ran."""
    return CensusRunner(db, settings, runner_id=f"inline:{new_runner_id()}").run_pending()
