"""DataFactor: the platform a province runs to make data a tradable, governable production factor.

The package is a modular monolith: one domain package per capability (``identity``, ``ledger``, …)
over shared plumbing (``settings``, ``db``, ``audit``, ``permissions``, ``web``). See
``docs/architecture.md`` for the module map and the flows.
"""

__version__ = "0.1.0"
