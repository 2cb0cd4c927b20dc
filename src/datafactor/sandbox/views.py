"""Sandbox pages (隐私计算沙箱) under ``/sandbox``: thin shells over ``services``.

* ``/sandbox`` — the grantee's sandbox grants (each with its table and columns — name, type,
  role —, k, the ε budget total and left, term and state) and, for a data holder's
  administrator, the assets it holds with a link to each one's sandbox profile.
* ``/sandbox/grants/{id}`` — the SQL editor of one grant: a plain monospace textarea (no
  script), the granted tables and columns beside it, an ε field where the policy asks for
  differential privacy, and two buttons posting the same form: *Preview cost* (the decision,
  reasons with rule ids, the ε it would spend and the output columns; nothing spent) and *Run*
  (the result table, the ε spent and the budget left, or the refusal in the reader's language;
  a held result says it awaits the holder's review). The SQL text is kept on every answer.
* ``/sandbox/queries`` and ``/sandbox/queries/{id}`` — the query record: the grantee's own, the
  holder's over its data, a regulator's all (``services.list_queries``/``get_query`` decide);
  on a held query the holder's administrator releases or withholds the result with a note.
* ``/sandbox/profiles/{asset}`` — the holder declares (or edits) the asset's profile: table
  name, each column's role, measures' clamping bounds, the large flag; grantees and regulators
  read it.

A page the viewer may not see is 404 (the services say so). Refused queries are answers, not
errors; a bad input (an ε out of range, a profile the services refuse) is shown next to its
field with what was typed kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from datafactor import context, registry
from datafactor.db import Database
from datafactor.errors import N_, DomainError, InvalidInput, NotFound
from datafactor.exchange import CONTRACT_STATE_LABELS
from datafactor.identity import WebIdentity, counterparty_names
from datafactor.permissions import Permission, Principal
from datafactor.policy.grants import STATE_LABELS as GRANT_STATE_LABELS
from datafactor.sandbox import services
from datafactor.sandbox.domain import ROLE_LABELS, ColumnRole, QueryState
from datafactor.sandbox.rulebook import rule_id
from datafactor.settings import Settings
from datafactor.web.deps import DbDep, SettingsDep, WebUser, check_csrf
from datafactor.web.forms import error_text, read_form, redirect, render

router = APIRouter(include_in_schema=False)
P = Permission
PAGE: Final = 50
MAX_SQL: Final = 4000  # read_form caps every field at 4096 characters
ROLES: Final = tuple(r.value for r in ColumnRole)
ROLE_TEXT: Final = {r.value: label for r, label in ROLE_LABELS.items()}
STATE_LABELS: Final = {
    QueryState.REFUSED.value: N_("Refused by the rules"),
    QueryState.FAILED.value: N_("Failed (refunded)"),
    QueryState.RELEASED.value: N_("Released"),
    QueryState.HELD.value: N_("Held for review"),
    QueryState.WITHHELD.value: N_("Withheld"),
}
KIND_LABELS: Final = {services.GRANT: N_("Authorisation"), services.CONTRACT: N_("Contract")}
DECISION_LABELS: Final = {
    services.ALLOWED: N_("Allowed"),
    services.REFUSED: N_("Refused by the rules"),
}

MSG_EPSILON_NUMBER: Final = N_("ε must be a number such as 0.5.")
MSG_SQL_EMPTY: Final = N_("Write a SELECT query first.")
MSG_SQL_LONG: Final = N_("The query is too long: at most {max} characters.")
MSG_BOUND_NUMBER: Final = N_("The bounds of {column} must be numbers, such as 0 and 5000.")
MSG_NO_COLUMNS: Final = N_(
    "The asset's data cannot be read to list its columns: register it with a data set "
    "version, then declare its profile."
)


# ------------------------------------------------------------------------------------ helpers


def _lang() -> str:
    return "zh" if context.locale.get().lower().startswith("zh") else "en"


def _reasons(reasons: list[dict[str, str]]) -> list[dict[str, str]]:
    """Reasons as the page shows them: the rule id and the text in the reader's language."""
    lang = _lang()
    return [{"rule": r.get("rule", ""), "text": r.get(lang) or r.get("en", "")} for r in reasons]


def _asset_names(session: Any, asset_ids: set[str]) -> dict[str, str]:
    out = {}
    for asset_id in asset_ids:
        facts = registry.asset_facts(session, asset_id)
        out[asset_id] = facts.name if facts is not None else asset_id[:8]
    return out


def _grant_view(g: services.SandboxGrant) -> dict[str, Any]:
    """A sandbox grant for a page: the integrator's shape, the refusal in the reader's
    language."""
    out = g.as_dict()
    out["reasons"] = _reasons(out["reasons"])
    labels: Mapping[str, str] = (
        GRANT_STATE_LABELS
        if g.kind == services.GRANT
        else {str(k): v for k, v in CONTRACT_STATE_LABELS.items()}
    )
    out["state_label"] = labels.get(g.state, g.state)
    return out


