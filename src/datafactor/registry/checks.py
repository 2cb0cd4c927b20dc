"""The formal review's automatic checks: ``formal_checks(facts) -> Decision``, with reasons.

The services gather what they know about an application into ``ApplicationFacts`` — the asset's
metadata present, its source statement, the discovery grade and fingerprint of the version
registered, open title disputes, the right acted on and the rights around it — and this module
decides. Each check that does not pass adds a ``CheckReason``: the rule id, its bilingual title,
source and article, an effect (refuse, return for correction, wait, or a note), and an English
message template (gettext msgid) with parameters that renders in Chinese or English.

Refusal rules (the application is refused; the applicant is told the rule and what to do): core
data (GB/T 43697), no statement of data source (Data Security Law art. 33), an open title
dispute, raw single records, a fingerprint that does not match the stored version, and an
applicant who does not hold the right or data registered. Rights rules are checked by running
the rights operation the registration will perform at certification against the rights book
(a dry run): an expired or suspended parent right, a pledged right, a scope beyond the parent's,
a product whose lineage reaches data its applicant holds no right on — each refusal is the same
error, rule and message the operation itself would raise, so the review and the certification
can never disagree. Input the applicant can fix (missing metadata, a scope or term too wide, an
unknown right number) returns the application for correction instead of refusing it.

The decision's ``track`` is fast when the type allows it, every check passed with no note, and
the data is public or the applicant signed the self-commitment (承诺制); otherwise standard.
Pure Python: no database, no web (rendering a message reads the translation catalogues lazily).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from string import Formatter
from types import MappingProxyType
from typing import Any, Final

from datafactor.errors import N_
from datafactor.registry.errors import (
    BrokenChainOfTitle,
    DuplicateRight,
    LicenceNotAllowed,
    LineageNotCovered,
    NotPledged,
    NotRightHolder,
    ObjectionNotAdmissible,
    RegistryError,
    RightNotInForce,
    RightPledged,
)
from datafactor.registry.rights import (
    MSG_UNKNOWN_RIGHT,
    RightsBook,
    RightsChange,
    Scope,
    Term,
    amend,
    cancel,
    derive_product_operation,
    grant_holding,
    license,
    pledge,
    release_pledge,
    require_holding,
    revoke,
    transfer,
)
from datafactor.registry.rulebook import ApplicantRule, RegistryRules, RuleRef, load_registry_rules
from datafactor.registry.vocabulary import (
    ENDED_STATUSES,
    TRADABLE_KINDS,
    AssetKind,
    DataClass,
    RegistrationType,
    Track,
    label_text,
    translate,
)

# --- messages ----------------------------------------------------------------------------------------

MSG_ALL_PASSED: Final = N_("Every automatic check passed.")
MSG_CORE_DATA: Final = N_(
    "The data is graded core data (GB/T 43697), which is not registered for circulation. If "
    "you believe the grade is wrong, ask for the scan to be reviewed; otherwise the data "
    "cannot be registered."
)
MSG_NO_SOURCE_STATEMENT: Final = N_(
    "The application has no statement of data source. The Data Security Law (art. 33) "
    "requires one: state where the data came from and on what basis you hold it, then apply "
    "again."
)
MSG_OPEN_DISPUTE: Final = N_(
    "Title to this data is under dispute ({disputes}). It cannot be registered while the "
    "dispute is open: apply again once it is resolved."
)
MSG_RAW_RECORDS: Final = N_(
    "The object consists of raw single records, which are not registered. Register the data "
    "set as a whole, or a processed product, instead."
)
MSG_FINGERPRINT: Final = N_(
    "The fingerprint in the application ({declared}) does not match the stored version "
    "({stored}). Register the version you uploaded, or upload the data you mean to register, "
    "and apply again."
)
MSG_NO_FINGERPRINT: Final = N_(
    "The application does not say which stored version it registers (no fingerprint), or that "
    "version has none. Upload the data and register that version."
)
MSG_NOT_ASSET_HOLDER: Final = N_(
    "Asset {asset} is held by party {holder}, not by the applicant {applicant}: only the party "
    "that holds data can register it. If you hold a licence, register a product built from it "
    "instead."
)
MSG_INCOMPLETE: Final = N_(
    "The application is incomplete: {fields} missing. Add them and submit again."
)
MSG_SCAN_PENDING: Final = N_(
    "The discovery scan of the version registered has not finished; the formal review "
    "continues once its grade is known."
)
MSG_IMPORTANT_DATA: Final = N_(
    "The data is graded important data: a registrar reviews it on the standard track, and it "
    "cannot take the fast track."
)
MSG_NO_RIGHT: Final = N_(
    "This registration acts on a registered right: give that right's number in the application."
)
MSG_OTHER_ASSET: Final = N_(
    "Right {right} is on asset {right_asset}, but the application is for asset {asset}: give "
    "the right on the asset you are registering."
)
MSG_NO_COUNTERPARTY: Final = N_(
    "Name the party the right goes to (the licensee, transferee or pledgee)."
)
MSG_NO_REQUESTED: Final = N_("Give the scope and term of the right to be registered.")
MSG_NOT_AUTHORITY: Final = N_(
    "A revocation is applied for by a registrar or regulator, or on a court or authority "
    "order: give the order's document number and attach it. Anyone else may file an "
    "objection registration instead."
)
MSG_AWAITING_CONSENT: Final = N_(
    "Right {right} is pledged to {pledgee}: the holder's application to release the pledge "
    "waits for the pledgee's consent. Ask the pledgee to consent to application {application} "
    "(or to apply for the release itself)."
)
MSG_NOTHING_TO_OBJECT: Final = N_(
    "Right {right} has ended (status: {status}): there is nothing left to object to."
)
MSG_OBJECTOR_IS_HOLDER: Final = N_("The holder of a right cannot register an objection against it.")
MSG_NOT_PLEDGEE_OR_HOLDER: Final = N_(
    "Only the holder of right {right} or its pledgee can apply to release the pledge."
)
MSG_FAST_PUBLIC: Final = N_(
    "Public data whose automatic checks all passed: the fast track applies."
)
MSG_FAST_COMMITMENT: Final = N_(
    "The applicant signed the self-commitment (承诺制) and every automatic check passed: the "
    "fast track applies."
)
MSG_NO_GROUNDS: Final = N_(
    "An objection must give its grounds: choose at least one of {known} (rule {rule})."
)
MSG_UNKNOWN_GROUNDS: Final = N_("Unknown grounds: {grounds}. Choose from {known} (rule {rule}).")
MSG_SHORT_STATEMENT: Final = N_(
    "Say why you object, in at least {min} characters: what is wrong with the registration "
    "and how you know (rule {rule})."
)
MSG_NO_EVIDENCE: Final = N_(
    "Attach evidence for the objection (a contract, a licence, a prior registration, a court "
    "document ...) (rule {rule})."
)

# Errors of the dry run that refuse; any other registry error returns for correction.
_REFUSING: Final = (
    NotRightHolder,
    RightPledged,
    RightNotInForce,
    LineageNotCovered,
    DuplicateRight,
    BrokenChainOfTitle,
    LicenceNotAllowed,
    NotPledged,
)
# Registration types that certify the data itself (its content, grade and version).
CONTENT_TYPES: Final = frozenset(
    {
        RegistrationType.INITIAL,
        RegistrationType.LICENCE,
        RegistrationType.TRANSFER,
        RegistrationType.CHANGE,
        RegistrationType.CORRECTION,
        RegistrationType.RENEWAL,
    }
)
# Types that register a (new) version of the data: the fingerprint must match.
VERSION_TYPES: Final = frozenset(
    {RegistrationType.INITIAL, RegistrationType.CHANGE, RegistrationType.CORRECTION}
)
# Types an open title dispute does not block (they reduce or contest a registration).
DISPUTE_EXEMPT: Final = frozenset(
    {RegistrationType.PLEDGE_RELEASE, RegistrationType.REVOCATION, RegistrationType.OBJECTION}
)
DRY_RUN_ID: Final = "(new)"
# The grades of GB/T 43697 as the discovery scan reports them (``discovery.Grade`` values).
GRADES: Final = ("general", "important", "core")


def _safe_format(template: str, params: Mapping[str, Any]) -> str:
    """``str.format`` that leaves unknown placeholders alone (as the web layer's does)."""

    class Lenient(dict[str, Any]):
        def __missing__(self, key: str) -> str:
            return "{" + key + "}"

    return Formatter().vformat(template, (), Lenient(params))


def render_message(message: str, params: Mapping[str, Any], locale: str = "en") -> str:
    """A message template in ``locale`` (``zh_CN`` or ``en``), its parameters filled in."""
    template = translate(message, locale)
    # Coded parameters (a registration type, a state ...) are shown through their labels.
    return _safe_format(template, {k: label_text(k, v, locale) for k, v in params.items()})


# --- values ------------------------------------------------------------------------------------------


class Effect(StrEnum):
    """What a reason does to the application, strongest first."""

    REFUSE = "refuse"  # 不予登记
    RETURN = "return"  # 退回补正
    PENDING = "pending"  # 待定 (a check cannot run yet)
    NOTE = "note"  # 提示 (does not stop it; may rule out the fast track)


class Outcome(StrEnum):
    PASS = "pass"
    PENDING = "pending"
    RETURN = "return"
    REFUSE = "refuse"


_OUTCOME_OF: Final = {
    Effect.REFUSE: Outcome.REFUSE,
    Effect.RETURN: Outcome.RETURN,
    Effect.PENDING: Outcome.PENDING,
}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class CheckReason:
    """One reason of a decision: the rule and its source, the effect, and the message."""

    rule: str
    effect: Effect
    message: str
    params: Mapping[str, Any]
    title: Mapping[str, str]
    source: str
    article: str
    verified: bool
    version: str

    @classmethod
    def of(cls, ref: RuleRef, effect: Effect, message: str, /, **params: Any) -> CheckReason:
        return cls(
            ref.id,
            effect,
            message,
            MappingProxyType(params),
            ref.title,
            ref.source,
            ref.section,  # the article of the source (registry.yaml's ``article``)
            ref.verified,
            ref.version,
        )

    def text(self, locale: str = "en") -> str:
        return render_message(self.message, self.params, locale)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the rule and source, the effect, template and parameters, both texts."""
        return {
            "rule": self.rule,
            "effect": self.effect.value,
            "title": dict(self.title),
            "zh": self.text("zh_CN"),
            "en": self.text("en"),
            "message": self.message,
            "params": _plain(self.params),
            "source": self.source,
            "article": self.article,
            "verified": self.verified,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckReason:
        title = data.get("title") or {}
        return cls(
            rule=str(data["rule"]),
            effect=Effect(data["effect"]),
            message=str(data["message"]),
            params=MappingProxyType(dict(data.get("params") or {})),
            title=MappingProxyType(
                {"zh": str(title.get("zh", "")), "en": str(title.get("en", ""))}
            ),
            source=str(data.get("source", "")),
            article=str(data.get("article", "")),
            verified=bool(data.get("verified", False)),
            version=str(data.get("version", "")),
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The formal review's decision: outcome, track, reasons (strongest first), rules applied."""

    outcome: Outcome
    track: Track
    reasons: tuple[CheckReason, ...]
    rules: tuple[str, ...]

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.PASS

    @property
    def refusing_rules(self) -> tuple[str, ...]:
        return tuple(r.rule for r in self.reasons if r.effect is Effect.REFUSE)

    def texts(self, locale: str = "en") -> list[str]:
        return [r.text(locale) for r in self.reasons]

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "track": self.track.value,
            "reasons": [r.as_dict() for r in self.reasons],
            "rules": list(self.rules),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        return cls(
            outcome=Outcome(data["outcome"]),
            track=Track(data["track"]),
            reasons=tuple(CheckReason.from_dict(r) for r in data.get("reasons") or ()),
            rules=tuple(data.get("rules") or ()),
        )


@dataclass(frozen=True, slots=True)
class Grounds:
    """An objection's grounds: codes from the rules, the objector's statement, evidence ids."""

    codes: frozenset[str]
    statement: str
    evidence: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "codes": sorted(self.codes),
            "statement": self.statement,
            "evidence": list(self.evidence),
        }


