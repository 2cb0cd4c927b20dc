"""Public data authorised operation on SQLite and PostgreSQL: agreements signed, suspended,
resumed, terminated and expired with their grants; caps, rates and fees; uses granted, asked for
and decided; costs; the annual report with its carry-over; who sees what — and every bad input
refused with its rule, nothing half-written."""

from __future__ import annotations

import json
from datetime import date

import pytest
from factories import make_actor
from operation_support import (
    SELECTION,
    SIGNED,
    agreement_draft,
    make_cast,
    price_list,
    public_asset,
    sign,
    use_draft,
)
from registry_support import new_asset, principal, scanned_version
from sqlalchemy import func, select

from datafactor import ledger
from datafactor.audit import AuditEvent, verify_chain
from datafactor.errors import Conflict, Forbidden, InvalidInput, NotFound
from datafactor.identity import PartyKind
from datafactor.inbox.models import InboxMessage
from datafactor.policy.grants import GrantState, Regime, get_grant, grants_under
from datafactor.policy.operation import services
from datafactor.policy.operation.domain import (
    AgreementState,
    OperationConflict,
    OperationError,
    OperationInvalid,
    Selection,
    load_operation_rules,
)
from datafactor.policy.operation.models import OperationAgreement, OperationUse
from datafactor.registry import DataClass

RULES = load_operation_rules()


@pytest.fixture
def cast(db, settings):
    return make_cast(db, settings)


def rule_of(exc: pytest.ExceptionInfo[OperationError]) -> str:
    return exc.value.rule


def count(db, model) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


# ---------------------------------------------------------------------------------- agreements


def test_signing_records_the_agreement_appends_it_and_licenses_the_operator(db, cast):
    agreement_id = sign(db, cast)
    with db.read() as s:
        row = services.get_agreement(s, cast["body"], agreement_id)
        assert row.state == "active"
        assert (row.term_start, row.term_end) == (SIGNED, date(2031, 3, 31))  # 5 years
        assert row.scope["delivery_modes"] == ["api", "sandbox"]
        assert row.scope["regions"] == ["450000"]  # the registered right's
        assert "credit_finance" not in row.scope["purposes"]  # the right does not allow it
        assert row.procedure == "public_tender" and row.selected_on == SELECTION.decided_on
        entry = json.loads(ledger.get_entry(s, row.ledger_index).entry)
        assert entry["kind"] == services.AGREEMENT_EVENT
        assert entry["payload"]["asset_ids"] == [cast.asset_id]
        assert entry["payload"]["procedure_reference"] == SELECTION.reference
        # The body granted the operator the agreement's licence, under the agreement.
        (grant,) = grants_under(s, Regime.OPERATION, agreement_id)
        assert grant.grantee_id == cast.operator.party_id
        assert grant.holder_id == grant.agent_id == cast.body.party_id
        assert grant.state == GrantState.APPROVED  # its licence is being registered
        assert grant.licence_application_id is not None
        # Audited under both parties; the operator is told.
        actions = set(
            s.scalars(
                select(AuditEvent.party_id).where(AuditEvent.action == "policy:operation:sign")
            )
        )
        assert actions == {cast.body.party_id, cast.operator.party_id}
        told = s.scalars(
            select(InboxMessage).where(InboxMessage.party_id == cast.operator.party_id)
        ).all()
        assert any("NNSZF-SQYY-2026-001" in json.dumps(m.params, ensure_ascii=False) for m in told)
        assert verify_chain(s).ok


def nothing_written(db) -> bool:
    return count(db, OperationAgreement) == 0


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"selection": None}, "selection"),
        ({"selection": Selection("single_source", "", date(2026, 3, 1), "记录")}, "selection"),
        ({"selection": Selection("lottery", "X-1", date(2026, 3, 1), "抽签")}, "selection"),
        ({"asset_ids": ("no-such-asset",)}, "body_public_data"),
        ({"asset_ids": ()}, "body_public_data"),
        ({"term_end": date(2026, 1, 1)}, "term"),
        ({"purposes": ("marketing",)}, "use_scope"),
    ],
)
def test_bad_agreements_are_refused_and_nothing_is_written(db, cast, change, key):
    with db.write() as s, pytest.raises(OperationError) as exc:
        services.sign_agreement(
            s, cast["body"], agreement_draft(cast, **change), issuer=cast.issuer, today=SIGNED
        )
    assert rule_of(exc) == RULES.rule_id(key)
    assert nothing_written(db)


