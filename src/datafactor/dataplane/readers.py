"""Readers: every supported source as a ``Table`` that streams Arrow record batches.

A ``Table`` has a name, columns (name and Arrow type), batches that can be iterated any number of
times, a row count when it is cheap, and the warnings its last read produced. The engines
(``engine.py``) consume ``Table.reader()``; discovery consumes ``Table.batches()``. No reader holds a
whole file in memory: pyarrow parses CSV block by block from the file on disk (a UTF-8 file as it
is; any other encoding, or a blob behind an fsspec opener, from a re-encoded temporary copy),
JSON Lines is read line by line, Excel uses openpyxl's read-only mode, Parquet reads row group by
row group, live databases are read with ``yield_per`` (a server-side cursor on PostgreSQL).

Files come from people and are treated as hostile. CSV bytes are sniffed before parsing: BOM, then
strict UTF-8 on a sample, then GB18030 (a superset of GBK, which most government exports use);
anything else is refused unless the caller names the encoding. Bytes that later turn out not to
decode are replaced (U+FFFD) and counted in a warning rather than aborting a scan. Binary files
named ``.csv`` (NUL bytes, a known magic number, many control bytes) are refused. A line longer
than ``max_line_length`` is refused after reading a few MB at most (exactly at the limit while
re-encoding; at the latest when it straddles two parser blocks of about four times the limit when
pyarrow reads the file itself), so a 1 GB line is never read whole. Rows with the wrong number of fields are skipped with a warning naming the line,
never the row's content (it may be personal data). Excel: macro-enabled workbooks are refused,
the zip directory is checked for bombs (sizes and ratios) before openpyxl sees the file, formulas
are never evaluated (``data_only=True`` returns the value Excel cached). Python's ``zipfile`` never
inflates an entry beyond the size its directory declares, so checking declared sizes bounds what
openpyxl can be made to decompress; the stdlib XML parser (expat ≥ 2.4) limits entity expansion.

CSV, Excel and JSON Lines columns are text (``pa.string()``) whatever they look like. That is a
decision, not a shortcut: inferring types from a first block breaks on row 2,000,001, an 18-digit
resident ID or a phone number read as a number loses its leading zeros or its check letter, and
both discovery and the quality profile need the characters as written. Engines cast later
(``TRY_CAST``) where a number is wanted. Parquet and PostgreSQL/MySQL keep their declared types;
SQLite columns are text because SQLite's declared types are hints its rows need not follow.

Database URLs carry credentials: they are kept privately, shown and logged only through
``redact_url``, and driver errors are re-raised as ``SourceUnavailable`` with the password removed.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import decimal
import io
import json
import logging
import os
import re
import tempfile
import uuid
import warnings
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, BinaryIO, Final

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from datafactor.dataplane.errors import SourceUnavailable, UnreadableSource
from datafactor.errors import N_, NotFound

log = logging.getLogger(__name__)

Source = str | os.PathLike[str] | Callable[[], BinaryIO]
"""A file path, or a function that opens the bytes afresh (e.g. ``lambda: store.open(digest)``)."""

DEFAULT_BATCH_ROWS = 65_536
DEFAULT_MAX_LINE_LENGTH = 1 << 20  # characters
SAMPLE_BYTES = 64 * 1024
CHUNK_BYTES = 1 << 20
MAX_WARNINGS = 100

# ------------------------------------------------------------------------------- the abstraction


@dataclass(frozen=True)
class Column:
    """A column of a table: its name and Arrow type."""

    name: str
    type: pa.DataType


@dataclass(frozen=True)
class ReadWarning:
    """Something a read had to work around; ``message`` is a translatable template for ``params``.

    Warnings never quote a row's content, only where it is (``line``) and what was wrong.
    """

    code: str
    message: str
    params: dict[str, Any] = field(default_factory=dict)
    line: int | None = None

    def __str__(self) -> str:
        return self.message.format(**self.params)


class _WarningLog:
    """Keeps the first ``MAX_WARNINGS`` warnings and counts them all."""

    def __init__(self) -> None:
        self.items: list[ReadWarning] = []
        self.count = 0

    def add(self, code: str, message: str, *, line: int | None = None, **params: Any) -> None:
        self.count += 1
        if line is not None:
            params["line"] = line
        if len(self.items) < MAX_WARNINGS:
            self.items.append(ReadWarning(code, message, params, line))


class Table(ABC):
    """A readable table from any source; see the module docstring."""

    format: str = ""
    encoding: str | None = None

    def __init__(self, name: str) -> None:
        self.name = name
        self._open_warnings = _WarningLog()
        self._run_warnings = _WarningLog()

    @property
    @abstractmethod
    def schema(self) -> pa.Schema: ...

    @property
    def columns(self) -> list[Column]:
        return [Column(f.name, f.type) for f in self.schema]

    @property
    def row_count(self) -> int | None:
        """The number of rows if it is known without reading the data, else ``None``."""
        return None

    @property
    def warnings(self) -> list[ReadWarning]:
        """Warnings from opening the table and from the last (or current) iteration."""
        return self._open_warnings.items + self._run_warnings.items

    @property
    def warning_count(self) -> int:
        """All warnings, including those beyond the first ``MAX_WARNINGS`` that are kept."""
        return self._open_warnings.count + self._run_warnings.count

    def batches(self, batch_size: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Record batches of at most ``batch_size`` rows, streaming from the source."""
        self._run_warnings = _WarningLog()
        for batch in self._batches(batch_size):
            if batch.num_rows <= batch_size:
                yield batch
            else:
                for start in range(0, batch.num_rows, batch_size):
                    yield batch.slice(start, batch_size)

    @abstractmethod
    def _batches(self, batch_size: int) -> Iterator[pa.RecordBatch]: ...

    def reader(self, batch_size: int = DEFAULT_BATCH_ROWS) -> pa.RecordBatchReader:
        """The batches as a one-pass Arrow stream (what DuckDB and Spark consume)."""
        return pa.RecordBatchReader.from_batches(self.schema, self.batches(batch_size))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {len(self.schema)} columns>"


# --------------------------------------------------------------------------------- file helpers


def _open(source: Source) -> BinaryIO:
    if callable(source):
        return source()
    return Path(source).open("rb")


def _display_name(source: Source, name: str | None) -> str:
    if name:
        return name
    if callable(source):
        return "data"
    return PurePath(os.fspath(source)).name


