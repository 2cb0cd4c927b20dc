"""``datafactor trusts …``: the operator's view of data trusts, and the daily sweep.

``trusts list [--state S] [--json]`` lists every deed (number, title, settlor, trustee, state,
term), newest first; ``trusts show NUMBER|ID [--json]`` prints one deed with its trust property,
the versions of its split, its history, income and totals per party. Both run as the operator —
a supervisor's read of every deed (``POLICY_TRUST_READ_ALL``), like the registry's commands. An
unknown deed exits 2 with a one-line reason. ``trusts sweep [--today DATE] [--json]`` runs the
platform's clock on deeds (accepted deeds take effect on their start date; deeds past their end
expire, and their grants with them); a second run on one day changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from datafactor.db import Database
from datafactor.errors import DomainError
from datafactor.permissions import Permission, Principal
from datafactor.policy.trusts import services
from datafactor.policy.trusts.domain import yuan
from datafactor.policy.trusts.models import PolicyTrustDeed
from datafactor.settings import get_settings
from datafactor.web.cli_support import fail

trusts_app = typer.Typer(
    help="Data trusts (数据信托): deeds, beneficiaries, the trustee's grants and trust income.",
    no_args_is_help=True,
)
out = Console(soft_wrap=True)

OPERATOR = Principal(
    user_id="",
    username="datafactor-cli",
    party_id="",
    party_kind="exchange_operator",
    roles=frozenset(),
    permissions=frozenset({Permission.POLICY_TRUST_READ_ALL}),
    via="cli",
)


@contextmanager
def _session(*, write: bool = False) -> Iterator[Session]:
    db = Database(get_settings().database_url)
    try:
        with db.write() if write else db.read() as session:
            yield session
    finally:
        db.dispose()


def _summary(deed: PolicyTrustDeed, names: dict[str, str]) -> dict[str, Any]:
    return {
        "id": deed.id,
        "number": deed.number,
        "title": deed.title,
        "settlor": names.get(deed.settlor_id, deed.settlor_id),
        "trustee": names.get(deed.trustee_id, deed.trustee_id),
        "state": deed.state,
        "term_start": deed.term_start.isoformat(),
        "term_end": deed.term_end.isoformat(),
        "trustee_fee_bp": deed.trustee_fee_bp,
        "version": deed.version,
    }


@trusts_app.command("list")
def list_cmd(
    state: Annotated[str | None, typer.Option(help="Only deeds in this state.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List trust deeds: number, title, settlor, trustee, state, term."""
    with _session() as session:
        rows, _ = services.list_deeds(
            session, OPERATOR, services.DeedQuery(state=state), limit=10_000, offset=0
        )
        names = services.party_names(
            session, {p for d in rows for p in (d.settlor_id, d.trustee_id)}
        )
        items = [_summary(d, names) for d in rows]
    if as_json:
        for item in items:
            out.print(json.dumps(item, ensure_ascii=False), markup=False, highlight=False)
        return
    table = Table("Number", "Title", "Settlor", "Trustee", "State", "Term")
    for item in items:
        table.add_row(
            item["number"],
            item["title"],
            item["settlor"],
            item["trustee"],
            item["state"],
            f"{item['term_start']} – {item['term_end']}",
        )
    out.print(table)


def _find(session: Session, key: str) -> PolicyTrustDeed:
    found = session.scalar(
        select(PolicyTrustDeed.id).where(
            (PolicyTrustDeed.number == key.strip().upper()) | (PolicyTrustDeed.id == key.strip())
        )
    )
    return services.get_deed(session, OPERATOR, found or key)


@trusts_app.command("show")
def show_cmd(
    deed: Annotated[str, typer.Argument(help="The deed's number (GX-XT-…) or id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """One deed: parties, property, scope, term, split versions, history, income, totals."""
    try:
        with _session() as session:
            row = _find(session, deed)
            roles = services.visible_roles(session, row, OPERATOR)
            versions = services.deed_versions(session, row, OPERATOR, roles)
            income, totals = services.deed_totals(session, OPERATOR, row.id)
            ids = {row.settlor_id, row.trustee_id} | {t.party_id for t in totals}
            ids |= {s.party_id for v in versions for s in v.shares}
            names = services.party_names(session, ids)
            data = _summary(row, names) | {
                "purpose": row.purpose,
                "scope": row.scope,
                "assets": [
                    {"asset_id": a.asset_id, "name": a.asset_name, "right_id": a.right_id}
                    for a in services.deed_assets(session, row.id)
                ],
                "versions": [
                    {
                        "version": v.version,
                        "effective_on": v.effective_on.isoformat(),
                        "shares": {names.get(s.party_id, s.party_id): s.share_bp for s in v.shares},
                    }
                    for v in versions
                ],
                "history": [
                    {
                        "on": e.on.isoformat(),
                        "action": e.action,
                        "state": e.target,
                        "by": e.actor_name,
                        "rules": list(e.rules or ()),
                    }
                    for e in services.deed_events(session, row.id)
                ],
                "income_fen": income,
                "totals": [
                    {
                        "party": names.get(t.party_id, t.party_id),
                        "role": t.role,
                        "pending_fen": t.pending_fen,
                        "paid_fen": t.paid_fen,
                    }
                    for t in totals
                ],
            }
    except DomainError as exc:
        raise fail(exc) from None
    if as_json:
        out.print(json.dumps(data, ensure_ascii=False, indent=2), markup=False, highlight=False)
        return
    out.print(f"[bold]{data['number']}[/bold] {data['title']} ({data['state']})", highlight=False)
    out.print(f"settlor {data['settlor']} · trustee {data['trustee']}", highlight=False)
    out.print(f"term {data['term_start']} – {data['term_end']} · fee {data['trustee_fee_bp']} bp")
    for asset in data["assets"]:
        out.print(f"  property: {asset['name']} ({asset['asset_id']})", highlight=False)
    for v in data["versions"]:
        out.print(
            f"  split v{v['version']} from {v['effective_on']}: {v['shares']}", highlight=False
        )
    out.print(f"income {yuan(income)} yuan")
    for t in data["totals"]:
        out.print(
            f"  {t['party']} ({t['role']}): pending {yuan(t['pending_fen'])}, "
            f"paid {yuan(t['paid_fen'])}",
            highlight=False,
        )


@trusts_app.command("sweep")
def sweep_cmd(
    today: Annotated[
        str | None, typer.Option(help="Run as of this date (YYYY-MM-DD); default today.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Deeds take effect on their start date and expire after their end date."""
    try:
        day = date.fromisoformat(today) if today else None
    except ValueError:
        typer.echo(f"error: --today must be a date (YYYY-MM-DD), not {today!r}", err=True)
        raise typer.Exit(2) from None
    with _session(write=True) as session:
        report = services.sweep(session, today=day)
    if as_json:
        out.print(json.dumps(report.as_dict()), markup=False, highlight=False)
        return
    out.print(f"activated {len(report.activated)}, expired {len(report.expired)}")
