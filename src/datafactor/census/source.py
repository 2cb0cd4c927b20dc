"""Reaching a department's database: the URL checked and sealed, its schemas, tables, columns and
row counts — what a census needs beyond the data plane's ``SqlTable`` (which reads the rows).

A URL carries the department's credentials, so it is only ever stored sealed (AES-GCM under a key
derived from ``DATAFACTOR_SECRET_KEY`` for this purpose alone, as data set versions seal theirs)
and shown as ``dataplane.redact_url`` gives it. Every database error comes back as the data plane's
``SourceUnavailable`` naming the redacted URL, with the password scrubbed from the driver's
message too, since some drivers quote the connection string. SQLite files on the server are a
source only when the operator allows it (``DATAFACTOR_SOURCE_ALLOW_SQLITE``): otherwise any user
could read the server's own files, the control-plane database included.

Row counts are exact (``COUNT(*)``): a census is the record of what a department holds, and a
planner's estimate can be off by orders of magnitude on a table never analysed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from datafactor.census.domain import TableKind
from datafactor.dataplane import SourceUnavailable, SqlTable, check_source_url, redact_url
from datafactor.errors import N_, InvalidInput, NotFound

log = logging.getLogger("datafactor.census")

# What a census may connect to: the SQLAlchemy backend names.
BACKENDS: Final = frozenset({"postgresql", "mysql", "sqlite"})
# Schemas that hold the database's own catalogue, never a department's data.
SYSTEM_SCHEMAS: Final = frozenset(
    {"information_schema", "pg_catalog", "pg_toast", "mysql", "performance_schema", "sys"}
)
_SEAL_AAD: Final = b"census-source"

MSG_BAD_URL: Final = N_(
    "This is not a database URL. Write it as driver://user:password@host/dbname, e.g. "
    "postgresql+psycopg://user:password@host/dbname."
)
MSG_BACKEND: Final = N_(
    "Databases of type {backend} cannot be read. Use a PostgreSQL or MySQL URL, e.g. "
    "postgresql+psycopg://user:password@host/dbname."
)
MSG_SQLITE: Final = N_("SQLite files on the server cannot be used as a source here.")
MSG_DRIVER: Final = N_(
    "The server has no driver for this {backend} URL. For PostgreSQL write postgresql+psycopg://…; "
    "otherwise ask the operator to install the driver."
)
MSG_NO_FILE: Final = N_("The database file {path} does not exist.")
MSG_UNREADABLE: Final = N_("The database {url} cannot be read: {reason}")
MSG_NO_SCHEMA: Final = N_("The database {url} has no schema {schema}.")
MSG_NO_TABLE: Final = N_("The database {url} has no table {table}.")
MSG_SEALED: Final = N_(
    "The stored database address cannot be decrypted (the server's secret key changed). Resume "
    "the census giving the database URL again."
)


def check_url(url: str, *, allow_sqlite: bool) -> str:
    """The URL's backend, refused with a reason when the census cannot or may not read it.

    Does not connect. The URL itself never appears in a message: only its backend name.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    url = (url or "").strip()
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
    except (ArgumentError, ValueError):
        raise InvalidInput(MSG_BAD_URL, field="url", code="bad-database-url") from None
    if backend not in BACKENDS:
        raise InvalidInput(
            MSG_BACKEND, field="url", code="unsupported-database", backend=backend or "?"
        )
    if backend == "sqlite":
        if not allow_sqlite:
            raise InvalidInput(MSG_SQLITE, field="url", code="sqlite-not-allowed")
        database = parsed.database or ""
        # SQLite would create an empty database for a path that does not exist.
        if database in ("", ":memory:") or (
            not database.startswith("file:") and not os.path.exists(database)
        ):
            raise InvalidInput(MSG_NO_FILE, field="url", code="no-such-file", path=database)
    try:
        parsed.get_dialect().import_dbapi()
    except (ImportError, NoSuchModuleError):
        raise InvalidInput(
            MSG_DRIVER, field="url", code="database-driver-missing", backend=backend
        ) from None
    check_source_url(url)  # no local sockets, no driver settings that reach our files
    return backend


def source_key(url: str) -> str:
    """What identifies a database across censuses: backend, host, port and database name.

    Not the user (two accounts read the same tables) and never the password: two runs over the
    same key describe the same database, and the later one replaces the earlier in the
    department's current inventory.
    """
    from sqlalchemy.engine import make_url

    parsed = make_url(url.strip())
    host = parsed.host or ""
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.get_backend_name()}://{host}{port}/{parsed.database or ''}"[:512]


# ------------------------------------------------------------------------------------- sealing


def _key(secret_key: str) -> bytes:
    # A key for this purpose only: the secret key itself signs sessions and CSRF tokens.
    return hashlib.sha256(b"datafactor/census-source-url/v1\x00" + secret_key.encode()).digest()


