"""Contracts (数据交易合同): one state machine for every trade, its signatures and its clock.

A mall purchase, an agreed negotiation and a won auction each end in ``open_contract``: the terms
become the contract's document (canonical JSON: parties with names and codes, the listing and its
certificate, quantity, price, amount, channels, the ODRL policy, term, trade kind, the rules
version, the Data Security Law art. 33 records it rests on), its SHA-256, a number
``GX-DC-<year>-<serial>`` and the state the trade reached (normally ``accepted``: awaiting
signatures) with that state's deadline. The buyer's escrow hold is already frozen by the caller in
the same transaction.

Every later step is one use case here, in the caller's transaction (the entry point opens
``db.write()``): the administrators of buyer and seller — and, for an agreement trade, the broker —
sign the document with the Ed25519 key the platform holds for their party after the user
confirms (``sign_contract``; a signature that does not verify is never stored); with all
signatures the contract is ``signed``, its hash, signatures and verifier keys go to the ledger,
and it becomes ``active`` at once, or at the start of its term. The buyer accepts delivery
(``confirm_delivery`` → completed, settled); either party terminates before signing (escrow
released); a party raises a dispute with grounds (money stays frozen); the exchange's
administrator resolves it for the seller, for the buyer, or split. ``apply_deadline`` is what the
clock (``jobs.run_deadlines``) does to one contract past its deadline, under its row lock:
unsigned or unanswered → terminated and released; signed → active at the term start; active and
delivered → deemed accepted and settled, never delivered → terminated and released; disputed →
escalated to the regulators and extended (money never moves on a timer in a dispute).

Each move checks ``CONTRACT_TRANSITIONS``, writes a history row with its reason and rule ids,
audits for every party, and tells the parties through the inbox. Money moves only through
``settle`` (release / settle), which keys every movement by the contract, so a retried step
never moves money twice.

The ledger entry of a signed contract carries the document's hash, the signatures and the
verifier keys, not the document itself: the ledger is public forever and the document holds
names, identifiers and commercial terms; anyone holding the document (both parties, the PDF)
checks it against the hash and the signatures against the keys.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Concatenate, Final, ParamSpec, TypeVar, cast

from sqlalchemy import Table, func, or_, select
from sqlalchemy.orm import Session

from datafactor import audit, identity, inbox, ledger
from datafactor.db import CHINA, new_id, utcnow
from datafactor.errors import N_
from datafactor.exchange import listings, pdf, serials, settle
from datafactor.exchange.domain import (
    CONTRACT_DEADLINES,
    CONTRACT_STATE_LABELS,
    CONTRACT_TRANSITIONS,
    FINAL_CONTRACT_STATES,
    Channel,
    ContractAction,
    ContractState,
    TradeKind,
    may_move,
    number,
)
from datafactor.exchange.errors import (
    ExchangeForbidden,
    ExchangeInvalid,
    ExchangeNotFound,
    ExchangeStateConflict,
)
from datafactor.exchange.keys import PartyKeys, verify_record
from datafactor.exchange.models import (
    ExchangeContract,
    ExchangeContractEvent,
    ExchangeListing,
    ExchangeListingReview,
)
from datafactor.exchange.rulebook import exchange_rules
from datafactor.fastsql import Raw, Rows
from datafactor.permissions import Permission, Principal

P = Permission
S = ContractState
A = ContractAction

KIND: Final = "exchange.contract"  # the inbox kind of every message about a contract
SYSTEM: Final = "exchange-clock"  # the actor name of the deadline clock's steps
LEDGER_KIND: Final = "exchange.contract.signed"
DOCUMENT_FORMAT: Final = "datafactor-exchange-contract/v1"
RECORD_FORMAT: Final = "datafactor-exchange-contract-signed/v1"
SERIAL_KIND: Final = "C"
ROLES: Final = ("seller", "buyer", "broker")
DSL_ART_33: Final = "中华人民共和国数据安全法 第三十三条"

MSG_NOT_FOUND: Final = N_("No such contract (rule {rule}).")
MSG_NOT_ALLOWED: Final = N_(
    "Your account is not allowed to do this ({permission}): ask your party's administrator "
    "(rule {rule})."
)
MSG_NOT_PARTY: Final = N_(
    "Only the buyer, the seller or the broker of contract {number} can do this (rule {rule})."
)
MSG_NOT_BROKER: Final = N_(
    "Your firm is not registered as a data broker, so it cannot co-sign contract {number} "
    "(rule {rule})."
)
MSG_BAD_STATE: Final = N_(
    "Contract {number} is {state}: this step is not possible in that state (rule {rule})."
)
MSG_CONFIRM: Final = N_(
    "Read the contract and tick the confirmation box to sign it: a signature binds your party "
    "(rule {rule})."
)
MSG_SIGNED_ALREADY: Final = N_("Your party has already signed contract {number} (rule {rule}).")
MSG_NOT_SIGNER: Final = N_("Contract {number} needs no signature from your party (rule {rule}).")
MSG_PAST_DEADLINE: Final = N_(
    "The deadline of contract {number} passed at {deadline}: it is being closed and cannot be "
    "changed any more (rule {rule})."
)
MSG_TAMPERED: Final = N_(
    "The document of contract {number} no longer matches its fingerprint: it was altered after "
    "it was drawn up. Nothing was signed; tell the exchange (rule {rule})."
)
MSG_BAD_SIGNATURE: Final = N_(
    "The signature made for contract {number} does not verify against your party's key, so it "
    "was not stored. Try again, and tell the exchange if it happens again (rule {rule})."
)
MSG_NOT_DELIVERED: Final = N_(
    "Nothing has been delivered under contract {number} yet: accept it after the delivery "
    "(rule {rule})."
)
MSG_REASON_NEEDED: Final = N_("Give the reason for this step (rule {rule}).")
MSG_REASON_LONG: Final = N_("Keep the reason within {max} characters (rule {rule}).")
MSG_BAD_OUTCOME: Final = N_(
    "Decide the dispute for the seller, for the buyer, or split the amount (rule {rule})."
)
MSG_BAD_SPLIT: Final = N_(
    "A split pays the seller part of the amount: more than 0 and less than {amount} fen "
    "(rule {rule})."
)
MSG_BAD_FILTER: Final = N_("{name} must be one of {allowed} (rule {rule}).")
MSG_BAD_DRAFT: Final = N_("The contract's terms are not valid: {problem} (rule {rule}).")

# Inbox messages (each party reads them in its own language).
MSG_OPENED: Final = N_(
    "Contract {number} for “{title}” was drawn up ({amount} fen) and awaits signatures until "
    "{deadline}."
)
MSG_STATE: Final = N_("Contract {number} for “{title}” is now “{state_label}”. {reason}")
MSG_SIGNED_BY: Final = N_(
    "Contract {number} for “{title}” was signed by the {role_label}; it awaits the other "
    "signatures until {deadline}."
)
MSG_ESCALATED: Final = N_(
    "The dispute over contract {number} for “{title}” was not decided by {deadline}: it is "
    "reported to the regulators and the exchange must decide it by {extended}."
)
MSG_DISPUTE_RAISED: Final = N_(
    "A dispute was raised over contract {number} for “{title}”: the exchange decides it by "
    "{deadline}. The payment stays frozen meanwhile."
)

# System reasons (stored as msgids with parameters, shown in the reader's language).
WHY_EXPIRED: Final = N_("The deadline passed at {deadline} without the next step.")
WHY_ACTIVE: Final = N_("All parties signed; delivery can start.")
WHY_TERM_STARTED: Final = N_("The term started on {start}; delivery can start.")
WHY_NOT_DELIVERED: Final = N_(
    "Nothing was delivered within {days} days of the contract taking effect."
)
WHY_DEEMED: Final = N_("Delivery was not disputed within {days} days, so it is deemed accepted.")
WHY_ACCEPTED: Final = N_("The buyer accepted the delivery.")
WHY_FOR_SELLER: Final = N_("The exchange decided the dispute for the seller: {reason}")
WHY_FOR_BUYER: Final = N_("The exchange decided the dispute for the buyer: {reason}")
WHY_SPLIT: Final = N_(
    "The exchange split the amount: {pay} fen to the seller, the rest back to the buyer: {reason}"
)
WHY_ESCALATED: Final = N_("Not decided by {deadline}: reported to the regulators.")

# Labels of the audit tags the contracts write (the audit pages show them).
AUDIT_LABELS: Final = {
    "exchange:contract:open": N_("Contract drawn up"),
    "exchange:contract:sign": N_("Contract signed"),
    "exchange:contract:activate": N_("Contract took effect"),
    "exchange:contract:confirm": N_("Delivery accepted"),
    "exchange:contract:complete": N_("Contract completed"),
    "exchange:contract:terminate": N_("Contract terminated"),
    "exchange:contract:expire": N_("Contract deadline passed"),
    "exchange:contract:dispute": N_("Contract dispute raised"),
    "exchange:contract:resolve": N_("Contract dispute decided"),
    "exchange:contract:escalate": N_("Contract dispute reported to the regulators"),
}
audit.register_action_labels(AUDIT_LABELS)

ROLE_LABELS: Final = {
    "seller": N_("seller"),
    "buyer": N_("buyer"),
    "broker": N_("broker"),
}


# ----------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class ContractDraft:
    """The terms a trade reached: who, what, how much, how delivered, under which policy, for
    how long, and the escrow hold that secures the price."""

    kind: TradeKind
    listing: ExchangeListing | listings.TradeListing  # the mall order's: its locked row's columns
    buyer_id: str
    quantity: int
    price_fen: int  # per unit
    amount_fen: int  # the total frozen in escrow
    channels: tuple[str, ...]
    policy: dict[str, Any]
    term_start: date
    term_end: date
    hold_id: str | None
    broker_id: str | None = None
    order_id: str | None = None
    negotiation_id: str | None = None
    auction_id: str | None = None
    cross_border: bool = False
    state: ContractState = ContractState.ACCEPTED


@dataclass(frozen=True)
class ContractQuery:
    """Filters of a contract list: state, the caller's role in it, trade kind."""

    state: str | None = None
    role: str | None = None  # buyer | seller | broker
    kind: str | None = None


