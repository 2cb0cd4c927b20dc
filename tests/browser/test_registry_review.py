"""The registry's review and public pages in a real browser: a registrar opens the review queue
and finds the application waiting for substantive review; then, logged out, anyone types a
certified certificate number on the public verification page and reads its status and chain of
title (with the lineage graph drawn inline).

Registrations are moved along by the services on a fixed clock (the web clock, ``registry_today``,
is pinned to the same day), as the API tests do.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from factories import make_actor
from playwright.sync_api import Page, expect
from registry_support import LATER, TODAY, initial, new_asset, principal, scanned_version

from datafactor.db import Database
from datafactor.identity import PartyKind
from datafactor.registry import Action
from datafactor.registry import services as registry
from datafactor.registry.api import registry_today
from datafactor.settings import Settings


@pytest.fixture
def pinned(app) -> Iterator[None]:  # type: ignore[no-untyped-def]
    app.dependency_overrides[registry_today] = lambda: LATER
    yield
    app.dependency_overrides.pop(registry_today, None)


def test_registrar_queue_and_public_verification(
    page: Page, login, db: Database, settings: Settings, pinned: None, shot
) -> None:  # type: ignore[no-untyped-def]
    owner = make_actor(db, PartyKind.ENTERPRISE, username="gx.power", name="广西电网数据公司")
    operator = make_actor(db, PartyKind.EXCHANGE_OPERATOR, username="bbg.registrar")
    who, registrar = principal(db, owner), principal(db, operator)
    issuer = registry.issuer_for(settings)
    # One registration certified, one waiting for the registrar's substantive review.
    certified = new_asset(db, who, scanned_version(db, settings, who))
    waiting = new_asset(db, who, scanned_version(db, settings, who), name="柳州供电量数据")
    with db.write() as s:
        first = registry.submit_application(
            s, who, initial(db, certified), issuer=issuer, today=TODAY
        )
        registry.act(s, registrar, first.id, Action.APPROVE_TO_NOTICE, issuer=issuer, today=TODAY)
    with db.write() as s:
        registry.act(s, registrar, first.id, Action.CLOSE_NOTICE, issuer=issuer, today=LATER)
    with db.write() as s:
        second = registry.submit_application(
            s, who, initial(db, waiting), issuer=issuer, today=LATER
        )
        assert second.state == "substantive_review"
        second_id = second.id

    login("bbg.registrar")
    page.get_by_test_id("nav-registry").click()
    page.get_by_test_id("nav-review-queue").click()
    expect(page).to_have_url("/registry/queue")
    row = page.locator(f'[data-testid="queue-row"][data-application="{second_id}"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text("柳州供电量数据")
    # Filtering by state is applied in place (HTMX) and keeps the row.
    page.get_by_test_id("queue-filters").locator("[name=state]").select_option("substantive_review")
    expect(page).to_have_url("/registry/queue?state=substantive_review&type=&track=")
    expect(row).to_be_visible()
    shot(page, "registry-queue")
    page.get_by_test_id("logout").click()

    # Anyone, without logging in, checks the certificate number (typed in lower case).
    page.goto("/verify")
    page.get_by_test_id("verify-number").fill("gx-dr-2026-000001")
    page.get_by_test_id("verify-submit").click()
    expect(page).to_have_url("/verify/GX-DR-2026-000001")
    expect(page.get_by_test_id("verify-status")).to_have_attribute("data-status", "active")
    expect(page.get_by_test_id("verify-validity")).to_contain_text("2029-04-20")
    expect(page.get_by_test_id("chain-of-title").locator("tbody tr")).to_have_count(1)
    expect(page.get_by_test_id("rights-graph").locator("g.node")).to_have_count(1)
    shot(page, "registry-verify")
    # An unknown number says what to do.
    page.get_by_test_id("verify-number").fill("GX-DR-2026-000999")
    page.get_by_test_id("verify-submit").click()
    expect(page.get_by_test_id("error")).to_contain_text("GX-DR-2026-000999")
    expect(page.get_by_test_id("verify-help")).to_be_visible()
