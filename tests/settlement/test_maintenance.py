"""The daily reconciliation: once per China date, whichever process ran it."""

from __future__ import annotations

from datafactor.settlement import books
from datafactor.settlement.maintenance import DailyReconciler, reconciler_enabled


def test_the_daily_job_reconciles_once_a_day(db, fund, settings):
    fund(5_000)
    job = DailyReconciler(db)
    report = job.run_once()
    assert report is not None and report.balanced
    assert job.run_once() is None  # the same day: nothing to do
    other_process = DailyReconciler(db)
    assert other_process.run_once() is None  # another process already reconciled today
    with db.read() as s:
        rows, total = books.list_reconciliations(s, _reader(), limit=10, offset=0)
    assert total == 1 and rows[0].actor_name == "daily-reconciliation"
    assert not reconciler_enabled(settings)  # the test environment runs it by hand


def _reader():  # type: ignore[no-untyped-def]
    from datafactor.permissions import Permission, Principal

    return Principal(
        user_id="",
        username="t",
        party_id="",
        party_kind="regulator",
        roles=frozenset(),
        permissions=frozenset({Permission.SETTLEMENT_ACCOUNT_READ_ALL}),
    )
