"""The rules of data trusts (数据信托), as pure functions: no database, no web.

Owns what a trust deed must be and how it moves: the rules file (``rules/trusts.yaml``, loaded
and checked by ``load_trust_rules``), the deed's states and who may take each step
(``transition``), the checks of a deed's parties, trust property, scope, term, fee and
beneficiaries' shares (``check_*``), the versioned revenue split (``split_in_force``), and the
exact distribution of an income in integer fen (``split_income``: largest remainders with a
deterministic tie-break). The services gather the facts from the registry and identity and call
these; every refusal is a ``TrustError`` naming its rule id, every check returns the rule ids it
applied so the caller can record them. See docs/trusts.md.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from fractions import Fraction
from functools import cache
from typing import Any, Final

from datafactor.errors import N_, Conflict, DomainError, Forbidden, InvalidInput
from datafactor.policy.rulebook import RuleSet, load_rule_set
from datafactor.registry.domain import Scope, add_years, check_scope

# ------------------------------------------------------------------------------------ rules

RULE_KEYS: Final = (
    "parties",
    "deed",
    "property",
    "property_held",
    "property_pledged",
    "property_core",
    "property_public",
    "scope",
    "term",
    "beneficiaries",
    "shares",
    "trustee_sole_beneficiary",
    "fee",
    "lifecycle",
    "actor",
    "amendment",
    "termination",
    "regulator_order",
    "income",
    "distribution",
    "grant",
    "self_dealing",
    "misuse",
    "visibility",
)


@dataclass(frozen=True)
class TrustRules:
    """``rules/trusts.yaml`` loaded and checked: the rule references and the parameters."""

    rules: RuleSet
    fee_min_bp: int
    fee_max_bp: int
    total_bp: int
    beneficiaries_min: int
    beneficiaries_max: int
    assets_min: int
    assets_max: int
    max_term_years: int
    max_income_fen: int
    number_prefix: str
    income_sources: Mapping[str, Mapping[str, str]]

    @property
    def version(self) -> str:
        return self.rules.version

    def rule_id(self, key: str) -> str:
        return self.rules.rule_id(key)

    def title(self, rule_id: str, locale: str) -> str:
        return self.rules.by_id(rule_id).title["en" if locale == "en" else "zh"]


def _int_range(data: Mapping[str, Any], key: str, low: int, high: int) -> tuple[int, int]:
    entry = data.get(key)
    if not isinstance(entry, Mapping) or not {"min", "max"} <= set(entry):
        raise ValueError(f"trusts.yaml: {key} needs min and max")
    lo, hi = entry["min"], entry["max"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi)):
        raise ValueError(f"trusts.yaml: {key} min and max must be whole numbers")
    if not low <= lo <= hi <= high:
        raise ValueError(f"trusts.yaml: {key} must satisfy {low} <= min <= max <= {high}")
    return lo, hi


def _positive_int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"trusts.yaml: {key} must be a positive whole number")
    return value


def rules_from(rules: RuleSet) -> TrustRules:
    """Check the parameters of a loaded rule set (an operator's file is checked the same way)."""
    data = rules.data
    total = _positive_int(data, "shares_total_bp")
    fee_min, fee_max = _int_range(data, "trustee_fee_bp", 0, total - 1)
    b_min, b_max = _int_range(data, "beneficiaries", 1, total)
    a_min, a_max = _int_range(data, "assets", 1, 1000)
    sources = data.get("income_sources")
    if not isinstance(sources, Mapping) or set(sources) != {s.value for s in IncomeSource}:
        raise ValueError("trusts.yaml: income_sources must name exactly grant_fee and other")
    for code, label in sources.items():
        if not isinstance(label, Mapping) or not label.get("zh") or not label.get("en"):
            raise ValueError(f"trusts.yaml: income_sources {code} needs zh and en")
    prefix = data.get("number_prefix")
    if not isinstance(prefix, str) or not prefix:
        raise ValueError("trusts.yaml: number_prefix must be text")
    return TrustRules(
        rules=rules,
        fee_min_bp=fee_min,
        fee_max_bp=fee_max,
        total_bp=total,
        beneficiaries_min=b_min,
        beneficiaries_max=b_max,
        assets_min=a_min,
        assets_max=a_max,
        max_term_years=_positive_int(data, "max_term_years"),
        max_income_fen=_positive_int(data, "max_income_fen"),
        number_prefix=prefix,
        income_sources={
            str(k): {"zh": str(v["zh"]), "en": str(v["en"])} for k, v in sources.items()
        },
    )


@cache
def load_trust_rules() -> TrustRules:
    """The packaged ``rules/trusts.yaml``, checked (cached)."""
    return rules_from(load_rule_set("trusts", RULE_KEYS))


# ----------------------------------------------------------------------------------- errors


class Label(str):
    """A message parameter holding a label's msgid (a state, an action, a role): its value is the
    English text (stored, sent in JSON), but formatted into a message it is translated into the
    current locale, so a Chinese reader sees “已终止”, not “Terminated”."""

    def __format__(self, spec: str) -> str:
        # Imported here: the catalogues belong to the web layer; only rendering needs them.
        from datafactor import context
        from datafactor.web.i18n import translations

        text = translations(context.locale.get()).gettext(str.__str__(self))
        return format(text, spec)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Label, (str.__str__(self),))


