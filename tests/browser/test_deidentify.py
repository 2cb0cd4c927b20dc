"""De-identification in a real browser: from a scanned version, preview what a starter profile
does to each column (an HTMX partial), see a bad policy refused with its column named, run the
profile, watch the job's progress and open the new version with its lineage.

The data set and its scanned version are made through the services (uploading is
``test_discovery_upload.py``'s subject); a background ``ScanRunner`` runs the scan and the
de-identification beside the live server, as in a server process.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import date
from functools import cache
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from factories import make_actor
from playwright.sync_api import Page, expect

from datafactor import dataplane
from datafactor.db import Database
from datafactor.discovery import services
from datafactor.discovery.api import store_of
from datafactor.discovery.jobs import ScanRunner
from datafactor.identity import PartyKind
from datafactor.identity.codes import make_resident_id
from datafactor.identity.models import Party, User
from datafactor.identity.services import principal_for
from datafactor.settings import Environment, Settings
from datafactor.web.i18n import TRANSLATIONS_DIR

ZH_PO = TRANSLATIONS_DIR / "zh_CN" / "LC_MESSAGES" / "messages.po"
NAMES = ["王伟", "李娜", "张敏", "刘洋", "陈静", "杨磊", "黄艳", "赵军", "吴勇", "周杰"]


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
        scan_poll_seconds=0.1,
        scan_heartbeat_seconds=0.2,
    )


@pytest.fixture
def runner(app) -> Iterator[ScanRunner]:  # type: ignore[no-untyped-def]
    scan_runner = ScanRunner(
        app.state.db, app.state.settings, store_of(app), runner_id="browser-deid"
    ).start()
    try:
        yield scan_runner
    finally:
        scan_runner.stop()


def residents_csv(rows: int = 400) -> bytes:
    lines = ["姓名,身份证号,手机号,城市"]
    for i in range(rows):
        born = date(1960 + i % 40, 1 + i % 12, 1 + i % 28)
        lines.append(
            f"{NAMES[i % 10]},{make_resident_id('450102', born, i % 1000)},139{i:08d},南宁"
        )
    return ("\n".join(lines) + "\n").encode()


def test_deidentify_a_version_in_the_console(
    page: Page, login, app, db: Database, runner: ScanRunner, shot
) -> None:  # type: ignore[no-untyped-def]
    admin = make_actor(db, PartyKind.ENTERPRISE, username="gx.deid.admin")
    with db.read() as s:
        who = principal_for(s.get(User, admin.user_id), s.get(Party, admin.party_id), via="session")
    store = store_of(app)
    blob = store.put_stream(io.BytesIO(residents_csv()), max_bytes=10**7)
    with db.write() as s:
        dataset = dataplane.create_dataset(
            s, who, dataplane.DatasetDraft(name="南宁市居民信息", domain="public_administration")
        )
        dataset_id = dataset.id
        services.add_file_version(s, who, dataset_id, blob=blob, filename="居民.csv")

    login(admin.username, admin.password)
    page.goto(f"/datasets/{dataset_id}")
    # The runner scans version 1 in the background; its page reloads itself when it is done.
    page.get_by_test_id("scan-link-1").click()
    expect(page.get_by_test_id("report-grade")).to_be_visible(timeout=30_000)
    page.goto(f"/datasets/{dataset_id}")
    page.get_by_test_id("deidentify-1").click()
    expect(page.get_by_test_id("deid-title")).to_have_text(
        zh("De-identify version %(n)d") % {"n": 1}
    )
    expect(page.get_by_test_id("deid-findings")).to_contain_text(zh("Resident ID number"))

    # Preview the "publish" profile: the plan comes in place, without a page load.
    page.get_by_test_id("deid-profile").select_option("publish")
    page.get_by_test_id("deid-preview").click()
    expect(page.get_by_test_id("plan-身份证号")).to_have_attribute("data-technique", "generalise")
    expect(page.get_by_test_id("plan-姓名")).to_have_attribute("data-technique", "drop")
    expect(page.get_by_test_id("plan-手机号")).to_have_attribute("data-technique", "drop")
    shot(page, "deidentify-preview")

    # A policy with a wrong parameter is refused, naming the column and what to fix.
    page.get_by_test_id("deid-mode-policy").check()
    page.get_by_test_id("deid-policy").fill(
        '{"columns": {"手机号": {"technique": "mask", "keep_first": 99}}}'
    )
    page.get_by_test_id("deid-preview").click()
    expect(page.get_by_test_id("plan-error")).to_contain_text("手机号")
    expect(page.get_by_test_id("plan-error")).to_contain_text("keep_first")

    # Back to the profile; run it.
    page.get_by_test_id("deid-mode-profile").check()
    page.get_by_test_id("deid-run").click()
    expect(page).to_have_url(re.compile(r"/deidentifications/[0-9a-f-]{36}$"))
    expect(page.get_by_test_id("deid-job-title")).to_have_text(
        zh("De-identification of version %(n)d") % {"n": 1}
    )
    # HTMX polls the progress; when the job ends the page reloads with the new version.
    expect(page.get_by_test_id("deid-result")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("deid-status")).to_have_text(zh("Finished"))
    expect(page.get_by_test_id("deid-bar")).to_have_attribute("value", "100")
    digest = page.get_by_test_id("job-digest").get_attribute("title")
    assert digest and len(digest) == 64
    shot(page, "deidentify-job")

    page.get_by_test_id("result-version-link").click()
    expect(page.get_by_test_id("version-title")).to_have_text(zh("Version %(n)d") % {"n": 2})
    lineage = page.get_by_test_id("derived-from")
    expect(lineage).to_contain_text(
        zh("Derived from version %(n)d of %(dataset)s by policy %(policy)s")
        % {"n": 1, "dataset": "南宁市居民信息", "policy": "publish"}
    )
    expect(page.get_by_test_id("lineage-digest")).to_have_text(digest[:16])
    expect(page.get_by_test_id("lineage-身份证号")).to_have_attribute(
        "data-technique", "generalise"
    )
    expect(page.get_by_test_id("lineage-姓名")).to_have_attribute("data-technique", "drop")
    shot(page, "deidentify-lineage")

    # The new version's own scan finds no resident ID any more.
    page.get_by_test_id("version-scan-link").click()
    expect(page.get_by_test_id("report-grade")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("column-身份证号")).to_contain_text(zh("Nothing detected"))
