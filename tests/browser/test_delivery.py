"""Delivery in a real browser: the buyer opens its contract, the delivery panel loads into the
page, it declares a purpose, takes a download link and downloads the file — fingerprinted, the
field the policy forbids left out — and finds the delivery in the panel's log. The checks read
test ids and the file, which do not depend on the catalogue."""

from __future__ import annotations

from delivery_support import BANNED, delivery_world
from playwright.sync_api import Page, expect

from datafactor.db import Database
from datafactor.settings import Settings


def test_the_buyer_downloads_through_the_panel(
    page: Page, login, db: Database, settings: Settings, shot
) -> None:  # type: ignore[no-untyped-def]
    world = delivery_world(db, settings, buyers=1)
    buyer = world.buyers[0]
    login(buyer.username, buyer.password)
    page.goto(f"/exchange/contracts/{world.contract_of(buyer)}")
    panel = page.get_by_test_id("delivery-panel")
    expect(panel).to_be_visible()  # loaded into the contract page by HTMX

    page.get_by_test_id("delivery-purpose-download").select_option("research")
    page.get_by_test_id("delivery-take-download-submit").click()
    link = page.get_by_test_id("delivery-download-link")
    expect(link).to_be_visible()
    shot(page, "delivery-panel-link")

    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename.endswith(".csv")
    text = download.path().read_text(encoding="utf-8-sig")
    first, header = text.splitlines()[:2]
    assert first.startswith("# DataFactor") and "mark=" in first
    assert BANNED not in header

    page.reload()
    expect(page.get_by_test_id("delivery-panel")).to_be_visible()
    rows = page.get_by_test_id("delivery-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-decision", "allowed")
    expect(page.get_by_test_id("delivery-mark")).to_have_text(first.split("mark=")[1].split()[0])
    shot(page, "delivery-panel-log")