def _unique_names(raw: list[Any], log: _WarningLog) -> list[str]:
    """Header cells as column names: blanks become ``column_<n>``, repeats get ``_2``, ``_3``."""
    names: list[str] = []
    seen: set[str] = set()
    for index, value in enumerate(raw, start=1):
        name = "" if value is None else str(value).strip()
        if not name:
            name = f"column_{index}"
            log.add(
                "blank-header",
                N_("Column {index} has no name in the header; it is called {name}."),
                index=index,
                name=name,
            )
        if name in seen:
            base, n = name, 2
            while f"{base}_{n}" in seen:
                n += 1
            name = f"{base}_{n}"
            log.add(
                "duplicate-header",
                N_("The header names {base} more than once; column {index} is called {name}."),
                base=base,
                index=index,
                name=name,
            )
        seen.add(name)
        names.append(name)
    return names


def _line_too_long(name: str, limit: int) -> UnreadableSource:
    return UnreadableSource(
        N_(
            "The file {name} has a line longer than {limit} characters; it is probably not a "
            "table. Check the file, or raise the line-length limit."
        ),
        code="line-too-long",
        name=name,
        limit=limit,
    )


# What a binary file starts with, for a message that says what the file actually is.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook or .docx document?)"),
    (b"\xd0\xcf\x11\xe0", "an old Office document (.xls or .doc) or an encrypted workbook"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"PAR1", "a Parquet file"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x7fELF", "a program"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
)
_CONTROL = bytes([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F])
_NOT_CONTROL = bytes(b for b in range(256) if b not in _CONTROL)
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def _binary_kind(sample: bytes) -> str | None:
    """Why ``sample`` is not text, or ``None``: a magic number, NUL bytes, many control bytes."""
    for magic, kind in _MAGIC:
        if sample.startswith(magic):
            return kind
    if sample.startswith(_UTF16_BOMS):
        return None
    if b"\x00" in sample:
        return "binary data (it contains NUL bytes)"
    controls = len(sample.translate(None, _NOT_CONTROL))
    if sample and controls / len(sample) > 0.05:
        return "binary data (it contains many control characters)"
    return None


def _refuse_binary(name: str, sample: bytes, what: str) -> None:
    kind = _binary_kind(sample)
    if kind:
        raise UnreadableSource(
            N_("The file {name} is not a {what} text file: it looks like {kind}."),
            code="binary-file",
            name=name,
            what=what,
            kind=kind,
        )


