"""The exchange's rules: ``rules/exchange.yaml`` loaded and checked (``datafactor.rulefiles``).

Every rule the exchange applies — who may list, the listing review's checklist, the
prohibited-trade rules, the deadlines of each contract state, the exchange's fee rate, deemed
acceptance, token lifetimes and rate limits, auction parameters — has an entry there with a
stable id, a bilingual title, its source and section and whether it was verified; values are
read from the file, never literals in code. Pure: no web, no ORM.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Final

from datafactor.rulefiles import RuleSet, read_rule_set

_RULES_FILE: Final = Path(__file__).resolve().parent / "rules" / "exchange.yaml"

# The rules the code applies, by their key in exchange.yaml (each area adds its keys here).
RULE_KEYS: Final[tuple[str, ...]] = (
    # listings and their review
    "listing_object",
    "listing_seller",
    "listing_certificate",
    "listing_price",
    "listing_channel",
    "listing_policy",
    "listing_access",
    "listing_zone",
    "listing_quantity",
    "listing_sharing",
    "listing_declaration",
    "listing_source",
    "listing_core",
    "listing_personal",
    "listing_public",
    "listing_prohibited",
    "listing_assessment",
    "listing_review",
    "listing_state",
    "listing_visible",
    "listing_buyer",
    # contracts
    "contract_transition",
    "contract_deadline",
    "contract_visible",
    "contract_sign",
    "contract_broker",
    "contract_records",
    "contract_terminate",
    "contract_delivery",
    "contract_acceptance",
    "contract_dispute",
    # mall orders
    "order_place",
    "order_quantity",
    "order_escrow",
    "order_contract",
    "order_idempotency",
    "order_cancel",
    "order_visible",
    # settlement of contracts and revenue sharing
    "settle_fee",
    "settle_broker",
    "settle_treasury",
    "settle_sharing",
    "settle_lineage",
    "settle_exact",
    "settle_seller",
    "settle_once",
    "settle_metered",
    "settle_release",
    "settle_visible",
    "settle_run",
    # agreement trades and auctions
    "negotiation_broker",
    "negotiation_party",
    "negotiation_terms",
    "negotiation_policy",
    "negotiation_turn",
    "negotiation_consent",
    "negotiation_state",
    "negotiation_deadline",
    "negotiation_escrow",
    "negotiation_cross_border",
    "auction_mode",
    "auction_create",
    "auction_lots",
    "auction_bidder",
    "auction_increment",
    "auction_window",
    "auction_snipe",
    "auction_deposit",
    "auction_idempotency",
    "auction_reserve",
    "auction_default",
    "auction_state",
    "auction_visible",
    "auction_cross_border",
    # delivery
    "delivery_record",
    "delivery_active",
    "delivery_channel",
    "delivery_buyer",
    "delivery_policy",
    "delivery_token",
    "delivery_api_token",
    "delivery_rate",
    "delivery_fingerprint",
    "delivery_source",
    "delivery_quota",
    "delivery_sandbox",
)


@functools.cache
def _packaged() -> RuleSet:
    return read_rule_set("exchange", RULE_KEYS, _RULES_FILE)


def exchange_rules(path: Path | None = None) -> RuleSet:
    """The packaged rules file (cached) or an operator's own, checked the same way."""
    return _packaged() if path is None else read_rule_set("exchange", RULE_KEYS, path)