def test_only_the_bodys_own_public_data_and_a_real_operator(db, settings, cast):
    # Another body's public data, and the body's own enterprise data, are refused.
    other_body = principal(db, make_actor(db, PartyKind.GOVERNMENT_DEPARTMENT))
    theirs = public_asset(db, settings, other_body, cast["registrar"], cast.issuer)
    own_enterprise = new_asset(
        db,
        cast["body"],
        scanned_version(db, settings, cast["body"]),
        data_class=DataClass.ENTERPRISE,
    )
    for asset_id in (theirs, own_enterprise):
        with db.write() as s, pytest.raises(OperationInvalid) as exc:
            services.sign_agreement(
                s,
                cast["body"],
                agreement_draft(cast, asset_ids=(asset_id,)),
                issuer=cast.issuer,
                today=SIGNED,
            )
        assert rule_of(exc) == RULES.rule_id("body_public_data")
    # An enterprise is not a public-data operator.
    with db.write() as s, pytest.raises(OperationInvalid) as exc:
        services.sign_agreement(
            s,
            cast["body"],
            agreement_draft(cast, operator_id=cast.user.party_id),
            issuer=cast.issuer,
            today=SIGNED,
        )
    assert rule_of(exc) == RULES.rule_id("parties")
    # Only an implementing body's administrator signs.
    with db.write() as s, pytest.raises(Forbidden):
        services.sign_agreement(
            s, cast["operator"], agreement_draft(cast), issuer=cast.issuer, today=SIGNED
        )
    assert nothing_written(db)


def test_a_second_overlapping_agreement_for_the_same_data_is_refused(db, cast):
    sign(db, cast)
    with db.write() as s, pytest.raises(OperationConflict) as exc:
        services.sign_agreement(
            s,
            cast["body"],
            agreement_draft(cast, number="NNSZF-SQYY-2026-002"),
            issuer=cast.issuer,
            today=SIGNED,
        )
    assert rule_of(exc) == RULES.rule_id("overlap")
    with db.write() as s, pytest.raises(Conflict):
        services.sign_agreement(
            s,
            cast["body"],
            agreement_draft(cast, term_start=date(2031, 4, 1)),
            issuer=cast.issuer,
            today=SIGNED,
        )  # the same number twice
    assert count(db, OperationAgreement) == 1


def test_suspension_stops_uses_resumption_restores_termination_ends_everything(db, cast):
    agreement_id = sign(db, cast)
    price_list(db, cast)
    with db.write() as s:
        services.make_use(
            s, cast["operator"], use_draft(cast, agreement_id), issuer=cast.issuer, today=SIGNED
        )
    with db.write() as s:
        services.change_agreement(
            s,
            cast["body"],
            agreement_id,
            AgreementState.SUSPENDED,
            reason="数据安全检查",
            today=date(2026, 5, 1),
        )
    with db.read() as s:
        states = {g.id: g.state for g in grants_under(s, Regime.OPERATION, agreement_id)}
    # Not yet in effect (licences still being registered): held as they are, nothing starts.
    assert set(states.values()) == {GrantState.APPROVED}
    with db.write() as s, pytest.raises(OperationConflict) as exc:
        services.make_use(
            s,
            cast["operator"],
            use_draft(cast, agreement_id, term_start=date(2026, 5, 1)),
            issuer=cast.issuer,
            today=date(2026, 5, 1),
        )
    assert rule_of(exc) == RULES.rule_id("agreement_live")
    # Suspended → active → terminated; terminated is final.
    with db.write() as s:
        services.change_agreement(
            s,
            cast["body"],
            agreement_id,
            AgreementState.ACTIVE,
            reason="检查完毕",
            today=date(2026, 5, 10),
        )
    with db.write() as s:
        services.change_agreement(
            s,
            cast["body"],
            agreement_id,
            AgreementState.TERMINATED,
            reason="协议解除",
            today=date(2026, 6, 1),
        )
    with db.write() as s, pytest.raises(OperationConflict) as exc:
        services.change_agreement(
            s, cast["body"], agreement_id, AgreementState.ACTIVE, reason="x", today=date(2026, 6, 2)
        )
    assert rule_of(exc) == RULES.rule_id("transition")
    # Only the body that signed acts on it, and with a reason.
    with db.write() as s, pytest.raises(InvalidInput):
        services.change_agreement(
            s,
            cast["body"],
            agreement_id,
            AgreementState.TERMINATED,
            reason=" ",
            today=date(2026, 6, 2),
        )
    other = principal(db, make_actor(db, PartyKind.GOVERNMENT_DEPARTMENT))
    with db.write() as s, pytest.raises(NotFound):
        services.change_agreement(
            s, other, agreement_id, AgreementState.TERMINATED, reason="x", today=date(2026, 6, 2)
        )