def detect_encoding(sample: bytes, *, complete: bool) -> str | None:
    """The encoding of a text sample: a BOM, else strict UTF-8, else GB18030; ``None`` if neither.

    ``complete`` says the sample is the whole file; otherwise a character cut at the sample's end
    is not held against it. GB18030 is reported for GBK and GB2312 files too (it is their superset).
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith(_UTF16_BOMS):
        return "utf-16"
    for encoding in ("utf-8", "gb18030"):
        try:
            codecs.getincrementaldecoder(encoding)("strict").decode(sample, final=complete)
        except UnicodeDecodeError:
            continue
        return encoding
    return None


class _Utf8Stream(io.RawIOBase):
    """The raw bytes of a text file re-encoded as UTF-8 as they are read, in bounded chunks.

    Undecodable bytes become U+FFFD and are counted; a line longer than ``max_line_length``
    raises as soon as it is seen, before the rest of it is read.
    """

    def __init__(self, raw: BinaryIO, encoding: str, max_line_length: int, name: str) -> None:
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder(encoding)("replace")
        self._buffer = bytearray()
        self._eof = False
        self._run = 0  # characters since the last newline
        self._limit = max_line_length
        self._name = name
        self.replaced = 0

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        raw = self._raw.read(CHUNK_BYTES)
        text = self._decoder.decode(raw, final=not raw)
        if not raw:
            self._eof = True
        if not text:
            return
        self.replaced += text.count("\ufffd")
        first = text.find("\n")
        if first < 0:
            self._run += len(text)
        else:
            longest = max(self._run + first, max(map(len, text[first + 1 :].split("\n"))))
            self._run = len(text) - text.rfind("\n") - 1
            if longest > self._limit:
                raise _line_too_long(self._name, self._limit)
        if self._run > self._limit:
            raise _line_too_long(self._name, self._limit)
        self._buffer += text.encode("utf-8")

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or len(self._buffer) < size):
            self._fill()
        if size < 0 or size > len(self._buffer):
            size = len(self._buffer)
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


# ---------------------------------------------------------------------------------- CSV / TSV

_DELIMITERS = (",", "\t", ";", "|")


def sniff_delimiter(lines: list[str]) -> str:
    """The delimiter that splits the sample lines into the most consistent number of fields > 1."""
    best, best_score = ",", (0.0, 0)
    for delimiter in _DELIMITERS:
        widths = [len(row) for row in csv.reader(lines, delimiter=delimiter) if row]
        if not widths:
            continue
        mode = max(set(widths), key=widths.count)
        if mode < 2:
            continue
        score = (widths.count(mode) / len(widths), mode)
        if score > best_score:
            best, best_score = delimiter, score
    return best


class CsvTable(Table):
    """A CSV or TSV file; every column is text (see the module docstring)."""

    format = "csv"

    def __init__(
        self,
        source: Source,
        *,
        name: str | None = None,
        delimiter: str | None = None,
        encoding: str | None = None,
        header: bool = True,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        spool_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(_display_name(source, name))
        self._source = source
        self._spool_dir = spool_dir
        self._replaced = 0
        self.max_line_length = max_line_length
        with _open(source) as handle:
            sample = handle.read(SAMPLE_BYTES)
            complete = not handle.read(1)
        if encoding is None:
            _refuse_binary(self.name, sample, "CSV")
            encoding = detect_encoding(sample, complete=complete)
            if encoding is None:
                raise UnreadableSource(
                    N_(
                        "The encoding of {name} is neither UTF-8 nor GB18030/GBK. Save it as "
                        "UTF-8 and upload it again."
                    ),
                    code="unknown-encoding",
                    name=self.name,
                )
        else:
            encoding = codecs.lookup(encoding).name  # "UTF8" -> "utf-8", and unknown names fail
        self.encoding = encoding
        text = codecs.getincrementaldecoder(encoding)("replace").decode(sample, final=complete)
        lines = text.splitlines(keepends=True)
        if not complete and lines and not lines[-1].endswith(("\n", "\r")):
            lines.pop()  # cut by the sample's end
        if any(len(line) > max_line_length for line in lines) or (
            not complete and not lines and len(text) > max_line_length
        ):
            raise _line_too_long(self.name, max_line_length)
        if delimiter is None:
            suffix = "" if callable(source) else PurePath(os.fspath(source)).suffix.lower()
            delimiter = "\t" if suffix == ".tsv" else sniff_delimiter(lines[:200])
        self.delimiter = delimiter
        self.header = header
        first = next((row for row in csv.reader(lines, delimiter=delimiter) if row), [])
        if header:
            self._names = _unique_names(first, self._open_warnings)
        else:
            self._names = [f"column_{i}" for i in range(1, len(first) + 1)]
        self._schema = pa.schema([(n, pa.string()) for n in self._names])
        # A row must fit in the parser's blocks; a line within the limit always does (UTF-8 takes
        # at most 4 bytes a character). pyarrow refuses a row straddling more than two blocks,
        # which is where an over-long line or quoted multi-line record read natively is caught
        # (transcoded input is checked exactly, line by line, while it is re-encoded).
        self._block_size = max(4 * CHUNK_BYTES, 4 * max_line_length + 4096)

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    def _on_invalid_row(self, row: Any) -> str:
        self._run_warnings.add(
            "ragged-row",
            N_(
                "Line {line} has {actual} fields where the header has {expected}; the row was "
                "skipped."
            ),
            line=row.number,
            actual=row.actual_columns,
            expected=row.expected_columns,
        )
        return "skip"

    def _native_path(self, stack: contextlib.ExitStack) -> str:
        """A local UTF-8 file pyarrow can read by itself: the source, or a transcoded spool copy.

        pyarrow must never be handed a Python file object here: it reads ahead on its own thread,
        and if the interpreter exits while that thread is inside Python (say right after a parse
        error in a command-line scan) the process aborts. A UTF-8 file on disk is read as is;
        anything else (GB18030, UTF-16, a blob behind an fsspec opener) is first re-encoded into a
        temporary file, in this thread, checking line lengths and counting undecodable bytes.
        """
        if not callable(self._source) and self.encoding in ("utf-8", "utf-8-sig"):
            return os.fspath(self._source)
        assert self.encoding is not None
        spool = stack.enter_context(
            tempfile.NamedTemporaryFile(prefix="datafactor-", suffix=".csv", dir=self._spool_dir)  # noqa: SIM115 - closed by the stack
        )
        with _open(self._source) as raw:
            stream = _Utf8Stream(raw, self.encoding, self.max_line_length, self.name)
            while chunk := stream.read(CHUNK_BYTES):
                spool.write(chunk)
        spool.flush()
        self._replaced += stream.replaced
        return spool.name

    def _as_text(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        # Columns are parsed as bytes so that one stray byte cannot fail the whole read; the cast
        # validates UTF-8 in C, and only a column that fails it is repaired value by value.
        arrays = []
        for column in batch.columns:
            try:
                arrays.append(column.cast(pa.string()))
            except pa.ArrowInvalid:
                values: list[str | None] = []
                for value in column.to_pylist():
                    if value is None:
                        values.append(None)
                        continue
                    text = value.decode("utf-8", "replace")
                    self._replaced += text.count("\ufffd")
                    values.append(text)
                arrays.append(pa.array(values, pa.string()))
        return pa.RecordBatch.from_arrays(arrays, schema=self._schema)

    def _batches(self, batch_size: int) -> Iterator[pa.RecordBatch]:
        if not self._names:
            return
        self._replaced = 0
        with contextlib.ExitStack() as stack:
            try:
                path = self._native_path(stack)
                reader = pacsv.open_csv(
                    stack.enter_context(pa.OSFile(path)),
                    read_options=pacsv.ReadOptions(
                        column_names=self._names,
                        skip_rows=1 if self.header else 0,
                        block_size=self._block_size,
                        use_threads=False,  # keeps line numbers in the ragged-row warnings
                    ),
                    parse_options=pacsv.ParseOptions(
                        delimiter=self.delimiter,
                        newlines_in_values=True,
                        invalid_row_handler=self._on_invalid_row,
                    ),
                    convert_options=pacsv.ConvertOptions(
                        column_types={n: pa.binary() for n in self._names},
                        strings_can_be_null=True,
                        null_values=[""],
                    ),
                )
                stack.callback(reader.close)
                for batch in reader:
                    yield self._as_text(batch)
            except pa.ArrowInvalid as exc:
                if "straddl" in str(exc):
                    raise _line_too_long(self.name, self.max_line_length) from None
                if "Empty CSV file" in str(exc):
                    return
                raise UnreadableSource(
                    N_("The file {name} is not valid CSV: {reason}"),
                    code="malformed-csv",
                    name=self.name,
                    reason=str(exc).splitlines()[0],
                ) from None
            finally:
                if self._replaced:
                    self._run_warnings.add(
                        "undecodable-bytes",
                        N_(
                            "{count} characters could not be decoded as {encoding} and were "
                            "replaced by U+FFFD; the file may mix encodings."
                        ),
                        count=self._replaced,
                        encoding=self.encoding,
                    )


# ---------------------------------------------------------------------------------------- Excel

MACRO_SUFFIXES = frozenset({".xlsm", ".xltm", ".xlam", ".xlsb"})
DEFAULT_MAX_UNCOMPRESSED = 1 << 30
DEFAULT_MAX_RATIO = 100  # as Apache POI's ZipSecureFile (minimum inflate ratio 0.01)
_RATIO_FLOOR = 1 << 20  # small entries may compress well without being a threat
_MAX_ENTRIES = 10_000


def _macro_refusal(name: str) -> UnreadableSource:
    return UnreadableSource(
        N_(
            "The workbook {name} contains macros, which are never opened here. Save it as an "
            "Excel workbook without macros (.xlsx) and upload it again."
        ),
        code="macro-workbook",
        name=name,
    )


def _zip_bomb(name: str) -> UnreadableSource:
    return UnreadableSource(
        N_(
            'The workbook {name} would expand to far more data than it holds (a "zip bomb") and '
            "was not opened."
        ),
        code="zip-bomb",
        name=name,
    )


def check_xlsx_container(
    handle: BinaryIO,
    *,
    name: str,
    max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED,
    max_ratio: int = DEFAULT_MAX_RATIO,
) -> None:
    """Refuse a workbook before parsing it: not a zip, macro-bearing, or a decompression bomb.

    Reads only the zip's central directory and ``[Content_Types].xml`` (itself size-checked).
    """
    try:
        archive = zipfile.ZipFile(handle)
    except zipfile.BadZipFile:
        handle.seek(0)
        kind = _binary_kind(handle.read(16)) or "not a workbook"
        raise UnreadableSource(
            N_(
                "The file {name} is not an .xlsx workbook ({kind}). Password-protected and old "
                ".xls workbooks are not supported: save it as .xlsx without a password."
            ),
            code="not-xlsx",
            name=name,
            kind=kind,
        ) from None
    with archive:
        entries = archive.infolist()
        if len(entries) > _MAX_ENTRIES:
            raise _zip_bomb(name)
        total = 0
        for entry in entries:
            total += entry.file_size
            if entry.file_size > _RATIO_FLOOR and entry.file_size > max_ratio * max(
                entry.compress_size, 1
            ):
                raise _zip_bomb(name)
            lower = entry.filename.lower()
            if lower.endswith("vbaproject.bin") or lower.startswith("xl/macrosheets/"):
                raise _macro_refusal(name)
        if total > max_uncompressed:
            raise _zip_bomb(name)
        try:
            types = archive.read("[Content_Types].xml")
        except KeyError:
            raise UnreadableSource(
                N_("The file {name} is a zip archive but not an .xlsx workbook."),
                code="not-xlsx",
                name=name,
                kind="zip",
            ) from None
        if b"macroEnabled" in types or b"vbaProject" in types:
            raise _macro_refusal(name)


def _cell_text(value: Any) -> str | None:
    """A cell's value as the text a person would read in Excel; numbers keep all their digits."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


