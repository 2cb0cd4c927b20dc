"""The three separated data property rights and the rules that bind them, on an in-memory book.

A ``Right`` is a ``HoldingRight`` (数据资源持有权), ``ProcessingUseRight`` (数据加工使用权) or
``ProductOperationRight`` (数据产品经营权): a holder, an asset, a ``Scope`` (purposes, fields,
regions, delivery modes), a ``Term``, an ``Origin`` and the right(s) it comes from. Rights are
immutable values; a ``RightsBook`` is an immutable collection of them, indexed by parent and
basis. Every operation (``grant_holding``, ``license``, ``derive_product_operation``,
``transfer``, ``amend``, ``pledge``, ``release_pledge``, ``cancel``, ``revoke``, ``suspend``,
``reinstate``, ``expire``) is a pure function of a book and returns a ``RightsChange`` — the
rights it creates and the new states of the rights it updates, and the parties to notify — or
raises a ``RegistryError`` naming the rule. The services load the rights concerned, call the
function, and persist the change in one transaction (``change.apply(book)`` gives the book
after it). The services must load, for a right acted on, its ancestors and bases (for its chain
of title) and everything derived from it (for the cascade); loading every right on the asset
and on the products built from it is enough.

How title flows:

* An original ``HoldingRight`` is the root of every chain. A holding right is transferred
  (origin ``transferred``, parent = the right it ends), never licensed.
* A ``ProcessingUseRight`` is licensed from a holding right (or, if ``sublicensing_allowed`` is
  set in the rules, from a processing-use right) on the same asset, its scope and term within
  its parent's; it may be transferred.
* A ``ProductOperationRight`` is derived on a product: every path of the product's lineage must
  reach an asset on which the deriving party holds a holding or processing-use right in force.
  Those rights are its ``basis_ids``; its purposes, regions, delivery modes and term stay within
  each basis (its fields are the product's own, so fields are not compared). It may be
  transferred; the transferee's title runs through the chain to the deriving party's bases —
  the lineage rule binds the party that derives, not every later holder.
* A transfer ends the old right (status ``transferred``) and creates its successor with the same
  scope, the same end and a start no earlier than the transfer. Rights derived from the old right
  before the transfer stay attached to it; they are carried by the successor: a transferred
  right supports its dependants exactly while its line of successors ends in a right in force.
* A pledged right cannot be transferred, licensed further or cancelled until the pledge is
  released (it may still be used: a product can be derived from it), and it can only be
  widened or extended, never narrowed. Revocation (by the registrar) is not blocked by a pledge;
  the pledgee is notified.
* Cancelling, revoking or suspending a right suspends every right derived from it, transitively
  (licences, their successors, products derived from them, and licences granted by the right's
  predecessors in title), records which right caused it (``suspended_by``), and returns every
  holder and pledgee of an affected right to notify. Reinstating a suspended right restores the
  rights suspended on its account.
* ``chain_of_title`` walks from a right to an original holding right and raises
  ``BrokenChainOfTitle`` naming the first broken link; every right in force has one
  (``audit_book`` checks the whole book).

Nothing here touches a database or the web; ``tests/registry`` exercise it with hypothesis.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar, Final

from datafactor.errors import N_
from datafactor.registry.errors import (
    BrokenChainOfTitle,
    DuplicateRight,
    InvalidRegistration,
    InvalidScope,
    InvalidTerm,
    LicenceNotAllowed,
    LineageNotCovered,
    NotPledged,
    NotRightHolder,
    RegistryError,
    RightNotInForce,
    RightPledged,
    ScopeExceedsParent,
    TermExceedsParent,
    TransitionNotAllowed,
    UnknownRight,
)
from datafactor.registry.rulebook import RegistryRules, load_registry_rules
from datafactor.registry.vocabulary import (
    LIVE_STATUSES,
    EventTag,
    Origin,
    RightKind,
    RightStatus,
)

# --- messages (gettext msgids, kept together for translators) -------------------------------------

MSG_UNKNOWN_RIGHT: Final = N_(
    "There is no registered right {right}. Check the right's number (rule {rule})."
)
MSG_DUPLICATE_ID: Final = N_("A right numbered {right} already exists (rule {rule}).")
MSG_NOT_HOLDER: Final = N_(
    "Party {party} does not hold right {right}. Only the holder of a right can do this; if "
    "you acquired it, register the transfer first (rule {rule})."
)
MSG_SUSPENDED: Final = N_(
    "Right {right} is suspended: nothing can be done with it until it is reinstated. Ask the "
    "registrar why it was suspended (rule {rule})."
)
MSG_ENDED: Final = N_(
    "Right {right} has ended (status: {status}): nothing more can be done with it (rule {rule})."
)
MSG_OUT_OF_TERM: Final = N_(
    "Right {right} is not in force on {day}: its term runs from {start} to {end}. Renew it "
    "first, or choose a date inside its term (rule {rule})."
)
MSG_PLEDGED: Final = N_(
    "Right {right} is pledged to {pledgee}: it cannot be transferred, licensed further or "
    "cancelled until the pledge is released. Ask the pledgee to release it, then apply again "
    "(rule {rule})."
)
MSG_PLEDGED_NARROW: Final = N_(
    "Right {right} is pledged to {pledgee}: while pledged its scope and term can only be "
    "widened or extended, not narrowed. Release the pledge first (rule {rule})."
)
MSG_ALREADY_PLEDGED: Final = N_(
    "Right {right} is already pledged to {pledgee}; a right carries one pledge at a time. "
    "Release the existing pledge first (rule {rule})."
)
MSG_NOT_PLEDGED: Final = N_("Right {right} is not pledged: there is nothing to release.")
MSG_NOT_PLEDGEE: Final = N_(
    "Only the pledgee {pledgee} can release the pledge on right {right}, or the right's holder "
    "with the pledgee's consent: ask the pledgee to consent to your application (rule {rule})."
)
MSG_PLEDGE_SELF: Final = N_("A holder cannot pledge right {right} to itself (rule {rule}).")
MSG_SCOPE_EMPTY: Final = N_(
    "The scope's {dimension} list is empty, which would allow nothing. Choose at least one "
    "value, or leave it unrestricted (rule {rule})."
)
MSG_SCOPE_UNKNOWN: Final = N_("Unknown {dimension} in the scope: {values}. Known: {known}.")
MSG_SCOPE_REGION: Final = N_(
    "Region codes are six-digit GB/T 2260 division codes (e.g. 450100) or two-letter country "
    "codes (e.g. CN); not valid: {values}."
)
MSG_SCOPE_FIELD: Final = N_("A field name in the scope is empty or longer than 128 characters.")
MSG_SCOPE_EXCEEDS: Final = N_(
    "The scope asked for goes beyond right {parent}'s: {dimension} {values} are not allowed "
    "there. Narrow the scope to what {parent} allows, or obtain a wider right first "
    "(rule {rule})."
)
MSG_SCOPE_UNRESTRICTED: Final = N_(
    "The scope asked for leaves {dimension} unrestricted, but right {parent} restricts them. "
    "List the {dimension} you need, within what {parent} allows (rule {rule})."
)
MSG_TERM_ORDER: Final = N_("The term ends ({end}) before it starts ({start}).")
MSG_TERM_OPEN: Final = N_(
    "A processing-use or product-operation right needs an end date: only a holding right may "
    "be open-ended (rule {rule})."
)
MSG_TERM_OVER: Final = N_(
    "The term ends on {end}, before {day}: a right cannot be registered for a period that is "
    "already over (rule {rule})."
)
MSG_TERM_EXCEEDS: Final = N_(
    "The term {start} – {end} goes beyond right {parent}'s term {parent_start} – {parent_end}. "
    "Choose a term inside it, or renew {parent} first (rule {rule})."
)
MSG_LICENCE_KIND: Final = N_(
    "A processing-use right is licensed from a holding right; right {parent} is not one and "
    "cannot license it (rule {rule})."
)
MSG_LICENCE_SELF: Final = N_(
    "Party {party} already holds right {parent}; it does not need a licence from itself "
    "(rule {rule})."
)
MSG_HOLDING_EXISTS: Final = N_(
    "Asset {asset} already has a holding right in force ({right}, held by {holder}). A second "
    "claim to the same data is a title dispute: lodge an objection or ask the holder to "
    "transfer it (rule {rule})."
)
MSG_PRODUCT_EXISTS: Final = N_(
    "Product {asset} already has a product-operation right ({right}, held by {holder}) "
    "(rule {rule})."
)
MSG_NO_LINEAGE: Final = N_(
    "Product {asset} has no recorded lineage: record which resources it was derived from "
    "before registering a product-operation right (rule {rule})."
)
MSG_LINEAGE_UNCOVERED: Final = N_(
    "Product {asset} is derived from {source}, on which party {party} holds no holding or "
    "processing-use right in force. Obtain a licence for {source} (or register your holding "
    "of it) first (rule {rule})."
)
MSG_LINEAGE_CYCLE: Final = N_(
    "The lineage of product {asset} loops back through {source}: a product cannot be derived "
    "from itself (rule {rule})."
)
MSG_TRANSFER_SELF: Final = N_(
    "Right {right} is already held by {party}: a transfer needs a new holder (rule {rule})."
)
MSG_NOTHING_TO_AMEND: Final = N_("Nothing to change: give a new scope or a new term.")
MSG_AMEND_ORPHANS: Final = N_(
    "After this change right {right} would no longer contain right {child}, which derives from "
    "it ({what}). Narrow or cancel {child} first (rule {rule})."
)
MSG_CAUSED_ELSEWHERE: Final = N_(
    "Right {right} is suspended because right {cause} was cancelled, revoked or suspended; "
    "it is reinstated with {cause}, not on its own (rule {rule})."
)
MSG_NOT_SUSPENDED: Final = N_("Right {right} is not suspended (rule {rule}).")
MSG_ALREADY_SUSPENDED: Final = N_("Right {right} is already suspended (rule {rule}).")
MSG_SHAPE: Final = N_("Right {right} is not consistent: {problem} (rule {rule}).")

# Chain-of-title breaks: each names the right whose link is broken and the link.
MSG_CHAIN_MISSING: Final = N_(
    "The chain of title of {start} is broken at {right}: it derives from {parent}, which is "
    "not registered (rule {rule})."
)
MSG_CHAIN_CYCLE: Final = N_("The chain of title of {start} loops back to {right} (rule {rule}).")
MSG_CHAIN_KIND: Final = N_(
    "The chain of title of {start} is broken at {right}: a {kind} right with origin {origin} "
    "cannot come from {parent}, a {parent_kind} right (rule {rule})."
)
MSG_CHAIN_ASSET: Final = N_(
    "The chain of title of {start} is broken at {right}: it is on asset {asset} but its parent "
    "{parent} is on {parent_asset} (rule {rule})."
)
MSG_CHAIN_NOT_IN_FORCE: Final = N_(
    "The chain of title of {start} is broken at {right}: it derives from {parent}, which is no "
    "longer in force (status: {status}) (rule {rule})."
)
MSG_CHAIN_SUSPENDED: Final = N_(
    "The chain of title of {start} is broken at {right}: it derives from {parent}, which is "
    "suspended because right {cause} was cancelled, revoked or suspended (rule {rule})."
)
MSG_CHAIN_TRANSFER: Final = N_(
    "The chain of title of {start} is broken at {right}: it claims to succeed {parent}, but "
    "{parent} was not transferred to it (rule {rule})."
)
MSG_CHAIN_SCOPE: Final = N_(
    "The chain of title of {start} is broken at {right}: its scope goes beyond {parent}'s "
    "({dimension} {values}) (rule {rule})."
)
MSG_CHAIN_TERM: Final = N_(
    "The chain of title of {start} is broken at {right}: its term goes beyond {parent}'s "
    "(rule {rule})."
)
MSG_CHAIN_BASIS_HOLDER: Final = N_(
    "The chain of title of {start} is broken at {right}: its basis {parent} is held by "
    "{parent_holder}, not by the party that derived it, {holder} (rule {rule})."
)

# --- scope ------------------------------------------------------------------------------------------

DIMENSIONS: Final = ("purposes", "fields", "regions", "delivery_modes")
# A product has its own fields, so a product-operation right is compared with its basis on these.
PRODUCT_DIMENSIONS: Final = ("purposes", "regions", "delivery_modes")
UNRESTRICTED: Final = "*"  # how an unrestricted dimension shows in an excess list
_DIVISION: Final = re.compile(r"[1-9][0-9]{5}")
_COUNTRY: Final = re.compile(r"[A-Z]{2}")
FIELD_MAX: Final = 128


def region_covers(outer: str, inner: str) -> bool:
    """Whether region ``outer`` contains ``inner`` (GB/T 2260 prefixes; ``CN`` has all of China).

    ``450000`` (a province) contains ``4501xx`` and ``450102``; ``450100`` (a prefecture) contains
    ``4501xx``; a country code contains only itself, and ``CN`` every division code.
    """
    if outer == inner:
        return True
    if _DIVISION.fullmatch(inner):
        if outer == "CN":
            return True
        if _DIVISION.fullmatch(outer):
            if outer.endswith("0000"):
                return inner[:2] == outer[:2]
            if outer.endswith("00"):
                return inner[:4] == outer[:4]
    return False


def _values(value: Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        # A bare string is one value, never its characters.
        return frozenset({value})
    return frozenset(value)


@dataclass(frozen=True, slots=True)
class Scope:
    """What a right allows: purposes, fields, regions and delivery modes.

    Each dimension is a set of values, or ``None`` for *unrestricted* (everything). An empty set
    allows nothing and is refused when a right is created (deny by default, but never by
    accident). The policy engine evaluates a scope later; here it is only compared:
    ``within(parent)`` holds when every dimension allows no more than the parent's (regions by
    containment, see ``region_covers``).
    """

    purposes: frozenset[str] | None = None
    fields: frozenset[str] | None = None
    regions: frozenset[str] | None = None
    delivery_modes: frozenset[str] | None = None

    def __init__(
        self,
        purposes: Iterable[str] | None = None,
        fields: Iterable[str] | None = None,
        regions: Iterable[str] | None = None,
        delivery_modes: Iterable[str] | None = None,
    ) -> None:
        object.__setattr__(self, "purposes", _values(purposes))
        object.__setattr__(self, "fields", _values(fields))
        object.__setattr__(self, "regions", _values(regions))
        object.__setattr__(self, "delivery_modes", _values(delivery_modes))

    @classmethod
    def unrestricted(cls) -> Scope:
        return cls()

    def dimension(self, name: str) -> frozenset[str] | None:
        value: frozenset[str] | None = getattr(self, name)
        return value

    def excess(
        self, parent: Scope, dimensions: Iterable[str] = DIMENSIONS
    ) -> dict[str, tuple[str, ...]]:
        """What this scope allows beyond ``parent``, by dimension (``"*"``: unrestricted)."""
        beyond: dict[str, tuple[str, ...]] = {}
        for name in dimensions:
            mine, theirs = self.dimension(name), parent.dimension(name)
            if theirs is None:
                continue
            if mine is None:
                beyond[name] = (UNRESTRICTED,)
                continue
            if name == "regions":
                extra = [v for v in mine if not any(region_covers(p, v) for p in theirs)]
            else:
                extra = [v for v in mine if v not in theirs]
            if extra:
                beyond[name] = tuple(sorted(extra))
        return beyond

    def within(self, parent: Scope, dimensions: Iterable[str] = DIMENSIONS) -> bool:
        return not self.excess(parent, dimensions)

    def as_dict(self) -> dict[str, list[str] | None]:
        """JSON-ready (sorted lists; ``None`` for unrestricted)."""
        return {
            name: None if (v := self.dimension(name)) is None else sorted(v) for name in DIMENSIONS
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scope:
        unknown = set(data) - set(DIMENSIONS)
        if unknown:
            raise InvalidScope(
                MSG_SCOPE_UNKNOWN,
                rule=_rule("scope_within"),
                field="scope",
                dimension="dimension",
                values=", ".join(sorted(unknown)),
                known=", ".join(DIMENSIONS),
            )
        return cls(**{name: data.get(name) for name in DIMENSIONS})


def check_scope(scope: Scope, rules: RegistryRules | None = None) -> Scope:
    """Refuse a scope with an empty dimension, an unknown purpose or delivery mode, a malformed
    region code or field name. Returns the scope unchanged."""
    rules = rules or load_registry_rules()
    rule = rules.rule_id("scope_within")
    known = {"purposes": rules.purposes, "delivery_modes": rules.delivery_modes}
    for name in DIMENSIONS:
        values = scope.dimension(name)
        if values is None:
            continue
        if not values:
            raise InvalidScope(MSG_SCOPE_EMPTY, rule=rule, field=f"scope.{name}", dimension=name)
        if name in known:
            unknown = sorted(values - set(known[name]))
            if unknown:
                raise InvalidScope(
                    MSG_SCOPE_UNKNOWN,
                    rule=rule,
                    field=f"scope.{name}",
                    dimension=name,
                    values=", ".join(unknown),
                    known=", ".join(sorted(known[name])),
                )
        elif name == "regions":
            bad = sorted(v for v in values if not (_DIVISION.fullmatch(v) or _COUNTRY.fullmatch(v)))
            if bad:
                raise InvalidScope(
                    MSG_SCOPE_REGION, rule=rule, field="scope.regions", values=", ".join(bad)
                )
        elif any(not v.strip() or len(v) > FIELD_MAX for v in values):
            raise InvalidScope(MSG_SCOPE_FIELD, rule=rule, field="scope.fields")
    return scope


# --- term -------------------------------------------------------------------------------------------


def _rule(key: str) -> str:
    return load_registry_rules().rule_id(key)


@dataclass(frozen=True, slots=True)
class Term:
    """The days a right is in force: ``start`` to ``end`` inclusive; ``end=None`` is open-ended."""

    start: date
    end: date | None = None

    def __post_init__(self) -> None:
        if self.end is not None and self.end < self.start:
            raise InvalidTerm(
                MSG_TERM_ORDER,
                rule=_rule("shape"),
                field="term",
                start=self.start.isoformat(),
                end=self.end.isoformat(),
            )

    def covers(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)

    def within(self, parent: Term) -> bool:
        """Starts no earlier and ends no later than ``parent`` (what a new right must meet)."""
        return self.start >= parent.start and self.ends_within(parent)

    def ends_within(self, bound: Term) -> bool:
        """Ends no later than ``bound`` (an open end only within an open end)."""
        return bound.end is None or (self.end is not None and self.end <= bound.end)

    def as_dict(self) -> dict[str, str | None]:
        return {
            "start": self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Term:
        end = data.get("end")
        return cls(
            date.fromisoformat(data["start"]), None if end is None else date.fromisoformat(end)
        )


def _show_end(term: Term) -> str:
    return "…" if term.end is None else term.end.isoformat()


# --- rights -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pledge:
    """A pledge (质押) on a right: to whom, under which registration, since when."""

    pledgee_id: str
    since: date
    registration_id: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "pledgee_id": self.pledgee_id,
            "since": self.since.isoformat(),
            "registration_id": self.registration_id,
        }


_ORIGINS: Final[dict[RightKind, frozenset[Origin]]] = {
    RightKind.HOLDING: frozenset({Origin.ORIGINAL, Origin.TRANSFERRED}),
    RightKind.PROCESSING_USE: frozenset({Origin.LICENSED, Origin.TRANSFERRED}),
    RightKind.PRODUCT_OPERATION: frozenset({Origin.DERIVED, Origin.TRANSFERRED}),
}


@dataclass(frozen=True, slots=True)
class Right:
    """One registered right. Use the subclasses; ``kind`` says which of the three it is.

    ``parent_id`` is the right it was licensed from or succeeds (origins ``licensed`` and
    ``transferred``); ``basis_ids`` are the holding / processing-use rights a derived
    product-operation right rests on. ``pledge`` stays on record while the right is suspended
    (the pledgee must be told what happens to it); ``suspended_by`` is the right whose
    cancellation, revocation or suspension suspended this one (itself when suspended directly).
    """

    kind: ClassVar[RightKind]

    id: str
    holder_id: str
    asset_id: str
    scope: Scope
    term: Term
    origin: Origin
    parent_id: str | None = None
    basis_ids: frozenset[str] = field(default_factory=frozenset)
    status: RightStatus = RightStatus.ACTIVE
    pledge: Pledge | None = None
    suspended_by: str | None = None

    def __post_init__(self) -> None:
        problem = _shape_problem(self)
        if problem:
            raise InvalidRegistration(
                MSG_SHAPE, rule=_rule("shape"), right=self.id, problem=problem
            )

    @property
    def live(self) -> bool:
        """Active or pledged (the statuses in which a right is in force within its term)."""
        return self.status in LIVE_STATUSES

    def in_force(self, day: date) -> bool:
        return self.live and self.term.covers(day)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the services store and the certificate payload quotes)."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "holder_id": self.holder_id,
            "asset_id": self.asset_id,
            "scope": self.scope.as_dict(),
            "term": self.term.as_dict(),
            "origin": self.origin.value,
            "parent_id": self.parent_id,
            "basis_ids": sorted(self.basis_ids),
            "status": self.status.value,
            "pledge": None if self.pledge is None else self.pledge.as_dict(),
            "suspended_by": self.suspended_by,
        }


def _shape_problem(right: Right) -> str | None:
    """What makes a right record inconsistent (plain English for logs; None when it is fine)."""
    if not (right.id and right.holder_id and right.asset_id):
        return "id, holder and asset are required"
    if not isinstance(right.scope, Scope) or not isinstance(right.term, Term):
        return "scope and term must be Scope and Term values"
    if right.origin not in _ORIGINS[right.kind]:
        return f"a {right.kind} right cannot have origin {right.origin}"
    needs_parent = right.origin in (Origin.LICENSED, Origin.TRANSFERRED)
    if needs_parent != (right.parent_id is not None):
        return f"origin {right.origin} {'needs' if needs_parent else 'has no'} parent"
    if right.parent_id == right.id:
        return "a right cannot be its own parent"
    if (right.origin is Origin.DERIVED) != bool(right.basis_ids):
        return "a derived right, and only it, rests on basis rights"
    if right.kind is not RightKind.HOLDING and right.term.end is None:
        return f"a {right.kind} right needs an end date"
    if right.status is RightStatus.PLEDGED and right.pledge is None:
        return "a pledged right needs its pledge"
    if right.status is RightStatus.ACTIVE and right.pledge is not None:
        return "an active right with a pledge is pledged"
    if right.status is RightStatus.SUSPENDED and right.suspended_by is None:
        return "a suspended right names what suspended it"
    if right.pledge is not None and right.pledge.pledgee_id == right.holder_id:
        return "a holder cannot be its own pledgee"
    return None


@dataclass(frozen=True, slots=True)
class HoldingRight(Right):
    """数据资源持有权: the right to hold and manage a data resource; the root of title."""

    kind: ClassVar[RightKind] = RightKind.HOLDING


@dataclass(frozen=True, slots=True)
class ProcessingUseRight(Right):
    """数据加工使用权: licensed from a holding right to process and use the data within a scope."""

    kind: ClassVar[RightKind] = RightKind.PROCESSING_USE


@dataclass(frozen=True, slots=True)
class ProductOperationRight(Right):
    """数据产品经营权: the right to operate (sell, deliver) a product built from held data."""

    kind: ClassVar[RightKind] = RightKind.PRODUCT_OPERATION


RIGHT_CLASSES: Final[dict[RightKind, type[Right]]] = {
    RightKind.HOLDING: HoldingRight,
    RightKind.PROCESSING_USE: ProcessingUseRight,
    RightKind.PRODUCT_OPERATION: ProductOperationRight,
}


def right_from_dict(data: Mapping[str, Any]) -> Right:
    """The inverse of ``Right.as_dict`` (refuses an inconsistent record)."""
    pledge = data.get("pledge")
    cls = RIGHT_CLASSES[RightKind(data["kind"])]
    return cls(
        id=str(data["id"]),
        holder_id=str(data["holder_id"]),
        asset_id=str(data["asset_id"]),
        scope=Scope.from_dict(data.get("scope") or {}),
        term=Term.from_dict(data["term"]),
        origin=Origin(data["origin"]),
        parent_id=data.get("parent_id"),
        basis_ids=frozenset(data.get("basis_ids") or ()),
        status=RightStatus(data.get("status", RightStatus.ACTIVE)),
        pledge=None
        if pledge is None
        else Pledge(
            str(pledge["pledgee_id"]),
            date.fromisoformat(pledge["since"]),
            pledge.get("registration_id"),
        ),
        suspended_by=data.get("suspended_by"),
    )


# --- the book ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RightsChange:
    """What an operation did: rights created, new states of rights updated, parties to notify.

    The services persist ``created`` and ``updated`` in one transaction, write ``event`` (with
    ``rule``) to the audit trail, and notify ``notify`` after commit.
    """

    event: EventTag
    rule: str
    created: tuple[Right, ...] = ()
    updated: tuple[Right, ...] = ()
    notify: frozenset[str] = frozenset()

    @property
    def right(self) -> Right:
        """The right the operation is about: the one created, else the first one updated."""
        return (self.created or self.updated)[0]

    @property
    def suspended(self) -> tuple[Right, ...]:
        """Rights this change suspended as a consequence (not the right acted on)."""
        return tuple(r for r in self.updated[1:] if r.status is RightStatus.SUSPENDED)

    def apply(self, book: RightsBook) -> RightsBook:
        return book.apply(self)


class RightsBook(Mapping[str, Right]):
    """An immutable collection of rights by id, indexed by parent and by basis."""

    def __init__(self, rights: Iterable[Right] = ()) -> None:
        self._rights: dict[str, Right] = {}
        for right in rights:
            if right.id in self._rights:
                raise DuplicateRight(MSG_DUPLICATE_ID, rule=_rule("shape"), right=right.id)
            self._rights[right.id] = right
        self._children: dict[str, list[Right]] = {}
        self._based_on: dict[str, list[Right]] = {}
        self._on_asset: dict[str, list[Right]] = {}
        for right in self._rights.values():
            if right.parent_id is not None:
                self._children.setdefault(right.parent_id, []).append(right)
            for basis in right.basis_ids:
                self._based_on.setdefault(basis, []).append(right)
            self._on_asset.setdefault(right.asset_id, []).append(right)

    def __getitem__(self, right_id: str) -> Right:
        return self._rights[right_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rights)

    def __len__(self) -> int:
        return len(self._rights)

    def __repr__(self) -> str:
        return f"RightsBook({len(self)} rights)"

    def right(self, right_id: str) -> Right:
        """The right ``right_id``, or ``UnknownRight`` (404) naming it."""
        try:
            return self._rights[right_id]
        except KeyError:
            raise UnknownRight(
                MSG_UNKNOWN_RIGHT, rule=_rule("chain_of_title"), field="right", right=right_id
            ) from None

    def children(self, right_id: str) -> tuple[Right, ...]:
        """Rights whose parent is ``right_id`` (its licences and its successor)."""
        return tuple(sorted(self._children.get(right_id, ()), key=lambda r: r.id))

    def based_on(self, right_id: str) -> tuple[Right, ...]:
        """Product-operation rights derived with ``right_id`` among their basis."""
        return tuple(sorted(self._based_on.get(right_id, ()), key=lambda r: r.id))

    def on_asset(self, asset_id: str) -> tuple[Right, ...]:
        return tuple(sorted(self._on_asset.get(asset_id, ()), key=lambda r: r.id))

    def successor(self, right_id: str) -> Right | None:
        """The right that succeeded ``right_id`` by transfer, if any."""
        for child in self._children.get(right_id, ()):
            if child.origin is Origin.TRANSFERRED:
                return child
        return None

    def current(self, right_id: str) -> Right:
        """The end of ``right_id``'s line of successors (itself when never transferred)."""
        right = self.right(right_id)
        seen = {right.id}
        while right.status is RightStatus.TRANSFERRED:
            successor = self.successor(right.id)
            if successor is None or successor.id in seen:
                break
            seen.add(successor.id)
            right = successor
        return right

    def held_by(
        self,
        party_id: str,
        asset_id: str,
        day: date,
        kinds: Iterable[RightKind] = tuple(RightKind),
    ) -> tuple[Right, ...]:
        """Rights of ``kinds`` that ``party_id`` holds on ``asset_id`` in force on ``day``."""
        wanted = frozenset(kinds)
        return tuple(
            r
            for r in self.on_asset(asset_id)
            if r.holder_id == party_id and r.kind in wanted and r.in_force(day)
        )

    def apply(self, change: RightsChange) -> RightsBook:
        """The book after ``change`` (created rights must be new, updated ones must exist)."""
        rights = dict(self._rights)
        for right in change.created:
            if right.id in rights:
                raise DuplicateRight(MSG_DUPLICATE_ID, rule=change.rule, right=right.id)
            rights[right.id] = right
        for right in change.updated:
            if right.id not in rights:
                raise UnknownRight(MSG_UNKNOWN_RIGHT, rule=change.rule, right=right.id)
            rights[right.id] = right
        return RightsBook(rights.values())