class TrustError(DomainError):
    """A refusal by a trust rule: ``rule`` is its id (also a message parameter)."""

    rule: str

    def __init__(self, message: str, *, rule: str, field: str | None = None, **params: Any) -> None:
        super().__init__(message, field=field, rule=rule, **params)
        self.rule = rule


class InvalidDeed(TrustError, InvalidInput):
    """Bad input in a deed, an amendment, an income or a grant under a deed (422)."""

    code = "trust-invalid"


class WrongParty(TrustError, Forbidden):
    """The step belongs to another party of the deed (403)."""

    code = "trust-wrong-party"


class DeedStateConflict(TrustError, Conflict):
    """The deed is not in a state that allows the step (409)."""

    code = "trust-state"


# ------------------------------------------------------------------------------- vocabulary


class DeedState(StrEnum):
    """Where a deed stands. Final: terminated, expired, withdrawn."""

    DRAFT = "draft"  # 草拟 (the settlor edits; owner: settlor)
    SIGNED = "signed"  # 委托人已签署 (owner: trustee)
    ACCEPTED = "accepted"  # 受托人已承诺, 信托成立 (waits for its start date)
    ACTIVE = "active"  # 生效 (within its term)
    TERMINATED = "terminated"  # 已终止 (agreement or regulator's order)
    EXPIRED = "expired"  # 期限届满
    WITHDRAWN = "withdrawn"  # 已撤回 (by the settlor before acceptance)


FINAL_STATES: Final = frozenset({DeedState.TERMINATED, DeedState.EXPIRED, DeedState.WITHDRAWN})
# The deed binds its parties (amendments recorded, termination by agreement).
ESTABLISHED_STATES: Final = frozenset({DeedState.ACCEPTED, DeedState.ACTIVE})


class DeedAction(StrEnum):
    DRAFT = "draft"  # the settlor drafts the deed (its first history step)
    EDIT = "edit"  # the settlor changes a draft
    SIGN = "sign"
    WITHDRAW = "withdraw"
    ACCEPT = "accept"
    DECLINE = "decline"
    ACTIVATE = "activate"
    AMEND = "amend"
    PROPOSE_TERMINATION = "propose_termination"
    AGREE_TERMINATION = "agree_termination"
    ORDER_TERMINATION = "order_termination"
    EXPIRE = "expire"


class Actor(StrEnum):
    """Who acts on a deed: its settlor or trustee, a regulator, or the platform's clock."""

    SETTLOR = "settlor"
    TRUSTEE = "trustee"
    REGULATOR = "regulator"
    SYSTEM = "system"


class IncomeSource(StrEnum):
    GRANT_FEE = "grant_fee"
    OTHER = "other"


class LineRole(StrEnum):
    TRUSTEE_FEE = "trustee_fee"
    BENEFICIARY = "beneficiary"


class PayStatus(StrEnum):
    """A distribution line waits for the exchange's settlement, which pays it later."""

    PENDING = "pending"
    PAID = "paid"


