"""``datafactor operation …``: public data authorised operation's operator commands.

``operation report --operator PARTY --year YYYY [--json | --csv]`` prints an operator's annual
report, generated from the records (or as filed): agreements and their data sets, uses by class,
paid income, costs, allowed revenue, the excess carried forward, fees in force against the caps.
``PARTY`` is the operator's party id or its unified social credit code. ``operation sweep
[--today DATE]`` expires the agreements whose term has ended and ends the grants under them, and
records how the requests that ended undecided ended (a second run on one day changes nothing).
Both run as the platform's operator (every party's records, read like a supervisor); a refusal
ends with exit code 2 and a one-line reason.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from datafactor import identity
from datafactor.db import Database
from datafactor.errors import DomainError
from datafactor.permissions import Permission, Principal
from datafactor.policy.operation import services
from datafactor.policy.operation.domain import load_operation_rules, yuan_text
from datafactor.settings import get_settings
from datafactor.web.cli_support import fail

operation_app = typer.Typer(
    help="Public data authorised operation (公共数据授权运营): agreements, uses, fees, reports.",
    no_args_is_help=True,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

SUPERVISOR = Principal(
    user_id="",
    username="cli",
    party_id="",
    party_kind="",
    roles=frozenset(),
    permissions=frozenset({Permission.POLICY_GRANT_READ_ALL, Permission.POLICY_OPERATION_READ}),
    via="cli",
)


def _date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        err.print(f"{option} must be a date like 2027-01-15, not {value!r}")
        raise typer.Exit(2) from None


def _operator_id(session: Session, party: str) -> str:
    found = services.party_card(session, party)
    if found is not None:
        return found.id
    by_code = identity.find_party_id(session, "uscc", "CN", party.strip().upper())
    return by_code or party


@operation_app.command("report")
def report_cmd(
    operator: Annotated[
        str, typer.Option("--operator", help="The operator's party id or credit code.")
    ],
    year: Annotated[int, typer.Option("--year", help="The year, e.g. 2026.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print the report as CSV.")] = False,
    today: Annotated[
        str | None, typer.Option("--today", help="Generate as on DATE (default: today in China).")
    ] = None,
) -> None:
    """Print an operator's annual report, generated from the records (or as filed)."""
    on = _date(today, "--today")
    db = Database(get_settings().database_url)
    try:
        with db.read() as session:
            found = services.build_report(
                session, SUPERVISOR, _operator_id(session, operator), year, today=on
            )
    except DomainError as exc:
        raise fail(exc) from exc
    finally:
        db.dispose()
    if as_json:
        sys.stdout.write(json.dumps(found, ensure_ascii=False) + "\n")
        return
    if as_csv:
        sys.stdout.write(services.report_csv(found))
        return
    rules = load_operation_rules()
    revenue = found["revenue"]
    filed = found.get("filed")
    out.print(
        f"[bold]{found['operator']['name']}[/bold] — annual report {found['year']} "
        f"({'filed ' + filed['on'] if filed else 'not filed; as of ' + found['as_of']})"
    )
    table = Table("agreement", "implementing body", "state", "term", "data sets", "uses")
    for a in found["agreements"]:
        table.add_row(
            a["number"],
            a["body_name"],
            a["state"],
            f"{a['term_start']} – {a['term_end']}",
            str(len(a["data_sets"])),
            str(a["uses"]),
        )
    out.print(table)
    uses = Table("use class", "uses", "grantees", "income (yuan)")
    for c in found["uses"]["by_class"]:
        names = (
            rules.use_classes[c["use_class"]].names if c["use_class"] in rules.use_classes else {}
        )
        uses.add_row(
            f"{names.get('en', c['use_class'])} / {names.get('zh', '')}",
            str(c["count"]),
            str(c["grantees"]),
            yuan_text(c["income_fen"]),
        )
    out.print(uses)
    money = Table("figure", "yuan")
    for label, key in (
        ("cost", "cost_fen"),
        (f"reasonable profit ({revenue['rate_bp']} bp)", "profit_fen"),
        ("allowed revenue", "allowed_fen"),
        ("deduction (excess carried in)", "deduction_fen"),
        ("allowed after deduction", "net_allowed_fen"),
        ("paid-use income", "income_fen"),
        ("excess carried forward", "excess_fen"),
    ):
        money.add_row(label, yuan_text(revenue[key]))
    out.print(money)


@operation_app.command("sweep")
def sweep_cmd(
    today: Annotated[
        str | None, typer.Option("--today", help="Sweep as on DATE (default: today in China).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Expire the agreements whose term has ended (and the grants under them); record how the
    requests that ended before the operator decided them ended."""
    on = _date(today, "--today")
    db = Database(get_settings().database_url)
    try:
        with db.write() as session:
            expired = services.sweep(session, today=on)
    except DomainError as exc:
        raise fail(exc) from exc
    finally:
        db.dispose()
    if as_json:
        sys.stdout.write(json.dumps({"expired": expired}, ensure_ascii=False) + "\n")
        return
    out.print(
        f"{len(expired)} agreement(s) expired" + (f": {', '.join(expired)}" if expired else "")
    )
