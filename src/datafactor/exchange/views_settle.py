"""Exchange pages — settlement of contracts, revenue sharing, dashboards.

``/exchange/dashboard`` shows a seller's, a broker's or the exchange operator's figures (a
switch when the party has several roles; the operator also runs settlement from there: the form
carries a fresh idempotency key per rendering, so a double click settles once), and
``/exchange/settlements/{contract_id}`` one contract's split — recorded, or what it would pay
now — with the rule of each part. Thin shells over ``settle``; amounts shown in yuan.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from datafactor.db import utcnow
from datafactor.errors import N_, DomainError
from datafactor.exchange import settle
from datafactor.exchange.domain import CONTRACT_STATE_LABELS, PRICE_MODEL_LABELS
from datafactor.exchange.errors import ExchangeForbidden
from datafactor.identity import WebIdentity, counterparty_names
from datafactor.permissions import Permission
from datafactor.settlement import format_yuan
from datafactor.web.deps import DbDep, WebUser, check_csrf
from datafactor.web.forms import error_text, read_form, render

router = APIRouter(include_in_schema=False)

KIND_LABELS: dict[str, str] = {
    "payout": N_("Seller"),
    "share": N_("Revenue share"),
    "commission": N_("Broker commission"),
    "fee": N_("Exchange fee"),
    "treasury": N_("Treasury non-tax revenue"),
}
STAGE_LABELS: dict[str, str] = {
    "collection": N_("Collection"),
    "processing": N_("Processing"),
    "circulation": N_("Circulation"),
    "application": N_("Application"),
}
LABELS: dict[str, Any] = {
    "yuan": format_yuan,
    "kind_labels": KIND_LABELS,
    "stage_labels": STAGE_LABELS,
    "state_labels": CONTRACT_STATE_LABELS,
    "price_model_labels": PRICE_MODEL_LABELS,
}


def _names(db: DbDep, identity: WebIdentity, party_ids: list[str | None]) -> dict[str, str]:
    with db.read() as s:
        return counterparty_names(s, identity.principal, [p for p in party_ids if p])


def _dashboard(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    role: str | None,
    *,
    status: int = 200,
    **extra: Any,
) -> Response:
    with db.read() as s:
        figures = settle.dashboard(s, identity.principal, role, now=utcnow())
    parties = [p.get("party_id") for x in figures.get("recent", []) for p in x["split"]]
    return render(
        request,
        "exchange/settle/dashboard.html",
        identity,
        status=status,
        d=figures,
        names=_names(db, identity, parties),
        can_run=identity.principal.can(Permission.EXCHANGE_SETTLEMENT_RUN),
        run_key=secrets.token_urlsafe(18),
        **LABELS,
        **extra,
    )


@router.get("/exchange/dashboard")
def dashboard_page(
    request: Request,
    identity: WebUser,
    db: DbDep,
    role: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    return _dashboard(request, identity, db, role)


def _run(db: DbDep, identity: WebIdentity, key: str) -> settle.DueResult:
    with db.write() as s:
        return settle.settle_due(s, None, key=key, actor=identity.principal, now=utcnow())


@router.post("/exchange/settlements/run")
async def run_form(request: Request, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        if not identity.principal.can(Permission.EXCHANGE_SETTLEMENT_RUN):
            raise ExchangeForbidden(
                settle.MSG_NOT_ALLOWED,
                rule=settle.rules().rule_id("settle_run"),
                permission=Permission.EXCHANGE_SETTLEMENT_RUN.value,
            )
        result = await run_in_threadpool(
            _run, db, identity, f"web:{form.get('idempotency_key', '')}"[:100]
        )
    except DomainError as exc:
        return _dashboard(request, identity, db, "operator", status=exc.status, **error_text(exc))
    return _dashboard(request, identity, db, "operator", ran=result)


@router.get("/exchange/settlements/{contract_id}")
def settlement_page(request: Request, contract_id: str, identity: WebUser, db: DbDep) -> Response:
    with db.read() as s:
        view = settle.get_settlement(s, identity.principal, contract_id, now=utcnow())
    c = view.contract
    names = _names(
        db, identity, [c.seller_id, c.buyer_id, c.broker_id, *(p["party_id"] for p in view.parts)]
    )
    return render(
        request, "exchange/settle/settlement.html", identity, v=view, c=c, names=names, **LABELS
    )