def test_the_sweep_expires_an_agreement_at_its_term_end_and_its_grants(db, cast):
    agreement_id = sign(db, cast, term_end=date(2026, 9, 30))
    with db.write() as s:
        assert services.sweep(s, today=date(2026, 9, 30)) == []
    with db.write() as s:
        assert services.sweep(s, today=date(2026, 10, 1)) == ["NNSZF-SQYY-2026-001"]
    with db.write() as s:
        assert services.sweep(s, today=date(2026, 10, 2)) == []  # a second run changes nothing
    with db.read() as s:
        assert services.get_agreement(s, cast["body"], agreement_id).state == "expired"
        states = {g.state for g in grants_under(s, Regime.OPERATION, agreement_id)}
        assert states == {GrantState.EXPIRED}
    # Now the same data may be operated again under a new agreement.
    sign(db, cast, on=date(2026, 10, 1), number="NNSZF-SQYY-2026-009")


# -------------------------------------------------------------------- caps, rates and fees


def test_caps_are_versioned_from_their_date_and_fees_stay_under_them(db, cast):
    sign(db, cast)
    price_list(db, cast, cap=50, fee=40)
    with db.write() as s:
        services.set_cap(
            s,
            cast["bureau"],
            unit="api_call",
            amount_fen=30,
            effective_from=date(2026, 7, 1),
            source_document="桂发改价格〔2026〕30号",
            today=SIGNED,
        )
    with db.read() as s:
        assert services.caps_in_force(s, date(2026, 6, 30))["api_call"].amount_fen == 50
        assert services.caps_in_force(s, date(2026, 7, 1))["api_call"].amount_fen == 30
        assert len(services.list_caps(s, cast["user"])) == 2  # history kept, public
        (row,) = services.list_fees(s, cast["user"], on=date(2026, 7, 1))
        assert row.fee.amount_fen == 40 and row.cap_fen == 30 and not row.within_cap
    # A fee above the cap in force on its date is refused.
    with db.write() as s, pytest.raises(OperationInvalid) as exc:
        services.publish_fee(
            s,
            cast["operator"],
            asset_id=cast.asset_id,
            unit="api_call",
            amount_fen=35,
            effective_from=date(2026, 7, 1),
            today=SIGNED,
        )
    assert rule_of(exc) == RULES.rule_id("fee_cap")
    # So is a use at the published 0.40 once the cap is 0.30.
    with db.write() as s, pytest.raises(OperationConflict) as exc:
        services.make_use(
            s,
            cast["operator"],
            use_draft(cast, row.agreement_id, term_start=date(2026, 7, 1)),
            issuer=cast.issuer,
            today=date(2026, 7, 1),
        )
    assert rule_of(exc) == RULES.rule_id("fee_cap")


@pytest.mark.parametrize("amount", [-1, 12.5, "40", 10**13])
def test_money_must_be_whole_non_negative_fen(db, cast, amount):
    sign(db, cast)
    price_list(db, cast)
    with db.write() as s, pytest.raises(OperationInvalid) as exc:
        services.set_cap(
            s,
            cast["bureau"],
            unit="sandbox_query",
            amount_fen=amount,
            effective_from=SIGNED,
            source_document="doc",
            today=SIGNED,
        )
    assert rule_of(exc) == RULES.rule_id("money")
    with db.write() as s, pytest.raises(OperationInvalid) as exc:
        services.record_cost(
            s, cast["operator"], year=2026, category="personnel", amount_fen=amount
        )
    assert rule_of(exc) == RULES.rule_id("money")
    with db.write() as s, pytest.raises(OperationInvalid) as exc:
        services.publish_fee(
            s,
            cast["operator"],
            asset_id=cast.asset_id,
            unit="api_call",
            amount_fen=amount,
            effective_from=SIGNED,
            today=SIGNED,
        )
    assert rule_of(exc) == RULES.rule_id("money")


