"""HTML routes of data sets and discovery: data sets, uploads with progress, scans, reports, reviews.

Thin shells over ``dataplane`` and ``services``: read the form, check CSRF, call the use case in a
unit of work, render the page (or the HTMX partial). Errors a person caused re-render the page
with the message.

Uploading from the console: ``static/upload.js`` hashes the chosen file (SHA-256, read slice by
slice), starts a resumable upload, sends it in chunks with a progress bar, resumes from the
server's offset after a failure, and finishes it; those calls are the small JSON routes under
``/datasets/{id}/uploads`` and ``/uploads/{id}`` here, authenticated by the session cookie and
the CSRF header. Without JavaScript the same form posts the file as ``multipart/form-data``.

The scan page polls its progress partial every second with HTMX while the job is queued or
running; when the job ends the partial answers ``HX-Refresh`` and the page reloads with the
report. Charts are inline SVG drawn by the templates (``discovery/_charts.html``): no script.

De-identification: a version's page (``/versions/{id}``) shows where the version came from (for a
de-identified one: the source version, the policy's digest and what each column got) and offers
*De-identify*; ``/versions/{id}/deidentify`` chooses a starter profile or takes a policy as JSON,
shows what each column will get (the preview is an HTMX partial, or the whole page without
script), and queues the job, whose page polls its progress as a scan's does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from datafactor import context, dataplane
from datafactor.discovery import services
from datafactor.discovery.api import (
    StoreDep,
    add_database,
    finish_upload,
    plan_deidentification,
    read_chunk,
    start_deidentification,
    store_upload,
    too_large,
    trustee_choices,
)
from datafactor.discovery.deidentification import (
    DeidentificationPolicy,
    load_deidentification_profiles,
)
from datafactor.discovery.grading import GradeDecision
from datafactor.discovery.schemas import (
    DeidentificationPlanPublic,
    DeidentificationPublic,
    ProfilePublic,
    ScanPublic,
)
from datafactor.discovery.services import ReviewedReport
from datafactor.discovery.workflow import (
    DECISION_LABELS,
    ENTITY_LABELS,
    FINAL,
    GRADE_LABELS,
    MODE_LABELS,
    STATUS_LABELS,
    TECHNIQUE_LABELS,
    ScanStatus,
)
from datafactor.errors import N_, DomainError, InvalidInput
from datafactor.identity import WebIdentity, get_party
from datafactor.permissions import Permission, Principal
from datafactor.web.deps import DbDep, SettingsDep, WebUser, check_csrf
from datafactor.web.forms import error_text, read_form, redirect, render
from datafactor.web.i18n import gettext
from datafactor.web.problems import domain_error_text

router = APIRouter(include_in_schema=False)
PAGE = 20
MAX_JSON = 4096

LABELS: dict[str, Any] = {
    "domain_labels": dataplane.DOMAIN_LABELS,
    "frequency_labels": dataplane.FREQUENCY_LABELS,
    "source_kind_labels": dataplane.SOURCE_KIND_LABELS,
    "status_labels": STATUS_LABELS,
    "mode_labels": MODE_LABELS,
    "decision_labels": DECISION_LABELS,
    "entity_labels": ENTITY_LABELS,
    "grade_labels": GRADE_LABELS,
    "technique_labels": TECHNIQUE_LABELS,
}


def _party_names(session: Any, identity: WebIdentity, party_ids: set[str]) -> dict[str, str]:
    names = {}
    for party_id in party_ids:
        try:
            names[party_id] = get_party(session, identity.principal, party_id).name
        except DomainError:
            names[party_id] = party_id[:8]
    return names


def _draft(form: Mapping[str, str]) -> dataplane.DatasetDraft:
    return dataplane.DatasetDraft(
        name=form.get("name", ""),
        name_en=form.get("name_en", ""),
        description=form.get("description", ""),
        domain=form.get("domain", "") or dataplane.DataDomain.OTHER,
        update_frequency=form.get("update_frequency", "") or dataplane.UpdateFrequency.IRREGULAR,
        identifying_column=form.get("identifying_column") or None,
    )


# ------------------------------------------------------------------------------------ data sets


def _datasets_page(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    *,
    q: str | None = None,
    page: int = 1,
    status: int = 200,
    **extra: Any,
) -> Response:
    with db.read() as session:
        rows, total = dataplane.list_datasets(
            session,
            identity.principal,
            dataplane.DatasetQuery(None, q or None),
            limit=PAGE,
            offset=(page - 1) * PAGE,
        )
        items = [dataplane.DatasetPublic.of(d) for d in rows]
        parties = _party_names(session, identity, {d.party_id for d in items})
    template = (
        "discovery/datasets_table.html"
        if request.headers.get("HX-Request") and status == 200
        else "discovery/datasets.html"
    )
    return render(
        request,
        template,
        identity,
        status=status,
        items=items,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE)),
        q=q or "",
        parties=parties,
        form=extra.pop("form", {}),
        **LABELS,
        **extra,
    )


@router.get("/datasets")
def datasets(
    request: Request,
    identity: WebUser,
    db: DbDep,
    q: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
) -> Response:
    return _datasets_page(request, identity, db, q=q, page=page)


@router.post("/datasets")
async def datasets_create(request: Request, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        with db.write() as session:
            dataset = dataplane.create_dataset(session, identity.principal, _draft(form))
            dataset_id = dataset.id
    except DomainError as exc:
        extra: dict[str, Any] = {"form": form, **error_text(exc)}
        return _datasets_page(request, identity, db, status=exc.status, **extra)
    return redirect(f"/datasets/{dataset_id}")


def _dataset_page(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    settings: Any,
    dataset_id: str,
    *,
    status: int = 200,
    **extra: Any,
) -> Response:
    principal = identity.principal
    with db.read() as session:
        dataset = dataplane.DatasetPublic.of(dataplane.get_dataset(session, principal, dataset_id))
        rows, total = dataplane.list_versions(session, principal, dataset_id, limit=50, offset=0)
        versions = [dataplane.VersionPublic.of(v) for v in rows]
        latest = {
            version_id: ScanPublic.of(job)
            for version_id, job in services.latest_scans(
                session, principal, [v.id for v in versions]
            ).items()
        }
        reviews = services.list_reviews(session, principal, dataset_id)
        party = _party_names(session, identity, {dataset.party_id})[dataset.party_id]
    holder = dataset.party_id == principal.party_id
    return render(
        request,
        "discovery/dataset.html",
        identity,
        status=status,
        dataset=dataset,
        party_name=party,
        versions=versions,
        version_total=total,
        latest=latest,
        reviews=reviews,
        can_write=holder and principal.can(Permission.DATAPLANE_DATASET_WRITE),
        can_scan=holder and principal.can(Permission.DISCOVERY_SCAN_RUN),
        can_deidentify=holder
        and principal.can(Permission.DISCOVERY_DEIDENTIFICATION_RUN)
        and principal.can(Permission.DATAPLANE_DATASET_WRITE),
        max_bytes=settings.upload_max_bytes,
        chunk_bytes=min(settings.upload_chunk_max_bytes, 8 * 1024**2),
        form=extra.pop("form", {}),
        **LABELS,
        **extra,
    )


@router.get("/datasets/{dataset_id}")
def dataset_detail(
    request: Request, dataset_id: str, identity: WebUser, db: DbDep, settings: SettingsDep
) -> Response:
    return _dataset_page(request, identity, db, settings, dataset_id)


@router.post("/datasets/{dataset_id}")
async def dataset_update(
    request: Request, dataset_id: str, identity: WebUser, db: DbDep, settings: SettingsDep
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    fields = ("name", "name_en", "description", "domain", "update_frequency", "identifying_column")
    changes: dict[str, Any] = {f: form.get(f, "") for f in fields if f in form}
    if "identifying_column" in changes:
        changes["identifying_column"] = changes["identifying_column"] or None
    try:
        with db.write() as session:
            dataplane.update_dataset(session, identity.principal, dataset_id, changes)
    except DomainError as exc:
        return _dataset_page(
            request, identity, db, settings, dataset_id, status=exc.status, **error_text(exc)
        )
    return redirect(f"/datasets/{dataset_id}")


# ---------------------------------------------------------------------------------- new versions


@router.post("/datasets/{dataset_id}/upload")
async def dataset_upload_form(
    request: Request,
    dataset_id: str,
    identity: WebUser,
    db: DbDep,
    settings: SettingsDep,
    store: StoreDep,
) -> Response:
    """The no-JavaScript upload: a multipart form, spooled to disk by the parser, then streamed."""
    try:
        # The form's own fields add a little to the file; allow for them in the early refusal.
        too_large(
            settings,
            request.headers.get("content-length"),
            settings.upload_max_bytes + 65536,
            required=True,
        )
        async with request.form(max_files=1, max_fields=4) as form:
            token = form.get("csrf_token")
            check_csrf(request, token if isinstance(token, str) else None, identity)
            upload = form.get("file")
            if not isinstance(upload, UploadFile) or not upload.filename:
                raise InvalidInput(N_("Choose a file to upload."), field="file")
            result = await run_in_threadpool(
                store_upload,
                db,
                identity.principal,
                store,
                settings,
                dataset_id,
                upload.filename,
                upload.file,
            )
    except DomainError as exc:
        if exc.code == "csrf":
            raise
        return _dataset_page(
            request, identity, db, settings, dataset_id, status=exc.status, **error_text(exc)
        )
    assert result.scan is not None
    return redirect(f"/scans/{result.scan.id}")


@router.post("/datasets/{dataset_id}/database")
async def dataset_database(
    request: Request, dataset_id: str, identity: WebUser, db: DbDep, settings: SettingsDep
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        result = await run_in_threadpool(
            lambda: add_database(
                db,
                identity.principal,
                settings,
                dataset_id,
                url=form.get("url", ""),
                table=form.get("table", ""),
                schema=form.get("schema") or None,
            )
        )
    except DomainError as exc:
        # The URL may carry a password: it is never echoed back into the page.
        kept = {"table": form.get("table", ""), "schema": form.get("schema", "")}
        return _dataset_page(
            request,
            identity,
            db,
            settings,
            dataset_id,
            status=exc.status,
            form=kept,
            **error_text(exc),
        )
    assert result.scan is not None
    return redirect(f"/scans/{result.scan.id}")


@router.post("/versions/{version_id}/scan")
async def version_scan(
    request: Request, version_id: str, identity: WebUser, db: DbDep, settings: SettingsDep
) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        with db.write() as session:
            job = services.request_scan(
                session, identity.principal, version_id, form.get("mode", "full")
            )
            job_id = job.id
    except DomainError as exc:
        with db.read() as session:
            dataset_id = dataplane.get_version(session, identity.principal, version_id).dataset_id
        return _dataset_page(
            request, identity, db, settings, dataset_id, status=exc.status, **error_text(exc)
        )
    return redirect(f"/scans/{job_id}")


# ------------------------------------------------------------- JSON routes of the upload script


def _json_error(exc: DomainError) -> JSONResponse:
    body = {"detail": domain_error_text(exc), "code": exc.code, "field": exc.field}
    return JSONResponse(body, status_code=exc.status)


def _upload_json(upload: Any, offset: int) -> dict[str, Any]:
    return {
        "id": upload.id,
        "size": upload.size_bytes,
        "offset": offset,
        "finished": upload.finished_at is not None,
    }


@router.post("/datasets/{dataset_id}/uploads")
async def js_upload_start(
    request: Request,
    dataset_id: str,
    identity: WebUser,
    db: DbDep,
    settings: SettingsDep,
    store: StoreDep,
) -> Response:
    check_csrf(request, None, identity)
    try:
        raw = await read_chunk(request, settings)
        if len(raw) > MAX_JSON:
            raise InvalidInput(N_("The request is too long."))
        try:
            body = json.loads(raw or b"{}")
            filename, size, sha256 = str(body["filename"]), int(body["size"]), str(body["sha256"])
        except (ValueError, KeyError, TypeError):
            raise InvalidInput(N_("The upload request is malformed; reload the page.")) from None

        def start() -> dict[str, Any]:
            with db.write() as session:
                upload = dataplane.start_upload(
                    session,
                    identity.principal,
                    store,
                    dataset_id,
                    filename=filename,
                    size=size,
                    sha256=sha256,
                    max_bytes=settings.upload_max_bytes,
                )
                return _upload_json(upload, dataplane.upload_offset(store, upload))

        return JSONResponse(await run_in_threadpool(start), status_code=201)
    except DomainError as exc:
        return _json_error(exc)


@router.get("/uploads/{upload_id}")
def js_upload_state(upload_id: str, identity: WebUser, db: DbDep, store: StoreDep) -> Response:
    try:
        with db.read() as session:
            upload = dataplane.get_upload(session, identity.principal, upload_id)
        return JSONResponse(_upload_json(upload, dataplane.upload_offset(store, upload)))
    except DomainError as exc:
        return _json_error(exc)


@router.patch("/uploads/{upload_id}")
async def js_upload_chunk(
    request: Request,
    upload_id: str,
    identity: WebUser,
    db: DbDep,
    settings: SettingsDep,
    store: StoreDep,
    offset: Annotated[int, Query(ge=0, le=2**62)],
) -> Response:
    check_csrf(request, None, identity)
    try:
        data = await read_chunk(request, settings)

        def append() -> dict[str, Any]:
            with db.read() as session:
                upload = dataplane.get_upload(session, identity.principal, upload_id)
            return _upload_json(upload, dataplane.append_chunk(store, upload, offset, data))

        return JSONResponse(await run_in_threadpool(append))
    except DomainError as exc:
        return _json_error(exc)


@router.post("/uploads/{upload_id}/finish")
async def js_upload_finish(
    request: Request, upload_id: str, identity: WebUser, db: DbDep, store: StoreDep
) -> Response:
    check_csrf(request, None, identity)
    try:
        result = await run_in_threadpool(finish_upload, db, identity.principal, store, upload_id)
    except DomainError as exc:
        return _json_error(exc)
    scan_url = (
        f"/scans/{result.scan.id}" if result.scan else f"/datasets/{result.version.dataset_id}"
    )
    return JSONResponse(
        {"version": result.version.number, "version_id": result.version.id, "next": scan_url},
        status_code=201,
    )


# ---------------------------------------------------------------------------------------- scans


@router.get("/scans")
def scans(
    request: Request,
    identity: WebUser,
    db: DbDep,
    status: Annotated[str | None, Query(max_length=16)] = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
) -> Response:
    status = status if status in set(ScanStatus) else None
    with db.read() as session:
        rows, total = services.list_scans(
            session,
            identity.principal,
            services.ScanQuery(status=status),
            limit=PAGE,
            offset=(page - 1) * PAGE,
        )
        items = [ScanPublic.of(j) for j in rows]
        names = {}
        for job in rows:
            if job.dataset_id not in names:
                names[job.dataset_id] = dataplane.get_dataset(
                    session, identity.principal, job.dataset_id
                ).name
    return render(
        request,
        "discovery/scans.html",
        identity,
        items=items,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE)),
        status_filter=status,
        dataset_names=names,
        **LABELS,
    )


def _bilingual(value: Any, locale: str) -> str:
    if isinstance(value, Mapping):
        zh = value.get("zh") or value.get("label_zh")
        en = value.get("en") or value.get("label_en")
        text = zh if locale.startswith("zh") else en
        return str(text or en or zh or "")
    return "" if value is None else str(value)


def _label(entry: Mapping[str, Any], key: str, locale: str) -> str:
    zh, en = entry.get("label_zh"), entry.get("label_en")
    if zh or en:
        return str((zh if locale.startswith("zh") else en) or en or zh)
    if isinstance(entry.get("label"), Mapping):
        return _bilingual(entry["label"], locale)
    return str(entry.get("label") or key)


def _score(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _band(score: Any) -> str:
    """The colour of a quality bar: green from 80, amber from 60, red below, grey if unknown."""
    if not isinstance(score, int | float):
        return "none"
    return "quality" if score >= 80 else "mid" if score >= 60 else "low"


def quality_view(quality: Mapping[str, Any], locale: str) -> dict[str, Any] | None:
    """The report's quality profile (``discovery.quality``) as the page shows it: the 0–100
    score, the five-level rating, each dimension with its indicators (or why one was not
    assessed), and the bars of the dimensions chart."""
    if not quality:
        return None
    zh = locale.startswith("zh")
    rating_text = quality.get("rating_label") if zh else quality.get("rating_label_en")
    dimensions = []
    for entry in quality.get("dimensions") or []:
        if not isinstance(entry, Mapping):
            continue
        key = str(entry.get("id", ""))
        indicators = [
            {
                "label": _label(ind, str(ind.get("id", "")), locale),
                "score": _score(ind.get("score")),
                "reason": (ind.get("reason") or {}).get("message")
                if isinstance(ind.get("reason"), Mapping)
                else None,
            }
            for ind in entry.get("indicators") or []
            if isinstance(ind, Mapping)
        ]
        dimensions.append(
            {
                "key": key,
                "label": _label(entry, key, locale),
                "score": _score(entry.get("score")),
                "indicators": indicators,
            }
        )
    bars = [
        {"label": d["label"], "value": d["score"], "cls": _band(d["score"])} for d in dimensions
    ]
    return {
        "score": _score(quality.get("score")),
        "rating": str(rating_text or quality.get("rating") or ""),
        "level": quality.get("rating"),
        "dimensions": dimensions,
        "bars": bars,
        "coverage": _score(quality.get("coverage")),
    }


def _reasons(decision: GradeDecision | None, locale: str) -> list[dict[str, Any]]:
    if decision is None:
        return []
    return [
        {
            "rule": r.rule,
            "grade": r.grade.value if r.grade else None,
            "text": r.text(locale),
            "source": r.source,
            "article": r.article,
        }
        for r in decision.reasons
    ]


def _report_context(reviewed: ReviewedReport, locale: str) -> dict[str, Any]:
    report = reviewed.job.report or {}
    view = reviewed.view
    bars = []
    for column in view.columns:
        effective = column.effective
        best = max((d.match_ratio or 0.0 for d in effective), default=0.0)
        cls = "sensitive" if column.sensitive else "pi" if effective else "none"
        if column.detections and not effective:
            cls = "dismissed"
            best = max((d.match_ratio or 0.0 for d in column.detections), default=0.0)
        bars.append({"label": column.name, "value": best, "cls": cls})
    warnings = []
    for w in report.get("warnings", []) or []:
        if not isinstance(w, Mapping):
            continue
        raw = w.get("params")
        params: dict[str, Any] = dict(raw) if isinstance(raw, Mapping) else {}
        text = gettext(str(w["message"]), **params) if w.get("message") else _bilingual(w, locale)
        warnings.append({"code": w.get("code"), "text": text, "line": w.get("line")})
    return {
        "report": report,
        "view": view,
        "bars": bars,
        "individuals": reviewed.distinct_individuals,
        "grade": reviewed.grade_as_scanned,
        "grade_reasons": _reasons(reviewed.grade_as_scanned, locale),
        "grade_after": reviewed.grade_after_review,
        "grade_after_reasons": _reasons(reviewed.grade_after_review, locale),
        "quality": quality_view(report.get("quality") or {}, locale),
        "warnings": warnings,
    }


def _scan_page(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    scan_id: str,
    *,
    status: int = 200,
    **extra: Any,
) -> Response:
    principal = identity.principal
    locale = context.locale.get()
    with db.read() as session:
        reviewed = services.reviewed_report(session, principal, scan_id)
        job = ScanPublic.of(reviewed.job)
        dataset = dataplane.DatasetPublic.of(
            dataplane.get_dataset(session, principal, reviewed.job.dataset_id)
        )
        version = dataplane.VersionPublic.of(
            dataplane.get_version(session, principal, reviewed.job.version_id)
        )
        ctx = _report_context(reviewed, locale) if job.status == ScanStatus.SUCCEEDED else {}
    holder = dataset.party_id == principal.party_id
    return render(
        request,
        "discovery/scan.html",
        identity,
        status=status,
        job=job,
        dataset=dataset,
        version=version,
        can_cancel=holder and principal.can(Permission.DISCOVERY_SCAN_RUN),
        can_force=principal.can(
            Permission.DISCOVERY_SCAN_FORCE if holder else Permission.DISCOVERY_SCAN_FORCE_ALL
        ),
        can_review=holder and principal.can(Permission.DISCOVERY_DETECTION_REVIEW),
        can_scan=holder and principal.can(Permission.DISCOVERY_SCAN_RUN),
        **ctx,
        **LABELS,
        **extra,
    )


@router.get("/scans/{scan_id}")
def scan_detail(request: Request, scan_id: str, identity: WebUser, db: DbDep) -> Response:
    return _scan_page(request, identity, db, scan_id)


@router.get("/scans/{scan_id}/progress")
def scan_progress(request: Request, scan_id: str, identity: WebUser, db: DbDep) -> Response:
    """The progress partial HTMX polls; when the scan has ended the page reloads to show it."""
    with db.read() as session:
        job = ScanPublic.of(services.get_scan(session, identity.principal, scan_id))
    response = render(
        request,
        "discovery/_progress.html",
        identity,
        job=job,
        can_cancel=False,
        **LABELS,
    )
    if job.status in FINAL and request.headers.get("HX-Request"):
        response.headers["HX-Refresh"] = "true"
    return response


async def _job_action(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    act: Callable[[Session, Principal, Mapping[str, str]], object],
    page: Callable[..., Response],
    done: str,
) -> Response:
    """A posted change to a background job (cancel, force-cancel): the form checked, ``act`` in
    one transaction, then back to the job's page — or that page again saying what was refused."""
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    try:
        with db.write() as session:
            act(session, identity.principal, form)
    except DomainError as exc:
        return page(request, identity, db, status=exc.status, **error_text(exc))
    return redirect(done)


