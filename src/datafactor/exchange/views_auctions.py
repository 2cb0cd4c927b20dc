"""Exchange pages — Agreement trades (negotiations) and auctions.

``/exchange/negotiations``: my agreement trades; ``/exchange/negotiations/new?listing=ID``:
open one with a first offer; ``/exchange/negotiations/{id}``: the offer thread with the forms
the caller may use now (counter-offer, accept, withdraw). ``/exchange/auctions``: auctions I may
see, bidding first; ``/exchange/auctions/new?listing=ID``: the seller starts one;
``/exchange/auctions/{id}``: the live auction page — current price, leading bidder (bidders are
“bidder N” to each other), time left and the bid history in a fragment
(``/exchange/auctions/{id}/live``) that HTMX polls every ``auction.poll_seconds`` (2 s) and
that reloads the page once the auction has ended; the bid form sits outside the fragment so a
refresh never wipes what a person is typing. Each rendering of the bid form carries a fresh
idempotency key, so a double click bids once. Prices are typed in yuan and shown as ``¥``.
While the registry has the product's title in dispute (``listings.open_dispute``,
EXC-LST-DISPUTE) the auction, negotiation and new-negotiation pages say so and disable the bid,
accept and offer forms (the trade itself is still refused).
Thin shells over ``negotiation`` and ``auctions``; a refused form re-renders with the reason.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy.orm import Session

from datafactor import settlement
from datafactor.db import CHINA, utcnow
from datafactor.errors import N_, DomainError
from datafactor.exchange import auctions, listings, negotiation, orders
from datafactor.exchange.domain import CHANNEL_LABELS, TRADE_KIND_LABELS
from datafactor.exchange.errors import ExchangeInvalid
from datafactor.exchange.models import ExchangeAuction, ExchangeListing
from datafactor.exchange.rulebook import exchange_rules
from datafactor.identity import WebIdentity, counterparty_names
from datafactor.permissions import Permission, Principal
from datafactor.web.deps import DbDep, WebUser, check_csrf
from datafactor.web.forms import error_text, form_list, read_form, redirect, render
from datafactor.web.i18n import gettext

router = APIRouter(include_in_schema=False)
P = Permission
PAGE = 30

MSG_YUAN: Final = N_("Type an amount in yuan, such as 1,234.56 (rule {rule}).")
MSG_WHEN: Final = N_("Type a date and time, such as 2026-12-01 18:00 (China time) (rule {rule}).")
MSG_CONFIRM: Final = N_(
    "Tick the box to confirm: accepting binds your party and freezes the agreed amount in "
    "escrow (rule {rule})."
)


def _labels() -> dict[str, Any]:
    return {
        "yuan": settlement.format_yuan,
        "channel_labels": CHANNEL_LABELS,
        "trade_kind_labels": TRADE_KIND_LABELS,
        "negotiation_labels": negotiation.NEGOTIATION_STATE_LABELS,
        "side_labels": negotiation.SIDE_LABELS,
        "auction_labels": auctions.AUCTION_STATE_LABELS,
        "bid_labels": auctions.BID_STATUS_LABELS,
        "cross_border_flag": negotiation.CROSS_BORDER_FLAG,
        "poll_seconds": int(auctions.settings()["poll_seconds"]),
    }


def _fen(text: str, *, field: str, rule_key: str, required: bool = True) -> int | None:
    """A yuan amount typed in a form, as whole fen (None when left empty and optional)."""
    if not (text or "").strip():
        if required:
            raise ExchangeInvalid(MSG_YUAN, rule=exchange_rules().rule_id(rule_key), field=field)
        return None
    try:
        return settlement.parse_yuan(text)
    except ValueError:
        raise ExchangeInvalid(
            MSG_YUAN, rule=exchange_rules().rule_id(rule_key), field=field
        ) from None


def _when(text: str, *, field: str) -> datetime | None:
    """A ``datetime-local`` value (China time), or None when empty."""
    if not (text or "").strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ExchangeInvalid(
            MSG_WHEN, rule=exchange_rules().rule_id("auction_create"), field=field
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=CHINA)


def _reason(text: str, templates: Sequence[str]) -> str:
    """A stored reason in the reader's language: the system's (one of ``templates``, its values
    filled in, stored in English) translated with its values; a person's as typed."""
    for template in templates:
        parts = re.split(r"\{(\w+)\}", template)
        pattern = "".join(
            f"(?P<{part}>.*)" if i % 2 else re.escape(part) for i, part in enumerate(parts)
        )
        found = re.fullmatch(pattern, text or "", re.S)
        if found:
            return gettext(template, **found.groupdict())
    return text


