"""Identity use cases: join the market, verify parties, manage users and tokens, log in and out.

Each function is one use case. It receives the caller's open ``Session`` (a unit of work opened
by the entry point), checks permissions, applies the rules in ``domain.py``, writes, and records
its audit event in the same transaction. Nothing here commits: the entry point does, so a change
and its audit event are durable together or not at all. Functions that must persist something even
when they refuse (a wrong password raises the failure counter) return an outcome instead of raising.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import NamedFromClause

from datafactor import audit, ledger
from datafactor.db import Database, utcnow
from datafactor.errors import (
    N_,
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    Locked,
    NotFound,
    Unauthenticated,
)
from datafactor.identity.domain import (
    KIND_CODE_TYPE,
    SELF_SERVICE_KINDS,
    CodeType,
    EventTag,
    LockoutPolicy,
    PartyApplication,
    PartyKind,
    PartyStatus,
    ServiceRole,
    check_application,
    check_password,
    check_reason,
    check_roles,
    check_token_request,
    check_username,
)
from datafactor.identity.models import ApiToken, Party, User, WebSession
from datafactor.permissions import Permission, Principal, Role, effective_permissions
from datafactor.settings import Settings, get_settings

P = Permission
_hasher = PasswordHasher.from_parameters(
    profiles.CHEAPEST
    if get_settings().password_hash_profile == "test"
    else profiles.RFC_9106_LOW_MEMORY
)
# Verified against when the username is unknown, so that answer takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("timing-equaliser-not-a-password")
TOKEN_PREFIX = "dft_"


def _require(principal: Principal, permission: Permission) -> None:
    if not principal.can(permission):
        raise Forbidden(
            N_("Your account is not allowed to do this ({permission})."), permission=permission
        )


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# ---------------------------------------------------------------------------------------- parties


def _ensure_code_free(session: Session, app: PartyApplication, exclude_id: str | None) -> None:
    stmt = select(Party.id, Party.status).where(
        Party.code_type == KIND_CODE_TYPE[app.kind],
        Party.country == app.country,
        Party.code == app.code,
    )
    for party_id, _status in session.execute(stmt):
        if party_id != exclude_id:
            raise Conflict(
                N_(
                    "A party with this identifier has already applied or joined. Log in with "
                    "that party's account, or contact the exchange if you think this is wrong."
                ),
                field="code",
                code="duplicate-code",
            )


def apply_for_party(
    session: Session,
    application: PartyApplication,
    *,
    admin_username: str,
    admin_display_name: str,
    admin_password: str,
    today: date,
) -> Party:
    """A prospective participant applies to join; its first admin can log in to follow up."""
    if application.kind not in SELF_SERVICE_KINDS:
        raise InvalidInput(
            N_("This kind of party is registered by the exchange operator, not by application."),
            field="kind",
        )
    app = check_application(application, today)
    username = check_username(admin_username)
    check_password(admin_password, username)
    _ensure_code_free(session, app, exclude_id=None)
    party = _insert_party(session, app, PartyStatus.PENDING)
    user = _insert_user(
        session,
        party,
        username,
        admin_display_name or app.name,
        admin_password,
        frozenset({Role.ADMIN}),
    )
    audit.record(
        session,
        actor=None,
        actor_name=user.username,
        action=EventTag.PARTY_APPLY,
        object_type="party",
        object_id=party.id,
        party_id=party.id,
        summary=f"Application to join as {app.kind}: {app.name}",
    )
    return party


def register_party(
    session: Session,
    actor: Principal | None,
    application: PartyApplication,
    *,
    today: date,
    verified: bool = True,
) -> Party:
    """The operator registers a party directly (state bodies, the demo province, the CLI)."""
    if actor is not None:
        _require(actor, P.IDENTITY_PARTY_VERIFY)
    app = check_application(application, today)
    _ensure_code_free(session, app, exclude_id=None)
    party = _insert_party(session, app, PartyStatus.VERIFIED if verified else PartyStatus.PENDING)
    if verified:
        party.reviewed_at = utcnow()
        party.reviewed_by = actor.user_id if actor else None
        _publish_verification(session, party)
    audit.record(
        session,
        actor=actor,
        actor_name="operator",
        action=EventTag.PARTY_VERIFY,
        object_type="party",
        object_id=party.id,
        party_id=party.id,
        summary=f"Registered {app.kind} {app.name} directly",
        reasons=["registered by the exchange operator"],
    )
    return party


def _insert_party(session: Session, app: PartyApplication, status: PartyStatus) -> Party:
    party = Party(
        kind=app.kind,
        service_role=app.service_role,
        name=app.name,
        name_en=app.name_en,
        code_type=KIND_CODE_TYPE[app.kind],
        code=app.code,
        country=app.country,
        contact_email=app.contact_email,
        status=status,
    )
    session.add(party)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        # Two applications with the same code raced past the check; the unique index decided.
        raise Conflict(
            N_("A party with this identifier has already applied or joined."),
            field="code",
            code="duplicate-code",
        ) from None
    return party


def _publish_verification(session: Session, party: Party) -> None:
    """Append the verification to the public transparency ledger, without personal information.

    Organisations' codes are public registry data, so their SHA-256 lets anyone match an entry to
    a code they hold; an individual's resident ID is not, and is left out entirely (its 18 digits
    are too few to hide behind a hash).
    """
    payload = {"party_id": party.id, "kind": party.kind, "country": party.country}
    if party.code_type != CodeType.RESIDENT_ID:
        payload["code_sha256"] = hashlib.sha256(party.code.encode()).hexdigest()
    ledger.append_event(session, "identity.party.verified", payload)


def resubmit_application(
    session: Session, principal: Principal, application: PartyApplication, *, today: date
) -> Party:
    """A rejected applicant corrects its application and sends it for review again."""
    _require(principal, P.IDENTITY_PARTY_UPDATE)
    party = _get_party_for_update(session, principal.party_id)
    if party.status != PartyStatus.REJECTED:
        raise Conflict(N_("Only a rejected application can be corrected and resubmitted."))
    if application.kind != party.kind:
        raise InvalidInput(N_("The kind of party cannot be changed."), field="kind")
    app = check_application(application, today)
    _ensure_code_free(session, app, exclude_id=party.id)
    party.name, party.name_en, party.code, party.country = (
        app.name,
        app.name_en,
        app.code,
        app.country,
    )
    party.service_role, party.contact_email = app.service_role, app.contact_email
    party.status, party.status_reason = PartyStatus.PENDING, ""
    audit.record(
        session,
        actor=principal,
        action=EventTag.PARTY_RESUBMIT,
        object_type="party",
        object_id=party.id,
        party_id=party.id,
        summary=f"Application resubmitted: {app.name}",
    )
    return party


def _get_party_for_update(session: Session, party_id: str) -> Party:
    party = session.execute(
        select(Party).where(Party.id == party_id).with_for_update()
    ).scalar_one_or_none()
    if party is None:
        raise NotFound(N_("No such party."))
    return party


def review_party(
    session: Session, principal: Principal, party_id: str, *, approve: bool, reason: str = ""
) -> Party:
    """The exchange operator verifies (认证) or rejects (驳回) a pending application."""
    _require(principal, P.IDENTITY_PARTY_VERIFY)
    party = _get_party_for_update(session, party_id)
    if party.status != PartyStatus.PENDING:
        raise Conflict(
            N_("This application was already decided ({status}); reload the page."),
            status=party.status,
        )
    if party.id == principal.party_id:
        raise Forbidden(N_("A party cannot review its own application."))
    reasons: list[str] = []
    if approve:
        party.status, party.status_reason = PartyStatus.VERIFIED, reason.strip()
        tag, summary = EventTag.PARTY_VERIFY, f"Verified {party.kind} {party.name}"
        reasons = [f"identifier {party.code_type} checked"]
        _publish_verification(session, party)
    else:
        party.status, party.status_reason = PartyStatus.REJECTED, check_reason(reason)
        tag, summary = EventTag.PARTY_REJECT, f"Rejected application of {party.name}"
        reasons = [party.status_reason]
    party.reviewed_at, party.reviewed_by = utcnow(), principal.user_id
    audit.record(
        session,
        actor=principal,
        action=tag,
        object_type="party",
        object_id=party.id,
        party_id=party.id,
        summary=summary,
        reasons=reasons,
    )
    return party


def set_party_standing(
    session: Session, principal: Principal, party_id: str, *, suspend: bool, reason: str
) -> Party:
    """The exchange operator suspends (暂停) a verified party or reinstates a suspended one.

    A suspended party's users can still log in and read their own party, but act on nothing; the
    reason is recorded and shown to them.
    """
    _require(principal, P.IDENTITY_PARTY_VERIFY)
    party = _get_party_for_update(session, party_id)
    if party.id == principal.party_id:
        raise Forbidden(N_("A party cannot change its own standing."))
    wanted_from = PartyStatus.VERIFIED if suspend else PartyStatus.SUSPENDED
    if party.status != wanted_from:
        raise Conflict(
            N_(
                "Only a verified party can be suspended, and only a suspended one reinstated "
                "(this party is {status})."
            ),
            status=party.status,
        )
    party.status = PartyStatus.SUSPENDED if suspend else PartyStatus.VERIFIED
    party.status_reason = check_reason(reason)
    party.reviewed_at, party.reviewed_by = utcnow(), principal.user_id
    audit.record(
        session,
        actor=principal,
        action=EventTag.PARTY_SUSPEND if suspend else EventTag.PARTY_REINSTATE,
        object_type="party",
        object_id=party.id,
        party_id=party.id,
        summary=f"{'Suspended' if suspend else 'Reinstated'} {party.kind} {party.name}",
        reasons=[party.status_reason],
    )
    return party


def party_card_table(name: str) -> NamedFromClause:
    """The parties' table under the alias ``name``, for another domain's compiled Core statement
    that reads a party's card (``id``, ``kind``, ``service_role``, ``name``, ``name_en``,
    ``code_type``, ``code``, ``country``, ``status``) with its own rows in one round trip — the
    exchange's mall order reads its buyer and seller with the listing's lock. Read only."""
    return Party.__table__.alias(name)


def get_party(session: Session, principal: Principal, party_id: str) -> Party:
    """A party the principal may see; another tenant's id answers 'not found', never 'forbidden'."""
    _require(principal, P.IDENTITY_PARTY_READ)
    party = session.get(Party, party_id) if principal.can_see_party(party_id) else None
    if party is None:
        raise NotFound(N_("No such party."))
    return party