def test_who_sets_caps_and_fees(db, cast):
    agreement_id = sign(db, cast)
    with db.write() as s, pytest.raises(Forbidden):
        services.set_cap(
            s,
            cast["operator"],
            unit="api_call",
            amount_fen=50,
            effective_from=SIGNED,
            source_document="doc",
            today=SIGNED,
        )
    with db.write() as s, pytest.raises(OperationInvalid) as exc:
        services.set_cap(
            s,
            cast["bureau"],
            unit="api_call",
            amount_fen=50,
            effective_from=date(2026, 3, 1),
            source_document="doc",
            today=SIGNED,
        )
    assert rule_of(exc) == RULES.rule_id("cap_setting")  # the past stays as it was
    price_list(db, cast)
    with db.write() as s, pytest.raises(Forbidden):
        services.publish_fee(
            s,
            cast["body"],
            asset_id=cast.asset_id,
            unit="api_call",
            amount_fen=40,
            effective_from=SIGNED,
            today=SIGNED,
        )
    # An operator without an agreement over the data cannot price it.
    rival = principal(db, make_actor(db, PartyKind.PUBLIC_DATA_OPERATOR))
    with db.write() as s, pytest.raises(OperationInvalid) as exc:
        services.publish_fee(
            s,
            rival,
            asset_id=cast.asset_id,
            unit="api_call",
            amount_fen=40,
            effective_from=SIGNED,
            today=SIGNED,
        )
    assert rule_of(exc) == RULES.rule_id("use_scope")
    with db.read() as s:
        (entry,) = services.catalogue(s, cast["user"], today=SIGNED)
        assert entry.agreement_id == agreement_id and entry.asset_id == cast.asset_id


# --------------------------------------------------------------------------------------- uses


def test_a_paid_use_is_granted_at_the_published_fee(db, cast):
    agreement_id = sign(db, cast)
    price_list(db, cast, cap=50, fee=40)
    with db.write() as s:
        use, grant = services.make_use(
            s, cast["operator"], use_draft(cast, agreement_id), issuer=cast.issuer, today=SIGNED
        )
        assert (use.unit_fee_fen, use.fee_fen, use.cap_fen) == (40, 40_000, 50)
        assert grant.state == GrantState.APPROVED and grant.fee_fen == 40_000
        assert grant.use_class == "industry_development"
        assert grant.agent_id == cast.operator.party_id and grant.holder_id == cast.body.party_id
        assert grant.max_uses == 1000  # what was bought
        assert RULES.rule_id("fee_cap") in use.rules
    with db.read() as s:
        # The grantee sees its use; so do the body and the operator; another party does not.
        for who in ("user", "body", "operator", "bureau"):
            assert services.get_use(s, cast[who], use.id).grant_id == grant.id
        stranger = principal(db, make_actor(db, PartyKind.ENTERPRISE))
        with pytest.raises(NotFound):
            services.get_use(s, stranger, use.id)
        assert services.list_uses(s, stranger)[1] == 0