STATE_LABELS: Final[dict[str, str]] = {
    DeedState.DRAFT: N_("Draft"),
    DeedState.SIGNED: N_("Signed by the settlor"),
    DeedState.ACCEPTED: N_("Accepted by the trustee"),
    DeedState.ACTIVE: N_("In effect"),
    DeedState.TERMINATED: N_("Terminated"),
    DeedState.EXPIRED: N_("Expired"),
    DeedState.WITHDRAWN: N_("Withdrawn"),
}
ACTION_LABELS: Final[dict[str, str]] = {
    DeedAction.DRAFT: N_("Drafted by the settlor"),
    DeedAction.EDIT: N_("Draft changed"),
    DeedAction.SIGN: N_("Signed by the settlor"),
    DeedAction.WITHDRAW: N_("Withdrawn by the settlor"),
    DeedAction.ACCEPT: N_("Accepted by the trustee"),
    DeedAction.DECLINE: N_("Declined by the trustee"),
    DeedAction.ACTIVATE: N_("Took effect"),
    DeedAction.AMEND: N_("Beneficiaries amended"),
    DeedAction.PROPOSE_TERMINATION: N_("Early termination proposed"),
    DeedAction.AGREE_TERMINATION: N_("Terminated by agreement"),
    DeedAction.ORDER_TERMINATION: N_("Terminated by a regulator's order"),
    DeedAction.EXPIRE: N_("Term ended"),
}
ACTOR_LABELS: Final[dict[str, str]] = {
    Actor.SETTLOR: N_("Settlor"),
    Actor.TRUSTEE: N_("Trustee"),
    Actor.REGULATOR: N_("Regulator"),
    Actor.SYSTEM: N_("Platform"),
}
ROLE_LABELS: Final[dict[str, str]] = {
    LineRole.TRUSTEE_FEE: N_("Trustee's fee"),
    LineRole.BENEFICIARY: N_("Beneficiary"),
}
PAY_STATUS_LABELS: Final[dict[str, str]] = {
    PayStatus.PENDING: N_("To be paid by settlement"),
    PayStatus.PAID: N_("Paid"),
}
# Audit action tags (``policy:trust:…``) and their labels for the audit pages.
AUDIT_LABELS: Final[dict[str, str]] = {
    "policy:trust:draft": N_("Draft a trust deed"),
    "policy:trust:edit": N_("Change a draft trust deed"),
    "policy:trust:sign": N_("Sign a trust deed"),
    "policy:trust:withdraw": N_("Withdraw a trust deed"),
    "policy:trust:accept": N_("Accept a trust deed"),
    "policy:trust:decline": N_("Decline a trust deed"),
    "policy:trust:activate": N_("Trust deed takes effect"),
    "policy:trust:amend": N_("Amend a trust deed's beneficiaries"),
    "policy:trust:propose_termination": N_("Propose ending a trust deed"),
    "policy:trust:agree_termination": N_("End a trust deed by agreement"),
    "policy:trust:order_termination": N_("Order a trust deed to end"),
    "policy:trust:expire": N_("Trust deed term ended"),
    "policy:trust:income": N_("Record trust income"),
    "policy:trust:pay": N_("Pay trust income through settlement"),
    "policy:trust:grant": N_("Grant a use under a trust deed"),
    "policy:trust:misuse": N_("Record data misuse under a trust deed"),
}

MSG_TRANSITION: Final = N_(
    "Trust deed {deed} is {state_label}: the step “{action_label}” cannot be taken now (rule {rule})."
)
MSG_ACTOR: Final = N_(
    "Only the {actor_label} of trust deed {deed} can take this step: {action_label} (rule {rule})."
)

# Who may take each step, from which states, to which state (None: the state stays).
_STEPS: Final[dict[DeedAction, tuple[frozenset[Actor], frozenset[DeedState], DeedState | None]]] = {
    DeedAction.DRAFT: (frozenset({Actor.SETTLOR}), frozenset(), DeedState.DRAFT),
    DeedAction.EDIT: (frozenset({Actor.SETTLOR}), frozenset({DeedState.DRAFT}), None),
    DeedAction.SIGN: (frozenset({Actor.SETTLOR}), frozenset({DeedState.DRAFT}), DeedState.SIGNED),
    DeedAction.WITHDRAW: (
        frozenset({Actor.SETTLOR}),
        frozenset({DeedState.DRAFT, DeedState.SIGNED}),
        DeedState.WITHDRAWN,
    ),
    DeedAction.ACCEPT: (
        frozenset({Actor.TRUSTEE}),
        frozenset({DeedState.SIGNED}),
        DeedState.ACCEPTED,
    ),
    DeedAction.DECLINE: (
        frozenset({Actor.TRUSTEE}),
        frozenset({DeedState.SIGNED}),
        DeedState.DRAFT,
    ),
    DeedAction.ACTIVATE: (
        frozenset({Actor.SYSTEM}),
        frozenset({DeedState.ACCEPTED}),
        DeedState.ACTIVE,
    ),
    DeedAction.AMEND: (frozenset({Actor.SETTLOR}), ESTABLISHED_STATES, None),
    DeedAction.PROPOSE_TERMINATION: (
        frozenset({Actor.SETTLOR, Actor.TRUSTEE}),
        ESTABLISHED_STATES,
        None,
    ),
    DeedAction.AGREE_TERMINATION: (
        frozenset({Actor.SETTLOR, Actor.TRUSTEE}),
        ESTABLISHED_STATES,
        DeedState.TERMINATED,
    ),
    DeedAction.ORDER_TERMINATION: (
        frozenset({Actor.REGULATOR}),
        frozenset(DeedState) - FINAL_STATES,
        DeedState.TERMINATED,
    ),
    DeedAction.EXPIRE: (frozenset({Actor.SYSTEM}), ESTABLISHED_STATES, DeedState.EXPIRED),
}