_PARTY_BY_ID = select(*Party.__table__.c).where(Party.__table__.c.id == bindparam("party_id"))


async def read_party(db: Database, principal: Principal, party_id: str) -> Any:
    """``get_party`` from async code over ``Database.lookup``: a row with the party's columns."""
    _require(principal, P.IDENTITY_PARTY_READ)
    row = (
        await db.lookup(_PARTY_BY_ID, {"party_id": party_id})
        if principal.can_see_party(party_id)
        else None
    )
    if row is None:
        raise NotFound(N_("No such party."))
    return row


@dataclass(frozen=True)
class PartyQuery:
    status: str | None = None
    kind: str | None = None
    q: str | None = None


def list_parties(
    session: Session, principal: Principal, query: PartyQuery, *, limit: int, offset: int
) -> tuple[list[Party], int]:
    _require(principal, P.IDENTITY_PARTY_READ)
    stmt = select(Party)
    if not principal.can(P.IDENTITY_PARTY_READ_ALL):
        stmt = stmt.where(Party.id == principal.party_id)
    if query.status:
        stmt = stmt.where(Party.status == query.status)
    if query.kind:
        stmt = stmt.where(Party.kind == query.kind)
    if query.q:
        like = f"%{query.q}%"
        stmt = stmt.where(
            or_(Party.name.like(like), Party.name_en.like(like), Party.code == query.q)
        )
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.order_by(Party.created_at.desc(), Party.id).limit(limit).offset(offset)
    )
    return list(rows), total