@router.post("/scans/{scan_id}/cancel")
async def scan_cancel(request: Request, scan_id: str, identity: WebUser, db: DbDep) -> Response:
    return await _job_action(
        request,
        identity,
        db,
        lambda session, who, _form: services.cancel_scan(session, who, scan_id),
        partial(_scan_page, scan_id=scan_id),
        f"/scans/{scan_id}",
    )


@router.post("/scans/{scan_id}/force-cancel")
async def scan_force_cancel(
    request: Request, scan_id: str, identity: WebUser, db: DbDep
) -> Response:
    return await _job_action(
        request,
        identity,
        db,
        lambda session, who, form: services.force_cancel_scan(
            session, who, scan_id, form.get("reason", "")
        ),
        partial(_scan_page, scan_id=scan_id),
        f"/scans/{scan_id}",
    )


@router.post("/datasets/{dataset_id}/reviews")
async def review(request: Request, dataset_id: str, identity: WebUser, db: DbDep) -> Response:
    form = await read_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    scan_id = form.get("scan_id") or None
    try:
        with db.write() as session:
            services.review_detection(
                session,
                identity.principal,
                dataset_id,
                column=form.get("column", ""),
                entity_type=form.get("entity_type", ""),
                decision=form.get("decision", ""),
                note=form.get("note", ""),
                scan_job_id=scan_id,
            )
    except DomainError as exc:
        if scan_id is None:
            raise
        return _scan_page(request, identity, db, scan_id, status=exc.status, **error_text(exc))
    return redirect(f"/scans/{scan_id}#review" if scan_id else f"/datasets/{dataset_id}")


