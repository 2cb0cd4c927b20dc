"""Money in a real browser: a party administrator deposits through the console form — clicking
twice, as people do — sees one deposit and the new balance, and finds the line with its running
balance on the account's statement. The console speaks Chinese; the checks read figures and test
ids, which do not depend on the catalogue."""

from __future__ import annotations

import re

from factories import make_actor
from playwright.sync_api import Page, expect

from datafactor.db import Database


def test_a_deposit_shows_on_the_balance_and_the_statement(
    page: Page, login, db: Database, shot
) -> None:  # type: ignore[no-untyped-def]
    admin = make_actor(db, username="pay.admin", name="南宁数据采购有限公司")
    login(admin.username, admin.password)
    page.get_by_test_id("nav-settlement").click()
    expect(page).to_have_url(re.compile(r"/settlement$"))
    expect(page.get_by_test_id("available-balance")).to_have_text("¥0.00")

    page.get_by_test_id("deposit-amount").fill("1,234.56")
    page.get_by_test_id("deposit-memo").fill("首笔充值")
    page.get_by_test_id("deposit-submit").dblclick()  # a double click pays once
    expect(page.get_by_test_id("posted")).to_be_visible()
    expect(page.get_by_test_id("posted-amount")).to_have_text("+¥1,234.56")
    expect(page.get_by_test_id("available-balance")).to_have_text("¥1,234.56")
    expect(page.get_by_test_id("posted-bank-reference")).to_have_text(re.compile(r"^LB\d{8}"))
    shot(page, "settlement-deposit")

    page.get_by_test_id("available-statement").click()
    lines = page.get_by_test_id("statement-line")
    expect(lines).to_have_count(1)
    expect(lines.first.get_by_test_id("line-amount")).to_have_text("+¥1,234.56")
    expect(lines.first.get_by_test_id("line-balance")).to_have_text("¥1,234.56")
    expect(lines.first).to_contain_text("首笔充值")
    expect(page.get_by_test_id("statement-balance")).to_have_text("¥1,234.56")
    shot(page, "settlement-statement")
