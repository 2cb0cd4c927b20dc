"""The domains' clocks (``jobs.periodic``): a task runs at once and then every poll, a failure is
logged and retried, a daily task runs once per date — and a failed day is tried again."""

from __future__ import annotations

import threading
from datetime import date

import pytest

from datafactor.jobs.periodic import Daily, Periodic, enabled


def test_a_daily_task_runs_once_a_day_and_a_failed_day_again() -> None:
    clock, calls = [date(2026, 5, 1)], []

    def run(today: date) -> date:
        calls.append(today)
        if len(calls) == 1:
            raise RuntimeError("the database is down")
        return today

    daily = Daily(run, today=lambda: clock[0])
    with pytest.raises(RuntimeError):
        daily()
    assert daily() == date(2026, 5, 1)  # the failed run left the day to do
    assert daily() is None  # done for the day
    clock[0] = date(2026, 5, 2)
    assert daily() == date(2026, 5, 2)
    assert calls == [date(2026, 5, 1), date(2026, 5, 1), date(2026, 5, 2)]


def test_a_periodic_task_runs_at_start_and_outlives_a_failure() -> None:
    calls, second = [], threading.Event()

    def task() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the database is down")
        second.set()

    runner = Periodic("test-clock", task, poll_seconds=0.01).start()
    try:
        assert second.wait(10), "the task was not run again after its failure"
    finally:
        runner.stop()
    assert runner._thread is not None and not runner._thread.is_alive()


def test_the_clocks_are_off_in_the_test_environment(settings) -> None:  # type: ignore[no-untyped-def]
    assert not enabled(settings)