@contextlib.contextmanager
def _quiet_openpyxl() -> Iterator[None]:
    # openpyxl warns about workbook features it ignores (data validation, styles); they are no
    # problem for reading values, and the test suite turns warnings into errors.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="openpyxl")
        yield


class ExcelTable(Table):
    """One worksheet of an ``.xlsx`` workbook; the first row is the header; every column is text."""

    format = "xlsx"

    def __init__(
        self,
        source: Source,
        *,
        sheet: str | None = None,
        name: str | None = None,
        max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED,
        max_ratio: int = DEFAULT_MAX_RATIO,
    ) -> None:
        file_name = _display_name(source, None)
        if not callable(source) and PurePath(os.fspath(source)).suffix.lower() in MACRO_SUFFIXES:
            raise _macro_refusal(file_name)
        self._source = source
        with _open(source) as handle:
            check_xlsx_container(
                handle, name=file_name, max_uncompressed=max_uncompressed, max_ratio=max_ratio
            )
            handle.seek(0)
            with self._workbook(handle) as workbook:
                # Worksheets only: a chart sheet has no cells.
                sheets = [ws.title for ws in workbook.worksheets]
                if not sheets:
                    raise UnreadableSource(
                        N_("The workbook {name} has no worksheet."), code="not-xlsx", name=file_name
                    )
                if sheet is None:
                    sheet = sheets[0]
                elif sheet not in sheets:
                    raise NotFound(
                        N_("The workbook {name} has no sheet {sheet}."), name=file_name, sheet=sheet
                    )
                self.sheet = sheet
                self.sheet_names = sheets
                worksheet = workbook[sheet]
                with _quiet_openpyxl():
                    first = next(worksheet.iter_rows(max_row=1, values_only=True), ())
        super().__init__(name or (file_name if len(sheets) == 1 else f"{file_name}#{sheet}"))
        last = max((i for i, v in enumerate(first, 1) if _cell_text(v) is not None), default=0)
        self._names = _unique_names(list(first[:last]), self._open_warnings)
        self._schema = pa.schema([(n, pa.string()) for n in self._names])

    @staticmethod
    @contextlib.contextmanager
    def _workbook(handle: BinaryIO) -> Iterator[Any]:
        import openpyxl

        with _quiet_openpyxl():
            try:
                workbook = openpyxl.load_workbook(
                    handle, read_only=True, data_only=True, keep_links=False, keep_vba=False
                )
            except Exception as exc:
                # openpyxl fails on damaged or crafted parts with whatever exception its parser
                # meets (KeyError, AttributeError, TypeError ...); all of them mean "unreadable".
                raise UnreadableSource(
                    N_(
                        "The workbook cannot be read ({reason}). Open it in Excel or WPS and save "
                        "it again as .xlsx."
                    ),
                    code="not-xlsx",
                    reason=type(exc).__name__,
                ) from None
        try:
            yield workbook
        finally:
            workbook.close()

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    @contextlib.contextmanager
    def _damaged(self, line: int) -> Iterator[None]:
        try:
            yield
        except Exception as exc:  # see _workbook: any parser exception means a damaged sheet
            raise UnreadableSource(
                N_("The sheet {sheet} is damaged after row {line} ({reason})."),
                code="not-xlsx",
                sheet=self.sheet,
                line=line,
                reason=type(exc).__name__,
            ) from None

    def _batches(self, batch_size: int) -> Iterator[pa.RecordBatch]:
        width = len(self._names)
        if not width:
            return
        with _open(self._source) as handle, self._workbook(handle) as workbook:
            rows = workbook[self.sheet].iter_rows(min_row=2, values_only=True)
            line = 1
            while True:
                columns: list[list[str | None]] = [[] for _ in range(width)]
                taken = 0
                with _quiet_openpyxl(), self._damaged(line):
                    for row in rows:
                        line += 1
                        texts = [_cell_text(v) for v in row]
                        if not any(t is not None for t in texts):
                            continue
                        if any(t is not None for t in texts[width:]):
                            self._run_warnings.add(
                                "ragged-row",
                                N_(
                                    "Row {line} has values beyond the header's {expected} columns; "
                                    "they were ignored."
                                ),
                                line=line,
                                expected=width,
                            )
                        texts += [None] * (width - len(texts))
                        for column, text in zip(columns, texts, strict=False):
                            column.append(text)
                        taken += 1
                        if taken == batch_size:
                            break
                if taken:
                    yield pa.RecordBatch.from_arrays(
                        [pa.array(c, pa.string()) for c in columns], schema=self._schema
                    )
                if taken < batch_size:
                    return


