"""The money ledger's rules: the chart of accounts, money in fen, and how each operation posts.

Pure Python — no web framework, no ORM — so every rule here is tested without a database.

**Sign convention.** A line's amount is positive when it *credits* the account and negative when
it *debits* it. What the exchange owes — a party's available and frozen funds, the fees it has
earned, the commissions and the treasury's non-tax revenue it holds — are credit-normal accounts
with balances ≥ 0. The money itself sits in the custody bank account, the exchange's one asset,
a debit-normal account whose balance is ≤ 0 (minus the funds held). Every journal sums to 0, so
all balances together always sum to 0: the accounting identity assets = liabilities + income.

**Operations.** Each plan function returns the lines of one journal; ``apply_lines`` checks them
against the locked balances (double entry, no credit-normal balance below 0, no debit-normal one
above 0, no balance beyond the cap) and yields each line's per-account sequence number and the
balance after it, which is what statements show and reconciliation re-derives.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Final

from datafactor.errors import N_
from datafactor.settlement.errors import (
    EscrowExceeded,
    InsufficientFunds,
    InvalidSettlementInput,
    RefundExceeded,
    SettlementError,
)
from datafactor.settlement.rulebook import SettlementRules

# ----------------------------------------------------------------------------- chart of accounts


class AccountKind(StrEnum):
    """The kinds of account in the chart (see ``CHART`` and docs/settlement.md)."""

    AVAILABLE = "available"  # 可用资金 (a party's)
    FROZEN = "frozen"  # 冻结资金（托管）(a party's escrow)
    BANK = "bank"  # 银行存款—存管账户 (the exchange's custody bank account)
    FEE_INCOME = "fee_income"  # 交易服务费收入
    COMMISSIONS = "commissions"  # 应付经纪佣金
    TREASURY = "treasury"  # 应缴国库非税收入


class Side(StrEnum):
    CREDIT = "credit"  # balance >= 0 (what the exchange owes or has earned)
    DEBIT = "debit"  # balance <= 0 (what the exchange holds)


@dataclass(frozen=True, slots=True)
class AccountType:
    """One line of the chart of accounts."""

    kind: AccountKind
    code: str  # the chart's account number
    name: str  # English msgid
    side: Side
    per_party: bool


CHART: Final[Mapping[AccountKind, AccountType]] = {
    t.kind: t
    for t in (
        AccountType(
            AccountKind.BANK, "1002", N_("Custody bank account (clearing)"), Side.DEBIT, False
        ),
        AccountType(AccountKind.AVAILABLE, "2001", N_("Available funds"), Side.CREDIT, True),
        AccountType(AccountKind.FROZEN, "2002", N_("Frozen funds (escrow)"), Side.CREDIT, True),
        AccountType(
            AccountKind.COMMISSIONS, "2203", N_("Broker commissions payable"), Side.CREDIT, False
        ),
        AccountType(
            AccountKind.TREASURY,
            "2241",
            N_("Non-tax revenue payable to the treasury"),
            Side.CREDIT,
            False,
        ),
        AccountType(AccountKind.FEE_INCOME, "6001", N_("Exchange fee income"), Side.CREDIT, False),
    )
}
PARTY_KINDS: Final = (AccountKind.AVAILABLE, AccountKind.FROZEN)

# The exchange's own accounts have fixed ids (created by the migration). They sort after every
# UUID (``s`` > ``f``), so a transaction that locks balances in id order takes these hot rows last
# and holds them for the shortest time.
SYSTEM_ACCOUNT_IDS: Final[Mapping[AccountKind, str]] = {
    AccountKind.BANK: "sys:bank",
    AccountKind.COMMISSIONS: "sys:commissions",
    AccountKind.FEE_INCOME: "sys:fee-income",
    AccountKind.TREASURY: "sys:treasury",
}
# Every capture credits the fee income and often the treasury and commissions accounts, so
# their balance rows are where concurrent settlements meet: each is locked until its
# transaction commits. They are kept as ``SYSTEM_SHARDS`` sub-accounts (明细账) of the one
# account in the chart — ``sys:fee-income`` and ``sys:fee-income:1`` … ``:7`` — and a capture
# credits the sub-account its hold hashes to, so up to that many settlements proceed at once.
# The account's balance is the sum of its sub-accounts. The custody bank account is not split:
# a withdrawal must be checked against everything it holds.
SYSTEM_SHARDS: Final = 8
SHARDED_KINDS: Final = frozenset(
    {AccountKind.FEE_INCOME, AccountKind.COMMISSIONS, AccountKind.TREASURY}
)


def system_account_id(kind: AccountKind, spread_by: str = "") -> str:
    """The id of the exchange's account ``kind``: for a split account, the sub-account
    ``spread_by`` (a hold id) hashes to — always the same one for the same hold, so a refund
    takes back from the sub-account its capture paid."""
    base = SYSTEM_ACCOUNT_IDS[kind]
    if kind not in SHARDED_KINDS or not spread_by:
        return base
    shard = int.from_bytes(hashlib.sha256(spread_by.encode()).digest()[:4], "big") % SYSTEM_SHARDS
    return base if shard == 0 else f"{base}:{shard}"


def system_account_ids(kind: AccountKind) -> tuple[str, ...]:
    """Every id of the exchange's account ``kind`` (its sub-accounts, when it is split)."""
    base = SYSTEM_ACCOUNT_IDS[kind]
    if kind not in SHARDED_KINDS:
        return (base,)
    return (base, *(f"{base}:{n}" for n in range(1, SYSTEM_SHARDS)))