def dispute_notice(found: listings.TitleDispute | None) -> str | None:
    """The notice of an open title dispute in the reader's language (None without one), as the
    listing page shows it (a view module of its own: the entry points do not import each
    other)."""
    if found is None:
        return None
    return gettext(listings.MSG_DISPUTE_NOTICE, **found.params)


def _local_input(moment: datetime) -> str:
    return moment.astimezone(CHINA).strftime("%Y-%m-%dT%H:%M")


def _clock(seconds: int) -> str:
    """Time left as ``1 d 02:03:04`` / ``02:03:04``."""
    days, rest = divmod(max(0, seconds), 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days} d {text}" if days else text


async def _post(
    request: Request,
    identity: WebIdentity,
    act: Callable[[dict[str, str]], str],
    again: Callable[[dict[str, str], dict[str, Any]], Response],
) -> Response:
    """A posted form: CSRF checked, ``act`` run off the event loop (it returns where to go), or
    the page again with the refusal in the person's language."""
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        target = await run_in_threadpool(act, form)
    except DomainError as exc:
        if exc.status == 404:
            raise
        return again(form, {"status": exc.status, **error_text(exc)})
    return redirect(target)


# --- agreement trades (协议交易) ---------------------------------------------------------------


def _terms(form: Mapping[str, str]) -> negotiation.Terms:
    price = _fen(
        form.get("price", ""), field="price_fen", rule_key="negotiation_terms", required=False
    )
    policy = listings.parse_policy_text(form.get("policy", ""))
    channels = form_list(dict(form), "channels")
    return negotiation.Terms(
        price_fen=price,
        quantity=form.get("quantity") or None,
        channels=channels or None,
        term_days=form.get("term_days") or None,
        policy=policy,
        note=form.get("note", ""),
    )


