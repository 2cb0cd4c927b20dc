"""The settlement API (both databases): the dashboards of a seller, a broker and the operator,
one contract's split for its parties only, and the operator's idempotent settlement run."""

from __future__ import annotations

from exchange_settle_support import books_balanced, completed_contract
from factories import bearer

from datafactor.db import utcnow
from datafactor.exchange import settle
from datafactor.exchange.models import ExchangeContract


def _h(client, actor):
    return bearer(client, actor)


def _world_with_trades(db, world):
    listing = world.listing(
        price_fen=20_000,
        revenue_sharing=[
            {
                "party_id": world.partner.party_id,
                "stage": "circulation",
                "mode": "dividend",
                "bp": 500,
            }
        ],
    )
    settled = completed_contract(
        db, listing, world.buyer.party_id, amount_fen=20_000, broker_id=world.broker.party_id
    )
    due = completed_contract(db, listing, world.buyer.party_id, amount_fen=40_000, quantity=2)
    open_ = completed_contract(db, listing, world.buyer.party_id, amount_fen=20_000, state="active")
    with db.write() as s:
        # Settled now: the operator's volume per day covers the last 30 days.
        settle.settle_contract(s, s.get(ExchangeContract, settled), actor="test", now=utcnow())
    return listing, settled, due, open_


def test_a_contracts_split_is_seen_by_its_parties_only(client, db, world):
    _, settled, due, _ = _world_with_trades(db, world)
    for actor in (world.seller, world.buyer, world.broker, world.operator, world.regulator):
        r = client.get(f"/api/v1/exchange/settlements/{settled}", headers=_h(client, actor))
        assert r.status_code == 200, (actor.kind, r.text)
        body = r.json()
        assert body["settled"] and body["amount_fen"] == 20_000
        assert sum(p["amount_fen"] for p in body["parts"]) == 20_000
        assert {p["kind"] for p in body["parts"]} == {"fee", "commission", "share", "payout"}
    for actor in (world.outsider, world.partner):
        r = client.get(f"/api/v1/exchange/settlements/{settled}", headers=_h(client, actor))
        assert r.status_code == 404
        assert "EXC-SETTLE-VISIBLE" in r.json()["detail"]
    # Not settled yet: what it would pay now, from the escrow still frozen.
    r = client.get(f"/api/v1/exchange/settlements/{due}", headers=_h(client, world.seller))
    preview = r.json()
    assert r.status_code == 200 and not preview["settled"] and preview["journal_id"] is None
    assert preview["frozen_fen"] == 40_000 and preview["amount_fen"] == 40_000
    assert sum(p["amount_fen"] for p in preview["parts"]) == 40_000
    r = client.get("/api/v1/exchange/settlements", headers=_h(client, world.buyer))
    assert r.json()["total"] == 1 and r.json()["items"][0]["contract_id"] == settled
    assert (
        client.get("/api/v1/exchange/settlements", headers=_h(client, world.outsider)).json()[
            "total"
        ]
        == 0
    )


def test_the_operator_runs_settlement_once_per_key(client, db, world):
    _, _, _, open_ = _world_with_trades(db, world)
    headers = {**_h(client, world.operator), "Idempotency-Key": "run-2026-06-01"}
    r = client.post("/api/v1/exchange/settlements/run", headers=headers)
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["settled"] == 1 and first["paid_fen"] == 40_000 and not first["replayed"]
    r = client.post("/api/v1/exchange/settlements/run", headers=headers)
    assert r.status_code == 201 and r.headers["Idempotent-Replayed"] == "true"
    assert {k: v for k, v in r.json().items() if k != "replayed"} == {
        k: v for k, v in first.items() if k != "replayed"
    }
    # Without a key: refused; a seller may not run it.
    r = client.post("/api/v1/exchange/settlements/run", headers=_h(client, world.operator))
    assert r.status_code == 422 and "EXC-SETTLE-RUN" in r.json()["detail"]
    r = client.post(
        "/api/v1/exchange/settlements/run",
        headers={**_h(client, world.seller), "Idempotency-Key": "mine"},
    )
    assert r.status_code == 403
    # A listed contract that is not completed is not settled.
    r = client.post(
        "/api/v1/exchange/settlements/run",
        headers={**_h(client, world.operator), "Idempotency-Key": "run-2"},
        json={"contract_ids": [open_]},
    )
    assert r.status_code == 201 and r.json()["settled"] == 0
    books_balanced(db)


def test_dashboards_for_the_seller_the_broker_and_the_operator(client, db, world):
    listing, settled, _, _ = _world_with_trades(db, world)
    r = client.get("/api/v1/exchange/dashboard", headers=_h(client, world.seller))
    assert r.status_code == 200, r.text
    seller = r.json()
    assert seller["role"] == "seller"
    # 20,000: fee 400, broker 200, rest 19,400: partner 5 % = 970, seller 18,430.
    assert seller["settled_income_fen"] == 18_430
    assert seller["fees_paid_fen"] == 400
    assert seller["escrow_frozen_fen"] == 60_000  # the due and the open contract
    assert seller["contracts_by_state"] == {"completed": 2, "active": 1}
    row = next(x for x in seller["listings"] if x["listing_id"] == listing)
    assert row["contracts"] == 3 and row["quantity"] == 4 and row["amount_fen"] == 80_000
    assert row["settled_fen"] == 18_430
    assert [x["contract_id"] for x in seller["recent"]] == [settled]

    partner = client.get("/api/v1/exchange/dashboard", headers=_h(client, world.partner)).json()
    assert partner["shares_received_fen"] == 970
    assert partner["shares_received"] == [
        {"stage": "circulation", "amount_fen": 970, "contracts": 1}
    ]

    r = client.get("/api/v1/exchange/dashboard?role=broker", headers=_h(client, world.broker))
    assert r.status_code == 200, r.text
    broker = r.json()
    assert broker["commissions_fen"] == 200 and broker["co_signed_contracts"] == 1
    assert broker["recent_commissions"][0]["contract_id"] == settled

    r = client.get("/api/v1/exchange/dashboard", headers=_h(client, world.operator))
    operator = r.json()
    assert operator["role"] == "operator"
    assert operator["fee_income_fen"] == 400 and operator["broker_commissions_fen"] == 200
    assert operator["treasury_revenue_fen"] == 0 and operator["due_contracts"] == 1
    assert operator["settled_contracts"] == 1 and operator["settled_amount_fen"] == 20_000
    assert sum(d["amount_fen"] for d in operator["volume_per_day"]) == 20_000
    assert operator["escrow_frozen_fen"] == 60_000  # the due and the open (active) one

    # A role the caller does not have is refused; the regulator reads the operator's figures.
    r = client.get("/api/v1/exchange/dashboard?role=operator", headers=_h(client, world.seller))
    assert r.status_code == 403 and "EXC-SETTLE-VISIBLE" in r.json()["detail"]
    r = client.get("/api/v1/exchange/dashboard", headers=_h(client, world.regulator))
    assert r.status_code == 200 and r.json()["role"] == "operator"