# --- shared checks ----------------------------------------------------------------------------------


def _require_holder(right: Right, party_id: str, action: str, rules: RegistryRules) -> None:
    if right.holder_id != party_id:
        raise NotRightHolder(
            MSG_NOT_HOLDER,
            rule=rules.rule_id("holder"),
            field="right",
            right=right.id,
            party=party_id,
            action=action,
        )


def _require_unpledged(right: Right, action: str, rules: RegistryRules) -> None:
    if right.pledge is not None:
        raise RightPledged(
            MSG_PLEDGED,
            rule=rules.rule_id("pledge_lock"),
            field="right",
            right=right.id,
            pledgee=right.pledge.pledgee_id,
            action=action,
        )


def _require_in_force(
    right: Right, day: date, action: str, rules: RegistryRules, rule_key: str = "parent_in_force"
) -> None:
    rule = rules.rule_id(rule_key)
    if right.status is RightStatus.SUSPENDED:
        raise RightNotInForce(
            MSG_SUSPENDED, rule=rule, field="right", right=right.id, action=action
        )
    if not right.live:
        raise RightNotInForce(
            MSG_ENDED,
            rule=rule,
            field="right",
            right=right.id,
            status=right.status.value,
            action=action,
        )
    if not right.term.covers(day):
        raise RightNotInForce(
            MSG_OUT_OF_TERM,
            rule=rule,
            field="right",
            right=right.id,
            day=day.isoformat(),
            start=right.term.start.isoformat(),
            end=_show_end(right.term),
        )


