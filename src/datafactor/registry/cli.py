"""``datafactor registry …``: the registry's operator commands.

``registry certificates [--json]`` lists every certificate (number, asset, right kind, holder,
status), newest first; ``registry receipt NUMBER [-o FILE]`` writes the certificate's ledger
receipt — its entry is the ``registry.certificate.issued`` event carrying the certificate — which
anyone checks offline with ``datafactor verify-receipt FILE``. Both run as the operator (no
tenant filter), like the ledger's commands; a bad or unknown number ends with exit code 2 and a
one-line reason in the user's language. ``registry sweep [--today DATE] [--json]`` runs the
daily sweep (``maintenance.sweep``: expiry, reminders, overdue) for cron or by hand; the server
also runs it once a day, and a second run on one day changes nothing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from datafactor.db import Database
from datafactor.errors import DomainError
from datafactor.registry import maintenance, services
from datafactor.settings import get_settings
from datafactor.web.cli_support import fail

registry_app = typer.Typer(help="The data property registry.", no_args_is_help=True)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
PAGE = 1000


@contextmanager
def _session(*, write: bool = False) -> Iterator[Session]:
    db = Database(get_settings().database_url)
    try:
        with db.write() if write else db.read() as session:
            yield session
    finally:
        db.dispose()


@registry_app.command("certificates")
def certificates_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List certificates: number, asset, right kind, holder, status."""
    rows: list[services.CertificateRow] = []
    with _session() as session:
        offset = 0
        while True:
            page, total = services.list_certificates(session, None, limit=PAGE, offset=offset)
            rows.extend(page)
            offset += PAGE
            if offset >= total:
                break
    if as_json:
        sys.stdout.write(json.dumps([r.as_dict() for r in rows], ensure_ascii=False) + "\n")
        return
    table = Table("number", "asset", "right kind", "holder", "status", "valid until")
    for r in rows:
        table.add_row(
            r.number, r.asset_name, r.right_kind, r.holder_id, r.status, r.valid_until.isoformat()
        )
    out.print(table)


@registry_app.command("receipt")
def receipt_cmd(
    number: Annotated[str, typer.Argument(help="Certificate number, e.g. GX-DR-2026-000123.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to FILE.")] = None,
) -> None:
    """Write a certificate's ledger receipt (verify offline with `datafactor verify-receipt`)."""
    keys = services.issuer_for(get_settings()).keys
    try:
        with _session(write=True) as session:
            receipt = services.certificate_receipt(session, None, number, keys)
    except DomainError as exc:
        raise fail(exc) from exc
    if output is None:
        sys.stdout.write(receipt.dumps())
    else:
        output.write_text(receipt.dumps(), "utf-8")
        err.print(f"receipt for certificate {number} written to {output}")


@registry_app.command("sweep")
def sweep_cmd(
    today: Annotated[
        str | None,
        typer.Option("--today", help="Sweep as on DATE (YYYY-MM-DD; default: today in China)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Run the daily sweep: expire ended rights, send expiry reminders, notify overdue work."""
    try:
        on = None if today is None else date.fromisoformat(today)
    except ValueError:
        err.print(f"--today must be a date like 2026-03-02, not {today!r}")
        raise typer.Exit(2) from None
    db = Database(get_settings().database_url)
    try:
        report = maintenance.run_sweep(db, today=on)
    except DomainError as exc:
        raise fail(exc) from exc
    finally:
        db.dispose()
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), ensure_ascii=False) + "\n")
        return
    out.print(
        f"{report.today.isoformat()}: {len(report.expired)} right(s) expired, "
        f"{len(report.reminders)} reminder(s) sent, {len(report.overdue)} application(s) newly "
        f"overdue, {len(report.withdrawn)} withdrawn"
    )
