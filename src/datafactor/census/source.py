"""Reaching a department's database: the URL checked and sealed, and the listing a census walks
(schema by schema, tables then views) over the data plane's ``SqlDatabase``, which owns reading
sources — schemas, tables, columns, row counts and the rows themselves.

A URL carries the department's credentials, so it is only ever stored sealed (AES-GCM under a key
derived from ``DATAFACTOR_SECRET_KEY`` for this purpose alone, as data set versions seal theirs)
and shown as ``dataplane.redact_url`` gives it. Every database error comes back as the data plane's
``SourceUnavailable`` naming the redacted URL, with the password scrubbed from the driver's
message too, since some drivers quote the connection string. SQLite files on the server are a
source only when the operator allows it (``DATAFACTOR_SOURCE_ALLOW_SQLITE``): otherwise any user
could read the server's own files, the control-plane database included.

Row counts are exact (``COUNT(*)``): a census is the record of what a department holds, and a
planner's estimate can be off by orders of magnitude on a table never analysed. Each count runs
under a statement timeout (``DATAFACTOR_CENSUS_COUNT_TIMEOUT_SECONDS``), so a huge or locked
table is recorded as "count timed out" instead of hanging the run.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from typing import Final

from datafactor.census.domain import TableKind
from datafactor.dataplane import SqlColumn, SqlDatabase, SqlTable, check_source_url
from datafactor.errors import N_, InvalidInput

# What a census may connect to: the SQLAlchemy backend names.
BACKENDS: Final = frozenset({"postgresql", "mysql", "sqlite"})
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
MSG_NO_SCHEMA: Final = N_("The database {url} has no schema {schema}.")
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


# A column as the database declares it (name, SQL type, nullable): the data plane's.
ColumnInfo = SqlColumn


class DepartmentDatabase:
    """One department database as a census reads it: the data plane's ``SqlDatabase`` (which
    owns reaching and reading sources) with the census's listing order and schema check.

    ``close()`` when done; every method raises ``SourceUnavailable`` (password hidden) when the
    database cannot be reached or refuses a query.
    """

    def __init__(self, url: str, *, connect_timeout: int = 10) -> None:
        self._database = SqlDatabase(url, connect_timeout=connect_timeout)
        self.url = self._database.url
        self.backend = self._database.backend

    def schemas(self, only: str | None = None) -> list[str]:
        """The schemas holding data (the catalogue's own left out), or just ``only``."""
        if only is not None:
            if only not in self._database.schema_names():
                raise InvalidInput(MSG_NO_SCHEMA, field="schema", url=self.url, schema=only)
            return [only]
        return self._database.data_schemas()

    def listing(self, only: str | None = None) -> tuple[list[str], list[ListedTable]]:
        """The schemas, and every table and view in them: schema by schema, tables by name,
        then views by name."""
        listed: list[ListedTable] = []
        schemas = self.schemas(only)
        for schema in schemas:
            tables, views = self._database.relations(schema)
            listed += [ListedTable(schema, n, TableKind.TABLE) for n in tables]
            listed += [ListedTable(schema, n, TableKind.VIEW) for n in views]
        return schemas, listed

    def columns(self, schema: str, table: str) -> list[ColumnInfo]:
        """The columns as declared: name, SQL type, whether NULL is allowed."""
        return self._database.columns(schema, table)

    def count_rows(self, schema: str, table: str, *, timeout: float | None = None) -> int:
        """``COUNT(*)`` of the table (exact; a full scan on most databases), stopped with
        ``CountTimedOut`` after ``timeout`` seconds."""
        return self._database.count_rows(schema, table, timeout=timeout)

    def open_table(self, schema: str, table: str) -> SqlTable:
        """The table's rows as a data plane ``SqlTable`` (the caller closes it)."""
        return self._database.open_table(schema, table)

    def reachable(self) -> bool:
        """Whether the database answers at all (tells a table's refusal from an outage)."""
        return self._database.reachable()

    def close(self) -> None:
        self._database.close()

    def __enter__(self) -> DepartmentDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
