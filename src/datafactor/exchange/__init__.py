"""The data exchange (数据交易): listings and their review, mall / agreement / auction trades,
contracts, delivery and the settlement of contracts (docs/exchange.md).

What other domains may use: the vocabulary and state machines (``domain``) and the refusals.
The use cases are reached through the exchange's own entry points (API, pages, CLI); settlement
of money goes through ``datafactor.settlement``'s surface, rights through the registry's, usage
decisions through the policy engine's.
"""

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
    "TradeKind",
]
