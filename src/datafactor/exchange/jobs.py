"""The exchange's deadline clock: what happens to every contract whose deadline has passed.

``run_deadlines`` applies ``CONTRACT_DEADLINES`` (``contracts.apply_deadline``) to each contract
past its deadline: unsigned or unanswered contracts are terminated and their escrow released,
signed contracts take effect at the start of their term, delivered contracts not accepted in time
are deemed accepted and settled (never delivered: terminated and released), disputes not decided
in time are escalated to the regulators. Given a ``Database`` each contract is handled in its own
transaction under its row lock (what the server and ``datafactor exchange deadlines`` do): a run
holds one contract's lock at a time, a contract that cannot be handled is logged and named in
``failed`` without stopping the others, and several processes running at once do no harm — a
contract another run moved is found in its new state and left alone. Given a ``Session`` the
same happens in savepoints of the caller's transaction.

``deadlines_lifespan`` runs the clock in every server process (``datafactor.jobs.periodic``),
every ``contracts.poll_seconds`` of the rules file; never in the test environment, whose tests
pass their own ``now``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from sqlalchemy.orm import Session

from datafactor.db import Database, utcnow
from datafactor.exchange import auctions, contracts, negotiation, orders  # noqa: F401 - orders registers its contract-ended hook
from datafactor.exchange.contracts import DeadlineReport
from datafactor.jobs.periodic import periodic_lifespan

log = logging.getLogger(__name__)


def run_deadlines(target: Database | Session, now: datetime | None = None) -> DeadlineReport:
    """Apply the deadline of every contract past it (see the module docstring)."""
    moment = now or utcnow()
    if isinstance(target, Session):
        return contracts.run_deadlines_in(target, now=moment)
    with target.read() as session:
        due = contracts.due_contract_ids(session, moment)
    report = DeadlineReport()
    for contract_id in due:
        try:
            with target.write() as session:
                report.done.append(contracts.apply_deadline(session, contract_id, now=moment))
        except Exception:  # one contract must not stop the run
            log.exception("exchange deadlines: contract %s could not be handled", contract_id)
            report.failed.append(contract_id)
    if report.done or report.failed:
        log.info("exchange deadlines: %s", report.as_dict())
    return report


def _task(app: FastAPI) -> Callable[[], Any]:
    db: Database = app.state.db

    def tick() -> None:
        run_deadlines(db)
        # Agreement trades and auctions: lapsed negotiations expire, auctions past their
        # deadline close (each in its own transaction under its row lock).
        negotiation.expire_due_negotiations(db)
        auctions.close_due_auctions(db)

    return tick


deadlines_lifespan = periodic_lifespan(
    "exchange-deadlines", _task, poll_seconds=contracts.poll_seconds()
)
