"""``datafactor settlement …`` on both databases: ``reconcile --json`` prints exactly the five
keys and exits 0 when the books balance and 1 when they do not; deposits and withdrawals are
idempotent on their key; accounts and statements print what the books hold."""

from __future__ import annotations

import json

from sqlalchemy import text


def test_reconcile_json_is_exactly_the_stable_shape(run, fund):
    fund(12_345)
    result = run("settlement", "reconcile", "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert list(answer) == ["balanced", "sum_fen", "journals", "accounts", "problems"]
    # the party's two accounts and the exchange's: the custody bank account, and fee income,
    # commissions and treasury revenue in 8 sub-accounts each
    assert answer == {"balanced": True, "sum_fen": 0, "journals": 1, "accounts": 27, "problems": []}


def test_reconcile_exits_1_and_names_the_account_when_the_books_do_not_balance(run, db, fund):
    fund(1_000)
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE settlement_balance SET balance_fen = balance_fen - 7 WHERE account_id = 'sys:bank'"
            )
        )
    result = run("settlement", "reconcile", "--json")
    assert result.exit_code == 1
    answer = json.loads(result.stdout)
    assert answer["balanced"] is False and answer["sum_fen"] == -7
    problem = next(p for p in answer["problems"] if p["check"] == "account-balance")
    assert problem["account"] == "sys:bank" and problem["difference"] == -7
    human = run("settlement", "reconcile")
    assert human.exit_code == 1 and "NOT balanced" in human.stdout


def test_deposit_withdraw_accounts_and_statement(run, db, enterprise):
    party = enterprise.party_id
    first = run(
        "settlement", "deposit", "--party", party, "--amount-fen", "50000", "--key", "bank-1"
    )
    assert first.exit_code == 0, first.output
    assert "¥500.00" in first.stdout and "replayed" not in first.stdout
    again = run(
        "settlement", "deposit", "--party", party, "--amount-fen", "50000", "--key", "bank-1"
    )
    assert "replayed" in again.stdout
    too_much = run(
        "settlement", "withdraw", "--party", party, "--amount-fen", "60000", "--key", "w-1"
    )
    assert too_much.exit_code == 2 and "SET-FUNDS" in too_much.output
    out = run("settlement", "withdraw", "--party", party, "--amount-fen", "20000", "--key", "w-2")
    assert out.exit_code == 0
    listed = json.loads(run("settlement", "accounts", "--party", party, "--json").stdout)
    available = next(a for a in listed if a["kind"] == "available")
    assert available["balance_fen"] == 30_000 and available["lines"] == 2
    system = json.loads(run("settlement", "accounts", "--party", "system", "--json").stdout)
    assert {a["id"]: a["balance_fen"] for a in system}["sys:bank"] == -30_000
    everything = json.loads(run("settlement", "accounts", "--json").stdout)
    assert {a["id"] for a in everything} >= {available["id"], "sys:bank"}
    statement = run("settlement", "statement", available["id"], "--csv")
    rows = statement.stdout.strip().splitlines()
    assert rows[0].startswith("seq,posted_at_cst") and rows[-1].endswith(",30000,300.00")
    table = run("settlement", "statement", available["id"])
    assert "¥300.00" in table.stdout and "2 line(s)" in table.stdout
    missing = run("settlement", "statement", "no-such-account")
    assert missing.exit_code == 2
    bad = run("settlement", "statement", available["id"], "--from", "yesterday")
    assert bad.exit_code == 2
