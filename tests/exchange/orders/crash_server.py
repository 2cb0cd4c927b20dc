"""The server side of the bank-style crash test (``test_crash.py``): a zygote that imports the
application once, then forks a real uvicorn server per ``start`` line on its stdin, each
serving the listening socket the test process handed over (file descriptor ``argv[1]``) with
its own database connections, and prints the server's pid — which the test kills with
SIGKILL. Settings come from the environment (``DATAFACTOR_*``), as a deployed server's do.

Forking from a process with no threads keeps a restart fast (nothing to import) and safe; the
listening socket stays open in the test process, so connections made while no server runs wait
in its backlog for the next one.
"""

from __future__ import annotations

import os
import signal
import socket
import sys


def serve(fd: int) -> None:  # pragma: no cover - runs in the forked child
    import uvicorn

    from datafactor.app import create_app

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    sock = socket.socket(fileno=fd)
    config = uvicorn.Config(
        create_app(), log_level="warning", access_log=False, lifespan="on", ws="none"
    )
    uvicorn.Server(config).run(sockets=[sock])


def main() -> None:
    fd = int(sys.argv[1])
    import uvicorn  # noqa: F401 - imported before forking, once

    from datafactor.app import create_app

    # Building the app imports every domain and defines every route (seconds); done once here,
    # so each forked server builds its own app in milliseconds. Its engine never connected, and
    # is disposed anyway: no connection may cross a fork.
    create_app().state.db.dispose()

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # killed servers are reaped by the kernel
    for line in sys.stdin:
        if line.strip() != "start":
            break
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            try:
                serve(fd)
            finally:
                os._exit(0)
        print(pid, flush=True)


if __name__ == "__main__":
    main()
