"""Agreement trades (协议交易): a buyer and a seller negotiate a listing's terms through offers
and counter-offers, with a data broker that co-signs the contract (docs/exchange.md, "Agreement
trades and auctions").

A verified buyer opens a negotiation on a published listing with a first offer — price per unit,
quantity, delivery channels (a subset of the listing's), term in days, the contract policy (the
listing's by default; an edited one must parse, target the listed asset and be no wider than the
listing's) and a note — naming a data broker (a verified service firm whose service role is
``broker``; the listing's broker by default). The listing's broker may also open one for a buyer
it introduces. Each negotiation is numbered ``GX-DN-<year>-<serial>``.

**The broker** is a 居间 intermediary: it sees the whole thread, relays offers and co-signs the
contract. It makes offers only for the side it represents (``broker_side``): the buyer when it
opened the negotiation for the buyer, or when the buyer named a broker other than the listing's
own; otherwise the seller, who authorised it to list. It never accepts or withdraws: those bind
a party and are the party's own acts.

**Turns**: the sides alternate; an offer by the side whose offer is already the latest is
refused, and a side accepts only the other side's latest offer, which it names by its ``seq``
(required on every path — API, form, CLI —, EXC-NEG-ACCEPT: a counter-offer that arrived a
second before the click is never accepted unseen; a ``seq`` that is no longer the latest is
refused, EXC-NEG-TURN). Every offer pushes the deadline to
``deadline_days`` from now, never beyond ``max_days`` from the opening; the clock
(``expire_due_negotiations``) expires the ones that lapsed.

**Acceptance** is one transaction under the negotiation's row lock: the listing re-checked and
row-locked as the buyer would buy it (``listings.tradable_listing``), its licences taken when
limited, the agreed amount (price × quantity) frozen from the buyer (``settlement.freeze``, keyed
by the negotiation, so a retry never freezes twice) and the contract opened (kind ``agreement``,
``broker_id`` set: the contracts module requires the broker's co-signature). Insufficient funds
refuse the acceptance and leave the negotiation open. The buyer's money is frozen only by the
buyer's own act: the buyer accepts the seller's offer, or the seller accepts an offer the buyer
itself made — an offer the broker made for the buyer is answered with a counter-offer.
A cross-border listing or a foreign buyer (party kind ``foreign_company``) marks the negotiation
and its contract ``cross_border``: subject to the cross-border assessment (a later issue).

Locks in one order, as every exchange transaction takes them: the negotiation row, the listing
row, the escrow and balance rows (settlement), the number counters, the audit chain's head.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from datafactor import audit, identity, inbox, settlement
from datafactor.db import CHINA, Database, utcnow
from datafactor.errors import N_, BadRequest, NotFound
from datafactor.exchange import contracts, listings, serials
from datafactor.exchange.domain import (
    Channel,
    ContractState,
    NegotiationState,
    PriceModel,
    TradeKind,
    number,
)
from datafactor.exchange.errors import (
    ExchangeError,
    ExchangeForbidden,
    ExchangeInvalid,
    ExchangeNotFound,
    ExchangeStateConflict,
)
from datafactor.exchange.models import (
    ExchangeContract,
    ExchangeListing,
    ExchangeNegotiation,
    ExchangeOffer,
)
from datafactor.exchange.rulebook import exchange_rules
from datafactor.permissions import Permission, Principal
from datafactor.policy import INCLUDES, Policy, PolicyError, parse_policy
from datafactor.policy import Permission as PolicyPermission
from datafactor.policy.grants import policy_scope

log = logging.getLogger(__name__)
P = Permission
S = NegotiationState
KIND: Final = "exchange.negotiation"  # the inbox kind of every message about a negotiation
SYSTEM: Final = "exchange-clock"
SERIAL_KIND: Final = "N"
NUMBER_PREFIX: Final = "DN"
BUYER: Final = "buyer"
SELLER: Final = "seller"
SIDES: Final = (BUYER, SELLER)
FOREIGN: Final = "foreign_company"
CROSS_BORDER_FLAG: Final = N_("Subject to the cross-border assessment (issue: cross-border flows)")

NEGOTIATION_STATE_LABELS: Final = {
    S.OPEN: N_("Negotiating"),
    S.AGREED: N_("Agreed"),
    S.WITHDRAWN: N_("Withdrawn"),
    S.EXPIRED: N_("Expired"),
}
SIDE_LABELS: Final = {BUYER: N_("Buyer"), SELLER: N_("Seller"), "broker": N_("Broker")}

EVENT_LABELS: Final = {
    "exchange:negotiation:open": N_("Agreement trade opened"),
    "exchange:negotiation:offer": N_("Offer in an agreement trade"),
    "exchange:negotiation:accept": N_("Agreement trade agreed"),
    "exchange:negotiation:withdraw": N_("Agreement trade withdrawn"),
    "exchange:negotiation:expire": N_("Agreement trade expired"),
}
audit.register_action_labels(EVENT_LABELS)

MSG_NOT_ALLOWED: Final = N_(
    "Your role does not include trading at the exchange ({permission}): ask your party's "
    "administrator (rule {rule})."
)
MSG_NOT_VERIFIED: Final = N_(
    "Only verified parties trade at the exchange: party {party} has not been verified. Wait for "
    "the exchange to verify it, then try again (rule {rule})."
)
MSG_NO_READ: Final = N_("Your role does not include reading trades ({permission}) (rule {rule}).")
MSG_NOT_FOUND: Final = N_("No such negotiation, or not one you may see (rule {rule}).")
MSG_NO_BROKER: Final = N_(
    "An agreement trade needs a data broker, and listing {listing} names none: name a data "
    "broker (a verified service firm registered as a broker) (rule {rule})."
)
MSG_NOT_A_BROKER: Final = N_(
    "Party {party} is not a data broker: the broker of an agreement trade must be a verified "
    "service firm registered with the service role “broker” (rule {rule})."
)
MSG_BROKER_IS_PARTY: Final = N_(
    "The broker must be a third party: it cannot be the buyer or the seller (rule {rule})."
)
MSG_BROKER_OPENS: Final = N_(
    "Only a data broker opens a negotiation for another party, and only for a listing it is the "
    "broker of (listing {listing}). To negotiate for your own party, leave the buyer out "
    "(rule {rule})."
)
MSG_BROKER_OTHER: Final = N_(
    "A broker that opens a negotiation for a buyer is that negotiation's broker: leave broker_id "
    "out or name your own firm (rule {rule})."
)
MSG_SELF_TRADE: Final = N_(
    "Your party offers this listing: a seller cannot buy from itself (rule {rule})."
)
MSG_PRICE: Final = N_(
    "The price must be a whole number of fen above 0 and at most {max} per unit, not “{value}” "
    "(rule {rule})."
)
MSG_QUANTITY: Final = N_(
    "The quantity must be a whole number from 1 to {max}, not “{value}” (rule {rule})."
)
MSG_QUANTITY_LEFT: Final = N_(
    "Listing {listing} has {left} licences left; you asked for {quantity}. Ask for at most "
    "{left} (rule {rule})."
)
MSG_AMOUNT: Final = N_(
    "Price × quantity comes to {amount} fen, above the {max} fen one trade may freeze: lower "
    "the price or the quantity (rule {rule})."
)
MSG_TERM: Final = N_(
    "The term must be a whole number of days from {min} to {max}, not “{value}” (rule {rule})."
)
MSG_CHANNELS: Final = N_(
    "The delivery channels must be one or more of the listing's own ({allowed}); “{value}” is "
    "not (rule {rule})."
)
MSG_NOTE: Final = N_("The note is at most {max} characters (rule {rule}).")
MSG_FREE: Final = N_(
    "Listing {listing} is free: take it from the mall; there is no price to negotiate "
    "(rule {rule})."
)
MSG_POLICY_SHAPE: Final = N_(
    "The policy must be an ODRL policy in JSON-LD (a JSON object), or left out to keep the "
    "listing's contract policy (rule {rule})."
)
MSG_POLICY_WIDER: Final = N_(
    "The policy allows more than the listing's contract policy: {dimension} “{values}” is "
    "beyond what the listing allows ({allowed}). A negotiated policy may only narrow it "
    "(rule {rule})."
)
MSG_POLICY_PROHIBITION: Final = N_(
    "The policy drops the listing's prohibition of “{action}”: a negotiated policy keeps every "
    "prohibition of the listing's contract policy (rule {rule})."
)
MSG_POLICY_RULE: Final = N_(
    "The policy's permission to “{action}” is not within any permission of the listing's "
    "contract policy: keep that permission's action (or a narrower one), its duties and its "
    "constraints other than purpose, region, channel and fields as they are. A negotiated "
    "policy may only narrow the listing's (rule {rule})."
)
MSG_POLICY_BASE: Final = N_(
    "The listing's contract policy cannot be compared with an edited one ({problem}): keep the "
    "listing's policy, or ask the seller to correct the listing (rule {rule})."
)
MSG_NOT_PARTY: Final = N_(
    "Only the buyer, the seller and the broker of negotiation {number} take part in it "
    "(rule {rule})."
)
MSG_BROKER_ACCEPTS: Final = N_(
    "The broker relays offers but does not accept or withdraw them: that binds a party, so the "
    "buyer or the seller does it (rule {rule})."
)
MSG_TURN: Final = N_(
    "The latest offer (no. {seq}) is your side's own: wait for the other side's answer "
    "(rule {rule})."
)
MSG_OWN_OFFER: Final = N_(
    "Offer no. {seq} is your side's own: a side accepts only the other side's latest offer "
    "(rule {rule})."
)
MSG_SEQ_REQUIRED: Final = N_(
    "Name the offer you accept by its number (seq): an acceptance without it could accept a "
    "counter-offer that arrived after you read the terms. Read the latest offer and accept it "
    "by its number (rule {rule})."
)
MSG_STALE: Final = N_(
    "Offer no. {seq} is no longer the latest: offer no. {latest} changed the terms. Read it and "
    "accept that one, or answer it (rule {rule})."
)
MSG_CONSENT: Final = N_(
    "Offer no. {seq} was made by the broker for the buyer: accepting it would freeze the "
    "buyer's money without the buyer's own act. Answer it with your counter-offer; the buyer "
    "accepts that (rule {rule})."
)
MSG_CLOSED: Final = N_(
    "Negotiation {number} is {state}: it takes no more offers, acceptance or withdrawal "
    "(rule {rule})."
)
MSG_LAPSED: Final = N_(
    "Negotiation {number} lapsed at {deadline} without agreement: open a new one (rule {rule})."
)
MSG_TOO_MANY: Final = N_(
    "Negotiation {number} has reached {max} offers: accept the latest one, withdraw, or open a "
    "new negotiation (rule {rule})."
)
MSG_BAD_FILTER: Final = N_("{name} must be one of {allowed} (rule {rule}).")

# Inbox messages
MSG_OPENED: Final = N_(
    "Agreement trade {number} on “{title}”: a first offer of {amount} awaits your answer."
)
MSG_OFFERED: Final = N_(
    "Agreement trade {number} on “{title}”: new offer no. {seq} of {amount} from the {side_label}."
)
MSG_AGREED: Final = N_(
    "Agreement trade {number} on “{title}” is agreed at {amount}: sign contract {contract}."
)
MSG_ENDED: Final = N_("Agreement trade {number} on “{title}” is {state_label}. {reason}")

# The system's reasons (stored as English, shown in the reader's language by the pages).
WHY_LAPSED: Final = N_("the negotiation's deadline passed without agreement")
WHY_CONTRACT_ENDED: Final = N_(
    "contract {contract} ended before completion; {licences} licence(s) went back to the listing"
)
SYSTEM_REASONS: Final = (WHY_LAPSED, WHY_CONTRACT_ENDED)


class OfferNotNamed(ExchangeError, BadRequest):
    """An acceptance that does not name the offer it accepts: a bad request (400)."""

    code = "exchange-offer-not-named"


# ------------------------------------------------------------------------------------ rules


def _rule(key: str) -> str:
    return exchange_rules().rule_id(key)


def settings() -> Mapping[str, Any]:
    """The negotiations' values from the rules file (deadlines, bounds)."""
    data: Mapping[str, Any] = exchange_rules().data["negotiation"]
    return data