@dataclass(frozen=True)
class CustodianCard:
    """A verified data custodian (数据托管) as any verified party may see it: the exchange lists
    them publicly, so that a holder can name one to keep keys or data on its behalf."""

    id: str
    name: str
    name_en: str


def _custodians() -> Select[Party]:
    return select(Party).where(
        Party.kind == PartyKind.SERVICE_FIRM,
        Party.service_role == ServiceRole.CUSTODIAN,
        Party.status == PartyStatus.VERIFIED,
    )


def list_custodians(session: Session, principal: Principal) -> list[CustodianCard]:
    """The verified data custodians, by name (the public directory; any party's user reads it)."""
    _require(principal, P.IDENTITY_PARTY_READ)
    rows = session.scalars(_custodians().order_by(Party.name, Party.id).limit(500))
    return [CustodianCard(p.id, p.name, p.name_en) for p in rows]


def get_custodian(session: Session, principal: Principal, party_id: str) -> CustodianCard | None:
    """The verified data custodian ``party_id``, or None when the id names no such party."""
    _require(principal, P.IDENTITY_PARTY_READ)
    party = session.scalar(_custodians().where(Party.id == party_id))
    return CustodianCard(party.id, party.name, party.name_en) if party is not None else None


def counterparty_names(
    session: Session, principal: Principal, party_ids: Iterable[str]
) -> dict[str, str]:
    """Display names of ``party_ids`` for a page that relates the viewer to them (a licensee, a
    pledgee, a grantor, a trustee, a beneficiary): every name the viewer may read in full; for
    any other *verified organisation* its registered name, which is public market information
    (as the national enterprise credit publicity system shows it); for another individual only
    the surname, masked (个人信息: 张*); for an unknown or unverified party a short id."""
    ids = sorted(set(party_ids))
    if not ids:
        return {}
    names: dict[str, str] = {}
    for party in session.scalars(select(Party).where(Party.id.in_(ids))):
        if principal.can_see_party(party.id):
            names[party.id] = party.name
        elif party.status != PartyStatus.VERIFIED:
            continue
        elif party.kind == PartyKind.INDIVIDUAL:
            names[party.id] = (party.name[:1] + "*") if party.name else party.id[:8]
        else:
            names[party.id] = party.name
    return {party_id: names.get(party_id, party_id[:8]) for party_id in ids}


