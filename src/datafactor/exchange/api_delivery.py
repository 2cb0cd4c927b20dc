"""Exchange API — Delivery, under ``/api/v1/deliveries``: tokens, download, API pull, the log.

* ``POST /deliveries/tokens`` — the buyer takes a download or API pull token for an active
  contract, declaring its purpose (and place, industry); the secret is in this answer only.
  ``GET /deliveries/tokens?contract=ID``, ``GET`` / ``DELETE /deliveries/tokens/{id}`` list,
  read and revoke them.
* ``GET /deliveries/download/{token}?format=csv|parquet`` — the file, fingerprinted for this
  buyer. The token is in the path so a link works in a browser, but it works only for a user of
  the buyer's party: logged in (the session cookie) or with an API token (``Authorization:
  Bearer``). Another party's user gets 404 — and the buyer's log shows the attempt.
* ``GET /deliveries/pull?limit=&offset=&fields=a,b`` with ``Authorization: Bearer <pull token>``
  (the contract's pull token, not a login) — JSON rows of the fields the policy permits;
  rate-limited per token (429 with ``Retry-After``).
* ``GET /deliveries?contract=&channel=&decision=`` and ``GET /deliveries/{id}`` — the log.

Every refusal is problem+json naming the rule (``rule``), every rule applied (``rules``) and the
reasons in the request's language (``reasons``); a refused delivery is recorded before it is
answered. Thin entry points: each opens the unit of work and calls ``delivery``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import pyarrow as pa
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from datafactor import context
from datafactor.db import Database, utcnow
from datafactor.errors import N_, DomainError, Unauthenticated
from datafactor.exchange import delivery
from datafactor.exchange.errors import ExchangeError, ExchangeStateConflict
from datafactor.exchange.models import ExchangeContract, ExchangeDelivery, ExchangeDeliveryToken
from datafactor.identity import authenticate_token, resolve_web_session
from datafactor.permissions import Principal
from datafactor.web.deps import SESSION_COOKIE, ApiPrincipal, DbDep, PagingDep, SettingsDep
from datafactor.web.i18n import gettext
from datafactor.web.problems import domain_error_text, problem

router = APIRouter(tags=["exchange-delivery"])

MSG_LOGIN: Final = N_(
    "Log in as a user of the contract's buyer, or send your API token in the header "
    "'Authorization: Bearer <token>', to use this download link."
)


# --- shapes -----------------------------------------------------------------------------------


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contract_id: str = Field(max_length=36)
    channel: Literal["download", "api", "sandbox"]
    purpose: str = Field(max_length=64, description="The purpose of use the buyer declares.")
    spatial: str | None = Field(None, max_length=64, description="Where the data is used.")
    industry: str | None = Field(None, max_length=64, description="GB/T 4754 industry code.")


class TokenPublic(BaseModel):
    id: str
    contract_id: str
    channel: str
    status: str
    declared: dict[str, str]
    max_uses: int | None
    uses: int
    expires_at: datetime
    revoked_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, token: ExchangeDeliveryToken, now: datetime) -> TokenPublic:
        return cls(
            id=token.id,
            contract_id=token.contract_id,
            channel=token.channel,
            status=delivery.token_status(token, now),
            declared={str(k): str(v) for k, v in (token.declared or {}).items()},
            max_uses=token.max_uses,
            uses=token.uses,
            expires_at=token.expires_at,
            revoked_at=token.revoked_at,
            created_at=token.created_at,
        )


class TokenIssued(TokenPublic):
    secret: str = Field(description="Shown once: keep it; only its SHA-256 is stored.")
    url: str = Field(description="Where to use it (the download link, or the pull endpoint).")
    example: str = Field(description="A curl command that uses it.")


class TokenList(BaseModel):
    items: list[TokenPublic]
    total: int


class DeliveryPublic(BaseModel):
    id: str
    contract_id: str
    contract_number: str
    buyer_id: str
    channel: str
    token_id: str | None
    decision: str
    reasons: list[str]
    rules: list[str]
    fields: list[str]
    format: str | None
    mark: str | None = Field(description="The copy's fingerprint mark (buyer and exchange only).")
    rows: int | None
    bytes: int | None
    content_hash: str | None
    at: datetime

    @classmethod
    def of(
        cls, row: ExchangeDelivery, contract: ExchangeContract, principal: Principal
    ) -> DeliveryPublic:
        return cls(**delivery.delivery_dict(row, contract, principal, context.locale.get()))


class DeliveryPage(BaseModel):
    items: list[DeliveryPublic]
    total: int
    limit: int
    offset: int


# --- helpers ----------------------------------------------------------------------------------


def refusal_response(request: Request, refusal: delivery.Refusal, **extra: Any) -> JSONResponse:
    """A refused delivery as problem+json: the message, the rule, every rule applied and the
    reasons in the request's language (``Retry-After`` when rate-limited)."""
    locale = context.locale.get()
    params = dict(refusal.params)
    if locale.lower().startswith("zh") and "reasons_zh" in params:
        params["reasons"] = params["reasons_zh"]
    params.pop("reasons_zh", None)
    response = problem(
        request,
        refusal.status,
        detail=gettext(refusal.message, **params),
        code=refusal.code,
        rule=refusal.rule,
        rules=list(refusal.rules),
        reasons=[delivery.reason_text(r, locale) for r in refusal.reasons],
        **extra,
    )
    if refusal.retry_after is not None:
        response.headers["Retry-After"] = str(refusal.retry_after)
    return response