def _int(value: object) -> int | None:
    """A whole number as sent (JSON, a form, the command line), or None. ASCII digits only:
    ``str.isdigit`` also accepts “²” and other digits ``int`` refuses."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text.startswith("-") else text
        if digits.isascii() and digits.isdigit() and len(digits) <= 40:
            return int(text)
    return None


def china_day(moment: datetime) -> date:
    return moment.astimezone(CHINA).date()


# ------------------------------------------------------------------------------------ values


@dataclass(frozen=True)
class Terms:
    """An offer's terms as sent; None keeps the previous offer's (or the listing's) value."""

    price_fen: object = None
    quantity: object = None
    channels: Sequence[str] | None = None
    term_days: object = None
    policy: Mapping[str, Any] | None = None
    note: str = ""


@dataclass(frozen=True)
class CheckedTerms:
    price_fen: int
    quantity: int
    channels: tuple[str, ...]
    term_days: int
    policy: dict[str, Any]
    note: str

    @property
    def amount_fen(self) -> int:
        return self.price_fen * self.quantity


@dataclass(frozen=True)
class Accepted:
    """The outcome of ``accept_offer``: the negotiation, its contract, and whether the call
    replayed an earlier acceptance (nothing changed)."""

    negotiation: ExchangeNegotiation
    contract: ExchangeContract
    replayed: bool


@dataclass
class ExpiryReport:
    """One run of the negotiations' clock: the numbers expired, and the ids it could not."""

    expired: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"expired": list(self.expired), "failed": list(self.failed)}


