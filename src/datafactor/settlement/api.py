"""JSON routes under ``/api/v1/settlement``: parse, call the services, answer.

Accounts (``GET /accounts``: the caller's party's, ``?party=ID`` or ``?party=system`` with
read-all), one account, its statement (paged lines with the running balance; CSV with
``?format=csv`` or ``Accept: text/csv``), deposits and withdrawals (``Idempotency-Key`` header
required: the same key and body answer the same journal again — status 201 and the header
``Idempotent-Replayed: true`` — the same key with another body answers 409), a journal, and
reconciliation (run now; the history). Escrow (freeze, release, capture, refund, batches) has no
public route: the exchange's own use cases call it in their transactions. The router's lifespan
runs the daily reconciliation in each server process.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from datafactor.errors import N_
from datafactor.permissions import Permission
from datafactor.settlement import books, maintenance, services
from datafactor.settlement.domain import check_key
from datafactor.settlement.errors import MissingIdempotencyKey
from datafactor.settlement.schemas import (
    AccountList,
    AccountPublic,
    FundsCreate,
    JournalPublic,
    Page,
    ReconciliationPublic,
    StatementLinePublic,
    StatementPublic,
)
from datafactor.web.deps import ApiPrincipal, DbDep, PagingDep

router = APIRouter(
    prefix="/settlement", tags=["settlement"], lifespan=maintenance.reconcile_lifespan
)

MSG_KEY_MISSING = N_(
    "Send an Idempotency-Key header with every deposit and withdrawal: a new random value (a "
    "UUID) per operation, the same value when you retry it (rule {rule})."
)
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Required. A new random value (UUID) per operation; the same one on retry.",
    ),
]


def _key(value: str | None) -> str:
    rules = services.rules()
    if not value:
        raise MissingIdempotencyKey(
            MSG_KEY_MISSING, rule=rules.rule_id("idempotency"), field="Idempotency-Key"
        )
    return check_key(value, rules)


def _posted(response: Response, posted: services.Posted) -> JournalPublic:
    if posted.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return JournalPublic.of(posted.journal)


@router.get("/accounts", response_model=AccountList, summary="Money accounts and balances")
def accounts(
    principal: ApiPrincipal,
    db: DbDep,
    party: Annotated[
        str | None,
        Query(max_length=36, description="A party id, or 'system' for the exchange's own."),
    ] = None,
) -> AccountList:
    with db.read() as s:
        rows = services.list_accounts(s, principal, party)
    own = party in (None, principal.party_id)
    if not rows and own and principal.can(Permission.SETTLEMENT_ACCOUNT_READ):
        with db.write() as s:  # a party sees its (zero) balances before its first deposit
            services.open_own_accounts(s, principal)
        with db.read() as s:
            rows = services.list_accounts(s, principal, party)
    return AccountList(items=[AccountPublic.of(r) for r in rows], total=len(rows))


@router.get("/accounts/{account_id}", response_model=AccountPublic, summary="One account")
def account(account_id: str, principal: ApiPrincipal, db: DbDep) -> AccountPublic:
    with db.read() as s:
        return AccountPublic.of(services.get_account(s, principal, account_id))


@router.get(
    "/accounts/{account_id}/statement",
    response_model=StatementPublic,
    summary="An account's statement: lines with the running balance (JSON or CSV)",
    responses={200: {"content": {"text/csv": {}}}},
)
def account_statement(
    account_id: str,
    request: Request,
    principal: ApiPrincipal,
    db: DbDep,
    page: PagingDep,
    period_from: Annotated[
        date | None, Query(alias="from", description="First day (China date), included.")
    ] = None,
    period_to: Annotated[
        date | None, Query(alias="to", description="Last day (China date), included.")
    ] = None,
    format: Annotated[
        Literal["json", "csv"] | None, Query(description="csv: the whole period as CSV.")
    ] = None,
) -> Response:
    wants_csv = format == "csv" or (
        format is None and "text/csv" in request.headers.get("accept", "")
    )
    if wants_csv:
        with db.read() as s:  # refusals (404, a bad period) before the response starts
            services.statement(s, principal, account_id, start=period_from, end=period_to, limit=1)

        def stream() -> Iterator[str]:
            with db.read() as s:
                yield from services.statement_csv(
                    s, principal, account_id, start=period_from, end=period_to
                )

        name = f"statement-{account_id[:8]}-{period_from or 'start'}-{period_to or 'now'}.csv"
        return StreamingResponse(
            stream(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    with db.read() as s:
        found = services.statement(
            s,
            principal,
            account_id,
            start=period_from,
            end=period_to,
            limit=page.limit,
            offset=page.offset,
        )
    body = StatementPublic(
        account=AccountPublic.of(found.account),
        period_from=found.start,
        period_to=found.end,
        opening_balance_fen=found.opening_fen,
        closing_balance_fen=found.closing_fen,
        items=[StatementLinePublic.of(x) for x in found.lines],
        total=found.total,
        limit=page.limit,
        offset=page.offset,
    )
    return Response(body.model_dump_json(by_alias=True), media_type="application/json")


@router.post(
    "/deposits",
    response_model=JournalPublic,
    status_code=201,
    summary="Deposit into my party's available funds (through the payment gateway)",
)
def create_deposit(
    body: FundsCreate,
    response: Response,
    principal: ApiPrincipal,
    db: DbDep,
    idempotency_key: IdempotencyKey = None,
) -> JournalPublic:
    key = _key(idempotency_key)
    with db.write() as s:
        posted = services.deposit(s, principal, body.amount_fen, key=key, memo=body.memo)
        return _posted(response, posted)


@router.post(
    "/withdrawals",
    response_model=JournalPublic,
    status_code=201,
    summary="Withdraw from my party's available funds (through the payment gateway)",
)
def create_withdrawal(
    body: FundsCreate,
    response: Response,
    principal: ApiPrincipal,
    db: DbDep,
    idempotency_key: IdempotencyKey = None,
) -> JournalPublic:
    key = _key(idempotency_key)
    with db.write() as s:
        posted = services.withdraw(s, principal, body.amount_fen, key=key, memo=body.memo)
        return _posted(response, posted)


@router.get("/journals/{journal_id}", response_model=JournalPublic, summary="One journal")
def journal(journal_id: str, principal: ApiPrincipal, db: DbDep) -> JournalPublic:
    with db.read() as s:
        record = services.get_journal(s, principal, journal_id)
    show_key = record.scope == principal.party_id or principal.can(
        Permission.SETTLEMENT_ACCOUNT_READ_ALL
    )
    return JournalPublic.of(record, show_key=show_key)


@router.post(
    "/reconciliations",
    response_model=ReconciliationPublic,
    status_code=201,
    summary="Reconcile the whole book now (recorded, and appended to the ledger)",
)
def create_reconciliation(principal: ApiPrincipal, db: DbDep) -> ReconciliationPublic:
    row, _ = books.run_reconciliation(db, principal)
    return ReconciliationPublic.of(row)


@router.get(
    "/reconciliations",
    response_model=Page[ReconciliationPublic],
    summary="The reconciliation history, newest first",
)
def reconciliations(
    principal: ApiPrincipal, db: DbDep, page: PagingDep
) -> Page[ReconciliationPublic]:
    with db.read() as s:
        rows, total = books.list_reconciliations(s, principal, limit=page.limit, offset=page.offset)
        return Page(
            items=[ReconciliationPublic.of(r) for r in rows],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )
