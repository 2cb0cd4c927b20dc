"""``datafactor exchange …``: the exchange from the command line (same use cases as the API).

Sections per area; ``--json`` prints what the API answers.
"""

from __future__ import annotations

import json as _json
from collections.abc import Iterator as _Iterator
from contextlib import contextmanager as _contextmanager
from datetime import datetime as _datetime
from typing import Annotated as _Annotated
from typing import Any as _Any

import typer
from rich.console import Console as _Console
from rich.table import Table as _Table
from sqlalchemy import select as _select

from datafactor.db import Database as _Database
from datafactor.db import today_cn as _lst_today
from datafactor.db import utcnow as _utcnow
from datafactor.errors import DomainError as _DomainError
from datafactor.exchange import auctions as _auctions
from datafactor.exchange import contracts as _contracts
from datafactor.exchange import jobs as _jobs
from datafactor.exchange import listings as _listings
from datafactor.exchange import negotiation as _negotiation
from datafactor.exchange import orders as _orders
from datafactor.exchange import settle as _settle_mod
from datafactor.exchange.keys import party_keys as _party_keys
from datafactor.exchange.models import ExchangeAuction as _ExchangeAuction
from datafactor.exchange.models import ExchangeNegotiation as _ExchangeNegotiation
from datafactor.identity import principal_for_username as _principal_for_username
from datafactor.permissions import Permission as _Permission
from datafactor.permissions import Principal as _Principal
from datafactor.settings import get_settings as _get_settings
from datafactor.settlement import format_yuan as _format_yuan
from datafactor.settlement import parse_yuan as _parse_yuan
from datafactor.web.cli_support import fail as _fail

exchange_app = typer.Typer(
    help="The data exchange: listings, orders, contracts, delivery.", no_args_is_help=True
)

# --- listings ------------------------------------------------------------------------------
# ``listings [--json] [filters]`` prints the page of listings the exchange operator sees (every
# state unless ``--state``), the same shape as ``GET /api/v1/listings``; ``listing ID [--json]``
# one listing with its findings; ``listing-decide ID ACTION --as USER --reason TEXT`` is the
# operator's decision (approve, return, refuse, suspend, resume, delist), acting as a real
# operator user so that the audit trail names who decided.


_LISTING_OPERATOR = _Principal(
    user_id="",
    username="cli",
    party_id="",
    party_kind="exchange_operator",
    roles=frozenset(),
    permissions=frozenset({_Permission.EXCHANGE_LISTING_REVIEW, _Permission.EXCHANGE_LISTING_READ}),
    via="cli",
)
_lst_out = _Console(soft_wrap=True)


@_contextmanager
def _lst_db() -> _Iterator[_Database]:
    """The database for one command, disposed after it (no connection outlives the command)."""
    db = _Database(_get_settings().database_url)
    try:
        yield db
    finally:
        db.dispose()