def exchange_problem(request: Request, exc: ExchangeError) -> JSONResponse:
    """An exchange refusal as problem+json with the rule that refused (``rule``)."""
    extra: dict[str, Any] = {"rule": exc.rule, "rules": [exc.rule]}
    if exc.field:
        extra["field"] = exc.field
    return problem(
        request,
        exc.status,
        detail=domain_error_text(exc),
        code=exc.code,
        title=gettext(exc.title),
        **extra,
    )


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _issued(request: Request, issued: delivery.Issued, now: datetime) -> TokenIssued:
    token = issued.token
    base = _base_url(request)
    if token.channel == "download":
        url = f"{base}/api/v1/deliveries/download/{issued.secret}"
        example = f'curl -fOJ -H "Authorization: Bearer $DATAFACTOR_TOKEN" "{url}?format=csv"'
    else:
        url = f"{base}/api/v1/deliveries/pull"
        example = f'curl -H "Authorization: Bearer {issued.secret}" "{url}?limit=100&offset=0"'
    public = TokenPublic.of(token, now)
    return TokenIssued(**public.model_dump(), secret=issued.secret, url=url, example=example)


def _session_principal(db: Database, secret: str) -> Principal | None:
    with db.read() as s:
        identity = resolve_web_session(s, secret)
    return identity.principal if identity else None


