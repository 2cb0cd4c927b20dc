"""Errors as answers: problem+json (RFC 9457) for the API, friendly pages for the web console.

Every exception that reaches the edge is mapped here, so no route formats errors itself and no
stack trace ever reaches a user. Messages are translated into the request's language.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from datafactor.errors import N_, DomainError, Unauthenticated
from datafactor.web.i18n import gettext as _

log = logging.getLogger("datafactor.web")
PROBLEM_JSON = "application/problem+json"

_STATUS_TITLES = {
    400: N_("Bad request"),
    401: N_("Login required"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    405: N_("Method not allowed"),
    409: N_("Conflicts with the current state"),
    413: N_("Request too large"),
    415: N_("Unsupported media type"),
    422: N_("Some input is not valid"),
    423: N_("Account locked"),
    429: N_("Too many requests"),
    500: N_("Something went wrong on our side"),
}
_STATUS_DETAILS = {
    403: N_("Your account is not allowed to see this page or do this action."),
    404: N_("The page or object does not exist, or you are not allowed to see it."),
    405: N_("This address does not accept this kind of request."),
    500: N_("The error was logged. Please try again later; nothing was changed."),
}


class LoginRequired(Exception):
    """Raised by web views when no valid session cookie came with the request."""


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def problem(
    request: Request,
    status: int,
    *,
    detail: str,
    code: str,
    title: str | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": f"https://datafactor.example/problems/{code}",
        "title": title or _(_STATUS_TITLES.get(status, "Error")),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": request.state.request_id if hasattr(request.state, "request_id") else None,
        **extra,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def domain_error_text(exc: DomainError) -> str:
    return _(exc.message, **exc.params)


def _error_page(request: Request, status: int, detail: str) -> Response:
    templates = request.app.state.templates
    response: Response = templates.TemplateResponse(
        request,
        "error.html",
        {
            "status": status,
            "title": _(_STATUS_TITLES.get(status, "Error")),
            "detail": detail,
            "path": request.url.path,
        },
        status_code=status,
    )
    return response


def install(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    @app.exception_handler(DomainError)
    async def on_domain_error(request: Request, exc: DomainError) -> Response:
        detail = domain_error_text(exc)
        if is_api(request):
            extra = {"field": exc.field} if exc.field else {}
            return problem(
                request, exc.status, detail=detail, code=exc.code, title=_(exc.title), **extra
            )
        if isinstance(exc, Unauthenticated):
            return RedirectResponse("/login", status_code=303)
        return _error_page(request, exc.status, detail)

    @app.exception_handler(LoginRequired)
    async def on_login_required(request: Request, exc: LoginRequired) -> Response:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        if request.headers.get("HX-Request"):
            return Response(status_code=204, headers={"HX-Redirect": "/login"})
        return RedirectResponse(
            f"/login?next={target}" if target != "/" else "/login", status_code=303
        )

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "msg": err.get("msg", ""),
                "type": err.get("type", ""),
            }
            for err in exc.errors()
        ]
        if any(e["type"] in ("json_invalid", "model_attributes_type") for e in errors) or any(
            e["type"] == "dict_type" and e["loc"] == ["body"] for e in errors
        ):
            status, code = 400, "malformed-body"
            detail = _("The request body is not valid JSON: send a JSON object.")
        else:
            status, code = 422, "invalid-input"
            detail = _("Some fields are missing or not valid; see 'errors'.")
        if is_api(request):
            return problem(request, status, detail=detail, code=code, errors=errors)
        return _error_page(request, status, detail)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        status = exc.status_code
        detail = _(_STATUS_DETAILS[status]) if status in _STATUS_DETAILS else _(str(exc.detail))
        if is_api(request):
            return problem(request, status, detail=detail, code=f"http-{status}")
        return _error_page(request, status, detail)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        detail = _(_STATUS_DETAILS[500])
        if is_api(request):
            return problem(request, 500, detail=detail, code="internal-error")
        return _error_page(request, 500, detail)
