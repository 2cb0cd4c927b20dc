"""Exchange pages — Mall orders and contracts.

A contract waiting for its signatures whose product's title the registry has in dispute
(``listings.open_dispute``) cannot be signed (EXC-LST-DISPUTE): its page says why, and that it
ends at its signing deadline if the dispute is still open then, and the sign button is disabled
(the signature itself is still refused)."""

from __future__ import annotations

import json
import secrets
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from datafactor import context, settlement
from datafactor.db import CHINA, utcnow
from datafactor.errors import N_, DomainError, Forbidden
from datafactor.exchange import contracts, listings, orders
from datafactor.exchange.domain import (
    CHANNEL_LABELS,
    CONTRACT_STATE_LABELS,
    PRICE_MODEL_LABELS,
    TRADE_KIND_LABELS,
    PriceModel,
)
from datafactor.exchange.errors import ExchangeInvalid
from datafactor.exchange.keys import party_keys
from datafactor.exchange.models import ExchangeListing
from datafactor.exchange.rulebook import exchange_rules
from datafactor.identity import WebIdentity, counterparty_names
from datafactor.permissions import Permission
from datafactor.policy import PolicyError, describe, parse_policy
from datafactor.web.deps import DbDep, WebUser, check_csrf
from datafactor.web.forms import error_text, read_form, redirect, render
from datafactor.web.i18n import gettext

router = APIRouter(include_in_schema=False)


# --- mall orders: checkout, my orders --------------------------------------------------------

ORDERS_PAGE = 30
MSG_DECLARE = N_(
    "Tick the box to confirm that you read the contract terms: the order binds your party and "
    "freezes the price in escrow (rule {rule})."
)


def _order_labels() -> dict[str, Any]:
    return {
        "price_model_labels": PRICE_MODEL_LABELS,
        "channel_labels": CHANNEL_LABELS,
        "contract_state_labels": CONTRACT_STATE_LABELS,
        "order_state_labels": orders.ORDER_STATE_LABELS,
        "yuan": settlement.format_yuan,
    }


def _policy_text(policy: dict[str, Any]) -> list[str]:
    """The contract policy in plain language, in the reader's language (the page names the
    data and the parties, so targets and parties are left out of the sentences)."""
    plain = {k: v for k, v in policy.items() if k not in ("assigner", "assignee", "target")}
    plain["@type"] = "Set"
    try:
        parsed = parse_policy(plain)
    except PolicyError:
        return []
    parsed = replace(
        parsed,
        permissions=tuple(
            replace(p, target=None, assignee=None, assigner=None) for p in parsed.permissions
        ),
        prohibitions=tuple(
            replace(p, target=None, assignee=None, assigner=None) for p in parsed.prohibitions
        ),
    )
    return describe(parsed, context.locale.get())


