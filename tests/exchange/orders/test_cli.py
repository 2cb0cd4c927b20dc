"""``datafactor exchange order`` / ``orders`` / ``order-cancel`` on both databases: the same
use cases as the API, JSON as the API answers, idempotent on ``--key``, refusals with exit code
2 and the reason."""

from __future__ import annotations

import json

from factories import make_actor
from orders_support import balances, fund


def test_order_list_and_cancel_from_the_command_line(run, market):
    listing_id = market.listing(price_fen=5_000, quantity=2)
    buyer = make_actor(market.db)
    fund(market.db, buyer.party_id, 20_000)
    args = ("exchange", "order", listing_id, "--quantity", "2", "--key", "cli-1")
    first = run(*args, "--as", buyer.username, "--json")
    assert first.exit_code == 0, first.output
    order = json.loads(first.stdout)
    assert (order["status"], order["amount_fen"], order["quantity"]) == ("contracted", 10_000, 2)
    again = run(*args, "--as", buyer.username, "--json")
    assert json.loads(again.stdout)["id"] == order["id"]
    assert balances(market.db, buyer.party_id) == (10_000, 10_000)

    listed = run("exchange", "orders", "--json")  # as the operator: every order
    page = json.loads(listed.stdout)
    assert page["total"] == 1 and page["items"][0]["id"] == order["id"]
    mine = json.loads(run("exchange", "orders", "--as", buyer.username, "--json").stdout)
    assert mine["total"] == 1
    other = make_actor(market.db)
    theirs = json.loads(run("exchange", "orders", "--as", other.username, "--json").stdout)
    assert theirs["total"] == 0

    cancelled = run("exchange", "order-cancel", order["id"], "--as", buyer.username, "--json")
    assert cancelled.exit_code == 0, cancelled.output
    assert json.loads(cancelled.stdout)["status"] == "cancelled"
    assert balances(market.db, buyer.party_id) == (20_000, 0)


def test_refusals_exit_2_with_the_reason(run, market):
    listing_id = market.listing(price_fen=5_000, quantity=1)
    buyer = make_actor(market.db)
    fund(market.db, buyer.party_id, 1_000)
    r = run("exchange", "order", listing_id, "--key", "k", "--as", buyer.username)
    assert r.exit_code == 2 and "SET-FUNDS" in r.stderr
    r = run("exchange", "order", listing_id, "--as", buyer.username)
    assert r.exit_code == 2 and "EXC-ORDER-KEY" in r.stderr
    r = run("exchange", "order", listing_id, "-n", "0", "--key", "k", "--as", buyer.username)
    assert r.exit_code == 2 and "EXC-ORDER-QUANTITY" in r.stderr
    r = run("exchange", "order", listing_id, "--key", "k", "--as", "nobody")
    assert r.exit_code == 2
