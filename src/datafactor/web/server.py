"""Serving with several worker processes, each on its own ``SO_REUSEPORT`` socket.

Uvicorn's multi-worker mode shares one listening socket, and the kernel hands new connections to
whichever worker is already awake: with long-lived keep-alive clients one worker ended up holding
almost every connection while the other idled. With one socket per worker and ``SO_REUSEPORT``
the kernel spreads connections across the workers by hash instead.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
from types import FrameType


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _worker(host: str, port: int) -> None:
    import uvicorn

    sock = _bind(host, port)
    config = uvicorn.Config(
        "datafactor.asgi:app", access_log=False, proxy_headers=False, lifespan="on"
    )
    uvicorn.Server(config).run(sockets=[sock])


def serve_workers(host: str, port: int, workers: int) -> None:
    """Run ``workers`` uvicorn processes on ``host:port``; stop them all on SIGINT/SIGTERM."""
    _bind(host, port).close()  # fail here, clearly, if the address is taken
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_worker, args=(host, port), name=f"datafactor-worker-{n}")
        for n in range(workers)
    ]
    for process in processes:
        process.start()

    def stop(signum: int, _frame: FrameType | None) -> None:
        for process in processes:
            if process.is_alive() and process.pid:
                process.terminate()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for process in processes:
        process.join()
