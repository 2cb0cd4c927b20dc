"""The rules of public data authorised operation (公共数据授权运营), as pure functions.

What an authorisation agreement needs before it is signed (a recorded selection procedure, the
body's own registered public data, a term, no overlap with another live agreement of the same
operator), how an agreement's state moves, whether a use may be made under it (class, purpose,
scope, term, delivery channels, free or paid at the published fee under the cap), and the
operator's allowed revenue with the carry-over of any excess from one year into the next. The
parameters (procedures, the default term, use classes with their purposes, fee units, cost
categories, bounds) and the rule ids come from ``rules/operation.yaml``; every refusal is an
``OperationError`` naming its rule. Money is whole fen (``int``) throughout; rates are basis
points. No web, no ORM (import-linter: "Domain rules import no web or ORM").
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeVar

from datafactor import context
from datafactor.errors import N_, Conflict, DomainError, Forbidden, InvalidInput
from datafactor.policy.odrl import Constraint, LogicalConstraint, Policy
from datafactor.policy.rulebook import RuleSet, load_rule_set
from datafactor.policy.vocabulary import (
    INCLUDES,
    Channel,
    Logical,
    Operator,
    place_code,
    regions_of,
)

RULE_KEYS: Final = (
    "selection",
    "term",
    "body_public_data",
    "parties",
    "channels",
    "overlap",
    "agreement_live",
    "agreement_end",
    "transition",
    "use_scope",
    "use_policy",
    "fee_unit",
    "dates",
    "use_class",
    "free_use",
    "paid_use",
    "fee_cap",
    "cap_setting",
    "allowed_revenue",
    "carry_over",
    "money",
    "annual_report",
    "treasury",
)

# An implementing body (实施机构) is a government department, or a public enterprise (公共企事业单位,
# e.g. the power grid) for the public data it produces in providing public services; either way
# it signs only over its own registered public data (OPS-BODY-DATA).
BODY_KINDS: Final = frozenset({"government_department", "enterprise"})
OPERATOR_KIND: Final = "public_data_operator"
PUBLIC_DATA: Final = "public"
BP: Final = 10_000  # basis points in 1
ALL_CHANNELS: Final = frozenset(c.value for c in Channel)


# ------------------------------------------------------------------------------------ refusals


class OperationError(DomainError):
    """A refusal by an operation rule; ``rule`` is its id (also a message parameter)."""

    rule: str

    def __init__(
        self,
        message: str,
        *,
        rule: str,
        field: str | None = None,
        code: str | None = None,
        **params: Any,
    ) -> None:
        super().__init__(message, field=field, code=code, rule=rule, **params)
        self.rule = rule
        # The English text for logs and tracebacks (names, not the reader's language).
        english = {
            k: v.names.get("en", str.__str__(v)) if isinstance(v, Named) else v
            for k, v in self.params.items()
        }
        self.args = (message.format(**english),)


class OperationInvalid(OperationError, InvalidInput):
    code = "operation-invalid"


class OperationConflict(OperationError, Conflict):
    code = "operation-conflict"


class OperationForbidden(OperationError, Forbidden):
    code = "operation-forbidden"


class Named(str):
    """A code that reads as its Chinese or English name inside a message (the value stays the
    code: stored, compared and sent in JSON as the code)."""

    names: Mapping[str, str]

    def __new__(cls, code: str, names: Mapping[str, str] | None) -> Named:
        made = super().__new__(cls, code)
        made.names = names or {}
        return made

    def __format__(self, spec: str) -> str:
        lang = "en" if context.locale.get().lower().startswith("en") else "zh"
        return format(self.names.get(lang, str.__str__(self)), spec)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Named, (str.__str__(self), dict(self.names)))


def lang() -> str:
    """``zh`` or ``en``: the language of the current request (Chinese by default)."""
    return "en" if context.locale.get().lower().startswith("en") else "zh"


# --------------------------------------------------------------------------------- the rules


@dataclass(frozen=True)
class UseClassRule:
    """A use class: its names, whether its uses are paid, the purposes it may declare."""

    code: str
    names: Mapping[str, str]
    paid: bool
    purposes: frozenset[str]


@dataclass(frozen=True)
class OperationRules:
    """``rules/operation.yaml``, loaded and checked."""

    rules: RuleSet
    procedures: Mapping[str, Mapping[str, str]]
    default_term_years: int
    channels: frozenset[str]
    use_classes: Mapping[str, UseClassRule]
    fee_units: Mapping[str, Mapping[str, str]]
    counted_units: frozenset[str]  # units a paid use buys a number of (its policy's count)
    unit_channels: Mapping[str, frozenset[str]]  # how a use priced in the unit is delivered
    cost_categories: Mapping[str, Mapping[str, str]]
    max_profit_rate_bp: int
    max_amount_fen: int
    max_quantity: int
    first_year: int
    last_year: int

    @property
    def version(self) -> str:
        return self.rules.version

    def rule_id(self, key: str) -> str:
        return self.rules.rule_id(key)

    @property
    def purposes(self) -> frozenset[str]:
        """Every purpose some use class may declare (the registry scope vocabulary)."""
        return frozenset().union(*(c.purposes for c in self.use_classes.values()))

    def named(self, kind: str, code: str) -> Named:
        table: Mapping[str, Any] = {
            "procedure": self.procedures,
            "unit": self.fee_units,
            "category": self.cost_categories,
            "class": {k: v.names for k, v in self.use_classes.items()},
        }[kind]
        return Named(code, table.get(code))


def _names(data: Any, where: str) -> Mapping[str, Mapping[str, str]]:
    if not isinstance(data, Mapping) or not data:
        raise ValueError(f"operation.yaml: {where} must be a non-empty mapping")
    out: dict[str, Mapping[str, str]] = {}
    for code, entry in data.items():
        if not isinstance(entry, Mapping) or not {"zh", "en"} <= set(entry):
            raise ValueError(f"operation.yaml: {where}.{code} needs zh and en")
        out[str(code)] = MappingProxyType({"zh": str(entry["zh"]), "en": str(entry["en"])})
    return MappingProxyType(out)


def _positive(data: Mapping[str, Any], key: str, where: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"operation.yaml: {where}.{key} must be a whole number of at least 1")
    return value


def _build(rule_set: RuleSet) -> OperationRules:
    data = rule_set.data
    agreement = data.get("agreement") or {}
    channels = frozenset(str(c) for c in agreement.get("channels") or ())
    if not channels or not channels <= ALL_CHANNELS or Channel.DOWNLOAD.value in channels:
        raise ValueError("operation.yaml: agreement.channels must be a subset of api, sandbox")
    classes: dict[str, UseClassRule] = {}
    for code, entry in (data.get("use_classes") or {}).items():
        purposes = frozenset(str(p) for p in entry.get("purposes") or ())
        if not purposes or not isinstance(entry.get("paid"), bool):
            raise ValueError(f"operation.yaml: use class {code} needs paid and purposes")
        names = MappingProxyType({"zh": str(entry["zh"]), "en": str(entry["en"])})
        classes[str(code)] = UseClassRule(str(code), names, bool(entry["paid"]), purposes)
    if not classes:
        raise ValueError("operation.yaml: use_classes must not be empty")
    unit_channels: dict[str, frozenset[str]] = {}
    for code, entry in (data.get("fee_units") or {}).items():
        found = frozenset(str(c) for c in (entry or {}).get("channels") or ())
        if not found or not found <= channels:
            raise ValueError(
                f"operation.yaml: fee_units.{code}.channels must be a non-empty subset of "
                "agreement.channels"
            )
        unit_channels[str(code)] = found
    pricing = data.get("pricing") or {}
    calendar = data.get("calendar") or {}
    first_year = _positive(calendar, "first_year", "calendar")
    last_year = _positive(calendar, "last_year", "calendar")
    if not 1900 < first_year <= last_year < 9000:
        raise ValueError("operation.yaml: calendar must run from first_year to last_year")
    return OperationRules(
        rules=rule_set,
        procedures=_names(data.get("procedures"), "procedures"),
        default_term_years=_positive(agreement, "default_term_years", "agreement"),
        channels=channels,
        use_classes=MappingProxyType(classes),
        fee_units=_names(data.get("fee_units"), "fee_units"),
        counted_units=frozenset(
            str(code)
            for code, entry in (data.get("fee_units") or {}).items()
            if isinstance(entry, Mapping) and entry.get("counted") is True
        ),
        unit_channels=MappingProxyType(unit_channels),
        cost_categories=_names(data.get("cost_categories"), "cost_categories"),
        max_profit_rate_bp=_positive(pricing, "max_profit_rate_bp", "pricing"),
        max_amount_fen=_positive(pricing, "max_amount_fen", "pricing"),
        max_quantity=_positive(pricing, "max_quantity", "pricing"),
        first_year=first_year,
        last_year=last_year,
    )


@functools.cache
def load_operation_rules() -> OperationRules:
    """The packaged ``rules/operation.yaml`` (cached)."""
    return _build(load_rule_set("operation", RULE_KEYS))


def operation_rules_from(path: Path) -> OperationRules:
    """An operator's own copy of the rules file, checked the same way."""
    return _build(load_rule_set("operation", RULE_KEYS, path))


