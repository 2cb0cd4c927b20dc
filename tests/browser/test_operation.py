"""Public data authorised operation in a real browser, on the demo province.

The demo's public-data operator logs in (in Chinese), finds the published fees, opens its uses,
approves the paid use the logistics firm asked for (10,000 API calls of expressway traffic data
at 0.40 yuan), and sees it on its 2026 annual report: the paid-use income grows by 4,000.00
yuan and the industry-development uses by one. Operation's clock is fixed in November 2026 (the
demo's agreements run from April 2026, and the registry's working-day calendar covers 2026).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

import pytest
from playwright.sync_api import Page, expect

from datafactor.demo.loader import DEFAULT_PASSWORD, load_demo
from datafactor.policy.operation.api import operation_today
from datafactor.web.i18n import translations

OPERATOR = "pdo.admin"


def zh(msgid: str) -> str:
    return str(translations("zh_CN").gettext(msgid))


@pytest.fixture
def demo(app, db, settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    load_demo(db, settings=settings)
    app.dependency_overrides[operation_today] = lambda: date(2026, 11, 30)
    try:
        yield
    finally:
        app.dependency_overrides.pop(operation_today, None)


def test_the_operator_approves_a_paid_use_and_sees_it_on_its_report(
    page: Page, login, demo: None, shot
) -> None:  # type: ignore[no-untyped-def]
    login(OPERATOR, DEFAULT_PASSWORD)
    page.get_by_test_id("nav-operation").click()
    expect(page).to_have_url(re.compile(r"/operation$"))
    expect(page.get_by_test_id("op-catalogue")).to_contain_text("广西高速公路车流量公共数据")
    shot(page, "operation-overview")

    # The report before: two paid uses so far (6,750.00 yuan).
    page.get_by_test_id("op-nav-reports").click()
    page.get_by_test_id("op-report-2026").first.click()
    expect(page.get_by_test_id("op-income")).to_have_text("6,750.00")

    # The request waiting for the operator's decision.
    page.get_by_test_id("op-nav-uses").click()
    waiting = page.get_by_test_id("op-uses").locator(
        "tr", has=page.get_by_test_id("op-use-approve")
    )
    expect(waiting).to_have_count(1)
    expect(waiting).to_contain_text("凭祥边贸通跨境物流有限公司")
    expect(waiting).to_contain_text("4,000.00")
    shot(page, "operation-uses")
    waiting.get_by_test_id("op-use-approve").click()
    expect(page.get_by_test_id("op-uses").get_by_test_id("op-use-approve")).to_have_count(0)
    expect(page.get_by_test_id("op-uses")).to_contain_text(zh("Use approved"))

    # On the report: the income and the industry-development uses grew.
    page.get_by_test_id("op-nav-reports").click()
    page.get_by_test_id("op-report-2026").first.click()
    expect(page.get_by_test_id("op-income")).to_have_text("10,750.00")
    industry = page.get_by_test_id("op-report-class-industry_development")
    expect(industry).to_contain_text("凭祥边贸通跨境物流有限公司")
    expect(industry).to_contain_text("10,000.00")
    shot(page, "operation-report")