@exchange_app.command("listings")
def listings_cmd(
    as_json: _Annotated[bool, typer.Option("--json", help="Print the API's page as JSON.")] = False,
    q: _Annotated[str, typer.Option(help="Full-text search (Chinese).")] = "",
    kind: _Annotated[str | None, typer.Option(help="product, service or tool.")] = None,
    industry: _Annotated[str | None, typer.Option()] = None,
    region: _Annotated[
        str | None, typer.Option(help="A division code; a prefix finds inside it.")
    ] = None,
    price_model: _Annotated[
        str | None, typer.Option(help="one_off, subscription, metered, free.")
    ] = None,
    channel: _Annotated[str | None, typer.Option(help="download, api or sandbox.")] = None,
    placement: _Annotated[str | None, typer.Option(help="mall or zone.")] = None,
    zone: _Annotated[str | None, typer.Option()] = None,
    price_min_fen: _Annotated[int | None, typer.Option(min=0)] = None,
    price_max_fen: _Annotated[int | None, typer.Option(min=0)] = None,
    state: _Annotated[str | None, typer.Option(help="One state (default: every state).")] = None,
    limit: _Annotated[int, typer.Option(min=1, max=1000)] = 50,
    offset: _Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """The listings as the exchange operator sees them, with the API's filters."""
    query = _listings.ListingQuery(
        q=q,
        kind=kind,
        industry=industry,
        region=region,
        price_model=price_model,
        channel=channel,
        placement=placement,
        zone=zone,
        price_min_fen=price_min_fen,
        price_max_fen=price_max_fen,
        state=state,
    )
    with _lst_db() as db, db.read() as s:
        rows, total = _listings.list_listings(
            s, _LISTING_OPERATOR, query, limit=limit, offset=offset
        )
        names = _listings.seller_names(s, rows)
    items = [_listings.listing_item(r, names) for r in rows]
    if as_json:
        page = {"items": items, "total": total, "limit": limit, "offset": offset}
        typer.echo(_json.dumps(page, ensure_ascii=False))
        return
    table = _Table("number", "title", "state", "price", "left", "seller")
    for item in items:
        left = item["remaining_quantity"]
        table.add_row(
            item["number"],
            item["title"],
            item["status"],
            _format_yuan(item["price_fen"]),
            "∞" if left is None else str(left),
            item["seller_name"],
        )
    _lst_out.print(table)
    _lst_out.print(f"{total} listing(s)")


@exchange_app.command("listing")
def listing_cmd(
    listing_id: _Annotated[str, typer.Argument(help="The listing's id.")],
    as_json: _Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One listing, with its latest review's findings and assessment."""
    try:
        with _lst_db() as db, db.read() as s:
            row = _listings.get_listing(s, _LISTING_OPERATOR, listing_id)
            names = _listings.seller_names(s, [row])
            review = _listings.latest_review(s, row.id)
            item = _listings.listing_item(row, names)
            item["reason"] = row.reason
            item["rules"] = list(row.rules or [])
            item["findings"] = list(review.findings or []) if review else []
            item["assessment"] = (
                {
                    "opinion": review.opinion,
                    "checklist": review.checklist,
                    "signed": bool(review.signature),
                }
                if review and review.signed_at
                else None
            )
    except _DomainError as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(_json.dumps(item, ensure_ascii=False, default=str))
        return
    for key in ("number", "title", "status", "seller_name", "certificate_number", "reason"):
        _lst_out.print(f"{key}: {item[key]}")
    for finding in item["findings"]:
        _lst_out.print(f"  [{finding['outcome']}] {finding['check']} ({finding['rule']})")


@exchange_app.command("listing-decide")
def listing_decide_cmd(
    listing_id: _Annotated[str, typer.Argument(help="The listing's id.")],
    action: _Annotated[
        str, typer.Argument(help="approve, return, refuse, suspend, resume or delist.")
    ],
    username: _Annotated[str, typer.Option("--as", help="The exchange operator user deciding.")],
    reason: _Annotated[str, typer.Option(help="Why (required except to approve).")] = "",
    mall: _Annotated[
        bool, typer.Option("--mall", help="approve: place it in the mall, not the zone asked for.")
    ] = False,
) -> None:
    """The exchange operator's decision on a listing, as a named operator user."""
    try:
        with _lst_db() as db, db.write() as s:
            actor = _principal_for_username(s, username)
            row = _listings.decide_listing(
                s,
                actor,
                listing_id,
                action,
                reason=reason,
                zone_approved=not mall,
                on=_lst_today(),
                now=_utcnow(),
            )
            typer.echo(f"{row.number} {row.state}")
    except _DomainError as exc:
        raise _fail(exc) from exc


# --- orders and contracts ------------------------------------------------------------------

_ORDER_READER = _Principal(
    user_id="",
    username="cli",
    party_id="",
    party_kind="exchange_operator",
    roles=frozenset(),
    permissions=frozenset({_Permission.EXCHANGE_CONTRACT_READ_ALL}),
    via="cli",
)


def _order_json(view: _orders.OrderView) -> dict[str, _Any]:
    out = _orders.as_dict(view)
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in out.items()}


def _acting(session: _Any, username: str | None) -> _Principal:
    return _ORDER_READER if not username else _principal_for_username(session, username)


@exchange_app.command("order")
def order_cmd(
    listing: _Annotated[str, typer.Argument(help="The listing's id.")],
    as_user: _Annotated[str, typer.Option("--as", help="The buyer's user (username).")],
    quantity: _Annotated[
        int, typer.Option("--quantity", "-n", help="Licences, periods or prepaid calls.")
    ] = 1,
    key: _Annotated[
        str,
        typer.Option(
            "--key", help="Idempotency key: a new one per order, the same one to retry it."
        ),
    ] = "",
    as_json: _Annotated[bool, typer.Option("--json", help="Print the order as JSON.")] = False,
) -> None:
    """Buy a listing (mall purchase): the price frozen in escrow, the contract generated."""
    db = _Database(_get_settings().database_url)
    try:
        with db.read() as s:
            principal = _principal_for_username(s, as_user)
        _orders.open_buyer_accounts(db, principal)
        with db.write() as s:
            placed = _orders.place_order(
                s, principal, listing, quantity, key=_orders.check_key(key), now=_utcnow()
            )
            view = _orders.view_of(s, placed)
    except _DomainError as exc:
        raise _fail(exc) from exc
    finally:
        db.dispose()
    if as_json:
        print(_json.dumps(_order_json(view), ensure_ascii=False))
        return
    o = view.order
    _Console(soft_wrap=True).print(
        f"{'replayed ' if placed.replayed else ''}order {o.number} ({o.id}): {o.state}, "
        f"{o.quantity} x {view.listing_title}, {_format_yuan(o.amount_fen)} frozen, "
        f"contract {view.contract_number}"
    )


@exchange_app.command("orders")
def orders_cmd(
    as_user: _Annotated[
        str, typer.Option("--as", help="A user: its party's orders (default: every order).")
    ] = "",
    role: _Annotated[str, typer.Option("--role", help="buyer or seller.")] = "",
    status: _Annotated[str, typer.Option("--status", help="frozen, contracted, cancelled.")] = "",
    limit: _Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    as_json: _Annotated[bool, typer.Option("--json", help="Print {items, total} as JSON.")] = False,
) -> None:
    """List orders: number, status, listing, quantity, amount, contract."""
    db = _Database(_get_settings().database_url)
    try:
        with db.read() as s:
            views, total = _orders.list_orders(
                s,
                _acting(s, as_user),
                role=role or None,
                state=status or None,
                limit=limit,
                offset=0,
            )
    except _DomainError as exc:
        raise _fail(exc) from exc
    finally:
        db.dispose()
    if as_json:
        print(
            _json.dumps(
                {"items": [_order_json(v) for v in views], "total": total}, ensure_ascii=False
            )
        )
        return
    table = _Table("number", "status", "listing", "quantity", "amount", "contract")
    for v in views:
        table.add_row(
            v.order.number,
            v.order.state,
            v.listing_title,
            str(v.order.quantity),
            _format_yuan(v.order.amount_fen),
            v.contract_number or "-",
        )
    _Console(soft_wrap=True).print(table)
    _Console(soft_wrap=True).print(f"{total} order(s)")


@exchange_app.command("order-cancel")
def order_cancel_cmd(
    order: _Annotated[str, typer.Argument(help="The order's id.")],
    as_user: _Annotated[str, typer.Option("--as", help="The buyer's administrator.")],
    reason: _Annotated[str, typer.Option("--reason")] = "",
    as_json: _Annotated[bool, typer.Option("--json", help="Print the order as JSON.")] = False,
) -> None:
    """Cancel an order whose contract is not signed yet (the payment released)."""
    db = _Database(_get_settings().database_url)
    try:
        with db.read() as s:
            principal = _principal_for_username(s, as_user)
        with db.write() as s:
            placed = _orders.cancel_order(s, principal, order, now=_utcnow(), reason=reason)
            view = _orders.view_of(s, placed)
    except _DomainError as exc:
        raise _fail(exc) from exc
    finally:
        db.dispose()
    if as_json:
        print(_json.dumps(_order_json(view), ensure_ascii=False))
        return
    _Console(soft_wrap=True).print(f"order {view.order.number}: {view.order.state}")


# Contracts: list (every contract by default, or a user's party's), show, the moves as a user,
# the PDF, and the deadline clock once (``deadlines``: what the server runs every minute).


def _contract_db() -> _Database:
    return _Database(_get_settings().database_url)


def _print_contract(contract: _Any, as_json: bool) -> None:
    if as_json:
        print(_json.dumps(_contracts.contract_dict(contract), ensure_ascii=False))
        return
    _Console(soft_wrap=True).print(
        f"contract {contract.number} ({contract.id}): {contract.state}, "
        f"{_format_yuan(contract.amount_fen)}, deadline "
        f"{_contracts.show_time(contract.deadline_at)}"
        + (f", ledger entry {contract.ledger_index}" if contract.ledger_index is not None else "")
    )


@exchange_app.command("contracts")
def contracts_cmd(
    as_user: _Annotated[
        str, typer.Option("--as", help="A user: its party's contracts (default: every one).")
    ] = "",
    role: _Annotated[str, typer.Option("--role", help="buyer, seller or broker.")] = "",
    status: _Annotated[str, typer.Option("--status", help="A contract state.")] = "",
    kind: _Annotated[str, typer.Option("--kind", help="mall, agreement or auction.")] = "",
    limit: _Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    as_json: _Annotated[bool, typer.Option("--json", help="Print {items, total} as JSON.")] = False,
) -> None:
    """List contracts: number, status, trade, amount, deadline."""
    db = _contract_db()
    try:
        with db.read() as s:
            principal = _acting(s, as_user)
            rows, total = _contracts.list_contracts(
                s,
                principal,
                _contracts.ContractQuery(
                    state=status or None, role=role or None, kind=kind or None
                ),
                limit=limit,
                offset=0,
                everyone=not as_user,
            )
    except _DomainError as exc:
        raise _fail(exc) from exc
    finally:
        db.dispose()
    if as_json:
        items = [_contracts.contract_dict(c) for c in rows]
        print(_json.dumps({"items": items, "total": total}, ensure_ascii=False))
        return
    table = _Table("number", "status", "kind", "amount", "deadline", "ledger")
    for c in rows:
        table.add_row(
            c.number,
            c.state,
            c.kind,
            _format_yuan(c.amount_fen),
            _contracts.show_time(c.deadline_at),
            "-" if c.ledger_index is None else str(c.ledger_index),
        )
    _Console(soft_wrap=True).print(table)
    _Console(soft_wrap=True).print(f"{total} contract(s)")


def _contract_move(as_user: str, as_json: bool, move: _Any) -> None:
    db = _contract_db()
    try:
        with db.read() as s:
            principal = _principal_for_username(s, as_user)
        with db.write() as s:
            contract = move(s, principal, _utcnow())
            _print_contract(contract, as_json)
    except _DomainError as exc:
        raise _fail(exc) from exc
    finally:
        db.dispose()


@exchange_app.command("contract-sign")
def contract_sign_cmd(
    contract: _Annotated[str, typer.Argument(help="The contract's id.")],
    as_user: _Annotated[str, typer.Option("--as", help="The signing administrator.")],
    confirm: _Annotated[
        bool, typer.Option("--confirm", help="I read the contract and sign it for my party.")
    ] = False,
    as_json: _Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Sign a contract for the user's party (needs --confirm)."""
    keys = _party_keys(_get_settings())
    _contract_move(
        as_user,
        as_json,
        lambda s, p, now: _contracts.sign_contract(
            s, p, contract, keys=keys, confirm=confirm, now=now
        ),
    )


@exchange_app.command("contract-confirm")
def contract_confirm_cmd(
    contract: _Annotated[str, typer.Argument(help="The contract's id.")],
    as_user: _Annotated[str, typer.Option("--as", help="The buyer's administrator.")],
    as_json: _Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Accept the delivery (验收): the contract is completed and settled."""
    _contract_move(
        as_user, as_json, lambda s, p, now: _contracts.confirm_delivery(s, p, contract, now=now)
    )


@exchange_app.command("contract-terminate")
def contract_terminate_cmd(
    contract: _Annotated[str, typer.Argument(help="The contract's id.")],
    as_user: _Annotated[str, typer.Option("--as", help="A party's administrator.")],
    reason: _Annotated[str, typer.Option("--reason")] = "",
    as_json: _Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Terminate a contract before it is signed (the payment released)."""
    _contract_move(
        as_user,
        as_json,
        lambda s, p, now: _contracts.terminate_contract(s, p, contract, reason=reason, now=now),
    )


@exchange_app.command("contract-dispute")
def contract_dispute_cmd(
    contract: _Annotated[str, typer.Argument(help="The contract's id.")],
    as_user: _Annotated[str, typer.Option("--as", help="A party's administrator.")],
    grounds: _Annotated[str, typer.Option("--grounds", help="The grounds of the dispute.")],
    as_json: _Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Raise a dispute over a contract in performance (the payment stays frozen)."""
    _contract_move(
        as_user,
        as_json,
        lambda s, p, now: _contracts.dispute_contract(s, p, contract, grounds=grounds, now=now),
    )


@exchange_app.command("contract-resolve")
def contract_resolve_cmd(
    contract: _Annotated[str, typer.Argument(help="The contract's id.")],
    as_user: _Annotated[str, typer.Option("--as", help="The exchange's administrator.")],
    outcome: _Annotated[str, typer.Option("--outcome", help="seller, buyer or split.")],
    reason: _Annotated[str, typer.Option("--reason", help="The decision's reasons.")],
    pay_fen: _Annotated[
        int | None, typer.Option("--pay-fen", help="split: what the seller is paid.")
    ] = None,
    as_json: _Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Decide a dispute: for the seller, for the buyer, or split."""
    _contract_move(
        as_user,
        as_json,
        lambda s, p, now: _contracts.resolve_dispute(
            s, p, contract, outcome=outcome, reason=reason, pay_fen=pay_fen, now=now
        ),
    )


@exchange_app.command("contract-pdf")
def contract_pdf_cmd(
    contract: _Annotated[str, typer.Argument(help="The contract's id.")],
    out: _Annotated[str, typer.Option("--out", "-o", help="Where to write the PDF.")],
    as_user: _Annotated[str, typer.Option("--as", help="A user (default: the exchange).")] = "",
) -> None:
    """Write the contract as a PDF."""
    settings = _get_settings()
    db = _contract_db()
    try:
        with db.read() as s:
            row, content = _contracts.contract_pdf(
                s,
                _acting(s, as_user),
                contract,
                base_url=settings.public_base_url or "http://localhost:8000",
                now=_utcnow(),
            )
    except _DomainError as exc:
        raise _fail(exc) from exc
    finally:
        db.dispose()
    with open(out, "wb") as fh:
        fh.write(content)
    _Console(soft_wrap=True).print(f"contract {row.number}: {len(content)} bytes to {out}")


@exchange_app.command("deadlines")
def deadlines_cmd(
    as_json: _Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
) -> None:
    """Apply every contract deadline that has passed (what the server does every minute)."""
    db = _contract_db()
    try:
        report = _jobs.run_deadlines(db)
    finally:
        db.dispose()
    if as_json:
        print(_json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        body = report.as_dict()
        _Console(soft_wrap=True).print(
            f"{body['changed']} contract(s) changed {body['counts']}; {len(report.failed)} failed"
        )
    if report.failed:
        raise typer.Exit(1)


# --- negotiations and auctions -------------------------------------------------------------
# ``datafactor exchange negotiations …`` and ``datafactor exchange auctions …``: as the
# operator (every party's, read only, and the clocks ``expire-due`` / ``close-due``), or ``--as``
# a user for the trade's own steps (open, offer, accept, withdraw; create, bid, close, cancel).
# Prices are typed in yuan (``85.50``); ``--json`` prints what the API answers.

negotiations_app = typer.Typer(
    help="Agreement trades (协议交易): offers and counter-offers with a data broker.",
    no_args_is_help=True,
)
auctions_app = typer.Typer(
    help="Auctions (竞价): English auctions with reserve, increment, deposits, anti-sniping.",
    no_args_is_help=True,
)
exchange_app.add_typer(negotiations_app, name="negotiations")
exchange_app.add_typer(auctions_app, name="auctions")

_TRADE_READER = _Principal(
    user_id="",
    username="cli",
    party_id="",
    party_kind="exchange_operator",
    roles=frozenset(),
    permissions=frozenset(
        {
            _Permission.EXCHANGE_CONTRACT_READ_ALL,
            _Permission.EXCHANGE_LISTING_READ,
            _Permission.EXCHANGE_SETTLEMENT_RUN,
        }
    ),
    via="cli",
)
_AsUser = _Annotated[str, typer.Option("--as", help="Act as this user (username).")]
_MaybeAsUser = _Annotated[
    str, typer.Option("--as", help="Act as this user (username); the operator by default.")
]
_Json = _Annotated[bool, typer.Option("--json", help="Print JSON (what the API answers).")]


def _trade_jsonable(value: _Any) -> _Any:
    if isinstance(value, dict):
        return {k: _trade_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_trade_jsonable(v) for v in value]
    return value.isoformat() if hasattr(value, "isoformat") else value


def _trade_print_json(value: _Any) -> None:
    print(_json.dumps(_trade_jsonable(value), ensure_ascii=False))


def _yuan_option(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    try:
        return _parse_yuan(text)
    except ValueError:
        raise typer.BadParameter(f"not a yuan amount: {text!r}") from None


def _trade_db() -> _Database:
    return _Database(_get_settings().database_url)


def _neg_terms(
    price: str | None,
    quantity: int | None,
    channels: list[str] | None,
    term_days: int | None,
    policy_file: str | None,
    note: str,
) -> _negotiation.Terms:
    policy = None
    if policy_file:
        with open(policy_file, encoding="utf-8") as handle:
            policy = _json.load(handle)
    return _negotiation.Terms(
        price_fen=_yuan_option(price),
        quantity=quantity,
        channels=channels or None,
        term_days=term_days,
        policy=policy,
        note=note,
    )


def _neg_id(session: _Any, ref: str) -> str:
    row = session.scalar(
        _select(_ExchangeNegotiation.id).where(
            (_ExchangeNegotiation.id == ref) | (_ExchangeNegotiation.number == ref.strip().upper())
        )
    )
    return str(row) if row else ref


def _auc_id(session: _Any, ref: str) -> str:
    row = session.scalar(
        _select(_ExchangeAuction.id).where(
            (_ExchangeAuction.id == ref) | (_ExchangeAuction.number == ref.strip().upper())
        )
    )
    return str(row) if row else ref


def _show_negotiation(session: _Any, row: _Any, principal: _Principal, as_json: bool) -> None:
    shown = _negotiation.negotiation_dict(session, row, principal)
    if as_json:
        _trade_print_json(shown)
        return
    out = _Console(soft_wrap=True)
    out.print(f"{shown['number']}  {shown['status']}  {shown['listing_title']}")
    if shown["cross_border"]:
        out.print("cross-border: subject to the cross-border assessment")
    for o in shown["offers"]:
        by = " (by the broker)" if o["by_broker"] else ""
        out.print(
            f"  #{o['seq']} {o['side']}{by}: {_format_yuan(o['price_fen'])} x {o['quantity']}"
            f" = {_format_yuan(o['amount_fen'])}, {o['term_days']} days, "
            f"{','.join(o['channels'])}  {o['note']}"
        )
    if shown["contract_number"]:
        out.print(f"contract {shown['contract_number']}")


def _negotiation_step(as_user: str, ref: str, as_json: bool, step: _Any) -> None:
    db = _trade_db()
    try:
        with db.read() as s:
            principal = _principal_for_username(s, as_user)
            negotiation_id = _neg_id(s, ref)
        with db.write() as s:
            row = step(s, principal, negotiation_id)
            _show_negotiation(s, row, principal, as_json)
    except _DomainError as exc:
        raise _fail(exc) from exc
    finally:
        db.dispose()


@negotiations_app.command("list")
def negotiations_list_cmd(
    as_user: _MaybeAsUser = "",
    status: _Annotated[
        str, typer.Option("--status", help="open, agreed, withdrawn, expired.")
    ] = "",
    role: _Annotated[str, typer.Option("--role", help="buyer, seller or broker.")] = "",
    limit: _Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 200,
    as_json: _Json = False,
) -> None:
    """List agreement trades: every party's (the operator) or the user's party's."""
    db = _trade_db()
    try:
        with db.read() as s:
            principal = _principal_for_username(s, as_user) if as_user else _TRADE_READER
            rows, total = _negotiation.list_negotiations(
                s, principal, state=status or None, role=role or None, limit=limit
            )
            items = [
                _negotiation.negotiation_dict(s, r, principal, with_offers=False) for r in rows
            ]
    except _DomainError as exc:
        raise _fail(exc) from exc
    finally:
        db.dispose()
    if as_json:
        _trade_print_json({"items": items, "total": total})
        return
    table = _Table("number", "status", "listing", "latest offer", "deadline")
    for n in items:
        latest = n["latest"]
        table.add_row(
            n["number"],
            n["status"],
            n["listing_number"],
            f"{_format_yuan(latest['amount_fen'])} ({latest['side']})" if latest else "-",
            _contracts.show_time(n["deadline_at"]),
        )
    _Console(soft_wrap=True).print(table)


@negotiations_app.command("show")
def negotiations_show_cmd(
    negotiation: _Annotated[str, typer.Argument(help="Id or number (GX-DN-…).")],
    as_user: _MaybeAsUser = "",
    as_json: _Json = False,
) -> None:
    """Show one agreement trade with its offers."""
    db = _trade_db()
    try:
        with db.read() as s:
            principal = _principal_for_username(s, as_user) if as_user else _TRADE_READER
            row = _negotiation.get_negotiation(s, principal, _neg_id(s, negotiation))
            _show_negotiation(s, row, principal, as_json)
    except _DomainError as exc:
        raise _fail(exc) from exc
    finally:
        db.dispose()


_Price = _Annotated[str | None, typer.Option("--price", help="Price per unit, yuan.")]
_Quantity = _Annotated[int | None, typer.Option("--quantity", "-n", help="Units.")]
_Channels = _Annotated[
    list[str] | None, typer.Option("--channel", help="A delivery channel (repeat).")
]
_Term = _Annotated[int | None, typer.Option("--term-days", help="Term in days.")]
_PolicyFile = _Annotated[
    str | None, typer.Option("--policy", help="A JSON file with the (narrowed) ODRL policy.")
]
_Note = _Annotated[str, typer.Option("--note", help="A note to the other side.")]


@negotiations_app.command("open")
def negotiations_open_cmd(
    listing: _Annotated[str, typer.Argument(help="The listing's id.")],
    as_user: _AsUser,
    price: _Price = None,
    quantity: _Quantity = None,
    channel: _Channels = None,
    term_days: _Term = None,
    policy: _PolicyFile = None,
    note: _Note = "",
    broker: _Annotated[str, typer.Option("--broker", help="The broker's party id.")] = "",
    buyer: _Annotated[
        str, typer.Option("--buyer", help="The buyer's party id (a broker opening for it).")
    ] = "",
    as_json: _Json = False,
) -> None:
    """Open an agreement trade with a first offer."""
    terms = _neg_terms(price, quantity, channel, term_days, policy, note)
    db = _trade_db()
    try:
        with db.read() as s:
            principal = _principal_for_username(s, as_user)
        with db.write() as s:
            row = _negotiation.open_negotiation(
                s,
                principal,
                listing,
                terms,
                broker_id=broker or None,
                buyer_id=buyer or None,
                now=_utcnow(),
            )
            _show_negotiation(s, row, principal, as_json)
    except _DomainError as exc:
        raise _fail(exc) from exc
    finally:
        db.dispose()


@negotiations_app.command("offer")
def negotiations_offer_cmd(
    negotiation: _Annotated[str, typer.Argument(help="Id or number (GX-DN-…).")],
    as_user: _AsUser,
    price: _Price = None,
    quantity: _Quantity = None,
    channel: _Channels = None,
    term_days: _Term = None,
    policy: _PolicyFile = None,
    note: _Note = "",
    as_json: _Json = False,
) -> None:
    """A counter-offer (what is left out keeps the latest offer's terms)."""
    terms = _neg_terms(price, quantity, channel, term_days, policy, note)

    def step(s: _Any, principal: _Principal, negotiation_id: str) -> _Any:
        _negotiation.make_offer(s, principal, negotiation_id, terms, now=_utcnow())
        return _negotiation.get_negotiation(s, principal, negotiation_id)

    _negotiation_step(as_user, negotiation, as_json, step)


@negotiations_app.command("accept")
def negotiations_accept_cmd(
    negotiation: _Annotated[str, typer.Argument(help="Id or number (GX-DN-…).")],
    as_user: _AsUser,
    seq: _Annotated[
        int | None,
        typer.Option(
            "--seq",
            help="Required: the number of the offer you accept (refused without it, or when a "
            "newer offer has arrived).",
        ),
    ] = None,
    as_json: _Json = False,
) -> None:
    """Accept the other side's latest offer: the amount frozen, the contract generated."""
    db = _trade_db()
    try:
        with db.read() as s:
            principal = _principal_for_username(s, as_user)
            row = _negotiation.get_negotiation(s, principal, _neg_id(s, negotiation))
            negotiation_id, buyer = row.id, row.buyer_id
        _negotiation.open_accounts(db, [buyer])
        with db.write() as s:
            done = _negotiation.accept_offer(s, principal, negotiation_id, seq=seq, now=_utcnow())
            _show_negotiation(s, done.negotiation, principal, as_json)
    except _DomainError as exc:
        raise _fail(exc) from exc
    finally:
        db.dispose()


@negotiations_app.command("withdraw")
def negotiations_withdraw_cmd(
    negotiation: _Annotated[str, typer.Argument(help="Id or number (GX-DN-…).")],
    as_user: _AsUser,
    reason: _Annotated[str, typer.Option("--reason", help="Why (told to the other side).")] = "",
    as_json: _Json = False,
) -> None:
    """Break off an agreement trade (the buyer or the seller)."""

    def step(s: _Any, principal: _Principal, negotiation_id: str) -> _Any:
        return _negotiation.withdraw_negotiation(
            s, principal, negotiation_id, reason=reason, now=_utcnow()
        )

    _negotiation_step(as_user, negotiation, as_json, step)


@negotiations_app.command("expire-due")
def negotiations_expire_cmd(as_json: _Json = False) -> None:
    """Expire every open negotiation past its deadline (the server does it every minute)."""
    db = _trade_db()
    try:
        report = _negotiation.expire_due_negotiations(db)
    finally:
        db.dispose()
    if as_json:
        _trade_print_json(report.as_dict())
        return
    print(f"expired: {len(report.expired)}  failed: {len(report.failed)}")


def _show_auction(session: _Any, row: _Any, principal: _Principal, as_json: bool) -> None:
    shown = _auctions.auction_dict(session, row, principal)
    if as_json:
        _trade_print_json(shown)
        return
    out = _Console(soft_wrap=True)
    current = shown["current_fen"]
    out.print(
        f"{shown['number']}  {shown['status']}  {shown['listing_title']}  "
        f"current {_format_yuan(current) if current is not None else '-'}  "
        f"next >= {_format_yuan(shown['minimum_bid_fen'])}  bids {shown['bids']}  "
        f"ends {_contracts.show_time(shown['ends_at'])}"
    )
    for b in shown["history"]:
        who = f"bidder {b['bidder_no']}" + (" (you)" if b["mine"] else "")
        out.print(f"  {_format_yuan(b['amount_fen'])}  {who}  {b['status']}")
    if shown["contract_number"]:
        out.print(f"contract {shown['contract_number']}")
    if shown["reason"]:
        out.print(shown["reason"])


def _auction_step(as_user: str, ref: str, as_json: bool, step: _Any) -> None:
    db = _trade_db()
    try:
        with db.read() as s:
            principal = _principal_for_username(s, as_user) if as_user else _TRADE_READER
            auction = _auctions.get_auction(s, principal, _auc_id(s, ref))
            auction_id, seller = auction.id, auction.seller_id
        _auctions.open_accounts(db, [seller, principal.party_id])
        with db.write() as s:
            row = step(s, principal, auction_id)
            _show_auction(s, row, principal, as_json)
    except _DomainError as exc:
        raise _fail(exc) from exc
    finally:
        db.dispose()


@auctions_app.command("list")
def auctions_list_cmd(
    as_user: _MaybeAsUser = "",
    status: _Annotated[
        str, typer.Option("--status", help="scheduled, open, closed, unsold, cancelled.")
    ] = "",
    limit: _Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 200,
    as_json: _Json = False,
) -> None:
    """List auctions (bidding first)."""
    db = _trade_db()
    try:
        with db.read() as s:
            principal = _principal_for_username(s, as_user) if as_user else _TRADE_READER
            rows, total = _auctions.list_auctions(s, principal, state=status or None, limit=limit)
            items = [_auctions.auction_dict(s, r, principal, history=0) for r in rows]
    except _DomainError as exc:
        raise _fail(exc) from exc
    finally:
        db.dispose()
    if as_json:
        _trade_print_json({"items": items, "total": total})
        return
    table = _Table("number", "status", "listing", "current", "bids", "ends")
    for a in items:
        current = a["current_fen"]
        table.add_row(
            a["number"],
            a["status"],
            a["listing_number"],
            _format_yuan(current) if current is not None else "-",
            str(a["bids"]),
            _contracts.show_time(a["ends_at"]),
        )
    _Console(soft_wrap=True).print(table)


@auctions_app.command("show")
def auctions_show_cmd(
    auction: _Annotated[str, typer.Argument(help="Id or number (GX-DA-…).")],
    as_user: _MaybeAsUser = "",
    as_json: _Json = False,
) -> None:
    """Show one auction: current price, next minimum bid, bids (bidders numbered)."""
    db = _trade_db()
    try:
        with db.read() as s:
            principal = _principal_for_username(s, as_user) if as_user else _TRADE_READER
            row = _auctions.get_auction(s, principal, _auc_id(s, auction))
            _show_auction(s, row, principal, as_json)
    except _DomainError as exc:
        raise _fail(exc) from exc
    finally:
        db.dispose()


@auctions_app.command("create")
def auctions_create_cmd(
    listing: _Annotated[str, typer.Argument(help="The listing's id.")],
    as_user: _AsUser,
    start: _Annotated[str, typer.Option("--start", help="Start price per licence, yuan.")],
    ends: _Annotated[
        str, typer.Option("--ends", help="End, ISO 8601 (without a zone: China time).")
    ],
    starts: _Annotated[str, typer.Option("--starts", help="Start, ISO 8601; now.")] = "",
    reserve: _Annotated[str, typer.Option("--reserve", help="Reserve, yuan.")] = "",
    increment: _Annotated[str, typer.Option("--increment", help="Minimum increment, yuan.")] = "",
    deposit: _Annotated[str, typer.Option("--deposit", help="Deposit per bidder, yuan.")] = "",
    quantity: _Annotated[int, typer.Option("--quantity", "-n", help="Licences.")] = 1,
    snipe: _Annotated[int | None, typer.Option("--snipe-seconds")] = None,
    extension: _Annotated[int | None, typer.Option("--extension-seconds")] = None,
    as_json: _Json = False,
) -> None:
    """Start an auction of a listing of the user's party (its administrator)."""

    def when(text: str) -> _datetime | None:
        if not text:
            return None
        try:
            return _datetime.fromisoformat(text)
        except ValueError:
            raise typer.BadParameter(f"not an ISO 8601 time: {text!r}") from None

    draft = _auctions.AuctionDraft(
        listing_id=listing,
        start_fen=_yuan_option(start),
        ends_at=when(ends),
        starts_at=when(starts),
        reserve_fen=_yuan_option(reserve),
        increment_fen=_yuan_option(increment),
        deposit_fen=_yuan_option(deposit),
        quantity=quantity,
        snipe_seconds=snipe,
        extension_seconds=extension,
    )
    db = _trade_db()
    try:
        with db.read() as s:
            principal = _principal_for_username(s, as_user)
        with db.write() as s:
            row = _auctions.create_auction(s, principal, draft, now=_utcnow())
            _show_auction(s, row, principal, as_json)
    except _DomainError as exc:
        raise _fail(exc) from exc
    finally:
        db.dispose()


@auctions_app.command("bid")
def auctions_bid_cmd(
    auction: _Annotated[str, typer.Argument(help="Id or number (GX-DA-…).")],
    as_user: _AsUser,
    amount: _Annotated[str, typer.Option("--amount", help="Your bid per licence, yuan.")],
    key: _Annotated[
        str, typer.Option("--key", help="Idempotency key: a new one per bid, the same to retry.")
    ],
    as_json: _Json = False,
) -> None:
    """Bid; the first bid freezes the deposit. Retrying with the same key bids once."""
    fen = _yuan_option(amount)

    def step(s: _Any, principal: _Principal, auction_id: str) -> _Any:
        return _auctions.place_bid(s, principal, auction_id, fen, key=key, now=_utcnow()).auction

    _auction_step(as_user, auction, as_json, step)


@auctions_app.command("close")
def auctions_close_cmd(
    auction: _Annotated[str, typer.Argument(help="Id or number (GX-DA-…).")],
    as_user: _MaybeAsUser = "",
    as_json: _Json = False,
) -> None:
    """Close one auction after its deadline (the operator, or ``--as`` the seller)."""

    def step(s: _Any, principal: _Principal, auction_id: str) -> _Any:
        return _auctions.close_auction(s, principal, auction_id, now=_utcnow()).auction

    _auction_step(as_user, auction, as_json, step)


@auctions_app.command("cancel")
def auctions_cancel_cmd(
    auction: _Annotated[str, typer.Argument(help="Id or number (GX-DA-…).")],
    as_user: _AsUser,
    as_json: _Json = False,
) -> None:
    """Cancel an auction nobody has bid in (the seller's administrator)."""

    def step(s: _Any, principal: _Principal, auction_id: str) -> _Any:
        return _auctions.cancel_auction(s, principal, auction_id, now=_utcnow())

    _auction_step(as_user, auction, as_json, step)


@auctions_app.command("close-due")
def auctions_close_due_cmd(as_json: _Json = False) -> None:
    """Close every auction past its deadline (the server's clock does it every minute)."""
    db = _trade_db()
    try:
        report = _auctions.close_due_auctions(db)
    finally:
        db.dispose()
    if as_json:
        _trade_print_json(report.as_dict())
        return
    print(
        f"opened: {report.opened}  sold: {len(report.sold)}  unsold: {len(report.unsold)}  "
        f"failed: {len(report.failed)}"
    )


# --- delivery ------------------------------------------------------------------------------
# ``deliveries CONTRACT [--json]`` prints a contract's delivery log (every attempt, allowed or
# refused, with its reasons, rules, fields, rows, bytes, digest and mark), as the exchange reads
# it; ``datafactor trace FILE [--json]`` (registered at the top level) names the buyer of a
# leaked copy from its fingerprint. Both run as the exchange (read only).

_DLV_READER = _Principal(
    user_id="",
    username="cli",
    party_id="",
    party_kind="exchange_operator",
    roles=frozenset(),
    permissions=frozenset({_Permission.EXCHANGE_CONTRACT_READ_ALL}),
    via="cli",
)
_dlv_out = _Console(soft_wrap=True)


def _dlv_contract_id(session: _Any, contract: str) -> str:
    """A contract given by id or by number (GX-DC-…)."""
    from datafactor.exchange.models import ExchangeContract

    found = session.scalar(
        _select(ExchangeContract.id).where(
            (ExchangeContract.id == contract) | (ExchangeContract.number == contract)
        )
    )
    return str(found or contract)


@exchange_app.command("deliveries")
def deliveries_cmd(
    contract: _Annotated[str, typer.Argument(help="The contract's id or number.")],
    as_json: _Annotated[bool, typer.Option("--json", help="Print the log as JSON.")] = False,
    limit: _Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 200,
) -> None:
    """A contract's delivery log: every attempt, allowed or refused, newest first."""
    from datafactor import context
    from datafactor.exchange import delivery as _delivery

    database = _Database(_get_settings().database_url)
    locale = context.locale.get()
    try:
        with database.read() as s:
            query = _delivery.DeliveryQuery(contract_id=_dlv_contract_id(s, contract))
            rows, total = _delivery.list_deliveries(s, _DLV_READER, query, limit=limit, offset=0)
            items = [_delivery.delivery_dict(d, c, _DLV_READER, locale) for d, c in rows]
    except _DomainError as exc:
        raise _fail(exc) from exc
    finally:
        database.dispose()
    if as_json:
        print(_json.dumps({"items": items, "total": total}, ensure_ascii=False, indent=2))
        return
    table = _Table("at", "channel", "decision", "rows", "bytes", "mark", "rules")
    for item in items:
        table.add_row(
            item["at"],
            item["channel"],
            item["decision"],
            "" if item["rows"] is None else str(item["rows"]),
            "" if item["bytes"] is None else str(item["bytes"]),
            item["mark"] or "",
            " ".join(item["rules"]),
        )
    _dlv_out.print(table)
    _dlv_out.print(f"{total} deliveries")


def trace_cmd(
    file: _Annotated[
        str, typer.Argument(help="The file found (CSV/TSV, Parquet or JSON Lines); - for stdin.")
    ],
    as_json: _Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Name the buyer of a leaked copy from the fingerprint its delivery embedded."""
    import sys
    from pathlib import Path

    from datafactor.exchange import delivery as _delivery
    from datafactor.exchange import fingerprint as _fingerprint

    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        print(f"error: cannot read {file}: {exc.strerror}", file=sys.stderr)
        raise typer.Exit(2) from exc
    settings = _get_settings()
    database = _Database(settings.database_url)
    try:
        with database.read() as s:
            report = _delivery.trace(s, data, key=_fingerprint.derive_key(str(settings.secret_key)))
    except ValueError as exc:
        print(f"error: {file}: {exc}", file=sys.stderr)
        raise typer.Exit(2) from exc
    finally:
        database.dispose()
    answer = report.as_dict()
    if as_json:
        print(_json.dumps(answer, ensure_ascii=False, indent=2))
        return
    print(
        f"{file}: {answer['file']['rows']} rows ({answer['file']['format']}); "
        f"{answer['examined']} fingerprinted deliveries examined"
    )
    for match in answer["identified"]:
        print(
            f"IDENTIFIED buyer {match['buyer_name']} ({match['buyer_id']}), contract "
            f"{match['contract_number']}, delivered {match['delivered_at']}, mark {match['mark']}: "
            f"{match['canaries_found']} of {match['canaries_total']} canary rows found, "
            f"confidence {match['confidence']:.12f}"
        )
    declared = answer["declared"]
    if declared is not None:
        agrees = "matches" if declared["matches_content"] else "is NOT confirmed by"
        print(
            f"the file's header declares mark {declared['mark']} (buyer {declared['buyer_name']}, "
            f"contract {declared['contract_number']}); it {agrees} the content"
        )
    if not answer["identified"]:
        print("no buyer identified: the evidence is too weak to name anyone")


# --- settlement of contracts ---------------------------------------------------------------

# ``settle-due`` settles every completed, unsettled contract in one settlement batch, as the
# operator's ``POST /api/v1/exchange/settlements/run`` does (idempotent on ``--key``; without one,
# a key of the minute, so a command repeated at once replays); ``settlement`` shows one
# contract's split; ``dashboard`` a party's (or the operator's) figures.

_SETTLE_OPERATOR = _Principal(
    user_id="",
    username="cli",
    party_id="",
    party_kind="exchange_operator",
    roles=frozenset(),
    permissions=frozenset(
        {
            _Permission.EXCHANGE_CONTRACT_READ_ALL,
            _Permission.EXCHANGE_SETTLEMENT_RUN,
        }
    ),
    via="cli",
)


def _jsonable(value: _Any) -> _Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value.isoformat() if hasattr(value, "isoformat") else value


@exchange_app.command("settle-due")
def settle_due_cmd(
    key: _Annotated[
        str,
        typer.Option("--key", help="Idempotency key of the run (default: one per minute)."),
    ] = "",
    contract: _Annotated[
        list[str] | None,
        typer.Option("--contract", help="Only these contracts (repeatable; default: all due)."),
    ] = None,
    as_json: _Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
) -> None:
    """Settle every completed, unsettled contract in one batch (exit 1 if any was refused)."""
    now = _utcnow()
    run_key = key or f"cli:{now.strftime('%Y%m%dT%H%M')}"
    db = _Database(_get_settings().database_url)
    try:
        with db.write() as s:
            result = _settle_mod.settle_due(s, contract or None, key=run_key, actor="cli", now=now)
    except _DomainError as exc:
        raise _fail(exc) from exc
    finally:
        db.dispose()
    if as_json:
        print(_json.dumps(result.as_dict(), ensure_ascii=False))
    else:
        _Console(soft_wrap=True).print(
            f"{'replayed ' if result.replayed else ''}run {result.run_key}: "
            f"{result.settled} contract(s) settled, {_format_yuan(result.paid_fen)} paid, "
            f"{_format_yuan(result.released_fen)} released; {len(result.refused)} refused"
        )
        for x in result.refused:
            _Console(soft_wrap=True, stderr=True).print(f"{x.number}: {x.message}")
    if result.refused:
        raise typer.Exit(1)


@exchange_app.command("settlement")
def settlement_cmd(
    contract: _Annotated[str, typer.Argument(help="The contract's id.")],
    as_user: _Annotated[str, typer.Option("--as", help="A user (default: the exchange).")] = "",
    as_json: _Annotated[bool, typer.Option("--json", help="Print the split as JSON.")] = False,
) -> None:
    """One contract's split: settled, or what it would pay now."""
    db = _Database(_get_settings().database_url)
    try:
        with db.read() as s:
            principal = _principal_for_username(s, as_user) if as_user else _SETTLE_OPERATOR
            view = _settle_mod.get_settlement(s, principal, contract, now=_utcnow())
            body = {
                "contract_id": view.contract.id,
                "number": view.contract.number,
                "settled": view.settled,
                "amount_fen": view.amount_fen,
                "released_fen": view.released_fen,
                "frozen_fen": view.frozen_fen,
                "parts": list(view.parts),
                "rules": list(view.rules),
                "journal_id": view.journal_id,
                "ledger_index": view.ledger_index,
                "settled_at": view.settled_at,
                "problem": view.problem,
            }
    except _DomainError as exc:
        raise _fail(exc) from exc
    finally:
        db.dispose()
    if as_json:
        print(_json.dumps(_jsonable(body), ensure_ascii=False))
        return
    out = _Console(soft_wrap=True)
    out.print(
        f"contract {body['number']}: {'settled' if view.settled else 'not settled'}, "
        f"{_format_yuan(view.amount_fen)} paid, {_format_yuan(view.released_fen)} released"
    )
    table = _Table("kind", "party", "stage", "amount", "rule")
    for part in view.parts:
        table.add_row(
            part["kind"],
            part.get("party_id") or "-",
            part.get("stage") or "-",
            _format_yuan(int(part["amount_fen"])),
            part["rule"],
        )
    out.print(table)
    if view.problem:
        out.print(view.problem)


@exchange_app.command("dashboard")
def dashboard_cmd(
    as_user: _Annotated[str, typer.Option("--as", help="A user (default: the exchange).")] = "",
    role: _Annotated[str, typer.Option("--role", help="seller, broker or operator.")] = "",
    as_json: _Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """A seller's, a broker's or the operator's figures (as the dashboard page shows them)."""
    db = _Database(_get_settings().database_url)
    try:
        with db.read() as s:
            principal = _principal_for_username(s, as_user) if as_user else _SETTLE_OPERATOR
            figures = _settle_mod.dashboard(s, principal, role or None, now=_utcnow())
    except _DomainError as exc:
        raise _fail(exc) from exc
    finally:
        db.dispose()
    if as_json:
        print(_json.dumps(_jsonable(figures), ensure_ascii=False))
        return
    out = _Console(soft_wrap=True)
    for name, value in figures.items():
        if name.endswith("_fen") and isinstance(value, int):
            out.print(f"{name[:-4]}: {_format_yuan(value)}")
        elif isinstance(value, int | str):
            out.print(f"{name}: {value}")
