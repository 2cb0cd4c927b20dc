"""The money ledger's pure rules (no database): money in fen and yuan, the checks of amounts,
keys, references and splits, how each operation posts, the refusals of ``apply_lines`` (which
change nothing), and the rules file's checks at load time."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from datafactor.ledger import canonical_json
from datafactor.settlement.domain import (
    SYSTEM_ACCOUNT_IDS,
    AccountKind,
    AccountState,
    HoldState,
    Line,
    LineKind,
    Money,
    Payout,
    apply_lines,
    check_amount,
    check_key,
    check_payouts,
    check_reference,
    digest_bytes,
    format_yuan,
    journal_digest_payload,
    parse_yuan,
    plan_capture,
    plan_refund,
    plan_release,
    request_fingerprint,
    yuan_text,
)
from datafactor.settlement.errors import (
    EscrowExceeded,
    InsufficientFunds,
    InvalidSettlementInput,
    RefundExceeded,
    SettlementError,
)
from datafactor.settlement.rulebook import RULE_KEYS, load_settlement_rules

RULES = load_settlement_rules()
BANK = SYSTEM_ACCOUNT_IDS[AccountKind.BANK]


@pytest.mark.parametrize(
    ("fen", "text", "shown"),
    [
        (0, "0.00", "¥0.00"),
        (5, "0.05", "¥0.05"),
        (123456, "1,234.56", "¥1,234.56"),
        (-100, "-1.00", "-¥1.00"),
        (10**15, "10,000,000,000,000.00", "¥10,000,000,000,000.00"),
    ],
)
def test_money_is_shown_in_yuan_exactly(fen, text, shown):
    assert yuan_text(fen) == text
    assert format_yuan(fen) == shown
    assert str(Money(fen)) == shown


@pytest.mark.parametrize(
    ("typed", "fen"),
    [
        ("1234.56", 123456),
        ("1,234.5", 123450),
        ("¥12", 1200),
        ("0.1", 10),
        (" 3 元", 300),
        ("￥1，000．05", 100005),
    ],
)
def test_typed_yuan_amounts_are_read_exactly(typed, fen):
    assert parse_yuan(typed) == fen


@pytest.mark.parametrize("typed", ["", "abc", "1.234", "-5", "1e3", "1 000", "1,23", "NaN"])
def test_other_text_is_not_an_amount(typed):
    with pytest.raises(ValueError, match="not a yuan amount"):
        parse_yuan(typed)


@given(st.integers(min_value=0, max_value=10**15))
def test_yuan_text_reads_back(fen):
    assert parse_yuan(yuan_text(fen)) == fen


def test_money_holds_whole_fen_only():
    assert Money(150) + Money(50) == Money(200)
    assert -Money(5) == Money(-5)
    with pytest.raises(TypeError):
        Money(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True)


@pytest.mark.parametrize("value", [0, -1, 10**15 + 1, 1.0, True, "5", None])
def test_amounts_must_be_positive_whole_fen_within_the_cap(value):
    with pytest.raises(InvalidSettlementInput) as refused:
        check_amount(value, RULES)
    assert refused.value.rule == "SET-MONEY"
    assert "1250" in str(refused.value)


def test_keys_and_references():
    assert check_key("3f2a-uuid_OK:1.2", RULES)
    for bad in ("", "a b", "x" * 129, "中文", 5):
        with pytest.raises(InvalidSettlementInput, match="SET-IDEMPOTENCY"):
            check_key(bad, RULES)
    assert check_reference("order:2026-000123", RULES)
    assert check_reference("trust_income:T/2026/7", RULES)
    for bad in ("order", ":1", "Order:1", "order:", "order:a b", "x:" + "1" * 97):
        with pytest.raises(InvalidSettlementInput, match="SET-REFERENCE"):
            check_reference(bad, RULES)


def test_a_split_names_its_payees_properly():
    ok = check_payouts(
        [
            Payout(LineKind.PAYOUT, 900, "seller"),
            Payout(LineKind.COMMISSION, 30),
            Payout(LineKind.COMMISSION, 20, "broker"),
            Payout(LineKind.FEE, 40),
            Payout(LineKind.TREASURY, 10),
        ],
        RULES,
    )
    assert len(ok) == 5
    for bad in (
        [],
        [Payout(LineKind.PAYOUT, 10)],
        [Payout(LineKind.SHARE, 10)],
        [Payout(LineKind.FEE, 10, "someone")],
        [Payout(LineKind.REFUND, 10, "x")],
        [Payout(LineKind.FEE, 0)],
        [Payout(LineKind.FEE, 1)] * (RULES.max_payouts + 1),
    ):
        with pytest.raises(InvalidSettlementInput):
            check_payouts(bad, RULES)


def states(**balances: int) -> dict[str, AccountState]:
    kinds = {
        "avail": AccountKind.AVAILABLE,
        "frozen": AccountKind.FROZEN,
        "seller": AccountKind.AVAILABLE,
        BANK: AccountKind.BANK,
        "fee": AccountKind.FEE_INCOME,
    }
    out = {k: AccountState(k, kinds[k], 0, 0) for k in kinds}
    for account, balance in balances.items():
        out[account].balance_fen = balance
    return out


def test_apply_lines_numbers_lines_and_keeps_balances_after():
    book = states()
    posted = apply_lines(
        book, [Line(BANK, -500, LineKind.DEPOSIT), Line("avail", 500, LineKind.DEPOSIT)], RULES
    )
    assert [(x.seq, x.balance_after) for x in posted] == [(1, -500), (1, 500)]
    posted = apply_lines(
        book, [Line(BANK, -20, LineKind.DEPOSIT), Line("avail", 20, LineKind.DEPOSIT)], RULES
    )
    assert [(x.seq, x.balance_after) for x in posted] == [(2, -520), (2, 520)]


def test_refusals_change_nothing():
    book = states(avail=300, **{BANK: -300})
    snapshot = {k: (v.balance_fen, v.lines) for k, v in book.items()}
    with pytest.raises(InsufficientFunds) as refused:
        apply_lines(
            book,
            [Line("avail", -301, LineKind.FREEZE), Line("frozen", 301, LineKind.FREEZE)],
            RULES,
        )
    assert refused.value.params == {"rule": "SET-FUNDS", "available": "3.00", "needed": "3.01"}
    with pytest.raises(SettlementError, match="SET-DOUBLE-ENTRY"):
        apply_lines(
            book, [Line("avail", -1, LineKind.FREEZE), Line("frozen", 2, LineKind.FREEZE)], RULES
        )
    with pytest.raises(SettlementError, match="SET-DOUBLE-ENTRY"):
        apply_lines(book, [Line("avail", 0, LineKind.FREEZE)], RULES)
    with pytest.raises(InsufficientFunds):  # the custody account never holds less than 0
        apply_lines(
            book,
            [Line(BANK, 301, LineKind.WITHDRAWAL), Line("seller", -301, LineKind.WITHDRAWAL)],
            RULES,
        )
    with pytest.raises(InvalidSettlementInput, match="SET-MONEY"):
        apply_lines(
            book,
            [
                Line(BANK, -RULES.max_balance_fen, LineKind.DEPOSIT),
                Line("avail", RULES.max_balance_fen, LineKind.DEPOSIT),
            ],
            RULES,
        )
    assert {k: (v.balance_fen, v.lines) for k, v in book.items()} == snapshot


def test_capture_pays_the_split_and_may_return_the_rest():
    hold = HoldState(1_000, released_fen=100)
    payees = [("seller", Payout(LineKind.PAYOUT, 700, "s")), ("fee", Payout(LineKind.FEE, 50))]
    plan = plan_capture("frozen", "avail", hold, payees, True, "order:1", RULES)
    assert [(x.account_id, x.amount_fen) for x in plan.lines] == [
        ("frozen", -900),
        ("seller", 700),
        ("fee", 50),
        ("avail", 150),
    ]
    assert (plan.captured_fen, plan.released_fen) == (750, 150)
    with pytest.raises(EscrowExceeded) as refused:
        plan_capture(
            "frozen",
            "avail",
            hold,
            [("seller", Payout(LineKind.PAYOUT, 901, "s"))],
            False,
            "order:1",
            RULES,
        )
    assert refused.value.params["remaining"] == "9.00" and refused.value.rule == "SET-ESCROW"
    lines, amount = plan_release("frozen", "avail", hold, None, "order:1", RULES)
    assert amount == 900 and lines[0].amount_fen == -900
    with pytest.raises(EscrowExceeded):
        plan_release("frozen", "avail", HoldState(5, captured_fen=5), None, "order:1", RULES)


def test_refund_returns_at_most_what_was_received():
    lines = plan_refund(
        "avail", [("seller", 300), ("fee", 20)], {"seller": 700, "fee": 50}, {"seller": 100}, RULES
    )
    assert [(x.account_id, x.amount_fen) for x in lines] == [
        ("seller", -300),
        ("fee", -20),
        ("avail", 320),
    ]
    with pytest.raises(RefundExceeded, match="SET-REFUND"):
        plan_refund("avail", [("seller", 601)], {"seller": 700}, {"seller": 100}, RULES)
    with pytest.raises(RefundExceeded):
        plan_refund("avail", [("other", 1)], {"seller": 700}, {}, RULES)


def test_the_digest_payload_and_fingerprints_are_canonical():
    from datetime import UTC, datetime

    at = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    lines = [("b", 5, "fee", 3, 5), ("a", -5, "capture", 9, 0)]
    one = journal_digest_payload(
        journal_id="j",
        kind="capture",
        reference="order:1",
        posted_at=at,
        scope="p",
        key="k",
        lines=lines,
    )
    two = journal_digest_payload(
        journal_id="j",
        kind="capture",
        reference="order:1",
        posted_at=at,
        scope="p",
        key="k",
        lines=lines[::-1],
    )
    assert one == two and one["lines"][0][0] == "a"
    assert all(isinstance(v, str) for line in one["lines"] for v in line)
    assert digest_bytes(one) == canonical_json(one)
    assert request_fingerprint("freeze", {"a": 1, "b": 2}) == request_fingerprint(
        "freeze", {"b": 2, "a": 1}
    )
    assert request_fingerprint("freeze", {"a": 1}) != request_fingerprint("deposit", {"a": 1})


def test_every_rule_has_its_source_and_the_file_is_checked_at_load(tmp_path: Path):
    assert set(RULE_KEYS) <= set(RULES.refs)
    for ref in RULES.refs.values():
        assert ref.id.startswith("SET-") and ref.title["zh"] and ref.title["en"] and ref.source
    assert RULES.by_id("SET-TREASURY").verified is True
    assert RULES.by_id("SET-FUNDS").verified is False
    data = yaml.safe_load(
        (Path(__file__).parents[2] / "src/datafactor/settlement/rules/settlement.yaml").read_text()
    )
    broken = {**data, "rules": {k: v for k, v in data["rules"].items() if k != "funds"}}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(broken, allow_unicode=True))
    with pytest.raises(ValueError, match="funds"):
        load_settlement_rules(tmp_path / "a.yaml")
    broken = {**data, "limits": {**data["limits"], "max_amount_fen": 0}}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(broken, allow_unicode=True))
    with pytest.raises(ValueError, match="max_amount_fen"):
        load_settlement_rules(tmp_path / "b.yaml")
    broken = {**data, "limits": {**data["limits"], "max_balance_fen": 2**60}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(broken, allow_unicode=True))
    with pytest.raises(ValueError, match="exact in JSON"):
        load_settlement_rules(tmp_path / "c.yaml")


ascii_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


@given(
    st.fixed_dictionaries(
        {"id": ascii_text, "kind": ascii_text, "reference": ascii_text, "key": ascii_text},
    ),
    st.lists(
        st.tuples(
            ascii_text,
            st.integers(-(2**62), 2**62),
            ascii_text,
            st.integers(0, 10**9),
            st.integers(-(2**62), 2**62),
        ),
        max_size=6,
    ),
)
def test_digest_bytes_are_rfc_8785(fields, lines):
    from datetime import UTC, datetime

    payload = journal_digest_payload(
        journal_id=fields["id"],
        kind=fields["kind"],
        reference=fields["reference"],
        posted_at=datetime(2026, 1, 1, tzinfo=UTC),
        scope="p",
        key=fields["key"],
        lines=lines,
    )
    assert digest_bytes(payload) == canonical_json(payload)


def test_the_exchanges_hot_accounts_are_spread_over_sub_accounts():
    from datafactor.settlement.domain import SYSTEM_SHARDS, system_account_id, system_account_ids

    fee = system_account_ids(AccountKind.FEE_INCOME)
    assert len(fee) == SYSTEM_SHARDS and fee[0] == "sys:fee-income"
    assert system_account_ids(AccountKind.BANK) == ("sys:bank",)
    holds = [f"hold-{n}" for n in range(400)]
    used = {system_account_id(AccountKind.FEE_INCOME, h) for h in holds}
    assert used == set(fee)  # every sub-account takes its share
    assert all(
        system_account_id(AccountKind.TREASURY, h) == system_account_id(AccountKind.TREASURY, h)
        for h in holds
    )
    assert system_account_id(AccountKind.BANK, "hold-1") == "sys:bank"
