"""The ASGI entry point for servers: ``uvicorn datafactor.asgi:app``."""

from datafactor.app import create_app

app = create_app()
