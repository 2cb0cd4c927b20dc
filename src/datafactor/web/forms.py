"""Helpers for HTML form views: render with the common context, read forms, show errors."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import UploadFile

from datafactor.errors import N_, DomainError, InvalidInput
from datafactor.identity import WebIdentity
from datafactor.web.deps import CSRF_COOKIE
from datafactor.web.problems import domain_error_text

MAX_FORM_FIELD = 4096


def render(
    request: Request,
    template: str,
    identity: WebIdentity | None,
    status: int = 200,
    **ctx: Any,
) -> HTMLResponse:
    """Render a page, or only its ``content`` block for an HTMX request that asks for a partial."""
    templates = request.app.state.templates
    ctx.setdefault("error", None)
    ctx.update(
        identity=identity,
        principal=identity.principal if identity else None,
        csrf_token=identity.csrf_token if identity else ctx.get("csrf_token"),
        path=request.url.path,
    )
    response: HTMLResponse = templates.TemplateResponse(request, template, ctx, status_code=status)
    return response


def render_anon(
    request: Request, template: str, csrf: str, status: int = 200, **ctx: Any
) -> HTMLResponse:
    """Render an anonymous form page and (re)issue its double-submit CSRF cookie."""
    response = render(request, template, None, status, csrf_token=csrf, **ctx)
    settings = request.app.state.settings
    response.set_cookie(
        CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=settings.cookie_secure, path="/"
    )
    return response


def error_text(exc: DomainError) -> dict[str, str | None]:
    return {"error": domain_error_text(exc), "error_field": exc.field}


async def read_form(request: Request) -> dict[str, str]:
    """The posted form as plain strings (multi-valued fields joined by newlines), bounded in size.

    No file parts: Starlette would spool an uploaded file to disk before any check of ours.
    """
    form = await request.form(max_files=0)
    out: dict[str, str] = {}
    for key in form:
        values = [v for v in form.getlist(key) if isinstance(v, str)]
        out[key] = "\n".join(values)[:MAX_FORM_FIELD]
    return out


MULTIPART_OVERHEAD = 16 * 1024  # boundaries, part headers and a few small fields
MSG_UPLOAD_TOO_LARGE = N_(
    "The file is too large: at most {max_kib} KiB can be checked here. Upload the file as it was "
    "issued, unchanged."
)


async def read_small_upload(request: Request, field: str, max_bytes: int) -> bytes | None:
    """The bytes of one small uploaded file (``field``), or None when none was chosen.

    Starlette spools a file part to disk before any check of ours, so the body is bounded first
    by its declared length (the server reads no more than that); a body of undeclared length
    (chunked) or larger than the file allows is refused before it is read.
    """
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit() or int(declared) > max_bytes + MULTIPART_OVERHEAD:
        raise InvalidInput(MSG_UPLOAD_TOO_LARGE, field=field, max_kib=max_bytes // 1024)
    async with request.form(max_files=1, max_fields=4) as form:
        upload = form.get(field)
        if isinstance(upload, UploadFile) and upload.filename:
            return await upload.read(max_bytes + 1)
    return None


def form_list(form: dict[str, str], key: str) -> list[str]:
    return [v for v in form.get(key, "").split("\n") if v]


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def safe_next(target: str | None) -> str:
    """Only same-site relative paths may be redirect targets (no open redirects)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"