class JournalKind(StrEnum):
    DEPOSIT = "deposit"  # 充值
    WITHDRAWAL = "withdrawal"  # 提现
    FREEZE = "freeze"  # 冻结
    RELEASE = "release"  # 解冻
    CAPTURE = "capture"  # 划付（结算）
    REFUND = "refund"  # 退款


class LineKind(StrEnum):
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    FREEZE = "freeze"
    RELEASE = "release"
    CAPTURE = "capture"  # the frozen funds a capture takes
    PAYOUT = "payout"  # to the seller
    SHARE = "share"  # a revenue share (dividend or commission) along the value chain
    COMMISSION = "commission"  # to a broker (or the commissions payable account)
    FEE = "fee"  # the exchange's fee
    TREASURY = "treasury"  # public data's share: non-tax revenue
    REFUND = "refund"


# What a capture may pay, and where each goes.
PAYOUT_KINDS: Final = frozenset(
    {LineKind.PAYOUT, LineKind.SHARE, LineKind.COMMISSION, LineKind.FEE, LineKind.TREASURY}
)
_PAYEE_REQUIRED: Final = frozenset({LineKind.PAYOUT, LineKind.SHARE})
_PAYEE_FORBIDDEN: Final = frozenset({LineKind.FEE, LineKind.TREASURY})
_SYSTEM_PAYEE: Final[Mapping[LineKind, AccountKind]] = {
    LineKind.FEE: AccountKind.FEE_INCOME,
    LineKind.TREASURY: AccountKind.TREASURY,
    LineKind.COMMISSION: AccountKind.COMMISSIONS,
}

ACCOUNT_LABELS: Final[Mapping[str, str]] = {k.value: t.name for k, t in CHART.items()}
JOURNAL_LABELS: Final[Mapping[str, str]] = {
    JournalKind.DEPOSIT: N_("Deposit"),
    JournalKind.WITHDRAWAL: N_("Withdrawal"),
    JournalKind.FREEZE: N_("Freeze"),
    JournalKind.RELEASE: N_("Release"),
    JournalKind.CAPTURE: N_("Capture (settlement)"),
    JournalKind.REFUND: N_("Refund"),
}
LINE_LABELS: Final[Mapping[str, str]] = {
    LineKind.DEPOSIT: N_("Deposit"),
    LineKind.WITHDRAWAL: N_("Withdrawal"),
    LineKind.FREEZE: N_("Freeze"),
    LineKind.RELEASE: N_("Release"),
    LineKind.CAPTURE: N_("Paid from escrow"),
    LineKind.PAYOUT: N_("Payout to seller"),
    LineKind.SHARE: N_("Revenue share"),
    LineKind.COMMISSION: N_("Broker commission"),
    LineKind.FEE: N_("Exchange fee"),
    LineKind.TREASURY: N_("Treasury non-tax revenue"),
    LineKind.REFUND: N_("Refund"),
}

