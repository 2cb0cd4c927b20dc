"""The sandbox's use cases on SQLite and PostgreSQL, on a world the pilot's own tool builds: the
holder's profile and its refusals, k suppression, every refusal spending nothing, the budget
charged, exhausted and refunded, the differencing attack, and who sees the record."""

from __future__ import annotations

import pytest
from factories import make_actor
from registry_support import principal
from sandbox_support import SMALL_COUNTY, offer_world
from sqlalchemy import select

from datafactor.audit import AuditEvent
from datafactor.identity import PartyKind
from datafactor.sandbox import services
from datafactor.sandbox.domain import Limits
from datafactor.sandbox.errors import (
    SandboxForbidden,
    SandboxInvalid,
    SandboxNotFound,
    SandboxStateConflict,
)
from datafactor.sandbox.models import SandboxBudget, SandboxProfile, SandboxQuery

BY_COUNTY = "SELECT county, COUNT(*) AS n, SUM(kwh) AS kwh FROM households GROUP BY county"


def _rules(answer: services.QueryAnswer) -> set[str]:
    return {r["rule"] for r in answer.reasons}


def _spent(db, grant_id: str) -> int:
    with db.read() as s:
        row = s.scalar(select(SandboxBudget).where(SandboxBudget.grant_ref == grant_id))
        return 0 if row is None else row.spent_micro


def test_profiles_are_declared_by_the_holder_and_checked(
    db, settings, tmp_path, enterprise, other_enterprise, operator
) -> None:
    w = offer_world(db, settings, tmp_path, enterprise, other_enterprise, operator)
    with db.read() as s:
        profile = services.get_profile(s, w.holder, w.asset_id)
        roles = {c["name"]: c["role"] for c in profile.columns}
    assert roles == {
        "account": "privacy_unit",
        "name": "identifier",
        "county": "group_key",
        "kwh": "measure",
    }

    def declare(who, *columns: services.ColumnDraft) -> None:
        draft = services.ProfileDraft(w.asset_id, "households", columns)
        with db.write() as s:
            services.declare_profile(s, who, draft, settings=settings)

    unit = services.ColumnDraft("account", "privacy_unit")
    with pytest.raises(SandboxInvalid, match="Exactly one column"):
        declare(w.holder, unit, services.ColumnDraft("name", "privacy_unit"))
    with pytest.raises(SandboxInvalid, match="not a number"):
        declare(w.holder, unit, services.ColumnDraft("name", "measure", 0, 1))
    with pytest.raises(SandboxInvalid, match="lower < upper"):
        declare(w.holder, unit, services.ColumnDraft("kwh", "measure", 5, 5))
    with pytest.raises(SandboxInvalid, match="no column named"):
        declare(w.holder, unit, services.ColumnDraft("salary", "measure", 0, 9))
    with pytest.raises(SandboxForbidden):
        declare(w.grantee, unit)

    # Without a profile every query over the asset is refused, naming the rule; nothing is run.
    with db.write() as s:
        s.delete(s.scalar(select(SandboxProfile).where(SandboxProfile.asset_id == w.asset_id)))
    answer = services.run_query(db, settings, w.grantee, w.grant_id, BY_COUNTY)
    assert answer.decision == "refused" and "SBX-GRT-PROFILE" in _rules(answer)
    assert "has not declared" in answer.reasons[0]["en"]


