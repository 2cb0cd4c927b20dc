"""HTML routes of the identity domain: log in/out, apply to join, parties, users, API tokens.

Thin shells over ``services``: read the form, check CSRF, call the use case in a unit of work,
render the page (or the HTMX partial). Errors a person caused re-render the form with the message.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from datafactor.db import today_cn, utcnow
from datafactor.errors import DomainError
from datafactor.identity import services
from datafactor.identity.domain import (
    ASEAN_COUNTRIES,
    KIND_LABELS,
    ROLE_LABELS,
    SELF_SERVICE_KINDS,
    SERVICE_ROLE_LABELS,
    STATUS_LABELS,
    PartyApplication,
    PartyKind,
    PartyStatus,
    ServiceRole,
)
from datafactor.identity.schemas import PartyPublic, UserPublic
from datafactor.permissions import Permission
from datafactor.web.deps import (
    SESSION_COOKIE,
    DbDep,
    MaybeWebUser,
    SettingsDep,
    WebUser,
    anon_csrf_token,
    check_csrf,
)
from datafactor.web.forms import (
    error_text,
    form_list,
    read_form,
    redirect,
    render,
    render_anon,
    safe_next,
)

router = APIRouter(include_in_schema=False)
PAGE = 20

LABELS: dict[str, Any] = {
    "kind_labels": KIND_LABELS,
    "status_labels": STATUS_LABELS,
    "role_labels": ROLE_LABELS,
    "service_role_labels": SERVICE_ROLE_LABELS,
    "asean_countries": ASEAN_COUNTRIES,
}


# ------------------------------------------------------------------------------------- log in/out


@router.get("/login")
def login_form(
    request: Request,
    identity: MaybeWebUser,
    next: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    if identity is not None:
        return redirect(safe_next(next))
    return render_anon(
        request, "identity/login.html", anon_csrf_token(request), next=safe_next(next), username=""
    )


@router.post("/login")
async def login(request: Request, db: DbDep, settings: SettingsDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), None)
    username, password = form.get("username", ""), form.get("password", "")
    target = safe_next(form.get("next"))

    def attempt() -> tuple[services.LoginOutcome, str | None]:
        with db.write() as session:
            outcome = services.authenticate(
                session, username, password, services.lockout_policy(settings), utcnow()
            )
            if outcome.user is None:
                return outcome, None
            secret, _web = services.start_web_session(session, outcome.user, settings.session_hours)
            return outcome, secret

    outcome, secret = await run_in_threadpool(attempt)
    if outcome.error is not None:
        await asyncio.sleep(outcome.delay)
        return render_anon(
            request,
            "identity/login.html",
            anon_csrf_token(request),
            status=400,
            next=target,
            username=username[:64],
            **error_text(outcome.error),
        )
    response = redirect(target)
    response.set_cookie(
        SESSION_COOKIE,
        secret or "",
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        max_age=settings.session_hours * 3600,
        path="/",
    )
    return response


@router.post("/logout")
async def logout(request: Request, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    with db.write() as session:
        services.end_web_session(session, identity.principal, identity.session_id)
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ------------------------------------------------------------------------------------ application


def _application_from(form: dict[str, str]) -> PartyApplication:
    from datafactor.errors import N_, InvalidInput

    try:
        kind = PartyKind(form.get("kind", ""))
    except ValueError:
        raise InvalidInput(N_("Choose what kind of party you are."), field="kind") from None
    role = form.get("service_role") or None
    try:
        service_role = ServiceRole(role) if role else None
    except ValueError:
        raise InvalidInput(N_("Choose a service from the list."), field="service_role") from None
    return PartyApplication(
        kind=kind,
        name=form.get("name", ""),
        name_en=form.get("name_en", ""),
        code=form.get("code", ""),
        country=form.get("country", "CN") or "CN",
        service_role=service_role,
        contact_email=form.get("contact_email", ""),
    )


@router.get("/apply")
def apply_form(request: Request) -> Response:
    return render_anon(
        request,
        "identity/apply.html",
        anon_csrf_token(request),
        form={},
        kinds=sorted(SELF_SERVICE_KINDS),
        **LABELS,
    )


@router.post("/apply")
async def apply(request: Request, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), None)
    try:
        application = _application_from(form)
        with db.write() as session:
            party = services.apply_for_party(
                session,
                application,
                admin_username=form.get("admin_username", ""),
                admin_display_name=form.get("admin_display_name", ""),
                admin_password=form.get("admin_password", ""),
                today=today_cn(),
            )
            name = party.name
    except DomainError as exc:
        form.pop("admin_password", None)
        return render_anon(
            request,
            "identity/apply.html",
            anon_csrf_token(request),
            status=400,
            form=form,
            kinds=sorted(SELF_SERVICE_KINDS),
            **LABELS,
            **error_text(exc),
        )
    return render_anon(
        request,
        "identity/applied.html",
        anon_csrf_token(request),
        name=name,
        username=form.get("admin_username", "").strip().lower(),
    )


# ---------------------------------------------------------------------------------------- parties


@router.get("/parties")
def parties(
    request: Request,
    identity: WebUser,
    db: DbDep,
    status: Annotated[str | None, Query(max_length=16)] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    q: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
) -> Response:
    status = status if status in set(PartyStatus) else None
    kind = kind if kind in set(PartyKind) else None
    with db.read() as session:
        rows, total = services.list_parties(
            session,
            identity.principal,
            services.PartyQuery(status, kind, q or None),
            limit=PAGE,
            offset=(page - 1) * PAGE,
        )
        items = [_public(p, identity) for p in rows]
    template = (
        "identity/parties_table.html"
        if request.headers.get("HX-Request")
        else "identity/parties.html"
    )
    return render(
        request,
        template,
        identity,
        items=items,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE)),
        status_filter=status,
        kind=kind,
        q=q or "",
        **LABELS,
    )


def _public(party: object, identity: WebUser) -> PartyPublic:
    return PartyPublic.of(
        party,  # type: ignore[arg-type]
        viewer_party_id=identity.principal.party_id,
        unmask=identity.principal.can(Permission.IDENTITY_PARTY_VERIFY),
    )


@router.get("/parties/{party_id}")
def party_detail(request: Request, party_id: str, identity: WebUser, db: DbDep) -> Response:
    with db.read() as session:
        party = _public(services.get_party(session, identity.principal, party_id), identity)
        users: list[UserPublic] = []
        if identity.principal.can(Permission.IDENTITY_USER_READ_ALL) or (
            party.id == identity.principal.party_id
            and identity.principal.can(Permission.IDENTITY_USER_READ)
        ):
            rows, _ = services.list_users(
                session, identity.principal, party_id=party.id, limit=100, offset=0
            )
            users = [UserPublic.of(u, utcnow()) for u in rows]
    return render(
        request, "identity/party_detail.html", identity, party=party, users=users, **LABELS
    )


def _party_page_with_error(
    request: Request, identity: WebUser, db: DbDep, party_id: str, exc: DomainError, **extra: Any
) -> Response:
    """Re-render a party's page with the refusal of the action tried on it (HTTP 400)."""
    with db.read() as session:
        party = _public(services.get_party(session, identity.principal, party_id), identity)
    return render(
        request,
        "identity/party_detail.html",
        identity,
        status=400,
        party=party,
        users=[],
        **extra,
        **LABELS,
        **error_text(exc),
    )


