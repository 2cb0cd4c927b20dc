"""Mall orders (商城购买): a verified buyer orders a published listing, the price is frozen in
escrow and the contract is generated from the listing — in one transaction (docs/exchange.md,
"Mall orders").

``place_order`` is the whole trade's write path: the listing is row-locked and read by
``listings.trade_listing`` with, once the lock is held, the order the ``Idempotency-Key`` already
placed in the buyer's scope (the same key and body answer the same order: nothing is frozen or
taken again; the same key with another body is refused, 409 — also when the listing named does
not exist); then the checks of ``listings.tradable_listing`` (which refuses what may not be
bought now and by whom); the licences are taken under that lock (``listings.take_licences``:
exactly N orders get N licences however many race); the amount is frozen with
``settlement.freeze`` under a key derived from the order; the contract's and the order's numbers
are drawn (``serials.take_many``); the contract is drawn up by ``contracts.open_mall_contract`` (a
mall contract in *accepted*, awaiting both signatures, with the listing's policy made an
agreement between the seller and the buyer); the order is numbered ``GX-DO-<year>-<serial>`` and
recorded *contracted*; the buyer's audit trail gets the event (the seller's has the contract
drawn up from it) and the seller is told — all or nothing: any refusal leaves no order, no
licence taken and nothing frozen.

Locks are taken in one order by every order — the listing row, then the buyer's balance rows
(settlement), then the audit chain's head (held back to the end, ``contracts.audits_last``) — so
concurrent orders queue and never deadlock; on SQLite also the year's gapless counter rows
(``exchange.serials``; PostgreSQL draws from sequences, which hold nothing). A party's money
accounts are opened by ``open_buyer_accounts`` in a transaction of their own before its first
order: opening is audited, and an order that locked the head before its balances would reverse
the others' order.

``cancel_order``: the buyer calls the order off while its contract is not yet signed: the
licences go back to the listing and the contract is terminated through the contracts module
(which releases the escrow). A mall contract that ends any other way (its signing deadline, the
seller or the exchange terminating it) ends its order through ``contract_ended``, the hook the
contracts module calls in that transaction.
"""

from __future__ import annotations

import calendar
import copy
import hashlib
import json
import re
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import Table, bindparam, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datafactor import audit, identity, inbox, settlement
from datafactor.db import CHINA, Database, new_id
from datafactor.errors import N_, BadRequest, NotFound
from datafactor.exchange import contracts, listings, serials
from datafactor.exchange.domain import (
    ContractState,
    OrderState,
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
    ExchangeOrder,
)
from datafactor.exchange.rulebook import exchange_rules
from datafactor.fastsql import Plan, Raw, Rows
from datafactor.permissions import Permission, Principal

P = Permission
KIND: Final = "exchange.order"  # the inbox kind of every message about an order
SERIAL_KIND: Final = "O"
NUMBER_PREFIX: Final = "DO"
_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII without spaces, like settlement's
# The contract states in which the buyer may still call the order off (nothing signed yet).
CANCELLABLE: Final = frozenset(
    {ContractState.REQUESTED, ContractState.OFFERED, ContractState.ACCEPTED}
)

EVENT_LABELS: Final = {
    "exchange:order:place": N_("Place a mall order"),
    "exchange:order:cancel": N_("Cancel a mall order"),
}
audit.register_action_labels(EVENT_LABELS)

ORDER_STATE_LABELS: Final = {
    OrderState.FROZEN: N_("Payment frozen"),
    OrderState.CONTRACTED: N_("Contract generated"),
    OrderState.CANCELLED: N_("Cancelled"),
}