def seal(secret_key: str, url: str) -> str:
    """AES-GCM-encrypt the URL (``v1:`` + base64 of nonce and ciphertext)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    sealed = AESGCM(_key(secret_key)).encrypt(nonce, url.encode(), _SEAL_AAD)
    return "v1:" + base64.b64encode(nonce + sealed).decode("ascii")


def unseal(secret_key: str, sealed: str) -> str:
    """The URL ``seal`` sealed; ``InvalidInput`` when the secret key changed since."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        raw = base64.b64decode(sealed.removeprefix("v1:"))
        return AESGCM(_key(secret_key)).decrypt(raw[:12], raw[12:], _SEAL_AAD).decode()
    except (InvalidTag, ValueError):
        raise InvalidInput(MSG_SEALED, code="source-sealed") from None


# ---------------------------------------------------------------------------- the department db


@dataclass(frozen=True)
class ListedTable:
    """A table or view found when the census listed the database."""

    schema: str
    name: str
    kind: TableKind


@dataclass(frozen=True)
class ColumnInfo:
    """A column as the database declares it."""

    name: str
    type: str
    nullable: bool


def _scrub(text: str, url: str) -> str:
    from sqlalchemy.engine import make_url

    with contextlib.suppress(Exception):
        password = make_url(url).password
        if password:
            text = text.replace(str(password), "***")
    return text.replace(url, redact_url(url))


class DepartmentDatabase:
    """One department database, listed and counted over one engine (no pooled connections kept).

    ``close()`` when done; every method raises ``SourceUnavailable`` (password hidden) when the
    database cannot be reached or refuses a query.
    """

    def __init__(self, url: str, *, connect_timeout: int = 10) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url
        from sqlalchemy.pool import NullPool

        self._url = url.strip()
        self.url = redact_url(self._url)
        self.connect_timeout = connect_timeout
        backend = make_url(self._url).get_backend_name()
        connect_args: dict[str, Any] = {}
        if backend in {"postgresql", "mysql"}:
            connect_args["connect_timeout"] = connect_timeout
        with self._errors():
            self._engine = create_engine(self._url, poolclass=NullPool, connect_args=connect_args)
        self.backend = backend

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

        try:
            yield
        except NoSuchTableError as exc:
            raise NotFound(MSG_NO_TABLE, url=self.url, table=str(exc)[:255]) from None
        except SQLAlchemyError as exc:
            orig = getattr(exc, "orig", None)
            cause = str(orig if orig is not None else exc).strip()
            reason = _scrub(cause.splitlines()[0] if cause else type(exc).__name__, self._url)
            log.warning("census source %s unavailable: %s", self.url, reason)
            raise SourceUnavailable(MSG_UNREADABLE, url=self.url, reason=reason[:500]) from None

    def _inspector(self) -> Any:
        from sqlalchemy import inspect

        return inspect(self._engine)

    def schemas(self, only: str | None = None) -> list[str]:
        """The schemas holding data (the catalogue's own left out), or just ``only``."""
        with self._errors():
            found = self._inspector().get_schema_names()
        if only is not None:
            if only not in found:
                raise InvalidInput(MSG_NO_SCHEMA, field="schema", url=self.url, schema=only)
            return [only]
        return sorted(
            s
            for s in found
            if s.lower() not in SYSTEM_SCHEMAS
            and not s.lower().startswith(("pg_temp", "pg_toast_temp"))
        )

    def listing(self, only: str | None = None) -> tuple[list[str], list[ListedTable]]:
        """The schemas, and every table and view in them: schema by schema, tables by name,
        then views by name."""
        tables: list[ListedTable] = []
        schemas = self.schemas(only)
        with self._errors():
            inspector = self._inspector()
            for schema in schemas:
                names = inspector.get_table_names(schema=schema)
                views = inspector.get_view_names(schema=schema)
                tables += [ListedTable(schema, n, TableKind.TABLE) for n in sorted(names)]
                tables += [ListedTable(schema, n, TableKind.VIEW) for n in sorted(views)]
        return schemas, tables

    def columns(self, schema: str, table: str) -> list[ColumnInfo]:
        """The columns as declared: name, SQL type, whether NULL is allowed."""
        with self._errors():
            declared = self._inspector().get_columns(table, schema=schema)
        out = []
        for column in declared:
            kind = column.get("type")
            try:
                type_text = kind.compile(dialect=self._engine.dialect)
            except Exception:  # a type the dialect cannot render (NullType, a plugin's type)
                type_text = type(kind).__name__
            name = str(column["name"])
            if self.backend == "mysql":
                name = name.replace("``", "`")  # SQLAlchemy keeps MySQL's doubled backtick
            out.append(ColumnInfo(name, str(type_text)[:128], bool(column.get("nullable", True))))
        return out

    def count_rows(self, schema: str, table: str) -> int:
        """``COUNT(*)`` of the table (exact; a full scan on most databases)."""
        from sqlalchemy import func, select
        from sqlalchemy import table as sql_table

        with self._errors(), self._engine.connect() as conn:
            query = select(func.count()).select_from(sql_table(table, schema=schema))
            return int(conn.execute(query).scalar_one())

    def open_table(self, schema: str, table: str) -> SqlTable:
        """The table's rows as a data plane ``SqlTable`` (the caller closes it)."""
        with self._errors():
            return SqlTable(
                self._url, table, schema=schema, name=table, connect_timeout=self.connect_timeout
            )

    def reachable(self) -> bool:
        """Whether the database answers at all (tells a table's refusal from an outage)."""
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self._engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> DepartmentDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
