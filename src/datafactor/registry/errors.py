"""The registry's refusals: ``DomainError`` subclasses that name the rule they apply.

Each class is a ``RegistryError`` (it carries ``rule``, the id of the rule in
``rules/registry.yaml`` that refused) and one of the generic ``DomainError`` kinds, which sets
the HTTP status the entry points answer with: a bad scope is invalid input (422), a pledged right
is a conflict with the current state (409), acting on a right one does not hold is forbidden
(403). The rule id is also a parameter of every message, so the person refused reads which rule
applied and what to do next; the services store ``rule`` in the audit trail.

Parameters that carry a code (``type``, ``action``, ``state``, ``status`` ... — see
``vocabulary.CODED_PARAMS``) are wrapped in ``vocabulary.Label``: the value stays the code, but
the message shows its label in the reader's language. ``str(error)`` is the English text.
"""

from __future__ import annotations

from typing import Any

from datafactor.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from datafactor.registry.vocabulary import coded, label_text


class RegistryError(DomainError):
    """A refusal by a registry rule. ``rule`` is the rule id (also a message parameter)."""

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
        params = coded(params)
        super().__init__(message, field=field, code=code, rule=rule, **params)
        self.rule = rule
        # The English text for logs and tracebacks (labels, not codes).
        english = {k: label_text(k, v, "en") for k, v in self.params.items()}
        self.args = (message.format(**english),)


class UnknownRight(RegistryError, NotFound):
    code = "registry-unknown-right"


class NotRightHolder(RegistryError, Forbidden):
    """The party acting does not hold the right (or the data) it acts on."""

    code = "registry-not-holder"


class RightNotInForce(RegistryError, Conflict):
    """The right acted on (or its parent) has expired, ended, or is suspended."""

    code = "registry-not-in-force"


class RightPledged(RegistryError, Conflict):
    """A pledged right cannot be transferred, licensed further or cancelled."""

    code = "registry-pledged"


class InvalidScope(RegistryError, InvalidInput):
    code = "registry-invalid-scope"


class InvalidTerm(RegistryError, InvalidInput):
    code = "registry-invalid-term"


class ScopeExceedsParent(RegistryError, InvalidInput):
    code = "registry-scope-exceeds-parent"


class TermExceedsParent(RegistryError, InvalidInput):
    code = "registry-term-exceeds-parent"


class LicenceNotAllowed(RegistryError, Conflict):
    """The right cannot be licensed from this parent (wrong kind, sub-licensing, self-licence)."""

    code = "registry-licence-not-allowed"


class LineageNotCovered(RegistryError, Forbidden):
    """A product's lineage reaches data its would-be operator holds no right on."""

    code = "registry-lineage-not-covered"


class DuplicateRight(RegistryError, Conflict):
    code = "registry-duplicate-right"


class BrokenChainOfTitle(RegistryError, Conflict):
    """The chain from a right to an original holding right is broken; ``right`` names the link."""

    code = "registry-broken-chain"


class TransitionNotAllowed(RegistryError, Conflict):
    code = "registry-transition-not-allowed"


class ActorNotAllowed(RegistryError, Forbidden):
    code = "registry-actor-not-allowed"


class ObjectionNotAdmissible(RegistryError, InvalidInput):
    code = "registry-objection-not-admissible"


class InvalidCertificateNumber(RegistryError, InvalidInput):
    code = "registry-invalid-certificate-number"


class CalendarNotCovered(RegistryError, Conflict):
    code = "registry-calendar-not-covered"


class NotPledged(RegistryError, Conflict):
    code = "registry-not-pledged"


class InvalidRegistration(RegistryError, InvalidInput):
    """Input a registry rule refuses that no more specific class describes."""

    code = "registry-invalid-input"


class TitleDisputed(RegistryError, Conflict):
    """Title to the right acted on is under dispute (an objection, an objection registration)."""

    code = "registry-title-disputed"