def check_grounds(grounds: Grounds, rules: RegistryRules | None = None) -> Grounds:
    """Refuse an objection with no grounds, unknown grounds, no statement or no evidence;
    return the grounds normalised (statement whitespace folded, evidence de-duplicated)."""
    rules = rules or load_registry_rules()
    rule = rules.rule_id("objection_grounds")
    known = ", ".join(sorted(rules.objection_grounds))
    codes = frozenset(c.strip() for c in grounds.codes if c and c.strip())
    if not codes:
        raise ObjectionNotAdmissible(MSG_NO_GROUNDS, rule=rule, field="grounds", known=known)
    unknown = sorted(codes - set(rules.objection_grounds))
    if unknown:
        raise ObjectionNotAdmissible(
            MSG_UNKNOWN_GROUNDS, rule=rule, field="grounds", grounds=", ".join(unknown), known=known
        )
    statement = " ".join(grounds.statement.split())
    if len(statement) < rules.objection_min_statement:
        raise ObjectionNotAdmissible(
            MSG_SHORT_STATEMENT, rule=rule, field="statement", min=rules.objection_min_statement
        )
    evidence = tuple(dict.fromkeys(e.strip() for e in grounds.evidence if e and e.strip()))
    if rules.objection_requires_evidence and not evidence:
        raise ObjectionNotAdmissible(MSG_NO_EVIDENCE, rule=rule, field="evidence")
    return Grounds(codes, statement, evidence)


