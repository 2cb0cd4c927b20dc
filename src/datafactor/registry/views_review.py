"""Registry console pages for review and the public: the registrar's queue, the public notice board
with objections, certificates with their chain of title and rights-lineage graph, and the public
verification page (``/verify``, no login).

Thin shells over ``registry.services``: read the form, check CSRF, call the use case in a unit of
work, render the page (or, for the queue's filters, the HTMX partial of its table). Errors a person
caused re-render the page with the message in their language.

Reads the services do not offer (the queue's filters by type and track, a right's neighbourhood
for the graph, which certificate belongs to which right) are small helpers here over the models,
with the services' visibility rules: the queue needs the review permission, a certificate page is
its holder's or a registrar's / regulator's, names of parties and assets are shown only where the
viewer may see them (ids otherwise), and the public pages show ids only, as the ledger does.

The rights-lineage graph is inline SVG drawn by ``registry/_graph.html`` from a layout computed
here: nodes layered by depth of title (original holding rights on the left, each licence,
transfer or derived product right one column to the right of what it rests on), rows ordered by
the mean row of their parents and then by kind and id, so the same rights always give the same
picture. No script, nothing downloaded.

Checking an uploaded receipt on ``/verify`` is a pure computation that changes nothing, so that
form carries no CSRF token (as the ledger explorer's receipt check). A receipt is checked against
this log's current signing key and against the entry the ledger holds at the receipt's index.
"""

from __future__ import annotations

import base64
import importlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from datafactor import context, ledger
from datafactor.errors import N_, DomainError, Forbidden, InvalidInput, NotFound
from datafactor.identity import WebIdentity, counterparty_names
from datafactor.permissions import Permission, Principal
from datafactor.registry import services
from datafactor.registry.api import TodayDep
from datafactor.registry.domain import (
    CERTIFICATE_EVENT_KIND,
    CERTIFICATE_STATUS_LABELS,
    OBJECTION_RECORD_LABELS,
    ORIGIN_LABELS,
    RIGHT_KIND_LABELS,
    RIGHT_STATUS_LABELS,
    STATE_LABELS,
    TRACK_LABELS,
    AssetKind,
    RegistrationState,
    RegistrationType,
    Right,
    RightsBook,
    Track,
    certificate_bytes,
    descendants,
    load_registry_rules,
    parse_certificate_number,
)
from datafactor.registry.models import (
    RegistryApplication,
    RegistryAsset,
    RegistryCertificate,
    RegistryLineage,
    RegistryObjection,
    RegistryRight,
)
from datafactor.web.deps import DbDep, MaybeWebUser, SettingsDep, WebUser, check_csrf
from datafactor.web.forms import (
    error_text,
    form_list,
    read_form,
    read_small_upload,
    redirect,
    render,
)
from datafactor.web.i18n import gettext
from datafactor.web.templating import local_time

router = APIRouter(include_in_schema=False)
public_router = APIRouter(include_in_schema=False)

P = Permission
S = RegistrationState
PAGE: Final = 20
QUEUE_LIMIT: Final = 500
# States whose owner is the registrar: what the review queue lists.
QUEUE_STATES: Final = (
    S.SUBMITTED,
    S.FORMAL_REVIEW,
    S.SUBSTANTIVE_REVIEW,
    S.PUBLIC_NOTICE,
    S.OBJECTION,
)
MAX_GRAPH_NODES: Final = 60
# Uploaded receipts: the ledger refuses a receipt over 1 MiB; one byte more is read to tell.
MAX_RECEIPT_UPLOAD: Final = 1 << 20

ASSET_KIND_LABELS: Final[dict[str, str]] = {
    AssetKind.RESOURCE: N_("Data resource"),
    AssetKind.PRODUCT: N_("Data product"),
    AssetKind.SERVICE: N_("Data service"),
    AssetKind.TOOL: N_("Data tool"),
}
OUTCOME_LABELS: Final[dict[str, str]] = {
    "substantiated": N_("Substantiated: the registration is refused"),
    "dismissed": N_("Not substantiated: the notice goes on"),
}
EDGE_LABELS: Final[dict[str, str]] = {
    "licensed": N_("licence"),
    "transferred": N_("transfer"),
    "derived": N_("basis"),
    "lineage": N_("derived from"),
}

MSG_QUEUE_FORBIDDEN: Final = N_(
    "The review queue is for the registration authority's registrars. If you review "
    "registrations, ask your administrator for the registrar role."
)
MSG_NO_CERTIFICATE_PAGE: Final = N_(
    "Certificate {number} is not one of yours. Anyone can check it on the public verification "
    "page: /verify/{number}."
)
MSG_ENTER_NUMBER: Final = N_(
    "Enter a certificate number (for example GX-DR-2026-000123) or choose a receipt file."
)
MSG_NO_RECEIPT_FILE: Final = N_("Choose a receipt file (JSON) to check.")
MSG_BAD_DECISION: Final = N_(
    "Choose whether the objection is substantiated, and give the reason for your decision."
)
MSG_NO_PDF: Final = N_("The certificate PDF is not available yet on this server. Try again later.")

LABELS: Final[dict[str, Any]] = {
    "state_labels": STATE_LABELS,
    "track_labels": TRACK_LABELS,
    "kind_labels": RIGHT_KIND_LABELS,
    "origin_labels": ORIGIN_LABELS,
    "right_status_labels": RIGHT_STATUS_LABELS,
    "cert_status_labels": CERTIFICATE_STATUS_LABELS,
    "asset_kind_labels": ASSET_KIND_LABELS,
    "outcome_labels": OUTCOME_LABELS,
    "record_labels": OBJECTION_RECORD_LABELS,
}