def transition(
    deed: str, state: DeedState, action: DeedAction, actor: Actor, rules: TrustRules
) -> DeedState:
    """The state after ``actor`` takes ``action`` on a deed in ``state``; refused naming the
    lifecycle rule (wrong state) or the actor rule (wrong party)."""
    actors, sources, target = _STEPS[action]
    if state not in sources:
        raise DeedStateConflict(
            MSG_TRANSITION,
            rule=rules.rule_id("lifecycle"),
            deed=deed,
            state_label=Label(STATE_LABELS[state]),
            action_label=Label(ACTION_LABELS[action]),
        )
    if actor not in actors:
        owner = sorted(actors)[0]
        raise WrongParty(
            MSG_ACTOR,
            rule=rules.rule_id("actor"),
            deed=deed,
            actor_label=Label(ACTOR_LABELS[owner]),
            action_label=Label(ACTION_LABELS[action]),
        )
    return state if target is None else target


def allowed_actions(state: DeedState, actor: Actor) -> frozenset[DeedAction]:
    """What ``actor`` may do to a deed in ``state`` (the pages show only these)."""
    return frozenset(
        action
        for action, (actors, sources, _) in _STEPS.items()
        if state in sources and actor in actors
    )


# ------------------------------------------------------------------------------------ facts


@dataclass(frozen=True)
class PartyFacts:
    """What the checks need to know about a party named in a deed."""

    id: str
    name: str
    kind: str
    verified: bool


@dataclass(frozen=True)
class HoldingFacts:
    """The settlor's holding right on an asset, as the registry records it."""

    right_id: str
    status: str  # the registry's RightStatus value
    scope: Scope
    term_start: date
    term_end: date | None


@dataclass(frozen=True)
class AssetFacts:
    """A registry asset named as trust property, with the settlor's holding right on it (None:
    the settlor holds none)."""

    id: str
    name: str
    party_id: str
    data_class: str
    grade: str | None
    holding: HoldingFacts | None
    held_by: str | None = None  # the number of another signed or established deed holding it


@dataclass(frozen=True)
class Share:
    """A beneficiary and its share, in basis points of the income left after the trustee's fee."""

    party_id: str
    share_bp: int


@dataclass(frozen=True)
class SplitVersion:
    """One version of the revenue split: the shares in force from ``effective_on``."""

    version: int
    effective_on: date
    shares: tuple[Share, ...]


# ----------------------------------------------------------------------------------- checks

MSG_PURPOSE: Final = N_(
    "A trust deed states its purpose: describe what the trust is for (rule {rule})."
)
MSG_TITLE: Final = N_("A trust deed needs a title of 1 to 200 characters (rule {rule}).")
MSG_SAME_PARTY: Final = N_(
    "The settlor cannot be its own trustee: name another party as trustee (rule {rule})."
)
MSG_UNKNOWN_PARTY: Final = N_(
    "{role_label} {party} is not a verified party on the platform: name a verified party "
    "(rule {rule})."
)
MSG_FEE: Final = N_(
    "The trustee's fee must be a whole number of basis points from {low} to {high} (it is "
    "{value}) (rule {rule})."
)
MSG_TERM_ORDER: Final = N_(
    "The trust term ends on {end}, before it starts on {start}: give an end on or after the "
    "start (rule {rule})."
)
MSG_TERM_OVER: Final = N_(
    "The trust term ended on {end}: give a term that has not ended yet (rule {rule})."
)
MSG_TERM_LONG: Final = N_(
    "A trust term may last at most {years} years: end it on or before {latest} (rule {rule})."
)
MSG_NO_BENEFICIARY: Final = N_(
    "Name from {low} to {high} beneficiaries (there are {count}) (rule {rule})."
)
MSG_BENEFICIARY_TWICE: Final = N_(
    "Beneficiary {party} is named twice: name each beneficiary once with its whole share "
    "(rule {rule})."
)
MSG_SHARE_VALUE: Final = N_(
    "The share of beneficiary {party} must be a positive whole number of basis points (it is "
    "{value}) (rule {rule})."
)
MSG_SHARES_SUM: Final = N_(
    "The beneficiaries' shares add up to {sum} basis points: they must add up to exactly "
    "{total} (rule {rule})."
)
MSG_TRUSTEE_SOLE: Final = N_(
    "The trustee cannot be the only beneficiary of its own trust: name other beneficiaries "
    "too (rule {rule})."
)
MSG_NO_ASSETS: Final = N_(
    "Name from {low} to {high} registered assets as trust property (there are {count}) "
    "(rule {rule})."
)
MSG_ASSET_TWICE: Final = N_("Asset {asset} is named twice as trust property (rule {rule}).")
MSG_ASSET_UNKNOWN: Final = N_(
    "Asset {asset} is not a registered asset of the settlor: name the settlor's own registered "
    "data (rule {rule})."
)
MSG_NO_HOLDING: Final = N_(
    "The settlor holds no registered holding right in force on “{asset}”: register the data "
    "(or complete its registration) before putting it in trust (rule {rule})."
)
MSG_HELD: Final = N_(
    "“{asset}” is already trust property of deed {deed}: data is in one trust at a time. End "
    "or withdraw that deed first (rule {rule})."
)
MSG_PLEDGED: Final = N_(
    "The settlor's holding right {right} on “{asset}” is pledged: release the pledge before "
    "putting the data in trust (rule {rule})."
)
MSG_CORE: Final = N_("“{asset}” is graded core data, which cannot be put in trust (rule {rule}).")
MSG_PUBLIC: Final = N_(
    "“{asset}” is public data: it is used through public data authorised operation, not a "
    "data trust (rule {rule})."
)
MSG_SCOPE_EXCESS: Final = N_(
    "The deed's scope goes beyond the settlor's right {right} on “{asset}”: {excess}. Narrow "
    "the deed's scope (rule {rule})."
)
MSG_TERM_EXCESS: Final = N_(
    "The deed's term ({start} to {end}) goes beyond the settlor's right {right} on “{asset}” "
    "({right_start} to {right_end}) (rule {rule})."
)

