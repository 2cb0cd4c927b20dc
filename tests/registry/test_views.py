"""The registry's console pages, applicant side, over HTTP on both databases: declaring an asset
(bad input re-rendered, nothing written), the registration wizard step by step, the formal
review's refusal shown with its rule, the application page with its history and the registrar's
and applicant's actions, and another party refused the pages of objects it does not own."""

from __future__ import annotations

import re

import pytest
from factories import console_login
from registry_support import TODAY, new_asset, principal, scanned_version

from datafactor.registry import views
from datafactor.registry.api import registry_today
from datafactor.registry.models import RegistryApplication, RegistryAsset
from datafactor.web.i18n import translations


def zh(msgid: str) -> str:
    """The Chinese of a msgid (its English until the catalogue carries it)."""
    return str(translations("zh_CN").gettext(msgid))


@pytest.fixture
def clock(app):  # type: ignore[no-untyped-def]
    app.dependency_overrides[registry_today] = lambda: TODAY
    yield TODAY
    app.dependency_overrides.pop(registry_today, None)


ASSET_FORM = {
    "kind": "resource",
    "data_class": "enterprise",
    "name": "南宁供电量数据",
    "name_en": "Nanning power supply data",
    "description": "各站点每日供电量",
    "source_statement": "本单位计量系统自行采集",
    "collection_method": "计量系统自动采集",
    "domain": "energy",
    "update_frequency": "daily",
    "coverage": "2025-01 至 2025-12",
    "region": "450100",
    "volume": "40 行",
    "field_schema": "日期\n站点: 供电站编号\n用电量千瓦时",
}


def count(db, model) -> int:  # type: ignore[no-untyped-def]
    with db.read() as s:
        return s.query(model).count()


def declare(client, csrf, version_id, **changes) -> str:  # type: ignore[no-untyped-def]
    data = {"csrf_token": csrf, **ASSET_FORM, "version_id": version_id, **changes}
    r = client.post("/registry/assets", data=data, follow_redirects=False)
    assert r.status_code == 303, r.text
    return str(r.headers["location"].rsplit("/", 1)[1])


def wizard(client, csrf, step, go="next", **fields):  # type: ignore[no-untyped-def]
    return client.post(
        "/registry/apply",
        data={"csrf_token": csrf, "step": step, "go": go, **fields},
        follow_redirects=False,
    )


INITIAL = {
    "type": "initial",
    "purposes_any": "1",
    "delivery_modes": ["api", "sandbox"],
    "regions": "450000",
    "term_start": TODAY.isoformat(),
    "track": "standard",
}


def submit_initial(client, csrf, asset_id) -> str:  # type: ignore[no-untyped-def]
    fields = {**INITIAL, "asset_id": asset_id}
    r = wizard(client, csrf, "review", go="submit", **fields)
    assert r.status_code == 303, r.text
    location = r.headers["location"]
    assert location.startswith("/registry/applications/")
    return str(location.rsplit("/", 1)[1])