@router.get("/exchange/negotiations")
def negotiations_page(
    request: Request,
    identity: WebUser,
    db: DbDep,
    status: Annotated[str | None, Query(max_length=16)] = None,
    role: Annotated[str | None, Query(max_length=8)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    principal = identity.principal
    with db.read() as s:
        rows, total = negotiation.list_negotiations(
            s,
            principal,
            state=status or None,
            role=role or None,
            limit=PAGE,
            offset=(page - 1) * PAGE,
        )
        items = [negotiation.negotiation_dict(s, r, principal, with_offers=False) for r in rows]
        names = counterparty_names(s, principal, {p for r in rows for p in negotiation.parties(r)})
    return render(
        request,
        "exchange/negotiations/list.html",
        identity,
        items=items,
        total=total,
        names=names,
        state_filter=status or "",
        role=role or "",
        page=page,
        pages=max(1, -(-total // PAGE)),
        **_labels(),
    )


def _new_negotiation(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    listing_id: str,
    *,
    form: Mapping[str, str] | None = None,
    status: int = 200,
    **extra: Any,
) -> Response:
    principal = identity.principal
    with db.read() as s:
        listing = listings.get_listing(s, principal, listing_id)
        names = counterparty_names(
            s, principal, [p for p in (listing.seller_id, listing.broker_id) if p]
        )
        dispute = listings.open_dispute(s, listing, auctions.china_day(utcnow()))
    return render(
        request,
        "exchange/negotiations/new.html",
        identity,
        status=status,
        listing=listing,
        names=names,
        dispute=dispute,
        dispute_notice=dispute_notice(dispute),
        form=dict(form or {}),
        is_broker=negotiation.is_broker(principal),
        **_labels(),
        **extra,
    )


@router.get("/exchange/negotiations/new")
def new_negotiation_page(
    request: Request,
    identity: WebUser,
    db: DbDep,
    listing: Annotated[str, Query(max_length=36)],
) -> Response:
    return _new_negotiation(request, identity, db, listing)


@router.post("/exchange/negotiations")
async def create_negotiation_form(request: Request, identity: WebUser, db: DbDep) -> Response:
    principal = identity.principal

    def act(form: dict[str, str]) -> str:
        with db.write() as s:
            row = negotiation.open_negotiation(
                s,
                principal,
                form.get("listing_id", ""),
                _terms(form),
                broker_id=form.get("broker_id") or None,
                buyer_id=form.get("buyer_id") or None,
                now=utcnow(),
            )
            return f"/exchange/negotiations/{row.id}"

    def again(form: dict[str, str], error: dict[str, Any]) -> Response:
        return _new_negotiation(
            request, identity, db, form.get("listing_id", ""), form=form, **error
        )

    return await _post(request, identity, act, again)


def _negotiation_page(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    negotiation_id: str,
    *,
    form: Mapping[str, str] | None = None,
    status: int = 200,
    **extra: Any,
) -> Response:
    principal = identity.principal
    with db.read() as s:
        row = negotiation.get_negotiation(s, principal, negotiation_id)
        shown = negotiation.negotiation_dict(s, row, principal)
        shown["reason"] = _reason(shown["reason"], negotiation.SYSTEM_REASONS)
        listing = s.get(ExchangeListing, row.listing_id)
        names = counterparty_names(s, principal, negotiation.parties(row))
        available = _available(s, principal) if "accept" in shown["actions"] else None
        # An acceptance or a counter-offer is refused while the registry has the title in
        # dispute (EXC-LST-DISPUTE): the page says so and disables those forms.
        trading = {"accept", "offer"} & set(shown["actions"])
        dispute = (
            listings.open_dispute(s, listing, auctions.china_day(utcnow()))
            if trading and listing is not None
            else None
        )
    latest = shown["latest"] or {}
    return render(
        request,
        "exchange/negotiations/detail.html",
        identity,
        status=status,
        n=shown,
        listing=listing,
        names=names,
        available=available,
        form=dict(form or {}),
        latest=latest,
        latest_policy=json.dumps(latest.get("policy") or {}, ensure_ascii=False, indent=2),
        dispute=dispute,
        dispute_notice=dispute_notice(dispute),
        **_labels(),
        **extra,
    )


def _available(s: Session, principal: Principal) -> int | None:
    """The caller's available funds (shown beside the acceptance that would freeze them)."""
    if not principal.can(P.SETTLEMENT_ACCOUNT_READ):
        return None
    return orders.available_fen(s, principal)


@router.get("/exchange/negotiations/{negotiation_id}")
def negotiation_page(
    request: Request, negotiation_id: str, identity: WebUser, db: DbDep
) -> Response:
    return _negotiation_page(request, identity, db, negotiation_id)


def _negotiation_action(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    negotiation_id: str,
    run: Callable[[Session, dict[str, str]], None],
) -> Callable[..., Any]:
    def act(form: dict[str, str]) -> str:
        with db.write() as s:
            run(s, form)
        return f"/exchange/negotiations/{negotiation_id}"

    return act


@router.post("/exchange/negotiations/{negotiation_id}/offers")
async def offer_form(
    request: Request, negotiation_id: str, identity: WebUser, db: DbDep
) -> Response:
    def run(s: Session, form: dict[str, str]) -> None:
        negotiation.make_offer(s, identity.principal, negotiation_id, _terms(form), now=utcnow())

    return await _post(
        request,
        identity,
        _negotiation_action(request, identity, db, negotiation_id, run),
        lambda form, error: _negotiation_page(
            request, identity, db, negotiation_id, form=form, **error
        ),
    )


@router.post("/exchange/negotiations/{negotiation_id}/accept")
async def accept_form(
    request: Request, negotiation_id: str, identity: WebUser, db: DbDep
) -> Response:
    def act(form: dict[str, str]) -> str:
        if form.get("confirm") != "yes":
            raise ExchangeInvalid(
                MSG_CONFIRM,
                rule=exchange_rules().rule_id("negotiation_escrow"),
                field="confirm",
            )
        with db.read() as s:
            buyer = negotiation.get_negotiation(s, identity.principal, negotiation_id).buyer_id
        negotiation.open_accounts(db, [buyer])
        seq = form.get("seq", "")
        with db.write() as s:
            done = negotiation.accept_offer(
                s,
                identity.principal,
                negotiation_id,
                seq=int(seq) if seq.isascii() and seq.isdigit() and len(seq) <= 18 else None,
                now=utcnow(),
            )
            return f"/exchange/negotiations/{done.negotiation.id}"

    return await _post(
        request,
        identity,
        act,
        lambda form, error: _negotiation_page(
            request, identity, db, negotiation_id, form=form, **error
        ),
    )


@router.post("/exchange/negotiations/{negotiation_id}/withdraw")
async def withdraw_form(
    request: Request, negotiation_id: str, identity: WebUser, db: DbDep
) -> Response:
    def run(s: Session, form: dict[str, str]) -> None:
        negotiation.withdraw_negotiation(
            s, identity.principal, negotiation_id, reason=form.get("reason", ""), now=utcnow()
        )

    return await _post(
        request,
        identity,
        _negotiation_action(request, identity, db, negotiation_id, run),
        lambda form, error: _negotiation_page(
            request, identity, db, negotiation_id, form=form, **error
        ),
    )


# --- auctions (竞价) --------------------------------------------------------------------------


@router.get("/exchange/auctions")
def auctions_page(
    request: Request,
    identity: WebUser,
    db: DbDep,
    status: Annotated[str | None, Query(max_length=16)] = None,
    mine: Annotated[bool, Query()] = False,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    principal = identity.principal
    now = utcnow()
    with db.read() as s:
        rows, total = auctions.list_auctions(
            s,
            principal,
            state=status or None,
            mine=mine,
            limit=PAGE,
            offset=(page - 1) * PAGE,
            now=now,
        )
        items = [auctions.auction_dict(s, r, principal, now=now, history=0) for r in rows]
    for item in items:
        item["clock"] = _clock(item["seconds_left"])
    return render(
        request,
        "exchange/auctions/list.html",
        identity,
        items=items,
        total=total,
        state_filter=status or "",
        mine=mine,
        page=page,
        pages=max(1, -(-total // PAGE)),
        **_labels(),
    )


def _new_auction(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    listing_id: str,
    *,
    form: Mapping[str, str] | None = None,
    status: int = 200,
    **extra: Any,
) -> Response:
    with db.read() as s:
        listing = listings.get_listing(s, identity.principal, listing_id)
    values = auctions.settings()
    now = utcnow()
    defaults = {
        "start": settlement.yuan_text(listing.price_fen or 0).replace(",", ""),
        "starts_at": _local_input(now),
        "ends_at": _local_input(now.replace(second=0, microsecond=0) + timedelta(days=1)),
        "quantity": "1",
        "snipe_seconds": str(values["snipe_seconds"]["default"]),
        "extension_seconds": str(values["extension_seconds"]["default"]),
    }
    return render(
        request,
        "exchange/auctions/new.html",
        identity,
        status=status,
        listing=listing,
        form={**defaults, **dict(form or {})},
        values=values,
        **_labels(),
        **extra,
    )


@router.get("/exchange/auctions/new")
def new_auction_page(
    request: Request,
    identity: WebUser,
    db: DbDep,
    listing: Annotated[str, Query(max_length=36)],
) -> Response:
    return _new_auction(request, identity, db, listing)


@router.post("/exchange/auctions")
async def create_auction_form(request: Request, identity: WebUser, db: DbDep) -> Response:
    def act(form: dict[str, str]) -> str:
        draft = auctions.AuctionDraft(
            listing_id=form.get("listing_id", ""),
            start_fen=_fen(form.get("start", ""), field="start_fen", rule_key="auction_create"),
            reserve_fen=_fen(
                form.get("reserve", ""),
                field="reserve_fen",
                rule_key="auction_create",
                required=False,
            ),
            increment_fen=_fen(
                form.get("increment", ""),
                field="increment_fen",
                rule_key="auction_create",
                required=False,
            ),
            deposit_fen=_fen(
                form.get("deposit", ""),
                field="deposit_fen",
                rule_key="auction_deposit",
                required=False,
            ),
            starts_at=_when(form.get("starts_at", ""), field="starts_at"),
            ends_at=_when(form.get("ends_at", ""), field="ends_at"),
            snipe_seconds=form.get("snipe_seconds") or None,
            extension_seconds=form.get("extension_seconds") or None,
            quantity=form.get("quantity") or 1,
        )
        with db.write() as s:
            row = auctions.create_auction(s, identity.principal, draft, now=utcnow())
            return f"/exchange/auctions/{row.id}"

    def again(form: dict[str, str], error: dict[str, Any]) -> Response:
        return _new_auction(request, identity, db, form.get("listing_id", ""), form=form, **error)

    return await _post(request, identity, act, again)


def _live(s: Session, principal: Principal, auction: ExchangeAuction) -> dict[str, Any]:
    history = int(auctions.settings()["history"])
    shown = auctions.auction_dict(s, auction, principal, history=history)
    shown["reason"] = _reason(shown["reason"], auctions.SYSTEM_REASONS)
    shown["clock"] = _clock(shown["seconds_left"])
    shown["final"] = shown["status"] in {x.value for x in auctions.FINAL}
    shown["bidding"] = shown["status"] == "open" and shown["seconds_left"] > 0
    return shown


def _auction_page(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    auction_id: str,
    *,
    form: Mapping[str, str] | None = None,
    status: int = 200,
    placed: str | None = None,
    **extra: Any,
) -> Response:
    principal = identity.principal
    with db.read() as s:
        row = auctions.get_auction(s, principal, auction_id)
        shown = _live(s, principal, row)
        names = counterparty_names(s, principal, [row.seller_id])
        # A bid is refused while the registry has the title in dispute (EXC-LST-DISPUTE), and
        # the winner too when it closes: the page says so and disables the bid form.
        listing = s.get(ExchangeListing, row.listing_id) if not shown["final"] else None
        dispute = (
            listings.open_dispute(s, listing, auctions.china_day(utcnow()))
            if listing is not None
            else None
        )
    seller = principal.party_id == row.seller_id
    return render(
        request,
        "exchange/auctions/detail.html",
        identity,
        status=status,
        a=shown,
        names=names,
        may_bid=principal.can(P.EXCHANGE_TRADE_PLACE) and not seller,
        may_close=principal.can(P.EXCHANGE_SETTLEMENT_RUN)
        or (seller and principal.can(P.EXCHANGE_TRADE_PLACE)),
        may_cancel=(seller and principal.can(P.EXCHANGE_CONTRACT_SIGN))
        or principal.can(P.EXCHANGE_LISTING_REVIEW),
        bid_key=secrets.token_urlsafe(18),
        form=dict(form or {}),
        placed=placed,
        dispute=dispute,
        dispute_notice=dispute_notice(dispute),
        **_labels(),
        **extra,
    )


@router.get("/exchange/auctions/{auction_id}")
def auction_page(
    request: Request,
    auction_id: str,
    identity: WebUser,
    db: DbDep,
    bid: Annotated[str | None, Query(max_length=36)] = None,
) -> Response:
    return _auction_page(request, identity, db, auction_id, placed=bid)


@router.get("/exchange/auctions/{auction_id}/live")
def auction_live(request: Request, auction_id: str, identity: WebUser, db: DbDep) -> Response:
    """The live fragment HTMX polls; once the auction has ended the page reloads to show it."""
    principal = identity.principal
    with db.read() as s:
        shown = _live(s, principal, auctions.get_auction(s, principal, auction_id))
    response = render(request, "exchange/auctions/_live.html", identity, a=shown, **_labels())
    if shown["final"] and request.headers.get("HX-Request"):
        response.headers["HX-Refresh"] = "true"
    return response


@router.post("/exchange/auctions/{auction_id}/bids")
async def bid_form(request: Request, auction_id: str, identity: WebUser, db: DbDep) -> Response:
    principal = identity.principal

    def act(form: dict[str, str]) -> str:
        amount = _fen(form.get("amount", ""), field="amount_fen", rule_key="auction_increment")
        key = form.get("idempotency_key", "")
        auctions.open_accounts(db, [principal.party_id])
        with db.write() as s:
            placed = auctions.place_bid(
                s,
                principal,
                auction_id,
                amount,
                # The form's key is fresh per rendering; ``web:`` keeps it apart from API keys.
                key=f"web:{key}" if key else "",
                now=utcnow(),
            )
            return f"/exchange/auctions/{auction_id}?bid={placed.bid.id}"

    return await _post(
        request,
        identity,
        act,
        lambda form, error: _auction_page(request, identity, db, auction_id, form=form, **error),
    )


@router.post("/exchange/auctions/{auction_id}/close")
async def close_form(request: Request, auction_id: str, identity: WebUser, db: DbDep) -> Response:
    def act(form: dict[str, str]) -> str:
        with db.read() as s:
            seller = auctions.get_auction(s, identity.principal, auction_id).seller_id
        auctions.open_accounts(db, [seller])
        with db.write() as s:
            auctions.close_auction(s, identity.principal, auction_id, now=utcnow())
        return f"/exchange/auctions/{auction_id}"

    return await _post(
        request,
        identity,
        act,
        lambda form, error: _auction_page(request, identity, db, auction_id, **error),
    )


@router.post("/exchange/auctions/{auction_id}/cancel")
async def cancel_form(request: Request, auction_id: str, identity: WebUser, db: DbDep) -> Response:
    def act(form: dict[str, str]) -> str:
        with db.write() as s:
            auctions.cancel_auction(s, identity.principal, auction_id, now=utcnow())
        return f"/exchange/auctions/{auction_id}"

    return await _post(
        request,
        identity,
        act,
        lambda form, error: _auction_page(request, identity, db, auction_id, **error),
    )
