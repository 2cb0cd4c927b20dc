"""The rules of authorisations (授权), in plain Python: states, who may act, and the checks.

A grant licenses a grantee to use a registered asset under an ODRL policy for a term. This
module owns what decides a grant without touching a database: the state machine (``transition``),
the mandate and draft shapes other domains pass in (``Mandate``, ``GrantDraft``), the upper bound
of what a policy could ever allow in the registry's terms (``policy_scope``: the scope of the
licence registered for the grant), how many uses and until when a policy permits
(``policy_max_uses``, ``policy_ends``), and the checks that refuse a grant beyond the grantor's
own scope or term, public data leaving the domain, or a policy naming another asset or party.
Rules and parameters come from ``rules/grants.yaml``.

It reads the registry's pure core (``datafactor.registry.domain``: ``Scope``, ``Term``, the
registry's purpose vocabulary) and the policy language, never the registry's package surface,
which pulls in SQLAlchemy (as the registry's domain reads the ledger's pure core).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Final

from datafactor.errors import N_
from datafactor.policy.grants.errors import (
    GrantInvalid,
    GrantStateConflict,
    NotGrantor,
    PublicDataDownload,
    ScopeExceedsGrantor,
    TermExceedsGrantor,
)
from datafactor.policy.odrl import (
    CST,
    Constraint,
    LogicalConstraint,
    Permission,
    Policy,
    Prohibition,
    parse_policy,
)
from datafactor.policy.rulebook import RuleSet, load_policy_rules, load_rule_set
from datafactor.policy.vocabulary import (
    GBT2260_PROVINCES,
    INCLUDES,
    REGION_GROUPS,
    Channel,
    Logical,
    Operator,
)
from datafactor.registry.domain import DIMENSIONS, Scope, load_registry_rules, region_covers

RULE_KEYS: Final = (
    "grantor_right",
    "mandate",
    "scope_within",
    "term_within",
    "term",
    "no_backdate",
    "public_no_download",
    "policy_valid",
    "policy_parties",
    "grantee",
    "agent_self",
    "asset_held",
    "use_class",
    "fee",
    "actor",
    "transition",
    "licence",
    "certificate",
    "use",
    "monitor",
)
LEDGER_KIND: Final = "policy.grant.decision"
RECORD_FORMAT: Final = "datafactor-grant-decision/v1"


# --- the rules file ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantRules:
    """``rules/grants.yaml`` loaded and checked: the rule refs and the file's parameters."""

    rules: RuleSet
    number_prefix: str
    monitor_seconds: float
    max_fee_fen: int
    max_count: int
    use_classes: frozenset[str]

    def rule_id(self, key: str) -> str:
        return self.rules.rule_id(key)

    @property
    def version(self) -> str:
        return self.rules.version


def _whole(data: Mapping[str, Any], section: str, key: str, high: int) -> int:
    value = (data.get(section) or {}).get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= high:
        raise ValueError(f"grants.yaml: {section}.{key} must be a whole number from 1 to {high}")
    return value


@functools.cache
def load_grant_rules() -> GrantRules:
    rules = load_rule_set("grants", RULE_KEYS)
    prefix = str((rules.data.get("number") or {}).get("prefix") or "")
    seconds = float((rules.data.get("monitor") or {}).get("interval_seconds") or 0)
    if not prefix or seconds <= 0:
        raise ValueError("grants.yaml: number.prefix and monitor.interval_seconds are required")
    max_fee = _whole(rules.data, "fee", "max_fen", 2**62)
    max_count = _whole(rules.data, "policy", "max_count", 2**31 - 1)
    classes = rules.data.get("use_classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise ValueError("grants.yaml: use_classes must list the use classes")
    return GrantRules(rules, prefix, seconds, max_fee, max_count, frozenset(classes))


def format_grant_number(year: int, serial: int, rules: GrantRules | None = None) -> str:
    """``GX-SQ-2026-000001``: the grants' prefix, the year and a six-digit serial."""
    prefix = (rules or load_grant_rules()).number_prefix
    return f"{prefix}-{year:04d}-{serial:06d}"


class Msgid(str):
    """A message parameter made of msgids (a state's label, a list of role labels): its value is
    the English text (stored, sent in JSON), but formatted into a message it is translated into
    the current locale, so a Chinese reader sees “已撤销”, not ``revoked``."""

    parts: tuple[str, ...]

    def __new__(cls, *parts: str) -> Msgid:
        made = super().__new__(cls, ", ".join(parts))
        made.parts = tuple(parts)
        return made

    def __format__(self, spec: str) -> str:
        # Imported here: the catalogues belong to the web layer; only rendering needs them.
        from datafactor import context
        from datafactor.web.i18n import translations

        locale = context.locale.get()
        words = [translations(locale).gettext(p) for p in self.parts]
        return format(("、" if locale.startswith("zh") else ", ").join(words), spec)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Msgid, self.parts)


