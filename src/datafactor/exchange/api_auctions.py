"""Exchange API — Agreement trades (negotiations) and auctions.

Thin entry points over the use cases (``negotiation``, ``auctions``): each opens the unit of
work, calls the use case with the caller's principal and the current time, and answers JSON or
problem+json naming the rule that refused. Amounts are integer fen.

* ``/negotiations``: open one (the first offer), list mine; ``/negotiations/{id}``: the thread;
  ``/offers`` (a counter-offer), ``/accept`` (the other side's latest offer: escrow frozen,
  contract opened), ``/withdraw``.
* ``/auctions``: start one (the seller's administrator), list; ``/auctions/{id}``: the live
  state (bidders anonymous); ``/bids`` (an ``Idempotency-Key`` header is required: the same key
  and body answer the same bid with ``Idempotent-Replayed: true``, another body 409);
  ``/close`` (the seller or the exchange, after the deadline); ``/cancel`` (before any bid).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from datafactor.db import utcnow
from datafactor.exchange import auctions, negotiation
from datafactor.web.deps import ApiPrincipal, DbDep, PagingDep

router = APIRouter(tags=["exchange-auctions"])

# --- agreement trades (协议交易) ---------------------------------------------------------------


class OfferCreate(BaseModel):
    """An offer's terms; what is left out keeps the latest offer's (the first offer: the
    listing's). Checked by the use case, so a bad value is refused with its rule."""

    model_config = ConfigDict(extra="forbid")

    price_fen: Any = Field(
        None,
        json_schema_extra={"type": "integer", "minimum": 1},
        description="Price per unit in whole fen (12.50 yuan is 1250); more than 0.",
    )
    quantity: Any = Field(
        None, json_schema_extra={"type": "integer", "minimum": 1}, description="Units (licences)."
    )
    channels: list[str] | None = Field(
        None, description="Delivery channels: a subset of the listing's (download, api, sandbox)."
    )
    term_days: Any = Field(
        None, json_schema_extra={"type": "integer", "minimum": 1}, description="Term in days."
    )
    policy: dict[str, Any] | None = Field(
        None,
        description="The contract policy (ODRL JSON-LD); the listing's by default. An edited "
        "one must target the listed asset and be no wider than the listing's.",
    )
    note: str = Field("", max_length=2000, description="A note to the other side.")

    def terms(self) -> negotiation.Terms:
        return negotiation.Terms(
            price_fen=self.price_fen,
            quantity=self.quantity,
            channels=self.channels,
            term_days=self.term_days,
            policy=self.policy,
            note=self.note,
        )


class NegotiationCreate(OfferCreate):
    """Open an agreement trade on a listing with the first offer."""

    listing_id: str = Field(max_length=36, description="The published listing's id.")
    broker_id: str | None = Field(
        None,
        max_length=36,
        description="The data broker (a service firm); the listing's by default.",
    )
    buyer_id: str | None = Field(
        None,
        max_length=36,
        description="The buyer, when the listing's broker opens the negotiation for it.",
    )


class NegotiationAccept(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Required, but checked by the service (400 naming rule EXC-NEG-ACCEPT) rather than by
    # validation, so a missing number gets the rule and the message of every other channel.
    seq: int | None = Field(
        None,
        description="Required: the number of the offer being accepted, as it was read (refused "
        "when missing, and when a newer offer has arrived).",
    )


class NegotiationWithdraw(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=2000, description="Why (told to the other side).")


class OfferPublic(BaseModel):
    seq: int
    side: str = Field(description="buyer or seller: the side the offer speaks for.")
    by_broker: bool = Field(description="Made by the broker for that side.")
    from_party_id: str
    price_fen: int
    quantity: int
    amount_fen: int
    channels: list[str]
    term_days: int
    policy: dict[str, Any]
    note: str
    created_at: datetime


class NegotiationPublic(BaseModel):
    id: str
    number: str = Field(description="GX-DN-<year>-<serial>")
    status: str = Field(description="open, agreed, withdrawn or expired.")
    listing_id: str
    listing_number: str
    listing_title: str
    buyer_id: str
    seller_id: str
    broker_id: str | None
    broker_side: str | None = Field(description="The side the broker relays offers for.")
    cross_border: bool
    cross_border_note: str | None
    deadline_at: datetime
    contract_id: str | None
    contract_number: str | None
    reason: str
    latest: OfferPublic | None
    your_side: str | None
    actions: list[str] = Field(description="What the caller may do now: offer, accept, withdraw.")
    created_at: datetime
    updated_at: datetime
    offers: list[OfferPublic] | None = None


class NegotiationList(BaseModel):
    items: list[NegotiationPublic]
    total: int
    limit: int
    offset: int


def _negotiation(db: DbDep, principal: ApiPrincipal, negotiation_id: str) -> NegotiationPublic:
    with db.read() as s:
        row = negotiation.get_negotiation(s, principal, negotiation_id)
        return NegotiationPublic(**negotiation.negotiation_dict(s, row, principal))


@router.post(
    "/negotiations",
    response_model=NegotiationPublic,
    status_code=201,
    summary="Open an agreement trade on a listing with a first offer (a data broker co-signs)",
)
def create_negotiation(
    body: NegotiationCreate, principal: ApiPrincipal, db: DbDep
) -> NegotiationPublic:
    with db.write() as s:
        row = negotiation.open_negotiation(
            s,
            principal,
            body.listing_id,
            body.terms(),
            broker_id=body.broker_id,
            buyer_id=body.buyer_id,
            now=utcnow(),
        )
        return NegotiationPublic(**negotiation.negotiation_dict(s, row, principal))


@router.get(
    "/negotiations",
    response_model=NegotiationList,
    summary="My party's agreement trades (as buyer, seller or broker)",
)
def list_negotiations(
    principal: ApiPrincipal,
    db: DbDep,
    page: PagingDep,
    role: Annotated[
        str | None, Query(max_length=8, description="buyer, seller or broker; all by default.")
    ] = None,
    status: Annotated[
        str | None, Query(max_length=16, description="open, agreed, withdrawn or expired.")
    ] = None,
) -> NegotiationList:
    with db.read() as s:
        rows, total = negotiation.list_negotiations(
            s, principal, state=status, role=role, limit=page.limit, offset=page.offset
        )
        items = [
            NegotiationPublic(**negotiation.negotiation_dict(s, r, principal, with_offers=False))
            for r in rows
        ]
    return NegotiationList(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get(
    "/negotiations/{negotiation_id}",
    response_model=NegotiationPublic,
    summary="One agreement trade with its offers",
)
def get_negotiation(negotiation_id: str, principal: ApiPrincipal, db: DbDep) -> NegotiationPublic:
    return _negotiation(db, principal, negotiation_id)


@router.post(
    "/negotiations/{negotiation_id}/offers",
    response_model=NegotiationPublic,
    status_code=201,
    summary="A counter-offer by the side whose turn it is (or its broker)",
)
def create_offer(
    negotiation_id: str, body: OfferCreate, principal: ApiPrincipal, db: DbDep
) -> NegotiationPublic:
    with db.write() as s:
        negotiation.make_offer(s, principal, negotiation_id, body.terms(), now=utcnow())
        row = negotiation.get_negotiation(s, principal, negotiation_id)
        return NegotiationPublic(**negotiation.negotiation_dict(s, row, principal))


@router.post(
    "/negotiations/{negotiation_id}/accept",
    response_model=NegotiationPublic,
    summary="Accept the other side's latest offer: the amount frozen, the contract generated",
)
def accept_offer(
    negotiation_id: str,
    principal: ApiPrincipal,
    db: DbDep,
    response: Response,
    body: NegotiationAccept | None = None,
) -> NegotiationPublic:
    with db.read() as s:
        row = negotiation.get_negotiation(s, principal, negotiation_id)
        buyer = row.buyer_id
    negotiation.open_accounts(db, [buyer])
    with db.write() as s:
        accepted = negotiation.accept_offer(
            s, principal, negotiation_id, seq=body.seq if body else None, now=utcnow()
        )
        if accepted.replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return NegotiationPublic(**negotiation.negotiation_dict(s, accepted.negotiation, principal))


@router.post(
    "/negotiations/{negotiation_id}/withdraw",
    response_model=NegotiationPublic,
    summary="Break off an agreement trade (the buyer or the seller)",
)
def withdraw_negotiation(
    negotiation_id: str,
    principal: ApiPrincipal,
    db: DbDep,
    body: NegotiationWithdraw | None = None,
) -> NegotiationPublic:
    with db.write() as s:
        row = negotiation.withdraw_negotiation(
            s, principal, negotiation_id, reason=body.reason if body else "", now=utcnow()
        )
        return NegotiationPublic(**negotiation.negotiation_dict(s, row, principal))


# --- auctions (竞价) --------------------------------------------------------------------------


class AuctionCreate(BaseModel):
    """An English auction of a listing's licences; prices are per licence, in whole fen. Left
    out: the rules file's defaults (reserve = start, deposit a share of start × licences,
    start now, anti-sniping window and extension)."""

    model_config = ConfigDict(extra="forbid")

    listing_id: str = Field(max_length=36)
    start_fen: Any = Field(json_schema_extra={"type": "integer", "minimum": 1})
    reserve_fen: Any = Field(None, json_schema_extra={"type": "integer", "minimum": 1})
    increment_fen: Any = Field(None, json_schema_extra={"type": "integer", "minimum": 1})
    deposit_fen: Any = Field(None, json_schema_extra={"type": "integer", "minimum": 1})
    starts_at: datetime | None = Field(None, description="ISO 8601; now by default.")
    ends_at: datetime = Field(description="ISO 8601 (a time without zone is China time).")
    snipe_seconds: Any = Field(None, json_schema_extra={"type": "integer", "minimum": 0})
    extension_seconds: Any = Field(None, json_schema_extra={"type": "integer", "minimum": 1})
    quantity: Any = Field(
        1, json_schema_extra={"type": "integer", "minimum": 1}, description="Licences in the lot."
    )

    def draft(self) -> auctions.AuctionDraft:
        return auctions.AuctionDraft(
            listing_id=self.listing_id,
            start_fen=self.start_fen,
            ends_at=self.ends_at,
            increment_fen=self.increment_fen,
            reserve_fen=self.reserve_fen,
            deposit_fen=self.deposit_fen,
            starts_at=self.starts_at,
            snipe_seconds=self.snipe_seconds,
            extension_seconds=self.extension_seconds,
            quantity=self.quantity,
        )


class BidCreate(BaseModel):
    """A bid per licence, in whole fen. The request must carry an ``Idempotency-Key``."""

    model_config = ConfigDict(extra="forbid")

    amount_fen: Any = Field(json_schema_extra={"type": "integer", "minimum": 1})


class BidPublic(BaseModel):
    id: str
    amount_fen: int
    bidder_no: int = Field(description="Bidders are numbered by their first bid.")
    bidder_id: str | None = Field(description="Only the caller's own, or for the exchange.")
    mine: bool
    status: str = Field(description="leading, outbid, won or lost.")
    created_at: datetime


class BidPlaced(BaseModel):
    id: str
    auction_id: str
    auction_number: str
    amount_fen: int
    lot_amount_fen: int
    bidder_no: int
    status: str
    deposit_fen: int
    deposit_hold_id: str | None
    ends_at: datetime
    created_at: datetime


class AuctionPublic(BaseModel):
    id: str
    number: str = Field(description="GX-DA-<year>-<serial>")
    status: str = Field(description="scheduled, open, closed, unsold or cancelled.")
    listing_id: str
    listing_number: str
    listing_title: str
    seller_id: str
    quantity: int
    start_fen: int
    reserve_fen: int | None = Field(description="Shown to the seller and the exchange only.")
    reserve_met: bool | None
    increment_fen: int
    deposit_fen: int
    starts_at: datetime
    ends_at: datetime
    snipe_seconds: int
    extension_seconds: int
    current_fen: int | None
    minimum_bid_fen: int
    leading: BidPublic | None
    bids: int
    bidders: int
    you_bid: bool = Field(description="The caller's party has bid (its deposit is frozen).")
    seconds_left: int
    contract_id: str | None
    contract_number: str | None
    cross_border: bool
    reason: str
    history: list[BidPublic]
    created_at: datetime


class AuctionList(BaseModel):
    items: list[AuctionPublic]
    total: int
    limit: int
    offset: int


BidKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Required. A new random value (UUID) per bid; the same one on retry.",
    ),
]


def _auction(s: Any, row: Any, principal: Any) -> AuctionPublic:
    history = int(auctions.settings()["history"])
    return AuctionPublic(**auctions.auction_dict(s, row, principal, history=history))


@router.post(
    "/auctions",
    response_model=AuctionPublic,
    status_code=201,
    summary="Start an English auction of a listing (the seller's administrator)",
)
def create_auction(body: AuctionCreate, principal: ApiPrincipal, db: DbDep) -> AuctionPublic:
    with db.write() as s:
        row = auctions.create_auction(s, principal, body.draft(), now=utcnow())
        return _auction(s, row, principal)


@router.get("/auctions", response_model=AuctionList, summary="Auctions I may see, bidding first")
def list_auctions(
    principal: ApiPrincipal,
    db: DbDep,
    page: PagingDep,
    status: Annotated[
        str | None,
        Query(max_length=16, description="scheduled, open, closed, unsold or cancelled."),
    ] = None,
    listing_id: Annotated[str | None, Query(max_length=36)] = None,
    mine: Annotated[bool, Query(description="Only my party's (as seller or bidder).")] = False,
) -> AuctionList:
    with db.read() as s:
        rows, total = auctions.list_auctions(
            s,
            principal,
            state=status,
            listing_id=listing_id,
            mine=mine,
            limit=page.limit,
            offset=page.offset,
        )
        items = [_auction(s, r, principal) for r in rows]
    return AuctionList(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get(
    "/auctions/{auction_id}",
    response_model=AuctionPublic,
    summary="One auction: current price, leader, time left, bid history",
)
def get_auction(auction_id: str, principal: ApiPrincipal, db: DbDep) -> AuctionPublic:
    with db.read() as s:
        return _auction(s, auctions.get_auction(s, principal, auction_id), principal)


@router.post(
    "/auctions/{auction_id}/bids",
    response_model=BidPlaced,
    status_code=201,
    summary="Bid (per licence); the first bid freezes the deposit",
    responses={200: {"description": "A replay: the bid this key already placed."}},
)
def create_bid(
    auction_id: str,
    body: BidCreate,
    response: Response,
    principal: ApiPrincipal,
    db: DbDep,
    idempotency_key: BidKey = None,
) -> BidPlaced:
    with db.read() as s:  # an auction the caller may not see is not found, key or no key
        auctions.get_auction(s, principal, auction_id)
    key = auctions.check_key(idempotency_key)
    auctions.open_accounts(db, [principal.party_id])
    with db.write() as s:
        placed = auctions.place_bid(
            s, principal, auction_id, body.amount_fen, key=key, now=utcnow()
        )
        if placed.replayed:
            response.status_code = 200
            response.headers["Idempotent-Replayed"] = "true"
        return BidPlaced(**auctions.bid_dict(s, placed.bid, principal))


@router.post(
    "/auctions/{auction_id}/close",
    response_model=AuctionPublic,
    summary="Close an auction after its deadline (the seller or the exchange)",
)
def close_auction(auction_id: str, principal: ApiPrincipal, db: DbDep) -> AuctionPublic:
    with db.read() as s:
        seller = auctions.get_auction(s, principal, auction_id).seller_id
    auctions.open_accounts(db, [seller])
    with db.write() as s:
        closed = auctions.close_auction(s, principal, auction_id, now=utcnow())
        return _auction(s, closed.auction, principal)


@router.post(
    "/auctions/{auction_id}/cancel",
    response_model=AuctionPublic,
    summary="Cancel an auction nobody has bid in (the seller's administrator)",
)
def cancel_auction(auction_id: str, principal: ApiPrincipal, db: DbDep) -> AuctionPublic:
    with db.write() as s:
        row = auctions.cancel_auction(s, principal, auction_id, now=utcnow())
        return _auction(s, row, principal)
