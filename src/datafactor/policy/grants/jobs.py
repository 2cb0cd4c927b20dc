"""The grants monitor in each server process: a thread that runs ``services.run_monitor`` at
start-up and then every ``monitor.interval_seconds`` (``rules/grants.yaml``; hourly), started by
the grants API router's lifespan — except in the test environment, where tests run the monitor
themselves on a fixed clock. Each grant is checked in a transaction of its own (a grant that
cannot be checked is logged and skipped); a failed run is logged and tried again at the next
interval. Runs in several processes do not conflict: each grant is row-locked while it is
re-checked, and a grant already changed by another run is found in its new state.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from datafactor.db import Database
from datafactor.policy.grants.domain import load_grant_rules
from datafactor.policy.grants.services import MonitorReport, run_monitor
from datafactor.settings import Environment, Settings

log = logging.getLogger(__name__)


def monitor_enabled(settings: Settings) -> bool:
    return settings.environment is not Environment.TEST


class GrantMonitor:
    """A daemon thread running the grants monitor every ``interval`` seconds."""

    def __init__(self, db: Database, *, interval: float | None = None) -> None:
        self.db = db
        self.interval = interval or load_grant_rules().monitor_seconds
        self.runs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> GrantMonitor:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="grants-monitor", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> MonitorReport:
        report = run_monitor(self.db)
        self.runs += 1
        if report.changed:
            log.info("grants monitor: %s", report.as_dict())
        return report

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a database outage: log, try again at the next interval
                log.exception("grants monitor failed; retrying in %s s", self.interval)
            self._stop.wait(self.interval)


@asynccontextmanager
async def monitor_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the process's grants monitor while the application is up."""
    runner = None
    if monitor_enabled(app.state.settings):
        runner = GrantMonitor(app.state.db).start()
    app.state.grants_monitor = runner
    try:
        yield
    finally:
        if runner is not None:
            await run_in_threadpool(runner.stop)