def reason_text(reason: str, params: Mapping[str, Any] | None) -> str:
    """A stored reason as its reader reads it: a person's text as typed; the system's (a msgid
    with ``params``) translated into the current locale, ``*_label`` parameters too."""
    if params is None:
        return reason
    from datafactor import context
    from datafactor.web.i18n import safe_format, translations

    catalogue = translations(context.locale.get())
    shown = {k: catalogue.gettext(str(v)) if k.endswith("_label") else v for k, v in params.items()}
    return safe_format(catalogue.gettext(reason), shown)


# --- states and actions -----------------------------------------------------------------------


class GrantState(StrEnum):
    REQUESTED = "requested"  # 已申请 (the grantee asked; the grantor decides)
    APPROVED = "approved"  # 已批准 (the licence is being registered)
    ACTIVE = "active"  # 有效 (licence certified: uses are decided by the policy)
    SUSPENDED = "suspended"  # 已暂停 (may be resumed)
    REVOKED = "revoked"  # 已撤销
    EXPIRED = "expired"  # 已到期 (term or policy time over, uses exhausted)
    REFUSED = "refused"  # 未获批准 (declined by the grantor, or the licence refused)
    WITHDRAWN = "withdrawn"  # 已撤回 (by the grantee)


FINAL_STATES: Final = frozenset(
    {GrantState.REVOKED, GrantState.EXPIRED, GrantState.REFUSED, GrantState.WITHDRAWN}
)


class Regime(StrEnum):
    DIRECT = "direct"  # the holder grants on its own account
    OPERATION = "public_data_operation"  # 公共数据授权运营: under an operation agreement
    TRUST = "data_trust"  # 数据信托: under a trust deed


class GrantAction(StrEnum):
    REQUEST = "request"
    OFFER = "offer"
    APPROVE = "approve"
    REFUSE = "refuse"
    WITHDRAW = "withdraw"
    ACTIVATE = "activate"
    SUSPEND = "suspend"
    RESUME = "resume"
    REVOKE = "revoke"
    EXPIRE = "expire"


class GrantRole(StrEnum):
    GRANTOR = "grantor"  # the holder, or the agent of the mandate
    GRANTEE = "grantee"
    REGULATOR = "regulator"
    SYSTEM = "system"  # the registry's outcome, the monitor, the end of a mandate


S = GrantState
A = GrantAction
R = GrantRole
_LIVE: Final = frozenset({S.REQUESTED, S.APPROVED, S.ACTIVE, S.SUSPENDED})


@dataclass(frozen=True)
class Transition:
    """A step: from ``sources`` to ``target`` by ``roles``; ``only_from`` narrows the sources a
    role may take it from (a role not named there may take it from every source)."""

    sources: frozenset[GrantState | None]
    target: GrantState
    roles: frozenset[GrantRole]
    only_from: Mapping[GrantRole, frozenset[GrantState | None]] = field(default_factory=dict)

    def allows(self, state: GrantState | None, role: GrantRole) -> bool:
        return (
            state in self.sources
            and role in self.roles
            and state in self.only_from.get(role, self.sources)
        )