# ---------------------------------------------------------------------------- de-identification

POLICY_MAX = 64 * 1024
FORM_FIELDS = (
    "csrf_token",
    "action",
    "mode",
    "profile",
    "policy",
    "trustee",
    "target",
    "new_dataset_name",
    "format",
)


async def _deidentify_form(request: Request) -> dict[str, str]:
    """The de-identification form: like ``read_form``, but a policy may be longer than other
    fields (up to ``POLICY_MAX`` characters; longer is refused, never cut)."""
    form = await request.form(max_files=0, max_fields=len(FORM_FIELDS) + 4)
    out: dict[str, str] = {}
    for key in FORM_FIELDS:
        value = form.get(key)
        if isinstance(value, str):
            out[key] = value if key == "policy" else value[:4096]
    return out


def _deidentification_request(
    form: Mapping[str, str], profiles: Mapping[str, ProfilePublic]
) -> services.DeidentificationRequest:
    trustee = form.get("trustee") or None
    new_name = None
    if form.get("target") == "new":
        new_name = form.get("new_dataset_name", "").strip()
        if not new_name:
            raise InvalidInput(
                N_("Name the new data set, or add the version to this data set."),
                field="new_dataset_name",
            )
    common: dict[str, Any] = {
        "new_dataset_name": new_name,
        "format": form.get("format") or "parquet",
    }
    if form.get("mode") == "policy":
        text = form.get("policy", "")
        if not text.strip():
            raise InvalidInput(
                N_("Paste a policy (JSON) or choose a starter profile."), field="policy"
            )
        if len(text) > POLICY_MAX:
            raise InvalidInput(
                N_("The policy is longer than {limit} characters; shorten it."),
                field="policy",
                limit=POLICY_MAX,
            )
        document = DeidentificationPolicy.from_json(text).as_dict()
        # A policy that names its trustee keeps it; the chooser fills in one that does not.
        named = trustee if "trustee" not in document else None
        return services.DeidentificationRequest(policy=document, trustee=named, **common)
    profile = form.get("profile") or ""
    chosen = profiles.get(profile)
    return services.DeidentificationRequest(
        profile=profile or None,
        trustee=trustee if chosen is not None and chosen.tokenises else None,
        **common,
    )


