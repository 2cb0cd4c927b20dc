"""Exchange pages — the mall, listing pages, the seller's listings, and the review queues.

``/exchange`` is the mall (数据商城): a search box (Chinese full-text), filters, result cards
with the price and the licences left, paging; anyone may browse what is public, a verified party
also what is for verified parties or named for it. ``/exchange/listings/{id}`` is the listing
page: description, price, channels, the contract policy in plain language, the seller, the
certificate (linked to the public verification page), the licences left and the place where the
buy button goes (``{% block buy %}`` of ``exchange/listings/detail.html``, a link to
``/exchange/listings/{id}/checkout``) — while the registry has the product's title in dispute
(``listings.open_dispute``) a notice says so there and the buy and negotiate buttons are disabled
(the trade itself is still refused, EXC-LST-DISPUTE). ``/exchange/sell`` is the seller's: its listings in every
state, the listing form (new and edit), submission with the declaration and commitment.
``/exchange/review`` holds the compliance assessor's and the operator's queues, the checklist
form and the decisions. Thin shells over ``listings``: a refused form re-renders with the reason
in the person's language and the field marked.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from datafactor import context
from datafactor.db import today_cn, utcnow
from datafactor.errors import DomainError
from datafactor.exchange import listings
from datafactor.exchange.domain import (
    CHANNEL_LABELS,
    LISTING_STATE_LABELS,
    PRICE_MODEL_LABELS,
    Channel,
    ListingState,
    PriceModel,
)
from datafactor.exchange.errors import ExchangeForbidden, ExchangeInvalid, ExchangeNotFound
from datafactor.exchange.keys import party_keys
from datafactor.exchange.models import ExchangeListing
from datafactor.identity import WebIdentity
from datafactor.permissions import Permission, Principal
from datafactor.policy import parse_policy
from datafactor.policy.render import describe
from datafactor.settlement import format_yuan
from datafactor.web.deps import DbDep, MaybeWebUser, SettingsDep, WebUser, check_csrf
from datafactor.web.forms import error_text, read_form, redirect, render
from datafactor.web.i18n import gettext

router = APIRouter(include_in_schema=False)
P = Permission
PAGE = 12
STATES = [s.value for s in ListingState]

LABELS: dict[str, Any] = {
    "state_labels": {s.value: label for s, label in LISTING_STATE_LABELS.items()},
    "price_model_labels": {m.value: label for m, label in PRICE_MODEL_LABELS.items()},
    "channel_labels": {c.value: label for c, label in CHANNEL_LABELS.items()},
    "period_labels": listings.PERIOD_LABELS,
    "audience_labels": listings.AUDIENCE_LABELS,
    "stage_labels": listings.STAGE_LABELS,
    "mode_labels": listings.MODE_LABELS,
    "outcome_labels": listings.OUTCOME_LABELS,
    "finding_labels": listings.FINDING_LABELS,
    "decision_labels": listings.DECISION_LABELS,
    "yuan": format_yuan,
    "msg": lambda message, params: gettext(message, **(params or {})),
    "channels_all": [c.value for c in Channel],
    "price_models": [m.value for m in PriceModel],
}


def _zh() -> bool:
    return context.locale.get().startswith("zh")


def _bilingual(entry: Any) -> str:
    if isinstance(entry, dict):
        return str(entry.get("zh") if _zh() else entry.get("en"))
    return str(entry)


def _rule_values() -> dict[str, Any]:
    data = listings.values()
    return {
        "industries": {k: _bilingual(v) for k, v in data["industries"].items()},
        "zones": {k: _bilingual(v) for k, v in data["zones"].items()},
        "periods": list(data["periods"]),
        "stages": list(data["sharing_stages"]),
    }


def _err(exc: DomainError) -> dict[str, Any]:
    found: dict[str, Any] = dict(error_text(exc))
    return found


def _principal(identity: WebIdentity | None) -> Principal | None:
    return identity.principal if identity else None


def dispute_notice(found: listings.TitleDispute | None) -> str | None:
    """The notice of an open title dispute in the reader's language (None without one): the
    listing, auction and negotiation pages show it where the buy, bid and accept forms are."""
    if found is None:
        return None
    return gettext(listings.MSG_DISPUTE_NOTICE, **found.params)


def _policy_text(row: ExchangeListing) -> list[str]:
    try:
        policy = parse_policy(dict(row.contract_policy))
    except Exception:  # a stored policy always parsed; a page never fails on it
        return []
    return [
        s.replace(row.asset_id, f"“{row.title}”") for s in describe(policy, context.locale.get())
    ]


# --- the mall ---------------------------------------------------------------------------------


def _fen(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return listings.price_from_yuan(text)
    except DomainError:
        return None


@router.get("/exchange")
def mall(
    request: Request,
    identity: MaybeWebUser,
    db: DbDep,
    q: Annotated[str, Query(max_length=100)] = "",
    kind: Annotated[str, Query(max_length=16)] = "",
    industry: Annotated[str, Query(max_length=64)] = "",
    region: Annotated[str, Query(max_length=16)] = "",
    price_model: Annotated[str, Query(max_length=16)] = "",
    channel: Annotated[str, Query(max_length=16)] = "",
    zone: Annotated[str, Query(max_length=64)] = "",
    price_min: Annotated[str, Query(max_length=20)] = "",
    price_max: Annotated[str, Query(max_length=20)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    viewer = _principal(identity)
    query = listings.ListingQuery(
        q=q,
        kind=kind or None,
        industry=industry or None,
        region=region or None,
        price_model=price_model or None,
        channel=channel or None,
        placement="zone" if zone else None,
        zone=zone or None,
        price_min_fen=_fen(price_min),
        price_max_fen=_fen(price_max),
        state=ListingState.PUBLISHED.value,
    )
    with db.read() as s:
        rows, total = listings.list_listings(s, viewer, query, limit=PAGE, offset=(page - 1) * PAGE)
        names = listings.seller_names(s, rows)
    filters = {
        "q": q,
        "kind": kind,
        "industry": industry,
        "region": region,
        "price_model": price_model,
        "channel": channel,
        "zone": zone,
        "price_min": price_min,
        "price_max": price_max,
    }
    query_string = urlencode({k: v for k, v in filters.items() if v})
    return render(
        request,
        "exchange/listings/mall.html",
        identity,
        listings=rows,
        names=names,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE)),
        filters=filters,
        query_string=query_string,
        can_sell=viewer is not None and viewer.can(P.EXCHANGE_LISTING_WRITE),
        can_review=viewer is not None
        and (viewer.can(P.EXCHANGE_LISTING_REVIEW) or viewer.can(P.EXCHANGE_LISTING_ASSESS)),
        **_rule_values(),
        **LABELS,
    )


@router.get("/exchange/listings/{listing_id}")
def listing_page(request: Request, listing_id: str, identity: MaybeWebUser, db: DbDep) -> Response:
    viewer = _principal(identity)
    with db.read() as s:
        row = listings.get_listing(s, viewer, listing_id)
        names = listings.seller_names(s, [row])
        events = listings.listing_events(s, viewer, listing_id)
        reviews = listings.listing_reviews(s, viewer, listing_id)
        # The named audience and the revenue-sharing agreement are the seller's business: shown
        # to those who see the review only.
        may_review = listings.may_see_review(s, viewer, row)
        # The registry's open title dispute, as a trade would be refused on it today: said here,
        # with the buy and negotiate buttons disabled, before anyone clicks.
        dispute = listings.open_dispute(s, row, today_cn())
        extra_names = (
            listings.party_names(
                s,
                [
                    *(row.access.get("parties") or []),
                    *(str(x.get("party_id", "")) for x in row.revenue_sharing or []),
                ],
            )
            if may_review
            else {}
        )
    own = viewer is not None and viewer.party_id == row.seller_id
    brokering = viewer is not None and viewer.party_id == row.broker_id
    return render(
        request,
        "exchange/listings/detail.html",
        identity,
        listing=row,
        names=names | extra_names,
        events=events,
        review=reviews[-1] if reviews else None,
        policy_text=_policy_text(row),
        own=own,
        brokering=brokering,
        editable=listings.may_prepare(viewer, row)
        and row.state in (ListingState.DRAFT.value, ListingState.RETURNED.value),
        may_review=may_review,
        buyable=row.state == ListingState.PUBLISHED.value and not own,
        dispute=dispute,
        dispute_notice=dispute_notice(dispute),
        **_rule_values(),
        **LABELS,
    )


# --- the seller's side ------------------------------------------------------------------------


def _seller(identity: WebIdentity) -> Principal:
    principal = identity.principal
    listings.require(principal, P.EXCHANGE_LISTING_WRITE, P.EXCHANGE_TRADE_BROKER)
    return principal


@router.get("/exchange/sell")
def sell_page(
    request: Request,
    identity: WebUser,
    db: DbDep,
    state: Annotated[str, Query(max_length=16)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    principal = _seller(identity)
    query = listings.ListingQuery(mine=True, state=state or None)
    with db.read() as s:
        rows, total = listings.list_listings(s, principal, query, limit=50, offset=(page - 1) * 50)
        names = listings.seller_names(s, rows)
    return render(
        request,
        "exchange/listings/sell.html",
        identity,
        listings=rows,
        names=names,
        total=total,
        page=page,
        pages=max(1, -(-total // 50)),
        state=state,
        states=STATES,
        can_create=principal.can(P.EXCHANGE_LISTING_WRITE),
        **LABELS,
    )


def _form_context(
    db: DbDep, principal: Principal, listing: ExchangeListing | None = None
) -> dict[str, Any]:
    with db.read() as s:
        products = listings.sellable_products(s, principal, on=today_cn())
        broker_list = listings.brokers(s)
    return {"products": products, "brokers": broker_list, "listing": listing}


def _values_of(listing: ExchangeListing) -> dict[str, Any]:
    """A listing as the form shows it."""
    access = listing.access or {}
    return {
        "asset_id": listing.asset_id,
        "title": listing.title,
        "title_en": listing.title_en,
        "summary": listing.summary,
        "summary_en": listing.summary_en,
        "industry": listing.industry,
        "region": listing.region,
        "tags": ", ".join(listing.tags or []),
        "price_model": listing.price_model,
        "price": format_yuan(listing.price_fen).lstrip("¥") if listing.price_fen else "",
        "period": listing.period or "",
        "channels": list(listing.channels or []),
        "term_days": str(listing.term_days),
        "contract_policy": json.dumps(listing.contract_policy, ensure_ascii=False, indent=2),
        "audience": access.get("audience", "verified"),
        "audience_parties": "\n".join(access.get("parties") or []),
        "placement": listing.placement,
        "zone": listing.zone or "",
        "quantity": "" if listing.total_quantity is None else str(listing.total_quantity),
        "revenue_sharing": share_lines(listing.revenue_sharing or []),
        "cross_border": listing.cross_border,
        "broker_id": listing.broker_id or "",
    }


def _form_values(form: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = dict(form)
    values["channels"] = [c for c in form.get("channels", "").split("\n") if c]
    values["cross_border"] = bool(form.get("cross_border"))
    return values


def share_lines(shares: list[dict[str, Any]]) -> str:
    """The revenue-sharing agreement as the form's lines: ``party stage mode amount`` (a dividend
    as a percentage, a commission in yuan)."""
    out = []
    for share in shares:
        if share.get("mode") == "dividend":
            amount = f"{Decimal(int(share['bp'])) / 100}%"
        else:
            amount = format_yuan(int(share["fen"])).lstrip("¥").replace(",", "")
        out.append(f"{share['party_id']} {share['stage']} {share['mode']} {amount}")
    return "\n".join(out)


_PERCENT = re.compile(r"[0-9]{1,5}(?:\.[0-9]{1,2})?%?")


def parse_share_lines(text: str) -> list[dict[str, Any]]:
    """The form's revenue-sharing lines: ``<party id> <stage> dividend <percent>%`` or
    ``<party id> <stage> commission <yuan>``."""
    rule = listings.rules().rule_id("listing_sharing")
    out: list[dict[str, Any]] = []
    for index, line in enumerate((text or "").splitlines(), start=1):
        parts = line.replace(",", " ").replace("，", " ").split()
        if not parts:
            continue
        if len(parts) != 4:
            raise ExchangeInvalid(
                listings.MSG_SHARE_SHAPE, rule=rule, field="revenue_sharing", index=index
            )
        party, stage, mode, amount = parts
        share: dict[str, Any] = {"party_id": party, "stage": stage, "mode": mode}
        try:
            if mode == "dividend":
                # A percentage with at most two decimals (0.01 % is one basis point); anything
                # else ("inf", "1e9", "12.345") is not a share.
                if not _PERCENT.fullmatch(amount):
                    raise ValueError(amount)
                share["bp"] = int(Decimal(amount.rstrip("%")) * 100)
            else:
                share["fen"] = listings.price_from_yuan(amount, field="revenue_sharing")
        except (InvalidOperation, ValueError):
            raise ExchangeInvalid(
                listings.MSG_SHARE_SHAPE, rule=rule, field="revenue_sharing", index=index
            ) from None
        out.append(share)
    return out


def _whole(text: str, field: str, message: str, rule_key: str, **params: Any) -> int | None:
    value = (text or "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise ExchangeInvalid(
            message, rule=listings.rules().rule_id(rule_key), field=field, **params
        )
    return int(value)


def draft_from_form(form: dict[str, str], asset_id: str) -> listings.ListingDraft:
    """The listing form read into a draft (yuan to fen, lines to lists, JSON to a policy)."""
    limits = listings.values()
    term = _whole(
        form.get("term_days", ""),
        "term_days",
        listings.MSG_TERM,
        "listing_price",
        min=limits["min_term_days"],
        max=limits["max_term_days"],
        value=form.get("term_days", ""),
    )
    quantity = _whole(
        form.get("quantity", ""),
        "quantity",
        listings.MSG_QUANTITY,
        "listing_quantity",
        max=limits["max_quantity"],
    )
    model = form.get("price_model", "one_off")
    return listings.ListingDraft(
        asset_id=asset_id,
        title=form.get("title", ""),
        title_en=form.get("title_en", ""),
        summary=form.get("summary", ""),
        summary_en=form.get("summary_en", ""),
        industry=form.get("industry", ""),
        region=form.get("region", "").strip(),
        tags=tuple(
            t.strip() for t in form.get("tags", "").replace("，", ",").split(",") if t.strip()
        ),
        price_model=model,
        price_fen=0
        if model == "free" and not form.get("price")
        else listings.price_from_yuan(form.get("price", "")),
        period=form.get("period") or None if model == "subscription" else None,
        channels=tuple(c for c in form.get("channels", "").split("\n") if c),
        term_days=365 if term is None else term,
        contract_policy=listings.parse_policy_text(form.get("contract_policy", "")),
        audience=form.get("audience", "verified"),
        audience_parties=tuple(
            p.strip() for p in form.get("audience_parties", "").split() if p.strip()
        ),
        placement=form.get("placement", "mall"),
        zone=form.get("zone") or None,
        quantity=quantity,
        revenue_sharing=tuple(parse_share_lines(form.get("revenue_sharing", ""))),
        cross_border=bool(form.get("cross_border")),
        broker_id=form.get("broker_id") or None,
    )


def _render_form(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    *,
    values: dict[str, Any],
    listing: ExchangeListing | None = None,
    status: int = 200,
    **extra: Any,
) -> Response:
    return render(
        request,
        "exchange/listings/form.html",
        identity,
        status=status,
        values=values,
        **_form_context(db, identity.principal, listing),
        **_rule_values(),
        **LABELS,
        **extra,
    )


@router.get("/exchange/sell/new")
def new_listing_form(
    request: Request,
    identity: WebUser,
    db: DbDep,
    asset: Annotated[str, Query(max_length=36)] = "",
) -> Response:
    listings.require(identity.principal, P.EXCHANGE_LISTING_WRITE)
    values: dict[str, Any] = {
        "asset_id": asset,
        "price_model": "one_off",
        "channels": ["api"],
        "term_days": "365",
        "audience": "verified",
        "placement": "mall",
    }
    return _render_form(request, identity, db, values=values)


@router.post("/exchange/sell/new")
async def create_listing_form(request: Request, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        draft = draft_from_form(form, form.get("asset_id", ""))
        with db.write() as s:
            row = listings.create_listing(s, identity.principal, draft, on=today_cn(), now=utcnow())
            listing_id = row.id
    except DomainError as exc:
        return _render_form(
            request,
            identity,
            db,
            values=_form_values(form),
            status=exc.status,
            **_err(exc),
        )
    return redirect(f"/exchange/listings/{listing_id}")


@router.get("/exchange/sell/{listing_id}/edit")
def edit_listing_form(request: Request, listing_id: str, identity: WebUser, db: DbDep) -> Response:
    principal = _seller(identity)
    with db.read() as s:
        row = listings.prepared_listing(s, principal, listing_id)
    return _render_form(request, identity, db, values=_values_of(row), listing=row)


@router.post("/exchange/sell/{listing_id}/edit")
async def update_listing_form(
    request: Request, listing_id: str, identity: WebUser, db: DbDep
) -> Response:
    principal = _seller(identity)
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    with db.read() as s:
        current = listings.prepared_listing(s, principal, listing_id)
        asset_id = current.asset_id
    try:
        draft = draft_from_form(form, asset_id)
        with db.write() as s:
            listings.update_listing(s, principal, listing_id, draft, on=today_cn(), now=utcnow())
    except DomainError as exc:
        return _render_form(
            request,
            identity,
            db,
            values=_form_values(form) | {"asset_id": asset_id},
            listing=current,
            status=exc.status,
            **_err(exc),
        )
    return redirect(f"/exchange/listings/{listing_id}")


def _submit_page(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    listing_id: str,
    *,
    consent_basis: str = "",
    findings: list[listings.Finding] | None = None,
    status: int = 200,
    **extra: Any,
) -> Response:
    principal = identity.principal
    with db.read() as s:
        row = listings.get_listing(s, principal, listing_id)
        if findings is None:
            findings = listings.preflight(
                s, principal, listing_id, on=today_cn(), consent_basis=consent_basis
            )
        # What the signature binds the party to, shown where it signs.
        names = listings.party_names(
            s,
            [
                *(row.access.get("parties") or []),
                *(str(x.get("party_id", "")) for x in row.revenue_sharing or []),
                row.broker_id or "",
            ],
        )
    text = listings.declaration_text()
    return render(
        request,
        "exchange/listings/submit.html",
        identity,
        status=status,
        listing=row,
        findings=findings,
        declaration_items=[_bilingual(i) for i in text["items"]],
        declaration_version=text["version"],
        consent_basis=consent_basis,
        names=names,
        can_sign=principal.party_id == row.seller_id and principal.can(P.EXCHANGE_CONTRACT_SIGN),
        **LABELS,
        **extra,
    )


@router.get("/exchange/sell/{listing_id}/submit")
def submit_form(request: Request, listing_id: str, identity: WebUser, db: DbDep) -> Response:
    _seller(identity)
    return _submit_page(request, identity, db, listing_id)


@router.post("/exchange/sell/{listing_id}/submit")
async def submit_listing_form(
    request: Request, listing_id: str, identity: WebUser, db: DbDep, settings: SettingsDep
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    consent = form.get("consent_basis", "")
    try:
        with db.write() as s:
            listings.submit_listing(
                s,
                identity.principal,
                listing_id,
                keys=party_keys(settings),
                confirm=form.get("confirm") == "yes",
                consent_basis=consent,
                on=today_cn(),
                now=utcnow(),
            )
    except listings.ListingChecksFailed as exc:
        return _submit_page(
            request,
            identity,
            db,
            listing_id,
            consent_basis=consent,
            findings=exc.findings,
            status=exc.status,
            **_err(exc),
        )
    except DomainError as exc:
        if exc.status == 404:
            raise
        return _submit_page(
            request,
            identity,
            db,
            listing_id,
            consent_basis=consent,
            status=exc.status,
            **_err(exc),
        )
    return redirect(f"/exchange/listings/{listing_id}")


@router.post("/exchange/sell/{listing_id}/withdraw")
async def withdraw_form(
    request: Request, listing_id: str, identity: WebUser, db: DbDep
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    action = form.get("action", "withdraw")
    with db.write() as s:
        listings.end_by_seller(
            s, identity.principal, listing_id, action, form.get("reason", ""), now=utcnow()
        )
    return redirect(f"/exchange/listings/{listing_id}")


# --- the review -------------------------------------------------------------------------------


def _reviewer(db: DbDep, identity: WebIdentity) -> tuple[bool, bool]:
    principal = identity.principal
    with db.read() as s:
        assessor = listings.is_assessor(s, principal)
    operator = listings.is_operator(principal)
    if not (assessor or operator):
        raise ExchangeForbidden(
            listings.MSG_NOT_ASSESSOR, rule=listings.rules().rule_id("listing_assessment")
        )
    return assessor, operator


@router.get("/exchange/review")
def review_queue(request: Request, identity: WebUser, db: DbDep) -> Response:
    assessor, operator = _reviewer(db, identity)
    with db.read() as s:
        queues = listings.review_queue(s, identity.principal)
        names = listings.seller_names(s, [r for rows in queues.values() for r in rows])
    return render(
        request,
        "exchange/listings/review_queue.html",
        identity,
        queues=queues,
        names=names,
        assessor=assessor,
        operator=operator,
        **LABELS,
    )


def _review_page(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    listing_id: str,
    *,
    status: int = 200,
    form: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    assessor, operator = _reviewer(db, identity)
    principal = identity.principal
    with db.read() as s:
        row = listings.get_listing(s, principal, listing_id)
        if not listings.may_see_review(s, principal, row):
            raise ExchangeNotFound(
                listings.MSG_NOT_FOUND, rule=listings.rules().rule_id("listing_visible")
            )
        reviews = listings.listing_reviews(s, principal, listing_id)
        events = listings.listing_events(s, principal, listing_id)
        names = listings.seller_names(s, [row])
        conflicted = listings.review_conflict(s, row, principal.party_id)
    decisions = [
        action
        for action, (allowed, _) in listings.DECISIONS.items()
        if row.state in {a.value for a in allowed}
    ]
    checklist = [
        {**dict(i), "label": _bilingual(i), "na": bool(i.get("na"))} for i in listings.checklist()
    ]
    return render(
        request,
        "exchange/listings/review.html",
        identity,
        status=status,
        listing=row,
        review=reviews[-1] if reviews else None,
        events=events,
        names=names,
        policy_text=_policy_text(row),
        checklist=checklist,
        may_assess=assessor and row.state == ListingState.SUBMITTED.value and not conflicted,
        decisions=[d for d in decisions if not (conflicted and d in listings.CONFLICTED_DECISIONS)]
        if operator
        else [],
        review_conflict=conflicted and operator,
        form=form or {},
        **_rule_values(),
        **LABELS,
        **extra,
    )


@router.get("/exchange/review/{listing_id}")
def review_page(request: Request, listing_id: str, identity: WebUser, db: DbDep) -> Response:
    return _review_page(request, identity, db, listing_id)


@router.post("/exchange/review/{listing_id}/assess")
async def assess_form(
    request: Request, listing_id: str, identity: WebUser, db: DbDep, settings: SettingsDep
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    items = [
        {
            "id": str(i["id"]),
            "outcome": form.get(f"outcome_{i['id']}", ""),
            "note": form.get(f"note_{i['id']}", ""),
        }
        for i in listings.checklist()
    ]
    try:
        with db.write() as s:
            listings.assess_listing(
                s,
                identity.principal,
                listing_id,
                items=items,
                opinion=form.get("opinion", ""),
                confirm=form.get("confirm") == "yes",
                keys=party_keys(settings),
                now=utcnow(),
            )
    except DomainError as exc:
        if exc.status == 404:
            raise
        return _review_page(
            request, identity, db, listing_id, status=exc.status, form=form, **_err(exc)
        )
    return redirect(f"/exchange/review/{listing_id}")


@router.post("/exchange/review/{listing_id}/decision")
async def decision_form(
    request: Request, listing_id: str, identity: WebUser, db: DbDep
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        with db.write() as s:
            listings.decide_listing(
                s,
                identity.principal,
                listing_id,
                form.get("action", ""),
                reason=form.get("reason", ""),
                zone_approved=form.get("zone_approved", "yes") == "yes",
                on=today_cn(),
                now=utcnow(),
            )
    except DomainError as exc:
        if exc.status == 404:
            raise
        findings = exc.findings if isinstance(exc, listings.ListingChecksFailed) else None
        return _review_page(
            request,
            identity,
            db,
            listing_id,
            status=exc.status,
            form=form,
            failed_findings=findings,
            **_err(exc),
        )
    return redirect(f"/exchange/review/{listing_id}")
