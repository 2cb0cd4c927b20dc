"""Settlement test helpers shared by the money ledger's tests: a party's balances by account
kind, and the whole book reconciled (it must balance and sum to zero)."""

from __future__ import annotations

from datafactor.db import Database
from datafactor.settlement import books, services
from datafactor.settlement.models import SettlementBalance


def balances(db: Database, party_id: str) -> dict[str, int]:
    """The party's balances, by account kind (``available``, ``frozen``)."""
    with db.read() as s:
        accounts = services.party_accounts(s, [party_id])[party_id]
        return {
            kind.value: s.get(SettlementBalance, account_id).balance_fen  # type: ignore[union-attr]
            for kind, account_id in accounts.items()
        }


def assert_balanced(db: Database) -> None:
    """Reconcile the whole book: balanced, every account's balance its lines, summing to zero."""
    with books.snapshot(db) as s:
        report, _ = books.reconcile(s)
    assert report.balanced, report.as_dict()["problems"][:5]
    assert report.sum_fen == 0