def party_counts(session: Session, principal: Principal) -> dict[str, int]:
    """Parties by status, over what the principal may see (the dashboard's figures)."""
    stmt = select(Party.status, func.count()).group_by(Party.status)
    if not principal.can(P.IDENTITY_PARTY_READ_ALL):
        stmt = stmt.where(Party.id == principal.party_id)
    return {status: count for status, count in session.execute(stmt)}


# ------------------------------------------------------------------------------------------ users


def _insert_user(
    session: Session,
    party: Party,
    username: str,
    display_name: str,
    password: str,
    roles: frozenset[Role],
) -> User:
    if session.scalar(select(User.id).where(User.username == username)):
        raise Conflict(
            N_("The username '{username}' is taken; choose another."),
            field="username",
            username=username,
        )
    display = " ".join(display_name.split())[:64] or username
    user = User(
        party=party,
        username=username,
        display_name=display,
        password_hash=_hasher.hash(password),
        roles=sorted(roles),
        is_active=True,
        failed_logins=0,
    )
    session.add(user)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(
            N_("The username '{username}' is taken; choose another."),
            field="username",
            username=username,
        ) from None
    return user


def create_user(
    session: Session,
    principal: Principal,
    *,
    username: str,
    display_name: str,
    password: str,
    roles: list[str],
) -> User:
    """A party admin adds a user to their own party."""
    _require(principal, P.IDENTITY_USER_MANAGE)
    username = check_username(username)
    check_password(password, username)
    chosen = check_roles(roles)
    party = session.get(Party, principal.party_id)
    assert party is not None
    user = _insert_user(session, party, username, display_name, password, chosen)
    audit.record(
        session,
        actor=principal,
        action=EventTag.USER_CREATE,
        object_type="user",
        object_id=user.id,
        party_id=party.id,
        summary=f"User {username} created with roles {', '.join(sorted(chosen))}",
    )
    return user