# ------------------------------------------------------------------------------------- money

#: What an amount or a setting is, named in messages in the reader's language.
WHAT_NAMES: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType(
    {
        "The cap": {"zh": "上限收费标准", "en": "The cap"},
        "The fee": {"zh": "收费标准", "en": "The fee"},
        "The cost": {"zh": "成本", "en": "The cost"},
        "The use's fee": {"zh": "该项使用的费用", "en": "The use's fee"},
        "cap": {"zh": "上限收费标准", "en": "cap"},
        "rate": {"zh": "合理利润率", "en": "rate"},
        "fee": {"zh": "收费标准", "en": "fee"},
    }
)


def what_named(what: str) -> Named:
    return Named(what, WHAT_NAMES.get(what))


MSG_NOT_FEN: Final = N_(
    "{what} must be a whole number of fen (分), at least 0 and at most {max}: {value} is not. "
    "Write 12.50 yuan as 1250 (rule {rule})."
)


def shown(value: object, limit: int = 40) -> str:
    """``value`` as a refusal quotes it: its repr, cut short (a number of thousands of digits
    is neither printable nor worth printing)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"<a number of about {value.bit_length() * 30103 // 100000 + 1} digits>"
    try:
        text = repr(value)
    except ValueError:  # e.g. beyond Python's digit limit for int-to-string conversion
        return "…"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_fen(value: object, what: str, rules: OperationRules, *, field: str) -> int:
    """``value`` as whole fen, or a refusal (OPS-MONEY): negative, fractional, boolean, text."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < 0
        or value > rules.max_amount_fen
    ):
        raise OperationInvalid(
            MSG_NOT_FEN,
            rule=rules.rule_id("money"),
            field=field,
            what=what_named(what),
            value=shown(value),
            max=rules.max_amount_fen,
        )
    return value


MSG_BAD_DAY: Final = N_(
    "The date {day} is outside the dates the platform keeps ({first} to {last}). Check the year "
    "(rule {rule})."
)


def check_day(day: date, rules: OperationRules, *, field: str) -> date:
    """``day`` if it falls within the rules file's calendar, else a refusal (OPS-DATES): no
    term, effective date or signing date is taken from outside it (nor computed beyond it)."""
    if not rules.first_year <= day.year <= rules.last_year:
        raise OperationInvalid(
            MSG_BAD_DAY,
            rule=rules.rule_id("dates"),
            field=field,
            day=day.isoformat(),
            first=f"{rules.first_year}-01-01",
            last=f"{rules.last_year}-12-31",
        )
    return day


def yuan_text(fen: int) -> str:
    """``fen`` as yuan with two decimals (12.50), exact (no floats)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}"


# ------------------------------------------------------------------------ versions in force

T = TypeVar("T", bound="Versioned")


@dataclass(frozen=True)
class Versioned:
    """Anything set with an effective date and kept with its history (caps, rates, fees):
    ``seq`` orders two versions of the same day (the later one set wins)."""

    effective_from: date
    seq: int


def in_force(versions: Iterable[T], on: date) -> T | None:
    """The version in force on ``on``: the latest effective on or before it (None if none)."""
    best: T | None = None
    for v in versions:
        if v.effective_from <= on and (
            best is None or (v.effective_from, v.seq) > (best.effective_from, best.seq)
        ):
            best = v
    return best


@dataclass(frozen=True)
class CapVersion(Versioned):
    """A service-fee cap (上限收费标准) for one fee unit."""

    unit: str
    amount_fen: int


@dataclass(frozen=True)
class RateVersion(Versioned):
    """The reasonable-profit rate (合理利润率), in basis points."""

    rate_bp: int


@dataclass(frozen=True)
class FeeVersion(Versioned):
    """An operator's published fee for one data set (asset) and fee unit."""

    asset_id: str
    unit: str
    amount_fen: int


