"""HTML routes of data trusts: the deeds list, the draft form, a deed's page with the steps its
viewer may take, and a beneficiary's page.

Thin shells over ``trusts.services``: read the form, check CSRF, call the use case in one unit of
work, render. A refusal re-renders the page with the ``DomainError``'s message (naming its rule)
in the user's language, and nothing is written.

* ``/trusts`` lists the deeds the party is in (as settlor, trustee or beneficiary; every deed for
  supervisors), with a link to draft one; ``/trusts/new`` (and ``/trusts/{id}/edit`` for a
  draft) is the settlor's form: trustee and beneficiaries by their identifier (unified social
  credit code or resident ID), trust property from the party's registered assets, scope, term,
  fee and shares.
* ``/trusts/{id}`` shows where the deed stands and why: parties, trust property, scope, term,
  state and history (with rule ids and ledger entries), the versions of the split, the trust's
  grants (linking to ``/grants/{id}``), income with its distribution lines and the totals per
  party — a beneficiary sees its own share and lines only — and the forms of the steps the
  viewer may take now (sign, withdraw, accept, decline, amend, end early, record income, grant a
  use, record misuse).
* ``/trusts/benefits`` is a beneficiary's view: the deeds it benefits from, its share in force
  and what it has received (pending settlement or paid).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from datafactor import context, registry
from datafactor.errors import N_, DomainError, InvalidInput
from datafactor.identity import WebIdentity
from datafactor.permissions import Permission
from datafactor.policy.templates import TEMPLATES, get_template
from datafactor.policy.trusts import services
from datafactor.policy.trusts.api import TodayDep
from datafactor.policy.trusts.domain import (
    ACTION_LABELS,
    ACTOR_LABELS,
    PAY_STATUS_LABELS,
    ROLE_LABELS,
    STATE_LABELS,
    DeedAction,
    DeedState,
    IncomeSource,
    Share,
    load_trust_rules,
    parse_yuan,
    policy_within,
    yuan,
)
from datafactor.web.deps import DbDep, SettingsDep, WebUser, check_csrf
from datafactor.web.forms import error_text, form_list, read_form, redirect, render

router = APIRouter(include_in_schema=False)
PAGE: Final = 20
P = Permission
A = DeedAction

MSG_DATE: Final = N_("Give the date as YYYY-MM-DD.")
MSG_NUMBER: Final = N_("Give a whole number.")
MSG_AMOUNT: Final = N_("Give the amount in yuan, with at most two decimals (e.g. 1250.00).")
MSG_PARTY: Final = N_(
    "No verified party has the identifier {code}: give a unified social credit code or a "
    "resident ID number registered on the platform."
)
MSG_SHARE_LINE: Final = N_(
    "Line {line} of the beneficiaries is not “identifier share”: write one beneficiary per line, "
    "its identifier and its share in basis points (e.g. 91450000DF0000130X 7000)."
)
MSG_TEMPLATE: Final = N_("Choose a policy template.")

GRANT_STATE_LABELS: Final[dict[str, str]] = {
    "requested": N_("Requested"),
    "approved": N_("Approved"),
    "active": N_("Active"),
    "suspended": N_("Suspended"),
    "revoked": N_("Revoked"),
    "expired": N_("Expired"),
    "refused": N_("Refused"),
    "withdrawn": N_("Withdrawn"),
}
VIEWER_LABELS: Final[dict[str, str]] = {
    "settlor": N_("Settlor"),
    "trustee": N_("Trustee"),
    "beneficiary": N_("Beneficiary"),
    "supervisor": N_("Supervisor"),
}


def _lang() -> str:
    return "en" if context.locale.get() == "en" else "zh"


def _labels() -> dict[str, Any]:
    rules = registry.load_registry_rules()
    lang = _lang()
    trust_rules = load_trust_rules()
    return {
        "state_labels": STATE_LABELS,
        "action_labels": ACTION_LABELS,
        "actor_labels": ACTOR_LABELS,
        "role_labels": ROLE_LABELS,
        "pay_labels": PAY_STATUS_LABELS,
        "grant_state_labels": GRANT_STATE_LABELS,
        "viewer_labels": VIEWER_LABELS,
        "purpose_names": {k: v[lang] for k, v in rules.purposes.items()},
        "delivery_names": {k: v[lang] for k, v in rules.delivery_modes.items()},
        "source_names": {k: v[lang] for k, v in trust_rules.income_sources.items()},
        "fee_max": trust_rules.fee_max_bp,
        "yuan": yuan,
    }


def _error(exc: DomainError) -> dict[str, Any]:
    ctx: dict[str, Any] = dict(error_text(exc))
    ctx["error_rule"] = getattr(exc, "rule", None)
    return ctx


def _date(form: dict[str, str], key: str) -> date:
    try:
        return date.fromisoformat(form.get(key, "").strip())
    except ValueError:
        raise InvalidInput(MSG_DATE, field=key) from None


def _whole(text: str) -> bool:
    """A whole number in ASCII digits, perhaps negative (``str.isdigit`` alone also accepts
    “²” and other digits ``int`` refuses)."""
    digits = text[1:] if text.startswith("-") else text
    return digits.isascii() and digits.isdigit()


def _int(form: dict[str, str], key: str) -> int:
    text = form.get(key, "").strip()
    if not _whole(text):
        raise InvalidInput(MSG_NUMBER, field=key)
    return int(text)


def _party(session: Session, form: dict[str, str], key: str) -> str:
    text = form.get(key, "").strip()
    found = services.find_party(session, text)
    if found is None:
        raise InvalidInput(MSG_PARTY, field=key, code=text or "—")
    return found


def _shares(session: Session, text: str) -> tuple[Share, ...]:
    shares = []
    for n, raw in enumerate(text.splitlines(), start=1):
        parts = raw.replace(",", " ").replace("，", " ").split()
        if not parts:
            continue
        if len(parts) != 2 or not _whole(parts[1]):
            raise InvalidInput(MSG_SHARE_LINE, field="beneficiaries", line=n)
        party_id = services.find_party(session, parts[0])
        if party_id is None:
            raise InvalidInput(MSG_PARTY, field="beneficiaries", code=parts[0])
        shares.append(Share(party_id, int(parts[1])))
    return tuple(shares)


def _split_list(text: str) -> list[str] | None:
    values = [v for v in text.replace("，", ",").replace("\n", ",").split(",") if v.strip()]
    return [v.strip() for v in values] or None


def _draft_from_form(session: Session, form: dict[str, str]) -> services.DeedDraft:
    return services.DeedDraft(
        title=form.get("title", ""),
        purpose=form.get("purpose", ""),
        trustee_id=_party(session, form, "trustee"),
        asset_ids=tuple(form_list(form, "asset_ids")),
        scope={
            "purposes": None if form.get("purposes_any") else form_list(form, "purposes"),
            "fields": _split_list(form.get("fields", "")),
            "regions": _split_list(form.get("regions", "")),
            "delivery_modes": None
            if form.get("delivery_any")
            else form_list(form, "delivery_modes"),
        },
        term_start=_date(form, "term_start"),
        term_end=_date(form, "term_end"),
        trustee_fee_bp=_int(form, "trustee_fee_bp"),
        beneficiaries=_shares(session, form.get("beneficiaries", "")),
    )


def _shares_text(session: Session, shares: tuple[Share, ...] | list[Share]) -> str:
    codes = services.party_codes(session, [s.party_id for s in shares])
    return "\n".join(f"{codes.get(s.party_id, s.party_id)} {s.share_bp}" for s in shares)


# ------------------------------------------------------------------------------------ lists


@router.get("/trusts")
def deeds_page(
    request: Request,
    identity: WebUser,
    db: DbDep,
    role: Annotated[str | None, Query(pattern="^(settlor|trustee|beneficiary|)$")] = None,
    state: Annotated[str | None, Query(max_length=16)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    principal = identity.principal
    with db.read() as session:
        rows, total = services.list_deeds(
            session,
            principal,
            services.DeedQuery(state=state or None, role=role or None),
            limit=PAGE,
            offset=(page - 1) * PAGE,
        )
        names = services.party_names(
            session, {p for d in rows for p in (d.settlor_id, d.trustee_id)}
        )
    return render(
        request,
        "trusts/deeds.html",
        identity,
        items=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE)),
        role=role or "",
        state=state or "",
        names=names,
        can_draft=principal.can(P.POLICY_TRUST_MANAGE),
        **_labels(),
    )


@router.get("/trusts/benefits")
def benefits_page(request: Request, identity: WebUser, db: DbDep, today: TodayDep) -> Response:
    with db.read() as session:
        rows = services.my_benefits(session, identity.principal, today=today)
        lines = services.list_distributions(session, identity.principal)
        incomes = services.incomes_by_id(session, {line.income_id for line in lines})
        numbers = {b.deed.id: b.deed.number for b in rows}
    return render(
        request,
        "trusts/benefits.html",
        identity,
        rows=rows,
        lines=sorted(
            (line for line in lines if line.role == "beneficiary"),
            key=lambda line: (incomes[line.income_id].received_on, line.income_id),
            reverse=True,
        ),
        incomes=incomes,
        numbers=numbers,
        **_labels(),
    )


# ------------------------------------------------------------------------------------ draft


def _form_page(
    request: Request,
    identity: WebIdentity,
    session: Session,
    *,
    form: dict[str, str],
    deed_id: str | None = None,
    status: int = 200,
    **extra: Any,
) -> Response:
    choices = services.property_choices(session, identity.principal)
    custodians = []
    try:
        from datafactor.identity import list_custodians

        custodians = list_custodians(session, identity.principal)
    except DomainError:
        custodians = []
    return render(
        request,
        "trusts/form.html",
        identity,
        status=status,
        form=form,
        deed_id=deed_id,
        choices=choices,
        custodians=custodians,
        custodian_codes=services.party_codes(session, [c.id for c in custodians]),
        selected=set(form_list(form, "asset_ids")),
        **_labels(),
        **extra,
    )


def _default_form(session: Session, identity: WebIdentity, today: date) -> dict[str, str]:
    own = services.party_codes(session, [identity.principal.party_id])
    return {
        "term_start": today.isoformat(),
        "term_end": today.replace(year=today.year + 3).isoformat(),
        "trustee_fee_bp": "500",
        "beneficiaries": f"{own.get(identity.principal.party_id, '')} 10000",
        "purposes_any": "",
        "delivery_modes": "sandbox",
    }


@router.get("/trusts/new")
def new_page(request: Request, identity: WebUser, db: DbDep, today: TodayDep) -> Response:
    with db.read() as session:
        return _form_page(request, identity, session, form=_default_form(session, identity, today))


@router.post("/trusts/new")
async def create(request: Request, identity: WebUser, db: DbDep, today: TodayDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        with db.write() as session:
            deed = services.draft_deed(
                session, identity.principal, _draft_from_form(session, form), today=today
            )
            deed_id = deed.id
    except DomainError as exc:
        with db.read() as session:
            return _form_page(
                request, identity, session, form=form, status=exc.status, **_error(exc)
            )
    return redirect(f"/trusts/{deed_id}")


@router.get("/trusts/{deed_id}/edit")
def edit_page(request: Request, identity: WebUser, db: DbDep, deed_id: str) -> Response:
    with db.read() as session:
        # The form shows every beneficiary's identifier and share: the settlor's draft only.
        deed = services.deed_for_edit(session, identity.principal, deed_id)
        version = services.split_for(session, deed, deed.term_start)
        codes = services.party_codes(session, [deed.trustee_id])
        scope = deed.scope
        form = {
            "title": deed.title,
            "purpose": deed.purpose,
            "trustee": codes.get(deed.trustee_id, deed.trustee_id),
            "asset_ids": "\n".join(a.asset_id for a in services.deed_assets(session, deed.id)),
            "purposes": "\n".join(scope.get("purposes") or []),
            "purposes_any": "" if scope.get("purposes") is not None else "1",
            "fields": ", ".join(scope.get("fields") or []),
            "regions": ", ".join(scope.get("regions") or []),
            "delivery_modes": "\n".join(scope.get("delivery_modes") or []),
            "delivery_any": "" if scope.get("delivery_modes") is not None else "1",
            "term_start": deed.term_start.isoformat(),
            "term_end": deed.term_end.isoformat(),
            "trustee_fee_bp": str(deed.trustee_fee_bp),
            "beneficiaries": _shares_text(session, version.shares),
        }
        return _form_page(request, identity, session, form=form, deed_id=deed.id, deed=deed)


@router.post("/trusts/{deed_id}/edit")
async def edit(
    request: Request, identity: WebUser, db: DbDep, today: TodayDep, deed_id: str
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        with db.write() as session:
            services.edit_deed(
                session, identity.principal, deed_id, _draft_from_form(session, form), today=today
            )
    except DomainError as exc:
        with db.read() as session:
            # Refused again (404/403/409) unless the viewer is the settlor of this draft.
            deed = services.deed_for_edit(session, identity.principal, deed_id)
            return _form_page(
                request,
                identity,
                session,
                form=form,
                deed_id=deed.id,
                deed=deed,
                status=exc.status,
                **_error(exc),
            )
    return redirect(f"/trusts/{deed_id}")


# --------------------------------------------------------------------------------- the deed


def _deed_page(
    request: Request,
    identity: WebIdentity,
    db: Any,
    deed_id: str,
    today: date,
    *,
    status: int = 200,
    form: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    principal = identity.principal
    with db.read() as session:
        deed = services.get_deed(session, principal, deed_id)
        roles = services.visible_roles(session, deed, principal)
        everything = services.sees_everything(roles)
        versions = services.deed_versions(session, deed, principal, roles)
        in_force = services.split_for(session, deed, today).version
        incomes = services.list_income(session, principal, deed.id)
        total_income, totals = services.deed_totals(session, principal, deed.id)
        grants = services.deed_grants(session, deed.id) if everything else []
        misuse = services.list_misuse(session, principal, deed.id)
        ids = {deed.settlor_id, deed.trustee_id}
        ids |= {s.party_id for v in versions for s in v.shares}
        ids |= {t.party_id for t in totals} | {g.grantee_id for g in grants}
        names = services.party_names(session, ids)
        allowed = services.allowed(deed, principal)
        current = versions[-1].shares if versions else ()
        amend_text = _shares_text(session, current) if A.AMEND in allowed and everything else ""
        assets = services.deed_assets(session, deed.id)
        events = services.deed_events(session, deed.id)
    return render(
        request,
        "trusts/deed.html",
        identity,
        status=status,
        deed=deed,
        roles=sorted(roles),
        everything=everything,
        versions=versions,
        in_force=in_force,
        incomes=incomes,
        total_income=total_income,
        totals=totals,
        grants=grants,
        misuse=misuse,
        names=names,
        assets=assets,
        events=events,
        allowed={a.value for a in allowed},
        amend_text=amend_text,
        active=deed.state == DeedState.ACTIVE.value,
        templates=TEMPLATES,
        today=today,
        form=form or {},
        **_labels(),
        **extra,
    )


@router.get("/trusts/{deed_id}")
def deed_page(
    request: Request, identity: WebUser, db: DbDep, today: TodayDep, deed_id: str
) -> Response:
    return _deed_page(request, identity, db, deed_id, today)


async def _act(
    request: Request,
    identity: WebIdentity,
    db: Any,
    deed_id: str,
    today: date,
    step: Any,
) -> Response:
    """Run one step from a posted form; on refusal show the deed page with the reason."""
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        with db.write() as session:
            step(session, form)
    except DomainError as exc:
        return _deed_page(
            request, identity, db, deed_id, today, status=exc.status, form=form, **_error(exc)
        )
    return redirect(f"/trusts/{deed_id}")


@router.post("/trusts/{deed_id}/sign")
async def sign(
    request: Request, identity: WebUser, db: DbDep, today: TodayDep, deed_id: str
) -> Response:
    return await _act(
        request,
        identity,
        db,
        deed_id,
        today,
        lambda s, f: services.sign_deed(s, identity.principal, deed_id, today=today),
    )


@router.post("/trusts/{deed_id}/withdraw")
async def withdraw(
    request: Request, identity: WebUser, db: DbDep, today: TodayDep, deed_id: str
) -> Response:
    return await _act(
        request,
        identity,
        db,
        deed_id,
        today,
        lambda s, f: services.withdraw_deed(
            s, identity.principal, deed_id, reason=f.get("reason", ""), today=today
        ),
    )


@router.post("/trusts/{deed_id}/accept")
async def accept(
    request: Request, identity: WebUser, db: DbDep, today: TodayDep, deed_id: str
) -> Response:
    return await _act(
        request,
        identity,
        db,
        deed_id,
        today,
        lambda s, f: services.accept_deed(s, identity.principal, deed_id, today=today),
    )


@router.post("/trusts/{deed_id}/decline")
async def decline(
    request: Request, identity: WebUser, db: DbDep, today: TodayDep, deed_id: str
) -> Response:
    return await _act(
        request,
        identity,
        db,
        deed_id,
        today,
        lambda s, f: services.decline_deed(
            s, identity.principal, deed_id, reason=f.get("reason", ""), today=today
        ),
    )


@router.post("/trusts/{deed_id}/amend")
async def amend(
    request: Request, identity: WebUser, db: DbDep, today: TodayDep, deed_id: str
) -> Response:
    def step(session: Session, form: dict[str, str]) -> None:
        effective = _date(form, "effective_on") if form.get("effective_on") else None
        services.amend_deed(
            session,
            identity.principal,
            deed_id,
            _shares(session, form.get("beneficiaries", "")),
            reason=form.get("reason", ""),
            effective_on=effective,
            today=today,
        )

    return await _act(request, identity, db, deed_id, today, step)


@router.post("/trusts/{deed_id}/terminate")
async def terminate(
    request: Request, identity: WebUser, db: DbDep, today: TodayDep, deed_id: str
) -> Response:
    return await _act(
        request,
        identity,
        db,
        deed_id,
        today,
        lambda s, f: services.terminate_deed(
            s,
            identity.principal,
            deed_id,
            reason=f.get("reason", ""),
            order_reference=f.get("order_reference", ""),
            today=today,
        ),
    )


@router.post("/trusts/{deed_id}/income")
async def income(
    request: Request, identity: WebUser, db: DbDep, today: TodayDep, deed_id: str
) -> Response:
    def step(session: Session, form: dict[str, str]) -> None:
        amount = parse_yuan(form.get("amount", ""))
        if amount is None:
            raise InvalidInput(MSG_AMOUNT, field="amount")
        source = form.get("source", IncomeSource.OTHER.value)
        draft = services.IncomeDraft(
            amount_fen=amount,
            received_on=_date(form, "received_on"),
            source=IncomeSource(source)
            if source in {s.value for s in IncomeSource}
            else IncomeSource.OTHER,
            grant_id=form.get("grant_id") or None,
            description=form.get("description", ""),
        )
        services.record_income(session, identity.principal, deed_id, draft, today=today)

    return await _act(request, identity, db, deed_id, today, step)


@router.post("/trusts/{deed_id}/income/{income_id}/payment")
async def pay_income(
    request: Request, identity: WebUser, db: DbDep, today: TodayDep, deed_id: str, income_id: str
) -> Response:
    """The trustee pays an income's distribution through settlement (once)."""
    return await _act(
        request,
        identity,
        db,
        deed_id,
        today,
        lambda s, f: services.pay_income(s, identity.principal, income_id),
    )