def _require_new_id(book: RightsBook, right_id: str, rules: RegistryRules) -> None:
    if not right_id:
        raise InvalidRegistration(
            MSG_SHAPE, rule=rules.rule_id("shape"), field="right", right="?", problem="id required"
        )
    if right_id in book:
        raise DuplicateRight(
            MSG_DUPLICATE_ID, rule=rules.rule_id("shape"), field="right", right=right_id
        )


def _check_new_term(term: Term, kind: RightKind, day: date, rules: RegistryRules) -> None:
    if kind is not RightKind.HOLDING and term.end is None:
        raise InvalidTerm(
            MSG_TERM_OPEN, rule=rules.rule_id("term_within"), field="term.end", kind=kind.value
        )
    if term.end is not None and term.end < day:
        raise InvalidTerm(
            MSG_TERM_OVER,
            rule=rules.rule_id("term_within"),
            field="term.end",
            end=term.end.isoformat(),
            day=day.isoformat(),
        )


def _require_scope_within(
    scope: Scope,
    parent: Right,
    rules: RegistryRules,
    dimensions: Iterable[str] = DIMENSIONS,
) -> None:
    beyond = scope.excess(parent.scope, dimensions)
    if beyond:
        name, values = next(iter(beyond.items()))
        raise ScopeExceedsParent(
            MSG_SCOPE_UNRESTRICTED if values == (UNRESTRICTED,) else MSG_SCOPE_EXCEEDS,
            rule=rules.rule_id("scope_within"),
            field=f"scope.{name}",
            parent=parent.id,
            dimension=name,
            values=", ".join(values),
        )


