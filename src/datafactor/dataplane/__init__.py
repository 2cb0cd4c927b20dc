"""The data plane: where data bytes live and the engines that read them.

``storage`` keeps every uploaded file once, named by its SHA-256, on a local folder or an fsspec
object store, with streaming and resumable uploads. ``readers`` turn files (CSV/TSV in UTF-8 or
GBK, Excel ``.xlsx``, JSON Lines, Parquet) and tables in live databases (SQLAlchemy URL) into
``Table`` objects that stream Arrow record batches, refusing hostile input with a clear reason.
``engine`` runs SQL over that Arrow data in a locked-down DuckDB behind an ``Engine`` interface;
``spark`` is the same interface over PySpark for data larger than one machine. ``datasets`` holds
the use cases of data sets (数据集) and their numbered versions — the generic objects later
capabilities attach to — and resumable uploads into them.
Other domains (discovery, census, trading) import from here only.
"""

from __future__ import annotations

from datafactor import audit as _audit
from datafactor.dataplane.datasets import (
    DatasetQuery,
    VersionSource,
    abort_upload,
    add_database_version,
    add_derived_version,
    add_file_version,
    append_chunk,
    can_see,
    check_database_source,
    check_file_version,
    check_readable,
    check_writable,
    complete_upload,
    create_dataset,
    dataset_facts,
    expire_uploads,
    get_dataset,
    get_upload,
    get_version,
    list_datasets,
    list_versions,
    open_version,
    seal_upload,
    start_upload,
    update_dataset,
    upload_offset,
    version_source,
)
from datafactor.dataplane.domain import (
    DOMAIN_LABELS,
    FREQUENCY_LABELS,
    SOURCE_KIND_LABELS,
    DataDomain,
    DatasetDraft,
    SourceKind,
    UpdateFrequency,
)
from datafactor.dataplane.domain import EVENT_LABELS as _EVENT_LABELS
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
    CountTimedOut,
    CsvTable,
    ExcelTable,
    JsonLinesTable,
    ParquetTable,
    ReadWarning,
    SqlColumn,
    SqlDatabase,
    SqlTable,
    Table,
    check_source_url,
    detect_encoding,
    detect_format,
    excel_tables,
    open_table,
    redact_url,
    sql_tables,
)
from datafactor.dataplane.schemas import (
    DatabaseVersionCreate,
    DatasetCreate,
    DatasetPublic,
    DatasetUpdate,
    Page,
    UploadCreate,
    UploadPublic,
    VersionPublic,
)
from datafactor.dataplane.services import blob_store, duckdb_engine
from datafactor.dataplane.spark import (
    SparkEngine,
    SparkUnavailable,
    StatementRefused,
    spark_engine,
)
from datafactor.dataplane.storage import Blob, BlobStore, UploadSession, validate_digest

_audit.register_action_labels(_EVENT_LABELS)

__all__ = [
    "DOMAIN_LABELS",
    "FREQUENCY_LABELS",
    "SOURCE_KIND_LABELS",
    "Blob",
    "BlobNotFound",
    "BlobStore",
    "BlobTooLarge",
    "Column",
    "CountTimedOut",
    "CsvTable",
    "DataDomain",
    "DatabaseVersionCreate",
    "DatasetCreate",
    "DatasetDraft",
    "DatasetPublic",
    "DatasetQuery",
    "DatasetUpdate",
    "DuckDBEngine",
    "Engine",
    "ExcelTable",
    "JsonLinesTable",
    "Page",
    "ParquetTable",
    "ReadWarning",
    "SourceKind",
    "SourceUnavailable",
    "SparkEngine",
    "SparkUnavailable",
    "SqlColumn",
    "SqlDatabase",
    "SqlTable",
    "StatementRefused",
    "Table",
    "UnreadableSource",
    "UpdateFrequency",
    "UploadConflict",
    "UploadCreate",
    "UploadPublic",
    "UploadSession",
    "VersionPublic",
    "VersionSource",
    "abort_upload",
    "add_database_version",
    "add_derived_version",
    "add_file_version",
    "append_chunk",
    "blob_store",
    "can_see",
    "check_database_source",
    "check_file_version",
    "check_readable",
    "check_source_url",
    "check_writable",
    "complete_upload",
    "create_dataset",
    "dataset_facts",
    "detect_encoding",
    "detect_format",
    "duckdb_engine",
    "excel_tables",
    "expire_uploads",
    "get_dataset",
    "get_upload",
    "get_version",
    "list_datasets",
    "list_versions",
    "open_table",
    "open_version",
    "quote_identifier",
    "redact_url",
    "seal_upload",
    "spark_engine",
    "sql_tables",
    "start_upload",
    "update_dataset",
    "upload_offset",
    "validate_digest",
    "version_source",
]
