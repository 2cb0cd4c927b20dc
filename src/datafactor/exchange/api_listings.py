"""Exchange API — listings and their review, under ``/api/v1/listings``.

``GET /listings`` is stable for integrators: a page ``{"items": [...], "total": n, "limit",
"offset"}`` whose items carry at least ``id``, ``title``, ``price_fen``, ``remaining_quantity``
(null when unlimited) and ``status`` (the listing's state), filtered by ``q`` (Chinese full-text
search), kind, industry, region, price model, channel, placement / zone and a price range, over
the listings the caller may see. One listing (``GET /listings/{id}`` and every write answering
one) carries ``dispute``: null, or the registry's open title dispute on its right today
(``rule``, ``disputes``, ``message``) — trading is refused with EXC-LST-DISPUTE until the
registry decides it, and this says so before anyone tries (``listings.open_dispute``). The write
routes are the use cases of ``listings``: create and change a draft, run the automatic checks,
submit with the signed declaration, assess (a compliance assessor), decide (the exchange
operator), withdraw or delist (the seller). Thin entry points: each opens the unit of work, calls
the use case, and answers JSON or problem+json naming the rule that refused; a submission
refused by the automatic checks lists every failing check.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from sqlalchemy.orm import Session

from datafactor import context
from datafactor.db import today_cn, utcnow
from datafactor.exchange import listings
from datafactor.exchange.keys import party_keys
from datafactor.exchange.models import ExchangeListing, ExchangeListingEvent, ExchangeListingReview
from datafactor.permissions import Permission
from datafactor.policy import parse_policy
from datafactor.policy.render import describe
from datafactor.web.deps import ApiPrincipal, DbDep, PagingDep, SettingsDep
from datafactor.web.i18n import gettext
from datafactor.web.problems import domain_error_text, problem

router = APIRouter(tags=["exchange-listings"])
P = Permission


# --- shapes -----------------------------------------------------------------------------------


class SharePublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    party_id: str = Field(max_length=36)
    stage: Literal["collection", "processing", "circulation", "application"]
    mode: Literal["dividend", "commission"]
    bp: StrictInt | None = Field(None, description="Dividend: basis points of the net (1–10000).")
    fen: StrictInt | None = Field(None, description="Commission: a fixed amount in fen.")

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class ListingFields(BaseModel):
    """What a seller fills in (every field optional when changing a draft)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, max_length=200)
    title_en: str | None = Field(None, max_length=200)
    summary: str | None = Field(None, max_length=4000)
    summary_en: str | None = Field(None, max_length=4000)
    industry: str | None = Field(None, max_length=64)
    region: str | None = Field(None, max_length=16)
    tags: list[str] | None = Field(None, max_length=64)
    price_model: Literal["one_off", "subscription", "metered", "free"] | None = None
    price_fen: StrictInt | None = Field(
        None, description="The price per unit (licence, period, call) in whole fen; 0 when free."
    )
    period: Literal["month", "quarter", "year"] | None = None
    channels: list[str] | None = Field(None, max_length=8)
    term_days: StrictInt | None = None
    contract_policy: dict[str, Any] | None = Field(
        None, description="ODRL policy (JSON-LD); absent: the default built from the right."
    )
    audience: Literal["public", "verified", "parties"] | None = None
    audience_parties: list[str] | None = Field(None, max_length=200)
    placement: Literal["mall", "zone"] | None = None
    zone: str | None = Field(None, max_length=64)
    quantity: StrictInt | None = Field(None, description="Limited licence count; null: unlimited.")
    revenue_sharing: list[SharePublic] | None = Field(None, max_length=64)
    cross_border: bool | None = None
    broker_id: str | None = Field(None, max_length=36)


class ListingCreate(ListingFields):
    asset_id: str = Field(max_length=36, description="The registered product, service or tool.")
    title: str = Field(max_length=200)


class ListingUpdate(ListingFields):
    """Fields to change; ``quantity``, ``zone`` and ``broker_id`` are cleared with null."""


class SubmitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    confirm: bool = Field(
        False, description="True: the administrator has read and confirms the declaration."
    )
    consent_basis: str = Field(
        "", max_length=2000, description="How individuals consented, if personal data is in it."
    )


class ChecksBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    consent_basis: str = Field("", max_length=2000)


class ChecklistItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(max_length=64)
    outcome: Literal["pass", "fail", "na"]
    note: str = Field("", max_length=2000)


class AssessBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checklist: list[ChecklistItem] = Field(max_length=64)
    opinion: str = Field(max_length=2000)
    confirm: bool = False


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["approve", "return", "refuse", "suspend", "resume", "delist"]
    reason: str = Field("", max_length=2000)
    zone_approved: bool = Field(True, description="approve: place it in the zone it asked for.")


class EndBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["withdraw", "delist"]
    reason: str = Field(max_length=2000)


class ListingItem(BaseModel):
    """One listing in a page (the first five fields are stable for integrators)."""

    id: str
    title: str
    price_fen: int
    remaining_quantity: int | None
    status: str = Field(description="The listing's state (published, suspended, draft, …).")
    number: str
    title_en: str
    summary: str
    kind: str
    industry: str
    region: str
    tags: list[str]
    price_model: str
    period: str | None
    channels: list[str]
    term_days: int
    total_quantity: int | None
    placement: str
    zone: str | None
    zone_approved: bool
    seller_id: str
    seller_name: str
    broker_id: str | None
    certificate_number: str
    cross_border: bool
    published_at: str | None


class ListingPage(BaseModel):
    items: list[ListingItem]
    total: int
    limit: int
    offset: int


class DisputePublic(BaseModel):
    """An open title dispute on the listing's right today (EXC-LST-DISPUTE): orders, bids and
    agreements are refused until the registry decides it."""

    open: bool = Field(True, description="Always true: the field is null when there is none.")
    rule: str = Field(description="The rule that pauses trading (EXC-LST-DISPUTE).")
    disputes: list[str] = Field(
        description="The registry's objection registrations and objections that make it."
    )
    message: str = Field(description="What the buyer is told, in the caller's language.")


class ListingDetail(ListingItem):
    summary_en: str
    asset_id: str
    right_id: str
    data_class: str
    grade: str | None
    contract_policy: dict[str, Any]
    policy_text: list[str] = Field(description="The contract policy in plain language.")
    access: dict[str, Any]
    revenue_sharing: list[dict[str, Any]]
    declared: bool
    declared_at: str | None
    reason: str
    rules: list[str]
    verify_url: str
    dispute: DisputePublic | None = Field(
        None,
        description="The open title dispute on the listing's right today (trading is paused "
        "until the registry decides it); null when there is none.",
    )


class FindingPublic(BaseModel):
    check: str
    rule: str
    outcome: str
    detail: str


class ReviewPublic(BaseModel):
    id: str
    findings: list[FindingPublic]
    checklist: list[dict[str, Any]]
    opinion: str
    assessor_party_id: str | None
    signature: str | None
    signing_key: str | None
    signed_at: str | None
    record: dict[str, Any] | None
    decision: str | None
    decided_at: str | None


class EventPublic(BaseModel):
    action: str
    source: str | None
    target: str
    actor_name: str
    actor_party_id: str | None
    reason: str
    rules: list[str]
    at: str


def _finding(item: dict[str, Any]) -> FindingPublic:
    return FindingPublic(
        check=item["check"],
        rule=item["rule"],
        outcome=item["outcome"],
        detail=gettext(item["message"], **item.get("params", {})),
    )


def item_of(row: ExchangeListing, names: dict[str, str]) -> ListingItem:
    return ListingItem(**listings.listing_item(row, names))


def policy_text(row: ExchangeListing, locale: str) -> list[str]:
    """The contract policy in plain language, the product named by its title."""
    try:
        document = dict(row.contract_policy)
        policy = parse_policy(document)
    except Exception:  # a stored policy always parsed; never fail a page on it
        return []
    return [s.replace(row.asset_id, f"“{row.title}”") for s in describe(policy, locale)]


