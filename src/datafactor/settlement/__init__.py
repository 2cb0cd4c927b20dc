"""Settlement (结算): the double-entry money ledger — accounts, balanced journals, escrow.

This is the surface other domains use (docs/settlement.md): the money type and its formatting,
the chart's kinds, the escrow primitives the exchange, the trusts and public-data operation post
to (``freeze``, ``release``, ``capture``, ``refund``, ``settle_batch``) with their results, the
deposits and withdrawals through the payment gateway, reading accounts and journals, and
reconciliation. Every money-moving call takes an idempotency key and runs in the caller's
transaction; other domains never touch this package's models or tables.
"""

from datafactor import audit as _audit
from datafactor.settlement.books import reconcile, run_reconciliation, snapshot
from datafactor.settlement.domain import (
    AccountKind,
    JournalKind,
    LineKind,
    Money,
    Payout,
    ReconciliationReport,
    format_yuan,
    parse_yuan,
    yuan_text,
)
from datafactor.settlement.errors import (
    EscrowExceeded,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidSettlementInput,
    PartyNotEligible,
    RefundExceeded,
    SettlementError,
)
from datafactor.settlement.gateway import LocalBank, PaymentGateway, set_default_gateway
from datafactor.settlement.services import (
    EVENT_LABELS as _EVENT_LABELS,
)
from datafactor.settlement.services import (
    BatchResult,
    Instruction,
    JournalRecord,
    Posted,
    capture,
    deposit,
    deposit_funds,
    freeze,
    hold_of,
    holds_of,
    list_accounts,
    party_accounts,
    refund,
    release,
    settle_batch,
    withdraw,
    withdraw_funds,
)

_audit.register_action_labels(_EVENT_LABELS)

__all__ = [
    "AccountKind",
    "BatchResult",
    "EscrowExceeded",
    "IdempotencyConflict",
    "Instruction",
    "InsufficientFunds",
    "InvalidSettlementInput",
    "JournalKind",
    "JournalRecord",
    "LineKind",
    "LocalBank",
    "Money",
    "PartyNotEligible",
    "PaymentGateway",
    "Payout",
    "Posted",
    "ReconciliationReport",
    "RefundExceeded",
    "SettlementError",
    "capture",
    "deposit",
    "deposit_funds",
    "format_yuan",
    "freeze",
    "hold_of",
    "holds_of",
    "list_accounts",
    "parse_yuan",
    "party_accounts",
    "reconcile",
    "refund",
    "release",
    "run_reconciliation",
    "set_default_gateway",
    "settle_batch",
    "snapshot",
    "withdraw",
    "withdraw_funds",
    "yuan_text",
]
