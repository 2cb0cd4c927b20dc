"""One periodic background task per process: the clocks of the domains.

The registry's daily sweep, the grants' monitor, the trusts' sweep, the settlement's daily
reconciliation and the exchange's deadlines each run a function every so often in every server
process. ``Periodic`` is that loop once: a daemon thread that calls ``task()`` at start-up and
then every ``poll_seconds``; a failure (a database outage) is logged and tried again at the next
poll, never kills the thread. ``periodic_lifespan`` runs one while an application is up — except
in the test environment, whose tests drive the clocks themselves.

Each task decides for itself whether there is anything to do: a daily job wraps its run in
``Daily``, which remembers the Asia/Shanghai date it last completed. Several processes running
the same task must be harmless (every task writes under row locks or records that it ran).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import date
from typing import Any, Generic, TypeVar

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from datafactor.db import today_cn
from datafactor.settings import Environment, Settings

log = logging.getLogger("datafactor.jobs")
_T = TypeVar("_T")


def enabled(settings: Settings) -> bool:
    """Whether this process runs the periodic tasks: always, except in the test environment
    (where tests run each task themselves on a fixed clock)."""
    return settings.environment is not Environment.TEST


class Daily(Generic[_T]):
    """A task run at most once per Asia/Shanghai date: calling it runs ``run(today)`` unless a
    run has already completed today, and answers that run's result (None when not due). A
    failed run raises and leaves the day to do, so the next poll tries again."""

    def __init__(self, run: Callable[[date], _T], *, today: Callable[[], date] = today_cn) -> None:
        self.run = run
        self.today = today
        self.last_day: date | None = None

    def __call__(self) -> _T | None:
        today = self.today()
        if self.last_day == today:
            return None
        result = self.run(today)
        self.last_day = today
        return result


class Periodic:
    """A daemon thread calling ``task()`` now and then every ``poll_seconds`` until stopped."""

    def __init__(self, name: str, task: Callable[[], Any], *, poll_seconds: float) -> None:
        self.name = name
        self.task = task
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Periodic:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.task()
            except Exception:  # a database outage: log, try again at the next poll
                log.exception("%s failed; retrying in %s s", self.name, self.poll_seconds)
            self._stop.wait(self.poll_seconds)


def periodic_lifespan(
    name: str, make_task: Callable[[FastAPI], Callable[[], Any]], *, poll_seconds: float
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A router lifespan running ``make_task(app)`` every ``poll_seconds`` while the application
    is up (not in the test environment); the runner is kept as ``app.state.<name>``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner = None
        if enabled(app.state.settings):
            runner = Periodic(name, make_task(app), poll_seconds=poll_seconds).start()
        setattr(app.state, name.replace("-", "_"), runner)
        try:
            yield
        finally:
            if runner is not None:
                await run_in_threadpool(runner.stop)

    return lifespan
