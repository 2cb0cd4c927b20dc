"""JSON routes of data sets and discovery under ``/api/v1``: parse, call the services, answer.

Data sets, versions, uploads, scans and reviews live here together because adding a version
queues its scan: discovery builds on the data plane, never the reverse.

Uploads never hold a whole file in memory. ``POST /datasets/{id}/versions`` streams the request
body into the blob store (``?filename=`` names it; a ``Content-Length`` over the limit is refused
before a byte is read, a body that grows past it as soon as it does). Resumable uploads declare
size and SHA-256 (``POST /datasets/{id}/uploads``), send chunks with ``PATCH /uploads/{id}?offset=``
(each at most ``DATAFACTOR_UPLOAD_CHUNK_MAX_BYTES``), ask where to resume with ``GET``, and
``POST /uploads/{id}/finish`` to verify and add the version. The helpers that span the blob store
and a transaction (``store_upload``, ``finish_upload``, ``add_database``) are shared with the
console's views.

De-identification: ``POST /versions/{id}/deidentification-plan`` answers what a starter
profile or a policy would do to each column (nothing runs); ``POST /versions/{id}/deidentifications``
checks the same and queues the job (``/deidentifications/{id}`` for its progress and report,
``/versions/{id}/derivation`` for how a version was made). The trustee's users reverse tokens with
``POST /versions/{id}/detokenise``. ``plan_deidentification`` and ``start_deidentification`` are
shared with the console's views: they read the version's columns outside any transaction.

The router's lifespan runs this process's scan runner (``jobs.ScanRunner``) unless
``DATAFACTOR_SCAN_RUNNER`` says otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio.from_thread
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool

from datafactor import dataplane, identity
from datafactor.db import Database
from datafactor.discovery import jobs, services
from datafactor.discovery.deidentification import load_deidentification_profiles
from datafactor.discovery.schemas import (
    DeidentificationCreate,
    DeidentificationPlanPublic,
    DeidentificationPublic,
    DetokenisePublic,
    DetokeniseRequest,
    ForceCancel,
    ProfilePublic,
    ReportPublic,
    ReviewCreate,
    ReviewPublic,
    ScanCreate,
    ScanPublic,
    TrusteePublic,
    VersionCreated,
)
from datafactor.discovery.tokens import trustee_keys
from datafactor.discovery.workflow import Review, ReviewDecision, ScanStatus
from datafactor.errors import N_, BadRequest, Conflict, DomainError, InvalidInput, NotFound
from datafactor.permissions import Principal
from datafactor.settings import Settings
from datafactor.web.deps import ApiPrincipal, DbDep, PagingDep, SettingsDep

Page = dataplane.Page


@asynccontextmanager
async def discovery_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the process's scan runner while the application is up."""
    runner = None
    if jobs.runner_enabled(app.state.settings):
        runner = jobs.ScanRunner(app.state.db, app.state.settings, store_of(app))
        runner.start()
    app.state.scan_runner = runner
    try:
        yield
    finally:
        if runner is not None:
            await run_in_threadpool(runner.stop)


router = APIRouter(tags=["discovery"], lifespan=discovery_lifespan)


def store_of(app: Any) -> dataplane.BlobStore:
    """The process's blob store (from the settings, made on first use)."""
    store: dataplane.BlobStore | None = getattr(app.state, "blob_store", None)
    if store is None:
        store = app.state.blob_store = dataplane.blob_store(app.state.settings)
    return store


async def get_store(request: Request) -> dataplane.BlobStore:
    return store_of(request.app)


StoreDep = Annotated[dataplane.BlobStore, Depends(get_store)]


# ------------------------------------------------------------------ flows shared with the views


class LengthRequired(DomainError):
    """A form upload without a declared length (its parser would spool it all before checks)."""

    status = 411
    code = "length-required"
    title = N_("The upload's length is missing")


def too_large(
    settings: Settings, declared: str | None, limit: int | None = None, *, required: bool = False
) -> None:
    """Refuse a body whose declared length is over the limit before reading any of it.

    ``required``: a body without a declared length is refused too (multipart forms, which the
    parser writes to disk whole before the route sees them).
    """
    limit = settings.upload_max_bytes if limit is None else limit
    if required and (declared is None or not declared.isdigit()):
        raise LengthRequired(
            N_("Send the upload with its length (Content-Length); use the upload page's button.")
        )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise dataplane.BlobTooLarge(
            N_("The upload is larger than the limit of {max_bytes} bytes."), max_bytes=limit
        )


