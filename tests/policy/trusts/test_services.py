"""Data trusts through the services, on both databases: the deed's life, every bad input
refused with its rule and nothing written, income split exactly, amendments versioned, and what
each party sees."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
import registry_support as rs
from factories import make_actor
from sqlalchemy import func, select
from trusts_support import (
    DRAFTED,
    END,
    IN_TERM,
    START,
    Trust,
    another_asset,
    deed_draft,
    drafted,
    established,
    make_trust,
    state_of,
)

from datafactor import inbox, ledger
from datafactor.audit import AuditEvent, verify_chain
from datafactor.db import Database
from datafactor.errors import DomainError, NotFound
from datafactor.identity import PartyKind
from datafactor.policy.trusts import services
from datafactor.policy.trusts.domain import IncomeSource, Share
from datafactor.policy.trusts.models import (
    PolicyTrustDeed,
    PolicyTrustDistribution,
    PolicyTrustIncome,
    PolicyTrustSplit,
)
from datafactor.registry import RegistrationType
from datafactor.registry import services as registry
from datafactor.settings import Settings


@pytest.fixture
def trust(db: Database, settings: Settings) -> Trust:
    return make_trust(db, settings)


def _count(db: Database, model: type) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def _refused(db: Database, call, rule: str) -> DomainError:  # type: ignore[no-untyped-def]
    deeds, audit_events = _count(db, PolicyTrustDeed), _count(db, AuditEvent)
    with pytest.raises(DomainError) as exc, db.write() as s:
        call(s)
    assert getattr(exc.value, "rule", None) == rule, exc.value
    assert _count(db, PolicyTrustDeed) == deeds  # nothing half-written
    assert _count(db, AuditEvent) == audit_events
    return exc.value


# ------------------------------------------------------------------------------- lifecycle


def test_a_deed_is_drafted_signed_accepted_and_takes_effect(db: Database, trust: Trust) -> None:
    deed_id = drafted(db, trust)
    with db.read() as s:
        deed = s.get(PolicyTrustDeed, deed_id)
        assert deed is not None
        assert deed.number.startswith("GX-XT-2026-")
        assert deed.state == "draft" and deed.version == 1
        assert deed.scope["purposes"] == ["credit_finance", "research"]
    with db.write() as s:
        services.sign_deed(s, trust.settlor, deed_id, today=IN_TERM)
    assert state_of(db, deed_id) == "signed"
    with db.read() as s:
        messages, _ = inbox.list_messages(s, trust.trustee, limit=10, offset=0)
        assert any("accept or decline" in m.message for m in messages)
    with db.write() as s:
        services.accept_deed(s, trust.trustee, deed_id, today=IN_TERM)
    # Accepted after its start date: in effect at once.
    assert state_of(db, deed_id) == "active"
    with db.read() as s:
        events = services.deed_events(s, deed_id)
        assert [e.action for e in events] == ["draft", "sign", "accept", "activate"]
        assert all("TRUST-LIFECYCLE" in e.rules for e in events[1:])
        assert "TRUST-PROPERTY" in events[1].rules and "TRUST-SHARES" in events[1].rules
        # Signing and acceptance are in the ledger; the payload names ids, not beneficiaries.
        for event, kind in (
            (events[1], "policy.trust.signed"),
            (events[2], "policy.trust.accepted"),
        ):
            assert event.ledger_index is not None
            entry = json.loads(ledger.get_entry(s, event.ledger_index).entry)
            assert entry["kind"] == kind
            assert entry["payload"]["asset_ids"] == [trust.asset_id]
            assert trust.beneficiary.party_id not in json.dumps(entry)
        messages, _ = inbox.list_messages(s, trust.beneficiary, limit=10, offset=0)
        assert any("beneficiary" in m.message for m in messages)
        assert verify_chain(s).ok


def test_the_clock_activates_and_expires_deeds(db: Database, trust: Trust) -> None:
    deed_id = established(db, trust, on=DRAFTED)  # accepted before its start
    assert state_of(db, deed_id) == "accepted"
    with db.write() as s:
        assert not services.sweep(s, today=START - timedelta(days=1)).changed
    with db.write() as s:
        assert services.sweep(s, today=START).activated
    assert state_of(db, deed_id) == "active"
    with db.write() as s:
        assert not services.sweep(s, today=START).changed  # idempotent
    with db.write() as s:
        report = services.sweep(s, today=END + timedelta(days=1))
    assert report.expired and state_of(db, deed_id) == "expired"


def test_the_trustee_declines_and_the_settlor_edits_and_withdraws(
    db: Database, trust: Trust
) -> None:
    deed_id = drafted(db, trust)
    with db.write() as s:
        services.sign_deed(s, trust.settlor, deed_id, today=DRAFTED)
    with db.write() as s:
        services.decline_deed(s, trust.trustee, deed_id, reason="报酬过低", today=DRAFTED)
    assert state_of(db, deed_id) == "draft"
    with db.write() as s:
        services.edit_deed(
            s, trust.settlor, deed_id, deed_draft(trust, trustee_fee_bp=800), today=DRAFTED
        )
    with db.read() as s:
        deed = services.get_deed(s, trust.settlor, deed_id)
        assert deed.trustee_fee_bp == 800
    with db.write() as s:
        services.withdraw_deed(s, trust.settlor, deed_id, reason="改用其他受托人", today=DRAFTED)
    assert state_of(db, deed_id) == "withdrawn"
    with pytest.raises(DomainError) as exc, db.write() as s:
        services.sign_deed(s, trust.settlor, deed_id, today=DRAFTED)
    assert exc.value.rule == "TRUST-LIFECYCLE"  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------ bad input


def test_bad_deeds_are_refused_with_their_rule_and_nothing_is_written(
    db: Database, settings: Settings, trust: Trust
) -> None:
    other = rs.principal(db, trust.actors["stranger"])
    foreign_asset = rs.new_asset(db, other, rs.scanned_version(db, settings, other))
    cases = [
        (deed_draft(trust, trustee_id=trust.settlor.party_id), "TRUST-PARTIES"),
        (deed_draft(trust, trustee_id="no-such-party"), "TRUST-PARTIES"),
        (deed_draft(trust, asset_ids=(foreign_asset,)), "TRUST-PROPERTY"),
        (deed_draft(trust, asset_ids=("no-such-asset",)), "TRUST-PROPERTY"),
        (deed_draft(trust, asset_ids=()), "TRUST-PROPERTY"),
        (deed_draft(trust, term_end=START - timedelta(days=1)), "TRUST-TERM"),
        (deed_draft(trust, trustee_fee_bp=-1), "TRUST-FEE"),
        (deed_draft(trust, trustee_fee_bp=9000), "TRUST-FEE"),
        (deed_draft(trust, title=" "), "TRUST-DEED"),
        (deed_draft(trust, purpose=""), "TRUST-DEED"),
        (
            deed_draft(trust, scope={"purposes": ["public_welfare"], "regions": ["450000"]}),
            "TRUST-SCOPE",
        ),  # beyond the settlor's registered right
        (
            deed_draft(trust, scope={"purposes": ["marketing"]}),
            "REG-SCOPE-WITHIN",
        ),  # not a purpose the registry knows
        (
            deed_draft(trust, beneficiaries=(Share(trust.settlor.party_id, 9000),)),
            "TRUST-SHARES",
        ),
        (
            deed_draft(
                trust,
                beneficiaries=(
                    Share(trust.settlor.party_id, 10_000),
                    Share(trust.beneficiary.party_id, 0),
                ),
            ),
            "TRUST-SHARES",
        ),
        (
            deed_draft(
                trust,
                beneficiaries=(
                    Share(trust.beneficiary.party_id, 5000),
                    Share(trust.beneficiary.party_id, 5000),
                ),
            ),
            "TRUST-BENEFICIARIES",
        ),
        (
            deed_draft(trust, beneficiaries=(Share("no-such-party", 10_000),)),
            "TRUST-BENEFICIARIES",
        ),
        (
            deed_draft(trust, beneficiaries=(Share(trust.trustee.party_id, 10_000),)),
            "TRUST-TRUSTEE-NOT-SOLE",
        ),
    ]
    for draft, rule in cases:
        error = _refused(
            db, lambda s, d=draft: services.draft_deed(s, trust.settlor, d, today=DRAFTED), rule
        )
        if rule.startswith("TRUST-"):
            assert rule in str(error)  # the message names the rule


def test_a_pledged_right_cannot_be_put_in_trust(
    db: Database, settings: Settings, trust: Trust
) -> None:
    pledge = registry.ApplicationDraft(
        type=RegistrationType.PLEDGE,
        asset_id=trust.asset_id,
        right_id=trust.right_id,
        counterparty_id=trust.stranger.party_id,
    )
    rs.drive_to_certified(
        db,
        trust.settlor,
        rs.principal(db, trust.actors["registrar"]),
        pledge,
        registry.issuer_for(settings),
        DRAFTED,
    )
    _refused(
        db,
        lambda s: services.draft_deed(s, trust.settlor, deed_draft(trust), today=DRAFTED),
        "TRUST-PROPERTY-PLEDGED",
    )


def test_a_right_pledged_after_drafting_stops_the_signature(
    db: Database, settings: Settings, trust: Trust
) -> None:
    deed_id = drafted(db, trust)
    pledge = registry.ApplicationDraft(
        type=RegistrationType.PLEDGE,
        asset_id=trust.asset_id,
        right_id=trust.right_id,
        counterparty_id=trust.stranger.party_id,
    )
    rs.drive_to_certified(
        db,
        trust.settlor,
        rs.principal(db, trust.actors["registrar"]),
        pledge,
        registry.issuer_for(settings),
        DRAFTED,
    )
    with pytest.raises(DomainError) as exc, db.write() as s:
        services.sign_deed(s, trust.settlor, deed_id, today=DRAFTED)
    assert exc.value.rule == "TRUST-PROPERTY-PLEDGED"  # type: ignore[attr-defined]
    assert state_of(db, deed_id) == "draft"


def test_actions_by_the_wrong_party_are_refused(db: Database, trust: Trust) -> None:
    deed_id = drafted(db, trust)
    cases = [
        (lambda s: services.sign_deed(s, trust.trustee, deed_id, today=DRAFTED), "TRUST-ACTOR"),
        (
            lambda s: services.sign_deed(s, trust.settlor_staff, deed_id, today=DRAFTED),
            "TRUST-ACTOR",
        ),
    ]
    for call, rule in cases:
        _refused(db, call, rule)
    with pytest.raises(NotFound), db.write() as s:
        services.sign_deed(s, trust.stranger, deed_id, today=DRAFTED)
    with db.write() as s:
        services.sign_deed(s, trust.settlor, deed_id, today=IN_TERM)
    _refused(
        db, lambda s: services.accept_deed(s, trust.settlor, deed_id, today=IN_TERM), "TRUST-ACTOR"
    )
    with db.write() as s:
        services.accept_deed(s, trust.trustee, deed_id, today=IN_TERM)
    income = services.IncomeDraft(100_00, IN_TERM, IncomeSource.OTHER, description="数据服务费")
    _refused(
        db,
        lambda s: services.record_income(s, trust.settlor, deed_id, income, today=IN_TERM),
        "TRUST-ACTOR",
    )
    _refused(
        db,
        lambda s: services.amend_deed(
            s,
            trust.trustee,
            deed_id,
            [Share(trust.settlor.party_id, 10_000)],
            reason="x",
            today=IN_TERM,
        ),
        "TRUST-ACTOR",
    )


# ---------------------------------------------------------------------------------- income


def _income(
    db: Database, trust: Trust, deed_id: str, fen: int, on: date, today: date = IN_TERM
) -> str:
    draft = services.IncomeDraft(fen, on, IncomeSource.OTHER, description="数据产品收入分成")
    with db.write() as s:
        return services.record_income(s, trust.trustee, deed_id, draft, today=today).id


def _lines(db: Database, income_id: str) -> dict[tuple[str, str], int]:
    with db.read() as s:
        rows = s.scalars(
            select(PolicyTrustDistribution).where(PolicyTrustDistribution.income_id == income_id)
        )
        return {(r.role, r.party_id): r.amount_fen for r in rows}


def test_income_is_split_at_once_in_whole_fen(db: Database, trust: Trust) -> None:
    deed_id = established(db, trust)
    income_id = _income(db, trust, deed_id, 100_001, IN_TERM)
    lines = _lines(db, income_id)
    assert lines == {
        ("trustee_fee", trust.trustee.party_id): 5000,
        ("beneficiary", trust.settlor.party_id): 66501,
        ("beneficiary", trust.beneficiary.party_id): 28500,
    }
    assert sum(lines.values()) == 100_001
    with db.read() as s:
        assert {r.status for r in s.scalars(select(PolicyTrustDistribution))} == {"pending"}
        messages, _ = inbox.list_messages(s, trust.beneficiary, limit=20, offset=0)
        assert any(m.params.get("share") == "285.00" for m in messages)


def test_bad_income_is_refused(db: Database, settings: Settings, trust: Trust) -> None:
    deed_id = established(db, trust)
    for fen in (0, -100):
        draft = services.IncomeDraft(fen, IN_TERM, IncomeSource.OTHER, description="x")
        _refused(
            db,
            lambda s, d=draft: services.record_income(s, trust.trustee, deed_id, d, today=IN_TERM),
            "TRUST-INCOME",
        )
    # A received date in the future or before the term; no description for other income.
    for draft in (
        services.IncomeDraft(100, IN_TERM + timedelta(days=1), IncomeSource.OTHER, description="x"),
        services.IncomeDraft(100, START - timedelta(days=1), IncomeSource.OTHER, description="x"),
        services.IncomeDraft(100, IN_TERM, IncomeSource.OTHER, description=""),
        services.IncomeDraft(100, IN_TERM, IncomeSource.GRANT_FEE, grant_id=None),
    ):
        _refused(
            db,
            lambda s, d=draft: services.record_income(s, trust.trustee, deed_id, d, today=IN_TERM),
            "TRUST-INCOME",
        )
    assert _count(db, PolicyTrustIncome) == 0
    # A deed that is not in effect takes no income (over other data: data is in one trust).
    waiting = established(db, trust, on=DRAFTED, asset_ids=(another_asset(db, settings, trust),))
    draft = services.IncomeDraft(100, DRAFTED, IncomeSource.OTHER, description="x")
    _refused(
        db,
        lambda s: services.record_income(s, trust.trustee, waiting, draft, today=DRAFTED),
        "TRUST-INCOME",
    )


# ------------------------------------------------------------------------------ amendments


def test_amendments_are_versioned_and_income_follows_the_shares_of_its_day(
    db: Database, trust: Trust
) -> None:
    deed_id = established(db, trust)
    first = _income(db, trust, deed_id, 10_000, IN_TERM)
    amend_on = IN_TERM + timedelta(days=10)
    new = [Share(trust.settlor.party_id, 5000), Share(trust.beneficiary.party_id, 5000)]
    # Not backdated before today, nor on or before income already received.
    _refused(
        db,
        lambda s: services.amend_deed(
            s, trust.settlor, deed_id, new, reason="调整", effective_on=IN_TERM, today=IN_TERM
        ),
        "TRUST-AMENDMENT",
    )
    _refused(
        db,
        lambda s: services.amend_deed(
            s,
            trust.settlor,
            deed_id,
            [Share(trust.settlor.party_id, 9000)],
            reason="x",
            today=amend_on,
        ),
        "TRUST-SHARES",
    )
    with db.write() as s:
        split = services.amend_deed(
            s, trust.settlor, deed_id, new, reason="提高居民分成比例", today=amend_on
        )
        assert split.version == 2 and split.effective_on == amend_on
        assert split.ledger_index is not None
    later = _income(db, trust, deed_id, 10_000, amend_on, today=amend_on)
    # Income received before the amendment but recorded after it keeps the old shares.
    late_recorded = _income(
        db, trust, deed_id, 10_000, amend_on - timedelta(days=1), today=amend_on
    )
    beneficiary = ("beneficiary", trust.beneficiary.party_id)
    assert _lines(db, first)[beneficiary] == 2850  # 30 % of 9,500
    assert _lines(db, later)[beneficiary] == 4750  # 50 % of 9,500
    assert _lines(db, late_recorded)[beneficiary] == 2850
    with db.read() as s:
        versions = s.scalars(select(PolicyTrustSplit).where(PolicyTrustSplit.deed_id == deed_id))
        assert sorted(v.version for v in versions) == [1, 2]
        incomes = {i.id: i.version for i in s.scalars(select(PolicyTrustIncome))}
        assert incomes == {first: 1, later: 2, late_recorded: 1}


# ------------------------------------------------------------------------------ visibility


def test_what_each_party_sees(db: Database, trust: Trust) -> None:
    deed_id = drafted(db, trust)
    with db.read() as s:
        # A draft is the settlor's (and the trustee's, who will be asked) — not the beneficiary's.
        services.get_deed(s, trust.settlor, deed_id)
        services.get_deed(s, trust.settlor_staff, deed_id)
        services.get_deed(s, trust.trustee, deed_id)
        services.get_deed(s, trust.regulator, deed_id)
        for outsider in (trust.beneficiary, trust.stranger):
            with pytest.raises(NotFound):
                services.get_deed(s, outsider, deed_id)
    with db.write() as s:
        services.sign_deed(s, trust.settlor, deed_id, today=IN_TERM)
    with db.write() as s:
        services.accept_deed(s, trust.trustee, deed_id, today=IN_TERM)
    _income(db, trust, deed_id, 100_001, IN_TERM)
    with db.read() as s:
        deed = services.get_deed(s, trust.beneficiary, deed_id)
        roles = services.visible_roles(s, deed, trust.beneficiary)
        assert roles == {"beneficiary"}
        versions = services.deed_versions(s, deed, trust.beneficiary, roles)
        assert [sh.party_id for sh in versions[0].shares] == [trust.beneficiary.party_id]
        views = services.list_income(s, trust.beneficiary, deed_id)
        assert [(line.party_id, line.amount_fen) for line in views[0].lines] == [
            (trust.beneficiary.party_id, 28500)
        ]
        income, totals = services.deed_totals(s, trust.beneficiary, deed_id)
        assert income == 100_001  # the trust's income is known to its beneficiaries
        assert [(t.party_id, t.pending_fen) for t in totals] == [
            (trust.beneficiary.party_id, 28500)
        ]
        benefits = services.my_benefits(s, trust.beneficiary, today=IN_TERM)
        assert [(b.deed.id, b.share_bp, b.pending_fen) for b in benefits] == [
            (deed_id, 3000, 28500)
        ]
        for who in (trust.settlor, trust.trustee, trust.regulator):
            _, totals = services.deed_totals(s, who, deed_id)
            assert sum(t.total_fen for t in totals) == 100_001
            assert len(services.list_income(s, who, deed_id)[0].lines) == 3
        with pytest.raises(NotFound):
            services.list_income(s, trust.stranger, deed_id)
        rows, total = services.list_deeds(
            s, trust.beneficiary, services.DeedQuery(), limit=10, offset=0
        )
        assert total == 1 and rows[0].id == deed_id
        rows, total = services.list_deeds(
            s, trust.trustee, services.DeedQuery(role="settlor"), limit=10, offset=0
        )
        assert total == 0
        _, total = services.list_deeds(s, trust.stranger, services.DeedQuery(), limit=10, offset=0)
        assert total == 0
        _, total = services.list_deeds(s, trust.regulator, services.DeedQuery(), limit=10, offset=0)
        assert total == 1


def test_the_deed_ends_by_agreement_or_by_a_regulators_order(db: Database, trust: Trust) -> None:
    deed_id = established(db, trust)
    with db.write() as s:
        services.terminate_deed(s, trust.settlor, deed_id, reason="业务调整", today=IN_TERM)
    assert state_of(db, deed_id) == "active"  # proposed, waiting for the trustee
    _refused(
        db,
        lambda s: services.terminate_deed(s, trust.settlor, deed_id, reason="再次", today=IN_TERM),
        "TRUST-TERMINATION",
    )
    with db.write() as s:
        services.terminate_deed(s, trust.trustee, deed_id, reason="", today=IN_TERM)
    assert state_of(db, deed_id) == "terminated"
    with db.read() as s:
        kinds = [
            json.loads(ledger.get_entry(s, e.ledger_index).entry)["kind"]
            for e in services.deed_events(s, deed_id)
            if e.ledger_index is not None
        ]
        assert kinds[-1] == "policy.trust.terminated"

    ordered = established(db, trust)
    _refused(
        db,
        lambda s: services.terminate_deed(
            s, trust.regulator, ordered, reason="违规使用", order_reference="", today=IN_TERM
        ),
        "TRUST-REGULATOR-ORDER",
    )
    with db.write() as s:
        services.terminate_deed(
            s,
            trust.regulator,
            ordered,
            reason="数据滥用，责令终止",
            order_reference="桂数监〔2026〕1号",
            today=IN_TERM,
        )
    assert state_of(db, ordered) == "terminated"
    _refused(
        db,
        lambda s: services.record_income(
            s,
            trust.trustee,
            ordered,
            services.IncomeDraft(100, IN_TERM, IncomeSource.OTHER, description="x"),
            today=IN_TERM,
        ),
        "TRUST-INCOME",
    )


def test_the_servers_sweeper_runs_the_clock_and_is_off_in_tests(
    db: Database, settings: Settings, trust: Trust
) -> None:
    from datafactor.jobs import periodic
    from datafactor.policy.trusts import jobs

    assert not periodic.enabled(settings)
    deed_id = established(db, trust, on=DRAFTED)
    report = jobs.sweep_trusts(db)  # today's date: the term has started
    assert report.activated and state_of(db, deed_id) == "active"
    assert not jobs.sweep_trusts(db).changed


def test_core_data_cannot_be_put_in_trust(db: Database, trust: Trust) -> None:
    from datafactor.registry.models import RegistryAsset

    with db.write() as s:
        asset = s.get(RegistryAsset, trust.asset_id)
        assert asset is not None
        asset.grade = "core"  # regraded by a later discovery scan
    _refused(
        db,
        lambda s: services.draft_deed(s, trust.settlor, deed_draft(trust), today=DRAFTED),
        "TRUST-PROPERTY-CORE",
    )


# --------------------------------------------------------------- one trust at a time; the trail


def test_data_is_in_one_trust_at_a_time(db: Database, settings: Settings, trust: Trust) -> None:
    """Once the settlor has signed a deed over an asset, no other deed may name it — drafted,
    signed or accepted — until that deed is withdrawn or ends."""
    other_trustee = rs.principal(db, make_actor(db, PartyKind.SERVICE_FIRM))
    first = drafted(db, trust)
    second = drafted(db, trust, trustee_id=other_trustee.party_id)  # drafts hold nothing
    with db.write() as s:
        services.sign_deed(s, trust.settlor, first, today=DRAFTED)
    err = _refused(
        db,
        lambda s: services.draft_deed(
            s, trust.settlor, deed_draft(trust, trustee_id=other_trustee.party_id), today=DRAFTED
        ),
        "TRUST-PROPERTY-HELD",
    )
    assert "GX-XT-" in str(err)  # names the deed holding it
    _refused(
        db,
        lambda s: services.sign_deed(s, trust.settlor, second, today=DRAFTED),
        "TRUST-PROPERTY-HELD",
    )
    with db.write() as s:
        services.accept_deed(s, trust.trustee, first, today=DRAFTED)
    assert state_of(db, first) == "accepted"
    with db.write() as s:
        services.terminate_deed(
            s, trust.regulator, first, reason="监管责令终止", order_reference="桂数监〔2026〕3号",
            today=DRAFTED,
        )  # fmt: skip
    with db.write() as s:
        services.sign_deed(s, trust.settlor, second, today=DRAFTED)
    with db.write() as s:
        services.accept_deed(s, other_trustee, second, today=DRAFTED)
    assert state_of(db, second) == "accepted"


def test_every_step_is_in_the_settlors_and_the_trustees_audit_trail(
    db: Database, trust: Trust
) -> None:
    deed_id = established(db, trust)
    _income(db, trust, deed_id, 10_000, IN_TERM)
    with db.read() as s:
        trail = {
            party: set(
                s.scalars(
                    select(AuditEvent.action).where(
                        AuditEvent.party_id == party, AuditEvent.object_id.is_not(None)
                    )
                )
            )
            for party in (trust.settlor.party_id, trust.trustee.party_id)
        }
    for party, actions in trail.items():
        assert {
            "policy:trust:draft",
            "policy:trust:sign",
            "policy:trust:accept",
            "policy:trust:activate",
            "policy:trust:income",
        } <= actions, party
