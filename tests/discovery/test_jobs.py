"""The scan runner and the job state machine: cancel, stale heartbeats, force-cancel, shutdown,
time limits, concurrent runners — on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import sqlite3
import threading
import time
from datetime import date, timedelta

import pytest
from factories import bearer
from fastapi.testclient import TestClient
from sqlalchemy import select

from datafactor import dataplane
from datafactor.audit import AuditEvent
from datafactor.dataplane import DatasetDraft
from datafactor.db import utcnow
from datafactor.discovery import jobs, services
from datafactor.discovery.models import ScanJob
from datafactor.discovery.scan import ScanCancelled
from datafactor.discovery.workflow import (
    JobClock,
    JobTimeouts,
    ScanStatus,
    SweepAction,
    progress_percent,
    sweep_action,
)
from datafactor.errors import N_
from datafactor.identity.codes import make_resident_id
from datafactor.identity.models import Party, User
from datafactor.identity.services import principal_for
from datafactor.settings import Environment, Settings

CSV = (
    "姓名,身份证号\n"
    + "".join(
        f"用户{i},{make_resident_id('450102', date(1980, 1 + i % 12, 1 + i % 28), i)}\n"
        for i in range(30)
    )
).encode()


@pytest.fixture
def settings(db_url, tmp_path):
    return Settings(
        environment=Environment.TEST,
        database_url=db_url,
        var_dir=tmp_path / "var",
        secret_key="test-secret-key-test-secret-key-0123456789",
        scan_heartbeat_seconds=0.05,
        scan_poll_seconds=0.05,
        scan_stale_seconds=30,
        scan_max_attempts=2,
        source_allow_sqlite=True,
    )


@pytest.fixture
def store(settings):
    return dataplane.blob_store(settings)


@pytest.fixture
def owner(db, enterprise):
    with db.read() as s:
        return principal_for(
            s.get(User, enterprise.user_id), s.get(Party, enterprise.party_id), via="session"
        )


def queue_scan(db, store, who, data=CSV):
    with db.write() as s:
        dataset_id = dataplane.create_dataset(s, who, DatasetDraft(name="任务测试")).id
    blob = store.put_stream(io.BytesIO(data), max_bytes=10**7)
    with db.write() as s:
        _version, job = services.add_file_version(
            s, who, dataset_id, blob=blob, filename="people.csv"
        )
        return job.id


def job_row(db, job_id):
    with db.read() as s:
        return s.get(ScanJob, job_id)


def actions(db, job_id):
    with db.read() as s:
        return [
            e.action
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.object_id == job_id).order_by(AuditEvent.seq)
            )
        ]


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


def slow_scan(table, *, full, sample_rows, progress, should_cancel, metadata, **declared):
    """Stands in for scan_source: reports progress until told to stop."""
    for step in range(1, 3000):
        if should_cancel():
            raise ScanCancelled(N_("The scan of {table} was cancelled."), table=table.name)
        progress(step * 100, 300_000)
        time.sleep(0.01)
    raise AssertionError("the scan was never told to stop")


@pytest.fixture
def slow(monkeypatch):
    monkeypatch.setattr(jobs, "scan_source", slow_scan)


def running_with_progress(db, job_id):
    job = job_row(db, job_id)
    return job.status == ScanStatus.RUNNING and job.rows_done > 0


# ---------------------------------------------------------------------------- pure state machine


LIMITS = JobTimeouts(
    heartbeat_stale=timedelta(seconds=60),
    queue_timeout=timedelta(hours=1),
    max_run=timedelta(hours=2),
    max_attempts=3,
)


def test_sweep_action_for_each_state():
    now = utcnow()
    queued = JobClock("queued", now - timedelta(minutes=5), None, None, False, 0)
    assert sweep_action(queued, now, LIMITS) is None
    expired = JobClock("queued", now - timedelta(hours=2), None, None, False, 0)
    assert sweep_action(expired, now, LIMITS) is SweepAction.EXPIRE
    fresh = JobClock("running", now, now, now - timedelta(seconds=10), False, 1)
    assert sweep_action(fresh, now, LIMITS) is None
    stale = JobClock("running", now, now, now - timedelta(seconds=61), False, 1)
    assert sweep_action(stale, now, LIMITS) is SweepAction.REQUEUE
    assert (
        sweep_action(
            JobClock("running", now, now, now - timedelta(seconds=61), True, 1), now, LIMITS
        )
        is SweepAction.CANCEL
    )
    assert (
        sweep_action(
            JobClock("running", now, now, now - timedelta(seconds=61), False, 3), now, LIMITS
        )
        is SweepAction.GIVE_UP
    )
    long_ago = now - timedelta(hours=3)
    assert (
        sweep_action(JobClock("running", long_ago, long_ago, now, False, 1), now, LIMITS)
        is SweepAction.TIME_OUT
    )
    for final in ("succeeded", "failed", "cancelled"):
        assert (
            sweep_action(JobClock(final, long_ago, long_ago, long_ago, False, 9), now, LIMITS)
            is None
        )


def test_progress_percent():
    assert progress_percent(0, None, "running") is None
    assert progress_percent(50, 200, "running") == 25
    assert progress_percent(500, 200, "running") == 100
    assert progress_percent(3, None, "succeeded") == 100


# ------------------------------------------------------------------------------------ the runner


def test_a_running_scan_is_cancelled_on_request(db, store, owner, settings, slow):
    job_id = queue_scan(db, store, owner)
    runner = jobs.ScanRunner(db, settings, store, runner_id="runner-a").start()
    try:
        wait_for(lambda: running_with_progress(db, job_id))
        with db.write() as s:
            job = services.cancel_scan(s, owner, job_id)
            assert job.status == ScanStatus.RUNNING  # the runner stops it at its next check
        wait_for(lambda: job_row(db, job_id).status == ScanStatus.CANCELLED)
    finally:
        runner.stop()
    assert actions(db, job_id) == [
        "discovery:scan:request",
        "discovery:scan:start",
        "discovery:scan:cancel-request",
        "discovery:scan:cancelled",
    ]


def test_a_stale_heartbeat_requeues_the_job_for_another_runner(db, store, owner, settings):
    job_id = queue_scan(db, store, owner)
    # Runner A claims the job and dies: it never beats again.
    with db.write() as s:
        claimed = services.claim_next(s, "runner-a")
    assert claimed.job_id == job_id
    limits = jobs.timeouts(settings)
    with db.write() as s:
        assert services.sweep(s, limits) == 0  # its heartbeat is still fresh
    later = utcnow() + limits.heartbeat_stale + timedelta(seconds=1)
    with db.write() as s:
        assert services.sweep(s, limits, now=later) == 1
    job = job_row(db, job_id)
    assert (job.status, job.runner_id, job.attempts) == ("queued", None, 1)
    # Runner B picks it up and finishes it.
    assert jobs.ScanRunner(db, settings, store, runner_id="runner-b").run_pending() == 1
    job = job_row(db, job_id)
    assert (job.status, job.runner_id, job.attempts) == ("succeeded", "runner-b", 2)
    # Runner A wakes up: whatever it tries to store is refused, the report stays B's.
    with db.write() as s:
        assert not services.finish_job(
            s, job_id, "runner-a", report={"columns": []}, rows_done=1, rows_total=1
        )
        assert not services.fail_job(s, job_id, "runner-a", code="x", message="x")
        assert (
            services.heartbeat(
                s, job_id, "runner-a", rows_done=1, rows_total=None, limits=limits
            ).why
            == "lost"
        )
    assert actions(db, job_id) == [
        "discovery:scan:request",
        "discovery:scan:start",
        "discovery:scan:requeue",
        "discovery:scan:start",
        "discovery:scan:succeed",
    ]


@pytest.mark.parametrize("how", ["stale heartbeat", "shutdown"])
def test_a_requeued_job_gets_its_whole_queue_timeout_again(db, store, owner, settings, how):
    """A job requested longer ago than the queue timeout that goes back to the queue (its runner
    died, or shut down) is not expired at once: its wait counts from when it went back."""
    job_id = queue_scan(db, store, owner)
    limits = jobs.timeouts(settings)
    with db.write() as s:
        row = s.get(ScanJob, job_id)
        row.requested_at = row.queued_at = utcnow() - limits.queue_timeout * 2
    with db.write() as s:
        services.claim_next(s, "runner-a")
    back_at = utcnow() + limits.heartbeat_stale + timedelta(seconds=1)
    with db.write() as s:
        if how == "shutdown":
            back_at = utcnow()
            assert services.release_job(s, job_id, "runner-a")
        else:
            assert services.sweep(s, limits, now=back_at) == 1
    with db.write() as s:
        assert services.sweep(s, limits, now=back_at + timedelta(minutes=1)) == 0
    assert job_row(db, job_id).status == ScanStatus.QUEUED
    # Left waiting a whole queue timeout after it went back, it does expire.
    with db.write() as s:
        assert services.sweep(s, limits, now=back_at + limits.queue_timeout * 1.01) == 1
    job = job_row(db, job_id)
    assert (job.status, job.error_code) == (ScanStatus.FAILED, "expire")


def test_runners_that_keep_vanishing_make_the_job_fail(db, store, owner, settings):
    job_id = queue_scan(db, store, owner)
    limits = jobs.timeouts(settings)  # two attempts
    for attempt, runner in enumerate(("runner-a", "runner-b"), start=1):
        with db.write() as s:
            assert services.claim_next(s, runner).attempt == attempt
        later = utcnow() + limits.heartbeat_stale + timedelta(seconds=1)
        with db.write() as s:
            services.sweep(s, limits, now=later)
    job = job_row(db, job_id)
    assert (job.status, job.error_code) == ("failed", "give-up")
    assert "2" in job.error_params["attempts"]


def test_a_stale_job_with_a_pending_cancel_is_cancelled(db, store, owner, settings):
    job_id = queue_scan(db, store, owner)
    with db.write() as s:
        services.claim_next(s, "runner-a")
    with db.write() as s:
        services.cancel_scan(s, owner, job_id)
    later = utcnow() + jobs.timeouts(settings).heartbeat_stale + timedelta(seconds=1)
    with db.write() as s:
        services.sweep(s, jobs.timeouts(settings), now=later)
    assert job_row(db, job_id).status == ScanStatus.CANCELLED


def test_force_cancel_wins_over_the_runner(db, store, owner, settings, slow):
    job_id = queue_scan(db, store, owner)
    runner = jobs.ScanRunner(db, settings, store, runner_id="runner-a").start()
    try:
        wait_for(lambda: running_with_progress(db, job_id))
        with db.write() as s:
            services.force_cancel_scan(s, owner, job_id, "扫描卡住")
        # The runner learns at its next heartbeat that the job is no longer its own, stops, and
        # writes nothing: the job stays as the administrator left it.
        wait_for(lambda: runner._current is None)
    finally:
        runner.stop()
    job = job_row(db, job_id)
    assert (job.status, job.error_code) == ("cancelled", "force-cancelled")
    assert actions(db, job_id)[-1] == "discovery:scan:force-cancel"


def test_shutdown_hands_the_running_job_back(db, store, owner, settings, slow):
    job_id = queue_scan(db, store, owner)
    runner = jobs.ScanRunner(db, settings, store, runner_id="runner-a").start()
    wait_for(lambda: running_with_progress(db, job_id))
    runner.stop()
    assert not runner.running
    job = job_row(db, job_id)
    assert (job.status, job.runner_id) == ("queued", None)
    assert actions(db, job_id)[-1] == "discovery:scan:requeue"


def test_a_scan_over_its_time_limit_is_stopped(db, store, owner, settings, slow):
    job_id = queue_scan(db, store, owner)
    runner = jobs.ScanRunner(db, settings, store, runner_id="runner-a")
    runner.limits = JobTimeouts(
        heartbeat_stale=timedelta(seconds=30),
        queue_timeout=timedelta(hours=1),
        max_run=timedelta(milliseconds=200),
        max_attempts=2,
    )
    assert runner.run_once()
    job = job_row(db, job_id)
    assert (job.status, job.error_code) == ("failed", "timeout")


def test_unreadable_source_and_unexpected_errors_fail_the_job(
    db, store, owner, settings, tmp_path, monkeypatch
):
    # A table that vanished from its database after the version was added.
    source = tmp_path / "gone.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE t (a TEXT)")
    with db.write() as s:
        dataset_id = dataplane.create_dataset(s, owner, DatasetDraft(name="库表")).id
        _v, job = services.add_database_version(
            s,
            owner,
            dataset_id,
            url=f"sqlite:///{source}",
            table="t",
            schema=None,
            secret_key=settings.secret_key,
        )
        gone = job.id
    with sqlite3.connect(source) as conn:
        conn.execute("DROP TABLE t")
    jobs.run_pending(db, settings, store)
    job = job_row(db, gone)
    assert (job.status, job.error_code) == ("failed", "not-found")
    assert "t" in job.error_params["table"]

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(jobs, "scan_source", broken)
    job_id = queue_scan(db, store, owner)
    jobs.run_pending(db, settings, store)
    job = job_row(db, job_id)
    assert (job.status, job.error_code) == ("failed", "internal-error")
    assert "a bug" not in (job.error_message or "")


def test_concurrent_runners_claim_each_job_once(db, store, owner, settings):
    job_ids = [queue_scan(db, store, owner, data=CSV + f"加{n},\n".encode()) for n in range(6)]
    runners = [jobs.ScanRunner(db, settings, store, runner_id=f"runner-{n}") for n in range(3)]
    errors: list[BaseException] = []

    def work(runner):
        try:
            runner.run_pending()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r,)) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sum(r.jobs_run for r in runners) == len(job_ids)
    for job_id in job_ids:
        job = job_row(db, job_id)
        assert (job.status, job.attempts) == ("succeeded", 1)
        assert actions(db, job_id).count("discovery:scan:start") == 1


def test_the_app_runs_a_runner_when_enabled(db, settings, enterprise):
    from datafactor.app import create_app

    settings.scan_runner = "on"
    app = create_app(settings, db)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert app.state.scan_runner.running
        headers = bearer(client, enterprise)
        dataset = client.post("/api/v1/datasets", headers=headers, json={"name": "后台任务"})
        r = client.post(
            f"/api/v1/datasets/{dataset.json()['id']}/versions?filename=p.csv",
            headers={**headers, "Content-Type": "application/octet-stream"},
            content=CSV,
        )
        scan_id = r.json()["scan"]["id"]
        wait_for(
            lambda: (
                client.get(f"/api/v1/scans/{scan_id}", headers=headers).json()["status"]
                == "succeeded"
            )
        )
    assert not app.state.scan_runner.running
    settings.scan_runner = "off"
    assert not jobs.runner_enabled(settings)
    settings.scan_runner = "auto"
    assert not jobs.runner_enabled(settings)  # the test environment drives jobs itself
