"""Exchange API — Mall orders and contracts.

Thin entry points over the use cases: each opens the unit of work, checks the caller's
permission, and answers JSON or problem+json naming the rule that refused.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from datafactor.db import Database, utcnow
from datafactor.exchange import contracts, jobs, orders
from datafactor.exchange.keys import party_keys
from datafactor.exchange.models import ExchangeContract
from datafactor.permissions import Permission, Principal
from datafactor.settings import Settings
from datafactor.web.deps import ApiPrincipal, DbDep, PagingDep, SettingsDep

router = APIRouter(tags=["exchange-trades"], lifespan=jobs.deadlines_lifespan)


# --- mall orders (商城购买) -------------------------------------------------------------------
# ``POST /orders`` is stable for integrators (issue 7): body ``{"listing_id", "quantity"}``, an
# ``Idempotency-Key`` header (400 without), the order answered with ``id`` and ``status``.


class OrderCreate(BaseModel):
    """A mall purchase: the listing and how many (licences for a one-off or free listing,
    periods for a subscription, prepaid calls for a metered one). The request must carry an
    ``Idempotency-Key`` header."""

    model_config = ConfigDict(extra="forbid")

    listing_id: str = Field(max_length=36, description="The listing's id.")
    # Checked by the use case, so a bad quantity is refused with its rule (EXC-ORDER-QUANTITY).
    quantity: Any = Field(
        json_schema_extra={"type": "integer", "minimum": 1},
        description="A whole number of at least 1, at most the cap of the listing's price "
        "model (rules/exchange.yaml, orders.max_quantity).",
    )


class OrderCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=2000, description="Why (shown on the contract).")


class OrderPublic(BaseModel):
    id: str
    number: str = Field(description="GX-DO-<year>-<serial>")
    status: str = Field(description="The order's state: frozen, contracted or cancelled.")
    kind: str
    listing_id: str
    listing_number: str
    listing_title: str
    price_model: str
    buyer_id: str
    seller_id: str
    quantity: int
    unit_price_fen: int
    amount_fen: int = Field(description="Frozen in escrow on order (0 for a free listing).")
    hold_id: str | None = Field(description="The escrow hold that froze the amount.")
    contract_id: str | None
    contract_number: str | None
    contract_state: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: orders.OrderView) -> OrderPublic:
        return cls(**orders.as_dict(view))


class OrderList(BaseModel):
    items: list[OrderPublic]
    total: int
    limit: int
    offset: int


OrderKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Required. A new random value (UUID) per order; the same one on retry.",
    ),
]


def _answer(response: Response, placed: orders.Placed, view: orders.OrderView) -> OrderPublic:
    if placed.replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return OrderPublic.of(view)


@router.post(
    "/orders",
    response_model=OrderPublic,
    status_code=201,
    summary="Buy a listing: the price frozen in escrow, the contract generated (mall purchase)",
    responses={200: {"description": "A replay: the order this key already placed."}},
)
def create_order(
    body: OrderCreate,
    response: Response,
    principal: ApiPrincipal,
    db: DbDep,
    idempotency_key: OrderKey = None,
) -> OrderPublic:
    key = orders.check_key(idempotency_key)
    orders.open_buyer_accounts(db, principal)
    with db.write() as s:
        placed = orders.place_order(
            s, principal, body.listing_id, body.quantity, key=key, now=utcnow()
        )
        return _answer(response, placed, orders.view_of(s, placed))


@router.get("/orders", response_model=OrderList, summary="My party's orders, as buyer and seller")
def list_orders(
    principal: ApiPrincipal,
    db: DbDep,
    page: PagingDep,
    role: Annotated[str | None, Query(description="buyer or seller; both by default.")] = None,
    status: Annotated[
        str | None, Query(description="frozen, contracted or cancelled.", max_length=16)
    ] = None,
) -> OrderList:
    with db.read() as s:
        views, total = orders.list_orders(
            s, principal, role=role, state=status, limit=page.limit, offset=page.offset
        )
        return OrderList(
            items=[OrderPublic.of(v) for v in views],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )


@router.get("/orders/{order_id}", response_model=OrderPublic, summary="One order")
def get_order(order_id: str, principal: ApiPrincipal, db: DbDep) -> OrderPublic:
    with db.read() as s:
        return OrderPublic.of(orders.get_order(s, principal, order_id))


@router.post(
    "/orders/{order_id}/cancel",
    response_model=OrderPublic,
    summary="Cancel an order whose contract is not signed yet (escrow released; idempotent)",
)
def cancel_order(
    order_id: str,
    response: Response,
    principal: ApiPrincipal,
    db: DbDep,
    body: OrderCancel | None = None,
) -> OrderPublic:
    with db.write() as s:
        placed = orders.cancel_order(
            s, principal, order_id, now=utcnow(), reason=body.reason if body else ""
        )
        return _answer(response, placed, orders.view_of(s, placed))


# --- contracts (数据交易合同) -----------------------------------------------------------------
# The caller's party's contracts (every contract for a reader of all), one with its history and
# signatures, its PDF, and the moves: sign (``{"confirm": true}``), confirm delivery, terminate,
# dispute, resolve. The router's lifespan runs the contracts' deadline clock in each process.


class ContractEventPublic(BaseModel):
    action: str
    source: str | None
    target: str
    actor_name: str
    actor_party_id: str | None
    reason: str = Field(description="A person's reason, or the system's (a message id).")
    reason_params: dict[str, str] | None
    rules: list[str]
    ledger_index: int | None
    at: datetime


class ContractSignaturePublic(BaseModel):
    role: str = Field(description="seller, buyer or broker")
    party_id: str
    signed: bool
    signed_by: str | None
    signed_at: datetime | None
    signature: str | None = Field(description="Ed25519 over the document's canonical JSON, base64")
    key: str | None = Field(description="The verifier key: <name>+<key id>+<key>")
    valid: bool = Field(description="Whether it verifies over the document as stored.")


class ContractPublic(BaseModel):
    id: str
    number: str = Field(description="GX-DC-<year>-<serial>")
    status: str = Field(
        description="requested, offered, accepted, signed, active, completed, terminated, disputed"
    )
    kind: str = Field(description="mall, agreement or auction")
    listing_id: str
    order_id: str | None
    negotiation_id: str | None
    auction_id: str | None
    asset_id: str
    seller_id: str
    buyer_id: str
    broker_id: str | None
    quantity: int
    price_fen: int
    amount_fen: int
    channels: list[str]
    term_start: date
    term_end: date
    cross_border: bool
    deadline_at: datetime | None = Field(description="When the current state's deadline passes.")
    document_hash: str
    ledger_index: int | None
    hold_id: str | None
    delivered_at: datetime | None
    accepted_at: datetime | None
    settled_at: datetime | None
    reason: str
    rules: list[str]
    created_at: datetime
    updated_at: datetime
    actions: list[str] = Field(description="What the caller may do now.")

    @classmethod
    def of(cls, c: ExchangeContract, actions: frozenset[str] = frozenset()) -> ContractPublic:
        return cls(
            id=c.id,
            number=c.number,
            status=c.state,
            kind=c.kind,
            listing_id=c.listing_id,
            order_id=c.order_id,
            negotiation_id=c.negotiation_id,
            auction_id=c.auction_id,
            asset_id=c.asset_id,
            seller_id=c.seller_id,
            buyer_id=c.buyer_id,
            broker_id=c.broker_id,
            quantity=c.quantity,
            price_fen=c.price_fen,
            amount_fen=c.amount_fen,
            channels=list(c.channels),
            term_start=c.term_start,
            term_end=c.term_end,
            cross_border=c.cross_border,
            deadline_at=c.deadline_at,
            document_hash=c.document_hash,
            ledger_index=c.ledger_index,
            hold_id=c.hold_id,
            delivered_at=c.delivered_at,
            accepted_at=c.accepted_at,
            settled_at=c.settled_at,
            reason=c.reason,
            rules=list(c.rules),
            created_at=c.created_at,
            updated_at=c.updated_at,
            actions=sorted(actions),
        )


class ContractDetail(ContractPublic):
    document: dict[str, Any] = Field(description="The contract as the parties sign it.")
    signatures: list[ContractSignaturePublic]
    history: list[ContractEventPublic]


class ContractList(BaseModel):
    items: list[ContractPublic]
    total: int
    limit: int
    offset: int


class ContractSign(BaseModel):
    model_config = ConfigDict(extra="forbid")

    confirm: bool = Field(
        False, description="Must be true: the user read the document and signs for the party."
    )


class ContractReason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=4000, description="Why (required for the exchange).")


class ContractDispute(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grounds: str = Field(max_length=4000, description="The grounds of the dispute.")


class ContractResolve(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["seller", "buyer", "split"]
    reason: str = Field(max_length=4000, description="The decision's reasons.")
    pay_fen: int | None = Field(None, description="split: what the seller is paid (fen).")


def _contract_detail(s: Session, principal: Principal, c: ExchangeContract) -> ContractDetail:
    now = utcnow()
    base = ContractPublic.of(c, contracts.available_actions(c, principal, now))
    return ContractDetail(
        **base.model_dump(),
        document=c.document,
        signatures=[
            ContractSignaturePublic(
                role=x.role,
                party_id=x.party_id,
                signed=x.signature is not None,
                signed_by=x.signed_by,
                signed_at=x.signed_at,
                signature=x.signature,
                key=x.key,
                valid=x.valid,
            )
            for x in contracts.signature_checks(c)
        ],
        history=[
            ContractEventPublic(
                action=e.action,
                source=e.source,
                target=e.target,
                actor_name=e.actor_name,
                actor_party_id=e.actor_party_id,
                reason=e.reason,
                reason_params={k: str(v) for k, v in (e.reason_params or {}).items()},
                rules=list(e.rules),
                ledger_index=e.ledger_index,
                at=e.at,
            )
            for e in contracts.contract_events(s, c.id)
        ],
    )


@router.get(
    "/contracts",
    response_model=ContractList,
    summary="My party's contracts as buyer, seller or broker (every contract for the exchange "
    "and regulators)",
)
def list_contracts(
    principal: ApiPrincipal,
    db: DbDep,
    page: PagingDep,
    status: Annotated[str | None, Query(max_length=16, description="A contract state.")] = None,
    role: Annotated[
        Literal["buyer", "seller", "broker"] | None, Query(description="My party's role in it.")
    ] = None,
    kind: Annotated[
        Literal["mall", "agreement", "auction"] | None, Query(description="The trade.")
    ] = None,
) -> ContractList:
    now = utcnow()
    with db.read() as s:
        rows, total = contracts.list_contracts(
            s,
            principal,
            contracts.ContractQuery(state=status, role=role, kind=kind),
            limit=page.limit,
            offset=page.offset,
            everyone=principal.can(Permission.EXCHANGE_CONTRACT_READ_ALL) and role is None,
        )
        return ContractList(
            items=[
                ContractPublic.of(c, contracts.available_actions(c, principal, now)) for c in rows
            ],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )


def _pdf_response(
    contract_id: str, request: Request, principal: Principal, db: Database, settings: Settings
) -> Response:
    base_url = (settings.public_base_url or str(request.base_url)).rstrip("/")
    with db.read() as s:
        contract, content = contracts.contract_pdf(
            s, principal, contract_id, base_url=base_url, now=utcnow()
        )
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{contract.number}.pdf"'},
    )


_PDF: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/pdf": {}}, "description": "The contract PDF"}
}


@router.get(
    "/contracts/{contract_id}.pdf",
    response_class=Response,
    responses=_PDF,
    summary="The contract as a PDF: terms, signatures, ledger entry, QR code",
)
def contract_pdf_dotted(
    contract_id: str, request: Request, principal: ApiPrincipal, db: DbDep, settings: SettingsDep
) -> Response:
    return _pdf_response(contract_id, request, principal, db, settings)


@router.get(
    "/contracts/{contract_id}/pdf",
    response_class=Response,
    responses=_PDF,
    summary="The contract as a PDF (same as …/{id}.pdf)",
)
def contract_pdf(
    contract_id: str, request: Request, principal: ApiPrincipal, db: DbDep, settings: SettingsDep
) -> Response:
    return _pdf_response(contract_id, request, principal, db, settings)


@router.get(
    "/contracts/{contract_id}",
    response_model=ContractDetail,
    summary="One contract: terms, document, signatures and history",
)
def get_contract(contract_id: str, principal: ApiPrincipal, db: DbDep) -> ContractDetail:
    with db.read() as s:
        return _contract_detail(s, principal, contracts.get_contract(s, principal, contract_id))


@router.post(
    "/contracts/{contract_id}/sign",
    response_model=ContractDetail,
    summary='Sign the contract for my party (body {"confirm": true}); with every signature it '
    "is signed, recorded in the ledger and takes effect",
)
def sign_contract(
    contract_id: str, body: ContractSign, principal: ApiPrincipal, db: DbDep, settings: SettingsDep
) -> ContractDetail:
    with db.write() as s:
        c = contracts.sign_contract(
            s,
            principal,
            contract_id,
            keys=party_keys(settings),
            confirm=body.confirm,
            now=utcnow(),
        )
        return _contract_detail(s, principal, c)


@router.post(
    "/contracts/{contract_id}/confirm",
    response_model=ContractDetail,
    summary="The buyer accepts the delivery (验收): completed and settled",
)
def confirm_contract(contract_id: str, principal: ApiPrincipal, db: DbDep) -> ContractDetail:
    with db.write() as s:
        c = contracts.confirm_delivery(s, principal, contract_id, now=utcnow())
        return _contract_detail(s, principal, c)


@router.post(
    "/contracts/{contract_id}/terminate",
    response_model=ContractDetail,
    summary="Terminate a contract before it is signed (the exchange: any not completed); the "
    "escrow is released to the buyer",
)
def terminate_contract(
    contract_id: str, principal: ApiPrincipal, db: DbDep, body: ContractReason | None = None
) -> ContractDetail:
    with db.write() as s:
        c = contracts.terminate_contract(
            s, principal, contract_id, reason=body.reason if body else "", now=utcnow()
        )
        return _contract_detail(s, principal, c)


@router.post(
    "/contracts/{contract_id}/dispute",
    response_model=ContractDetail,
    summary="Raise a dispute with grounds over a contract in performance (money stays frozen)",
)
def dispute_contract(
    contract_id: str, body: ContractDispute, principal: ApiPrincipal, db: DbDep
) -> ContractDetail:
    with db.write() as s:
        c = contracts.dispute_contract(
            s, principal, contract_id, grounds=body.grounds, now=utcnow()
        )
        return _contract_detail(s, principal, c)


@router.post(
    "/contracts/{contract_id}/resolve",
    response_model=ContractDetail,
    summary="The exchange decides a dispute: for the seller, for the buyer, or split",
)
def resolve_contract(
    contract_id: str, body: ContractResolve, principal: ApiPrincipal, db: DbDep
) -> ContractDetail:
    with db.write() as s:
        c = contracts.resolve_dispute(
            s,
            principal,
            contract_id,
            outcome=body.outcome,
            reason=body.reason,
            pay_fen=body.pay_fen,
            now=utcnow(),
        )
        return _contract_detail(s, principal, c)
