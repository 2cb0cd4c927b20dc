"""A contract signed in a real browser: the buyer's administrator opens the contract from "my
contracts", tries to sign without ticking the confirmation box (refused, nothing signed), ticks
it and signs; the seller's administrator signs too and the contract takes effect, recorded in the
ledger. The console speaks Chinese; the checks read test ids and states."""

from __future__ import annotations

from contracts_support import contract_opener, contract_world
from playwright.sync_api import Page, expect

from datafactor.db import Database, utcnow
from datafactor.settings import Settings


def test_both_parties_sign_after_confirming(
    page: Page, login, db: Database, settings: Settings, shot
) -> None:  # type: ignore[no-untyped-def]
    world = contract_world(db, settings)
    contract_id = contract_opener(world)(now=utcnow())

    login(world.buyer.username, world.buyer.password)
    page.goto("/exchange/contracts")
    row = page.locator(f'[data-testid="contract-row"][data-contract="{contract_id}"]')
    expect(row.get_by_test_id("contract-status")).to_have_attribute("data-status", "accepted")
    row.get_by_test_id("contract-number").click()
    expect(page.get_by_test_id("contract-document")).to_be_visible()
    expect(page.get_by_test_id("contract-pdf")).to_be_visible()

    # Without the confirmation the browser itself does not stop the post: the server refuses.
    page.get_by_test_id("contract-sign-submit").click()
    expect(page.get_by_test_id("contract-error")).to_contain_text("EXC-CONTRACT-SIGN")
    expect(page.locator('[data-testid="contract-signature"][data-role="buyer"]')).to_have_attribute(
        "data-signed", "no"
    )
    page.get_by_test_id("contract-sign-confirm").check()
    page.get_by_test_id("contract-sign-submit").click()
    expect(page.locator('[data-testid="contract-signature"][data-role="buyer"]')).to_have_attribute(
        "data-signed", "yes"
    )
    expect(page.get_by_test_id("signature-valid")).to_have_count(1)
    expect(page.get_by_test_id("contract-sign")).to_have_count(0)
    shot(page, "contract-buyer-signed")

    page.context.clear_cookies()  # the seller next, in the same browser: drop the buyer's session
    login(world.seller.username, world.seller.password)
    page.goto(f"/exchange/contracts/{contract_id}")
    page.get_by_test_id("contract-sign-confirm").check()
    page.get_by_test_id("contract-sign-submit").click()
    expect(page.get_by_test_id("contract-status")).to_have_attribute("data-status", "active")
    expect(page.get_by_test_id("signature-valid")).to_have_count(2)
    expect(page.get_by_test_id("contract-ledger")).to_contain_text("#")
    shot(page, "contract-active")