def test_pages_need_a_login(client):
    for path in ("/registry/assets", "/registry/apply", "/registry/applications", "/registry/x"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code in (303, 404)
        if r.status_code == 303:
            assert r.headers["location"].startswith("/login")


def test_declare_an_asset_from_a_version(client, db, settings, enterprise, clock):
    version_id = scanned_version(db, settings, principal(db, enterprise))
    csrf = console_login(client, enterprise, "/registry/assets")
    page = client.get("/registry/assets")
    assert 'data-testid="asset-form"' in page.text
    assert 'data-testid="nav-registry"' in page.text
    assert f'value="{version_id}"' in page.text  # the version is offered
    assert 'href="/datasets"' in page.text  # and the way to upload a new one
    assert (
        "第三十三条" in page.text
    )  # the source statement's help names the Data Security Law article

    # No source statement: the form comes back with the message, nothing is written.
    bad = client.post(
        "/registry/assets",
        data={"csrf_token": csrf, **ASSET_FORM, "source_statement": " ", "version_id": version_id},
        follow_redirects=False,
    )
    assert bad.status_code == 422
    assert 'data-testid="error"' in bad.text
    assert zh(views.MSG_SOURCE) in bad.text  # in the user's language (Chinese by default)
    assert 'name="source_statement" required' in bad.text and 'aria-invalid="true"' in bad.text
    assert "南宁供电量数据" in bad.text  # what was typed is kept
    assert count(db, RegistryAsset) == 0
    # A name too long for the register: refused the same way.
    long = client.post(
        "/registry/assets",
        data={"csrf_token": csrf, **ASSET_FORM, "name": "长" * 300},
        follow_redirects=False,
    )
    assert long.status_code == 422 and 'data-testid="error"' in long.text
    forged = client.post("/registry/assets", data={**ASSET_FORM, "csrf_token": "forged"})
    assert forged.status_code == 403
    assert count(db, RegistryAsset) == 0

    asset_id = declare(client, csrf, version_id)
    page = client.get(f"/registry/assets/{asset_id}")
    assert page.status_code == 200
    assert 'data-testid="asset-fingerprint"' in page.text
    with db.read() as s:
        asset = s.get(RegistryAsset, asset_id)
        assert asset is not None and asset.fingerprint and asset.grade == "general"
        assert asset.field_schema[1] == {"name": "站点", "description": "供电站编号"}
    assert asset.fingerprint in page.text
    assert 'data-testid="scan-report-link"' in page.text
    assert f'href="/registry/apply?asset={asset_id}"' in page.text
    assert "<code>站点</code>" in page.text
    listing = client.get("/registry/assets")
    assert f"/registry/assets/{asset_id}" in listing.text


def test_move_an_asset_to_a_newer_version(client, db, settings, enterprise, clock):
    who = principal(db, enterprise)
    first = scanned_version(db, settings, who)
    second = scanned_version(db, settings, who, data=b"a,b\n1,2\n3,4\n")
    asset_id = new_asset(db, who, first)
    csrf = console_login(client, enterprise, "/registry/assets")
    r = client.post(
        f"/registry/assets/{asset_id}/version",
        data={"csrf_token": csrf, "version_id": second},
        follow_redirects=False,
    )
    # The second version is of another data set: a new data set's version still attaches (the
    # party holds it), and the fingerprint follows it.
    assert r.status_code == 303, r.text
    with db.read() as s:
        asset = s.get(RegistryAsset, asset_id)
        assert asset is not None and asset.version_id == second


def test_wizard_submits_an_initial_registration(client, db, settings, enterprise, clock):
    version_id = scanned_version(db, settings, principal(db, enterprise))
    # No language cookie: the page below is read in English through Accept-Language.
    csrf = console_login(client, enterprise, "/registry/assets", lang=None)
    asset_id = declare(client, csrf, version_id)

    start = client.get(f"/registry/apply?asset={asset_id}")
    assert start.status_code == 200
    assert 'data-step="object"' in start.text
    assert f'<option value="{asset_id}" selected' in start.text

    # Step by step: no type chosen is refused on its step.
    r = wizard(client, csrf, "type")
    assert r.status_code == 422 and 'data-testid="error"' in r.text
    assert 'data-step="type"' in r.text
    r = wizard(client, csrf, "type", type="initial")
    assert 'data-step="object"' in r.text
    r = wizard(client, csrf, "object", type="initial", asset_id=asset_id)
    assert 'data-step="scope"' in r.text
    assert f'value="{TODAY.isoformat()}"' in r.text  # the term starts today by default
    # A purpose dimension with nothing ticked allows nothing: refused, with the rule.
    r = wizard(
        client, csrf, "scope", type="initial", asset_id=asset_id, term_start=TODAY.isoformat()
    )
    assert r.status_code == 422 and "REG-SCOPE-WITHIN" in r.text
    assert 'data-step="scope"' in r.text
    fields = {**INITIAL, "asset_id": asset_id}
    fields.pop("track")
    r = wizard(client, csrf, "scope", **fields)
    assert 'data-step="track"' in r.text, r.text
    # The fast track for enterprise data needs the self-commitment.
    r = wizard(client, csrf, "track", **fields, track="fast")
    assert r.status_code == 422 and zh(views.MSG_COMMITMENT) in r.text
    r = wizard(client, csrf, "track", **fields, track="standard")
    assert 'data-step="review"' in r.text
    assert 'data-testid="wizard-submit"' in r.text
    assert "南宁供电量数据" in r.text  # the review shows what will be submitted
    back = wizard(client, csrf, "review", go="back", **fields, track="standard")
    assert 'data-step="track"' in back.text
    # HTMX: a step answers 200 (htmx swaps only those), the submission redirects the page.
    hx = client.post(
        "/registry/apply",
        data={"csrf_token": csrf, "step": "type", "go": "next"},
        headers={"HX-Request": "true"},
    )
    assert hx.status_code == 200 and 'data-testid="error"' in hx.text

    application_id = submit_initial(client, csrf, asset_id)
    page = client.get(f"/registry/applications/{application_id}")
    assert page.status_code == 200
    assert 'data-testid="application-state"' in page.text
    assert "实质审查" in page.text  # substantive review, in Chinese by default
    assert 'data-testid="event-submit"' in page.text
    assert 'data-testid="event-pass_formal"' in page.text
    assert 'data-testid="decision-outcome"' in page.text
    assert "substantive_review" not in re.sub(r'(data-testid|class)="[^"]*"', "", page.text)
    assert 'data-testid="act-withdraw"' in page.text  # the applicant may withdraw
    assert 'data-testid="registrar-actions"' not in page.text
    listing = client.get("/registry/applications")
    assert f"/registry/applications/{application_id}" in listing.text
    english = client.get(
        f"/registry/applications/{application_id}", headers={"Accept-Language": "en"}
    )
    assert "Substantive review" in english.text
    assert "Initial registration" in english.text


def test_refusal_is_shown_with_its_rule(client, db, settings, enterprise, clock):
    who = principal(db, enterprise)
    version_id = scanned_version(db, settings, who)
    # Declared through the API or CLI without a statement of source: the review refuses it.
    asset_id = new_asset(db, who, version_id, source_statement="")
    # No language cookie: the page below is read in English through Accept-Language.
    csrf = console_login(client, enterprise, "/registry/assets", lang=None)
    application_id = submit_initial(client, csrf, asset_id)
    page = client.get(f"/registry/applications/{application_id}")
    assert 'data-testid="reason-DSL-33-SOURCE-STATEMENT"' in page.text
    assert "不予登记" in page.text  # refused, in Chinese
    english = client.get(
        f"/registry/applications/{application_id}", headers={"Accept-Language": "en"}
    )
    assert "Refused" in english.text
    assert "DSL-33-SOURCE-STATEMENT" in english.text
    assert 'data-testid="act-withdraw"' not in page.text  # nothing more can happen


def test_registrar_reviews_with_the_checklist(client, db, settings, enterprise, operator, clock):
    version_id = scanned_version(db, settings, principal(db, enterprise))
    csrf = console_login(client, enterprise, "/registry/assets")
    asset_id = declare(client, csrf, version_id)
    application_id = submit_initial(client, csrf, asset_id)

    csrf = console_login(client, operator, "/registry/assets")
    page = client.get(f"/registry/applications/{application_id}")
    assert 'data-testid="registrar-actions"' in page.text
    assert 'data-testid="checklist"' in page.text
    assert 'data-testid="act-approve_to_notice"' in page.text
    assert 'data-testid="act-approve"' not in page.text  # an initial registration is noticed
    url = f"/registry/applications/{application_id}/act"
    r = client.post(url, data={"csrf_token": csrf, "action": "approve_to_notice"})
    assert r.status_code == 422 and 'data-testid="error"' in r.text
    r = client.post(url, data={"csrf_token": csrf, "action": "return"})
    assert r.status_code == 422  # a return needs its reason
    checklist = ["identity", "source", "description", "scope", "no_dispute"]
    r = client.post(
        url,
        data={"csrf_token": csrf, "action": "approve_to_notice", "checklist": checklist},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    with db.read() as s:
        row = s.get(RegistryApplication, application_id)
        assert row is not None and row.state == "public_notice"
    page = client.get(f"/registry/applications/{application_id}")
    assert 'data-testid="event-approve_to_notice"' in page.text
    assert "exchange.admin" in page.text  # who acted
    # Closing the notice before its last day is refused with the workflow's message.
    r = client.post(url, data={"csrf_token": csrf, "action": "close_notice"})
    assert r.status_code in (409, 422) and "REG-" in r.text

    # The applicant withdraws.
    csrf = console_login(client, enterprise, "/registry/assets")
    r = client.post(url, data={"csrf_token": csrf, "action": "withdraw"}, follow_redirects=False)
    assert r.status_code == 303
    with db.read() as s:
        row = s.get(RegistryApplication, application_id)
        assert row is not None and row.state == "withdrawn"


def test_another_party_cannot_see_the_pages(
    client, db, settings, enterprise, other_enterprise, clock
):
    version_id = scanned_version(db, settings, principal(db, enterprise))
    csrf = console_login(client, enterprise, "/registry/assets")
    asset_id = declare(client, csrf, version_id)
    application_id = submit_initial(client, csrf, asset_id)

    csrf = console_login(client, other_enterprise, "/registry/assets")
    assert client.get(f"/registry/assets/{asset_id}").status_code == 404
    assert client.get(f"/registry/applications/{application_id}").status_code == 404
    assert asset_id not in client.get("/registry/assets").text
    assert application_id not in client.get("/registry/applications").text
    # Nor act on it, nor register it, nor move it to a version.
    r = client.post(
        f"/registry/applications/{application_id}/act",
        data={"csrf_token": csrf, "action": "withdraw"},
    )
    assert r.status_code in (403, 404)
    r = wizard(client, csrf, "object", type="initial", asset_id=asset_id)
    assert r.status_code == 404 and 'data-step="object"' in r.text
    r = client.post(
        f"/registry/assets/{asset_id}/version", data={"csrf_token": csrf, "version_id": version_id}
    )
    assert r.status_code == 404
    with db.read() as s:
        row = s.get(RegistryApplication, application_id)
        assert row is not None and row.state == "substantive_review"
