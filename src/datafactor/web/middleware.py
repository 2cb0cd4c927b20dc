"""Per-request context as a plain ASGI middleware: request id, locale, security headers, and the
answer to a NUL character in the address.

A plain ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``: the latter runs the app in a
second task and re-wraps every response, which cost more than the rest of an API request.

**NUL characters.** PostgreSQL's text types cannot hold U+0000 (psycopg refuses to send one), and
no id, code or filter of ours has one, so a NUL in the address is answered here, before routing
and on both databases alike, in the person's language (problem+json for the API, the error page
for the console): in the path (``%00``) a 404 — no page or object has such a name —, in a query
parameter a 400 naming the parameter. One check at the edge instead of one per route: before
it, some 200 routes and query filters answered 500 on PostgreSQL (the NUL reached a query). The
HTTP servers (h11, httptools) refuse a NUL in a header before the app sees it. Bodies are the
domains' to read: free text is cleaned of control characters where it is kept
(``exchange.listings.clean_text``), ids with one are not found, and a NUL that still reaches
PostgreSQL is answered 400 by the error handlers (``problems.py``), its transaction rolled
back.
"""

from __future__ import annotations

from http.cookies import SimpleCookie
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datafactor import context
from datafactor.web import problems
from datafactor.web.i18n import pick_locale

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; frame-ancestors 'none'; form-action 'self'"
    ),
}
_RAW_SECURITY_HEADERS = tuple(
    (key.lower().encode("latin-1"), value.encode("latin-1"))
    for key, value in SECURITY_HEADERS.items()
)


def _nul_refusal(path: str, query: bytes) -> problems.NulRefusal | None:
    """Why a request whose path or query string may hold a NUL is answered at once, or None."""
    if "\x00" in path:
        return problems.NulRefusal(problems.MSG_NUL_PATH, status=404)
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            name = name.replace("\x00", "")
            return problems.NulRefusal(problems.MSG_NUL_QUERY, field=name, name=name)
    return None


class RequestContextMiddleware:
    """Sets ``context.request_id`` and ``context.locale`` for the request; adds response headers."""

    def __init__(self, app: ASGIApp, *, default_locale: str, lang_cookie: str) -> None:
        self.app = app
        self.default_locale = default_locale
        self.lang_cookie = lang_cookie

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or context.new_request_id()
        cookie_lang = None
        if raw_cookie := headers.get(b"cookie"):
            morsel = SimpleCookie(raw_cookie.decode("latin-1")).get(self.lang_cookie)
            cookie_lang = morsel.value if morsel else None
        locale = pick_locale(
            cookie_lang, headers.get(b"accept-language", b"").decode("latin-1"), self.default_locale
        )
        scope.setdefault("state", {})["request_id"] = rid

        raw_rid = rid.encode("latin-1")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # The raw header list as starlette's MutableHeaders would leave it (the request
                # id replaces one the app set, in its place; a security header the app set is
                # kept), without its scan of the list per header.
                raw = list(message.get("headers", ()))
                names = {name for name, _ in raw}
                if b"x-request-id" in names:
                    at = [i for i, (name, _) in enumerate(raw) if name == b"x-request-id"]
                    raw[at[0]] = (b"x-request-id", raw_rid)
                    for i in reversed(at[1:]):
                        del raw[i]
                else:
                    raw.append((b"x-request-id", raw_rid))
                raw += [pair for pair in _RAW_SECURITY_HEADERS if pair[0] not in names]
                message["headers"] = raw
            await send(message)

        rid_token, locale_token = context.request_id.set(rid), context.locale.set(locale)
        try:
            query = scope.get("query_string", b"")
            if "\x00" in scope["path"] or (query and (b"%00" in query or b"\x00" in query)):
                refusal = _nul_refusal(scope["path"], query)
                if refusal is not None:
                    await problems.refuse_nul(scope, refusal, send_with_headers)
                    return
            await self.app(scope, receive, send_with_headers)
        finally:
            context.request_id.reset(rid_token)
            context.locale.reset(locale_token)