@dataclass(frozen=True)
class ApplicationFacts:
    """What the services know about an application when the formal review runs.

    ``grade`` is the discovery grade of the version registered (``general``, ``important``,
    ``core``; None while the scan runs). ``declared_fingerprint`` is the version the applicant
    registers, ``stored_fingerprint`` the data plane's fingerprint of it. ``right_id`` is the
    right acted on (for a licence: the parent). ``counterparty_id`` is the licensee, transferee
    or pledgee. ``requested_scope`` / ``requested_term`` describe the right to be created or the
    new scope / term of a change, correction or renewal. ``lineage`` maps products to their
    source assets (a product's initial registration). ``authority`` says the applicant is a
    registrar or regulator; ``order_reference`` the court or authority order a revocation is
    made on. ``grounds`` are an objection registration's. ``pledgee_consent`` is the party that
    consented to a holder's pledge release (it must be the pledgee).
    """

    registration_type: RegistrationType
    applicant_id: str
    asset_id: str
    asset_kind: AssetKind
    data_class: DataClass
    asset_holder_id: str | None = None
    metadata_present: frozenset[str] = frozenset()
    source_statement: str | None = None
    grade: str | None = None
    declared_fingerprint: str | None = None
    stored_fingerprint: str | None = None
    open_disputes: tuple[str, ...] = ()
    raw_single_records: bool = False
    self_commitment: bool = False
    right_id: str | None = None
    counterparty_id: str | None = None
    requested_scope: Scope | None = None
    requested_term: Term | None = None
    lineage: Mapping[str, Iterable[str]] = field(default_factory=dict)
    authority: bool = False
    grounds: Grounds | None = None
    order_reference: str | None = None
    pledgee_consent: str | None = None
    application_id: str | None = None