def create_user_as_operator(
    session: Session,
    party_id: str,
    *,
    username: str,
    display_name: str,
    password: str,
    roles: list[str],
) -> User:
    """The operator's CLI adds a user to any party (bootstrap and support)."""
    party = session.get(Party, party_id)
    if party is None:
        raise NotFound(N_("No such party."))
    username = check_username(username)
    check_password(password, username)
    chosen = check_roles(roles)
    user = _insert_user(session, party, username, display_name, password, chosen)
    audit.record(
        session,
        actor=None,
        actor_name="operator-cli",
        action=EventTag.USER_CREATE,
        object_type="user",
        object_id=user.id,
        party_id=party.id,
        summary=f"User {username} created with roles {', '.join(sorted(chosen))}",
    )
    return user


def _visible_user(session: Session, principal: Principal, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None or not (
        (user.party_id == principal.party_id and principal.can(P.IDENTITY_USER_READ))
        or principal.can(P.IDENTITY_USER_READ_ALL)
    ):
        raise NotFound(N_("No such user."))
    return user


def get_user(session: Session, principal: Principal, user_id: str) -> User:
    return _visible_user(session, principal, user_id)


def list_users(
    session: Session, principal: Principal, *, party_id: str | None, limit: int, offset: int
) -> tuple[list[User], int]:
    party_id = party_id or principal.party_id
    if party_id != principal.party_id:
        _require(principal, P.IDENTITY_USER_READ_ALL)
    else:
        _require(principal, P.IDENTITY_USER_READ)
    stmt = select(User).where(User.party_id == party_id)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(User.username).limit(limit).offset(offset))
    return list(rows), total


def update_user(
    session: Session,
    principal: Principal,
    user_id: str,
    *,
    roles: list[str] | None = None,
    is_active: bool | None = None,
    display_name: str | None = None,
) -> User:
    """A party admin changes a user's roles, name, or deactivates them."""
    _require(principal, P.IDENTITY_USER_MANAGE)
    user = _visible_user(session, principal, user_id)
    if user.party_id != principal.party_id:
        raise NotFound(N_("No such user."))
    changes: list[str] = []
    if roles is not None:
        chosen = check_roles(roles)
        if user.id == principal.user_id and Role.ADMIN not in chosen:
            raise Conflict(N_("You cannot remove your own admin role; ask another admin."))
        user.roles = sorted(chosen)
        changes.append(f"roles={','.join(user.roles)}")
    if display_name is not None:
        name = " ".join(display_name.split())
        if not name or len(name) > 64:
            raise InvalidInput(N_("A display name has 1–64 characters."), field="display_name")
        user.display_name = name
        changes.append("display name")
    if is_active is not None and is_active != user.is_active:
        if user.id == principal.user_id:
            raise Conflict(N_("You cannot deactivate your own account."))
        user.is_active = is_active
        changes.append("activated" if is_active else "deactivated")
        if not is_active:
            _end_sessions_and_tokens(session, user.id)
    if not changes:
        raise InvalidInput(N_("Nothing to change."))
    tag = EventTag.USER_DEACTIVATE if is_active is False else EventTag.USER_UPDATE
    audit.record(
        session,
        actor=principal,
        action=tag,
        object_type="user",
        object_id=user.id,
        party_id=user.party_id,
        summary=f"User {user.username} updated: {'; '.join(changes)}",
    )
    return user


def _end_sessions_and_tokens(session: Session, user_id: str) -> None:
    now = utcnow()
    for web in session.scalars(
        select(WebSession).where(WebSession.user_id == user_id, WebSession.ended_at.is_(None))
    ):
        web.ended_at = now
    for token in session.scalars(
        select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
    ):
        token.revoked_at = now


def set_password(session: Session, user: User, password: str, actor: Principal | None) -> bool:
    """Set a password; returns False (and writes nothing) when it is already the current one."""
    check_password(password, user.username)
    try:
        if _hasher.verify(user.password_hash, password):
            return False
    except (VerificationError, InvalidHashError):
        pass
    user.password_hash = _hasher.hash(password)
    user.failed_logins, user.locked_until = 0, None
    audit.record(
        session,
        actor=actor,
        actor_name="operator-cli",
        action=EventTag.USER_PASSWORD,
        object_type="user",
        object_id=user.id,
        party_id=user.party_id,
        summary=f"Password of {user.username} set",
    )
    return True


