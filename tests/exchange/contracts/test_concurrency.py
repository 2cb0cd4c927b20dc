"""Several processes at once: two deadline clocks over the same contracts terminate and release
each exactly once; buyer and seller signing at the same moment give one signed contract with one
ledger entry."""

from __future__ import annotations

import threading
from datetime import timedelta

from contracts_support import NOW, events, hold, load

from datafactor.exchange import contracts, jobs


def in_threads(*targets):
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(targets))

    def wrap(fn):
        def run():
            try:
                barrier.wait()
                fn()
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        return run

    threads = [threading.Thread(target=wrap(fn)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_two_clocks_at_once_handle_each_contract_once(world, open_for):
    ids = [open_for() for _ in range(4)]
    later = NOW + timedelta(days=8)
    reports = []
    errors = in_threads(
        lambda: reports.append(jobs.run_deadlines(world.db, later)),
        lambda: reports.append(jobs.run_deadlines(world.db, later)),
    )
    assert errors == []
    assert sum(len(r.failed) for r in reports) == 0
    moved = [d.contract_id for r in reports for d in r.done if d.action is not None]
    assert sorted(moved) == sorted(ids)  # each moved by exactly one of the two
    for contract_id in ids:
        assert load(world, contract_id).state == "terminated"
        assert [e for e in events(world, contract_id) if e[0] == "expire"] == [
            ("expire", "accepted", "terminated")
        ]
        assert hold(world, contract_id)["released_fen"] == 10_000


def test_buyer_and_seller_signing_together_sign_once(world, open_for):
    contract_id = open_for()

    def sign(actor):
        def run():
            with world.db.write() as s:
                contracts.sign_contract(
                    s, world.p(actor), contract_id, keys=world.keys, confirm=True, now=NOW
                )

        return run

    assert in_threads(sign(world.buyer), sign(world.seller)) == []
    row = load(world, contract_id)
    assert row.state == "active" and row.ledger_index is not None
    assert [e[:3] for e in events(world, contract_id)].count(("sign", "accepted", "signed")) == 1
    assert all(c.valid for c in contracts.signature_checks(row))
