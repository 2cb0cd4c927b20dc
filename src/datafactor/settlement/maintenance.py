"""The daily reconciliation job: once per Asia/Shanghai date, in each server process.

Like the registry's daily sweep (``registry.maintenance.DailySweeper``): a thread that runs at
start-up and then after each midnight (checked every ``poll_seconds``); a failure (a database
outage) is logged and tried again at the next poll; a day counts as done once a reconciliation
has been recorded for it — by this process or another one, so several server processes
reconcile once a day between them (give or take a race at midnight, which is harmless: a
reconciliation only reads the books and records its verdict). Unbalanced books are logged as an
error on top of the recorded verdict and its ledger entry. Not started in the test environment,
whose tests reconcile on their own clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from datafactor.db import CHINA, Database, today_cn
from datafactor.settings import Environment, Settings
from datafactor.settlement import books
from datafactor.settlement.domain import ReconciliationReport

log = logging.getLogger("datafactor.settlement")


def reconciler_enabled(settings: Settings) -> bool:
    return settings.environment is not Environment.TEST


class DailyReconciler:
    """A thread that reconciles the books once per China date."""

    def __init__(self, db: Database, *, poll_seconds: float = 300.0) -> None:
        self.db = db
        self.poll_seconds = poll_seconds
        self.last_day: date | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> DailyReconciler:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name="settlement-reconciler", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> ReconciliationReport | None:
        today = today_cn()
        if self.last_day == today:
            return None
        with self.db.read() as session:
            last = books.last_reconciliation(session)
        if last is not None and last.run_at.astimezone(CHINA).date() == today:
            self.last_day = today
            return None
        _, report = books.run_reconciliation(self.db, None, actor_name="daily-reconciliation")
        self.last_day = today
        if not report.balanced:
            log.error(
                "settlement books NOT balanced on %s: %s",
                today,
                [p.as_dict() for p in report.problems[:10]],
            )
        return report

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a database outage: log, try again at the next poll
                log.exception(
                    "settlement reconciliation failed; retrying in %s s", self.poll_seconds
                )
            self._stop.wait(self.poll_seconds)


@asynccontextmanager
async def reconcile_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the process's daily reconciler while the application is up."""
    reconciler = None
    if reconciler_enabled(app.state.settings):
        reconciler = DailyReconciler(app.state.db).start()
    app.state.settlement_reconciler = reconciler
    try:
        yield
    finally:
        if reconciler is not None:
            await run_in_threadpool(reconciler.stop)