# ------------------------------------------------------------------------------------------ login


def principal_for(
    user: User,
    party: Party,
    *,
    via: str,
    scopes: frozenset[Permission] | None = None,
    token_id: str | None = None,
) -> Principal:
    roles = frozenset(Role(r) for r in user.roles)
    held = effective_permissions(party.kind, party.status == PartyStatus.VERIFIED, roles)
    return Principal(
        user_id=user.id,
        username=user.username,
        party_id=party.id,
        party_kind=party.kind,
        roles=roles,
        permissions=held & scopes if scopes is not None else held,
        via=via,
        token_id=token_id,
    )


def principal_for_username(session: Session, username: str, *, via: str = "cli") -> Principal:
    """The principal an active user acts as (operator tools acting ``--as`` a user: the same
    permissions a login gives, following the party's current status)."""
    user = session.scalar(select(User).where(User.username == username.strip().lower()))
    party = session.get(Party, user.party_id) if user is not None else None
    if user is None or party is None or not user.is_active:
        raise NotFound(N_("No such active user: {username}."), username=username)
    return principal_for(user, party, via=via)


@dataclass
class LoginOutcome:
    """What a login attempt produced. Commit it, wait ``delay``, then raise ``error`` if set."""

    user: User | None
    error: DomainError | None
    delay: float = 0.0


def lockout_policy(settings: Settings) -> LockoutPolicy:
    return LockoutPolicy(
        settings.login_slowdown_after, settings.login_lock_after, settings.login_lock_minutes
    )


def _locked(minutes: int) -> Locked:
    return Locked(
        N_(
            "Too many wrong passwords: this account is locked for {minutes} more minutes. "
            "Try again later or ask your party's admin."
        ),
        minutes=minutes,
    )


