"""Run a coroutine to completion from a test, whatever the calling thread is doing.

Playwright's sync API (the browser tests) keeps an event loop running in the main thread for the
rest of the session, and ``asyncio.run`` refuses to start inside a running loop; so each call gets
a fresh loop on its own thread, as a server worker would have.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def run_async(factory: Callable[[], Awaitable[T]]) -> T:
    """``asyncio.run(factory())`` on a new thread; its result, or its exception re-raised."""
    outcome: dict[str, Any] = {}

    def main() -> None:
        try:
            outcome["value"] = asyncio.run(_await(factory))
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=main, name="test-event-loop")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


async def _await(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()