# ------------------------------------------------------------------------------------ helpers


def _lang() -> str:
    return "zh" if context.locale.get().startswith("zh") else "en"


def _type_label(value: str) -> str:
    """A registration type's name in the request's language, from the rules file."""
    try:
        names = load_registry_rules().type_rules(RegistrationType(value)).name
    except (ValueError, KeyError):
        return value
    return names.get(_lang()) or names.get("en") or value


def _type_labels() -> dict[str, str]:
    return {t.value: _type_label(t.value) for t in RegistrationType}


def _grounds_labels() -> dict[str, str]:
    lang = _lang()
    return {
        code: text.get(lang) or text.get("en") or code
        for code, text in load_registry_rules().objection_grounds.items()
    }


def _short(ident: str) -> str:
    return ident[:8]


def _party_names(
    session: Session, principal: Principal, party_ids: Iterable[str]
) -> dict[str, str]:
    """Display names of the parties a page relates the viewer to (``counterparty_names``)."""
    return counterparty_names(session, principal, party_ids)


def _sees_all(principal: Principal) -> bool:
    return principal.can(P.REGISTRY_APPLICATION_READ_ALL)


def _asset_visible(principal: Principal | None, asset: RegistryAsset) -> bool:
    """The services' rule for assets: one's own, or every one with the read-all permission."""
    if principal is None:
        return False
    if asset.party_id == principal.party_id:
        return principal.can(P.REGISTRY_ASSET_READ)
    return principal.can(P.REGISTRY_ASSET_READ_ALL)


def _certificate_visible(principal: Principal | None, holder_id: str) -> bool:
    """The services' rule for certificates: the holder's own, every one for registrars and
    regulators."""
    if principal is None:
        return False
    if holder_id == principal.party_id:
        return principal.can(P.REGISTRY_APPLICATION_READ) or _sees_all(principal)
    return _sees_all(principal)


def _calendar_days(session: Session, start: date | None, end: date | None) -> int | None:
    """A notice's length in working days, counted as the Civil Code counts periods (art. 201:
    the day it starts is not counted), or None when a date is missing."""
    if start is None or end is None:
        return None
    return services.calendar_for(session).working_days_between(start, end)


# ------------------------------------------------------------------------------- the queue


@dataclass(frozen=True)
class QueueFilter:
    state: str | None = None
    type: str | None = None
    track: str | None = None


def _check_choice(value: str | None, allowed: Iterable[str], name: str) -> str | None:
    if not value:
        return None
    if value not in set(allowed):
        raise InvalidInput(
            N_("Unknown {name}: {value}. Choose one from the list."),
            field=name,
            name=name,
            value=value,
        )
    return value


def _queue_rows(
    session: Session, principal: Principal, flt: QueueFilter
) -> list[RegistryApplication]:
    """Applications waiting on a registrar, filtered (the services list only by state)."""
    states = [flt.state] if flt.state else [s.value for s in QUEUE_STATES]
    stmt = select(RegistryApplication).where(RegistryApplication.state.in_(states))
    if flt.type:
        stmt = stmt.where(RegistryApplication.type == flt.type)
    if flt.track:
        stmt = stmt.where(RegistryApplication.track == flt.track)
    stmt = stmt.order_by(RegistryApplication.due_on, RegistryApplication.id).limit(QUEUE_LIMIT)
    return list(session.scalars(stmt))


def _queue_context(
    session: Session, principal: Principal, flt: QueueFilter, today: date
) -> dict[str, Any]:
    if not principal.can(P.REGISTRY_APPLICATION_REVIEW):
        raise Forbidden(MSG_QUEUE_FORBIDDEN, code="registry-not-registrar")
    late = {
        row.id: days for row, days, _ in services.overdue_queue(session, principal, today=today)
    }
    rows = _queue_rows(session, principal, flt)
    calendar = services.calendar_for(session)
    assets = {
        a.id: a
        for a in session.scalars(
            select(RegistryAsset).where(RegistryAsset.id.in_({r.asset_id for r in rows}))
        )
    }
    open_objections: dict[str, list[str]] = {}
    for objection in session.scalars(
        select(RegistryObjection)
        .where(
            RegistryObjection.application_id.in_([r.id for r in rows if r.state == S.OBJECTION]),
            RegistryObjection.outcome.is_(None),
        )
        .order_by(RegistryObjection.lodged_on, RegistryObjection.id)
    ):
        open_objections.setdefault(objection.application_id, []).append(objection.id)
    names = _party_names(session, principal, {r.applicant_id for r in rows})
    items: list[dict[str, Any]] = []
    for row in rows:
        days_left = None
        if row.due_on is not None and row.id not in late:
            days_left = calendar.working_days_between(today, row.due_on)
        asset = assets.get(row.asset_id)
        items.append(
            {
                "id": row.id,
                "type": row.type,
                "track": row.track,
                "state": row.state,
                "owner": row.owner_role,
                "applicant": names.get(row.applicant_id, _short(row.applicant_id)),
                "asset": asset.name if asset is not None else _short(row.asset_id),
                "submitted_on": row.submitted_on,
                "due_on": row.due_on,
                "days_left": days_left,
                "days_late": late.get(row.id),
                "notice_ends": row.notice_ends,
                "notice_over": row.state == S.PUBLIC_NOTICE
                and row.notice_ends is not None
                and row.notice_ends < today,
                "objections": open_objections.get(row.id, []),
            }
        )
    # Overdue first (the longest overdue first), then by due date.
    items.sort(
        key=lambda i: (
            i["days_late"] is None,
            -(i["days_late"] or 0),
            i["due_on"] or date.max,
            i["id"],
        )
    )
    return {
        "items": items,
        "overdue_count": sum(1 for i in items if i["days_late"] is not None),
        "filter": flt,
        "queue_states": [s.value for s in QUEUE_STATES],
        "type_labels": _type_labels(),
        "today": today,
    }


