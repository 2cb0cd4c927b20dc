"""The sandbox's refusals: ``DomainError`` subclasses that name the rule they apply.

``SandboxError`` carries ``rule`` (the id in ``rules/sandbox.yaml``, also a message parameter
``{rule}``); the generic kinds set the HTTP status (422 bad input, 409 state, 403 not allowed, 404
not found). A refused *query* is not an error: it is an answer with ``decision: refused`` and its
reasons (``QueryRefused`` is raised inside the checker and turned into that answer).
"""

from __future__ import annotations

from collections.abc import Sequence

from datafactor.errors import Conflict, Forbidden, InvalidInput, NotFound, RuleError
from datafactor.sandbox.domain import Reason


class SandboxError(RuleError):
    """A refusal by a sandbox rule. ``rule`` is the rule id (also a message parameter)."""

    code = "sandbox-refused"


class SandboxInvalid(SandboxError, InvalidInput):
    """Input that is not acceptable as given (a profile, an ε, a file)."""

    code = "sandbox-invalid-input"


class SandboxStateConflict(SandboxError, Conflict):
    """The grant, budget or query's state does not allow this (expired, exhausted, held)."""

    code = "sandbox-state-conflict"


class SandboxForbidden(SandboxError, Forbidden):
    """The actor may not do this (not the grantee, not the holder, not a regulator)."""

    code = "sandbox-forbidden"


class SandboxNotFound(SandboxError, NotFound):
    """No such grant, profile or query, or not one the caller may see."""

    code = "sandbox-not-found"


class QueryRefused(Exception):
    """The checker (or the executor) refuses a query: its reasons, each with its rule id and
    zh/en text. Never shown as an error page: it becomes ``{"decision": "refused", ...}``."""

    def __init__(self, reasons: Sequence[Reason]) -> None:
        super().__init__("; ".join(r.en for r in reasons))
        self.reasons = tuple(reasons)