def excel_tables(source: Source, **options: Any) -> list[ExcelTable]:
    """Every worksheet of a workbook as a table."""
    first = ExcelTable(source, **options)
    return [first] + [ExcelTable(source, sheet=s, **options) for s in first.sheet_names[1:]]


# ------------------------------------------------------------------------------------ JSON Lines

SCHEMA_SAMPLE_RECORDS = 1_000
SCHEMA_SAMPLE_BYTES = 4 << 20


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class JsonLinesTable(Table):
    """A JSON Lines file (UTF-8): one object per line; columns are the keys of the first records.

    Keys first seen after the first ``SCHEMA_SAMPLE_RECORDS`` records (or ``SCHEMA_SAMPLE_BYTES``)
    are reported and ignored; values are text (nested values as compact JSON). Here
    ``max_line_length`` counts bytes: a line is read whole before it is decoded.
    """

    format = "jsonl"

    def __init__(
        self,
        source: Source,
        *,
        name: str | None = None,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
    ) -> None:
        super().__init__(_display_name(source, name))
        self._source = source
        self.max_line_length = max_line_length
        self.encoding = "utf-8"
        with _open(source) as handle:
            sample = handle.read(SAMPLE_BYTES)
            _refuse_binary(self.name, sample, "JSON Lines")
            handle.seek(0)
            keys: dict[str, None] = {}
            for count, record in enumerate(self._records(handle, _WarningLog()), start=1):
                keys.update(dict.fromkeys(record))
                if count >= SCHEMA_SAMPLE_RECORDS or handle.tell() > SCHEMA_SAMPLE_BYTES:
                    break
        self._schema = pa.schema([(k, pa.string()) for k in keys])

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    def _records(self, handle: BinaryIO, log: _WarningLog) -> Iterator[dict[str, Any]]:
        line = 0
        while True:
            raw = handle.readline(self.max_line_length + 1)
            if not raw:
                return
            line += 1
            if len(raw) > self.max_line_length and not raw.endswith(b"\n"):
                raise _line_too_long(self.name, self.max_line_length)
            if line == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8", "replace"))
            except (ValueError, RecursionError):
                # Not JSON, or JSON built to hurt: nesting deeper than the parser's recursion
                # limit, an integer of more digits than Python converts.
                log.add("invalid-json", N_("Line {line} is not valid JSON; skipped."), line=line)
                continue
            if not isinstance(record, dict):
                log.add(
                    "not-an-object", N_("Line {line} is not a JSON object; skipped."), line=line
                )
                continue
            yield record

    def _batches(self, batch_size: int) -> Iterator[pa.RecordBatch]:
        names = self._schema.names
        known = set(names)
        reported: set[str] = set()
        with _open(self._source) as handle:
            columns: dict[str, list[str | None]] = {n: [] for n in names}
            count = 0
            for record in self._records(handle, self._run_warnings):
                for key in record.keys() - known - reported:
                    reported.add(key)
                    self._run_warnings.add(
                        "unknown-key",
                        N_(
                            "The key {key} first appears after the records that set the columns; "
                            "its values were ignored."
                        ),
                        key=key,
                    )
                for n in names:
                    columns[n].append(_json_text(record.get(n)))
                count += 1
                if count == batch_size:
                    yield self._batch(columns)
                    columns = {n: [] for n in names}
                    count = 0
            if count:
                yield self._batch(columns)

    def _batch(self, columns: dict[str, list[str | None]]) -> pa.RecordBatch:
        return pa.RecordBatch.from_arrays(
            [pa.array(v, pa.string()) for v in columns.values()], schema=self._schema
        )


# --------------------------------------------------------------------------------------- Parquet

DEFAULT_MAX_ROW_GROUP_BYTES = 2 << 30


class ParquetTable(Table):
    """A Parquet file, with its own column types; row count from the footer."""

    format = "parquet"

    def __init__(
        self,
        source: Source,
        *,
        name: str | None = None,
        max_row_group_bytes: int = DEFAULT_MAX_ROW_GROUP_BYTES,
    ) -> None:
        super().__init__(_display_name(source, name))
        self._source = source
        with _open(source) as handle:
            try:
                metadata = pq.ParquetFile(handle, pre_buffer=False).metadata
                self._schema = metadata.schema.to_arrow_schema()
            except (pa.ArrowInvalid, OSError) as exc:
                raise UnreadableSource(
                    N_("The file {name} is not a valid Parquet file: {reason}"),
                    code="not-parquet",
                    name=self.name,
                    reason=str(exc).splitlines()[0],
                ) from None
        # A row group is decompressed as a unit: one declaring a huge size is a bomb.
        for index in range(metadata.num_row_groups):
            if metadata.row_group(index).total_byte_size > max_row_group_bytes:
                raise UnreadableSource(
                    N_(
                        "The file {name} has a row group larger than {limit} bytes uncompressed "
                        "and was not read."
                    ),
                    code="zip-bomb",
                    name=self.name,
                    limit=max_row_group_bytes,
                )
        self._rows = int(metadata.num_rows)

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    @property
    def row_count(self) -> int | None:
        return self._rows

    def _batches(self, batch_size: int) -> Iterator[pa.RecordBatch]:
        # A path is read natively, in parallel. A Python file object (a blob behind fsspec) is
        # read on this thread only: pyarrow threads calling into Python can abort the process if
        # it exits meanwhile (see CsvTable._native_path).
        if not callable(self._source):
            parquet = pq.ParquetFile(os.fspath(self._source))
            with contextlib.closing(parquet):
                yield from parquet.iter_batches(batch_size=batch_size)
            return
        with _open(self._source) as handle:
            parquet = pq.ParquetFile(handle, pre_buffer=False)
            yield from parquet.iter_batches(batch_size=batch_size, use_threads=False)


# ------------------------------------------------------------------------------- live databases

_SECRET_QUERY_KEYS = frozenset(
    {"password", "passwd", "pwd", "secret", "token", "access_token", "sslpassword", "api_key"}
)
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://[^/@:]*):[^@/]*@")
_SECRET_PARAM = re.compile(r"(?i)([?&](?:" + "|".join(sorted(_SECRET_QUERY_KEYS)) + r")=)[^&#]*")