TRANSITIONS: Final[Mapping[GrantAction, Transition]] = {
    A.REQUEST: Transition(frozenset({None}), S.REQUESTED, frozenset({R.GRANTEE})),
    A.OFFER: Transition(frozenset({None}), S.APPROVED, frozenset({R.GRANTOR})),
    A.APPROVE: Transition(frozenset({S.REQUESTED}), S.APPROVED, frozenset({R.GRANTOR})),
    # The grantor declines a request; only the registry refuses (or the holder withdraws) the
    # licence of an approved grant — a grantor who changes its mind revokes it, which withdraws
    # the licence application.
    A.REFUSE: Transition(
        frozenset({S.REQUESTED, S.APPROVED}),
        S.REFUSED,
        frozenset({R.GRANTOR, R.SYSTEM}),
        only_from={R.GRANTOR: frozenset({S.REQUESTED})},
    ),
    A.WITHDRAW: Transition(frozenset({S.REQUESTED}), S.WITHDRAWN, frozenset({R.GRANTEE})),
    A.ACTIVATE: Transition(frozenset({S.APPROVED}), S.ACTIVE, frozenset({R.SYSTEM})),
    A.SUSPEND: Transition(frozenset({S.ACTIVE}), S.SUSPENDED, frozenset({R.GRANTOR, R.SYSTEM})),
    A.RESUME: Transition(frozenset({S.SUSPENDED}), S.ACTIVE, frozenset({R.GRANTOR, R.SYSTEM})),
    A.REVOKE: Transition(
        frozenset(_LIVE), S.REVOKED, frozenset({R.GRANTOR, R.REGULATOR, R.SYSTEM})
    ),
    A.EXPIRE: Transition(frozenset(_LIVE), S.EXPIRED, frozenset({R.SYSTEM})),
}

STATE_LABELS: Final[Mapping[str, str]] = {
    S.REQUESTED: N_("Requested, awaiting decision"),
    S.APPROVED: N_("Approved, licence being registered"),
    S.ACTIVE: N_("In effect"),
    S.SUSPENDED: N_("Suspended"),
    S.REVOKED: N_("Revoked"),
    S.EXPIRED: N_("Ended"),
    S.REFUSED: N_("Not granted"),
    S.WITHDRAWN: N_("Withdrawn"),
}
REGIME_LABELS: Final[Mapping[str, str]] = {
    Regime.DIRECT: N_("Granted by the holder"),
    Regime.OPERATION: N_("Public data authorised operation"),
    Regime.TRUST: N_("Data trust"),
}
ACTION_LABELS: Final[Mapping[str, str]] = {
    A.REQUEST: N_("Use requested"),
    A.OFFER: N_("Granted"),
    A.APPROVE: N_("Approved"),
    A.REFUSE: N_("Not granted"),
    A.WITHDRAW: N_("Withdrawn"),
    A.ACTIVATE: N_("Licence registered: in effect"),
    A.SUSPEND: N_("Suspended"),
    A.RESUME: N_("Resumed"),
    A.REVOKE: N_("Revoked"),
    A.EXPIRE: N_("Ended"),
}
ROLE_LABELS: Final[Mapping[str, str]] = {
    R.GRANTOR: N_("Grantor"),
    R.GRANTEE: N_("Grantee"),
    R.REGULATOR: N_("Regulator"),
    R.SYSTEM: N_("System"),
}

MSG_FINAL: Final = N_(
    "Authorisation {number} is {state_label}, which is final: nothing more can be done to it. "
    "Ask for a new authorisation instead (rule {rule})."
)
MSG_STEP: Final = N_(
    "Authorisation {number} is “{state_label}”: the step “{action_label}” is not possible from "
    "there (rule {rule})."
)
MSG_ROLE: Final = N_(
    "Only the {roles} may do this to authorisation {number}; your party acts here as the "
    "{role_label} (rule {rule})."
)
MSG_APPROVED_REFUSE: Final = N_(
    "Authorisation {number} is already approved and its licence is being registered: it can "
    "no longer be refused. Revoke it instead, which also withdraws the licence application "
    "(rule {rule})."
)