# ------------------------------------------------------------------------------------ parties


_READER: Final = Principal(
    user_id="",
    username="exchange-negotiations",
    party_id="",
    party_kind="exchange_operator",
    roles=frozenset(),
    permissions=frozenset({P.IDENTITY_PARTY_READ, P.IDENTITY_PARTY_READ_ALL}),
    via="cli",
)


def _party(session: Session, party_id: str) -> Any | None:
    if not listings.plain_id(party_id):  # PostgreSQL refuses a NUL in any text
        return None
    try:
        return identity.get_party(session, _READER, party_id)
    except NotFound:
        return None


def _is_verified(party: Any | None) -> bool:
    return party is not None and str(party.status) == identity.PartyStatus.VERIFIED.value


def _require_verified(session: Session, party_id: str) -> Any:
    party = _party(session, party_id)
    if not _is_verified(party):
        raise ExchangeForbidden(MSG_NOT_VERIFIED, rule=_rule("listing_buyer"), party=party_id)
    return party


def _check_broker(session: Session, broker_id: str) -> None:
    party = _party(session, broker_id)
    if (
        party is None
        or not _is_verified(party)
        or party.kind != identity.PartyKind.SERVICE_FIRM.value
        or party.service_role != identity.ServiceRole.BROKER.value
    ):
        raise ExchangeInvalid(
            MSG_NOT_A_BROKER, rule=_rule("negotiation_broker"), field="broker_id", party=broker_id
        )


def is_broker(principal: Principal) -> bool:
    """A user of a service firm with the broker's permission (the firm's role is checked when
    it is named)."""
    return principal.can(P.EXCHANGE_TRADE_BROKER)


def buyer_principal(session: Session, buyer_id: str) -> Principal:
    """The buyer as the listing checks see it, when someone else acts in the trade (the broker
    opening for it, the seller accepting its offer): its party, with a buyer's permissions."""
    party = _require_verified(session, buyer_id)
    return Principal(
        user_id="",
        username=f"buyer:{buyer_id}",
        party_id=buyer_id,
        party_kind=str(party.kind),
        roles=frozenset(),
        permissions=frozenset({P.EXCHANGE_LISTING_READ, P.EXCHANGE_TRADE_PLACE}),
        via="cli",
    )


def _require_trader(session: Session, principal: Principal) -> None:
    if principal.can(P.EXCHANGE_TRADE_PLACE):
        return
    if principal.party_id and not _is_verified(_party(session, principal.party_id)):
        raise ExchangeForbidden(
            MSG_NOT_VERIFIED, rule=_rule("listing_buyer"), party=principal.party_id
        )
    raise ExchangeForbidden(
        MSG_NOT_ALLOWED, rule=_rule("negotiation_party"), permission=P.EXCHANGE_TRADE_PLACE.value
    )


# ------------------------------------------------------------------------------------ terms


def _check_channels(listing: ExchangeListing, channels: Sequence[str]) -> tuple[str, ...]:
    allowed = [str(c) for c in (listing.channels or [])]
    rule = _rule("negotiation_terms")
    if isinstance(channels, str) or not channels:
        raise ExchangeInvalid(
            MSG_CHANNELS, rule=rule, field="channels", allowed=", ".join(allowed), value=""
        )
    out: list[str] = []
    for channel in channels:
        if channel not in allowed or channel not in {c.value for c in Channel}:
            raise ExchangeInvalid(
                MSG_CHANNELS,
                rule=rule,
                field="channels",
                allowed=", ".join(allowed),
                value=str(channel),
            )
        if channel not in out:
            out.append(channel)
    return tuple(c for c in allowed if c in out)  # the listing's order


def _prohibited_actions(document: Mapping[str, Any]) -> set[str]:
    return {r.action.name for r in parse_policy(document).prohibitions}


# The constraints a negotiated permission may change, as long as it narrows them (checked on
# the scope they let through); every other constraint of the listing's permission is kept as is.
_NARROWABLE: Final = frozenset({"purpose", "spatial", "deliveryChannel", "df:fields"})


def _plain(value: Any) -> Any:
    """A parsed policy term compared by meaning: its ``uid`` left out, all the way down."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (
            type(value).__name__,
            tuple(
                (f.name, _plain(getattr(value, f.name)))
                for f in dataclasses.fields(value)
                if f.name != "uid"
            ),
        )
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def _operands(constraint: Any) -> set[str]:
    members = getattr(constraint, "constraints", None)
    if members is not None:
        return {m.left for m in members}
    return {constraint.left}


def _within_scope(
    mine: Mapping[str, list[str] | None], limit: Mapping[str, list[str] | None]
) -> bool:
    return all(
        allowed is None or (mine.get(d) is not None and set(mine[d] or ()) <= set(allowed))
        for d, allowed in limit.items()
    )


def _covered(edited: Policy, permission: PolicyPermission, base: Policy) -> bool:
    """Whether one permission of the edited policy is within some permission of the listing's:
    the same action or one it includes, every refinement, duty and non-narrowable constraint
    of the listing's permission kept, the same assignee, and no wider scope."""
    mine = policy_scope(
        Policy(uid=edited.uid, permissions=(permission,), prohibitions=edited.prohibitions)
    )
    constraints = {_plain(c) for c in permission.constraints}
    refinements = {_plain(r) for r in permission.action.refinements}
    duties = {_plain(d) for d in permission.duties}
    for theirs in base.permissions:
        if permission.action.name not in INCLUDES.get(theirs.action.name, {theirs.action.name}):
            continue
        if theirs.assignee is not None and permission.assignee != theirs.assignee:
            continue
        if not {_plain(r) for r in theirs.action.refinements} <= refinements:
            continue
        if not {_plain(d) for d in theirs.duties} <= duties:
            continue
        if any(
            not _operands(c) <= _NARROWABLE and _plain(c) not in constraints
            for c in theirs.constraints
        ):
            continue
        limit = policy_scope(
            Policy(uid=base.uid, permissions=(theirs,), prohibitions=base.prohibitions)
        )
        if _within_scope(mine, limit):
            return True
    return False


