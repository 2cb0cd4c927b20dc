"""The web application: one FastAPI app serving the console (HTML), the REST API and health checks.

``create_app`` wires settings, the database, templates, middleware (request id, locale, security
headers) and every domain's routers. Domains contribute an ``api.router`` and a ``views.router``;
nothing else about a domain is known here except the registry's public certificate lookup, whose
cached answers a middleware of the registry sends before routing
(``registry.api.VerificationShortcut``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from anyio import to_thread
from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from datafactor import __version__
from datafactor.db import Database
from datafactor.settings import Settings, get_settings
from datafactor.web import audit_routes, core_views, problems, routing
from datafactor.web.deps import LANG_COOKIE, reject_unknown_query
from datafactor.web.middleware import RequestContextMiddleware
from datafactor.web.templating import make_templates

STATIC_DIR = Path(__file__).parent / "web" / "static"
API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    from datafactor.census import api as census_api
    from datafactor.census import views as census_views
    from datafactor.discovery import api as discovery_api
    from datafactor.discovery import views as discovery_views
    from datafactor.exchange import api_auctions as exchange_api_auctions
    from datafactor.exchange import api_delivery as exchange_api_delivery
    from datafactor.exchange import api_listings as exchange_api_listings
    from datafactor.exchange import api_settle as exchange_api_settle
    from datafactor.exchange import api_trades as exchange_api_trades
    from datafactor.exchange import views_auctions as exchange_views_auctions
    from datafactor.exchange import views_delivery as exchange_views_delivery
    from datafactor.exchange import views_listings as exchange_views_listings
    from datafactor.exchange import views_settle as exchange_views_settle
    from datafactor.exchange import views_trades as exchange_views_trades
    from datafactor.identity import api as identity_api
    from datafactor.identity import views as identity_views
    from datafactor.inbox import api as inbox_api
    from datafactor.inbox import views as inbox_views
    from datafactor.ledger import api as ledger_api
    from datafactor.ledger import views as ledger_views
    from datafactor.policy import api as policy_api
    from datafactor.policy import views as policy_views
    from datafactor.policy.grants import api as grants_api
    from datafactor.policy.grants import views as grants_views
    from datafactor.policy.operation import api as operation_api
    from datafactor.policy.operation import views as operation_views
    from datafactor.policy.trusts import api as trusts_api
    from datafactor.policy.trusts import views as trusts_views
    from datafactor.registry import api as registry_api
    from datafactor.registry import views as registry_views
    from datafactor.registry import views_admin as registry_views_admin
    from datafactor.registry import views_review as registry_review
    from datafactor.sandbox import api as sandbox_api
    from datafactor.sandbox import views as sandbox_views
    from datafactor.settlement import api as settlement_api
    from datafactor.settlement import views as settlement_views

    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Fewer worker threads than AnyIO's 40: blocking database calls are short, and 40
        # threads fighting for the GIL cost more CPU than they overlap I/O.
        to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        yield
        await app.state.db.aclose()

    app = FastAPI(
        lifespan=lifespan,
        title="DataFactor API",
        version=__version__,
        description="Data property registration, trading and governance (桂政办发〔2023〕51号).",
        docs_url="/docs",
        openapi_url=f"{API_PREFIX}/openapi.json",
    )
    app.state.settings = settings
    app.state.db = db or Database(settings.database_url, pool_size=settings.db_pool_size)
    app.state.templates = make_templates()
    problems.install(app)

    # Each domain's API is included in the app itself under /api/v1, not through one /api/v1
    # router: FastAPI checks an included router's routes-version by walking every route of every
    # router below it, at each match — twice per request — so one /api/v1 router holding all the
    # domains made every API request walk all the API routes (web/routing.py). Every route, API
    # or page, refuses unknown query parameters (a typo must not silently drop a filter).
    strict = [Depends(reject_unknown_query)]
    for domain_api in (
        identity_api.router,
        audit_routes.api_router,
        ledger_api.router,
        discovery_api.router,
        census_api.router,
        registry_api.router,
        inbox_api.router,
        policy_api.router,
        grants_api.router,
        operation_api.router,
        trusts_api.router,
        settlement_api.router,
        exchange_api_listings.router,
        exchange_api_trades.router,
        exchange_api_auctions.router,
        exchange_api_delivery.router,
        exchange_api_settle.router,
        sandbox_api.router,
    ):
        routing.guard(domain_api, routing.heads(domain_api, API_PREFIX))
        app.include_router(domain_api, prefix=API_PREFIX, dependencies=strict)
    for views in (
        core_views.router,
        identity_views.router,
        audit_routes.views_router,
        ledger_views.router,
        discovery_views.router,
        census_views.router,
        inbox_views.router,
        policy_views.router,
        grants_views.router,
        operation_views.router,
        trusts_views.router,
        settlement_views.router,
        exchange_views_listings.router,
        exchange_views_trades.router,
        exchange_views_auctions.router,
        exchange_views_delivery.router,
        exchange_views_settle.router,
        sandbox_views.router,
        registry_views_admin.router,
        registry_views.router,
        registry_review.router,
        # The public verification pages (/verify): no login, like the ledger explorer.
        registry_review.public_router,
    ):
        routing.guard(views, routing.heads(views, ""))
        app.include_router(views, dependencies=strict)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # The public certificate lookup answers cached verifications before routing (the
    # registry's hottest path); inside the request context, so its responses carry the same
    # request id and security headers. The last middleware added is the outermost.
    (verify_route,) = (
        r
        for r in registry_api.router.routes
        if isinstance(r, APIRoute) and r.endpoint is registry_api.verify
    )
    app.add_middleware(registry_api.VerificationShortcut, path=API_PREFIX + verify_route.path)
    app.add_middleware(
        RequestContextMiddleware, default_locale=settings.default_locale, lang_cookie=LANG_COOKIE
    )

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__})

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        started = time.perf_counter()
        try:
            with app.state.db.read() as session:
                session.execute(text("SELECT 1 FROM audit_chain_head WHERE 1 = 0"))
        except Exception:
            return JSONResponse({"status": "unavailable", "database": "down"}, status_code=503)
        ms = round((time.perf_counter() - started) * 1000, 2)
        return JSONResponse({"status": "ready", "database": "ok", "latency_ms": ms})

    return app