def _profiles() -> dict[str, ProfilePublic]:
    return {name: ProfilePublic.of(p) for name, p in load_deidentification_profiles().items()}


def _deidentify_page(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    settings: Any,
    version_id: str,
    *,
    form: Mapping[str, str] | None = None,
    plan: DeidentificationPlanPublic | None = None,
    status: int = 200,
    **extra: Any,
) -> Response:
    principal = identity.principal
    with db.read() as session:
        source = services.deidentification_source(
            session, principal, version_id, secret_key=settings.secret_key
        )
        version = dataplane.VersionPublic.of(dataplane.get_version(session, principal, version_id))
        dataset = dataplane.DatasetPublic.of(
            dataplane.get_dataset(session, principal, version.dataset_id)
        )
    template = "discovery/deidentify.html"
    if request.headers.get("HX-Request") and (form or {}).get("action") == "preview":
        template, status = "discovery/_plan.html", 200  # HTMX swaps 200 answers only
    trustees = trustee_choices(db, principal)
    return render(
        request,
        template,
        identity,
        status=status,
        version=version,
        dataset=dataset,
        findings=source.findings,
        scan_id=source.scan_id,
        profiles=_profiles(),
        trustees=trustees,
        trustee_names={t.party_id: t.name for t in trustees},
        form=dict(form or {}),
        plan=plan,
        plan_only=template == "discovery/_plan.html",
        policy_max=POLICY_MAX,
        locale=context.locale.get(),
        **LABELS,
        **extra,
    )