def _checkout(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    listing_id: str,
    *,
    quantity: int = 1,
    status: int = 200,
    form: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    principal = identity.principal
    today = utcnow().astimezone(CHINA).date()
    with db.read() as s:
        listing = orders.listing_for_checkout(s, principal, listing_id, on=today)
        seller = counterparty_names(s, principal, [listing.seller_id])[listing.seller_id]
        available = (
            orders.available_fen(s, principal)
            if principal.can(Permission.SETTLEMENT_ACCOUNT_READ)
            else None
        )
    cap = orders.max_quantity(listing.price_model)
    if listing.remaining_quantity is not None and listing.price_model in (
        PriceModel.ONE_OFF,
        PriceModel.FREE,
    ):
        cap = min(cap, max(1, listing.remaining_quantity))
    quantity = max(1, min(quantity, cap))
    terms = orders.order_terms(listing, quantity, today)
    return render(
        request,
        "exchange/orders/checkout.html",
        identity,
        status=status,
        listing=listing,
        seller=seller,
        available=available,
        quantity=quantity,
        cap=cap,
        terms=terms,
        policy_text=_policy_text(listing.contract_policy or {}),
        policy_json=json.dumps(listing.contract_policy, ensure_ascii=False, indent=2),
        form_key=secrets.token_urlsafe(18),
        form=form or {},
        **_order_labels(),
        **extra,
    )


@router.get("/exchange/listings/{listing_id}/checkout")
def checkout_page(
    request: Request,
    listing_id: str,
    identity: WebUser,
    db: DbDep,
    quantity: Annotated[int, Query(ge=1, le=10**9)] = 1,
) -> Response:
    return _checkout(request, identity, db, listing_id, quantity=quantity)


@router.get("/exchange/listings/{listing_id}/checkout/total")
def checkout_total(
    request: Request,
    listing_id: str,
    identity: WebUser,
    db: DbDep,
    quantity: Annotated[str, Query(max_length=12)] = "1",
) -> Response:
    """The total for a quantity typed on the checkout page (an HTMX fragment)."""
    today = utcnow().astimezone(CHINA).date()
    with db.read() as s:
        listing = orders.listing_for_checkout(s, identity.principal, listing_id, on=today)
    error = None
    terms = None
    try:
        terms = orders.order_terms(listing, orders.check_quantity(quantity), today)
    except DomainError as exc:
        error = error_text(exc)["error"]
    return render(
        request,
        "exchange/orders/_total.html",
        identity,
        listing=listing,
        terms=terms,
        total_error=error,
        **_order_labels(),
    )


def _place(
    db: DbDep, identity: WebIdentity, listing_id: str, quantity: str, key: str
) -> orders.Placed:
    orders.open_buyer_accounts(db, identity.principal)
    with db.write() as s:
        return orders.place_order(
            s, identity.principal, listing_id, quantity, key=key, now=utcnow()
        )


@router.post("/exchange/listings/{listing_id}/checkout")
async def checkout_form(
    request: Request, listing_id: str, identity: WebUser, db: DbDep
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    raw = form.get("quantity", "").strip()
    # The form's key is fresh per rendering, so a double click or a reload places one order;
    # the ``web:`` prefix keeps it apart from keys API clients choose.
    key = form.get("idempotency_key", "")
    try:
        if form.get("terms_read") != "yes":
            raise ExchangeInvalid(
                MSG_DECLARE,
                rule=exchange_rules().rule_id("order_contract"),
                field="terms_read",
            )
        placed = await run_in_threadpool(
            _place, db, identity, listing_id, raw, f"web:{key}" if key else ""
        )
    except DomainError as exc:
        if exc.status == 404:
            raise
        shown = int(raw) if raw.isdigit() and 0 < int(raw) < 10**9 else 1
        return await run_in_threadpool(
            _checkout,
            request,
            identity,
            db,
            listing_id,
            quantity=shown,
            status=exc.status,
            form={"quantity": raw},
            **error_text(exc),
        )
    return redirect(f"/exchange/orders/{placed.order.id}")


@router.get("/exchange/orders")
def orders_page(
    request: Request,
    identity: WebUser,
    db: DbDep,
    role: Annotated[str | None, Query(max_length=8)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    principal = identity.principal
    role = role if role in orders.ROLES else None
    status = status if status in orders.ORDER_STATE_LABELS else None
    with db.read() as s:
        views, total = orders.list_orders(
            s,
            principal,
            role=role,
            state=status,
            limit=ORDERS_PAGE,
            offset=(page - 1) * ORDERS_PAGE,
        )
        names = counterparty_names(
            s, principal, {p for v in views for p in (v.order.buyer_id, v.order.seller_id)}
        )
    return render(
        request,
        "exchange/orders/list.html",
        identity,
        views=views,
        total=total,
        names=names,
        role=role,
        state=status,
        page=page,
        pages=max(1, -(-total // ORDERS_PAGE)),
        **_order_labels(),
    )


def _order_page(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    order_id: str,
    *,
    status: int = 200,
    **extra: Any,
) -> Response:
    principal = identity.principal
    with db.read() as s:
        view = orders.get_order(s, principal, order_id)
        names = counterparty_names(s, principal, [view.order.buyer_id, view.order.seller_id])
    order = view.order
    may_cancel = (
        order.buyer_id == principal.party_id
        and order.state != "cancelled"
        and (view.contract_state is None or view.contract_state in orders.ENDABLE_STATES)
        and principal.can(Permission.EXCHANGE_CONTRACT_SIGN)
    )
    return render(
        request,
        "exchange/orders/detail.html",
        identity,
        status=status,
        view=view,
        order=order,
        names=names,
        is_buyer=order.buyer_id == principal.party_id,
        may_cancel=may_cancel,
        **_order_labels(),
        **extra,
    )


@router.get("/exchange/orders/{order_id}")
def order_page(request: Request, order_id: str, identity: WebUser, db: DbDep) -> Response:
    return _order_page(request, identity, db, order_id)


def _cancel(db: DbDep, identity: WebIdentity, order_id: str, reason: str) -> orders.Placed:
    with db.write() as s:
        return orders.cancel_order(s, identity.principal, order_id, now=utcnow(), reason=reason)


@router.post("/exchange/orders/{order_id}/cancel")
async def cancel_form(request: Request, order_id: str, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        await run_in_threadpool(_cancel, db, identity, order_id, form.get("reason", ""))
    except DomainError as exc:
        if exc.status == 404:
            raise
        return await run_in_threadpool(
            _order_page, request, identity, db, order_id, status=exc.status, **error_text(exc)
        )
    return redirect(f"/exchange/orders/{order_id}")


# --- contracts: my contracts, one contract (sign, accept, terminate, dispute), disputes ------

CONTRACTS_PAGE = 30
CONTRACT_ROLES = ("buyer", "seller", "broker")
MSG_SIGN_CONFIRM = N_(
    "Tick the box to confirm that you read the contract and sign it for your party (rule {rule})."
)
MSG_SIGN_DISPUTED = N_(
    "This contract cannot be signed now: the registry has the right behind certificate "
    "{certificate} under an open title dispute ({disputes}). If the dispute is still open at the "
    "signing deadline ({deadline}), the contract ends and the payment is released (rule {rule})."
)
DEADLINE_TEXT: dict[str, str] = {
    "requested": N_(
        "If it is not answered by then, the contract ends and the payment is released."
    ),
    "offered": N_("If it is not answered by then, the contract ends and the payment is released."),
    "accepted": N_(
        "If it is not signed by every party by then, the contract ends and the payment is released."
    ),
    "signed": N_("The contract takes effect then, at the start of its term."),
    "active": N_("If nothing is delivered by then, the contract ends and the payment is released."),
    "delivered": N_(
        "Unless the buyer accepts or disputes the delivery by then, it is deemed accepted and "
        "the payment is settled."
    ),
    "disputed": N_(
        "If the exchange has not decided by then, the dispute is reported to the regulators; "
        "the payment stays frozen."
    ),
}
EVENT_LABELS: dict[str, str] = {
    "offer": N_("Offered"),
    "accept": N_("Drawn up"),
    "sign": N_("Signed"),
    "activate": N_("Took effect"),
    "deliver": N_("Delivered"),
    "confirm": N_("Delivery accepted"),
    "complete": N_("Completed"),
    "terminate": N_("Terminated"),
    "dispute": N_("Dispute raised"),
    "resolve": N_("Dispute decided"),
    "expire": N_("Deadline passed"),
    "escalate": N_("Reported to the regulators"),
    "settle": N_("Settled"),
}
# The settlement's history row keeps its figures in ``reason_params`` (its ``reason`` is English).
WHY_SETTLED = N_("{paid} paid out of escrow, {released} returned to the buyer.")
ROLE_NAMES: dict[str, str] = {
    "buyer": N_("Buyer"),
    "seller": N_("Seller"),
    "broker": N_("Broker"),
}


def _contract_labels() -> dict[str, Any]:
    return {
        "contract_state_labels": CONTRACT_STATE_LABELS,
        "trade_kind_labels": TRADE_KIND_LABELS,
        "channel_labels": CHANNEL_LABELS,
        "price_model_labels": PRICE_MODEL_LABELS,
        "event_labels": EVENT_LABELS,
        "role_names": ROLE_NAMES,
        "yuan": settlement.format_yuan,
    }


def _why(reason: str, params: dict[str, Any] | None, action: str = "") -> str:
    """A stored reason as its reader reads it: a person's text as typed, the system's (a msgid
    with parameters) in the reader's language."""
    if action == "settle" and params is not None and "paid_fen" in params:
        return gettext(
            WHY_SETTLED,
            paid=settlement.format_yuan(int(params["paid_fen"])),
            released=settlement.format_yuan(int(params.get("released_fen") or 0)),
        )
    if not reason:
        return ""
    if params is None:
        return reason
    return gettext(reason, **{k: str(v) for k, v in params.items()})


@router.get("/exchange/contracts")
def contracts_page(
    request: Request,
    identity: WebUser,
    db: DbDep,
    role: Annotated[str | None, Query(max_length=8)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    kind: Annotated[str | None, Query(max_length=16)] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    principal = identity.principal
    role = role if role in CONTRACT_ROLES else None
    status = status if status in CONTRACT_STATE_LABELS else None
    kind = kind if kind in TRADE_KIND_LABELS else None
    everyone = principal.can(Permission.EXCHANGE_CONTRACT_READ_ALL) and role is None
    with db.read() as s:
        rows, total = contracts.list_contracts(
            s,
            principal,
            contracts.ContractQuery(state=status, role=role, kind=kind),
            limit=CONTRACTS_PAGE,
            offset=(page - 1) * CONTRACTS_PAGE,
            everyone=everyone,
        )
        names = counterparty_names(s, principal, {p for c in rows for p in contracts.parties(c)})
    return render(
        request,
        "exchange/contracts/list.html",
        identity,
        rows=rows,
        total=total,
        names=names,
        role=role,
        state=status,
        kind=kind,
        everyone=everyone,
        page=page,
        pages=max(1, -(-total // CONTRACTS_PAGE)),
        roles_of=contracts.roles_of,
        **_contract_labels(),
    )


@router.get("/exchange/contracts/disputes")
def disputes_page(
    request: Request,
    identity: WebUser,
    db: DbDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    """The exchange's queue of open disputes, oldest deadline first."""
    principal = identity.principal
    if not principal.can(Permission.EXCHANGE_CONTRACT_READ_ALL):
        raise Forbidden(
            N_("Your account is not allowed to do this ({permission})."),
            permission=Permission.EXCHANGE_CONTRACT_READ_ALL.value,
        )
    with db.read() as s:
        rows, total = contracts.list_contracts(
            s,
            principal,
            contracts.ContractQuery(state="disputed"),
            limit=CONTRACTS_PAGE,
            offset=(page - 1) * CONTRACTS_PAGE,
            everyone=True,
        )
        rows.sort(key=lambda c: (c.deadline_at is None, c.deadline_at))
        names = counterparty_names(s, principal, {p for c in rows for p in contracts.parties(c)})
        grounds = {
            c.id: next(
                (
                    e.reason
                    for e in reversed(contracts.contract_events(s, c.id))
                    if e.action == "dispute"
                ),
                "",
            )
            for c in rows
        }
    return render(
        request,
        "exchange/contracts/disputes.html",
        identity,
        rows=rows,
        total=total,
        names=names,
        grounds=grounds,
        page=page,
        pages=max(1, -(-total // CONTRACTS_PAGE)),
        can_resolve=principal.can(Permission.EXCHANGE_CONTRACT_ARBITRATE),
        **_contract_labels(),
    )


def _contract_page(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    contract_id: str,
    *,
    status: int = 200,
    form: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    principal = identity.principal
    now = utcnow()
    with db.read() as s:
        contract = contracts.get_contract(s, principal, contract_id)
        events = contracts.contract_events(s, contract.id)
        names = counterparty_names(s, principal, contracts.parties(contract))
        signers = contracts.signer_names(s, contract.id)
        # Signing is refused while the registry has the title in dispute (``sign_contract``
        # runs the same ``listings.open_dispute``): said before anyone tries.
        dispute = None
        if contract.state == "accepted":
            listing = s.get(ExchangeListing, contract.listing_id)
            if listing is not None:
                dispute = listings.open_dispute(s, listing, contracts.china_day(now))
    history = [
        (
            e,
            _why(e.reason, e.reason_params, e.action)
            or (
                gettext(ROLE_NAMES[str(e.reason_params["role"])])
                if e.action == "sign" and e.reason_params and "role" in e.reason_params
                else ""
            ),
        )
        for e in events
    ]
    deadline_key = contract.state
    if contract.state == "active" and contract.delivered_at is not None:
        deadline_key = "delivered"
    return render(
        request,
        "exchange/contracts/detail.html",
        identity,
        status=status,
        contract=contract,
        doc=contract.document,
        names=names,
        mine=contracts.roles_of(contract, principal.party_id),
        history=history,
        reason=_why(contract.reason, contract.reason_params),
        signatures=contracts.signature_checks(contract),
        signers=signers,
        required=contracts.required_roles(contract),
        actions=contracts.available_actions(contract, principal, now),
        deadline_text=DEADLINE_TEXT.get(deadline_key),
        policy_text=_policy_text(contract.policy or {}),
        document_json=json.dumps(contract.document, ensure_ascii=False, indent=2, sort_keys=True),
        form=form or {},
        dispute=dispute,
        dispute_notice=None
        if dispute is None
        else gettext(
            MSG_SIGN_DISPUTED,
            **dispute.params,
            deadline=contracts.show_time(contract.deadline_at),
        ),
        **_contract_labels(),
        **extra,
    )


@router.get("/exchange/contracts/{contract_id}")
def contract_page(request: Request, contract_id: str, identity: WebUser, db: DbDep) -> Response:
    return _contract_page(request, identity, db, contract_id)


@router.get("/exchange/contracts/{contract_id}/pdf")
def contract_pdf_page(request: Request, contract_id: str, identity: WebUser, db: DbDep) -> Response:
    settings = request.app.state.settings
    base_url = (settings.public_base_url or str(request.base_url)).rstrip("/")
    with db.read() as s:
        contract, content = contracts.contract_pdf(
            s, identity.principal, contract_id, base_url=base_url, now=utcnow()
        )
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{contract.number}.pdf"'},
    )


def _contract_move(
    db: DbDep,
    identity: WebIdentity,
    contract_id: str,
    move: str,
    form: dict[str, str],
    keys: Any,
) -> None:
    principal = identity.principal
    now = utcnow()
    with db.write() as s:
        if move == "sign":
            contracts.sign_contract(
                s, principal, contract_id, keys=keys, confirm=form.get("confirm") == "yes", now=now
            )
        elif move == "confirm":
            contracts.confirm_delivery(s, principal, contract_id, now=now)
        elif move == "terminate":
            contracts.terminate_contract(
                s, principal, contract_id, reason=form.get("reason", ""), now=now
            )
        elif move == "dispute":
            contracts.dispute_contract(
                s, principal, contract_id, grounds=form.get("grounds", ""), now=now
            )
        else:
            raw = form.get("pay_yuan", "").strip()
            pay = None
            if form.get("outcome") == "split":
                try:
                    pay = settlement.parse_yuan(raw)
                except ValueError:
                    pay = -1  # refused by the use case with its rule and message
            contracts.resolve_dispute(
                s,
                principal,
                contract_id,
                outcome=form.get("outcome", ""),
                reason=form.get("reason", ""),
                pay_fen=pay,
                now=now,
            )


async def _contract_form(
    request: Request, contract_id: str, move: str, identity: WebIdentity, db: DbDep
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    keys = party_keys(request.app.state.settings)
    try:
        if move == "sign" and form.get("confirm") != "yes":
            raise ExchangeInvalid(
                MSG_SIGN_CONFIRM, rule=contracts.rule_id("contract_sign"), field="confirm"
            )
        await run_in_threadpool(_contract_move, db, identity, contract_id, move, form, keys)
    except DomainError as exc:
        if exc.status == 404:
            raise
        return await run_in_threadpool(
            _contract_page,
            request,
            identity,
            db,
            contract_id,
            status=exc.status,
            form=form,
            failed=move,
            **error_text(exc),
        )
    return redirect(f"/exchange/contracts/{contract_id}")


# One route per move (a catch-all ``/{move}`` would shadow the delivery pages' own posts).
@router.post("/exchange/contracts/{contract_id}/sign")
async def sign_form(request: Request, contract_id: str, identity: WebUser, db: DbDep) -> Response:
    return await _contract_form(request, contract_id, "sign", identity, db)


@router.post("/exchange/contracts/{contract_id}/confirm")
async def confirm_form(
    request: Request, contract_id: str, identity: WebUser, db: DbDep
) -> Response:
    return await _contract_form(request, contract_id, "confirm", identity, db)


@router.post("/exchange/contracts/{contract_id}/terminate")
async def terminate_form(
    request: Request, contract_id: str, identity: WebUser, db: DbDep
) -> Response:
    return await _contract_form(request, contract_id, "terminate", identity, db)


@router.post("/exchange/contracts/{contract_id}/dispute")
async def dispute_form(
    request: Request, contract_id: str, identity: WebUser, db: DbDep
) -> Response:
    return await _contract_form(request, contract_id, "dispute", identity, db)


@router.post("/exchange/contracts/{contract_id}/resolve")
async def resolve_form(
    request: Request, contract_id: str, identity: WebUser, db: DbDep
) -> Response:
    return await _contract_form(request, contract_id, "resolve", identity, db)
