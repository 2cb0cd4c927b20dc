"""Auctions (竞价): English auctions of a listing's licences with a reserve price, a minimum
increment, a deadline with anti-sniping extension, and deposits (docs/exchange.md, "Agreement
trades and auctions").

The seller's administrator starts an auction of a published listing of its own: start price,
reserve price, minimum increment and deadline per licence, the deposit each bidder freezes, the
start and end time, the anti-sniping window and extension, and the number of licences sold
together (the lot) — defaults and bounds in ``rules/exchange.yaml`` (``auction``). Numbered
``GX-DA-<year>-<serial>``. A limited listing's licences are reserved for the lot when the auction
is created (taken under the listing's row lock) and go back when it ends unsold or is cancelled,
so the mall cannot sell the lot away during the auction.

**Bids** (``place_bid``) run under the auction's row lock, so concurrent bids queue: a verified
bidder other than the seller (and not already leading) bids a price per licence of at least the
start price and at least the leading bid plus the increment, between the start and the deadline;
a bid in the last ``snipe_seconds`` pushes the deadline back by ``extension_seconds``, never past
``max_duration_days`` from the start (so the extensions end, and with them the deposits' hold). Every bid
carries an idempotency key: ``(bidder, key)`` is unique and stored with the SHA-256 of the body,
so the same key and body answer the same bid and another body is refused (409). A bidder's first
bid freezes its deposit (``settlement.freeze``, keyed by auction and bidder); **deposits are kept
until the auction ends** — an outbid bidder may bid again without freezing anew, and the losers'
deposits are released at the close in one step (so a bidder's money is never half-way between
bids).

**The close** (``close_auction``; the clock's ``close_due_auctions`` at the deadline, or the
seller or the exchange by hand after it) is one transaction under the auction's row lock and is
idempotent (an ended auction answers as it is; several processes queue on the lock and find it
ended). The leading bid wins if it reaches the reserve and the listing is still tradable for the
winner (``listings.tradable_listing``): the winner's deposit is released and the full price
(bid × licences) frozen as the contract's one escrow hold, and the contract is opened (kind
``auction``, accepted: awaiting signatures). **A winner who can no longer pay forfeits its
deposit** to the seller as the default penalty (``settlement.capture``) and the auction is
unsold. Every other bidder's deposit is released; bids end ``won`` / ``lost``. No bid, a bid
below the reserve, or a listing no longer tradable: unsold, every deposit released. Deposits are
released bidder by bidder in party-id order, so two closes never lock the same accounts in
opposite orders.

Bidders are anonymous to each other (“bidder 3”, numbered by their first bid); the seller sees
numbers too until the close (its audit trail records each bid by the bidder's number, the
bidder's own trail by name); the exchange and regulators see who bid.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datafactor import audit, identity, inbox, settlement
from datafactor.db import CHINA, Database, utcnow
from datafactor.errors import N_, BadRequest, DomainError, NotFound
from datafactor.exchange import contracts, listings, serials
from datafactor.exchange.domain import (
    AuctionState,
    BidStatus,
    ContractState,
    ListingState,
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
    ExchangeAuction,
    ExchangeBid,
    ExchangeContract,
    ExchangeListing,
)
from datafactor.exchange.rulebook import exchange_rules
from datafactor.permissions import Permission, Principal

log = logging.getLogger(__name__)
P = Permission
S = AuctionState
B = BidStatus
KIND: Final = "exchange.auction"  # the inbox kind of every message about an auction
SYSTEM: Final = "exchange-clock"
SERIAL_KIND: Final = "A"
NUMBER_PREFIX: Final = "DA"
FOREIGN: Final = "foreign_company"
FINAL: Final = frozenset({S.CLOSED, S.UNSOLD, S.CANCELLED})
_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII without spaces, like settlement's
CROSS_BORDER_FLAG: Final = N_("Subject to the cross-border assessment (issue: cross-border flows)")

AUCTION_STATE_LABELS: Final = {
    S.SCHEDULED: N_("Not started"),
    S.OPEN: N_("Bidding"),
    S.CLOSED: N_("Sold"),
    S.UNSOLD: N_("Unsold"),
    S.CANCELLED: N_("Cancelled"),
}
BID_STATUS_LABELS: Final = {
    B.LEADING: N_("Leading"),
    B.OUTBID: N_("Outbid"),
    B.WON: N_("Won"),
    B.LOST: N_("Not won"),
}

EVENT_LABELS: Final = {
    "exchange:auction:create": N_("Auction started"),
    "exchange:auction:bid": N_("Bid placed"),
    "exchange:auction:close": N_("Auction closed"),
    "exchange:auction:cancel": N_("Auction cancelled"),
}
audit.register_action_labels(EVENT_LABELS)

MSG_NOT_ALLOWED: Final = N_(
    "Your role does not include this ({permission}): ask your party's administrator (rule {rule})."
)
MSG_NOT_VERIFIED: Final = N_(
    "Only verified parties bid at the exchange: your party has not been verified yet. Wait for "
    "the exchange to verify it, then bid again (rule {rule})."
)
MSG_NOT_FOUND: Final = N_("No such auction, or not one you may see (rule {rule}).")
MSG_NO_LISTING: Final = N_("No such listing of your party's (rule {rule}).")
MSG_NOT_SELLER: Final = N_(
    "Only the seller of listing {listing} starts an auction of it (rule {rule})."
)
MSG_NOT_PUBLISHED: Final = N_(
    "Listing {listing} is {state}: only a published listing is auctioned (rule {rule})."
)
MSG_FREE: Final = N_("Listing {listing} is free: there is nothing to auction (rule {rule}).")
MSG_WHOLE: Final = N_(
    "{name} must be a whole number from {min} to {max}, not “{value}” (rule {rule})."
)
MSG_RESERVE: Final = N_(
    "The reserve price ({reserve} fen) must be at least the start price ({start} fen) "
    "(rule {rule})."
)
MSG_DEPOSIT: Final = N_(
    "The deposit must be from 1 fen to the start price × licences ({max} fen), not “{value}” "
    "(rule {rule})."
)
# What is wrong with the times, each a whole message (a part filled in would stay in English).
MSG_TIMES_WHY: Final = {
    "range": N_("Type real dates and times for the auction's start and end (rule {rule})."),
    "past": N_(
        "The auction cannot start in the past: start it now or later, within {lead} days "
        "(rule {rule})."
    ),
    "ahead": N_("The auction must start within {lead} days from now (rule {rule})."),
    "missing": N_("Give the time the auction ends (rule {rule})."),
    "short": N_("The auction must last at least {min} seconds (rule {rule})."),
    "long": N_("The auction may last at most {max} days (rule {rule})."),
}
MSG_LOTS: Final = N_(
    "Listing {listing} has {left} licences left: an auction of {quantity} cannot be started "
    "(rule {rule})."
)
MSG_SELLER_BIDS: Final = N_("The seller does not bid in its own auction (rule {rule}).")
MSG_LEADING: Final = N_(
    "You are already the leading bidder at {amount}: wait until someone outbids you (rule {rule})."
)
# Two whole messages, not one with a part filled in: a filled-in part would stay in English.
MSG_TOO_LOW_START: Final = N_(
    "A bid must be at least {minimum} per licence (the start price); {amount} is too low "
    "(rule {rule})."
)
MSG_TOO_LOW_INCREMENT: Final = N_(
    "A bid must be at least {minimum} per licence (the leading bid plus the minimum "
    "increment); {amount} is too low (rule {rule})."
)
MSG_AMOUNT: Final = N_(
    "The bid must be a whole number of fen from 1 to {max} for the lot, not “{value}” "
    "(rule {rule})."
)
MSG_NOT_STARTED: Final = N_("Auction {number} opens for bids at {starts}: bid then (rule {rule}).")
MSG_ENDED: Final = N_(
    "Auction {number} stopped taking bids at {ends}: bids after the deadline are refused "
    "(rule {rule})."
)
MSG_STATE: Final = N_("Auction {number} is {state}: {action} is not possible (rule {rule}).")
MSG_NOT_DUE: Final = N_(
    "Auction {number} runs until {ends}: it is closed at its deadline, not before (rule {rule})."
)
MSG_HAS_BIDS: Final = N_(
    "Auction {number} already has bids: it can no longer be cancelled; it closes at its "
    "deadline (rule {rule})."
)
MSG_KEY: Final = N_(
    "The idempotency key must be 1 to 128 printable ASCII characters without spaces (a UUID "
    "is best): a new one per bid, the same one when you retry it (rule {rule})."
)
MSG_KEY_MISSING: Final = N_(
    "Send an Idempotency-Key header with every bid: a new random value (a UUID) per bid, the "
    "same value when you retry it, so a retry never bids twice (rule {rule})."
)
MSG_KEY_REUSED: Final = N_(
    "The idempotency key {key} was already used for another bid ({amount} fen in auction "
    "{auction}). Use a new key for a new bid; repeat exactly the same request to get that bid "
    "again (rule {rule})."
)
MSG_KEY_RACE: Final = N_(
    "Another bid with the idempotency key {key} was being placed at the same moment. Repeat "
    "your request: it will answer that bid (rule {rule})."
)
MSG_BAD_FILTER: Final = N_("{name} must be one of {allowed} (rule {rule}).")

# Inbox messages
MSG_OUTBID: Final = N_(
    "Auction {number} (“{title}”): you have been outbid at {amount}. Bid again before {ends}."
)
MSG_WON: Final = N_("Auction {number} (“{title}”) is sold at {amount}: sign contract {contract}.")
MSG_LOST: Final = N_(
    "Auction {number} (“{title}”) has ended; your deposit of {deposit} is released."
)
MSG_UNSOLD: Final = N_("Auction {number} (“{title}”) ended unsold: {reason}")
MSG_CANCELLED: Final = N_("Auction {number} (“{title}”) was cancelled by the seller.")

# The system's reasons (stored as English, shown in the reader's language by the pages).
WHY_NO_BID: Final = N_("no bid was placed")
WHY_RESERVE: Final = N_("the highest bid {amount} fen did not reach the reserve price")
WHY_DEFAULT: Final = N_(
    "the winner could not pay {amount} fen; its deposit of {deposit} fen went to the seller as "
    "the default penalty"
)
WHY_LISTING: Final = N_("the listing can no longer be sold to the winner ({problem})")
WHY_CONTRACT_ENDED: Final = N_(
    "contract {contract} ended before completion; {licences} licence(s) went back to the listing"
)
SYSTEM_REASONS: Final = (WHY_NO_BID, WHY_RESERVE, WHY_DEFAULT, WHY_LISTING, WHY_CONTRACT_ENDED)


class MissingIdempotencyKey(ExchangeError, BadRequest):
    """A bid came without its ``Idempotency-Key`` (400)."""

    code = "idempotency-key-missing"


# ------------------------------------------------------------------------------------ rules


def _rule(key: str) -> str:
    return exchange_rules().rule_id(key)


def settings() -> Mapping[str, Any]:
    """The auctions' values from the rules file (defaults, bounds, the live page's poll)."""
    data: Mapping[str, Any] = exchange_rules().data["auction"]
    return data


def _int(value: object) -> int | None:
    """A whole number as sent, or None. ASCII digits only: ``str.isdigit`` also accepts “²”
    and other digits ``int`` refuses."""
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


def _whole(name: str, value: object, low: int, high: int, key: str) -> int:
    found = _int(value)
    if found is None or not low <= found <= high:
        raise ExchangeInvalid(
            MSG_WHOLE, rule=_rule(key), field=name, name=name, min=low, max=high, value=str(value)
        )
    return found


def china_day(moment: datetime) -> date:
    return moment.astimezone(CHINA).date()


def check_key(key: object) -> str:
    """A bid's idempotency key: required (400 without), 1–128 printable ASCII characters."""
    if key is None or key == "":
        raise MissingIdempotencyKey(
            MSG_KEY_MISSING, rule=_rule("auction_idempotency"), field="Idempotency-Key"
        )
    if not isinstance(key, str) or not _KEY.match(key):
        raise ExchangeInvalid(MSG_KEY, rule=_rule("auction_idempotency"), field="Idempotency-Key")
    return key