@router.get("/versions/{version_id}/deidentify")
def deidentify_form(
    request: Request, version_id: str, identity: WebUser, db: DbDep, settings: SettingsDep
) -> Response:
    return _deidentify_page(request, identity, db, settings, version_id)


@router.post("/versions/{version_id}/deidentify")
async def deidentify_submit(
    request: Request,
    version_id: str,
    identity: WebUser,
    db: DbDep,
    settings: SettingsDep,
    store: StoreDep,
) -> Response:
    """``action``: ``preview`` shows the plan, ``edit`` turns the chosen profile into a policy
    to edit, ``run`` queues the job and opens its page."""
    form = await _deidentify_form(request)
    check_csrf(request, form.get("csrf_token"), identity)
    action = form.get("action") or "preview"
    principal = identity.principal
    try:
        wanted = _deidentification_request(form, _profiles())
        if action == "run":
            job = await run_in_threadpool(
                start_deidentification, db, principal, store, settings, version_id, wanted
            )
            return redirect(f"/deidentifications/{job.id}")
        plan = await run_in_threadpool(
            plan_deidentification, db, principal, store, settings, version_id, wanted
        )
    except DomainError as exc:
        if exc.code == "csrf":
            raise
        shown = error_text(exc)
        return _deidentify_page(
            request,
            identity,
            db,
            settings,
            version_id,
            form=form,
            status=exc.status,
            error=shown["error"],
            error_field=shown["error_field"],
        )
    if action == "edit":
        form = {**form, "mode": "policy", "policy": plan.policy.to_json()}
    return _deidentify_page(
        request,
        identity,
        db,
        settings,
        version_id,
        form=form,
        plan=DeidentificationPlanPublic.of(plan),
    )


