"""JSON routes of the sandbox under ``/api/v1/sandbox``: parse, call the services, answer.

* ``GET /sandbox/grants`` — the caller's sandbox grants (tables, columns with roles, k, budget).
* ``POST /sandbox/queries`` — run ``{"grant_id", "sql"[, "epsilon"]}``: ``{"decision",
  "reasons", "columns", "rows", "epsilon_spent", "id", "state", "k", "held"}``; a refusal is an
  answer (200), not an error.
* ``POST /sandbox/queries/preview`` — the cost preview (nothing spent, nothing recorded).
* ``GET /sandbox/queries`` (paged), ``GET /sandbox/queries/{id}``, ``POST
  /sandbox/queries/{id}/review`` (the holder releases or withholds a held result).
* ``GET``/``PUT /sandbox/profiles/{asset_id}`` — the holder's profile of an asset.

Unknown or invisible ids are 404; refusals of the use cases problem+json naming the rule.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from datafactor.db import utcnow
from datafactor.sandbox import services
from datafactor.sandbox.schemas import (
    GrantPublic,
    PreviewAnswer,
    ProfileDeclare,
    ProfilePublic,
    QueryAnswer,
    QueryCreate,
    QueryPage,
    QueryRecord,
    ReviewCreate,
)
from datafactor.web.deps import ApiPrincipal, DbDep, PagingDep, SettingsDep

router = APIRouter(prefix="/sandbox", tags=["sandbox"])


def sandbox_now() -> datetime:
    """The instant a query is decided at; tests override it."""
    return utcnow()


NowDep = Annotated[datetime, Depends(sandbox_now)]


@router.get("/grants", response_model=list[GrantPublic], summary="The caller's sandbox grants")
def grants(principal: ApiPrincipal, db: DbDep, now: NowDep) -> list[dict[str, Any]]:
    with db.read() as s:
        return [g.as_dict() for g in services.list_sandbox_grants(s, principal, now=now)]


@router.post("/queries", response_model=QueryAnswer, summary="Run a query under a sandbox grant")
def run(
    body: QueryCreate, principal: ApiPrincipal, db: DbDep, settings: SettingsDep, now: NowDep
) -> dict[str, Any]:
    answer = services.run_query(
        db, settings, principal, body.grant_id, body.sql, epsilon=body.epsilon, now=now
    )
    return answer.as_dict()


@router.post(
    "/queries/preview",
    response_model=PreviewAnswer,
    summary="What a query would cost (nothing spent)",
)
def preview(body: QueryCreate, principal: ApiPrincipal, db: DbDep, now: NowDep) -> dict[str, Any]:
    with db.read() as s:
        return services.preview_query(
            s, principal, body.grant_id, body.sql, epsilon=body.epsilon, now=now
        )


@router.get("/queries", response_model=QueryPage, summary="Recorded queries the caller may see")
def queries(
    principal: ApiPrincipal,
    db: DbDep,
    paging: PagingDep,
    grant_id: str | None = None,
    state: str | None = None,
) -> dict[str, Any]:
    with db.read() as s:
        rows, total = services.list_queries(
            s, principal, grant_id=grant_id, state=state, limit=paging.limit, offset=paging.offset
        )
        items = [services.query_dict(r, principal) for r in rows]
    return {"items": items, "total": total, "limit": paging.limit, "offset": paging.offset}


@router.get("/queries/{query_id}", response_model=QueryRecord, summary="One recorded query")
def query(query_id: str, principal: ApiPrincipal, db: DbDep) -> dict[str, Any]:
    with db.read() as s:
        return services.query_dict(services.get_query(s, principal, query_id), principal)


@router.post(
    "/queries/{query_id}/review",
    response_model=QueryRecord,
    summary="Release or withhold a held result (the data holder)",
)
def review(query_id: str, body: ReviewCreate, principal: ApiPrincipal, db: DbDep) -> dict[str, Any]:
    with db.write() as s:
        row = services.review_query(s, principal, query_id, release=body.release, note=body.note)
        return services.query_dict(row, principal)


@router.get(
    "/profiles/{asset_id}", response_model=ProfilePublic, summary="An asset's sandbox profile"
)
def profile(asset_id: str, principal: ApiPrincipal, db: DbDep) -> dict[str, Any]:
    with db.read() as s:
        return services.profile_dict(services.get_profile(s, principal, asset_id))


@router.put(
    "/profiles/{asset_id}",
    response_model=ProfilePublic,
    summary="Declare an asset's sandbox profile (its holder)",
)
def declare(
    asset_id: str,
    body: ProfileDeclare,
    principal: ApiPrincipal,
    db: DbDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    with db.write() as s:
        row = services.declare_profile(s, principal, body.draft(asset_id), settings=settings)
        return services.profile_dict(row)
