"""Errors as answers: problem+json (RFC 9457) for the API, friendly pages for the web console.

Every exception that reaches the edge is mapped here, so no route formats errors itself and no
stack trace ever reaches a user. Messages are translated into the request's language.

A NUL character in the address is answered before routing (``middleware.py``) through
``refuse_nul``. One in a body that reaches PostgreSQL makes psycopg (or the server) refuse the
statement with a ``DataError``; its transaction is rolled back with the unit of work, and the
error is answered here with a 400 saying so, never a 500. Any other ``DataError`` is a program
error (our own checks should have caught the value) and stays a logged 500.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError as SQLDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Scope, Send

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


# The answers to a NUL character (U+0000): no id, code or filter has one, and PostgreSQL's text
# types cannot hold one.
NUL_CODE = "nul-character"
MSG_NUL_PATH = N_(
    "The address contains a NUL character (code 0): no page or object has such a name. Check "
    "the link and try again."
)
MSG_NUL_QUERY = N_(
    "The query parameter '{name}' contains a NUL character (code 0), which no value or filter "
    "can hold. Remove it and try again."
)
MSG_NUL_BODY = N_(
    "The text sent contains a NUL character (code 0), which cannot be stored. Remove it and "
    "send again."
)
# PostgreSQL's answers to a NUL: psycopg refuses to send one in a text parameter (a DataError
# without a SQLSTATE, with this text); the server refuses the JSON escape \\u0000 in a jsonb
# document (untranslatable_character) and a NUL byte in text it decodes
# (character_not_in_repertoire).
_PSYCOPG_NUL = "NUL (0x00)"
_PG_NUL_STATES = frozenset({"22P05", "22021"})


class NulRefusal:
    """Why a request is refused for a NUL character: the message, its parameters, the field,
    the HTTP status (400; 404 for an address no page or object can have)."""

    def __init__(
        self, message: str, *, status: int = 400, field: str | None = None, **params: Any
    ) -> None:
        self.message = message
        self.status = status
        self.field = field
        self.params = params


def is_nul_error(exc: BaseException) -> bool:
    """Whether a database error (SQLAlchemy's wrapper or psycopg's own) is PostgreSQL's or
    psycopg's refusal of a NUL character."""
    orig = getattr(exc, "orig", None) or exc
    if not isinstance(orig, psycopg.DataError):
        return False
    return orig.sqlstate in _PG_NUL_STATES or (orig.sqlstate is None and _PSYCOPG_NUL in str(orig))


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


def _nul_answer(request: Request, refusal: NulRefusal) -> Response:
    detail = _(refusal.message, **refusal.params)
    if is_api(request):
        extra = {"field": refusal.field} if refusal.field else {}
        return problem(request, refusal.status, detail=detail, code=NUL_CODE, **extra)
    return _error_page(request, refusal.status, detail)


async def refuse_nul(scope: Scope, refusal: NulRefusal, send: Send) -> None:
    """Answer a request refused at the edge for a NUL character (the request's body, if any,
    is not read)."""

    async def no_body() -> Message:
        return {"type": "http.disconnect"}

    request = Request(scope)
    await _nul_answer(request, refusal)(scope, no_body, send)


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

    @app.exception_handler(SQLDataError)
    @app.exception_handler(psycopg.DataError)
    async def on_data_error(request: Request, exc: Exception) -> Response:
        if is_nul_error(exc):
            log.info("a NUL character refused by the database on %s", request.url.path)
            return _nul_answer(request, NulRefusal(MSG_NUL_BODY))
        raise exc  # any other: a program error, answered (and logged) as one below

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        detail = _(_STATUS_DETAILS[500])
        if is_api(request):
            return problem(request, 500, detail=detail, code="internal-error")
        return _error_page(request, 500, detail)