MSG_UNKNOWN_UNIT: Final = N_("{unit} is not a fee unit. Choose one of: {known} (rule {rule}).")
MSG_NO_SOURCE: Final = N_(
    "Name the document that sets this {what} (its number, e.g. 桂发改价格〔2026〕1号) (rule {rule})."
)
MSG_RATE_RANGE: Final = N_(
    "The reasonable-profit rate is given in basis points (800 = 8.00 %) and must be a whole "
    "number from 0 to {max}: {value} is not (rule {rule})."
)


def check_unit(unit: str, rules: OperationRules, rule_key: str) -> str:
    if unit not in rules.fee_units:
        raise OperationInvalid(
            MSG_UNKNOWN_UNIT,
            rule=rules.rule_id(rule_key),
            field="unit",
            unit=unit,
            known=", ".join(rules.fee_units),
        )
    return unit


def check_cap(unit: str, amount_fen: object, source_document: str, rules: OperationRules) -> int:
    """A cap the bureau sets: a known unit, whole fen, and the document that sets it."""
    check_unit(unit, rules, "cap_setting")
    amount = check_fen(amount_fen, "The cap", rules, field="amount_fen")
    _require_source(source_document, "cap", rules)
    return amount


def check_rate(rate_bp: object, source_document: str, rules: OperationRules) -> int:
    if (
        isinstance(rate_bp, bool)
        or not isinstance(rate_bp, int)
        or not 0 <= rate_bp <= rules.max_profit_rate_bp
    ):
        raise OperationInvalid(
            MSG_RATE_RANGE,
            rule=rules.rule_id("cap_setting"),
            field="rate_bp",
            value=repr(rate_bp),
            max=rules.max_profit_rate_bp,
        )
    _require_source(source_document, "rate", rules)
    return rate_bp


def _require_source(source_document: str, what: str, rules: OperationRules) -> None:
    if not source_document.strip():
        raise OperationInvalid(
            MSG_NO_SOURCE,
            rule=rules.rule_id("cap_setting"),
            field="source_document",
            what=what_named(what),
        )


MSG_NO_CAP: Final = N_(
    "No service-fee cap {unit} is in force on {day}: the big-data bureau sets the cap "
    "(government-guided price) before any paid use or fee. Ask the bureau to set it (rule {rule})."
)
MSG_FEE_ABOVE_CAP: Final = N_(
    "A fee of {fee} yuan {unit} is above the cap of {cap} yuan in force on {day}. Charge at most "
    "the cap (rule {rule})."
)
MSG_FEE_NOT_COVERED: Final = N_(
    "Data set {asset} is not covered by an active authorisation agreement of yours on {day}: fees "
    "are published only for data you are authorised to operate (rule {rule})."
)


def check_fee(
    unit: str,
    amount_fen: object,
    effective_from: date,
    *,
    covered: bool,
    asset_label: str,
    caps: Sequence[CapVersion],
    rules: OperationRules,
) -> tuple[int, CapVersion]:
    """A fee the operator publishes: data it operates, a known unit, whole fen, not above the
    cap in force on the day it takes effect. Returns the amount and that cap."""
    check_unit(unit, rules, "paid_use")
    amount = check_fen(amount_fen, "The fee", rules, field="amount_fen")
    if not covered:
        raise OperationInvalid(
            MSG_FEE_NOT_COVERED,
            rule=rules.rule_id("use_scope"),
            field="asset_id",
            asset=asset_label,
            day=effective_from.isoformat(),
        )
    cap = in_force([c for c in caps if c.unit == unit], effective_from)
    if cap is None:
        raise OperationConflict(
            MSG_NO_CAP,
            rule=rules.rule_id("fee_cap"),
            field="unit",
            unit=rules.named("unit", unit),
            day=effective_from.isoformat(),
        )
    if amount > cap.amount_fen:
        raise OperationInvalid(
            MSG_FEE_ABOVE_CAP,
            rule=rules.rule_id("fee_cap"),
            field="amount_fen",
            fee=yuan_text(amount),
            unit=rules.named("unit", unit),
            cap=yuan_text(cap.amount_fen),
            day=effective_from.isoformat(),
        )
    return amount, cap


# -------------------------------------------------------------------------------- agreements