def _require_term_within(
    term: Term, parent: Right, rules: RegistryRules, start_from: date | None = None
) -> None:
    """``term`` ends within ``parent``'s and starts no earlier than ``start_from`` (by default
    ``parent``'s start: pass the original parent's start when ``parent`` is its successor)."""
    earliest = parent.term.start if start_from is None else start_from
    if term.start < earliest or not term.ends_within(parent.term):
        raise TermExceedsParent(
            MSG_TERM_EXCEEDS,
            rule=rules.rule_id("term_within"),
            field="term",
            start=term.start.isoformat(),
            end=_show_end(term),
            parent=parent.id,
            parent_start=parent.term.start.isoformat(),
            parent_end=_show_end(parent.term),
        )


_CLAIMING: Final = frozenset({RightStatus.ACTIVE, RightStatus.PLEDGED, RightStatus.SUSPENDED})


def _claim_on(book: RightsBook, asset_id: str, kind: RightKind) -> Right | None:
    """A right of ``kind`` on ``asset_id`` that still claims it (in force or suspended)."""
    for right in book.on_asset(asset_id):
        if right.kind is kind and right.status in _CLAIMING:
            return right
    return None


# --- chain of title ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainOfTitle:
    """A right's title: ``links`` from the right up to where its title starts, and ``bases``.

    ``links[0]`` is the right asked about; each next link is the right it was licensed from or
    succeeds; the last link is an original holding right, or a derived product-operation right,
    whose title continues in ``bases`` — one chain per basis right.
    """

    links: tuple[Right, ...]
    bases: tuple[ChainOfTitle, ...] = ()

    @property
    def right(self) -> Right:
        return self.links[0]

    @property
    def roots(self) -> tuple[Right, ...]:
        """The original holding rights the title comes from."""
        if not self.bases:
            return (self.links[-1],)
        return tuple(dict.fromkeys(r for b in self.bases for r in b.roots))

    def right_ids(self) -> tuple[str, ...]:
        """Every right in the chain, depth first, each once."""
        ids = [r.id for r in self.links]
        for basis in self.bases:
            ids.extend(basis.right_ids())
        return tuple(dict.fromkeys(ids))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (what a certificate quotes and the verification page draws)."""
        return {
            "links": [
                {
                    "id": r.id,
                    "kind": r.kind.value,
                    "origin": r.origin.value,
                    "holder_id": r.holder_id,
                    "asset_id": r.asset_id,
                    "status": r.status.value,
                }
                for r in self.links
            ],
            "bases": [b.as_dict() for b in self.bases],
        }


def _supports(book: RightsBook, right: Right, day: date | None) -> bool:
    """Whether ``right`` still carries the rights derived from it: it is in force, or it was
    transferred and its line of successors ends in a right in force."""
    current = book.current(right.id) if right.status is RightStatus.TRANSFERRED else right
    if not current.live:
        return False
    return day is None or current.term.covers(day)


def _parent_kinds(right: Right, rules: RegistryRules) -> frozenset[RightKind]:
    if right.origin is Origin.TRANSFERRED:
        return frozenset({right.kind})
    if rules.sublicensing_allowed:
        return frozenset({RightKind.HOLDING, RightKind.PROCESSING_USE})
    return frozenset({RightKind.HOLDING})


def chain_of_title(
    right_id: str,
    book: RightsBook,
    *,
    on: date | None = None,
    rules: RegistryRules | None = None,
) -> ChainOfTitle:
    """The unbroken chain from ``right_id`` to original holding rights, or ``BrokenChainOfTitle``.

    Each link is checked: the parent exists, is of a kind the child may come from, is on the same
    asset, and still carries the child (in force — on ``on`` when given — or transferred with a
    successor in force; for a transfer link, the parent was transferred *to* the child); the
    child's scope and term stay within the parent's. A derived product-operation right's bases
    must be held by the party that derived it and contain its purposes, regions, delivery modes
    and term. The right asked about may itself be in any status (so the verification page can
    show the chain of a revoked certificate's right); every right in force must have a chain.
    """
    rules = rules or load_registry_rules()
    right = book.right(right_id)
    return _chain(book, right, right.id, on, rules, frozenset())


def _break(message: str, rules: RegistryRules, **params: Any) -> BrokenChainOfTitle:
    return BrokenChainOfTitle(
        message, rule=rules.rule_id("chain_of_title"), field="right", **params
    )


def _chain(
    book: RightsBook,
    right: Right,
    start: str,
    day: date | None,
    rules: RegistryRules,
    seen: frozenset[str],
) -> ChainOfTitle:
    links = [right]
    visited = set(seen) | {right.id}
    current = right
    while True:
        if current.origin is Origin.ORIGINAL:
            return ChainOfTitle(tuple(links))
        if current.origin is Origin.DERIVED:
            bases = []
            for basis_id in sorted(current.basis_ids):
                basis = _link_parent(book, current, basis_id, start, rules, visited)
                _check_basis(book, current, basis, start, day, rules)
                bases.append(_chain(book, basis, start, day, rules, frozenset(visited)))
            return ChainOfTitle(tuple(links), tuple(bases))
        assert current.parent_id is not None  # the shape check guarantees it
        parent = _link_parent(book, current, current.parent_id, start, rules, visited)
        _check_link(book, current, parent, start, day, rules)
        links.append(parent)
        visited.add(parent.id)
        current = parent


def _link_parent(
    book: RightsBook,
    child: Right,
    parent_id: str,
    start: str,
    rules: RegistryRules,
    visited: set[str],
) -> Right:
    if parent_id in visited:
        raise _break(MSG_CHAIN_CYCLE, rules, start=start, right=parent_id)
    parent = book.get(parent_id)
    if parent is None:
        raise _break(MSG_CHAIN_MISSING, rules, start=start, right=child.id, parent=parent_id)
    return parent


def _not_in_force(
    book: RightsBook, child: Right, parent: Right, start: str, rules: RegistryRules
) -> BrokenChainOfTitle:
    """The break at ``child`` whose ``parent`` no longer carries it, naming the root cause."""
    current = book.current(parent.id)
    if current.status is RightStatus.SUSPENDED and current.suspended_by not in (None, current.id):
        return _break(
            MSG_CHAIN_SUSPENDED,
            rules,
            start=start,
            right=child.id,
            parent=parent.id,
            cause=current.suspended_by,
        )
    return _break(
        MSG_CHAIN_NOT_IN_FORCE,
        rules,
        start=start,
        right=child.id,
        parent=parent.id,
        status=current.status.value,
    )


def _check_link(
    book: RightsBook,
    child: Right,
    parent: Right,
    start: str,
    day: date | None,
    rules: RegistryRules,
) -> None:
    if parent.kind not in _parent_kinds(child, rules):
        raise _break(
            MSG_CHAIN_KIND,
            rules,
            start=start,
            right=child.id,
            kind=child.kind.value,
            origin=child.origin.value,
            parent=parent.id,
            parent_kind=parent.kind.value,
        )
    if parent.asset_id != child.asset_id:
        raise _break(
            MSG_CHAIN_ASSET,
            rules,
            start=start,
            right=child.id,
            asset=child.asset_id,
            parent=parent.id,
            parent_asset=parent.asset_id,
        )
    if child.origin is Origin.TRANSFERRED:
        successor = book.successor(parent.id)
        if (
            parent.status is not RightStatus.TRANSFERRED
            or successor is None
            or successor.id != child.id
        ):
            raise _break(MSG_CHAIN_TRANSFER, rules, start=start, right=child.id, parent=parent.id)
        # Record to record: the successor took the predecessor's scope and end. A transferred
        # holding right stands in its predecessor's shoes and may be renewed on its own; a
        # transferred licence or product right cannot outlive the one it succeeds.
        title, bound = child, parent
        term_ok = child.kind is RightKind.HOLDING or child.term.ends_within(parent.term)
    else:
        if not _supports(book, parent, day):
            raise _not_in_force(book, child, parent, start, rules)
        # What the child's title is now (its latest successor, perhaps narrowed) must lie within
        # what the parent's title is now (the parent's latest successor, perhaps narrowed or
        # renewed); the start is compared on the records, as it was when the licence was granted.
        title, bound = book.current(child.id), book.current(parent.id)
        term_ok = child.term.start >= parent.term.start and title.term.ends_within(bound.term)
    beyond = title.scope.excess(bound.scope)
    if beyond:
        name, values = next(iter(beyond.items()))
        raise _break(
            MSG_CHAIN_SCOPE,
            rules,
            start=start,
            right=child.id,
            parent=parent.id,
            dimension=name,
            values=", ".join(values),
        )
    if not term_ok:
        raise _break(MSG_CHAIN_TERM, rules, start=start, right=child.id, parent=parent.id)


def _check_basis(
    book: RightsBook,
    product_right: Right,
    basis: Right,
    start: str,
    day: date | None,
    rules: RegistryRules,
) -> None:
    if basis.kind not in (RightKind.HOLDING, RightKind.PROCESSING_USE):
        raise _break(
            MSG_CHAIN_KIND,
            rules,
            start=start,
            right=product_right.id,
            kind=product_right.kind.value,
            origin=product_right.origin.value,
            parent=basis.id,
            parent_kind=basis.kind.value,
        )
    if basis.holder_id != product_right.holder_id:
        raise _break(
            MSG_CHAIN_BASIS_HOLDER,
            rules,
            start=start,
            right=product_right.id,
            parent=basis.id,
            parent_holder=basis.holder_id,
            holder=product_right.holder_id,
        )
    if not _supports(book, basis, day):
        raise _not_in_force(book, product_right, basis, start, rules)
    title, bound = book.current(product_right.id), book.current(basis.id)
    beyond = title.scope.excess(bound.scope, PRODUCT_DIMENSIONS)
    if beyond:
        name, values = next(iter(beyond.items()))
        raise _break(
            MSG_CHAIN_SCOPE,
            rules,
            start=start,
            right=product_right.id,
            parent=basis.id,
            dimension=name,
            values=", ".join(values),
        )
    if product_right.term.start < basis.term.start or not title.term.ends_within(bound.term):
        raise _break(MSG_CHAIN_TERM, rules, start=start, right=product_right.id, parent=basis.id)


# --- dependants and the cascade ---------------------------------------------------------------------


def title_dependants(book: RightsBook, right_id: str) -> tuple[Right, ...]:
    """Rights whose title rests directly on ``right_id``'s: its licences and successor, products
    derived from it, and the licences and products its predecessors in title granted before
    transferring (the right now carries them)."""
    found: dict[str, Right] = {}
    right = book.right(right_id)
    for r in (*book.children(right.id), *book.based_on(right.id)):
        found[r.id] = r
    line = {right.id}
    while right.origin is Origin.TRANSFERRED and right.parent_id is not None:
        predecessor = book.get(right.parent_id)
        if predecessor is None or predecessor.id in line:
            break
        line.add(predecessor.id)
        for r in (*book.children(predecessor.id), *book.based_on(predecessor.id)):
            if r.id not in line:
                found[r.id] = r
        right = predecessor
    return tuple(found.values())


def descendants(book: RightsBook, right_id: str) -> tuple[Right, ...]:
    """Every right whose title runs through ``right_id``, transitively (not ``right_id``)."""
    order: list[Right] = []
    seen = {right_id}
    queue = list(title_dependants(book, right_id))
    while queue:
        right = queue.pop(0)
        if right.id in seen:
            continue
        seen.add(right.id)
        order.append(right)
        queue.extend(
            r for r in (*book.children(right.id), *book.based_on(right.id)) if r.id not in seen
        )
    return tuple(order)


def _parties(rights: Iterable[Right]) -> set[str]:
    parties: set[str] = set()
    for right in rights:
        parties.add(right.holder_id)
        if right.pledge is not None:
            parties.add(right.pledge.pledgee_id)
    return parties


def _suspend_descendants(book: RightsBook, right_id: str) -> list[Right]:
    return [
        dataclasses.replace(r, status=RightStatus.SUSPENDED, suspended_by=right_id)
        for r in descendants(book, right_id)
        if r.live
    ]


# --- operations -------------------------------------------------------------------------------------


def require_holding(
    book: RightsBook,
    right_id: str,
    *,
    party_id: str,
    on: date,
    action: str = "change",
    rules: RegistryRules | None = None,
) -> RightsChange:
    """Check that ``party_id`` holds ``right_id``, in force on ``on`` with a whole chain of title.

    For registrations that change only a right's record (its asset's names or description): the
    change has no new right state, so ``updated`` holds the right as it is.
    """
    rules = rules or load_registry_rules()
    right = book.right(right_id)
    _require_holder(right, party_id, action, rules)
    _require_in_force(right, on, "changed", rules)
    chain_of_title(right.id, book, on=on, rules=rules)
    return RightsChange(EventTag.RIGHT_AMEND, rules.rule_id("holder"), updated=(right,))


def grant_holding(
    book: RightsBook,
    *,
    right_id: str,
    holder_id: str,
    asset_id: str,
    scope: Scope,
    term: Term,
    on: date,
    rules: RegistryRules | None = None,
) -> RightsChange:
    """Register an original holding right (首次登记 of a data resource).

    Refused when the asset already has a holding right that still claims it (in force or
    suspended): a second claim to the same data is a title dispute, decided by objection.
    """
    rules = rules or load_registry_rules()
    _require_new_id(book, right_id, rules)
    check_scope(scope, rules)
    _check_new_term(term, RightKind.HOLDING, on, rules)
    existing = _claim_on(book, asset_id, RightKind.HOLDING)
    if existing is not None:
        raise DuplicateRight(
            MSG_HOLDING_EXISTS,
            rule=rules.rule_id("holding_unique"),
            field="asset",
            asset=asset_id,
            right=existing.id,
            holder=existing.holder_id,
        )
    right = HoldingRight(right_id, holder_id, asset_id, scope, term, Origin.ORIGINAL)
    return RightsChange(EventTag.RIGHT_GRANT, rules.rule_id("chain_of_title"), created=(right,))


def license(
    book: RightsBook,
    parent_id: str,
    *,
    right_id: str,
    licensor_id: str,
    licensee_id: str,
    scope: Scope,
    term: Term,
    on: date,
    rules: RegistryRules | None = None,
) -> RightsChange:
    """License a processing-use right from ``parent_id`` (许可登记).

    The licensor must hold the parent; the parent must be a holding right (or a processing-use
    right when sub-licensing is allowed), unpledged, in force on ``on`` with an unbroken chain of
    title; the licence's scope and term must lie within the parent's and its term must end.
    """
    rules = rules or load_registry_rules()
    parent = book.right(parent_id)
    _require_holder(parent, licensor_id, "license", rules)
    allowed = {RightKind.HOLDING}
    if rules.sublicensing_allowed:
        allowed.add(RightKind.PROCESSING_USE)
    if parent.kind not in allowed:
        raise LicenceNotAllowed(
            MSG_LICENCE_KIND,
            rule=rules.rule_id("processing_use_parent"),
            field="parent",
            parent=parent.id,
            kind=parent.kind.value,
        )
    _require_unpledged(parent, "licensed further", rules)
    _require_in_force(parent, on, "licensed", rules)
    chain_of_title(parent.id, book, on=on, rules=rules)
    if licensee_id == licensor_id:
        raise LicenceNotAllowed(
            MSG_LICENCE_SELF,
            rule=rules.rule_id("processing_use_parent"),
            field="licensee",
            party=licensee_id,
            parent=parent.id,
        )
    _require_new_id(book, right_id, rules)
    _check_new_term(term, RightKind.PROCESSING_USE, on, rules)
    _require_term_within(term, parent, rules)
    check_scope(scope, rules)
    _require_scope_within(scope, parent, rules)
    right = ProcessingUseRight(
        right_id, licensee_id, parent.asset_id, scope, term, Origin.LICENSED, parent.id
    )
    return RightsChange(
        EventTag.RIGHT_LICENSE,
        rules.rule_id("processing_use_parent"),
        created=(right,),
        notify=frozenset({licensee_id}),
    )


def derive_product_operation(
    book: RightsBook,
    *,
    right_id: str,
    holder_id: str,
    product_id: str,
    lineage: Mapping[str, Iterable[str]],
    scope: Scope,
    term: Term,
    on: date,
    rules: RegistryRules | None = None,
) -> RightsChange:
    """Derive a product-operation right on ``product_id`` (首次登记 of a product).

    ``lineage`` maps each product to the assets it was derived from (resources, or other
    products whose own lineage is in the mapping). Every path from ``product_id`` must reach an
    asset on which ``holder_id`` holds a holding or processing-use right in force on ``on``; the
    right found on each is a basis (a holding right is preferred to a licence, then the longest
    term). The product right's purposes, regions, delivery modes and term lie within every basis.
    """
    rules = rules or load_registry_rules()
    _require_new_id(book, right_id, rules)
    check_scope(scope, rules)
    _check_new_term(term, RightKind.PRODUCT_OPERATION, on, rules)
    existing = _claim_on(book, product_id, RightKind.PRODUCT_OPERATION)
    if existing is not None:
        raise DuplicateRight(
            MSG_PRODUCT_EXISTS,
            rule=rules.rule_id("product_unique"),
            field="asset",
            asset=product_id,
            right=existing.id,
            holder=existing.holder_id,
        )
    sources = {k: tuple(v) for k, v in lineage.items()}
    if not sources.get(product_id):
        raise LineageNotCovered(
            MSG_NO_LINEAGE, rule=rules.rule_id("product_lineage"), field="lineage", asset=product_id
        )
    bases: dict[str, Right] = {}
    _cover(book, product_id, product_id, sources, holder_id, scope, term, on, rules, (), bases)
    for basis in bases.values():
        chain_of_title(basis.id, book, on=on, rules=rules)
    right = ProductOperationRight(
        right_id,
        holder_id,
        product_id,
        scope,
        term,
        Origin.DERIVED,
        basis_ids=frozenset(bases),
    )
    return RightsChange(EventTag.RIGHT_DERIVE, rules.rule_id("product_lineage"), created=(right,))


def _basis_order(right: Right) -> tuple[int, int, str]:
    end = right.term.end.toordinal() if right.term.end is not None else 10**7
    return (0 if right.kind is RightKind.HOLDING else 1, -end, right.id)


def _cover(
    book: RightsBook,
    product_id: str,
    node: str,
    sources: Mapping[str, tuple[str, ...]],
    holder_id: str,
    scope: Scope,
    term: Term,
    day: date,
    rules: RegistryRules,
    path: tuple[str, ...],
    bases: dict[str, Right],
) -> None:
    for source in sorted(set(sources.get(node, ()))):
        if source == product_id or source in path:
            raise LineageNotCovered(
                MSG_LINEAGE_CYCLE,
                rule=rules.rule_id("product_lineage"),
                field="lineage",
                asset=product_id,
                source=source,
            )
        held = sorted(
            book.held_by(holder_id, source, day, (RightKind.HOLDING, RightKind.PROCESSING_USE)),
            key=_basis_order,
        )
        if held:
            fitting = [
                r for r in held if scope.within(r.scope, PRODUCT_DIMENSIONS) and term.within(r.term)
            ]
            if not fitting:
                best = held[0]
                _require_scope_within(scope, best, rules, PRODUCT_DIMENSIONS)
                _require_term_within(term, best, rules)
            bases.setdefault(fitting[0].id, fitting[0])
        elif sources.get(source):
            _cover(
                book,
                product_id,
                source,
                sources,
                holder_id,
                scope,
                term,
                day,
                rules,
                (*path, node),
                bases,
            )
        else:
            raise LineageNotCovered(
                MSG_LINEAGE_UNCOVERED,
                rule=rules.rule_id("product_lineage"),
                field="lineage",
                asset=product_id,
                source=source,
                party=holder_id,
            )


def transfer(
    book: RightsBook,
    right_id: str,
    *,
    new_right_id: str,
    from_party: str,
    to_party: str,
    on: date,
    rules: RegistryRules | None = None,
) -> RightsChange:
    """Transfer a right (转移登记): end it and create its successor, held by ``to_party``.

    The successor has the same kind, asset and scope, the same end, and starts on ``on`` (or the
    old start, if later). Returns both new states — ``updated`` holds the ended right,
    ``created`` the successor — for the services to persist in one transaction; ``notify`` holds
    the new holder and the holders of rights derived from the old one (their licensor changed).
    """
    rules = rules or load_registry_rules()
    old = book.right(right_id)
    _require_holder(old, from_party, "transfer", rules)
    _require_unpledged(old, "transferred", rules)
    _require_in_force(old, on, "transferred", rules)
    chain_of_title(old.id, book, on=on, rules=rules)
    if to_party == from_party:
        raise InvalidRegistration(
            MSG_TRANSFER_SELF,
            rule=rules.rule_id("transfer"),
            field="to_party",
            right=old.id,
            party=to_party,
        )
    _require_new_id(book, new_right_id, rules)
    successor = type(old)(
        new_right_id,
        to_party,
        old.asset_id,
        old.scope,
        Term(max(old.term.start, on), old.term.end),
        Origin.TRANSFERRED,
        old.id,
    )
    ended = dataclasses.replace(old, status=RightStatus.TRANSFERRED)
    licensees = {r.holder_id for r in title_dependants(book, old.id) if r.live}
    return RightsChange(
        EventTag.RIGHT_TRANSFER,
        rules.rule_id("transfer"),
        created=(successor,),
        updated=(ended,),
        notify=frozenset({to_party} | licensees),
    )


def amend(
    book: RightsBook,
    right_id: str,
    *,
    by: str,
    on: date,
    scope: Scope | None = None,
    term: Term | None = None,
    authority: bool = False,
    rules: RegistryRules | None = None,
) -> RightsChange:
    """Change a right's scope or term (变更, 更正, 续展 registrations).

    The holder (or, with ``authority``, the registrar correcting a record) changes a right in
    force. The new scope and term must stay within what the right comes from (its licensor, its
    predecessor — a transferred holding right may be renewed beyond its predecessor's end — or
    its bases) and must still contain every right that derives from it. A pledged right can only
    be widened or extended.
    """
    rules = rules or load_registry_rules()
    right = book.right(right_id)
    if not authority:
        _require_holder(right, by, "change", rules)
    _require_in_force(right, on, "changed", rules)
    new_scope = right.scope if scope is None else check_scope(scope, rules)
    new_term = right.term if term is None else term
    if new_scope == right.scope and new_term == right.term:
        raise InvalidRegistration(MSG_NOTHING_TO_AMEND, rule=rules.rule_id("shape"), field="scope")
    _check_new_term(new_term, right.kind, on, rules)
    if right.pledge is not None and not (
        right.scope.within(new_scope) and right.term.within(new_term)
    ):
        raise RightPledged(
            MSG_PLEDGED_NARROW,
            rule=rules.rule_id("pledge_lock"),
            field="scope",
            right=right.id,
            pledgee=right.pledge.pledgee_id,
        )
    if right.origin is Origin.LICENSED:
        # Within what the licensor's title allows now (it may have been transferred).
        assert right.parent_id is not None
        parent = book.right(right.parent_id)
        bound = book.current(parent.id)
        _require_scope_within(new_scope, bound, rules)
        _require_term_within(new_term, bound, rules, start_from=parent.term.start)
    elif right.origin is Origin.TRANSFERRED:
        assert right.parent_id is not None
        parent = book.right(right.parent_id)
        _require_scope_within(new_scope, parent, rules)
        if right.kind is not RightKind.HOLDING:
            _require_term_within(new_term, parent, rules)
    for basis_id in sorted(right.basis_ids):
        basis = book.right(basis_id)
        bound = book.current(basis.id)
        _require_scope_within(new_scope, bound, rules, PRODUCT_DIMENSIONS)
        _require_term_within(new_term, bound, rules, start_from=basis.term.start)
    amended = dataclasses.replace(right, scope=new_scope, term=new_term)
    for dependant in title_dependants(book, right.id):
        current = book.current(dependant.id)
        if current.status not in _CLAIMING:
            continue
        dims = PRODUCT_DIMENSIONS if current.kind is RightKind.PRODUCT_OPERATION else DIMENSIONS
        beyond = current.scope.excess(new_scope, dims)
        # Ends are compared through transfers; starts only for what this right granted itself
        # (a licence its predecessor granted may well start before this right did).
        direct = dependant.parent_id == right.id or right.id in dependant.basis_ids
        term_ok = current.term.ends_within(new_term) and (
            not direct or dependant.term.start >= new_term.start
        )
        if beyond or not term_ok:
            what = (
                "{} {}".format(*next(iter(beyond.items())))
                if beyond
                else f"term {current.term.start} – {_show_end(current.term)}"
            )
            raise InvalidScope(
                MSG_AMEND_ORPHANS,
                rule=rules.rule_id("scope_within" if beyond else "term_within"),
                field="scope" if beyond else "term",
                right=right.id,
                child=current.id,
                what=what,
            )
    return RightsChange(EventTag.RIGHT_AMEND, rules.rule_id("scope_within"), updated=(amended,))


def renew(
    book: RightsBook,
    right_id: str,
    *,
    by: str,
    new_end: date,
    on: date,
    rules: RegistryRules | None = None,
) -> RightsChange:
    """Extend a right's term to ``new_end`` (续展登记); see ``amend``."""
    right = book.right(right_id)
    return amend(book, right_id, by=by, on=on, term=Term(right.term.start, new_end), rules=rules)


