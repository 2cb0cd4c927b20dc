"""The authorisation pages: the list, the request form (from a certificate number, with the
policy form editor), one grant in plain language, the grantor's decision, refusals shown on
the page, Chinese by default and English on request."""

from __future__ import annotations

import pytest
from factories import console_login
from grants_support import certify_licence, registered_asset
from registry_support import principal
from sqlalchemy import select

from datafactor.db import today_cn
from datafactor.registry import services as registry
from datafactor.registry.models import RegistryCertificate


@pytest.fixture
def issuer(settings):
    return registry.issuer_for(settings)


@pytest.fixture
def world(db, settings, issuer, enterprise, operator):
    holder, registrar = principal(db, enterprise), principal(db, operator)
    asset_id, right_id, _ = registered_asset(db, settings, holder, registrar, issuer)
    with db.read() as s:
        number = s.scalar(
            select(RegistryCertificate.number).where(RegistryCertificate.right_id == right_id)
        )
    return {"asset": asset_id, "certificate": number, "holder": holder, "registrar": registrar}


def form(csrf, certificate, **kw):
    data = {
        "csrf_token": csrf,
        "data": certificate,
        "term_start": today_cn().isoformat(),  # a new grant starts today or later
        "term_end": "2027-03-01",
        "purposes": "industry",
        "channels": "api",
        "regions": "CN-GX",
        "max_uses": "10",
        "prohibit_download": "1",
        "purpose_note": "产品开发",
    }
    data.update(kw)
    return data


def test_request_decide_and_read_a_grant(client, db, issuer, world, enterprise, other_enterprise):
    assert client.get("/grants", follow_redirects=False).status_code == 303  # login first
    csrf = console_login(client, other_enterprise, "/grants", "en")
    page = client.get("/grants/new")
    assert page.status_code == 200 and 'data-testid="grant-form"' in page.text
    # Beyond the holder's regions: refused on the page, with the rule, what was typed kept.
    r = client.post("/grants/new", data=form(csrf, world["certificate"], regions="CN"))
    assert r.status_code == 422
    assert "GRT-SCOPE-WITHIN" in r.text and world["certificate"] in r.text
    # An unknown certificate number says what to type.
    r = client.post("/grants/new", data=form(csrf, "GX-DR-2026-999999"))
    assert r.status_code == 422 and "registration certificate number" in r.text
    r = client.post("/grants/new", data=form(csrf, world["certificate"]), follow_redirects=False)
    assert r.status_code == 303, r.text
    url = r.headers["location"]
    page = client.get(url).text
    assert 'data-state="requested"' in page and "withdraw" in page
    assert "Permitted: use for industry development, delivered by API" in page
    mine = client.get("/grants?role=grantee").text
    assert mine.count('data-testid="grant-row"') == 1

    csrf = console_login(client, enterprise, "/grants", "en")
    listed = client.get("/grants").text
    assert 'data-testid="grant-row" data-state="requested"' in listed
    page = client.get(url).text
    assert 'data-testid="grant-approve"' in page
    # Refusing needs a reason.
    r = client.post(f"{url}/decision", data={"csrf_token": csrf, "approve": "no", "reason": ""})
    assert r.status_code == 422 and "Give a reason" in r.text
    # A missing CSRF token is refused.
    assert client.post(f"{url}/decision", data={"approve": "yes"}).status_code in (400, 403)
    r = client.post(
        f"{url}/decision", data={"csrf_token": csrf, "approve": "yes"}, follow_redirects=False
    )
    assert r.status_code == 303
    page = client.get(url).text
    assert 'data-state="approved"' in page and 'data-testid="grant-application"' in page
    grant_id = url.rsplit("/", 1)[1]
    certify_licence(db, world["registrar"], world["holder"], grant_id, issuer, world_day(db))
    page = client.get(url).text
    assert 'data-state="active"' in page and 'data-testid="grant-certificate"' in page
    assert 'data-testid="grant-suspend"' in page
    # Chinese by default.
    client.cookies.set("df_lang", "zh_CN")
    page = client.get(url).text
    assert 'lang="zh-CN"' in page and "允许 使用，使用目的为产业发展" in page


def world_day(db):
    return today_cn()


def test_a_stranger_gets_not_found(client, db, world, other_enterprise):
    console_login(client, other_enterprise, "/grants", "en")
    assert client.get("/grants/00000000-0000-0000-0000-000000000000").status_code == 404