@router.post("/trusts/{deed_id}/grants")
async def grant(
    request: Request,
    identity: WebUser,
    db: DbDep,
    settings: SettingsDep,
    today: TodayDep,
    deed_id: str,
) -> Response:
    from datafactor.policy.grants import GrantDraft

    def step(session: Session, form: dict[str, str]) -> None:
        name = form.get("template", "")
        if name not in TEMPLATES:
            raise InvalidInput(MSG_TEMPLATE, field="template")
        deed = services.get_deed(session, identity.principal, deed_id)
        purposes = form_list(form, "purposes") or None
        document = policy_within(get_template(name).document(), deed.scope, purposes=purposes)
        fee = parse_yuan(form.get("fee", "") or "0")
        if fee is None:
            raise InvalidInput(MSG_AMOUNT, field="fee")
        draft = GrantDraft(
            asset_id=form.get("asset_id", ""),
            grantee_id=_party(session, form, "grantee"),
            policy=document,
            term_start=_date(form, "grant_start"),
            term_end=_date(form, "grant_end"),
            purpose_note=form.get("purpose_note", "")[:2000],
            fee_fen=fee,
        )
        services.grant_use(
            session,
            identity.principal,
            deed_id,
            draft,
            issuer=registry.issuer_for(settings),
            today=today,
        )

    return await _act(request, identity, db, deed_id, today, step)


@router.post("/trusts/{deed_id}/grants/{grant_id}/decision")
async def decide_request(
    request: Request,
    identity: WebUser,
    db: DbDep,
    settings: SettingsDep,
    today: TodayDep,
    deed_id: str,
    grant_id: str,
) -> Response:
    """The trustee approves or refuses a use a party asked for under the deed."""
    return await _act(
        request,
        identity,
        db,
        deed_id,
        today,
        lambda s, f: services.decide_use(
            s,
            identity.principal,
            deed_id,
            grant_id,
            approve=f.get("approve") == "yes",
            reason=f.get("reason", ""),
            issuer=registry.issuer_for(settings),
            today=today,
        ),
    )


@router.post("/trusts/{deed_id}/misuse")
async def misuse(
    request: Request, identity: WebUser, db: DbDep, today: TodayDep, deed_id: str
) -> Response:
    return await _act(
        request,
        identity,
        db,
        deed_id,
        today,
        lambda s, f: services.record_misuse(
            s,
            identity.principal,
            deed_id,
            f.get("grant_id", ""),
            description=f.get("description", ""),
            today=today,
        ),
    )