async def _receiver(request: Request, db: Database) -> Principal | Response:
    """Who follows a download link: an API token's user, else the browser's logged-in user."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if header:
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthenticated(MSG_LOGIN, code="missing-token")
        return await authenticate_token(db, secret.strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        found = await run_in_threadpool(_session_principal, db, cookie)
        if found is not None:
            return found
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    raise Unauthenticated(MSG_LOGIN, code="missing-token")


# --- tokens -------------------------------------------------------------------------------------


@router.post(
    "/deliveries/tokens",
    response_model=TokenIssued,
    status_code=201,
    summary="Take a download or API pull token for an active contract (secret shown once)",
)
def create_token(
    body: TokenCreate, request: Request, principal: ApiPrincipal, db: DbDep, settings: SettingsDep
) -> TokenIssued | JSONResponse:
    now = utcnow()
    access = delivery.data_access(settings)
    declared = {"purpose": body.purpose, "spatial": body.spatial, "industry": body.industry}
    try:
        with db.write() as s:
            issued = delivery.issue_token(
                s,
                principal,
                body.contract_id,
                channel=body.channel,
                declared=declared,
                access=access,
                now=now,
            )
            return _issued(request, issued, now)
    except ExchangeError as exc:
        return exchange_problem(request, exc)


@router.get("/deliveries/tokens", response_model=TokenList, summary="A contract's tokens")
def tokens(
    request: Request,
    principal: ApiPrincipal,
    db: DbDep,
    contract: Annotated[str, Query(max_length=36, description="The contract's id.")],
) -> TokenList | JSONResponse:
    now = utcnow()
    try:
        with db.read() as s:
            rows = delivery.list_tokens(s, principal, contract)
            return TokenList(items=[TokenPublic.of(t, now) for t in rows], total=len(rows))
    except ExchangeError as exc:
        return exchange_problem(request, exc)


@router.get("/deliveries/tokens/{token_id}", response_model=TokenPublic, summary="One token")
def token(
    token_id: str, request: Request, principal: ApiPrincipal, db: DbDep
) -> TokenPublic | JSONResponse:
    try:
        with db.read() as s:
            return TokenPublic.of(delivery.get_token(s, principal, token_id), utcnow())
    except ExchangeError as exc:
        return exchange_problem(request, exc)


@router.delete(
    "/deliveries/tokens/{token_id}", response_model=TokenPublic, summary="Revoke a token at once"
)
def revoke(
    token_id: str, request: Request, principal: ApiPrincipal, db: DbDep
) -> TokenPublic | JSONResponse:
    now = utcnow()
    try:
        with db.write() as s:
            return TokenPublic.of(delivery.revoke_token(s, principal, token_id, now=now), now)
    except ExchangeError as exc:
        return exchange_problem(request, exc)


# --- download ---------------------------------------------------------------------------------


def _download(
    request: Request, db: Database, settings: Any, principal: Principal, secret: str, fmt: str
) -> Response:
    access = delivery.data_access(settings)
    with db.write() as s:
        attempt = delivery.begin_download(
            s, principal, secret, fmt=fmt, access=access, now=utcnow()
        )
    if attempt.refusal is not None:
        extra = {"delivery_id": attempt.delivery.id} if attempt.delivery else {}
        return refusal_response(request, attempt.refusal, **extra)
    assert attempt.delivery is not None
    delivery_id = attempt.delivery.id
    try:
        marked = delivery.plan_fingerprint(access, attempt)
    except (DomainError, pa.ArrowException, OSError) as exc:
        with db.write() as s:
            delivery.fail_delivery(s, delivery_id, str(exc), now=utcnow())
        raise ExchangeStateConflict(
            delivery.MSG_UNREADABLE,
            rule=delivery.rule_id("source"),
            number=attempt.contract_number,
            detail=str(exc),
        ) from exc
    with db.write() as s:
        delivery.store_fingerprint(s, delivery_id, marked.record())
    sent = delivery.Sent()

    def stream() -> Iterator[bytes]:
        yield from delivery.encode(access, attempt, marked, fmt, sent)
        with db.write() as s:
            delivery.finish_delivery(
                s,
                delivery_id,
                rows=sent.rows,
                size=sent.size,
                content_hash=sent.digest.hexdigest(),
                now=utcnow(),
            )

    media = "application/vnd.apache.parquet" if fmt == "parquet" else "text/csv; charset=utf-8"
    return StreamingResponse(
        stream(),
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="{delivery.file_name(attempt, fmt)}"',
            "Cache-Control": "no-store",
            "X-DataFactor-Delivery": delivery_id,
        },
    )


@router.get(
    "/deliveries/download/{token}",
    summary="Download the contract's data, fingerprinted for the buyer (a browser link works)",
    responses={200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}}},
)
async def download(
    token: str,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    format: Annotated[
        Literal["csv", "parquet"], Query(description="csv (default) or parquet.")
    ] = "csv",
) -> Response:
    found = await _receiver(request, db)
    if isinstance(found, Response):
        return found
    try:
        return await run_in_threadpool(_download, request, db, settings, found, token, format)
    except ExchangeError as exc:
        return exchange_problem(request, exc)


# --- API pull ---------------------------------------------------------------------------------


def _pull(
    request: Request,
    db: Database,
    settings: Any,
    limit: int | None,
    offset: int,
    fields: str | None,
    authorization: str | None,
) -> Response:
    scheme, _, secret = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated(
            delivery.MSG_NOT_PULL_TOKEN,
            code="invalid-pull-token",
            rule=delivery.rule_id("api_token"),
        )
    rows = delivery.page_limit(limit)
    requested = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
    access = delivery.data_access(settings)
    now = utcnow()
    with db.write() as s:
        attempt = delivery.begin_pull(
            s, secret.strip(), requested=requested, access=access, now=now
        )
    if attempt.refusal is not None:
        extra = {"delivery_id": attempt.delivery.id} if attempt.delivery else {}
        return refusal_response(request, attempt.refusal, **extra)
    assert attempt.delivery is not None
    assert attempt.source is not None
    delivery_id = attempt.delivery.id
    try:
        items, total = delivery.read_page(access, attempt.source, offset=offset, limit=rows)
    except (DomainError, pa.ArrowException, OSError) as exc:
        with db.write() as s:
            delivery.fail_delivery(s, delivery_id, str(exc), now=utcnow())
        raise ExchangeStateConflict(
            delivery.MSG_UNREADABLE,
            rule=delivery.rule_id("source"),
            number=attempt.contract_number,
            detail=str(exc),
        ) from exc
    body = {
        "contract_number": attempt.contract_number,
        "delivery_id": delivery_id,
        "fields": list(attempt.source.fields),
        "omitted_fields": list(attempt.omitted),
        "items": items,
        "limit": rows,
        "offset": offset,
        "total": total,
        "next_offset": offset + len(items) if len(items) == rows else None,
    }
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    with db.write() as s:
        delivery.finish_delivery(
            s,
            delivery_id,
            rows=len(items),
            size=len(raw),
            content_hash=hashlib.sha256(raw).hexdigest(),
            now=utcnow(),
        )
    return Response(raw, media_type="application/json", headers={"Cache-Control": "no-store"})


@router.get(
    "/deliveries/pull",
    summary="Pull rows of a contract's data with its API pull token (not a login)",
)
def pull(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    limit: Annotated[int | None, Query(ge=1, le=100_000, description="Rows per page.")] = None,
    offset: Annotated[int, Query(ge=0, le=10**12, description="Rows to skip.")] = 0,
    fields: Annotated[
        str | None, Query(max_length=4000, description="Comma-separated field names.")
    ] = None,
    authorization: Annotated[str | None, Header(description="Bearer <pull token>")] = None,
) -> Response:
    try:
        return _pull(request, db, settings, limit, offset, fields, authorization)
    except ExchangeError as exc:
        return exchange_problem(request, exc)


# --- the log ----------------------------------------------------------------------------------


@router.get("/deliveries", response_model=DeliveryPage, summary="The delivery log I may read")
def deliveries(
    request: Request,
    principal: ApiPrincipal,
    db: DbDep,
    page: PagingDep,
    contract: Annotated[str | None, Query(max_length=36)] = None,
    channel: Annotated[Literal["download", "api", "sandbox"] | None, Query()] = None,
    decision: Annotated[Literal["allowed", "refused", "failed"] | None, Query()] = None,
) -> DeliveryPage | JSONResponse:
    query = delivery.DeliveryQuery(contract_id=contract, channel=channel, decision=decision)
    try:
        with db.read() as s:
            rows, total = delivery.list_deliveries(
                s, principal, query, limit=page.limit, offset=page.offset
            )
            return DeliveryPage(
                items=[DeliveryPublic.of(d, c, principal) for d, c in rows],
                total=total,
                limit=page.limit,
                offset=page.offset,
            )
    except ExchangeError as exc:
        return exchange_problem(request, exc)


@router.get("/deliveries/{delivery_id}", response_model=DeliveryPublic, summary="One delivery")
def delivery_record(
    delivery_id: str, request: Request, principal: ApiPrincipal, db: DbDep
) -> DeliveryPublic | JSONResponse:
    try:
        with db.read() as s:
            row, contract = delivery.get_delivery(s, principal, delivery_id)
            return DeliveryPublic.of(row, contract, principal)
    except ExchangeError as exc:
        return exchange_problem(request, exc)
