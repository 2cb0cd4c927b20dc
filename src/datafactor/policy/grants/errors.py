"""The refusals of authorisations: ``DomainError`` subclasses that each name the rule applied.

Every refusal carries ``rule`` (an id from ``rules/grants.yaml``, or the policy parser's own id
when the policy itself is refused) and an English gettext msgid saying what was wrong and what
to do; the web layer translates it, the API answers problem+json, the CLI prints it.
"""

from __future__ import annotations

from datafactor.errors import Conflict, Forbidden, InvalidInput, NotFound, RuleError


class GrantError(RuleError):
    """A refusal by an authorisation rule."""

    code = "grant-refused"


class GrantInvalid(GrantError, InvalidInput):
    """The grant asked for is not one that may be made (policy, term, scope, grantee, fee)."""

    code = "grant-invalid"


class ScopeExceedsGrantor(GrantInvalid):
    """The policy could allow more than the grantor's right (or mandate) allows."""

    code = "grant-scope-exceeds"


class TermExceedsGrantor(GrantInvalid):
    """The grant's term runs outside the grantor's right (or mandate)."""

    code = "grant-term-exceeds"


class PublicDataDownload(GrantInvalid):
    """A policy over public data that would let raw data leave the domain."""

    code = "grant-public-download"


class NotGrantor(GrantError, Forbidden):
    """The acting party may not do this to the grant (not its grantor, grantee or a regulator),
    or holds no right on the asset that may license."""

    code = "grant-not-allowed"


class GrantStateConflict(GrantError, Conflict):
    """The grant's state does not allow this (a final state, or a step out of order)."""

    code = "grant-state"


class GrantNotFound(NotFound):
    """No grant the principal may see has this id."""

    code = "grant-not-found"
