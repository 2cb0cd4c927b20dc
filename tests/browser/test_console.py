"""The console in a real browser: log in and out, language switch, applying to join, review, audit.

Selectors are the ``data-testid`` attributes of the templates (plus form field names inside a
``data-testid`` form). Chinese texts are not hard-coded: they are read from the zh_CN catalog, so a
wording change there does not break these tests, while a missing translation of a checked text does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po
from factories import PASSWORD, make_actor
from playwright.sync_api import Page, expect
from sqlalchemy import text

from datafactor.db import Database
from datafactor.identity import PartyApplication, PartyKind, apply_for_party
from datafactor.identity.codes import USCC_ALPHABET, make_uscc
from datafactor.web.i18n import TRANSLATIONS_DIR

Shot = Callable[[Page, str], None]  # the ``shot`` fixture

ZH_PO = TRANSLATIONS_DIR / "zh_CN" / "LC_MESSAGES" / "messages.po"
VALID_USCC = make_uscc("9", "1", "450100", "AB123456")
APPLICANT = "guangxi.admin"
APPLICANT_PARTY = "广西数聚科技有限公司"


@cache
def zh(msgid: str) -> str | None:
    """The Simplified Chinese text of ``msgid``; None only while there is no zh_CN catalog at all."""
    if not ZH_PO.exists():
        return None
    with Path(ZH_PO).open("rb") as f:
        message = read_po(f).get(msgid)
    translated = message.string if message is not None else None
    assert isinstance(translated, str), f"zh_CN catalog lacks a translation of {msgid!r}"
    assert translated, f"zh_CN catalog lacks a translation of {msgid!r}"
    return translated


def fill_application(page: Page, code: str, password: str) -> None:
    form = page.get_by_test_id("apply-form")
    form.locator("[name=kind]").select_option("enterprise")
    form.locator("[name=name]").fill(APPLICANT_PARTY)
    form.locator("[name=name_en]").fill("Guangxi Shuju Technology Co., Ltd.")
    page.get_by_test_id("code").fill(code)
    form.locator("[name=admin_username]").fill(APPLICANT)
    form.locator("[name=admin_display_name]").fill("李华")
    form.locator("[name=admin_password]").fill(password)
    page.get_by_test_id("apply-submit").click()


def count(db: Database, sql: str, **params: object) -> int:
    with db.read() as session:
        return int(session.execute(text(sql), params).scalar_one())


def open_ok(page: Page, path: str) -> None:
    """Go to ``path`` and fail at once (not after a selector timeout) if it does not answer 2xx."""
    response = page.goto(path)
    assert response is not None, path
    assert response.ok, f"{path} answered {response.status}"


def path_is(path: str) -> re.Pattern[str]:
    return re.compile(r"^https?://[^/]+" + re.escape(path) + r"$")


# -------------------------------------------------------------------------------------- (a)


def test_login_switch_language_and_logout(page: Page, login, db: Database, shot: Shot) -> None:
    admin = make_actor(db, PartyKind.ENTERPRISE, username="acme.admin")
    login(admin.username, admin.password)

    expect(page).to_have_url(path_is("/"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    title = page.get_by_test_id("dashboard-title")
    expect(title).to_be_visible()
    if heading := zh("Dashboard"):
        expect(title).to_have_text(heading)
    expect(page.get_by_test_id("who")).to_contain_text("测试主体")
    shot(page, "dashboard-zh")

    page.get_by_test_id("lang-en").click()
    expect(page).to_have_url(path_is("/"))
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(title).to_have_text("Dashboard")
    shot(page, "dashboard-en")

    page.get_by_test_id("logout").click()
    expect(page).to_have_url(path_is("/login"))
    expect(page.get_by_test_id("login-form")).to_be_visible()
    expect(page.get_by_test_id("logout")).to_have_count(0)

    page.goto("/")  # the session is gone: the dashboard sends us to log in
    expect(page).to_have_url(path_is("/login"))
    expect(page.get_by_test_id("login-form")).to_be_visible()

    page.get_by_test_id("lang-zh_CN").click()  # and back to Chinese
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")


# -------------------------------------------------------------------------------------- (b)


def test_wrong_password_shows_error_and_stays_on_login(page: Page, login, db: Database) -> None:
    admin = make_actor(db, PartyKind.ENTERPRISE, username="acme.admin")
    login(admin.username, admin.password + "x")

    expect(page.get_by_test_id("error")).to_be_visible()
    expect(page).to_have_url(path_is("/login"))
    expect(page.get_by_test_id("login-form")).to_be_visible()
    expect(page.get_by_test_id("login-form").locator("[name=username]")).to_have_value(
        admin.username
    )
    expect(page.get_by_test_id("dashboard-title")).to_have_count(0)

    page.goto("/")
    expect(page).to_have_url(path_is("/login"))


# -------------------------------------------------------------------------------------- (c)


def test_apply_names_the_wrong_check_character_then_accepts_a_valid_code(
    page: Page,
    db: Database,
    shot: Shot,
) -> None:
    expected = VALID_USCC[-1]
    wrong = next(c for c in "WYUTRQ" if c != expected)
    assert wrong in USCC_ALPHABET
    page.goto("/apply")
    fill_application(page, VALID_USCC[:-1] + wrong, PASSWORD)

    error = page.get_by_test_id("error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("18")
    expect(error).to_contain_text(wrong)
    expect(error).to_contain_text(expected)
    expect(page.get_by_test_id("code")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_test_id("applied")).to_have_count(0)
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    shot(page, "apply-error-zh")
    assert count(db, "SELECT count(*) FROM party WHERE name = :n", n=APPLICANT_PARTY) == 0
    assert count(db, "SELECT count(*) FROM user_account WHERE username = :u", u=APPLICANT) == 0
    assert count(db, "SELECT count(*) FROM audit_event WHERE action = 'identity:party:apply'") == 0

    # What was typed survives the error, except the password.
    form = page.get_by_test_id("apply-form")
    expect(form.locator("[name=name]")).to_have_value(APPLICANT_PARTY)
    expect(form.locator("[name=admin_password]")).to_have_value("")

    fill_application(page, VALID_USCC, PASSWORD)
    applied = page.get_by_test_id("applied")
    expect(applied).to_be_visible()
    if heading := zh("Application received"):
        expect(applied.locator("h2")).to_have_text(heading)
    expect(applied).to_contain_text(APPLICANT)
    assert (
        count(db, "SELECT count(*) FROM party WHERE code = :c AND status = 'pending'", c=VALID_USCC)
        == 1
    )


# -------------------------------------------------------------------------------------- (d)


def _pending_party(db: Database) -> str:
    with db.write() as session:
        party = apply_for_party(
            session,
            PartyApplication(
                kind=PartyKind.ENTERPRISE, name=APPLICANT_PARTY, name_en="", code=VALID_USCC
            ),
            admin_username=APPLICANT,
            admin_display_name="李华",
            admin_password=PASSWORD,
            today=date(2026, 11, 2),
        )
        return party.id


def test_operator_rejects_without_reason_then_verifies(page: Page, login, db: Database) -> None:
    operator = make_actor(db, PartyKind.EXCHANGE_OPERATOR, username="exchange.admin")
    party_id = _pending_party(db)
    login(operator.username, operator.password)
    expect(page.get_by_test_id("dashboard-title")).to_be_visible()

    open_ok(page, "/parties")
    page.get_by_test_id("parties-table").get_by_role("link", name=APPLICANT_PARTY).click()
    expect(page).to_have_url(path_is(f"/parties/{party_id}"))
    status = page.get_by_test_id("party-status")
    expect(status).to_have_class(re.compile(r"\bpending\b"))

    page.get_by_test_id("reject").click()
    expect(page.get_by_test_id("error")).to_be_visible()
    expect(status).to_have_class(re.compile(r"\bpending\b"))
    assert (
        count(db, "SELECT count(*) FROM party WHERE id = :i AND status = 'pending'", i=party_id)
        == 1
    )

    page.get_by_test_id("approve").click()
    expect(page).to_have_url(path_is(f"/parties/{party_id}"))
    expect(page.get_by_test_id("error")).to_have_count(0)
    expect(status).to_have_class(re.compile(r"\bverified\b"))
    expect(status).to_have_text(zh("Verified") or "Verified")
    expect(page.get_by_test_id("review-form")).to_have_count(0)
    assert (
        count(db, "SELECT count(*) FROM party WHERE id = :i AND status = 'verified'", i=party_id)
        == 1
    )


# -------------------------------------------------------------------------------------- (e)


def test_audit_page_lists_the_application_login_and_review(page: Page, login, db: Database) -> None:
    operator = make_actor(db, PartyKind.EXCHANGE_OPERATOR, username="exchange.admin")
    page.goto("/apply")
    fill_application(page, VALID_USCC, PASSWORD)
    expect(page.get_by_test_id("applied")).to_be_visible()

    login(operator.username, operator.password)
    open_ok(page, "/parties?status=pending")
    page.get_by_test_id("parties-table").get_by_role("link", name=APPLICANT_PARTY).click()
    page.get_by_test_id("reject").click()  # no reason: refused, so not recorded
    expect(page.get_by_test_id("error")).to_be_visible()
    page.get_by_test_id("approve").click()
    expect(page.get_by_test_id("party-status")).to_have_class(re.compile(r"\bverified\b"))

    page.goto("/audit")
    rows = page.get_by_test_id("audit-event")
    applied = rows.filter(has_text="identity:party:apply")
    expect(applied).to_have_count(1)
    expect(applied).to_contain_text(APPLICANT)
    expect(applied).to_contain_text(APPLICANT_PARTY)
    logged_in = rows.filter(has_text="identity:user:login").filter(has_text=operator.username)
    expect(logged_in).to_have_count(1)
    # (make_actor's own party was registered as verified too: pick the applicant's row)
    verified = rows.filter(has_text="identity:party:verify").filter(has_text=APPLICANT_PARTY)
    expect(verified).to_have_count(1)
    expect(verified).to_contain_text(operator.username)
    expect(rows.filter(has_text="identity:party:reject")).to_have_count(0)

    # The filter swaps the table in place (HTMX) and keeps the URL shareable.
    page.locator("input[name=action]").fill("identity:party")
    page.locator("input[name=action]").press("Enter")
    party_events = count(
        db, "SELECT count(*) FROM audit_event WHERE action LIKE 'identity:party:%'"
    )
    assert party_events >= 3  # the operator's registration, the application, the verification
    expect(rows).to_have_count(party_events)
    expect(rows.filter(has_text="identity:user:login")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"/audit\?.*action=identity%3Aparty"))
    expect(page.get_by_test_id("audit-total")).to_contain_text(str(party_events))