def _own_assets(session: Any, principal: Principal) -> list[dict[str, Any]]:
    """For a holder's administrator: the assets its party holds and whether each has a
    sandbox profile."""
    if not (principal.can(P.SANDBOX_PROFILE_MANAGE) and principal.can(P.REGISTRY_ASSET_READ)):
        return []
    rows, _ = registry.list_assets(session, principal, limit=200, offset=0)
    out = []
    for a in rows:
        if a.party_id != principal.party_id:
            continue
        try:
            profile = services.get_profile(session, principal, a.id)
        except NotFound:
            profile = None
        out.append({"id": a.id, "name": a.name, "profile": profile})
    return out


# ---------------------------------------------------------------------------------- grants


@router.get("/sandbox")
def grants_page(request: Request, identity: WebUser, db: DbDep) -> Response:
    principal = identity.principal
    with db.read() as s:
        grants = services.list_sandbox_grants(s, principal)
        names = counterparty_names(s, principal, {g.holder_id for g in grants})
        assets = _asset_names(s, {g.asset_id for g in grants})
        own = _own_assets(s, principal)
    return render(
        request,
        "sandbox/grants.html",
        identity,
        grants=[_grant_view(g) for g in grants],
        names=names,
        assets=assets,
        own_assets=own,
        role_labels=ROLE_TEXT,
        kind_labels=KIND_LABELS,
        can_read=principal.can(P.SANDBOX_QUERY_READ) or principal.can(P.SANDBOX_QUERY_READ_ALL),
    )


# ---------------------------------------------------------------------------------- editor


def _editor(
    request: Request,
    identity: WebIdentity,
    db: Database,
    grant_id: str,
    *,
    form: dict[str, str],
    status: int = 200,
    **extra: Any,
) -> Response:
    principal = identity.principal
    with db.read() as s:
        g = services.sandbox_grant(s, principal, grant_id)
        holder = counterparty_names(s, principal, {g.holder_id})
        assets = _asset_names(s, {g.asset_id})
    grant = _grant_view(g)
    if "sql" not in form:
        form = {**form, "sql": _default_sql(g)}
    return render(
        request,
        "sandbox/editor.html",
        identity,
        status=status,
        grant=grant,
        holder_name=holder.get(g.holder_id, ""),
        asset_name=assets[g.asset_id],
        dp=grant["epsilon_total"] is not None,
        form=form,
        can_run=principal.can(P.SANDBOX_QUERY_RUN),
        role_labels=ROLE_TEXT,
        kind_labels=KIND_LABELS,
        state_labels=STATE_LABELS,
        decision_labels=DECISION_LABELS,
        **{"preview": None, "answer": None, "editor_error": None, "error_field": None, **extra},
    )


def _default_sql(g: services.SandboxGrant) -> str:
    """A first query to start from: a count per the first group key, if there is one."""
    for table in g.catalog().values():
        key = next((c.name for c in table.columns if c.role is ColumnRole.GROUP_KEY), None)
        if key:
            return f"SELECT {key}, COUNT(*) AS n\nFROM {table.name}\nGROUP BY {key}"
        return f"SELECT COUNT(*) AS n\nFROM {table.name}"
    return ""


@router.get("/sandbox/grants/{grant_id}")
def editor_page(request: Request, grant_id: str, identity: WebUser, db: DbDep) -> Response:
    return _editor(request, identity, db, grant_id, form={})


def _epsilon(text: str) -> float | None:
    text = text.strip().replace("，", ".")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(MSG_EPSILON_NUMBER, field="epsilon") from None
    if not math.isfinite(value):
        raise InvalidInput(MSG_EPSILON_NUMBER, field="epsilon")
    return value


def _sql(text: str) -> str:
    sql = text.strip()
    if not sql:
        raise InvalidInput(MSG_SQL_EMPTY, field="sql")
    if len(sql) > MAX_SQL:
        raise InvalidInput(MSG_SQL_LONG, field="sql", max=MAX_SQL)
    return sql


def _preview(db: Database, principal: Principal, grant_id: str, sql: str, eps: float | None) -> Any:
    with db.read() as s:
        return services.preview_query(s, principal, grant_id, sql, epsilon=eps)