_ROLE_NAMES: Final[dict[str, str]] = {
    "settlor": N_("Settlor"),
    "trustee": N_("Trustee"),
    "beneficiary": N_("Beneficiary"),
}
TITLE_MAX: Final = 200
PURPOSE_MAX: Final = 4000


def check_text(title: str, purpose: str, rules: TrustRules) -> str:
    rule = rules.rule_id("deed")
    if not title.strip() or len(title) > TITLE_MAX:
        raise InvalidDeed(MSG_TITLE, rule=rule, field="title")
    if not purpose.strip() or len(purpose) > PURPOSE_MAX:
        raise InvalidDeed(MSG_PURPOSE, rule=rule, field="purpose")
    return rule


def check_party(role: str, party_id: str, facts: PartyFacts | None, rules: TrustRules) -> None:
    if facts is None or not facts.verified:
        key = "beneficiaries" if role == "beneficiary" else "parties"
        raise InvalidDeed(
            MSG_UNKNOWN_PARTY,
            rule=rules.rule_id(key),
            field=f"{role}_id" if role != "beneficiary" else "beneficiaries",
            role_label=Label(_ROLE_NAMES[role]),
            party=party_id,
        )


def check_parties(
    settlor_id: str, trustee_id: str, parties: Mapping[str, PartyFacts], rules: TrustRules
) -> str:
    """Settlor and trustee: two different verified parties."""
    rule = rules.rule_id("parties")
    check_party("settlor", settlor_id, parties.get(settlor_id), rules)
    check_party("trustee", trustee_id, parties.get(trustee_id), rules)
    if settlor_id == trustee_id:
        raise InvalidDeed(MSG_SAME_PARTY, rule=rule, field="trustee_id")
    return rule


def check_fee(fee_bp: Any, rules: TrustRules) -> str:
    rule = rules.rule_id("fee")
    ok = isinstance(fee_bp, int) and not isinstance(fee_bp, bool)
    if not ok or not rules.fee_min_bp <= fee_bp <= rules.fee_max_bp:
        raise InvalidDeed(
            MSG_FEE,
            rule=rule,
            field="trustee_fee_bp",
            low=rules.fee_min_bp,
            high=rules.fee_max_bp,
            value=str(fee_bp),
        )
    return rule


def check_term(start: date, end: date, today: date, rules: TrustRules) -> str:
    rule = rules.rule_id("term")
    if end < start:
        raise InvalidDeed(MSG_TERM_ORDER, rule=rule, field="term_end", start=start, end=end)
    if end < today:
        raise InvalidDeed(MSG_TERM_OVER, rule=rule, field="term_end", end=end)
    latest = add_years(start, rules.max_term_years)
    if end > latest:
        raise InvalidDeed(
            MSG_TERM_LONG, rule=rule, field="term_end", years=rules.max_term_years, latest=latest
        )
    return rule


