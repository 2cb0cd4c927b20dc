"""The delivery panel and the delivery log in the console, on both databases: the contract page
loads the panel; the buyer takes a download link (which then works in the same browser) and an
API pull token (shown once, with a curl example), revokes a token; the seller sees the log but
no forms and no marks; a refusal is shown in the panel in the person's language."""

from __future__ import annotations

import re

import pytest
from factories import console_login

from datafactor.exchange.models import ExchangeContract, ExchangeDelivery


@pytest.fixture
def buyer(world):
    return world.buyers[0]


def test_the_contract_page_loads_the_delivery_panel(client, world, buyer):
    console_login(client, buyer, "/exchange/deliveries")
    contract_id = world.contract_of(buyer)
    page = client.get(f"/exchange/contracts/{contract_id}")
    assert page.status_code == 200
    assert 'data-testid="delivery-panel-loader"' in page.text
    assert f"/exchange/deliveries/panel/{contract_id}" in page.text
    panel = client.get(f"/exchange/deliveries/panel/{contract_id}", headers={"HX-Request": "true"})
    assert panel.status_code == 200
    assert 'data-testid="delivery-take-download"' in panel.text
    assert 'data-testid="delivery-take-api"' in panel.text
    assert "<html" not in panel.text  # a fragment for the contract page


def test_the_buyer_takes_a_link_that_works_in_the_same_browser(client, world, buyer):
    csrf = console_login(client, buyer, "/exchange/deliveries")
    contract_id = world.contract_of(buyer)
    r = client.post(
        f"/exchange/deliveries/contracts/{contract_id}/tokens",
        data={"csrf_token": csrf, "channel": "download", "purpose": "research"},
    )
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    href = re.search(r'href="([^"]+)" role="button" data-testid="delivery-download-link"', r.text)
    assert href
    file = client.get(href.group(1))  # the session cookie is the buyer's login
    assert file.status_code == 200
    assert file.text.lstrip("\ufeff").startswith("# DataFactor")
    panel = client.get(f"/exchange/deliveries/contracts/{contract_id}").text
    assert 'data-testid="delivery-row" data-decision="allowed"' in panel
    assert 'data-testid="delivery-mark"' in panel
    assert 'data-status="live"' in panel


def test_an_api_token_is_shown_once_with_a_curl_example_and_can_be_revoked(client, world, buyer):
    csrf = console_login(client, buyer, "/exchange/deliveries")
    contract_id = world.contract_of(buyer)
    r = client.post(
        f"/exchange/deliveries/contracts/{contract_id}/tokens",
        data={"csrf_token": csrf, "channel": "api", "purpose": "credit_finance"},
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 200
    secret = re.search(r'data-testid="delivery-api-secret">([^<]+)<', r.text).group(1)
    assert secret.startswith("dfx_api_")
    assert "curl -H &#34;Authorization: Bearer " + secret in r.text or secret in r.text
    again = client.get(f"/exchange/deliveries/contracts/{contract_id}").text
    assert secret not in again  # shown once
    token_id = re.search(r'data-testid="delivery-token" data-token="([^"]+)"', again).group(1)
    revoked = client.post(
        f"/exchange/deliveries/tokens/{token_id}/revoke", data={"csrf_token": csrf}
    )
    assert revoked.status_code == 200
    assert f'data-token="{token_id}" data-status="revoked"' in revoked.text
    pulled = client.get("/api/v1/deliveries/pull", headers={"Authorization": f"Bearer {secret}"})
    assert pulled.status_code == 409


def test_a_refusal_is_shown_in_the_panel(client, world, buyer):
    csrf = console_login(client, buyer, "/exchange/deliveries")
    contract_id = world.contract_of(buyer)
    r = client.post(
        f"/exchange/deliveries/contracts/{contract_id}/tokens",
        data={"csrf_token": csrf, "channel": "download", "purpose": "public_governance"},
    )
    assert r.status_code == 403
    error = re.search(r'data-testid="delivery-error">([^<]+)<', r.text).group(1)
    assert "EXC-DLV-POLICY" in error and "public_governance" in error
    with world.db.read() as s:
        assert s.query(ExchangeDelivery).count() == 0


def test_the_seller_sees_the_log_but_no_forms_and_no_marks(client, world, buyer):
    csrf = console_login(client, buyer, "/exchange/deliveries")
    contract_id = world.contract_of(buyer)
    r = client.post(
        f"/exchange/deliveries/contracts/{contract_id}/tokens",
        data={"csrf_token": csrf, "channel": "download", "purpose": "research"},
    )
    link = re.search(r'href="([^"]+)" role="button" data-testid="delivery-download-link"', r.text)
    client.get(link.group(1))
    console_login(client, world.seller, "/exchange/deliveries")
    panel = client.get(f"/exchange/deliveries/contracts/{contract_id}").text
    assert 'data-decision="allowed"' in panel
    assert "delivery-take-download" not in panel and 'data-testid="delivery-mark"' not in panel
    log = client.get("/exchange/deliveries").text
    assert 'data-testid="delivery-row" data-decision="allowed"' in log


def test_another_party_cannot_open_the_panel(client, world, buyer):
    console_login(client, world.buyers[1], "/exchange/deliveries")
    r = client.get(f"/exchange/deliveries/contracts/{world.contract_of(buyer)}")
    assert r.status_code == 404


def test_an_ended_contract_shows_no_forms(client, world, buyer):
    contract_id = world.contract_of(buyer)
    with world.db.write() as s:
        s.get(ExchangeContract, contract_id).state = "completed"
    console_login(client, buyer, "/exchange/deliveries")
    panel = client.get(f"/exchange/deliveries/contracts/{contract_id}").text
    assert 'data-testid="delivery-closed"' in panel
    assert "delivery-take-download" not in panel


def test_the_log_filters_by_decision(client, world, buyer):
    console_login(client, buyer, "/exchange/deliveries", "en")
    page = client.get("/exchange/deliveries?decision=refused&channel=api")
    assert page.status_code == 200
    assert 'data-testid="deliveries-empty"' in page.text
