"""The ``datafactor`` command: serve, migrate, load the demo, manage users, verify the audit, scan.

Each command is a thin shell over the same service functions the web and API use.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from datafactor import audit
from datafactor.census.cli import census_cmd
from datafactor.db import Database
from datafactor.discovery.cli import deidentify_cmd, scan_cmd
from datafactor.errors import DomainError
from datafactor.exchange.cli import exchange_app, trace_cmd
from datafactor.identity.cli import users_app
from datafactor.ledger.cli import ledger_app, verify_receipt_cmd, witness_cmd
from datafactor.policy.cli import policy_app
from datafactor.policy.grants.cli import grants_app
from datafactor.policy.operation.cli import operation_app
from datafactor.policy.trusts.cli import trusts_app
from datafactor.registry.cli import registry_app
from datafactor.sandbox.cli import sandbox_app
from datafactor.settings import get_settings
from datafactor.settlement.cli import settlement_app
from datafactor.web.cli_support import fail as _fail

app = typer.Typer(help="DataFactor: the provincial data factor platform.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo province.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
app.add_typer(ledger_app, name="ledger")
app.add_typer(registry_app, name="registry")
app.add_typer(policy_app, name="policy")
app.add_typer(grants_app, name="grants")
app.add_typer(operation_app, name="operation")
app.add_typer(trusts_app, name="trusts")
app.add_typer(settlement_app, name="settlement")
app.add_typer(exchange_app, name="exchange")
app.add_typer(sandbox_app, name="sandbox")
app.command("witness")(witness_cmd)
app.command("verify-receipt")(verify_receipt_cmd)
app.command("scan")(scan_cmd)
app.command("census")(census_cmd)
app.command("deidentify")(deidentify_cmd)
app.command("trace")(trace_cmd)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@contextmanager
def _db() -> Iterator[Database]:
    database = Database(get_settings().database_url)
    try:
        yield database
    finally:
        database.dispose()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    reload: Annotated[bool, typer.Option(help="Reload on code changes (development).")] = False,
) -> None:
    """Serve the web console and the API."""
    import uvicorn

    get_settings()  # refuse to start with insecure production settings before forking workers
    if workers > 1 and not reload:
        from datafactor.web.server import serve_workers

        serve_workers(host, port, workers)
        return
    uvicorn.run(
        "datafactor.asgi:app",
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        access_log=False,
        proxy_headers=False,
    )


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply the migrations up to REVISION (default: head)."""
    from datafactor.migrations import upgrade

    url = get_settings().database_url
    Database(url).dispose()  # creates the folder of a SQLite file
    upgrade(url, revision)
    console.print(f"database at revision {revision}")


@db_app.command("check")
def db_check() -> None:
    """Fail if the models and the migrations have drifted apart."""
    from datafactor.migrations import check

    check(get_settings().database_url)
    console.print("models and migrations agree")


@demo_app.command("load")
def demo_load(
    password: Annotated[str | None, typer.Option(help="Set every demo user's password.")] = None,
) -> None:
    """Load the demo province (idempotent: a second run changes nothing)."""
    from datafactor.demo.loader import DEFAULT_PASSWORD, load_demo

    try:
        with _db() as db:
            report = load_demo(db, password or DEFAULT_PASSWORD, settings=get_settings())
    except DomainError as exc:
        raise _fail(exc) from exc
    console.print(
        f"demo province: {report.parties_created} parties and {report.users_created} users "
        f"created, {report.passwords_changed} passwords changed; registry pilots: "
        f"{report.datasets_created} data sets, {report.assets_created} assets, "
        f"{report.applications_submitted} applications, {report.steps_taken} registrar steps, "
        f"{report.objections_lodged} objections"
        + ("" if report.changed else " (nothing to change)")
    )


@demo_app.command("users")
def demo_users_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the demo logins: username, party and roles."""
    from datafactor.demo.loader import DEFAULT_PASSWORD, demo_users

    users = demo_users()
    if as_json:
        sys.stdout.write(json.dumps(users, ensure_ascii=False, indent=2) + "\n")
        return
    table = Table(title=f"Demo logins (default password: {DEFAULT_PASSWORD})")
    # Fold rather than truncate: a login list with "regulator.finance.a…" is no use.
    for column in ("username", "party", "kind", "roles", "duty"):
        table.add_column(column, overflow="fold")
    for user in users:
        table.add_row(
            str(user["username"]),
            str(user["party"]),
            str(user["party_kind"]),
            ", ".join(str(role) for role in user["roles"]),  # type: ignore[attr-defined]
            str(user["duty"]),
        )
    console.print(table)


@audit_app.command("verify")
def audit_verify() -> None:
    """Re-derive every audit event hash; name the first broken event."""
    with _db() as db, db.read() as session:
        report = audit.verify_chain(session)
    if report.ok:
        console.print(f"audit chain OK: {report.events} events, head {report.head_hash[:16]}…")
        return
    err.print(f"[red]audit chain BROKEN at event {report.broken_seq}[/red]: {report.problem}")
    raise typer.Exit(1)


def main() -> None:
    app()
