"""The trusts' clock in each server process: a thread that runs ``services.sweep`` at start-up
and then hourly (accepted deeds take effect on their start date; deeds past their end expire,
with their grants), started by the trusts API router's lifespan — except in the test
environment, where tests sweep on a fixed clock. A failed run is logged and tried again at the
next interval. Runs in several processes do not conflict: the deeds due are row-locked, and a
deed already moved by another run is no longer due (the sweep is idempotent).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from datafactor.db import Database
from datafactor.policy.trusts.services import SweepReport, sweep
from datafactor.settings import Environment, Settings

log = logging.getLogger(__name__)
INTERVAL_SECONDS: Final = 3600.0


def sweeper_enabled(settings: Settings) -> bool:
    return settings.environment is not Environment.TEST


class TrustSweeper:
    """A daemon thread running the trusts' sweep every ``interval`` seconds."""

    def __init__(self, db: Database, *, interval: float = INTERVAL_SECONDS) -> None:
        self.db = db
        self.interval = interval
        self.runs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> TrustSweeper:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="trusts-sweeper", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> SweepReport:
        with self.db.write() as session:
            report = sweep(session)
        self.runs += 1
        if report.changed:
            log.info("trusts sweep: %s", report.as_dict())
        return report

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a database outage: log, try again at the next interval
                log.exception("trusts sweep failed; retrying in %s s", self.interval)
            self._stop.wait(self.interval)


@asynccontextmanager
async def sweep_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the process's trusts sweeper while the application is up."""
    runner = None
    if sweeper_enabled(app.state.settings):
        runner = TrustSweeper(app.state.db).start()
    app.state.trusts_sweeper = runner
    try:
        yield
    finally:
        if runner is not None:
            await run_in_threadpool(runner.stop)