class AgreementState(StrEnum):
    """Where an authorisation agreement stands."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"
    EXPIRED = "expired"


AGREEMENT_STATE_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        AgreementState.ACTIVE: N_("Active"),
        AgreementState.SUSPENDED: N_("Suspended"),
        AgreementState.TERMINATED: N_("Terminated"),
        AgreementState.EXPIRED: N_("Expired"),
    }
)
LIVE_STATES: Final = frozenset({AgreementState.ACTIVE, AgreementState.SUSPENDED})
TRANSITIONS: Final[Mapping[AgreementState, frozenset[AgreementState]]] = MappingProxyType(
    {
        AgreementState.ACTIVE: frozenset(
            {AgreementState.SUSPENDED, AgreementState.TERMINATED, AgreementState.EXPIRED}
        ),
        AgreementState.SUSPENDED: frozenset(
            {AgreementState.ACTIVE, AgreementState.TERMINATED, AgreementState.EXPIRED}
        ),
        AgreementState.TERMINATED: frozenset(),
        AgreementState.EXPIRED: frozenset(),
    }
)


def effective_state(state: str, term_end: date, today: date) -> AgreementState:
    """The state as of ``today``: a live agreement whose term has ended is expired, whether or
    not the sweep has recorded it yet."""
    current = AgreementState(state)
    if current in LIVE_STATES and today > term_end:
        return AgreementState.EXPIRED
    return current


MSG_TRANSITION: Final = N_(
    "Agreement {number} is {state}: it cannot become {target}. An active agreement may be "
    "suspended or terminated; a suspended one resumed or terminated; an ended one not at all "
    "(rule {rule})."
)


def _state_named(state: str) -> Named:
    zh = {"active": "有效", "suspended": "已暂停", "terminated": "已终止", "expired": "已到期"}
    return Named(state, {"zh": zh.get(state, state), "en": state})


def check_transition(
    number: str, state: AgreementState, target: AgreementState, rules: OperationRules
) -> None:
    if target not in TRANSITIONS[state]:
        raise OperationConflict(
            MSG_TRANSITION,
            rule=rules.rule_id("transition"),
            number=number,
            state=_state_named(state),
            target=_state_named(target),
        )


@dataclass(frozen=True)
class Selection:
    """How the operator was selected (运营机构选择): the procedure, its reference number, its date
    and a short record of the outcome."""

    procedure: str
    reference: str
    decided_on: date
    record: str


@dataclass(frozen=True)
class AssetFacts:
    """A registry asset as the agreement check sees it."""

    id: str
    party_id: str
    data_class: str
    name: str


@dataclass(frozen=True)
class LiveAgreement:
    """Another live agreement of the same operator (for the overlap check)."""

    number: str
    asset_ids: frozenset[str]
    term_start: date
    term_end: date


@dataclass(frozen=True)
class AgreementFacts:
    """Everything the rules need to decide whether an agreement may be signed."""

    body_id: str
    body_kind: str
    operator_id: str | None  # None: no verified party of that id
    operator_kind: str | None
    number: str
    signed_on: date
    selection: Selection | None
    assets: tuple[AssetFacts, ...]
    missing_assets: tuple[str, ...] = ()  # ids the body cannot see or that do not exist
    term_start: date | None = None
    term_end: date | None = None
    purposes: frozenset[str] | None = None  # None: every purpose of the use classes
    regions: frozenset[str] | None = None  # None: unrestricted
    live: tuple[LiveAgreement, ...] = ()


@dataclass(frozen=True)
class AgreementPlan:
    """What the check approved: the term, the scope (registry ``Scope.as_dict`` form) and the
    channels, with the rule ids applied."""

    term_start: date
    term_end: date
    scope: Mapping[str, list[str] | None]
    channels: frozenset[str]
    rules: tuple[str, ...]


MSG_NOT_OPERATOR: Final = N_(
    "The party chosen as operator is not a verified public-data operator (公共数据运营机构): an "
    "agreement is signed with a verified operator only. Choose one from the list (rule {rule})."
)
MSG_NOT_BODY: Final = N_(
    "Only an implementing body (实施机构) — a government department, or a public enterprise for "
    "the public data of its public services — signs an authorisation agreement (rule {rule})."
)
MSG_NO_SELECTION: Final = N_(
    "Record how the operator was selected before signing: the procedure, its reference number, "
    "its date and a short record of the outcome are all required ({missing} missing) (rule {rule})."
)
MSG_UNKNOWN_PROCEDURE: Final = N_(
    "{procedure} is not a selection procedure. Choose one of: {known} (rule {rule})."
)
MSG_SELECTION_LATE: Final = N_(
    "The selection is dated {decided}, after the agreement's signing date {signed}: the operator "
    "is selected first, then the agreement signed. Check both dates (rule {rule})."
)
MSG_NO_ASSETS: Final = N_(
    "Name at least one registered public data set of yours for the agreement to cover (rule {rule})."
)
MSG_ASSET_NOT_OURS: Final = N_(
    "Data set {asset} is not yours: an agreement covers only the implementing body's own "
    "registered data. Remove it from the agreement (rule {rule})."
)
MSG_ASSET_NOT_PUBLIC: Final = N_(
    "Data set {asset} is not registered as public data: only public data (公共数据) is operated "
    "under an authorisation agreement. Remove it, or authorise it as enterprise data instead "
    "(rule {rule})."
)
MSG_BAD_TERM: Final = N_(
    "The agreement's term must end on or after it starts ({start} to {end}). Without an end date "
    "it runs {years} years (rule {rule})."
)
MSG_UNKNOWN_PURPOSE: Final = N_(
    "{purposes} is not a purpose an agreement can allow. Choose among: {known} (rule {rule})."
)
MSG_BAD_REGION: Final = N_(
    "{regions} is not a region code: use a GB/T 2260 code such as 450000 or 450100, or a country "
    "code such as CN (rule {rule})."
)
MSG_OVERLAP: Final = N_(
    "Agreement {other} already gives this operator data set {asset} from {start} to {end}: two "
    "live agreements for the same data and operator may not overlap. End the other agreement "
    "first, or start this one after {end} (rule {rule})."
)
MSG_NO_NUMBER: Final = N_("Give the agreement's number, as written on the signed agreement.")


def add_years(day: date, years: int) -> date:
    """``day`` moved ``years`` on (29 February becomes 28 February in a common year)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def default_term_end(start: date, rules: OperationRules) -> date:
    """The last day of the default term: ``default_term_years`` from ``start``, less one day."""
    return add_years(start, rules.default_term_years) - timedelta(days=1)


def check_regions(regions: Iterable[str], rules: OperationRules, key: str) -> frozenset[str]:
    codes = {r: place_code(r) for r in regions}
    bad = sorted(r for r, code in codes.items() if code is None)
    if bad:
        raise OperationInvalid(
            MSG_BAD_REGION, rule=rules.rule_id(key), field="regions", regions=", ".join(bad)
        )
    return frozenset(c for c in codes.values() if c is not None)


