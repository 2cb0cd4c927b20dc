"""The money ledger over HTTP, on both databases: accounts, deposits and withdrawals with their
idempotency keys, statements (JSON and CSV), journals, reconciliations, and who may see what."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from factories import bearer, make_actor

from datafactor.identity import PartyKind
from datafactor.settlement import LineKind, Payout, services


@pytest.fixture
def headers(client, enterprise):
    return bearer(client, enterprise)


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def accounts(client, headers, **params) -> dict[str, dict]:
    r = client.get("/api/v1/settlement/accounts", headers=headers, params=params)
    assert r.status_code == 200, r.text
    return {a["kind"]: a for a in r.json()["items"]}


def test_a_new_party_sees_its_two_accounts_at_zero(client, headers, enterprise):
    found = accounts(client, headers)
    assert set(found) == {"available", "frozen"}
    assert all(
        a["balance_fen"] == 0 and a["party_id"] == enterprise.party_id for a in found.values()
    )
    assert found["available"]["code"] == "2001"
    assert found["frozen"]["code"] == "2002"


def test_deposit_answers_the_journal_and_a_replay_answers_it_again(client, headers):
    k = key()
    first = client.post(
        "/api/v1/settlement/deposits", headers={**headers, **k}, json={"amount_fen": 123456}
    )
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["kind"] == "deposit"
    assert body["bank_reference"].startswith("LB")
    assert sum(line["amount_fen"] for line in body["lines"]) == 0
    mine = [x for x in body["lines"] if x["account_kind"] == "available"]
    assert mine[0]["amount_fen"] == 123456 and mine[0]["balance_after_fen"] == 123456
    assert "SET-GATEWAY" in body["rules"]
    again = client.post(
        "/api/v1/settlement/deposits", headers={**headers, **k}, json={"amount_fen": 123456}
    )
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == body["id"]
    assert accounts(client, headers)["available"]["balance_fen"] == 123456  # paid once
    other = client.post(
        "/api/v1/settlement/deposits", headers={**headers, **k}, json={"amount_fen": 999}
    )
    assert other.status_code == 409
    assert other.headers["content-type"].startswith("application/problem+json")
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert "SET-IDEMPOTENCY" in other.json()["detail"]


def test_a_money_moving_request_without_a_key_is_refused(client, headers):
    r = client.post("/api/v1/settlement/deposits", headers=headers, json={"amount_fen": 100})
    assert r.status_code == 400
    assert r.json()["type"].endswith("/idempotency-key-missing")
    assert "Idempotency-Key" in r.json()["detail"]
    bad = client.post(
        "/api/v1/settlement/deposits",
        headers={**headers, "Idempotency-Key": "has space"},
        json={"amount_fen": 100},
    )
    assert bad.status_code == 422
    assert accounts(client, headers)["available"]["lines"] == 0


@pytest.mark.parametrize("amount", [0, -5, 10**16, 12.5, "100"])
def test_bad_amounts_are_refused_with_the_rule(client, headers, amount):
    r = client.post(
        "/api/v1/settlement/deposits",
        headers={**headers, **key(), "Accept-Language": "en"},
        json={"amount_fen": amount},
    )
    assert r.status_code == 422, r.text
    if isinstance(amount, int):
        assert "SET-MONEY" in r.json()["detail"]
        assert r.json()["field"] == "amount_fen"


def test_withdrawal_beyond_available_is_refused_in_the_callers_language(client, headers):
    client.post(
        "/api/v1/settlement/deposits", headers={**headers, **key()}, json={"amount_fen": 5000}
    )
    r = client.post(
        "/api/v1/settlement/withdrawals", headers={**headers, **key()}, json={"amount_fen": 7000}
    )
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert "余额不足" in detail or "Insufficient funds" in detail
    assert "50.00" in detail and "70.00" in detail and "SET-FUNDS" in detail
    en = client.post(
        "/api/v1/settlement/withdrawals",
        headers={**headers, **key(), "Accept-Language": "en"},
        json={"amount_fen": 7000},
    )
    assert en.json()["detail"].startswith("Insufficient funds: 50.00 yuan available, 70.00 yuan")
    ok = client.post(
        "/api/v1/settlement/withdrawals", headers={**headers, **key()}, json={"amount_fen": 2000}
    )
    assert ok.status_code == 201
    assert accounts(client, headers)["available"]["balance_fen"] == 3000


def test_only_the_administrator_moves_money(client, db):
    staff = make_actor(db, roles=("staff",))
    r = client.post(
        "/api/v1/settlement/deposits",
        headers={**bearer(client, staff), **key()},
        json={"amount_fen": 100},
    )
    assert r.status_code == 403
    assert accounts(client, bearer(client, staff))["available"]["balance_fen"] == 0


def test_statement_pages_and_csv_carry_the_running_balance(client, headers):
    for amount in (10000, 2500, 700):
        client.post(
            "/api/v1/settlement/deposits", headers={**headers, **key()}, json={"amount_fen": amount}
        )
    client.post(
        "/api/v1/settlement/withdrawals", headers={**headers, **key()}, json={"amount_fen": 1200}
    )
    available = accounts(client, headers)["available"]
    url = f"/api/v1/settlement/accounts/{available['id']}/statement"
    page = client.get(url, headers=headers, params={"limit": 2, "offset": 1})
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["total"] == 4
    assert [x["balance_after_fen"] for x in body["items"]] == [12500, 13200]
    assert body["closing_balance_fen"] == 12000 and body["opening_balance_fen"] == 0
    text = client.get(url, headers=headers, params={"format": "csv"}).text.lstrip("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["balance_after_fen"]) for r in rows] == [10000, 12500, 13200, 12000]
    assert rows[-1]["amount_yuan"] == "-12.00" and rows[-1]["line_kind"] == "withdrawal"
    by_accept = client.get(url, headers={**headers, "Accept": "text/csv"})
    assert by_accept.headers["content-type"].startswith("text/csv")
    future = client.get(url, headers=headers, params={"from": "2099-01-01"})
    assert future.json()["items"] == [] and future.json()["opening_balance_fen"] == 12000
    backwards = client.get(url, headers=headers, params={"from": "2026-02-01", "to": "2026-01-01"})
    assert backwards.status_code == 422


def test_another_party_sees_neither_accounts_nor_journals(client, headers, db):
    posted = client.post(
        "/api/v1/settlement/deposits", headers={**headers, **key()}, json={"amount_fen": 100}
    ).json()
    available = accounts(client, headers)["available"]
    rival = bearer(client, make_actor(db))
    assert (
        client.get(f"/api/v1/settlement/accounts/{available['id']}", headers=rival).status_code
        == 404
    )
    assert (
        client.get(f"/api/v1/settlement/journals/{posted['id']}", headers=rival).status_code == 404
    )
    assert (
        client.get(
            "/api/v1/settlement/accounts", headers=rival, params={"party": available["party_id"]}
        ).status_code
        == 404
    )
    assert (
        client.get(
            "/api/v1/settlement/accounts", headers=rival, params={"party": "system"}
        ).status_code
        == 403
    )


def test_a_buyer_sees_the_seller_paid_but_not_the_sellers_account(client, db, enterprise, headers):
    seller = make_actor(db)
    client.post(
        "/api/v1/settlement/deposits", headers={**headers, **key()}, json={"amount_fen": 10000}
    )
    with db.write() as s:
        hold = services.freeze(
            s, enterprise.party_id, 6000, "order:api-1", key="f", actor="t"
        ).hold_id
        assert hold is not None
        captured = services.capture(
            s,
            hold,
            [Payout(LineKind.PAYOUT, 5000, seller.party_id), Payout(LineKind.FEE, 1000)],
            key="c",
            actor="t",
        ).journal.id
    as_buyer = client.get(f"/api/v1/settlement/journals/{captured}", headers=headers).json()
    payout = next(x for x in as_buyer["lines"] if x["kind"] == "payout")
    assert payout["amount_fen"] == 5000
    assert payout["account_id"] is None and payout["balance_after_fen"] is None
    fee = next(x for x in as_buyer["lines"] if x["kind"] == "fee")  # nor the exchange's income
    assert fee["account_kind"] == "fee_income" and fee["balance_after_fen"] is None
    mine = next(x for x in as_buyer["lines"] if x["kind"] == "capture")
    assert mine["account_id"] and mine["balance_after_fen"] == 0
    as_seller = client.get(
        f"/api/v1/settlement/journals/{captured}", headers=bearer(client, seller)
    )
    assert as_seller.status_code == 200
    assert as_seller.json()["idempotency_key"] is None  # the buyer's key is the buyer's
    seller_line = next(x for x in as_seller.json()["lines"] if x["kind"] == "payout")
    assert seller_line["balance_after_fen"] == 5000


def test_exchange_staff_read_every_book_and_reconcile(client, db, headers, operator, regulator):
    client.post(
        "/api/v1/settlement/deposits", headers={**headers, **key()}, json={"amount_fen": 4200}
    )
    staff = bearer(client, operator)
    system = accounts(client, staff, party="system")
    assert system["bank"]["balance_fen"] == -4200 and system["bank"]["code"] == "1002"
    assert set(system) == {"bank", "fee_income", "commissions", "treasury"}
    r = client.post("/api/v1/settlement/reconciliations", headers=staff)
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["balanced"] is True and run["sum_fen"] == 0 and run["problems"] == []
    assert run["journals"] >= 1 and run["ledger_index"] is not None
    history = client.get("/api/v1/settlement/reconciliations", headers=staff).json()
    assert history["items"][0]["id"] == run["id"]
    reg = bearer(client, regulator)
    assert client.get("/api/v1/settlement/reconciliations", headers=reg).status_code == 200
    assert client.post("/api/v1/settlement/reconciliations", headers=reg).status_code == 403
    assert client.post("/api/v1/settlement/reconciliations", headers=headers).status_code == 403


def test_unknown_query_parameters_and_body_fields_are_refused(client, headers):
    assert client.get("/api/v1/settlement/accounts?partie=x", headers=headers).status_code == 400
    r = client.post(
        "/api/v1/settlement/deposits",
        headers={**headers, **key()},
        json={"amount_fen": 100, "to": "someone-else"},
    )
    assert r.status_code == 422


def test_a_treasury_party_or_foreign_company_can_hold_funds(client, db):
    vn = make_actor(db, PartyKind.FOREIGN_COMPANY)
    r = client.post(
        "/api/v1/settlement/deposits",
        headers={**bearer(client, vn), **key()},
        json={"amount_fen": 100_000},
    )
    assert r.status_code == 201
