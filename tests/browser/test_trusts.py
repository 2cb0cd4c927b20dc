"""The electricity data trust in a real browser, on the demo province: the trustee (the data
custodian) opens the grid's trust from the navigation, sees the bank's sandbox grant, records an
income in yuan; a household representative (a beneficiary) then sees its own line of that
income — and not the grid's — on the deed page and on its benefits page.

The trusts' clock (``trusts_today``) is pinned inside the deed's term, as the API tests do.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from factories import PASSWORD
from playwright.sync_api import Page, expect

from datafactor.db import Database
from datafactor.demo.loader import demo_principals, load_demo
from datafactor.demo.trusts import DEED_TITLE
from datafactor.policy.trusts import services
from datafactor.policy.trusts.api import trusts_today
from datafactor.settings import Settings

TODAY = date(2026, 11, 20)


@pytest.fixture
def pinned(app) -> Iterator[None]:  # type: ignore[no-untyped-def]
    app.dependency_overrides[trusts_today] = lambda: TODAY
    yield
    app.dependency_overrides.pop(trusts_today, None)


def test_trustee_records_income_and_the_beneficiary_sees_its_line(
    page: Page, login, db: Database, settings: Settings, pinned: None, shot
) -> None:  # type: ignore[no-untyped-def]
    load_demo(db, password=PASSWORD, settings=settings)
    people = demo_principals(db)
    with db.read() as s:
        deeds, _ = services.list_deeds(
            s, people["custodian.admin"], services.DeedQuery(role="trustee"), limit=10, offset=0
        )
        deed = next(d for d in deeds if d.title == DEED_TITLE)
        wei = people["weixiaoming"].party_id
        grid = people["grid.admin"].party_id
        before = len(services.list_income(s, people["custodian.admin"], deed.id))

    login("custodian.admin")
    page.get_by_test_id("nav-trusts").click()
    expect(page).to_have_url("/trusts")
    page.locator(f'[data-testid="deed-row"][data-deed="{deed.id}"] a').first.click()
    expect(page.get_by_test_id("deed-state")).to_have_attribute("data-state", "active")
    expect(page.get_by_test_id("grant-row")).to_have_count(1)  # the bank's sandbox grant
    page.get_by_test_id("income-panel").locator("summary").click()
    form = page.get_by_test_id("income-form")
    page.get_by_test_id("income-amount").fill("12345.67")
    page.get_by_test_id("income-date").fill(TODAY.isoformat())
    page.get_by_test_id("income-description").fill("县域用电景气报告服务收入")
    form.locator("[data-testid=income-submit]").click()
    expect(page.get_by_test_id("income-row")).to_have_count(before + 1)
    # 12,345.67 yuan: 5 % fee (617.28), then the grid 70 % and each household 15 % of the rest.
    newest = page.get_by_test_id("income-row").first
    expect(newest).to_contain_text("12,345.67")
    expect(
        newest.locator(f'[data-testid="distribution-line"][data-party="{wei}"]')
    ).to_contain_text("1,759.26")
    shot(page, "trust-trustee-income")
    page.get_by_test_id("logout").click()

    login("weixiaoming")
    page.goto(f"/trusts/{deed.id}")
    newest = page.get_by_test_id("income-row").first
    expect(newest.get_by_test_id("distribution-line")).to_have_count(1)
    expect(newest.get_by_test_id("line-amount")).to_have_text("1,759.26")
    expect(page.locator(f'[data-testid="distribution-line"][data-party="{grid}"]')).to_have_count(0)
    expect(page.get_by_test_id("deed-grants")).to_have_count(0)
    page.get_by_test_id("nav-trust-benefits").click()
    row = page.locator(f'[data-testid="benefit-row"][data-deed="{deed.id}"]')
    expect(row).to_be_visible()
    expect(page.get_by_test_id("my-line-amount").first).to_be_visible()
    expect(page.get_by_test_id("my-lines")).to_contain_text("1,759.26")
    shot(page, "trust-beneficiary")