def test_free_uses_are_free(db, cast):
    agreement_id = sign(db, cast)
    price_list(db, cast)
    draft = use_draft(
        cast,
        agreement_id,
        use_class="public_governance",
        purpose="public_governance",
        unit=None,
        quantity=1,
    )
    with db.write() as s:
        use, grant = services.make_use(s, cast["operator"], draft, issuer=cast.issuer, today=SIGNED)
        assert use.fee_fen == 0 and grant.fee_fen == 0 and use.cap_fen is None
    with db.write() as s, pytest.raises(OperationInvalid) as exc:
        services.make_use(
            s,
            cast["operator"],
            use_draft(
                cast,
                agreement_id,
                use_class="public_welfare",
                purpose="public_welfare",
                unit_fee_fen=100,
            ),
            issuer=cast.issuer,
            today=SIGNED,
        )
    assert rule_of(exc) == RULES.rule_id("free_use")


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"unit_fee_fen": 60}, "fee_cap"),  # above the cap of 0.50
        ({"unit_fee_fen": 30}, "paid_use"),  # not the published 0.40
        ({"use_class": "charity"}, "use_class"),
        ({"use_class": "public_welfare", "purpose": "product_development"}, "use_class"),
        ({"channels": ("api", "download")}, "channels"),
        ({"channels": ("sandbox",)}, "fee_unit"),  # priced per API call: by API only
        ({"quantity": 10**20}, "paid_use"),
        ({"term_start": date(1, 1, 1)}, "dates"),
        ({"term_end": date(2031, 6, 1)}, "use_scope"),  # beyond the agreement
        ({"purpose": "credit_finance"}, "use_scope"),  # the agreement does not allow it
        ({"regions": ("VN",)}, "use_scope"),
        ({"unit": "sandbox_query"}, "fee_cap"),  # no cap set for it
        ({"quantity": 0}, "paid_use"),
    ],
)
def test_bad_uses_are_refused_and_nothing_is_written(db, cast, change, key):
    agreement_id = sign(db, cast)
    price_list(db, cast)
    with db.write() as s, pytest.raises(OperationError) as exc:
        services.make_use(
            s,
            cast["operator"],
            use_draft(cast, agreement_id, **change),
            issuer=cast.issuer,
            today=SIGNED,
        )
    assert rule_of(exc) == RULES.rule_id(key)
    assert count(db, OperationUse) == 0
    with db.read() as s:
        assert len(grants_under(s, Regime.OPERATION, agreement_id)) == 1  # the licence only


def test_a_user_asks_and_the_operator_decides(db, cast):
    agreement_id = sign(db, cast)
    price_list(db, cast)
    with db.write() as s:
        asked, grant = services.make_use(
            s,
            cast["user"],
            use_draft(cast, agreement_id, grantee_id=None),
            issuer=cast.issuer,
            today=SIGNED,
        )
        assert asked.outcome == "requested" and grant.state == GrantState.REQUESTED
        assert asked.grantee_id == cast.user.party_id and asked.fee_fen == 40_000
    # Only the agreement's operator decides; a refusal needs a reason.
    with db.write() as s, pytest.raises(Forbidden):
        services.decide_use(
            s, cast["body"], asked.id, approve=True, issuer=cast.issuer, today=SIGNED
        )
    with db.write() as s, pytest.raises(InvalidInput):
        services.decide_use(
            s, cast["operator"], asked.id, approve=False, issuer=cast.issuer, today=SIGNED
        )
    with db.write() as s:
        decided, grant = services.decide_use(
            s, cast["operator"], asked.id, approve=True, issuer=cast.issuer, today=SIGNED
        )
        assert decided.outcome == "approved" and decided.decided_on == SIGNED
        assert grant.state == GrantState.APPROVED
    with db.write() as s, pytest.raises(Conflict):
        services.decide_use(
            s, cast["operator"], asked.id, approve=True, issuer=cast.issuer, today=SIGNED
        )
    # A second request refused by the operator: not income.
    with db.write() as s:
        again, _ = services.make_use(
            s,
            cast["user"],
            use_draft(cast, agreement_id, grantee_id=None),
            issuer=cast.issuer,
            today=SIGNED,
        )
    with db.write() as s:
        refused, grant = services.decide_use(
            s,
            cast["operator"],
            again.id,
            approve=False,
            reason="用途说明不充分",
            issuer=cast.issuer,
            today=SIGNED,
        )
        assert refused.outcome == "refused" and grant.state == GrantState.REFUSED
    with db.read() as s:
        report = services.build_report(
            s, cast["operator"], cast.operator.party_id, 2026, today=SIGNED
        )
    assert report["income_fen"] == 40_000 and report["uses"]["total"] == 1


# ----------------------------------------------------------------------- costs and reports