def check_agreement(facts: AgreementFacts, rules: OperationRules) -> AgreementPlan:
    """Whether the agreement may be signed, or the first refusal: parties (OPS-PARTIES), the
    selection (OPS-SELECTION), the data (OPS-BODY-DATA), the term (OPS-TERM), the scope, and
    no overlap with a live agreement of the same operator (OPS-OVERLAP)."""
    if not facts.number.strip():
        raise InvalidInput(MSG_NO_NUMBER, field="number")
    if facts.body_kind not in BODY_KINDS:
        raise OperationForbidden(MSG_NOT_BODY, rule=rules.rule_id("parties"))
    if facts.operator_id is None or facts.operator_kind != OPERATOR_KIND:
        raise OperationInvalid(MSG_NOT_OPERATOR, rule=rules.rule_id("parties"), field="operator_id")
    for day, name in (
        (facts.signed_on, "signed_on"),
        (facts.selection.decided_on if facts.selection else None, "selection.decided_on"),
        (facts.term_start, "term_start"),
        (facts.term_end, "term_end"),
    ):
        if day is not None:
            check_day(day, rules, field=name)
    _check_selection(facts, rules)
    _check_assets(facts, rules)
    start = facts.term_start or facts.signed_on
    end = facts.term_end or default_term_end(start, rules)
    if end < start:
        raise OperationInvalid(
            MSG_BAD_TERM,
            rule=rules.rule_id("term"),
            field="term_end",
            start=start.isoformat(),
            end=end.isoformat(),
            years=rules.default_term_years,
        )
    check_day(end, rules, field="term_end")  # a default term may run past the calendar
    purposes = facts.purposes
    if purposes is not None:
        unknown = sorted(purposes - rules.purposes)
        if unknown or not purposes:
            raise OperationInvalid(
                MSG_UNKNOWN_PURPOSE,
                rule=rules.rule_id("use_scope"),
                field="purposes",
                purposes=", ".join(unknown) or "—",
                known=", ".join(sorted(rules.purposes)),
            )
    regions = None
    if facts.regions is not None:
        regions = check_regions(facts.regions, rules, "use_scope")
        if not regions:
            raise OperationInvalid(
                MSG_BAD_REGION, rule=rules.rule_id("use_scope"), field="regions", regions="—"
            )
    ids = {a.id for a in facts.assets}
    for other in facts.live:
        shared = sorted(ids & other.asset_ids)
        if shared and other.term_start <= end and start <= other.term_end:
            name = next(a.name for a in facts.assets if a.id == shared[0])
            raise OperationConflict(
                MSG_OVERLAP,
                rule=rules.rule_id("overlap"),
                field="asset_ids",
                other=other.number,
                asset=name,
                start=other.term_start.isoformat(),
                end=other.term_end.isoformat(),
            )
    scope: dict[str, list[str] | None] = {
        "purposes": sorted(purposes) if purposes is not None else sorted(rules.purposes),
        "fields": None,
        "regions": sorted(regions) if regions is not None else None,
        "delivery_modes": sorted(rules.channels),
    }
    applied = ("parties", "selection", "body_public_data", "term", "channels", "overlap")
    return AgreementPlan(
        term_start=start,
        term_end=end,
        scope=MappingProxyType(scope),
        channels=rules.channels,
        rules=tuple(rules.rule_id(k) for k in applied),
    )


def _check_selection(facts: AgreementFacts, rules: OperationRules) -> None:
    rule = rules.rule_id("selection")
    sel = facts.selection
    missing = []
    if sel is None or not sel.procedure.strip():
        missing.append("procedure")
    if sel is None or not sel.reference.strip():
        missing.append("reference")
    if sel is None or not sel.record.strip():
        missing.append("record")
    if missing or sel is None:
        raise OperationInvalid(
            MSG_NO_SELECTION,
            rule=rule,
            field=f"selection.{missing[0] if missing else 'procedure'}",
            missing=", ".join(missing),
        )
    if sel.procedure not in rules.procedures:
        raise OperationInvalid(
            MSG_UNKNOWN_PROCEDURE,
            rule=rule,
            field="selection.procedure",
            procedure=sel.procedure,
            known=", ".join(rules.procedures),
        )
    if sel.decided_on > facts.signed_on:
        raise OperationInvalid(
            MSG_SELECTION_LATE,
            rule=rule,
            field="selection.decided_on",
            decided=sel.decided_on.isoformat(),
            signed=facts.signed_on.isoformat(),
        )


def _check_assets(facts: AgreementFacts, rules: OperationRules) -> None:
    rule = rules.rule_id("body_public_data")
    if facts.missing_assets:
        raise OperationInvalid(
            MSG_ASSET_NOT_OURS, rule=rule, field="asset_ids", asset=facts.missing_assets[0]
        )
    if not facts.assets:
        raise OperationInvalid(MSG_NO_ASSETS, rule=rule, field="asset_ids")
    for asset in facts.assets:
        if asset.party_id != facts.body_id:
            raise OperationInvalid(
                MSG_ASSET_NOT_OURS, rule=rule, field="asset_ids", asset=asset.name
            )
        if asset.data_class != PUBLIC_DATA:
            raise OperationInvalid(
                MSG_ASSET_NOT_PUBLIC, rule=rule, field="asset_ids", asset=asset.name
            )


# -------------------------------------------------------------------------------------- uses


def _values(right: object) -> set[str]:
    if isinstance(right, str):
        return {right}
    if isinstance(right, tuple):
        return {str(v) for v in right}
    return set()


def _meets(c: Constraint) -> frozenset[str]:
    """The channels one delivery-channel condition holds for."""
    values = _values(c.right)
    if c.operator in (Operator.EQ, Operator.IS_ANY_OF):
        return ALL_CHANNELS & values
    if c.operator in (Operator.NEQ, Operator.IS_NONE_OF):
        return ALL_CHANNELS - values
    return ALL_CHANNELS


def _allowed_by(constraints: Iterable[Constraint | LogicalConstraint]) -> frozenset[str]:
    """The channels a conjunction of constraints lets through (``and`` members count; a channel
    condition inside ``or``/``xone`` is no restriction one can rely on)."""
    allowed = ALL_CHANNELS
    for c in constraints:
        if isinstance(c, LogicalConstraint):
            members = c.constraints if c.operand == Logical.AND else ()
        else:
            members = (c,)
        for m in members:
            if m.left == "deliveryChannel":
                allowed &= _meets(m)
    return allowed


def permitted_channels(policy: Policy) -> frozenset[str]:
    """Every delivery channel some permission of ``policy`` could permit: the channels its own
    conditions let through, less those a prohibition bans outright — one that covers the
    permission's action, binds everyone, and whose only conditions are on the channel (a
    prohibition with other conditions might not apply, so it is not relied upon)."""
    bans: list[tuple[frozenset[str], frozenset[str]]] = []  # (actions covered, channels banned)
    for p in policy.prohibitions:
        if p.assignee is not None or p.target is not None or p.action.refinements:
            continue
        plain = [c for c in p.constraints if isinstance(c, Constraint)]
        if len(plain) != len(p.constraints) or any(c.left != "deliveryChannel" for c in plain):
            continue
        banned = ALL_CHANNELS
        for c in plain:
            banned &= _meets(c)
        bans.append((INCLUDES.get(p.action.name, frozenset({p.action.name})), banned))
    found: set[str] = set()
    for perm in policy.permissions:
        allowed = set(_allowed_by((*perm.constraints, *perm.action.refinements)))
        for actions, banned in bans:
            if perm.action.name in actions:
                allowed -= banned
        found |= allowed
    return frozenset(found)


@dataclass(frozen=True)
class AgreementTerms:
    """An agreement as a use under it is checked against."""

    id: str
    number: str
    state: str
    body_id: str
    operator_id: str
    term_start: date
    term_end: date
    asset_ids: frozenset[str]
    purposes: frozenset[str] | None
    regions: frozenset[str] | None
    channels: frozenset[str]


