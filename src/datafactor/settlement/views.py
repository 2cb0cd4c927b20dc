"""Console pages under ``/settlement``: my accounts (balances, deposit and withdrawal forms, the
latest lines), an account's statement (period filter, paging, CSV), a journal, and the exchange's
books (every account, the system accounts, reconciliations and anchored days; run one now).

Thin shells over ``services`` and ``books``. Amounts are typed in yuan (``1,234.56``) and shown
as ``¥1,234.56``. Each rendering of the deposit and withdrawal forms carries a fresh hidden
idempotency key, so a double click or a resubmitted form pays once: the second post is answered
with the first one's journal. A refused form re-renders with the reason in the person's language.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from datafactor.errors import DomainError, Forbidden
from datafactor.identity import WebIdentity, counterparty_names
from datafactor.permissions import Permission
from datafactor.settlement import books, services
from datafactor.settlement.domain import (
    ACCOUNT_LABELS,
    CHART,
    JOURNAL_LABELS,
    LINE_LABELS,
    AccountKind,
    amount_from_yuan,
    format_yuan,
)
from datafactor.web.deps import DbDep, WebUser, check_csrf
from datafactor.web.forms import error_text, read_form, redirect, render

router = APIRouter(include_in_schema=False)
P = Permission
PAGE = 50
BOOKS_PAGE = 50
RECENT = 10

LABELS: dict[str, Any] = {
    "account_labels": ACCOUNT_LABELS,
    "journal_labels": JOURNAL_LABELS,
    "line_labels": LINE_LABELS,
    "chart": CHART,
    "yuan": format_yuan,
}


def _can_read(identity: WebIdentity) -> None:
    principal = identity.principal
    if not (
        principal.can(P.SETTLEMENT_ACCOUNT_READ) or principal.can(P.SETTLEMENT_ACCOUNT_READ_ALL)
    ):
        raise Forbidden(services.MSG_NOT_ALLOWED, permission=P.SETTLEMENT_ACCOUNT_READ.value)


def _own_accounts(db: DbDep, identity: WebIdentity) -> list[services.AccountRow]:
    principal = identity.principal
    if not principal.can(P.SETTLEMENT_ACCOUNT_READ):
        return []
    with db.read() as s:
        rows = services.list_accounts(s, principal)
    if not rows:  # a party sees its (zero) balances before its first deposit
        with db.write() as s:
            services.open_own_accounts(s, principal)
        with db.read() as s:
            rows = services.list_accounts(s, principal)
    return rows


def _home(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    *,
    posted: services.JournalRecord | None = None,
    status: int = 200,
    form: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    _can_read(identity)
    principal = identity.principal
    accounts = _own_accounts(db, identity)
    by_kind = {AccountKind(a.kind): a for a in accounts}
    recent: list[services.StatementLine] = []
    available = by_kind.get(AccountKind.AVAILABLE)
    if available is not None and available.lines:
        with db.read() as s:
            recent = services.statement(
                s,
                principal,
                available.id,
                limit=RECENT,
                offset=max(0, available.lines - RECENT),
            ).lines[::-1]
    return render(
        request,
        "settlement/accounts.html",
        identity,
        status=status,
        accounts=accounts,
        available=available,
        frozen=by_kind.get(AccountKind.FROZEN),
        recent=recent,
        posted=posted,
        can_move=principal.can(P.SETTLEMENT_FUNDS_MOVE),
        can_books=principal.can(P.SETTLEMENT_ACCOUNT_READ_ALL),
        deposit_key=secrets.token_urlsafe(18),
        withdraw_key=secrets.token_urlsafe(18),
        form=form or {},
        **LABELS,
        **extra,
    )


@router.get("/settlement")
def accounts_page(
    request: Request,
    identity: WebUser,
    db: DbDep,
    journal: Annotated[str | None, Query(max_length=36)] = None,
) -> Response:
    posted = None
    if journal:
        try:
            with db.read() as s:
                posted = services.get_journal(s, identity.principal, journal)
        except DomainError:
            posted = None
    return _home(request, identity, db, posted=posted)


def _post(
    db: DbDep, identity: WebIdentity, kind: str, amount: int, key: str, memo: str
) -> services.Posted:
    with db.write() as s:
        move = services.deposit if kind == "deposit" else services.withdraw
        return move(s, identity.principal, amount, key=key, memo=memo)


async def _move(request: Request, identity: WebIdentity, db: DbDep, kind: str) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    field = f"{kind}_amount"
    key = form.get("idempotency_key", "")
    try:
        amount = amount_from_yuan(form.get("amount", ""), services.rules(), field=field)
        posted = await run_in_threadpool(
            _post, db, identity, kind, amount, f"web:{key}" if key else "", form.get("memo", "")
        )
    except DomainError as exc:
        kept = {f"{kind}_amount": form.get("amount", ""), f"{kind}_memo": form.get("memo", "")}
        details: dict[str, Any] = dict(error_text(exc))
        if details.get("error_field") in ("amount_fen", "Idempotency-Key"):
            details["error_field"] = field
        return _home(request, identity, db, status=exc.status, form=kept, **details)
    return redirect(f"/settlement?journal={posted.journal.id}")


@router.post("/settlement/deposits")
async def deposit_form(request: Request, identity: WebUser, db: DbDep) -> Response:
    return await _move(request, identity, db, "deposit")


@router.post("/settlement/withdrawals")
async def withdraw_form(request: Request, identity: WebUser, db: DbDep) -> Response:
    return await _move(request, identity, db, "withdraw")


# --------------------------------------------------------------------------------- statements


def _period(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


@router.get("/settlement/accounts/{account_id}")
def statement_page(
    request: Request,
    account_id: str,
    identity: WebUser,
    db: DbDep,
    period_from: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    period_to: Annotated[str | None, Query(alias="to", max_length=10)] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    _can_read(identity)
    start, end = _period(period_from), _period(period_to)
    error: dict[str, Any] = {}
    with db.read() as s:
        try:
            found = services.statement(
                s,
                identity.principal,
                account_id,
                start=start,
                end=end,
                limit=PAGE,
                offset=(page - 1) * PAGE,
            )
        except DomainError as exc:
            if exc.status == 404:
                raise
            error = error_text(exc)
            start = end = None
            found = services.statement(s, identity.principal, account_id, limit=PAGE)
        owner = ""
        if found.account.party_id:
            owner = counterparty_names(s, identity.principal, [found.account.party_id])[
                found.account.party_id
            ]
    query = "&".join(
        f"{name}={value.isoformat()}"
        for name, value in (("from", start), ("to", end))
        if value is not None
    )
    return render(
        request,
        "settlement/statement.html",
        identity,
        status=422 if error else 200,
        statement=found,
        account=found.account,
        owner=owner,
        period_from=start,
        period_to=end,
        period_query=query,
        page=page,
        pages=max(1, -(-found.total // PAGE)),
        **LABELS,
        **error,
    )


@router.get("/settlement/accounts/{account_id}/statement.csv")
def statement_csv(
    account_id: str,
    identity: WebUser,
    db: DbDep,
    period_from: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    period_to: Annotated[str | None, Query(alias="to", max_length=10)] = None,
) -> Response:
    _can_read(identity)
    start, end = _period(period_from), _period(period_to)
    with db.read() as s:
        services.statement(s, identity.principal, account_id, start=start, end=end, limit=1)

    def stream() -> Iterator[str]:
        with db.read() as s:
            yield from services.statement_csv(
                s, identity.principal, account_id, start=start, end=end
            )

    name = f"statement-{account_id[:8]}-{start or 'start'}-{end or 'now'}.csv"
    return StreamingResponse(
        stream(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/settlement/journals/{journal_id}")
def journal_page(request: Request, journal_id: str, identity: WebUser, db: DbDep) -> Response:
    _can_read(identity)
    with db.read() as s:
        record = services.get_journal(s, identity.principal, journal_id)
        parties = [x.party_id for x in record.lines if x.party_id]
        names = counterparty_names(s, identity.principal, parties)
    return render(
        request, "settlement/journal.html", identity, journal=record, names=names, **LABELS
    )


# ------------------------------------------------------------------------------------- books


def _books(
    request: Request, identity: WebIdentity, db: DbDep, *, page: int = 1, **extra: Any
) -> Response:
    principal = identity.principal
    with db.read() as s:
        system = services.list_accounts(s, principal, services.SYSTEM_SCOPE)
        rows, total = services.list_all_accounts(
            s, principal, limit=BOOKS_PAGE, offset=(page - 1) * BOOKS_PAGE
        )
        names = counterparty_names(s, principal, [r.party_id for r in rows if r.party_id])
        totals = services.system_totals(s)
        history, runs = books.list_reconciliations(s, principal, limit=10, offset=0)
        anchored = books.anchors(s, principal, limit=10)
    kinds: dict[str, dict[str, Any]] = {}
    for row in system:  # an account of the chart with its sub-accounts
        entry = kinds.setdefault(
            row.kind,
            {"kind": row.kind, "code": row.code, "balance_fen": 0, "lines": 0, "parts": []},
        )
        entry["balance_fen"] += row.balance_fen
        entry["lines"] += row.lines
        entry["parts"].append(row)
    return render(
        request,
        "settlement/books.html",
        identity,
        system=sorted(kinds.values(), key=lambda e: e["code"]),
        rows=rows,
        total=total,
        names=names,
        totals=totals,
        book_sum=sum(totals.values()),
        history=history,
        runs=runs,
        anchored=anchored,
        page=page,
        pages=max(1, -(-total // BOOKS_PAGE)),
        can_reconcile=principal.can(P.SETTLEMENT_BOOKS_RECONCILE),
        **LABELS,
        **extra,
    )


@router.get("/settlement/books")
def books_page(
    request: Request,
    identity: WebUser,
    db: DbDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    return _books(request, identity, db, page=page)


@router.post("/settlement/books/reconcile")
async def reconcile_form(request: Request, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        await run_in_threadpool(books.run_reconciliation, db, identity.principal)
    except DomainError as exc:
        details: dict[str, Any] = dict(error_text(exc))
        return _books(request, identity, db, status=exc.status, **details)
    return redirect("/settlement/books")
