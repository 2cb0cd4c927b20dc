"""The registry's rule data: ``rules/registry.yaml`` loaded, checked and typed.

Every rule the registry applies has an entry there with a stable id, a bilingual title, its
source, article (``RuleRef.section``) and whether it was verified against that source — the part
every rule file shares, read and checked by ``datafactor.rulefiles``; every period (public notice,
each workflow state's time allowed, the end-to-end target, certificate validity, the expiry
reminder) and every setting (sub-licensing, the scope vocabularies, objection grounds, required
metadata) is a value there, never a literal in code. ``load_registry_rules()`` returns the
packaged file (cached) or an operator's own, checked the same way: a missing rule, an unknown
registration type or state, or a non-final state without an owner and a period is refused at
load time, so a bad edit fails loudly instead of weakening a rule.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeVar

import yaml  # type: ignore[import-untyped]

from datafactor.registry.vocabulary import (
    FINAL_STATES,
    ActorRole,
    AssetKind,
    DataClass,
    RegistrationState,
    RegistrationType,
)
from datafactor.rulefiles import RuleRef as RuleRef  # re-exported: the registry's rule reference
from datafactor.rulefiles import load_refs
from datafactor.rulefiles import text as _text

_RULES_DIR: Final = Path(__file__).resolve().parent / "rules"
_E = TypeVar("_E", bound=StrEnum)

# The rules the code applies, by their key in registry.yaml.
RULE_KEYS: Final = (
    "core_data",
    "source_statement",
    "open_dispute",
    "raw_single_records",
    "fingerprint",
    "holder",
    "completeness",
    "scan",
    "important_data",
    "parent_in_force",
    "objection_grounds",
    "objection_period",
    "objection_registration",
    "processing_use_parent",
    "scope_within",
    "term_within",
    "product_lineage",
    "transfer",
    "pledge_lock",
    "pledge_once",
    "cascade",
    "chain_of_title",
    "holding_unique",
    "product_unique",
    "shape",
    "workflow",
    "substantive_checklist",
    "force",
    "certificate_number",
    "certificate_validity",
    "notice_period",
    "state_periods",
    "target",
    "working_days",
)


class ApplicantRule(StrEnum):
    """Who may apply for a registration type."""

    HOLDER = "holder"  # the holder of the right acted on
    ASSET_HOLDER = "asset_holder"  # the party that holds the asset registered
    HOLDER_OR_PLEDGEE = "holder_or_pledgee"
    AUTHORITY = "authority"  # a registrar or regulator (revocation)
    OBJECTOR = "objector"  # anyone but the holder (objection registration)


class OverdueAction(StrEnum):
    """What happens to an application past its state's due date."""

    ESCALATE = "escalate"  # joins the overdue queue
    WITHDRAW = "withdraw"  # withdrawn by the system (an application left returned)


@dataclass(frozen=True, slots=True)
class TypeRules:
    """Settings of one registration type."""

    type: RegistrationType
    name: Mapping[str, str]
    source: str
    public_notice: bool
    certificate: bool
    fast_track: bool
    applicant: ApplicantRule
    validity_years: int


@dataclass(frozen=True, slots=True)
class StatePolicy:
    """The owner of a non-final state, its period in working days, and what overdue means."""

    state: RegistrationState
    owner: ActorRole
    working_days: int | None  # None for public notice: due after the notice ends
    on_overdue: OverdueAction


@dataclass(frozen=True)
class RegistryRules:
    """``rules/registry.yaml``, loaded and checked (see the file for the meaning of each part)."""

    version: str
    refs: Mapping[str, RuleRef]
    purposes: Mapping[str, Mapping[str, str]]
    delivery_modes: Mapping[str, Mapping[str, str]]
    sublicensing_allowed: bool
    types: Mapping[RegistrationType, TypeRules]
    notice_days: Mapping[DataClass, int]
    states: Mapping[RegistrationState, StatePolicy]
    certify_after_notice: int
    substantive_checklist: Mapping[str, Mapping[str, str]]  # item -> {zh, en}
    target_days: int
    target_excludes: frozenset[RegistrationState]
    objection_grounds: Mapping[str, Mapping[str, str]]
    objection_min_statement: int
    objection_requires_evidence: bool
    objection_lapse_days: int  # an objection registration lapses after these calendar days
    certificate_prefix: str
    default_validity_years: int
    reminder_days: int
    first_certificate_year: int
    required_metadata: Mapping[AssetKind, frozenset[str]]

    def ref(self, key: str) -> RuleRef:
        """The rule stored under ``key`` in registry.yaml (``core_data``, ``pledge_lock`` ...)."""
        return self.refs[key]

    def rule_id(self, key: str) -> str:
        return self.refs[key].id

    def by_id(self, rule_id: str) -> RuleRef:
        for ref in self.refs.values():
            if ref.id == rule_id:
                return ref
        raise KeyError(rule_id)

    def type_rules(self, registration_type: RegistrationType) -> TypeRules:
        return self.types[registration_type]


def _count(value: Any, where: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where}: must be a whole number ≥ {minimum}, not {value!r}")
    return value


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: must be true or false")
    return value


def _vocabulary(entries: Any, where: str) -> Mapping[str, Mapping[str, str]]:
    if not isinstance(entries, Mapping) or not entries:
        raise ValueError(f"{where}: must list at least one value")
    return MappingProxyType({str(k): _text(v, f"{where} {k}") for k, v in entries.items()})


def _enum_keys(enum: type[_E], keys: Iterable[Any], where: str) -> list[_E]:
    found = []
    for key in keys:
        try:
            found.append(enum(str(key)))
        except ValueError:
            known = ", ".join(e.value for e in enum)
            raise ValueError(f"{where}: unknown {key!r} (known: {known})") from None
    return found


def _load(path: Path) -> RegistryRules:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    where = path.name
    # The common part of a rule file; this one names the place in a source its "article".
    version, refs = load_refs(data, where, RULE_KEYS, section_key="article")

    scope = data["scope"]
    certificates = data["certificates"]
    default_years = _count(
        certificates["default_validity_years"], f"{where} default_validity_years", minimum=1
    )

    types: dict[RegistrationType, TypeRules] = {}
    raw_types = data["registration_types"]
    for reg_type in _enum_keys(RegistrationType, raw_types, f"{where} registration_types"):
        body = raw_types[reg_type.value]
        at = f"{where} registration_types {reg_type.value}"
        types[reg_type] = TypeRules(
            type=reg_type,
            name=_text(body.get("name"), f"{at} name"),
            source=str(body.get("source", "")),
            public_notice=_flag(body.get("public_notice"), f"{at} public_notice"),
            certificate=_flag(body.get("certificate"), f"{at} certificate"),
            fast_track=_flag(body.get("fast_track"), f"{at} fast_track"),
            applicant=_enum_keys(ApplicantRule, [body.get("applicant")], f"{at} applicant")[0],
            validity_years=_count(
                body.get("validity_years", default_years), f"{at} validity_years", minimum=1
            ),
        )
    if set(types) != set(RegistrationType):
        absent = sorted(t.value for t in set(RegistrationType) - set(types))
        raise ValueError(f"{where}: registration_types missing {absent}")

    raw_notice = data["public_notice"]["working_days"]
    notice_days = {
        c: _count(raw_notice[c.value], f"{where} public_notice {c.value}", minimum=1)
        for c in _enum_keys(DataClass, raw_notice, f"{where} public_notice")
    }
    if set(notice_days) != set(DataClass):
        raise ValueError(f"{where}: public_notice needs a period for every class of data")

    states: dict[RegistrationState, StatePolicy] = {}
    raw_states = data["states"]
    for state in _enum_keys(RegistrationState, raw_states, f"{where} states"):
        body = raw_states[state.value]
        at = f"{where} states {state.value}"
        if state in FINAL_STATES:
            raise ValueError(f"{at}: a final state has no owner or period")
        days = body.get("working_days")
        if state is RegistrationState.PUBLIC_NOTICE:
            if days is not None:
                raise ValueError(f"{at}: the notice period comes from public_notice")
        else:
            days = _count(days, f"{at} working_days", minimum=1)
        states[state] = StatePolicy(
            state=state,
            owner=_enum_keys(ActorRole, [body.get("owner")], f"{at} owner")[0],
            working_days=days,
            on_overdue=_enum_keys(OverdueAction, [body.get("on_overdue")], f"{at} on_overdue")[0],
        )
    non_final = set(RegistrationState) - FINAL_STATES
    if set(states) != non_final:
        absent = sorted(s.value for s in non_final - set(states))
        raise ValueError(f"{where}: every non-final state needs an owner and period: {absent}")

    target = data["target"]
    objections = data["objections"]
    prefix = str(certificates["number_prefix"])
    if not prefix or not all(part.isalnum() and part.isupper() for part in prefix.split("-")):
        raise ValueError(f"{where}: number_prefix must be upper-case letters/digits and '-'")
    raw_required = data["required_metadata"]
    required = {
        kind: frozenset(str(f) for f in raw_required[kind.value])
        for kind in _enum_keys(AssetKind, raw_required, f"{where} required_metadata")
    }
    if set(required) != set(AssetKind):
        raise ValueError(f"{where}: required_metadata needs every asset kind")

    return RegistryRules(
        version=version,
        refs=refs,
        purposes=_vocabulary(scope["purposes"], f"{where} scope purposes"),
        delivery_modes=_vocabulary(scope["delivery_modes"], f"{where} scope delivery_modes"),
        sublicensing_allowed=_flag(
            data["rights"]["sublicensing_allowed"], f"{where} sublicensing_allowed"
        ),
        types=MappingProxyType(types),
        notice_days=MappingProxyType(notice_days),
        states=MappingProxyType(states),
        certify_after_notice=_count(
            data["certify_after_notice"], f"{where} certify_after_notice", minimum=0
        ),
        substantive_checklist=_vocabulary(
            data["substantive_checklist"], f"{where} substantive_checklist"
        ),
        target_days=_count(target["working_days"], f"{where} target", minimum=1),
        target_excludes=frozenset(
            _enum_keys(RegistrationState, target.get("excludes") or (), f"{where} target")
        ),
        objection_grounds=_vocabulary(objections["grounds"], f"{where} objection grounds"),
        objection_min_statement=_count(
            objections["min_statement_chars"], f"{where} min_statement_chars", minimum=1
        ),
        objection_requires_evidence=_flag(
            objections["requires_evidence"], f"{where} requires_evidence"
        ),
        objection_lapse_days=_count(
            objections["registration_lapse_days"], f"{where} registration_lapse_days", minimum=1
        ),
        certificate_prefix=prefix,
        default_validity_years=default_years,
        reminder_days=_count(
            certificates["reminder_days_ahead"], f"{where} reminder_days_ahead", minimum=1
        ),
        first_certificate_year=_count(
            certificates["first_year"], f"{where} first_year", minimum=1900
        ),
        required_metadata=MappingProxyType(required),
    )


@functools.cache
def _default_rules() -> RegistryRules:
    return _load(_RULES_DIR / "registry.yaml")


def load_registry_rules(path: Path | None = None) -> RegistryRules:
    """The registry rules: the packaged file (cached), or an operator's own, checked."""
    return _default_rules() if path is None else _load(path)
