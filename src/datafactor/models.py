"""Imports every domain's models so that ``Base.metadata`` knows every table (for Alembic)."""

from __future__ import annotations


def load_all_models() -> None:
    import datafactor.audit
    import datafactor.census.models
    import datafactor.dataplane.models
    import datafactor.discovery.models
    import datafactor.exchange.models
    import datafactor.identity.models
    import datafactor.inbox.models
    import datafactor.ledger.models
    import datafactor.policy.grants.models
    import datafactor.policy.operation.models
    import datafactor.policy.trusts.models
    import datafactor.registry.models
    import datafactor.registry.verifications
    import datafactor.sandbox.models
    import datafactor.settlement.models  # noqa: F401
