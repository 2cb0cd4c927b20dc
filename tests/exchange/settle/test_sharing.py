"""The split (no database): exact sums, rounding by the largest remainder, the rules' rates,
the chain's order, refusals — property-tested with hypothesis."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datafactor.exchange.errors import ExchangeInvalid
from datafactor.exchange.rulebook import exchange_rules
from datafactor.exchange.sharing import (
    BP,
    STAGES,
    Holder,
    Terms,
    apportion,
    split,
    terms_from_rules,
)
from datafactor.settlement import LineKind

SELLER = "seller"
TERMS = Terms(
    fee_bp=200,
    fee_min_fen=0,
    fee_max_fen=None,
    broker_bp=100,
    treasury_bp=1_000,
    stage_rights={"collection": frozenset({"holding"})},
)
COLLECTOR = Holder("collector", "holding", "enterprise")


def _parts(result):
    return {(p.kind.value, p.party_id, p.stage): p.amount_fen for p in result.parts}


def test_the_rules_file_gives_the_rates_and_rule_ids():
    terms = terms_from_rules(exchange_rules())
    assert terms.fee_bp == exchange_rules().data["settlement"]["fee"]["rate_bp"]
    assert terms.rule_treasury == "EXC-SETTLE-TREASURY"
    assert exchange_rules().ref("settle_treasury").verified is True  # 51号 附件 8.2 [S]
    assert exchange_rules().ref("settle_fee").verified is False  # the platform's rate
    assert terms.stage_rights["collection"] == {"holding"}


def test_a_worked_example():
    # 1,000.01 yuan, broker, public data, a collector's 500 fen commission, dividends of 1/3.
    result = split(
        100_001,
        seller_id=SELLER,
        agreement=[
            {"party_id": "collector", "stage": "collection", "mode": "commission", "fen": 500},
            {"party_id": "app", "stage": "application", "mode": "dividend", "bp": 3_333},
        ],
        holders=[COLLECTOR],
        terms=TERMS,
        broker_id="broker",
        data_class="public",
    )
    # Of 100,001: fee 2 % = 2,000.02, broker 1 % = 1,000.01, treasury 10 % = 10,000.1, rest
    # 87 % = 87,000.87 → rounded down 2,000 / 1,000 / 10,000 / 87,000; the fen left over goes
    # to the largest remainder (.87): rest 87,001. Commission 500 → net 86,501: app 33.33 % =
    # 28,830.78, seller 66.67 % = 57,670.22 → 28,830 / 57,670, the fen left to the app (.78).
    assert _parts(result) == {
        ("fee", None, None): 2_000,
        ("commission", "broker", None): 1_000,
        ("treasury", None, None): 10_000,
        ("share", "collector", "collection"): 500,
        ("share", "app", "application"): 28_831,
        ("payout", SELLER, None): 57_670,
    }
    assert sum(p.amount_fen for p in result.parts) == 100_001
    assert [p.rule for p in result.parts] == [
        "EXC-SETTLE-FEE",
        "EXC-SETTLE-BROKER",
        "EXC-SETTLE-TREASURY",
        "EXC-SETTLE-SHARING",
        "EXC-SETTLE-SHARING",
        "EXC-SETTLE-SELLER",
    ]
    assert "EXC-SETTLE-LINEAGE" in result.rules


def test_treasury_only_for_public_data_and_commission_only_with_a_broker():
    plain = _parts(split(10_000, seller_id=SELLER, agreement=[], holders=[], terms=TERMS))
    assert plain == {("fee", None, None): 200, ("payout", SELLER, None): 9_800}
    public_lineage = [Holder("bureau", "holding", "public")]
    derived = _parts(
        split(10_000, seller_id=SELLER, agreement=[], holders=public_lineage, terms=TERMS)
    )
    assert derived[("treasury", None, None)] == 1_000
    brokered = _parts(
        split(10_000, seller_id=SELLER, agreement=[], holders=[], terms=TERMS, broker_id="b")
    )
    assert brokered[("commission", "b", None)] == 100


def test_the_fee_is_clamped_to_its_minimum_and_maximum_within_what_there_is():
    terms = Terms(200, 500, 1_000, 0, 0, {})
    assert (
        _parts(split(10_000, seller_id=SELLER, agreement=[], holders=[], terms=terms))[
            ("fee", None, None)
        ]
        == 500
    )
    assert (
        _parts(split(1_000_000, seller_id=SELLER, agreement=[], holders=[], terms=terms))[
            ("fee", None, None)
        ]
        == 1_000
    )
    assert _parts(split(300, seller_id=SELLER, agreement=[], holders=[], terms=terms)) == {
        ("fee", None, None): 300
    }


@pytest.mark.parametrize(
    ("agreement", "rule", "field"),
    [
        (
            [{"party_id": "a", "stage": "circulation", "mode": "dividend", "bp": 6_000}] * 2,
            "EXC-SETTLE-SHARING",
            "revenue_sharing",
        ),
        (
            [{"party_id": "a", "stage": "circulation", "mode": "commission", "fen": 9_900}],
            "EXC-SETTLE-SHARING",
            "revenue_sharing",
        ),
        (
            [{"party_id": "a", "stage": "mining", "mode": "dividend", "bp": 10}],
            "EXC-SETTLE-SHARING",
            "revenue_sharing[0]",
        ),
        (
            [{"party_id": "a", "stage": "circulation", "mode": "dividend", "bp": 0}],
            "EXC-SETTLE-SHARING",
            "revenue_sharing[0]",
        ),
        (
            [{"party_id": "a", "stage": "circulation", "mode": "commission", "fen": 1.5}],
            "EXC-SETTLE-SHARING",
            "revenue_sharing[0]",
        ),
        (
            [{"party_id": "stranger", "stage": "collection", "mode": "dividend", "bp": 10}],
            "EXC-SETTLE-LINEAGE",
            "revenue_sharing[0].party_id",
        ),
    ],
)
def test_an_agreement_that_cannot_be_paid_is_refused(agreement, rule, field):
    with pytest.raises(ExchangeInvalid) as refused:
        split(10_000, seller_id=SELLER, agreement=agreement, holders=[COLLECTOR], terms=TERMS)
    assert refused.value.rule == rule and refused.value.field == field


def test_a_lineage_right_no_longer_in_force_does_not_qualify():
    lapsed = Holder("collector", "holding", "enterprise", in_force=False)
    with pytest.raises(ExchangeInvalid):
        split(
            10_000,
            seller_id=SELLER,
            agreement=[
                {"party_id": "collector", "stage": "collection", "mode": "dividend", "bp": 1}
            ],
            holders=[lapsed],
            terms=TERMS,
        )


def test_rates_above_the_whole_are_refused():
    with pytest.raises(ExchangeInvalid) as refused:
        split(
            100,
            seller_id=SELLER,
            agreement=[],
            holders=[],
            terms=Terms(9_000, 0, None, 2_000, 0, {}),
            broker_id="b",
        )
    assert refused.value.rule == "EXC-SETTLE-EXACT"


# ----------------------------------------------------------------------------- properties

_parties = st.sampled_from(["collector", "p1", "p2", "p3", SELLER])
_entries = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {
                "party_id": _parties,
                "stage": st.sampled_from(STAGES[1:]),
                "mode": st.just("dividend"),
                "bp": st.integers(1, 3_000),
            }
        ),
        st.fixed_dictionaries(
            {
                "party_id": _parties,
                "stage": st.sampled_from(STAGES[1:]),
                "mode": st.just("commission"),
                "fen": st.integers(1, 500),
            }
        ),
        st.fixed_dictionaries(
            {
                "party_id": st.just("collector"),
                "stage": st.just("collection"),
                "mode": st.just("dividend"),
                "bp": st.integers(1, 3_000),
            }
        ),
    ),
    max_size=6,
)
_terms = st.builds(
    Terms,
    fee_bp=st.integers(0, 1_000),
    fee_min_fen=st.integers(0, 200),
    fee_max_fen=st.one_of(st.none(), st.integers(200, 100_000)),
    broker_bp=st.integers(0, 500),
    treasury_bp=st.integers(0, 2_000),
    stage_rights=st.just({"collection": frozenset({"holding"})}),
)


def _try(amount, agreement, terms, broker, public):
    try:
        return split(
            amount,
            seller_id=SELLER,
            agreement=agreement,
            holders=[COLLECTOR],
            terms=terms,
            broker_id=broker,
            data_class="public" if public else "enterprise",
        )
    except ExchangeInvalid as exc:
        return exc


@given(
    amount=st.integers(0, 10**12),
    agreement=_entries,
    terms=_terms,
    broker=st.sampled_from([None, "broker"]),
    public=st.booleans(),
)
def test_the_parts_add_up_exactly_none_negative(amount, agreement, terms, broker, public):
    result = _try(amount, agreement, terms, broker, public)
    if isinstance(result, ExchangeInvalid):
        # Refused only when the agreement asks for more than there is.
        assert result.rule == "EXC-SETTLE-SHARING"
        dividends = sum(e.get("bp", 0) for e in agreement)
        commissions = sum(e.get("fen", 0) for e in agreement)
        assert dividends > BP or commissions > 0
        return
    assert sum(p.amount_fen for p in result.parts) == amount
    assert all(p.amount_fen > 0 for p in result.parts)
    assert all(p.rule.startswith("EXC-SETTLE-") for p in result.parts)
    assert all((p.stage is not None) == (p.kind is LineKind.SHARE) for p in result.parts)
    fee = result.total(LineKind.FEE)
    exact_fee = Fraction(amount * terms.fee_bp, BP)
    if terms.fee_min_fen == 0 and terms.fee_max_fen is None:
        assert abs(fee - exact_fee) < 1  # within one fen of its exact share
    if broker:
        assert abs(result.total(LineKind.COMMISSION) - Fraction(amount * terms.broker_bp, BP)) < 1
    else:
        assert result.total(LineKind.COMMISSION) == 0
    if public:
        assert abs(result.total(LineKind.TREASURY) - Fraction(amount * terms.treasury_bp, BP)) < 1
    else:
        assert result.total(LineKind.TREASURY) == 0


@given(amount=st.integers(1, 10**9), agreement=_entries, data=st.data())
def test_the_split_does_not_depend_on_the_order_of_the_agreement(amount, agreement, data):
    shuffled = data.draw(st.permutations(agreement))
    first = _try(amount, agreement, TERMS, "broker", True)
    second = _try(amount, shuffled, TERMS, "broker", True)
    if isinstance(first, ExchangeInvalid):
        assert isinstance(second, ExchangeInvalid) and second.rule == first.rule
        return
    assert sorted(first.parts, key=repr) == sorted(second.parts, key=repr)


@given(
    total=st.integers(0, 10**12),
    weights=st.lists(st.integers(0, BP), min_size=1, max_size=8).filter(lambda w: sum(w) <= BP),
)
def test_apportion_is_hamilton(total, weights):
    weights = [*weights, BP - sum(weights)]
    shares = apportion(total, [(w, i) for i, w in enumerate(weights)])
    assert sum(shares) == total
    for share, w in zip(shares, weights, strict=True):
        exact = Fraction(total * w, BP)
        assert exact - 1 < share < exact + 1
        assert share >= 0


@given(net=st.integers(0, 10**9), bps=st.lists(st.integers(1, 2_000), max_size=5))
def test_dividends_are_within_one_fen_of_their_share_of_the_net(net, bps):
    # No fee, no commission: the net is the amount, and each dividend is its share of it.
    terms = Terms(0, 0, None, 0, 0, {})
    agreement = [
        {"party_id": f"p{i}", "stage": "circulation", "mode": "dividend", "bp": bp}
        for i, bp in enumerate(bps)
    ]
    result = split(net, seller_id=SELLER, agreement=agreement, holders=[], terms=terms)
    got = {p.party_id: p.amount_fen for p in result.parts}
    for i, bp in enumerate(bps):
        assert abs(got.get(f"p{i}", 0) - Fraction(net * bp, BP)) < 1
