"""The policy engine over HTTP: decisions, templates and renderings, on both databases."""

from __future__ import annotations

import pytest
from factories import bearer

from datafactor.policy.templates import get_template

PERMIT = {
    "action": "read",
    "purpose": "credit_finance",
    "channel": "api",
    "time": "2026-12-01T10:00:00+08:00",
    "count_so_far": 3,
    "pay_amount": 50_000,
    "fields": ["region", "month"],
}


@pytest.fixture
def headers(client, enterprise):
    return bearer(client, enterprise)


def test_a_decision_answers_exactly_what_the_cli_prints(client, headers):
    policy = get_template("industry-paid").document()
    r = client.post(
        "/api/v1/policy/decisions",
        headers={**headers, "Accept-Language": "en"},
        json={"policy": policy, "request": PERMIT},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == ["decision", "reasons", "duties", "rules"]
    assert body["decision"] == "permit"
    assert body["duties"] == ["compensate"]
    assert "POL-PAY-AMOUNT" in body["rules"]
    denied = client.post(
        "/api/v1/policy/decisions",
        headers=headers,  # no Accept-Language: Simplified Chinese
        json={"policy": policy, "request": {**PERMIT, "pay_amount": 100}},
    )
    assert denied.status_code == 200
    assert denied.json()["decision"] == "deny"
    assert any("支付金额" in reason for reason in denied.json()["reasons"])


@pytest.mark.parametrize(
    ("policy_change", "request_change", "term"),
    [
        ({"permission": [{"action": "teleport"}]}, {}, "teleport"),
        ({"conflict": "perm"}, {}, "perm"),
        ({}, {"colour": "red"}, "colour"),
        ({}, {"channel": "fax"}, "channel"),
    ],
)
def test_malformed_policy_or_request_is_a_422_problem_naming_the_term(
    client, headers, policy_change, request_change, term
):
    policy = {**get_template("industry-paid").document(), **policy_change}
    r = client.post(
        "/api/v1/policy/decisions",
        headers={**headers, "Accept-Language": "en"},
        json={"policy": policy, "request": {**PERMIT, **request_change}},
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert term in r.json()["detail"]


def test_the_body_must_have_policy_and_request_only(client, headers):
    r = client.post("/api/v1/policy/decisions", headers=headers, json={"policy": {}})
    assert r.status_code == 422
    r = client.post(
        "/api/v1/policy/decisions",
        headers=headers,
        json={"policy": {}, "request": PERMIT, "extra": 1},
    )
    assert r.status_code == 422


def test_every_route_needs_a_token(client):
    for method, url in [
        ("POST", "/api/v1/policy/decisions"),
        ("GET", "/api/v1/policy/templates"),
        ("GET", "/api/v1/policy/templates/public-welfare"),
        ("POST", "/api/v1/policy/render"),
    ]:
        r = client.request(method, url, json={"policy": {}, "request": {}})
        assert r.status_code == 401, url
        assert r.headers["content-type"].startswith("application/problem+json")


def test_templates_with_their_json_ld_and_plain_language_in_the_request_language(client, headers):
    listed = client.get("/api/v1/policy/templates", headers={**headers, "Accept-Language": "en"})
    assert [t["name"] for t in listed.json()] == [
        "public-welfare",
        "industry-paid",
        "sandbox-aggregates",
        "asean-cross-border",
    ]
    one = client.get(
        "/api/v1/policy/templates/asean-cross-border", headers={**headers, "Accept-Language": "en"}
    ).json()
    assert one["policy"] == get_template("asean-cross-border").document()
    assert one["locale"] == "en"
    assert one["text"][0].startswith("Permitted: use")
    zh = client.get("/api/v1/policy/templates/asean-cross-border", headers=headers).json()
    assert zh["text"][0].startswith("允许 使用")
    missing = client.get("/api/v1/policy/templates/free-for-all", headers=headers)
    assert missing.status_code == 404
    assert "public-welfare" in missing.json()["detail"]


def test_render_any_policy(client, headers):
    policy = get_template("sandbox-aggregates").document()
    r = client.post(
        "/api/v1/policy/render",
        headers={**headers, "Accept-Language": "en"},
        json={"policy": policy},
    )
    assert r.status_code == 200
    assert r.json()["text"][0].startswith("Permitted: aggregate")
    bad = client.post(
        "/api/v1/policy/render",
        headers={**headers, "Accept-Language": "en"},
        json={"policy": {**policy, "@type": "Wish"}},
    )
    assert bad.status_code == 422
    assert "Wish" in bad.json()["detail"]
