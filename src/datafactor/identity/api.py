"""JSON routes of the identity domain under ``/api/v1``: parse, call the service, answer."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from datafactor.db import today_cn, utcnow
from datafactor.identity import services
from datafactor.identity.domain import PartyApplication, PartyKind, PartyStatus
from datafactor.identity.schemas import (
    LoginRequest,
    LoginTokenPublic,
    Page,
    PartyApply,
    PartyPublic,
    PartyReview,
    PartyStanding,
    TokenCreate,
    TokenIssued,
    TokenPublic,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from datafactor.permissions import Permission, Principal
from datafactor.web.deps import ApiPrincipal, DbDep, PagingDep, SettingsDep

router = APIRouter(tags=["identity"])


def _party_out(party: object, principal: Principal) -> PartyPublic:
    return PartyPublic.of(
        party,  # type: ignore[arg-type]
        viewer_party_id=principal.party_id,
        unmask=principal.can(Permission.IDENTITY_PARTY_VERIFY),
    )


@router.post("/auth/token", response_model=LoginTokenPublic, summary="Log in, get a bearer token")
async def auth_token(body: LoginRequest, db: DbDep, settings: SettingsDep) -> LoginTokenPublic:
    """Exchange a username and password for an API token with all the user's permissions."""

    def attempt() -> tuple[services.LoginOutcome, str | None, datetime | None]:
        with db.write() as session:
            outcome = services.authenticate(
                session, body.username, body.password, services.lockout_policy(settings), utcnow()
            )
            if outcome.user is None:
                return outcome, None, None
            secret, token = services.login_token(session, outcome.user, days=1)
            return outcome, secret, token.expires_at

    outcome, secret, expires = await run_in_threadpool(attempt)
    if outcome.error is not None:
        await asyncio.sleep(outcome.delay)
        raise outcome.error
    assert secret is not None
    assert expires is not None
    return LoginTokenPublic(access_token=secret, expires_at=expires)


class Me(BaseModel):
    user_id: str
    username: str
    party_id: str
    party_kind: str
    roles: list[str]
    permissions: list[str]


@router.get("/me", response_model=Me, summary="Who the token belongs to")
def me(principal: ApiPrincipal) -> Me:
    return Me(
        user_id=principal.user_id,
        username=principal.username,
        party_id=principal.party_id,
        party_kind=principal.party_kind,
        roles=sorted(principal.roles),
        permissions=sorted(principal.permissions),
    )


@router.post(
    "/parties",
    response_model=PartyPublic,
    status_code=201,
    summary="Apply to join as a party (no login)",
)
def apply(body: PartyApply, db: DbDep) -> PartyPublic:
    application = PartyApplication(
        kind=body.kind,
        name=body.name,
        name_en=body.name_en,
        code=body.code,
        country=body.country,
        service_role=body.service_role,
        contact_email=body.contact_email,
    )
    with db.write() as session:
        party = services.apply_for_party(
            session,
            application,
            admin_username=body.admin_username,
            admin_display_name=body.admin_display_name,
            admin_password=body.admin_password,
            today=today_cn(),
        )
        return PartyPublic.of(party, viewer_party_id=party.id)


@router.get("/parties", response_model=Page[PartyPublic], summary="List parties you may see")
def parties(
    principal: ApiPrincipal,
    db: DbDep,
    page: PagingDep,
    status: Annotated[PartyStatus | None, Query()] = None,
    kind: Annotated[PartyKind | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=64, description="Name or exact code")] = None,
) -> Page[PartyPublic]:
    with db.read() as session:
        rows, total = services.list_parties(
            session,
            principal,
            services.PartyQuery(status, kind, q),
            limit=page.limit,
            offset=page.offset,
        )
        return Page(
            items=[_party_out(p, principal) for p in rows],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )


@router.get("/parties/{party_id}", response_model=PartyPublic, summary="One party")
async def party(party_id: str, principal: ApiPrincipal, db: DbDep) -> PartyPublic:
    return _party_out(await services.read_party(db, principal, party_id), principal)


