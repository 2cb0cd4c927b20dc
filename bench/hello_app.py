"""The ceiling of the API benchmark: a bare Starlette app with one plain-text route.

Served by ``uvicorn hello_app:app --workers 2`` with the same server options as ``datafactor serve``,
it measures what the machine, the ASGI server and the load generator allow before any application
code runs; DataFactor's figure is reported as a fraction of it.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


app = Starlette(routes=[Route("/", hello)])