@dataclass(frozen=True)
class SignatureCheck:
    """One party's signature on a contract and whether it verifies over the stored document."""

    role: str
    party_id: str
    signed_by: str | None
    signed_at: datetime | None
    signature: str | None
    key: str | None
    valid: bool

    @property
    def key_id(self) -> str:
        """The key's short id (the middle part of ``<name>+<key id>+<key>``)."""
        parts = (self.key or "").split("+")
        return parts[1] if len(parts) == 3 else ""


@dataclass
class DeadlineOutcome:
    """What the clock did to one contract (``action`` None: nothing was due any more)."""

    contract_id: str
    number: str
    action: str | None
    source: str
    target: str


@dataclass
class DeadlineReport:
    """One run of the deadline clock: what it did, and the contracts it could not handle."""

    done: list[DeadlineOutcome] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for item in self.done:
            if item.action is not None:
                key = f"{item.source}->{item.target}" if item.source != item.target else item.action
                out[key] = out.get(key, 0) + 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "changed": sum(1 for d in self.done if d.action is not None),
            "counts": self.counts(),
            "contracts": [
                {
                    "id": d.contract_id,
                    "number": d.number,
                    "action": d.action,
                    "from": d.source,
                    "to": d.target,
                }
                for d in self.done
                if d.action is not None
            ],
            "failed": list(self.failed),
        }


# ----------------------------------------------------------------------------------- rules


def _rules() -> Any:
    return exchange_rules()


def rule_id(key: str) -> str:
    return str(_rules().rule_id(key))


def _days(key: str) -> int:
    return int(_rules().data["contracts"]["deadline_days"][key])


def contract_settings() -> Mapping[str, Any]:
    """The contracts' values from the rules file (deadline lengths, clock poll, limits)."""
    data: Mapping[str, Any] = _rules().data["contracts"]
    return data


def poll_seconds() -> float:
    return float(contract_settings().get("poll_seconds", 60))


def china_day(moment: datetime) -> date:
    return moment.astimezone(CHINA).date()


def day_start(day: date) -> datetime:
    """Midnight at the start of ``day`` in China, as UTC."""
    return datetime.combine(day, time.min, CHINA).astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def show_time(moment: datetime | None) -> str:
    """A moment as people in Guangxi read it (the inbox keeps parameters as text)."""
    if moment is None:
        return "—"
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


def document_hash(document: Mapping[str, Any]) -> str:
    """SHA-256 of the document's RFC 8785 canonical JSON (what every party signs)."""
    return hashlib.sha256(canonical_document(document)).hexdigest()


def canonical_document(document: Mapping[str, Any]) -> bytes:
    """``ledger.canonical_json(document)``, by the json module's C encoder when it writes the
    same bytes: every trade hashes its contract's document, and the pure-Python canonical form
    cost more than the rest of drawing it up. They agree when the document holds only plain
    dicts with ASCII keys (code-point and UTF-16 order are then the same), lists, plain strings
    (both escape exactly ``"``, ``\\`` and the controls, the same way), bools, None and
    integers within ±2**53; anything else (a float, a larger integer, a non-ASCII key, a
    subclass, a lone surrogate) goes to ``ledger.canonical_json``."""
    if _plain_json(document):
        try:
            return json.dumps(
                document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
            ).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: the canonical form refuses it
    return ledger.canonical_json(dict(document))


_SAFE_INT: Final = 2**53


def _plain_json(value: object) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is dict:
            for key, inner in item.items():  # type: ignore[attr-defined]
                if type(key) is not str or not key.isascii():
                    return False
                stack.append(inner)
        elif kind is list:
            stack.extend(item)  # type: ignore[arg-type]
        elif kind is int:
            if not -_SAFE_INT <= item <= _SAFE_INT:  # type: ignore[operator]
                return False
        else:
            return False
    return True


def required_roles(contract: ExchangeContract) -> tuple[str, ...]:
    """Who must sign: buyer and seller; the broker too for an agreement trade it brokered."""
    if contract.kind == TradeKind.AGREEMENT.value and contract.broker_id:
        return ("seller", "buyer", "broker")
    return ("seller", "buyer")


def party_of(contract: ExchangeContract, role: str) -> str | None:
    return {"seller": contract.seller_id, "buyer": contract.buyer_id, "broker": contract.broker_id}[
        role
    ]


def roles_of(contract: ExchangeContract, party_id: str) -> tuple[str, ...]:
    return tuple(r for r in ROLES if party_of(contract, r) == party_id)


def parties(contract: ExchangeContract) -> list[str]:
    return sorted({p for p in (contract.seller_id, contract.buyer_id, contract.broker_id) if p})


def _system_reader() -> Principal:
    """The service reading the parties of a contract (names, codes, status): read only."""
    return Principal(
        user_id="",
        username=SYSTEM,
        party_id="",
        party_kind="",
        roles=frozenset(),
        permissions=frozenset({P.IDENTITY_PARTY_READ, P.IDENTITY_PARTY_READ_ALL}),
        via="cli",
    )


def _party_card(session: Session, party_id: str) -> dict[str, Any]:
    """A party as the contract names it (an organisation's registered name and code)."""
    party = listings.party_row(session, party_id)
    if party is None:  # an unknown id is refused by the caller's checks; name it by id
        return {
            "id": party_id,
            "name": party_id,
            "name_en": "",
            "code_type": "",
            "code": "",
            "country": "",
            "kind": "",
            "verified": False,
        }
    return {
        "id": party.id,
        "name": party.name,
        "name_en": party.name_en or "",
        "code_type": party.code_type,
        "code": party.code,
        "country": party.country,
        "kind": party.kind,
        "verified": str(party.status) == identity.PartyStatus.VERIFIED.value,
    }


def _service_role(session: Session, party_id: str) -> str | None:
    try:
        return identity.get_party(session, _system_reader(), party_id).service_role
    except Exception:
        return None


def _parties_of_kind(session: Session, kind: str) -> list[str]:
    rows, _ = identity.list_parties(
        session,
        _system_reader(),
        identity.PartyQuery(status=identity.PartyStatus.VERIFIED.value, kind=kind),
        limit=200,
        offset=0,
    )
    return [p.id for p in rows]


# ----------------------------------------------------------------------------------- audits


# The audit chain's head is one row every writer locks: it must be the LAST lock a transaction
# takes, or a contract move holding it while it waits for a listing or a balance row, and a trade
# holding that row while it waits for the head, deadlock (PostgreSQL aborts one). So a move's
# audit records wait in the session until the use case has done everything else (the trade's
# hook, the escrow, the ledger), and are written at its end; a use case that fails drops them
# with its savepoint or transaction.
_PENDING_AUDIT: Final = "exchange.contract.pending_audit"
_P = ParamSpec("_P")
_R = TypeVar("_R")