def test_the_report_carries_excess_income_into_next_years_deduction(db, cast):
    agreement_id = sign(db, cast)
    price_list(db, cast, cap=50, fee=40)
    # 2026: income 2 × 40,000.00 = 80,000.00 yuan... in fen: 2 uses of 1,000 calls at 0.40.
    for _ in range(2):
        with db.write() as s:
            services.make_use(
                s,
                cast["operator"],
                use_draft(cast, agreement_id, quantity=100_000),
                issuer=cast.issuer,
                today=SIGNED,
            )
    with db.write() as s:
        services.make_use(
            s,
            cast["operator"],
            use_draft(
                cast,
                agreement_id,
                use_class="public_welfare",
                purpose="public_welfare",
                unit=None,
                quantity=1,
            ),
            issuer=cast.issuer,
            today=SIGNED,
        )
        services.record_cost(
            s, cast["operator"], year=2026, category="personnel", amount_fen=50_000_00
        )
        services.record_cost(
            s, cast["operator"], year=2026, category="infrastructure", amount_fen=20_000_00
        )
    with db.read() as s:
        r26 = services.build_report(s, cast["operator"], cast.operator.party_id, 2026, today=SIGNED)
    revenue = r26["revenue"]
    assert r26["income_fen"] == 2 * 40 * 100_000 == 80_000_00
    assert revenue["cost_fen"] == 70_000_00
    assert revenue["profit_fen"] == 5_600_00  # 8 %
    assert revenue["allowed_fen"] == 75_600_00
    assert revenue["excess_fen"] == 4_400_00
    by_class = {c["use_class"]: c for c in r26["uses"]["by_class"]}
    assert by_class["industry_development"]["count"] == 2
    assert by_class["public_welfare"] == {**by_class["public_welfare"], "count": 1, "income_fen": 0}
    assert r26["fees"][0]["within_cap"] is True
    assert r26["agreements"][0]["number"] == "NNSZF-SQYY-2026-001"

    # 2027: the 4,400.00 yuan excess is deducted from 2027's allowed revenue. (No use is made
    # in 2027 here: the registry's working-day calendar does not cover 2027 yet, so no licence
    # could be filed; the carry-over over many years is property-tested in test_domain.py.)
    with db.write() as s:
        services.record_cost(
            s, cast["operator"], year=2027, category="personnel", amount_fen=10_000_00
        )
    with db.read() as s:
        r27 = services.build_report(
            s, cast["operator"], cast.operator.party_id, 2027, today=date(2027, 2, 1)
        )
    assert r27["revenue"]["deduction_fen"] == 4_400_00
    assert r27["revenue"]["allowed_fen"] == 10_800_00
    assert r27["revenue"]["net_allowed_fen"] == 6_400_00
    assert r27["income_fen"] == 0
    assert r27["revenue"]["excess_fen"] == 0
    assert [h["year"] for h in r27["history"]] == [2026]

    # Filing: only after the year; then frozen, on the ledger, read by the body; costs closed.
    with db.write() as s, pytest.raises(OperationConflict) as exc:
        services.file_report(s, cast["operator"], 2027, today=date(2027, 6, 1))
    assert rule_of(exc) == RULES.rule_id("annual_report")
    with db.write() as s:
        filed = services.file_report(s, cast["operator"], 2026, today=date(2027, 1, 15))
        entry = json.loads(ledger.get_entry(s, filed.ledger_index).entry)
        assert entry["kind"] == services.REPORT_EVENT and entry["payload"]["digest"] == filed.digest
    with db.write() as s, pytest.raises(OperationConflict) as exc:
        services.record_cost(s, cast["operator"], year=2026, category="other", amount_fen=1)
    assert rule_of(exc) == RULES.rule_id("annual_report")
    with db.write() as s, pytest.raises(Conflict):
        services.file_report(s, cast["operator"], 2026, today=date(2027, 1, 16))
    with db.read() as s:
        as_filed = services.build_report(s, cast["bureau"], cast.operator.party_id, 2026)
        assert as_filed["filed"]["digest"] == filed.digest
        assert as_filed["income_fen"] == 80_000_00
        assert [r.year for r in services.list_reports(s, cast["bureau"])] == [2026]
        csv_text = services.report_csv(as_filed)
        assert "excess" in csv_text and "4400.00" not in csv_text and "4,400.00" in csv_text
        # The body reads its own part of the filed report: its uses and their income.
        own = services.build_report(s, cast["body"], cast.operator.party_id, 2026)
        assert own["scope"] == "body" and own["income_fen"] == 80_000_00
        assert "revenue" not in own and "costs" not in own


