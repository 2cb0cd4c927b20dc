"""The console pages of the money ledger over HTTP, on both databases: balances in yuan, the
deposit and withdrawal forms (a resubmitted form pays once; bad input answered in the person's
language, nothing posted), statements with their period filter and CSV, journals, and the
exchange's books page with reconciliation."""

from __future__ import annotations

import re

import pytest
from factories import console_login, make_actor

from datafactor.identity import PartyKind
from datafactor.settlement import services


def form_key(html: str, form: str) -> str:
    match = re.search(rf'name="idempotency_key" value="([^"]+)" data-testid="{form}-key"', html)
    assert match, f"no idempotency key in the {form} form"
    return match.group(1)


def balance(html: str, which: str) -> str:
    match = re.search(rf'data-testid="{which}-balance">([^<]+)<', html)
    assert match
    return match.group(1)


def test_the_accounts_page_shows_zero_balances_and_the_nav_link(client, enterprise):
    console_login(client, enterprise, "/settlement")
    page = client.get("/settlement")
    assert page.status_code == 200
    assert balance(page.text, "available") == "¥0.00"
    assert balance(page.text, "frozen") == "¥0.00"
    assert 'data-testid="nav-settlement"' in page.text
    assert 'data-testid="deposit-form"' in page.text


def test_a_deposit_form_posted_twice_pays_once(client, db, enterprise, principal_of):
    csrf = console_login(client, enterprise, "/settlement", "en")
    page = client.get("/settlement").text
    data = {
        "csrf_token": csrf,
        "idempotency_key": form_key(page, "deposit"),
        "amount": "1,234.56",
        "memo": "首笔充值",
    }
    first = client.post("/settlement/deposits", data=data, follow_redirects=False)
    assert first.status_code == 303
    second = client.post("/settlement/deposits", data=data, follow_redirects=False)
    assert second.headers["location"] == first.headers["location"]  # the same journal
    shown = client.get(first.headers["location"]).text
    assert balance(shown, "available") == "¥1,234.56"
    assert 'data-testid="posted"' in shown and "+¥1,234.56" in shown
    assert "首笔充值" in shown
    assert form_key(shown, "deposit") != data["idempotency_key"]  # a fresh key per rendering
    with db.read() as s:
        rows = services.list_accounts(s, principal_of(enterprise))
    assert {r.kind: r.balance_fen for r in rows}["available"] == 123456


@pytest.mark.parametrize(
    ("amount", "english"),
    [
        ("12.345", "at most two decimals"),
        ("abc", "at most two decimals"),
        ("0", "more than 0"),
        ("-5", "at most two decimals"),
    ],
)
def test_bad_amounts_are_explained_and_nothing_is_posted(client, enterprise, amount, english):
    csrf = console_login(client, enterprise, "/settlement", "en")
    page = client.get("/settlement").text
    r = client.post(
        "/settlement/deposits",
        data={"csrf_token": csrf, "idempotency_key": form_key(page, "deposit"), "amount": amount},
    )
    assert r.status_code == 422
    assert english in r.text and "SET-MONEY" in r.text
    assert 'aria-invalid="true"' in r.text
    assert balance(r.text, "available") == "¥0.00"