def dispute_of(found: listings.TitleDispute | None) -> DisputePublic | None:
    """The open title dispute as the API shows it (the notice of the listing page)."""
    if found is None:
        return None
    return DisputePublic(
        rule=found.rule,
        disputes=list(found.disputes),
        message=gettext(listings.MSG_DISPUTE_NOTICE, **found.params),
    )


def detail_of(
    row: ExchangeListing,
    names: dict[str, str],
    locale: str,
    *,
    full: bool = True,
    dispute: listings.TitleDispute | None = None,
) -> ListingDetail:
    """A listing in full; for a buyer (``full`` False) without the named audience and the
    revenue-sharing agreement, which are the seller's business."""
    base = listings.listing_item(row, names)
    return ListingDetail(
        **base,
        summary_en=row.summary_en,
        asset_id=row.asset_id,
        right_id=row.right_id,
        data_class=row.data_class,
        grade=row.grade,
        contract_policy=row.contract_policy,
        policy_text=policy_text(row, locale),
        access=row.access if full else {"audience": row.access.get("audience")},
        revenue_sharing=list(row.revenue_sharing or []) if full else [],
        declared=row.declaration_signature is not None,
        declared_at=row.declared_at.isoformat() if row.declared_at else None,
        reason=row.reason,
        rules=list(row.rules or []),
        verify_url=f"/verify/{row.certificate_number}",
        dispute=dispute_of(dispute),
    )


def _detail(s: Session, row: ExchangeListing, *, full: bool = True) -> ListingDetail:
    """``detail_of`` with the seller's name and the registry's open title dispute today (the
    same ``listings.open_dispute`` a trade is refused on)."""
    return detail_of(
        row,
        listings.seller_names(s, [row]),
        _locale(),
        full=full,
        dispute=listings.open_dispute(s, row, today_cn()),
    )


def _locale() -> str:
    return context.locale.get()


def _checks_failed(request: Request, exc: listings.ListingChecksFailed) -> JSONResponse:
    findings = [_finding(f.as_dict()).model_dump() for f in exc.findings]
    return problem(
        request,
        exc.status,
        detail=domain_error_text(exc),
        code=exc.code,
        title=gettext(exc.title),
        field=exc.field,
        rules=sorted({f["rule"] for f in findings if f["outcome"] == "fail"}),
        findings=findings,
    )


def _draft(body: ListingFields, base: listings.ListingDraft) -> listings.ListingDraft:
    given = body.model_dump(exclude_unset=True)
    values: dict[str, Any] = {}
    for name, value in given.items():
        if name in ("tags", "channels", "audience_parties"):
            values[name] = tuple(value or ())
        elif name == "revenue_sharing":
            values[name] = tuple(
                s.as_dict() for s in (getattr(body, "revenue_sharing", None) or [])
            )
        elif name == "price_fen":
            values[name] = 0 if value is None else value
        elif value is None and name not in ("quantity", "zone", "broker_id", "period"):
            continue
        else:
            values[name] = value
    fields = {f.name for f in dataclasses.fields(listings.ListingDraft)}
    return dataclasses.replace(base, **{k: v for k, v in values.items() if k in fields})


# --- routes -----------------------------------------------------------------------------------


