"""Test data factories: parties with users, and API tokens for them."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import date

from fastapi.testclient import TestClient

from datafactor.db import Database
from datafactor.identity import (
    PartyApplication,
    PartyKind,
    ServiceRole,
    create_user_as_operator,
    register_party,
)
from datafactor.identity.codes import make_resident_id, make_uscc

PASSWORD = "Correct-Horse-9"


@dataclass(frozen=True)
class Actor:
    """A party with one user, created for a test."""

    party_id: str
    user_id: str
    username: str
    password: str
    kind: str


_serial = itertools.count(1)


def new_code(kind: PartyKind) -> str:
    n = next(_serial)
    if kind is PartyKind.INDIVIDUAL:
        return make_resident_id("450102", date(1990, 1, 1 + n % 28), n % 1000)
    if kind is PartyKind.FOREIGN_COMPANY:
        return f"VN{n:08d}"
    return make_uscc("9", "1", "450100", f"TT{n:06d}")


def make_actor(
    db: Database,
    kind: PartyKind = PartyKind.ENTERPRISE,
    *,
    roles: tuple[str, ...] = ("admin",),
    verified: bool = True,
    username: str | None = None,
    name: str | None = None,
    service_role: ServiceRole | None = None,
) -> Actor:
    n = next(_serial)
    username = username or f"user{n}"
    with db.write() as session:
        party = register_party(
            session,
            None,
            PartyApplication(
                kind=kind,
                name=name or f"测试主体{n}",
                name_en=f"Test party {n}",
                code=new_code(kind),
                country="VN" if kind is PartyKind.FOREIGN_COMPANY else "CN",
                service_role=(service_role or ServiceRole.BROKER)
                if kind is PartyKind.SERVICE_FIRM
                else None,
            ),
            today=date(2026, 11, 1),
            verified=verified,
        )
        user = create_user_as_operator(
            session,
            party.id,
            username=username,
            display_name=f"User {n}",
            password=PASSWORD,
            roles=list(roles),
        )
        return Actor(party.id, user.id, username, PASSWORD, kind)


def bearer(client: TestClient, actor: Actor) -> dict[str, str]:
    response = client.post(
        "/api/v1/auth/token", json={"username": actor.username, "password": actor.password}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def csrf_of(html: str) -> str:
    """The CSRF token of a console page's forms."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def console_login(
    client: TestClient, actor: Actor, landing: str, lang: str | None = "zh_CN"
) -> str:
    """Log ``actor`` in to the console (its language cookie ``lang``) and open ``landing``: the
    CSRF token of that page's forms. With ``lang=None`` no language cookie is set, so the pages
    follow each request's Accept-Language (the cookie would win over it)."""
    client.cookies.clear()
    if lang is not None:
        client.cookies.set("df_lang", lang)
    page = client.get("/login")
    r = client.post(
        "/login",
        data={
            "username": actor.username,
            "password": PASSWORD,
            "csrf_token": csrf_of(page.text),
            "next": landing,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return csrf_of(client.get(landing).text)
