"""The public ledger explorer (``/ledger``): checkpoint, witnesses, alerts, entries, receipts.

No login: the ledger is public by design. The page shows the latest checkpoint exactly as signed
(with its witness cosignatures), the witnesses and any open alert they raised, the most recent
entries, a lookup by index or leaf hash, and a receipt checker. Checking an uploaded receipt is
a pure computation that changes nothing, so its form carries no CSRF token; it is checked
against the keys this log has published, not against the key inside the receipt.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from datafactor.errors import N_, DomainError, InvalidInput
from datafactor.ledger import services
from datafactor.ledger.api import parse_hash, parse_number
from datafactor.ledger.receipt import MAX_RECEIPT_BYTES, Receipt, ReceiptCheck, verify_receipt
from datafactor.ledger.services import LedgerRequestError
from datafactor.web.deps import DbDep, MaybeWebUser, SettingsDep
from datafactor.web.forms import error_text, read_small_upload, redirect, render

router = APIRouter(include_in_schema=False)
RECENT = 20


def _explorer_context(db: Any, settings: Any) -> dict[str, Any]:
    keys = services.keys_for(settings)
    with db.read() as session:
        latest = services.latest_checkpoint(session)
        note = services.cosigned_note(session, latest) if latest is not None else None
        cosigs = services.cosignatures_of(session, latest) if latest is not None else []
        witnesses = services.list_witnesses(session)
        return {
            "checkpoint": latest,
            "note": note,
            "cosignatures": cosigs,
            "witnesses": witnesses,
            "alerts": services.list_alerts(session),
            "recent": [_entry_view(e) for e in services.recent_entries(session, RECENT)],
            "size": services.tree_size(session),
            "vkey": keys.ensure().verifier().key_string(),
            "log_keys": services.list_keys(session),
        }


def _entry_view(entry: services.StoredEntry) -> dict[str, Any]:
    event = entry.event()
    try:
        text = json.dumps(json.loads(entry.entry), ensure_ascii=False, indent=2, sort_keys=True)
    except (ValueError, UnicodeDecodeError):
        text = None
    return {
        "index": entry.index,
        "leaf_hash": entry.leaf_hash.hex(),
        "kind": event.get("kind") if event else None,
        "at": event.get("at") if event else None,
        "json": text,
        "b64": base64.b64encode(entry.entry).decode("ascii"),
        "size": len(entry.entry),
    }


@router.get("/ledger")
def explorer(
    request: Request, identity: MaybeWebUser, db: DbDep, settings: SettingsDep
) -> Response:
    return render(request, "ledger/explorer.html", identity, **_explorer_context(db, settings))


@router.get("/ledger/lookup")
def lookup(
    request: Request,
    identity: MaybeWebUser,
    db: DbDep,
    settings: SettingsDep,
    q: Annotated[str | None, Query(max_length=80)] = None,
) -> Response:
    query = (q or "").strip()
    try:
        if len(query) == 64:
            with db.read() as session:
                found = services.find_by_leaf_hash(session, parse_hash(query.lower(), "q"))
            return redirect(f"/ledger/entries/{found.index}")
        index = parse_number(query, "q")
        with db.read() as session:
            services.get_entry(session, index)
        return redirect(f"/ledger/entries/{index}")
    except DomainError as exc:
        if isinstance(exc, LedgerRequestError) and exc.field == "q":
            exc = LedgerRequestError(
                N_("Enter an entry index (a number) or a leaf hash (64 hexadecimal digits)."),
                field="q",
            )
        ctx = _explorer_context(db, settings)
        return render(
            request,
            "ledger/explorer.html",
            identity,
            status=exc.status,
            q=query,
            **ctx,
            **error_text(exc),
        )


@router.get("/ledger/entries/{index}")
def entry_page(index: str, request: Request, identity: MaybeWebUser, db: DbDep) -> Response:
    number = parse_number(index, "index")
    with db.read() as session:
        entry = services.get_entry(session, number)
        latest = services.latest_checkpoint(session)
        proof = None
        if latest is not None and latest.size > number:
            proof = services.prove_inclusion(session, number, latest.size)
    return render(
        request,
        "ledger/entry.html",
        identity,
        entry=_entry_view(entry),
        checkpoint=latest,
        proof=[p.hex() for p in proof.proof] if proof else None,
    )


def _check_upload(
    raw: bytes | None, db: Any, settings: Any
) -> tuple[ReceiptCheck | None, str | None, dict[str, Any]]:
    result = None
    problem = None
    if raw is None:
        problem = N_("Choose a receipt file (JSON) to check.")
    else:
        try:
            receipt = Receipt.loads(raw)
        except ValueError as exc:
            problem = str(exc)
        else:
            with db.read() as session:
                log_keys = [k.vkey for k in services.list_keys(session)]
                witness_keys = [w.vkey for w in services.list_witnesses(session) if w.active]
            result = verify_receipt(
                receipt, trusted_log_keys=log_keys or [receipt.log_key], witness_keys=witness_keys
            )
    return result, problem, _explorer_context(db, settings)


@router.post("/ledger/receipt")
async def check_receipt(
    request: Request, identity: MaybeWebUser, db: DbDep, settings: SettingsDep
) -> Response:
    try:
        raw = await read_small_upload(request, "receipt", MAX_RECEIPT_BYTES)
    except InvalidInput as exc:
        ctx = await run_in_threadpool(_explorer_context, db, settings)
        return render(
            request,
            "ledger/explorer.html",
            identity,
            status=413,
            receipt_problem=error_text(exc)["error"],
            **ctx,
        )
    result, problem, ctx = await run_in_threadpool(_check_upload, raw, db, settings)
    return render(
        request,
        "ledger/explorer.html",
        identity,
        status=200 if result is not None else 400,
        receipt_result=result,
        receipt_problem=problem,
        **ctx,
    )