def request_hash(auction_id: str, amount_fen: int) -> str:
    body = json.dumps(
        {"auction_id": auction_id, "amount_fen": amount_fen}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(body.encode()).hexdigest()


# ------------------------------------------------------------------------------------ values


@dataclass(frozen=True)
class AuctionDraft:
    """An auction as the seller asks for it; None takes the rules file's default."""

    listing_id: str
    start_fen: object
    ends_at: datetime | None
    increment_fen: object = None
    reserve_fen: object = None
    deposit_fen: object = None
    starts_at: datetime | None = None
    snipe_seconds: object = None
    extension_seconds: object = None
    quantity: object = 1


@dataclass(frozen=True)
class Placed:
    """The outcome of ``place_bid``: the bid, and whether the call replayed an earlier one."""

    bid: ExchangeBid
    auction: ExchangeAuction
    replayed: bool


@dataclass(frozen=True)
class Closed:
    """The outcome of ``close_auction``: the auction, the winner's contract (if sold), and
    whether it had already ended (nothing changed)."""

    auction: ExchangeAuction
    contract: ExchangeContract | None
    replayed: bool


@dataclass
class CloseReport:
    """One run of the auctions' clock: auctions opened, sold, unsold, and those it could not
    close (tried again at the next run)."""

    opened: int = 0
    sold: list[str] = field(default_factory=list)
    unsold: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "opened": self.opened,
            "sold": list(self.sold),
            "unsold": list(self.unsold),
            "failed": list(self.failed),
        }


