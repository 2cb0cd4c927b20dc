"""Route guards: a router skipped at once for paths outside its routes' first segments, with
exactly the same matches as before for every route of the application."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Match

from datafactor.web import routing


def test_a_guarded_router_matches_its_own_paths_only() -> None:
    router = APIRouter(prefix="/things")

    @router.get("/{thing_id}")
    def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    other = APIRouter()

    @other.get("/{anything}")
    def anything(anything: str) -> dict[str, str]:
        return {"other": anything}

    assert routing.heads(router, "/api") == ("/api/things",)
    assert routing.heads(other, "/api") is None  # a parameter first: nothing can be skipped
    routing.guard(router, routing.heads(router, "/api"))
    routing.guard(router, ("/elsewhere",))  # idempotent: the first guard stays
    api = APIRouter(prefix="/api")
    api.include_router(router)
    api.include_router(other)
    app = FastAPI()
    app.include_router(api)
    client = TestClient(app)
    assert client.get("/api/things/7").json() == {"id": "7"}
    assert client.get("/api/stuff").json() == {"other": "stuff"}
    assert router.matches({"type": "http", "path": "/api/stuff", "method": "GET"})[0] is (
        Match.NONE
    )


def test_every_api_operation_of_the_app_is_still_reached(app) -> None:  # type: ignore[no-untyped-def]
    """Every path and method of the OpenAPI document (parameters filled in) matches a route
    through the guards: a guard never hides a route of its router."""
    operations = [
        (path, method.upper())
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    assert len(operations) > 80
    for path, method in operations:
        concrete = path
        while "{" in concrete:
            start, end = concrete.index("{"), concrete.index("}")
            concrete = concrete[:start] + "x1" + concrete[end + 1 :]
        scope = {"type": "http", "path": concrete, "method": method, "root_path": ""}
        scope["headers"] = []
        matched = [r for r in app.router.routes if r.matches(dict(scope))[0] is Match.FULL]
        assert matched, f"{method} {path} is no longer reached"


def test_the_guards_hold_under_a_root_path(settings) -> None:  # type: ignore[no-untyped-def]
    """Served under a path prefix (uvicorn --root-path), guarded routes are still reached."""
    from datafactor.app import create_app

    client = TestClient(create_app(settings), root_path="/df")
    assert client.get("/df/verify").status_code == 200
    assert client.get("/df/api/v1/registry/verify/GX-DR-2026-000001").status_code == 404
    assert client.get("/df/api/v1/registry/verify/nonsense").status_code in (400, 422)


def test_the_routers_are_included_one_level_deep(app) -> None:  # type: ignore[no-untyped-def]
    """Each time FastAPI matches an included router it first walks every route of every router
    below it (its routes-version check): a router that includes others would make each request
    under it pay for all their routes, as one /api/v1 router holding every domain's API made
    the public certificate lookup do. Every router is included in the app itself, guarded
    (but the one serving "/", which no first segment can name)."""
    included = [r for r in app.router.routes if hasattr(r, "original_router")]
    assert len(included) > 20
    for branch in included:
        inner = branch.original_router
        paths = {getattr(r, "path", None) for r in inner.routes}
        assert not any(hasattr(r, "original_router") for r in inner.routes), paths
        assert "/" in paths or getattr(inner, routing._GUARDED, None), paths
