"""Rule files: the versioned YAML files that hold the rules each domain applies.

Thresholds and categories from laws and standards live in ``rules/*.yaml`` beside each domain,
each rule with a stable id, a bilingual title, its source and section, and ``verified`` (true only
where the rule was read in the named source). This module reads the common part of every such
file — the ``version`` and the ``rules`` section, checked: every rule the code applies present
with all its fields, no id twice — so a bad edit fails loudly at load time. A domain's own
sections (limits, categories) stay in ``RuleSet.data`` for the domain to check. Pure: no web, no
ORM.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml  # type: ignore[import-untyped]


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


def text(entry: Any, where: str) -> Mapping[str, str]:
    if not isinstance(entry, Mapping) or not entry.get("zh") or not entry.get("en"):
        raise ValueError(f"{where}: needs zh and en")
    return MappingProxyType({"zh": str(entry["zh"]), "en": str(entry["en"])})


def load_refs(
    data: Any, where: str, keys: tuple[str, ...], *, section_key: str = "section"
) -> tuple[str, Mapping[str, RuleRef]]:
    """The ``version`` and the ``rules`` section of a rule file: every key in ``keys`` present,
    each with id, bilingual title, source, section and verified; no id twice. ``section_key``
    is the field a file names the place in the source by (the registry's file says
    ``article``); it becomes ``RuleRef.section``."""
    if not isinstance(data, Mapping) or "version" not in data:
        raise ValueError(f"{where}: needs a version")
    version = str(data["version"])
    raw_rules = data.get("rules") or {}
    if not isinstance(raw_rules, Mapping):
        raise ValueError(f"{where}: rules must be a mapping")
    missing = [k for k in keys if k not in raw_rules]
    if missing:
        raise ValueError(f"{where}: rules missing {missing}")
    refs: dict[str, RuleRef] = {}
    for key, entry in raw_rules.items():
        at = f"{where} rules {key}"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{at}: must be a mapping")
        for field in ("id", "title", "source", section_key, "verified"):
            if field not in entry:
                raise ValueError(f"{at}: missing {field}")
        if not isinstance(entry["verified"], bool):
            raise ValueError(f"{at}: verified must be true or false")
        refs[str(key)] = RuleRef(
            str(entry["id"]),
            text(entry["title"], f"{at} title"),
            str(entry["source"]),
            str(entry[section_key]),
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
    """A rule file: its name, version, its rules by key, and the file's other sections as loaded
    (``data``) for the domain to read and check its own parameters from."""

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


def read_rule_set(name: str, keys: tuple[str, ...], path: Path) -> RuleSet:
    """The rule file at ``path`` (named ``name``), checked: every rule in ``keys`` present with
    its source, no duplicate id."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    version, refs = load_refs(data, path.name, keys)
    return RuleSet(name, version, refs, MappingProxyType(dict(data)))