# --------------------------------------------------------------------------------------- money

_YUAN = re.compile(r"^\d{1,3}(,\d{3})*(\.\d{1,2})?$|^\d+(\.\d{1,2})?$")


@dataclass(frozen=True, slots=True, order=True)
class Money:
    """An amount of renminbi in whole fen (分). Never a float."""

    fen: int

    def __post_init__(self) -> None:
        if not isinstance(self.fen, int) or isinstance(self.fen, bool):
            raise TypeError("Money holds whole fen (int)")

    def __add__(self, other: Money) -> Money:
        return Money(self.fen + other.fen)

    def __sub__(self, other: Money) -> Money:
        return Money(self.fen - other.fen)

    def __neg__(self) -> Money:
        return Money(-self.fen)

    def yuan(self) -> str:
        """``1,234.56`` (thousands separated, two decimals, a minus sign when negative)."""
        return yuan_text(self.fen)

    def __str__(self) -> str:
        return format_yuan(self.fen)

    @classmethod
    def parse(cls, text: str) -> Money:
        return cls(parse_yuan(text))


def yuan_text(fen: int) -> str:
    """``fen`` as yuan with two decimals and thousands separators (``-1,234.56``), exact."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def format_yuan(fen: int) -> str:
    """``¥1,234.56`` (``-¥1,234.56`` when negative): how the console shows money."""
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{yuan_text(abs(fen))}"


def parse_yuan(text: str) -> int:
    """A yuan amount typed by a person (``1234.5``, ``1,234.56``, ``¥12``) as whole fen.

    Raises ``ValueError`` for anything else: more than two decimals, a sign, letters, spaces
    inside the number. Exact (``Decimal``), so ``0.1 + 0.2`` problems cannot arise.
    """
    cleaned = (text or "").strip().replace("，", ",").replace("．", ".")
    cleaned = cleaned.removeprefix("¥").removeprefix("￥").strip()
    for suffix in ("元", "yuan", "CNY"):
        cleaned = cleaned.removesuffix(suffix).strip()
    if not _YUAN.match(cleaned):
        raise ValueError(f"not a yuan amount: {text!r}")
    try:
        value = Decimal(cleaned.replace(",", "")) * 100
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only digits
        raise ValueError(f"not a yuan amount: {text!r}") from exc
    return int(value)


MSG_AMOUNT: Final = N_(
    "{name} must be a whole number of fen (分), more than 0 and at most {max}: {value} is not. "
    "Write 12.50 yuan as 1250 (rule {rule})."
)
MSG_YUAN: Final = N_(
    "Enter the amount in yuan with at most two decimals, e.g. 1,234.56 (rule {rule})."
)
MSG_YUAN_RANGE: Final = N_("Enter an amount more than 0 and at most {max} yuan (rule {rule}).")


def check_amount(value: object, rules: SettlementRules, *, field: str = "amount_fen") -> int:
    """``value`` as a positive whole number of fen within the cap, or a refusal (SET-MONEY)."""
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value <= 0
        or value > rules.max_amount_fen
    ):
        raise InvalidSettlementInput(
            MSG_AMOUNT,
            rule=rules.rule_id("money"),
            field=field,
            name=field,
            max=rules.max_amount_fen,
            value=str(value),
        )
    return value


def amount_from_yuan(text: str, rules: SettlementRules, *, field: str) -> int:
    """A form's yuan amount as checked fen (SET-MONEY)."""
    try:
        fen = parse_yuan(text)
    except ValueError:
        raise InvalidSettlementInput(MSG_YUAN, rule=rules.rule_id("money"), field=field) from None
    if fen <= 0 or fen > rules.max_amount_fen:
        raise InvalidSettlementInput(
            MSG_YUAN_RANGE,
            rule=rules.rule_id("money"),
            field=field,
            max=yuan_text(rules.max_amount_fen),
        )
    return fen


# ---------------------------------------------------------------------------- keys, references