def pledge(
    book: RightsBook,
    right_id: str,
    *,
    holder_id: str,
    pledgee_id: str,
    on: date,
    registration_id: str | None = None,
    rules: RegistryRules | None = None,
) -> RightsChange:
    """Pledge a right in force to ``pledgee_id`` (质押登记); one pledge at a time."""
    rules = rules or load_registry_rules()
    right = book.right(right_id)
    _require_holder(right, holder_id, "pledge", rules)
    if right.pledge is not None:
        raise RightPledged(
            MSG_ALREADY_PLEDGED,
            rule=rules.rule_id("pledge_once"),
            field="right",
            right=right.id,
            pledgee=right.pledge.pledgee_id,
        )
    _require_in_force(right, on, "pledged", rules)
    chain_of_title(right.id, book, on=on, rules=rules)
    if pledgee_id == holder_id:
        raise InvalidRegistration(
            MSG_PLEDGE_SELF, rule=rules.rule_id("pledge_lock"), field="pledgee", right=right.id
        )
    pledged = dataclasses.replace(
        right, status=RightStatus.PLEDGED, pledge=Pledge(pledgee_id, on, registration_id)
    )
    return RightsChange(
        EventTag.RIGHT_PLEDGE,
        rules.rule_id("pledge_lock"),
        updated=(pledged,),
        notify=frozenset({pledgee_id}),
    )


