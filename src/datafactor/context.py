"""Per-request context that every layer may read: the request id and the user's locale.

Set by the web middleware (or the CLI) at the start of a unit of work; read by the audit trail
(request id) and by translation (locale). Context variables keep concurrent requests apart.
"""

from __future__ import annotations

import secrets
from contextvars import ContextVar

request_id: ContextVar[str] = ContextVar("request_id", default="-")
locale: ContextVar[str] = ContextVar("locale", default="zh_CN")


def new_request_id() -> str:
    return secrets.token_hex(8)