@router.post("/sandbox/grants/{grant_id}")
async def editor_post(
    request: Request, grant_id: str, identity: WebUser, db: DbDep, settings: SettingsDep
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    principal = identity.principal
    action = "run" if form.get("action") == "run" else "preview"
    form = {"sql": form.get("sql", ""), "epsilon": form.get("epsilon", ""), "action": action}
    try:
        sql = _sql(form["sql"])
        eps = _epsilon(form["epsilon"])
        if action == "preview":
            preview = await run_in_threadpool(_preview, db, principal, grant_id, sql, eps)
            preview["reasons"] = _reasons(preview["reasons"])
            return _editor(request, identity, db, grant_id, form=form, preview=preview)
        answer = await run_in_threadpool(_run, db, settings, principal, grant_id, sql, eps)
    except DomainError as exc:
        if exc.status == 404:
            raise
        err = error_text(exc)
        return _editor(
            request,
            identity,
            db,
            grant_id,
            form=form,
            status=exc.status if exc.status != 400 else 422,
            editor_error=err["error"],
            error_field=err["error_field"],
        )
    result = answer.as_dict()
    result["reasons"] = _reasons(result["reasons"])
    return _editor(request, identity, db, grant_id, form=form, answer=result)


def _run(
    db: Database,
    settings: Settings,
    principal: Principal,
    grant_id: str,
    sql: str,
    eps: float | None,
) -> services.QueryAnswer:
    return services.run_query(db, settings, principal, grant_id, sql, epsilon=eps)


# --------------------------------------------------------------------------------- history


def _query_view(row: Any, principal: Principal) -> dict[str, Any]:
    out = services.query_dict(row, principal)
    out["reasons"] = _reasons(out["reasons"])
    out["created"] = row.created_at
    out["reviewed"] = row.reviewed_at
    return out


def _role_of(principal: Principal, q: dict[str, Any]) -> str:
    if principal.party_id == q["grantee_id"]:
        return "grantee"
    if principal.party_id == q["holder_id"]:
        return "holder"
    return "regulator"


@router.get("/sandbox/queries")
def queries_page(
    request: Request,
    identity: WebUser,
    db: DbDep,
    grant: Annotated[str | None, Query(max_length=36)] = None,
    state: Annotated[str | None, Query(max_length=16)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    principal = identity.principal
    state = state if state in STATE_LABELS else None
    with db.read() as s:
        rows, total = services.list_queries(
            s, principal, grant_id=grant or None, state=state, limit=PAGE,
            offset=(page - 1) * PAGE,
        )  # fmt: skip
        items = [_query_view(r, principal) for r in rows]
        parties = {p for q in items for p in (q["grantee_id"], q["holder_id"])}
        names = counterparty_names(s, principal, parties)
        assets = _asset_names(s, {a for q in items for a in q["asset_ids"]})
    return render(
        request,
        "sandbox/queries.html",
        identity,
        queries=[(q, _role_of(principal, q)) for q in items],
        names=names,
        assets=assets,
        grant=grant or "",
        state=state,
        state_labels=STATE_LABELS,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE)),
    )


def _detail(
    request: Request,
    identity: WebIdentity,
    db: Database,
    query_id: str,
    *,
    status: int = 200,
    **extra: Any,
) -> Response:
    principal = identity.principal
    with db.read() as s:
        row = services.get_query(s, principal, query_id)
        q = _query_view(row, principal)
        names = counterparty_names(s, principal, {row.grantee_id, row.holder_id})
        assets = _asset_names(s, set(q["asset_ids"]))
    reviewer = (
        row.state == QueryState.HELD.value
        and principal.party_id == row.holder_id
        and principal.can(P.SANDBOX_QUERY_REVIEW)
    )
    return render(
        request,
        "sandbox/query.html",
        identity,
        status=status,
        q=q,
        role=_role_of(principal, q),
        names=names,
        assets=assets,
        reviewer=reviewer,
        review_rule=rule_id("out_review"),
        state_labels=STATE_LABELS,
        decision_labels=DECISION_LABELS,
        kind_labels=KIND_LABELS,
        **{"form": {}, "review_error": None, **extra},
    )


@router.get("/sandbox/queries/{query_id}")
def query_page(request: Request, query_id: str, identity: WebUser, db: DbDep) -> Response:
    return _detail(request, identity, db, query_id)


@router.post("/sandbox/queries/{query_id}/review")
async def review_post(request: Request, query_id: str, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    release = form.get("decision") == "release"
    note = form.get("note", "").strip()[:2000]
    try:
        with db.write() as s:
            services.review_query(s, identity.principal, query_id, release=release, note=note)
    except DomainError as exc:
        if exc.status in (403, 404):
            raise  # not the holder's administrator: the error page says so
        return _detail(
            request,
            identity,
            db,
            query_id,
            status=exc.status,
            form={"note": note},
            review_error=error_text(exc)["error"],
        )
    return redirect(f"/sandbox/queries/{query_id}")


# --------------------------------------------------------------------------------- profiles


def _profile_rows(
    session: Any,
    settings: Settings,
    principal: Principal,
    facts: registry.AssetFacts | None,
    profile: Any,
) -> list[dict[str, Any]]:
    """The columns the profile form lists: the declared profile's, else the registered
    version's (every column forbidden until the holder says otherwise)."""
    if profile is not None:
        return [dict(c) for c in profile.columns]
    if facts is None or not facts.version_id:
        return []
    try:
        found = services.version_columns(session, settings, facts.version_id)
    except DomainError:
        return []
    return [{"name": n, "type": t, "role": ColumnRole.FORBIDDEN.value} for n, t in found.columns]


def _profile_page(
    request: Request,
    identity: WebIdentity,
    db: Database,
    settings: Settings,
    asset_id: str,
    *,
    form: dict[str, str] | None = None,
    status: int = 200,
    **extra: Any,
) -> Response:
    principal = identity.principal
    with db.read() as s:
        facts = registry.asset_facts(s, asset_id)
        holder = facts is not None and facts.party_id == principal.party_id
        editable = holder and principal.can(P.SANDBOX_PROFILE_MANAGE)
        try:
            profile = services.get_profile(s, principal, asset_id)
        except NotFound:
            if not editable:
                raise
            profile = None
        assert facts is not None  # get_profile found it, or the holder has it
        columns = _profile_rows(s, settings, principal, facts, profile)
    if form is None:
        form = {"table_name": profile.table_name if profile else "", "large": ""}
        if profile is not None and profile.large:
            form["large"] = "on"
        for i, c in enumerate(columns):
            form[f"role_{i}"] = str(c.get("role", ""))
            form[f"lower_{i}"] = "" if c.get("lower") is None else f"{c['lower']:g}"
            form[f"upper_{i}"] = "" if c.get("upper") is None else f"{c['upper']:g}"
    return render(
        request,
        "sandbox/profile.html",
        identity,
        status=status,
        asset=facts,
        profile=profile,
        columns=columns,
        editable=editable,
        form=form,
        roles=ROLES,
        role_labels=ROLE_TEXT,
        profile_rule=rule_id("grant_profile"),
        no_columns=MSG_NO_COLUMNS if editable and not columns else None,
        **{
            "form_error": None,
            "error_field": None,
            "error_column": "",
            "saved": False,
            **extra,
        },
    )


@router.get("/sandbox/profiles/{asset_id}")
def profile_page(
    request: Request,
    asset_id: str,
    identity: WebUser,
    db: DbDep,
    settings: SettingsDep,
    saved: Annotated[int | None, Query(ge=0, le=1)] = None,
) -> Response:
    return _profile_page(request, identity, db, settings, asset_id, saved=bool(saved))


def _bound(text: str, column: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(MSG_BOUND_NUMBER, field="columns", column=column) from None


def _draft(form: dict[str, str], asset_id: str, names: list[str]) -> services.ProfileDraft:
    columns = []
    for i, name in enumerate(names):
        role = form.get(f"role_{i}", ColumnRole.FORBIDDEN.value)
        measure = role == ColumnRole.MEASURE.value
        columns.append(
            services.ColumnDraft(
                name,
                role,
                _bound(form.get(f"lower_{i}", ""), name) if measure else None,
                _bound(form.get(f"upper_{i}", ""), name) if measure else None,
            )
        )
    return services.ProfileDraft(
        asset_id=asset_id,
        table_name=form.get("table_name", "").strip(),
        columns=tuple(columns),
        large=form.get("large") == "on",
    )


def _declare(
    db: Database, settings: Settings, principal: Principal, asset_id: str, form: dict[str, str]
) -> None:
    with db.write() as s:
        facts = registry.asset_facts(s, asset_id)
        try:
            profile = services.get_profile(s, principal, asset_id)
        except NotFound:
            profile = None
        names = [c["name"] for c in _profile_rows(s, settings, principal, facts, profile)]
        services.declare_profile(s, principal, _draft(form, asset_id, names), settings=settings)


@router.post("/sandbox/profiles/{asset_id}")
async def profile_post(
    request: Request, asset_id: str, identity: WebUser, db: DbDep, settings: SettingsDep
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        await run_in_threadpool(_declare, db, settings, identity.principal, asset_id, form)
    except DomainError as exc:
        if exc.status in (403, 404):
            raise  # not the holder's administrator: the error page says so
        err = error_text(exc)
        return _profile_page(
            request,
            identity,
            db,
            settings,
            asset_id,
            form=form,
            status=exc.status if exc.status != 400 else 422,
            form_error=err["error"],
            error_field=err["error_field"],
            error_column=str(exc.params.get("column", "")),
        )
    return redirect(f"/sandbox/profiles/{asset_id}?saved=1")
