"""The grants monitor in each server process: ``run_monitor`` at start-up and then every
``monitor.interval_seconds`` (``rules/grants.yaml``; hourly), run by the grants API router's
lifespan on ``datafactor.jobs.periodic`` — except in the test environment, where tests run the
monitor themselves on a fixed clock. Each grant is checked in a transaction of its own (a grant
that cannot be checked is logged and skipped); a failed run is logged and tried again at the
next interval. Runs in several processes do not conflict: each grant is row-locked while it is
re-checked, and a grant already changed by another run is found in its new state.
"""

from __future__ import annotations

import logging

from datafactor.db import Database
from datafactor.jobs.periodic import periodic_lifespan
from datafactor.policy.grants.domain import load_grant_rules
from datafactor.policy.grants.services import MonitorReport, run_monitor

log = logging.getLogger(__name__)


def monitor_grants(db: Database) -> MonitorReport:
    """The monitor, run if due — which it always is: each run re-checks every live grant."""
    report = run_monitor(db)
    if report.changed:
        log.info("grants monitor: %s", report.as_dict())
    return report


monitor_lifespan = periodic_lifespan(
    "grants-monitor",
    lambda app: lambda: monitor_grants(app.state.db),
    poll_seconds=load_grant_rules().monitor_seconds,
)