@dataclass(frozen=True)
class UseFacts:
    """Everything the rules need to decide a use: the agreement, what is asked (the delivery
    channels among them: None for the default), the day it is decided, and the fees and caps in
    record."""

    agreement: AgreementTerms
    asset_id: str
    asset_name: str
    use_class: str
    purpose: str
    term_start: date
    term_end: date
    today: date
    channels: frozenset[str] | None = None  # None: the fee unit's (paid) or the agreement's
    regions: frozenset[str] | None = None  # None: the agreement's regions
    unit: str | None = None
    quantity: object = 1
    stated_unit_fee: object = None  # fen per unit as the caller stated it (None: not stated)
    fees: Sequence[FeeVersion] = ()
    caps: Sequence[CapVersion] = ()


@dataclass(frozen=True)
class UsePrice:
    """A use the rules allow, priced: free, or paid at the published unit fee times the
    quantity, with the cap it was checked against; the delivery channels, regions and number of
    uses (``max_uses``, counted units only) its policy is written with (OPS-USE-POLICY); the
    rule ids applied."""

    use_class: str
    paid: bool
    unit: str | None
    quantity: int
    unit_fee_fen: int
    fee_fen: int
    cap_fen: int | None
    regions: frozenset[str] | None
    channels: frozenset[str] = field(default=frozenset())
    max_uses: int | None = None
    rules: tuple[str, ...] = field(default=())


MSG_UNKNOWN_CLASS: Final = N_(
    "{use_class} is not a use class. Class the use as one of: {known} (rule {rule})."
)
MSG_AGREEMENT_NOT_LIVE: Final = N_(
    "Agreement {number} is {state}: no use can be made under it. Uses need an active "
    "agreement (rule {rule})."
)
MSG_ASSET_OUTSIDE: Final = N_(
    "Data set {asset} is not covered by agreement {number}. Choose one of the agreement's data "
    "sets (rule {rule})."
)
MSG_TERM_OUTSIDE: Final = N_(
    "The use runs from {start} to {end}, outside agreement {number}'s term ({agreement_start} to "
    "{agreement_end}). Keep the use within the agreement's term (rule {rule})."
)
MSG_TERM_BACKWARDS: Final = N_(
    "The use must end on or after it starts ({start} to {end}) (rule {rule})."
)
MSG_PURPOSE_CLASS: Final = N_(
    "The purpose {purpose} does not fit the use class {use_class}, whose purposes are: {allowed}. "
    "Class the use by what the data is used for (rule {rule})."
)
MSG_PURPOSE_OUTSIDE: Final = N_(
    "The purpose {purpose} is outside agreement {number}, which allows: {allowed} (rule {rule})."
)
MSG_REGION_OUTSIDE: Final = N_(
    "The region {region} is outside agreement {number}, which allows: {allowed} (rule {rule})."
)
MSG_CHANNEL_ASKED: Final = N_(
    "The use asks for delivery by {channels}: raw public data never leaves the domain, so a "
    "public-data use is delivered only by API or in the sandbox. Choose api or sandbox "
    "(rule {rule})."
)
MSG_FEE_ON_FREE: Final = N_(
    "A {use_class} use is free: it may carry no fee ({fee} yuan given). Set the fee to 0, or "
    "class the use as industry or sector development if that is what it is (rule {rule})."
)
MSG_NO_UNIT: Final = N_(
    "A paid use names what it buys: a fee unit ({known}) and how many (rule {rule})."
)
MSG_BAD_QUANTITY: Final = N_("The quantity must be a whole number from 1 to {max} (rule {rule}).")
MSG_UNIT_CHANNEL: Final = N_(
    "A use priced {unit} is delivered by {allowed} only, not by {channels}. Price the use in the "
    "unit of the channel the user needs (rule {rule})."
)
MSG_UNIT_TERM: Final = N_(
    "A use priced {unit} runs at most the {quantity} years bought: from {start} to {latest} at "
    "the latest, not to {end}. Buy more years or end the use earlier (rule {rule})."
)
MSG_NO_PUBLISHED_FEE: Final = N_(
    "No fee {unit} is published for data set {asset} on {day}: a paid use is charged at the "
    "published fee. Publish the fee first (rule {rule})."
)
MSG_NOT_PUBLISHED_FEE: Final = N_(
    "The fee given, {fee} yuan {unit}, is not the published fee of {published} yuan for data set "
    "{asset}: paid uses are charged the published fee (rule {rule})."
)