def _fingerprint(value: str | None) -> str:
    value = (value or "").strip().lower()
    return value.removeprefix("sha256:")


# --- the checks --------------------------------------------------------------------------------------


def formal_checks(
    facts: ApplicationFacts,
    *,
    book: RightsBook | None = None,
    on: date,
    rules: RegistryRules | None = None,
) -> Decision:
    """Run the formal review's automatic checks on ``facts`` (see the module docstring).

    ``book`` holds the rights concerned (the right acted on with its ancestors and dependants,
    the applicant's rights on a product's sources); ``on`` is the review date.
    """
    rules = rules or load_registry_rules()
    book = book if book is not None else RightsBook()
    type_rules = rules.type_rules(facts.registration_type)
    reasons: list[CheckReason] = []
    applied: list[str] = []

    def add(key: str, effect: Effect, message: str, **params: Any) -> None:
        reasons.append(CheckReason.of(rules.ref(key), effect, message, **params))

    def ran(*keys: str) -> None:
        applied.extend(rules.rule_id(k) for k in keys)

    content = facts.registration_type in CONTENT_TYPES
    if facts.registration_type is RegistrationType.INITIAL:
        ran("completeness")
        required = rules.required_metadata[facts.asset_kind]
        missing = sorted(required - facts.metadata_present)
        if missing:
            add("completeness", Effect.RETURN, MSG_INCOMPLETE, fields=", ".join(missing))
    if content:
        ran("source_statement", "scan", "core_data", "raw_single_records")
        if not (facts.source_statement or "").strip():
            add("source_statement", Effect.REFUSE, MSG_NO_SOURCE_STATEMENT)
        if facts.grade is not None and facts.grade not in GRADES:
            # A grade the rules do not know must never pass as "not core": fail loudly.
            raise ValueError(f"unknown discovery grade {facts.grade!r}; expected one of {GRADES}")
        if facts.grade is None:
            add("scan", Effect.PENDING, MSG_SCAN_PENDING)
        elif facts.grade == "core":
            add("core_data", Effect.REFUSE, MSG_CORE_DATA)
        elif facts.grade == "important":
            ran("important_data")
            add("important_data", Effect.NOTE, MSG_IMPORTANT_DATA)
        if facts.raw_single_records:
            add("raw_single_records", Effect.REFUSE, MSG_RAW_RECORDS)
    if facts.registration_type in VERSION_TYPES or facts.declared_fingerprint is not None:
        ran("fingerprint")
        declared, stored = (
            _fingerprint(facts.declared_fingerprint),
            _fingerprint(facts.stored_fingerprint),
        )
        if not declared or not stored:
            add("fingerprint", Effect.RETURN, MSG_NO_FINGERPRINT)
        elif declared != stored:
            add("fingerprint", Effect.REFUSE, MSG_FINGERPRINT, declared=declared, stored=stored)
    if facts.registration_type not in DISPUTE_EXEMPT:
        ran("open_dispute")
        if facts.open_disputes:
            add(
                "open_dispute",
                Effect.REFUSE,
                MSG_OPEN_DISPUTE,
                disputes=", ".join(sorted(facts.open_disputes)),
            )
    ran("holder")
    _check_title(facts, type_rules.applicant, book, on, rules, add, ran)

    order = list(Effect)
    reasons.sort(key=lambda r: order.index(r.effect))
    effects = {r.effect for r in reasons}
    outcome = next((_OUTCOME_OF[e] for e in order if e in effects and e in _OUTCOME_OF), None)
    track = Track.STANDARD
    if outcome is None:
        outcome = Outcome.PASS
        fast = type_rules.fast_track and Effect.NOTE not in effects
        if fast and facts.data_class is DataClass.PUBLIC:
            track = Track.FAST
            add("workflow", Effect.NOTE, MSG_FAST_PUBLIC)
        elif fast and facts.self_commitment:
            track = Track.FAST
            add("workflow", Effect.NOTE, MSG_FAST_COMMITMENT)
        if not reasons:
            add("workflow", Effect.NOTE, MSG_ALL_PASSED)
    return Decision(
        outcome=outcome,
        track=track,
        reasons=tuple(reasons),
        rules=tuple(dict.fromkeys((*applied, *(r.rule for r in reasons)))),
    )


