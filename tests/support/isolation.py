"""The shared tenant-isolation registry: every API endpoint that returns or changes one object.

Each entry says how to create an object owned by one party and how to call the endpoint on it.
``tests/test_tenant_isolation.py`` calls every entry with another party's token (must answer 403 or
404) and with the owner's (must succeed, so the check cannot pass vacuously), and fails when an
API route with a path parameter is neither registered here nor listed as public. New domains add
their endpoints to ``ENDPOINTS`` (or ``PUBLIC``, with the reason).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from factories import PASSWORD, Actor, bearer
from fastapi.testclient import TestClient

from datafactor.identity.codes import make_uscc

Maker = Callable[[TestClient, Actor, dict[str, str]], str]


@dataclass(frozen=True)
class ObjectEndpoint:
    method: str
    path: str  # the route path, with its one path parameter in braces
    make: Maker  # creates the object as the owner; returns the path parameter's value
    body: dict[str, Any] | None = None
    owner_kind: str = "enterprise"  # kind of the owner party (and of the intruder's party)
    ok_status: tuple[int, ...] = (200, 201)
    notes: str = ""
    extra_intruder_kinds: tuple[str, ...] = field(default=())


def _own_party(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    return owner.party_id


def _own_user(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    r = client.post(
        "/api/v1/users",
        headers=headers,
        json={
            "username": f"{owner.username}.u",
            "display_name": "",
            "password": PASSWORD,
            "roles": ["staff"],
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _own_token(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    r = client.post(
        "/api/v1/tokens", headers=headers, json={"name": "isolation", "expires_in_days": 1}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _own_audit_event(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    r = client.get("/api/v1/audit/events?limit=1", headers=headers)
    assert r.status_code == 200, r.text
    return str(r.json()["items"][0]["seq"])


_counter = iter(range(10**6))


def _pending_application(client: TestClient, owner: Actor, headers: dict[str, str]) -> str:
    n = next(_counter)
    r = client.post(
        "/api/v1/parties",
        json={
            "kind": "enterprise",
            "name": f"待审企业{n}",
            "code": make_uscc("9", "1", "450100", f"TN{n:06d}"),
            "admin_username": f"iso{n}.admin",
            "admin_password": PASSWORD,
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


ENDPOINTS: list[ObjectEndpoint] = [
    ObjectEndpoint("GET", "/api/v1/parties/{party_id}", _own_party),
    ObjectEndpoint("GET", "/api/v1/users/{user_id}", _own_user),
    ObjectEndpoint("PATCH", "/api/v1/users/{user_id}", _own_user, body={"display_name": "改名"}),
    ObjectEndpoint("GET", "/api/v1/tokens/{token_id}", _own_token),
    ObjectEndpoint("DELETE", "/api/v1/tokens/{token_id}", _own_token),
    ObjectEndpoint("GET", "/api/v1/audit/events/{seq}", _own_audit_event),
    # Reviewing is the exchange operator's act: any other party must be refused.
    ObjectEndpoint(
        "POST",
        "/api/v1/parties/{party_id}/standing",
        _own_party,
        body={"suspend": True, "reason": "核查"},
        owner_kind="enterprise",
        ok_status=(403,),
        notes="only the exchange operator may; the owner itself is refused too",
    ),
    ObjectEndpoint(
        "POST",
        "/api/v1/parties/{party_id}/review",
        _pending_application,
        body={"approve": True},
        owner_kind="exchange_operator",
        notes="owner = an exchange operator; intruder = an enterprise",
    ),
]

# Routes with a path parameter that are deliberately public (no tenant owns them).
PUBLIC: dict[str, str] = {
    "GET /api/v1/ledger/entries/{index}": "the transparency log is public by design (issue 3)",
    "GET /api/v1/ledger/entries/by-hash/{leaf_hash}": "public transparency log lookup",
    "GET /api/v1/ledger/receipts/{index}": "receipts are built from public log data only",
}


def headers_for(client: TestClient, actor: Actor) -> dict[str, str]:
    return bearer(client, actor)