@router.get("/registry/queue")
def queue(
    request: Request,
    identity: WebUser,
    db: DbDep,
    today: TodayDep,
    state: Annotated[str | None, Query(max_length=24)] = None,
    type: Annotated[str | None, Query(max_length=24)] = None,
    track: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    principal = identity.principal
    if not principal.can(P.REGISTRY_APPLICATION_REVIEW):
        raise Forbidden(MSG_QUEUE_FORBIDDEN, code="registry-not-registrar")
    flt = QueueFilter(
        _check_choice(state, [s.value for s in QUEUE_STATES], "state"),
        _check_choice(type, [t.value for t in RegistrationType], "type"),
        _check_choice(track, [t.value for t in Track], "track"),
    )
    with db.read() as session:
        ctx = _queue_context(session, principal, flt, today)
    template = (
        "registry/queue_table.html" if request.headers.get("HX-Request") else "registry/queue.html"
    )
    return render(request, template, identity, **ctx, **LABELS)


# --------------------------------------------------------------------- notices and objections


def _notices_context(
    session: Session, principal: Principal, page: int, today: date
) -> dict[str, Any]:
    rows, total = services.notice_board(session, principal, limit=PAGE, offset=(page - 1) * PAGE)
    assets = {
        a.id: a
        for a in session.scalars(
            select(RegistryAsset).where(RegistryAsset.id.in_({r.asset_id for r in rows}))
        )
    }
    names = _party_names(session, principal, {r.applicant_id for r in rows})
    calendar = services.calendar_for(session)
    items = []
    for row in rows:
        asset = assets.get(row.asset_id)
        left = None
        if row.notice_ends is not None and row.notice_ends >= today:
            left = calendar.working_days_between(today - timedelta(days=1), row.notice_ends)
        items.append(
            {
                "id": row.id,
                "type": row.type,
                "state": row.state,
                "track": row.track,
                # What is registered is the content of a public notice: its name and kind are
                # shown to every party (that is what they may object to).
                "asset": asset.name if asset is not None else _short(row.asset_id),
                "asset_kind": asset.kind if asset is not None else "",
                "asset_id": row.asset_id,
                "asset_link": asset is not None and _asset_visible(principal, asset),
                "applicant": names.get(row.applicant_id, _short(row.applicant_id)),
                "own": row.applicant_id == principal.party_id,
                "notice_starts": row.notice_starts,
                "notice_ends": row.notice_ends,
                "notice_days": _calendar_days(session, row.notice_starts, row.notice_ends),
                "days_left": left,
            }
        )
    mine = list(
        session.scalars(
            select(RegistryObjection)
            .where(RegistryObjection.objector_id == principal.party_id)
            .order_by(RegistryObjection.lodged_on.desc(), RegistryObjection.id)
            .limit(50)
        )
    )
    return {
        "items": items,
        "total": total,
        "page": page,
        "pages": max(1, -(-total // PAGE)),
        "my_objections": mine,
        "grounds_labels": _grounds_labels(),
        "type_labels": _type_labels(),
        "can_object": principal.can(P.REGISTRY_OBJECTION_LODGE),
        "is_registrar": principal.can(P.REGISTRY_APPLICATION_REVIEW),
        "today": today,
    }


def _notices_page(
    request: Request,
    identity: WebIdentity,
    db: Any,
    today: date,
    *,
    page: int = 1,
    status: int = 200,
    **extra: Any,
) -> Response:
    with db.read() as session:
        ctx = _notices_context(session, identity.principal, page, today)
    return render(
        request, "registry/notices.html", identity, status=status, **ctx, **LABELS, **extra
    )


@router.get("/registry/notices")
def notices(
    request: Request,
    identity: WebUser,
    db: DbDep,
    today: TodayDep,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
) -> Response:
    return _notices_page(request, identity, db, today, page=page)


@router.post("/registry/notices/{application_id}/objections")
async def lodge_objection(
    request: Request, application_id: str, identity: WebUser, db: DbDep, today: TodayDep
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    evidence = tuple(line.strip() for line in form.get("evidence", "").splitlines() if line.strip())
    draft = services.ObjectionDraft(
        grounds=tuple(form_list(form, "grounds")),
        statement=form.get("statement", "").strip(),
        evidence=evidence,
    )
    try:
        with db.write() as session:
            objection_id = services.lodge(
                session, identity.principal, application_id, draft, today=today
            ).id
    except DomainError as exc:
        shown: dict[str, Any] = {
            "form": form,
            "form_application": application_id,
            **error_text(exc),
        }
        return _notices_page(request, identity, db, today, status=exc.status, **shown)
    return redirect(f"/registry/objections/{objection_id}")


def _objection_page(
    request: Request,
    identity: WebIdentity,
    db: Any,
    objection_id: str,
    *,
    status: int = 200,
    **extra: Any,
) -> Response:
    principal = identity.principal
    with db.read() as session:
        objection = services.get_objection(session, principal, objection_id)
        application = session.get(RegistryApplication, objection.application_id)
        assert application is not None
        asset = session.get(RegistryAsset, application.asset_id)
        names = _party_names(session, principal, {objection.objector_id, application.applicant_id})
        ctx = {
            "objection": objection,
            "application": application,
            "asset_name": asset.name if asset is not None else _short(application.asset_id),
            "objector": names[objection.objector_id],
            "applicant": names[application.applicant_id],
            "can_decide": principal.can(P.REGISTRY_APPLICATION_REVIEW)
            and objection.outcome is None,
            "can_see_application": application.applicant_id == principal.party_id
            or _sees_all(principal),
            "grounds_labels": _grounds_labels(),
            "type_labels": _type_labels(),
        }
    return render(
        request, "registry/objection.html", identity, status=status, **ctx, **LABELS, **extra
    )


@router.get("/registry/objections/{objection_id}")
def objection_detail(request: Request, objection_id: str, identity: WebUser, db: DbDep) -> Response:
    return _objection_page(request, identity, db, objection_id)


@router.post("/registry/objections/{objection_id}/decision")
async def objection_decide(
    request: Request, objection_id: str, identity: WebUser, db: DbDep, today: TodayDep
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    choice = form.get("substantiated", "")
    reason = form.get("reason", "").strip()
    try:
        if choice not in ("yes", "no") or not reason:
            raise InvalidInput(MSG_BAD_DECISION, field="reason")
        with db.write() as session:
            services.decide(
                session,
                identity.principal,
                objection_id,
                substantiated=choice == "yes",
                reason=reason,
                today=today,
            )
    except DomainError as exc:
        shown: dict[str, Any] = {"form": form, **error_text(exc)}
        return _objection_page(request, identity, db, objection_id, status=exc.status, **shown)
    return redirect(f"/registry/objections/{objection_id}")


# ---------------------------------------------------------------------- the lineage graph


NODE_W: Final = 224
NODE_H: Final = 62
COL_GAP: Final = 72
ROW_GAP: Final = 18
PAD: Final = 12


@dataclass
class GraphNode:
    """One box of the graph: a right or an asset, its text, link and place."""

    id: str
    lines: tuple[str, ...]
    css: str
    href: str | None = None
    current: bool = False
    parents: list[tuple[str, str]] = field(default_factory=list)  # (parent id, edge kind)
    sort_key: tuple[Any, ...] = ()
    layer: int = 0
    row: int = 0
    x: int = 0
    y: int = 0


@dataclass(frozen=True)
class GraphEdge:
    source: str
    target: str
    kind: str
    label: str
    path: str
    label_x: int
    label_y: int


@dataclass(frozen=True)
class Graph:
    """A laid-out graph: what ``registry/_graph.html`` draws."""

    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]
    width: int
    height: int
    node_w: int = NODE_W
    node_h: int = NODE_H


def layout(nodes: Sequence[GraphNode], edge_labels: Mapping[str, str]) -> Graph:
    """Layer ``nodes`` by depth (a node one column right of its deepest parent) and order each
    column by the mean row of the node's parents, then by its sort key: deterministic."""
    by_id = {n.id: n for n in nodes}
    depth: dict[str, int] = {}

    def depth_of(node_id: str, trail: frozenset[str]) -> int:
        if node_id in depth:
            return depth[node_id]
        parents = [p for p, _ in by_id[node_id].parents if p in by_id and p not in trail]
        value = 0
        if parents:
            value = 1 + max(depth_of(p, trail | {node_id}) for p in parents)
        depth[node_id] = value
        return value

    for node in sorted(nodes, key=lambda n: n.id):
        node.layer = depth_of(node.id, frozenset())
    layers: dict[int, list[GraphNode]] = {}
    for node in nodes:
        layers.setdefault(node.layer, []).append(node)
    rows: dict[str, int] = {}
    for index in sorted(layers):
        column = layers[index]

        def key(n: GraphNode) -> tuple[Any, ...]:
            placed = [rows[p] for p, _ in n.parents if p in rows]
            mean = sum(placed) / len(placed) if placed else 0.0
            return (mean, n.sort_key, n.id)

        column.sort(key=key)
        for row, node in enumerate(column):
            node.row = row
            rows[node.id] = row
            node.x = PAD + index * (NODE_W + COL_GAP)
            node.y = PAD + row * (NODE_H + ROW_GAP)
    edges = []
    for node in sorted(nodes, key=lambda n: (n.layer, n.row)):
        for parent_id, kind in node.parents:
            parent = by_id.get(parent_id)
            if parent is None:
                continue
            x1, y1 = parent.x + NODE_W, parent.y + NODE_H // 2
            x2, y2 = node.x, node.y + NODE_H // 2
            if x2 <= x1:  # same or earlier column (only in a broken, cyclic record): go around
                x2 = node.x + NODE_W
            mid = (x1 + x2) // 2
            edges.append(
                GraphEdge(
                    source=parent_id,
                    target=node.id,
                    kind=kind,
                    label=edge_labels.get(kind, kind),
                    path=f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2 - 6},{y2}",
                    label_x=mid,
                    label_y=(y1 + y2) // 2 - 4,
                )
            )
    columns = max(layers) + 1 if layers else 0
    tallest = max((len(c) for c in layers.values()), default=0)
    width = PAD * 2 + columns * NODE_W + max(0, columns - 1) * COL_GAP
    height = PAD * 2 + tallest * NODE_H + max(0, tallest - 1) * ROW_GAP
    ordered = tuple(sorted(nodes, key=lambda n: (n.layer, n.row)))
    return Graph(ordered, tuple(edges), width, height)


_KIND_ORDER: Final = {"holding": 0, "processing_use": 1, "product_operation": 2}


def _right_node(
    right: Mapping[str, Any],
    *,
    holder: str,
    number: str | None,
    href: str | None,
    current: bool,
    gettext: Any,
) -> GraphNode:
    kind = str(right["kind"])
    status = str(right["status"])
    parents: list[tuple[str, str]] = []
    if right.get("parent_id"):
        parents.append((str(right["parent_id"]), str(right.get("origin") or "licensed")))
    for basis in right.get("basis_ids") or ():
        parents.append((str(basis), "derived"))
    status_text = gettext(RIGHT_STATUS_LABELS.get(status, status))
    return GraphNode(
        id=str(right["id"]),
        lines=(
            gettext(RIGHT_KIND_LABELS.get(kind, kind)),
            holder,
            f"{status_text} · {number}" if number else status_text,
        ),
        css=f"right-{status}",
        href=href,
        current=current,
        parents=parents,
        sort_key=(_KIND_ORDER.get(kind, 9), holder),
    )


def _right_dict(right: Right) -> dict[str, Any]:
    return {
        "id": right.id,
        "kind": right.kind.value,
        "origin": right.origin.value,
        "holder_id": right.holder_id,
        "asset_id": right.asset_id,
        "status": right.status.value,
        "parent_id": right.parent_id,
        "basis_ids": sorted(right.basis_ids),
    }


def _chain_rights(chain: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The rights of a chain of title (``ChainOfTitle.as_dict``) with their parents as edges."""
    found: dict[str, dict[str, Any]] = {}

    def walk(part: Mapping[str, Any]) -> str | None:
        links = list(part.get("links") or ())
        for i, link in enumerate(links):
            entry = found.setdefault(str(link["id"]), {**link, "parent_id": None, "basis_ids": []})
            if i + 1 < len(links):
                entry["parent_id"] = str(links[i + 1]["id"])
        tops = [walk(b) for b in part.get("bases") or ()]
        if links and tops:
            found[str(links[-1]["id"])]["basis_ids"] = [t for t in tops if t]
        return str(links[0]["id"]) if links else None

    if chain:
        walk(chain)
    return found


def _asset_closure(session: Session, asset_ids: Iterable[str]) -> set[str]:
    """The assets, the sources they were derived from and the products built from them."""
    seen: set[str] = set()
    todo = set(asset_ids)
    while todo and len(seen) < MAX_GRAPH_NODES * 4:
        seen |= todo
        links = session.execute(
            select(RegistryLineage.product_id, RegistryLineage.source_id).where(
                or_(
                    RegistryLineage.product_id.in_(todo),
                    RegistryLineage.source_id.in_(todo),
                )
            )
        ).all()
        todo = {x for link in links for x in link} - seen
    return seen


def _book_around(session: Session, asset_id: str) -> RightsBook:
    """Every right on the asset's lineage closure and the parents and bases they name."""
    closure = _asset_closure(session, [asset_id])
    rows = {
        r.id: r
        for r in session.scalars(select(RegistryRight).where(RegistryRight.asset_id.in_(closure)))
    }
    missing = {x for r in rows.values() for x in (r.parent_id, *r.basis_ids) if x} - set(rows)
    while missing:
        found = list(session.scalars(select(RegistryRight).where(RegistryRight.id.in_(missing))))
        for r in found:
            rows[r.id] = r
        missing = {x for r in found for x in (r.parent_id, *r.basis_ids) if x} - set(rows)
    return RightsBook(r.to_domain() for r in rows.values())


def _certificates_of(session: Session, right_ids: Iterable[str]) -> dict[str, RegistryCertificate]:
    """Each right's latest certificate (a current one before a superseded one)."""
    out: dict[str, RegistryCertificate] = {}
    ids = list(set(right_ids))
    if not ids:
        return out
    for cert in session.scalars(
        select(RegistryCertificate)
        .where(RegistryCertificate.right_id.in_(ids))
        .order_by(RegistryCertificate.year, RegistryCertificate.serial)
    ):
        kept = out.get(cert.right_id)
        if kept is None or cert.status == "current" or kept.status != "current":
            out[cert.right_id] = cert
    return out


def rights_graph(
    session: Session,
    principal: Principal | None,
    right_id: str,
    chain: Mapping[str, Any] | None,
    gettext: Any,
) -> Graph:
    """The right's chain of title (its parents, licences it came from, transfers, the bases of a
    derived right) and, for a logged-in viewer, what rests on it (licences, successors, derived
    product rights). Nodes link to the certificate page the viewer may open (else the public
    verification page)."""
    rights = _chain_rights(chain)
    if principal is not None:
        own = session.get(RegistryRight, right_id)
        if own is not None:
            book = _book_around(session, own.asset_id)
            if right_id in book:
                # The recorded title, also when the chain of title is broken.
                todo = [right_id]
                while todo and len(rights) < MAX_GRAPH_NODES:
                    current = book.right(todo.pop())
                    if current.id not in rights or rights[current.id].get("parent_id") is None:
                        rights[current.id] = _right_dict(current)
                    todo += [
                        p
                        for p in (current.parent_id, *sorted(current.basis_ids))
                        if p and p in book and p not in rights
                    ]
                for below in descendants(book, right_id)[: MAX_GRAPH_NODES - len(rights)]:
                    rights.setdefault(below.id, _right_dict(below))
    if not rights:
        own = session.get(RegistryRight, right_id)
        if own is not None:
            rights[right_id] = _right_dict(own.to_domain())
    certificates = _certificates_of(session, rights)
    names = (
        _party_names(session, principal, {str(r["holder_id"]) for r in rights.values()})
        if principal is not None
        else {}
    )
    nodes = []
    for rid, entry in rights.items():
        cert = certificates.get(rid)
        holder_id = str(entry["holder_id"])
        href = None
        if cert is not None:
            href = (
                f"/registry/certificates/{cert.number}"
                if _certificate_visible(principal, cert.holder_id)
                else f"/verify/{cert.number}"
            )
        nodes.append(
            _right_node(
                entry,
                holder=names.get(holder_id) or _short(holder_id),
                number=cert.number if cert is not None else None,
                href=href,
                current=rid == right_id,
                gettext=gettext,
            )
        )
    return layout(nodes, {k: gettext(v) for k, v in EDGE_LABELS.items()})


def lineage_graph(
    session: Session, principal: Principal | None, asset_id: str, gettext: Any
) -> Graph | None:
    """The asset's lineage: the resources it was derived from and the products built from it.
    None when the asset stands alone."""
    closure = _asset_closure(session, [asset_id])
    if len(closure) < 2:
        return None
    assets = {
        a.id: a for a in session.scalars(select(RegistryAsset).where(RegistryAsset.id.in_(closure)))
    }
    parents: dict[str, list[tuple[str, str]]] = {}
    for product_id, source_id in session.execute(
        select(RegistryLineage.product_id, RegistryLineage.source_id)
        .where(RegistryLineage.product_id.in_(closure))
        .order_by(RegistryLineage.product_id, RegistryLineage.source_id)
    ):
        parents.setdefault(product_id, []).append((source_id, "lineage"))
    nodes = []
    for aid, asset in sorted(assets.items())[:MAX_GRAPH_NODES]:
        visible = _asset_visible(principal, asset)
        kind = gettext(ASSET_KIND_LABELS.get(asset.kind, asset.kind))
        nodes.append(
            GraphNode(
                id=aid,
                lines=(kind, asset.name if visible else _short(aid), ""),
                css=f"asset-{asset.kind}",
                href=f"/registry/assets/{aid}" if visible else None,
                current=aid == asset_id,
                parents=parents.get(aid, []),
                sort_key=(asset.kind, asset.name if visible else aid),
            )
        )
    return layout(nodes, {k: gettext(v) for k, v in EDGE_LABELS.items()})


# ---------------------------------------------------------------------------- certificates


def _visible_certificate(
    session: Session, principal: Principal, number: str, today: date
) -> RegistryCertificate:
    if not (principal.can(P.REGISTRY_APPLICATION_READ) or _sees_all(principal)):
        raise Forbidden(services.MSG_NOT_ALLOWED, permission=P.REGISTRY_APPLICATION_READ.value)
    parsed = str(parse_certificate_number(number, today=today))
    cert = session.scalars(
        select(RegistryCertificate).where(RegistryCertificate.number == parsed)
    ).one_or_none()
    if cert is None:
        # The same refusal (and rule) as the public verification of an unknown number.
        raise NotFound(
            services.MSG_NO_CERTIFICATE,
            field="number",
            code="registry-unknown-certificate",
            number=parsed,
            rule=load_registry_rules().rule_id("certificate_number"),
        )
    if not _certificate_visible(principal, cert.holder_id):
        raise NotFound(MSG_NO_CERTIFICATE_PAGE, number=parsed, code="registry-not-your-certificate")
    return cert


@router.get("/registry/certificates")
def certificates(
    request: Request,
    identity: WebUser,
    db: DbDep,
    today: TodayDep,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
) -> Response:
    principal = identity.principal
    with db.read() as session:
        rows, total = services.list_certificates(
            session, principal, limit=PAGE, offset=(page - 1) * PAGE, today=today
        )
        names = _party_names(session, principal, {r.holder_id for r in rows})
    return render(
        request,
        "registry/certificates.html",
        identity,
        items=rows,
        holders=names,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE)),
        sees_all=_sees_all(principal),
        **LABELS,
    )


def _scope_view(scope: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    names = {
        "purposes": N_("Purposes"),
        "fields": N_("Fields"),
        "regions": N_("Regions"),
        "delivery_modes": N_("Delivery modes"),
    }
    out = []
    for key, label in names.items():
        values = (scope or {}).get(key)
        out.append((label, "*" if values is None else ", ".join(str(v) for v in values)))
    return out


@router.get("/registry/certificates/{number}")
def certificate_detail(
    request: Request, number: str, identity: WebUser, db: DbDep, today: TodayDep
) -> Response:
    principal = identity.principal
    with db.read() as session:
        cert = _visible_certificate(session, principal, number, today)
        check = services.verify_certificate(session, cert.number, today=today)
        shown = check.as_dict()
        shown["issued_at"] = _issued_at(shown["issued_at"])
        right = session.get(RegistryRight, cert.right_id)
        assert right is not None
        asset = session.get(RegistryAsset, cert.asset_id)
        names = _party_names(
            session, principal, {cert.holder_id, *([right.pledgee_id] if right.pledgee_id else [])}
        )
        ctx: dict[str, Any] = {
            "cert": cert,
            "check": shown,
            "right": right,
            "asset": asset,
            "asset_link": asset is not None and _asset_visible(principal, asset),
            "holder": names[cert.holder_id],
            "pledgee": names.get(right.pledgee_id) if right.pledgee_id else None,
            "scope": _scope_view(right.scope),
            "chain_rows": _chain_rows(session, principal, check.chain_of_title),
            "graph": rights_graph(session, principal, cert.right_id, check.chain_of_title, gettext),
            "lineage": lineage_graph(session, principal, cert.asset_id, gettext),
            "type_label": _type_label(str(cert.payload.get("registration", {}).get("type", ""))),
            "can_receipt": cert.holder_id == principal.party_id or _sees_all(principal),
        }
    return render(request, "registry/certificate.html", identity, **ctx, **LABELS)


def _chain_rows(
    session: Session, principal: Principal | None, chain: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """The chain of title as indented rows (a right, then what it rests on), for the table."""
    rows: list[dict[str, Any]] = []
    rights = _chain_rights(chain)
    certs = _certificates_of(session, rights)
    names = (
        _party_names(session, principal, {str(r["holder_id"]) for r in rights.values()})
        if principal is not None
        else {}
    )

    def walk(part: Mapping[str, Any], depth: int) -> None:
        for link in part.get("links") or ():
            cert = certs.get(str(link["id"]))
            rows.append(
                {
                    **link,
                    "depth": depth,
                    "holder": names.get(str(link["holder_id"])) or _short(str(link["holder_id"])),
                    "number": cert.number if cert is not None else None,
                    "visible": cert is not None and _certificate_visible(principal, cert.holder_id),
                }
            )
            depth += 1
        for basis in part.get("bases") or ():
            walk(basis, depth)

    if chain:
        walk(chain, 0)
    return rows


@router.get("/registry/certificates/{number}/receipt")
def certificate_receipt(
    number: str, identity: WebUser, db: DbDep, settings: SettingsDep, today: TodayDep
) -> Response:
    keys = services.issuer_for(settings).keys
    with db.write() as session:
        receipt = services.certificate_receipt(
            session, identity.principal, number, keys, today=today
        )
        name = str(parse_certificate_number(number, today=today))
    return Response(
        receipt.dumps(),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}.receipt.json"'},
    )


@router.get("/registry/certificates/{number}/pdf")
def certificate_pdf(
    request: Request,
    number: str,
    identity: WebUser,
    db: DbDep,
    settings: SettingsDep,
    today: TodayDep,
) -> Response:
    try:
        # Imported when asked for: the PDF renderer's libraries are loaded only by this page.
        pdf = importlib.import_module("datafactor.registry.pdf")
    except ImportError as exc:
        raise NotFound(MSG_NO_PDF, code="registry-pdf-unavailable") from exc
    # The same address as the API's PDF: the public one when configured (behind a proxy).
    base_url = (settings.public_base_url or str(request.base_url)).rstrip("/")
    with db.read() as session:
        data = pdf.certificate_pdf(
            session, identity.principal, number, base_url=base_url, today=today
        )
        name = str(parse_certificate_number(number, today=today))
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}.pdf"'},
    )


# ------------------------------------------------------------------------ public verification


@dataclass
class ReceiptOutcome:
    """What checking an uploaded receipt established: ``ok`` only when every check passed."""

    ok: bool = False
    number: str | None = None
    passed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    advice: str | None = None


MSG_RECEIPT_UNREADABLE: Final = N_(
    "This file is not a ledger receipt ({reason}). Download the certificate's receipt again "
    "from its certificate page (a JSON file) and upload that file unchanged."
)
MSG_RECEIPT_NOT_CERTIFICATE: Final = N_(
    "This receipt is for ledger entry {index}, which is not a registry certificate. Upload the "
    "receipt downloaded from a certificate page."
)
MSG_RECEIPT_NOT_OURS: Final = N_(
    "Entry {index} of this registry's ledger is not the entry in the receipt."
)
MSG_RECEIPT_ENTRY_OK: Final = N_("Entry {index} of this registry's ledger is the receipt's entry.")
MSG_RECEIPT_WRONG_ENTRY: Final = N_("Certificate {number} was not issued in ledger entry {index}.")
MSG_RECEIPT_SIGNED: Final = N_(
    "The certificate {number} in the entry carries the registry's signature."
)
MSG_RECEIPT_UNSIGNED: Final = N_(
    "The certificate {number} in the entry does not match the registry's signature."
)
MSG_RECEIPT_TAMPERED: Final = N_(
    "This receipt does not verify: it was changed after it was issued, or it does not come from "
    "this registry's ledger. Do not rely on it; ask the holder for a fresh receipt, or check the "
    "certificate number below."
)


def check_certificate_receipt(session: Session, settings: Any, raw: bytes) -> ReceiptOutcome:
    """Check an uploaded certificate receipt as ``datafactor verify-receipt`` does (signature of
    the checkpoint under this log's key, inclusion proof to its root), then that it is this
    ledger's entry at that index and that the entry is the certificate's issue event."""
    out = ReceiptOutcome()
    try:
        receipt = ledger.Receipt.loads(raw)
    except ValueError as exc:
        out.problems.append(gettext(MSG_RECEIPT_UNREADABLE, reason=str(exc)))
        return out
    try:
        event = json.loads(receipt.entry)
    except (ValueError, UnicodeDecodeError, RecursionError):
        event = None
    payload = event.get("payload") if isinstance(event, dict) else None
    if (
        not isinstance(event, dict)
        or event.get("kind") != CERTIFICATE_EVENT_KIND
        or not isinstance(payload, dict)
        or not isinstance(payload.get("number"), str)
    ):
        out.problems.append(gettext(MSG_RECEIPT_NOT_CERTIFICATE, index=receipt.index))
        return out
    out.number = payload["number"]
    # Every key the log ever signed with: a receipt taken before a key rotation still verifies.
    current = ledger.keys_for(settings).ensure().verifier().key_string()
    trusted = sorted({current, *(v.key_string() for v in ledger.log_verifiers(session))})
    result = ledger.verify_receipt(receipt, trusted_log_keys=trusted)
    out.passed.extend(result.passed)
    out.problems.extend(result.problems)
    if result.ok:
        try:
            stored: bytes | None = ledger.get_entry(session, receipt.index).entry
        except DomainError:
            stored = None
        if stored != receipt.entry:
            out.problems.append(gettext(MSG_RECEIPT_NOT_OURS, index=receipt.index))
        else:
            out.passed.append(gettext(MSG_RECEIPT_ENTRY_OK, index=receipt.index))
        cert = session.scalars(
            select(RegistryCertificate).where(RegistryCertificate.number == out.number)
        ).one_or_none()
        if cert is None or cert.ledger_index != receipt.index:
            out.problems.append(
                gettext(MSG_RECEIPT_WRONG_ENTRY, number=out.number, index=receipt.index)
            )
        elif _signed(cert, payload):
            out.passed.append(gettext(MSG_RECEIPT_SIGNED, number=out.number))
        else:
            out.problems.append(gettext(MSG_RECEIPT_UNSIGNED, number=out.number))
    out.ok = not out.problems
    if not out.ok:
        out.advice = gettext(MSG_RECEIPT_TAMPERED)
    return out


def _signed(cert: RegistryCertificate, payload: Mapping[str, Any]) -> bool:
    """Whether the certificate in a receipt's entry carries the registry's signature."""
    try:
        verifier = ledger.Verifier.from_key_string(cert.key)
        return bool(
            verifier.verify(certificate_bytes(dict(payload)), base64.b64decode(cert.signature))
        )
    except (ValueError, DomainError):
        return False


def _issued_at(value: Any) -> str | None:
    """The payload's UTC issue time, shown in Asia/Shanghai."""
    if not isinstance(value, str):
        return None
    try:
        return local_time(datetime.fromisoformat(value), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value


def _verify_context(session: Session, number: str, today: date) -> dict[str, Any]:
    check = services.verify_certificate(session, number, today=today)
    data = check.as_dict()
    data["issued_at"] = _issued_at(data.get("issued_at"))
    return {
        "result": data,
        "chain_rows": _chain_rows(session, None, check.chain_of_title),
        "graph": rights_graph(session, None, data["right_id"], check.chain_of_title, gettext),
        "number": data["number"],
    }


def _verify_page(
    request: Request,
    identity: WebIdentity | None,
    db: Any,
    today: date,
    *,
    number: str | None = None,
    receipt: ReceiptOutcome | None = None,
    status: int = 200,
    **extra: Any,
) -> Response:
    ctx: dict[str, Any] = {"number": number or "", "receipt": receipt, "result": None}
    if number:
        try:
            with db.read() as session:
                ctx.update(_verify_context(session, number, today))
        except DomainError as exc:
            status = exc.status
            extra.update(error_text(exc))
    return render(
        request, "registry/verify.html", identity, status=status, **ctx, **LABELS, **extra
    )


@public_router.get("/verify")
def verify_form(
    request: Request,
    identity: MaybeWebUser,
    db: DbDep,
    today: TodayDep,
    number: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The verification form; ``?number=`` (the form's GET) goes to the number's page."""
    if number is not None:
        text = number.strip()
        if not text:
            return _verify_page(
                request, identity, db, today, status=422, error=gettext(MSG_ENTER_NUMBER)
            )
        try:
            parsed = parse_certificate_number(text, today=today)
        except DomainError as exc:
            shown: dict[str, Any] = {**error_text(exc), "typed": text}
            return _verify_page(request, identity, db, today, status=exc.status, **shown)
        return redirect(f"/verify/{parsed}")
    return _verify_page(request, identity, db, today)


@public_router.get("/verify/{number}")
async def verify_number(
    request: Request, number: str, identity: MaybeWebUser, db: DbDep, today: TodayDep
) -> Response:
    """The page a certificate's QR code opens: computed once per (number, day, registry
    revision, language) and then served from the page cache, like the API's verification."""
    key = (number, today, await services.registry_revision(db), context.locale.get())
    cache = services.verification_cache(db, "page")
    found: dict[str, Any] | None = cache.get(key)
    if found is None:
        try:
            found = await db.run_read(lambda s: _verify_context(s, number, today))
        except DomainError as exc:
            shown = {"number": number, "receipt": None, "result": None, **error_text(exc)}
            return render(
                request, "registry/verify.html", identity, status=exc.status, **shown, **LABELS
            )
        cache.put(key, found)
    ctx = {"receipt": None, **found}
    return render(request, "registry/verify.html", identity, **ctx, **LABELS)


@public_router.post("/verify")
async def verify_receipt_upload(
    request: Request,
    identity: MaybeWebUser,
    db: DbDep,
    settings: SettingsDep,
    today: TodayDep,
) -> Response:
    """Check an uploaded receipt (bounded: at most the ledger's receipt size is read)."""
    try:
        raw = await read_small_upload(request, "receipt", MAX_RECEIPT_UPLOAD)
    except InvalidInput as exc:
        return _verify_page(
            request, identity, db, today, status=413, error=error_text(exc)["error"]
        )
    if not raw:
        return _verify_page(
            request, identity, db, today, status=400, error=gettext(MSG_NO_RECEIPT_FILE)
        )

    def check() -> ReceiptOutcome:
        with db.read() as session:
            return check_certificate_receipt(session, settings, raw)

    outcome = await run_in_threadpool(check)
    return _verify_page(
        request,
        identity,
        db,
        today,
        number=outcome.number if outcome.number else None,
        receipt=outcome,
        status=200 if outcome.ok else 422,
    )
