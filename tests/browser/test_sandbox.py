"""The sandbox in a real browser (隐私计算沙箱): the grantee finds its grant from the navigation,
opens the SQL editor, previews the cost, runs an aggregate query and reads the result table — the
small county suppressed, the output note in Chinese —, then switches to English and reads the
same result on the query's record. The checks read test ids, data attributes and the reasons'
texts (carried in both languages by the services), not the catalogue."""

from __future__ import annotations

import re

from factories import make_actor
from playwright.sync_api import Page, expect
from sandbox_support import COUNTIES, SMALL_COUNTY, offer_world

from datafactor.db import Database
from datafactor.identity import PartyKind
from datafactor.settings import Settings

CJK = re.compile(r"[\u4e00-\u9fff]")
SQL = "SELECT county, COUNT(*) AS households\nFROM households\nGROUP BY county\nORDER BY county"


def test_the_grantee_previews_and_runs_a_query(
    page: Page, login, db: Database, settings: Settings, tmp_path, shot
) -> None:  # type: ignore[no-untyped-def]
    holder = make_actor(db, PartyKind.ENTERPRISE, username="gx.grid", name="广西电网数据公司")
    bank = make_actor(db, PartyKind.ENTERPRISE, username="bank.admin", name="北部湾银行")
    registrar = make_actor(db, PartyKind.EXCHANGE_OPERATOR, username="bbg.registrar")
    world = offer_world(db, settings, tmp_path, holder, bank, registrar, k=5)

    login("bank.admin")
    page.get_by_test_id("nav-sandbox").click()
    expect(page).to_have_url("/sandbox")
    grant = page.locator(f'[data-testid="sandbox-grant"][data-grant="{world.grant_id}"]')
    expect(grant.locator('[data-column="account"]')).to_have_attribute("data-role", "privacy_unit")
    expect(grant.locator('[data-column="kwh"]')).to_have_attribute("data-role", "measure")
    grant.get_by_test_id("sandbox-open-editor").click()
    expect(page).to_have_url(f"/sandbox/grants/{world.grant_id}")

    editor = page.get_by_test_id("sandbox-sql")
    expect(editor).to_have_css("font-family", re.compile("monospace"))
    editor.fill(SQL)
    page.get_by_test_id("sandbox-preview").click()
    preview = page.get_by_test_id("sandbox-preview-result")
    expect(preview).to_have_attribute("data-decision", "allowed")
    expect(page.get_by_test_id("sandbox-preview-column")).to_have_text(["county", "households"])
    expect(page.get_by_test_id("sandbox-sql")).to_have_value(SQL)
    shot(page, "sandbox-preview")

    page.get_by_test_id("sandbox-run").click()
    answer = page.get_by_test_id("sandbox-answer")
    expect(answer).to_have_attribute("data-state", "released")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    rows = page.get_by_test_id("sandbox-result-row")
    expect(rows).to_have_count(len(COUNTIES))
    expect(rows.first.locator("td")).to_have_text([COUNTIES[0], "20"])
    expect(page.get_by_test_id("sandbox-result")).not_to_contain_text(SMALL_COUNTY)
    note = answer.locator('[data-rule="SBX-OUT-K"]')
    expect(note).to_be_visible()
    assert CJK.search(note.inner_text())  # the output note in Chinese
    shot(page, "sandbox-result-zh")

    # English: the record of the query shows the same table, the note in English.
    answer.get_by_test_id("sandbox-answer-link").click()
    page.get_by_test_id("lang-en").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_test_id("sandbox-query-state")).to_have_attribute("data-state", "released")
    expect(page.get_by_test_id("sandbox-result-row")).to_have_count(len(COUNTIES))
    note = page.get_by_test_id("sandbox-query-reasons").locator('[data-rule="SBX-OUT-K"]')
    expect(note).to_be_visible()
    assert not CJK.search(note.inner_text())
    expect(page.get_by_test_id("nav-sandbox")).to_have_text("Sandbox")
    shot(page, "sandbox-record-en")
