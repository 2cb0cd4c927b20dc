"""The policy rules: ``rules/policy.yaml`` loaded, checked and typed.

Every rule the parser and the engine apply has an entry there with a stable id, a bilingual
title, its source and section, and whether it was verified against that source; the purpose
taxonomy ``isA`` reads is there too. ``load_policy_rules()`` returns the packaged file (cached)
or an operator's own, checked the same way: a missing rule, a duplicate id or a purpose whose
parent is unknown is refused at load time, so a bad edit fails loudly.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

import yaml  # type: ignore[import-untyped]

from datafactor.rulefiles import RuleRef as RuleRef  # re-exported with the policy surface
from datafactor.rulefiles import RuleSet as RuleSet  # re-exported to grants, operation, trusts
from datafactor.rulefiles import load_refs as _load_refs
from datafactor.rulefiles import read_rule_set
from datafactor.rulefiles import text as _text

_RULES_DIR: Final = Path(__file__).resolve().parent / "rules"

# The rules the code applies, by their key in policy.yaml.
RULE_KEYS: Final = (
    "deny_default",
    "permission",
    "prohibition",
    "action",
    "target",
    "assignee",
    "missing_operand",
    "logical",
    "purpose",
    "datetime",
    "count",
    "spatial",
    "recipient",
    "elapsed",
    "channel",
    "industry",
    "pay_amount",
    "fields",
    "group_size",
    "epsilon",
    "onward_transfer",
    "reidentify",
    "duty",
    "output_limits",
    "unknown_term",
    "malformed",
    "contradiction",
    "conflict",
    "request",
)


@dataclass(frozen=True)
class PolicyRules:
    """``rules/policy.yaml``, loaded and checked."""

    version: str
    refs: Mapping[str, RuleRef]
    purposes: Mapping[str, Mapping[str, str]]  # code -> {zh, en}
    purpose_parent: Mapping[str, str]  # code -> parent code

    def rule_id(self, key: str) -> str:
        return self.refs[key].id

    def by_id(self, rule_id: str) -> RuleRef:
        for ref in self.refs.values():
            if ref.id == rule_id:
                return ref
        raise KeyError(rule_id)

    def purposes_of(self, code: str) -> frozenset[str]:
        """``code`` and every broader purpose it is a kind of."""
        found = [code]
        while found[-1] in self.purpose_parent and len(found) <= len(self.purpose_parent):
            found.append(self.purpose_parent[found[-1]])
        return frozenset(found)


def load_rule_set(name: str, keys: tuple[str, ...], path: Path | None = None) -> RuleSet:
    """``rules/{name}.yaml`` (or an operator's ``path``), checked: every rule in ``keys`` present
    with its source, no duplicate id. Cached for the packaged file."""
    if path is None:
        return _packaged_rule_set(name, keys)
    return read_rule_set(name, keys, path)


@functools.cache
def _packaged_rule_set(name: str, keys: tuple[str, ...]) -> RuleSet:
    return read_rule_set(name, keys, _RULES_DIR / f"{name}.yaml")


def _load(path: Path) -> PolicyRules:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    where = path.name
    version, refs = _load_refs(data, where, RULE_KEYS)

    raw_purposes = data.get("purposes") or {}
    if not isinstance(raw_purposes, Mapping) or not raw_purposes:
        raise ValueError(f"{where}: purposes must list at least one purpose")
    purposes = {str(k): _text(v, f"{where} purposes {k}") for k, v in raw_purposes.items()}
    parents: dict[str, str] = {}
    for code, entry in raw_purposes.items():
        parent = entry.get("parent")
        if parent is None:
            continue
        if str(parent) not in purposes:
            raise ValueError(f"{where} purposes {code}: unknown parent {parent!r}")
        parents[str(code)] = str(parent)
    for code in parents:  # no cycles
        seen = {code}
        at = code
        while at in parents:
            at = parents[at]
            if at in seen:
                raise ValueError(f"{where} purposes {code}: parents form a cycle")
            seen.add(at)
    return PolicyRules(
        version=version,
        refs=refs,
        purposes=MappingProxyType(purposes),
        purpose_parent=MappingProxyType(parents),
    )


@functools.cache
def _default_rules() -> PolicyRules:
    return _load(_RULES_DIR / "policy.yaml")


def load_policy_rules(path: Path | None = None) -> PolicyRules:
    """The policy rules: the packaged file (cached), or an operator's own, checked."""
    return _default_rules() if path is None else _load(path)
