"""A throwaway MySQL-compatible server (MariaDB) started from the machine's own binaries (tests).

``mariadb-install-db`` creates the system tables in a temporary folder, then ``mariadbd`` serves it
on 127.0.0.1 and a free port, with its socket file in the same folder. ``--no-defaults`` keeps the
machine's ``/etc/mysql`` configuration out; as root the server runs with ``--user=root`` (it refuses
root otherwise, and Debian's ``mariadb-server-core`` creates no ``mysql`` OS user). The server's
``root`` account has no password and is reached only through the socket (administration); the
tests read through ``url()``: a user with a password, over TCP, on one database, with PyMySQL.

Debian packages: ``mariadb-server-core`` (``mariadbd``) and ``mariadb-client-core``
(``my_print_defaults``, which ``mariadb-install-db`` needs). ``DATAFACTOR_MARIADB_BINDIR`` names
a folder holding both programs when they live elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pymysql

_SEARCH_PATH = os.pathsep.join(["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"])


def find_program(name: str) -> Path | None:
    explicit = os.environ.get("DATAFACTOR_MARIADB_BINDIR")
    if explicit:
        candidate = Path(explicit) / name
        return candidate if candidate.exists() else None
    found = shutil.which(name) or shutil.which(name, path=_SEARCH_PATH)
    return Path(found) if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MySqlServer:
    """Start with ``start()``, stop with ``stop()``. Not durable (tests): the redo log is flushed
    about once a second and InnoDB's doublewrite buffer is off, which makes the start ~4x faster."""

    def __init__(
        self,
        *,
        database: str = "dept",
        user: str = "census",
        password: str = "S3cret-pw",  # noqa: S107 - a throwaway server's test user
        start_timeout: float = 60.0,
    ) -> None:
        server = find_program("mariadbd")
        install = find_program("mariadb-install-db")
        if server is None or install is None:
            raise FileNotFoundError(
                "MariaDB server binaries not found (mariadbd, mariadb-install-db): "
                "apt-get install mariadb-server-core mariadb-client-core"
            )
        self.server_program = server
        self.install_program = install
        self.database = database
        self.user = user
        self.password = password
        self.start_timeout = start_timeout
        self.port = free_port()
        # A Unix socket path has at most 107 bytes: stay in /tmp when TMPDIR is deep.
        parent = tempfile.gettempdir() if len(tempfile.gettempdir()) < 60 else "/tmp"
        self.base = Path(tempfile.mkdtemp(prefix="df-my-", dir=parent))
        self.datadir = self.base / "data"
        self.socket = self.base / "mysqld.sock"
        self.log = self.base / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    def _as_root(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def start(self) -> MySqlServer:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        tuning = [
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M",
            "--innodb-flush-log-at-trx-commit=0",
            "--innodb-doublewrite=0",
        ]
        installed = subprocess.run(
            [
                str(self.install_program),
                "--no-defaults",
                *self._as_root(),
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                *tuning,
            ],
            cwd="/",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
        if installed.returncode != 0:
            raise RuntimeError(
                f"mariadb-install-db failed ({installed.returncode}): "
                + installed.stdout.decode(errors="replace")[-2000:]
            )
        self._process = subprocess.Popen(
            [
                str(self.server_program),
                "--no-defaults",
                *self._as_root(),
                f"--datadir={self.datadir}",
                f"--socket={self.socket}",
                f"--pid-file={self.base / 'mysqld.pid'}",
                f"--tmpdir={self.base}",
                f"--log-error={self.log}",
                "--bind-address=127.0.0.1",
                f"--port={self.port}",
                "--skip-name-resolve",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
                "--max-connections=100",
                *tuning,
            ],
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                # A plain probe first: PyMySQL leaks its socket when a Unix-socket connect fails.
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    probe.connect(str(self.socket))
                self._admin().close()
                break
            except (OSError, pymysql.err.OperationalError):
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"mariadbd exited ({self._process.returncode}): {self._log_tail()}"
                    ) from None
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"mariadbd not ready after {self.start_timeout:.0f} s: {self._log_tail()}"
                    ) from None
                time.sleep(0.05)
        # Root only through the socket: drop the passwordless root@127.0.0.1, ::1, <hostname>.
        with contextlib.closing(self._admin()) as conn, conn.cursor() as cursor:
            cursor.execute(
                "SELECT host FROM mysql.user WHERE user = 'root' AND host <> 'localhost'"
            )
            for (host,) in cursor.fetchall():
                cursor.execute("DROP USER 'root'@%s", (host,))
        self.execute(
            f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
        self.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (self.user, self.password))
        self.execute(f"GRANT ALL PRIVILEGES ON `{self.database}`.* TO '{self.user}'@'%'")

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-2000:]
        return "(no server log)"

    def _admin(self, database: str | None = None) -> Any:
        return pymysql.connect(
            unix_socket=str(self.socket),
            user="root",
            database=database,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=5,
        )

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        shutil.rmtree(self.base, ignore_errors=True)

    def url(
        self, database: str | None = None, *, password: str | None = None, port: int | None = None
    ) -> str:
        """A SQLAlchemy URL for the test user over TCP (PyMySQL, utf8mb4)."""
        secret = quote(self.password if password is None else password, safe="")
        return (
            f"mysql+pymysql://{quote(self.user, safe='')}:{secret}@127.0.0.1:"
            f"{self.port if port is None else port}/{database or self.database}?charset=utf8mb4"
        )

    def execute(self, sql: str, params: Any = None, *, database: str | None = None) -> None:
        """Run one statement as the server's root (through the socket)."""
        self.query(sql, params, database=database)

    def query(
        self, sql: str, params: Any = None, *, database: str | None = None
    ) -> list[tuple[Any, ...]]:
        """The rows of one statement run as the server's root (through the socket)."""
        with contextlib.closing(self._admin(database)) as conn, conn.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
