"""The daily reconciliation: once per China date, whichever process ran it."""

from __future__ import annotations

from datafactor.jobs import periodic
from datafactor.settlement import books
from datafactor.settlement.maintenance import daily_reconciliation


def test_the_daily_job_reconciles_once_a_day(db, fund, settings):
    fund(5_000)
    reconcile_if_due = daily_reconciliation(db)
    report = reconcile_if_due()
    assert report is not None and report.balanced
    assert reconcile_if_due() is None  # the same day: nothing to do
    other_process = daily_reconciliation(db)
    assert other_process() is None  # another process already reconciled today
    assert other_process.last_day is not None  # ... so this one is done for the day too
    with db.read() as s:
        rows, total = books.list_reconciliations(s, _reader(), limit=10, offset=0)
    assert total == 1 and rows[0].actor_name == "daily-reconciliation"
    assert not periodic.enabled(settings)  # the test environment runs it by hand


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