def transition(
    state: GrantState | None,
    action: GrantAction,
    role: GrantRole,
    *,
    number: str = "",
    rules: GrantRules | None = None,
) -> GrantState:
    """The state after ``action`` by ``role`` from ``state`` (None: a new grant), or a refusal
    naming the rule: a final state is final; a step out of order or by the wrong party is refused."""
    rules = rules or load_grant_rules()
    step = TRANSITIONS[action]
    if state is not None and state in FINAL_STATES:
        raise GrantStateConflict(
            MSG_FINAL,
            rule=rules.rule_id("transition"),
            number=number,
            state_label=Msgid(STATE_LABELS[state]),
        )
    if state not in step.sources:
        raise GrantStateConflict(
            MSG_STEP,
            rule=rules.rule_id("transition"),
            number=number,
            state_label=Msgid(STATE_LABELS[state] if state else N_("New")),
            action_label=Msgid(ACTION_LABELS[action]),
        )
    if role not in step.roles:
        raise NotGrantor(
            MSG_ROLE,
            rule=rules.rule_id("actor"),
            number=number,
            roles=Msgid(*(ROLE_LABELS[r] for r in sorted(step.roles))),
            role_label=Msgid(ROLE_LABELS[role]),
        )
    if not step.allows(state, role):
        raise GrantStateConflict(
            MSG_APPROVED_REFUSE if action is A.REFUSE else MSG_STEP,
            rule=rules.rule_id("transition"),
            number=number,
            state_label=Msgid(STATE_LABELS[state] if state else N_("New")),
            action_label=Msgid(ACTION_LABELS[action]),
        )
    return step.target


# --- what other domains pass in ----------------------------------------------------------------