def release_pledge(
    book: RightsBook,
    right_id: str,
    *,
    by: str,
    authority: bool = False,
    consented_by: str | None = None,
    rules: RegistryRules | None = None,
) -> RightsChange:
    """Release the pledge on a right (质押注销登记).

    By the pledgee alone; by the holder jointly with the pledgee (``consented_by`` names the
    party that consented, which must be the pledgee); or with ``authority`` by the registrar
    (e.g. on a court order). A pledged right becomes active; a suspended or ended one keeps its
    status, without the pledge.
    """
    rules = rules or load_registry_rules()
    right = book.right(right_id)
    if right.pledge is None:
        raise NotPledged(
            MSG_NOT_PLEDGED, rule=rules.rule_id("pledge_lock"), field="right", right=right.id
        )
    pledgee = right.pledge.pledgee_id
    joint = by == right.holder_id and consented_by == pledgee
    if not authority and by != pledgee and not joint:
        raise NotRightHolder(
            MSG_NOT_PLEDGEE,
            rule=rules.rule_id("pledge_lock"),
            field="right",
            right=right.id,
            pledgee=right.pledge.pledgee_id,
        )
    status = RightStatus.ACTIVE if right.status is RightStatus.PLEDGED else right.status
    released = dataclasses.replace(right, status=status, pledge=None)
    return RightsChange(
        EventTag.RIGHT_RELEASE,
        rules.rule_id("pledge_lock"),
        updated=(released,),
        notify=frozenset({right.holder_id, right.pledge.pledgee_id}),
    )


