"""The census in a real browser: a department starts a census of its (SQLite) database, watches
the progress reach 100 %, reads the inventory, downloads the Excel workbook, and sees its
figures on the roll-up page.

A background ``CensusRunner`` runs beside the live server (which starts without its lifespan), as
it would in a server process. SQLite sources are allowed for the test
(``DATAFACTOR_SOURCE_ALLOW_SQLITE``). Chinese texts are read from the zh_CN catalogue.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from census_support import ROWS, TABLES, VIEWS, sqlite_department
from factories import make_actor
from openpyxl import load_workbook
from playwright.sync_api import Page, expect

from datafactor.census.jobs import CensusRunner
from datafactor.db import Database
from datafactor.identity import PartyKind
from datafactor.settings import Environment, Settings
from datafactor.web.i18n import TRANSLATIONS_DIR

ZH_PO = TRANSLATIONS_DIR / "zh_CN" / "LC_MESSAGES" / "messages.po"
ALL = len(TABLES) + len(VIEWS)


@cache
def zh(msgid: str) -> str:
    with Path(ZH_PO).open("rb") as f:
        message = read_po(f).get(msgid)
    assert message is not None and message.string, f"zh_CN lacks {msgid!r}"
    return str(message.string)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment=Environment.TEST,
        database_url=db_url,
        var_dir=tmp_path / "var",
        secret_key="test-secret-key-test-secret-key-0123456789",
        source_allow_sqlite=True,
        scan_poll_seconds=0.1,
        scan_heartbeat_seconds=0.2,
    )


@pytest.fixture
def runner(app) -> Iterator[CensusRunner]:  # type: ignore[no-untyped-def]
    census_runner = CensusRunner(
        app.state.db, app.state.settings, runner_id="browser-census"
    ).start()
    try:
        yield census_runner
    finally:
        census_runner.stop()


def test_a_department_takes_its_census(
    page: Page, login, db: Database, runner: CensusRunner, tmp_path: Path, shot
) -> None:  # type: ignore[no-untyped-def]
    admin = make_actor(
        db, PartyKind.GOVERNMENT_DEPARTMENT, username="mz.admin", name="南宁市民政局"
    )
    url = sqlite_department(tmp_path / "minzheng.db")
    login(admin.username, admin.password)

    page.get_by_test_id("nav-census").click()
    form = page.get_by_test_id("census-form")
    form.get_by_test_id("census-url").fill(url)
    form.get_by_test_id("census-sample-rows").fill("100")
    shot(page, "census-form")
    form.get_by_test_id("census-submit").click()

    expect(page).to_have_url(re.compile(r"/census/[0-9a-f-]{36}$"))
    expect(page.get_by_test_id("census-title")).to_contain_text("南宁市民政局")
    expect(page.get_by_test_id("census-source")).to_have_text(url)

    # HTMX polls the progress; when the runner has finished, the page reloads with the inventory.
    expect(page.get_by_test_id("census-status")).to_have_text(zh("Finished"), timeout=30_000)
    expect(page.get_by_test_id("census-bar")).to_have_attribute("value", "100")
    expect(page.get_by_test_id("census-percent")).to_have_text("100%")
    expect(page.get_by_test_id("total-tables")).to_have_text(str(ALL))
    expect(page.get_by_test_id("total-rows")).to_have_text(f"{ROWS:,}")
    residents = page.get_by_test_id("inventory-main.residents")
    expect(residents).to_contain_text("120")
    expect(residents).to_contain_text("cn_resident_id, cn_mobile")
    expect(residents.get_by_test_id("table-sensitive")).to_have_text(zh("Sensitive"))
    expect(page.get_by_test_id("inventory-main.v_resident_city")).to_contain_text(zh("View"))
    shot(page, "census-run")

    with page.expect_download() as download_info:
        page.get_by_test_id("census-export").click()
    download = download_info.value
    assert download.suggested_filename.startswith("census-")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    book = load_workbook(saved)
    rows = list(book["资产清单 Tables"].iter_rows(min_row=2, values_only=True))
    assert [row[3] for row in rows] == [*TABLES, *VIEWS]
    assert all(row[0] == "南宁市民政局" for row in rows)

    page.goto("/census/rollup")
    expect(page.get_by_test_id("province-tables")).to_have_text(str(ALL))
    expect(page.get_by_test_id("chart-rollup")).to_be_visible()
    shot(page, "census-rollup")
