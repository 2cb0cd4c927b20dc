"""Bad input and the last of a budget, on SQLite and PostgreSQL (issue 8, "Bad input"): a grant
past its term or out of uses, an ε over the budget, SQL that does not parse — each refused with
its reason in both languages, recorded, with nothing spent (no ε, no use counted); the audit trail
carries each query's text, decision, ε and result hash; a grant whose ε is spent says so in the
integrators' list; and queries racing for the last ε: exactly one runs.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from threading import Barrier

from sandbox_support import another_grant, offer_world
from sqlalchemy import select

from datafactor.audit import AuditEvent
from datafactor.db import today_cn, utcnow
from datafactor.policy.grants import get_grant
from datafactor.sandbox import services
from datafactor.sandbox.domain import Limits
from datafactor.sandbox.models import SandboxBudget, SandboxQuery

COUNT = "SELECT COUNT(*) AS n FROM households"


def _spent(db, grant_id: str) -> int:
    with db.read() as s:
        row = s.scalar(select(SandboxBudget).where(SandboxBudget.grant_ref == grant_id))
        return 0 if row is None else row.spent_micro


def _uses(db, who, grant_id: str) -> int:
    with db.read() as s:
        return get_grant(s, who, grant_id).uses


def _states(db, grant_id: str) -> list[str]:
    with db.read() as s:
        rows = s.scalars(
            select(SandboxQuery.state)
            .where(SandboxQuery.grant_ref == grant_id)
            .order_by(SandboxQuery.created_at)
        )
        return list(rows)


def test_an_expired_or_used_up_grant_is_refused_with_its_reason_and_nothing_spent(
    db, settings, tmp_path, enterprise, other_enterprise, operator
) -> None:
    w = offer_world(db, settings, tmp_path, enterprise, other_enterprise, operator, epsilon=1.0)
    with db.read() as s:
        term_end = services.sandbox_grant(s, w.grantee, w.grant_id).term_end

    # Past the grant's term: the policy's reason, in English and Chinese; nothing spent.
    later = utcnow() + (term_end - today_cn()) + timedelta(days=2)
    expired = services.run_query(db, settings, w.grantee, w.grant_id, COUNT, now=later)
    assert expired.decision == "refused" and expired.epsilon_spent == 0
    assert expired.reasons and all(r["en"] and r["zh"] for r in expired.reasons)
    assert term_end.isoformat() in expired.reasons[0]["en"]
    assert _spent(db, w.grant_id) == 0 and _uses(db, w.grantee, w.grant_id) == 0

    # Over the budget and malformed: refused before the grant's use is counted.
    for sql, epsilon in ((COUNT, 1.5), ("SELEC COUNT(*) FROM households", None)):
        refused = services.run_query(db, settings, w.grantee, w.grant_id, sql, epsilon=epsilon)
        assert refused.decision == "refused" and refused.epsilon_spent == 0
    assert _spent(db, w.grant_id) == 0 and _uses(db, w.grantee, w.grant_id) == 0
    assert _states(db, w.grant_id) == ["refused"] * 3  # each recorded

    # A grant whose policy allows one use: the second query is refused, spending nothing more.
    once = another_grant(
        db, settings, w, w.grantee.party_id, max_uses=1, min_group_size=5, epsilon=Decimal(1)
    )
    first = services.run_query(db, settings, w.grantee, once, COUNT, epsilon=0.25)
    assert first.decision == "allowed" and _uses(db, w.grantee, once) == 1
    second = services.run_query(db, settings, w.grantee, once, COUNT, epsilon=0.25)
    assert second.decision == "refused" and second.epsilon_spent == 0
    assert second.reasons and all(r["en"] and r["zh"] for r in second.reasons)
    assert _spent(db, once) == 250_000 and _uses(db, w.grantee, once) == 1
    assert _states(db, once) == ["released", "refused"]

    # The audit trail says it on its own, for both parties: text, decision, ε, result hash.
    with db.read() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.object_id == first.id)))
    assert {e.party_id for e in events} == {w.holder.party_id, w.grantee.party_id}
    assert all(
        COUNT in e.summary and "released (ε 0.25)" in e.summary and first.result_hash in e.summary
        for e in events
    )


def test_a_failed_run_under_k_only_speaks_of_no_refund(
    db, settings, tmp_path, enterprise, other_enterprise, operator, monkeypatch
) -> None:
    w = offer_world(db, settings, tmp_path, enterprise, other_enterprise, operator)
    monkeypatch.setattr(services, "worker_limits", lambda: Limits(max_result_rows=1))
    sql = "SELECT county, COUNT(*) AS n FROM households GROUP BY county"
    failed = services.run_query(db, settings, w.grantee, w.grant_id, sql)
    assert failed.state == "failed" and failed.epsilon_spent == 0
    rules = [r["rule"] for r in failed.reasons]
    assert rules and "SBX-BUD-REFUND" not in rules  # nothing was charged, nothing refunded


def test_an_epsilon_asked_of_a_grant_without_differential_privacy_is_refused(
    db, settings, tmp_path, enterprise, other_enterprise, operator
) -> None:
    # A k-only grant adds no noise: a buyer asking for ε would otherwise believe the answer
    # noised. Told so, and nothing run or counted.
    w = offer_world(db, settings, tmp_path, enterprise, other_enterprise, operator)
    refused = services.run_query(db, settings, w.grantee, w.grant_id, COUNT, epsilon=0.5)
    assert refused.decision == "refused" and refused.rows == [] and refused.epsilon_spent == 0
    (reason,) = refused.reasons
    assert (
        reason["rule"] == "SBX-BUD-CAP"
        and "without ε" in reason["en"]
        and "不指定 ε" in reason["zh"]
    )
    assert _uses(db, w.grantee, w.grant_id) == 0 and _states(db, w.grant_id) == ["refused"]
    assert services.run_query(db, settings, w.grantee, w.grant_id, COUNT).decision == "allowed"


def test_a_spent_budget_makes_the_grant_unusable_in_the_list(
    db, settings, tmp_path, enterprise, other_enterprise, operator
) -> None:
    w = offer_world(db, settings, tmp_path, enterprise, other_enterprise, operator, epsilon=0.5)
    with db.read() as s:
        (listed,) = [g.as_dict() for g in services.list_sandbox_grants(s, w.grantee)]
    assert listed["usable"] and listed["budget_left"] == 0.5 and listed["reasons"] == []
    assert services.run_query(db, settings, w.grantee, w.grant_id, COUNT).decision == "allowed"
    with db.read() as s:
        (listed,) = [g.as_dict() for g in services.list_sandbox_grants(s, w.grantee)]
    assert listed["budget_left"] == 0 and listed["usable"] is False
    assert [r["rule"] for r in listed["reasons"]] == ["SBX-BUD-TOTAL"]


def test_two_queries_racing_for_the_last_epsilon_run_exactly_one(
    db, settings, tmp_path, enterprise, other_enterprise, operator, monkeypatch
) -> None:
    w = offer_world(db, settings, tmp_path, enterprise, other_enterprise, operator, epsilon=1.0)

    # Both are checked (enough left) before either charges: only one can take the ε under the
    # budget's row lock — the first two queries (the account is opened by both at once), then
    # two for what is left.
    both_checked = Barrier(2)
    check = services._check

    def checked_together(*args, **kwargs):  # type: ignore[no-untyped-def]
        found = check(*args, **kwargs)
        both_checked.wait(timeout=60)
        return found

    monkeypatch.setattr(services, "_check", checked_together)

    def race(epsilon: float) -> None:
        def attempt(_: int) -> services.QueryAnswer:
            return services.run_query(db, settings, w.grantee, w.grant_id, COUNT, epsilon=epsilon)

        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(pool.map(attempt, range(2)))
        assert sorted(a.decision for a in answers) == ["allowed", "refused"]
        (refused,) = [a for a in answers if a.decision == "refused"]
        assert [r["rule"] for r in refused.reasons] == ["SBX-BUD-TOTAL"]
        assert refused.epsilon_spent == 0

    race(0.6)
    assert _spent(db, w.grant_id) == 600_000 and _uses(db, w.grantee, w.grant_id) == 1
    race(0.4)
    assert _spent(db, w.grant_id) == 1_000_000 and _uses(db, w.grantee, w.grant_id) == 2
