"""A throwaway PostgreSQL server started from the machine's own binaries (tests, benchmarks).

``initdb`` and ``pg_ctl`` refuse to run as root, and everything here runs as root, so when we are
root the server is run as the ``postgres`` OS user (``runuser``) in a temporary folder it owns.
The server listens on 127.0.0.1 on a free port; ``url(dbname)`` gives a psycopg URL.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg


def find_bindir() -> Path | None:
    explicit = os.environ.get("DATAFACTOR_PG_BINDIR")
    if explicit:
        return Path(explicit)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parent.parent.name)
    )
    return Path(candidates[-1]).parent if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """Start with ``start()``, stop with ``stop()``; ``durable=False`` turns fsync off (tests)."""

    def __init__(self, *, durable: bool = False) -> None:
        bindir = find_bindir()
        if bindir is None:
            raise FileNotFoundError(
                "PostgreSQL server binaries not found (apt-get install postgresql)"
            )
        self.bindir = bindir
        self.durable = durable
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="df-pg-"))
        self.datadir = self.base / "data"
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> PgServer:
        """Create the cluster and start the server; on failure remove its folder and raise
        ``RuntimeError`` with the failing command's message and the server log's tail."""
        try:
            self._start()
        except subprocess.CalledProcessError as exc:
            log = self.base / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            self.stop()
            stderr = (exc.stderr or b"").decode(errors="replace").strip()
            raise RuntimeError(f"PostgreSQL did not start: {stderr}\n{tail}".strip()) from exc
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        if self._as_postgres:
            shutil.chown(self.base, "postgres", "postgres")
            os.chmod(self.base, 0o700)
            os.chmod(self.base.parent, os.stat(self.base.parent).st_mode | 0o001)
        self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = [
            f"-p {self.port}",
            f"-k {self.base}",
            "-c listen_addresses=127.0.0.1",
            "-c max_connections=200",
            "-c shared_buffers=256MB",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-l",
            str(self.base / "server.log"),
            "-o",
            " ".join(options),
            "-w",
            "-t",
            "60",
            "start",
        )

    def describe(self) -> dict[str, str | int]:
        """What another process needs to ``attach`` to this running server."""
        return {"bindir": str(self.bindir), "port": self.port, "base": str(self.base)}

    @classmethod
    def attach(cls, info: dict[str, str | int]) -> PgServer:
        """A handle on a server another process started (``describe``); ``stop`` stops it."""
        server = cls.__new__(cls)
        server.bindir = Path(str(info["bindir"]))
        server.durable = False
        server.port = int(info["port"])
        server.base = Path(str(info["base"]))
        server.datadir = server.base / "data"
        server._as_postgres = os.geteuid() == 0
        return server

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def execute(self, sql: str) -> None:
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}", autocommit=True
        )


# What a test could change in a database's schema (tables and their columns, indexes, sequences,
# triggers and whether they are enabled, functions): a database whose fingerprint differs from
# the template's after a test is dropped rather than reused.
_FINGERPRINT = """
SELECT md5(string_agg(x, ',' ORDER BY x)) FROM (
  SELECT c.relname || ':' || c.relkind::text || ':' || COALESCE(string_agg(
           a.attname || ' ' || a.atttypid::text || ' ' || a.attnotnull::text, ';'
           ORDER BY a.attnum), '') AS x
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
     AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'
   GROUP BY n.nspname, c.relname, c.relkind
  UNION ALL
  SELECT c.relname || '.' || t.tgname || ':' || t.tgenabled::text
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE NOT t.tgisinternal
  UNION ALL
  SELECT p.proname || ':' || md5(p.prosrc)
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
) s
"""


class DatabasePool:
    """Fresh databases for tests, copied from a migrated template and reused.

    Creating a database copies the whole system catalogue (about 0.3–0.5 s of server CPU each,
    for every PostgreSQL test); after a test its database is reset instead — other sessions on
    it ended, every table emptied, the template's rows (the seeded accounts, the chain heads)
    and sequence positions put back: tens of milliseconds — and handed to the next test. A test
    that changed the schema (disabled a trigger, dropped a table) leaves a database that is
    dropped, never reused, so every test still starts from exactly the template."""

    def __init__(self, server: PgServer, template: str) -> None:
        self.server = server
        self.template = template
        self.free: list[str] = []
        self._names = (f"t{os.getpid()}_{n}" for n in range(10**9))
        with server.connect(template) as conn:
            self.fingerprint = conn.execute(_FINGERPRINT).fetchone()[0]  # type: ignore[index]
            self.tables = [
                r[0]
                for r in conn.execute(
                    "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) "
                    "FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
                )
            ]
            self.sequences = [
                (r[0], r[1], r[2])
                for r in conn.execute(
                    "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename), "
                    "COALESCE(last_value, start_value), last_value IS NOT NULL "
                    "FROM pg_sequences WHERE schemaname = 'public'"
                )
            ]
            self.seeds: dict[str, bytes] = {}
            for table in self.tables:
                if conn.execute(f"SELECT EXISTS (SELECT FROM {table})").fetchone()[0]:  # type: ignore[index]
                    with conn.cursor().copy(f"COPY {table} TO STDOUT (FORMAT binary)") as copy:
                        self.seeds[table] = b"".join(bytes(chunk) for chunk in copy)

    def take(self) -> str:
        if self.free:
            return self.free.pop()
        name = next(self._names)
        for attempt in range(200):
            try:
                self.server.execute(f"CREATE DATABASE {name} TEMPLATE {self.template}")
                return name
            except psycopg.errors.ObjectInUse:
                # Another test process (pytest-xdist worker) is reading the template this
                # moment (``DatabasePool.__init__``); copying needs it to itself for a while.
                time.sleep(0.01 * (attempt + 1))
        raise RuntimeError(f"the template database {self.template} stayed in use")

    def give_back(self, name: str) -> None:
        try:
            with self.server.connect(name) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                if conn.execute(_FINGERPRINT).fetchone()[0] != self.fingerprint:  # type: ignore[index]
                    raise LookupError("schema changed")
                with conn.transaction():
                    conn.execute("SET LOCAL session_replication_role = replica")
                    # DELETE, not TRUNCATE: a test leaves a few rows in a few tables, and
                    # TRUNCATE makes new files for every table and index (slower than a copy).
                    for table in self.tables:
                        conn.execute(f"DELETE FROM {table}")
                    for table, data in self.seeds.items():
                        with conn.cursor().copy(f"COPY {table} FROM STDIN (FORMAT binary)") as copy:
                            copy.write(data)
                    for sequence, value, called in self.sequences:
                        conn.execute("SELECT setval(%s, %s, %s)", (sequence, value, called))
        except (LookupError, psycopg.Error):
            with contextlib.suppress(psycopg.Error):
                self.server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            return
        self.free.append(name)