def _derived_columns(job: DeidentificationPublic | None) -> list[Mapping[str, Any]]:
    """The per-column outcome of the job that made a version, for its page."""
    if job is None or not job.report:
        return []
    return [c for c in job.report.get("columns") or [] if isinstance(c, Mapping)]


def _report_warnings(job: DeidentificationPublic | None) -> list[str]:
    if job is None or not job.report:
        return []
    texts = []
    for w in job.report.get("warnings") or []:
        if isinstance(w, Mapping) and w.get("message"):
            raw = w.get("params")
            params: dict[str, Any] = dict(raw) if isinstance(raw, Mapping) else {}
            texts.append(gettext(str(w["message"]), **params))
    return texts


@router.get("/versions/{version_id}")
def version_detail(request: Request, version_id: str, identity: WebUser, db: DbDep) -> Response:
    principal = identity.principal
    with db.read() as session:
        version = dataplane.VersionPublic.of(dataplane.get_version(session, principal, version_id))
        dataset = dataplane.DatasetPublic.of(
            dataplane.get_dataset(session, principal, version.dataset_id)
        )
        scan = services.latest_scans(session, principal, [version.id]).get(version.id)
        made_by = services.derivation_of(session, principal, version_id)
        derivation = DeidentificationPublic.of(made_by, with_report=True) if made_by else None
        source = source_dataset = None
        if version.derived_from_id:
            source = dataplane.VersionPublic.of(
                dataplane.get_version(session, principal, version.derived_from_id)
            )
            source_dataset = dataplane.DatasetPublic.of(
                dataplane.get_dataset(session, principal, source.dataset_id)
            )
        rows, _total = services.list_deidentifications(
            session, principal, services.ScanQuery(version_id=version_id), limit=20, offset=0
        )
        jobs = [DeidentificationPublic.of(j) for j in rows]
    holder = dataset.party_id == principal.party_id
    return render(
        request,
        "discovery/version.html",
        identity,
        version=version,
        dataset=dataset,
        scan=ScanPublic.of(scan) if scan else None,
        derivation=derivation,
        derived_columns=_derived_columns(derivation),
        derived_warnings=_report_warnings(derivation),
        source=source,
        source_dataset=source_dataset,
        jobs=jobs,
        can_deidentify=holder
        and principal.can(Permission.DISCOVERY_DEIDENTIFICATION_RUN)
        and principal.can(Permission.DATAPLANE_DATASET_WRITE),
        **LABELS,
    )