def check_policy(listing: ExchangeListing, policy: object) -> dict[str, Any]:
    """A negotiated contract policy: the listing's own as it is, or an edited one that parses
    and targets the listed asset in every rule (the listings' own check), allows no purpose,
    field, region or channel the listing's policy does not, and keeps every prohibition of the
    listing's policy."""
    rule = _rule("negotiation_policy")
    base = dict(listing.contract_policy or {})
    if policy is None or policy == base:
        return copy.deepcopy(base)
    if not isinstance(policy, Mapping):
        raise ExchangeInvalid(MSG_POLICY_SHAPE, rule=rule, field="policy")
    document = listings.check_policy(
        copy.deepcopy(dict(policy)), asset_id=listing.asset_id, seller_id=listing.seller_id
    )
    scope = policy_scope(document)
    prohibited = _prohibited_actions(document)
    try:
        limit = policy_scope(base)
        kept = _prohibited_actions(base)
    except PolicyError as exc:
        raise ExchangeInvalid(
            MSG_POLICY_BASE, rule=rule, field="policy", problem=str(exc)
        ) from None
    for dimension, allowed in limit.items():
        if allowed is None:
            continue
        mine = scope.get(dimension)
        beyond = sorted(set(allowed if mine is None else mine) - set(allowed))
        if mine is None or beyond:
            raise ExchangeInvalid(
                MSG_POLICY_WIDER,
                rule=rule,
                field=f"policy.{dimension}",
                dimension=dimension,
                values=", ".join(beyond) if beyond else "*",
                allowed=", ".join(allowed) or "—",
            )
    for action in sorted(kept - prohibited):
        raise ExchangeInvalid(
            MSG_POLICY_PROHIBITION, rule=rule, field="policy.prohibition", action=action
        )
    # Rule by rule: each permission within one of the listing's, each of the listing's
    # prohibitions and obligations kept as it is, and the same issue date (elapsed times count
    # from it).
    edited, listed = parse_policy(document), parse_policy(base)
    for permission in edited.permissions:
        if not _covered(edited, permission, listed):
            raise ExchangeInvalid(
                MSG_POLICY_RULE, rule=rule, field="policy.permission", action=permission.action.name
            )
    kept_rules = {_plain(p) for p in edited.prohibitions}
    for prohibition in listed.prohibitions:
        if _plain(prohibition) not in kept_rules:
            raise ExchangeInvalid(
                MSG_POLICY_PROHIBITION,
                rule=rule,
                field="policy.prohibition",
                action=prohibition.action.name,
            )
    obligations = {_plain(o) for o in edited.obligations}
    if not {_plain(o) for o in listed.obligations} <= obligations or edited.issued != listed.issued:
        raise ExchangeInvalid(
            MSG_POLICY_RULE, rule=rule, field="policy.obligation", action="obligation"
        )
    return document


def check_terms(
    listing: ExchangeListing, terms: Terms, previous: CheckedTerms | None = None
) -> CheckedTerms:
    """An offer's terms checked against the listing and the rules file; what is left out keeps
    the previous offer's value (the first offer: the listing's)."""
    values = settings()
    rule = _rule("negotiation_terms")
    if listing.price_model == PriceModel.FREE:
        raise ExchangeInvalid(MSG_FREE, rule=rule, field="listing_id", listing=listing.number)
    default_price = previous.price_fen if previous else (listing.price_fen or None)
    raw_price = default_price if terms.price_fen is None else terms.price_fen
    price = _int(raw_price)
    max_amount = int(values["max_amount_fen"])
    if price is None or price <= 0 or price > max_amount:
        raise ExchangeInvalid(
            MSG_PRICE, rule=rule, field="price_fen", max=max_amount, value=str(raw_price or "")
        )
    raw_quantity = (
        (previous.quantity if previous else 1) if terms.quantity is None else terms.quantity
    )
    quantity = _int(raw_quantity)
    max_quantity = int(values["max_quantity"])
    if quantity is None or quantity < 1 or quantity > max_quantity:
        raise ExchangeInvalid(
            MSG_QUANTITY, rule=rule, field="quantity", max=max_quantity, value=str(raw_quantity)
        )
    if (
        listing.remaining_quantity is not None
        and _licences(listing, quantity) > listing.remaining_quantity
    ):
        raise ExchangeInvalid(
            MSG_QUANTITY_LEFT,
            rule=_rule("listing_quantity"),
            field="quantity",
            listing=listing.number,
            left=listing.remaining_quantity,
            quantity=quantity,
        )
    if price * quantity > max_amount:
        raise ExchangeInvalid(
            MSG_AMOUNT, rule=rule, field="price_fen", amount=price * quantity, max=max_amount
        )
    raw_term = (
        (previous.term_days if previous else listing.term_days)
        if terms.term_days is None
        else terms.term_days
    )
    term = _int(raw_term)
    low, high = int(values["min_term_days"]), int(values["max_term_days"])
    if term is None or not low <= term <= high:
        raise ExchangeInvalid(
            MSG_TERM, rule=rule, field="term_days", min=low, max=high, value=str(raw_term)
        )
    channels = _check_channels(
        listing,
        (previous.channels if previous else tuple(listing.channels or ()))
        if terms.channels is None
        else list(terms.channels),
    )
    if terms.policy is None and previous is not None:
        policy = copy.deepcopy(previous.policy)
    else:
        policy = check_policy(listing, terms.policy)
    note = listings.clean_text(terms.note or "").strip()
    if len(note) > int(values["max_note_chars"]):
        raise ExchangeInvalid(MSG_NOTE, rule=rule, field="note", max=values["max_note_chars"])
    return CheckedTerms(price, quantity, channels, term, policy, note)


def _licences(listing: ExchangeListing, quantity: int) -> int:
    """Licences a quantity takes from a limited listing: one per unit of a one-off licence,
    one for a subscription or metered use (its quantity is periods or calls)."""
    return quantity if listing.price_model in (PriceModel.ONE_OFF, PriceModel.FREE) else 1


def _terms_of(offer: ExchangeOffer) -> CheckedTerms:
    return CheckedTerms(
        offer.price_fen,
        offer.quantity,
        tuple(offer.channels or ()),
        offer.term_days,
        dict(offer.policy or {}),
        offer.note or "",
    )


def agreement_policy(policy: Mapping[str, Any], negotiation: ExchangeNegotiation) -> dict[str, Any]:
    """The agreed policy made the agreement of this trade (ODRL ``Agreement``): its own uid,
    the seller as assigner and the buyer as assignee."""
    document = copy.deepcopy(dict(policy))
    document["@type"] = "Agreement"
    document["uid"] = f"urn:datafactor:negotiation:{negotiation.id}"
    document["assigner"] = negotiation.seller_id
    document["assignee"] = negotiation.buyer_id
    return document


# ------------------------------------------------------------------------------------ writing


