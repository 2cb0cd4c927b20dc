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
from typing import Any, Final

import yaml  # type: ignore[import-untyped]

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


@dataclass(frozen=True, slots=True)
class RuleRef:
    """A rule: its id, bilingual title, source, section, whether verified, and the file version."""

    id: str
    title: Mapping[str, str]
    source: str
    section: str
    verified: bool
    version: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": dict(self.title),
            "source": self.source,
            "section": self.section,
            "verified": self.verified,
            "version": self.version,
        }


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


def _text(entry: Any, where: str) -> Mapping[str, str]:
    if not isinstance(entry, Mapping) or not entry.get("zh") or not entry.get("en"):
        raise ValueError(f"{where}: needs zh and en")
    return MappingProxyType({"zh": str(entry["zh"]), "en": str(entry["en"])})


def _load_refs(data: Any, where: str, keys: tuple[str, ...]) -> tuple[str, Mapping[str, RuleRef]]:
    """The ``version`` and the ``rules`` section of a rule file: every key in ``keys`` present,
    each with id, bilingual title, source, section and verified; no id twice."""
    if not isinstance(data, Mapping) or "version" not in data:
        raise ValueError(f"{where}: needs a version")
    version = str(data["version"])
    raw_rules = data.get("rules") or {}
    missing = [k for k in keys if k not in raw_rules]
    if missing:
        raise ValueError(f"{where}: rules missing {missing}")
    refs: dict[str, RuleRef] = {}
    for key, entry in raw_rules.items():
        at = f"{where} rules {key}"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{at}: must be a mapping")
        for field in ("id", "title", "source", "section", "verified"):
            if field not in entry:
                raise ValueError(f"{at}: missing {field}")
        if not isinstance(entry["verified"], bool):
            raise ValueError(f"{at}: verified must be true or false")
        refs[str(key)] = RuleRef(
            str(entry["id"]),
            _text(entry["title"], f"{at} title"),
            str(entry["source"]),
            str(entry["section"]),
            entry["verified"],
            version,
        )
    ids = [r.id for r in refs.values()]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"{where}: duplicate rule ids {duplicates}")
    return version, MappingProxyType(refs)


@dataclass(frozen=True)
class RuleSet:
    """Any other rule file of the policy domain (authorisations, public-data operation, trusts):
    its version, its rules by key, and the file's other sections as loaded (``data``) for the
    domain to read and check its own parameters from."""

    name: str
    version: str
    refs: Mapping[str, RuleRef]
    data: Mapping[str, Any]

    def rule_id(self, key: str) -> str:
        return self.refs[key].id

    def ref(self, key: str) -> RuleRef:
        return self.refs[key]

    def by_id(self, rule_id: str) -> RuleRef:
        for ref in self.refs.values():
            if ref.id == rule_id:
                return ref
        raise KeyError(rule_id)


def load_rule_set(name: str, keys: tuple[str, ...], path: Path | None = None) -> RuleSet:
    """``rules/{name}.yaml`` (or an operator's ``path``), checked: every rule in ``keys`` present
    with its source, no duplicate id. Cached for the packaged file."""
    if path is None:
        return _packaged_rule_set(name, keys)
    return _rule_set(name, keys, path)


def _rule_set(name: str, keys: tuple[str, ...], path: Path) -> RuleSet:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    version, refs = _load_refs(data, path.name, keys)
    return RuleSet(name, version, refs, MappingProxyType(dict(data)))


@functools.cache
def _packaged_rule_set(name: str, keys: tuple[str, ...]) -> RuleSet:
    return _rule_set(name, keys, _RULES_DIR / f"{name}.yaml")


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
