"""``datafactor settlement …``: the money ledger's operator commands.

``reconcile [--json]`` reconciles the whole book (recorded and appended to the transparency
ledger, like the daily job) and prints the verdict — with ``--json`` exactly ``{"balanced",
"sum_fen", "journals", "accounts", "problems"}`` — exiting 0 when the books balance and 1 when
they do not. ``accounts [--party ID|system] [--json]`` lists accounts and balances (every party's
by default); ``statement ACCOUNT [--from DATE] [--to DATE] [--csv]`` prints an account's lines
with the running balance. ``deposit`` / ``withdraw --party ID --amount-fen N --key KEY`` record
a transfer the custody bank confirmed (through the payment gateway), idempotent on the key like
the API. All run as the operator (no tenant filter); a refusal ends with exit code 2 and a
one-line reason in the user's language.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from datafactor.db import CHINA, Database
from datafactor.errors import DomainError
from datafactor.permissions import Permission, Principal
from datafactor.settings import get_settings
from datafactor.settlement import books, services
from datafactor.settlement.domain import format_yuan
from datafactor.web.cli_support import fail

settlement_app = typer.Typer(
    help="Settlement (结算): accounts, journals, reconciliation.", no_args_is_help=True
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
PAGE = 1000

OPERATOR = Principal(
    user_id="",
    username="cli",
    party_id="",
    party_kind="exchange_operator",
    roles=frozenset(),
    permissions=frozenset(
        {
            Permission.SETTLEMENT_ACCOUNT_READ_ALL,
            Permission.SETTLEMENT_BOOKS_RECONCILE,
        }
    ),
    via="cli",
)


def _db() -> Database:
    return Database(get_settings().database_url)


def _date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        err.print(f"{option} must be a date like 2026-03-02, not {value!r}")
        raise typer.Exit(2) from None


@settlement_app.command("reconcile")
def reconcile_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    """Reconcile the whole book: exit 0 when it balances, 1 when it does not."""
    db = _db()
    try:
        row, report = books.run_reconciliation(db, None, actor_name="cli")
    except DomainError as exc:
        raise fail(exc) from exc
    finally:
        db.dispose()
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), ensure_ascii=False) + "\n")
    else:
        verdict = "balanced" if report.balanced else "NOT balanced"
        out.print(
            f"books {verdict}: sum {report.sum_fen} fen over {report.accounts} accounts, "
            f"{report.journals} journals, {report.lines} lines; {row.days_anchored} day(s) "
            f"anchored; ledger entry {row.ledger_index}"
        )
        for problem in report.problems:
            out.print(f"  problem: {json.dumps(problem.as_dict(), ensure_ascii=False)}")
    raise typer.Exit(0 if report.balanced else 1)


@settlement_app.command("accounts")
def accounts_cmd(
    party: Annotated[
        str | None,
        typer.Option("--party", help="A party id, or 'system' (default: every party's)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List accounts with their balances."""
    db = _db()
    try:
        with db.read() as session:
            if party is None:
                rows = services.list_accounts(session, OPERATOR, services.SYSTEM_SCOPE)
                offset = 0
                while True:
                    page, total = services.list_all_accounts(
                        session, OPERATOR, limit=PAGE, offset=offset
                    )
                    rows += page
                    offset += PAGE
                    if offset >= total:
                        break
            else:
                rows = services.list_accounts(session, OPERATOR, party)
    except DomainError as exc:
        raise fail(exc) from exc
    finally:
        db.dispose()
    if as_json:
        items = [
            {
                "id": r.id,
                "party_id": r.party_id,
                "kind": r.kind,
                "code": r.code,
                "balance_fen": r.balance_fen,
                "lines": r.lines,
            }
            for r in rows
        ]
        sys.stdout.write(json.dumps(items, ensure_ascii=False) + "\n")
        return
    table = Table("account", "party", "kind", "code", "balance", "lines")
    for r in rows:
        table.add_row(
            r.id, r.party_id or "—", r.kind, r.code, format_yuan(r.balance_fen), str(r.lines)
        )
    out.print(table)


@settlement_app.command("statement")
def statement_cmd(
    account: Annotated[str, typer.Argument(help="The account id.")],
    period_from: Annotated[
        str | None, typer.Option("--from", help="First day (YYYY-MM-DD, China date).")
    ] = None,
    period_to: Annotated[
        str | None, typer.Option("--to", help="Last day (YYYY-MM-DD, China date).")
    ] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
) -> None:
    """Print an account's statement: every line with the running balance."""
    start, end = _date(period_from, "--from"), _date(period_to, "--to")
    db = _db()
    try:
        with db.read() as session:
            if as_csv:
                for chunk in services.statement_csv(
                    session, OPERATOR, account, start=start, end=end
                ):
                    sys.stdout.write(chunk.lstrip("\ufeff"))
                return
            found = services.statement(
                session, OPERATOR, account, start=start, end=end, limit=PAGE * 10
            )
    except DomainError as exc:
        raise fail(exc) from exc
    finally:
        db.dispose()
    table = Table("seq", "posted (CST)", "journal", "kind", "reference", "amount", "balance")
    for line in found.lines:
        table.add_row(
            str(line.seq),
            line.posted_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
            line.journal_id,
            line.kind,
            line.reference or "",
            format_yuan(line.amount_fen),
            format_yuan(line.balance_after_fen),
        )
    out.print(table)
    out.print(
        f"opening {format_yuan(found.opening_fen)}, closing {format_yuan(found.closing_fen)}, "
        f"{found.total} line(s)"
    )


def _move(kind: str, party: str, amount_fen: int, key: str, memo: str) -> None:
    db = _db()
    try:
        with db.write() as session:
            move = services.deposit_funds if kind == "deposit" else services.withdraw_funds
            posted = move(session, party, amount_fen, key=key, actor="cli", memo=memo)
    except DomainError as exc:
        raise fail(exc) from exc
    finally:
        db.dispose()
    journal = posted.journal
    replay = " (replayed: this key was used before)" if posted.replayed else ""
    out.print(
        f"{kind} {format_yuan(amount_fen)}: journal {journal.id}, bank reference "
        f"{journal.bank_reference}{replay}"
    )


Party = Annotated[str, typer.Option("--party", help="The party id.")]
AmountFen = Annotated[int, typer.Option("--amount-fen", help="Whole fen (12.50 yuan = 1250).")]
Key = Annotated[
    str, typer.Option("--key", help="Idempotency key: the same key again changes nothing.")
]
Memo = Annotated[str, typer.Option("--memo", help="A note for the statement.")]


@settlement_app.command("deposit")
def deposit_cmd(party: Party, amount_fen: AmountFen, key: Key, memo: Memo = "") -> None:
    """Record a deposit the custody bank confirmed: into the party's available funds."""
    _move("deposit", party, amount_fen, key, memo)


@settlement_app.command("withdraw")
def withdraw_cmd(party: Party, amount_fen: AmountFen, key: Key, memo: Memo = "") -> None:
    """Pay out of the party's available funds to its bank (never beyond what is available)."""
    _move("withdraw", party, amount_fen, key, memo)
