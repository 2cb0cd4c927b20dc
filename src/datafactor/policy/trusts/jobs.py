"""The trusts' clock in each server process: ``sweep`` at start-up and then hourly (accepted
deeds take effect on their start date; deeds past their end expire, with their grants), run by
the trusts API router's lifespan on ``datafactor.jobs.periodic`` — except in the test
environment, where tests sweep on a fixed clock. A failed run is logged and tried again at the
next interval. Runs in several processes do not conflict: the deeds due are row-locked, and a
deed already moved by another run is no longer due (the sweep is idempotent).
"""

from __future__ import annotations

import logging
from typing import Final

from datafactor.db import Database
from datafactor.jobs.periodic import periodic_lifespan
from datafactor.policy.trusts.services import SweepReport, sweep

log = logging.getLogger(__name__)
INTERVAL_SECONDS: Final = 3600.0


def sweep_trusts(db: Database) -> SweepReport:
    """The sweep, run if due — it finds for itself which deeds are due — in its own transaction."""
    with db.write() as session:
        report = sweep(session)
    if report.changed:
        log.info("trusts sweep: %s", report.as_dict())
    return report


sweep_lifespan = periodic_lifespan(
    "trusts-sweeper", lambda app: lambda: sweep_trusts(app.state.db), poll_seconds=INTERVAL_SECONDS
)
