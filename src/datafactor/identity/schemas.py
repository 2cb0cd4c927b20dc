"""API shapes of the identity domain: ``XCreate`` in, ``XPublic`` out, ``Page`` for lists."""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from datafactor.identity.codes import mask_resident_id
from datafactor.identity.domain import CodeType, PartyKind, ServiceRole
from datafactor.identity.models import ApiToken, Party, User
from datafactor.permissions import Permission

T = TypeVar("T")


class Strict(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class PartyPublic(BaseModel):
    id: str
    kind: PartyKind
    service_role: ServiceRole | None
    name: str
    name_en: str
    code_type: CodeType
    code: str = Field(description="Identifier; an individual's resident ID is masked for others.")
    country: str
    status: str
    status_reason: str
    created_at: datetime
    reviewed_at: datetime | None

    @classmethod
    def of(cls, party: Party, *, viewer_party_id: str, unmask: bool = False) -> PartyPublic:
        code = party.code
        if party.code_type == CodeType.RESIDENT_ID and party.id != viewer_party_id and not unmask:
            code = mask_resident_id(code)
        return cls(
            id=party.id,
            kind=PartyKind(party.kind),
            service_role=ServiceRole(party.service_role) if party.service_role else None,
            name=party.name,
            name_en=party.name_en,
            code_type=CodeType(party.code_type),
            code=code,
            country=party.country,
            status=party.status,
            status_reason=party.status_reason,
            created_at=party.created_at,
            reviewed_at=party.reviewed_at,
        )


class PartyApply(Strict):
    kind: PartyKind
    name: str = Field(max_length=512)
    name_en: str = Field("", max_length=512)
    code: str = Field(max_length=64)
    country: str = Field("CN", max_length=8)
    service_role: ServiceRole | None = None
    contact_email: str = Field("", max_length=512)
    admin_username: str = Field(max_length=64)
    admin_display_name: str = Field("", max_length=128)
    admin_password: str = Field(max_length=256)


class PartyReview(Strict):
    approve: bool
    reason: str = Field("", max_length=2000)


class PartyStanding(Strict):
    suspend: bool
    reason: str = Field(max_length=2000)


class UserPublic(BaseModel):
    id: str
    party_id: str
    username: str
    display_name: str
    roles: list[str]
    is_active: bool
    locked: bool
    last_login_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, user: User, now: datetime) -> UserPublic:
        return cls(
            id=user.id,
            party_id=user.party_id,
            username=user.username,
            display_name=user.display_name,
            roles=list(user.roles),
            is_active=user.is_active,
            locked=bool(user.locked_until and user.locked_until > now),
            last_login_at=user.last_login_at,
            created_at=user.created_at,
        )


class UserCreate(Strict):
    username: str = Field(max_length=64)
    display_name: str = Field("", max_length=128)
    password: str = Field(max_length=256)
    roles: list[str] = Field(max_length=8)


class UserUpdate(Strict):
    roles: list[str] | None = Field(None, max_length=8)
    display_name: str | None = Field(None, max_length=128)
    is_active: bool | None = None


class TokenCreate(Strict):
    name: str = Field(max_length=128)
    scopes: list[Permission] | None = Field(
        None, description="Permissions the token carries; default: all you hold."
    )
    expires_in_days: int = Field(30, ge=1, le=3650)


class TokenPublic(BaseModel):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, token: ApiToken) -> TokenPublic:
        return cls(
            id=token.id,
            name=token.name,
            prefix=token.prefix,
            scopes=list(token.scopes),
            created_at=token.created_at,
            expires_at=token.expires_at,
            revoked_at=token.revoked_at,
        )


class TokenIssued(TokenPublic):
    token: str = Field(description="The secret. Shown once; only its hash is kept.")


class LoginRequest(Strict):
    username: str = Field(max_length=64)
    password: str = Field(max_length=256)


class LoginTokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
