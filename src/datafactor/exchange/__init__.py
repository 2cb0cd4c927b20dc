"""The data exchange (数据交易): listings and their review, mall / agreement / auction trades,
contracts, delivery and the settlement of contracts (docs/exchange.md).

What other domains may use: the vocabulary and state machines (``domain``) and the refusals.
The use cases are reached through the exchange's own entry points (API, pages, CLI); settlement
of money goes through ``datafactor.settlement``'s surface, rights through the registry's, usage
decisions through the policy engine's.

The sandbox (``datafactor.sandbox``) reads contracts delivered by sandbox through four narrow
functions and nothing else: ``sandbox_contracts`` (a buyer's active sandbox contracts),
``sandbox_contract`` (one, any state), ``decide_sandbox_contract`` (whether the contract lets
it compute now: active, in term, by sandbox, and its policy's decision with k and ε as limits)
and ``record_sandbox_delivery`` (a query computed under it counts as a delivery).
"""

from datafactor.exchange.delivery import (
    SandboxContract,
    SandboxDecision,
    decide_sandbox_contract,
    record_sandbox_delivery,
    sandbox_contract,
    sandbox_contracts,
)
from datafactor.exchange.domain import (
    CONTRACT_STATE_LABELS,
    FINAL_CONTRACT_STATES,
    LISTING_STATE_LABELS,
    Channel,
    ContractState,
    ListingKind,
    ListingState,
    PriceModel,
    TradeKind,
)
from datafactor.exchange.errors import (
    ExchangeError,
    ExchangeForbidden,
    ExchangeInvalid,
    ExchangeNotFound,
    ExchangeStateConflict,
)

__all__ = [
    "CONTRACT_STATE_LABELS",
    "FINAL_CONTRACT_STATES",
    "LISTING_STATE_LABELS",
    "Channel",
    "ContractState",
    "ExchangeError",
    "ExchangeForbidden",
    "ExchangeInvalid",
    "ExchangeNotFound",
    "ExchangeStateConflict",
    "ListingKind",
    "ListingState",
    "PriceModel",
    "SandboxContract",
    "SandboxDecision",
    "TradeKind",
    "decide_sandbox_contract",
    "record_sandbox_delivery",
    "sandbox_contract",
    "sandbox_contracts",
]
