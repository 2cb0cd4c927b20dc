"""The daily reconciliation job: once per Asia/Shanghai date, in each server process.

``daily_reconciliation`` is the task, run if due (``datafactor.jobs.periodic``, like the
registry's daily sweep): at start-up and then after each midnight (checked every
``POLL_SECONDS``); a failure (a database outage) is logged and tried again at the next poll; a
day counts as done once a reconciliation has been recorded for it — by this process or another
one, so several server processes reconcile once a day between them (give or take a race at
midnight, which is harmless: a reconciliation only reads the books and records its verdict).
Unbalanced books are logged as an error on top of the recorded verdict and its ledger entry. Not
started in the test environment, whose tests reconcile on their own clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from typing import Final

from datafactor.db import CHINA, Database, today_cn
from datafactor.jobs.periodic import Daily, periodic_lifespan
from datafactor.settlement import books
from datafactor.settlement.domain import ReconciliationReport

log = logging.getLogger("datafactor.settlement")
POLL_SECONDS: Final = 300.0  # how often a server process checks whether a new day has begun


def daily_reconciliation(
    db: Database, *, today: Callable[[], date] = today_cn
) -> Daily[ReconciliationReport | None]:
    """The reconciliation, run if due: once per China date (``today``); None when another
    process has already reconciled the books that day."""

    def reconcile(day: date) -> ReconciliationReport | None:
        with db.read() as session:
            last = books.last_reconciliation(session)
        if last is not None and last.run_at.astimezone(CHINA).date() == day:
            return None
        _, report = books.run_reconciliation(db, None, actor_name="daily-reconciliation")
        if not report.balanced:
            log.error(
                "settlement books NOT balanced on %s: %s",
                day,
                [p.as_dict() for p in report.problems[:10]],
            )
        return report

    return Daily(reconcile, today=today)


reconcile_lifespan = periodic_lifespan(
    "settlement-reconciler",
    lambda app: daily_reconciliation(app.state.db),
    poll_seconds=POLL_SECONDS,
)