def redact_url(url: str) -> str:
    """The URL with its password (and password-like query parameters) replaced by ``***``."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        text = make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        text = _USERINFO.sub(r"\g<scheme>:***@", str(url))
    return _SECRET_PARAM.sub(r"\1***", text)


def _scrub(text: str, url: str) -> str:
    """Remove the URL's password from a driver's message, in case the driver quoted it."""
    from sqlalchemy.engine import make_url

    with contextlib.suppress(Exception):
        password = make_url(url).password
        if password:
            text = text.replace(str(password), "***")
    return text.replace(url, redact_url(url))


@contextlib.contextmanager
def _database_errors(url: str) -> Iterator[None]:
    from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

    try:
        yield
    except NoSuchTableError:
        raise
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)
        cause = orig if orig is not None else exc
        reason = _scrub(str(cause).strip().splitlines()[0] if str(cause).strip() else "", url)
        log.warning("database %s unavailable: %s", redact_url(url), reason)
        raise SourceUnavailable(
            N_("The database {url} cannot be read: {reason}"), url=redact_url(url), reason=reason
        ) from None


# URL query settings a source database URL may carry. Everything else is refused: the settings go
# straight to the driver, and some reach the server's own files or network — MySQL's
# ``local_infile`` lets a hostile server read any file of ours, libpq's ``host=/path``, ``service``,
# ``passfile`` or ``sslkey`` point at local sockets and files.
_URL_SETTINGS: Final = {
    "postgresql": frozenset({"sslmode", "application_name", "connect_timeout", "options"}),
    "mysql": frozenset({"charset", "ssl_mode", "connect_timeout"}),
    "mariadb": frozenset({"charset", "ssl_mode", "connect_timeout"}),
}


def check_source_url(url: str) -> None:
    """Refuse a database URL whose settings would reach beyond the database it names.

    A network database must name its host (no host means the server's own Unix socket, where
    local accounts log in without a password) and may carry only the settings in
    ``_URL_SETTINGS``. SQLite URLs are checked by the callers that allow them at all.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise UnreadableSource(
            N_("This is not a database URL: {url}"), code="bad-url", url=redact_url(url)
        ) from None
    backend = parsed.get_backend_name()
    allowed = _URL_SETTINGS.get(backend)
    if allowed is None:
        return
    if not parsed.host or parsed.host.startswith("/"):
        raise UnreadableSource(
            N_(
                "The database URL {url} must name the database server's host, e.g. "
                "postgresql+psycopg://user:password@db.example.gov.cn/dbname; local sockets "
                "are not allowed."
            ),
            code="url-without-host",
            url=redact_url(url),
        )
    refused = sorted(set(parsed.query) - allowed)
    if refused:
        raise UnreadableSource(
            N_(
                "The database URL {url} carries settings that are not allowed: {settings}. "
                "Remove them; allowed are: {allowed}."
            ),
            code="url-setting-refused",
            url=redact_url(url),
            settings=", ".join(refused),
            allowed=", ".join(sorted(allowed)),
        )


def _sql_engine(url: str, connect_timeout: int) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    check_source_url(url)
    backend = make_url(url).get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend in {"postgresql", "mysql", "mariadb"}:
        connect_args["connect_timeout"] = connect_timeout
    if backend in {"mysql", "mariadb"}:
        # connect_args override the URL's settings: never let a server ask for our files.
        connect_args["local_infile"] = False
    with _database_errors(url):
        # NullPool: a table read is a long, occasional job; no connection should outlive it.
        return create_engine(url, poolclass=NullPool, connect_args=connect_args)


def sql_tables(url: str, *, schema: str | None = None, connect_timeout: int = 10) -> list[str]:
    """The names of the tables and views in a database (one schema; the default if not given)."""
    from sqlalchemy import inspect

    engine = _sql_engine(url, connect_timeout)
    try:
        with _database_errors(url):
            inspector = inspect(engine)
            return sorted(
                inspector.get_table_names(schema=schema) + inspector.get_view_names(schema=schema)
            )
    finally:
        engine.dispose()


# ------------------------------------------------------------------- a live database's catalogue

# Schemas that hold the database's own catalogue, never an owner's data.
SYSTEM_SCHEMAS: Final = frozenset(
    {"information_schema", "pg_catalog", "pg_toast", "mysql", "performance_schema", "sys"}
)
# Error codes of a statement stopped at its time limit: MySQL's max_execution_time, MariaDB's
# max_statement_time; PostgreSQL's query_canceled (SQLSTATE 57014).
_MYSQL_TIMEOUT_ERRORS: Final = frozenset({3024, 1969})
_PG_QUERY_CANCELED: Final = "57014"


class CountTimedOut(SourceUnavailable):
    """Counting a table's rows took longer than allowed (a huge or locked table) and was stopped."""

    status = 504
    code = "count-timeout"
    title = N_("Counting the rows took too long")


@dataclass(frozen=True)
class SqlColumn:
    """A column as the database declares it: name, SQL type, whether NULL is allowed."""

    name: str
    type: str
    nullable: bool


