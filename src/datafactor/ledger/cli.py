"""``datafactor ledger …``, ``datafactor witness`` and ``datafactor verify-receipt``.

Thin shells over ``services`` (log side), ``witness`` (the witness process) and ``receipt``
(offline verification, which needs neither a server nor a database). Proofs and receipts print
as JSON on stdout so they can be piped; messages go to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.orm import Session

from datafactor.db import Database
from datafactor.errors import DomainError
from datafactor.ledger import services
from datafactor.ledger.fsck import verify_log
from datafactor.ledger.receipt import Receipt, verify_receipt
from datafactor.settings import get_settings
from datafactor.web.cli_support import fail as _fail

ledger_app = typer.Typer(help="The transparency ledger.", no_args_is_help=True)
prove_app = typer.Typer(help="Inclusion and consistency proofs (JSON).", no_args_is_help=True)
witness_admin = typer.Typer(help="Witnesses whose cosignatures the log accepts.")
ledger_app.add_typer(prove_app, name="prove")
ledger_app.add_typer(witness_admin, name="witness")
out = Console()
err = Console(stderr=True)


@contextmanager
def _session(write: bool = False) -> Iterator[Session]:
    """A unit of work on the configured database, disposed of afterwards."""
    db = Database(get_settings().database_url)
    try:
        with db.write() if write else db.read() as session:
            yield session
    finally:
        db.dispose()


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@ledger_app.command("checkpoint")
def checkpoint_cmd(
    sign: Annotated[
        bool, typer.Option(help="Sign a new checkpoint first if the tree grew.")
    ] = True,
) -> None:
    """Print the latest signed checkpoint (with witness cosignatures)."""
    keys = services.keys_for(get_settings())
    if sign:
        with _session(write=True) as session:
            services.sign_checkpoint(session, keys)
    with _session() as session:
        latest = services.latest_checkpoint(session)
        if latest is None:
            err.print("no checkpoint yet: run `datafactor ledger checkpoint --sign`")
            raise typer.Exit(1)
        sys.stdout.write(services.cosigned_note(session, latest))


@ledger_app.command("key")
def key_cmd() -> None:
    """Print the log's verifier key line (what clients and witnesses are configured with)."""
    sys.stdout.write(services.keys_for(get_settings()).ensure().verifier().key_string() + "\n")


