"""Console pages of public data authorised operation under ``/operation``.

One page per thing a role does, all thin shells over ``services``: the overview (the data sets
under operation and their published fees for everyone; the body's and the operator's
agreements; uses awaiting the operator), the agreement form and page (the body signs, suspends,
resumes, terminates), fees (the bureau's caps and rate, the operator's fees — published to every
logged-in user), uses (the operator grants and decides, a user asks), costs (the operator), and
the annual report (page, CSV, filing). Amounts are typed in yuan and kept in whole fen; a refused
form is shown again with the reason and its rule.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from datafactor import identity, registry
from datafactor.errors import N_, DomainError, Forbidden, InvalidInput
from datafactor.identity import WebIdentity
from datafactor.permissions import Permission
from datafactor.policy.grants import STATE_LABELS as GRANT_STATE_LABELS
from datafactor.policy.grants import GrantState, Regime, grants_under
from datafactor.policy.operation import services
from datafactor.policy.operation.api import csv_response, operation_today
from datafactor.policy.operation.domain import (
    AGREEMENT_STATE_LABELS,
    AgreementState,
    Selection,
    check_year,
    effective_state,
    lang,
    load_operation_rules,
    yuan_text,
)
from datafactor.registry import load_registry_rules
from datafactor.web.deps import DbDep, SettingsDep, WebUser, check_csrf
from datafactor.web.forms import error_text, form_list, read_form, redirect, render

router = APIRouter(include_in_schema=False)
TodayDep = Annotated[date, Depends(operation_today)]
P = Permission

OUTCOME_LABELS = {
    "requested": N_("Awaiting the operator's decision"),
    "approved": N_("Use approved"),
    "refused": N_("Use refused"),
    # A request that ended before the operator decided it reads as its grant ended.
    "withdrawn": GRANT_STATE_LABELS[GrantState.WITHDRAWN],
    "revoked": GRANT_STATE_LABELS[GrantState.REVOKED],
    "expired": GRANT_STATE_LABELS[GrantState.EXPIRED],
}
MSG_NOT_ALLOWED = N_("Your account is not allowed to do this ({permission}).")
MSG_BAD_DATE = N_("Write dates like 2026-07-01.")
MSG_BAD_NUMBER = N_("Write whole numbers, like 2026 or 1000.")
ACTIONS = {
    "suspend": AgreementState.SUSPENDED,
    "resume": AgreementState.ACTIVE,
    "terminate": AgreementState.TERMINATED,
}


def _labels() -> dict[str, Any]:
    """The rules file's names in the reader's language, and the state labels (msgids)."""
    rules = load_operation_rules()
    code = lang()
    purposes = load_registry_rules().purposes
    return {
        "class_names": {k: v.names[code] for k, v in rules.use_classes.items()},
        "paid_classes": {k for k, v in rules.use_classes.items() if v.paid},
        "class_purposes": {k: sorted(v.purposes) for k, v in rules.use_classes.items()},
        "unit_names": {k: v[code] for k, v in rules.fee_units.items()},
        "category_names": {k: v[code] for k, v in rules.cost_categories.items()},
        "procedure_names": {k: v[code] for k, v in rules.procedures.items()},
        "purpose_names": {k: v[code] for k, v in purposes.items() if k in rules.purposes},
        "state_labels": AGREEMENT_STATE_LABELS,
        "grant_state_labels": GRANT_STATE_LABELS,
        "outcome_labels": OUTCOME_LABELS,
        "use_outcome": services.use_outcome,
        "yuan": yuan_text,
        "rules_version": rules.version,
        "default_term_years": rules.default_term_years,
    }


def _roles(identity: WebIdentity) -> dict[str, bool]:
    p = identity.principal
    return {
        "is_body": p.can(P.POLICY_OPERATION_AUTHORISE),
        "is_operator": p.can(P.POLICY_OPERATION_OPERATE),
        "is_bureau": p.can(P.POLICY_OPERATION_FEE_CAP),
        "is_supervisor": p.can(P.POLICY_GRANT_READ_ALL),
        "can_request": p.can(P.POLICY_GRANT_REQUEST),
    }


def _page(
    request: Request, template: str, identity: WebIdentity, status: int = 200, **ctx: Any
) -> Response:
    return render(
        request, template, identity, status=status, **_labels(), **_roles(identity), **ctx
    )


def _date(text: str, field: str) -> date | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(MSG_BAD_DATE, field=field) from None


# What a typed number may look like once full-width characters are folded (NFKC): ASCII digits,
# at most 18 of them (beyond any amount, quantity or year the rules allow).
_WHOLE = re.compile(r"-?[0-9]{1,18}")
_DECIMAL = re.compile(r"-?[0-9]{1,18}(\.[0-9]*)?|-?\.[0-9]+")


def _typed(text: str) -> str:
    """What was typed, full-width digits and punctuation folded (１２.５ → 12.5), without
    spaces or thousands separators."""
    text = unicodedata.normalize("NFKC", text or "")
    return "".join(text.split()).replace(",", "")


def _int(text: str, field: str) -> int | None:
    text = _typed(text)
    if not text:
        return None
    if not _WHOLE.fullmatch(text):
        raise InvalidInput(MSG_BAD_NUMBER, field=field)
    return int(text)


def hundredths(text: str) -> object:
    """A number typed with up to two decimals as a whole number of hundredths: yuan (``12.50``)
    as fen, a percentage (``8.00``) as basis points. Anything else — more decimals, an exponent,
    NaN, text — is passed on as typed, for the rules to refuse with their reason (OPS-MONEY,
    OPS-CAP-SETTING)."""
    typed = _typed(text)
    if not typed:
        return None
    if not _DECIMAL.fullmatch(typed):
        return (text or "").strip()[:40]
    value = Decimal(typed) * 100  # at most 18 digits before the point: exact
    if value != value.to_integral_value():
        return (text or "").strip()[:40]
    return int(value)


def _error(exc: DomainError) -> dict[str, Any]:
    return dict(error_text(exc))


# ------------------------------------------------------------------------------------ overview


@router.get("/operation")
def overview(request: Request, identity: WebUser, db: DbDep, today: TodayDep) -> Response:
    principal = identity.principal
    with db.read() as s:
        agreements, _ = services.list_agreements(s, principal, limit=50)
        entries = services.catalogue(s, principal, today=today)
        fees = services.list_fees(s, principal, on=today)
        uses, uses_total = services.list_uses(s, principal, limit=20)
        states = services.grant_states(s, {u.agreement_id for u in uses})
    fees_by_asset: dict[tuple[str, str], list[Any]] = {}
    for row in fees:
        fees_by_asset.setdefault((row.fee.operator_id, row.fee.asset_id), []).append(row)
    return _page(
        request,
        "operation/index.html",
        identity,
        agreements=[(a, effective_state(a.state, a.term_end, today).value) for a in agreements],
        entries=entries,
        fees_by_asset=fees_by_asset,
        uses=uses,
        uses_total=uses_total,
        grant_states=states,
        today=today,
    )


# ---------------------------------------------------------------------------------- agreements


def _agreement_form(
    request: Request, identity: WebIdentity, db: DbDep, status: int = 200, **extra: Any
) -> Response:
    principal = identity.principal
    with db.read() as s:
        ops = services.operators(s)
        rows, _ = registry.list_assets(s, principal, limit=500, offset=0)
        assets = [
            (a.id, a.name)
            for a in rows
            if a.party_id == principal.party_id and a.data_class == "public"
        ]
    return _page(
        request,
        "operation/agreement_form.html",
        identity,
        status=status,
        operators=ops,
        assets=assets,
        form=extra.pop("form", {}),
        **extra,
    )


@router.get("/operation/agreements/new")
def agreement_new(request: Request, identity: WebUser, db: DbDep) -> Response:
    if not identity.principal.can(P.POLICY_OPERATION_AUTHORISE):
        raise Forbidden(MSG_NOT_ALLOWED, permission=P.POLICY_OPERATION_AUTHORISE.value)
    return _agreement_form(request, identity, db)


@router.post("/operation/agreements")
async def agreement_create(
    request: Request, identity: WebUser, db: DbDep, settings: SettingsDep, today: TodayDep
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        decided = _date(form.get("decided_on", ""), "selection.decided_on")
        selection = (
            Selection(
                form.get("procedure", ""),
                form.get("reference", ""),
                decided,
                form.get("record", ""),
            )
            if decided is not None
            else None
        )
        purposes = form_list(form, "purposes")
        regions = [
            r.strip() for r in form.get("regions", "").replace("，", ",").split(",") if r.strip()
        ]
        draft = services.AgreementDraft(
            operator_id=form.get("operator_id", ""),
            number=form.get("number", ""),
            selection=selection,
            asset_ids=tuple(form_list(form, "asset_ids")),
            term_start=_date(form.get("term_start", ""), "term_start"),
            term_end=_date(form.get("term_end", ""), "term_end"),
            purposes=tuple(purposes) if purposes else None,
            regions=tuple(regions) if regions else None,
        )
        issuer = registry.issuer_for(settings)
        with db.write() as s:
            row = services.sign_agreement(s, identity.principal, draft, issuer=issuer, today=today)
            agreement_id = row.id
    except DomainError as exc:
        kept = {k: v for k, v in form.items() if k != "csrf_token"}
        kept["asset_ids"] = form_list(form, "asset_ids")  # type: ignore[assignment]
        kept["purposes"] = form_list(form, "purposes")  # type: ignore[assignment]
        return _agreement_form(request, identity, db, status=exc.status, form=kept, **_error(exc))
    return redirect(f"/operation/agreements/{agreement_id}")


def _agreement_page(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    agreement_id: str,
    today: date,
    status: int = 200,
    **extra: Any,
) -> Response:
    principal = identity.principal
    with db.read() as s:
        row = services.get_agreement(s, principal, agreement_id)
        assets = services.agreement_assets(s, row.id)
        uses, _ = services.list_uses(s, principal, agreement_id=row.id, limit=200)
        grants = grants_under(s, Regime.OPERATION, row.id)
        states = {g.id: g.state for g in grants}
        licences = [g for g in grants if g.grantee_id == row.operator_id]
    state = effective_state(row.state, row.term_end, today).value
    return _page(
        request,
        "operation/agreement.html",
        identity,
        status=status,
        agreement=row,
        state=state,
        assets=assets,
        uses=uses,
        grant_states=states,
        licences=licences,
        is_own_body=row.body_id == principal.party_id
        and principal.can(P.POLICY_OPERATION_AUTHORISE),
        is_own_operator=row.operator_id == principal.party_id,
        may_terminate_as_operator=row.operator_id == principal.party_id
        and principal.can(P.POLICY_OPERATION_OPERATE),
        today=today,
        **extra,
    )


@router.get("/operation/agreements/{agreement_id}")
def agreement_detail(
    request: Request, agreement_id: str, identity: WebUser, db: DbDep, today: TodayDep
) -> Response:
    return _agreement_page(request, identity, db, agreement_id, today)


@router.post("/operation/agreements/{agreement_id}/{action}")
async def agreement_change(
    request: Request,
    agreement_id: str,
    action: str,
    identity: WebUser,
    db: DbDep,
    today: TodayDep,
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    target = ACTIONS.get(action)
    if target is None:
        return redirect(f"/operation/agreements/{agreement_id}")
    try:
        with db.write() as s:
            services.change_agreement(
                s,
                identity.principal,
                agreement_id,
                target,
                reason=form.get("reason", ""),
                today=today,
            )
    except DomainError as exc:
        return _agreement_page(
            request, identity, db, agreement_id, today, status=exc.status, **_error(exc)
        )
    return redirect(f"/operation/agreements/{agreement_id}")


# ----------------------------------------------------------------------------- fees and caps


def _fees_page(
    request: Request, identity: WebIdentity, db: DbDep, today: date, status: int = 200, **extra: Any
) -> Response:
    principal = identity.principal
    with db.read() as s:
        fees = services.list_fees(s, principal, on=today)
        history = services.list_fees(s, principal, on=today, history=True)
        caps = services.list_caps(s, principal)
        live_caps = services.in_force_ids(caps, today)
        rates = services.list_rates(s, principal)
        rate = services.rate_in_force(s, today)
        own_assets: list[tuple[str, str]] = []
        if principal.can(P.POLICY_OPERATION_OPERATE):
            for entry in services.catalogue(s, principal, today=today):
                if entry.operator_id == principal.party_id:
                    own_assets.append(
                        (entry.asset_id, f"{entry.asset_name}（{entry.agreement_number}）")
                    )
    return _page(
        request,
        "operation/fees.html",
        identity,
        status=status,
        fees=fees,
        history=[h for h in history if not h.in_force],
        caps=caps,
        live_caps=live_caps,
        rates=rates,
        rate=rate,
        own_assets=own_assets,
        today=today,
        form=extra.pop("form", {}),
        **extra,
    )


@router.get("/operation/fees")
def fees_page(request: Request, identity: WebUser, db: DbDep, today: TodayDep) -> Response:
    return _fees_page(request, identity, db, today)


@router.post("/operation/caps")
async def cap_create(request: Request, identity: WebUser, db: DbDep, today: TodayDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        with db.write() as s:
            services.set_cap(
                s,
                identity.principal,
                unit=form.get("unit", ""),
                amount_fen=hundredths(form.get("amount", "")),
                effective_from=_date(form.get("effective_from", ""), "effective_from") or today,
                source_document=form.get("source_document", ""),
                note=form.get("note", ""),
                today=today,
            )
    except DomainError as exc:
        return _fees_page(request, identity, db, today, status=exc.status, form=form, **_error(exc))
    return redirect("/operation/fees")


@router.post("/operation/rates")
async def rate_create(request: Request, identity: WebUser, db: DbDep, today: TodayDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        percent = hundredths(form.get("rate_percent", ""))  # 8.00 % = 800 bp
        with db.write() as s:
            services.set_profit_rate(
                s,
                identity.principal,
                rate_bp=percent,
                effective_from=_date(form.get("effective_from", ""), "effective_from") or today,
                source_document=form.get("source_document", ""),
                note=form.get("note", ""),
                today=today,
            )
    except DomainError as exc:
        return _fees_page(request, identity, db, today, status=exc.status, form=form, **_error(exc))
    return redirect("/operation/fees")


@router.post("/operation/fees")
async def fee_create(request: Request, identity: WebUser, db: DbDep, today: TodayDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        with db.write() as s:
            services.publish_fee(
                s,
                identity.principal,
                asset_id=form.get("asset_id", ""),
                unit=form.get("unit", ""),
                amount_fen=hundredths(form.get("amount", "")),
                effective_from=_date(form.get("effective_from", ""), "effective_from") or today,
                note=form.get("note", ""),
                today=today,
            )
    except DomainError as exc:
        return _fees_page(request, identity, db, today, status=exc.status, form=form, **_error(exc))
    return redirect("/operation/fees")


# --------------------------------------------------------------------------------------- uses


def _uses_page(
    request: Request, identity: WebIdentity, db: DbDep, today: date, status: int = 200, **extra: Any
) -> Response:
    principal = identity.principal
    with db.read() as s:
        uses, total = services.list_uses(s, principal, limit=200)
        states = services.grant_states(s, {u.agreement_id for u in uses})
        entries = services.catalogue(s, principal, today=today)
    return _page(
        request,
        "operation/uses.html",
        identity,
        status=status,
        uses=uses,
        total=total,
        grant_states=states,
        entries=entries,
        own_entries=[e for e in entries if e.operator_id == principal.party_id],
        other_entries=[e for e in entries if e.operator_id != principal.party_id],
        today=today,
        form=extra.pop("form", {}),
        **extra,
    )


@router.get("/operation/uses")
def uses_page(request: Request, identity: WebUser, db: DbDep, today: TodayDep) -> Response:
    return _uses_page(request, identity, db, today)


def _grantee(session: Any, text: str) -> str | None:
    """The grantee typed as its unified social credit code (or party id)."""
    text = (text or "").strip().upper()
    if not text:
        return None
    found = identity.find_party_id(session, "uscc", "CN", text)
    return found or text.lower()


@router.post("/operation/uses")
async def use_create(
    request: Request, identity: WebUser, db: DbDep, settings: SettingsDep, today: TodayDep
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    agreement_id, _, asset_id = form.get("entry", "").partition("/")
    try:
        with db.read() as s:
            grantee = _grantee(s, form.get("grantee", ""))
        quantity = _int(form.get("quantity", ""), "quantity")
        draft = services.UseDraft(
            agreement_id=agreement_id,
            asset_id=asset_id,
            use_class=form.get("use_class", ""),
            purpose=form.get("purpose", ""),
            term_start=_date(form.get("term_start", ""), "term_start") or today,
            term_end=_date(form.get("term_end", ""), "term_end") or date(today.year, 12, 31),
            grantee_id=grantee,
            unit=form.get("unit") or None,
            quantity=quantity if quantity is not None else 1,
            unit_fee_fen=hundredths(form.get("unit_fee", "")),
            channels=tuple(form_list(form, "channels")) or None,
            purpose_note=form.get("purpose_note", ""),
        )
        issuer = registry.issuer_for(settings)
        with db.write() as s:
            services.make_use(s, identity.principal, draft, issuer=issuer, today=today)
    except DomainError as exc:
        return _uses_page(request, identity, db, today, status=exc.status, form=form, **_error(exc))
    return redirect("/operation/uses")


@router.post("/operation/uses/{use_id}/decision")
async def use_decide(
    request: Request,
    use_id: str,
    identity: WebUser,
    db: DbDep,
    settings: SettingsDep,
    today: TodayDep,
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        issuer = registry.issuer_for(settings)
        with db.write() as s:
            services.decide_use(
                s,
                identity.principal,
                use_id,
                approve=form.get("approve") == "1",
                reason=form.get("reason", ""),
                issuer=issuer,
                today=today,
            )
    except DomainError as exc:
        return _uses_page(request, identity, db, today, status=exc.status, **_error(exc))
    return redirect("/operation/uses")


# -------------------------------------------------------------------------------------- costs


def _costs_page(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    today: date,
    operator_id: str | None = None,
    status: int = 200,
    **extra: Any,
) -> Response:
    with db.read() as s:
        costs = services.list_costs(s, identity.principal, operator_id=operator_id)
        operators = []
        if identity.principal.can(P.POLICY_GRANT_READ_ALL):
            operators = [(o.id, o.name) for o in services.operators(s)]
    by_year: dict[int, int] = {}
    for c in costs:
        by_year[c.year] = by_year.get(c.year, 0) + c.amount_fen
    return _page(
        request,
        "operation/costs.html",
        identity,
        status=status,
        costs=costs,
        by_year=sorted(by_year.items(), reverse=True),
        operator_id=operator_id or identity.principal.party_id,
        operators=operators,
        today=today,
        form=extra.pop("form", {}),
        **extra,
    )


@router.get("/operation/costs")
def costs_page(
    request: Request,
    identity: WebUser,
    db: DbDep,
    today: TodayDep,
    operator_id: Annotated[str | None, Query(max_length=36)] = None,
) -> Response:
    return _costs_page(request, identity, db, today, operator_id or None)


@router.post("/operation/costs")
async def cost_create(request: Request, identity: WebUser, db: DbDep, today: TodayDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        year = _int(form.get("year", ""), "year")
        with db.write() as s:
            services.record_cost(
                s,
                identity.principal,
                year=year if year is not None else today.year,
                category=form.get("category", ""),
                amount_fen=hundredths(form.get("amount", "")),
                note=form.get("note", ""),
            )
    except DomainError as exc:
        return _costs_page(
            request, identity, db, today, status=exc.status, form=form, **_error(exc)
        )
    return redirect("/operation/costs")


# ------------------------------------------------------------------------------------ reports


@router.get("/operation/reports")
def reports_page(request: Request, identity: WebUser, db: DbDep, today: TodayDep) -> Response:
    principal = identity.principal
    with db.read() as s:
        filed = services.list_reports(s, principal)
        agreements, _ = services.list_agreements(s, principal, limit=200)
    # Drafts (reports generated from the records before they are filed) are the operator's
    # and the supervisors'; an implementing body reads the filed reports (its own part).
    operators = sorted(
        {
            (a.operator_id, a.operator_name)
            for a in agreements
            if a.operator_id == principal.party_id or principal.can(P.POLICY_GRANT_READ_ALL)
        },
        key=lambda o: o[1],
    )
    if principal.can(P.POLICY_OPERATION_OPERATE) and all(
        o[0] != principal.party_id for o in operators
    ):
        operators.insert(0, (principal.party_id, identity.party_name))
    return _page(
        request,
        "operation/reports.html",
        identity,
        filed=filed,
        operators=operators,
        years=list(range(today.year, today.year - 4, -1)),
        today=today,
    )


def _report_page(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    operator_id: str,
    year: int,
    today: date,
    status: int = 200,
    **extra: Any,
) -> Response:
    with db.read() as s:
        found = services.build_report(s, identity.principal, operator_id, year, today=today)
    return _page(
        request,
        "operation/report.html",
        identity,
        status=status,
        report=found,
        can_file=(
            identity.principal.party_id == operator_id
            and identity.principal.can(P.POLICY_OPERATION_OPERATE)
            and found.get("filed") is None
            and today > date(year, 12, 31)
        ),
        today=today,
        **extra,
    )


@router.get("/operation/reports/{operator_id}/{year}")
def report_page(
    request: Request, operator_id: str, year: int, identity: WebUser, db: DbDep, today: TodayDep
) -> Response:
    return _report_page(request, identity, db, operator_id, year, today)


@router.get("/operation/reports/{operator_id}/{year}/report.csv")
def report_download(
    operator_id: str, year: int, identity: WebUser, db: DbDep, today: TodayDep
) -> Response:
    with db.read() as s:
        found = services.build_report(s, identity.principal, operator_id, year, today=today)
    return csv_response(f"operation-report-{year}.csv", services.report_csv(found))


@router.post("/operation/reports")
async def report_file(request: Request, identity: WebUser, db: DbDep, today: TodayDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    principal = identity.principal
    try:
        year = _int(form.get("year", ""), "year") or today.year
        with db.write() as s:
            services.file_report(s, principal, year, today=today)
    except DomainError as exc:
        try:
            year_shown = _int(form.get("year", ""), "year") or today.year
            check_year(year_shown)
        except DomainError:
            year_shown = today.year
        return _report_page(
            request,
            identity,
            db,
            principal.party_id,
            year_shown,
            today,
            status=exc.status,
            **_error(exc),
        )
    return redirect(f"/operation/reports/{principal.party_id}/{year}")