def authenticate(
    session: Session, username: str, password: str, policy: LockoutPolicy, now: datetime
) -> LoginOutcome:
    """Check a password. Wrong passwords in a row slow the answer down, then lock the account."""
    wrong = Unauthenticated(N_("Wrong username or password."), code="bad-credentials")
    user = session.execute(
        select(User).where(User.username == username.strip().lower()).with_for_update()
    ).scalar_one_or_none()
    if user is None or not user.is_active:
        with contextlib.suppress(VerificationError):
            _hasher.verify(_DUMMY_HASH, password or "-")
        return LoginOutcome(None, wrong)
    if user.locked_until and user.locked_until > now:
        minutes = max(1, int((user.locked_until - now).total_seconds() // 60) + 1)
        return LoginOutcome(
            None,
            _locked(minutes),
        )
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        user.failed_logins += 1
        locked = policy.locked_until(user.failed_logins, now)
        tag = EventTag.USER_LOGIN_FAILED
        if locked:
            user.locked_until, user.failed_logins, tag = locked, 0, EventTag.USER_LOCKED
        audit.record(
            session,
            actor=None,
            actor_name=user.username,
            action=tag,
            object_type="user",
            object_id=user.id,
            party_id=user.party_id,
            summary="Account locked after repeated wrong passwords" if locked else "Wrong password",
        )
        if locked:
            return LoginOutcome(
                None,
                _locked(policy.lock_minutes),
            )
        return LoginOutcome(None, wrong, policy.delay_seconds(user.failed_logins))
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    audit.record(
        session,
        actor=None,
        actor_name=user.username,
        action=EventTag.USER_LOGIN,
        object_type="user",
        object_id=user.id,
        party_id=user.party_id,
        summary="Logged in",
    )
    return LoginOutcome(user, None)


def start_web_session(session: Session, user: User, hours: int) -> tuple[str, WebSession]:
    """Open a browser session; returns the cookie secret (only its hash is stored)."""
    secret = secrets.token_urlsafe(32)
    web = WebSession(
        id=sha256_hex(secret),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        expires_at=utcnow() + timedelta(hours=hours),
    )
    session.add(web)
    session.flush()
    return secret, web


@dataclass(frozen=True)
class WebIdentity:
    """A resolved browser session: who is acting and what the page header shows about them."""

    principal: Principal
    session_id: str
    csrf_token: str
    display_name: str
    party_name: str
    party_status: str


def resolve_web_session(session: Session, secret: str) -> WebIdentity | None:
    row = session.execute(
        select(WebSession, User, Party)
        .join(User, User.id == WebSession.user_id)
        .join(Party, Party.id == User.party_id)
        .where(WebSession.id == sha256_hex(secret))
    ).one_or_none()
    if row is None:
        return None
    web, user, party = row
    if web.ended_at is not None or web.expires_at <= utcnow() or not user.is_active:
        return None
    return WebIdentity(
        principal_for(user, party, via="session"),
        web.id,
        web.csrf_token,
        user.display_name,
        party.name,
        party.status,
    )


def end_web_session(session: Session, principal: Principal, web_id: str) -> None:
    """Log out: the session row is ended, so its cookie no longer opens anything."""
    web = session.get(WebSession, web_id)
    if web is not None and web.ended_at is None:
        web.ended_at = utcnow()
        audit.record(
            session,
            actor=principal,
            action=EventTag.USER_LOGOUT,
            object_type="user",
            object_id=principal.user_id,
            party_id=principal.party_id,
            summary="Logged out",
        )


# ----------------------------------------------------------------------------------------- tokens


def create_token(
    session: Session,
    principal: Principal,
    *,
    name: str,
    scopes: list[str] | None,
    days: int,
    max_days: int = 3650,
) -> tuple[str, ApiToken]:
    """Issue an API token carrying some of the owner's permissions; the secret is returned once."""
    _require(principal, P.IDENTITY_TOKEN_MANAGE)
    wanted = [str(p) for p in principal.permissions] if scopes is None else scopes
    name, chosen = check_token_request(name, wanted, days, principal.permissions, max_days)
    return _issue_token(session, principal, name, chosen, days)


def _issue_token(
    session: Session, principal: Principal, name: str, scopes: frozenset[Permission], days: int
) -> tuple[str, ApiToken]:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=principal.user_id,
        party_id=principal.party_id,
        name=name,
        prefix=secret[:10],
        token_hash=sha256_hex(secret),
        scopes=sorted(scopes),
        expires_at=utcnow() + timedelta(days=days),
    )
    session.add(token)
    session.flush()
    audit.record(
        session,
        actor=principal,
        action=EventTag.TOKEN_CREATE,
        object_type="token",
        object_id=token.id,
        party_id=principal.party_id,
        summary=f"API token '{name}' ({token.prefix}…) issued for {days} days",
        reasons=sorted(scopes),
    )
    return secret, token


def login_token(session: Session, user: User, days: int) -> tuple[str, ApiToken]:
    """``POST /auth/token``: a token with all the user's permissions (subject to party status)."""
    party = session.get(Party, user.party_id)
    assert party is not None
    principal = principal_for(user, party, via="password")
    return _issue_token(session, principal, "login", principal.permissions, days)


def list_tokens(
    session: Session, principal: Principal, *, limit: int, offset: int
) -> tuple[list[ApiToken], int]:
    _require(principal, P.IDENTITY_TOKEN_MANAGE)
    stmt = select(ApiToken).where(ApiToken.user_id == principal.user_id)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(ApiToken.created_at.desc()).limit(limit).offset(offset))
    return list(rows), total


def get_token(session: Session, principal: Principal, token_id: str) -> ApiToken:
    _require(principal, P.IDENTITY_TOKEN_MANAGE)
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != principal.user_id:
        raise NotFound(N_("No such token."))
    return token