MSG_NOT_ALLOWED: Final = N_(
    "Your role does not include placing orders ({permission}): ask your party's administrator "
    "(rule {rule})."
)
MSG_NOT_VERIFIED: Final = N_(
    "Only verified parties may buy at the exchange: your party's registration has not been "
    "verified yet. Wait for the exchange to verify it, then order again (rule {rule})."
)
MSG_NO_READ: Final = N_("Your role does not include reading orders ({permission}).")
MSG_NO_ORDER: Final = N_("No such order, or it is not one you may see (rule {rule}).")
MSG_QUANTITY: Final = N_(
    "The quantity must be a whole number of at least 1, not “{value}” (rule {rule})."
)
MSG_QUANTITY_CAP: Final = N_(
    "At most {max} can be ordered at once from this listing; you asked for {quantity}. Order "
    "less, or split the purchase into several orders (rule {rule})."
)
MSG_KEY: Final = N_(
    "The idempotency key must be 1 to 128 printable ASCII characters without spaces (a UUID "
    "is best): a new one per order, the same one when you retry it (rule {rule})."
)
MSG_KEY_MISSING: Final = N_(
    "Send an Idempotency-Key header with every order: a new random value (a UUID) per order, "
    "the same value when you retry it, so a retry never buys twice (rule {rule})."
)
MSG_KEY_REUSED: Final = N_(
    "The idempotency key {key} was already used for another order ({number}: listing "
    "{listing}, quantity {quantity}). Use a new key for a new order; repeat exactly the same "
    "request to get that order again (rule {rule})."
)
MSG_KEY_RACE: Final = N_(
    "Another order with the idempotency key {key} was being placed at the same moment. Repeat "
    "your request: it will answer that order (rule {rule})."
)
MSG_ONLY_BUYER: Final = N_(
    "Only the buyer may cancel order {number}. As the seller, decline by not signing its "
    "contract, or terminate the contract (rule {rule})."
)
MSG_SIGNED: Final = N_(
    "Order {number} can no longer be cancelled: its contract {contract} has been signed by both "
    "parties (state: {state}). A signed contract is ended through the contract itself — "
    "terminate it or raise a dispute (rule {rule})."
)
MSG_PLACED: Final = N_(
    "New order {number}: {quantity} × “{title}”, {amount} frozen in escrow. Sign contract "
    "{contract} to proceed."
)
MSG_CANCELLED: Final = N_(
    "Order {number} for “{title}” was cancelled by the buyer; its contract {contract} is "
    "terminated and the payment released."
)


# --------------------------------------------------------------------------------- the rules


def _rules_data() -> dict[str, Any]:
    data = exchange_rules().data.get("orders")
    if not isinstance(data, dict):
        raise ValueError("exchange.yaml: an orders section is required")
    return data


def _rule(key: str) -> str:
    return exchange_rules().rule_id(key)


def max_quantity(price_model: str) -> int:
    """The most one order may ask for under ``price_model`` (rules file ``orders``)."""
    caps = _rules_data()["max_quantity"]
    return int(caps.get(price_model, caps["default"]))


