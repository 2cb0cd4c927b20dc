"""Public ledger API under ``/api/v1/ledger``: no login, read-mostly, verifiable by anyone.

Routes parse, call ``services`` and shape the answer; nothing here decides anything. Numeric
parameters are taken as text and parsed here so that a malformed or out-of-range value answers
400 problem+json (``LedgerRequestError``) rather than FastAPI's generic 422. The two POST routes
take text/plain signed notes from witnesses: their signatures, not a login, authenticate them.

The router's lifespan runs the process's ledger ``Integrator`` (key created on first start, a
checkpoint at most a second behind the tree) while the application is up.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse

from datafactor.errors import N_
from datafactor.ledger import services
from datafactor.ledger.integrator import Integrator
from datafactor.ledger.schemas import (
    AlertPublic,
    ConsistencyProofPublic,
    CosignaturesAccepted,
    EntryPage,
    EntryPublic,
    InclusionProofPublic,
    KeyPublic,
    WitnessPublic,
)
from datafactor.ledger.services import LedgerRequestError
from datafactor.web.deps import DbDep, SettingsDep

MAX_NOTE_BYTES = 64 * 1024
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_HEX_HASH = re.compile(r"[0-9a-fA-F]{64}")


@asynccontextmanager
async def ledger_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the ledger integrator while the application is up."""
    integrator = Integrator(app.state.db, services.keys_for(app.state.settings))
    await run_in_threadpool(integrator.start)
    app.state.ledger_integrator = integrator
    try:
        yield
    finally:
        await run_in_threadpool(integrator.stop)


router = APIRouter(tags=["ledger"], lifespan=ledger_lifespan)

NumberText = Annotated[str | None, Query(max_length=24)]
TEXT = "text/plain; charset=utf-8"


def parse_number(value: str | None, name: str, *, default: int | None = None) -> int:
    """A non-negative decimal parameter, or 400 saying what was wrong with it."""
    if value is None or value == "":
        if default is not None:
            return default
        raise LedgerRequestError(
            N_("The parameter {name} is required (a non-negative integer)."),
            field=name,
            name=name,
        )
    if not _DECIMAL.fullmatch(value) or int(value) > 2**63 - 1:
        raise LedgerRequestError(
            N_("The parameter {name} must be a non-negative integer; got '{value}'."),
            field=name,
            name=name,
            value=value[:24],
        )
    return int(value)


def parse_hash(value: str, name: str = "leaf_hash") -> bytes:
    if not _HEX_HASH.fullmatch(value):
        raise LedgerRequestError(
            N_("{name} must be 64 hexadecimal digits (a SHA-256 hash)."), field=name, name=name
        )
    return bytes.fromhex(value)


async def _read_note(request: Request) -> str:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_NOTE_BYTES:
        raise LedgerRequestError(N_("A signed note is at most 64 KiB."))
    body = await request.body()
    if len(body) > MAX_NOTE_BYTES:
        raise LedgerRequestError(N_("A signed note is at most 64 KiB."))
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LedgerRequestError(N_("A signed note must be UTF-8 text.")) from exc


@router.get(
    "/ledger/checkpoint",
    response_class=PlainTextResponse,
    summary="The latest signed checkpoint (C2SP signed note, with witness cosignatures)",
    responses={200: {"content": {"text/plain": {}}}},
)
def checkpoint(
    db: DbDep,
    settings: SettingsDep,
    min_cosignatures: Annotated[
        str | None,
        Query(
            max_length=4,
            description="Return the latest checkpoint cosigned by at least this many witnesses.",
        ),
    ] = None,
) -> PlainTextResponse:
    quorum = parse_number(min_cosignatures, "min_cosignatures", default=0)
    if quorum:
        with db.read() as session:
            found = services.checkpoint_with_quorum(session, quorum)
            if found is None:
                raise LedgerRequestError(
                    N_("No checkpoint has cosignatures from {quorum} witnesses yet."),
                    field="min_cosignatures",
                    quorum=quorum,
                )
            return PlainTextResponse(services.cosigned_note(session, found), media_type=TEXT)
    with db.read() as session:
        latest = services.latest_checkpoint(session)
        if latest is not None:
            return PlainTextResponse(services.cosigned_note(session, latest), media_type=TEXT)
    with db.write() as session:
        latest = services.ensure_checkpoint(session, services.keys_for(settings))
        return PlainTextResponse(services.cosigned_note(session, latest), media_type=TEXT)


@router.get(
    "/ledger/key",
    response_class=PlainTextResponse,
    summary="The log's current verifier key (signed-note vkey line)",
    responses={200: {"content": {"text/plain": {}}}},
)
def key(settings: SettingsDep) -> PlainTextResponse:
    vkey = services.keys_for(settings).ensure().verifier().key_string()
    return PlainTextResponse(vkey + "\n", media_type=TEXT)


@router.get("/ledger/keys", response_model=list[KeyPublic], summary="Every log key, with retired")
def keys(db: DbDep) -> list[KeyPublic]:
    with db.read() as session:
        return [KeyPublic(**k.__dict__) for k in services.list_keys(session)]