@router.post(
    "/parties/{party_id}/review",
    response_model=PartyPublic,
    summary="Verify or reject an application (exchange operator)",
)
def review(party_id: str, body: PartyReview, principal: ApiPrincipal, db: DbDep) -> PartyPublic:
    with db.write() as session:
        party = services.review_party(
            session, principal, party_id, approve=body.approve, reason=body.reason
        )
        return _party_out(party, principal)


@router.post(
    "/parties/{party_id}/standing",
    response_model=PartyPublic,
    summary="Suspend or reinstate a party (exchange operator)",
)
def standing(party_id: str, body: PartyStanding, principal: ApiPrincipal, db: DbDep) -> PartyPublic:
    with db.write() as session:
        party = services.set_party_standing(
            session, principal, party_id, suspend=body.suspend, reason=body.reason
        )
        return _party_out(party, principal)


@router.get("/users", response_model=Page[UserPublic], summary="Users of a party")
def users(
    principal: ApiPrincipal,
    db: DbDep,
    page: PagingDep,
    party_id: Annotated[str | None, Query(max_length=36)] = None,
) -> Page[UserPublic]:
    with db.read() as session:
        rows, total = services.list_users(
            session, principal, party_id=party_id, limit=page.limit, offset=page.offset
        )
        now = utcnow()
        return Page(
            items=[UserPublic.of(u, now) for u in rows],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )


@router.post("/users", response_model=UserPublic, status_code=201, summary="Add a user")
def create_user(body: UserCreate, principal: ApiPrincipal, db: DbDep) -> UserPublic:
    with db.write() as session:
        user = services.create_user(
            session,
            principal,
            username=body.username,
            display_name=body.display_name,
            password=body.password,
            roles=body.roles,
        )
        return UserPublic.of(user, utcnow())


@router.get("/users/{user_id}", response_model=UserPublic, summary="One user")
def user(user_id: str, principal: ApiPrincipal, db: DbDep) -> UserPublic:
    with db.read() as session:
        return UserPublic.of(services.get_user(session, principal, user_id), utcnow())


@router.patch("/users/{user_id}", response_model=UserPublic, summary="Change roles or deactivate")
def update_user(user_id: str, body: UserUpdate, principal: ApiPrincipal, db: DbDep) -> UserPublic:
    with db.write() as session:
        user = services.update_user(
            session,
            principal,
            user_id,
            roles=body.roles,
            is_active=body.is_active,
            display_name=body.display_name,
        )
        return UserPublic.of(user, utcnow())


@router.get("/tokens", response_model=Page[TokenPublic], summary="Your API tokens")
def tokens(principal: ApiPrincipal, db: DbDep, page: PagingDep) -> Page[TokenPublic]:
    with db.read() as session:
        rows, total = services.list_tokens(session, principal, limit=page.limit, offset=page.offset)
        return Page(
            items=[TokenPublic.of(t) for t in rows],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )


@router.post("/tokens", response_model=TokenIssued, status_code=201, summary="Create an API token")
def create_token(body: TokenCreate, principal: ApiPrincipal, db: DbDep) -> TokenIssued:
    with db.write() as session:
        secret, token = services.create_token(
            session,
            principal,
            name=body.name,
            scopes=[str(s) for s in body.scopes] if body.scopes is not None else None,
            days=body.expires_in_days,
        )
        return TokenIssued(token=secret, **TokenPublic.of(token).model_dump())


@router.get("/tokens/{token_id}", response_model=TokenPublic, summary="One of your tokens")
def token(token_id: str, principal: ApiPrincipal, db: DbDep) -> TokenPublic:
    with db.read() as session:
        return TokenPublic.of(services.get_token(session, principal, token_id))


@router.delete("/tokens/{token_id}", response_model=TokenPublic, summary="Revoke a token")
def revoke(token_id: str, principal: ApiPrincipal, db: DbDep) -> TokenPublic:
    with db.write() as session:
        return TokenPublic.of(services.revoke_token(session, principal, token_id))