_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces (UUIDs, ULIDs, ...)
_REFERENCE = re.compile(r"^[a-z][a-z0-9_]{0,31}:[A-Za-z0-9][A-Za-z0-9._:/-]{0,95}$")
MSG_KEY: Final = N_(
    "The idempotency key must be 1 to 128 printable ASCII characters without spaces (a UUID is "
    "best); generate one per operation and send the same one when you retry (rule {rule})."
)
MSG_REFERENCE: Final = N_(
    "The reference names what the money settles as type:id, e.g. order:2026-000123 (lower-case "
    "type, then up to 96 letters, digits or . _ : / -); {value!r} is not one (rule {rule})."
)
MSG_MEMO: Final = N_("The note may be at most {max} characters (rule {rule}).")
MAX_MEMO: Final = 200


def check_key(key: object, rules: SettlementRules) -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise InvalidSettlementInput(
            MSG_KEY, rule=rules.rule_id("idempotency"), field="Idempotency-Key"
        )
    return key


def check_reference(reference: object, rules: SettlementRules) -> str:
    if not isinstance(reference, str) or not _REFERENCE.match(reference):
        raise InvalidSettlementInput(
            MSG_REFERENCE, rule=rules.rule_id("reference"), field="reference", value=reference
        )
    return reference


def check_memo(memo: str, rules: SettlementRules) -> str:
    memo = (memo or "").strip()
    if len(memo) > MAX_MEMO:
        raise InvalidSettlementInput(
            MSG_MEMO, rule=rules.rule_id("reference"), field="memo", max=MAX_MEMO
        )
    return memo