def check_use(facts: UseFacts, rules: OperationRules) -> UsePrice:
    """Whether the use may be made under the agreement, and its price — or the first refusal:
    the class (OPS-USE-CLASS), the dates (OPS-DATES), the agreement's state
    (OPS-AGREEMENT-LIVE), data, term, purpose and regions (OPS-USE-SCOPE), the quantity, the
    delivery channels (OPS-IN-DOMAIN), a fee on a free use (OPS-FREE-USE), what the fee unit
    allows (OPS-FEE-UNIT), the published fee (OPS-PAID-USE) and the cap (OPS-FEE-CAP). The
    price says what the use's policy is written with (OPS-USE-POLICY)."""
    a = facts.agreement
    klass = rules.use_classes.get(facts.use_class)
    if klass is None:
        raise OperationInvalid(
            MSG_UNKNOWN_CLASS,
            rule=rules.rule_id("use_class"),
            field="use_class",
            use_class=facts.use_class,
            known=", ".join(rules.use_classes),
        )
    check_day(facts.term_start, rules, field="term_start")
    check_day(facts.term_end, rules, field="term_end")
    state = effective_state(a.state, a.term_end, facts.today)
    if state is not AgreementState.ACTIVE:
        raise agreement_not_live(a.number, state, rules)
    scope = rules.rule_id("use_scope")
    if facts.asset_id not in a.asset_ids:
        raise OperationInvalid(
            MSG_ASSET_OUTSIDE, rule=scope, field="asset_id", asset=facts.asset_name, number=a.number
        )
    if facts.term_end < facts.term_start:
        raise OperationInvalid(
            MSG_TERM_BACKWARDS,
            rule=scope,
            field="term_end",
            start=facts.term_start.isoformat(),
            end=facts.term_end.isoformat(),
        )
    if facts.term_start < a.term_start or facts.term_end > a.term_end:
        raise OperationInvalid(
            MSG_TERM_OUTSIDE,
            rule=scope,
            field="term_end" if facts.term_end > a.term_end else "term_start",
            start=facts.term_start.isoformat(),
            end=facts.term_end.isoformat(),
            number=a.number,
            agreement_start=a.term_start.isoformat(),
            agreement_end=a.term_end.isoformat(),
        )
    if facts.purpose not in klass.purposes:
        raise OperationInvalid(
            MSG_PURPOSE_CLASS,
            rule=rules.rule_id("use_class"),
            field="purpose",
            purpose=facts.purpose,
            use_class=rules.named("class", klass.code),
            allowed=", ".join(sorted(klass.purposes)),
        )
    if a.purposes is not None and facts.purpose not in a.purposes:
        raise OperationInvalid(
            MSG_PURPOSE_OUTSIDE,
            rule=scope,
            field="purpose",
            purpose=facts.purpose,
            number=a.number,
            allowed=", ".join(sorted(a.purposes)),
        )
    regions = facts.regions
    if regions is not None:
        regions = check_regions(regions, rules, "use_scope")
        for region in sorted(regions):
            if a.regions is not None and not regions_of(region) & a.regions:
                raise OperationInvalid(
                    MSG_REGION_OUTSIDE,
                    rule=scope,
                    field="regions",
                    region=region,
                    number=a.number,
                    allowed=", ".join(sorted(a.regions)),
                )
    else:
        regions = a.regions
    q = facts.quantity
    if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= rules.max_quantity:
        raise OperationInvalid(
            MSG_BAD_QUANTITY,
            rule=rules.rule_id("paid_use" if klass.paid else "free_use"),
            field="quantity",
            max=rules.max_quantity,
        )
    asked = facts.channels or None
    if asked is not None:
        beyond = sorted(asked - a.channels)
        if beyond:
            raise OperationInvalid(
                MSG_CHANNEL_ASKED,
                rule=rules.rule_id("channels"),
                field="channels",
                channels=", ".join(beyond),
            )
    applied = [
        rules.rule_id(k)
        for k in ("agreement_live", "use_scope", "use_class", "channels", "use_policy")
    ]
    if not klass.paid:
        stated = _stated_fee(facts, rules)
        if stated:
            raise OperationInvalid(
                MSG_FEE_ON_FREE,
                rule=rules.rule_id("free_use"),
                field="unit_fee_fen",
                use_class=rules.named("class", klass.code),
                fee=yuan_text(stated),
            )
        # A free use buys nothing: no unit, no quantity, no count — its term bounds it.
        return UsePrice(
            use_class=klass.code,
            paid=False,
            unit=None,
            quantity=1,
            unit_fee_fen=0,
            fee_fen=0,
            cap_fen=None,
            regions=regions,
            channels=asked or a.channels,
            max_uses=None,
            rules=(*applied, rules.rule_id("free_use")),
        )
    return _price_paid(facts, klass, q, asked, regions, applied, rules)


# A use denied by the grants core because the agreement is not active (English, Chinese).
USE_LAPSED: Final = (
    "public data operation agreement {number} is {state}: no use is allowed under it "
    "(OPS-AGREEMENT-LIVE)",
    "公共数据授权运营协议 {number} 当前状态为“{state_zh}”，不允许在其下使用数据",
)


def lapse_texts(number: str, state: AgreementState) -> tuple[str, str]:
    """``USE_LAPSED`` filled in: the denial of a use under a suspended or ended agreement."""
    named = _state_named(state)
    return (
        USE_LAPSED[0].format(number=number, state=named.names["en"]),
        USE_LAPSED[1].format(number=number, state_zh=named.names["zh"]),
    )


def agreement_not_live(number: str, state: AgreementState, rules: OperationRules) -> OperationError:
    """The refusal of anything made, approved or resumed under an agreement that is not active
    (OPS-AGREEMENT-LIVE)."""
    return OperationConflict(
        MSG_AGREEMENT_NOT_LIVE,
        rule=rules.rule_id("agreement_live"),
        field="agreement_id",
        number=number,
        state=_state_named(state),
    )


def _stated_fee(facts: UseFacts, rules: OperationRules) -> int | None:
    if facts.stated_unit_fee is None:
        return None
    return check_fen(facts.stated_unit_fee, "The fee", rules, field="unit_fee_fen")


def _check_unit_terms(
    facts: UseFacts, unit: str, q: int, asked: frozenset[str] | None, rules: OperationRules
) -> frozenset[str]:
    """What the fee unit allows (OPS-FEE-UNIT): its delivery channels (the use's, by default)
    and, for a unit that is not counted (a year of access), a term of at most the years
    bought. Returns the use's channels."""
    rule = rules.rule_id("fee_unit")
    allowed = rules.unit_channels[unit] & facts.agreement.channels
    if asked is not None and not asked <= allowed:
        raise OperationInvalid(
            MSG_UNIT_CHANNEL,
            rule=rule,
            field="channels",
            unit=rules.named("unit", unit),
            allowed=", ".join(sorted(allowed)),
            channels=", ".join(sorted(asked - allowed)),
        )
    # (A term within the calendar is never longer than years beyond it.)
    if unit not in rules.counted_units and q <= rules.last_year - facts.term_start.year:
        latest = add_years(facts.term_start, q) - timedelta(days=1)
        if facts.term_end > latest:
            raise OperationInvalid(
                MSG_UNIT_TERM,
                rule=rule,
                field="term_end",
                unit=rules.named("unit", unit),
                quantity=q,
                start=facts.term_start.isoformat(),
                latest=latest.isoformat(),
                end=facts.term_end.isoformat(),
            )
    return asked or allowed


