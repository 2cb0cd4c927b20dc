"""The settlement rules: ``rules/settlement.yaml`` loaded, checked and typed.

Every rule the money ledger applies has an entry there with a stable id, a bilingual title, its
source and section, and whether it was verified against that source; the limits (the largest
amount one operation moves, the largest balance, payees per capture, instructions per batch, the
anchoring grace) are values there, never literals in code. ``load_settlement_rules()`` returns the
packaged file (cached) or an operator's own, checked the same way: a missing rule, a duplicate id
(both checked by the shared ``datafactor.rulefiles``) or a limit that is not a positive whole
number is refused at load time. Pure: no web, no ORM.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml  # type: ignore[import-untyped]

from datafactor.rulefiles import RuleRef as RuleRef  # re-exported: the settlement's rule reference
from datafactor.rulefiles import load_refs

_RULES_FILE: Final = Path(__file__).resolve().parent / "rules" / "settlement.yaml"

# The rules the code applies, by their key in settlement.yaml.
RULE_KEYS: Final = (
    "double_entry",
    "money",
    "funds",
    "escrow",
    "split",
    "treasury",
    "refund",
    "idempotency",
    "append_only",
    "party",
    "gateway",
    "reference",
    "reconcile",
    "anchor",
)
LIMIT_KEYS: Final = (
    "max_amount_fen",
    "max_balance_fen",
    "max_payouts",
    "max_batch",
    "anchor_grace_minutes",
)
# Amounts and balances are kept below 2^53 so that every figure is exact in JSON.
_JSON_EXACT: Final = 2**53 - 1


@dataclass(frozen=True)
class SettlementRules:
    """``rules/settlement.yaml``, loaded and checked."""

    version: str
    refs: Mapping[str, RuleRef]
    max_amount_fen: int
    max_balance_fen: int
    max_payouts: int
    max_batch: int
    anchor_grace_minutes: int

    def rule_id(self, key: str) -> str:
        return self.refs[key].id

    def by_id(self, rule_id: str) -> RuleRef:
        for ref in self.refs.values():
            if ref.id == rule_id:
                return ref
        raise KeyError(rule_id)


def _load(path: Path) -> SettlementRules:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    where = path.name
    version, refs = load_refs(data, where, RULE_KEYS)
    raw_limits = data.get("limits") or {}
    limits: dict[str, int] = {}
    for key in LIMIT_KEYS:
        value = raw_limits.get(key) if isinstance(raw_limits, Mapping) else None
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{where} limits {key}: must be a positive whole number")
        limits[key] = value
    if limits["max_balance_fen"] > _JSON_EXACT:
        raise ValueError(f"{where} limits max_balance_fen: at most {_JSON_EXACT} (exact in JSON)")
    if limits["max_amount_fen"] > limits["max_balance_fen"]:
        raise ValueError(f"{where} limits max_amount_fen: must not exceed max_balance_fen")
    return SettlementRules(version=version, refs=refs, **limits)


@functools.cache
def _packaged() -> SettlementRules:
    return _load(_RULES_FILE)


def load_settlement_rules(path: Path | None = None) -> SettlementRules:
    """The settlement rules: the packaged file (cached), or an operator's own, checked."""
    return _packaged() if path is None else _load(path)