def _check_title(
    facts: ApplicationFacts,
    applicant: ApplicantRule,
    book: RightsBook,
    on: date,
    rules: RegistryRules,
    add: Callable[..., None],
    ran: Callable[..., None],
) -> None:
    """Who may apply, and a dry run of the rights operation the registration will perform."""
    if applicant is ApplicantRule.AUTHORITY and not (
        facts.authority or (facts.order_reference or "").strip()
    ):
        add("holder", Effect.REFUSE, MSG_NOT_AUTHORITY)
        return
    if applicant is ApplicantRule.ASSET_HOLDER:
        # A product too: holding licences on its sources does not make someone else's product
        # yours to register.
        if facts.asset_holder_id != facts.applicant_id:
            add(
                "holder",
                Effect.REFUSE,
                MSG_NOT_ASSET_HOLDER,
                asset=facts.asset_id,
                holder=facts.asset_holder_id or "?",
                applicant=facts.applicant_id,
            )
            return
    elif facts.right_id is None:
        add("holder", Effect.RETURN, MSG_NO_RIGHT)
        return
    acted = book.get(facts.right_id) if facts.right_id is not None else None
    if acted is not None and acted.asset_id != facts.asset_id:
        add(
            "holder",
            Effect.RETURN,
            MSG_OTHER_ASSET,
            right=acted.id,
            right_asset=acted.asset_id,
            asset=facts.asset_id,
        )
        return
    if applicant is ApplicantRule.OBJECTOR:
        ran("objection_grounds", "objection_registration")
        right = book.get(facts.right_id or "")
        if right is None:
            add(
                "holder",
                Effect.RETURN,
                MSG_UNKNOWN_RIGHT,
                right=facts.right_id,
                rule=rules.rule_id("holder"),
            )
            return
        if right.holder_id == facts.applicant_id:
            add("holder", Effect.REFUSE, MSG_OBJECTOR_IS_HOLDER)
        if right.status in ENDED_STATUSES:
            add(
                "objection_registration",
                Effect.REFUSE,
                MSG_NOTHING_TO_OBJECT,
                right=right.id,
                status=right.status.value,
            )
        try:
            check_grounds(facts.grounds or Grounds(frozenset(), ""), rules)
        except RegistryError as exc:
            add("objection_grounds", Effect.REFUSE, exc.message, **exc.params)
        return
    if facts.registration_type is RegistrationType.PLEDGE_RELEASE and acted is not None:
        pledgee = acted.pledge.pledgee_id if acted.pledge is not None else None
        if (
            pledgee is not None
            and facts.applicant_id == acted.holder_id
            and facts.pledgee_consent != pledgee
        ):
            # The holder applies jointly with the pledgee: wait for its consent.
            add(
                "pledge_lock",
                Effect.PENDING,
                MSG_AWAITING_CONSENT,
                right=acted.id,
                pledgee=pledgee,
                application=facts.application_id or "?",
            )
            return
    try:
        rights_operation(facts, book, on, rules)
    except _Missing as missing:
        add("holder", Effect.RETURN, missing.message)
    except RegistryError as exc:
        # The operation's own refusal becomes the reason: same rule, same message.
        effect = Effect.REFUSE if isinstance(exc, _REFUSING) else Effect.RETURN
        key = _key_of(exc.rule, rules)
        ran(key)
        add(key, effect, exc.message, **exc.params)