class SqlDatabase:
    """A live database's catalogue over one engine (no pooled connections kept): its schemas,
    the tables and views in each, their columns, and exact row counts.

    ``close()`` when done (or use it as a context manager). Every method raises
    ``SourceUnavailable`` (password hidden) when the database cannot be reached or refuses a
    query, ``NotFound`` for a table that does not exist.
    """

    def __init__(self, url: str, *, connect_timeout: int = 10) -> None:
        self._url = url.strip()
        self.url = redact_url(self._url)
        self.connect_timeout = connect_timeout
        self._engine = _sql_engine(self._url, connect_timeout)
        self.backend: str = self._engine.dialect.name

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        from sqlalchemy.exc import NoSuchTableError

        try:
            with _database_errors(self._url):
                yield
        except NoSuchTableError as exc:
            raise NotFound(
                N_("The database {url} has no table {table}."), url=self.url, table=str(exc)[:255]
            ) from None

    def _inspector(self) -> Any:
        from sqlalchemy import inspect

        return inspect(self._engine)

    def schema_names(self) -> list[str]:
        """Every schema, the catalogue's own included, as the database lists them."""
        with self._errors():
            return list(self._inspector().get_schema_names())

    def data_schemas(self) -> list[str]:
        """The schemas that can hold data (the catalogue's own and temporary ones left out),
        sorted."""
        return sorted(
            s
            for s in self.schema_names()
            if s.lower() not in SYSTEM_SCHEMAS
            and not s.lower().startswith(("pg_temp", "pg_toast_temp"))
        )

    def relations(self, schema: str | None) -> tuple[list[str], list[str]]:
        """The tables and the views of one schema, each sorted by name."""
        with self._errors():
            inspector = self._inspector()
            tables = inspector.get_table_names(schema=schema)
            views = inspector.get_view_names(schema=schema)
        return sorted(tables), sorted(views)

    def columns(self, schema: str | None, table: str) -> list[SqlColumn]:
        """The columns of a table or view as declared: name, SQL type, whether NULL is allowed."""
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
            if self.backend in _MYSQL_DIALECTS:
                name = name.replace("``", "`")  # SQLAlchemy keeps MySQL's doubled backtick
            out.append(SqlColumn(name, str(type_text)[:128], bool(column.get("nullable", True))))
        return out

    def count_rows(self, schema: str | None, table: str, *, timeout: float | None = None) -> int:
        """``COUNT(*)`` of a table or view: exact, a full scan on most databases.

        ``timeout`` (seconds) bounds the statement, and on SQLite the wait for a lock too:
        PostgreSQL's ``statement_timeout`` for this transaction, MySQL's ``max_execution_time``
        or MariaDB's ``max_statement_time`` for this (unpooled) connection, SQLite's progress
        handler and busy timeout. Past it the count is stopped and ``CountTimedOut`` raised.
        """
        from sqlalchemy import func, select
        from sqlalchemy import table as sql_table

        query = select(func.count()).select_from(sql_table(table, schema=schema))
        name = f"{schema}.{table}" if schema else table
        with (
            self._errors(),
            self._engine.connect() as conn,
            conn.begin(),
            _statement_timeout(conn, timeout, name),
        ):
            return int(conn.execute(query).scalar_one())

    def open_table(self, schema: str | None, table: str) -> SqlTable:
        """The rows of a table or view as a ``SqlTable`` (the caller closes it)."""
        return SqlTable(
            self._url, table, schema=schema, name=table, connect_timeout=self.connect_timeout
        )

    def reachable(self) -> bool:
        """Whether the database answers at all (tells one table's refusal from an outage)."""
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

    def __enter__(self) -> SqlDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _statement_timeout(conn: Any, seconds: float | None, name: str) -> Iterator[None]:
    """Bound the statements run inside (see ``SqlDatabase.count_rows``); ``CountTimedOut`` when
    one is stopped at the limit."""
    import time

    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    if seconds is None:
        yield
        return
    dialect = conn.dialect.name
    millis = max(1, int(seconds * 1000))
    raw: Any = None
    deadline = time.monotonic() + seconds
    if dialect == "postgresql":
        conn.execute(text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": str(millis)})
    elif dialect in _MYSQL_DIALECTS:
        if getattr(conn.dialect, "is_mariadb", False):
            conn.execute(text(f"SET SESSION max_statement_time = {seconds:.3f}"))
        else:
            conn.execute(text(f"SET SESSION max_execution_time = {millis}"))
    elif dialect == "sqlite":
        raw = conn.connection.driver_connection
        raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {millis}")
    try:
        yield
    except DBAPIError as exc:
        if not _timed_out(exc, dialect):
            raise
        raise CountTimedOut(
            N_(
                "Counting the rows of {table} took longer than {seconds} seconds (a very large "
                "or locked table) and was stopped."
            ),
            table=name,
            seconds=f"{seconds:g}",
        ) from None
    finally:
        if raw is not None:
            raw.set_progress_handler(None, 0)


def _timed_out(exc: Any, dialect: str) -> bool:
    orig = getattr(exc, "orig", None)
    if dialect == "postgresql":
        return getattr(orig, "sqlstate", None) == _PG_QUERY_CANCELED
    if dialect in _MYSQL_DIALECTS:
        args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
        return bool(args) and args[0] in _MYSQL_TIMEOUT_ERRORS
    if dialect == "sqlite":
        # Only the progress handler interrupts, and a lock is reported only after busy_timeout.
        text = str(orig).lower()
        return "interrupted" in text or "locked" in text
    return False


_PY_ARROW: dict[type, pa.DataType] = {
    bool: pa.bool_(),
    int: pa.int64(),
    float: pa.float64(),
    str: pa.string(),
    bytes: pa.binary(),
    dt.date: pa.date32(),
    dt.time: pa.time64("us"),
}


_MYSQL_DIALECTS = frozenset({"mysql", "mariadb"})


def _arrow_type(column: Any, dialect: str) -> pa.DataType:
    from sqlalchemy import types as sqltypes

    if dialect == "sqlite":
        return pa.string()
    if isinstance(column.type, sqltypes.Float):
        # MySQL's DOUBLE and REAL reflect as asdecimal (python_type Decimal); drivers give floats.
        return pa.float64()
    if dialect in _MYSQL_DIALECTS:
        if getattr(column.type, "unsigned", False) and isinstance(column.type, sqltypes.BigInteger):
            return pa.uint64()  # BIGINT UNSIGNED goes up to 2**64 - 1
        if column.type.__visit_name__ == "BIT":
            return pa.uint64()  # BIT(n), up to 64 bits, arrives as big-endian bytes (_batch)
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return pa.string()
    if python_type is dt.time and dialect in _MYSQL_DIALECTS:
        return pa.duration("us")  # MySQL's TIME is -838:59:59 to 838:59:59; drivers give timedelta
    if python_type is dt.datetime:
        return pa.timestamp("us", tz="UTC" if getattr(column.type, "timezone", False) else None)
    return _PY_ARROW.get(python_type, pa.string())


def _sql_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    return str(value)


def _unescape_mysql_column(inspector: Any, table: Any, column: dict[str, Any]) -> None:
    # SQLAlchemy's MySQL reflection keeps the doubled backtick of a quoted column name (`a``b`).
    if inspector.dialect.name in _MYSQL_DIALECTS:
        column["name"] = column["name"].replace("``", "`")


def _abandon_mysql_result(result: Any, conn: Any) -> None:
    """Stop a MySQL read early (a scan's sample is full, a cancel) without reading the rest.

    The protocol cannot cancel a result being sent, and PyMySQL's unbuffered cursor reads every
    remaining row when it is closed (and again when collected), so stopping after one batch would
    still read the whole table. Mark its result finished and drop the connection: the server ends
    the query when it next writes to the closed socket.
    """
    pending: Any = getattr(getattr(result, "cursor", None), "_result", None)
    if pending is not None and getattr(pending, "unbuffered_active", False):
        pending.unbuffered_active = False
    conn.invalidate()


class SqlTable(Table):
    """A table or view in a live database reached by SQLAlchemy URL, read in ``yield_per`` batches.

    Decimal, JSON, array and unknown types are read as text; the URL is never shown unredacted.
    MySQL: ``TIME`` is a duration (it may be negative or over 24 h), ``BIT`` and ``BIGINT UNSIGNED``
    are ``uint64``.
    """

    format = "sql"

    def __init__(
        self,
        url: str,
        table: str,
        *,
        schema: str | None = None,
        name: str | None = None,
        connect_timeout: int = 10,
    ) -> None:
        from sqlalchemy import MetaData
        from sqlalchemy import Table as SATable
        from sqlalchemy.exc import NoSuchTableError

        super().__init__(name or table)
        self._url = url
        self.url = redact_url(url)
        self._engine = _sql_engine(url, connect_timeout)
        with _database_errors(url):
            try:
                self._table = SATable(
                    table,
                    MetaData(),
                    schema=schema,
                    autoload_with=self._engine,
                    listeners=[("column_reflect", _unescape_mysql_column)],
                )
            except NoSuchTableError:
                raise NotFound(
                    N_("The database {url} has no table {table}."), url=self.url, table=table
                ) from None
        dialect = self._engine.dialect.name
        self._schema = pa.schema([(c.name, _arrow_type(c, dialect)) for c in self._table.columns])

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    def count_rows(self) -> int:
        """``COUNT(*)`` of the table: exact, but a full scan on most databases."""
        from sqlalchemy import func, select

        with _database_errors(self._url), self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(self._table)).scalar_one())

    def _batches(self, batch_size: int) -> Iterator[pa.RecordBatch]:
        from sqlalchemy import select, type_coerce
        from sqlalchemy.types import NullType

        # Raw driver values (NullType has no result processor): SQLAlchemy's own parsing of, say,
        # an SQLite DATETIME holding junk would raise in the middle of a scan.
        query = select(*[type_coerce(c, NullType()).label(c.name) for c in self._table.columns])
        with _database_errors(self._url), self._engine.connect() as conn:
            result = conn.execution_options(yield_per=batch_size).execute(query)
            finished = False
            try:
                for rows in result.partitions():
                    yield self._batch(list(zip(*rows, strict=True)), len(rows))
                finished = True
            finally:
                if not finished and self._engine.dialect.name in _MYSQL_DIALECTS:
                    _abandon_mysql_result(result, conn)

    def _batch(self, columns: list[tuple[Any, ...]], length: int) -> pa.RecordBatch:
        arrays = []
        for index, target in enumerate(self._schema.types):
            values = list(columns[index]) if columns else [None] * length
            if target == pa.string():
                arrays.append(pa.array([_sql_text(v) for v in values], pa.string()))
                continue
            if pa.types.is_uint64(target):  # MySQL BIT(n)
                values = [int.from_bytes(v, "big") if isinstance(v, bytes) else v for v in values]
            try:
                arrays.append(pa.array(values, target))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
                # A value the declared type does not admit (an engine without strict typing):
                # keep the others, count this one.
                name = self._schema.names[index]
                good = []
                for v in values:
                    try:
                        pa.array([v], target)
                        good.append(v)
                    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
                        good.append(None)
                        self._run_warnings.add(
                            "type-mismatch",
                            N_(
                                "A value in column {column} does not fit its declared type "
                                "{type}; it was read as empty."
                            ),
                            column=name,
                            type=str(target),
                        )
                arrays.append(pa.array(good, target))
        return pa.RecordBatch.from_arrays(arrays, schema=self._schema)

    def close(self) -> None:
        self._engine.dispose()


