"""Authorisations in a real browser: a merchant asks for use of a registered data set (named by
its certificate number, the policy set with the form editor), the holder approves it, and both
see where it stands — the licence filed in the registry."""

from __future__ import annotations

from factories import make_actor
from grants_support import registered_asset
from playwright.sync_api import Page, expect
from registry_support import principal
from sqlalchemy import select

from datafactor.db import Database
from datafactor.identity import PartyKind
from datafactor.registry import services as registry
from datafactor.registry.models import RegistryCertificate
from datafactor.settings import Settings


def test_request_a_grant_and_the_holder_approves(
    page: Page, login, db: Database, settings: Settings, shot
) -> None:  # type: ignore[no-untyped-def]
    holder = make_actor(db, PartyKind.ENTERPRISE, username="gx.grid", name="广西电网数据公司")
    make_actor(db, PartyKind.DATA_MERCHANT, username="asean.shu", name="东盟商数")
    registrar = make_actor(db, PartyKind.EXCHANGE_OPERATOR, username="bbg.registrar")
    _, right_id, _ = registered_asset(
        db, settings, principal(db, holder), principal(db, registrar), registry.issuer_for(settings)
    )
    with db.read() as s:
        number = s.scalar(
            select(RegistryCertificate.number).where(RegistryCertificate.right_id == right_id)
        )

    login("asean.shu")
    page.get_by_test_id("nav-grants").click()
    expect(page).to_have_url("/grants")
    page.get_by_test_id("grant-new").click()
    form = page.get_by_test_id("grant-form")
    form.get_by_test_id("grant-data-input").fill(number)
    form.get_by_test_id("grant-region-CN-GX").check()
    form.get_by_test_id("grant-channel-sandbox").uncheck()
    form.get_by_test_id("grant-note").fill("园区用电指数产品开发")
    shot(page, "grant-request")
    form.get_by_test_id("grant-submit").click()
    expect(page.get_by_test_id("grant-state")).to_have_attribute("data-state", "requested")
    expect(page.get_by_test_id("grant-holder")).to_contain_text("广西电网数据公司")
    expect(page.get_by_test_id("grant-policy")).to_contain_text("接口调用")
    url = page.url
    page.get_by_test_id("logout").click()

    login("gx.grid")
    page.get_by_test_id("nav-grants").click()
    row = page.locator('[data-testid="grant-row"][data-state="requested"]')
    expect(row).to_contain_text("东盟商数")
    row.get_by_test_id("grant-link").click()
    expect(page).to_have_url(url)
    page.get_by_test_id("grant-approve").click()
    expect(page.get_by_test_id("grant-state")).to_have_attribute("data-state", "approved")
    expect(page.get_by_test_id("grant-application")).to_be_visible()
    history = page.get_by_test_id("grant-history")
    expect(history.locator('[data-action="approve"]')).to_be_visible()
    shot(page, "grant-approved")
