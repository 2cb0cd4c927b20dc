"""The pure rules of data trusts (no database): the exact split of income, the deed's checks,
its state machine, the versioned split and the rules file."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datafactor.policy.trusts.domain import (
    Actor,
    AssetFacts,
    DeedAction,
    DeedState,
    DeedStateConflict,
    HoldingFacts,
    InvalidDeed,
    LineRole,
    PartyFacts,
    Share,
    SplitVersion,
    WrongParty,
    allowed_actions,
    check_amendment_date,
    check_fee,
    check_income,
    check_parties,
    check_property,
    check_shares,
    check_term,
    load_trust_rules,
    parse_scope,
    parse_yuan,
    split_in_force,
    split_income,
    transition,
    yuan,
)
from datafactor.registry.domain import Scope

RULES = load_trust_rules()
TODAY = date(2026, 6, 1)


# ----------------------------------------------------------------------------- distribution


@st.composite
def splits(draw: st.DrawFn) -> tuple[int, int, list[Share]]:
    amount = draw(st.integers(min_value=1, max_value=10**12))
    fee = draw(st.integers(min_value=0, max_value=RULES.fee_max_bp))
    n = draw(st.integers(min_value=1, max_value=12))
    # n positive shares adding up to 10,000: cut points in 1..9,999.
    cuts = sorted(draw(st.sets(st.integers(1, 9_999), min_size=n - 1, max_size=n - 1)))
    bounds = [0, *cuts, 10_000]
    shares = [Share(f"party-{i:02d}", bounds[i + 1] - bounds[i]) for i in range(n)]
    return amount, fee, shares


@given(splits())
def test_a_split_adds_up_exactly_and_each_line_is_within_a_fen(case) -> None:  # type: ignore[no-untyped-def]
    amount, fee, shares = case
    lines = split_income(amount, fee, shares, "trustee")
    assert sum(line.amount_fen for line in lines) == amount
    assert sum(line.exact for line in lines) == amount
    for line in lines:
        assert isinstance(line.amount_fen, int)
        assert abs(line.amount_fen - line.exact) < 1
        assert line.amount_fen >= 0
    fee_lines = [line for line in lines if line.role is LineRole.TRUSTEE_FEE]
    assert len(fee_lines) == (1 if fee else 0)
    if fee:
        assert fee_lines[0].exact == Fraction(amount * fee, 10_000)


@given(splits(), st.randoms(use_true_random=False))
def test_a_split_is_deterministic_whatever_the_order_of_the_shares(case, rnd) -> None:  # type: ignore[no-untyped-def]
    amount, fee, shares = case
    shuffled = list(shares)
    rnd.shuffle(shuffled)
    assert split_income(amount, fee, shares, "trustee") == split_income(
        amount, fee, shuffled, "trustee"
    )


def test_largest_remainders_get_the_fen_left_over_with_a_documented_tie_break() -> None:
    # 100 fen, no fee, three equal-ish thirds: exact 33.33, 33.33, 33.34 → the largest
    # remainder (33.34) gets the fen left over.
    lines = split_income(100, 0, [Share("a", 3333), Share("b", 3333), Share("c", 3334)], "t")
    assert [(line.party_id, line.amount_fen) for line in lines] == [("a", 33), ("b", 33), ("c", 34)]
    # 1 fen between two equal halves: a tie on remainder and amount → party id decides.
    lines = split_income(1, 0, [Share("b", 5000), Share("a", 5000)], "t")
    assert [(line.party_id, line.amount_fen) for line in lines] == [("a", 1), ("b", 0)]
    # The trustee's fee comes first on an exact tie with a beneficiary.
    lines = split_income(1, 5000, [Share("a", 10_000)], "t")
    assert [(line.role, line.amount_fen) for line in lines] == [
        (LineRole.TRUSTEE_FEE, 1),
        (LineRole.BENEFICIARY, 0),
    ]


def test_the_example_of_the_documentation() -> None:
    # docs/trusts.md: 1,000.01 yuan, fee 5 %, the grid 70 % and a household 30 % of the rest.
    lines = split_income(100_001, 500, [Share("grid", 7000), Share("household", 3000)], "trustee")
    assert [(line.party_id, line.amount_fen) for line in lines] == [
        ("trustee", 5000),
        ("grid", 66501),
        ("household", 28500),
    ]


def test_the_trustee_may_also_be_a_beneficiary_with_two_lines() -> None:
    lines = split_income(10_000, 1000, [Share("t", 2000), Share("b", 8000)], "t")
    assert {(line.role, line.party_id): line.amount_fen for line in lines} == {
        (LineRole.TRUSTEE_FEE, "t"): 1000,
        (LineRole.BENEFICIARY, "b"): 7200,
        (LineRole.BENEFICIARY, "t"): 1800,
    }


# ------------------------------------------------------------------------------------ checks


def _parties(*ids: str, unverified: tuple[str, ...] = ()) -> dict[str, PartyFacts]:
    return {i: PartyFacts(i, f"name {i}", "enterprise", i not in unverified) for i in ids}


def _rule_of(exc: pytest.ExceptionInfo[InvalidDeed]) -> str:
    return exc.value.rule


@pytest.mark.parametrize(
    ("shares", "rule"),
    [
        ([Share("a", 6000), Share("b", 3000)], "TRUST-SHARES"),  # 9,000
        ([Share("a", 6000), Share("b", 4001)], "TRUST-SHARES"),  # 10,001
        ([Share("a", 10_000), Share("b", 0)], "TRUST-SHARES"),  # a zero share
        ([Share("a", 11_000), Share("b", -1000)], "TRUST-SHARES"),  # a negative share
        ([Share("a", 5000), Share("a", 5000)], "TRUST-BENEFICIARIES"),  # named twice
        ([Share("a", 5000), Share("ghost", 5000)], "TRUST-BENEFICIARIES"),  # unknown party
        ([Share("a", 5000), Share("u", 5000)], "TRUST-BENEFICIARIES"),  # not verified
        ([], "TRUST-BENEFICIARIES"),  # nobody
        ([Share("t", 10_000)], "TRUST-TRUSTEE-NOT-SOLE"),  # the trustee alone
    ],
)
def test_bad_beneficiaries_are_refused_naming_the_rule(shares, rule) -> None:  # type: ignore[no-untyped-def]
    parties = _parties("a", "b", "t", "u", unverified=("u",))
    with pytest.raises(InvalidDeed) as exc:
        check_shares(shares, "t", parties, RULES)
    assert _rule_of(exc) == rule
    assert exc.value.field == "beneficiaries"


def test_good_shares_pass_and_name_the_rules_applied() -> None:
    applied = check_shares([Share("a", 7000), Share("t", 3000)], "t", _parties("a", "t"), RULES)
    assert set(applied) == {"TRUST-BENEFICIARIES", "TRUST-SHARES", "TRUST-TRUSTEE-NOT-SOLE"}


def test_a_share_that_is_not_a_whole_number_is_refused() -> None:
    with pytest.raises(InvalidDeed) as exc:
        check_shares([Share("a", 5000.5), Share("b", 4999.5)], "t", _parties("a", "b"), RULES)  # type: ignore[arg-type]
    assert exc.value.rule == "TRUST-SHARES"


@pytest.mark.parametrize("fee", [-1, RULES.fee_max_bp + 1, 10_000, 2.5, "100", True])
def test_a_fee_out_of_range_is_refused(fee) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidDeed) as exc:
        check_fee(fee, RULES)
    assert exc.value.rule == "TRUST-FEE"


def test_parties_must_be_two_verified_parties() -> None:
    parties = _parties("s", "t", "u", unverified=("u",))
    assert check_parties("s", "t", parties, RULES) == "TRUST-PARTIES"
    for settlor, trustee in (("s", "s"), ("s", "u"), ("s", "ghost")):
        with pytest.raises(InvalidDeed) as exc:
            check_parties(settlor, trustee, parties, RULES)
        assert exc.value.rule == "TRUST-PARTIES"


def test_term_rules() -> None:
    assert check_term(date(2026, 7, 1), date(2029, 6, 30), TODAY, RULES) == "TRUST-TERM"
    for start, end in (
        (date(2026, 7, 1), date(2026, 6, 30)),  # ends before it starts
        (date(2025, 1, 1), date(2026, 5, 31)),  # already over
        (date(2026, 7, 1), date(2050, 1, 1)),  # longer than the maximum
    ):
        with pytest.raises(InvalidDeed) as exc:
            check_term(start, end, TODAY, RULES)
        assert exc.value.rule == "TRUST-TERM"


SCOPE = Scope(
    purposes=["credit_finance", "research"], regions=["450000"], delivery_modes=["sandbox"]
)
RIGHT_SCOPE = Scope(
    purposes=["credit_finance", "research", "industry"],
    regions=["450000"],
    delivery_modes=["api", "sandbox"],
)


def _asset(
    asset_id: str = "x",
    *,
    party: str = "s",
    data_class: str = "enterprise",
    grade: str | None = "general",
    status: str | None = "active",
    scope: Scope = RIGHT_SCOPE,
    end: date | None = None,
) -> AssetFacts:
    holding = (
        None if status is None else HoldingFacts("right-1", status, scope, date(2026, 3, 2), end)
    )
    return AssetFacts(asset_id, "居民用电数据", party, data_class, grade, holding)


@pytest.mark.parametrize(
    ("asset", "rule"),
    [
        (_asset(party="other"), "TRUST-PROPERTY"),  # not the settlor's
        (_asset(status=None), "TRUST-PROPERTY"),  # no holding right
        (_asset(status="suspended"), "TRUST-PROPERTY"),  # not in force
        (_asset(status="pledged"), "TRUST-PROPERTY-PLEDGED"),
        (_asset(grade="core"), "TRUST-PROPERTY-CORE"),
        (_asset(data_class="public"), "TRUST-PROPERTY-PUBLIC"),
        (_asset(scope=Scope(purposes=["research"])), "TRUST-SCOPE"),  # deed wider than right
        (_asset(end=date(2027, 12, 31)), "TRUST-SCOPE"),  # deed longer than the right
    ],
)
def test_bad_trust_property_is_refused_naming_the_rule(asset, rule) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidDeed) as exc:
        check_property("s", ["x"], {"x": asset}, SCOPE, date(2026, 7, 1), date(2029, 6, 30), RULES)
    assert exc.value.rule == rule


def test_unknown_or_repeated_or_no_assets_are_refused() -> None:
    good = {"x": _asset()}
    for ids in ([], ["y"], ["x", "x"]):
        with pytest.raises(InvalidDeed) as exc:
            check_property("s", ids, good, SCOPE, date(2026, 7, 1), date(2029, 6, 30), RULES)
        assert exc.value.rule == "TRUST-PROPERTY"
    assert "TRUST-PROPERTY" in check_property(
        "s", ["x"], good, SCOPE, date(2026, 7, 1), date(2029, 6, 30), RULES
    )


def test_the_scope_is_checked_by_the_registry_vocabulary() -> None:
    assert parse_scope({"purposes": ["research"], "delivery_modes": ["sandbox"]}).purposes == {
        "research"
    }
    with pytest.raises(Exception, match="teleport"):
        parse_scope({"delivery_modes": ["teleport"]})


# ---------------------------------------------------------------------------- state machine


def test_the_lifecycle_and_who_acts() -> None:
    s = DeedState
    assert transition("D", s.DRAFT, DeedAction.SIGN, Actor.SETTLOR, RULES) is s.SIGNED
    assert transition("D", s.SIGNED, DeedAction.ACCEPT, Actor.TRUSTEE, RULES) is s.ACCEPTED
    assert transition("D", s.SIGNED, DeedAction.DECLINE, Actor.TRUSTEE, RULES) is s.DRAFT
    assert transition("D", s.ACCEPTED, DeedAction.ACTIVATE, Actor.SYSTEM, RULES) is s.ACTIVE
    assert transition("D", s.ACTIVE, DeedAction.AMEND, Actor.SETTLOR, RULES) is s.ACTIVE
    assert transition("D", s.ACTIVE, DeedAction.EXPIRE, Actor.SYSTEM, RULES) is s.EXPIRED
    assert (
        transition("D", s.ACTIVE, DeedAction.AGREE_TERMINATION, Actor.TRUSTEE, RULES)
        is s.TERMINATED
    )
    assert (
        transition("D", s.SIGNED, DeedAction.ORDER_TERMINATION, Actor.REGULATOR, RULES)
        is s.TERMINATED
    )
    with pytest.raises(WrongParty) as exc:
        transition("D", s.SIGNED, DeedAction.ACCEPT, Actor.SETTLOR, RULES)
    assert exc.value.rule == "TRUST-ACTOR"
    with pytest.raises(WrongParty):
        transition("D", s.ACTIVE, DeedAction.AMEND, Actor.TRUSTEE, RULES)
    with pytest.raises(DeedStateConflict) as conflict:
        transition("D", s.ACTIVE, DeedAction.SIGN, Actor.SETTLOR, RULES)
    assert conflict.value.rule == "TRUST-LIFECYCLE"
    for final in (s.TERMINATED, s.EXPIRED, s.WITHDRAWN):
        assert not any(allowed_actions(final, actor) for actor in Actor)


def test_every_non_final_state_has_an_owner() -> None:
    finals = {DeedState.TERMINATED, DeedState.EXPIRED, DeedState.WITHDRAWN}
    for state in set(DeedState) - finals:
        # someone other than the regulator can move it, and the regulator can end it
        assert any(
            allowed_actions(state, actor) for actor in (Actor.SETTLOR, Actor.TRUSTEE, Actor.SYSTEM)
        )
        assert DeedAction.ORDER_TERMINATION in allowed_actions(state, Actor.REGULATOR)


# ---------------------------------------------------------------------- versions and income


def test_the_split_in_force_on_a_day() -> None:
    v1 = SplitVersion(1, date(2026, 7, 1), (Share("a", 10_000),))
    v2 = SplitVersion(2, date(2026, 9, 1), (Share("a", 5000), Share("b", 5000)))
    v3 = SplitVersion(3, date(2026, 9, 1), (Share("b", 10_000),))
    versions = [v3, v1, v2]
    assert split_in_force(versions, date(2026, 6, 1)) == v1  # before the first: the first
    assert split_in_force(versions, date(2026, 8, 31)) == v1
    assert split_in_force(versions, date(2026, 9, 1)) == v3  # same day: the later version
    assert split_in_force(versions, date(2027, 1, 1)) == v3


def test_an_amendment_is_never_backdated() -> None:
    kw = {
        "today": date(2026, 9, 10),
        "term_start": date(2026, 7, 1),
        "term_end": date(2029, 6, 30),
        "last_version_on": date(2026, 7, 1),
        "rules": RULES,
    }
    assert check_amendment_date(date(2026, 9, 10), last_income_on=None, **kw) == "TRUST-AMENDMENT"
    for effective, last_income in (
        (date(2026, 9, 9), None),  # before today
        (date(2026, 9, 12), date(2026, 9, 12)),  # not after income already received
        (date(2029, 7, 1), None),  # after the term
    ):
        with pytest.raises(InvalidDeed) as exc:
            check_amendment_date(effective, last_income_on=last_income, **kw)
        assert exc.value.rule == "TRUST-AMENDMENT"


def test_income_rules() -> None:
    kw = {
        "term_start": date(2026, 7, 1),
        "term_end": date(2029, 6, 30),
        "today": TODAY.replace(month=9),
        "rules": RULES,
    }
    assert check_income("D", DeedState.ACTIVE, 100, date(2026, 8, 1), **kw) == "TRUST-INCOME"
    for amount in (0, -5, 1.5, "100", True, RULES.max_income_fen + 1):
        with pytest.raises(InvalidDeed) as exc:
            check_income("D", DeedState.ACTIVE, amount, date(2026, 8, 1), **kw)
        assert exc.value.rule == "TRUST-INCOME"
    for state in (DeedState.ACCEPTED, DeedState.TERMINATED, DeedState.DRAFT):
        with pytest.raises(DeedStateConflict):
            check_income("D", state, 100, date(2026, 8, 1), **kw)
    for day in (date(2026, 6, 30), date(2026, 9, 2)):  # before the term; in the future
        with pytest.raises(InvalidDeed):
            check_income("D", DeedState.ACTIVE, 100, day, **kw)


def test_yuan_text() -> None:
    assert yuan(123456) == "1,234.56"
    assert yuan(5) == "0.05"
    assert parse_yuan("1,234.5") == 123450
    assert parse_yuan("0.01") == 1
    for bad in ("", "-1", "1.234", "abc", "1..2"):
        assert parse_yuan(bad) is None


def test_the_rules_file_names_every_rule_with_its_source() -> None:
    ids = [ref.id for ref in RULES.rules.refs.values()]
    assert len(ids) == len(set(ids))
    assert all(
        ref.source and ref.title["zh"] and ref.title["en"] for ref in RULES.rules.refs.values()
    )
    assert RULES.total_bp == 10_000
    assert 0 <= RULES.fee_min_bp <= RULES.fee_max_bp < RULES.total_bp