def _deidentification_page(
    request: Request,
    identity: WebIdentity,
    db: DbDep,
    job_id: str,
    *,
    status: int = 200,
    **extra: Any,
) -> Response:
    principal = identity.principal
    with db.read() as session:
        found = services.get_deidentification(session, principal, job_id, with_report=True)
        job = DeidentificationPublic.of(found, with_report=True)
        dataset = dataplane.DatasetPublic.of(
            dataplane.get_dataset(session, principal, job.dataset_id)
        )
        target = dataplane.DatasetPublic.of(
            dataplane.get_dataset(session, principal, job.target_dataset_id)
        )
        result = (
            dataplane.VersionPublic.of(
                dataplane.get_version(session, principal, job.result_version_id)
            )
            if job.result_version_id
            else None
        )
    holder = dataset.party_id == principal.party_id
    return render(
        request,
        "discovery/deidentification.html",
        identity,
        status=status,
        job=job,
        dataset=dataset,
        target=target,
        result=result,
        columns=_derived_columns(job),
        report_warnings=_report_warnings(job),
        policy_json=json.dumps(job.policy, ensure_ascii=False, indent=2),
        can_cancel=holder and principal.can(Permission.DISCOVERY_DEIDENTIFICATION_RUN),
        can_force=principal.can(
            Permission.DISCOVERY_SCAN_FORCE if holder else Permission.DISCOVERY_SCAN_FORCE_ALL
        ),
        **LABELS,
        **extra,
    )


