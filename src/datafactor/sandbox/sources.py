"""Sandbox sources: a data-plane data set version as the Parquet file the worker reads.

``materialise`` turns a version (``datafactor.dataplane.version_source``) into a Parquet file and
its schema (column names with DuckDB type names, for the ``ColumnSpec``s of a catalog):

* a Parquet version in a local blob store is used in place (the blob itself);
* every other version — CSV/TSV in UTF-8 or GBK, Excel, JSON Lines, a live database table, or
  Parquet in a remote store — is converted once, streaming batch by batch through the data
  plane's readers (``open_version``), to ``<var_dir>/sandbox/<version_id>.parquet``, written to a
  temporary file and moved into place with ``os.replace`` (so a reader never sees half a file,
  and two servers converting at once both end with a whole one), and reused next time. A
  database version is a snapshot taken at its first use (``refresh=True`` takes a new one);
* text columns of a converted version (CSV, Excel, JSON Lines and SQLite give all text) are
  typed once, on conversion: a column whose every non-empty value is an integer becomes BIGINT, a decimal
  number DOUBLE, unless a value has a leading zero (``0771…``, 身份证号、手机号 and codes stay
  text); everything else stays VARCHAR.

The worker may be given only files that hold *exactly* the granted columns (a query could name
the file itself); ``materialise(..., columns=[...])`` returns such a projection, cached beside
the full file as ``<version_id>.<hash of the columns>.parquet``.

``ranked`` adds to such a projection each row's number within its privacy unit
(``domain.RANK_COLUMN``, in a fixed order of the row's values) and finds the columns whose value
is the same on every row of a unit (a household's district): the checker's single-pass plan for
queries that group and filter on those alone. Built once per projection and privacy unit (a sort
by unit: seconds for millions of rows), cached beside it with the column list in a JSON sidecar.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.orm import Session

from datafactor.dataplane import BlobStore, SourceKind, blob_store, open_version, version_source
from datafactor.errors import N_, InvalidInput
from datafactor.sandbox.domain import RANK_COLUMN
from datafactor.settings import Settings

__all__ = [
    "Materialised",
    "Ranked",
    "SourceColumn",
    "materialise",
    "rank_file",
    "ranked",
    "sandbox_folder",
]


@dataclass(frozen=True, slots=True)
class SourceColumn:
    name: str
    type: str  # DuckDB type name: BIGINT, DOUBLE, VARCHAR, DATE …


@dataclass(frozen=True, slots=True)
class Materialised:
    """A version as a Parquet file: where it is, its columns, and whether it is the blob itself."""

    version_id: str
    path: Path
    columns: tuple[SourceColumn, ...]
    in_place: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def type_of(self, name: str) -> str | None:
        return next((c.type for c in self.columns if c.name == name), None)


def sandbox_folder(settings: Settings) -> Path:
    """Where converted and projected files live: ``<var_dir>/sandbox``."""
    return settings.var_dir / "sandbox"


def _describe(path: Path) -> tuple[SourceColumn, ...]:
    with duckdb.connect(":memory:") as con:
        rows = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
    return tuple(SourceColumn(str(r[0]), str(r[1])) for r in rows)


@contextlib.contextmanager
def _atomic(target: Path) -> Any:
    """A temporary path beside ``target``, moved into place if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield temp
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _typed(raw: Path, target: Path) -> None:
    """Copy ``raw`` to ``target`` with text columns typed as the module docstring says."""
    with duckdb.connect(":memory:") as con:
        con.execute("SET threads = 2")
        source = "read_parquet(?)"
        described = _describe(raw)
        names = [c.name for c in described]
        types = {c.name: c.type for c in described}
        text = [n for n in names if types[n] == "VARCHAR"]
        checks = []
        for name in text:
            col = f"NULLIF(TRIM({_quote(name)}), '')"
            checks.append(
                f"COUNT({col}) = COUNT(TRY_CAST({col} AS BIGINT)) AND "
                f"BOOL_AND(regexp_full_match({col}, '[+-]?[0-9]+')) AND "
                f"NOT BOOL_OR(regexp_matches({col}, '^[+-]?0[0-9]'))"
            )
            checks.append(
                f"COUNT({col}) = COUNT(TRY_CAST({col} AS DOUBLE)) AND "
                f"NOT BOOL_OR(regexp_matches({col}, '^[+-]?0[0-9]')) AND "
                f"NOT BOOL_OR(regexp_matches({col}, '(?i)^[+-]?(inf|infinity|nan)$'))"
            )
        found: list[Any] = []
        if checks:
            sql = f"SELECT {', '.join(checks)} FROM {source}"  # noqa: S608 - quoted names
            found = list(con.execute(sql, [str(raw)]).fetchone() or ())
        casts = []
        for name in names:
            quoted = _quote(name)
            if name in text:
                index = text.index(name)
                as_int, as_double = found[2 * index], found[2 * index + 1]
                col = f"NULLIF(TRIM({quoted}), '')"
                if as_int:
                    casts.append(f"CAST({col} AS BIGINT) AS {quoted}")
                    continue
                if as_double:
                    casts.append(f"CAST({col} AS DOUBLE) AS {quoted}")
                    continue
            casts.append(quoted)
        with _atomic(target) as temp:
            select = f"SELECT {', '.join(casts)} FROM read_parquet({_literal(str(raw))})"  # noqa: S608
            con.execute(f"COPY ({select}) TO {_literal(str(temp))} (FORMAT parquet)")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _convert(store: BlobStore, source: Any, target: Path) -> None:
    """Stream the version's rows into ``target`` (typed where the reader gave text)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    raw = target.with_name(f".{target.name}.{uuid.uuid4().hex}.raw")
    table = open_version(store, source)
    try:
        writer: pq.ParquetWriter | None = None
        try:
            for batch in table.batches():
                if writer is None:
                    writer = pq.ParquetWriter(raw, table.schema)
                writer.write_batch(batch)
            if writer is None:  # no rows: the schema alone
                pq.write_table(table.schema.empty_table(), raw)
        finally:
            if writer is not None:
                writer.close()
        _typed(raw, target)
    finally:
        raw.unlink(missing_ok=True)
        close = getattr(table, "close", None)
        if close is not None:
            close()


def _project(full: Path, columns: Sequence[str], target: Path) -> None:
    parquet = pq.ParquetFile(full)
    schema = pa.schema([parquet.schema_arrow.field(c) for c in columns])
    with _atomic(target) as temp, pq.ParquetWriter(temp, schema) as writer:
        for batch in parquet.iter_batches(columns=list(columns)):
            writer.write_batch(batch)
        if parquet.metadata.num_rows == 0:
            writer.write_table(schema.empty_table())


def materialise(
    session: Session,
    settings: Settings,
    version_id: str,
    *,
    columns: Sequence[str] | None = None,
    store: BlobStore | None = None,
    refresh: bool = False,
) -> Materialised:
    """The version as a Parquet file (see the module docstring); with ``columns``, a file holding
    exactly those columns, in that order. Raises ``NotFound`` for an unknown version,
    ``InvalidInput`` for a column the version does not have, and the readers' ``UnreadableSource``
    / ``SourceUnavailable`` when the data cannot be read."""
    source = version_source(session, version_id, secret_key=settings.secret_key)
    store = store or blob_store(settings)
    folder = sandbox_folder(settings)
    full = folder / f"{source.version_id}.parquet"
    in_place = False
    if source.kind != SourceKind.DATABASE and source.format == "parquet" and store.is_local:
        assert source.digest is not None
        full, in_place = store.path_for(source.digest), True
    elif refresh or not full.is_file():
        _convert(store, source, full)
    described = _describe(full)
    if columns is None or list(columns) == [c.name for c in described]:
        return Materialised(source.version_id, full, described, in_place)
    wanted = list(dict.fromkeys(columns))
    known = {c.name for c in described}
    missing = [c for c in wanted if c not in known]
    if missing or not wanted:
        raise InvalidInput(
            N_("The data set version has no column named {columns}."),
            columns=", ".join(missing) or "—",
        )
    digest = hashlib.sha256("\x00".join(wanted).encode()).hexdigest()[:16]
    target = folder / f"{source.version_id}.{digest}.parquet"
    if refresh or not target.is_file() or target.stat().st_mtime < full.stat().st_mtime:
        _project(full, wanted, target)
    types = {c.name: c.type for c in described}
    return Materialised(
        source.version_id, target, tuple(SourceColumn(c, types[c]) for c in wanted), False
    )


@dataclass(frozen=True, slots=True)
class Ranked:
    """A projection with ``RANK_COLUMN`` added, and the columns constant within each unit."""

    path: Path
    columns: tuple[str, ...]  # the file's columns, RANK_COLUMN last
    unit_level: frozenset[str]


def ranked(
    session: Session,
    settings: Settings,
    version_id: str,
    *,
    columns: Sequence[str],
    privacy_unit: str,
    memory_limit: str = "1GB",
) -> Ranked:
    """The projection of ``columns`` (``materialise``) with each row's number within its
    privacy unit, and the set of columns constant within every unit (rows without a unit are
    one unit here, as the general plan groups them). Raises what ``materialise`` raises."""
    made = materialise(session, settings, version_id, columns=columns)
    if privacy_unit not in made.names or RANK_COLUMN in made.names:
        raise InvalidInput(
            N_("The data set version has no column named {columns}."), columns=privacy_unit
        )
    key = hashlib.sha256(f"{made.path.name}\x00{privacy_unit}".encode()).hexdigest()[:16]
    target = sandbox_folder(settings) / f"{made.version_id}.{key}.ranked.parquet"
    sidecar = target.with_suffix(".json")
    if (
        not target.is_file()
        or not sidecar.is_file()
        or target.stat().st_mtime < made.path.stat().st_mtime
    ):
        level = rank_file(made.path, privacy_unit, target, memory_limit=memory_limit)
        with _atomic(sidecar) as temp:
            temp.write_text(json.dumps({"unit": privacy_unit, "unit_level": level}), "utf-8")
    level = json.loads(sidecar.read_text("utf-8"))["unit_level"]
    return Ranked(target, (*made.names, RANK_COLUMN), frozenset(level))


def rank_file(source: Path, unit: str, target: Path, *, memory_limit: str = "1GB") -> list[str]:
    """Write ``source`` (Parquet) to ``target`` with ``RANK_COLUMN`` added — each row's number
    within its ``unit``, ordered by the row's other values, NULL for rows without a unit; the
    rows in the order of that number — and return the columns whose value is the same on every row of a unit (NULL counting as a
    value; rows without a unit are one unit here, as the general plan groups them)."""
    names = [c.name for c in _describe(source)]
    others = [n for n in names if n != unit]
    path = f"read_parquet({_literal(str(source))})"
    order = ", ".join(f"{_quote(n)} NULLS LAST" for n in others) or _quote(unit)
    # Rows without a unit get no number: the single-pass plan counts no unit for them and,
    # with dp, reads none of them.
    number = (
        f"CASE WHEN {_quote(unit)} IS NULL THEN NULL ELSE "
        f"ROW_NUMBER() OVER (PARTITION BY {_quote(unit)} ORDER BY {order}) END"
    )
    select = f"SELECT *, {number} AS {_quote(RANK_COLUMN)} FROM {path}"  # noqa: S608 - quoted
    spread = [
        f"COUNT(DISTINCT {_quote(n)}) + "
        f"CASE WHEN COUNT({_quote(n)}) BETWEEN 1 AND COUNT(*) - 1 THEN 1 ELSE 0 END AS c{i}"
        for i, n in enumerate(others)
    ]
    per_unit = f"SELECT {', '.join(spread)} FROM {path} GROUP BY {_quote(unit)}"  # noqa: S608
    widest = f"SELECT {', '.join(f'MAX(c{i})' for i in range(len(others)))} FROM ({per_unit})"  # noqa: S608
    with duckdb.connect(":memory:") as con:
        con.execute("SET threads = 2")
        con.execute(f"SET memory_limit = {_literal(memory_limit)}")
        con.execute(f"SET temp_directory = {_literal(str(target.parent / 'tmp'))}")
        row = con.execute(widest).fetchone() if others else ()
        with _atomic(target) as temp:
            # Ordered by the number: a row group's statistics then tell DuckDB whether every
            # row in it is within a bound ``__rn <= L``, so a bounded read skips the groups past
            # it and does not test the rows of the groups within it.
            con.execute(
                f"COPY (SELECT * FROM ({select}) ORDER BY {_quote(RANK_COLUMN)} NULLS LAST) "  # noqa: S608
                f"TO {_literal(str(temp))} (FORMAT parquet)"
            )
    return [n for n, most in zip(others, row or (), strict=True) if (most or 0) <= 1]