@dataclass(frozen=True)
class Mandate:
    """Authority under which a grant is made when it is not simply the holder granting on its own
    account: a public-data operation agreement or a trust deed."""

    regime: Regime  # OPERATION (agreement) or TRUST (deed)
    reference_id: str  # the agreement's or deed's id (stored on the grant)
    agent_id: str  # the party that grants under it (operator / trustee, or the holder itself)
    holder_id: str  # the party whose right is licensed (implementing body / settlor)
    asset_ids: frozenset[str]  # the registry assets the mandate covers
    scope: Mapping[str, list[str] | None]  # registry Scope.as_dict(): limits of every grant
    term_start: date
    term_end: date
    allowed_channels: frozenset[str] | None = None  # e.g. {"api", "sandbox"}

    def as_dict(self) -> dict[str, Any]:
        return {
            "regime": Regime(self.regime).value,
            "reference_id": self.reference_id,
            "agent_id": self.agent_id,
            "holder_id": self.holder_id,
            "asset_ids": sorted(self.asset_ids),
            "scope": {k: None if v is None else sorted(v) for k, v in self.scope.items()},
            "term_start": self.term_start.isoformat(),
            "term_end": self.term_end.isoformat(),
            "allowed_channels": None
            if self.allowed_channels is None
            else sorted(self.allowed_channels),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Mandate:
        channels = data.get("allowed_channels")
        return cls(
            regime=Regime(data["regime"]),
            reference_id=str(data["reference_id"]),
            agent_id=str(data["agent_id"]),
            holder_id=str(data["holder_id"]),
            asset_ids=frozenset(data.get("asset_ids") or ()),
            scope=dict(data.get("scope") or {}),
            term_start=date.fromisoformat(data["term_start"]),
            term_end=date.fromisoformat(data["term_end"]),
            allowed_channels=None if channels is None else frozenset(channels),
        )


@dataclass(frozen=True)
class GrantDraft:
    """What a grant is asked or offered for."""

    asset_id: str  # a registry asset id
    grantee_id: str  # party id
    policy: Mapping[str, Any]  # ODRL 2.2 JSON-LD (target/assignee filled in if absent)
    term_start: date
    term_end: date  # required: no open-ended grants
    right_id: str | None = None  # the grantor's right; default: the holder's holding right
    purpose_note: str = ""  # free text shown to people
    use_class: str | None = None  # e.g. a public-data use class, recorded as given
    fee_fen: int = 0  # integer fen, recorded (the caller checks caps); >= 0


# --- the policy of a grant ---------------------------------------------------------------------

MSG_POLICY_PARTIES: Final = N_(
    "The policy's {role} is “{found}”, but this authorisation is for {expected}: remove the "
    "{role} from the policy (it is filled in) or name {expected} (rule {rule})."
)
MSG_POLICY_EMPTY: Final = N_(
    "The policy permits no use of the data (every permission is ruled out by its own "
    "prohibitions, or there is none): add a permission (rule {rule})."
)


def prepare_policy(
    document: Mapping[str, Any], *, asset_id: str, grantee_id: str, rules: GrantRules | None = None
) -> Policy:
    """The grant's policy parsed, with its target (the asset id) and assignee (the grantee's
    party id) filled in where absent. A malformed policy, an unknown term or a contradiction is
    refused by the parser with its own rule; a rule naming another asset or party is refused."""
    rules = rules or load_grant_rules()
    if not isinstance(document, Mapping):
        raise GrantInvalid(
            N_("The policy must be an ODRL policy in JSON-LD (a JSON object) (rule {rule})."),
            rule=rules.rule_id("policy_valid"),
            field="policy",
        )
    filled = dict(document)
    filled.setdefault("target", asset_id)
    filled.setdefault("assignee", grantee_id)
    policy = parse_policy(filled)
    rules_of: list[Permission | Prohibition] = [*policy.permissions, *policy.prohibitions]
    for rule in rules_of:
        for role, found, expected in (
            ("target", rule.target, asset_id),
            ("assignee", rule.assignee, grantee_id),
        ):
            if found is not None and found != expected:
                raise GrantInvalid(
                    MSG_POLICY_PARTIES,
                    rule=rules.rule_id("policy_parties"),
                    field=f"policy.{role}",
                    role=role,
                    found=found,
                    expected=expected,
                )
    return policy


# --- what a policy could ever allow (the licence's scope) -------------------------------------

_ALL_CHANNELS: Final = frozenset(c.value for c in Channel)
_INCLUSIVE: Final = frozenset({Operator.EQ, Operator.IS_ANY_OF, Operator.IS_PART_OF, Operator.IS_A})
_Dim = frozenset[str] | None  # None: unrestricted


def _atoms(value: Any) -> frozenset[str]:
    if isinstance(value, tuple | list | set | frozenset):
        return frozenset(str(v) for v in value)
    return frozenset({str(value)})


def _and(a: _Dim, b: _Dim) -> _Dim:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def _or(a: _Dim, b: _Dim) -> _Dim:
    if a is None or b is None:
        return None
    return a | b


@functools.cache
def _purpose_children() -> Mapping[str, frozenset[str]]:
    parents = load_policy_rules().purpose_parent
    children: dict[str, set[str]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, set()).add(child)

    def down(code: str) -> frozenset[str]:
        found = {code}
        for child in children.get(code, ()):
            found |= down(child)
        return frozenset(found)

    return {code: down(code) for code in load_policy_rules().purposes}


def _purposes(c: Constraint) -> _Dim:
    """The purposes a purpose constraint lets through (policy codes)."""
    values = _atoms(c.right)
    if c.operator is Operator.EQ:
        return values
    if c.operator in (Operator.IS_A, Operator.IS_ANY_OF):
        # isA / isAnyOf also match every narrower purpose in the taxonomy.
        children = _purpose_children()
        return frozenset().union(*(children.get(v, frozenset({v})) for v in values))
    return None  # neq / isNoneOf: anything else, including purposes nobody listed


def _places(c: Constraint) -> _Dim:
    if c.operator in _INCLUSIVE:
        return _atoms(c.right)
    return None


def _fields(c: Constraint) -> _Dim:
    if c.operator in (Operator.EQ, Operator.IS_PART_OF, Operator.IS_ANY_OF):
        return _atoms(c.right)
    return None  # isAllOf (these and any others) / isNoneOf


def _channels(c: Constraint) -> _Dim:
    values = _atoms(c.right)
    if c.operator in (Operator.EQ, Operator.IS_ANY_OF):
        return values
    return _ALL_CHANNELS - values  # neq / isNoneOf over a closed list


_READERS: Final = {
    "purposes": ("purpose", _purposes),
    "regions": ("spatial", _places),
    "fields": ("df:fields", _fields),
    "delivery_modes": ("deliveryChannel", _channels),
}


def _dimension(constraints: Iterable[Constraint | LogicalConstraint], name: str) -> _Dim:
    """What a conjunction of constraints lets through in one dimension (None: anything)."""
    operand, read = _READERS[name]
    found: _Dim = None
    for c in constraints:
        if isinstance(c, LogicalConstraint):
            if c.operand is Logical.AND:
                found = _and(found, _dimension(c.constraints, name))
            else:  # or / xone: any member may hold
                union: _Dim = frozenset()
                for member in c.constraints:
                    union = _or(union, _dimension((member,), name))
                found = _and(found, union)
        elif c.left == operand:
            found = _and(found, read(c))
    return found


def _constraints(rule: Permission | Prohibition) -> tuple[Constraint | LogicalConstraint, ...]:
    return (*rule.constraints, *rule.action.refinements)


def _banned_channels(permission: Permission, prohibitions: Iterable[Prohibition]) -> frozenset[str]:
    """The channels prohibited whatever else the request says: prohibitions of an action that
    includes the permission's, on its target and assignee, whose only conditions are on the
    delivery channel (``use`` with ``deliveryChannel eq download`` is the usual one)."""
    banned: set[str] = set()
    for p in prohibitions:
        if permission.action.name not in INCLUDES.get(p.action.name, frozenset()):
            continue
        if p.target not in (None, permission.target) or p.assignee not in (
            None,
            permission.assignee,
        ):
            continue
        constraints = _constraints(p)
        if not constraints or not all(
            isinstance(c, Constraint) and c.left == "deliveryChannel" for c in constraints
        ):
            continue
        channels = _dimension(constraints, "delivery_modes")
        banned |= _ALL_CHANNELS if channels is None else channels
    return frozenset(banned)


def _permission_scope(permission: Permission, policy: Policy) -> dict[str, _Dim] | None:
    scope = {name: _dimension(_constraints(permission), name) for name in _READERS}
    channels = scope["delivery_modes"]
    channels = (_ALL_CHANNELS if channels is None else channels) - _banned_channels(
        permission, policy.prohibitions
    )
    scope["delivery_modes"] = channels & _ALL_CHANNELS
    if any(v is not None and not v for v in scope.values()):
        return None  # this permission can never apply
    return scope


def _registry_purposes(codes: _Dim) -> _Dim:
    """Policy purposes as the registry's: a purpose the registry knows is itself; one it does not
    know maps to its nearest known ancestor (``marketing`` → ``industry``), or, with none, to the
    known purposes below it (``public_interest`` → governance, welfare, research). A purpose in
    neither taxonomy can only be covered by unrestricted purposes."""
    if codes is None:
        return None
    known = frozenset(load_registry_rules().purposes)
    parents = load_policy_rules().purpose_parent
    children = _purpose_children()
    # The registry compares purposes as a flat list, so a class stands for itself: ``isA
    # industry`` is the registry purpose ``industry``, not each kind of industry one by one.
    codes = frozenset(c for c in codes if not (load_policy_rules().purposes_of(c) - {c}) & codes)
    out: set[str] = set()
    for code in codes:
        at: str | None = code
        while at is not None and at not in known:
            at = parents.get(at)
        if at is not None:
            out.add(at)
            continue
        below = children.get(code, frozenset()) & known
        if not below:
            return None
        out |= below
    return frozenset(out)


def _registry_regions(codes: _Dim) -> _Dim:
    """Policy places as registry regions: GB/T 2260 codes and ISO 3166-1 countries as they are,
    a Chinese ISO 3166-2 subdivision as its GB/T 2260 province code (``CN-GX`` → ``450000``),
    another country's subdivision as that country, a group (``ASEAN``) as its members."""
    if codes is None:
        return None
    to_gbt = {iso: f"{prefix}0000" for prefix, iso in GBT2260_PROVINCES.items()}
    out: set[str] = set()
    for code in codes:
        if code in REGION_GROUPS:
            out |= REGION_GROUPS[code]
        elif code in to_gbt:
            out.add(to_gbt[code])
        elif "-" in code:
            out.add(code.split("-", 1)[0])
        else:
            out.add(code)
    return frozenset(out)


def policy_scope(policy: Policy | Mapping[str, Any]) -> dict[str, list[str] | None]:
    """The registry scope (``Scope.as_dict()`` form: purposes, fields, regions, delivery modes;
    None = unrestricted) that the policy's permissions could allow at most: the union over its
    permissions of what each one's constraints let through. Prohibitions narrow only the delivery
    channels (a closed list); elsewhere the bound ignores them, so it is never too small. A policy
    that permits nothing gives empty lists."""
    parsed = policy if isinstance(policy, Policy) else parse_policy(policy)
    total: dict[str, _Dim] = {name: frozenset() for name in _READERS}
    for permission in parsed.permissions:
        scope = _permission_scope(permission, parsed)
        if scope is None:
            continue
        total = {name: _or(total[name], scope[name]) for name in _READERS}
    mapped = {
        "purposes": _registry_purposes(total["purposes"])
        if total["purposes"] != frozenset()
        else frozenset(),
        "fields": total["fields"],
        "regions": _registry_regions(total["regions"])
        if total["regions"] != frozenset()
        else frozenset(),
        "delivery_modes": total["delivery_modes"],
    }
    return {name: None if (v := mapped[name]) is None else sorted(v) for name in DIMENSIONS}


def permits_anything(scope: Mapping[str, list[str] | None]) -> bool:
    return all(v is None or len(v) > 0 for v in scope.values())


def _count_cap(constraints: Iterable[Constraint | LogicalConstraint]) -> int | None:
    cap: int | None = None
    for c in constraints:
        bound: int | None = None
        if isinstance(c, LogicalConstraint):
            caps = [_count_cap((m,)) for m in c.constraints]
            if c.operand is Logical.AND:
                known = [x for x in caps if x is not None]
                bound = min(known) if known else None
            else:
                bound = (
                    None if any(x is None for x in caps) else max(x for x in caps if x is not None)
                )
        elif c.left == "count" and isinstance(c.right, int):
            if c.operator is Operator.LT:
                bound = c.right - 1
            elif c.operator in (Operator.LTEQ, Operator.EQ):
                bound = c.right
        if bound is not None:
            cap = bound if cap is None else min(cap, bound)
    return cap


def policy_max_uses(policy: Policy) -> int | None:
    """The most uses the policy ever permits (a ``count`` bound counts the use asked for), or
    None when some permission has no bound."""
    caps = [_count_cap(_constraints(p)) for p in policy.permissions]
    if not caps or any(c is None for c in caps):
        return None if caps else 0
    return max(c for c in caps if c is not None)


def _instant_end(c: Constraint) -> datetime | None:
    value = c.right
    if isinstance(value, datetime):
        start, end = value, value
    elif isinstance(value, date):
        start = datetime.combine(value, time(0), CST)
        end = start + timedelta(days=1) - timedelta(microseconds=1)
    else:
        return None
    if c.operator is Operator.LT:
        return start - timedelta(microseconds=1)
    if c.operator in (Operator.LTEQ, Operator.EQ):
        return end
    return None


def _time_end(constraints: Iterable[Constraint | LogicalConstraint]) -> datetime | None:
    found: datetime | None = None
    for c in constraints:
        end: datetime | None = None
        if isinstance(c, LogicalConstraint):
            ends = [_time_end((m,)) for m in c.constraints]
            if c.operand is Logical.AND:
                known = [x for x in ends if x is not None]
                end = min(known) if known else None
            else:
                end = None if any(x is None for x in ends) else max(x for x in ends if x)
        elif c.left == "dateTime":
            end = _instant_end(c)
        if end is not None:
            found = end if found is None else min(found, end)
    return found


def policy_ends(policy: Policy) -> datetime | None:
    """The last instant at which any permission can still apply by its ``dateTime`` bounds, or
    None when some permission has none."""
    ends = [_time_end(_constraints(p)) for p in policy.permissions]
    if not ends or any(e is None for e in ends):
        return None
    return max(e for e in ends if e is not None)


# --- checks against the grantor's right and the mandate ---------------------------------------

MSG_SCOPE: Final = N_(
    "The policy could allow {dimension_label} beyond {whose}: {values}. Narrow the policy to "
    "{allowed} (rule {rule})."
)
MSG_TERM_BEYOND: Final = N_(
    "The authorisation's term {start} – {end} runs outside {whose}, which runs {limit_start} – "
    "{limit_end}: choose a term inside it (rule {rule})."
)
MSG_TERM: Final = N_(
    "The authorisation's term must have an end no earlier than its start and not already "
    "past ({start} – {end}, today {today}) (rule {rule})."
)
MSG_PUBLIC_DOWNLOAD: Final = N_(
    "“{asset}” is public data: raw public data never leaves the domain, so its policy may "
    "permit only API results and sandbox computation, not {channels}. Limit the delivery "
    "channel to api or sandbox (or prohibit download) (rule {rule})."
)
MSG_CHANNELS: Final = N_(
    "The mandate allows only the delivery channels {allowed}, but the policy could also allow "
    "{channels}: limit the policy's delivery channel (rule {rule})."
)
DIMENSION_LABELS: Final[Mapping[str, str]] = {
    "purposes": N_("purposes"),
    "fields": N_("fields"),
    "regions": N_("regions"),
    "delivery_modes": N_("delivery channels"),
}
UNRESTRICTED_LABEL: Final = N_("any (unrestricted)")


def _shown(values: Iterable[str]) -> str:
    values = list(values)
    if values == ["*"]:
        return Msgid(UNRESTRICTED_LABEL)
    return ", ".join(values)


def check_scope_within(
    scope: Mapping[str, list[str] | None],
    limit: Mapping[str, list[str] | None],
    *,
    whose: str,
    rule: str,
) -> None:
    """Refuse ``scope`` (what the policy could allow) when any dimension exceeds ``limit``,
    naming the dimension, the values beyond and what is allowed. ``whose`` says whose limit
    (the grantor's right, the mandate)."""
    mine, theirs = Scope.from_dict(scope), Scope.from_dict(limit)
    beyond = mine.excess(theirs)
    if not beyond:
        return
    name, values = next(iter(beyond.items()))
    allowed = theirs.dimension(name)
    raise ScopeExceedsGrantor(
        MSG_SCOPE,
        rule=rule,
        field=f"policy.{name}",
        dimension_label=Msgid(DIMENSION_LABELS[name]),
        whose=whose,
        values=_shown(values),
        allowed=", ".join(sorted(allowed)) if allowed is not None else Msgid(UNRESTRICTED_LABEL),
    )


MSG_BACKDATED: Final = N_(
    "A new authorisation cannot start before today ({today}): its term starts on {start}. "
    "Start it today or later (rule {rule})."
)


def check_term(
    start: date,
    end: date,
    *,
    today: date,
    new: bool = False,
    rules: GrantRules | None = None,
) -> None:
    """The term ends, no earlier than it starts and not in the past; a ``new`` grant (asked for
    or granted today) does not start before today either."""
    rules = rules or load_grant_rules()
    if end < start or end < today:
        raise GrantInvalid(
            MSG_TERM,
            rule=rules.rule_id("term"),
            field="term_end",
            start=start.isoformat(),
            end=end.isoformat(),
            today=today.isoformat(),
        )
    if new and start < today:
        raise GrantInvalid(
            MSG_BACKDATED,
            rule=rules.rule_id("no_backdate"),
            field="term_start",
            start=start.isoformat(),
            today=today.isoformat(),
        )


def check_term_within(
    start: date,
    end: date,
    limit_start: date,
    limit_end: date | None,
    *,
    whose: str,
    rule: str,
) -> None:
    if start < limit_start or (limit_end is not None and end > limit_end):
        raise TermExceedsGrantor(
            MSG_TERM_BEYOND,
            rule=rule,
            field="term_end" if start >= limit_start else "term_start",
            start=start.isoformat(),
            end=end.isoformat(),
            whose=whose,
            limit_start=limit_start.isoformat(),
            limit_end=limit_end.isoformat() if limit_end else "—",
        )


def check_public_channels(
    scope: Mapping[str, list[str] | None], *, asset: str, rules: GrantRules | None = None
) -> None:
    """Public data: the policy may permit only ``api`` and ``sandbox`` (never download, and
    never any channel at all, which would include download)."""
    rules = rules or load_grant_rules()
    channels = scope.get("delivery_modes")
    outside = (
        sorted(_ALL_CHANNELS - {"api", "sandbox"})
        if channels is None
        else sorted(set(channels) - {"api", "sandbox"})
    )
    if outside:
        raise PublicDataDownload(
            MSG_PUBLIC_DOWNLOAD,
            rule=rules.rule_id("public_no_download"),
            field="policy.deliveryChannel",
            asset=asset,
            channels=", ".join(outside),
        )


def check_channels(
    scope: Mapping[str, list[str] | None],
    allowed: frozenset[str],
    *,
    rules: GrantRules | None = None,
) -> None:
    rules = rules or load_grant_rules()
    channels = scope.get("delivery_modes")
    outside = sorted((_ALL_CHANNELS if channels is None else set(channels)) - allowed)
    if outside:
        raise ScopeExceedsGrantor(
            MSG_CHANNELS,
            rule=rules.rule_id("mandate"),
            field="policy.deliveryChannel",
            allowed=", ".join(sorted(allowed)),
            channels=", ".join(outside),
        )


def region_within(inner: str, outer: Iterable[str]) -> bool:
    return any(region_covers(o, inner) for o in outer)