def test_a_withdrawal_beyond_the_balance_is_refused_in_chinese(client, enterprise, fund):
    fund(50_000, enterprise.party_id)
    csrf = console_login(client, enterprise, "/settlement")
    page = client.get("/settlement").text
    r = client.post(
        "/settlement/withdrawals",
        data={"csrf_token": csrf, "idempotency_key": form_key(page, "withdraw"), "amount": "600"},
    )
    assert r.status_code == 409
    assert "SET-FUNDS" in r.text and "500.00" in r.text and "600.00" in r.text
    assert balance(r.text, "available") == "¥500.00"
    ok = client.post(
        "/settlement/withdrawals",
        data={"csrf_token": csrf, "idempotency_key": form_key(r.text, "withdraw"), "amount": "200"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    assert balance(client.get(ok.headers["location"]).text, "available") == "¥300.00"


def test_a_form_without_csrf_is_refused(client, enterprise):
    console_login(client, enterprise, "/settlement")
    r = client.post("/settlement/deposits", data={"idempotency_key": "k", "amount": "10"})
    assert r.status_code == 403


def test_staff_see_balances_but_get_no_forms(client, db, fund):
    staff = make_actor(db, roles=("staff",))
    fund(700, staff.party_id)
    console_login(client, staff, "/settlement")
    page = client.get("/settlement").text
    assert balance(page, "available") == "¥7.00"
    assert 'data-testid="deposit-form"' not in page


def test_the_statement_page_filters_and_downloads(client, db, enterprise, fund):
    fund(10_000, enterprise.party_id, key="a")
    fund(2_550, enterprise.party_id, key="b")
    console_login(client, enterprise, "/settlement", "en")
    page = client.get("/settlement").text
    link = re.search(r'href="(/settlement/accounts/[^"]+)" data-testid="available-statement"', page)
    assert link
    statement = client.get(link.group(1))
    assert statement.status_code == 200
    assert statement.text.count('data-testid="statement-line"') == 2
    assert "¥125.50" in statement.text
    empty = client.get(link.group(1), params={"from": "2099-01-01", "to": "2099-01-31"})
    assert empty.text.count('data-testid="statement-line"') == 0
    assert re.search(r'data-testid="statement-opening">¥125.50<', empty.text)
    backwards = client.get(link.group(1), params={"from": "2026-02-01", "to": "2026-01-01"})
    assert backwards.status_code == 422 and "SET-RECONCILE" in backwards.text
    csv_text = client.get(link.group(1) + "/statement.csv").text
    assert csv_text.startswith("\ufeffseq,posted_at_cst")
    assert csv_text.strip().splitlines()[-1].endswith(",12550,125.50")
    rival = make_actor(db)
    console_login(client, rival, "/settlement")
    assert client.get(link.group(1)).status_code == 404
    assert client.get(link.group(1) + "/statement.csv").status_code == 404


def test_the_journal_page_shows_its_lines(client, enterprise):
    csrf = console_login(client, enterprise, "/settlement", "en")
    page = client.get("/settlement").text
    r = client.post(
        "/settlement/deposits",
        data={"csrf_token": csrf, "idempotency_key": form_key(page, "deposit"), "amount": "88"},
        follow_redirects=True,
    )
    link = re.search(r'href="(/settlement/journals/[^"]+)" data-testid="posted-journal"', r.text)
    assert link
    journal = client.get(link.group(1))
    assert journal.status_code == 200
    assert "SET-GATEWAY" in journal.text and "+¥88.00" in journal.text and "-¥88.00" in journal.text


def test_the_books_page_for_exchange_staff_reconciles(client, db, operator, fund):
    fund(99_900)
    csrf = console_login(client, operator, "/settlement", "en")
    books = client.get("/settlement/books")
    assert books.status_code == 200
    assert re.search(r'data-testid="book-sum">¥0.00<', books.text)
    assert "Not reconciled yet." in books.text
    r = client.post("/settlement/books/reconcile", data={"csrf_token": csrf}, follow_redirects=True)
    assert r.status_code == 200
    assert re.search(r'data-testid="last-verdict">Balanced<', r.text)
    assert "-¥999.00" in r.text  # the custody bank account holds the deposit


def test_the_books_page_is_closed_to_a_party(client, enterprise):
    console_login(client, enterprise, "/settlement")
    assert client.get("/settlement/books").status_code == 403


def test_a_regulator_reads_the_books_but_cannot_reconcile(client, db):
    regulator = make_actor(db, PartyKind.REGULATOR, roles=("auditor",))
    csrf = console_login(client, regulator, "/settlement", "en")
    page = client.get("/settlement/books")
    assert page.status_code == 200
    assert 'data-testid="reconcile-form"' not in page.text
    assert client.post("/settlement/books/reconcile", data={"csrf_token": csrf}).status_code == 403