@router.get("/listings", response_model=ListingPage, summary="Browse the listings")
def list_listings(
    principal: ApiPrincipal,
    db: DbDep,
    page: PagingDep,
    q: Annotated[str, Query(max_length=100, description="Full-text search (Chinese).")] = "",
    kind: Annotated[Literal["product", "service", "tool"] | None, Query()] = None,
    industry: Annotated[str | None, Query(max_length=64)] = None,
    region: Annotated[str | None, Query(max_length=16)] = None,
    price_model: Annotated[
        Literal["one_off", "subscription", "metered", "free"] | None, Query()
    ] = None,
    channel: Annotated[Literal["download", "api", "sandbox"] | None, Query()] = None,
    placement: Annotated[Literal["mall", "zone"] | None, Query()] = None,
    zone: Annotated[str | None, Query(max_length=64)] = None,
    price_min_fen: Annotated[int | None, Query(ge=0)] = None,
    price_max_fen: Annotated[int | None, Query(ge=0)] = None,
    state: Annotated[
        Literal[
            "draft",
            "submitted",
            "assessed",
            "returned",
            "published",
            "refused",
            "suspended",
            "delisted",
        ]
        | None,
        Query(description="One state (default: published, and your own in every state)."),
    ] = None,
    mine: Annotated[
        bool, Query(description="Only my party's listings (seller or broker).")
    ] = False,
) -> ListingPage:
    listings.require_reader(principal)
    query = listings.ListingQuery(
        q=q,
        kind=kind,
        industry=industry,
        region=region,
        price_model=price_model,
        channel=channel,
        placement=placement,
        zone=zone,
        price_min_fen=price_min_fen,
        price_max_fen=price_max_fen,
        state=state,
        mine=mine,
    )
    with db.read() as s:
        rows, total = listings.list_listings(
            s, principal, query, limit=page.limit, offset=page.offset
        )
        names = listings.seller_names(s, rows)
    return ListingPage(
        items=[item_of(r, names) for r in rows], total=total, limit=page.limit, offset=page.offset
    )


@router.get("/listings/declaration", summary="The declaration and commitment a seller signs")
def declaration(principal: ApiPrincipal) -> dict[str, Any]:
    return dict(listings.declaration_text())


@router.get("/listings/checklist", summary="The compliance assessor's checklist")
def checklist(principal: ApiPrincipal) -> dict[str, Any]:
    return {"items": [dict(i) for i in listings.checklist()]}


@router.post("/listings", response_model=ListingDetail, status_code=201, summary="Draft a listing")
def create_listing(body: ListingCreate, principal: ApiPrincipal, db: DbDep) -> ListingDetail:
    base = listings.ListingDraft(asset_id=body.asset_id, title=body.title)
    draft = _draft(body, base)
    with db.write() as s:
        row = listings.create_listing(s, principal, draft, on=today_cn(), now=utcnow())
        return _detail(s, row)


@router.get("/listings/{listing_id}", response_model=ListingDetail, summary="One listing")
def get_listing(listing_id: str, principal: ApiPrincipal, db: DbDep) -> ListingDetail:
    with db.read() as s:
        row = listings.get_listing(s, principal, listing_id)
        full = listings.may_see_review(s, principal, row)
        return _detail(s, row, full=full)


@router.patch(
    "/listings/{listing_id}", response_model=ListingDetail, summary="Change a draft listing"
)
def update_listing(
    listing_id: str, body: ListingUpdate, principal: ApiPrincipal, db: DbDep
) -> ListingDetail:
    with db.write() as s:
        # Locked before the body is merged into the current values: a concurrent change of
        # other fields is read, not overwritten with what was there before it.
        current = listings.prepared_listing(s, principal, listing_id, lock=True)
        draft = _draft(body, listings.ListingDraft.of(current))
        row = listings.update_listing(s, principal, listing_id, draft, on=today_cn(), now=utcnow())
        return _detail(s, row)


@router.post(
    "/listings/{listing_id}/checks",
    response_model=list[FindingPublic],
    summary="Run the automatic checks now (nothing is written)",
)
def run_checks(
    listing_id: str, body: ChecksBody, principal: ApiPrincipal, db: DbDep
) -> list[FindingPublic]:
    with db.read() as s:
        found = listings.preflight(
            s, principal, listing_id, on=today_cn(), consent_basis=body.consent_basis
        )
    return [_finding(f.as_dict()) for f in found]


