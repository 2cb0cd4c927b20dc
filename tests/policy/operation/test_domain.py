"""The rules of public data authorised operation, without a database: the rules file, agreement
checks, state transitions, the delivery channels a policy could permit, classing and pricing a
use, and the allowed revenue with its carry-over (property-tested)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from datafactor.errors import InvalidInput
from datafactor.policy import parse_policy
from datafactor.policy.editor import EditorValues, build_document
from datafactor.policy.operation.domain import (
    AgreementFacts,
    AgreementState,
    AgreementTerms,
    AssetFacts,
    CapVersion,
    FeeVersion,
    LiveAgreement,
    OperationConflict,
    OperationError,
    OperationForbidden,
    OperationInvalid,
    PeriodInput,
    RateVersion,
    Selection,
    UseFacts,
    check_agreement,
    check_cap,
    check_cost,
    check_fee,
    check_rate,
    check_transition,
    check_use,
    default_term_end,
    effective_state,
    in_force,
    load_operation_rules,
    operation_rules_from,
    permitted_channels,
    profit_fen,
    revenue_chain,
    yuan_text,
)
from datafactor.policy.templates import load_template

RULES = load_operation_rules()
BODY, OPERATOR = "body-1", "operator-1"
SIGNED = date(2026, 3, 2)
ASSET = AssetFacts("asset-1", BODY, "public", "南宁市市场主体登记公共数据")


def facts(**kw: object) -> AgreementFacts:
    values: dict[str, object] = {
        "body_id": BODY,
        "body_kind": "government_department",
        "operator_id": OPERATOR,
        "operator_kind": "public_data_operator",
        "number": "NN-SQYY-2026-01",
        "signed_on": SIGNED,
        "selection": Selection("public_tender", "GXZC2026-G1-0001", date(2026, 2, 1), "中标"),
        "assets": (ASSET,),
    }
    values.update(kw)
    return AgreementFacts(**values)  # type: ignore[arg-type]


def refused(exc: pytest.ExceptionInfo[OperationError], key: str) -> None:
    assert exc.value.rule == RULES.rule_id(key)
    assert f"({exc.value.rule})" in str(exc.value) or exc.value.rule in str(exc.value)


# ------------------------------------------------------------------------------ the rules file


def test_rules_file_names_every_rule_with_its_source() -> None:
    for key in ("selection", "term", "fee_cap", "carry_over", "channels"):
        ref = RULES.rules.ref(key)
        assert ref.id.startswith("OPS-") and ref.source and ref.title["zh"] and ref.title["en"]
    # RULES.md marks the five-year term as widely reported but unchecked.
    assert RULES.rules.ref("term").verified is False
    assert RULES.default_term_years == 5
    assert RULES.channels == frozenset({"api", "sandbox"})
    assert RULES.counted_units == {"api_call", "sandbox_query"}
    assert RULES.unit_channels == {
        "api_call": {"api"},
        "sandbox_query": {"sandbox"},
        "access_year": {"api", "sandbox"},
    }
    assert (RULES.first_year, RULES.last_year) == (2000, 2100)
    assert {c.paid for c in RULES.use_classes.values()} == {True, False}


def test_a_bad_rules_file_is_refused_at_load(tmp_path: Path) -> None:
    data = yaml.safe_load(
        (Path(__file__).parents[3] / "src/datafactor/policy/rules/operation.yaml").read_text()
    )
    data["agreement"]["channels"] = ["api", "download"]
    path = tmp_path / "operation.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(ValueError, match="channels"):
        operation_rules_from(path)
    del data["rules"]["fee_cap"]
    data["agreement"]["channels"] = ["api"]
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(ValueError, match="fee_cap"):
        operation_rules_from(path)
    data["rules"]["fee_cap"] = yaml.safe_load(
        (Path(__file__).parents[3] / "src/datafactor/policy/rules/operation.yaml").read_text()
    )["rules"]["fee_cap"]
    data["agreement"]["channels"] = ["api", "sandbox"]
    data["fee_units"]["api_call"]["channels"] = ["download"]
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(ValueError, match=r"fee_units\.api_call\.channels"):
        operation_rules_from(path)


# ------------------------------------------------------------------------------ agreements


def test_an_agreement_gets_the_default_term_and_in_domain_channels() -> None:
    plan = check_agreement(facts(purposes=frozenset({"public_governance", "industry"})), RULES)
    assert plan.term_start == SIGNED
    assert plan.term_end == date(2031, 3, 1) == default_term_end(SIGNED, RULES)
    assert plan.scope["delivery_modes"] == ["api", "sandbox"]
    assert plan.scope["purposes"] == ["industry", "public_governance"]
    assert plan.scope["regions"] is None
    assert RULES.rule_id("selection") in plan.rules


def test_the_default_term_of_a_leap_day() -> None:
    assert default_term_end(date(2028, 2, 29), RULES) == date(2033, 2, 27)


@pytest.mark.parametrize(
    ("selection", "missing"),
    [
        (None, "procedure, reference, record"),
        (Selection("public_tender", " ", date(2026, 2, 1), "中标"), "reference"),
        (Selection("public_tender", "GXZC-1", date(2026, 2, 1), ""), "record"),
    ],
)
def test_an_agreement_without_a_recorded_selection_is_refused(
    selection: Selection | None, missing: str
) -> None:
    with pytest.raises(OperationInvalid) as exc:
        check_agreement(facts(selection=selection), RULES)
    refused(exc, "selection")
    assert exc.value.params["missing"] == missing


def test_an_unknown_procedure_or_a_selection_after_signing_is_refused() -> None:
    with pytest.raises(OperationInvalid) as exc:
        check_agreement(facts(selection=Selection("lottery", "X", SIGNED, "抽签")), RULES)
    refused(exc, "selection")
    assert "public_tender" in str(exc.value)
    with pytest.raises(OperationInvalid) as exc:
        check_agreement(
            facts(selection=Selection("single_source", "X", date(2026, 4, 1), "单一来源")), RULES
        )
    refused(exc, "selection")


def test_only_the_bodys_own_public_data_is_covered() -> None:
    other = AssetFacts("asset-2", "someone-else", "public", "别人的数据")
    with pytest.raises(OperationInvalid) as exc:
        check_agreement(facts(assets=(ASSET, other)), RULES)
    refused(exc, "body_public_data")
    assert exc.value.params["asset"] == "别人的数据"
    enterprise = AssetFacts("asset-3", BODY, "enterprise", "内部经营数据")
    with pytest.raises(OperationInvalid) as exc:
        check_agreement(facts(assets=(enterprise,)), RULES)
    refused(exc, "body_public_data")
    with pytest.raises(OperationInvalid) as exc:
        check_agreement(facts(assets=()), RULES)
    refused(exc, "body_public_data")
    with pytest.raises(OperationInvalid) as exc:
        check_agreement(facts(missing_assets=("no-such-id",)), RULES)
    refused(exc, "body_public_data")


def test_the_body_is_a_government_department_or_a_public_enterprise() -> None:
    # The power grid signs for the public data of its public service, as a department does.
    assert check_agreement(facts(body_kind="enterprise"), RULES).term_end > SIGNED
    for kind in ("data_merchant", "individual", "public_data_operator", "regulator"):
        with pytest.raises(OperationForbidden) as exc:
            check_agreement(facts(body_kind=kind), RULES)
        refused(exc, "parties")


def test_the_operator_must_be_a_public_data_operator() -> None:
    with pytest.raises(OperationInvalid) as exc:
        check_agreement(facts(operator_kind="enterprise"), RULES)
    refused(exc, "parties")
    with pytest.raises(OperationInvalid):
        check_agreement(facts(operator_id=None, operator_kind=None), RULES)


def test_a_backwards_term_and_bad_scope_are_refused() -> None:
    with pytest.raises(OperationInvalid) as exc:
        check_agreement(facts(term_end=date(2026, 1, 1)), RULES)
    refused(exc, "term")
    with pytest.raises(OperationInvalid) as exc:
        check_agreement(facts(purposes=frozenset({"marketing"})), RULES)
    refused(exc, "use_scope")
    with pytest.raises(OperationInvalid) as exc:
        check_agreement(facts(regions=frozenset({"Guangxi"})), RULES)
    refused(exc, "use_scope")


def test_overlapping_live_agreements_for_the_same_data_are_refused() -> None:
    live = LiveAgreement("OLD-1", frozenset({ASSET.id}), date(2024, 1, 1), date(2026, 12, 31))
    with pytest.raises(OperationConflict) as exc:
        check_agreement(facts(live=(live,)), RULES)
    refused(exc, "overlap")
    assert exc.value.params["other"] == "OLD-1"
    # Starting after the other ends, or other data, is fine.
    check_agreement(facts(live=(live,), term_start=date(2027, 1, 1)), RULES)
    other_data = LiveAgreement("OLD-2", frozenset({"asset-9"}), date(2024, 1, 1), date(2030, 1, 1))
    check_agreement(facts(live=(other_data,)), RULES)


def test_agreement_states_move_only_forwards() -> None:
    check_transition("N", AgreementState.ACTIVE, AgreementState.SUSPENDED, RULES)
    check_transition("N", AgreementState.SUSPENDED, AgreementState.TERMINATED, RULES)
    check_transition("N", AgreementState.SUSPENDED, AgreementState.ACTIVE, RULES)
    for state, target in [
        (AgreementState.TERMINATED, AgreementState.ACTIVE),
        (AgreementState.EXPIRED, AgreementState.SUSPENDED),
        (AgreementState.SUSPENDED, AgreementState.SUSPENDED),
    ]:
        with pytest.raises(OperationConflict) as exc:
            check_transition("N", state, target, RULES)
        refused(exc, "transition")
        assert f"is {state.value}" in str(exc.value)  # English in logs, whatever the locale
    assert effective_state("active", date(2026, 1, 1), date(2026, 1, 2)) is AgreementState.EXPIRED
    assert effective_state("active", date(2026, 1, 1), date(2026, 1, 1)) is AgreementState.ACTIVE
    assert (
        effective_state("terminated", date(2026, 1, 1), date(2027, 1, 1))
        is AgreementState.TERMINATED
    )


# --------------------------------------------------------------------------------- channels


def test_channels_a_policy_could_permit() -> None:
    assert permitted_channels(load_template("public-welfare")) == {"api", "sandbox"}
    assert permitted_channels(load_template("sandbox-aggregates")) == {"sandbox"}
    # No channel condition: every channel, download included.
    assert "download" in permitted_channels(
        parse_policy(build_document(EditorValues(purposes=["industry"])))
    )
    # A blanket prohibition of download makes an unrestricted permission safe.
    assert permitted_channels(
        parse_policy(build_document(EditorValues(purposes=["industry"], prohibit_download=True)))
    ) == {"api", "sandbox"}
    assert "download" in permitted_channels(
        parse_policy(build_document(EditorValues(channels=["api", "download"])))
    )


def test_a_prohibition_with_other_conditions_is_not_relied_upon() -> None:
    policy = parse_policy(
        {
            "@context": "http://www.w3.org/ns/odrl.jsonld",
            "uid": "urn:t",
            "permission": [{"action": "use"}],
            "prohibition": [
                {
                    "action": "use",
                    "constraint": [
                        {
                            "leftOperand": "deliveryChannel",
                            "operator": "eq",
                            "rightOperand": "download",
                        },
                        {"leftOperand": "purpose", "operator": "eq", "rightOperand": "marketing"},
                    ],
                }
            ],
        }
    )
    assert "download" in permitted_channels(policy)


# -------------------------------------------------------------------------------------- uses

AGREEMENT = AgreementTerms(
    id="ag-1",
    number="NN-SQYY-2026-01",
    state="active",
    body_id=BODY,
    operator_id=OPERATOR,
    term_start=date(2026, 3, 2),
    term_end=date(2031, 3, 1),
    asset_ids=frozenset({ASSET.id}),
    purposes=frozenset({"public_governance", "public_welfare", "industry", "product_development"}),
    regions=frozenset({"450000"}),
    channels=frozenset({"api", "sandbox"}),
)
TODAY = date(2026, 6, 1)
CAPS = (
    CapVersion(date(2026, 1, 1), 0, "api_call", 50),
    CapVersion(date(2026, 7, 1), 1, "api_call", 40),
    CapVersion(date(2026, 1, 1), 2, "access_year", 2_000_000),
)
FEES = (FeeVersion(date(2026, 4, 1), 0, ASSET.id, "api_call", 45),)


def use(**kw: object) -> UseFacts:
    values: dict[str, object] = {
        "agreement": AGREEMENT,
        "asset_id": ASSET.id,
        "asset_name": ASSET.name,
        "use_class": "industry_development",
        "purpose": "product_development",
        "term_start": TODAY,
        "term_end": date(2026, 12, 31),
        "today": TODAY,
        "channels": frozenset({"api"}),
        "unit": "api_call",
        "quantity": 1000,
        "fees": FEES,
        "caps": CAPS,
    }
    values.update(kw)
    return UseFacts(**values)  # type: ignore[arg-type]


def test_a_paid_use_is_charged_the_published_fee_under_the_cap() -> None:
    price = check_use(use(), RULES)
    assert price.paid and price.unit_fee_fen == 45 and price.fee_fen == 45_000
    assert price.cap_fen == 50
    assert RULES.rule_id("fee_cap") in price.rules
    assert check_use(use(stated_unit_fee=45), RULES).fee_fen == 45_000


def test_a_paid_fee_above_the_cap_is_refused() -> None:
    with pytest.raises(OperationInvalid) as exc:
        check_use(use(stated_unit_fee=51), RULES)
    refused(exc, "fee_cap")
    # The cap was lowered on 1 July: the published 0.45 may no longer be charged.
    with pytest.raises(OperationConflict) as exc:
        check_use(use(today=date(2026, 7, 1), term_start=date(2026, 7, 1)), RULES)
    refused(exc, "fee_cap")


def test_a_paid_use_needs_the_published_fee_and_a_cap() -> None:
    with pytest.raises(OperationInvalid) as exc:
        check_use(use(stated_unit_fee=30), RULES)
    refused(exc, "paid_use")
    with pytest.raises(OperationConflict) as exc:
        check_use(use(unit="access_year"), RULES)
    refused(exc, "paid_use")  # capped, but no fee published for it
    with pytest.raises(OperationConflict) as exc:
        check_use(use(unit="sandbox_query", channels=None), RULES)
    refused(exc, "fee_cap")  # no cap set at all
    with pytest.raises(OperationInvalid) as exc:
        check_use(use(unit=None), RULES)
    refused(exc, "paid_use")
    with pytest.raises(OperationInvalid) as exc:
        check_use(use(quantity=0), RULES)
    refused(exc, "paid_use")


def test_free_uses_carry_no_fee() -> None:
    free = use(use_class="public_governance", purpose="public_governance", unit=None)
    price = check_use(free, RULES)
    assert not price.paid and price.fee_fen == 0 and price.cap_fen is None
    assert RULES.rule_id("free_use") in price.rules
    with pytest.raises(OperationInvalid) as exc:
        check_use(
            use(use_class="public_welfare", purpose="public_welfare", stated_unit_fee=100), RULES
        )
    refused(exc, "free_use")
    assert (
        check_use(
            use(use_class="public_welfare", purpose="public_welfare", stated_unit_fee=0), RULES
        ).fee_fen
        == 0
    )


def test_an_unknown_class_or_a_purpose_that_does_not_fit_it_is_refused() -> None:
    with pytest.raises(OperationInvalid) as exc:
        check_use(use(use_class="charity"), RULES)
    refused(exc, "use_class")
    with pytest.raises(OperationInvalid) as exc:
        check_use(use(use_class="public_welfare", purpose="product_development"), RULES)
    refused(exc, "use_class")


def test_a_use_outside_the_agreements_term_or_scope_is_refused() -> None:
    with pytest.raises(OperationInvalid) as exc:
        check_use(use(term_end=date(2031, 6, 1)), RULES)
    refused(exc, "use_scope")
    with pytest.raises(OperationInvalid) as exc:
        check_use(use(asset_id="asset-9"), RULES)
    refused(exc, "use_scope")
    with pytest.raises(OperationInvalid) as exc:
        check_use(use(purpose="credit_finance"), RULES)
    refused(exc, "use_scope")  # fits the class, but the agreement does not allow it
    with pytest.raises(OperationInvalid) as exc:
        check_use(use(regions=frozenset({"VN"})), RULES)
    refused(exc, "use_scope")
    assert check_use(use(regions=frozenset({"450102"})), RULES).regions == {"450102"}


def test_a_use_asking_for_download_is_refused() -> None:
    with pytest.raises(OperationInvalid) as exc:
        check_use(use(channels=frozenset({"api", "download"})), RULES)
    refused(exc, "channels")
    assert exc.value.params["channels"] == "download"


def test_the_fee_unit_fixes_the_channel_and_the_term() -> None:
    # What is bought is what is delivered: API calls by API, sandbox queries in the sandbox.
    price = check_use(use(channels=None), RULES)
    assert price.channels == {"api"} and price.max_uses == 1000
    with pytest.raises(OperationInvalid) as exc:
        check_use(use(channels=frozenset({"api", "sandbox"})), RULES)
    refused(exc, "fee_unit")
    assert exc.value.params["channels"] == "sandbox"
    # A year of access: either channel, no count, and at most the years bought.
    yearly = (*FEES, FeeVersion(date(2026, 4, 1), 1, ASSET.id, "access_year", 1_500_000))
    one_year = use(unit="access_year", quantity=1, channels=None, fees=yearly)
    price = check_use(one_year, RULES)
    assert price.channels == {"api", "sandbox"} and price.max_uses is None
    assert price.fee_fen == 1_500_000
    with pytest.raises(OperationInvalid) as exc:
        check_use(
            use(
                unit="access_year",
                quantity=1,
                channels=None,
                fees=yearly,
                term_end=date(2031, 3, 1),
            ),
            RULES,
        )
    refused(exc, "fee_unit")
    assert exc.value.params["latest"] == "2027-05-31"
    two_years = use(
        unit="access_year", quantity=2, channels=None, fees=yearly, term_end=date(2028, 5, 31)
    )
    assert check_use(two_years, RULES).fee_fen == 3_000_000


@pytest.mark.parametrize(
    ("kw", "key"),
    [
        ({"quantity": 10**20}, "paid_use"),
        ({"quantity": -5}, "paid_use"),
        (
            {"quantity": 10**20, "use_class": "public_welfare", "purpose": "public_welfare"},
            "free_use",
        ),
        ({"quantity": -5, "use_class": "public_welfare", "purpose": "public_welfare"}, "free_use"),
        ({"quantity": True}, "paid_use"),
    ],
)
def test_the_quantity_of_every_use_is_bounded(kw: dict[str, object], key: str) -> None:
    with pytest.raises(OperationInvalid) as exc:
        check_use(use(**kw), RULES)
    refused(exc, key)


def test_a_free_use_buys_nothing() -> None:
    price = check_use(
        use(use_class="public_welfare", purpose="public_welfare", unit=None, channels=None), RULES
    )
    assert (price.quantity, price.max_uses, price.fee_fen) == (1, None, 0)
    assert price.channels == {"api", "sandbox"}  # the agreement's


def test_dates_outside_the_calendar_are_refused() -> None:
    for kw in (
        {"term_start": date(9999, 6, 1)},
        {"signed_on": date(9999, 6, 1), "term_end": date(9999, 12, 31)},
        {"term_start": date(2099, 6, 1)},  # five years on is past the calendar
        {"selection": Selection("public_tender", "X", date(1, 1, 1), "中标")},
    ):
        with pytest.raises(OperationInvalid) as exc:
            check_agreement(facts(**kw), RULES)
        refused(exc, "dates")
    for kw in ({"term_end": date(9999, 12, 31)}, {"term_start": date(1, 1, 1)}):
        with pytest.raises(OperationInvalid) as exc:
            check_use(use(**kw), RULES)
        refused(exc, "dates")


def test_an_amount_of_thousands_of_digits_is_refused_readably() -> None:
    with pytest.raises(OperationInvalid) as exc:
        check_cap("api_call", 10**5000, "doc", RULES)
    refused(exc, "money")
    assert "5001 digits" in str(exc.value) or "5000 digits" in str(exc.value)


@pytest.mark.parametrize(
    ("state", "today"),
    [("suspended", TODAY), ("terminated", TODAY), ("active", date(2031, 3, 2))],
)
def test_no_use_under_an_agreement_that_is_not_active(state: str, today: date) -> None:
    agreement = AgreementTerms(**{**AGREEMENT.__dict__, "state": state})
    with pytest.raises(OperationConflict) as exc:
        check_use(use(agreement=agreement, today=today), RULES)
    refused(exc, "agreement_live")


# --------------------------------------------------------------------- caps, rates and fees


def test_the_version_in_force_is_the_latest_effective_one() -> None:
    assert in_force(CAPS[:2], date(2025, 12, 31)) is None
    assert in_force(CAPS[:2], date(2026, 6, 30)) == CAPS[0]
    assert in_force(CAPS[:2], date(2026, 7, 1)) == CAPS[1]
    same_day = (RateVersion(date(2026, 1, 1), 0, 800), RateVersion(date(2026, 1, 1), 1, 600))
    assert in_force(same_day, date(2026, 1, 1)) == same_day[1]  # set later, wins


def test_caps_rates_fees_and_costs_are_whole_fen() -> None:
    assert check_cap("api_call", 50, "桂发改价格〔2026〕1号", RULES) == 50
    for bad in (-1, 12.5, "50", True, None, 10**13):
        with pytest.raises(OperationInvalid) as exc:
            check_cap("api_call", bad, "doc", RULES)
        refused(exc, "money")
        with pytest.raises(OperationInvalid) as exc:
            check_cost(2026, "personnel", bad, RULES)
        refused(exc, "money")
    with pytest.raises(OperationInvalid) as exc:
        check_cap("api_call", 50, "  ", RULES)
    refused(exc, "cap_setting")
    with pytest.raises(OperationInvalid) as exc:
        check_cap("per_byte", 50, "doc", RULES)
    refused(exc, "cap_setting")
    assert check_rate(800, "doc", RULES) == 800
    for bad_rate in (-1, 8.0, RULES.max_profit_rate_bp + 1):
        with pytest.raises(OperationInvalid) as exc:
            check_rate(bad_rate, "doc", RULES)
        refused(exc, "cap_setting")
    with pytest.raises(OperationInvalid) as exc:
        check_cost(2026, "bonuses", 100, RULES)
    refused(exc, "allowed_revenue")
    with pytest.raises(InvalidInput):
        check_cost(1899, "personnel", 100, RULES)


def test_a_fee_is_published_only_under_the_cap_and_for_covered_data() -> None:
    amount, cap = check_fee(
        "api_call", 50, date(2026, 5, 1), covered=True, asset_label="x", caps=CAPS, rules=RULES
    )
    assert amount == 50 and cap == CAPS[0]
    with pytest.raises(OperationInvalid) as exc:
        check_fee(
            "api_call", 45, date(2026, 7, 1), covered=True, asset_label="x", caps=CAPS, rules=RULES
        )
    refused(exc, "fee_cap")
    with pytest.raises(OperationConflict) as exc:
        check_fee(
            "sandbox_query",
            1,
            date(2026, 7, 1),
            covered=True,
            asset_label="x",
            caps=CAPS,
            rules=RULES,
        )
    refused(exc, "fee_cap")
    with pytest.raises(OperationInvalid) as exc:
        check_fee(
            "api_call", 1, date(2026, 7, 1), covered=False, asset_label="x", caps=CAPS, rules=RULES
        )
    refused(exc, "use_scope")


# --------------------------------------------------------------------------------- revenue


def test_allowed_revenue_and_carry_over_worked_example() -> None:
    # The example of docs/public-data-operation.md.
    chain = revenue_chain(
        [
            PeriodInput(2026, 1_000_000_00, 800, 1_150_000_00),
            PeriodInput(2027, 1_000_000_00, 800, 900_000_00),
            PeriodInput(2028, 1_200_000_00, 800, 1_400_000_00),
        ]
    )
    y26, y27, y28 = chain
    assert y26.profit_fen == 80_000_00 and y26.allowed_fen == 1_080_000_00
    assert y26.excess_fen == 70_000_00
    assert y27.deduction_fen == 70_000_00 and y27.net_allowed_fen == 1_010_000_00
    assert y27.excess_fen == 0
    assert y28.allowed_fen == 1_296_000_00 and y28.excess_fen == 104_000_00


def test_profit_is_rounded_down_to_the_fen() -> None:
    assert profit_fen(1_001, 800) == 80  # 80.08 fen
    assert profit_fen(0, 5000) == 0
    assert yuan_text(123_456_78) == "123,456.78" and yuan_text(5) == "0.05"


def test_the_chain_starts_from_the_last_filed_years_excess() -> None:
    # 2026 was filed with 500 carried out; 2027 has no record, 2028 a cost of 100.
    chain = revenue_chain([PeriodInput(2028, 100, 0, 0)], carry_in=500, start=2027)
    assert [p.year for p in chain] == [2027, 2028]
    assert (chain[0].deduction_fen, chain[0].excess_fen) == (500, 500)
    assert (chain[1].deduction_fen, chain[1].net_allowed_fen, chain[1].excess_fen) == (
        500,
        -400,
        400,
    )


def test_a_year_without_records_passes_the_excess_on() -> None:
    chain = revenue_chain([PeriodInput(2026, 100, 0, 300), PeriodInput(2028, 100, 0, 0)])
    assert [p.year for p in chain] == [2026, 2027, 2028]
    assert chain[0].excess_fen == 200 and chain[1].excess_fen == 200
    assert chain[2].deduction_fen == 200 and chain[2].excess_fen == 100


periods = st.lists(
    st.tuples(
        st.integers(0, 10**10),  # cost
        st.integers(0, 5000),  # rate (bp)
        st.integers(0, 10**10),  # income
    ),
    min_size=1,
    max_size=12,
)


@given(periods)
def test_carry_over_never_lets_income_above_allowed_go_undeducted(
    rows: list[tuple[int, int, int]],
) -> None:
    chain = revenue_chain(
        PeriodInput(2026 + i, cost, rate, income) for i, (cost, rate, income) in enumerate(rows)
    )
    assert len(chain) == len(rows)
    for end, p in enumerate(chain):
        # Every amount is a whole number of fen, and never negative where money changes hands.
        for value in p.as_dict().values():
            assert isinstance(value, int)
        assert p.excess_fen >= 0 and p.profit_fen >= 0
        assert p.allowed_fen == p.cost_fen + p.cost_fen * p.rate_bp // 10_000
        # Whatever window of periods ends here, income above the allowed revenue of that window
        # is still carried forward to be deducted.
        for start in range(end + 1):
            window = chain[start : end + 1]
            over = sum(q.income_fen for q in window) - sum(q.allowed_fen for q in window)
            assert p.excess_fen >= over
        # And nothing is carried that was not earned above the allowed revenue: the excess is
        # exactly the largest such overrun over the windows ending here (or nothing).
        if end:
            assert p.deduction_fen == chain[end - 1].excess_fen
        overruns = [
            sum(q.income_fen - q.allowed_fen for q in chain[s : end + 1]) for s in range(end + 1)
        ]
        assert p.excess_fen == max(0, *overruns)