def check_shares(
    shares: Sequence[Share],
    trustee_id: str,
    parties: Mapping[str, PartyFacts],
    rules: TrustRules,
) -> tuple[str, ...]:
    """Beneficiaries: known verified parties, each once, positive whole shares adding up to
    exactly the total; the trustee never the only one."""
    b_rule, s_rule = rules.rule_id("beneficiaries"), rules.rule_id("shares")
    if not rules.beneficiaries_min <= len(shares) <= rules.beneficiaries_max:
        raise InvalidDeed(
            MSG_NO_BENEFICIARY,
            rule=b_rule,
            field="beneficiaries",
            low=rules.beneficiaries_min,
            high=rules.beneficiaries_max,
            count=len(shares),
        )
    seen: set[str] = set()
    for share in shares:
        if share.party_id in seen:
            raise InvalidDeed(
                MSG_BENEFICIARY_TWICE, rule=b_rule, field="beneficiaries", party=share.party_id
            )
        seen.add(share.party_id)
        value = share.share_bp
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise InvalidDeed(
                MSG_SHARE_VALUE,
                rule=s_rule,
                field="beneficiaries",
                party=share.party_id,
                value=str(value),
            )
        check_party("beneficiary", share.party_id, parties.get(share.party_id), rules)
    total = sum(s.share_bp for s in shares)
    if total != rules.total_bp:
        raise InvalidDeed(
            MSG_SHARES_SUM, rule=s_rule, field="beneficiaries", sum=total, total=rules.total_bp
        )
    sole_rule = rules.rule_id("trustee_sole_beneficiary")
    if seen == {trustee_id}:
        raise InvalidDeed(MSG_TRUSTEE_SOLE, rule=sole_rule, field="beneficiaries")
    return (b_rule, s_rule, sole_rule)


def parse_scope(data: Mapping[str, Any] | None) -> Scope:
    """A deed's scope in the registry's ``Scope.as_dict()`` form, checked by the registry's own
    rules (closed vocabularies, no empty dimension)."""
    return check_scope(Scope.from_dict(data or {}))


def _excess_text(excess: Mapping[str, tuple[str, ...]]) -> str:
    return "; ".join(f"{name}: {', '.join(values)}" for name, values in sorted(excess.items()))


def check_property(
    settlor_id: str,
    asset_ids: Sequence[str],
    assets: Mapping[str, AssetFacts],
    scope: Scope,
    start: date,
    end: date,
    rules: TrustRules,
) -> tuple[str, ...]:
    """Every asset named is the settlor's registered data, not public and not core, on which the
    settlor holds an active (unpledged) holding right whose scope and term cover the deed's."""
    p_rule = rules.rule_id("property")
    if not rules.assets_min <= len(asset_ids) <= rules.assets_max:
        raise InvalidDeed(
            MSG_NO_ASSETS,
            rule=p_rule,
            field="asset_ids",
            low=rules.assets_min,
            high=rules.assets_max,
            count=len(asset_ids),
        )
    if len(set(asset_ids)) != len(asset_ids):
        twice = next(a for a in asset_ids if list(asset_ids).count(a) > 1)
        raise InvalidDeed(MSG_ASSET_TWICE, rule=p_rule, field="asset_ids", asset=twice)
    for asset_id in asset_ids:
        asset = assets.get(asset_id)
        # Another party's asset and a missing one get the same answer: no oracle for ids.
        if asset is None or asset.party_id != settlor_id:
            raise InvalidDeed(MSG_ASSET_UNKNOWN, rule=p_rule, field="asset_ids", asset=asset_id)
        if asset.data_class == "public":
            raise InvalidDeed(
                MSG_PUBLIC,
                rule=rules.rule_id("property_public"),
                field="asset_ids",
                asset=asset.name,
            )
        if asset.grade == "core":
            raise InvalidDeed(
                MSG_CORE, rule=rules.rule_id("property_core"), field="asset_ids", asset=asset.name
            )
        if asset.held_by is not None:
            raise InvalidDeed(
                MSG_HELD,
                rule=rules.rule_id("property_held"),
                field="asset_ids",
                asset=asset.name,
                deed=asset.held_by,
            )
        held = asset.holding
        if held is not None and held.status == "pledged":
            raise InvalidDeed(
                MSG_PLEDGED,
                rule=rules.rule_id("property_pledged"),
                field="asset_ids",
                asset=asset.name,
                right=held.right_id,
            )
        if held is None or held.status != "active":
            raise InvalidDeed(MSG_NO_HOLDING, rule=p_rule, field="asset_ids", asset=asset.name)
        excess = scope.excess(held.scope)
        s_rule = rules.rule_id("scope")
        if excess:
            raise InvalidDeed(
                MSG_SCOPE_EXCESS,
                rule=s_rule,
                field="scope",
                asset=asset.name,
                right=held.right_id,
                excess=_excess_text(excess),
            )
        if start < held.term_start or (held.term_end is not None and end > held.term_end):
            raise InvalidDeed(
                MSG_TERM_EXCESS,
                rule=s_rule,
                field="term_end",
                asset=asset.name,
                right=held.right_id,
                start=start,
                end=end,
                right_start=held.term_start,
                right_end=held.term_end or "—",
            )
    return (
        p_rule,
        rules.rule_id("property_held"),
        rules.rule_id("property_pledged"),
        rules.rule_id("scope"),
    )


# ------------------------------------------------------------------------ versioned split

