"""Browser tests: Debian's headless Chromium driven by Playwright against a live uvicorn server.

The browser is launched once per session from the system ``chromium`` (never ``playwright
install``). Each test gets its own server (``live_server``) around the ``app`` fixture, so it runs on
both databases through the ``db_url`` parameter, and its own browser context (``page``) that speaks
Chinese (``zh-CN``) first, as a user of the console would. Every test here is marked ``browser``: a
skip (no Chromium) outside CI is allowed, in CI it fails the run (see the root conftest).

Set ``DATAFACTOR_SCREENSHOTS=/some/dir`` to have the tests save screenshots there (``shot``).
``login(username, password=PASSWORD)`` sends the console's login form on the test's page.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from factories import PASSWORD
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, sync_playwright

HERE = Path(__file__).parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 10_000
Shot = Callable[[Page, str], None]
Login = Callable[..., None]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # This hook sees the whole session's items: mark only the ones in this folder.
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("Chromium not found on PATH (apt-get install chromium); browser tests need it")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _wait_until_up(base_url: str, server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("the live server thread died while starting")
        if server.started:
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.02)
    raise RuntimeError(f"the live server at {base_url} did not answer within 10 s")


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[str]:
    """The app served by uvicorn on a free 127.0.0.1 port in a background thread; its base URL."""
    # Bind the socket here and hand it to uvicorn: no race for the port between choosing and using.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"live-server-{port}", daemon=True
    )
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base_url, server, thread)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        assert not thread.is_alive(), "the live server did not shut down"


@pytest.fixture
def page(browser: Browser, live_server: str) -> Iterator[Page]:
    """A fresh page in a new context (no cookies) that prefers Simplified Chinese."""
    context = browser.new_context(
        locale="zh-CN", base_url=live_server, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def shot(db_url: str) -> Shot:
    """``shot(page, name)`` saves a full-page PNG when DATAFACTOR_SCREENSHOTS names a folder."""
    folder = os.environ.get("DATAFACTOR_SCREENSHOTS")
    backend = db_url.split(":", 1)[0].split("+", 1)[0]

    def take(page: Page, name: str) -> None:
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(folder) / f"{name}-{backend}.png"), full_page=True)

    return take


@pytest.fixture
def login(page: Page) -> Login:
    """``login(username, password=PASSWORD)`` fills in and sends the login form on ``page``. The
    page must have nobody logged in (a fresh context, or after logging out, or after clearing its
    cookies): /login sends a logged-in user on without showing the form."""

    def send(username: str, password: str = PASSWORD) -> None:
        page.goto("/login")
        form = page.get_by_test_id("login-form")
        form.locator("[name=username]").fill(username)
        form.locator("[name=password]").fill(password)
        page.get_by_test_id("login-submit").click()

    return send
