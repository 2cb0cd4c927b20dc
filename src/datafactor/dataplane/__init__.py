"""The data plane: where data bytes live and the engines that read them.

``storage`` keeps every uploaded file once, named by its SHA-256, on a local folder or an fsspec
object store, with streaming and resumable uploads. ``readers`` turn files (CSV/TSV in UTF-8 or
GBK, Excel ``.xlsx``, JSON Lines, Parquet) and tables in live databases (SQLAlchemy URL) into
``Table`` objects that stream Arrow record batches, refusing hostile input with a clear reason.
``engine`` runs SQL over that Arrow data in a locked-down DuckDB behind an ``Engine`` interface a
Spark engine will share. Other domains (discovery, census, trading) import from here only.
"""

from __future__ import annotations

from datafactor.dataplane.engine import DuckDBEngine, Engine, quote_identifier
from datafactor.dataplane.errors import (
    BlobNotFound,
    BlobTooLarge,
    SourceUnavailable,
    UnreadableSource,
    UploadConflict,
)
from datafactor.dataplane.readers import (
    Column,
    CsvTable,
    ExcelTable,
    JsonLinesTable,
    ParquetTable,
    ReadWarning,
    SqlTable,
    Table,
    detect_encoding,
    detect_format,
    excel_tables,
    open_table,
    redact_url,
    sql_tables,
)
from datafactor.dataplane.services import blob_store, duckdb_engine
from datafactor.dataplane.storage import Blob, BlobStore, UploadSession, validate_digest

__all__ = [
    "Blob",
    "BlobNotFound",
    "BlobStore",
    "BlobTooLarge",
    "Column",
    "CsvTable",
    "DuckDBEngine",
    "Engine",
    "ExcelTable",
    "JsonLinesTable",
    "ParquetTable",
    "ReadWarning",
    "SourceUnavailable",
    "SqlTable",
    "Table",
    "UnreadableSource",
    "UploadConflict",
    "UploadSession",
    "blob_store",
    "detect_encoding",
    "detect_format",
    "duckdb_engine",
    "excel_tables",
    "open_table",
    "quote_identifier",
    "redact_url",
    "sql_tables",
    "validate_digest",
]