# ---------------------------------------------------------------------------------- dispatching

_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".xlsx": "xlsx",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def detect_format(filename: str) -> str:
    """``csv``, ``xlsx``, ``jsonl`` or ``parquet`` from a file name; refuses macros and unknowns."""
    suffix = PurePath(filename).suffix.lower()
    if suffix in MACRO_SUFFIXES:
        raise _macro_refusal(PurePath(filename).name)
    if suffix in _FORMATS:
        return _FORMATS[suffix]
    raise UnreadableSource(
        N_(
            "Files of type {suffix} cannot be read. Upload CSV, TSV, Excel (.xlsx), JSON Lines or "
            "Parquet."
        ),
        code="unsupported-format",
        suffix=suffix or "(none)",
    )


def open_table(
    source: Source, *, format: str | None = None, name: str | None = None, **options: Any
) -> Table:
    """The table in a file: the format from ``format`` or the file's suffix.

    A source given as an opener (for example a blob from the store) needs ``format`` (use
    ``detect_format`` on the uploaded file name). For a workbook this is its first sheet (or
    ``sheet=``); ``excel_tables`` gives every sheet. Databases: ``SqlTable``.
    """
    if format is None:
        if callable(source):
            raise ValueError("format is required when the source is an opener")
        format = detect_format(os.fspath(source))
    elif not callable(source):
        # The declared format does not override a macro-enabled suffix.
        suffix = PurePath(os.fspath(source)).suffix.lower()
        if suffix in MACRO_SUFFIXES:
            raise _macro_refusal(PurePath(os.fspath(source)).name)
    readers: dict[str, Callable[..., Table]] = {
        "csv": CsvTable,
        "tsv": CsvTable,
        "xlsx": ExcelTable,
        "jsonl": JsonLinesTable,
        "parquet": ParquetTable,
    }
    if format == "tsv":
        options.setdefault("delimiter", "\t")
    if format not in readers:
        raise UnreadableSource(
            N_(
                "Files of type {suffix} cannot be read. Upload CSV, TSV, Excel (.xlsx), JSON Lines "
                "or Parquet."
            ),
            code="unsupported-format",
            suffix=format,
        )
    return readers[format](source, name=name, **options)
