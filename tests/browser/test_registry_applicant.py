"""A registration end to end in a real browser, from upload to certificate, with an objection.

The applicant uploads a data set, declares an asset from its version, goes through the
registration wizard (htmx steps) and reads where the application stands — in Chinese by default,
then in English. A registrar ticks the substantive-review checklist and puts it on public notice;
another enterprise lodges an objection from the notice board; the registrar dismisses it; once the
notice period has passed the registrar closes it and the certificate is issued (page, PDF, ledger
entry); logged out, anyone verifies the certificate number on the public page.

A background ``ScanRunner`` runs beside the live server so the version's discovery scan finishes
(the formal review waits for the grade). The registry's clock is fixed on a working Monday
(``registry_support.TODAY``). Texts are read from the catalogues, so they hold in either language.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from factories import make_actor
from playwright.sync_api import Page, expect
from registry_support import LATER, POWER, TODAY

from datafactor.db import Database
from datafactor.discovery.api import store_of
from datafactor.discovery.jobs import ScanRunner
from datafactor.identity import PartyKind
from datafactor.registry.api import registry_today
from datafactor.settings import Environment, Settings
from datafactor.web.i18n import translations

REGISTRAR = "bbg.registrar"
OBJECTOR = "gx.logistics.admin"


def zh(msgid: str) -> str:
    return str(translations("zh_CN").gettext(msgid))


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
    app.dependency_overrides[registry_today] = lambda: TODAY
    scan_runner = ScanRunner(
        app.state.db, app.state.settings, store_of(app), runner_id="browser-registry"
    ).start()
    try:
        yield scan_runner
    finally:
        scan_runner.stop()
        app.dependency_overrides.pop(registry_today, None)


def test_a_registration_from_upload_to_certificate_with_an_objection(
    page: Page, login, db: Database, app, runner: ScanRunner, tmp_path: Path, shot
) -> None:  # type: ignore[no-untyped-def]
    admin = make_actor(db, PartyKind.ENTERPRISE, username="gx.power.admin")
    registrar = make_actor(db, PartyKind.EXCHANGE_OPERATOR, username=REGISTRAR)
    objector = make_actor(db, PartyKind.ENTERPRISE, username=OBJECTOR)
    login(admin.username, admin.password)

    # A data set with an uploaded version, scanned.
    page.get_by_test_id("nav-datasets").click()
    form = page.get_by_test_id("dataset-form")
    form.locator("[name=name]").fill("南宁供电量")
    form.locator("[name=domain]").select_option("energy")
    page.get_by_test_id("dataset-submit").click()
    csv = tmp_path / "power.csv"
    csv.write_bytes(POWER)
    page.get_by_test_id("upload-file").set_input_files(str(csv))
    page.get_by_test_id("upload-submit").click()
    expect(page).to_have_url(re.compile(r"/scans/[0-9a-f-]{36}$"), timeout=30_000)
    expect(page.get_by_test_id("report-grade")).to_be_visible(timeout=30_000)

    # Declare the asset from that version.
    page.get_by_test_id("nav-registry").click()
    form = page.get_by_test_id("asset-form")
    form.locator("[name=name]").fill("南宁供电量数据")
    form.locator("[name=description]").fill("各站点每日供电量")
    form.locator("[name=source_statement]").fill("本单位计量系统自行采集")
    form.locator("[name=collection_method]").fill("计量系统自动采集")
    form.locator("[name=coverage]").fill("2025-01 至 2025-12")
    form.locator("[name=region]").fill("450100")
    form.locator("[name=volume]").fill("40 行")
    form.locator("[name=field_schema]").fill("日期\n站点\n用电量千瓦时")
    page.get_by_test_id("asset-version").select_option(index=1)
    shot(page, "registry-declare")
    page.get_by_test_id("asset-submit").click()
    expect(page.get_by_test_id("asset-name")).to_have_text("南宁供电量数据")
    expect(page.get_by_test_id("asset-fingerprint")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    expect(page.get_by_test_id("asset-grade")).to_contain_text(zh("General data"))
    expect(page.get_by_test_id("scan-report-link")).to_be_visible()

    # The wizard: the asset is chosen; take the defaults (any purpose and delivery mode, from
    # today, open-ended; standard track), review, submit.
    page.get_by_test_id("register-asset").click()
    wizard = page.get_by_test_id("wizard")
    expect(wizard).to_have_attribute("data-step", "object")
    page.get_by_test_id("wizard-next").click()
    expect(page.get_by_test_id("wizard")).to_have_attribute("data-step", "scope")
    expect(page.get_by_test_id("purposes-any")).to_be_checked()
    page.get_by_test_id("wizard-regions").fill("450000")
    page.get_by_test_id("wizard-next").click()
    expect(page.get_by_test_id("wizard")).to_have_attribute("data-step", "track")
    page.get_by_test_id("wizard-next").click()
    expect(page.get_by_test_id("wizard")).to_have_attribute("data-step", "review")
    expect(page.get_by_test_id("step-review")).to_contain_text("南宁供电量数据")
    expect(page.get_by_test_id("step-review")).to_contain_text("450000")
    shot(page, "registry-wizard-review")
    page.get_by_test_id("wizard-submit").click()

    # The application's page: where it stands and why, in Chinese by default.
    expect(page).to_have_url(re.compile(r"/registry/applications/[0-9a-f-]{36}$"))
    state = page.get_by_test_id("application-state")
    expect(state).to_have_text(zh("Substantive review"))
    expect(page.get_by_test_id("timeline")).to_contain_text(zh("Formal review passed"))
    expect(page.get_by_test_id("application-due")).to_be_visible()
    shot(page, "registry-application-zh")
    page.get_by_test_id("lang-en").click()
    expect(page.get_by_test_id("application-state")).to_have_text("Substantive review")
    expect(page.get_by_test_id("application-title")).to_contain_text("Initial registration")
    shot(page, "registry-application-en")
    application_url = page.url
    application_id = application_url.rsplit("/", 1)[1]

    # The registrar reviews with the checklist and puts it on public notice.
    page.get_by_test_id("logout").click()
    login(registrar.username, registrar.password)
    page.get_by_test_id("nav-registry").click()
    page.get_by_test_id("nav-review-queue").click()
    page.locator(f'[data-testid="queue-row"][data-application="{application_id}"] a').first.click()
    expect(page).to_have_url(application_url)
    checklist = page.get_by_test_id("checklist")
    for box in checklist.locator("input[type=checkbox]").all():
        box.check()
    page.get_by_test_id("act-approve_to_notice").click()
    expect(page.get_by_test_id("application-state")).to_have_text("Public notice")

    # Another enterprise objects from the notice board: first with no grounds (refused, what was
    # typed is kept), then with grounds.
    page.get_by_test_id("logout").click()
    login(objector.username, objector.password)
    page.get_by_test_id("nav-registry").click()
    page.get_by_test_id("nav-notices").click()
    row = page.locator(f'[data-testid="notice-row"][data-application="{application_id}"]')
    expect(row).to_contain_text("南宁供电量数据")
    page.get_by_test_id(f"object-{application_id}").click()
    form = page.get_by_test_id("objection-form")
    form.locator("[name=statement]").fill("该数据由我方物流站点采集，有合同为证")
    page.get_by_test_id("lodge-objection").click()
    expect(page.get_by_test_id("error")).to_contain_text("REG-OBJECTION-GROUNDS")
    form = page.get_by_test_id("objection-form")
    expect(form.locator("[name=statement]")).to_have_value("该数据由我方物流站点采集，有合同为证")
    form.locator("[name=grounds]").first.check()
    form.locator("[name=evidence]").fill("采集合同.pdf")
    page.get_by_test_id("lodge-objection").click()
    expect(page).to_have_url(re.compile(r"/registry/objections/[0-9a-f-]{36}$"))
    expect(page.get_by_test_id("outcome-pending")).to_be_visible()
    shot(page, "registry-objection-lodged")

    # The registrar finds the objection in the queue and dismisses it with reasons.
    page.get_by_test_id("logout").click()
    login(registrar.username, registrar.password)
    page.goto("/registry/queue")
    page.locator(
        f'[data-testid="queue-row"][data-application="{application_id}"] '
        '[data-testid="queue-objection"]'
    ).click()
    expect(page.get_by_test_id("objection-statement")).to_contain_text("物流站点")
    decide = page.get_by_test_id("decide-form")
    decide.locator("[name=substantiated][value=no]").check()
    decide.locator("[name=reason]").fill("异议人未能提供采集该数据的证据")
    page.get_by_test_id("decide").click()
    expect(page.get_by_test_id("objection-outcome")).to_contain_text("异议人未能提供")

    # The notice period passes; the registrar closes the notice and the certificate is issued.
    app.dependency_overrides[registry_today] = lambda: LATER
    page.goto(application_url)
    page.get_by_test_id("act-close_notice").click()
    expect(page.get_by_test_id("application-state")).to_have_text("Registered")
    page.get_by_test_id("certificate-link").click()
    number = page.get_by_test_id("certificate-number").inner_text().strip()
    assert re.fullmatch(r"GX-DR-2026-\d{6}", number)
    expect(page.get_by_test_id("certificate-status")).to_have_attribute("data-status", "active")
    expect(page.get_by_test_id("certificate-status")).to_have_text("Valid")
    expect(page.get_by_test_id("signature-valid")).to_be_visible()
    expect(page.get_by_test_id("ledger-link")).to_be_visible()
    pdf = page.request.get(page.get_by_test_id("pdf-link").get_attribute("href") or "")
    assert pdf.status == 200 and pdf.body().startswith(b"%PDF")
    shot(page, "registry-certificate")

    # The objector was told the outcome in its inbox.
    page.get_by_test_id("logout").click()
    login(objector.username, objector.password)
    page.get_by_test_id("nav-inbox").click()
    expect(page.locator("main")).to_contain_text("dismissed")

    # Logged out, anyone verifies the number.
    page.get_by_test_id("logout").click()
    page.goto("/verify")
    page.get_by_test_id("verify-number").fill(number)
    page.get_by_test_id("verify-submit").click()
    expect(page).to_have_url(f"/verify/{number}")
    expect(page.get_by_test_id("verify-status")).to_have_attribute("data-status", "active")
    expect(page.get_by_test_id("verify-signature")).to_be_visible()