def parties(negotiation: ExchangeNegotiation) -> list[str]:
    return sorted(
        {p for p in (negotiation.buyer_id, negotiation.seller_id, negotiation.broker_id) if p}
    )


def _audit(
    session: Session,
    principal: Principal | None,
    negotiation: ExchangeNegotiation,
    action: str,
    summary: str,
    rules: Iterable[str],
) -> None:
    for party in parties(negotiation):
        audit.record(
            session,
            actor=principal,
            action=f"exchange:negotiation:{action}",
            object_type="exchange_negotiation",
            object_id=negotiation.id,
            summary=summary,
            party_id=party,
            reasons=list(dict.fromkeys(rules)),
            actor_name=None if principal else SYSTEM,
        )


def _tell(
    session: Session,
    negotiation: ExchangeNegotiation,
    to: Iterable[str],
    message: str,
    params: Mapping[str, str],
) -> None:
    inbox.notify(
        session,
        [p for p in to if p],
        kind=KIND,
        message=message,
        params=dict(params),
        link=f"/exchange/negotiations/{negotiation.id}",
    )


def _deadline(negotiation_created: datetime, now: datetime) -> datetime:
    values = settings()
    return min(
        now + timedelta(days=int(values["deadline_days"])),
        negotiation_created + timedelta(days=int(values["max_days"])),
    )


def side_of(negotiation: ExchangeNegotiation, offer: ExchangeOffer) -> str:
    """The side an offer speaks for (a broker's offer: the side it represents)."""
    if offer.from_party_id == negotiation.buyer_id:
        return BUYER
    if offer.from_party_id == negotiation.seller_id:
        return SELLER
    return negotiation.broker_side or SELLER


def acting_side(negotiation: ExchangeNegotiation, principal: Principal) -> str | None:
    """The side ``principal`` acts for: ``buyer`` / ``seller`` for the parties' users (who may
    trade), the represented side for the broker's, None for anyone else."""
    party = principal.party_id
    if party == negotiation.buyer_id and principal.can(P.EXCHANGE_TRADE_PLACE):
        return BUYER
    if party == negotiation.seller_id and principal.can(P.EXCHANGE_TRADE_PLACE):
        return SELLER
    if party == negotiation.broker_id and is_broker(principal):
        return negotiation.broker_side
    return None


def open_negotiation(
    session: Session,
    principal: Principal,
    listing_id: str,
    terms: Terms,
    *,
    broker_id: str | None = None,
    buyer_id: str | None = None,
    now: datetime,
) -> ExchangeNegotiation:
    """Open an agreement trade with its first offer (see the module docstring)."""
    today = china_day(now)
    by_broker = bool(buyer_id) and buyer_id != principal.party_id
    if by_broker:
        if not is_broker(principal):
            raise ExchangeForbidden(
                MSG_BROKER_OPENS, rule=_rule("negotiation_party"), listing=listing_id
            )
        assert buyer_id is not None
        if broker_id and broker_id != principal.party_id:
            raise ExchangeInvalid(
                MSG_BROKER_OTHER, rule=_rule("negotiation_broker"), field="broker_id"
            )
        buyer = buyer_principal(session, buyer_id)
    else:
        _require_trader(session, principal)
        buyer = principal
    listing = listings.tradable_listing(session, listing_id, buyer=buyer, on=today, lock=False)
    if buyer.party_id == listing.seller_id:
        raise ExchangeForbidden(MSG_SELF_TRADE, rule=_rule("listing_buyer"))
    broker: str | None
    if by_broker:
        if listing.broker_id != principal.party_id:
            raise ExchangeForbidden(
                MSG_BROKER_OPENS, rule=_rule("negotiation_party"), listing=listing.number
            )
        broker, broker_side = principal.party_id, BUYER
    else:
        broker = broker_id or listing.broker_id
        if not broker:
            raise ExchangeInvalid(
                MSG_NO_BROKER,
                rule=_rule("negotiation_broker"),
                field="broker_id",
                listing=listing.number,
            )
        broker_side = SELLER if broker == listing.broker_id else BUYER
    if broker in (buyer.party_id, listing.seller_id):
        raise ExchangeInvalid(
            MSG_BROKER_IS_PARTY, rule=_rule("negotiation_broker"), field="broker_id"
        )
    _check_broker(session, broker)
    checked = check_terms(listing, terms)
    buyer_party = _party(session, buyer.party_id)
    cross_border = bool(listing.cross_border) or (
        buyer_party is not None and str(buyer_party.kind) == FOREIGN
    )
    negotiation = ExchangeNegotiation(
        number=number(NUMBER_PREFIX, today.year, serials.take(session, SERIAL_KIND, today.year)),
        state=S.OPEN.value,
        listing_id=listing.id,
        buyer_id=buyer.party_id,
        seller_id=listing.seller_id,
        broker_id=broker,
        broker_side=broker_side,
        cross_border=cross_border,
        deadline_at=_deadline(now, now),
        reason="",
        created_by=principal.user_id or None,
        created_at=now,
        updated_at=now,
    )
    session.add(negotiation)
    session.flush()
    _add_offer(session, principal, negotiation, 1, checked, now)
    rules = [
        _rule("negotiation_broker"),
        _rule("negotiation_terms"),
        _rule("negotiation_deadline"),
        *([_rule("negotiation_cross_border")] if cross_border else []),
    ]
    _audit(
        session,
        principal,
        negotiation,
        "open",
        f"Negotiation {negotiation.number} on listing {listing.number}: first offer "
        f"{checked.quantity} x {checked.price_fen} fen, broker {broker} ({broker_side})",
        rules,
    )
    _tell(
        session,
        negotiation,
        [p for p in parties(negotiation) if p != principal.party_id],
        MSG_OPENED,
        {
            "number": negotiation.number,
            "title": listing.title,
            "amount": settlement.format_yuan(checked.amount_fen),
        },
    )
    return negotiation


def _add_offer(
    session: Session,
    principal: Principal,
    negotiation: ExchangeNegotiation,
    seq: int,
    terms: CheckedTerms,
    now: datetime,
) -> ExchangeOffer:
    offer = ExchangeOffer(
        negotiation_id=negotiation.id,
        seq=seq,
        from_party_id=principal.party_id,
        price_fen=terms.price_fen,
        quantity=terms.quantity,
        channels=list(terms.channels),
        term_days=terms.term_days,
        policy=terms.policy,
        note=terms.note,
        created_by=principal.user_id or None,
        created_at=now,
    )
    session.add(offer)
    session.flush()
    return offer