MSG_AMEND_DATE: Final = N_(
    "An amendment takes effect on {effective} at the earliest: not before today, the start of "
    "the term or the last version, and after the last income received. It is never backdated "
    "(rule {rule})."
)
MSG_AMEND_AFTER_END: Final = N_(
    "An amendment cannot take effect after the trust term ends on {end} (rule {rule})."
)


def split_in_force(versions: Iterable[SplitVersion], on: date) -> SplitVersion:
    """The version in force on ``on``: the latest taking effect on or before it (of versions
    taking effect the same day, the later one); before the first, the first."""
    ordered = sorted(versions, key=lambda v: (v.effective_on, v.version))
    if not ordered:
        raise ValueError("a deed always has a first version of its split")
    found = ordered[0]
    for version in ordered:
        if version.effective_on <= on:
            found = version
    return found


def earliest_amendment(
    today: date, term_start: date, last_version_on: date, last_income_on: date | None
) -> date:
    """The first day a new version may take effect: not before today, the term's start or the
    last version, and after the last income received (income already distributed keeps the
    shares it was distributed by, and income received later must not fall under a version
    that did not exist when earlier income of the same day was split)."""
    days = [today, term_start, last_version_on]
    if last_income_on is not None:
        days.append(last_income_on + timedelta(days=1))
    return max(days)


def check_amendment_date(
    effective_on: date,
    *,
    today: date,
    term_start: date,
    term_end: date,
    last_version_on: date,
    last_income_on: date | None,
    rules: TrustRules,
) -> str:
    rule = rules.rule_id("amendment")
    earliest = earliest_amendment(today, term_start, last_version_on, last_income_on)
    if effective_on < earliest:
        raise InvalidDeed(MSG_AMEND_DATE, rule=rule, field="effective_on", effective=earliest)
    if effective_on > term_end:
        raise InvalidDeed(MSG_AMEND_AFTER_END, rule=rule, field="effective_on", end=term_end)
    return rule


# ------------------------------------------------------------------------------- income

MSG_INCOME_AMOUNT: Final = N_(
    "Trust income is a positive whole number of fen up to {max} (it is {value}) (rule {rule})."
)
MSG_INCOME_NOT_ACTIVE: Final = N_(
    "Trust deed {deed} is {state_label}: income is recorded only while the deed is in effect "
    "(rule {rule})."
)
MSG_INCOME_DATE: Final = N_(
    "Income received on {received} is outside the deed's term in effect ({start} to {end}, "
    "and not after today) (rule {rule})."
)
MSG_INCOME_SOURCE: Final = N_(
    "Say where the income comes from: a grant under this deed, or another source with a "
    "description (rule {rule})."
)


def check_income_amount(amount_fen: Any, rules: TrustRules) -> str:
    rule = rules.rule_id("income")
    ok = isinstance(amount_fen, int) and not isinstance(amount_fen, bool)
    if not ok or not 0 < amount_fen <= rules.max_income_fen:
        raise InvalidDeed(
            MSG_INCOME_AMOUNT,
            rule=rule,
            field="amount_fen",
            max=rules.max_income_fen,
            value=str(amount_fen),
        )
    return rule


def check_income(
    deed: str,
    state: DeedState,
    amount_fen: Any,
    received_on: date,
    *,
    term_start: date,
    term_end: date,
    today: date,
    rules: TrustRules,
) -> str:
    """An income: positive whole fen, on a deed in effect, received within its term (not in
    the future)."""
    rule = check_income_amount(amount_fen, rules)
    if state is not DeedState.ACTIVE or today > term_end:
        shown = DeedState.EXPIRED if state is DeedState.ACTIVE else state
        raise DeedStateConflict(
            MSG_INCOME_NOT_ACTIVE, rule=rule, deed=deed, state_label=Label(STATE_LABELS[shown])
        )
    if not term_start <= received_on <= min(term_end, today):
        raise InvalidDeed(
            MSG_INCOME_DATE,
            rule=rule,
            field="received_on",
            received=received_on,
            start=term_start,
            end=term_end,
        )
    return rule


# -------------------------------------------------------------------------- distribution


@dataclass(frozen=True)
class Line:
    """One distribution line of an income: to the trustee (its fee) or to a beneficiary."""

    role: LineRole
    party_id: str
    share_bp: int  # the fee's bp of the income, or the beneficiary's bp of the rest
    exact: Fraction  # the exact amount, in fen
    amount_fen: int  # rounded: within one fen of ``exact``


_ROLE_ORDER: Final = {LineRole.TRUSTEE_FEE: 0, LineRole.BENEFICIARY: 1}