def cancel(
    book: RightsBook,
    right_id: str,
    *,
    by: str,
    rules: RegistryRules | None = None,
) -> RightsChange:
    """The holder gives a right up (注销登记); every right derived from it is suspended.

    Refused while the right is pledged. ``notify`` holds the holders (and pledgees) of the
    suspended rights.
    """
    rules = rules or load_registry_rules()
    right = book.right(right_id)
    _require_holder(right, by, "cancel", rules)
    _require_unpledged(right, "cancelled", rules)
    if right.status not in (RightStatus.ACTIVE, RightStatus.SUSPENDED):
        raise RightNotInForce(
            MSG_ENDED,
            rule=rules.rule_id("cascade"),
            field="right",
            right=right.id,
            status=right.status.value,
            action="cancelled",
        )
    suspended = _suspend_descendants(book, right.id)
    ended = dataclasses.replace(right, status=RightStatus.CANCELLED)
    return RightsChange(
        EventTag.RIGHT_CANCEL,
        rules.rule_id("cascade"),
        updated=(ended, *suspended),
        notify=frozenset(_parties(suspended)),
    )


def revoke(
    book: RightsBook,
    right_id: str,
    *,
    rules: RegistryRules | None = None,
) -> RightsChange:
    """The registrar revokes a right (撤销登记: false materials, a substantiated objection ...).

    Not blocked by a pledge. Every right derived from it is suspended; ``notify`` holds its
    holder and pledgee and the holders and pledgees of the suspended rights.
    """
    rules = rules or load_registry_rules()
    right = book.right(right_id)
    if right.status not in _CLAIMING:
        raise RightNotInForce(
            MSG_ENDED,
            rule=rules.rule_id("cascade"),
            field="right",
            right=right.id,
            status=right.status.value,
            action="revoked",
        )
    suspended = _suspend_descendants(book, right.id)
    ended = dataclasses.replace(right, status=RightStatus.REVOKED)
    return RightsChange(
        EventTag.RIGHT_REVOKE,
        rules.rule_id("cascade"),
        updated=(ended, *suspended),
        notify=frozenset(_parties((right, *suspended))),
    )


