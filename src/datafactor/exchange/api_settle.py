"""Exchange API — settlement of contracts, revenue sharing, dashboards.

Thin entry points over ``settle``: each opens the unit of work, and answers JSON or problem+json
naming the rule that refused. ``GET /exchange/dashboard`` (a seller's, a broker's or the
operator's figures), ``GET /exchange/settlements`` (the settlements of the caller's contracts),
``GET /exchange/settlements/{contract_id}`` (one contract's split — recorded, or what it would
pay now — for its parties, the operator and regulators; anyone else 404), and the operator's
``POST /exchange/settlements/run`` (``Idempotency-Key`` required; settles every completed,
unsettled contract in one batch; the same key answers the same run again, 201 with
``Idempotent-Replayed: true``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query, Response
from pydantic import BaseModel, Field

from datafactor.db import utcnow
from datafactor.errors import N_
from datafactor.exchange import settle
from datafactor.exchange.errors import ExchangeForbidden, ExchangeInvalid
from datafactor.permissions import Permission
from datafactor.web.deps import ApiPrincipal, DbDep, PagingDep

router = APIRouter(tags=["exchange-settle"])

MSG_KEY_MISSING = N_(
    "Send an Idempotency-Key header with a settlement run: a new random value (a UUID) per run, "
    "the same value when you retry it (rule {rule})."
)


class PartPublic(BaseModel):
    """One payee of a split: ``kind`` payout (the seller) / share (a revenue share) / commission
    (the broker) / fee (the exchange) / treasury (public data's non-tax revenue)."""

    kind: str
    party_id: str | None
    amount_fen: int
    stage: str | None = None
    mode: str | None = None
    rule: str


class SettlementPublic(BaseModel):
    """A contract's settlement. ``settled`` false: what it would pay now (``problem`` says why
    it could not be paid, naming ``problem_rule``)."""

    contract_id: str
    number: str
    state: str
    listing_id: str
    seller_id: str
    buyer_id: str
    broker_id: str | None
    settled: bool
    amount_fen: int = Field(description="Paid out of escrow by the split (fen).")
    released_fen: int = Field(description="Returned to the buyer's available funds (fen).")
    frozen_fen: int = Field(description="Still frozen in escrow (not yet settled).")
    parts: list[PartPublic]
    rules: list[str]
    journal_id: str | None
    batch_id: str | None
    ledger_index: int | None
    settled_at: datetime | None
    problem: str = ""
    problem_rule: str = ""

    @classmethod
    def of(cls, v: settle.SettlementView) -> SettlementPublic:
        c = v.contract
        return cls(
            contract_id=c.id,
            number=c.number,
            state=c.state,
            listing_id=c.listing_id,
            seller_id=c.seller_id,
            buyer_id=c.buyer_id,
            broker_id=c.broker_id,
            settled=v.settled,
            amount_fen=v.amount_fen,
            released_fen=v.released_fen,
            frozen_fen=v.frozen_fen,
            parts=[PartPublic(**p) for p in v.parts],
            rules=list(v.rules),
            journal_id=v.journal_id,
            batch_id=v.batch_id,
            ledger_index=v.ledger_index,
            settled_at=v.settled_at,
            problem=v.problem,
            problem_rule=v.problem_rule,
        )


class SettlementSummary(BaseModel):
    contract_id: str
    number: str
    seller_id: str
    buyer_id: str
    broker_id: str | None
    amount_fen: int
    released_fen: int
    journal_id: str | None
    settled_at: datetime
    parts: list[PartPublic]


class SettlementPage(BaseModel):
    items: list[SettlementSummary]
    total: int
    limit: int
    offset: int


class RunCreate(BaseModel):
    """A settlement run: every completed, unsettled contract (``contract_ids`` null), or those
    listed. The request must carry an ``Idempotency-Key`` header."""

    contract_ids: list[Annotated[str, Field(max_length=36)]] | None = Field(
        default=None, max_length=200_000
    )


class RefusedPublic(BaseModel):
    contract_id: str
    number: str
    rule: str
    message: str


class RunPublic(BaseModel):
    run_key: str
    settled: int
    paid_fen: int
    released_fen: int
    batch_ids: list[str]
    ledger_index: int | None
    replayed: bool
    refused: list[RefusedPublic]


@router.get(
    "/exchange/dashboard",
    summary="A seller's, a broker's or the exchange operator's figures",
)
def dashboard(
    principal: ApiPrincipal,
    db: DbDep,
    role: Annotated[
        Literal["seller", "broker", "operator"] | None,
        Query(description="Whose dashboard (default: the first the caller may see)."),
    ] = None,
) -> dict[str, Any]:
    with db.read() as s:
        return settle.dashboard(s, principal, role, now=utcnow())


@router.get(
    "/exchange/settlements",
    response_model=SettlementPage,
    summary="Settlements of my party's contracts (every one for the operator and regulators)",
)
def settlements(principal: ApiPrincipal, db: DbDep, page: PagingDep) -> SettlementPage:
    with db.read() as s:
        rows, total = settle.list_settlements(s, principal, limit=page.limit, offset=page.offset)
        items = [
            SettlementSummary(
                contract_id=c.id,
                number=c.number,
                seller_id=c.seller_id,
                buyer_id=c.buyer_id,
                broker_id=c.broker_id,
                amount_fen=row.amount_fen,
                released_fen=row.released_fen,
                journal_id=row.journal_id,
                settled_at=row.settled_at,
                parts=[PartPublic(**p) for p in row.split],
            )
            for c, row in rows
        ]
    return SettlementPage(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get(
    "/exchange/settlements/{contract_id}",
    response_model=SettlementPublic,
    summary="One contract's split (settled, or what it would pay now)",
)
def settlement_of(contract_id: str, principal: ApiPrincipal, db: DbDep) -> SettlementPublic:
    with db.read() as s:
        return SettlementPublic.of(settle.get_settlement(s, principal, contract_id, now=utcnow()))


@router.post(
    "/exchange/settlements/run",
    response_model=RunPublic,
    status_code=201,
    summary="Settle every completed, unsettled contract in one batch (the exchange operator)",
)
def run(
    response: Response,
    principal: ApiPrincipal,
    db: DbDep,
    body: Annotated[RunCreate | None, Body()] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Required. A new random value (UUID) per run; the same one on retry.",
        ),
    ] = None,
) -> RunPublic:
    rule = settle.rules().rule_id("settle_run")
    if not principal.can(Permission.EXCHANGE_SETTLEMENT_RUN):
        raise ExchangeForbidden(
            settle.MSG_NOT_ALLOWED,
            rule=rule,
            permission=Permission.EXCHANGE_SETTLEMENT_RUN.value,
        )
    if not idempotency_key:
        raise ExchangeInvalid(MSG_KEY_MISSING, rule=rule, field="Idempotency-Key")
    ids = body.contract_ids if body is not None else None
    with db.write() as s:
        result = settle.settle_due(s, ids, key=idempotency_key, actor=principal, now=utcnow())
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return RunPublic(**result.as_dict())
