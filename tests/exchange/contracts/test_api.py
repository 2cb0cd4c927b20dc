"""Contracts over HTTP: my contracts (filters, paging), one with its history and signatures, the
PDF, and the moves (sign with {"confirm": true}, confirm, terminate, dispute, resolve) with the
rule named in every refusal; another party's contract answers 404."""

from __future__ import annotations

from contracts_support import deliver, hold, sign_all
from factories import bearer

from datafactor.db import utcnow


def test_my_contracts_with_filters(client, world, open_for):
    first, second = open_for(now=utcnow()), open_for(quantity=2, now=utcnow())
    buyer = bearer(client, world.buyer)
    r = client.get("/api/v1/contracts", headers=buyer)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 2
    assert {i["id"] for i in body["items"]} == {first, second}
    item = next(i for i in body["items"] if i["id"] == second)
    assert item["status"] == "accepted" and item["amount_fen"] == 20_000
    assert item["number"].startswith("GX-DC-") and "sign" in item["actions"]

    assert (
        client.get("/api/v1/contracts", headers=buyer, params={"role": "seller"}).json()["total"]
        == 0
    )
    assert (
        client.get("/api/v1/contracts", headers=buyer, params={"status": "active"}).json()["total"]
        == 0
    )
    assert (
        client.get("/api/v1/contracts", headers=buyer, params={"kind": "mall"}).json()["total"] == 2
    )
    paged = client.get("/api/v1/contracts", headers=buyer, params={"limit": 1}).json()
    assert len(paged["items"]) == 1 and paged["total"] == 2

    seller = bearer(client, world.seller)
    assert (
        client.get("/api/v1/contracts", headers=seller, params={"role": "seller"}).json()["total"]
        == 2
    )
    assert (
        client.get("/api/v1/contracts", headers=bearer(client, world.outsider)).json()["total"] == 0
    )
    # The exchange and the regulators read every contract.
    assert (
        client.get("/api/v1/contracts", headers=bearer(client, world.operator)).json()["total"] == 2
    )
    assert (
        client.get("/api/v1/contracts", headers=bearer(client, world.regulator)).json()["total"]
        == 2
    )


def test_sign_over_the_api_needs_the_confirmation(client, world, open_for):
    contract_id = open_for(now=utcnow())
    buyer, seller = bearer(client, world.buyer), bearer(client, world.seller)
    refused = client.post(f"/api/v1/contracts/{contract_id}/sign", headers=buyer, json={})
    assert refused.status_code == 422
    assert "EXC-CONTRACT-SIGN" in refused.json()["detail"]
    assert (
        client.post(
            f"/api/v1/contracts/{contract_id}/sign", headers=buyer, json={"confirm": True}
        ).status_code
        == 200
    )
    again = client.post(
        f"/api/v1/contracts/{contract_id}/sign", headers=buyer, json={"confirm": True}
    )
    assert again.status_code == 409
    r = client.post(f"/api/v1/contracts/{contract_id}/sign", headers=seller, json={"confirm": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "active" and body["ledger_index"] is not None
    assert [(s["role"], s["signed"], s["valid"]) for s in body["signatures"]] == [
        ("seller", True, True),
        ("buyer", True, True),
    ]
    assert [h["action"] for h in body["history"]][-2:] == ["sign", "activate"]
    assert body["document"]["number"] == body["number"]

    detail = client.get(f"/api/v1/contracts/{contract_id}", headers=buyer).json()
    assert detail["status"] == "active" and detail["actions"] == ["dispute"]


def test_the_whole_life_over_the_api(client, world, open_for):
    contract_id = open_for(now=utcnow())
    sign_all(world, contract_id, now=utcnow())
    deliver(world, contract_id, now=utcnow())
    buyer, operator = bearer(client, world.buyer), bearer(client, world.operator)
    r = client.post(
        f"/api/v1/contracts/{contract_id}/dispute", headers=buyer, json={"grounds": "缺字段"}
    )
    assert r.status_code == 200 and r.json()["status"] == "disputed"
    bad = client.post(
        f"/api/v1/contracts/{contract_id}/resolve",
        headers=operator,
        json={"outcome": "split", "reason": "各半", "pay_fen": 0},
    )
    assert bad.status_code == 422 and "EXC-CONTRACT-DISPUTE" in bad.json()["detail"]
    r = client.post(
        f"/api/v1/contracts/{contract_id}/resolve",
        headers=operator,
        json={"outcome": "split", "reason": "各半", "pay_fen": 5_000},
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed"
    assert hold(world, contract_id)["captured_fen"] == 5_000


def test_confirm_and_terminate_over_the_api(client, world, open_for):
    ended, accepted = open_for(now=utcnow()), open_for(now=utcnow())
    buyer = bearer(client, world.buyer)
    r = client.post(
        f"/api/v1/contracts/{ended}/terminate", headers=buyer, json={"reason": "重复下单"}
    )
    assert r.status_code == 200 and r.json()["status"] == "terminated"
    assert hold(world, ended)["released_fen"] == 10_000

    sign_all(world, accepted, now=utcnow())
    early = client.post(f"/api/v1/contracts/{accepted}/confirm", headers=buyer)
    assert early.status_code == 409 and "EXC-CONTRACT-ACCEPTANCE" in early.json()["detail"]
    deliver(world, accepted, now=utcnow())
    r = client.post(f"/api/v1/contracts/{accepted}/confirm", headers=buyer)
    assert r.status_code == 200 and r.json()["status"] == "completed"


def test_another_partys_contract_is_not_found(client, world, open_for):
    contract_id = open_for(now=utcnow())
    outsider = bearer(client, world.outsider)
    for method, path, body in (
        ("get", f"/api/v1/contracts/{contract_id}", None),
        ("get", f"/api/v1/contracts/{contract_id}.pdf", None),
        ("get", f"/api/v1/contracts/{contract_id}/pdf", None),
        ("post", f"/api/v1/contracts/{contract_id}/sign", {"confirm": True}),
        ("post", f"/api/v1/contracts/{contract_id}/confirm", None),
        ("post", f"/api/v1/contracts/{contract_id}/terminate", {"reason": "x"}),
        ("post", f"/api/v1/contracts/{contract_id}/dispute", {"grounds": "x"}),
        ("post", f"/api/v1/contracts/{contract_id}/resolve", {"outcome": "buyer", "reason": "x"}),
    ):
        r = getattr(client, method)(path, headers=outsider, **({"json": body} if body else {}))
        assert r.status_code == 404, (path, r.status_code, r.text)


def test_the_pdf_over_the_api(client, world, open_for):
    contract_id = open_for(now=utcnow())
    for path in (f"/api/v1/contracts/{contract_id}.pdf", f"/api/v1/contracts/{contract_id}/pdf"):
        r = client.get(path, headers=bearer(client, world.seller))
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/pdf"
        assert r.content.startswith(b"%PDF")