@router.get("/deidentifications/{job_id}")
def deidentification_detail(
    request: Request, job_id: str, identity: WebUser, db: DbDep
) -> Response:
    return _deidentification_page(request, identity, db, job_id)


@router.get("/deidentifications/{job_id}/progress")
def deidentification_progress(
    request: Request, job_id: str, identity: WebUser, db: DbDep
) -> Response:
    """The progress partial HTMX polls; when the job has ended the page reloads to show it."""
    with db.read() as session:
        job = DeidentificationPublic.of(
            services.get_deidentification(session, identity.principal, job_id)
        )
    response = render(request, "discovery/_deid_progress.html", identity, job=job, **LABELS)
    if job.final and request.headers.get("HX-Request"):
        response.headers["HX-Refresh"] = "true"
    return response


@router.post("/deidentifications/{job_id}/cancel")
async def deidentification_cancel(
    request: Request, job_id: str, identity: WebUser, db: DbDep
) -> Response:
    return await _job_action(
        request,
        identity,
        db,
        lambda session, who, _form: services.cancel_deidentification(session, who, job_id),
        partial(_deidentification_page, job_id=job_id),
        f"/deidentifications/{job_id}",
    )


@router.post("/deidentifications/{job_id}/force-cancel")
async def deidentification_force_cancel(
    request: Request, job_id: str, identity: WebUser, db: DbDep
) -> Response:
    return await _job_action(
        request,
        identity,
        db,
        lambda session, who, form: services.force_cancel_deidentification(
            session, who, job_id, form.get("reason", "")
        ),
        partial(_deidentification_page, job_id=job_id),
        f"/deidentifications/{job_id}",
    )