@contextmanager
def _audits_last(session: Session) -> Iterator[None]:
    """Hold back the contract audit records written inside until the block has finished (the
    outermost block writes them; a block that raises drops its own)."""
    if _PENDING_AUDIT in session.info:  # inside another use case: it writes them
        pending: list[dict[str, Any]] = session.info[_PENDING_AUDIT]
        mark = len(pending)
        try:
            yield
        except BaseException:
            del pending[mark:]  # this block's own records go with its failure
            raise
        return
    session.info[_PENDING_AUDIT] = []
    try:
        yield
    except BaseException:
        session.info.pop(_PENDING_AUDIT, None)
        raise
    audit.append(session, session.info.pop(_PENDING_AUDIT))


def record_audit(session: Session, **record: Any) -> None:
    """``audit.record`` for a trade's hook (``on_contract_ended``): held back to the end of the
    contract use case that runs the hook, so the audit head stays the last lock; at once
    anywhere else."""
    pending: list[dict[str, Any]] | None = session.info.get(_PENDING_AUDIT)
    if pending is None:
        audit.record(session, **record)
    else:
        pending.append(record)


def audits_last(
    fn: Callable[Concatenate[Session, _P], _R],
) -> Callable[Concatenate[Session, _P], _R]:
    """A use case whose contract audit records are written after everything else it does."""

    @functools.wraps(fn)
    def run(session: Session, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _audits_last(session):
            return fn(session, *args, **kwargs)

    return run


# ----------------------------------------------------------------------------------- opening


def _next_number(session: Session, year: int) -> str:
    """The next contract number of ``year``."""
    return number("DC", year, serials.take(session, SERIAL_KIND, year))


def _check_draft(draft: ContractDraft) -> None:
    problem = None
    if draft.state not in (S.REQUESTED, S.OFFERED, S.ACCEPTED):
        problem = f"a contract starts requested, offered or accepted, not {draft.state}"
    elif draft.quantity < 1:
        problem = "the quantity must be at least 1"
    elif draft.price_fen < 0 or draft.amount_fen < 0:
        problem = "prices and amounts are never negative"
    elif draft.term_end < draft.term_start:
        problem = "the term ends before it starts"
    elif draft.buyer_id == draft.listing.seller_id:
        problem = "the buyer is the seller"
    elif not draft.channels or any(c not in {x.value for x in Channel} for c in draft.channels):
        problem = "the delivery channels must be download, api or sandbox"
    elif draft.amount_fen > 0 and not draft.hold_id:
        problem = "a paid contract needs the escrow hold that secures its amount"
    if problem is not None:
        raise ExchangeInvalid(MSG_BAD_DRAFT, rule=rule_id("contract_transition"), problem=problem)


def _records(
    session: Session,
    listing: ExchangeListing | listings.TradeListing,
    cards: Mapping[str, Any],
) -> dict[str, Any]:
    """The Data Security Law art. 33 records the trade rests on: both parties verified, the
    seller's declaration (statement of data source) and the listing's review record (the mall
    order's listing was read with it)."""
    review = (
        listing.review_id
        if isinstance(listing, listings.TradeListing)
        else session.scalar(
            select(ExchangeListingReview.id)
            .where(ExchangeListingReview.listing_id == listing.id)
            .order_by(ExchangeListingReview.created_at.desc(), ExchangeListingReview.id.desc())
            .limit(1)
        )
    )
    declaration = (
        hashlib.sha256(ledger.canonical_json(dict(listing.declaration))).hexdigest()
        if listing.declaration
        else None
    )
    return {
        "law": DSL_ART_33,
        "parties_verified": {
            role: bool(card["verified"]) for role, card in cards.items() if card is not None
        },
        "declaration_sha256": declaration,
        "declared_at": _iso(listing.declared_at) if listing.declared_at else None,
        "listing_review_id": review,
        "certificate_number": listing.certificate_number,
    }


def build_document(
    session: Session, draft: ContractDraft, contract_number: str | None, now: datetime
) -> dict[str, Any]:
    """The contract as every party signs it (only JSON values: it is hashed canonically); the
    caller fills in a ``None`` number before hashing it."""
    listing = draft.listing
    rules = _rules()
    cards: dict[str, Any] = {
        "seller": _party_card(session, listing.seller_id),
        "buyer": _party_card(session, draft.buyer_id),
        "broker": _party_card(session, draft.broker_id) if draft.broker_id else None,
    }
    return {
        "format": DOCUMENT_FORMAT,
        "number": contract_number,
        "kind": draft.kind.value,
        "issued_at": _iso(now),
        "parties": cards,
        "object": {
            "listing_id": listing.id,
            "listing_number": listing.number,
            "listing_kind": listing.kind,
            "title": listing.title,
            "title_en": listing.title_en or "",
            "asset_id": listing.asset_id,
            "right_id": listing.right_id,
            "certificate_number": listing.certificate_number,
            "price_model": listing.price_model,
            "period": listing.period,
        },
        "quantity": draft.quantity,
        "price_fen": draft.price_fen,
        "amount_fen": draft.amount_fen,
        "currency": "CNY",
        "channels": list(draft.channels),
        "policy": draft.policy,
        "term": {"start": draft.term_start.isoformat(), "end": draft.term_end.isoformat()},
        "cross_border": draft.cross_border,
        "trade": {
            "order_id": draft.order_id,
            "negotiation_id": draft.negotiation_id,
            "auction_id": draft.auction_id,
        },
        "escrow": {"hold_id": draft.hold_id},
        "acceptance": {
            "days_after_delivery": _days("acceptance"),
            "delivery_days": _days("delivery"),
        },
        "rules": {
            "version": rules.version,
            "ids": [
                rule_id(k)
                for k in (
                    "contract_transition",
                    "contract_sign",
                    "contract_records",
                    "contract_acceptance",
                    "contract_dispute",
                )
            ]
            + ([rule_id("contract_broker")] if draft.broker_id else []),
        },
        "records": _records(session, listing, cards),
    }


@audits_last
def open_contract(
    session: Session, draft: ContractDraft, *, actor: Principal | None, now: datetime
) -> ExchangeContract:
    """Draw up the contract of a trade (see the module docstring); returns the flushed row."""
    _check_draft(draft)
    listing = draft.listing
    # Everything the document reads comes before the year's counter is taken (held to commit).
    document = build_document(session, draft, None, now)
    contract_number = document["number"] = _next_number(session, china_day(now).year)
    contract = ExchangeContract(
        number=contract_number,
        state=draft.state.value,
        kind=draft.kind.value,
        listing_id=listing.id,
        order_id=draft.order_id,
        negotiation_id=draft.negotiation_id,
        auction_id=draft.auction_id,
        asset_id=listing.asset_id,
        seller_id=listing.seller_id,
        buyer_id=draft.buyer_id,
        broker_id=draft.broker_id,
        quantity=draft.quantity,
        price_fen=draft.price_fen,
        amount_fen=draft.amount_fen,
        channels=list(draft.channels),
        policy=draft.policy,
        term_start=draft.term_start,
        term_end=draft.term_end,
        cross_border=draft.cross_border,
        document=document,
        document_hash=document_hash(document),
        hold_id=draft.hold_id,
        reason="",
        rules=[rule_id("contract_transition"), rule_id("contract_records")],
        created_at=now,
        updated_at=now,
    )
    contract.deadline_at = _deadline(contract, draft.state, now)
    session.add(contract)
    session.flush()
    _event(
        session,
        contract,
        A.OFFER if draft.state is S.OFFERED else A.ACCEPT,
        None,
        draft.state,
        actor,
        now=now,
        rules=contract.rules,
    )
    _audit(session, contract, actor, "open", f"Contract {contract.number} drawn up ({draft.state})")
    inbox.notify(
        session,
        parties(contract),
        kind=KIND,
        message=MSG_OPENED,
        params={
            "number": contract.number,
            "title": listing.title,
            "amount": str(contract.amount_fen),
            "deadline": show_time(contract.deadline_at),
        },
        link=f"/exchange/contracts/{contract.id}",
    )
    return contract


# A contract starts in one of these; its deadline then counts from the moment it was drawn up.
OPENING_STATES: Final = frozenset({S.REQUESTED, S.OFFERED, S.ACCEPTED})


def _opening_deadline(state: ContractState, now: datetime) -> datetime:
    return now + timedelta(days=_days(state.value))


# The mall order's contract is drawn up by ``open_mall_contract`` with compiled statements
# (``fastsql``): every trade writes one, and the ORM's unit of work cost more CPU than the rest
# of the trade. The rows, the document and its hash are the ones ``open_contract`` writes.
_CONTRACT_COLUMNS: Final = (
    "id",
    "number",
    "state",
    "kind",
    "listing_id",
    "order_id",
    "negotiation_id",
    "auction_id",
    "asset_id",
    "seller_id",
    "buyer_id",
    "broker_id",
    "quantity",
    "price_fen",
    "amount_fen",
    "channels",
    "policy",
    "term_start",
    "term_end",
    "cross_border",
    "deadline_at",
    "document",
    "document_hash",
    "hold_id",
    "reason",
    "rules",
    "created_at",
    "updated_at",
)
CONTRACT_ROWS: Final = Rows(cast(Table, ExchangeContract.__table__), _CONTRACT_COLUMNS)
_EVENT_COLUMNS: Final = (
    "contract_id",
    "action",
    "source",
    "target",
    "actor_user_id",
    "actor_party_id",
    "actor_name",
    "reason",
    "reason_params",
    "rules",
    "ledger_index",
    "at",
)
EVENT_ROWS: Final = Rows(cast(Table, ExchangeContractEvent.__table__), _EVENT_COLUMNS)


@dataclass(frozen=True)
class OpenedContract:
    """What ``open_mall_contract`` wrote that its order reads back."""

    id: str
    number: str
    state: str
    price_fen: int
    rules: list[str]
    deadline_at: datetime
    note: inbox.Note  # the parties' message, for the caller to send with its own
    # The contract's row and its first history row, for the caller to insert with its own.
    rows: list[tuple[Rows, list[dict[str, Any]]]]


def open_mall_contract(
    session: Session,
    raw: Raw,
    draft: ContractDraft,
    *,
    serial: int,
    actor: Principal | None,
    now: datetime,
) -> OpenedContract:
    """``open_contract`` for the mall order (inside ``place_order``, whose audit records are
    held back to its end): the same checks, document, rows, history and audit records; the
    number's ``serial`` is drawn by the order with its own (``serials.take_many``). The
    contract's rows (``rows``) and the parties' message (``note``) are returned for the order
    to write with its own, in one statement on PostgreSQL: each round trip a trade makes while
    it holds the listing's lock is one more that the listing's other buyers wait for."""
    _check_draft(draft)
    listing = draft.listing
    document = build_document(session, draft, None, now)
    contract_number = document["number"] = number("DC", china_day(now).year, serial)
    contract_id = new_id()
    rules = [rule_id("contract_transition"), rule_id("contract_records")]
    deadline = _opening_deadline(draft.state, now)
    contract_row: dict[str, Any] = {
        "id": contract_id,
        "number": contract_number,
        "state": draft.state.value,
        "kind": draft.kind.value,
        "listing_id": listing.id,
        "order_id": draft.order_id,
        "negotiation_id": draft.negotiation_id,
        "auction_id": draft.auction_id,
        "asset_id": listing.asset_id,
        "seller_id": listing.seller_id,
        "buyer_id": draft.buyer_id,
        "broker_id": draft.broker_id,
        "quantity": draft.quantity,
        "price_fen": draft.price_fen,
        "amount_fen": draft.amount_fen,
        "channels": list(draft.channels),
        "policy": draft.policy,
        "term_start": draft.term_start,
        "term_end": draft.term_end,
        "cross_border": draft.cross_border,
        "deadline_at": deadline,
        "document": document,
        "document_hash": document_hash(document),
        "hold_id": draft.hold_id,
        "reason": "",
        "rules": rules,
        "created_at": now,
        "updated_at": now,
    }
    event_row: dict[str, Any] = {
        "contract_id": contract_id,
        "action": (A.OFFER if draft.state is S.OFFERED else A.ACCEPT).value,
        "source": None,
        "target": draft.state.value,
        "actor_user_id": (actor.user_id or None) if actor else None,
        "actor_party_id": (actor.party_id or None) if actor else None,
        "actor_name": actor.username if actor else SYSTEM,
        "reason": "",
        "reason_params": None,
        "rules": list(dict.fromkeys(rules)),
        "ledger_index": None,
        "at": now,
    }
    involved = sorted({p for p in (listing.seller_id, draft.buyer_id, draft.broker_id) if p})
    summary = f"Contract {contract_number} drawn up ({draft.state})"
    for party in involved:
        record_audit(
            session,
            actor=actor,
            action="exchange:contract:open",
            object_type="exchange_contract",
            object_id=contract_id,
            summary=summary,
            party_id=party,
            reasons=[],
            actor_name=None if actor else SYSTEM,
        )
    note = inbox.Note(
        involved,
        kind=KIND,
        message=MSG_OPENED,
        params={
            "number": contract_number,
            "title": listing.title,
            "amount": str(draft.amount_fen),
            "deadline": show_time(deadline),
        },
        link=f"/exchange/contracts/{contract_id}",
        at=utcnow(),
    )
    return OpenedContract(
        contract_id,
        contract_number,
        draft.state.value,
        draft.price_fen,
        rules,
        deadline,
        note,
        [(CONTRACT_ROWS, [contract_row]), (EVENT_ROWS, [event_row])],
    )


# ----------------------------------------------------------------------------------- moving


def _deadline(contract: ExchangeContract, state: ContractState, now: datetime) -> datetime | None:
    """When ``state``'s deadline passes for ``contract`` entering it at ``now``."""
    if state in FINAL_CONTRACT_STATES:
        return None
    if state in OPENING_STATES:
        return _opening_deadline(state, now)
    if state is S.SIGNED:
        return max(now, day_start(contract.term_start))
    if state is S.ACTIVE:
        if contract.delivered_at is not None:
            return contract.delivered_at + timedelta(days=_days("acceptance"))
        return now + timedelta(days=_days("delivery"))
    return now + timedelta(days=_days("disputed"))


def _event(
    session: Session,
    contract: ExchangeContract,
    action: ContractAction,
    source: ContractState | None,
    target: ContractState,
    actor: Principal | None,
    *,
    now: datetime,
    reason: str = "",
    params: Mapping[str, str] | None = None,
    rules: Sequence[str] = (),
    ledger_index: int | None = None,
) -> ExchangeContractEvent:
    event = ExchangeContractEvent(
        contract_id=contract.id,
        action=action.value,
        source=None if source is None else source.value,
        target=target.value,
        actor_user_id=(actor.user_id or None) if actor else None,
        actor_party_id=(actor.party_id or None) if actor else None,
        actor_name=actor.username if actor else SYSTEM,
        reason=reason,
        reason_params=None if params is None else dict(params),
        rules=list(dict.fromkeys(rules)),
        ledger_index=ledger_index,
        at=now,
    )
    session.add(event)
    session.flush()
    return event


def _audit(
    session: Session,
    contract: ExchangeContract,
    actor: Principal | None,
    action: str,
    summary: str,
    reasons: Sequence[str] = (),
) -> None:
    for party in parties(contract):
        record_audit(
            session,
            actor=actor,
            action=f"exchange:contract:{action}",
            object_type="exchange_contract",
            object_id=contract.id,
            summary=summary,
            party_id=party,
            reasons=[r for r in reasons if r],
            actor_name=None if actor else SYSTEM,
        )


def _title(session: Session, contract: ExchangeContract) -> str:
    obj = contract.document.get("object", {}) if contract.document else {}
    return str(obj.get("title") or contract.listing_id)


def _tell(
    session: Session,
    contract: ExchangeContract,
    message: str,
    params: Mapping[str, str],
    *,
    extra: Iterable[str] = (),
) -> None:
    inbox.notify(
        session,
        [*parties(contract), *extra],
        kind=KIND,
        message=message,
        params={"number": contract.number, "title": _title(session, contract), **params},
        link=f"/exchange/contracts/{contract.id}",
    )


def _said(reason: str, params: Mapping[str, str] | None) -> str:
    return reason.format(**params) if params is not None else reason


def _move(
    session: Session,
    contract: ExchangeContract,
    target: ContractState,
    action: ContractAction,
    actor: Principal | None,
    *,
    now: datetime,
    reason: str = "",
    params: Mapping[str, str] | None = None,
    rules: Sequence[str] = (),
    ledger_index: int | None = None,
) -> None:
    """Move ``contract`` to ``target`` (refused unless the state machine allows it), with its
    deadline, history row, audit events and messages, in this transaction. ``reason`` is a
    person's text, or — with ``params`` — the msgid of the system's reason."""
    source = ContractState(contract.state)
    applied = [*rules, rule_id("contract_transition")]
    if not may_move(CONTRACT_TRANSITIONS, source, target):
        raise ExchangeStateConflict(
            MSG_BAD_STATE, rule=applied[-1], number=contract.number, state=source.value
        )
    contract.state = target.value
    contract.deadline_at = _deadline(contract, target, now)
    contract.reason = reason
    contract.reason_params = None if params is None else dict(params)
    contract.rules = list(dict.fromkeys(applied))
    contract.updated_at = now
    session.flush()
    _event(
        session,
        contract,
        action,
        source,
        target,
        actor,
        now=now,
        reason=reason,
        params=params,
        rules=contract.rules,
        ledger_index=ledger_index,
    )
    said = _said(reason, params)
    _audit(
        session,
        contract,
        actor,
        action.value,
        f"Contract {contract.number} {action.value}: {source.value} -> {target.value}"
        + (f" (ledger entry {ledger_index})" if ledger_index is not None else ""),
        [said, *contract.rules],
    )
    _tell(
        session,
        contract,
        MSG_STATE,
        {
            "state_label": CONTRACT_STATE_LABELS[target],
            # A person's reason travels with the message; the system's is on the contract's page.
            "reason": reason if params is None else "",
        },
    )


# What a trade does when its contract ends without completing (the mall order is cancelled, the
# licences an order, a negotiation or an auction took go back to the listing): the trades sit
# above this module, so each registers its hook for its kind when it is imported.
ContractEndedHook = Callable[..., object]  # (session, contract_id, *, now) -> anything
_ENDED_HOOKS: dict[str, ContractEndedHook] = {}


def on_contract_ended(kind: TradeKind, hook: ContractEndedHook) -> None:
    """Have ``hook(session, contract_id, now=…)`` called, in the ending transaction, whenever a
    contract of ``kind`` is terminated (idempotent hooks: a contract may be looked at twice).
    The hook runs before the escrow is released, so it may lock the trade's and the listing's
    rows; it writes its audit records through ``record_audit`` (the audit head is the last
    lock of the move)."""
    _ENDED_HOOKS[kind.value] = hook


def _release(
    contract: ExchangeContract, session: Session, actor: Principal | None, now: datetime, memo: str
) -> None:
    """The contract ended without completing: the trade told (its licences back on the
    listing), then the escrow back to the buyer — in the exchange's lock order: the trade's and
    the listing's rows before the escrow and balance rows, the audit chain's head last. Called
    once per contract: only by the move to *terminated*, which the state machine allows once."""
    hook = _ENDED_HOOKS.get(contract.kind)
    if hook is None:
        raise RuntimeError(f"no contract-ended hook for {contract.kind} trades (not imported?)")
    hook(session, contract.id, now=now)
    if contract.hold_id:
        settle.release_contract(session, contract, actor=actor or SYSTEM, now=now, memo=memo)


def _settle(
    contract: ExchangeContract,
    session: Session,
    actor: Principal | None,
    now: datetime,
    pay_fen: int | None = None,
) -> None:
    settle.settle_contract(session, contract, actor=actor or SYSTEM, now=now, pay_fen=pay_fen)


# ----------------------------------------------------------------------------------- reading


def _may_read(principal: Principal, contract: ExchangeContract) -> bool:
    if principal.can(P.EXCHANGE_CONTRACT_READ_ALL):
        return True
    return principal.can(P.EXCHANGE_CONTRACT_READ) and principal.party_id in parties(contract)


def get_contract(
    session: Session, principal: Principal, contract_id: str, *, lock: bool = False
) -> ExchangeContract:
    """A contract the principal may see (its parties, the exchange, the regulators); any other
    answers 'not found', whether it exists or not. ``lock``: FOR UPDATE, reloaded."""
    if not listings.plain_id(contract_id):  # PostgreSQL refuses a NUL in any text
        raise ExchangeNotFound(MSG_NOT_FOUND, rule=rule_id("contract_visible"))
    stmt = select(ExchangeContract).where(ExchangeContract.id == contract_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    contract = session.execute(stmt).scalar_one_or_none()
    if contract is None or not _may_read(principal, contract):
        raise ExchangeNotFound(MSG_NOT_FOUND, rule=rule_id("contract_visible"))
    return contract


def contract_events(session: Session, contract_id: str) -> list[ExchangeContractEvent]:
    return list(
        session.scalars(
            select(ExchangeContractEvent)
            .where(ExchangeContractEvent.contract_id == contract_id)
            .order_by(ExchangeContractEvent.id)
        )
    )


def list_contracts(
    session: Session,
    principal: Principal,
    query: ContractQuery,
    *,
    limit: int,
    offset: int,
    everyone: bool = False,
) -> tuple[list[ExchangeContract], int]:
    """The contracts of the caller's party (as buyer, seller or broker), newest first; every
    contract with ``everyone`` for a reader of all contracts."""
    if not (principal.can(P.EXCHANGE_CONTRACT_READ) or principal.can(P.EXCHANGE_CONTRACT_READ_ALL)):
        raise ExchangeForbidden(
            MSG_NOT_ALLOWED,
            rule=rule_id("contract_visible"),
            permission=P.EXCHANGE_CONTRACT_READ.value,
        )
    for name, value, allowed in (
        ("status", query.state, [x.value for x in ContractState]),
        ("kind", query.kind, [x.value for x in TradeKind]),
        ("role", query.role, list(ROLES)),
    ):
        if value is not None and value not in allowed:
            raise ExchangeInvalid(
                MSG_BAD_FILTER,
                rule=rule_id("contract_visible"),
                field=name,
                name=name,
                allowed=", ".join(allowed),
            )
    C = ExchangeContract  # noqa: N806 - the table, as in SQL
    stmt = select(C)
    me = principal.party_id
    if everyone and principal.can(P.EXCHANGE_CONTRACT_READ_ALL):
        if query.role in ROLES:
            stmt = stmt.where(getattr(C, f"{query.role}_id").is_not(None))
    elif query.role in ROLES:
        stmt = stmt.where(getattr(C, f"{query.role}_id") == me)
    else:
        stmt = stmt.where(or_(C.buyer_id == me, C.seller_id == me, C.broker_id == me))
    if query.state:
        stmt = stmt.where(C.state == query.state)
    if query.kind:
        stmt = stmt.where(C.kind == query.kind)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(C.created_at.desc(), C.id.desc()).limit(limit).offset(offset)
    )
    return list(rows), int(total)


def signature_checks(contract: ExchangeContract) -> list[SignatureCheck]:
    """Every required signature (and any present) and whether it verifies over the document
    as stored, by the key stored with it, and the document still matches its hash."""
    intact = document_hash(contract.document) == contract.document_hash
    out = []
    for role in ROLES:
        party_id = party_of(contract, role)
        signature = getattr(contract, f"{role}_signature")
        if party_id is None or (role not in required_roles(contract) and signature is None):
            continue
        key = getattr(contract, f"{role}_signing_key")
        valid = bool(
            intact and signature and key and verify_record(contract.document, signature, key)
        )
        out.append(
            SignatureCheck(
                role=role,
                party_id=party_id,
                signed_by=getattr(contract, f"{role}_signed_by"),
                signed_at=getattr(contract, f"{role}_signed_at"),
                signature=signature,
                key=key,
                valid=valid,
            )
        )
    return out


def available_actions(
    contract: ExchangeContract, principal: Principal, now: datetime
) -> frozenset[str]:
    """What ``principal`` may do to ``contract`` now (the page shows those forms)."""
    state = ContractState(contract.state)
    mine = roles_of(contract, principal.party_id)
    can_sign = principal.can(P.EXCHANGE_CONTRACT_SIGN)
    out: set[str] = set()
    overdue = contract.deadline_at is not None and now >= contract.deadline_at
    if state is S.ACCEPTED and not overdue:
        for role in mine:
            unsigned = getattr(contract, f"{role}_signature") is None
            allowed = can_sign and (role != "broker" or principal.can(P.EXCHANGE_TRADE_BROKER))
            if role in required_roles(contract) and unsigned and allowed:
                out.add("sign")
    pre_signing = state in (S.REQUESTED, S.OFFERED, S.ACCEPTED) and not overdue
    if pre_signing and can_sign and ({"buyer", "seller"} & set(mine)):
        out.add("terminate")
    if state in (S.REQUESTED, S.OFFERED, S.ACCEPTED, S.SIGNED, S.ACTIVE) and principal.can(
        P.EXCHANGE_CONTRACT_ARBITRATE
    ):
        out.add("terminate")
    if state is S.ACTIVE and can_sign and "buyer" in mine and contract.delivered_at is not None:
        out.add("confirm")
    if state is S.ACTIVE and not overdue and can_sign and ({"buyer", "seller"} & set(mine)):
        out.add("dispute")
    if state is S.DISPUTED and principal.can(P.EXCHANGE_CONTRACT_ARBITRATE):
        out.add("resolve")
    return frozenset(out)


# ----------------------------------------------------------------------------------- use cases


def _forbid(permission: Permission, key: str = "contract_transition") -> ExchangeForbidden:
    return ExchangeForbidden(MSG_NOT_ALLOWED, rule=rule_id(key), permission=permission.value)


def _not_overdue(contract: ExchangeContract, now: datetime) -> None:
    if contract.deadline_at is not None and now >= contract.deadline_at:
        raise ExchangeStateConflict(
            MSG_PAST_DEADLINE,
            rule=rule_id("contract_deadline"),
            number=contract.number,
            deadline=show_time(contract.deadline_at),
        )


def _in_state(contract: ExchangeContract, *states: ContractState, key: str) -> None:
    if contract.state not in {s.value for s in states}:
        raise ExchangeStateConflict(
            MSG_BAD_STATE, rule=rule_id(key), number=contract.number, state=contract.state
        )


def _text(value: str, *, key: str, required: bool = True) -> str:
    text = listings.clean_text(value or "").strip()  # no NUL or escapes into the history
    limit = int(contract_settings().get("grounds_max_chars", 2000))
    if required and not text:
        raise ExchangeInvalid(MSG_REASON_NEEDED, rule=rule_id(key), field="reason")
    if len(text) > limit:
        raise ExchangeInvalid(MSG_REASON_LONG, rule=rule_id(key), field="reason", max=limit)
    return text


def _signing_role(session: Session, principal: Principal, contract: ExchangeContract) -> str:
    mine = roles_of(contract, principal.party_id)
    if not mine:
        # A party outside the contract cannot see it either: the same answer as for any
        # contract it may not read (readers of all contracts are told they are not a party).
        if not principal.can(P.EXCHANGE_CONTRACT_READ_ALL):
            raise ExchangeNotFound(MSG_NOT_FOUND, rule=rule_id("contract_visible"))
        raise ExchangeForbidden(
            MSG_NOT_PARTY, rule=rule_id("contract_sign"), number=contract.number
        )
    needed = [r for r in mine if r in required_roles(contract)]
    if not needed:
        raise ExchangeForbidden(
            MSG_NOT_SIGNER, rule=rule_id("contract_sign"), number=contract.number
        )
    unsigned = [r for r in needed if getattr(contract, f"{r}_signature") is None]
    if not unsigned:
        raise ExchangeStateConflict(
            MSG_SIGNED_ALREADY, rule=rule_id("contract_sign"), number=contract.number
        )
    role = unsigned[0]
    if role == "broker":
        if not principal.can(P.EXCHANGE_TRADE_BROKER):
            raise _forbid(P.EXCHANGE_TRADE_BROKER, "contract_broker")
        if not principal.can(P.EXCHANGE_CONTRACT_SIGN):  # a signature binds the firm: its admin's
            raise _forbid(P.EXCHANGE_CONTRACT_SIGN, "contract_broker")
        if _service_role(session, principal.party_id) != identity.ServiceRole.BROKER.value:
            raise ExchangeForbidden(
                MSG_NOT_BROKER, rule=rule_id("contract_broker"), number=contract.number
            )
    elif not principal.can(P.EXCHANGE_CONTRACT_SIGN):
        raise _forbid(P.EXCHANGE_CONTRACT_SIGN, "contract_sign")
    return role


@audits_last
def sign_contract(
    session: Session,
    principal: Principal,
    contract_id: str,
    *,
    keys: PartyKeys,
    confirm: bool,
    now: datetime,
) -> ExchangeContract:
    """The principal's party signs the contract's document with its key, after the user
    confirmed (``confirm``); with every required signature the contract is signed, recorded in
    the ledger and active at once (or at the start of its term)."""
    contract = get_contract(session, principal, contract_id, lock=True)
    role = _signing_role(session, principal, contract)
    _in_state(contract, S.ACCEPTED, key="contract_sign")
    _not_overdue(contract, now)
    if not confirm:
        raise ExchangeInvalid(MSG_CONFIRM, rule=rule_id("contract_sign"), field="confirm")
    if document_hash(contract.document) != contract.document_hash:
        raise ExchangeStateConflict(
            MSG_TAMPERED, rule=rule_id("contract_sign"), number=contract.number
        )
    # Nobody signs for a right the seller no longer holds (transferred, pledged away, revoked,
    # its certificate ended since the trade was opened), nor for one under an open title
    # dispute (the contract waits, or ends at its deadline, until the registry clears it).
    listing = session.get(ExchangeListing, contract.listing_id)
    if listing is not None:
        listings.check_seller_right(session, listing, china_day(now))
        listings.check_no_dispute(session, listing, china_day(now))
    party_id = principal.party_id
    made = keys.sign(party_id, contract.document)
    store_signature(contract, role, made.signature, made.key, signed_by=principal.user_id, at=now)
    session.flush()
    _event(
        session,
        contract,
        A.SIGN,
        S.ACCEPTED,
        S.ACCEPTED,
        principal,
        now=now,
        params={"role": role},
        rules=[rule_id("contract_sign")],
    )
    missing = [r for r in required_roles(contract) if getattr(contract, f"{r}_signature") is None]
    _audit(
        session,
        contract,
        principal,
        "sign",
        f"Contract {contract.number} signed by the {role} (key {made.key.split('+')[1] if made.key.count('+') == 2 else ''})",
        [rule_id("contract_sign")],
    )
    if missing:
        _tell(
            session,
            contract,
            MSG_SIGNED_BY,
            {"role_label": ROLE_LABELS[role], "deadline": show_time(contract.deadline_at)},
        )
        return contract
    _complete_signatures(session, contract, principal, now)
    return contract


def store_signature(
    contract: ExchangeContract, role: str, signature: str, key: str, *, signed_by: str, at: datetime
) -> None:
    """Keep ``role``'s signature — only if it verifies over the document by ``key`` and the key
    is the one held for that role's party; anything else is refused, never stored."""
    party_id = party_of(contract, role)
    key_name = key.split("+", 1)[0]
    if (
        party_id is None
        or key_name != f"party-{party_id}"
        or not verify_record(contract.document, signature, key)
    ):
        raise ExchangeStateConflict(
            MSG_BAD_SIGNATURE, rule=rule_id("contract_sign"), number=contract.number
        )
    setattr(contract, f"{role}_signature", signature)
    setattr(contract, f"{role}_signing_key", key)
    setattr(contract, f"{role}_signed_by", signed_by or None)
    setattr(contract, f"{role}_signed_at", at)


def ledger_record(contract: ExchangeContract) -> dict[str, Any]:
    """The signed contract's ledger entry: ids, the document's hash, signatures and verifier
    keys (no names, no terms: the ledger is public forever)."""
    return {
        "format": RECORD_FORMAT,
        "number": contract.number,
        "contract_id": contract.id,
        "kind": contract.kind,
        "listing_id": contract.listing_id,
        "asset_id": contract.asset_id,
        "seller_id": contract.seller_id,
        "buyer_id": contract.buyer_id,
        "broker_id": contract.broker_id,
        "document_format": contract.document.get("format"),
        "document_sha256": contract.document_hash,
        "signatures": [
            {
                "role": c.role,
                "party_id": c.party_id,
                "signature": c.signature,
                "key": c.key,
                "signed_at": _iso(c.signed_at) if c.signed_at else None,
            }
            for c in signature_checks(contract)
        ],
        "rules_version": _rules().version,
        "rules": [rule_id("contract_sign"), rule_id("contract_records")],
    }


def _complete_signatures(
    session: Session, contract: ExchangeContract, actor: Principal | None, now: datetime
) -> None:
    checks = signature_checks(contract)
    if not all(c.valid for c in checks):  # store_signature makes this unreachable; never trust
        raise ExchangeStateConflict(
            MSG_BAD_SIGNATURE, rule=rule_id("contract_sign"), number=contract.number
        )
    index = ledger.append_event(session, LEDGER_KIND, ledger_record(contract))
    contract.ledger_index = index
    _move(
        session,
        contract,
        S.SIGNED,
        A.SIGN,
        actor,
        now=now,
        rules=[rule_id("contract_sign"), rule_id("contract_records")],
        ledger_index=index,
    )
    if china_day(now) >= contract.term_start:
        _move(
            session,
            contract,
            S.ACTIVE,
            A.ACTIVATE,
            actor,
            now=now,
            reason=WHY_ACTIVE,
            params={},
            rules=[rule_id("contract_delivery")],
        )


def mark_delivered(
    session: Session, contract: ExchangeContract, *, actor: Principal | None, now: datetime
) -> bool:
    """The first delivery under an active contract (called by the delivery, under its lock):
    ``delivered_at`` is set and the acceptance period starts (deemed acceptance after the
    rules' days). Later deliveries change nothing. Returns whether this was the first."""
    if contract.state != S.ACTIVE.value or contract.delivered_at is not None:
        return False
    contract.delivered_at = now
    contract.deadline_at = _deadline(contract, S.ACTIVE, now)
    contract.updated_at = now
    _event(
        session,
        contract,
        A.DELIVER,
        S.ACTIVE,
        S.ACTIVE,
        actor,
        now=now,
        rules=[rule_id("contract_acceptance")],
    )
    return True


@audits_last
def confirm_delivery(
    session: Session, principal: Principal, contract_id: str, *, now: datetime
) -> ExchangeContract:
    """The buyer accepts the delivery (验收): the contract is completed and settled."""
    contract = get_contract(session, principal, contract_id, lock=True)
    if principal.party_id != contract.buyer_id:
        raise ExchangeForbidden(
            MSG_NOT_PARTY, rule=rule_id("contract_acceptance"), number=contract.number
        )
    if not principal.can(P.EXCHANGE_CONTRACT_SIGN):
        raise _forbid(P.EXCHANGE_CONTRACT_SIGN, "contract_acceptance")
    _in_state(contract, S.ACTIVE, key="contract_acceptance")
    if contract.delivered_at is None:
        raise ExchangeStateConflict(
            MSG_NOT_DELIVERED, rule=rule_id("contract_acceptance"), number=contract.number
        )
    contract.accepted_at = now
    _move(
        session,
        contract,
        S.COMPLETED,
        A.CONFIRM,
        principal,
        now=now,
        reason=WHY_ACCEPTED,
        params={},
        rules=[rule_id("contract_acceptance")],
    )
    _settle(contract, session, principal, now)
    return contract


@audits_last
def terminate_contract(
    session: Session, principal: Principal, contract_id: str, *, reason: str, now: datetime
) -> ExchangeContract:
    """Buyer or seller ends the contract before it is signed; the exchange's administrator may
    end any contract not yet completed or in dispute (a forced, audited step). Whatever is still
    frozen returns to the buyer."""
    contract = get_contract(session, principal, contract_id, lock=True)
    mine = set(roles_of(contract, principal.party_id)) & {"buyer", "seller"}
    arbiter = principal.can(P.EXCHANGE_CONTRACT_ARBITRATE)
    if mine and principal.can(P.EXCHANGE_CONTRACT_SIGN):
        _in_state(contract, S.REQUESTED, S.OFFERED, S.ACCEPTED, key="contract_terminate")
        _not_overdue(contract, now)
        why = _text(reason, key="contract_terminate", required=False)
    elif arbiter:
        _in_state(
            contract,
            S.REQUESTED,
            S.OFFERED,
            S.ACCEPTED,
            S.SIGNED,
            S.ACTIVE,
            key="contract_terminate",
        )
        why = _text(reason, key="contract_terminate")
    elif mine:
        raise _forbid(P.EXCHANGE_CONTRACT_SIGN, "contract_terminate")
    elif principal.can(P.EXCHANGE_CONTRACT_READ_ALL):
        raise ExchangeForbidden(
            MSG_NOT_PARTY, rule=rule_id("contract_terminate"), number=contract.number
        )
    else:
        raise ExchangeNotFound(MSG_NOT_FOUND, rule=rule_id("contract_visible"))
    _move(
        session,
        contract,
        S.TERMINATED,
        A.TERMINATE,
        principal,
        now=now,
        reason=why,
        rules=[rule_id("contract_terminate")],
    )
    _release(contract, session, principal, now, f"contract {contract.number} terminated")
    return contract


@audits_last
def dispute_contract(
    session: Session, principal: Principal, contract_id: str, *, grounds: str, now: datetime
) -> ExchangeContract:
    """Buyer or seller raises a dispute, with grounds, over a contract in performance: the
    money stays frozen until the exchange decides; the exchange is told."""
    contract = get_contract(session, principal, contract_id, lock=True)
    mine = set(roles_of(contract, principal.party_id)) & {"buyer", "seller"}
    if not mine:
        if principal.can(P.EXCHANGE_CONTRACT_READ_ALL):
            raise ExchangeForbidden(
                MSG_NOT_PARTY, rule=rule_id("contract_dispute"), number=contract.number
            )
        raise ExchangeNotFound(MSG_NOT_FOUND, rule=rule_id("contract_visible"))
    if not principal.can(P.EXCHANGE_CONTRACT_SIGN):
        raise _forbid(P.EXCHANGE_CONTRACT_SIGN, "contract_dispute")
    _in_state(contract, S.ACTIVE, key="contract_dispute")
    # Past the deadline the clock decides (deemed accepted and settled, or never delivered and
    # released): a dispute raised after it would hold the money back against the rules.
    _not_overdue(contract, now)
    why = _text(grounds, key="contract_dispute")
    _move(
        session,
        contract,
        S.DISPUTED,
        A.DISPUTE,
        principal,
        now=now,
        reason=why,
        rules=[rule_id("contract_dispute")],
    )
    operators = _parties_of_kind(session, identity.PartyKind.EXCHANGE_OPERATOR.value)
    inbox.notify(
        session,
        operators,
        kind=KIND,
        message=MSG_DISPUTE_RAISED,
        params={
            "number": contract.number,
            "title": _title(session, contract),
            "deadline": show_time(contract.deadline_at),
        },
        link=f"/exchange/contracts/{contract.id}",
    )
    return contract


OUTCOMES: Final = ("seller", "buyer", "split")


@audits_last
def resolve_dispute(
    session: Session,
    principal: Principal,
    contract_id: str,
    *,
    outcome: str,
    reason: str,
    now: datetime,
    pay_fen: int | None = None,
) -> ExchangeContract:
    """The exchange's administrator decides a dispute: for the seller (completed and settled),
    for the buyer (terminated, everything released), or split (completed: ``pay_fen`` settled,
    the rest released)."""
    if not principal.can(P.EXCHANGE_CONTRACT_ARBITRATE):
        get_contract(session, principal, contract_id)  # 404 first for whoever may not see it
        raise _forbid(P.EXCHANGE_CONTRACT_ARBITRATE, "contract_dispute")
    contract = get_contract(session, principal, contract_id, lock=True)
    _in_state(contract, S.DISPUTED, key="contract_dispute")
    if outcome not in OUTCOMES:
        raise ExchangeInvalid(MSG_BAD_OUTCOME, rule=rule_id("contract_dispute"), field="outcome")
    why = _text(reason, key="contract_dispute")
    rules = [rule_id("contract_dispute")]
    if outcome == "buyer":
        _move(
            session,
            contract,
            S.TERMINATED,
            A.RESOLVE,
            principal,
            now=now,
            reason=WHY_FOR_BUYER,
            params={"reason": why},
            rules=rules,
        )
        _release(contract, session, principal, now, f"dispute over {contract.number}: buyer")
        return contract
    if outcome == "split":
        if pay_fen is None or not 0 < pay_fen < contract.amount_fen:
            raise ExchangeInvalid(
                MSG_BAD_SPLIT,
                rule=rule_id("contract_dispute"),
                field="pay_fen",
                amount=contract.amount_fen,
            )
        _move(
            session,
            contract,
            S.COMPLETED,
            A.RESOLVE,
            principal,
            now=now,
            reason=WHY_SPLIT,
            params={"reason": why, "pay": str(pay_fen)},
            rules=rules,
        )
        _settle(contract, session, principal, now, pay_fen)
        return contract
    _move(
        session,
        contract,
        S.COMPLETED,
        A.RESOLVE,
        principal,
        now=now,
        reason=WHY_FOR_SELLER,
        params={"reason": why},
        rules=rules,
    )
    _settle(contract, session, principal, now)
    return contract


# ----------------------------------------------------------------------------------- the clock


def due_contract_ids(session: Session, now: datetime) -> list[str]:
    """Contracts in a non-final state whose deadline has passed, oldest deadline first."""
    live = [s.value for s in CONTRACT_DEADLINES]
    return list(
        session.scalars(
            select(ExchangeContract.id)
            .where(
                ExchangeContract.state.in_(live),
                ExchangeContract.deadline_at.is_not(None),
                ExchangeContract.deadline_at <= now,
            )
            .order_by(ExchangeContract.deadline_at, ExchangeContract.id)
        )
    )


@audits_last
def apply_deadline(session: Session, contract_id: str, *, now: datetime) -> DeadlineOutcome:
    """What happens to one contract whose deadline passed (``CONTRACT_DEADLINES``), under its
    row lock, in the caller's transaction. A contract another run already moved, or whose
    deadline is no longer past, is left alone (``action`` None): running twice is harmless."""
    contract = session.execute(
        select(ExchangeContract)
        .where(ExchangeContract.id == contract_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    source = ContractState(contract.state)
    outcome = DeadlineOutcome(contract.id, contract.number, None, source.value, source.value)
    if (
        source not in CONTRACT_DEADLINES
        or contract.deadline_at is None
        or contract.deadline_at > now
    ):
        return outcome
    action = CONTRACT_DEADLINES[source]
    deadline = show_time(contract.deadline_at)
    if action is A.EXPIRE:
        _move(
            session,
            contract,
            S.TERMINATED,
            A.EXPIRE,
            None,
            now=now,
            reason=WHY_EXPIRED,
            params={"deadline": deadline},
            rules=[rule_id("contract_deadline")],
        )
        _release(contract, session, None, now, f"contract {contract.number} expired")
    elif action is A.ACTIVATE:
        _move(
            session,
            contract,
            S.ACTIVE,
            A.ACTIVATE,
            None,
            now=now,
            reason=WHY_TERM_STARTED,
            params={"start": contract.term_start.isoformat()},
            rules=[rule_id("contract_deadline"), rule_id("contract_delivery")],
        )
    elif action is A.COMPLETE:
        if contract.delivered_at is None:
            _move(
                session,
                contract,
                S.TERMINATED,
                A.EXPIRE,
                None,
                now=now,
                reason=WHY_NOT_DELIVERED,
                params={"days": str(_days("delivery"))},
                rules=[rule_id("contract_deadline"), rule_id("contract_delivery")],
            )
            _release(contract, session, None, now, f"contract {contract.number} not delivered")
        else:
            due = contract.delivered_at + timedelta(days=_days("acceptance"))
            if due > now:  # delivered late in the delivery period: the acceptance period runs
                contract.deadline_at = due
                contract.updated_at = now
                return outcome
            contract.accepted_at = due  # deemed accepted when the period ended
            _move(
                session,
                contract,
                S.COMPLETED,
                A.COMPLETE,
                None,
                now=now,
                reason=WHY_DEEMED,
                params={"days": str(_days("acceptance"))},
                rules=[rule_id("contract_deadline"), rule_id("contract_acceptance")],
            )
            _settle(contract, session, None, now)
    else:  # a dispute not decided in time: escalated, extended; no money moves
        extended = now + timedelta(days=_days("dispute_extension"))
        contract.deadline_at = extended
        contract.updated_at = now
        params = {"deadline": deadline}
        rules = [rule_id("contract_deadline"), rule_id("contract_dispute")]
        _event(
            session,
            contract,
            A.ESCALATE,
            S.DISPUTED,
            S.DISPUTED,
            None,
            now=now,
            reason=WHY_ESCALATED,
            params=params,
            rules=rules,
        )
        _audit(
            session,
            contract,
            None,
            "escalate",
            f"Contract {contract.number} dispute escalated to the regulators",
            rules,
        )
        watchers = _parties_of_kind(session, identity.PartyKind.REGULATOR.value) + _parties_of_kind(
            session, identity.PartyKind.EXCHANGE_OPERATOR.value
        )
        _tell(
            session,
            contract,
            MSG_ESCALATED,
            {"deadline": deadline, "extended": show_time(extended)},
            extra=watchers,
        )
        outcome.action = A.ESCALATE.value
        return outcome
    outcome.action = action.value
    outcome.target = contract.state
    return outcome


def run_deadlines_in(session: Session, *, now: datetime) -> DeadlineReport:
    """Every contract past its deadline, each in a savepoint of the caller's transaction (the
    tests' and the demo's form; the server's clock uses one transaction per contract)."""
    report = DeadlineReport()
    for contract_id in due_contract_ids(session, now):
        try:
            with session.begin_nested():
                report.done.append(apply_deadline(session, contract_id, now=now))
        except Exception:  # one contract must not stop the run
            report.failed.append(contract_id)
    return report


def now_utc() -> datetime:
    return utcnow()


# ----------------------------------------------------------------------------------- the PDF


def signer_names(session: Session, contract_id: str) -> dict[str, str]:
    """role → the user name that signed for it (from the history)."""
    out: dict[str, str] = {}
    for event in contract_events(session, contract_id):
        if event.action == A.SIGN.value and event.reason_params and "role" in event.reason_params:
            out[str(event.reason_params["role"])] = event.actor_name
    return out


def contract_url(base_url: str, contract_id: str) -> str:
    return f"{base_url.rstrip('/')}/exchange/contracts/{contract_id}"


def contract_pdf(
    session: Session, principal: Principal, contract_id: str, *, base_url: str, now: datetime
) -> tuple[ExchangeContract, bytes]:
    """The contract as a PDF, for whoever may read it (its parties, the exchange, regulators)."""
    contract = get_contract(session, principal, contract_id)
    names = signer_names(session, contract.id)
    cards = contract.document.get("parties", {})
    lines = [
        pdf.SignatureLine(
            role=c.role,
            party=str((cards.get(c.role) or {}).get("name") or c.party_id),
            signer=names.get(c.role) if c.signature else None,
            signed_at=c.signed_at,
            key_id=c.key_id,
            signature=c.signature,
            valid=c.valid,
        )
        for c in signature_checks(contract)
    ]
    sheet = pdf.contract_sheet(
        contract,
        as_of=now,
        url=contract_url(base_url, contract.id),
        signatures=lines,
        hash_matches=document_hash(contract.document) == contract.document_hash,
    )
    return contract, pdf.render_contract(sheet)


def contract_dict(contract: ExchangeContract) -> dict[str, Any]:
    """A contract's figures as JSON values (the CLI's ``--json``; the API's fields)."""

    def when(value: datetime | date | None) -> str | None:
        return None if value is None else value.isoformat()

    c = contract
    return {
        "id": c.id,
        "number": c.number,
        "status": c.state,
        "kind": c.kind,
        "listing_id": c.listing_id,
        "order_id": c.order_id,
        "negotiation_id": c.negotiation_id,
        "auction_id": c.auction_id,
        "asset_id": c.asset_id,
        "seller_id": c.seller_id,
        "buyer_id": c.buyer_id,
        "broker_id": c.broker_id,
        "quantity": c.quantity,
        "price_fen": c.price_fen,
        "amount_fen": c.amount_fen,
        "channels": list(c.channels),
        "term_start": when(c.term_start),
        "term_end": when(c.term_end),
        "cross_border": c.cross_border,
        "deadline_at": when(c.deadline_at),
        "document_hash": c.document_hash,
        "ledger_index": c.ledger_index,
        "hold_id": c.hold_id,
        "delivered_at": when(c.delivered_at),
        "accepted_at": when(c.accepted_at),
        "settled_at": when(c.settled_at),
        "reason": c.reason,
        "rules": list(c.rules),
        "created_at": when(c.created_at),
        "updated_at": when(c.updated_at),
    }