def test_k_suppression_refusals_and_visibility(
    db, settings, tmp_path, enterprise, other_enterprise, operator, regulator
) -> None:
    w = offer_world(db, settings, tmp_path, enterprise, other_enterprise, operator, k=5)
    answer = services.run_query(db, settings, w.grantee, w.grant_id, BY_COUNTY)
    assert answer.decision == "allowed" and answer.epsilon_spent == 0
    counties = {row[0] for row in answer.rows}
    assert len(counties) == 3 and int(SMALL_COUNTY) not in counties  # 3 households < k
    assert all(row[1] == 20 for row in answer.rows)

    for sql, rule in (
        ("SELEC county FROM households", "SBX-Q-SYNTAX"),
        ("SELECT COUNT(*) AS n FROM salaries", "SBX-Q-TABLES"),
        ("SELECT account, COUNT(*) AS n FROM households GROUP BY account", "SBX-Q-GROUPKEY"),
        ("SELECT MAX(name) AS m FROM households", "SBX-Q-INDIVIDUAL"),
    ):
        refused = services.run_query(db, settings, w.grantee, w.grant_id, sql)
        assert refused.decision == "refused" and rule in _rules(refused), (sql, refused.reasons)
        assert refused.rows == [] and refused.epsilon_spent == 0
    with db.read() as s:
        rows = list(s.scalars(select(SandboxQuery).order_by(SandboxQuery.created_at)))
        assert [r.state for r in rows] == ["released"] + ["refused"] * 4
        assert rows[0].result_hash and rows[0].ledger_index is not None
        events = s.scalars(select(AuditEvent).where(AuditEvent.object_id == rows[0].id))
        assert {e.party_id for e in events} == {w.holder.party_id, w.grantee.party_id}

    stranger = principal(db, make_actor(db, PartyKind.ENTERPRISE))
    with db.read() as s:
        for who in (w.grantee, w.holder, principal(db, regulator)):
            assert services.get_query(s, who, rows[0].id).id == rows[0].id
            assert services.list_queries(s, who)[1] == 5
        with pytest.raises(SandboxNotFound):
            services.get_query(s, stranger, rows[0].id)
        assert services.list_queries(s, stranger)[1] == 0
        assert services.list_sandbox_grants(s, stranger) == []


def test_budget_charged_exhausted_refunded_and_differencing(
    db, settings, tmp_path, enterprise, other_enterprise, operator, monkeypatch
) -> None:
    w = offer_world(db, settings, tmp_path, enterprise, other_enterprise, operator, epsilon=1.0)
    with db.read() as s:
        preview = services.preview_query(s, w.grantee, w.grant_id, BY_COUNTY)
    assert preview["decision"] == "allowed" and preview["epsilon"] == 0.5
    assert preview["columns"] == ["county", "n", "kwh"] and _spent(db, w.grant_id) == 0

    # Differencing: the same count with and without one individual. The filter on the privacy
    # unit is refused (nothing spent); the two totals that remain possible are noisy.
    everyone = "SELECT COUNT(*) AS n FROM households"
    but_one = "SELECT COUNT(*) AS n FROM households WHERE account <> 'JM-00001'"
    refused = services.run_query(db, settings, w.grantee, w.grant_id, but_one)
    assert refused.decision == "refused" and "SBX-Q-FILTER" in _rules(refused)
    assert _spent(db, w.grant_id) == 0
    first = services.run_query(db, settings, w.grantee, w.grant_id, everyone, epsilon=0.4)
    assert first.decision == "allowed" and first.epsilon_spent == 0.4
    assert _spent(db, w.grant_id) == 400_000

    # A run that fails (here: over the result cap) refunds its ε.
    monkeypatch.setattr(services, "worker_limits", lambda: Limits(max_result_rows=1))
    failed = services.run_query(db, settings, w.grantee, w.grant_id, BY_COUNTY, epsilon=0.5)
    assert failed.state == "failed" and "SBX-BUD-REFUND" in _rules(failed)
    assert _spent(db, w.grant_id) == 400_000
    monkeypatch.undo()

    over = services.run_query(db, settings, w.grantee, w.grant_id, everyone, epsilon=0.7)
    assert over.decision == "refused" and "SBX-BUD-TOTAL" in _rules(over)
    capped = services.run_query(db, settings, w.grantee, w.grant_id, everyone, epsilon=5)
    assert capped.decision == "refused" and "SBX-BUD-CAP" in _rules(capped)
    assert _spent(db, w.grant_id) == 400_000
    last = services.run_query(db, settings, w.grantee, w.grant_id, everyone, epsilon=0.6)
    assert last.decision == "allowed" and _spent(db, w.grant_id) == 1_000_000
    done = services.run_query(db, settings, w.grantee, w.grant_id, everyone, epsilon=0.1)
    assert done.decision == "refused" and "SBX-BUD-TOTAL" in _rules(done)
    with db.read() as s:
        grant = services.sandbox_grant(s, w.grantee, w.grant_id)
    assert grant.budget_left == 0