def split_income(
    amount_fen: int,
    fee_bp: int,
    shares: Sequence[Share],
    trustee_id: str,
    total_bp: int = 10_000,
) -> tuple[Line, ...]:
    """Split ``amount_fen`` into the trustee's fee (``fee_bp`` of it) and the beneficiaries'
    amounts (each its ``share_bp`` of the rest), in whole fen adding up to ``amount_fen``.

    Exact amounts are fractions; each line gets its amount rounded down, and the fen left over
    (fewer than the number of lines) go one each to the lines with the largest remainders
    (Hamilton's largest-remainder method). Ties are broken by the larger exact amount, then the
    trustee's fee before beneficiaries, then party id: the result never depends on the order
    the shares were given in. Lines with a zero share (a fee of 0 bp) are left out.
    """
    if amount_fen <= 0 or not 0 <= fee_bp < total_bp:
        raise ValueError("amount must be positive and the fee below the total")
    if sum(s.share_bp for s in shares) != total_bp or any(s.share_bp <= 0 for s in shares):
        raise ValueError("shares must be positive and add up to the total")
    rest = total_bp - fee_bp
    exact: list[tuple[LineRole, str, int, Fraction]] = []
    if fee_bp:
        exact.append(
            (LineRole.TRUSTEE_FEE, trustee_id, fee_bp, Fraction(amount_fen * fee_bp, total_bp))
        )
    for share in sorted(shares, key=lambda s: s.party_id):
        value = Fraction(amount_fen * rest * share.share_bp, total_bp * total_bp)
        exact.append((LineRole.BENEFICIARY, share.party_id, share.share_bp, value))
    floors = [math.floor(e[3]) for e in exact]
    left = amount_fen - sum(floors)
    order = sorted(
        range(len(exact)),
        key=lambda i: (
            -(exact[i][3] - floors[i]),
            -exact[i][3],
            _ROLE_ORDER[exact[i][0]],
            exact[i][1],
        ),
    )
    bonus = set(order[:left])
    return tuple(
        Line(role, party, bp, value, floors[i] + (1 if i in bonus else 0))
        for i, (role, party, bp, value) in enumerate(exact)
    )


# ------------------------------------------------------------------------ grants' policies

# The registry's scope dimensions and the ODRL left operands that limit the same thing.
_SCOPE_OPERANDS: Final = (
    ("purposes", "purpose", "isAnyOf"),
    ("regions", "spatial", "isAnyOf"),
    ("delivery_modes", "deliveryChannel", "isAnyOf"),
    ("fields", "df:fields", "isPartOf"),
)


def policy_within(
    document: Mapping[str, Any],
    scope: Mapping[str, Sequence[str] | None],
    *,
    purposes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A copy of an ODRL policy (a template, say) whose every permission also carries the
    deed's limits — purposes (``purposes`` if given, else the deed's), regions, delivery
    channels and fields, each only where the deed restricts it — so a grant under the deed
    permits nothing beyond it. The policy parser still checks the result (a template that
    contradicts the deed, e.g. API only under a sandbox-only deed, is refused there)."""
    doc = copy.deepcopy(dict(document))
    permissions = doc.get("permission")
    if isinstance(permissions, Mapping):
        permissions = [permissions]
    limits = dict(scope)
    if purposes is not None:
        limits["purposes"] = list(purposes)
    for permission in permissions or []:
        constraints = permission.get("constraint", [])
        if isinstance(constraints, Mapping):
            constraints = [constraints]
        constraints = list(constraints)
        for dimension, operand, operator in _SCOPE_OPERANDS:
            values = limits.get(dimension)
            if values is not None:
                constraints.append(
                    {"leftOperand": operand, "operator": operator, "rightOperand": sorted(values)}
                )
        if constraints:
            permission["constraint"] = constraints
    if isinstance(doc.get("permission"), Mapping):
        doc["permission"] = permissions
    return doc


# --------------------------------------------------------------------------------- numbers


def format_deed_number(prefix: str, year: int, serial: int) -> str:
    """``GX-XT-2026-000001``: the prefix, the year the deed was drafted, a six-digit serial."""
    return f"{prefix}-{year:04d}-{serial:06d}"


def yuan(fen: int) -> str:
    """Fen as yuan text with two decimals and thousands separators (``1,234.56``)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}"


def _digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts “²” and other digits ``int`` refuses."""
    return text.isascii() and text.isdigit()


def parse_yuan(text: str) -> int | None:
    """Yuan typed by a person (``1234.5``, ``1,234.56``) as whole fen; None when it is not an
    amount with at most two decimals."""
    cleaned = text.strip().replace(",", "").replace("，", "")
    if not cleaned or cleaned.count(".") > 1 or cleaned.startswith(("-", "+")):
        return None
    whole, _, cents = cleaned.partition(".")
    if not (whole or cents) or not _digits(whole or "0") or (cents and not _digits(cents)):
        return None
    if len(cents) > 2 or len(whole) > 15:
        return None
    return int(whole or "0") * 100 + int((cents + "00")[:2])
