"""Exchange pages — Delivery: the delivery panel of a contract, its tokens, and the delivery log.

* ``/exchange/deliveries/panel/{contract}`` — the panel the contract page includes
  (``exchange/delivery/_panel.html`` loads it with HTMX): the channels, for the buyer the forms
  that take a download link or an API pull token (the secret shown once, with a curl example),
  the tokens with their state and a revoke button, the sandbox note, and the contract's recent
  deliveries with their decisions and reasons. ``/exchange/deliveries/contracts/{contract}`` is
  the same panel as a page of its own (no JavaScript needed).
* ``POST …/contracts/{contract}/tokens`` and ``POST /exchange/deliveries/tokens/{id}/revoke``
  answer the panel again (HTMX) or the page.
* ``/exchange/deliveries`` — the log of every delivery the caller may read (as buyer, seller or
  broker; the exchange and regulators read all), filtered by contract, channel and decision.

Thin shells over ``delivery``; a refusal re-renders the panel with the reason in the person's
language.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from datafactor import context
from datafactor.db import Database, utcnow
from datafactor.errors import N_, DomainError
from datafactor.exchange import contracts, delivery
from datafactor.exchange.domain import CHANNEL_LABELS, CONTRACT_STATE_LABELS, Channel
from datafactor.identity import WebIdentity, counterparty_names
from datafactor.permissions import Permission
from datafactor.policy import load_policy_rules
from datafactor.web.deps import DbDep, SettingsDep, WebUser, check_csrf
from datafactor.web.forms import error_text, read_form, render

router = APIRouter(include_in_schema=False)
P = Permission
LOG_PAGE = 50
RECENT = 20
DECISIONS = ("allowed", "refused", "failed")
DECISION_LABELS = {"allowed": N_("Delivered"), "refused": N_("Refused"), "failed": N_("Failed")}
TOKEN_LABELS = {
    "live": N_("In use"),
    "expired": N_("Expired"),
    "used_up": N_("Used up"),
    "revoked": N_("Revoked"),
}


def _item(row: Any, contract: Any, principal: Any, locale: str) -> dict[str, Any]:
    """A log row for a page: the API's shape, its time as a moment to show in China time."""
    return {**delivery.delivery_dict(row, contract, principal, locale), "at": row.at}


def _purposes(locale: str) -> list[tuple[str, str]]:
    """The purposes a buyer may declare (the policy engine's taxonomy), in the reader's
    language."""
    lang = "zh" if locale.lower().startswith("zh") else "en"
    return [
        (code, str(label.get(lang) or code)) for code, label in load_policy_rules().purposes.items()
    ]


def _panel_context(
    db: Database, identity: WebIdentity, contract_id: str, **extra: Any
) -> dict[str, Any]:
    principal = identity.principal
    now = utcnow()
    locale = context.locale.get()
    with db.read() as s:
        contract = contracts.get_contract(s, principal, contract_id)
        tokens = delivery.list_tokens(s, principal, contract.id)
        rows, total = delivery.list_deliveries(
            s,
            principal,
            delivery.DeliveryQuery(contract_id=contract.id),
            limit=RECENT,
            offset=0,
        )
        log = [_item(d, c, principal, locale) for d, c in rows]
    buyer = principal.party_id == contract.buyer_id
    receiver = buyer and principal.can(P.EXCHANGE_DELIVERY_RECEIVE)
    active = (
        contract.state == "active"
        and contract.term_start <= delivery.china_day(now) <= contract.term_end
    )
    return {
        "contract": contract,
        "tokens": [(t, delivery.token_status(t, now)) for t in tokens],
        "log": log,
        "log_total": total,
        "buyer": buyer,
        "receiver": receiver,
        "active": active,
        "channels": list(contract.channels),
        "channel_labels": CHANNEL_LABELS,
        "contract_state_labels": CONTRACT_STATE_LABELS,
        "decision_labels": DECISION_LABELS,
        "token_labels": TOKEN_LABELS,
        "purposes": _purposes(locale),
        "purpose_labels": dict(_purposes(locale)),
        "rules": delivery.delivery_rules(),
        "issued": None,
        "form": {},
        **extra,
    }


def _panel(
    request: Request,
    identity: WebIdentity,
    db: Database,
    contract_id: str,
    *,
    status: int = 200,
    **extra: Any,
) -> Response:
    """The panel alone for HTMX (and the contract page's loader), else its page."""
    ctx = _panel_context(db, identity, contract_id, **extra)
    if request.headers.get("HX-Request"):
        # htmx swaps only 2xx answers: a refusal comes back 200 with the reason in the panel.
        return render(request, "exchange/delivery/panel.html", identity, **ctx)
    return render(request, "exchange/delivery/contract.html", identity, status=status, **ctx)


