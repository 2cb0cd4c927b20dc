"""Every object endpoint refuses another tenant (403/404) and serves its owner."""

from __future__ import annotations

import pytest
from factories import make_actor
from isolation import ENDPOINTS, PUBLIC, headers_for

from datafactor.identity import PartyKind


def _id(endpoint) -> str:
    return f"{endpoint.method} {endpoint.path}"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=_id)
def test_other_tenant_is_refused_and_owner_served(client, db, endpoint):
    owner = make_actor(db, PartyKind(endpoint.owner_kind))
    owner_headers = headers_for(client, owner)
    object_id = endpoint.make(client, owner, owner_headers)
    url = endpoint.path.replace(
        endpoint.path[endpoint.path.index("{") : endpoint.path.index("}") + 1], object_id
    )
    for name, value in endpoint.path_values.items():
        url = url.replace("{" + name + "}", value)
    for kind in ("enterprise", "individual", *endpoint.extra_intruder_kinds):
        intruder = make_actor(db, PartyKind(kind))
        r = client.request(
            endpoint.method, url, headers=headers_for(client, intruder), json=endpoint.body
        )
        assert r.status_code in (403, 404), f"{kind} got {r.status_code} on {url}: {r.text}"
        assert r.headers["content-type"].startswith("application/problem+json")
    r = client.request(endpoint.method, url, headers=owner_headers, json=endpoint.body)
    assert r.status_code in endpoint.ok_status, r.text


def test_every_object_route_is_registered(app):
    # The OpenAPI document lists every API route (app.routes nests included routers).
    paths = app.openapi()["paths"]
    assert "/api/v1/parties/{party_id}" in paths  # the walk below sees real routes
    registered = {_id(e) for e in ENDPOINTS}
    missing = []
    for path, operations in paths.items():
        if not path.startswith("/api/") or "{" not in path:
            continue
        for method in sorted(m.upper() for m in operations):
            key = f"{method} {path}"
            if key not in registered and key not in PUBLIC and path not in PUBLIC:
                missing.append(key)
    assert not missing, (
        "Object endpoints missing from tests/support/isolation.py (ENDPOINTS or PUBLIC): "
        + ", ".join(missing)
    )