@router.post(
    "/listings/{listing_id}/submit",
    response_model=ListingDetail,
    summary="Sign the declaration and submit for review (the seller's administrator)",
)
def submit_listing(
    listing_id: str,
    body: SubmitBody,
    request: Request,
    principal: ApiPrincipal,
    db: DbDep,
    settings: SettingsDep,
) -> Response | ListingDetail:
    try:
        with db.write() as s:
            row = listings.submit_listing(
                s,
                principal,
                listing_id,
                keys=party_keys(settings),
                confirm=body.confirm,
                consent_basis=body.consent_basis,
                on=today_cn(),
                now=utcnow(),
            )
            return _detail(s, row)
    except listings.ListingChecksFailed as exc:
        return _checks_failed(request, exc)


@router.post(
    "/listings/{listing_id}/assess",
    response_model=ListingDetail,
    summary="Sign the compliance assessment (a compliance assessor)",
)
def assess_listing(
    listing_id: str, body: AssessBody, principal: ApiPrincipal, db: DbDep, settings: SettingsDep
) -> ListingDetail:
    with db.write() as s:
        row = listings.assess_listing(
            s,
            principal,
            listing_id,
            items=[i.model_dump() for i in body.checklist],
            opinion=body.opinion,
            confirm=body.confirm,
            keys=party_keys(settings),
            now=utcnow(),
        )
        return _detail(s, row)


@router.post(
    "/listings/{listing_id}/decision",
    response_model=ListingDetail,
    summary="The exchange's decision: approve, return, refuse, suspend, resume, delist",
)
def decide_listing(
    listing_id: str, body: DecisionBody, request: Request, principal: ApiPrincipal, db: DbDep
) -> Response | ListingDetail:
    try:
        with db.write() as s:
            row = listings.decide_listing(
                s,
                principal,
                listing_id,
                body.action,
                reason=body.reason,
                zone_approved=body.zone_approved,
                on=today_cn(),
                now=utcnow(),
            )
            return _detail(s, row)
    except listings.ListingChecksFailed as exc:
        return _checks_failed(request, exc)


@router.post(
    "/listings/{listing_id}/withdraw",
    response_model=ListingDetail,
    summary="The seller withdraws its draft or delists its listing",
)
def end_listing(
    listing_id: str, body: EndBody, principal: ApiPrincipal, db: DbDep
) -> ListingDetail:
    with db.write() as s:
        row = listings.end_by_seller(
            s, principal, listing_id, body.action, body.reason, now=utcnow()
        )
        return _detail(s, row)


@router.get(
    "/listings/{listing_id}/reviews",
    response_model=list[ReviewPublic],
    summary="A listing's reviews: findings, the signed assessment, the decision",
)
def listing_reviews(listing_id: str, principal: ApiPrincipal, db: DbDep) -> list[ReviewPublic]:
    with db.read() as s:
        rows = listings.listing_reviews(s, principal, listing_id)
        return [_review(r) for r in rows]


def _review(r: ExchangeListingReview) -> ReviewPublic:
    return ReviewPublic(
        id=r.id,
        findings=[_finding(f) for f in r.findings or []],
        checklist=list(r.checklist or []),
        opinion=r.opinion,
        assessor_party_id=r.assessor_party_id,
        signature=r.signature,
        signing_key=r.signing_key,
        signed_at=r.signed_at.isoformat() if r.signed_at else None,
        record=r.record,
        decision=r.decision,
        decided_at=r.decided_at.isoformat() if r.decided_at else None,
    )


@router.get(
    "/listings/{listing_id}/events",
    response_model=list[EventPublic],
    summary="A listing's history (seller, broker, reviewers)",
)
def listing_events(listing_id: str, principal: ApiPrincipal, db: DbDep) -> list[EventPublic]:
    with db.read() as s:
        return [_event(e) for e in listings.listing_events(s, principal, listing_id)]


def _event(e: ExchangeListingEvent) -> EventPublic:
    return EventPublic(
        action=e.action,
        source=e.source,
        target=e.target,
        actor_name=e.actor_name,
        actor_party_id=e.actor_party_id,
        reason=e.reason,
        rules=list(e.rules or []),
        at=e.at.isoformat(),
    )