@router.get("/ledger/entries", response_model=EntryPage, summary="A page of log entries")
def entries(db: DbDep, start: NumberText = None, limit: NumberText = None) -> EntryPage:
    first = parse_number(start, "start", default=0)
    count = parse_number(limit, "limit", default=100)
    with db.read() as session:
        size = services.tree_size(session)
        if first > size:
            raise LedgerRequestError(
                N_("start must be at most the log's size {size}; got {start}."),
                field="start",
                size=size,
                start=first,
            )
        rows = services.list_entries(session, first, count)
    following = first + len(rows)
    return EntryPage(
        items=[EntryPublic.of(e.index, e.entry, e.leaf_hash) for e in rows],
        start=first,
        limit=count,
        tree_size=size,
        next=following if following < size else None,
    )


@router.get(
    "/ledger/entries/by-hash/{leaf_hash}",
    response_model=EntryPublic,
    summary="Look up an entry by its leaf hash",
)
def entry_by_hash(leaf_hash: str, db: DbDep) -> EntryPublic:
    digest = parse_hash(leaf_hash)
    with db.read() as session:
        found = services.find_by_leaf_hash(session, digest)
    return EntryPublic.of(found.index, found.entry, found.leaf_hash)


@router.get("/ledger/entries/{index}", response_model=EntryPublic, summary="One log entry")
def entry(index: str, db: DbDep) -> EntryPublic:
    number = parse_number(index, "index")
    with db.read() as session:
        found = services.get_entry(session, number)
    return EntryPublic.of(found.index, found.entry, found.leaf_hash)


@router.get(
    "/ledger/proof/inclusion",
    response_model=InclusionProofPublic,
    summary="Inclusion proof of entry `index` in the tree of `tree_size` entries",
)
def proof_inclusion(
    db: DbDep, index: NumberText = None, tree_size: NumberText = None
) -> InclusionProofPublic:
    number = parse_number(index, "index")
    size = None if tree_size in (None, "") else parse_number(tree_size, "tree_size")
    with db.read() as session:
        proof = services.prove_inclusion(session, number, size)
    return InclusionProofPublic(
        index=proof.index,
        tree_size=proof.tree_size,
        leaf_hash=proof.leaf_hash.hex(),
        proof=[p.hex() for p in proof.proof],
    )


@router.get(
    "/ledger/proof/consistency",
    response_model=ConsistencyProofPublic,
    summary="Consistency proof between tree sizes `first` and `second`",
)
def proof_consistency(
    db: DbDep, first: NumberText = None, second: NumberText = None
) -> ConsistencyProofPublic:
    m = parse_number(first, "first")
    n = parse_number(second, "second")
    with db.read() as session:
        proof = services.prove_consistency(session, m, n)
    return ConsistencyProofPublic(first=m, second=n, proof=[p.hex() for p in proof])


@router.get(
    "/ledger/receipts/{index}",
    summary="A self-contained receipt for an entry (see docs/ledger.md)",
    responses={200: {"content": {"application/json": {}}}},
)
def receipt(index: str, db: DbDep, settings: SettingsDep) -> JSONResponse:
    number = parse_number(index, "index")
    keys = services.keys_for(settings)
    with db.read() as session:
        services.get_entry(session, number)  # 400 when out of range
        latest = services.latest_checkpoint(session)
        if latest is not None and latest.size > number:
            return JSONResponse(services.receipt_for(session, number, keys).to_json())
    with db.write() as session:
        return JSONResponse(services.receipt_for(session, number, keys).to_json())


@router.get("/ledger/witnesses", response_model=list[WitnessPublic], summary="Known witnesses")
def witnesses(db: DbDep) -> list[WitnessPublic]:
    with db.read() as session:
        return [
            WitnessPublic(
                name=w.name,
                vkey=w.vkey,
                active=w.active,
                last_cosigned_size=w.last_cosigned_size,
                last_cosigned_at=w.last_cosigned_at,
            )
            for w in services.list_witnesses(session)
        ]


@router.post(
    "/ledger/cosignatures",
    response_model=CosignaturesAccepted,
    status_code=201,
    summary="A witness hands back its cosignature (the checkpoint note plus cosignature lines)",
    openapi_extra={"requestBody": {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def cosignatures(request: Request, db: DbDep) -> CosignaturesAccepted:
    note = await _read_note(request)

    def store() -> CosignaturesAccepted:
        with db.write() as session:
            result = services.accept_cosignatures(session, note)
        return CosignaturesAccepted(accepted=result.accepted, tree_size=result.tree_size)

    return await run_in_threadpool(store)


@router.get("/ledger/alerts", response_model=list[AlertPublic], summary="Open witness alerts")
def alerts(db: DbDep) -> list[AlertPublic]:
    with db.read() as session:
        return [AlertPublic(**_alert_fields(a)) for a in services.list_alerts(session)]


def _alert_fields(alert: services.AlertInfo) -> dict[str, Any]:
    fields = dict(alert.__dict__)
    fields.pop("resolved_at", None)
    return fields


@router.post(
    "/ledger/alerts",
    response_model=AlertPublic,
    status_code=201,
    summary="A witness reports an inconsistent checkpoint (a signed alert note)",
    openapi_extra={"requestBody": {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def raise_alert(request: Request, db: DbDep) -> AlertPublic:
    note = await _read_note(request)

    def store() -> AlertPublic:
        with db.write() as session:
            alert = services.accept_alert(session, note)
        return AlertPublic(**_alert_fields(alert))

    return await run_in_threadpool(store)