class _Missing(Exception):
    """Something the dry run needs is not in the application: returned for correction."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _key_of(rule_id: str, rules: RegistryRules) -> str:
    """The registry.yaml key of ``rule_id`` (every error the rights raise names a rule there)."""
    return next(key for key, ref in rules.refs.items() if ref.id == rule_id)


def rights_operation(
    facts: ApplicationFacts,
    book: RightsBook,
    on: date,
    rules: RegistryRules,
    *,
    new_right_id: str = DRY_RUN_ID,
    registration_id: str | None = None,
) -> RightsChange:
    """The rights operation the registration performs at certification, on ``book``.

    The formal review dry-runs it (with ``DRY_RUN_ID`` for a new right) and certification runs
    it for real, so the two cannot disagree. ``new_right_id`` names the right it creates.
    """
    new = new_right_id
    t = facts.registration_type
    scope, term = facts.requested_scope, facts.requested_term
    if t is RegistrationType.INITIAL:
        if scope is None or term is None:
            raise _Missing(MSG_NO_REQUESTED)
        if facts.asset_kind in TRADABLE_KINDS:
            return derive_product_operation(
                book,
                right_id=new,
                holder_id=facts.applicant_id,
                product_id=facts.asset_id,
                lineage=facts.lineage,
                scope=scope,
                term=term,
                on=on,
                rules=rules,
            )
        return grant_holding(
            book,
            right_id=new,
            holder_id=facts.applicant_id,
            asset_id=facts.asset_id,
            scope=scope,
            term=term,
            on=on,
            rules=rules,
        )
    assert facts.right_id is not None
    right_id = facts.right_id
    if t is RegistrationType.LICENCE:
        if facts.counterparty_id is None:
            raise _Missing(MSG_NO_COUNTERPARTY)
        if scope is None or term is None:
            raise _Missing(MSG_NO_REQUESTED)
        return license(
            book,
            right_id,
            right_id=new,
            licensor_id=facts.applicant_id,
            licensee_id=facts.counterparty_id,
            scope=scope,
            term=term,
            on=on,
            rules=rules,
        )
    if t is RegistrationType.TRANSFER:
        if facts.counterparty_id is None:
            raise _Missing(MSG_NO_COUNTERPARTY)
        return transfer(
            book,
            right_id,
            new_right_id=new,
            from_party=facts.applicant_id,
            to_party=facts.counterparty_id,
            on=on,
            rules=rules,
        )
    if t in (RegistrationType.CHANGE, RegistrationType.CORRECTION, RegistrationType.RENEWAL):
        if scope is None and term is None:
            # A change of metadata only (names, description): the right is untouched, but the
            # applicant must hold it and it must be in force.
            return require_holding(book, right_id, party_id=facts.applicant_id, on=on, rules=rules)
        return amend(
            book, right_id, by=facts.applicant_id, on=on, scope=scope, term=term, rules=rules
        )
    if t is RegistrationType.PLEDGE:
        if facts.counterparty_id is None:
            raise _Missing(MSG_NO_COUNTERPARTY)
        return pledge(
            book,
            right_id,
            holder_id=facts.applicant_id,
            pledgee_id=facts.counterparty_id,
            on=on,
            registration_id=registration_id,
            rules=rules,
        )
    if t is RegistrationType.PLEDGE_RELEASE:
        right = book.right(right_id)
        pledgee = right.pledge.pledgee_id if right.pledge is not None else None
        if facts.applicant_id not in (right.holder_id, pledgee):
            raise NotRightHolder(
                MSG_NOT_PLEDGEE_OR_HOLDER,
                rule=rules.rule_id("holder"),
                field="right",
                right=right.id,
            )
        # The pledgee's act, or the holder's jointly with the pledgee (its recorded consent).
        return release_pledge(
            book,
            right_id,
            by=facts.applicant_id,
            consented_by=facts.pledgee_consent,
            rules=rules,
        )
    if t is RegistrationType.CANCELLATION:
        return cancel(book, right_id, by=facts.applicant_id, rules=rules)
    if t is RegistrationType.REVOCATION:
        return revoke(book, right_id, rules=rules)
    raise AssertionError(f"no dry run for {t}")  # pragma: no cover - every type is handled
