"""The money ledger's refusals: ``DomainError`` subclasses that name the rule they apply.

Each class is a ``SettlementError`` (it carries ``rule``, the id of the rule in
``rules/settlement.yaml`` that refused, also passed to the message as ``{rule}``) and one of the
generic ``DomainError`` kinds, which sets the HTTP status: a bad amount or reference is invalid
input (422), insufficient funds, an exhausted escrow or a reused idempotency key conflict with the
current state (409), a missing idempotency key is a bad request (400), an account or journal the
caller may not see is not found (404). The message says what was wrong and what to do.
"""

from __future__ import annotations

from datafactor.errors import BadRequest, Conflict, InvalidInput, NotFound, RuleError


class SettlementError(RuleError):
    """A refusal by a settlement rule. ``rule`` is the rule id (also a message parameter)."""

    code = "settlement-refused"


class InvalidSettlementInput(SettlementError, InvalidInput):
    """An amount, reference, split or key that is not acceptable as given."""

    code = "settlement-invalid-input"


class InsufficientFunds(SettlementError, Conflict):
    """The account to be debited does not hold enough (SET-FUNDS)."""

    code = "settlement-insufficient-funds"


class EscrowExceeded(SettlementError, Conflict):
    """A release or capture asks for more than is still frozen on the hold (SET-ESCROW)."""

    code = "settlement-escrow-exceeded"


class RefundExceeded(SettlementError, Conflict):
    """A refund asks a payee for more than it received and still has to return (SET-REFUND)."""

    code = "settlement-refund-exceeded"


class IdempotencyConflict(SettlementError, Conflict):
    """The idempotency key was already used for a different operation or other parameters."""

    code = "idempotency-key-reused"


class MissingIdempotencyKey(SettlementError, BadRequest):
    """A money-moving request came without its ``Idempotency-Key``."""

    code = "idempotency-key-missing"


class PartyNotEligible(SettlementError, Conflict):
    """The party cannot hold money accounts (unknown, pending or rejected)."""

    code = "settlement-party-not-eligible"


class UnknownObject(SettlementError, NotFound):
    """An account, hold or journal that does not exist or that the caller may not see."""

    code = "settlement-not-found"


class LedgerTampering(SettlementError, Conflict):
    """An attempt to change or delete a journal or line (the ledger is append-only)."""

    code = "settlement-append-only"
