"""The exchange's refusals: ``DomainError`` subclasses that name the rule they apply.

Each is an ``ExchangeError`` (it carries ``rule``, the id of the rule in ``rules/exchange.yaml``
that refused, also a message parameter ``{rule}``) and one of the generic kinds, which sets the
HTTP status: bad input 422, a state that does not allow the action 409 (an unlisted or suspended
item, a bid after the deadline, a token used up), not allowed 403, not found or not visible 404.
Money refusals (insufficient funds, a reused idempotency key) come from settlement as they are.
The message says what was wrong and what to do.
"""

from __future__ import annotations

from datafactor.errors import Conflict, Forbidden, InvalidInput, NotFound, RuleError


class ExchangeError(RuleError):
    """A refusal by an exchange rule. ``rule`` is the rule id (also a message parameter)."""

    code = "exchange-refused"


class ExchangeInvalid(ExchangeError, InvalidInput):
    """Input that is not acceptable as given (a price, a quantity, a policy, a checklist)."""

    code = "exchange-invalid-input"


class ExchangeStateConflict(ExchangeError, Conflict):
    """The object's state does not allow the action (not listed, suspended, ended, past the
    deadline, sold out, a token used up)."""

    code = "exchange-state-conflict"


class ExchangeForbidden(ExchangeError, Forbidden):
    """The actor may not do this (not the seller, not verified, not the assessor, a prohibited
    trade)."""

    code = "exchange-forbidden"


class ExchangeNotFound(ExchangeError, NotFound):
    """No such object, or not one the caller may see (the same answer, so nothing leaks)."""

    code = "exchange-not-found"
