"""``datafactor grants …``: the authorisations' operator commands.

``grants list [--state S] [--regime R] [--json]`` lists every grant (number, state, parties,
asset, term, uses); ``grants show ID|NUMBER [--json]`` prints one with its history;
``grants monitor [--today DATE] [--json]`` runs the monitor once (licences followed, grants ended
whose term, policy time, uses, licence or mandate are over), for cron or by hand — the server
also runs it every hour. They run as the operator (every party's grants, read only except the
monitor); an unknown grant ends with exit code 2 and a one-line reason.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from datafactor.db import Database
from datafactor.errors import DomainError
from datafactor.permissions import Permission, Principal
from datafactor.policy.grants import services
from datafactor.policy.grants.domain import reason_text
from datafactor.policy.grants.models import PolicyGrant
from datafactor.settings import get_settings
from datafactor.web.cli_support import fail

grants_app = typer.Typer(
    help="Authorisations (授权): grants of use from a right holder to a grantee under a policy.",
    no_args_is_help=True,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

OPERATOR = Principal(
    user_id="",
    username="cli",
    party_id="",
    party_kind="",
    roles=frozenset(),
    permissions=frozenset({Permission.POLICY_GRANT_READ, Permission.POLICY_GRANT_READ_ALL}),
    via="cli",
)


def _row(g: PolicyGrant) -> dict[str, Any]:
    return {
        "id": g.id,
        "number": g.number,
        "state": g.state,
        "regime": g.regime,
        "reference_id": g.reference_id,
        "holder_id": g.holder_id,
        "agent_id": g.agent_id,
        "grantee_id": g.grantee_id,
        "asset_id": g.asset_id,
        "term_start": g.term_start.isoformat(),
        "term_end": g.term_end.isoformat(),
        "uses": g.uses,
        "max_uses": g.max_uses,
        "licence_certificate": g.licence_certificate,
        "reason": reason_text(g.reason, g.reason_params),
    }


@grants_app.command("list")
def list_cmd(
    state: Annotated[str | None, typer.Option("--state", help="Only grants in STATE.")] = None,
    regime: Annotated[
        str | None,
        typer.Option("--regime", help="direct, public_data_operation or data_trust."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List grants: number, state, grantor, grantee, asset, term, uses."""
    db = Database(get_settings().database_url)
    try:
        with db.read() as s:
            rows = [
                _row(g)
                for g in services.list_grants(
                    s, OPERATOR, state=state, regime=regime, limit=100_000
                )
            ]
    finally:
        db.dispose()
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return
    table = Table("number", "state", "grantor", "grantee", "asset", "term", "uses")
    for r in rows:
        uses = f"{r['uses']}" + ("" if r["max_uses"] is None else f"/{r['max_uses']}")
        table.add_row(
            r["number"],
            r["state"],
            r["agent_id"][:8],
            r["grantee_id"][:8],
            r["asset_id"][:8],
            f"{r['term_start']} – {r['term_end']}",
            uses,
        )
    out.print(table)


@grants_app.command("show")
def show_cmd(
    grant: Annotated[str, typer.Argument(help="The grant's id or number (GX-SQ-2026-000001).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one grant: where it stands, why, its policy and its history."""
    db = Database(get_settings().database_url)
    try:
        with db.read() as s:
            grant_id = s.scalar(
                select(PolicyGrant.id).where(
                    (PolicyGrant.id == grant) | (PolicyGrant.number == grant.strip().upper())
                )
            )
            found = services.get_grant(s, OPERATOR, grant_id or grant)
            shown = _row(found)
            shown["policy"] = found.policy
            shown["scope"] = found.scope
            shown["history"] = [
                {
                    "on": e.on.isoformat(),
                    "action": e.action,
                    "target": e.target,
                    "role": e.role,
                    "actor": e.actor_name,
                    "reason": reason_text(e.reason, e.reason_params),
                    "rules": e.rules,
                    "ledger_index": e.ledger_index,
                }
                for e in services.grant_events(s, found.id)
            ]
    except DomainError as exc:
        raise fail(exc) from exc
    finally:
        db.dispose()
    if as_json:
        sys.stdout.write(json.dumps(shown, ensure_ascii=False) + "\n")
        return
    out.print(f"[bold]{shown['number']}[/bold] {shown['state']} — {shown['reason']}")
    for key in ("holder_id", "agent_id", "grantee_id", "asset_id", "term_start", "term_end"):
        out.print(f"  {key}: {shown[key]}")
    out.print(f"  uses: {shown['uses']} / {shown['max_uses'] or '∞'}")
    for e in shown["history"]:
        out.print(f"  {e['on']} {e['action']} → {e['target']} ({e['role']}) {e['reason']}")


@grants_app.command("monitor")
def monitor_cmd(
    today: Annotated[
        str | None,
        typer.Option("--today", help="Check as on DATE (YYYY-MM-DD; default: today in China)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Re-check every grant that has not ended; end those whose policy no longer holds."""
    try:
        on = None if today is None else date.fromisoformat(today)
    except ValueError:
        err.print(f"--today must be a date like 2026-03-02, not {today!r}")
        raise typer.Exit(2) from None
    db = Database(get_settings().database_url)
    try:
        report = services.run_monitor(db, today=on)
    except DomainError as exc:
        raise fail(exc) from exc
    finally:
        db.dispose()
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), ensure_ascii=False) + "\n")
        return
    counts = ", ".join(f"{len(v)} {k}" for k, v in report.as_dict().items())
    out.print(f"grants monitor: {counts}")