class BodyReader:
    """A blocking ``read(n)`` over an ASGI request body, for the blob store in a worker thread."""

    def __init__(self, request: Request) -> None:
        self._chunks = request.stream().__aiter__()
        self._buffer = bytearray()
        self._done = False

    async def _next(self) -> bytes | None:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            return None

    def read(self, size: int = -1, /) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < size):
            chunk = anyio.from_thread.run(self._next)
            if chunk is None:
                self._done = True
            else:
                self._buffer += chunk
        size = len(self._buffer) if size < 0 else size
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out


def created(version: Any, job: Any) -> VersionCreated:
    return VersionCreated(
        version=dataplane.VersionPublic.of(version),
        scan=ScanPublic.of(job) if job is not None else None,
    )


def store_upload(
    db: Database,
    principal: Principal,
    store: dataplane.BlobStore,
    settings: Settings,
    dataset_id: str,
    filename: str | None,
    readable: Any,
) -> VersionCreated:
    """Stream a file into the store and make it the next version (blocking: run in a thread)."""
    with db.read() as session:
        name = dataplane.check_file_version(session, principal, dataset_id, filename)
    blob = store.put_stream(readable, max_bytes=settings.upload_max_bytes)
    dataplane.check_readable(store, blob, name)
    with db.write() as session:
        version, job = services.add_file_version(
            session, principal, dataset_id, blob=blob, filename=name
        )
        return created(version, job)


def finish_upload(
    db: Database, principal: Principal, store: dataplane.BlobStore, upload_id: str
) -> VersionCreated:
    """Verify a resumable upload and add its version (blocking: run in a thread)."""
    with db.read() as session:
        upload = dataplane.get_upload(session, principal, upload_id)
    blob = dataplane.seal_upload(store, upload)
    dataplane.check_readable(store, blob, upload.filename)
    with db.write() as session:
        version, job = services.complete_upload(session, principal, upload_id, blob)
        return created(version, job)


def add_database(
    db: Database,
    principal: Principal,
    settings: Settings,
    dataset_id: str,
    *,
    url: str,
    table: str,
    schema: str | None,
) -> VersionCreated:
    """Check a live table (connects to it) and add it as the next version (blocking)."""
    with db.read() as session:
        dataplane.check_writable(session, principal, dataset_id)
    table, schema = dataplane.check_database_source(
        url, table, schema, allow_files=settings.source_allow_sqlite
    )
    with db.write() as session:
        version, job = services.add_database_version(
            session,
            principal,
            dataset_id,
            url=url,
            table=table,
            schema=schema,
            secret_key=settings.secret_key,
        )
        return created(version, job)


def plan_deidentification(
    db: Database,
    principal: Principal,
    store: dataplane.BlobStore,
    settings: Settings,
    version_id: str,
    request: services.DeidentificationRequest,
) -> services.DeidentificationPlan:
    """Check a de-identification request against the version's columns (blocking: it reads the
    version's header, or connects to its database, outside any transaction)."""
    with db.read() as session:
        source = services.deidentification_source(
            session, principal, version_id, secret_key=settings.secret_key
        )
    policy = services.deidentification_policy(source, request)
    table: Any = dataplane.open_version(store, source.source)
    try:
        schema = table.schema
    finally:
        close = getattr(table, "close", None)
        if callable(close):
            close()
    plan = services.DeidentificationPlan(
        source, policy, request.profile, policy.plan(schema, source.findings)
    )
    with db.read() as session:
        services.check_trustees(session, principal, plan.trustees)
    return plan


def start_deidentification(
    db: Database,
    principal: Principal,
    store: dataplane.BlobStore,
    settings: Settings,
    version_id: str,
    request: services.DeidentificationRequest,
) -> DeidentificationPublic:
    """Plan (refusing a bad policy before anything changes), then queue the job (blocking)."""
    plan = plan_deidentification(db, principal, store, settings, version_id, request)
    with db.write() as session:
        job = services.request_deidentification(session, principal, plan, request)
        return DeidentificationPublic.of(job)


def trustee_choices(db: Database, principal: Principal) -> list[TrusteePublic]:
    """The parties a policy may name trustee: the principal's own, then the data custodians."""
    with db.read() as session:
        own = identity.get_party(session, principal, principal.party_id)
        custodians = identity.list_custodians(session, principal)
    return [
        TrusteePublic(party_id=own.id, name=own.name, name_en=own.name_en, own=True),
        *(
            TrusteePublic(party_id=c.id, name=c.name, name_en=c.name_en, own=False)
            for c in custodians
            if c.id != principal.party_id
        ),
    ]