def test_who_reads_costs_and_reports(db, cast):
    sign(db, cast)
    with db.write() as s:
        services.record_cost(s, cast["operator"], year=2026, category="security", amount_fen=1_00)
    with db.read() as s:
        assert len(services.list_costs(s, cast["operator"])) == 1
        assert len(services.list_costs(s, cast["bureau"], operator_id=cast.operator.party_id)) == 1
        with pytest.raises(NotFound):
            services.list_costs(s, cast["user"], operator_id=cast.operator.party_id)
        for who in ("operator", "bureau"):
            services.build_report(s, cast[who], cast.operator.party_id, 2026, today=SIGNED)
        # A body reads filed reports only (a draft is the operator's and the supervisors').
        for who in ("body", "user"):
            with pytest.raises(NotFound):
                services.build_report(s, cast[who], cast.operator.party_id, 2026, today=SIGNED)
        with pytest.raises(InvalidInput):
            services.build_report(s, cast["operator"], cast.operator.party_id, 1899)
    with db.write() as s, pytest.raises(Forbidden):
        services.record_cost(s, cast["user"], year=2026, category="security", amount_fen=1)


def test_visibility_of_agreements_per_role(db, cast):
    agreement_id = sign(db, cast)
    regulator = principal(db, make_actor(db, PartyKind.REGULATOR, roles=("auditor",)))
    other_body = principal(db, make_actor(db, PartyKind.GOVERNMENT_DEPARTMENT))
    with db.read() as s:
        for who in (cast["body"], cast["operator"], cast["bureau"], regulator):
            rows, total = services.list_agreements(s, who)
            assert total == 1 and rows[0].id == agreement_id
            assert services.get_agreement(s, who, agreement_id).id == agreement_id
        for who in (cast["user"], other_body):
            assert services.list_agreements(s, who)[1] == 0
            with pytest.raises(NotFound):
                services.get_agreement(s, who, agreement_id)
        # The published catalogue and fees are everyone's.
        assert services.catalogue(s, cast["user"], today=SIGNED)[0].agreement_id == agreement_id


def test_the_grants_under_an_agreement_stay_within_it(db, cast):
    """The grants core is told the agreement's mandate: a use's grant carries it."""
    agreement_id = sign(db, cast)
    price_list(db, cast)
    with db.write() as s:
        _, grant = services.make_use(
            s, cast["operator"], use_draft(cast, agreement_id), issuer=cast.issuer, today=SIGNED
        )
    with db.read() as s:
        found = get_grant(s, cast["user"], grant.id)
        assert found.regime == Regime.OPERATION and found.reference_id == agreement_id
        assert found.mandate["allowed_channels"] == ["api", "sandbox"]


def test_a_request_is_decided_under_the_agreement_not_on_the_grants_pages(db, cast):
    """The grants core refuses to decide a request under an agreement without the live
    agreement (GRT-MANDATE): the operator decides it here, where the fee is checked again."""
    from datafactor.policy.grants import GrantError, decide_grant

    agreement_id = sign(db, cast)
    price_list(db, cast)
    with db.write() as s:
        asked, grant = services.make_use(
            s,
            cast["user"],
            use_draft(cast, agreement_id, grantee_id=None),
            issuer=cast.issuer,
            today=SIGNED,
        )
    with db.write() as s, pytest.raises(GrantError):
        decide_grant(s, cast["operator"], grant.id, approve=True, issuer=cast.issuer, today=SIGNED)
    with db.write() as s:
        services.decide_use(
            s, cast["operator"], asked.id, approve=True, issuer=cast.issuer, today=SIGNED
        )
    with db.read() as s:
        report = services.build_report(
            s, cast["operator"], cast.operator.party_id, 2026, today=SIGNED
        )
    assert report["income_fen"] == asked.fee_fen == 40_000
    assert report["uses"]["total"] == 1
