"""Tables of the exchange (数据交易): listings and their review, orders, negotiations and offers,
auctions and bids, contracts, deliveries, and settlement of contracts.

Party, asset, right, certificate, grant and escrow-hold ids are kept by id only: they belong to
other domains (identity, registry, policy, settlement). Every history table is append-only: one
row per step, with who, why and the rule ids. Money is integer fen (``BigInteger``) everywhere.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from datafactor.db import ID, Base, UTCDateTime, new_id, utcnow


class ExchangeSerial(Base):
    """A kind's numbers in a year (listing ``L``, order ``O``, contract ``C``, auction ``A``,
    negotiation ``N``; ``exchange.serials``): on SQLite the last serial issued (the row bumped
    in the writer's transaction); on PostgreSQL ``sequence_base``, the kind's sequence value
    the year's serials count from."""

    __tablename__ = "exchange_serial"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_serial: Mapped[int] = mapped_column(Integer, default=0)
    sequence_base: Mapped[int | None] = mapped_column(BigInteger)


class ExchangeListing(Base):
    """One offer of a registered data product, service or tool (挂牌): by the holder of its
    product-operation right (``seller_id``) or a broker it authorised (``broker_id``).

    ``price_model`` is one of ``one_off`` / ``subscription`` / ``metered`` / ``free``;
    ``price_fen`` is the price per unit (per licence, per ``period``, per call); ``channels`` the
    delivery channels (``download``, ``api``, ``sandbox``); ``contract_policy`` the ODRL policy a
    contract is generated with; ``access`` who may see the listing (``{"audience": "public" |
    "verified" | "parties", "parties": [...]}``). ``placement`` is ``mall`` or ``zone`` (a zone
    needs the operator's approval: ``zone_approved_by``). ``total_quantity`` /
    ``remaining_quantity`` are the licence count when limited (None: unlimited), decremented under
    a row lock by each order. ``revenue_sharing`` is the listing's revenue-sharing agreement: a
    list of ``{"party_id", "stage", "mode", "bp" | "fen"}`` along the collection → processing →
    circulation → application chain. ``search_text`` holds the normalised text the full-text
    search matches (names, summary, tags, industry, region; CJK as character bigrams)."""

    __tablename__ = "exchange_listing"
    __table_args__ = (
        Index("ix_exchange_listing_state_placement", "state", "placement"),
        Index("ix_exchange_listing_seller_state", "seller_id", "state"),
        Index("ix_exchange_listing_broker_state", "broker_id", "state"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    asset_id: Mapped[str] = mapped_column(ID, index=True)
    right_id: Mapped[str] = mapped_column(ID)
    certificate_number: Mapped[str] = mapped_column(String(32))
    seller_id: Mapped[str] = mapped_column(ID)
    broker_id: Mapped[str | None] = mapped_column(ID)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200), default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    summary_en: Mapped[str] = mapped_column(Text, default="")
    industry: Mapped[str] = mapped_column(String(64), default="")
    region: Mapped[str] = mapped_column(String(16), default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    data_class: Mapped[str] = mapped_column(String(32), default="")
    grade: Mapped[str | None] = mapped_column(String(16))
    price_model: Mapped[str] = mapped_column(String(16))
    price_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    period: Mapped[str | None] = mapped_column(String(16))
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    term_days: Mapped[int] = mapped_column(Integer, default=365)
    contract_policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    access: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    placement: Mapped[str] = mapped_column(String(16), default="mall")
    zone: Mapped[str | None] = mapped_column(String(64))
    zone_approved_by: Mapped[str | None] = mapped_column(ID)
    total_quantity: Mapped[int | None] = mapped_column(Integer)
    remaining_quantity: Mapped[int | None] = mapped_column(Integer)
    revenue_sharing: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    cross_border: Mapped[bool] = mapped_column(default=False)
    declaration: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    declaration_signature: Mapped[str | None] = mapped_column(Text)
    declared_by: Mapped[str | None] = mapped_column(ID)
    declared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    search_text: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text, default="")
    reason_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    rules: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExchangeListingReview(Base):
    """One compliance review of a listing (挂牌审核): the checklist with each item's outcome
    (``[{"id", "outcome": "pass" | "fail" | "na", "note"}]``, items from the rules file), the
    assessor (a law firm: ``assessor_party_id`` / ``assessor_user_id``) and its Ed25519 signature
    over the canonical record, the automatic checks' findings, and the operator's decision."""

    __tablename__ = "exchange_listing_review"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    listing_id: Mapped[str] = mapped_column(ForeignKey("exchange_listing.id"), index=True)
    assessor_party_id: Mapped[str | None] = mapped_column(ID)
    assessor_user_id: Mapped[str | None] = mapped_column(ID)
    checklist: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    opinion: Mapped[str] = mapped_column(Text, default="")
    record: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    signature: Mapped[str | None] = mapped_column(Text)
    signing_key: Mapped[str | None] = mapped_column(Text)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision: Mapped[str | None] = mapped_column(String(16))
    decided_by: Mapped[str | None] = mapped_column(ID)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExchangeListingEvent(Base):
    """One step of a listing's history (append-only)."""

    __tablename__ = "exchange_listing_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    listing_id: Mapped[str] = mapped_column(ForeignKey("exchange_listing.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(16))
    actor_user_id: Mapped[str | None] = mapped_column(ID)
    actor_party_id: Mapped[str | None] = mapped_column(ID)
    actor_name: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    reason_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    rules: Mapped[list[str]] = mapped_column(JSON, default=list)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExchangeOrder(Base):
    """A buyer's order (订单) of a listing: quantity and price at the time, the escrow hold that
    froze its amount, and the contract it produced. ``(buyer_id, idempotency_key)`` is unique:
    the same key and body replay the order, another body is refused (409)."""

    __tablename__ = "exchange_order"
    __table_args__ = (
        UniqueConstraint("buyer_id", "idempotency_key"),
        Index("ix_exchange_order_listing_state", "listing_id", "state"),
        Index("ix_exchange_order_buyer_created", "buyer_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16), default="mall")
    listing_id: Mapped[str] = mapped_column(ForeignKey("exchange_listing.id"))
    buyer_id: Mapped[str] = mapped_column(ID)
    seller_id: Mapped[str] = mapped_column(ID)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_fen: Mapped[int] = mapped_column(BigInteger)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    hold_id: Mapped[str | None] = mapped_column(ID)
    contract_id: Mapped[str | None] = mapped_column(ID, index=True)
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExchangeNegotiation(Base):
    """An agreement trade's negotiation (协议交易): buyer and seller exchange offers through a
    broker until one side accepts the other's latest offer (→ a contract the broker co-signs),
    either withdraws, or the deadline passes."""

    __tablename__ = "exchange_negotiation"
    __table_args__ = (
        Index("ix_exchange_negotiation_buyer_state", "buyer_id", "state"),
        Index("ix_exchange_negotiation_seller_state", "seller_id", "state"),
        Index("ix_exchange_negotiation_broker_state", "broker_id", "state"),
        Index("ix_exchange_negotiation_state_deadline", "state", "deadline_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    listing_id: Mapped[str] = mapped_column(ForeignKey("exchange_listing.id"), index=True)
    buyer_id: Mapped[str] = mapped_column(ID)
    seller_id: Mapped[str] = mapped_column(ID)
    broker_id: Mapped[str | None] = mapped_column(ID)
    # The side the broker relays offers for (``buyer`` / ``seller``; negotiation.py says which).
    broker_side: Mapped[str | None] = mapped_column(String(8))
    cross_border: Mapped[bool] = mapped_column(default=False)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime)
    contract_id: Mapped[str | None] = mapped_column(ID)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExchangeOffer(Base):
    """One offer or counter-offer in a negotiation (append-only): its terms (price, quantity,
    channel, term, policy), who made it, and what became of it."""

    __tablename__ = "exchange_offer"
    __table_args__ = (UniqueConstraint("negotiation_id", "seq"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    negotiation_id: Mapped[str] = mapped_column(ForeignKey("exchange_negotiation.id"))
    seq: Mapped[int] = mapped_column(Integer)
    from_party_id: Mapped[str] = mapped_column(ID)
    price_fen: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    term_days: Mapped[int] = mapped_column(Integer)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExchangeAuction(Base):
    """An English auction (竞价) of a listing: reserve, start price, minimum increment, deadline
    (``ends_at``, pushed back by ``extension_seconds`` when a bid arrives in the last
    ``snipe_seconds``), the deposit every bidder freezes, and the outcome."""

    __tablename__ = "exchange_auction"
    __table_args__ = (Index("ix_exchange_auction_state_ends", "state", "ends_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    listing_id: Mapped[str] = mapped_column(ForeignKey("exchange_listing.id"), index=True)
    seller_id: Mapped[str] = mapped_column(ID)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    start_fen: Mapped[int] = mapped_column(BigInteger)
    reserve_fen: Mapped[int] = mapped_column(BigInteger)
    increment_fen: Mapped[int] = mapped_column(BigInteger)
    deposit_fen: Mapped[int] = mapped_column(BigInteger)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    snipe_seconds: Mapped[int] = mapped_column(Integer, default=300)
    extension_seconds: Mapped[int] = mapped_column(Integer, default=300)
    leading_bid_id: Mapped[str | None] = mapped_column(ID)
    leading_fen: Mapped[int | None] = mapped_column(BigInteger)
    bids: Mapped[int] = mapped_column(Integer, default=0)
    contract_id: Mapped[str | None] = mapped_column(ID)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExchangeBid(Base):
    """One bid: the amount, the bidder's deposit hold, and its status (``leading`` / ``outbid`` /
    ``won`` / ``lost``). ``(bidder_id, idempotency_key)`` is unique."""

    __tablename__ = "exchange_bid"
    __table_args__ = (
        UniqueConstraint("bidder_id", "idempotency_key"),
        Index("ix_exchange_bid_auction_amount", "auction_id", "amount_fen"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    auction_id: Mapped[str] = mapped_column(ForeignKey("exchange_auction.id"))
    bidder_id: Mapped[str] = mapped_column(ID)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    deposit_hold_id: Mapped[str | None] = mapped_column(ID)
    status: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExchangeContract(Base):
    """A data trading contract (数据交易合同). One state machine for every trade
    (``domain.ContractState``): requested → offered → accepted → signed → active → completed, or
    terminated / disputed; ``deadline_at`` is when the current state's deadline passes and
    ``domain`` says what then happens. ``document`` is the contract as both parties sign it
    (canonical JSON; its SHA-256 ``document_hash``), each signature Ed25519 with the key held for
    the party. ``hold_id`` is the buyer's escrow hold; ``capture_journal_id`` the settlement
    journal that paid it out; ``grant_id`` the sandbox grant when delivery is by sandbox."""

    __tablename__ = "exchange_contract"
    __table_args__ = (
        Index("ix_exchange_contract_buyer_state", "buyer_id", "state"),
        Index("ix_exchange_contract_seller_state", "seller_id", "state"),
        Index("ix_exchange_contract_broker_state", "broker_id", "state"),
        Index("ix_exchange_contract_state_deadline", "state", "deadline_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))  # mall | agreement | auction
    listing_id: Mapped[str] = mapped_column(ForeignKey("exchange_listing.id"), index=True)
    order_id: Mapped[str | None] = mapped_column(ID)
    negotiation_id: Mapped[str | None] = mapped_column(ID)
    auction_id: Mapped[str | None] = mapped_column(ID)
    asset_id: Mapped[str] = mapped_column(ID)
    seller_id: Mapped[str] = mapped_column(ID)
    buyer_id: Mapped[str] = mapped_column(ID)
    broker_id: Mapped[str | None] = mapped_column(ID)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    price_fen: Mapped[int] = mapped_column(BigInteger)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    term_start: Mapped[date] = mapped_column(Date)
    term_end: Mapped[date] = mapped_column(Date)
    cross_border: Mapped[bool] = mapped_column(default=False)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    document_hash: Mapped[str] = mapped_column(String(64))
    seller_signature: Mapped[str | None] = mapped_column(Text)
    seller_signed_by: Mapped[str | None] = mapped_column(ID)
    seller_signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    seller_signing_key: Mapped[str | None] = mapped_column(Text)
    buyer_signature: Mapped[str | None] = mapped_column(Text)
    buyer_signed_by: Mapped[str | None] = mapped_column(ID)
    buyer_signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    buyer_signing_key: Mapped[str | None] = mapped_column(Text)
    broker_signature: Mapped[str | None] = mapped_column(Text)
    broker_signed_by: Mapped[str | None] = mapped_column(ID)
    broker_signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    broker_signing_key: Mapped[str | None] = mapped_column(Text)
    ledger_index: Mapped[int | None] = mapped_column(BigInteger)
    hold_id: Mapped[str | None] = mapped_column(ID)
    grant_id: Mapped[str | None] = mapped_column(ID)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    capture_journal_id: Mapped[str | None] = mapped_column(ID)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text, default="")
    reason_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    rules: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExchangeContractEvent(Base):
    """One step of a contract's history (append-only), with its ledger entry when it has one."""

    __tablename__ = "exchange_contract_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("exchange_contract.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(16))
    actor_user_id: Mapped[str | None] = mapped_column(ID)
    actor_party_id: Mapped[str | None] = mapped_column(ID)
    actor_name: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    reason_params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    rules: Mapped[list[str]] = mapped_column(JSON, default=list)
    ledger_index: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExchangeDeliveryToken(Base):
    """A delivery credential bound to a contract: a short-lived, counted download token, or an
    API-pull token (rate-limited). Only the SHA-256 of the secret is stored."""

    __tablename__ = "exchange_delivery_token"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    contract_id: Mapped[str] = mapped_column(ForeignKey("exchange_contract.id"), index=True)
    buyer_id: Mapped[str] = mapped_column(ID)
    channel: Mapped[str] = mapped_column(String(16))  # download | api
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    max_uses: Mapped[int | None] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The use the buyer declared when issuing it ({"purpose", "spatial"?, "industry"?}): what
    # every delivery under the token asks the contract's policy for.
    declared: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExchangeDelivery(Base):
    """One delivery attempt (append-only): channel, the policy decision taken at that moment with
    its reasons and rule ids, what was delivered (rows, bytes, content hash) and the buyer
    fingerprint embedded in it (``mark``: what ``datafactor trace`` finds in a leaked copy)."""

    __tablename__ = "exchange_delivery"
    __table_args__ = (Index("ix_exchange_delivery_contract_at", "contract_id", "at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    contract_id: Mapped[str] = mapped_column(ForeignKey("exchange_contract.id"))
    buyer_id: Mapped[str] = mapped_column(ID)
    channel: Mapped[str] = mapped_column(String(16))
    token_id: Mapped[str | None] = mapped_column(ID)
    decision: Mapped[str] = mapped_column(String(16))  # allowed | refused
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    rules: Mapped[list[str]] = mapped_column(JSON, default=list)
    mark: Mapped[str | None] = mapped_column(String(64), index=True)
    rows: Mapped[int | None] = mapped_column(BigInteger)
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    # The fields delivered (those the policy permits), the file format, and the fingerprint's
    # stored half (keyed digests of the canary cells, never values: exchange/fingerprint.py).
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    format: Mapped[str | None] = mapped_column(String(16))
    fingerprint: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    actor_user_id: Mapped[str | None] = mapped_column(ID)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExchangeSettlement(Base):
    """How a completed contract was settled: the split (``[{"kind", "party_id", "amount_fen",
    "stage", "rule"}]``) paid by the capture journal, with the rules it followed; one per
    contract (a contract is never settled twice). ``amount_fen`` is what was paid out of escrow,
    ``released_fen`` what went back to the buyer in the same journal; ``journal_id`` is None only
    for a contract with nothing frozen (a free listing). ``run_key`` is the idempotency key of the
    operator's settlement run that settled it (None when settled on its own)."""

    __tablename__ = "exchange_settlement"
    __table_args__ = (Index("ix_exchange_settlement_settled_at", "settled_at"),)

    contract_id: Mapped[str] = mapped_column(ForeignKey("exchange_contract.id"), primary_key=True)
    journal_id: Mapped[str | None] = mapped_column(ID)
    batch_id: Mapped[str | None] = mapped_column(ID)
    split: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    rules: Mapped[list[str]] = mapped_column(JSON, default=list)
    amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    released_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    ledger_index: Mapped[int | None] = mapped_column(BigInteger)
    run_key: Mapped[str | None] = mapped_column(String(160), index=True)
    settled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExchangeSettlementPart(Base):
    """One part of a contract's split (append-only; the same parts as ``ExchangeSettlement.split``,
    one row each, so a party's income — payouts, revenue shares, commissions — and the exchange's
    fee and treasury figures are summed by index): the payment kind (``payout`` / ``share`` /
    ``commission`` / ``fee`` / ``treasury``), the party paid (None for the exchange's fee and the
    treasury), the chain stage of a revenue share, the amount and the rule it followed."""

    __tablename__ = "exchange_settlement_part"
    __table_args__ = (
        Index("ix_exchange_settlement_part_party_kind", "party_id", "kind"),
        Index("ix_exchange_settlement_part_kind_at", "kind", "settled_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    contract_id: Mapped[str] = mapped_column(
        ForeignKey("exchange_settlement.contract_id"), index=True
    )
    party_id: Mapped[str | None] = mapped_column(ID)
    kind: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str | None] = mapped_column(String(16))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    rule: Mapped[str] = mapped_column(String(32))
    settled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
