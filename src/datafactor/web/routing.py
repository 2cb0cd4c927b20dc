"""Route matching that skips a whole router when the path cannot be one of its routes.

FastAPI tries an included router's routes one by one, so a request to the last domain's API
walked every route before it (≈180 µs for ``/api/v1/registry/verify/…`` with ~300 routes, a
fifth of the request's CPU). ``guard`` gives a router a cheap first test: the literal path
prefixes its routes can start with. A path under none of them answers "no match" at once; any
other goes through FastAPI's matching unchanged, so what matches is exactly what matched before.

A guard skips a router's routes, not FastAPI's bookkeeping around an included router: each time
one is matched, FastAPI first checks the routes-version of the router it includes by walking
every route of every router below it. So routers are included one level deep (``create_app``
includes each domain's API in the app under ``/api/v1``): a request walks the routes of the
router it matches, not those of every domain under a shared ``/api/v1`` router (which cost the
public certificate lookup two walks over every API route per request).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from fastapi import APIRouter
from starlette._utils import get_route_path
from starlette.routing import Match
from starlette.types import Scope

_GUARDED = "_datafactor_route_guard"


def heads(router: APIRouter, mount: str) -> tuple[str, ...] | None:
    """``mount`` + the first literal segment of each of ``router``'s routes, or None when a
    route starts with a parameter (nothing can be skipped then)."""
    found: set[str] = set()
    for route in router.routes:
        path = getattr(route, "path", None)
        if not isinstance(path, str):
            return None
        first = path.lstrip("/").split("/", 1)[0]
        if not first or "{" in first:
            return None
        found.add(f"{mount}/{first}")
    return tuple(sorted(found))


def guard(router: APIRouter, prefixes: Iterable[str] | None) -> None:
    """Make ``router`` answer no match for paths outside ``prefixes`` (idempotent)."""
    if prefixes is None or getattr(router, _GUARDED, None) is not None:
        return
    allowed = tuple(prefixes)
    inner: Callable[[Scope], tuple[Match, Scope]] = router.matches

    def matches(scope: Scope) -> tuple[Match, Scope]:
        # The path routes see: without the root path the app is served under, as Starlette
        # matches (starlette.routing.get_route_path).
        if not get_route_path(scope).startswith(allowed):
            return Match.NONE, {}
        return inner(scope)

    router.matches = matches  # type: ignore[method-assign]
    setattr(router, _GUARDED, allowed)
