"""Scanning a table: what its columns hold, how the data set grades, how good it is — one report.

``scan_source(table)`` reads a ``dataplane.Table``'s Arrow record batches once — the first
``sample_rows`` rows, or every row with ``full=True`` — and feeds each batch to a
``ColumnScanner`` per column (cells cast to text by Arrow, since the recognisers look at the
characters as written) and to the quality profiler. From the column findings it counts the
distinct individuals (``grading.distinct_individuals``: the largest distinct count of a column of
identifying types) and grades the data set (``grading.grade``). The ``ScanReport`` says which mode
was used, how many rows were read, carries the reader's warnings, and is plain JSON both ways
(``as_dict`` / ``from_dict``): the CLI prints it and the web app stores it.

Long scans report ``progress(rows_read, total)`` after every batch and stop with
``ScanCancelled`` when ``should_cancel()`` says so, checked before every batch is read, so a
background job can show a bar and be cancelled. In sample mode the counts of individuals are
lower bounds; a warning says so when rows were left unread.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from datafactor.dataplane import ReadWarning, Table
from datafactor.discovery.grading import (
    Grade,
    GradeDecision,
    GradingMetadata,
    distinct_individuals,
    grade,
    load_grading_rules,
    render_message,
)
from datafactor.discovery.recognizers import ColumnFinding, ColumnScanner
from datafactor.errors import N_, DomainError, InvalidInput

if TYPE_CHECKING:
    from datafactor.discovery.quality import QualityProfiler

__all__ = [
    "DEFAULT_SAMPLE_ROWS",
    "ScanCancelled",
    "ScanMode",
    "ScanReport",
    "ScannedColumn",
    "as_text",
    "scan_source",
]

DEFAULT_SAMPLE_ROWS: Final = 100_000
_BATCH_ROWS: Final = 65_536

MSG_CANCELLED: Final = N_("The scan of {table} was cancelled after {rows:,} rows.")
MSG_SAMPLED: Final = N_(
    "Only the first {rows:,} rows were scanned: counts of individuals are lower bounds. Run a "
    "full scan for exact figures."
)
MSG_MORE_WARNINGS: Final = N_("{count:,} more warnings were not kept.")
MSG_BAD_SAMPLE: Final = N_("The sample must hold at least one row, not {rows}.")


class ScanCancelled(DomainError):
    """The scan was stopped on request (``should_cancel``) before it finished; nothing is kept."""

    status = 409
    code = "scan-cancelled"
    title = N_("The scan was cancelled")


class ScanMode(StrEnum):
    """Whether a scan read a sample (the first rows) or every row."""

    SAMPLE = "sample"
    FULL = "full"


@dataclass(frozen=True, slots=True)
class ScannedColumn:
    """One column of the report: the entity types found, sensitive or not, ratio and confidence."""

    name: str
    types: tuple[str, ...]
    sensitive: bool
    match_ratio: float
    confidence: float

    @classmethod
    def from_finding(cls, finding: ColumnFinding) -> ScannedColumn:
        # Rounded here, not only in the JSON, so a report read back equals the one written.
        return cls(
            name=finding.name,
            types=tuple(finding.types),
            sensitive=finding.sensitive,
            match_ratio=round(finding.match_ratio, 4),
            confidence=round(finding.confidence, 4),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "types": list(self.types),
            "sensitive": self.sensitive,
            "match_ratio": self.match_ratio,
            "confidence": self.confidence,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScannedColumn:
        return cls(
            name=str(data["name"]),
            types=tuple(data["types"]),
            sensitive=bool(data["sensitive"]),
            match_ratio=float(data["match_ratio"]),
            confidence=float(data["confidence"]),
        )


def _warning_dict(warning: ReadWarning) -> dict[str, Any]:
    return {
        "code": warning.code,
        "zh": render_message(warning.message, warning.params, "zh_CN"),
        "en": render_message(warning.message, warning.params, "en"),
        "message": warning.message,
        "params": dict(warning.params),
        "line": warning.line,
    }


def _warning_from_dict(data: Mapping[str, Any]) -> ReadWarning:
    return ReadWarning(
        code=str(data["code"]),
        message=str(data["message"]),
        params=dict(data.get("params") or {}),
        line=data.get("line"),
    )


@dataclass(frozen=True)
class ScanReport:
    """The result of ``scan_source``; ``as_dict()`` is the JSON of ``datafactor scan --json``.

    ``findings`` keeps the recognisers' full column findings (distinct counts, per-type ratios)
    for callers in the same process; it is not part of the JSON and is empty in a report read
    back with ``from_dict``.
    """

    columns: tuple[ScannedColumn, ...]
    decision: GradeDecision
    quality: Mapping[str, Any]
    distinct_individuals: int | None
    rows_scanned: int
    mode: ScanMode
    warnings: tuple[ReadWarning, ...] = ()
    findings: tuple[ColumnFinding, ...] = field(default=(), compare=False, repr=False)

    @property
    def grade(self) -> Grade:
        return self.decision.grade

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data: the keys of the CLI's JSON, in that order."""
        return {
            "columns": [c.as_dict() for c in self.columns],
            "grade": self.decision.grade.value,
            "grade_reasons": [r.as_dict() for r in self.decision.reasons],
            "quality": dict(self.quality),
            "distinct_individuals": self.distinct_individuals,
            "rows_scanned": self.rows_scanned,
            "mode": self.mode.value,
            "warnings": [_warning_dict(w) for w in self.warnings],
            "rules": list(self.decision.rules),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScanReport:
        """A report from its ``as_dict()`` form (e.g. as stored in the database)."""
        return cls(
            columns=tuple(ScannedColumn.from_dict(c) for c in data["columns"]),
            decision=GradeDecision.from_dict(data),
            quality=dict(data.get("quality") or {}),
            distinct_individuals=data.get("distinct_individuals"),
            rows_scanned=int(data["rows_scanned"]),
            mode=ScanMode(data["mode"]),
            warnings=tuple(_warning_from_dict(w) for w in data.get("warnings") or ()),
        )


# --- reading -------------------------------------------------------------------------------------


def _json_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def as_text(array: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """An Arrow column as a string column, as the recognisers read cells (nulls stay null).

    Strings are taken as they are; other types are cast by Arrow in C. Floats that are all whole
    numbers go through int64, so a phone number stored as a double reads ``13800138000``, not
    ``1.3800138e+10``. Binary that is not UTF-8 is decoded with replacement characters and
    nested values (lists, structs) become JSON, in Python, as the rare cases they are.
    """
    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return array
    if pa.types.is_dictionary(kind):
        return as_text(array.cast(kind.value_type))
    if pa.types.is_floating(kind) and array.null_count < len(array):
        with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
            if pc.all(pc.equal(pc.trunc(array), array)).as_py():
                return pc.cast(pc.cast(array, pa.int64()), pa.string())
    try:
        return pc.cast(array, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array(
            [None if v is None else _json_text(v) for v in array.to_pylist()], pa.string()
        )


def _cells(array: pa.Array | pa.ChunkedArray) -> Any:
    # The recognisers classify an Arrow string array as a whole (no Python string per cell).
    return as_text(array)


def _quality_profiler(
    schema: pa.Schema, declared_frequency: str | None, last_updated: datetime | None
) -> QualityProfiler:
    """The GB/T 36344 quality profiler for ``schema`` (``discovery.quality``).

    A scan feeds it the same batches as the recognisers and reports
    ``result(findings, warnings=<read warnings>).as_dict()``. Imported here, not at the top: the
    profiler brings DuckDB, numpy and DataSketches, which ``datafactor`` commands other than a
    scan should not load.
    """
    from datafactor.discovery.quality import QualityProfiler

    if declared_frequency in _NO_PERIOD:
        declared_frequency = None
    return QualityProfiler(schema, declared_frequency=declared_frequency, last_updated=last_updated)


_NO_PERIOD = frozenset({"irregular", "once", "不定期", "一次性"})


@contextlib.contextmanager
def _batches(table: Table, size: int) -> Iterator[Iterator[pa.RecordBatch]]:
    """The table's batches, closed on leaving: a scan that stops early (sample full, cancelled)
    releases the reader's file or database cursor at once, not when the generator is collected."""
    batches = table.batches(size)
    try:
        yield batches
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def _check(should_cancel: Callable[[], bool] | None, table: Table, rows: int) -> None:
    if should_cancel is not None and should_cancel():
        raise ScanCancelled(MSG_CANCELLED, table=table.name, rows=rows)


def scan_source(
    table: Table,
    *,
    full: bool = False,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    progress: Callable[[int, int | None], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    metadata: GradingMetadata | None = None,
    declared_frequency: str | None = None,
    last_updated: datetime | None = None,
) -> ScanReport:
    """Scan ``table`` (see the module docstring) and grade it with ``metadata``.

    ``declared_frequency`` and ``last_updated`` let the quality profile judge timeliness (the
    update lag against the declared frequency); without them it is "not assessed". Frequencies
    with no period (irregular, once) are not assessed either.

    ``progress(rows_read, total)`` is called after each batch with a growing ``rows_read``;
    ``total`` is the most rows the scan will read (the sample size, or the table's row count
    when it is known without reading), None when unknown. Raises ``ScanCancelled`` when
    ``should_cancel()`` returns true, and the readers' ``UnreadableSource`` /
    ``SourceUnavailable`` when the data cannot be read.
    """
    if not full and sample_rows < 1:
        raise InvalidInput(MSG_BAD_SAMPLE, field="sample_rows", rows=sample_rows)
    metadata = metadata or GradingMetadata()
    # Unknown domains and categories are refused before any data is read.
    load_grading_rules().check(metadata)
    schema = table.schema
    scanners = [ColumnScanner(name) for name in schema.names]
    profiler = _quality_profiler(schema, declared_frequency, last_updated)
    limit = None if full else sample_rows
    known_rows = table.row_count
    total = limit if known_rows is None else known_rows if limit is None else min(limit, known_rows)
    batch_rows = _BATCH_ROWS if limit is None else min(_BATCH_ROWS, limit)
    rows = 0
    truncated = False
    _check(should_cancel, table, rows)
    with _batches(table, batch_rows) as batches:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            if limit is not None and rows >= limit:
                truncated = True  # the sample is full and this batch shows there is more
                break
            if limit is not None and rows + batch.num_rows > limit:
                batch = batch.slice(0, limit - rows)
                truncated = True
            for scanner, column in zip(scanners, batch.columns, strict=True):
                scanner.update(_cells(column))
            profiler.update(batch)
            rows += batch.num_rows
            if progress is not None:
                progress(rows, total)
            if truncated:
                break
            if limit is not None and rows >= limit and known_rows is not None:
                truncated = known_rows > rows
                break
            _check(should_cancel, table, rows)

    findings = [scanner.finding() for scanner in scanners]
    if metadata.records is None:
        records = rows if not truncated else known_rows
        metadata = replace(metadata, records=records)
    decision = grade(findings, metadata)
    warnings = list(table.warnings)
    if table.warning_count > len(warnings):
        warnings.append(
            ReadWarning(
                "more-warnings",
                MSG_MORE_WARNINGS,
                {"count": table.warning_count - len(warnings)},
            )
        )
    if truncated:
        warnings.append(ReadWarning("sampled", MSG_SAMPLED, {"rows": rows}))
    quality = profiler.result(findings, warnings=table.warning_count).as_dict()
    return ScanReport(
        columns=tuple(ScannedColumn.from_finding(f) for f in findings),
        decision=decision,
        quality=quality,
        distinct_individuals=distinct_individuals(findings),
        rows_scanned=rows,
        mode=ScanMode.FULL if full else ScanMode.SAMPLE,
        warnings=tuple(warnings),
        findings=tuple(findings),
    )
