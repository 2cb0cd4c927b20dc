"""FastAPI dependencies shared by every domain's routes: database, principal, CSRF, paging.

Dependencies that do no blocking I/O are ``async def``: FastAPI runs every plain ``def``
dependency in the thread pool, and those hops were most of an API request's cost.

``ApiPrincipal`` authenticates a bearer token; ``WebPrincipal`` a session cookie. ``verify_csrf``
guards every state-changing form: logged-in forms carry the session's synchronizer token, anonymous
forms (login, apply) a double-submit cookie. ``reject_unknown_query`` makes a misspelt query
parameter an error instead of a silently ignored filter.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from datafactor.db import Database
from datafactor.errors import N_, BadRequest, DomainError, Forbidden, Unauthenticated
from datafactor.identity import WebIdentity, authenticate_token, resolve_web_session
from datafactor.permissions import Principal
from datafactor.settings import Settings
from datafactor.web.problems import LoginRequired

SESSION_COOKIE = "df_session"
CSRF_COOKIE = "df_csrf"
LANG_COOKIE = "df_lang"


async def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def api_principal(request: Request, db: DbDep) -> Principal:
    """The principal of the request's bearer token, checked against the database every time.

    Runs on every API request, as one ``Database.lookup`` (inline on SQLite, a prepared
    statement on a raw async connection on PostgreSQL); ``bench/api.py`` measures both.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated(
            N_("Send an API token in the header 'Authorization: Bearer <token>'."),
            code="missing-token",
        )
    token = secret.strip()
    return await authenticate_token(db, token)


ApiPrincipal = Annotated[Principal, Depends(api_principal)]


def _web_identity(request: Request, db: Database) -> WebIdentity | None:
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    with db.read() as session:
        return resolve_web_session(session, secret)


def optional_web_identity(request: Request, db: DbDep) -> WebIdentity | None:
    identity = _web_identity(request, db)
    request.state.identity = identity
    return identity


def web_identity(request: Request, db: DbDep) -> WebIdentity:
    identity = optional_web_identity(request, db)
    if identity is None:
        raise LoginRequired
    return identity


WebUser = Annotated[WebIdentity, Depends(web_identity)]
MaybeWebUser = Annotated[WebIdentity | None, Depends(optional_web_identity)]


def check_csrf(request: Request, submitted: str | None, identity: WebIdentity | None) -> None:
    """Refuse a form post whose CSRF token does not match the session's (or the anon cookie)."""
    expected = identity.csrf_token if identity else request.cookies.get(CSRF_COOKIE)
    submitted = submitted or request.headers.get("X-CSRF-Token")
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise Forbidden(
            N_("The form expired or came from another site. Reload the page and try again."),
            code="csrf",
        )


def anon_csrf_token(request: Request) -> str:
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Paging:
    limit: int
    offset: int


async def paging(
    limit: Annotated[int, Query(ge=1, le=200, description="Page size (1–200).")] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Items to skip.")] = 0,
) -> Paging:
    return Paging(limit, offset)


PagingDep = Annotated[Paging, Depends(paging)]


def _declared_query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared_query_names(sub)
    return names


async def reject_unknown_query(request: Request) -> None:
    """A query parameter the route does not declare is a mistake: say so (400)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    known = _declared_query_names(route.dependant)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise BadRequest(
            N_("Unknown query parameter(s): {names}. Allowed: {allowed}."),
            code="unknown-query-parameter",
            names=", ".join(unknown),
            allowed=", ".join(sorted(known)) or "-",
        )


__all__ = [
    "ApiPrincipal",
    "DbDep",
    "DomainError",
    "MaybeWebUser",
    "PagingDep",
    "SettingsDep",
    "WebUser",
]