@router.post("/parties/{party_id}/review")
async def party_review(request: Request, party_id: str, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    approve = form.get("decision") == "approve"
    try:
        with db.write() as session:
            services.review_party(
                session,
                identity.principal,
                party_id,
                approve=approve,
                reason=form.get("reason", ""),
            )
    except DomainError as exc:
        return _party_page_with_error(
            request, identity, db, party_id, exc, reason=form.get("reason", "")
        )
    return redirect(f"/parties/{party_id}")


@router.post("/parties/{party_id}/standing")
async def party_standing(request: Request, party_id: str, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        with db.write() as session:
            services.set_party_standing(
                session,
                identity.principal,
                party_id,
                suspend=form.get("action") == "suspend",
                reason=form.get("reason", ""),
            )
    except DomainError as exc:
        return _party_page_with_error(request, identity, db, party_id, exc)
    return redirect(f"/parties/{party_id}")


@router.post("/application/resubmit")
async def resubmit(request: Request, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        application = _application_from(form)
        with db.write() as session:
            services.resubmit_application(
                session, identity.principal, application, today=today_cn()
            )
    except DomainError as exc:
        return _party_page_with_error(
            request, identity, db, identity.principal.party_id, exc, form=form
        )
    return redirect(f"/parties/{identity.principal.party_id}")


# ------------------------------------------------------------------------------------------ users


def _users_page(
    request: Request, identity: WebUser, db: DbDep, status: int = 200, **extra: object
) -> Response:
    with db.read() as session:
        rows, total = services.list_users(
            session, identity.principal, party_id=None, limit=200, offset=0
        )
        users = [UserPublic.of(u, utcnow()) for u in rows]
    return render(
        request,
        "identity/users.html",
        identity,
        status=status,
        users=users,
        total=total,
        form=extra.pop("form", {}),
        **LABELS,
        **extra,
    )


@router.get("/users")
def users(request: Request, identity: WebUser, db: DbDep) -> Response:
    return _users_page(request, identity, db)


@router.post("/users")
async def users_create(request: Request, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        with db.write() as session:
            services.create_user(
                session,
                identity.principal,
                username=form.get("username", ""),
                display_name=form.get("display_name", ""),
                password=form.get("password", ""),
                roles=form_list(form, "roles"),
            )
    except DomainError as exc:
        form.pop("password", None)
        return _users_page(request, identity, db, status=400, form=form, **error_text(exc))
    return redirect("/users")


@router.post("/users/{user_id}")
async def users_update(request: Request, user_id: str, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    action = form.get("action")
    try:
        with db.write() as session:
            if action == "roles":
                services.update_user(
                    session, identity.principal, user_id, roles=form_list(form, "roles")
                )
            else:
                services.update_user(
                    session, identity.principal, user_id, is_active=action == "activate"
                )
    except DomainError as exc:
        return _users_page(request, identity, db, status=400, **error_text(exc))
    return redirect("/users")


# ----------------------------------------------------------------------------------------- tokens


def _tokens_page(
    request: Request, identity: WebUser, db: DbDep, status: int = 200, **extra: object
) -> Response:
    with db.read() as session:
        rows, _ = services.list_tokens(session, identity.principal, limit=200, offset=0)
    return render(
        request,
        "identity/tokens.html",
        identity,
        status=status,
        tokens=rows,
        now=utcnow(),
        scopes=sorted(identity.principal.permissions),
        **extra,
    )


@router.get("/tokens")
def tokens(request: Request, identity: WebUser, db: DbDep) -> Response:
    return _tokens_page(request, identity, db)


@router.post("/tokens")
async def tokens_create(request: Request, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        days = int(form.get("expires_in_days") or "30")
    except ValueError:
        days = 0
    try:
        with db.write() as session:
            secret, token = services.create_token(
                session,
                identity.principal,
                name=form.get("name", ""),
                scopes=form_list(form, "scopes"),
                days=days,
            )
    except DomainError as exc:
        return _tokens_page(request, identity, db, status=400, form=form, **error_text(exc))
    return _tokens_page(request, identity, db, new_secret=secret, new_name=token.name)


@router.post("/tokens/{token_id}/revoke")
async def tokens_revoke(request: Request, token_id: str, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    with db.write() as session:
        services.revoke_token(session, identity.principal, token_id)
    return redirect("/tokens")
