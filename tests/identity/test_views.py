"""The web console over HTTP: login with CSRF, cookies, language, forms and error pages."""

from __future__ import annotations

import re

from factories import PASSWORD, csrf_of, make_actor

from datafactor.identity import PartyKind
from datafactor.identity.codes import make_uscc


def web_login(client, actor, password=PASSWORD):
    page = client.get("/login")
    return client.post(
        "/login",
        data={
            "username": actor.username,
            "password": password,
            "csrf_token": csrf_of(page.text),
            "next": "/",
        },
        follow_redirects=False,
    )


def test_dashboard_requires_login(client):
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login"
    r = client.get("/users", follow_redirects=False)
    assert r.headers["location"] == "/login?next=/users"


def test_login_sets_a_safe_cookie_and_shows_the_dashboard(client, enterprise):
    r = web_login(client, enterprise)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "df_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie.replace("Lax", "lax")
    page = client.get("/")
    assert page.status_code == 200
    assert 'lang="zh-CN"' in page.text
    assert 'data-testid="dashboard-title"' in page.text


def test_login_without_csrf_token_is_refused(client, enterprise):
    client.get("/login")
    r = client.post("/login", data={"username": enterprise.username, "password": PASSWORD})
    assert r.status_code == 403
    client.cookies.clear()
    r = client.post(
        "/login",
        data={"username": enterprise.username, "password": PASSWORD, "csrf_token": "forged"},
    )
    assert r.status_code == 403


def test_wrong_password_shows_the_error_in_chinese_then_english(client, enterprise):
    r = web_login(client, enterprise, "not-the-password")
    assert r.status_code == 400
    assert 'data-testid="error"' in r.text
    assert "Wrong username or password" not in r.text  # zh-CN by default
    client.cookies.set("df_lang", "en")
    r = web_login(client, enterprise, "not-the-password")
    assert "Wrong username or password." in r.text


def test_language_switch_sets_cookie_and_rejects_open_redirects(client, enterprise):
    web_login(client, enterprise)
    r = client.get("/lang/en?next=/parties", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/parties")
    assert "df_lang=en" in r.headers["set-cookie"]
    page = client.get("/")
    assert 'lang="en"' in page.text and "Dashboard" in page.text
    r = client.get("/lang/en?next=//evil.example", follow_redirects=False)
    assert r.headers["location"] == "/"


def test_logout_ends_the_session_server_side(client, enterprise):
    web_login(client, enterprise)
    session_cookie = client.cookies.get("df_session")
    page = client.get("/")
    r = client.post("/logout", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert r.headers["location"] == "/login"
    client.cookies.set("df_session", session_cookie)  # replaying the old cookie opens nothing
    assert client.get("/", follow_redirects=False).status_code == 303


def test_logged_in_form_needs_the_session_csrf_token(client, enterprise):
    web_login(client, enterprise)
    r = client.post(
        "/users",
        data={"username": "x.y", "password": PASSWORD, "roles": "staff", "csrf_token": "wrong"},
    )
    assert r.status_code == 403


def test_apply_form_reports_the_wrong_character_and_keeps_input(client):
    page = client.get("/apply")
    code = make_uscc("9", "1", "450100", "WB000001")
    wrong = code[:17] + ("1" if code[17] != "1" else "2")
    form = {
        "csrf_token": csrf_of(page.text),
        "kind": "enterprise",
        "name": "网页申请公司",
        "code": wrong,
        "admin_username": "web.admin",
        "admin_password": PASSWORD,
    }
    r = client.post("/apply", data=form)
    assert r.status_code == 400
    error = re.search(r'data-testid="error">([^<]+)<', r.text).group(1)
    assert "18" in error and code[17] in error  # names the position and the right character
    assert 'value="网页申请公司"' in r.text
    assert PASSWORD not in r.text  # the password is never echoed back
    r = client.post("/apply", data={**form, "code": code})
    assert r.status_code == 200
    assert 'data-testid="applied"' in r.text


def test_operator_reviews_in_the_console(client, db, operator):
    pending = make_actor(db, PartyKind.ENTERPRISE, verified=False)
    web_login(client, operator)
    page = client.get(f"/parties/{pending.party_id}")
    assert 'data-testid="review-form"' in page.text
    r = client.post(
        f"/parties/{pending.party_id}/review",
        data={"csrf_token": csrf_of(page.text), "decision": "reject", "reason": ""},
    )
    assert r.status_code == 400 and 'data-testid="error"' in r.text
    r = client.post(
        f"/parties/{pending.party_id}/review",
        data={"csrf_token": csrf_of(page.text), "decision": "approve"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert 'class="badge verified"' in client.get(f"/parties/{pending.party_id}").text


def test_parties_filter_returns_an_htmx_partial(client, regulator, db):
    make_actor(db, PartyKind.DATA_MERCHANT, name="筛选数商")
    web_login(client, regulator)
    full = client.get("/parties?kind=data_merchant")
    assert "<html" in full.text and "筛选数商" in full.text
    partial = client.get("/parties?kind=data_merchant", headers={"HX-Request": "true"})
    assert "<html" not in partial.text and "筛选数商" in partial.text


def test_other_tenants_pages_are_not_found(client, enterprise, other_enterprise):
    web_login(client, enterprise)
    r = client.get(f"/parties/{other_enterprise.party_id}")
    assert r.status_code == 404
    assert "404" in r.text and "<html" in r.text


def test_error_pages_in_both_languages(client):
    zh = client.get("/no/such/page")
    assert zh.status_code == 404 and 'lang="zh-CN"' in zh.text
    client.cookies.set("df_lang", "en")
    en = client.get("/no/such/page")
    assert en.status_code == 404 and "Not found" in en.text


def test_tokens_page_shows_the_secret_once(client, enterprise):
    web_login(client, enterprise)
    page = client.get("/tokens")
    r = client.post(
        "/tokens",
        data={
            "csrf_token": csrf_of(page.text),
            "name": "nightly",
            "expires_in_days": "7",
            "scopes": "identity:party:read",
        },
    )
    secret = re.search(r'data-testid="token-secret">(dft_[^<]+)<', r.text).group(1)
    assert secret not in client.get("/tokens").text


def test_security_headers(client):
    r = client.get("/login")
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-request-id"]


def test_unknown_query_parameter_on_a_page_gets_a_message(client, regulator):
    web_login(client, regulator)
    r = client.get("/parties?sttus=pending")
    assert r.status_code == 400
    assert "sttus" in r.text and "<html" in r.text