# ------------------------------------------------------------------------------------ data sets


@router.get("/datasets", response_model=Page[dataplane.DatasetPublic], summary="Data sets")
def datasets(
    principal: ApiPrincipal,
    db: DbDep,
    page: PagingDep,
    party_id: Annotated[
        str | None, Query(max_length=36, description="Holder (cross-party readers)")
    ] = None,
    q: Annotated[str | None, Query(max_length=64, description="Part of the name")] = None,
) -> Page[dataplane.DatasetPublic]:
    with db.read() as session:
        rows, total = dataplane.list_datasets(
            session,
            principal,
            dataplane.DatasetQuery(party_id, q),
            limit=page.limit,
            offset=page.offset,
        )
        return Page(
            items=[dataplane.DatasetPublic.of(d) for d in rows],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )


@router.post(
    "/datasets",
    response_model=dataplane.DatasetPublic,
    status_code=201,
    summary="Declare a data set your party holds",
)
def create_dataset(
    body: dataplane.DatasetCreate, principal: ApiPrincipal, db: DbDep
) -> dataplane.DatasetPublic:
    with db.write() as session:
        dataset = dataplane.create_dataset(
            session,
            principal,
            dataplane.DatasetDraft(
                name=body.name,
                name_en=body.name_en,
                description=body.description,
                domain=body.domain,
                update_frequency=body.update_frequency,
                identifying_column=body.identifying_column,
            ),
        )
        return dataplane.DatasetPublic.of(dataset)


@router.get(
    "/datasets/{dataset_id}", response_model=dataplane.DatasetPublic, summary="One data set"
)
def dataset(dataset_id: str, principal: ApiPrincipal, db: DbDep) -> dataplane.DatasetPublic:
    with db.read() as session:
        return dataplane.DatasetPublic.of(dataplane.get_dataset(session, principal, dataset_id))


@router.patch(
    "/datasets/{dataset_id}", response_model=dataplane.DatasetPublic, summary="Change a data set"
)
def update_dataset(
    dataset_id: str, body: dataplane.DatasetUpdate, principal: ApiPrincipal, db: DbDep
) -> dataplane.DatasetPublic:
    changes = body.model_dump(exclude_unset=True)
    with db.write() as session:
        return dataplane.DatasetPublic.of(
            dataplane.update_dataset(session, principal, dataset_id, changes)
        )


# ------------------------------------------------------------------------------------- versions


@router.get(
    "/datasets/{dataset_id}/versions",
    response_model=Page[dataplane.VersionPublic],
    summary="Versions of a data set, newest first",
)
def versions(
    dataset_id: str, principal: ApiPrincipal, db: DbDep, page: PagingDep
) -> Page[dataplane.VersionPublic]:
    with db.read() as session:
        rows, total = dataplane.list_versions(
            session, principal, dataset_id, limit=page.limit, offset=page.offset
        )
        return Page(
            items=[dataplane.VersionPublic.of(v) for v in rows],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )


@router.post(
    "/datasets/{dataset_id}/versions",
    response_model=VersionCreated,
    status_code=201,
    summary="Upload a file as the next version (streamed request body); queues a sample scan",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_version(
    dataset_id: str,
    request: Request,
    principal: ApiPrincipal,
    db: DbDep,
    settings: SettingsDep,
    store: StoreDep,
    filename: Annotated[
        str | None,
        Query(
            max_length=255, description="The file's name (required); its suffix names the format."
        ),
    ] = None,
) -> VersionCreated:
    if request.headers.get("content-type", "").startswith("multipart/"):
        raise InvalidInput(
            N_("Send the file itself as the request body (application/octet-stream), not a form."),
            code="multipart-not-accepted",
        )
    too_large(settings, request.headers.get("content-length"))
    return await run_in_threadpool(
        store_upload, db, principal, store, settings, dataset_id, filename, BodyReader(request)
    )


@router.post(
    "/datasets/{dataset_id}/versions/database",
    response_model=VersionCreated,
    status_code=201,
    summary="Add a table in a live database as the next version; queues a sample scan",
)
def database_version(
    dataset_id: str,
    body: dataplane.DatabaseVersionCreate,
    principal: ApiPrincipal,
    db: DbDep,
    settings: SettingsDep,
) -> VersionCreated:
    return add_database(
        db,
        principal,
        settings,
        dataset_id,
        url=body.url,
        table=body.table,
        schema=body.schema_name,
    )


@router.get("/versions/{version_id}", response_model=dataplane.VersionPublic, summary="One version")
def version(version_id: str, principal: ApiPrincipal, db: DbDep) -> dataplane.VersionPublic:
    with db.read() as session:
        return dataplane.VersionPublic.of(dataplane.get_version(session, principal, version_id))


@router.post(
    "/versions/{version_id}/scans",
    response_model=ScanPublic,
    status_code=201,
    summary="Request a sample or full scan of a version",
)
def request_scan(
    version_id: str, body: ScanCreate, principal: ApiPrincipal, db: DbDep
) -> ScanPublic:
    with db.write() as session:
        return ScanPublic.of(services.request_scan(session, principal, version_id, body.mode))


# -------------------------------------------------------------------------------------- uploads


@router.post(
    "/datasets/{dataset_id}/uploads",
    response_model=dataplane.UploadPublic,
    status_code=201,
    summary="Start a resumable upload (declare size and SHA-256)",
)
def start_upload(
    dataset_id: str,
    body: dataplane.UploadCreate,
    principal: ApiPrincipal,
    db: DbDep,
    settings: SettingsDep,
    store: StoreDep,
) -> dataplane.UploadPublic:
    with db.write() as session:
        upload = dataplane.start_upload(
            session,
            principal,
            store,
            dataset_id,
            filename=body.filename,
            size=body.size,
            sha256=body.sha256,
            max_bytes=settings.upload_max_bytes,
        )
        return dataplane.UploadPublic.of(upload, dataplane.upload_offset(store, upload))


@router.get(
    "/uploads/{upload_id}",
    response_model=dataplane.UploadPublic,
    summary="An upload and the offset to resume from",
)
def upload(
    upload_id: str, principal: ApiPrincipal, db: DbDep, store: StoreDep
) -> dataplane.UploadPublic:
    with db.read() as session:
        found = dataplane.get_upload(session, principal, upload_id)
    return dataplane.UploadPublic.of(found, dataplane.upload_offset(store, found))


async def read_chunk(request: Request, settings: Settings) -> bytes:
    """The request body, refused (413) past the chunk limit without buffering more."""
    limit = settings.upload_chunk_max_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise dataplane.BlobTooLarge(
            N_("A chunk may have at most {max_bytes} bytes; send smaller chunks."),
            max_bytes=limit,
        )
    data = bytearray()
    async for piece in request.stream():
        data += piece
        if len(data) > limit:
            raise dataplane.BlobTooLarge(
                N_("A chunk may have at most {max_bytes} bytes; send smaller chunks."),
                max_bytes=limit,
            )
    return bytes(data)


@router.patch(
    "/uploads/{upload_id}",
    response_model=dataplane.UploadPublic,
    summary="Send a chunk at an offset (the request body)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_chunk(
    upload_id: str,
    request: Request,
    principal: ApiPrincipal,
    db: DbDep,
    settings: SettingsDep,
    store: StoreDep,
    offset: Annotated[
        int | None, Query(ge=0, le=2**62, description="Byte offset of this chunk (required).")
    ] = None,
) -> dataplane.UploadPublic:
    with db.read() as session:
        found = dataplane.get_upload(session, principal, upload_id)
    if offset is None:
        raise BadRequest(
            N_(
                "Say where the chunk starts: ?offset=N (GET the upload for the offset to resume from)."
            ),
            field="offset",
            code="offset-required",
        )
    data = await read_chunk(request, settings)
    new_offset = await run_in_threadpool(dataplane.append_chunk, store, found, offset, data)
    return dataplane.UploadPublic.of(found, new_offset)


@router.post(
    "/uploads/{upload_id}/finish",
    response_model=VersionCreated,
    status_code=201,
    summary="Verify the upload's SHA-256 and add it as the next version",
)
def upload_finish(
    upload_id: str, principal: ApiPrincipal, db: DbDep, store: StoreDep
) -> VersionCreated:
    return finish_upload(db, principal, store, upload_id)


@router.delete(
    "/uploads/{upload_id}", response_model=dataplane.UploadPublic, summary="Abandon an upload"
)
def upload_abort(
    upload_id: str, principal: ApiPrincipal, db: DbDep, store: StoreDep
) -> dataplane.UploadPublic:
    with db.write() as session:
        found = dataplane.abort_upload(session, principal, store, upload_id)
        return dataplane.UploadPublic.of(found, 0)


# ---------------------------------------------------------------------------------------- scans


@router.get("/scans", response_model=Page[ScanPublic], summary="Scan jobs, newest first")
def scans(
    principal: ApiPrincipal,
    db: DbDep,
    page: PagingDep,
    dataset_id: Annotated[str | None, Query(max_length=36)] = None,
    version_id: Annotated[str | None, Query(max_length=36)] = None,
    status: Annotated[ScanStatus | None, Query()] = None,
) -> Page[ScanPublic]:
    with db.read() as session:
        rows, total = services.list_scans(
            session,
            principal,
            services.ScanQuery(dataset_id, version_id, status),
            limit=page.limit,
            offset=page.offset,
        )
        return Page(
            items=[ScanPublic.of(j) for j in rows],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )


@router.get("/scans/{scan_id}", response_model=ScanPublic, summary="One scan job and its progress")
def scan(scan_id: str, principal: ApiPrincipal, db: DbDep) -> ScanPublic:
    with db.read() as session:
        return ScanPublic.of(services.get_scan(session, principal, scan_id))


@router.get(
    "/scans/{scan_id}/report",
    response_model=ReportPublic,
    summary="The report of a finished scan, with review decisions applied",
)
def report(scan_id: str, principal: ApiPrincipal, db: DbDep) -> ReportPublic:
    with db.read() as session:
        reviewed = services.reviewed_report(session, principal, scan_id)
        if reviewed.job.status != ScanStatus.SUCCEEDED:
            raise Conflict(
                N_("This scan has no report (it is {status})."),
                code="no-report",
                status=reviewed.job.status,
            )
        return ReportPublic.of(reviewed)


@router.post("/scans/{scan_id}/cancel", response_model=ScanPublic, summary="Cancel a scan")
def cancel(scan_id: str, principal: ApiPrincipal, db: DbDep) -> ScanPublic:
    with db.write() as session:
        return ScanPublic.of(services.cancel_scan(session, principal, scan_id))


@router.post(
    "/scans/{scan_id}/force-cancel",
    response_model=ScanPublic,
    summary="End a scan at once, whatever its runner does (administrators; audited)",
)
def force_cancel(scan_id: str, body: ForceCancel, principal: ApiPrincipal, db: DbDep) -> ScanPublic:
    with db.write() as session:
        return ScanPublic.of(services.force_cancel_scan(session, principal, scan_id, body.reason))


# -------------------------------------------------------------------------------------- reviews


def review_public(review: Review) -> ReviewPublic:
    return ReviewPublic(
        column=review.column,
        entity_type=review.entity_type,
        decision=ReviewDecision(review.decision),
        note=review.note,
        decided_by=review.decided_by,
        decided_at=review.decided_at,
        version_number=review.version_number,
    )


@router.get(
    "/datasets/{dataset_id}/reviews",
    response_model=Page[ReviewPublic],
    summary="Review decisions kept for a data set",
)
def reviews(
    dataset_id: str, principal: ApiPrincipal, db: DbDep, page: PagingDep
) -> Page[ReviewPublic]:
    with db.read() as session:
        decided = services.list_reviews(session, principal, dataset_id)
    return Page(
        items=[review_public(r) for r in decided[page.offset : page.offset + page.limit]],
        total=len(decided),
        limit=page.limit,
        offset=page.offset,
    )


@router.post(
    "/datasets/{dataset_id}/reviews",
    response_model=ReviewPublic,
    summary="Confirm or dismiss a detection (reviewers; applies to later versions too)",
)
def review(dataset_id: str, body: ReviewCreate, principal: ApiPrincipal, db: DbDep) -> ReviewPublic:
    with db.write() as session:
        decided = services.review_detection(
            session,
            principal,
            dataset_id,
            column=body.column,
            entity_type=body.entity_type,
            decision=body.decision,
            note=body.note,
            scan_job_id=body.scan_id,
        )
        return review_public(decided)


# ---------------------------------------------------------------------------- de-identification


@router.get(
    "/deidentification/profiles",
    response_model=list[ProfilePublic],
    summary="The starter de-identification profiles",
)
def deidentification_profiles(principal: ApiPrincipal) -> list[ProfilePublic]:
    return [ProfilePublic.of(p) for p in load_deidentification_profiles().values()]


@router.get(
    "/deidentification/trustees",
    response_model=list[TrusteePublic],
    summary="The parties a policy may name trustee of tokenised columns",
)
def deidentification_trustees(principal: ApiPrincipal, db: DbDep) -> list[TrusteePublic]:
    return trustee_choices(db, principal)


@router.post(
    "/versions/{version_id}/deidentification-plan",
    response_model=DeidentificationPlanPublic,
    summary="What a profile or policy would do to each column of a version (nothing runs)",
)
def deidentification_plan(
    version_id: str,
    body: DeidentificationCreate,
    principal: ApiPrincipal,
    db: DbDep,
    settings: SettingsDep,
    store: StoreDep,
) -> DeidentificationPlanPublic:
    plan = plan_deidentification(db, principal, store, settings, version_id, body.request())
    return DeidentificationPlanPublic.of(plan)


@router.post(
    "/versions/{version_id}/deidentifications",
    response_model=DeidentificationPublic,
    status_code=201,
    summary="De-identify a version into a new version (a background job; its scan follows)",
)
def deidentify_version(
    version_id: str,
    body: DeidentificationCreate,
    principal: ApiPrincipal,
    db: DbDep,
    settings: SettingsDep,
    store: StoreDep,
) -> DeidentificationPublic:
    return start_deidentification(db, principal, store, settings, version_id, body.request())


@router.get(
    "/versions/{version_id}/derivation",
    response_model=DeidentificationPublic,
    summary="How a version was made: the de-identification, its policy and report",
)
def version_derivation(
    version_id: str, principal: ApiPrincipal, db: DbDep
) -> DeidentificationPublic:
    with db.read() as session:
        job = services.derivation_of(session, principal, version_id)
        if job is None:
            raise NotFound(
                N_("This version was not made by a de-identification."), code="not-derived"
            )
        return DeidentificationPublic.of(job, with_report=True)


@router.get(
    "/deidentifications",
    response_model=Page[DeidentificationPublic],
    summary="De-identification jobs, newest first",
)
def deidentifications(
    principal: ApiPrincipal,
    db: DbDep,
    page: PagingDep,
    dataset_id: Annotated[str | None, Query(max_length=36)] = None,
    version_id: Annotated[str | None, Query(max_length=36)] = None,
    status: Annotated[ScanStatus | None, Query()] = None,
) -> Page[DeidentificationPublic]:
    with db.read() as session:
        rows, total = services.list_deidentifications(
            session,
            principal,
            services.ScanQuery(dataset_id, version_id, status),
            limit=page.limit,
            offset=page.offset,
        )
        return Page(
            items=[DeidentificationPublic.of(j) for j in rows],
            total=total,
            limit=page.limit,
            offset=page.offset,
        )


@router.get(
    "/deidentifications/{job_id}",
    response_model=DeidentificationPublic,
    summary="One de-identification job: progress, policy, and its report once finished",
)
def deidentification(job_id: str, principal: ApiPrincipal, db: DbDep) -> DeidentificationPublic:
    with db.read() as session:
        job = services.get_deidentification(session, principal, job_id, with_report=True)
        return DeidentificationPublic.of(job, with_report=True)


@router.post(
    "/deidentifications/{job_id}/cancel",
    response_model=DeidentificationPublic,
    summary="Cancel a de-identification",
)
def deidentification_cancel(
    job_id: str, principal: ApiPrincipal, db: DbDep
) -> DeidentificationPublic:
    with db.write() as session:
        return DeidentificationPublic.of(
            services.cancel_deidentification(session, principal, job_id)
        )


@router.post(
    "/deidentifications/{job_id}/force-cancel",
    response_model=DeidentificationPublic,
    summary="End a de-identification at once (administrators; audited)",
)
def deidentification_force_cancel(
    job_id: str, body: ForceCancel, principal: ApiPrincipal, db: DbDep
) -> DeidentificationPublic:
    with db.write() as session:
        return DeidentificationPublic.of(
            services.force_cancel_deidentification(session, principal, job_id, body.reason)
        )


@router.post(
    "/versions/{version_id}/detokenise",
    response_model=DetokenisePublic,
    summary="The trustee turns tokens of a de-identified version back into values (audited)",
)
def detokenise(
    version_id: str,
    body: DetokeniseRequest,
    principal: ApiPrincipal,
    db: DbDep,
    settings: SettingsDep,
) -> DetokenisePublic:
    with db.write() as session:
        values = services.detokenise_values(
            session,
            principal,
            trustee_keys(settings),
            version_id,
            column=body.column,
            tokens=body.tokens,
            max_per_call=settings.detokenise_max_tokens,
            max_per_hour=settings.detokenise_max_per_hour,
        )
    return DetokenisePublic(version_id=version_id, column=body.column, values=values)
