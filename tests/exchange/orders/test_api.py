"""``/api/v1/orders`` on both databases: the stable ``POST /orders`` (body ``{"listing_id",
"quantity"}``, an ``Idempotency-Key`` header, 201 with ``id`` and ``status``; a replay 200 with
the same order; another body under the key 409; no key 400), refusals as problem+json naming
their rule, reading and cancelling."""

from __future__ import annotations

import pytest
from factories import bearer, make_actor
from orders_support import balances, fund

from datafactor.exchange.models import ExchangeListing

PROBLEM = "application/problem+json"


@pytest.fixture
def trade(client, market):  # type: ignore[no-untyped-def]
    listing_id = market.listing(price_fen=12_000, quantity=4)
    buyer = make_actor(market.db)
    fund(market.db, buyer.party_id, 50_000)
    return listing_id, buyer, bearer(client, buyer)


def _order(client, headers, listing_id, quantity=1, key="key-1"):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/v1/orders",
        headers={**headers, "Idempotency-Key": key},
        json={"listing_id": listing_id, "quantity": quantity},
    )


def test_an_order_answers_201_with_id_and_status(client, market, trade):
    listing_id, buyer, headers = trade
    r = _order(client, headers, listing_id, 2)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "contracted"
    assert body["number"].startswith("GX-DO-")
    assert (body["quantity"], body["amount_fen"], body["unit_price_fen"]) == (2, 24_000, 12_000)
    assert body["hold_id"] and body["contract_id"] and body["contract_state"] == "accepted"
    assert body["buyer_id"] == buyer.party_id and body["seller_id"] == market.seller.party_id
    assert "Idempotent-Replayed" not in r.headers
    assert balances(market.db, buyer.party_id) == (26_000, 24_000)

    again = _order(client, headers, listing_id, 2)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == body["id"]
    assert balances(market.db, buyer.party_id) == (26_000, 24_000)

    other = _order(client, headers, listing_id, 1)
    assert other.status_code == 409
    assert other.headers["content-type"].startswith(PROBLEM)
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert "EXC-ORDER-KEY" in other.json()["detail"]


def test_an_order_without_a_key_is_a_bad_request(client, trade):
    listing_id, _, headers = trade
    r = client.post(
        "/api/v1/orders", headers=headers, json={"listing_id": listing_id, "quantity": 1}
    )
    assert r.status_code == 400
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["type"].endswith("/idempotency-key-missing")
    assert r.json()["field"] == "Idempotency-Key"
    assert "EXC-ORDER-KEY" in r.json()["detail"]


@pytest.mark.parametrize("quantity", [0, -1, 1.5, "3x", None, True])
def test_a_bad_quantity_is_refused_with_its_rule(client, trade, quantity):
    listing_id, _, headers = trade
    r = _order(client, headers, listing_id, quantity)
    assert r.status_code == 422
    assert r.json()["field"] == "quantity" and "EXC-ORDER-QUANTITY" in r.json()["detail"]


def test_refusals_name_their_rule(client, market, trade):
    listing_id, _buyer, headers = trade
    r = _order(client, headers, listing_id, 5, key="too-many")
    assert r.status_code == 409 and "EXC-LST-QUANTITY" in r.json()["detail"]
    unlimited = market.listing(price_fen=12_000)
    r = _order(client, headers, unlimited, 5, key="too-dear")  # 60,000 > 50,000
    assert r.status_code == 409 and "SET-FUNDS" in r.json()["detail"]
    assert r.json()["type"].endswith("/settlement-insufficient-funds")
    r = _order(client, bearer(client, market.seller), listing_id, 1, key="own")
    assert r.status_code == 403 and "EXC-LST-BUYER" in r.json()["detail"]
    r = _order(client, headers, "no-such-listing", 1, key="nothing")
    assert r.status_code == 404
    unverified = make_actor(market.db, verified=False)
    r = _order(client, bearer(client, unverified), listing_id, 1, key="nobody")
    assert r.status_code == 403 and "EXC-LST-BUYER" in r.json()["detail"]


def test_buyer_and_seller_read_their_orders_others_do_not(client, market, trade):
    listing_id, _, headers = trade
    order = _order(client, headers, listing_id).json()
    for who in (headers, bearer(client, market.seller)):
        assert client.get(f"/api/v1/orders/{order['id']}", headers=who).json()["id"] == order["id"]
        page = client.get("/api/v1/orders", headers=who).json()
        assert page["total"] == 1 and page["items"][0]["id"] == order["id"]
    seller = bearer(client, market.seller)
    assert client.get("/api/v1/orders?role=buyer", headers=seller).json()["total"] == 0
    assert client.get("/api/v1/orders?role=seller", headers=seller).json()["total"] == 1
    assert client.get("/api/v1/orders?status=cancelled", headers=headers).json()["total"] == 0
    stranger = bearer(client, make_actor(market.db))
    r = client.get(f"/api/v1/orders/{order['id']}", headers=stranger)
    assert r.status_code == 404 and r.headers["content-type"].startswith(PROBLEM)
    assert client.get("/api/v1/orders", headers=stranger).json()["total"] == 0
    assert client.get("/api/v1/orders?role=broker", headers=headers).status_code == 422


def test_cancel_releases_the_payment_and_is_idempotent(client, market, trade):
    listing_id, buyer, headers = trade
    order = _order(client, headers, listing_id, 2).json()
    r = client.post(
        f"/api/v1/orders/{order['id']}/cancel", headers=headers, json={"reason": "改期"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled" and r.json()["contract_state"] == "terminated"
    assert "Idempotent-Replayed" not in r.headers
    again = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=headers)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert balances(market.db, buyer.party_id) == (50_000, 0)
    with market.db.read() as s:  # the licences are back on the listing
        assert s.get(ExchangeListing, listing_id).remaining_quantity == 4
    r = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=bearer(client, market.seller))
    assert r.status_code == 403 and "EXC-ORDER-CANCEL" in r.json()["detail"]