@ledger_app.command("verify")
def verify_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Re-derive the tree from every entry; check it against the signed checkpoints."""
    with _session() as session:
        size = services.tree_size(session)
        with Progress(
            TextColumn("verifying"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
            disable=as_json or size < 100_000,
        ) as progress:
            task = progress.add_task("verify", total=size)
            report = verify_log(session, progress=lambda n: progress.advance(task, n))
    if as_json:
        _print_json(
            {
                "ok": report.ok,
                "size": report.size,
                "entries_checked": report.entries_checked,
                "checkpoint_size": report.checkpoint_size,
                "checkpoint_root": report.checkpoint_root,
                "root": report.root,
                "checkpoints_checked": report.checkpoints_checked,
                "first_bad_index": report.first_bad_index,
                "problems": [p.__dict__ for p in report.problems],
            }
        )
    elif report.ok:
        out.print(
            f"ledger OK: {report.entries_checked} entries re-hashed, root {report.root}; "
            f"{report.checkpoints_checked} signed checkpoint(s) match, latest at size "
            f"{report.checkpoint_size}"
        )
    else:
        err.print(f"[red]ledger BROKEN: first bad index {report.first_bad_index}[/red]")
        for problem in report.problems:
            err.print(f"  - {problem.message}")
    if not report.ok:
        raise typer.Exit(1)


@prove_app.command("inclusion")
def prove_inclusion_cmd(
    index: Annotated[int, typer.Argument(help="Entry index.", min=0)],
    tree_size: Annotated[
        int | None, typer.Option(help="Tree size (default: the latest checkpoint).", min=0)
    ] = None,
) -> None:
    """Print the inclusion proof of an entry as JSON."""
    try:
        with _session() as session:
            proof = services.prove_inclusion(session, index, tree_size)
    except DomainError as exc:
        raise _fail(exc) from exc
    _print_json(
        {
            "index": proof.index,
            "tree_size": proof.tree_size,
            "leaf_hash": proof.leaf_hash.hex(),
            "proof": [p.hex() for p in proof.proof],
        }
    )


@prove_app.command("consistency")
def prove_consistency_cmd(
    first: Annotated[int, typer.Argument(help="Older tree size.", min=0)],
    second: Annotated[int | None, typer.Argument(help="Newer tree size (default: now).")] = None,
) -> None:
    """Print the consistency proof between two tree sizes as JSON."""
    try:
        with _session() as session:
            second = services.tree_size(session) if second is None else second
            proof = services.prove_consistency(session, first, second)
    except DomainError as exc:
        raise _fail(exc) from exc
    _print_json({"first": first, "second": second, "proof": [p.hex() for p in proof]})


@ledger_app.command("receipt")
def receipt_cmd(
    index: Annotated[int, typer.Argument(help="Entry index.", min=0)],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to FILE.")] = None,
) -> None:
    """Write a self-contained receipt for an entry (verify with `datafactor verify-receipt`)."""
    keys = services.keys_for(get_settings())
    try:
        with _session(write=True) as session:
            receipt = services.receipt_for(session, index, keys)
    except DomainError as exc:
        raise _fail(exc) from exc
    if output is None:
        sys.stdout.write(receipt.dumps())
    else:
        output.write_text(receipt.dumps(), "utf-8")
        err.print(f"receipt for entry {index} written to {output}")


@ledger_app.command("append")
def append_cmd(
    kind: Annotated[str, typer.Argument(help="Event kind, e.g. registry.certificate.issued")],
    payload: Annotated[str, typer.Argument(help="The payload, a JSON object.")],
) -> None:
    """Append one event (operators and demos; domains append through their services)."""
    try:
        data = json.loads(payload)
    except ValueError as exc:
        err.print(f"[red]error:[/red] the payload is not JSON: {exc}")
        raise typer.Exit(2) from exc
    try:
        with _session(write=True) as session:
            index = services.append_event(session, kind, data)
    except DomainError as exc:
        raise _fail(exc) from exc
    out.print(f"appended entry {index}")


@ledger_app.command("anchor")
def anchor_cmd() -> None:
    """Append the audit chain head to the ledger now (the server also does it periodically)."""
    with _session(write=True) as session:
        index = services.anchor_audit_head(session)
    if index is None:
        out.print("the audit chain head is already anchored")
    else:
        out.print(f"audit chain head anchored as entry {index}")


@ledger_app.command("rotate-key")
def rotate_key_cmd() -> None:
    """Retire the log key and sign a checkpoint with a new one (old checkpoints stay valid)."""
    keys = services.keys_for(get_settings())
    with _session(write=True) as session:
        vkey = services.rotate_key(session, keys, actor_name="cli")
    out.print(f"new log key: {vkey}")


@witness_admin.command("add")
def witness_add(vkey: Annotated[str, typer.Argument(help="The witness's verifier key.")]) -> None:
    """Accept cosignatures and alerts from a witness."""
    try:
        with _session(write=True) as session:
            witness = services.add_witness(session, vkey, actor_name="cli")
            name = witness.name
    except DomainError as exc:
        raise _fail(exc) from exc
    out.print(f"witness {name} registered")


@witness_admin.command("remove")
def witness_remove(name: Annotated[str, typer.Argument()]) -> None:
    """Stop accepting a witness (its past cosignatures stay on record)."""
    try:
        with _session(write=True) as session:
            services.remove_witness(session, name, actor_name="cli")
    except DomainError as exc:
        raise _fail(exc) from exc
    out.print(f"witness {name} removed")


@witness_admin.command("list")
def witness_list() -> None:
    """List the witnesses and what they last cosigned."""
    with _session() as session:
        rows = services.list_witnesses(session)
        table = Table(title="Witnesses")
        for column in ("name", "active", "last cosigned size", "key"):
            table.add_column(column)
        for w in rows:
            table.add_row(
                w.name, "yes" if w.active else "no", str(w.last_cosigned_size or "—"), w.vkey
            )
    out.print(table)


def witness_cmd(
    log_url: Annotated[
        str, typer.Option("--log", help="Base URL of the log, e.g. http://127.0.0.1:8000")
    ] = "http://127.0.0.1:8000",
    name: Annotated[
        str, typer.Option(help="Witness key name (used when the key is created).")
    ] = "datafactor-witness",
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Folder for the witness key and state (default var/witness)."),
    ] = None,
    log_key: Annotated[
        list[str] | None,
        typer.Option(help="The log's verifier key (repeatable); default: pin on first use."),
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between rounds.", min=0.1)] = 10.0,
    once: Annotated[bool, typer.Option(help="Check one checkpoint and exit.")] = False,
    show_key: Annotated[
        bool, typer.Option(help="Print the witness's verifier key and exit.")
    ] = False,
) -> None:
    """Run a witness: fetch each checkpoint, verify consistency, cosign; refuse and alert on a fork."""
    from datafactor.ledger.witness import HttpTransport, Witness

    folder = state_dir or get_settings().var_dir / "witness"
    witness = Witness(
        HttpTransport(log_url),
        folder,
        name=name,
        log_keys=log_key or (),
        log=lambda message: err.print(message),
    )
    if show_key:
        sys.stdout.write(witness.vkey + "\n")
        return
    if witness.created:
        err.print(
            f"created the witness key in {folder}; register it at the log with:\n"
            f"  datafactor ledger witness add '{witness.vkey}'"
        )
    outcome = witness.run(interval, iterations=1 if once else None)
    if outcome is not None and outcome.status == "refused":
        raise typer.Exit(1)
    if outcome is not None and outcome.status == "error":
        raise typer.Exit(2)


def verify_receipt_cmd(
    file: Annotated[Path, typer.Argument(help="The receipt JSON file.")],
    key: Annotated[
        list[str] | None,
        typer.Option("--key", help="Log verifier key you trust (default: the one in the receipt)."),
    ] = None,
    witness: Annotated[
        list[str] | None,
        typer.Option("--witness", help="Witness verifier key you trust (repeatable)."),
    ] = None,
    quorum: Annotated[int, typer.Option(help="Witness cosignatures required.", min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Verify a ledger receipt offline: no server, no database."""
    try:
        receipt = Receipt.loads(file.read_bytes())
    except (OSError, ValueError) as exc:
        err.print(f"[red]not a valid receipt:[/red] {exc}")
        raise typer.Exit(2) from exc
    result = verify_receipt(
        receipt, trusted_log_keys=key or (), witness_keys=witness, quorum=quorum
    )
    if as_json:
        _print_json(result.__dict__)
    elif result.ok:
        out.print(f"[green]receipt OK[/green]: {'; '.join(result.passed)}")
        if result.log_key_source == "receipt":
            err.print(
                "note: checked against the log key inside the receipt; pass --key with the "
                "log's published key (GET /api/v1/ledger/key) to tie it to that log"
            )
    else:
        err.print(f"[red]receipt does NOT verify[/red]: {'; '.join(result.problems)}")
    if not result.ok:
        raise typer.Exit(1)
