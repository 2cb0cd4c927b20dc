"""Paying trust income through settlement (both databases): the trustee's received income
goes to its fee and each beneficiary's available funds, once however often it is asked; the
books balance; refused (nothing written) when the trustee's funds do not cover it."""

from __future__ import annotations

import pytest
from factories import bearer
from sqlalchemy import func, select
from trusts_support import IN_TERM, Trust, established, make_trust

from datafactor.db import Database
from datafactor.errors import DomainError
from datafactor.policy.trusts import services
from datafactor.policy.trusts.domain import IncomeSource
from datafactor.policy.trusts.models import PolicyTrustDistribution
from datafactor.settings import Settings
from datafactor.settlement import services as money
from datafactor.settlement.books import reconcile, snapshot
from datafactor.settlement.models import SettlementJournal


@pytest.fixture
def trust(db: Database, settings: Settings) -> Trust:
    return make_trust(db, settings)


def _income(db: Database, trust: Trust, deed_id: str, fen: int) -> str:
    draft = services.IncomeDraft(fen, IN_TERM, IncomeSource.OTHER, description="数据产品收入")
    with db.write() as s:
        return services.record_income(s, trust.trustee, deed_id, draft, today=IN_TERM).id


def _deposit(db: Database, party_id: str, fen: int, key: str) -> None:
    with db.write() as s:
        money.deposit_funds(s, party_id, fen, key=key, actor="test")


def _available(db: Database, party_id: str) -> int:
    with db.read() as s:
        ids = money.party_accounts(s, [party_id])[party_id]
        rows = money.list_accounts(s, _reader(party_id), party_id)
    return next(r.balance_fen for r in rows if r.id == ids[money.AccountKind.AVAILABLE])


def _reader(party_id: str):  # type: ignore[no-untyped-def]
    from datafactor.permissions import Permission, Principal

    return Principal(
        user_id="",
        username="test",
        party_id=party_id,
        party_kind="enterprise",
        roles=frozenset(),
        permissions=frozenset({Permission.SETTLEMENT_ACCOUNT_READ}),
        via="cli",
    )


def _balanced(db: Database) -> None:
    with snapshot(db) as s:
        report, _ = reconcile(s)
    assert report.balanced, [p.as_dict() for p in report.problems]


def test_the_trustee_pays_an_income_once(db: Database, trust: Trust) -> None:
    deed_id = established(db, trust)
    income_id = _income(db, trust, deed_id, 100_001)
    _deposit(db, trust.trustee.party_id, 100_001, "trust-income-received")
    for _ in range(2):  # a retry pays nothing again
        with db.write() as s:
            services.pay_income(s, trust.trustee, income_id)
    # The split of docs/trusts.md: fee 5,000, the grid 66,501, the household 28,500.
    assert _available(db, trust.trustee.party_id) == 5_000
    assert _available(db, trust.settlor.party_id) == 66_501
    assert _available(db, trust.beneficiary.party_id) == 28_500
    with db.read() as s:
        lines = list(s.scalars(select(PolicyTrustDistribution)))
        assert {x.status for x in lines} == {"paid"}
        assert len({x.settlement_reference for x in lines}) == 1
        journal = s.get(SettlementJournal, lines[0].settlement_reference)
        assert journal.kind == "capture" and journal.reference == f"trust_income:{income_id}"
        assert s.scalar(select(func.count()).select_from(SettlementJournal)) == 3
    _balanced(db)


def test_not_enough_received_funds_refuses_and_writes_nothing(db: Database, trust: Trust) -> None:
    deed_id = established(db, trust)
    income_id = _income(db, trust, deed_id, 10_000)
    _deposit(db, trust.trustee.party_id, 9_999, "short")
    with pytest.raises(DomainError) as refused, db.write() as s:
        services.pay_income(s, trust.trustee, income_id)
    assert "SET-FUNDS" in str(refused.value)
    with db.read() as s:
        assert {x.status for x in s.scalars(select(PolicyTrustDistribution))} == {"pending"}
    _deposit(db, trust.trustee.party_id, 1, "topped-up")
    with db.write() as s:
        services.pay_income(s, trust.trustee, income_id)
    assert _available(db, trust.beneficiary.party_id) > 0
    _balanced(db)


def test_only_the_trustee_pays(db: Database, trust: Trust) -> None:
    deed_id = established(db, trust)
    income_id = _income(db, trust, deed_id, 10_000)
    _deposit(db, trust.trustee.party_id, 10_000, "received")
    for who in (trust.settlor, trust.beneficiary, trust.stranger):
        with pytest.raises(DomainError), db.write() as s:
            services.pay_income(s, who, income_id)


def test_paying_through_the_api(client, db: Database, trust: Trust) -> None:
    deed_id = established(db, trust)
    income_id = _income(db, trust, deed_id, 20_000)
    _deposit(db, trust.trustee.party_id, 20_000, "received-api")
    url = f"/api/v1/trusts/income/{income_id}/payment"
    stranger = bearer(client, trust.actors["stranger"])
    assert client.post(url, headers=stranger).status_code == 404
    r = client.post(url, headers=bearer(client, trust.actors["trustee"]))
    assert r.status_code == 200, r.text
    lines = r.json()["lines"]
    assert {x["status"] for x in lines} == {"paid"}
    assert all(x["settlement_reference"] for x in lines)
    again = client.post(url, headers=bearer(client, trust.actors["trustee"]))
    assert again.json()["lines"] == lines
    _balanced(db)


def test_the_trustee_pays_from_the_deed_page(client, db: Database, trust: Trust) -> None:
    import re

    from factories import PASSWORD

    deed_id = established(db, trust)
    income_id = _income(db, trust, deed_id, 30_000)
    _deposit(db, trust.trustee.party_id, 30_000, "received-page")
    actor = trust.actors["trustee"]
    client.cookies.set("df_lang", "en")
    login = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)
    r = client.post(
        "/login",
        data={"username": actor.username, "password": PASSWORD, "csrf_token": token, "next": "/"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = client.get(f"/trusts/{deed_id}")
    assert 'data-testid="pay-form"' in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    url = f"/trusts/{deed_id}/income/{income_id}/payment"
    for _ in range(2):  # a double click pays once
        r = client.post(url, data={"csrf_token": csrf}, follow_redirects=False)
        assert r.status_code == 303
    page = client.get(f"/trusts/{deed_id}")
    assert 'data-testid="pay-form"' not in page.text and 'data-testid="line-journal"' in page.text
    assert _available(db, trust.beneficiary.party_id) > 0
    _balanced(db)
