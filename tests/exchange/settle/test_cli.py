"""``datafactor exchange settle-due | settlement | dashboard`` (both databases): the run settles
every completed contract once, replays on its key, and the books reconcile."""

from __future__ import annotations

import json

from exchange_settle_support import books_balanced, completed_contract


def test_settle_due_settles_once_and_shows_the_split(run, db, world):
    listing = world.listing(price_fen=5_000)
    ids = [
        completed_contract(db, listing, world.buyer.party_id, amount_fen=5_000) for _ in range(3)
    ]
    first = run("exchange", "settle-due", "--key", "cli-run-1", "--json")
    assert first.exit_code == 0, first.output
    body = json.loads(first.stdout)
    assert body["settled"] == 3 and body["paid_fen"] == 15_000 and not body["replayed"]
    again = run("exchange", "settle-due", "--key", "cli-run-1", "--json")
    assert json.loads(again.stdout)["replayed"] is True
    assert json.loads(again.stdout)["paid_fen"] == 15_000
    nothing = run("exchange", "settle-due", "--key", "cli-run-2", "--json")
    assert json.loads(nothing.stdout)["settled"] == 0

    shown = run("exchange", "settlement", ids[0], "--json")
    assert shown.exit_code == 0, shown.output
    split = json.loads(shown.stdout)
    assert split["settled"] and sum(p["amount_fen"] for p in split["parts"]) == 5_000
    seller = run("exchange", "dashboard", "--as", world.seller.username, "--json")
    assert json.loads(seller.stdout)["settled_income_fen"] == 3 * 4_900
    operator = run("exchange", "dashboard", "--json")
    assert json.loads(operator.stdout)["fee_income_fen"] == 300
    assert run("exchange", "settlement", ids[0], "--as", world.outsider.username).exit_code == 2
    books_balanced(db)


def test_a_refused_contract_makes_the_run_exit_1(run, db, world):
    greedy = world.listing(
        price_fen=100,
        revenue_sharing=[
            {
                "party_id": world.partner.party_id,
                "stage": "circulation",
                "mode": "commission",
                "fen": 1_000,
            }
        ],
    )
    completed_contract(db, greedy, world.buyer.party_id, amount_fen=100)
    result = run("exchange", "settle-due", "--key", "cli-run-3", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["refused"][0]["rule"] == "EXC-SETTLE-SHARING"
    books_balanced(db)
