"""The policy language's refusals: ``DomainError`` subclasses that name the term and the rule.

Every refusal of a policy or a request is a ``PolicyError``: it carries ``rule`` (the id of the
rule in ``rules/policy.yaml`` that refused), ``term`` (the term or key refused, so the author
sees exactly what to change) and ``path`` (where in the document, e.g.
``permission[0].constraint[1].operator``). All are invalid input (422). The message is an
English gettext msgid; its parameters are codes and values, shown as given.
"""

from __future__ import annotations

from typing import Any

from datafactor.errors import InvalidInput


class PolicyError(InvalidInput):
    """A policy or request refused by a policy rule."""

    code = "policy-invalid"
    rule: str
    term: str

    def __init__(
        self,
        message: str,
        *,
        rule: str,
        term: str = "",
        path: str = "",
        code: str | None = None,
        **params: Any,
    ) -> None:
        super().__init__(
            message, field=path or None, code=code, rule=rule, term=term, path=path, **params
        )
        self.rule = rule
        self.term = term
        self.path = path


class UnknownTerm(PolicyError):
    """An action, left operand, operator, key, value or context the language does not know."""

    code = "policy-unknown-term"


class MalformedPolicy(PolicyError):
    """The JSON-LD is not a well-formed ODRL policy (a value of the wrong shape or type)."""

    code = "policy-malformed"


class ContradictoryConstraints(PolicyError):
    """Constraints no request could ever satisfy (``count lt 0``, an empty ``isAnyOf`` ...)."""

    code = "policy-contradiction"


class InvalidRequest(PolicyError):
    """A request with an unknown key or a value of the wrong form."""

    code = "policy-invalid-request"