def _load(
    session: Session, principal: Principal, negotiation_id: str, *, lock: bool
) -> ExchangeNegotiation:
    _may_read(principal)
    if not listings.plain_id(negotiation_id):  # PostgreSQL refuses a NUL in any text
        raise ExchangeNotFound(MSG_NOT_FOUND, rule=_rule("negotiation_party"))
    stmt = select(ExchangeNegotiation).where(ExchangeNegotiation.id == negotiation_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    negotiation = session.scalars(stmt).one_or_none()
    if negotiation is None or not _visible(principal, negotiation):
        raise ExchangeNotFound(MSG_NOT_FOUND, rule=_rule("negotiation_party"))
    return negotiation


def _require_open(negotiation: ExchangeNegotiation, now: datetime) -> None:
    if negotiation.state != S.OPEN:
        raise ExchangeStateConflict(
            MSG_CLOSED,
            rule=_rule("negotiation_state"),
            number=negotiation.number,
            state=negotiation.state,
        )
    if now >= negotiation.deadline_at:
        raise ExchangeStateConflict(
            MSG_LAPSED,
            rule=_rule("negotiation_deadline"),
            number=negotiation.number,
            deadline=contracts.show_time(negotiation.deadline_at),
        )


def _side(negotiation: ExchangeNegotiation, principal: Principal, *, deciding: bool) -> str:
    """The side ``principal`` acts for, refused when it has none (or when the broker would
    accept or withdraw: ``deciding``)."""
    party = principal.party_id
    if deciding and party == negotiation.broker_id:
        raise ExchangeForbidden(MSG_BROKER_ACCEPTS, rule=_rule("negotiation_party"))
    side = acting_side(negotiation, principal)
    if side is None:
        if party in (negotiation.buyer_id, negotiation.seller_id):
            raise ExchangeForbidden(
                MSG_NOT_ALLOWED,
                rule=_rule("negotiation_party"),
                permission=P.EXCHANGE_TRADE_PLACE.value,
            )
        raise ExchangeForbidden(
            MSG_NOT_PARTY, rule=_rule("negotiation_party"), number=negotiation.number
        )
    return side


def latest_offer(session: Session, negotiation_id: str) -> ExchangeOffer:
    return session.scalars(
        select(ExchangeOffer)
        .where(ExchangeOffer.negotiation_id == negotiation_id)
        .order_by(ExchangeOffer.seq.desc())
        .limit(1)
    ).one()


def make_offer(
    session: Session, principal: Principal, negotiation_id: str, terms: Terms, *, now: datetime
) -> ExchangeOffer:
    """A counter-offer by the side whose turn it is (its broker for it); what it leaves out
    keeps the latest offer's terms. Pushes the deadline back (up to the cap)."""
    negotiation = _load(session, principal, negotiation_id, lock=True)
    side = _side(negotiation, principal, deciding=False)
    _require_open(negotiation, now)
    latest = latest_offer(session, negotiation.id)
    if side_of(negotiation, latest) == side:
        raise ExchangeStateConflict(MSG_TURN, rule=_rule("negotiation_turn"), seq=latest.seq)
    if latest.seq >= int(settings()["max_offers"]):
        raise ExchangeStateConflict(
            MSG_TOO_MANY,
            rule=_rule("negotiation_state"),
            number=negotiation.number,
            max=settings()["max_offers"],
        )
    buyer = (
        principal
        if principal.party_id == negotiation.buyer_id
        else buyer_principal(session, negotiation.buyer_id)
    )
    listing = listings.tradable_listing(
        session, negotiation.listing_id, buyer=buyer, on=china_day(now), lock=False
    )
    checked = check_terms(listing, terms, _terms_of(latest))
    offer = _add_offer(session, principal, negotiation, latest.seq + 1, checked, now)
    negotiation.deadline_at = _deadline(negotiation.created_at, now)
    negotiation.updated_at = now
    session.flush()
    _audit(
        session,
        principal,
        negotiation,
        "offer",
        f"Negotiation {negotiation.number}: offer {offer.seq} by the {side} side, "
        f"{checked.quantity} x {checked.price_fen} fen, {checked.term_days} days",
        [_rule("negotiation_turn"), _rule("negotiation_terms"), _rule("negotiation_deadline")],
    )
    _tell(
        session,
        negotiation,
        [p for p in parties(negotiation) if p != principal.party_id],
        MSG_OFFERED,
        {
            "number": negotiation.number,
            "title": listing.title,
            "seq": str(offer.seq),
            "amount": settlement.format_yuan(checked.amount_fen),
            "side_label": SIDE_LABELS[side],
        },
    )
    return offer


def accept_offer(
    session: Session,
    principal: Principal,
    negotiation_id: str,
    *,
    seq: int | None,
    now: datetime,
) -> Accepted:
    """Accept offer ``seq`` — the offer the person read, which must still be the other side's
    latest: the amount frozen, licences taken, the contract opened — one transaction (see the
    module docstring). Without ``seq`` nothing is accepted (400, EXC-NEG-ACCEPT): "the latest
    offer" could be a counter-offer that arrived a second before the click. Accepting an agreed
    negotiation's accepted offer again answers it (``replayed``)."""
    negotiation = _load(session, principal, negotiation_id, lock=True)
    side = _side(negotiation, principal, deciding=True)
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise OfferNotNamed(MSG_SEQ_REQUIRED, rule=_rule("negotiation_accept"), field="seq")
    latest = latest_offer(session, negotiation.id)
    if (
        negotiation.state == S.AGREED
        and negotiation.contract_id
        and seq == latest.seq
        and side_of(negotiation, latest) != side
    ):
        contract = session.get(ExchangeContract, negotiation.contract_id)
        assert contract is not None
        return Accepted(negotiation, contract, replayed=True)
    _require_open(negotiation, now)
    if seq != latest.seq:
        raise ExchangeStateConflict(
            MSG_STALE, rule=_rule("negotiation_turn"), seq=seq, latest=latest.seq
        )
    if side_of(negotiation, latest) == side:
        raise ExchangeStateConflict(MSG_OWN_OFFER, rule=_rule("negotiation_turn"), seq=latest.seq)
    if side == SELLER and latest.from_party_id != negotiation.buyer_id:
        raise ExchangeStateConflict(MSG_CONSENT, rule=_rule("negotiation_consent"), seq=latest.seq)
    today = china_day(now)
    buyer = principal if side == BUYER else buyer_principal(session, negotiation.buyer_id)
    listing = listings.tradable_listing(
        session, negotiation.listing_id, buyer=buyer, on=today, lock=True
    )
    terms = _terms_of(latest)
    listings.take_quantity(session, listing, _licences(listing, terms.quantity))
    hold = settlement.freeze(
        session,
        negotiation.buyer_id,
        terms.amount_fen,
        f"negotiation:{negotiation.number}",
        key=f"negotiation:{negotiation.id}:freeze",
        actor=principal,
        memo=listing.number,
        now=now,
    )
    contract = contracts.open_contract(
        session,
        contracts.ContractDraft(
            kind=TradeKind.AGREEMENT,
            listing=listing,
            buyer_id=negotiation.buyer_id,
            quantity=terms.quantity,
            price_fen=terms.price_fen,
            amount_fen=terms.amount_fen,
            channels=terms.channels,
            policy=agreement_policy(terms.policy, negotiation),
            term_start=today,
            term_end=today + timedelta(days=terms.term_days - 1),
            hold_id=hold.hold_id,
            broker_id=negotiation.broker_id,
            negotiation_id=negotiation.id,
            cross_border=negotiation.cross_border,
        ),
        actor=principal,
        now=now,
    )
    negotiation.state = S.AGREED.value
    negotiation.contract_id = contract.id
    negotiation.updated_at = now
    session.flush()
    _audit(
        session,
        principal,
        negotiation,
        "accept",
        f"Negotiation {negotiation.number}: offer {latest.seq} accepted by the {side} side; "
        f"{terms.amount_fen} fen frozen (hold {hold.hold_id}), contract {contract.number}",
        [
            _rule("negotiation_turn"),
            _rule("negotiation_escrow"),
            _rule("contract_broker"),
            *([_rule("negotiation_cross_border")] if negotiation.cross_border else []),
        ],
    )
    _tell(
        session,
        negotiation,
        parties(negotiation),
        MSG_AGREED,
        {
            "number": negotiation.number,
            "title": listing.title,
            "amount": settlement.format_yuan(terms.amount_fen),
            "contract": contract.number,
        },
    )
    return Accepted(negotiation, contract, replayed=False)


def _end(
    session: Session,
    principal: Principal | None,
    negotiation: ExchangeNegotiation,
    state: NegotiationState,
    reason: str,
    now: datetime,
    rules: list[str],
) -> None:
    negotiation.state = state.value
    negotiation.reason = reason
    negotiation.updated_at = now
    session.flush()
    _audit(
        session,
        principal,
        negotiation,
        "withdraw" if state is S.WITHDRAWN else "expire",
        f"Negotiation {negotiation.number} {state.value}" + (f": {reason}" if reason else ""),
        rules,
    )
    listing = session.get(ExchangeListing, negotiation.listing_id)
    _tell(
        session,
        negotiation,
        [p for p in parties(negotiation) if principal is None or p != principal.party_id],
        MSG_ENDED,
        {
            "number": negotiation.number,
            "title": listing.title if listing else "",
            "state_label": NEGOTIATION_STATE_LABELS[state],
            "reason": reason,
        },
    )


def withdraw_negotiation(
    session: Session,
    principal: Principal,
    negotiation_id: str,
    *,
    reason: str = "",
    now: datetime,
) -> ExchangeNegotiation:
    """The buyer or the seller breaks off the negotiation (with an optional reason)."""
    negotiation = _load(session, principal, negotiation_id, lock=True)
    _side(negotiation, principal, deciding=True)
    if negotiation.state != S.OPEN:
        raise ExchangeStateConflict(
            MSG_CLOSED,
            rule=_rule("negotiation_state"),
            number=negotiation.number,
            state=negotiation.state,
        )
    reason = listings.clean_text(reason or "").strip()
    if len(reason) > int(settings()["max_note_chars"]):
        raise ExchangeInvalid(
            MSG_NOTE,
            rule=_rule("negotiation_terms"),
            field="reason",
            max=settings()["max_note_chars"],
        )
    _end(session, principal, negotiation, S.WITHDRAWN, reason, now, [_rule("negotiation_state")])
    return negotiation


# ------------------------------------------------------------------------------------ clock


def due_negotiation_ids(session: Session, now: datetime, limit: int = 1000) -> list[str]:
    """Open negotiations whose deadline has passed."""
    return list(
        session.scalars(
            select(ExchangeNegotiation.id)
            .where(ExchangeNegotiation.state == S.OPEN, ExchangeNegotiation.deadline_at <= now)
            .order_by(ExchangeNegotiation.deadline_at)
            .limit(limit)
        )
    )


def expire_negotiation(session: Session, negotiation_id: str, *, now: datetime) -> bool:
    """Expire one lapsed negotiation under its row lock (False: nothing was due any more — it
    was agreed, withdrawn or extended meanwhile)."""
    negotiation = session.scalars(
        select(ExchangeNegotiation)
        .where(ExchangeNegotiation.id == negotiation_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if negotiation is None or negotiation.state != S.OPEN or negotiation.deadline_at > now:
        return False
    _end(
        session,
        None,
        negotiation,
        S.EXPIRED,
        WHY_LAPSED,
        now,
        [_rule("negotiation_deadline")],
    )
    return True


def expire_due_negotiations(db: Database, *, now: datetime | None = None) -> ExpiryReport:
    """The clock: every open negotiation past its deadline expires, each in a transaction of
    its own (one that fails is logged by the caller and tried again at the next run). Safe with
    several processes: each is re-checked under its row lock."""
    now = now or utcnow()
    report = ExpiryReport()
    with db.read() as session:
        ids = due_negotiation_ids(session, now)
    for negotiation_id in ids:
        try:
            with db.write() as session:
                if expire_negotiation(session, negotiation_id, now=now):
                    found = session.get(ExchangeNegotiation, negotiation_id)
                    report.expired.append(found.number if found else negotiation_id)
        except Exception:  # one negotiation must not stop the run; tried again at the next
            log.exception("exchange negotiations: %s could not be expired", negotiation_id)
            report.failed.append(negotiation_id)
    if report.expired or report.failed:
        log.info("exchange negotiations: %s", report.as_dict())
    return report


def contract_ended(session: Session, contract_id: str, *, now: datetime) -> int:
    """The agreement contract ``contract_id`` was terminated (unsigned in time, or ended by a
    party or the exchange): the licences it took go back to its listing, once (the reason
    recorded on the negotiation says so). For the contracts' clock and entry points, in the
    transaction that ended the contract; returns the licences returned (0: nothing to do)."""
    negotiation = session.scalars(
        select(ExchangeNegotiation)
        .where(ExchangeNegotiation.contract_id == contract_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    contract = session.get(ExchangeContract, contract_id)
    if (
        negotiation is None
        or contract is None
        or contract.state != ContractState.TERMINATED
        or negotiation.reason
    ):
        return 0
    listing = session.scalars(
        select(ExchangeListing)
        .where(ExchangeListing.id == negotiation.listing_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    licences = _licences(listing, contract.quantity)
    if listing.total_quantity is not None and listing.remaining_quantity is not None:
        listing.remaining_quantity = min(
            listing.total_quantity, listing.remaining_quantity + licences
        )
        listing.updated_at = now
    else:
        licences = 0
    negotiation.reason = WHY_CONTRACT_ENDED.format(contract=contract.number, licences=licences)
    negotiation.updated_at = now
    session.flush()
    return licences


# ------------------------------------------------------------------------------------ reading


def _may_read(principal: Principal) -> None:
    if not (
        principal.can(P.EXCHANGE_CONTRACT_READ)
        or principal.can(P.EXCHANGE_CONTRACT_READ_ALL)
        or principal.can(P.EXCHANGE_TRADE_PLACE)
        or principal.can(P.EXCHANGE_TRADE_BROKER)
    ):
        raise ExchangeForbidden(
            MSG_NO_READ, rule=_rule("negotiation_party"), permission=P.EXCHANGE_CONTRACT_READ.value
        )


def _visible(principal: Principal, negotiation: ExchangeNegotiation) -> bool:
    return principal.party_id in parties(negotiation) or principal.can(P.EXCHANGE_CONTRACT_READ_ALL)


def get_negotiation(
    session: Session, principal: Principal, negotiation_id: str
) -> ExchangeNegotiation:
    """One negotiation its buyer, seller or broker (or the exchange, a regulator) may see;
    anyone else: 404."""
    return _load(session, principal, negotiation_id, lock=False)


def offers_of(session: Session, negotiation_id: str) -> list[ExchangeOffer]:
    return list(
        session.scalars(
            select(ExchangeOffer)
            .where(ExchangeOffer.negotiation_id == negotiation_id)
            .order_by(ExchangeOffer.seq)
        )
    )


ROLES: Final = ("buyer", "seller", "broker")


def list_negotiations(
    session: Session,
    principal: Principal,
    *,
    state: str | None = None,
    role: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[ExchangeNegotiation], int]:
    """The party's negotiations (as buyer, seller or broker; ``role`` narrows), newest first;
    with read-all and no role, every party's."""
    _may_read(principal)
    rule = _rule("negotiation_party")
    if role not in (None, *ROLES):
        raise ExchangeInvalid(
            MSG_BAD_FILTER, rule=rule, field="role", name="role", allowed=", ".join(ROLES)
        )
    if state is not None and state not in {s.value for s in S}:
        raise ExchangeInvalid(
            MSG_BAD_FILTER,
            rule=rule,
            field="state",
            name="state",
            allowed=", ".join(s.value for s in S),
        )
    party = principal.party_id
    stmt = select(ExchangeNegotiation)
    column = {
        "buyer": ExchangeNegotiation.buyer_id,
        "seller": ExchangeNegotiation.seller_id,
        "broker": ExchangeNegotiation.broker_id,
    }
    if role is not None:
        stmt = stmt.where(column[role] == party)
    elif not principal.can(P.EXCHANGE_CONTRACT_READ_ALL):
        stmt = stmt.where(or_(*(c == party for c in column.values())))
    if state is not None:
        stmt = stmt.where(ExchangeNegotiation.state == state)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(ExchangeNegotiation.updated_at.desc(), ExchangeNegotiation.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total)


def offer_dict(negotiation: ExchangeNegotiation, offer: ExchangeOffer) -> dict[str, Any]:
    return {
        "seq": offer.seq,
        "side": side_of(negotiation, offer),
        "by_broker": offer.from_party_id == negotiation.broker_id,
        "from_party_id": offer.from_party_id,
        "price_fen": offer.price_fen,
        "quantity": offer.quantity,
        "amount_fen": offer.price_fen * offer.quantity,
        "channels": list(offer.channels or []),
        "term_days": offer.term_days,
        "policy": offer.policy,
        "note": offer.note,
        "created_at": offer.created_at,
    }


def allowed_actions(
    negotiation: ExchangeNegotiation,
    latest: ExchangeOffer | None,
    principal: Principal,
    now: datetime,
) -> list[str]:
    """What ``principal`` may do now: ``offer``, ``accept``, ``withdraw`` (for the pages and
    the API, which still check everything when it is done)."""
    if negotiation.state != S.OPEN or now >= negotiation.deadline_at or latest is None:
        return []
    side = acting_side(negotiation, principal)
    if side is None:
        return []
    out: list[str] = []
    theirs = side_of(negotiation, latest) != side
    if theirs:
        out.append("offer")
    deciding = principal.party_id != negotiation.broker_id
    if (
        deciding
        and theirs
        and not (side == SELLER and latest.from_party_id != negotiation.buyer_id)
    ):
        out.append("accept")
    if deciding:
        out.append("withdraw")
    return out


def negotiation_dict(
    session: Session,
    negotiation: ExchangeNegotiation,
    principal: Principal,
    *,
    now: datetime | None = None,
    with_offers: bool = True,
) -> dict[str, Any]:
    """A negotiation as the API and the command line answer it."""
    now = now or utcnow()
    offers = offers_of(session, negotiation.id)
    latest = offers[-1] if offers else None
    listing = session.get(ExchangeListing, negotiation.listing_id)
    contract = (
        session.get(ExchangeContract, negotiation.contract_id) if negotiation.contract_id else None
    )
    out: dict[str, Any] = {
        "id": negotiation.id,
        "number": negotiation.number,
        "status": negotiation.state,
        "listing_id": negotiation.listing_id,
        "listing_number": listing.number if listing else "",
        "listing_title": listing.title if listing else "",
        "buyer_id": negotiation.buyer_id,
        "seller_id": negotiation.seller_id,
        "broker_id": negotiation.broker_id,
        "broker_side": negotiation.broker_side,
        "cross_border": negotiation.cross_border,
        "cross_border_note": CROSS_BORDER_FLAG if negotiation.cross_border else None,
        "deadline_at": negotiation.deadline_at,
        "contract_id": negotiation.contract_id,
        "contract_number": contract.number if contract else None,
        "reason": negotiation.reason,
        "latest": offer_dict(negotiation, latest) if latest else None,
        "your_side": acting_side(negotiation, principal),
        "actions": allowed_actions(negotiation, latest, principal, now),
        "created_at": negotiation.created_at,
        "updated_at": negotiation.updated_at,
    }
    if with_offers:
        out["offers"] = [offer_dict(negotiation, o) for o in offers]
    return out


def open_accounts(db: Database, party_ids: Iterable[str]) -> None:
    """Open the parties' money accounts in a transaction of their own when they have none yet:
    opening is audited, and the audit chain's head must stay the last lock a trade takes."""
    wanted = sorted({p for p in party_ids if p})
    if not wanted:
        return
    try:
        with db.write() as session:
            settlement.party_accounts(session, wanted)
    except settlement.SettlementError:
        pass  # an unverified party: the trade itself refuses it with the rule


contracts.on_contract_ended(TradeKind.AGREEMENT, contract_ended)
