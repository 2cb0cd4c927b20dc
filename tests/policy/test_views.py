"""The policy workbench (/policy): templates in plain language, the editor, trying a request."""

from __future__ import annotations

import html
import re

import pytest
from factories import console_login


@pytest.fixture
def csrf(client, enterprise):
    return console_login(client, enterprise, "/policy", "en")


def jsonld_of(page: str) -> str:
    match = re.search(r'data-testid="policy-jsonld">(.*?)</textarea>', page, re.DOTALL)
    assert match
    return html.unescape(match.group(1))


def test_the_workbench_needs_a_login(client):
    r = client.get("/policy", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_a_template_in_both_languages_and_as_json_ld(client, csrf):
    page = client.get("/policy?template=industry-paid")
    assert page.status_code == 200
    text = page.text
    assert 'data-testid="nav-policy"' in text
    assert 'data-testid="policy-template-current">Industry paid use' in text
    assert "Permitted: use for a purpose of the kind industry development" in text
    assert "允许 使用，使用目的属于产业发展类" in text
    assert "industry-paid#use" in jsonld_of(text)
    # The editor shows the template's choices.
    assert re.search(r'name="max_uses" min="1" value="1000"', text)
    assert re.search(r'name="pay_amount" value="500.00"', text)
    unknown = client.get("/policy?template=nothing")
    assert unknown.status_code == 404
    assert "There is no policy template named nothing" in unknown.text


def test_the_editor_builds_json_ld_and_its_plain_language(client, csrf):
    r = client.post(
        "/policy/build",
        data={
            "csrf_token": csrf,
            "purposes": ["research", "public_welfare"],
            "channels": ["sandbox"],
            "term_end": "2027-06-30",
            "max_uses": "5",
            "min_group_size": "20",
            "epsilon": "0.5",
            "prohibit_reidentification": "1",
        },
    )
    assert r.status_code == 200
    assert 'data-testid="policy-built"' in r.text
    assert "Permitted: use for research or public welfare, delivered by sandbox" in r.text
    assert "at most 5 uses" in r.text and "groups of at least 20 people" in r.text
    assert "Prohibited: re-identify people." in r.text
    document = jsonld_of(r.text)
    assert '"df:minGroupSize"' in document and '"df:reidentify"' in document
    bad = client.post("/policy/build", data={"csrf_token": csrf, "max_uses": "none"})
    assert bad.status_code == 422
    assert "The maximum number of uses must be a whole number" in bad.text
    forged = client.post("/policy/build", data={"max_uses": "5"})
    assert forged.status_code == 403


def test_trying_a_request_shows_the_decision_reasons_and_duties(client, csrf):
    policy = jsonld_of(client.get("/policy?template=industry-paid").text)
    asked = {
        "csrf_token": csrf,
        "template": "industry-paid",
        "policy": policy,
        "action": "read",
        "purpose": "credit_finance",
        "channel": "api",
        "spatial": "CN-GX",
        "time": "2026-12-01T10:00",
        "count_so_far": "2",
        "request_pay_amount": "500",
        "request_fields": "region, month",
    }
    r = client.post("/policy/decide", data=asked)
    assert r.status_code == 200
    assert 'data-decision="permit"' in r.text
    assert "<code>compensate</code>" in r.text
    assert "the payment 500.00 yuan is at least 500.00 yuan" in r.text
    denied = client.post("/policy/decide", data={**asked, "channel": "download"})
    assert 'data-decision="deny"' in denied.text
    assert "prohibition" in denied.text
    broken = client.post("/policy/decide", data={**asked, "policy": "{ not json"})
    assert broken.status_code == 422
    assert "The policy is not valid JSON" in broken.text
    unknown = client.post(
        "/policy/decide", data={**asked, "policy": policy.replace('"use"', '"teleport"', 1)}
    )
    assert unknown.status_code == 422
    assert "teleport" in unknown.text