def check_quantity(value: object) -> int:
    """A quantity as sent (JSON, a form, the command line): a whole number ≥ 1, else refused."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ExchangeInvalid(
            MSG_QUANTITY, rule=_rule("order_quantity"), field="quantity", value=value
        )
    return value


def check_key(key: object) -> str:
    """An idempotency key as sent: required (400 without), 1–128 printable ASCII characters."""
    if key is None or key == "":
        raise MissingIdempotencyKey(
            MSG_KEY_MISSING, rule=_rule("order_idempotency"), field="Idempotency-Key"
        )
    if not isinstance(key, str) or not _KEY.match(key):
        raise ExchangeInvalid(MSG_KEY, rule=_rule("order_idempotency"), field="Idempotency-Key")
    return key


class MissingIdempotencyKey(ExchangeError, BadRequest):
    """An order came without its ``Idempotency-Key`` (400)."""

    code = "idempotency-key-missing"


def request_hash(listing_id: str, quantity: int) -> str:
    """The fingerprint of an order's body: the same key with another body is refused."""
    body = json.dumps(
        {"listing_id": listing_id, "quantity": quantity}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class Terms:
    """What an order of ``quantity`` under a listing comes to: the licences it takes from a
    limited listing, the amount frozen, and the contract's term (both ends included)."""

    licences: int
    amount_fen: int
    term_start: date
    term_end: date


def order_terms(
    listing: ExchangeListing | listings.TradeListing, quantity: int, today: date
) -> Terms:
    """One-off: ``quantity`` licences at the price each; subscription: ``quantity`` periods at
    the price per period, one licence, the term as long as the periods bought; metered:
    ``quantity`` prepaid calls at the price per call, one licence; free: ``quantity`` licences,
    nothing to pay. The term is the listing's ``term_days`` from today unless periods say
    otherwise."""
    model = listing.price_model
    price = 0 if model == PriceModel.FREE else listing.price_fen
    licences = quantity if model in (PriceModel.ONE_OFF, PriceModel.FREE) else 1
    days = max(1, int(listing.term_days or 1))
    end = today + timedelta(days=days - 1)
    if model == PriceModel.SUBSCRIPTION:
        months = _rules_data()["period_months"].get(listing.period or "")
        end = (
            add_months(today, int(months) * quantity) - timedelta(days=1)
            if months
            else today + timedelta(days=days * quantity - 1)
        )
    return Terms(licences, price * quantity, today, end)


def add_months(day: date, months: int) -> date:
    """``day`` ``months`` calendar months later (the 31st becomes the month's last day)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    last = calendar.monthrange(year, month)[1]
    return date(year, month, min(day.day, last))


def agreement_policy(
    listing: ExchangeListing | listings.TradeListing, buyer_id: str, order_id: str
) -> dict[str, Any]:
    """The listing's contract policy made the agreement of this trade (ODRL ``Agreement``): its
    own uid, the seller as assigner and the buyer as assignee of every rule that names none."""
    # The mall order's listing was just read (its policy is this trade's own object): only the
    # top-level keys change, so a shallow copy keeps it intact; an ORM row's is copied whole.
    if isinstance(listing, listings.TradeListing):
        policy = dict(listing.contract_policy or {})
    else:
        policy = copy.deepcopy(dict(listing.contract_policy or {}))
    policy["@type"] = "Agreement"
    policy["uid"] = f"urn:datafactor:order:{order_id}"
    policy["assigner"] = listing.seller_id
    policy["assignee"] = buyer_id
    return policy


# ----------------------------------------------------------------------------------- helpers


def _require_buyer(session: Session, principal: Principal) -> None:
    if principal.can(P.EXCHANGE_TRADE_PLACE):
        return
    if not _verified(session, principal.party_id):
        raise ExchangeForbidden(MSG_NOT_VERIFIED, rule=_rule("listing_buyer"))
    raise ExchangeForbidden(
        MSG_NOT_ALLOWED, rule=_rule("order_place"), permission=P.EXCHANGE_TRADE_PLACE.value
    )


_PARTY_READER: Final = Principal(
    user_id="",
    username="exchange-orders",
    party_id="",
    party_kind="exchange_operator",
    roles=frozenset(),
    permissions=frozenset({P.IDENTITY_PARTY_READ, P.IDENTITY_PARTY_READ_ALL}),
    via="cli",
)


def _verified(session: Session, party_id: str) -> bool:
    try:
        party = identity.get_party(session, _PARTY_READER, party_id)
    except NotFound:
        return False
    return bool(party.status == identity.PartyStatus.VERIFIED)


def _replay(order: ExchangeOrder, fingerprint: str, key: str) -> Placed:
    if order.request_hash != fingerprint:
        raise ExchangeStateConflict(
            MSG_KEY_REUSED,
            rule=_rule("order_idempotency"),
            code="idempotency-key-reused",
            field="Idempotency-Key",
            key=key,
            number=order.number,
            listing=order.listing_id,
            quantity=order.quantity,
        )
    return Placed(order, replayed=True)


def _china_day(now: datetime) -> date:
    return now.astimezone(CHINA).date()


def _parties(order: ExchangeOrder) -> list[str]:
    return sorted({order.buyer_id, order.seller_id})


def _audit(
    session: Session,
    principal: Principal | None,
    order: ExchangeOrder,
    action: str,
    summary: str,
    rules: list[str],
    *,
    parties: list[str] | None = None,
    actor_name: str = "exchange",
) -> None:
    for party in _parties(order) if parties is None else parties:
        contracts.record_audit(  # held back to the end when a contract move runs the hook
            session,
            actor=principal,
            action=action,
            object_type="exchange_order",
            object_id=order.id,
            summary=summary,
            party_id=party,
            reasons=rules,
            actor_name=None if principal else actor_name,
        )


# --------------------------------------------------------------------------------- use cases


@dataclass(frozen=True)
class Placed:
    """The outcome of ``place_order`` / ``cancel_order``: the order, and whether the call
    replayed an earlier one (nothing changed)."""

    order: ExchangeOrder
    replayed: bool
    view: OrderView | None = None  # when the use case already holds what the view shows


# Parties whose money accounts this process has seen open (accounts are never closed).
_ACCOUNTS_OPEN: set[str] = set()
_ACCOUNTS_LOCK = threading.Lock()


def open_buyer_accounts(db: Database, principal: Principal) -> None:
    """Open the buyer's money accounts in a transaction of their own if it has none yet.

    ``settlement.freeze`` would open them inside the order's transaction, and opening is
    audited: the audit chain's head would then be locked before the order's number counters,
    the reverse of every other order's lock order (a deadlock on PostgreSQL). Opening first
    keeps the head the last lock. A no-op once the process has seen the accounts open."""
    party = principal.party_id
    if not party or party in _ACCOUNTS_OPEN or not principal.can(P.EXCHANGE_TRADE_PLACE):
        return
    with db.write() as session:
        settlement.party_accounts(session, [party])
    with _ACCOUNTS_LOCK:
        _ACCOUNTS_OPEN.add(party)


# The order's own statements, compiled once (``fastsql``): the trade's hot path.
_O: Final = cast(Table, ExchangeOrder.__table__)
_KEY_OF: Final = Plan(
    select(_O.c.id, _O.c.request_hash).where(
        _O.c.buyer_id == bindparam("buyer"), _O.c.idempotency_key == bindparam("key")
    )
)
_ORDER_COLUMNS: Final = (
    "id",
    "number",
    "state",
    "kind",
    "listing_id",
    "buyer_id",
    "seller_id",
    "quantity",
    "unit_price_fen",
    "amount_fen",
    "hold_id",
    "contract_id",
    "idempotency_key",
    "request_hash",
    "created_by",
    "created_at",
    "updated_at",
)
_ORDER_ROWS: Final = Rows(_O, _ORDER_COLUMNS)


def _key_race(exc: IntegrityError) -> bool:
    """Whether the insert failed on the order's unique idempotency key (its constraint's name on
    PostgreSQL, its columns in SQLite's message)."""
    diag = getattr(exc.orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    return name == "uq_exchange_order_buyer_id" or "exchange_order.idempotency_key" in str(exc.orig)


def _placed_with(session: Session, raw: Raw, buyer_id: str, key: str) -> ExchangeOrder | None:
    """The order ``key`` already placed for the buyer (loaded whole only then), or None."""
    found = raw.first(_KEY_OF, {"buyer": buyer_id, "key": key})
    return None if found is None else session.get(ExchangeOrder, found[0])


@contracts.audits_last
def place_order(
    session: Session,
    principal: Principal,
    listing_id: str,
    quantity: object,
    *,
    key: object,
    now: datetime,
) -> Placed:
    """A mall purchase (see the module's docstring); the order, ``contracted``.

    Every trade runs this, so it is written with compiled statements (``fastsql``) rather than
    the ORM: the listing's lock and, after it, one statement reading the parties, the
    registry's revision, the review and the key's order (``listings.trade_listing``, whose
    registry checks are cached by that revision); the escrow takes the buyer's balance rows in
    one statement and posts in one more on PostgreSQL; both numbers come in one statement; the
    contract, the order and the messages are one insert on PostgreSQL, the audit events
    another. The rows, locks (in the same order), refusals and audit events are the ones the
    ORM path wrote."""
    _require_buyer(session, principal)
    quantity = check_quantity(quantity)
    key = check_key(key)
    buyer = principal.party_id
    fingerprint = request_hash(listing_id, quantity)
    raw = Raw.of(session)
    today = _china_day(now)
    try:
        listing = listings.trade_listing(
            session, raw, listing_id, buyer=principal, on=today, key=key
        )
    except ExchangeNotFound:
        # No such listing: the key may still name an order (of another listing: 409).
        if (done := _placed_with(session, raw, buyer, key)) is not None:
            return _replay(done, fingerprint, key)
        raise
    # The key's order, placed before or while this one waited for the listing's lock (its
    # request's retry, or a twin that committed first): answered again, nothing written.
    if (
        listing.placed_id is not None
        and (done := session.get(ExchangeOrder, listing.placed_id)) is not None
    ):
        return _replay(done, fingerprint, key)
    cap = max_quantity(listing.price_model)
    if quantity > cap:
        raise ExchangeInvalid(
            MSG_QUANTITY_CAP,
            rule=_rule("order_quantity"),
            field="quantity",
            max=cap,
            quantity=quantity,
        )
    terms = order_terms(listing, quantity, today)
    listings.take_licences(raw, listing, terms.licences)
    order_id = new_id()
    hold_id: str | None = None
    if terms.amount_fen > 0:
        hold_id = settlement.freeze(
            session,
            buyer,
            terms.amount_fen,
            f"order:{order_id}",
            key=f"order:{order_id}:freeze",
            actor=principal,
            memo=listing.number,
            now=now,
            fresh_key=True,  # derived from the order's id, drawn just above
        ).hold_id
    contract_serial, order_serial = serials.take_many(
        session, [(contracts.SERIAL_KIND, today.year), (SERIAL_KIND, today.year)], raw
    )
    contract = contracts.open_mall_contract(
        session,
        raw,
        contracts.ContractDraft(
            kind=TradeKind.MALL,
            listing=listing,
            buyer_id=buyer,
            quantity=quantity,
            price_fen=0 if listing.price_model == PriceModel.FREE else listing.price_fen,
            amount_fen=terms.amount_fen,
            channels=tuple(listing.channels or ()),
            policy=agreement_policy(listing, buyer, order_id),
            term_start=terms.term_start,
            term_end=terms.term_end,
            hold_id=hold_id,
            broker_id=listing.broker_id,
            order_id=order_id,
            cross_border=bool(listing.cross_border),
        ),
        serial=contract_serial,
        actor=principal,
        now=now,
    )
    values: dict[str, Any] = {
        "id": order_id,
        "number": number(NUMBER_PREFIX, today.year, order_serial),
        "state": OrderState.CONTRACTED.value,
        "kind": TradeKind.MALL.value,
        "listing_id": listing.id,
        "buyer_id": buyer,
        "seller_id": listing.seller_id,
        "quantity": quantity,
        "unit_price_fen": contract.price_fen,
        "amount_fen": terms.amount_fen,
        "hold_id": hold_id,
        "contract_id": contract.id,
        "idempotency_key": key,
        "request_hash": fingerprint,
        "created_by": principal.user_id or None,
        "created_at": now,
        "updated_at": now,
    }
    order = ExchangeOrder(**values)  # what was written (not attached to the session)
    rules = [
        _rule("order_escrow"),
        _rule("order_contract"),
        *(r for r in (contract.rules or []) if r),
    ]
    # The buyer's trail records the order (the seller's records the contract drawn up from it,
    # in this transaction): every audit event holds the chain's head until commit, and every
    # trade waits for it, so a trade records no more events than it needs.
    _audit(
        session,
        principal,
        order,
        "exchange:order:place",
        f"Order {order.number}: {quantity} x listing {listing.number}, "
        f"{terms.amount_fen} fen frozen (hold {hold_id or '-'}), contract {contract.number}",
        list(dict.fromkeys(rules)),
        parties=[buyer],
    )
    try:
        inbox.notify_all(
            session,
            [
                contract.note,
                inbox.Note(
                    [order.seller_id],
                    kind=KIND,
                    message=MSG_PLACED,
                    params={
                        "number": order.number,
                        "quantity": str(quantity),
                        "title": listing.title,
                        "amount": settlement.format_yuan(terms.amount_fen),
                        "contract": contract.number,
                    },
                    link=f"/exchange/orders/{order.id}",
                ),
            ],
            together=[*contract.rows, (_ORDER_ROWS, [values])],
        )
    except IntegrityError as exc:
        if not _key_race(exc):
            raise
        # A twin with this key for another listing is committing at this very moment (it held
        # no lock this order needed): refuse this one whole; a retry answers the twin's order.
        raise ExchangeStateConflict(
            MSG_KEY_RACE, rule=_rule("order_idempotency"), field="Idempotency-Key", key=key
        ) from None
    view = OrderView(
        order, listing.number, listing.title, listing.price_model, contract.number, contract.state
    )
    return Placed(order, replayed=False, view=view)


def cancel_order(
    session: Session, principal: Principal, order_id: str, *, now: datetime, reason: str = ""
) -> Placed:
    """The buyer calls the order off before its contract is signed: the contract terminated by
    the contracts module (which releases the escrow; terminating binds the party, so it is the
    buyer administrator's step), the licences back on the listing. Cancelling a cancelled order
    answers it again (``replayed``)."""
    order = _visible(session, principal, order_id, lock=True)
    if order.buyer_id != principal.party_id:
        raise ExchangeForbidden(MSG_ONLY_BUYER, rule=_rule("order_cancel"), number=order.number)
    if order.state == OrderState.CANCELLED:
        return Placed(order, replayed=True)
    # The listing's row before the contract's steps, as every order takes it first.
    listing = _lock_listing(session, order.listing_id)
    contract = session.get(ExchangeContract, order.contract_id) if order.contract_id else None
    if contract is not None and contract.state not in ENDABLE_STATES:
        raise ExchangeStateConflict(
            MSG_SIGNED,
            rule=_rule("order_cancel"),
            number=order.number,
            contract=contract.number,
            state=contract.state,
        )
    # The order is cancelled and its licences returned first, so the contracts module's
    # ended-contract hook (``contract_ended``, run as the contract terminates) finds nothing
    # left to do; a refusal of the termination rolls all of it back.
    licences = _return_licences(listing, order, now)
    order.state = OrderState.CANCELLED.value
    order.updated_at = now
    session.flush()
    if contract is not None and contract.state != ContractState.TERMINATED:
        contracts.terminate_contract(
            session,
            principal,
            contract.id,
            reason=reason or f"order {order.number} cancelled by the buyer",
            now=now,
        )
    else:
        _require_buyer(session, principal)
    _audit(
        session,
        principal,
        order,
        "exchange:order:cancel",
        f"Order {order.number} cancelled; contract {contract.number if contract else '-'} "
        f"terminated, {licences} licence(s) back on listing {listing.number}",
        [_rule("order_cancel")],
    )
    inbox.notify(
        session,
        [order.seller_id],
        kind=KIND,
        message=MSG_CANCELLED,
        params={
            "number": order.number,
            "title": listing.title,
            "contract": contract.number if contract else "-",
        },
        link=f"/exchange/orders/{order.id}",
    )
    return Placed(order, replayed=False)


ENDABLE_STATES: Final = frozenset(s.value for s in CANCELLABLE | {ContractState.TERMINATED})


def _lock_listing(session: Session, listing_id: str) -> ExchangeListing:
    return session.scalars(
        select(ExchangeListing)
        .where(ExchangeListing.id == listing_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def _return_licences(listing: ExchangeListing, order: ExchangeOrder, now: datetime) -> int:
    """Put the order's licences back on a limited listing (under the caller's row lock)."""
    licences = order_terms(listing, order.quantity, _china_day(order.created_at)).licences
    if listing.total_quantity is not None and listing.remaining_quantity is not None:
        listing.remaining_quantity = min(
            listing.total_quantity, listing.remaining_quantity + licences
        )
        listing.updated_at = now
    return licences


def contract_ended(session: Session, contract_id: str, *, now: datetime) -> ExchangeOrder | None:
    """The mall contract ``contract_id`` was terminated without the buyer cancelling the order
    (its signing deadline passed, the seller or the exchange ended it): its order becomes
    *cancelled* and its licences go back to the listing. For the contracts' entry points and
    clock, in the transaction that ended the contract; idempotent (None when there is nothing
    to do)."""
    order = session.scalars(
        select(ExchangeOrder).where(ExchangeOrder.contract_id == contract_id).with_for_update()
    ).one_or_none()
    if order is None or order.state == OrderState.CANCELLED:
        return None
    contract = session.get(ExchangeContract, contract_id)
    if contract is None or contract.state != ContractState.TERMINATED:
        return None
    listing = _lock_listing(session, order.listing_id)
    licences = _return_licences(listing, order, now)
    order.state = OrderState.CANCELLED.value
    order.updated_at = now
    session.flush()
    _audit(
        session,
        None,
        order,
        "exchange:order:cancel",
        f"Order {order.number} ended with its contract {contract.number}; {licences} "
        f"licence(s) back on listing {listing.number}",
        [_rule("order_cancel"), *(contract.rules or [])],
        actor_name="exchange-contracts",
    )
    return order


# ----------------------------------------------------------------------------------- reading


def _may_read(principal: Principal) -> None:
    if not (
        principal.can(P.EXCHANGE_CONTRACT_READ)
        or principal.can(P.EXCHANGE_CONTRACT_READ_ALL)
        or principal.can(P.EXCHANGE_TRADE_PLACE)
    ):
        raise ExchangeForbidden(
            MSG_NO_READ, rule=_rule("order_visible"), permission=P.EXCHANGE_CONTRACT_READ.value
        )


def _visible(
    session: Session, principal: Principal, order_id: str, *, lock: bool = False
) -> ExchangeOrder:
    _may_read(principal)
    stmt = select(ExchangeOrder).where(ExchangeOrder.id == order_id)
    if lock:
        stmt = stmt.with_for_update()
    order = session.scalars(stmt).one_or_none()
    if order is None or not (
        principal.party_id in (order.buyer_id, order.seller_id)
        or principal.can(P.EXCHANGE_CONTRACT_READ_ALL)
    ):
        raise ExchangeNotFound(MSG_NO_ORDER, rule=_rule("order_visible"))
    return order


@dataclass(frozen=True)
class OrderView:
    """An order as its pages and the API show it: the row, the listing's number and title, and
    the contract's number and state."""

    order: ExchangeOrder
    listing_number: str
    listing_title: str
    price_model: str
    contract_number: str | None
    contract_state: str | None


def _views(session: Session, orders: list[ExchangeOrder]) -> list[OrderView]:
    listing_ids = {o.listing_id for o in orders}
    contract_ids = {o.contract_id for o in orders if o.contract_id}
    found_listings = {
        row.id: row
        for row in session.execute(
            select(
                ExchangeListing.id,
                ExchangeListing.number,
                ExchangeListing.title,
                ExchangeListing.price_model,
            ).where(ExchangeListing.id.in_(listing_ids))
        )
    }
    found_contracts = (
        {
            row.id: row
            for row in session.execute(
                select(ExchangeContract.id, ExchangeContract.number, ExchangeContract.state).where(
                    ExchangeContract.id.in_(contract_ids)
                )
            )
        }
        if contract_ids
        else {}
    )
    out = []
    for o in orders:
        li = found_listings.get(o.listing_id)
        c = found_contracts.get(o.contract_id) if o.contract_id else None
        out.append(
            OrderView(
                o,
                li.number if li else "",
                li.title if li else "",
                li.price_model if li else "",
                c.number if c else None,
                c.state if c else None,
            )
        )
    return out


def as_dict(view: OrderView) -> dict[str, Any]:
    """An order as the API answers it (``id`` and ``status`` are the stable part)."""
    o = view.order
    return {
        "id": o.id,
        "number": o.number,
        "status": o.state,
        "kind": o.kind,
        "listing_id": o.listing_id,
        "listing_number": view.listing_number,
        "listing_title": view.listing_title,
        "price_model": view.price_model,
        "buyer_id": o.buyer_id,
        "seller_id": o.seller_id,
        "quantity": o.quantity,
        "unit_price_fen": o.unit_price_fen,
        "amount_fen": o.amount_fen,
        "hold_id": o.hold_id,
        "contract_id": o.contract_id,
        "contract_number": view.contract_number,
        "contract_state": view.contract_state,
        "created_at": o.created_at,
        "updated_at": o.updated_at,
    }


def get_order(session: Session, principal: Principal, order_id: str) -> OrderView:
    """One order its buyer or seller (or the exchange, a regulator) may see; others: 404."""
    return _views(session, [_visible(session, principal, order_id)])[0]


def view_of(session: Session, placed: Placed | ExchangeOrder) -> OrderView:
    """The view of an order the caller already holds (just placed or cancelled): the one the
    use case built, or read now."""
    if isinstance(placed, Placed):
        return placed.view or _views(session, [placed.order])[0]
    return _views(session, [placed])[0]


ROLES: Final = ("buyer", "seller")


def list_orders(
    session: Session,
    principal: Principal,
    *,
    role: str | None = None,
    state: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[OrderView], int]:
    """The party's orders as buyer and as seller (``role`` narrows to one side), newest first;
    with read-all and no role, every party's."""
    _may_read(principal)
    party = principal.party_id
    if role not in (None, *ROLES):
        raise ExchangeInvalid(
            N_("role must be buyer or seller (rule {rule})."),
            rule=_rule("order_visible"),
            field="role",
        )
    if state is not None and state not in {s.value for s in OrderState}:
        raise ExchangeInvalid(
            N_("state must be one of {states} (rule {rule})."),
            rule=_rule("order_visible"),
            field="state",
            states=", ".join(s.value for s in OrderState),
        )
    stmt = select(ExchangeOrder)
    if role == "buyer":
        stmt = stmt.where(ExchangeOrder.buyer_id == party)
    elif role == "seller":
        stmt = stmt.where(ExchangeOrder.seller_id == party)
    elif not principal.can(P.EXCHANGE_CONTRACT_READ_ALL):
        stmt = stmt.where(or_(ExchangeOrder.buyer_id == party, ExchangeOrder.seller_id == party))
    if state is not None:
        stmt = stmt.where(ExchangeOrder.state == state)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = list(
        session.scalars(
            stmt.order_by(ExchangeOrder.created_at.desc(), ExchangeOrder.id)
            .limit(limit)
            .offset(offset)
        )
    )
    return _views(session, rows), total


def listing_for_checkout(
    session: Session, principal: Principal, listing_id: str, *, on: date
) -> ExchangeListing:
    """The listing as the checkout page shows it: one the buyer may buy now (else the
    listings module's refusal, with its rule)."""
    _require_buyer(session, principal)
    return listings.tradable_listing(session, listing_id, buyer=principal, on=on)


def available_fen(session: Session, principal: Principal) -> int:
    """The buyer's available funds (what an order may freeze), 0 before its first deposit."""
    rows = settlement.list_accounts(session, principal)
    return sum(r.balance_fen for r in rows if r.kind == settlement.AccountKind.AVAILABLE)


contracts.on_contract_ended(TradeKind.MALL, contract_ended)