# ------------------------------------------------------------------------------------ parties


_READER: Final = Principal(
    user_id="",
    username="exchange-auctions",
    party_id="",
    party_kind="exchange_operator",
    roles=frozenset(),
    permissions=frozenset({P.IDENTITY_PARTY_READ, P.IDENTITY_PARTY_READ_ALL}),
    via="cli",
)


def _party(session: Session, party_id: str) -> Any | None:
    try:
        return identity.get_party(session, _READER, party_id)
    except NotFound:
        return None


def _verified(party: Any | None) -> bool:
    return party is not None and str(party.status) == identity.PartyStatus.VERIFIED.value


def bidder_principal(session: Session, party_id: str) -> Principal:
    """The winner as the listing checks see it at the close (the clock acts, not the winner)."""
    party = _party(session, party_id)
    return Principal(
        user_id="",
        username=f"bidder:{party_id}",
        party_id=party_id,
        party_kind=str(party.kind) if party is not None else "",
        roles=frozenset(),
        permissions=frozenset({P.EXCHANGE_LISTING_READ, P.EXCHANGE_TRADE_PLACE}),
        via="cli",
    )


# ------------------------------------------------------------------------------------ helpers


def _lock_listing(session: Session, listing_id: str) -> ExchangeListing | None:
    if not listings.plain_id(listing_id):  # PostgreSQL refuses a NUL in any text
        return None
    return session.scalars(
        select(ExchangeListing)
        .where(ExchangeListing.id == listing_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def _lock_auction(session: Session, auction_id: str) -> ExchangeAuction | None:
    if not listings.plain_id(auction_id):
        return None
    return session.scalars(
        select(ExchangeAuction)
        .where(ExchangeAuction.id == auction_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def _bids(session: Session, auction_id: str) -> list[ExchangeBid]:
    return list(
        session.scalars(
            select(ExchangeBid)
            .where(ExchangeBid.auction_id == auction_id)
            .order_by(ExchangeBid.amount_fen, ExchangeBid.created_at, ExchangeBid.id)
        )
    )


def _bidders(bids: Iterable[ExchangeBid]) -> list[str]:
    return sorted({b.bidder_id for b in bids})


def _audit(
    session: Session,
    principal: Principal | None,
    auction: ExchangeAuction,
    action: str,
    summary: str,
    rules: Iterable[str],
    party_ids: Iterable[str],
) -> None:
    for party in sorted({auction.seller_id, *party_ids}):
        audit.record(
            session,
            actor=principal,
            action=f"exchange:auction:{action}",
            object_type="exchange_auction",
            object_id=auction.id,
            summary=summary,
            party_id=party,
            reasons=list(dict.fromkeys(rules)),
            actor_name=None if principal else SYSTEM,
        )


def _tell(
    session: Session,
    auction: ExchangeAuction,
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
        link=f"/exchange/auctions/{auction.id}",
    )


def show_time(moment: datetime) -> str:
    return contracts.show_time(moment)


def _return_lots(listing: ExchangeListing | None, auction: ExchangeAuction, now: datetime) -> None:
    """Give an ended auction's reserved licences back to its limited listing (under the
    caller's row lock on the listing)."""
    if (
        listing is not None
        and listing.total_quantity is not None
        and listing.remaining_quantity is not None
    ):
        listing.remaining_quantity = min(
            listing.total_quantity, listing.remaining_quantity + auction.quantity
        )
        listing.updated_at = now


def agreement_policy(
    listing: ExchangeListing, auction: ExchangeAuction, buyer_id: str
) -> dict[str, Any]:
    """The listing's contract policy made the agreement of this sale (ODRL ``Agreement``)."""
    policy = copy.deepcopy(dict(listing.contract_policy or {}))
    policy["@type"] = "Agreement"
    policy["uid"] = f"urn:datafactor:auction:{auction.id}"
    policy["assigner"] = listing.seller_id
    policy["assignee"] = buyer_id
    return policy


# ------------------------------------------------------------------------------------ creating


def _aware(moment: datetime | None) -> datetime | None:
    """A moment as UTC; a naive one is China time (what a person types in a form)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=CHINA)
    return moment.astimezone(UTC)


def create_auction(
    session: Session, principal: Principal, draft: AuctionDraft, *, now: datetime
) -> ExchangeAuction:
    """Start an auction of a published listing of the seller's (see the module docstring)."""
    if not principal.can(P.EXCHANGE_CONTRACT_SIGN):
        raise ExchangeForbidden(
            MSG_NOT_ALLOWED,
            rule=_rule("auction_create"),
            permission=P.EXCHANGE_CONTRACT_SIGN.value,
        )
    listing = _lock_listing(session, draft.listing_id)
    if listing is None or (
        listing.seller_id != principal.party_id
        and not _listing_visible(session, principal, listing.id)
    ):  # a listing the caller may not see is not found, whatever its state
        raise ExchangeNotFound(MSG_NO_LISTING, rule=_rule("auction_create"))
    if listing.seller_id != principal.party_id:
        raise ExchangeForbidden(
            MSG_NOT_SELLER, rule=_rule("auction_create"), listing=listing.number
        )
    if listing.state != ListingState.PUBLISHED:
        raise ExchangeStateConflict(
            MSG_NOT_PUBLISHED,
            rule=_rule("auction_create"),
            listing=listing.number,
            state=listing.state,
        )
    if listing.price_model == PriceModel.FREE:
        raise ExchangeInvalid(MSG_FREE, rule=_rule("auction_create"), listing=listing.number)
    values = settings()
    cap = int(values["max_amount_fen"])
    quantity = _whole("quantity", draft.quantity, 1, int(values["max_quantity"]), "auction_create")
    start = _whole("start_fen", draft.start_fen, 1, cap // quantity, "auction_create")
    reserve = _whole(
        "reserve_fen",
        start if draft.reserve_fen in (None, "") else draft.reserve_fen,
        1,
        cap // quantity,
        "auction_create",
    )
    if reserve < start:
        raise ExchangeInvalid(
            MSG_RESERVE,
            rule=_rule("auction_create"),
            field="reserve_fen",
            reserve=reserve,
            start=start,
        )
    increment = _whole(
        "increment_fen",
        draft.increment_fen
        if draft.increment_fen not in (None, "")
        else max(int(values["min_increment_fen"]), start // 100),
        int(values["min_increment_fen"]),
        cap // quantity,
        "auction_create",
    )
    most = start * quantity
    default_deposit = max(1, most * int(values["deposit_bp"]) // 10_000)
    raw_deposit = default_deposit if draft.deposit_fen in (None, "") else draft.deposit_fen
    deposit = _int(raw_deposit)
    if deposit is None or not 1 <= deposit <= most:
        raise ExchangeInvalid(
            MSG_DEPOSIT,
            rule=_rule("auction_deposit"),
            field="deposit_fen",
            max=most,
            value=str(raw_deposit),
        )
    snipe_bounds, extension_bounds = values["snipe_seconds"], values["extension_seconds"]
    snipe = _whole(
        "snipe_seconds",
        snipe_bounds["default"] if draft.snipe_seconds in (None, "") else draft.snipe_seconds,
        int(snipe_bounds["min"]),
        int(snipe_bounds["max"]),
        "auction_snipe",
    )
    extension = _whole(
        "extension_seconds",
        extension_bounds["default"]
        if draft.extension_seconds in (None, "")
        else draft.extension_seconds,
        int(extension_bounds["min"]),
        int(extension_bounds["max"]),
        "auction_snipe",
    )
    problem = None
    try:
        starts = _aware(draft.starts_at) or now
        ends = _aware(draft.ends_at)
    except OverflowError:  # a year 1 or 9999 moment in another zone: no such UTC time
        starts, ends, problem = now, None, "range"
    lead, shortest, longest = (
        int(values["max_lead_days"]),
        int(values["min_duration_seconds"]),
        int(values["max_duration_days"]),
    )
    if problem is not None:
        pass
    elif starts < now - timedelta(minutes=1):
        problem = "past"
    elif starts > now + timedelta(days=lead):
        problem = "ahead"
    elif ends is None:
        problem = "missing"
    elif ends - starts < timedelta(seconds=shortest):
        problem = "short"
    elif ends - starts > timedelta(days=longest):
        problem = "long"
    if problem is not None or ends is None:
        raise ExchangeInvalid(
            MSG_TIMES_WHY[problem or "missing"],
            rule=_rule("auction_create"),
            field="starts_at" if problem in ("past", "ahead") else "ends_at",
            lead=lead,
            min=shortest,
            max=longest,
        )
    starts = max(starts, now)
    if listing.remaining_quantity is not None and quantity > listing.remaining_quantity:
        raise ExchangeStateConflict(
            MSG_LOTS,
            rule=_rule("auction_lots"),
            field="quantity",
            listing=listing.number,
            left=listing.remaining_quantity,
            quantity=quantity,
        )
    listings.take_quantity(session, listing, quantity)
    today = china_day(now)
    auction = ExchangeAuction(
        number=number(NUMBER_PREFIX, today.year, serials.take(session, SERIAL_KIND, today.year)),
        state=(S.OPEN if starts <= now else S.SCHEDULED).value,
        listing_id=listing.id,
        seller_id=listing.seller_id,
        quantity=quantity,
        start_fen=start,
        reserve_fen=reserve,
        increment_fen=increment,
        deposit_fen=deposit,
        starts_at=starts,
        ends_at=ends,
        snipe_seconds=snipe,
        extension_seconds=extension,
        leading_bid_id=None,
        leading_fen=None,
        bids=0,
        reason="",
        created_by=principal.user_id or None,
        created_at=now,
        updated_at=now,
    )
    session.add(auction)
    session.flush()
    _audit(
        session,
        principal,
        auction,
        "create",
        f"Auction {auction.number} of listing {listing.number}: {quantity} licence(s), start "
        f"{start} fen, reserve {reserve} fen, increment {increment} fen, deposit {deposit} fen, "
        f"{starts.isoformat()} - {ends.isoformat()}",
        [_rule("auction_mode"), _rule("auction_create"), _rule("auction_lots")],
        [],
    )
    return auction


# ------------------------------------------------------------------------------------ bidding


def _by_key(session: Session, bidder_id: str, key: str) -> ExchangeBid | None:
    return session.scalars(
        select(ExchangeBid).where(
            ExchangeBid.bidder_id == bidder_id, ExchangeBid.idempotency_key == key
        )
    ).one_or_none()


def _replay(session: Session, bid: ExchangeBid, fingerprint: str, key: str) -> Placed:
    if bid.request_hash != fingerprint:
        raise ExchangeStateConflict(
            MSG_KEY_REUSED,
            rule=_rule("auction_idempotency"),
            code="idempotency-key-reused",
            field="Idempotency-Key",
            key=key,
            amount=bid.amount_fen,
            auction=bid.auction_id,
        )
    auction = session.get(ExchangeAuction, bid.auction_id)
    assert auction is not None
    return Placed(bid, auction, replayed=True)


def minimum_bid(auction: ExchangeAuction) -> int:
    """The least the next bid may be, per licence."""
    if auction.leading_fen is None:
        return auction.start_fen
    return auction.leading_fen + auction.increment_fen


def _require_bidder(session: Session, principal: Principal) -> None:
    if principal.can(P.EXCHANGE_TRADE_PLACE):
        return
    if principal.party_id and not _verified(_party(session, principal.party_id)):
        raise ExchangeForbidden(MSG_NOT_VERIFIED, rule=_rule("auction_bidder"))
    raise ExchangeForbidden(
        MSG_NOT_ALLOWED, rule=_rule("auction_bidder"), permission=P.EXCHANGE_TRADE_PLACE.value
    )


def place_bid(
    session: Session,
    principal: Principal,
    auction_id: str,
    amount_fen: object,
    *,
    key: object,
    now: datetime,
) -> Placed:
    """A bid per licence (see the module docstring); refused with the rule and nothing done
    when it is below the increment, outside the bidding window, by the seller or the leader,
    or when the deposit cannot be frozen."""
    _require_bidder(session, principal)
    key = check_key(key)
    bidder = principal.party_id
    amount = _int(amount_fen)
    cap = int(settings()["max_amount_fen"])
    if amount is None or amount < 1 or amount > cap:
        raise ExchangeInvalid(
            MSG_AMOUNT,
            rule=_rule("auction_increment"),
            field="amount_fen",
            max=cap,
            value=str(amount_fen),
        )
    fingerprint = request_hash(auction_id, amount)
    if (done := _by_key(session, bidder, key)) is not None:
        return _replay(session, done, fingerprint, key)
    auction = _lock_auction(session, auction_id)
    if auction is None:
        raise ExchangeNotFound(MSG_NOT_FOUND, rule=_rule("auction_visible"))
    # The listing as this bidder may buy it: not visible → 404; the seller, an unverified
    # party, a suspended or delisted listing, a right no longer held → refused with its rule.
    listing = listings.tradable_listing(
        session, auction.listing_id, buyer=principal, on=china_day(now), lock=False
    )
    # PostgreSQL: a twin with the same key may have committed while this one waited for the
    # auction's lock (SQLite writers run one at a time: nothing can have).
    if (
        session.get_bind().dialect.name != "sqlite"
        and (done := _by_key(session, bidder, key)) is not None
    ):
        return _replay(session, done, fingerprint, key)
    if bidder == auction.seller_id:
        raise ExchangeForbidden(MSG_SELLER_BIDS, rule=_rule("auction_bidder"))
    if auction.state in FINAL:
        raise ExchangeStateConflict(
            MSG_STATE,
            rule=_rule("auction_state"),
            number=auction.number,
            state=auction.state,
            action="bid",
        )
    if now < auction.starts_at:
        raise ExchangeStateConflict(
            MSG_NOT_STARTED,
            rule=_rule("auction_window"),
            number=auction.number,
            starts=show_time(auction.starts_at),
        )
    if now >= auction.ends_at:
        raise ExchangeStateConflict(
            MSG_ENDED,
            rule=_rule("auction_window"),
            number=auction.number,
            ends=show_time(auction.ends_at),
        )
    leader = session.get(ExchangeBid, auction.leading_bid_id) if auction.leading_bid_id else None
    if leader is not None and leader.bidder_id == bidder:
        raise ExchangeStateConflict(
            MSG_LEADING,
            rule=_rule("auction_bidder"),
            amount=settlement.format_yuan(leader.amount_fen),
        )
    minimum = minimum_bid(auction)
    if amount < minimum:
        raise ExchangeInvalid(
            MSG_TOO_LOW_START if leader is None else MSG_TOO_LOW_INCREMENT,
            rule=_rule("auction_increment"),
            field="amount_fen",
            minimum=settlement.format_yuan(minimum),
            amount=settlement.format_yuan(amount),
        )
    if amount * auction.quantity > cap:
        raise ExchangeInvalid(
            MSG_AMOUNT,
            rule=_rule("auction_increment"),
            field="amount_fen",
            max=cap // auction.quantity,
            value=str(amount),
        )
    earlier = session.scalars(
        select(ExchangeBid.deposit_hold_id)
        .where(ExchangeBid.auction_id == auction.id, ExchangeBid.bidder_id == bidder)
        .limit(1)
    ).first()
    rules = [_rule("auction_increment"), _rule("auction_window")]
    if earlier is None:
        hold_id = settlement.freeze(
            session,
            bidder,
            auction.deposit_fen,
            f"auction:{auction.number}",
            key=deposit_key(auction.id, bidder),
            actor=principal,
            memo="deposit",
            now=now,
        ).hold_id
        rules.append(_rule("auction_deposit"))
    else:
        hold_id = earlier
    if leader is not None:
        leader.status = B.OUTBID.value
    bid = ExchangeBid(
        auction_id=auction.id,
        bidder_id=bidder,
        amount_fen=amount,
        deposit_hold_id=hold_id,
        status=B.LEADING.value,
        idempotency_key=key,
        request_hash=fingerprint,
        created_by=principal.user_id or None,
        created_at=now,
    )
    session.add(bid)
    try:
        session.flush()
    except IntegrityError:
        # A twin with this key in another auction is committing at this very moment (it held
        # no lock this bid needed): refuse this one whole; a retry answers the twin's bid.
        raise ExchangeStateConflict(
            MSG_KEY_RACE, rule=_rule("auction_idempotency"), field="Idempotency-Key", key=key
        ) from None
    # Anti-sniping, bounded: the deadline never moves past the longest an auction may last from
    # its start, so two bidders raising each other by the increment cannot keep every bidder's
    # deposit frozen without end.
    latest_end = auction.starts_at + timedelta(days=int(settings()["max_duration_days"]))
    extended = (
        auction.snipe_seconds > 0
        and auction.ends_at - now <= timedelta(seconds=auction.snipe_seconds)
        and auction.ends_at < latest_end
    )
    if extended:
        auction.ends_at = min(
            auction.ends_at + timedelta(seconds=auction.extension_seconds), latest_end
        )
        rules.append(_rule("auction_snipe"))
    if auction.state == S.SCHEDULED:
        auction.state = S.OPEN.value
    auction.leading_bid_id = bid.id
    auction.leading_fen = amount
    auction.bids = auction.bids + 1
    auction.updated_at = now
    session.flush()
    summary = f"Auction {auction.number}: bid {amount} fen per licence" + (
        f", deadline extended to {auction.ends_at.isoformat()}" if extended else ""
    )
    # The bidder's trail names who bid; the seller's names only the bidder's number (bidders are
    # anonymous to the seller until the close: its audit pages must not tell who bid).
    audit.record(
        session,
        actor=principal,
        action="exchange:auction:bid",
        object_type="exchange_auction",
        object_id=auction.id,
        summary=summary,
        party_id=bidder,
        reasons=list(dict.fromkeys(rules)),
    )
    audit.record(
        session,
        actor=None,
        actor_name=f"bidder {bidder_numbers(_bids(session, auction.id)).get(bidder, 0)}",
        action="exchange:auction:bid",
        object_type="exchange_auction",
        object_id=auction.id,
        summary=summary,
        party_id=auction.seller_id,
        reasons=list(dict.fromkeys(rules)),
    )
    if leader is not None:
        _tell(
            session,
            auction,
            [leader.bidder_id],
            MSG_OUTBID,
            {
                "number": auction.number,
                "title": listing.title,
                "amount": settlement.format_yuan(amount),
                "ends": show_time(auction.ends_at),
            },
        )
    return Placed(bid, auction, replayed=False)


def deposit_key(auction_id: str, bidder_id: str) -> str:
    return f"auction:{auction_id}:bidder:{bidder_id}:deposit"


# ------------------------------------------------------------------------------------ closing


def _may_close(principal: Principal, auction: ExchangeAuction) -> None:
    if principal.can(P.EXCHANGE_SETTLEMENT_RUN):
        return
    if principal.party_id == auction.seller_id and principal.can(P.EXCHANGE_TRADE_PLACE):
        return
    raise ExchangeForbidden(
        MSG_NOT_ALLOWED, rule=_rule("auction_state"), permission=P.EXCHANGE_SETTLEMENT_RUN.value
    )


def _release(
    session: Session, hold_id: str, auction: ExchangeAuction, bidder: str, now: datetime
) -> None:
    if settlement.hold_of(session, hold_id)["remaining_fen"] <= 0:
        return
    settlement.release(
        session,
        hold_id,
        None,
        key=f"{deposit_key(auction.id, bidder)}:release",
        actor=SYSTEM,
        memo="deposit released",
        now=now,
    )


def close_auction(
    session: Session,
    principal: Principal | None,
    auction_id: str,
    *,
    now: datetime,
) -> Closed:
    """End an auction at (or after) its deadline: sold to the leading bid at or above the
    reserve, or unsold; deposits released, the winner's turned into the full price (see the
    module docstring). ``principal`` None: the clock. An auction already ended answers as it
    is (``replayed``), and so, to the clock, does one a late bid extended after the clock found
    it due (it is closed at its new deadline)."""
    auction = _lock_auction(session, auction_id)
    if auction is None or (principal is not None and not _visible(session, principal, auction)):
        raise ExchangeNotFound(MSG_NOT_FOUND, rule=_rule("auction_visible"))
    if principal is not None:
        _may_close(principal, auction)
    if auction.state in FINAL:
        sold = session.get(ExchangeContract, auction.contract_id) if auction.contract_id else None
        return Closed(auction, sold, replayed=True)
    if now < auction.ends_at:
        if principal is None:  # the clock: a bid extended it after it was found due
            return Closed(auction, None, replayed=True)
        raise ExchangeStateConflict(
            MSG_NOT_DUE,
            rule=_rule("auction_state"),
            number=auction.number,
            ends=show_time(auction.ends_at),
        )
    bids = _bids(session, auction.id)
    holds: dict[str, str] = {}
    for bid in bids:
        if bid.deposit_hold_id:
            holds.setdefault(bid.bidder_id, bid.deposit_hold_id)
    leader = next((b for b in bids if b.id == auction.leading_bid_id), None)
    rules = [_rule("auction_reserve"), _rule("auction_deposit")]
    reason = ""
    winner: ExchangeBid | None = None
    listing: ExchangeListing | None = None
    if leader is None:
        reason = WHY_NO_BID
    elif leader.amount_fen < auction.reserve_fen:
        reason = WHY_RESERVE.format(amount=leader.amount_fen)
    else:
        try:
            listing = listings.tradable_listing(
                session,
                auction.listing_id,
                buyer=bidder_principal(session, leader.bidder_id),
                on=china_day(now),
                lock=True,
            )
            winner = leader
        except DomainError as exc:
            reason = WHY_LISTING.format(problem=str(exc))
    if listing is None:
        listing = _lock_listing(session, auction.listing_id)
    hold_id: str | None = None
    total = 0
    defaulted = False
    paying = {winner.bidder_id} if winner is not None else set()
    for bidder in sorted(set(holds) | paying):  # one order of the accounts' locks in every close
        deposit_hold = holds.get(bidder)
        if winner is None or bidder != winner.bidder_id:
            if deposit_hold:
                _release(session, deposit_hold, auction, bidder, now)
            continue
        total = winner.amount_fen * auction.quantity
        try:
            with session.begin_nested():
                if deposit_hold:
                    _release(session, deposit_hold, auction, bidder, now)
                hold_id = settlement.freeze(
                    session,
                    bidder,
                    total,
                    f"auction:{auction.number}",
                    key=f"auction:{auction.id}:win:freeze",
                    actor=SYSTEM,
                    memo=listing.number if listing else "",
                    now=now,
                ).hold_id
        except settlement.InsufficientFunds:
            remaining = (
                int(settlement.hold_of(session, deposit_hold)["remaining_fen"])
                if deposit_hold
                else 0
            )
            if deposit_hold and remaining > 0:
                settlement.capture(
                    session,
                    deposit_hold,
                    [settlement.Payout(settlement.LineKind.PAYOUT, remaining, auction.seller_id)],
                    key=f"{deposit_key(auction.id, bidder)}:forfeit",
                    actor=SYSTEM,
                    memo="deposit forfeited",
                    now=now,
                )
            reason = WHY_DEFAULT.format(amount=total, deposit=remaining)
            rules.append(_rule("auction_default"))
            defaulted = True
    contract: ExchangeContract | None = None
    if winner is not None and not defaulted and listing is not None:
        winner_party = _party(session, winner.bidder_id)
        cross_border = bool(listing.cross_border) or (
            winner_party is not None and str(winner_party.kind) == FOREIGN
        )
        today = china_day(now)
        contract = contracts.open_contract(
            session,
            contracts.ContractDraft(
                kind=TradeKind.AUCTION,
                listing=listing,
                buyer_id=winner.bidder_id,
                quantity=auction.quantity,
                price_fen=winner.amount_fen,
                amount_fen=total,
                channels=tuple(listing.channels or ()),
                policy=agreement_policy(listing, auction, winner.bidder_id),
                term_start=today,
                term_end=today + timedelta(days=max(1, int(listing.term_days or 1)) - 1),
                hold_id=hold_id,
                broker_id=listing.broker_id,
                auction_id=auction.id,
                cross_border=cross_border,
            ),
            actor=principal,
            now=now,
        )
        if cross_border:
            rules.append(_rule("auction_cross_border"))
    for bid in bids:
        bid.status = (B.WON if contract is not None and bid is winner else B.LOST).value
    if contract is not None:
        auction.state = S.CLOSED.value
        auction.contract_id = contract.id
    else:
        auction.state = S.UNSOLD.value
        _return_lots(listing, auction, now)
        rules.append(_rule("auction_lots"))
    auction.reason = reason
    auction.updated_at = now
    session.flush()
    bidders = _bidders(bids)
    _audit(
        session,
        principal,
        auction,
        "close",
        f"Auction {auction.number} {auction.state}"
        + (f": contract {contract.number}, {total} fen frozen" if contract else f": {reason}"),
        rules,
        bidders,
    )
    title = listing.title if listing else ""
    if contract is not None and winner is not None:
        _tell(
            session,
            auction,
            [auction.seller_id, winner.bidder_id],
            MSG_WON,
            {
                "number": auction.number,
                "title": title,
                "amount": settlement.format_yuan(total),
                "contract": contract.number,
            },
        )
    else:
        _tell(
            session,
            auction,
            [auction.seller_id],
            MSG_UNSOLD,
            {"number": auction.number, "title": title, "reason": reason},
        )
    losers = [b for b in bidders if winner is None or b != winner.bidder_id]
    _tell(
        session,
        auction,
        losers,
        MSG_LOST,
        {
            "number": auction.number,
            "title": title,
            "deposit": settlement.format_yuan(auction.deposit_fen),
        },
    )
    return Closed(auction, contract, replayed=False)


def cancel_auction(
    session: Session, principal: Principal, auction_id: str, *, now: datetime
) -> ExchangeAuction:
    """The seller's administrator (or the exchange) calls off an auction nobody has bid in;
    its reserved licences go back to the listing."""
    auction = _lock_auction(session, auction_id)
    if auction is None or not _visible(session, principal, auction):
        raise ExchangeNotFound(MSG_NOT_FOUND, rule=_rule("auction_visible"))
    if not (
        principal.can(P.EXCHANGE_LISTING_REVIEW)
        or (principal.party_id == auction.seller_id and principal.can(P.EXCHANGE_CONTRACT_SIGN))
    ):
        raise ExchangeForbidden(
            MSG_NOT_ALLOWED,
            rule=_rule("auction_state"),
            permission=P.EXCHANGE_CONTRACT_SIGN.value,
        )
    if auction.state in FINAL:
        raise ExchangeStateConflict(
            MSG_STATE,
            rule=_rule("auction_state"),
            number=auction.number,
            state=auction.state,
            action="cancel",
        )
    if auction.bids > 0:
        raise ExchangeStateConflict(
            MSG_HAS_BIDS, rule=_rule("auction_state"), number=auction.number
        )
    listing = _lock_listing(session, auction.listing_id)
    _return_lots(listing, auction, now)
    auction.state = S.CANCELLED.value
    auction.updated_at = now
    session.flush()
    _audit(
        session,
        principal,
        auction,
        "cancel",
        f"Auction {auction.number} cancelled before any bid",
        [_rule("auction_state"), _rule("auction_lots")],
        [],
    )
    return auction


def due_auctions(session: Session, now: datetime, limit: int) -> list[tuple[str, str]]:
    """(id, seller id) of auctions past their deadline and not yet ended."""
    rows = session.execute(
        select(ExchangeAuction.id, ExchangeAuction.seller_id)
        .where(
            ExchangeAuction.state.in_([S.SCHEDULED.value, S.OPEN.value]),
            ExchangeAuction.ends_at <= now,
        )
        .order_by(ExchangeAuction.ends_at)
        .limit(limit)
    )
    return [(r[0], r[1]) for r in rows]


def open_started_auctions(session: Session, now: datetime) -> int:
    """Scheduled auctions whose start has come are open for bids (a bid does it too)."""
    result = session.execute(
        update(ExchangeAuction)
        .where(
            ExchangeAuction.state == S.SCHEDULED.value,
            ExchangeAuction.starts_at <= now,
            ExchangeAuction.ends_at > now,
        )
        .values(state=S.OPEN.value, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def close_due_auctions(db: Database, *, now: datetime | None = None) -> CloseReport:
    """The auction clock: scheduled auctions whose start has come open; every auction past its
    deadline is closed, each in a transaction of its own (one that fails is reported and tried
    again at the next run). Safe with several processes: each close re-checks the auction under
    its row lock and an ended auction is left as it is."""
    now = now or utcnow()
    report = CloseReport()
    with db.write() as session:
        report.opened = open_started_auctions(session, now)
    with db.read() as session:
        due = due_auctions(session, now, int(settings()["close_batch"]))
    for auction_id, seller_id in due:
        open_accounts(db, [seller_id])  # a forfeited deposit is paid into the seller's account
        try:
            with db.write() as session:
                closed = close_auction(session, None, auction_id, now=now)
                if not closed.replayed:
                    target = report.sold if closed.contract is not None else report.unsold
                    target.append(closed.auction.number)
        except Exception:  # one auction must not stop the run; tried again at the next
            log.exception("exchange auctions: auction %s could not be closed", auction_id)
            report.failed.append(auction_id)
    if report.sold or report.unsold or report.failed:
        log.info("exchange auctions: %s", report.as_dict())
    return report


def contract_ended(session: Session, contract_id: str, *, now: datetime) -> int:
    """The auction contract ``contract_id`` was terminated (unsigned in time, or ended by a
    party or the exchange): the lot's licences go back to the listing, once (the auction's
    reason says so). For the contracts' clock and entry points, in the transaction that ended
    the contract; returns the licences returned (0: nothing to do)."""
    auction = session.scalars(
        select(ExchangeAuction)
        .where(ExchangeAuction.contract_id == contract_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    contract = session.get(ExchangeContract, contract_id)
    if (
        auction is None
        or contract is None
        or contract.state != ContractState.TERMINATED
        or auction.reason
    ):
        return 0
    listing = _lock_listing(session, auction.listing_id)
    limited = listing is not None and listing.total_quantity is not None
    _return_lots(listing, auction, now)
    licences = auction.quantity if limited else 0
    auction.reason = WHY_CONTRACT_ENDED.format(contract=contract.number, licences=licences)
    auction.updated_at = now
    session.flush()
    return licences


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


# ------------------------------------------------------------------------------------ reading


def _listing_visible(session: Session, principal: Principal, listing_id: str) -> bool:
    """Whether ``principal`` may see the auctioned listing (the listings' own rule: its seller
    and broker, the exchange and regulators, and its audience)."""
    try:
        listings.get_listing(session, principal, listing_id)
    except DomainError:
        return False
    return True


def _visible_clause(session: Session, principal: Principal) -> ColumnElement[bool]:
    """Which auctions ``principal`` may see, as a SQL condition: every one for the exchange and
    regulators; its own party's (as seller, or where it bid); and those whose listing it may see
    (the listings' own rule, ``listings.visibility``: its seller and broker, the reviewers, and
    its audience). ``get_auction`` and ``list_auctions`` both apply it, so an auction is listed
    exactly when it can be opened."""
    if principal.can(P.EXCHANGE_CONTRACT_READ_ALL):
        return true()
    # The listings module's condition, not a copy of its rules (it has no public name for it).
    listing_seen = ExchangeAuction.listing_id.in_(
        select(ExchangeListing.id).where(listings.visibility(session, principal))
    )
    party = principal.party_id
    if not party:
        return listing_seen
    bid_here = ExchangeAuction.id.in_(
        select(ExchangeBid.auction_id).where(ExchangeBid.bidder_id == party)
    )
    return or_(ExchangeAuction.seller_id == party, bid_here, listing_seen)


def _visible(session: Session, principal: Principal, auction: ExchangeAuction) -> bool:
    if principal.party_id == auction.seller_id or principal.can(P.EXCHANGE_CONTRACT_READ_ALL):
        return True
    found = session.scalar(
        select(literal(1)).where(
            ExchangeAuction.id == auction.id, _visible_clause(session, principal)
        )
    )
    return found is not None


def get_auction(session: Session, principal: Principal, auction_id: str) -> ExchangeAuction:
    """One auction the caller may see (its listing is visible to it); others: 404."""
    auction = session.get(ExchangeAuction, auction_id) if listings.plain_id(auction_id) else None
    if auction is None or not _visible(session, principal, auction):
        raise ExchangeNotFound(MSG_NOT_FOUND, rule=_rule("auction_visible"))
    return auction


def _shown_state(now: datetime) -> ColumnElement[str]:
    """``state_at`` as SQL: the state a person sees (a scheduled auction whose start has come
    is open)."""
    return case(
        (
            and_(ExchangeAuction.state == S.SCHEDULED.value, ExchangeAuction.starts_at <= now),
            S.OPEN.value,
        ),
        else_=ExchangeAuction.state,
    )


def list_auctions(
    session: Session,
    principal: Principal,
    *,
    state: str | None = None,
    listing_id: str | None = None,
    mine: bool = False,
    limit: int = 50,
    offset: int = 0,
    now: datetime | None = None,
) -> tuple[list[ExchangeAuction], int]:
    """One page of the auctions the caller may see — bidding first, then the scheduled, then
    the ended — newest first in each, and how many there are in all; ``state``: those a person
    sees in that state now (``state_at``); ``mine``: the party's own (as seller or bidder).
    Visibility, filters, order and paging are one query (and one count)."""
    if state is not None and state not in {s.value for s in S}:
        raise ExchangeInvalid(
            MSG_BAD_FILTER,
            rule=_rule("auction_visible"),
            field="state",
            name="state",
            allowed=", ".join(s.value for s in S),
        )
    if listing_id is not None and not listings.plain_id(listing_id):
        return [], 0  # no listing has such an id (and PostgreSQL refuses a NUL in any text)
    shown = _shown_state(now or utcnow())
    stmt = select(ExchangeAuction).where(_visible_clause(session, principal))
    if state is not None:
        stmt = stmt.where(shown == state)
    if listing_id is not None:
        stmt = stmt.where(ExchangeAuction.listing_id == listing_id)
    if mine:
        party = principal.party_id
        if not party:
            return [], 0
        stmt = stmt.where(
            or_(
                ExchangeAuction.seller_id == party,
                ExchangeAuction.id.in_(
                    select(ExchangeBid.auction_id).where(ExchangeBid.bidder_id == party)
                ),
            )
        )
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    if total <= offset:
        return [], total
    rank = case((shown == S.OPEN.value, 0), (shown == S.SCHEDULED.value, 1), else_=2)
    page = stmt.order_by(rank, ExchangeAuction.created_at.desc(), ExchangeAuction.id)
    return list(session.scalars(page.limit(limit).offset(offset))), total


def state_at(auction: ExchangeAuction, now: datetime) -> str:
    """The auction's state as a person sees it now (a scheduled one whose start has come is
    open; the stored state catches up at the next bid or run of the clock)."""
    if auction.state == S.SCHEDULED and now >= auction.starts_at:
        return S.OPEN.value
    return auction.state


def bidder_numbers(bids: Iterable[ExchangeBid]) -> dict[str, int]:
    """Bidders numbered 1, 2, 3 … by their first bid (how the page names them)."""
    numbers: dict[str, int] = {}
    for bid in sorted(bids, key=lambda b: (b.created_at, b.amount_fen)):
        numbers.setdefault(bid.bidder_id, len(numbers) + 1)
    return numbers


def sees_bidders(principal: Principal, auction: ExchangeAuction) -> bool:
    """Who sees the bidders' identities: the exchange and regulators; the seller once sold."""
    return principal.can(P.EXCHANGE_CONTRACT_READ_ALL) or (
        principal.party_id == auction.seller_id and auction.state == S.CLOSED
    )


def auction_dict(
    session: Session,
    auction: ExchangeAuction,
    principal: Principal,
    *,
    now: datetime | None = None,
    history: int | None = None,
) -> dict[str, Any]:
    """An auction as the API, the live page and the command line show it: bidders anonymous
    to each other (the caller's own bids marked ``mine``)."""
    now = now or utcnow()
    bids = _bids(session, auction.id)
    numbers = bidder_numbers(bids)
    reveal = sees_bidders(principal, auction)
    party = principal.party_id
    listing = session.get(ExchangeListing, auction.listing_id)
    shown = sorted(bids, key=lambda b: (b.amount_fen, b.created_at), reverse=True)
    if history is not None:
        shown = shown[:history]

    def bid_dict(bid: ExchangeBid) -> dict[str, Any]:
        return {
            "id": bid.id,
            "amount_fen": bid.amount_fen,
            "bidder_no": numbers.get(bid.bidder_id, 0),
            "bidder_id": bid.bidder_id if reveal or bid.bidder_id == party else None,
            "mine": bid.bidder_id == party,
            "status": bid.status,
            "created_at": bid.created_at,
        }

    leader = next((b for b in bids if b.id == auction.leading_bid_id), None)
    state = state_at(auction, now)
    is_seller = party == auction.seller_id or principal.can(P.EXCHANGE_CONTRACT_READ_ALL)
    contract = session.get(ExchangeContract, auction.contract_id) if auction.contract_id else None
    return {
        "id": auction.id,
        "number": auction.number,
        "status": state,
        "listing_id": auction.listing_id,
        "listing_number": listing.number if listing else "",
        "listing_title": listing.title if listing else "",
        "seller_id": auction.seller_id,
        "quantity": auction.quantity,
        "start_fen": auction.start_fen,
        "reserve_fen": auction.reserve_fen if is_seller else None,
        "reserve_met": None if leader is None else leader.amount_fen >= auction.reserve_fen,
        "increment_fen": auction.increment_fen,
        "deposit_fen": auction.deposit_fen,
        "starts_at": auction.starts_at,
        "ends_at": auction.ends_at,
        "snipe_seconds": auction.snipe_seconds,
        "extension_seconds": auction.extension_seconds,
        "current_fen": auction.leading_fen,
        "minimum_bid_fen": minimum_bid(auction),
        "leading": bid_dict(leader) if leader else None,
        "bids": auction.bids,
        "bidders": len(numbers),
        "you_bid": party in numbers,
        "seconds_left": max(0, int((auction.ends_at - now).total_seconds()))
        if state in (S.SCHEDULED.value, S.OPEN.value)
        else 0,
        "contract_id": auction.contract_id,
        "contract_number": contract.number if contract else None,
        "cross_border": bool(contract.cross_border)
        if contract
        else bool(listing.cross_border if listing else False),
        "reason": auction.reason,
        "history": [bid_dict(b) for b in shown],
        "created_at": auction.created_at,
    }


def bid_dict(session: Session, bid: ExchangeBid, principal: Principal) -> dict[str, Any]:
    """One bid as its bidder sees it (the answer to placing it)."""
    auction = session.get(ExchangeAuction, bid.auction_id)
    assert auction is not None
    numbers = bidder_numbers(_bids(session, auction.id))
    return {
        "id": bid.id,
        "auction_id": bid.auction_id,
        "auction_number": auction.number,
        "amount_fen": bid.amount_fen,
        "lot_amount_fen": bid.amount_fen * auction.quantity,
        "bidder_no": numbers.get(bid.bidder_id, 0),
        "status": bid.status,
        "deposit_fen": auction.deposit_fen,
        "deposit_hold_id": bid.deposit_hold_id if bid.bidder_id == principal.party_id else None,
        "ends_at": auction.ends_at,
        "created_at": bid.created_at,
    }


contracts.on_contract_ended(TradeKind.AUCTION, contract_ended)
