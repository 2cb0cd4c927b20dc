"""The demo province holds usable sandbox grants: the bank over the power grid's household
electricity data (the trust's grant: an aggregate query runs and is held for the grid's review)
and over the grid's credit scores (the exchange contract: exact aggregates over groups of at
least k); loading twice changes nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from datafactor.db import Database
from datafactor.demo.loader import demo_principals, load_demo
from datafactor.demo.sandbox import EXAMPLE_SQL, SCORES_SQL, TABLE
from datafactor.exchange.models import ExchangeContract, ExchangeDelivery
from datafactor.sandbox import services
from datafactor.sandbox.models import SandboxProfile
from datafactor.settings import Settings


def test_the_demo_bank_runs_an_aggregate_over_the_grid_households(
    db: Database, settings: Settings
) -> None:
    load_demo(db, settings=settings)
    people = demo_principals(db)
    bank = people["bank.risk"]
    with db.read() as s:
        grants = [g.as_dict() for g in services.list_sandbox_grants(s, bank)]
    usable = [g for g in grants if g["usable"] and g["tables"][0]["name"] == TABLE]
    assert len(usable) == 1, grants
    grant = usable[0]
    roles = {c["name"]: c["role"] for c in grant["tables"][0]["columns"]}
    assert roles["脱敏户号"] == "privacy_unit" and roles["用电量千瓦时"] == "measure"
    assert grant["k"] == 10 and grant["epsilon_total"] == 1.0 and grant["review"]

    answer = services.run_query(db, settings, bank, grant["id"], EXAMPLE_SQL)
    assert answer.decision == "allowed", answer.reasons
    assert answer.held and answer.rows == []  # held until the grid releases it
    assert answer.epsilon_spent == 0.5
    grid = people["grid.admin"]
    with db.write() as s:
        row = services.review_query(s, grid, answer.id or "", release=True)
        shown = services.query_dict(row, bank)
    assert shown["state"] == "released" and shown["columns"] == ["county", "households", "kwh"]
    # Each county has hundreds of households: every one clears the noisy threshold, and the
    # noisy averages stay within the profile's bounds.
    assert len(shown["rows"]) == 6 and len({row[0] for row in shown["rows"]}) == 6
    assert all(0 <= row[2] <= 1000 for row in shown["rows"])

    # The bank's sandbox subscription on the exchange is a sandbox grant too (kind contract): no
    # ε in its policy, so exact answers over industries of at least k = 10 enterprises.
    contracts = [g for g in grants if g["kind"] == "contract"]
    assert len(contracts) == 1 and contracts[0]["usable"] and contracts[0]["k"] == 10
    scores = services.run_query(db, settings, bank, contracts[0]["id"], SCORES_SQL)
    assert scores.decision == "allowed" and not scores.held and scores.epsilon_spent == 0
    assert len(scores.rows) == 5 and sum(row[1] for row in scores.rows) == 120
    wrong = services.run_query(db, settings, bank, contracts[0]["id"], EXAMPLE_SQL)
    assert wrong.decision == "refused" and wrong.reasons[0]["rule"] == "SBX-Q-TABLES"
    # The computation is the contract's delivery (the refused query is none): its acceptance
    # period runs, so it is never terminated as never delivered.
    with db.read() as s:
        contract = s.get(ExchangeContract, contracts[0]["id"])
        delivered = s.scalars(
            select(ExchangeDelivery).where(ExchangeDelivery.contract_id == contract.id)
        ).all()
    assert contract.delivered_at is not None
    assert [(d.channel, d.decision, d.rows) for d in delivered] == [("sandbox", "allowed", 5)]

    load_demo(db, settings=settings)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(SandboxProfile)) == 2