def _price_paid(
    facts: UseFacts,
    klass: UseClassRule,
    q: int,
    asked: frozenset[str] | None,
    regions: frozenset[str] | None,
    applied: list[str],
    rules: OperationRules,
) -> UsePrice:
    paid_rule = rules.rule_id("paid_use")
    if facts.unit is None:
        raise OperationInvalid(
            MSG_NO_UNIT, rule=paid_rule, field="unit", known=", ".join(rules.fee_units)
        )
    unit = check_unit(facts.unit, rules, "paid_use")
    channels = _check_unit_terms(facts, unit, q, asked, rules)
    day = facts.today
    named_unit = rules.named("unit", unit)
    cap = in_force([c for c in facts.caps if c.unit == unit], day)
    if cap is None:
        raise OperationConflict(
            MSG_NO_CAP,
            rule=rules.rule_id("fee_cap"),
            field="unit",
            unit=named_unit,
            day=day.isoformat(),
        )
    stated = _stated_fee(facts, rules)
    if stated is not None and stated > cap.amount_fen:
        raise OperationInvalid(
            MSG_FEE_ABOVE_CAP,
            rule=rules.rule_id("fee_cap"),
            field="unit_fee_fen",
            fee=yuan_text(stated),
            unit=named_unit,
            cap=yuan_text(cap.amount_fen),
            day=day.isoformat(),
        )
    fee = in_force([f for f in facts.fees if f.asset_id == facts.asset_id and f.unit == unit], day)
    if fee is None:
        raise OperationConflict(
            MSG_NO_PUBLISHED_FEE,
            rule=paid_rule,
            field="unit",
            unit=named_unit,
            asset=facts.asset_name,
            day=day.isoformat(),
        )
    if fee.amount_fen > cap.amount_fen:
        # The cap was lowered after the fee was published: the fee may not be charged.
        raise OperationConflict(
            MSG_FEE_ABOVE_CAP,
            rule=rules.rule_id("fee_cap"),
            field="unit",
            fee=yuan_text(fee.amount_fen),
            unit=named_unit,
            cap=yuan_text(cap.amount_fen),
            day=day.isoformat(),
        )
    if stated is not None and stated != fee.amount_fen:
        raise OperationInvalid(
            MSG_NOT_PUBLISHED_FEE,
            rule=paid_rule,
            field="unit_fee_fen",
            fee=yuan_text(stated),
            unit=named_unit,
            published=yuan_text(fee.amount_fen),
            asset=facts.asset_name,
        )
    total = check_fen(fee.amount_fen * q, "The use's fee", rules, field="quantity")
    return UsePrice(
        use_class=klass.code,
        paid=True,
        unit=unit,
        quantity=q,
        unit_fee_fen=fee.amount_fen,
        fee_fen=total,
        cap_fen=cap.amount_fen,
        regions=regions,
        channels=channels,
        max_uses=q if unit in rules.counted_units else None,
        rules=(*applied, rules.rule_id("fee_unit"), paid_rule, rules.rule_id("fee_cap")),
    )


# --------------------------------------------------------------------------------- revenue


MSG_BAD_YEAR: Final = N_("The year must be a year from {first} to {last}.")
MSG_UNKNOWN_CATEGORY: Final = N_(
    "{category} is not a cost category. Choose one of: {known} (rule {rule})."
)


def check_year(year: object, *, field: str = "year", rules: OperationRules | None = None) -> int:
    """``year`` if it is a whole year of the rules file's calendar (OPS-DATES)."""
    rules = rules or load_operation_rules()
    if (
        isinstance(year, bool)
        or not isinstance(year, int)
        or not rules.first_year <= year <= rules.last_year
    ):
        raise InvalidInput(
            MSG_BAD_YEAR,
            field=field,
            first=rules.first_year,
            last=rules.last_year,
            rule=rules.rule_id("dates"),
        )
    return year


def check_cost(
    year: object, category: str, amount_fen: object, rules: OperationRules
) -> tuple[int, int]:
    """A cost entry: a year, a known category, whole non-negative fen."""
    checked_year = check_year(year, rules=rules)
    if category not in rules.cost_categories:
        raise OperationInvalid(
            MSG_UNKNOWN_CATEGORY,
            rule=rules.rule_id("allowed_revenue"),
            field="category",
            category=category,
            known=", ".join(rules.cost_categories),
        )
    return checked_year, check_fen(amount_fen, "The cost", rules, field="amount_fen")


def profit_fen(cost_fen: int, rate_bp: int) -> int:
    """The reasonable profit on ``cost_fen`` at ``rate_bp``: rounded down to the fen, so the
    allowed revenue is never rounded up in the operator's favour."""
    return cost_fen * rate_bp // BP


@dataclass(frozen=True)
class PeriodInput:
    """One period's records: costs, the profit rate in force at its end, paid-use income."""

    year: int
    cost_fen: int
    rate_bp: int
    income_fen: int


@dataclass(frozen=True)
class PeriodRevenue:
    """One period's allowed revenue and excess (all whole fen).

    ``allowed_fen`` = cost + profit; ``deduction_fen`` is the excess carried in from the period
    before; ``net_allowed_fen`` = allowed − deduction (negative when the deduction is larger:
    the rest carries on); ``excess_fen`` = max(0, income − net allowed) is carried into the next
    period's deduction."""

    year: int
    cost_fen: int
    rate_bp: int
    profit_fen: int
    allowed_fen: int
    deduction_fen: int
    net_allowed_fen: int
    income_fen: int
    excess_fen: int

    def as_dict(self) -> dict[str, int]:
        return {
            "year": self.year,
            "cost_fen": self.cost_fen,
            "rate_bp": self.rate_bp,
            "profit_fen": self.profit_fen,
            "allowed_fen": self.allowed_fen,
            "deduction_fen": self.deduction_fen,
            "net_allowed_fen": self.net_allowed_fen,
            "income_fen": self.income_fen,
            "excess_fen": self.excess_fen,
        }


def period(figures: PeriodInput, deduction_fen: int) -> PeriodRevenue:
    """One period, given the excess carried in."""
    profit = profit_fen(figures.cost_fen, figures.rate_bp)
    allowed = figures.cost_fen + profit
    net = allowed - deduction_fen
    return PeriodRevenue(
        year=figures.year,
        cost_fen=figures.cost_fen,
        rate_bp=figures.rate_bp,
        profit_fen=profit,
        allowed_fen=allowed,
        deduction_fen=deduction_fen,
        net_allowed_fen=net,
        income_fen=figures.income_fen,
        excess_fen=max(0, figures.income_fen - net),
    )


def revenue_chain(
    inputs: Iterable[PeriodInput], *, carry_in: int = 0, start: int | None = None
) -> tuple[PeriodRevenue, ...]:
    """Every period from the first with a record (or ``start``) to the last, in order, each
    deducting the excess of the one before (a year without records has no cost and no income,
    and passes the excess on unchanged). The first period deducts ``carry_in``: nothing for an
    operator's first year, the frozen excess of the last filed year otherwise."""
    by_year = {p.year: p for p in inputs}
    if not by_year:
        return ()
    out: list[PeriodRevenue] = []
    carry = carry_in
    rate = 0
    first = min(by_year) if start is None else min(start, min(by_year))
    for year in range(first, max(by_year) + 1):
        figures = by_year.get(year) or PeriodInput(year, 0, rate, 0)
        rate = figures.rate_bp
        done = period(figures, carry)
        out.append(done)
        carry = done.excess_fen
    return tuple(out)
