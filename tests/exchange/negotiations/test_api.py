"""The agreement trades' API on both databases: open with a first offer, counter-offer, accept
(escrow frozen, contract generated, a retry answered again), withdraw, lists; refusals as
problem+json naming their rule; another party's negotiation is not found."""

from __future__ import annotations

from factories import bearer

from datafactor.db import utcnow


def test_a_negotiation_through_the_api(client, db, world):
    listing_id = world.listing(price_fen=10_000, quantity=5)
    buyer = world.buyer(1_000_000)
    as_buyer, as_seller = bearer(client, buyer), bearer(client, world.seller)
    as_broker = bearer(client, world.broker)

    r = client.post(
        "/api/v1/negotiations",
        headers=as_buyer,
        json={"listing_id": listing_id, "price_fen": 8_000, "quantity": 2, "note": "试探报价"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    negotiation_id = body["id"]
    assert body["number"].startswith(f"GX-DN-{utcnow().year}-")
    assert (body["status"], body["broker_id"], body["broker_side"]) == (
        "open",
        world.broker.party_id,
        "seller",
    )
    assert body["latest"]["amount_fen"] == 16_000 and body["actions"] == ["withdraw"]
    assert [o["side"] for o in body["offers"]] == ["buyer"]

    seen = client.get(f"/api/v1/negotiations/{negotiation_id}", headers=as_seller).json()
    assert seen["actions"] == ["offer", "accept", "withdraw"] and seen["your_side"] == "seller"
    assert client.get(f"/api/v1/negotiations/{negotiation_id}", headers=as_broker).json()[
        "actions"
    ] == ["offer"]

    r = client.post(
        f"/api/v1/negotiations/{negotiation_id}/offers",
        headers=as_seller,
        json={"price_fen": 9_000, "term_days": 90},
    )
    assert r.status_code == 201, r.text
    assert (r.json()["latest"]["seq"], r.json()["latest"]["amount_fen"]) == (2, 18_000)

    r = client.post(
        f"/api/v1/negotiations/{negotiation_id}/offers", headers=as_seller, json={"price_fen": 1}
    )
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "EXC-NEG-TURN" in r.json()["detail"]

    r = client.post(
        f"/api/v1/negotiations/{negotiation_id}/accept", headers=as_buyer, json={"seq": 2}
    )
    assert r.status_code == 200, r.text
    agreed = r.json()
    assert agreed["status"] == "agreed" and agreed["contract_number"].startswith("GX-DC-")
    assert "Idempotent-Replayed" not in r.headers
    again = client.post(
        f"/api/v1/negotiations/{negotiation_id}/accept", headers=as_buyer, json={"seq": 2}
    )
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["contract_id"] == agreed["contract_id"]
    contract = client.get(f"/api/v1/contracts/{agreed['contract_id']}", headers=as_broker)
    assert contract.status_code == 200, contract.text

    listed = client.get("/api/v1/negotiations?role=broker", headers=as_broker).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == negotiation_id
    assert client.get("/api/v1/negotiations", headers=as_buyer).json()["total"] == 1
    outsider = bearer(client, world.buyer())
    assert client.get("/api/v1/negotiations", headers=outsider).json()["total"] == 0
    r = client.get(f"/api/v1/negotiations/{negotiation_id}", headers=outsider)
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")


def test_refusals_and_withdrawal_through_the_api(client, db, world):
    listing_id = world.listing(price_fen=10_000)
    buyer = world.buyer(1_000_000)
    as_buyer = bearer(client, buyer)
    for body, status, rule in (
        ({"listing_id": listing_id, "price_fen": 0}, 422, "EXC-NEG-TERMS"),
        ({"listing_id": listing_id, "channels": ["sandbox"]}, 422, "EXC-NEG-TERMS"),
        ({"listing_id": listing_id, "broker_id": buyer.party_id}, 422, "EXC-NEG-BROKER"),
        ({"listing_id": "no-such-listing"}, 404, "EXC-LST-VISIBLE"),
    ):
        r = client.post("/api/v1/negotiations", headers=as_buyer, json=body)
        assert r.status_code == status, (body, r.text)
        assert rule in r.json()["detail"], r.text
    r = client.post(
        "/api/v1/negotiations", headers=as_buyer, json={"listing_id": listing_id, "x": 1}
    )
    assert r.status_code == 422  # unknown fields are refused
    r = client.post("/api/v1/negotiations", headers=as_buyer, json={"listing_id": listing_id})
    negotiation_id = r.json()["id"]
    r = client.post(
        f"/api/v1/negotiations/{negotiation_id}/withdraw",
        headers=as_buyer,
        json={"reason": "预算不足"},
    )
    assert r.status_code == 200 and r.json()["status"] == "withdrawn"
    assert r.json()["reason"] == "预算不足"
    r = client.post(
        f"/api/v1/negotiations/{negotiation_id}/accept", headers=as_buyer, json={"seq": 1}
    )
    assert r.status_code == 409 and "EXC-NEG-STATE" in r.json()["detail"]
