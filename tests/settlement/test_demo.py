"""The demo province's buyers have funds, deposited once however often the demo is loaded."""

from __future__ import annotations

from datafactor.db import Database
from datafactor.demo.loader import load_demo
from datafactor.demo.province import PARTIES_BY_KEY
from datafactor.demo.settlement import FUNDING, fund_demo_buyers
from datafactor.identity import find_party_id
from datafactor.settlement import AccountKind, books, services
from datafactor.settlement.models import SettlementBalance


def test_the_demo_buyers_are_funded_once(db: Database) -> None:
    load_demo(db)  # parties and users (no settings: without the registry pilots)
    assert fund_demo_buyers(db) == 0  # the load already funded them: a replay
    with db.read() as s:
        for funding in FUNDING:
            demo = PARTIES_BY_KEY[funding.party_key]
            party = find_party_id(s, demo.code_type, demo.country, demo.code)
            assert party is not None
            account = services.party_accounts(s, [party])[party][AccountKind.AVAILABLE]
            balance = s.get(SettlementBalance, account)
            assert balance is not None
            assert balance.balance_fen == funding.amount_fen
            assert balance.lines == 1
    load_demo(db)
    with books.snapshot(db) as s:
        report, _ = books.reconcile(s)
    assert report.balanced and report.journals == len(FUNDING)