def test_held_results_wait_for_the_holder(
    db, settings, tmp_path, enterprise, other_enterprise, operator, regulator
) -> None:
    w = offer_world(
        db, settings, tmp_path, enterprise, other_enterprise, operator, k=5, review=True
    )
    first = services.run_query(db, settings, w.grantee, w.grant_id, BY_COUNTY)
    assert first.decision == "allowed" and first.held and first.state == "held"
    assert first.rows == [] and "SBX-OUT-REVIEW" in _rules(first)
    second = services.run_query(db, settings, w.grantee, w.grant_id, BY_COUNTY)
    with db.read() as s:
        row = services.get_query(s, w.grantee, first.id or "")
        assert services.query_dict(row, w.grantee)["rows"] == []  # not yet for the grantee
        assert len(services.query_dict(row, w.holder)["rows"]) == 3  # the holder reviews it
        assert inbox_kinds(s, w.holder.party_id) == ["sandbox.query", "sandbox.query"]
    with db.write() as s, pytest.raises(SandboxForbidden):
        services.review_query(s, w.grantee, first.id or "", release=True)
    with db.write() as s, pytest.raises(SandboxForbidden):
        services.review_query(s, principal(db, regulator), first.id or "", release=True)
    with db.write() as s:
        services.review_query(s, w.holder, first.id or "", release=True)
        services.review_query(s, w.holder, second.id or "", release=False, note="过细")
    with db.read() as s:
        released = services.query_dict(services.get_query(s, w.grantee, first.id or ""), w.grantee)
        withheld = services.query_dict(services.get_query(s, w.grantee, second.id or ""), w.grantee)
        assert inbox_kinds(s, w.grantee.party_id) == ["sandbox.query", "sandbox.query"]
    assert released["state"] == "released" and len(released["rows"]) == 3
    assert withheld["state"] == "withheld" and withheld["rows"] == []
    assert withheld["review_note"] == "过细"
    with db.write() as s, pytest.raises(SandboxStateConflict):
        services.review_query(s, w.holder, first.id or "", release=False)


def inbox_kinds(session, party_id: str) -> list[str]:
    from datafactor.inbox.models import InboxMessage

    rows = session.scalars(select(InboxMessage.kind).where(InboxMessage.party_id == party_id))
    return sorted(k for k in rows if k.startswith("sandbox"))


@pytest.mark.spark
def test_a_large_data_set_runs_on_spark_with_the_same_answer(
    db, settings, tmp_path, enterprise, other_enterprise, operator
) -> None:
    w = offer_world(db, settings, tmp_path, enterprise, other_enterprise, operator, k=5)
    on_duckdb = services.run_query(db, settings, w.grantee, w.grant_id, BY_COUNTY)
    with db.read() as s:
        profile = services.get_profile(s, w.holder, w.asset_id)
        columns = tuple(
            services.ColumnDraft(c["name"], c["role"], c.get("lower"), c.get("upper"))
            for c in profile.columns
        )
    draft = services.ProfileDraft(w.asset_id, "households", columns, large=True)
    with db.write() as s:
        services.declare_profile(s, w.holder, draft, settings=settings)
    on_spark = services.run_query(db, settings, w.grantee, w.grant_id, BY_COUNTY)
    assert (on_duckdb.engine, on_spark.engine) == ("duckdb", "spark")
    assert on_spark.decision == "allowed", on_spark.reasons
    assert sorted(on_spark.rows) == sorted(on_duckdb.rows)
