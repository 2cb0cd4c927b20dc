"""The demo province's electricity data trust: loaded through the services after the registry
pilots, with the bank's sandbox grant over the grid's household electricity data (issue 8 builds
on it), income split exactly; a second load writes nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from datafactor.audit import AuditEvent
from datafactor.db import Database
from datafactor.demo.loader import demo_principals, load_demo
from datafactor.demo.trusts import ASSET_NAME, DEED_TITLE, GRANT_FEE_FEN, load_trusts
from datafactor.ledger.models import LedgerEntry
from datafactor.policy import grants
from datafactor.policy.trusts import services
from datafactor.policy.trusts.models import PolicyTrustDistribution, PolicyTrustIncome
from datafactor.settings import Settings


def _snapshot(db: Database) -> tuple[int, ...]:
    with db.read() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(model)) or 0
            for model in (AuditEvent, LedgerEntry, PolicyTrustIncome, PolicyTrustDistribution)
        )


def test_the_grids_electricity_data_trust(db: Database, settings: Settings) -> None:
    load_demo(db, settings=settings)  # the pilots, the grants, and the trust (load_trusts)
    people = demo_principals(db)
    grid, custodian, bank = people["grid.admin"], people["custodian.admin"], people["bank.admin"]
    with db.read() as s:
        rows, total = services.list_deeds(
            s, custodian, services.DeedQuery(role="trustee"), limit=10, offset=0
        )
        assert total == 1
        deed = rows[0]
        assert deed.title == DEED_TITLE and deed.state == "active"
        assert deed.settlor_id == grid.party_id
        assert [a.asset_name for a in services.deed_assets(s, deed.id)] == [ASSET_NAME]
        # The bank's grant over the household electricity data: sandbox only, active.
        found = [g for g in services.deed_grants(s, deed.id) if g.grantee_id == bank.party_id]
        assert len(found) == 1
        grant = found[0]
        assert grant.state == grants.GrantState.ACTIVE.value
        assert grant.regime == grants.Regime.TRUST.value and grant.reference_id == deed.id
        assert grants.policy_scope(grant.policy)["delivery_modes"] == ["sandbox"]
        seen_by_bank = grants.list_grants(s, bank)
        assert grant.id in {g.id for g in seen_by_bank}
        # Income recorded and split exactly; each household representative sees its own line.
        views = services.list_income(s, custodian, deed.id)
        assert sorted(v.income.amount_fen for v in views) == [1_000_001, GRANT_FEE_FEN]
        for view in views:
            assert sum(line.amount_fen for line in view.lines) == view.income.amount_fen
        wei = people["weixiaoming"]
        benefits = services.my_benefits(s, wei)
        assert [b.deed.id for b in benefits] == [deed.id] and benefits[0].pending_fen > 0

    before = _snapshot(db)
    again = load_trusts(db, settings)
    assert not again.changed, again.steps
    assert _snapshot(db) == before