def revoke_token(session: Session, principal: Principal, token_id: str) -> ApiToken:
    token = get_token(session, principal, token_id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(
            session,
            actor=principal,
            action=EventTag.TOKEN_REVOKE,
            object_type="token",
            object_id=token.id,
            party_id=token.party_id,
            summary=f"API token '{token.name}' ({token.prefix}…) revoked",
        )
    return token


# Every API request resolves its token, so this is one prebuilt Core query over the three tables
# (no ORM entities to build, no statement to construct or cache-key per call): ~3x cheaper.
_token_t, _user_t, _party_t = ApiToken.__table__.c, User.__table__.c, Party.__table__.c
_RESOLVE_TOKEN = (
    select(
        _token_t.id,
        _token_t.token_hash,
        _token_t.scopes,
        _token_t.expires_at,
        _token_t.revoked_at,
        _user_t.id,
        _user_t.username,
        _user_t.roles,
        _user_t.is_active,
        _party_t.id,
        _party_t.kind,
        _party_t.status,
    )
    .join_from(ApiToken.__table__, User.__table__, _user_t.id == _token_t.user_id)
    .join(Party.__table__, _party_t.id == _token_t.party_id)
    .where(_token_t.token_hash == bindparam("token_hash"))
)


def resolve_token(session: Session | Connection, secret: str) -> Principal:
    """The principal behind a bearer token, or Unauthenticated saying why it is refused.

    Checks everything afresh each time: the token exists, is not revoked or expired, its user is
    active, and the permissions follow the party's current status.
    """
    digest = sha256_hex(secret)
    row = session.execute(_RESOLVE_TOKEN, {"token_hash": digest}).one_or_none()
    return _token_principal(row, digest)


async def authenticate_token(db: Database, secret: str) -> Principal:
    """``resolve_token`` from async code over ``Database.lookup``: what every API request runs."""
    digest = sha256_hex(secret)
    return _token_principal(await db.lookup(_RESOLVE_TOKEN, {"token_hash": digest}), digest)


@functools.lru_cache(maxsize=1024)
def _token_grants(
    token_scopes: tuple[str, ...], user_roles: tuple[str, ...], party_kind: str, verified: bool
) -> tuple[frozenset[Role], frozenset[Permission]]:
    """A token's roles and permissions: the same derivation as principal_for(), from the
    selected columns. A pure function of its arguments (the grants are code), so memoised: the
    derivation was about a tenth of an authenticated API request under cProfile. The token
    itself (revocation, expiry, user, party status) is still checked on every request."""
    scopes = frozenset(Permission(s) for s in token_scopes if s in Permission._value2member_map_)
    roles = frozenset(Role(r) for r in user_roles)
    return roles, effective_permissions(party_kind, verified, roles) & scopes


def _token_principal(row: Any, digest: str) -> Principal:
    if row is None or not hmac.compare_digest(row[1], digest):
        raise Unauthenticated(N_("The API token is not valid."), code="invalid-token")
    (
        token_id,
        _hash,
        token_scopes,
        expires_at,
        revoked_at,
        user_id,
        username,
        user_roles,
        is_active,
        party_id,
        party_kind,
        party_status,
    ) = row
    if revoked_at is not None:
        raise Unauthenticated(N_("The API token was revoked."), code="token-revoked")
    if expires_at <= utcnow():
        raise Unauthenticated(N_("The API token expired; create a new one."), code="token-expired")
    if not is_active:
        raise Unauthenticated(N_("The token's user is deactivated."), code="user-inactive")
    roles, permissions = _token_grants(
        tuple(token_scopes), tuple(user_roles), party_kind, party_status == PartyStatus.VERIFIED
    )
    return Principal(
        user_id=user_id,
        username=username,
        party_id=party_id,
        party_kind=party_kind,
        roles=roles,
        permissions=permissions,
        via="token",
        token_id=token_id,
    )


# ------------------------------------------------------------------------------- operator support


def find_party_id(session: Session, code_type: str, country: str, code: str) -> str | None:
    """The id of the party registered under an identifier, if any (operator and demo loading)."""
    return session.scalar(
        select(Party.id).where(
            Party.code_type == code_type, Party.country == country, Party.code == code
        )
    )


def ensure_user_password(session: Session, username: str, password: str) -> bool | None:
    """Set a user's password if it differs; None when the user does not exist."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        return None
    return set_password(session, user, password, None)
