"""The auctions' API and command line on both databases: start an auction, bid with an
Idempotency-Key (400 without; a retry answered again; another body 409), the live state with
anonymous bidders, close after the deadline (not before), cancel; and the CLI's ``close-due``
and ``show --json``."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from auctions_support import balances
from factories import bearer
from typer.testing import CliRunner

from datafactor.cli import app as cli_app
from datafactor.exchange import auctions


def test_an_auction_through_the_api(client, db, world):
    listing_id = world.listing(price_fen=10_000, quantity=3)
    one, two = world.buyer(), world.buyer()
    as_seller, as_one, as_two = (bearer(client, a) for a in (world.seller, one, two))
    ends = datetime.now(UTC) + timedelta(hours=1)

    r = client.post(
        "/api/v1/auctions",
        headers=as_seller,
        json={
            "listing_id": listing_id,
            "start_fen": 10_000,
            "increment_fen": 500,
            "deposit_fen": 2_000,
            "ends_at": ends.isoformat(),
            "quantity": 2,
        },
    )
    assert r.status_code == 201, r.text
    auction = r.json()
    auction_id = auction["id"]
    assert auction["number"].startswith("GX-DA-") and auction["status"] == "open"
    assert auction["reserve_fen"] == 10_000  # the seller sees its reserve
    assert (
        client.get(f"/api/v1/auctions/{auction_id}", headers=as_one).json()["reserve_fen"] is None
    )

    url = f"/api/v1/auctions/{auction_id}/bids"
    r = client.post(url, headers=as_one, json={"amount_fen": 10_000})
    assert r.status_code == 400 and r.json()["type"].endswith("/idempotency-key-missing")
    key = str(uuid.uuid4())
    r = client.post(url, headers={**as_one, "Idempotency-Key": key}, json={"amount_fen": 10_000})
    assert r.status_code == 201, r.text
    placed = r.json()
    assert (placed["status"], placed["lot_amount_fen"], placed["bidder_no"]) == (
        "leading",
        20_000,
        1,
    )
    again = client.post(
        url, headers={**as_one, "Idempotency-Key": key}, json={"amount_fen": 10_000}
    )
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == placed["id"]
    other = client.post(
        url, headers={**as_one, "Idempotency-Key": key}, json={"amount_fen": 11_000}
    )
    assert other.status_code == 409 and other.json()["type"].endswith("/idempotency-key-reused")
    assert balances(db, one.party_id) == (1_000_000 - 2_000, 2_000)

    low = client.post(
        url, headers={**as_two, "Idempotency-Key": str(uuid.uuid4())}, json={"amount_fen": 10_400}
    )
    assert low.status_code == 422 and "EXC-AUC-INCREMENT" in low.json()["detail"]
    ok = client.post(
        url, headers={**as_two, "Idempotency-Key": str(uuid.uuid4())}, json={"amount_fen": 10_500}
    )
    assert ok.status_code == 201, ok.text

    seen = client.get(f"/api/v1/auctions/{auction_id}", headers=as_one).json()
    assert seen["current_fen"] == 10_500 and seen["minimum_bid_fen"] == 11_000
    assert seen["leading"]["bidder_no"] == 2 and seen["leading"]["bidder_id"] is None
    assert [b["mine"] for b in seen["history"]] == [False, True]
    assert 0 < seen["seconds_left"] <= 3_600

    early = client.post(f"/api/v1/auctions/{auction_id}/close", headers=as_seller)
    assert early.status_code == 409 and "EXC-AUC-STATE" in early.json()["detail"]
    nobody = client.post(f"/api/v1/auctions/{auction_id}/close", headers=as_one)
    assert nobody.status_code == 403
    cancel = client.post(f"/api/v1/auctions/{auction_id}/cancel", headers=as_seller)
    assert cancel.status_code == 409  # it has bids

    listed = client.get("/api/v1/auctions?status=open", headers=as_two).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == auction_id
    mine = client.get("/api/v1/auctions?mine=true", headers=bearer(client, world.buyer())).json()
    assert mine["total"] == 0


def test_the_seller_closes_after_the_deadline_and_the_winner_s_contract_is_there(
    client, db, world, create, bid
):
    listing_id = world.listing(price_fen=10_000)
    past = datetime.now(UTC) - timedelta(hours=2)
    a = create(world.p(world.seller), listing_id, now=past, ends_at=past + timedelta(hours=1))
    winner = world.buyer()
    bid(world.p(winner), a.id, 12_000, now=past + timedelta(minutes=5))
    r = client.post(f"/api/v1/auctions/{a.id}/close", headers=bearer(client, world.seller))
    assert r.status_code == 200, r.text
    closed = r.json()
    assert closed["status"] == "closed" and closed["contract_number"].startswith("GX-DC-")
    assert balances(db, winner.party_id) == (1_000_000 - 12_000, 12_000)
    again = client.post(f"/api/v1/auctions/{a.id}/close", headers=bearer(client, world.operator))
    assert again.status_code == 200 and again.json()["contract_id"] == closed["contract_id"]
    contract = client.get(
        f"/api/v1/contracts/{closed['contract_id']}", headers=bearer(client, winner)
    )
    assert contract.status_code == 200 and contract.json()["kind"] == "auction"


def test_the_command_line_closes_due_auctions_and_shows_them(
    db, world, create, bid, settings, monkeypatch
):
    monkeypatch.setenv("DATAFACTOR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DATAFACTOR_VAR_DIR", str(settings.var_dir))
    from datafactor.settings import get_settings

    get_settings.cache_clear()
    past = datetime.now(UTC) - timedelta(hours=2)
    a = create(
        world.p(world.seller),
        world.listing(price_fen=10_000),
        now=past,
        ends_at=past + timedelta(hours=1),
    )
    bid(world.p(world.buyer()), a.id, 10_000, now=past + timedelta(minutes=1))
    runner = CliRunner()
    result = runner.invoke(cli_app, ["exchange", "auctions", "close-due", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "opened": 0,
        "sold": [a.number],
        "unsold": [],
        "failed": [],
    }
    result = runner.invoke(cli_app, ["exchange", "auctions", "show", a.number, "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["status"] == "closed" and shown["contract_number"].startswith("GX-DC-")
    assert shown["history"][0]["bidder_id"]  # the operator sees who bid
    result = runner.invoke(
        cli_app,
        [
            "exchange",
            "auctions",
            "bid",
            a.number,
            "--as",
            world.seller.username,
            "--amount",
            "200",
            "--key",
            "k1",
        ],
    )
    assert result.exit_code == 2  # refused: one line, no traceback
    assert auctions.settings()["poll_seconds"] == 2
    get_settings.cache_clear()