def request_fingerprint(operation: str, params: Mapping[str, Any]) -> str:
    """SHA-256 of the operation and its parameters: what an idempotency key is bound to."""
    material = json.dumps(
        {"op": operation, "params": params}, sort_keys=True, ensure_ascii=False, default=str
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------- payouts


@dataclass(frozen=True, slots=True)
class Payout:
    """One payee of a capture: what kind of payment, how much, and to which party.

    ``payout`` and ``share`` go to a party's available funds (``party_id`` required); ``fee`` to
    the exchange's fee income and ``treasury`` to the treasury's non-tax revenue account (no
    party); ``commission`` to the broker party named, or to the commissions payable account.
    """

    kind: LineKind
    amount_fen: int
    party_id: str | None = None

    def as_params(self) -> list[Any]:
        return [self.kind.value, self.amount_fen, self.party_id]


MSG_PAYOUT_KIND: Final = N_("A capture pays {kinds}; {kind!r} is not one of them (rule {rule}).")
MSG_PAYOUT_PARTY: Final = N_(
    "A {kind} payment needs the party it is paid to (party_id) (rule {rule})."
)
MSG_PAYOUT_NO_PARTY: Final = N_(
    "A {kind} payment goes to the exchange's own account: give no party_id (rule {rule})."
)
MSG_PAYOUT_COUNT: Final = N_(
    "A capture pays between 1 and {max} payees; {count} were given (rule {rule})."
)


def check_payouts(payouts: Sequence[Payout], rules: SettlementRules) -> tuple[Payout, ...]:
    """The split of a capture, checked (SET-SPLIT, SET-MONEY)."""
    rule = rules.rule_id("split")
    if not 1 <= len(payouts) <= rules.max_payouts:
        raise InvalidSettlementInput(
            MSG_PAYOUT_COUNT, rule=rule, field="payouts", max=rules.max_payouts, count=len(payouts)
        )
    out = []
    for i, payout in enumerate(payouts):
        where = f"payouts[{i}]"
        try:
            kind = LineKind(payout.kind)
        except ValueError:
            kind = None
        if kind not in PAYOUT_KINDS:
            raise InvalidSettlementInput(
                MSG_PAYOUT_KIND,
                rule=rule,
                field=f"{where}.kind",
                kinds=", ".join(sorted(PAYOUT_KINDS)),
                kind=str(payout.kind),
            )
        assert kind is not None
        if kind in _PAYEE_REQUIRED and not payout.party_id:
            raise InvalidSettlementInput(
                MSG_PAYOUT_PARTY, rule=rule, field=f"{where}.party_id", kind=kind.value
            )
        if kind in _PAYEE_FORBIDDEN and payout.party_id:
            raise InvalidSettlementInput(
                MSG_PAYOUT_NO_PARTY, rule=rule, field=f"{where}.party_id", kind=kind.value
            )
        amount = check_amount(payout.amount_fen, rules, field=f"{where}.amount_fen")
        out.append(Payout(kind, amount, payout.party_id or None))
    return tuple(out)


def system_payee(payout: Payout) -> AccountKind | None:
    """The system account a payout goes to, or None when it goes to its party's funds."""
    if payout.party_id:
        return None
    return _SYSTEM_PAYEE[payout.kind]


# ----------------------------------------------------------------------------------- journals


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a journal to post: the account, the signed amount (credit > 0), the kind."""

    account_id: str
    amount_fen: int
    kind: LineKind


@dataclass(frozen=True, slots=True)
class PostedLine:
    """A line as posted: with its account's sequence number and the balance after it."""

    account_id: str
    amount_fen: int
    kind: LineKind
    seq: int
    balance_after: int


@dataclass(slots=True)
class AccountState:
    """An account's balance and line count as locked for posting."""

    account_id: str
    kind: AccountKind
    balance_fen: int
    lines: int
    party_id: str | None = None


@dataclass(frozen=True, slots=True)
class HoldState:
    """An escrow hold: what was frozen, and how much of it was released or captured since."""

    amount_fen: int
    released_fen: int = 0
    captured_fen: int = 0

    @property
    def remaining_fen(self) -> int:
        return self.amount_fen - self.released_fen - self.captured_fen


def plan_deposit(available: str, bank: str, amount: int) -> list[Line]:
    return [Line(bank, -amount, LineKind.DEPOSIT), Line(available, amount, LineKind.DEPOSIT)]


def plan_withdrawal(available: str, bank: str, amount: int) -> list[Line]:
    return [
        Line(available, -amount, LineKind.WITHDRAWAL),
        Line(bank, amount, LineKind.WITHDRAWAL),
    ]


def plan_freeze(available: str, frozen: str, amount: int) -> list[Line]:
    return [Line(available, -amount, LineKind.FREEZE), Line(frozen, amount, LineKind.FREEZE)]


MSG_ESCROW_RELEASE: Final = N_(
    "Only {remaining} yuan is still frozen on this hold ({reference}); {asked} yuan cannot be "
    "released. Release at most what is frozen (rule {rule})."
)
MSG_ESCROW_CAPTURE: Final = N_(
    "Only {remaining} yuan is still frozen on this hold ({reference}); {asked} yuan cannot be "
    "paid out of it. Pay at most what is frozen (rule {rule})."
)


def _escrow_refusal(
    hold: HoldState, asked: int, message: str, reference: str, rules: SettlementRules
) -> EscrowExceeded:
    return EscrowExceeded(
        message,
        rule=rules.rule_id("escrow"),
        remaining=yuan_text(hold.remaining_fen),
        asked=yuan_text(asked),
        reference=reference,
    )


def plan_release(
    frozen: str,
    available: str,
    hold: HoldState,
    amount: int | None,
    reference: str,
    rules: SettlementRules,
) -> tuple[list[Line], int]:
    """Release ``amount`` (all that remains when None) from the hold back to available funds."""
    amount = hold.remaining_fen if amount is None else amount
    if amount <= 0 or amount > hold.remaining_fen:
        raise _escrow_refusal(hold, amount, MSG_ESCROW_RELEASE, reference, rules)
    return [Line(frozen, -amount, LineKind.RELEASE), Line(available, amount, LineKind.RELEASE)], (
        amount
    )


@dataclass(frozen=True, slots=True)
class CapturePlan:
    lines: list[Line]
    captured_fen: int
    released_fen: int


def plan_capture(
    frozen: str,
    available: str,
    hold: HoldState,
    payees: Sequence[tuple[str, Payout]],
    release_remainder: bool,
    reference: str,
    rules: SettlementRules,
) -> CapturePlan:
    """Pay ``payees`` (account id, payout) from the hold; with ``release_remainder`` what is left
    of the hold goes back to the payer's available funds in the same journal (SET-ESCROW,
    SET-SPLIT)."""
    total = sum(p.amount_fen for _, p in payees)
    if total <= 0 or total > hold.remaining_fen:
        raise _escrow_refusal(hold, total, MSG_ESCROW_CAPTURE, reference, rules)
    remainder = hold.remaining_fen - total if release_remainder else 0
    lines = [Line(frozen, -(total + remainder), LineKind.CAPTURE)]
    lines += [Line(account, p.amount_fen, p.kind) for account, p in payees]
    if remainder:
        lines.append(Line(available, remainder, LineKind.RELEASE))
    return CapturePlan(lines, total, remainder)


MSG_REFUND: Final = N_(
    "This capture paid that payee {received} yuan, of which {refundable} yuan can still be "
    "returned; {asked} yuan was asked (rule {rule})."
)
MSG_REFUND_UNKNOWN: Final = N_(
    "This capture paid nothing to that payee: a refund returns only what the capture paid "
    "(rule {rule})."
)


def plan_refund(
    available: str,
    refunds: Sequence[tuple[str, int]],
    received: Mapping[str, int],
    refunded: Mapping[str, int],
    rules: SettlementRules,
) -> list[Line]:
    """Take ``refunds`` (payee account, amount) back from the payees of a capture and credit
    the payer's available funds (SET-REFUND). ``received`` is what each account was paid in the
    capture, ``refunded`` what earlier refunds of it already took back."""
    rule = rules.rule_id("refund")
    asked: dict[str, int] = {}
    for account, amount in refunds:
        asked[account] = asked.get(account, 0) + amount
    for account, amount in asked.items():
        if account not in received:
            raise RefundExceeded(MSG_REFUND_UNKNOWN, rule=rule)
        left = received[account] - refunded.get(account, 0)
        if amount > left:
            raise RefundExceeded(
                MSG_REFUND,
                rule=rule,
                received=yuan_text(received[account]),
                refundable=yuan_text(left),
                asked=yuan_text(amount),
            )
    lines = [Line(account, -amount, LineKind.REFUND) for account, amount in refunds]
    lines.append(Line(available, sum(a for _, a in refunds), LineKind.REFUND))
    return lines


MSG_UNBALANCED: Final = N_(
    "The journal does not balance: its lines sum to {sum} fen over {count} line(s); a journal "
    "needs at least two lines summing to 0. Nothing was posted (rule {rule})."
)
MSG_FUNDS: Final = N_(
    "Insufficient funds: {available} yuan available, {needed} yuan needed. Deposit funds first, "
    "or ask for less (rule {rule})."
)
MSG_FROZEN_FUNDS: Final = N_(
    "Only {available} yuan is frozen in this account; {needed} yuan cannot be taken from it "
    "(rule {rule})."
)
MSG_SYSTEM_FUNDS: Final = N_(
    "The exchange's account {account} holds {available} yuan; {needed} yuan cannot be taken "
    "from it (rule {rule})."
)
MSG_BANK_FUNDS: Final = N_(
    "The custody bank account would pay out more than it holds ({needed} yuan asked, {available} "
    "yuan held); nothing was posted (rule {rule})."
)
MSG_BALANCE_CAP: Final = N_(
    "The balance of account {account} would exceed {max} yuan; split the operation or ask the "
    "exchange (rule {rule})."
)


def apply_lines(
    states: Mapping[str, AccountState], lines: Sequence[Line], rules: SettlementRules
) -> list[PostedLine]:
    """Post ``lines`` onto the locked ``states`` (updated in place) and return them with their
    sequence numbers and balances after; refuse, changing nothing, when the journal does not
    balance (SET-DOUBLE-ENTRY), a credit-normal account would go below 0 or a debit-normal one
    above 0 (SET-FUNDS), or a balance would pass the cap (SET-MONEY)."""
    total = sum(line.amount_fen for line in lines)
    if len(lines) < 2 or total != 0:
        raise SettlementError(
            MSG_UNBALANCED, rule=rules.rule_id("double_entry"), sum=total, count=len(lines)
        )
    debits: dict[str, int] = {}
    change: dict[str, int] = {}
    for line in lines:
        change[line.account_id] = change.get(line.account_id, 0) + line.amount_fen
        if line.amount_fen < 0:
            debits[line.account_id] = debits.get(line.account_id, 0) - line.amount_fen
        elif line.amount_fen > 0 and CHART[states[line.account_id].kind].side is Side.DEBIT:
            debits[line.account_id] = debits.get(line.account_id, 0) + line.amount_fen
    # Every line is checked as it would land (running), so no intermediate balance is invalid.
    running = {a: s.balance_fen for a, s in states.items() if a in change}
    for line in lines:
        state = states[line.account_id]
        after = running[line.account_id] + line.amount_fen
        side = CHART[state.kind].side
        if (side is Side.CREDIT and after < 0) or (side is Side.DEBIT and after > 0):
            raise _funds_refusal(state, debits.get(line.account_id, 0), rules)
        if abs(after) > rules.max_balance_fen:
            raise InvalidSettlementInput(
                MSG_BALANCE_CAP,
                rule=rules.rule_id("money"),
                account=line.account_id,
                max=yuan_text(rules.max_balance_fen),
            )
        running[line.account_id] = after
    posted = []
    for line in lines:
        state = states[line.account_id]
        state.balance_fen += line.amount_fen
        state.lines += 1
        posted.append(
            PostedLine(line.account_id, line.amount_fen, line.kind, state.lines, state.balance_fen)
        )
    return posted


def _funds_refusal(state: AccountState, needed: int, rules: SettlementRules) -> SettlementError:
    rule = rules.rule_id("funds")
    if state.kind is AccountKind.AVAILABLE:
        return InsufficientFunds(
            MSG_FUNDS,
            rule=rule,
            field="amount_fen",
            available=yuan_text(state.balance_fen),
            needed=yuan_text(needed),
        )
    if state.kind is AccountKind.FROZEN:
        return InsufficientFunds(
            MSG_FROZEN_FUNDS,
            rule=rule,
            available=yuan_text(state.balance_fen),
            needed=yuan_text(needed),
        )
    if state.kind is AccountKind.BANK:
        return InsufficientFunds(
            MSG_BANK_FUNDS,
            rule=rule,
            available=yuan_text(-state.balance_fen),
            needed=yuan_text(needed),
        )
    return InsufficientFunds(
        MSG_SYSTEM_FUNDS,
        rule=rule,
        account=CHART[state.kind].code,
        available=yuan_text(state.balance_fen),
        needed=yuan_text(needed),
    )


def journal_digest_payload(
    *,
    journal_id: str,
    kind: str,
    reference: str | None,
    posted_at: datetime,
    scope: str,
    key: str,
    lines: Iterable[tuple[str, int, str, int, int]],
) -> dict[str, Any]:
    """What a journal's digest covers (``leaf_hash(canonical_json(payload))``): its identity,
    kind, reference, time, idempotency key and every line (account, amount, kind, sequence,
    balance after), lines sorted by account and sequence. Figures are decimal strings, so the
    payload is exact JSON whatever their size."""
    return {
        "v": 1,
        "id": journal_id,
        "kind": kind,
        "reference": reference or "",
        "posted_at": posted_at.isoformat(),
        "scope": scope,
        "key": key,
        "lines": [
            [account, str(amount), line_kind, str(seq), str(after)]
            for account, amount, line_kind, seq, after in sorted(lines, key=lambda x: (x[0], x[3]))
        ],
    }


def digest_bytes(payload: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a digest payload: RFC 8785 (JCS) for its shape — ASCII keys,
    string values and the small integer ``v`` — for which JCS and Python's sorted, compact JSON
    agree byte for byte (the tests check it against ``ledger.canonical_json``), at a fraction of
    the cost when a batch digests 100,000 journals."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# ------------------------------------------------------------------------------ reconciliation


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing reconciliation found wrong: which check, where, and by how much."""

    check: str
    rule: str
    account: str | None = None
    journal: str | None = None
    day: str | None = None
    expected: int | str | None = None
    actual: int | str | None = None
    difference: int | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check": self.check, "rule": self.rule}
        for name in ("account", "journal", "day", "expected", "actual", "difference"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class ReconciliationReport:
    """The books as reconciliation found them. ``as_dict`` is the stable integrators' shape."""

    balanced: bool
    sum_fen: int
    journals: int
    accounts: int
    lines: int
    problems: tuple[Problem, ...]
    anchored_days: tuple[tuple[date, int, str], ...] = field(default=())  # (day, journals, root)

    def as_dict(self) -> dict[str, Any]:
        return {
            "balanced": self.balanced,
            "sum_fen": self.sum_fen,
            "journals": self.journals,
            "accounts": self.accounts,
            "problems": [p.as_dict() for p in self.problems],
        }
