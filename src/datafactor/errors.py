"""Errors a person can cause, carried from the rules to every entry point.

A ``DomainError`` holds an English message template (the gettext msgid, marked with ``N_`` so
Babel extracts it), its parameters and the HTTP status it maps to. The web layer translates it into
the user's language; the API renders it as problem+json (RFC 9457); the CLI prints it. Nothing
here knows about HTTP frameworks.
"""

from __future__ import annotations

from typing import Any


def N_(message: str) -> str:  # noqa: N802 - the gettext convention Babel extracts
    """Mark a string for translation without translating it here."""
    return message


class DomainError(Exception):
    """A refusal with a reason a person can act on."""

    status = 400
    code = "invalid-request"
    title = N_("The request cannot be processed")

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        **params: Any,
    ) -> None:
        super().__init__(message.format(**params) if params else message)
        self.message = message
        self.params = params
        self.field = field
        if code:
            self.code = code


class RuleError(DomainError):
    """A refusal by a rule of a domain's rules file: ``rule`` is the rule id, also a message
    parameter ``{rule}``, so every refusal names the rule it applied. Each domain's refusals
    derive from it together with one of the kinds below, which set the HTTP status."""

    code = "rule-refused"
    rule: str

    def __init__(
        self,
        message: str,
        *,
        rule: str,
        field: str | None = None,
        code: str | None = None,
        **params: Any,
    ) -> None:
        super().__init__(message, field=field, code=code, rule=rule, **params)
        self.rule = rule


class InvalidInput(DomainError):
    status = 422
    code = "invalid-input"
    title = N_("Some input is not valid")


class BadRequest(DomainError):
    """The request itself is malformed (unknown parameter, unreadable body): 400."""

    status = 400
    code = "bad-request"
    title = N_("Bad request")


class NotFound(DomainError):
    status = 404
    code = "not-found"
    title = N_("Not found")


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    title = N_("Not allowed")


class Unauthenticated(DomainError):
    status = 401
    code = "unauthenticated"
    title = N_("Login required")


class Conflict(DomainError):
    status = 409
    code = "conflict"
    title = N_("Conflicts with the current state")


class Locked(DomainError):
    status = 423
    code = "account-locked"
    title = N_("Account locked")
