"""Discovery in a real browser: declare a data set, upload a CSV with the progress bar, watch the
scan run, read the report, confirm one detection and dismiss another.

A background ``ScanRunner`` runs beside the live server (which starts without its lifespan), as
it would in a server process. Chinese texts are read from the zh_CN catalogue, as in
``test_console.py``; the progress bar's values are recorded by a small observer script, since the
page moves on to the scan as soon as the upload completes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from functools import cache
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from factories import make_actor
from playwright.sync_api import Page, expect

from datafactor.db import Database
from datafactor.discovery.api import store_of
from datafactor.discovery.jobs import ScanRunner
from datafactor.identity import PartyKind
from datafactor.identity.codes import make_resident_id
from datafactor.settings import Environment, Settings
from datafactor.web.i18n import TRANSLATIONS_DIR

ZH_PO = TRANSLATIONS_DIR / "zh_CN" / "LC_MESSAGES" / "messages.po"

# Records every value and phase the upload progress bar shows, across the page change.
RECORD_PROGRESS = """
document.addEventListener("DOMContentLoaded", () => {
  const bar = document.getElementById("upload-progress");
  if (!bar) return;
  new MutationObserver(() => {
    const seen = JSON.parse(sessionStorage.getItem("progress") || "[]");
    seen.push([Number(bar.value), bar.dataset.phase || "", bar.hidden]);
    sessionStorage.setItem("progress", JSON.stringify(seen));
  }).observe(bar, { attributes: true });
});
"""


@cache
def zh(msgid: str) -> str:
    with Path(ZH_PO).open("rb") as f:
        message = read_po(f).get(msgid)
    assert message is not None and message.string, f"zh_CN lacks {msgid!r}"
    return str(message.string)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """The suite's settings, with small chunks (so the bar moves) and a quick scan runner."""
    return Settings(
        environment=Environment.TEST,
        database_url=db_url,
        var_dir=tmp_path / "var",
        secret_key="test-secret-key-test-secret-key-0123456789",
        upload_chunk_max_bytes=64 * 1024,
        scan_poll_seconds=0.1,
        scan_heartbeat_seconds=0.2,
    )


@pytest.fixture
def runner(app) -> Iterator[ScanRunner]:  # type: ignore[no-untyped-def]
    scan_runner = ScanRunner(
        app.state.db, app.state.settings, store_of(app), runner_id="browser-test"
    ).start()
    try:
        yield scan_runner
    finally:
        scan_runner.stop()


def people_csv(path: Path, rows: int = 6000) -> Path:
    lines = ["姓名,身份证号,手机号,城市,备注"]
    for i in range(rows):
        born = date(1960 + i % 40, 1 + i % 12, 1 + i % 28)
        lines.append(
            f"居民{i},{make_resident_id('450102', born, i % 1000)},139{i:08d},南宁,第{i}条记录"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_upload_scan_report_and_review(
    page: Page, login, db: Database, runner: ScanRunner, tmp_path: Path, shot
) -> None:  # type: ignore[no-untyped-def]
    admin = make_actor(db, PartyKind.ENTERPRISE, username="gx.data.admin")
    page.context.add_init_script(RECORD_PROGRESS)
    login(admin.username, admin.password)

    page.get_by_test_id("nav-datasets").click()
    form = page.get_by_test_id("dataset-form")
    form.locator("[name=name]").fill("南宁市常住人口信息")
    form.locator("[name=domain]").select_option("public_administration")
    form.locator("[name=update_frequency]").select_option("monthly")
    page.get_by_test_id("dataset-submit").click()
    expect(page.get_by_test_id("dataset-name")).to_have_text("南宁市常住人口信息")

    csv = people_csv(tmp_path / "常住人口.csv")
    assert csv.stat().st_size > 4 * 64 * 1024  # several chunks
    page.get_by_test_id("upload-file").set_input_files(str(csv))
    shot(page, "discovery-upload-chosen")
    page.get_by_test_id("upload-submit").click()

    # The upload finishes and the page moves to the scan of version 1.
    expect(page).to_have_url(re.compile(r"/scans/[0-9a-f-]{36}$"), timeout=30_000)
    seen = json.loads(page.evaluate("sessionStorage.getItem('progress') || '[]'"))
    uploading = [value for value, phase, _hidden in seen if phase == "uploading"]
    assert uploading, seen
    assert uploading == sorted(uploading)  # the bar only moves forward
    assert len(set(uploading)) >= 3  # and it moved in steps, chunk by chunk
    assert seen[-1][:2] == [100, "done"], seen
    expect(page.get_by_test_id("scan-title")).to_have_text(zh("Scan of version %(n)d") % {"n": 1})

    # HTMX polls the progress; when the runner has finished, the page reloads with the report.
    expect(page.get_by_test_id("report-grade")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("scan-status")).to_have_text(zh("Finished"))
    expect(page.get_by_test_id("scan-bar")).to_have_attribute("value", "100")
    expect(page.get_by_test_id("chart-match-ratio")).to_be_visible()
    resident = page.get_by_test_id("detection-身份证号-cn_resident_id")
    expect(resident).to_be_visible()
    expect(resident).to_contain_text(zh("Resident ID number"))
    expect(resident.get_by_test_id("sensitive-flag")).to_have_text(zh("Sensitive"))
    expect(page.get_by_test_id("distinct-individuals")).not_to_have_text("—")
    shot(page, "discovery-report")

    # Confirm the resident-ID detection.
    resident.get_by_test_id("confirm").click()
    resident = page.get_by_test_id("detection-身份证号-cn_resident_id")
    expect(resident.get_by_test_id("review-state")).to_contain_text(zh("Confirmed"))
    expect(resident.get_by_test_id("review-state")).to_contain_text(admin.username)

    # Dismiss the mobile-number detection: a note is required, then it no longer counts.
    mobile = page.get_by_test_id("detection-手机号-cn_mobile")
    mobile.get_by_test_id("dismiss").click()
    expect(page.get_by_test_id("error")).to_contain_text(
        zh("Say why the detection is wrong (a note is required to dismiss).")
    )
    mobile = page.get_by_test_id("detection-手机号-cn_mobile")
    mobile.locator("[name=note]").fill("该列为工单编号，不是手机号")
    mobile.get_by_test_id("dismiss").click()
    mobile = page.get_by_test_id("detection-手机号-cn_mobile")
    state = mobile.get_by_test_id("review-state")
    expect(state).to_contain_text(zh("Dismissed"))
    expect(state).to_contain_text("该列为工单编号")
    expect(mobile.locator("s").first).to_be_visible()  # struck through
    shot(page, "discovery-reviewed")

    # The data set's page lists both decisions, kept for later versions.
    page.goto(page.url.rsplit("/scans/", 1)[0] + "/datasets")
    page.get_by_role("link", name="南宁市常住人口信息").click()
    reviews = page.get_by_test_id("reviews-table")
    expect(reviews).to_contain_text(zh("Confirmed"))
    expect(reviews).to_contain_text(zh("Dismissed"))