@router.get("/exchange/deliveries/panel/{contract_id}")
def panel(request: Request, contract_id: str, identity: WebUser, db: DbDep) -> Response:
    ctx = _panel_context(db, identity, contract_id)
    return render(request, "exchange/delivery/panel.html", identity, **ctx)


@router.get("/exchange/deliveries/contracts/{contract_id}")
def contract_delivery_page(
    request: Request, contract_id: str, identity: WebUser, db: DbDep
) -> Response:
    ctx = _panel_context(db, identity, contract_id)
    return render(request, "exchange/delivery/contract.html", identity, **ctx)


def _issue(
    db: Database,
    settings: Any,
    identity: WebIdentity,
    contract_id: str,
    channel: str,
    declared: dict[str, str],
) -> dict[str, Any]:
    now = utcnow()
    with db.write() as s:
        issued = delivery.issue_token(
            s,
            identity.principal,
            contract_id,
            channel=channel,
            declared=declared,
            access=delivery.data_access(settings),
            now=now,
        )
        return {
            "id": issued.token.id,
            "channel": issued.token.channel,
            "secret": issued.secret,
            "expires_at": issued.token.expires_at,
            "max_uses": issued.token.max_uses,
        }


@router.post("/exchange/deliveries/contracts/{contract_id}/tokens")
async def issue_form(
    request: Request, contract_id: str, identity: WebUser, db: DbDep, settings: SettingsDep
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    channel = form.get("channel", "")
    declared = {k: form.get(k, "") for k in delivery.DECLARED_KEYS}
    try:
        issued = await run_in_threadpool(
            _issue, db, settings, identity, contract_id, channel, declared
        )
    except DomainError as exc:
        if exc.status == 404:
            raise
        # Shown inside the panel (the page's own alert would repeat it).
        details: dict[str, Any] = {"panel_error": error_text(exc)["error"]}
        return _panel(
            request,
            identity,
            db,
            contract_id,
            status=exc.status,
            form={**form, "failed": channel},
            **details,
        )
    base = str(request.base_url).rstrip("/")
    if issued["channel"] == Channel.DOWNLOAD.value:
        issued["url"] = f"/api/v1/deliveries/download/{issued['secret']}"
        issued["parquet_url"] = issued["url"] + "?format=parquet"
    else:
        issued["url"] = f"{base}/api/v1/deliveries/pull"
        issued["curl"] = (
            f'curl -H "Authorization: Bearer {issued["secret"]}" '
            f'"{base}/api/v1/deliveries/pull?limit=100&offset=0"'
        )
    response = _panel(request, identity, db, contract_id, status=201, issued=issued)
    response.headers["Cache-Control"] = "no-store"  # the secret is on it, once
    return response


def _revoke(db: Database, identity: WebIdentity, token_id: str) -> str:
    with db.write() as s:
        token = delivery.revoke_token(s, identity.principal, token_id, now=utcnow())
        return token.contract_id


@router.post("/exchange/deliveries/tokens/{token_id}/revoke")
async def revoke_form(request: Request, token_id: str, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    contract_id = await run_in_threadpool(_revoke, db, identity, token_id)
    return _panel(request, identity, db, contract_id)


@router.get("/exchange/deliveries")
def deliveries_page(
    request: Request,
    identity: WebUser,
    db: DbDep,
    contract: Annotated[str | None, Query(max_length=36)] = None,
    channel: Annotated[str | None, Query(max_length=16)] = None,
    decision: Annotated[str | None, Query(max_length=16)] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    principal = identity.principal
    locale = context.locale.get()
    channel = channel if channel in CHANNEL_LABELS else None
    decision = decision if decision in DECISIONS else None
    query = delivery.DeliveryQuery(contract_id=contract or None, channel=channel, decision=decision)
    with db.read() as s:
        rows, total = delivery.list_deliveries(
            s, principal, query, limit=LOG_PAGE, offset=(page - 1) * LOG_PAGE
        )
        parties = {p for _, c in rows for p in contracts.parties(c)}
        names = counterparty_names(s, principal, parties)
        items = [
            (
                _item(d, c, principal, locale),
                c,
                contracts.roles_of(c, principal.party_id),
            )
            for d, c in rows
        ]
    filters = "".join(
        f"&{k}={v}"
        for k, v in (("contract", contract), ("channel", channel), ("decision", decision))
        if v
    )
    return render(
        request,
        "exchange/delivery/log.html",
        identity,
        items=items,
        total=total,
        names=names,
        contract_id=contract or "",
        channel=channel,
        decision=decision,
        decisions=DECISIONS,
        decision_labels=DECISION_LABELS,
        channel_labels=CHANNEL_LABELS,
        page=page,
        pages=max(1, -(-total // LOG_PAGE)),
        filters=filters,
        everyone=principal.can(P.EXCHANGE_CONTRACT_READ_ALL),
    )