def suspend(
    book: RightsBook,
    right_id: str,
    *,
    rules: RegistryRules | None = None,
) -> RightsChange:
    """The registrar suspends a right in force (an objection registration, a dispute); every
    right derived from it is suspended with it, and reinstated with it."""
    rules = rules or load_registry_rules()
    right = book.right(right_id)
    if right.status is RightStatus.SUSPENDED:
        raise TransitionNotAllowed(
            MSG_ALREADY_SUSPENDED, rule=rules.rule_id("cascade"), field="right", right=right.id
        )
    if not right.live:
        raise RightNotInForce(
            MSG_ENDED,
            rule=rules.rule_id("cascade"),
            field="right",
            right=right.id,
            status=right.status.value,
            action="suspended",
        )
    suspended = _suspend_descendants(book, right.id)
    held = dataclasses.replace(right, status=RightStatus.SUSPENDED, suspended_by=right.id)
    return RightsChange(
        EventTag.RIGHT_SUSPEND,
        rules.rule_id("cascade"),
        updated=(held, *suspended),
        notify=frozenset(_parties((right, *suspended))),
    )


def reinstate(
    book: RightsBook,
    right_id: str,
    *,
    on: date,
    rules: RegistryRules | None = None,
) -> RightsChange:
    """Lift a suspension made by ``suspend``; the rights it suspended come back too.

    Only a right suspended on its own account (``suspended_by`` is itself) is reinstated, and only
    while its chain of title is whole and its term runs. Every right derived from it that a
    cascade suspended comes back if its own chain of title is whole again (a right it also rests
    on may have been cancelled meanwhile: then it stays suspended); one whose term has ended stays
    suspended (the next ``expire`` ends it). A right suspended on its own account stays so.
    """
    rules = rules or load_registry_rules()
    right = book.right(right_id)
    if right.status is not RightStatus.SUSPENDED:
        raise TransitionNotAllowed(
            MSG_NOT_SUSPENDED, rule=rules.rule_id("cascade"), field="right", right=right.id
        )
    if right.suspended_by != right.id:
        raise TransitionNotAllowed(
            MSG_CAUSED_ELSEWHERE,
            rule=rules.rule_id("cascade"),
            field="right",
            right=right.id,
            cause=right.suspended_by,
        )
    if not right.term.covers(on):
        raise RightNotInForce(
            MSG_OUT_OF_TERM,
            rule=rules.rule_id("cascade"),
            field="right",
            right=right.id,
            day=on.isoformat(),
            start=right.term.start.isoformat(),
            end=_show_end(right.term),
        )
    chain_of_title(right.id, book, on=on, rules=rules)

    def restored(r: Right) -> Right:
        status = RightStatus.PLEDGED if r.pledge is not None else RightStatus.ACTIVE
        return dataclasses.replace(r, status=status, suspended_by=None)

    # A right suspended by a cascade (not on its own account) was suspended because its chain
    # of title broke; it comes back as soon as the chain is whole again, whichever suspension
    # caused it — but not while another right it rests on is still cancelled or suspended.
    # Restoring in rounds lets a product right wait for all of its bases.
    rule = rules.rule_id("cascade")
    book = book.apply(RightsChange(EventTag.RIGHT_REINSTATE, rule, updated=(restored(right),)))
    pending = [
        r
        for r in descendants(book, right.id)
        if r.status is RightStatus.SUSPENDED
        and r.suspended_by != r.id
        and (r.term.end is None or r.term.end >= on)
    ]
    back: list[Right] = []
    progress = True
    while progress:
        progress = False
        for candidate in list(pending):
            try:
                chain_of_title(candidate.id, book, on=on, rules=rules)
            except RegistryError:
                continue
            back.append(restored(candidate))
            book = book.apply(RightsChange(EventTag.RIGHT_REINSTATE, rule, updated=(back[-1],)))
            pending.remove(candidate)
            progress = True
    return RightsChange(
        EventTag.RIGHT_REINSTATE,
        rules.rule_id("cascade"),
        updated=(restored(right), *back),
        notify=frozenset(_parties((right, *back))),
    )


def expire(
    book: RightsBook,
    on: date,
    *,
    rules: RegistryRules | None = None,
) -> RightsChange | None:
    """End every right (in force or suspended) whose term ended before ``on``; None if none.

    No cascade is needed: every derived right's term ends no later than its parent's.
    """
    rules = rules or load_registry_rules()
    ended = [
        dataclasses.replace(r, status=RightStatus.EXPIRED)
        for r in book.values()
        if r.status in _CLAIMING and r.term.end is not None and r.term.end < on
    ]
    if not ended:
        return None
    return RightsChange(
        EventTag.RIGHT_EXPIRE,
        rules.rule_id("term_within"),
        updated=tuple(sorted(ended, key=lambda r: r.id)),
        notify=frozenset(_parties(ended)),
    )


# --- the whole book ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TitleProblem:
    """A broken invariant found by ``audit_book``: the right, the rule, and what is wrong."""

    right_id: str
    rule: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"right_id": self.right_id, "rule": self.rule, "message": self.message}


def audit_book(
    book: RightsBook, *, on: date | None = None, rules: RegistryRules | None = None
) -> tuple[TitleProblem, ...]:
    """Every broken invariant of ``book`` (empty when sound): each right in force has a chain of
    title (checked on ``on`` when given), an asset has at most one holding right and a product at
    most one product-operation right still claiming it, and a transferred right has exactly one
    successor."""
    rules = rules or load_registry_rules()
    problems: list[TitleProblem] = []
    for right in book.values():
        if right.live:
            try:
                chain_of_title(right.id, book, on=on, rules=rules)
            except RegistryError as exc:
                problems.append(TitleProblem(right.id, exc.rule, str(exc)))
        if right.status is RightStatus.TRANSFERRED:
            successors = [c for c in book.children(right.id) if c.origin is Origin.TRANSFERRED]
            if len(successors) != 1:
                problems.append(
                    TitleProblem(
                        right.id,
                        rules.rule_id("transfer"),
                        f"transferred right {right.id} has {len(successors)} successors",
                    )
                )
    for kind, key in (
        (RightKind.HOLDING, "holding_unique"),
        (RightKind.PRODUCT_OPERATION, "product_unique"),
    ):
        claims: dict[str, list[str]] = {}
        for right in book.values():
            if right.kind is kind and right.status in _CLAIMING:
                claims.setdefault(right.asset_id, []).append(right.id)
        for asset, ids in sorted(claims.items()):
            if len(ids) > 1:
                problems.append(
                    TitleProblem(
                        sorted(ids)[1],
                        rules.rule_id(key),
                        f"asset {asset} has {len(ids)} {kind} rights: {', '.join(sorted(ids))}",
                    )
                )
    return tuple(problems)
